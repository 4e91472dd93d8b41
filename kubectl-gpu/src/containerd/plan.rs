//! The patch planner: from what was read on a node ([`NodeState`]), what the
//! node's versions can do ([`Capabilities`]) and the user's [`PatchOptions`],
//! decide how to add the nvidia runtime (reference §5.4) and produce a
//! [`Plan`] of file changes with the reasons for the choice.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use similar::TextDiff;
use toml_edit::{DocumentMut, Item, Table, TableLike, Value};

use crate::containerd::confirm::{Expectation, effective_config};
use crate::containerd::model::{
    ContainerdConfig, ContainerdVersion, RUNC_V2, RuntimeEntry, containerd_table_path,
    cri_runtime_plugin, declares_table, header_available, item_at,
};
use crate::containerd::template::{TemplateAnalysis, TemplateKind};
use crate::error::{Error, Result};

/// RKE2's default data dir.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/rancher/rke2";
/// RKE2's main config file.
pub const RKE2_CONFIG: &str = "/etc/rancher/rke2/config.yaml";
/// RKE2's config drop-in dir.
pub const RKE2_CONFIG_D: &str = "/etc/rancher/rke2/config.yaml.d";
/// The RKE2 config drop-in this tool writes (`default-runtime`).
pub const GPU_RKE2_CONFIG_NAME: &str = "99-gpu.yaml";
/// The containerd drop-in this tool writes.
pub const DROP_IN_NAME: &str = "99-nvidia.toml";
/// Where the GPU Operator's toolkit installs the runtime binaries.
pub const TOOLKIT_DIR: &str = "/usr/local/nvidia/toolkit";
/// A plain containerd's config (generic mode).
pub const GENERIC_CONFIG: &str = "/etc/containerd/config.toml";
/// Mode of every file the planner writes.
pub const FILE_MODE: u32 = 0o600;

/// The order in which RKE2 finds runtime binaries (the matrix owns it).
const SEARCH_ORDER: &[&str] = crate::matrix::RUNTIME_SEARCH_PATH;

/// The binary RKE2 looks for to render one of its nvidia runtimes itself
/// (k3s `runtimes.go`): `nvidia`, `nvidia-experimental`, `nvidia-cdi`.
pub fn standard_runtime_binary(runtime_name: &str) -> Option<&'static str> {
    match runtime_name {
        "nvidia" => Some("nvidia-container-runtime"),
        "nvidia-experimental" => Some("nvidia-container-runtime-experimental"),
        "nvidia-cdi" => Some("nvidia-container-runtime.cdi"),
        _ => None,
    }
}

/// Paths under an RKE2 data dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rke2Paths {
    pub data_dir: String,
}

impl Rke2Paths {
    pub fn new(data_dir: &str) -> Self {
        let d = data_dir.trim_end_matches('/');
        Self {
            data_dir: if d.is_empty() { "/".into() } else { d.into() },
        }
    }
    /// `<data-dir>/agent/etc/containerd`.
    pub fn containerd_dir(&self) -> String {
        format!("{}/agent/etc/containerd", self.data_dir)
    }
    /// The generated `config.toml`.
    pub fn config_toml(&self) -> String {
        format!("{}/config.toml", self.containerd_dir())
    }
    /// `config-v3.toml.tmpl` for version 3, else `config.toml.tmpl`.
    pub fn template(&self, version: i64) -> String {
        let name = if version >= 3 {
            "config-v3.toml.tmpl"
        } else {
            "config.toml.tmpl"
        };
        format!("{}/{name}", self.containerd_dir())
    }
    /// `config-v3.toml.d` for version 3, else `config.toml.d`.
    pub fn drop_in_dir(&self, version: i64) -> String {
        let name = if version >= 3 {
            "config-v3.toml.d"
        } else {
            "config.toml.d"
        };
        format!("{}/{name}", self.containerd_dir())
    }
}

/// How the runtime is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// (a) `99-nvidia.toml` in the imported drop-in dir.
    DropIn,
    /// (b) `default-runtime:` in `/etc/rancher/rke2/config.yaml.d/99-gpu.yaml`.
    DefaultRuntime,
    /// (c) a `{{ template "base" . }}` user template.
    Template,
    /// Generic containerd only: edit the containerd config file itself.
    ConfigFile,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Method::DropIn => "drop-in",
            Method::DefaultRuntime => "default-runtime",
            Method::Template => "template",
            Method::ConfigFile => "config-file",
        })
    }
}

impl FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "drop-in" => Ok(Method::DropIn),
            "default-runtime" => Ok(Method::DefaultRuntime),
            "template" => Ok(Method::Template),
            "config-file" => Ok(Method::ConfigFile),
            _ => Err(Error::InvalidOption {
                option: "method".into(),
                reason: format!(
                    "`{s}` is not one of drop-in, default-runtime, template, config-file"
                ),
            }),
        }
    }
}

/// What the node's versions support (filled from the version matrix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// RKE2's `default-runtime` flag (v1.26.12/v1.27.9/v1.28.5 and later).
    pub default_runtime_flag: bool,
    /// `{{ template "base" . }}` (v1.24.17/v1.25.13/v1.26.8/v1.27.5/v1.28.1 and later).
    pub base_templates: bool,
    /// The node's containerd.
    pub containerd: ContainerdVersion,
}

/// What was read on the node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeState {
    /// The generated `config.toml` (generic mode: the containerd config; may be empty).
    pub generated_config: String,
    /// `config-v3.toml.tmpl`, if it exists.
    pub template_v3: Option<String>,
    /// `config.toml.tmpl`, if it exists.
    pub template_v2: Option<String>,
    /// Files of the drop-in dir the config imports (see
    /// [`imported_drop_in_dir`]): file name → text.
    pub drop_ins: BTreeMap<String, String>,
    /// `/etc/rancher/rke2/config.yaml`, if it exists.
    pub rke2_config: Option<String>,
    /// `/etc/rancher/rke2/config.yaml.d/*`: file name → text.
    pub rke2_config_d: BTreeMap<String, String>,
    /// nvidia runtime binaries that exist on the host (absolute paths), e.g.
    /// `/usr/local/nvidia/toolkit/nvidia-container-runtime`.
    pub runtime_binaries: BTreeSet<String>,
}

/// The user's options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchOptions {
    /// Runtime (and RuntimeClass handler) name; default `nvidia`.
    pub runtime_name: String,
    /// Make it containerd's default runtime.
    pub set_as_default: bool,
    /// Runtime binary; `None`: the toolkit's if it exists, else the host package's.
    pub binary_path: Option<String>,
    /// Force a method.
    pub method: Option<Method>,
    /// Replace a static `.tmpl` by a base template (the applier keeps a backup).
    pub replace_static_template: bool,
    /// Not RKE2: a plain containerd whose config is [`PatchOptions::config_path`].
    pub generic_containerd: bool,
    /// Generic mode: the containerd config (default `/etc/containerd/config.toml`).
    pub config_path: Option<String>,
}

impl Default for PatchOptions {
    fn default() -> Self {
        Self {
            runtime_name: "nvidia".into(),
            set_as_default: false,
            binary_path: None,
            method: None,
            replace_static_template: false,
            generic_containerd: false,
            config_path: None,
        }
    }
}

/// Everything the planner needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanInput {
    pub state: NodeState,
    pub caps: Capabilities,
    /// RKE2 data dir (default `/var/lib/rancher/rke2`).
    pub data_dir: String,
    pub options: PatchOptions,
}

impl PlanInput {
    /// Default data dir and options.
    pub fn new(state: NodeState, caps: Capabilities) -> Self {
        Self {
            state,
            caps,
            data_dir: DEFAULT_DATA_DIR.into(),
            options: PatchOptions::default(),
        }
    }
}

/// One file to write or remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// Absolute host path.
    pub path: String,
    /// Content the planner saw (`None`: absent). The applier should refuse
    /// if the file changed since, and back up every file it overwrites.
    pub old: Option<String>,
    /// New content; `None` removes the file.
    pub new: Option<String>,
    pub mode: u32,
}

impl FileChange {
    /// A unified diff with `--- a/<path>` / `+++ b/<path>` headers.
    pub fn diff(&self) -> String {
        let old = self.old.as_deref().unwrap_or("");
        let new = self.new.as_deref().unwrap_or("");
        let p = self.path.trim_start_matches('/');
        TextDiff::from_lines(old, new)
            .unified_diff()
            .context_radius(3)
            .header(&format!("a/{p}"), &format!("b/{p}"))
            .to_string()
    }
}

/// What must be restarted for the changes to take effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// `systemctl restart rke2-server` or `rke2-agent`.
    Rke2,
    /// `systemctl restart containerd` (generic mode).
    Containerd,
}

/// The planner's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The method chosen; `None` when nothing needs writing whatever the method.
    pub method: Option<Method>,
    pub changes: Vec<FileChange>,
    /// Why this method and these changes, one reason a line.
    pub reasons: Vec<String>,
    /// A restart is needed (for these changes, or for state already written
    /// that the generated config does not show yet).
    pub restart: Option<Restart>,
    /// What to check after the restart.
    pub expectation: Expectation,
}

impl Plan {
    /// No file to change.
    pub fn is_noop(&self) -> bool {
        self.changes.is_empty()
    }
    pub fn restart_needed(&self) -> bool {
        self.restart.is_some()
    }
    /// All changes as one unified diff.
    pub fn diff(&self) -> String {
        self.changes.iter().map(FileChange::diff).collect()
    }
}

/// The drop-in dir a config imports (`<dir>/config-v3.toml.d/*.toml` or
/// `<dir>/config.toml.d/*.toml` for RKE2; any `<dir>/*.toml` glob when
/// `any_glob`). Callers read that dir into [`NodeState::drop_ins`].
pub fn imported_drop_in_dir(config: &ContainerdConfig, any_glob: bool) -> Option<String> {
    let imports = config.imports();
    let pick = |suffixes: &[&str]| {
        imports.iter().find_map(|i| {
            suffixes
                .iter()
                .any(|s| i.ends_with(s))
                .then(|| i.trim_end_matches("/*.toml").to_owned())
        })
    };
    pick(&["/config-v3.toml.d/*.toml", "/config.toml.d/*.toml"])
        .or_else(|| if any_glob { pick(&["/*.toml"]) } else { None })
}

// ---------------------------------------------------------------------------

fn validate_runtime_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidOption {
            option: "runtime name".into(),
            reason: format!(
                "`{name}` must be 1-63 characters of letters, digits, `-`, `.`, `_`, starting with a letter or digit"
            ),
        })
    }
}

fn check_schema(cfg: &ContainerdConfig, c: ContainerdVersion) -> Result<()> {
    if c.supports_schema(cfg.version()) {
        return Ok(());
    }
    let hint = match (cfg.version(), c.major) {
        (3.., 0 | 1) => "containerd 1.x cannot load version 3 configs; it needs a version 2 config (config.toml.tmpl, `plugins.\"io.containerd.grpc.v1.cri\"`): remove config-v3.toml.tmpl or upgrade RKE2 to a containerd 2 release".to_owned(),
        (1, 2..) => "containerd 2.x no longer loads version 1 configs (`plugins.cri`); rewrite it as version 2 or 3".to_owned(),
        (v, _) => format!("version {v} is not loadable by this containerd"),
    };
    Err(Error::SchemaMismatch {
        path: cfg.path().to_owned(),
        version: cfg.version(),
        containerd: c.to_string(),
        hint,
    })
}

struct Binary {
    path: String,
    exists: bool,
    reason: String,
}

fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// The first existing binary with this file name, in RKE2's search order.
fn find_binary(state: &NodeState, file: &str) -> Option<String> {
    SEARCH_ORDER
        .iter()
        .map(|d| format!("{d}/{file}"))
        .find(|p| state.runtime_binaries.contains(p))
        .or_else(|| {
            state
                .runtime_binaries
                .iter()
                .find(|p| basename(p) == file)
                .cloned()
        })
}

/// The binary RKE2 will find for a standard runtime name, if any: only in
/// the dirs RKE2 searches (the toolkit dir, /opt/kwasm/bin, the service's
/// PATH), never a binary elsewhere that merely has the right file name.
fn rke2_detects(name: &str, state: &NodeState) -> Option<String> {
    let file = standard_runtime_binary(name)?;
    SEARCH_ORDER
        .iter()
        .map(|d| format!("{d}/{file}"))
        .find(|p| state.runtime_binaries.contains(p))
}

fn resolve_binary(o: &PatchOptions, state: &NodeState) -> Result<Binary> {
    if let Some(p) = &o.binary_path {
        if !p.starts_with('/') || p.chars().any(char::is_control) {
            return Err(Error::InvalidOption {
                option: "binary path".into(),
                reason: format!("`{p}` must be an absolute path without control characters"),
            });
        }
        let exists = state.runtime_binaries.contains(p);
        return Ok(Binary {
            path: p.clone(),
            exists,
            reason: format!(
                "runtime binary {p} (given){}",
                if exists {
                    ""
                } else {
                    "; it does not exist on the node yet"
                }
            ),
        });
    }
    let file = standard_runtime_binary(&o.runtime_name).unwrap_or("nvidia-container-runtime");
    Ok(match find_binary(state, file) {
        Some(p) => Binary {
            reason: format!(
                "runtime binary {p} (found on the node; the toolkit dir {TOOLKIT_DIR} takes precedence, as in RKE2)"
            ),
            path: p,
            exists: true,
        },
        None => Binary {
            path: format!("{TOOLKIT_DIR}/{file}"),
            exists: false,
            reason: format!(
                "no {file} on the node yet: using the GPU Operator toolkit path {TOOLKIT_DIR}/{file}"
            ),
        },
    })
}

#[derive(Debug, Default, Deserialize)]
struct Rke2ConfigSubset {
    #[serde(rename = "default-runtime")]
    default_runtime: Option<String>,
}

/// RKE2 config files in load order: config.yaml, then config.yaml.d/*.yaml
/// (and *.yml) by name.
fn rke2_config_files(state: &NodeState) -> Vec<(String, &str)> {
    let mut out = Vec::new();
    if let Some(t) = &state.rke2_config {
        out.push((RKE2_CONFIG.to_owned(), t.as_str()));
    }
    for (name, t) in &state.rke2_config_d {
        if name.ends_with(".yaml") || name.ends_with(".yml") {
            out.push((format!("{RKE2_CONFIG_D}/{name}"), t.as_str()));
        }
    }
    out
}

fn parse_rke2_config(path: &str, text: &str) -> Result<Rke2ConfigSubset> {
    if text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---"
    }) {
        return Ok(Rke2ConfigSubset::default());
    }
    serde_saphyr::from_str(text).map_err(|e| Error::Rke2Config {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// The effective `default-runtime` and the file that sets it (last wins).
fn rke2_default_runtime(state: &NodeState) -> Result<Option<(String, String)>> {
    let mut found = None;
    for (path, text) in rke2_config_files(state) {
        if let Some(v) = parse_rke2_config(&path, text)?.default_runtime {
            found = Some((v, path));
        }
    }
    Ok(found)
}

/// Does this runtime entry have what we want? `Err` says what differs.
fn runtime_matches(
    r: Option<&RuntimeEntry>,
    binary: &str,
    systemd: Option<bool>,
) -> std::result::Result<(), String> {
    let Some(r) = r else {
        return Err("the runtime is not configured".into());
    };
    if r.runtime_type.as_deref() != Some(RUNC_V2) {
        return Err(format!(
            "runtime_type is {:?}, not \"{RUNC_V2}\"",
            r.runtime_type
        ));
    }
    if r.binary_name.as_deref() != Some(binary) {
        return Err(format!(
            "BinaryName is {:?}, not \"{binary}\"",
            r.binary_name
        ));
    }
    if let Some(s) = systemd
        && r.systemd_cgroup != Some(s)
    {
        return Err(format!(
            "SystemdCgroup is {:?}, runc has {s}",
            r.systemd_cgroup
        ));
    }
    Ok(())
}

/// TOML basic string.
fn toml_str(s: &str) -> String {
    Value::from(s).to_string().trim().to_owned()
}

fn quote_key(version: i64, k: &str) -> String {
    if version >= 3 {
        format!("'{k}'")
    } else {
        format!("\"{k}\"")
    }
}

fn cri_header(version: i64) -> String {
    if version <= 1 {
        "plugins.cri".into()
    } else {
        format!(
            "plugins.{}",
            quote_key(version, cri_runtime_plugin(version))
        )
    }
}

/// The runtime tables, in the style k3s renders them (reference §4.2).
fn runtime_snippet(version: i64, name: &str, binary: &str, systemd: Option<bool>) -> String {
    let t = format!(
        "{}.containerd.runtimes.{}",
        cri_header(version),
        quote_key(version, name)
    );
    let mut s = format!(
        "[{t}]\n  runtime_type = \"{RUNC_V2}\"\n\n[{t}.options]\n  BinaryName = {}\n",
        toml_str(binary)
    );
    if let Some(v) = systemd {
        s.push_str(&format!("  SystemdCgroup = {v}\n"));
    }
    s
}

fn default_snippet(version: i64, name: &str) -> String {
    format!(
        "[{}.containerd]\n  default_runtime_name = {}\n",
        cri_header(version),
        toml_str(name)
    )
}

fn set_value(t: &mut dyn TableLike, key: &str, v: Value) -> bool {
    if let Some(item) = t.get_mut(key)
        && let Some(old) = item.as_value_mut()
    {
        if old.to_string().trim() == v.to_string().trim() {
            return false;
        }
        let decor = old.decor().clone();
        *old = v;
        *old.decor_mut() = decor;
        return true;
    }
    t.insert(key, Item::Value(v));
    true
}

fn table_like_at_mut<'a>(root: &'a mut Table, path: &[&str]) -> Option<&'a mut dyn TableLike> {
    let mut cur: &mut dyn TableLike = root;
    for k in path {
        cur = cur.get_mut(k)?.as_table_like_mut()?;
    }
    Some(cur)
}

/// Get or create the table at `path` (creating implicit parents); `None` if
/// something on the way is not a table.
fn ensure_table<'a>(root: &'a mut Table, path: &[&str]) -> Option<&'a mut dyn TableLike> {
    let mut cur: &mut dyn TableLike = root;
    for (i, k) in path.iter().enumerate() {
        if cur.get(k).is_none() {
            let mut t = Table::new();
            t.set_implicit(i + 1 < path.len());
            cur.insert(k, Item::Table(t));
        }
        cur = cur.get_mut(k)?.as_table_like_mut()?;
    }
    Some(cur)
}

/// Make the runtime table at `rt` in `doc` what we want; true if changed.
fn upsert_runtime(
    doc: &mut DocumentMut,
    rt: &[&str],
    binary: &str,
    systemd: Option<bool>,
    path: &str,
) -> Result<bool> {
    let bad = || Error::InvalidContainerdConfig {
        path: path.to_owned(),
        reason: format!("`{}` is not a table", rt.join(".")),
    };
    let t = ensure_table(doc.as_table_mut(), rt).ok_or_else(bad)?;
    let mut changed = set_value(t, "runtime_type", Value::from(RUNC_V2));
    if t.get("options").is_none() {
        t.insert("options", Item::Table(Table::new()));
        changed = true;
    }
    let o = t
        .get_mut("options")
        .and_then(Item::as_table_like_mut)
        .ok_or_else(bad)?;
    changed |= set_value(o, "BinaryName", Value::from(binary));
    if let Some(s) = systemd {
        changed |= set_value(o, "SystemdCgroup", Value::from(s));
    }
    Ok(changed)
}

// ---------------------------------------------------------------------------

/// What the planner decided the desired state is.
struct Desired {
    name: String,
    binary: Binary,
    systemd: Option<bool>,
    set_as_default: bool,
}

enum Unavailable {
    Why(String),
    Fatal(Error),
}

struct TemplateTarget {
    path: String,
    version: i64,
    existing: Option<String>,
    analysis: Option<TemplateAnalysis>,
}

struct Ctx<'a> {
    input: &'a PlanInput,
    paths: Rke2Paths,
    generated: ContainerdConfig,
    in_use: Option<TemplateTarget>,
    desired: Desired,
    rke2_default: Option<(String, String)>,
    reasons: Vec<String>,
}

impl Ctx<'_> {
    fn expectation(&self, drop_in_dir: Option<String>) -> Expectation {
        Expectation {
            config_path: self.generated.path().to_owned(),
            drop_in_dir,
            runtime_name: self.desired.name.clone(),
            binary_name: self.desired.binary.path.clone(),
            systemd_cgroup: self.desired.systemd,
            set_as_default: self.desired.set_as_default,
        }
    }

    /// Whether the config containerd loads (the generated config, merged
    /// with the imported drop-ins when there are some) shows the desired
    /// runtime. In drop-in mode a pending restart cannot be seen in files.
    fn generated_shows_desired(&self, with_drop_ins: bool) -> bool {
        let d = &self.desired;
        let merged;
        let cfg = if with_drop_ins {
            match effective_config(
                self.generated.path(),
                &self.input.state.generated_config,
                &self.input.state.drop_ins,
            ) {
                Ok(c) => {
                    merged = c;
                    &merged
                }
                Err(_) => return false,
            }
        } else {
            &self.generated
        };
        runtime_matches(cfg.runtime(&d.name).as_ref(), &d.binary.path, d.systemd).is_ok()
            && (!d.set_as_default || cfg.default_runtime_name().as_deref() == Some(d.name.as_str()))
    }

    fn finish(
        mut self,
        method: Option<Method>,
        changes: Vec<FileChange>,
        restart: Restart,
        drop_in_dir: Option<String>,
    ) -> Plan {
        let restart = if !changes.is_empty() {
            Some(restart)
        } else if self.generated_shows_desired(drop_in_dir.is_some()) {
            self.reasons.push(
                "the generated config already shows the runtime as intended: nothing to do".into(),
            );
            None
        } else {
            self.reasons.push(format!(
                "nothing to write, but {} does not show it yet: restart to apply",
                self.generated.path()
            ));
            Some(restart)
        };
        Plan {
            expectation: self.expectation(drop_in_dir),
            method,
            changes,
            reasons: self.reasons,
            restart,
        }
    }
}

/// Which user template RKE2 renders from (config-v3.toml.tmpl first, on
/// containerd 2 RKE2 builds; else config.toml.tmpl).
fn template_in_use(
    input: &PlanInput,
    paths: &Rke2Paths,
    reasons: &mut Vec<String>,
) -> Option<TemplateTarget> {
    let s = &input.state;
    let mk = |version: i64, text: &String| {
        let path = paths.template(version);
        TemplateTarget {
            analysis: Some(TemplateAnalysis::analyze(&path, text)),
            path,
            version,
            existing: Some(text.clone()),
        }
    };
    if input.caps.containerd.major >= 2 {
        if let Some(t) = &s.template_v3 {
            if s.template_v2.is_some() {
                reasons.push(format!(
                    "{} is ignored because {} exists",
                    paths.template(2),
                    paths.template(3)
                ));
            }
            return Some(mk(3, t));
        }
    } else if s.template_v3.is_some() {
        reasons.push(format!(
            "{} is ignored: RKE2 with containerd {} only reads config.toml.tmpl",
            paths.template(3),
            input.caps.containerd
        ));
    }
    s.template_v2.as_ref().map(|t| mk(2, t))
}

/// Plan the change for the node.
pub fn plan(input: &PlanInput) -> Result<Plan> {
    let o = &input.options;
    validate_runtime_name(&o.runtime_name)?;
    if o.generic_containerd {
        return plan_generic(input);
    }
    let paths = Rke2Paths::new(&input.data_dir);
    let generated = ContainerdConfig::parse(&paths.config_toml(), &input.state.generated_config)?;
    check_schema(&generated, input.caps.containerd)?;
    let mut reasons = Vec::new();
    let in_use = template_in_use(input, &paths, &mut reasons);
    if let Some(t) = &in_use
        && let Some(a) = &t.analysis
        && a.kind == TemplateKind::Static
    {
        if !o.replace_static_template {
            return Err(Error::StaticTemplate {
                path: t.path.clone(),
            });
        }
        reasons.push(format!(
            "{} is a static copy ({}): replacing it by a base template as asked; its old content is backed up",
            t.path, a.reason
        ));
    }
    let binary = resolve_binary(o, &input.state)?;
    reasons.push(binary.reason.clone());
    if o.set_as_default && !binary.exists {
        let mut looked: Vec<String> = SEARCH_ORDER
            .iter()
            .take(1)
            .chain(["/usr/bin"].iter())
            .map(|d| {
                format!(
                    "{d}/{}",
                    standard_runtime_binary(&o.runtime_name).unwrap_or("nvidia-container-runtime")
                )
            })
            .collect();
        if let Some(p) = &o.binary_path {
            looked.insert(0, p.clone());
        }
        return Err(Error::NoRuntimeBinary {
            path: generated.path().to_owned(),
            runtime: o.runtime_name.clone(),
            looked_for: looked.join(", "),
        });
    }
    let systemd = generated.runtime("runc").and_then(|r| r.systemd_cgroup);
    if let Some(s) = systemd {
        reasons.push(format!("SystemdCgroup = {s} mirrored from runc's options"));
    }
    let rke2_default = rke2_default_runtime(&input.state)?;
    let mut ctx = Ctx {
        input,
        paths,
        generated,
        in_use,
        desired: Desired {
            name: o.runtime_name.clone(),
            binary,
            systemd,
            set_as_default: o.set_as_default,
        },
        rke2_default,
        reasons,
    };

    // Nothing to write when RKE2 renders the runtime itself and no default is needed.
    if !o.set_as_default
        && let Some(det) = rke2_detects(&ctx.desired.name, &input.state)
        && (o.binary_path.is_none() || o.binary_path.as_deref() == Some(det.as_str()))
        && !ctx
            .in_use
            .as_ref()
            .and_then(|t| t.analysis.as_ref())
            .is_some_and(|a| a.kind == TemplateKind::Static)
    {
        ctx.reasons.push(format!(
            "RKE2 detects {det} at start and renders runtime `{}` itself; no default runtime asked",
            ctx.desired.name
        ));
        let drop_dir = imported_drop_in_dir(&ctx.generated, false);
        return Ok(ctx.finish(None, Vec::new(), Restart::Rke2, drop_dir));
    }

    let a = drop_in_available(&ctx);
    let b = default_runtime_available(&ctx);
    let c = template_available(&ctx);
    let unsupported = |m: Method, path: String, why: String| Error::MethodUnsupported {
        method: m.to_string(),
        path,
        reason: why,
    };
    match o.method {
        Some(Method::DropIn) => match a {
            Ok(dir) => plan_drop_in(ctx, dir, Restart::Rke2),
            Err(why) => Err(unsupported(Method::DropIn, ctx.generated.path().into(), why)),
        },
        Some(Method::DefaultRuntime) => match b {
            Ok(()) => plan_default_runtime(ctx),
            Err(why) => Err(unsupported(
                Method::DefaultRuntime,
                format!("{RKE2_CONFIG_D}/{GPU_RKE2_CONFIG_NAME}"),
                why,
            )),
        },
        Some(Method::Template) => match c {
            Ok(t) => plan_template(ctx, t),
            Err(Unavailable::Fatal(e)) => Err(e),
            Err(Unavailable::Why(why)) => {
                let p = ctx.paths.template(ctx.generated.version());
                Err(unsupported(Method::Template, p, why))
            }
        },
        Some(Method::ConfigFile) => Err(unsupported(
            Method::ConfigFile,
            ctx.generated.path().into(),
            "RKE2 regenerates config.toml on every start; config-file is only for --generic-containerd".into(),
        )),
        None => {
            match a {
                Ok(dir) => {
                    ctx.reasons.push(format!(
                        "(a) {} imports {dir}/*.toml: writing a drop-in there",
                        ctx.generated.path()
                    ));
                    return plan_drop_in(ctx, dir, Restart::Rke2);
                }
                Err(why) => ctx.reasons.push(format!("(a) drop-in not used: {why}")),
            }
            match b {
                Ok(()) => {
                    ctx.reasons.push(
                        "(b) only the default runtime is missing and RKE2 already renders the runtime: using RKE2's default-runtime".into(),
                    );
                    return plan_default_runtime(ctx);
                }
                Err(why) => ctx.reasons.push(format!("(b) default-runtime not used: {why}")),
            }
            match c {
                Ok(t) => {
                    ctx.reasons.push(format!("(c) using the base template {}", t.path));
                    plan_template(ctx, t)
                }
                Err(Unavailable::Fatal(e)) => Err(e),
                Err(Unavailable::Why(why)) => {
                    let p = ctx.paths.template(ctx.generated.version());
                    Err(unsupported(
                        Method::Template,
                        p,
                        format!("{why}; and {}", ctx.reasons.join("; ")),
                    ))
                }
            }
        }
    }
}

fn drop_in_available(ctx: &Ctx) -> std::result::Result<String, String> {
    let Some(dir) = imported_drop_in_dir(&ctx.generated, false) else {
        return Err(format!(
            "{} has no `imports` of config-v3.toml.d/*.toml or config.toml.d/*.toml (RKE2 renders it from v1.32.13+rke2r2, v1.33.10+rke2r1, v1.34.6+rke2r1, v1.35.3+rke2r1)",
            ctx.generated.path()
        ));
    };
    if let Some(t) = &ctx.in_use
        && t.analysis
            .as_ref()
            .is_some_and(|a| a.kind == TemplateKind::Static)
    {
        return Err(format!(
            "{} is a static template being replaced; its imports line is frozen",
            t.path
        ));
    }
    if !ctx.input.caps.containerd.merges_drop_ins() {
        return Err(format!(
            "containerd {} replaces imported plugin tables instead of merging them",
            ctx.input.caps.containerd
        ));
    }
    Ok(dir)
}

fn default_runtime_available(ctx: &Ctx) -> std::result::Result<(), String> {
    let d = &ctx.desired;
    if !d.set_as_default {
        return Err("no default runtime asked".into());
    }
    if !ctx.input.caps.default_runtime_flag {
        return Err(
            "this RKE2 predates the default-runtime flag (v1.26.12/v1.27.9/v1.28.5)".into(),
        );
    }
    if standard_runtime_binary(&d.name).is_none() {
        return Err(format!(
            "RKE2 only detects nvidia, nvidia-experimental and nvidia-cdi; `{}` would fail with `default runtime {} was not found`",
            d.name, d.name
        ));
    }
    let user_declares = ctx.in_use.as_ref().is_some_and(|t| {
        t.analysis
            .as_ref()
            .and_then(|a| a.appended_document().ok())
            .is_some_and(|doc| {
                item_at(doc.as_table(), &ctx.generated.runtime_path(&d.name)).is_some()
            })
    });
    let rendered = ctx.generated.runtime(&d.name);
    match rendered.as_ref().and_then(|r| r.binary_name.as_deref()) {
        None => {
            return Err(format!(
                "{} does not show runtime `{}` yet (RKE2 must detect it first, else it fails with `default runtime {} was not found`; restart RKE2 once the binary exists)",
                ctx.generated.path(),
                d.name,
                d.name
            ));
        }
        Some(_) if user_declares => {
            return Err(format!(
                "runtime `{}` comes from the user template, not from RKE2's detection",
                d.name
            ));
        }
        Some(b) if ctx.input.options.binary_path.is_some() && b != d.binary.path => {
            return Err(format!(
                "RKE2 renders `{}` with BinaryName {b}, not the requested {}",
                d.name, d.binary.path
            ));
        }
        Some(_) => {}
    }
    for (name, text) in &ctx.input.state.rke2_config_d {
        if name.as_str() > GPU_RKE2_CONFIG_NAME
            && (name.ends_with(".yaml") || name.ends_with(".yml"))
        {
            let path = format!("{RKE2_CONFIG_D}/{name}");
            if let Ok(c) = parse_rke2_config(&path, text)
                && let Some(v) = c.default_runtime
                && v != d.name
            {
                return Err(format!(
                    "{path} is read after {GPU_RKE2_CONFIG_NAME} and sets default-runtime: {v}"
                ));
            }
        }
    }
    Ok(())
}

fn template_available(ctx: &Ctx) -> std::result::Result<TemplateTarget, Unavailable> {
    if !ctx.input.caps.base_templates {
        return Err(Unavailable::Why(
            "this RKE2 predates base templates (`{{ template \"base\" . }}`, v1.24.17/v1.25.13/v1.26.8/v1.27.5/v1.28.1)".into(),
        ));
    }
    if let Some(t) = &ctx.in_use {
        if let Some(a) = &t.analysis
            && a.kind == TemplateKind::Other
        {
            return Err(Unavailable::Fatal(Error::UnsupportedTemplate {
                path: t.path.clone(),
                reason: a.reason.clone(),
            }));
        }
        return Ok(TemplateTarget {
            path: t.path.clone(),
            version: t.version,
            existing: t.existing.clone(),
            analysis: t.analysis.clone(),
        });
    }
    let v = ctx.generated.version();
    if v < 2 {
        return Err(Unavailable::Why(format!(
            "{} is schema version 1, which no base template renders",
            ctx.generated.path()
        )));
    }
    Ok(TemplateTarget {
        path: ctx.paths.template(v),
        version: v,
        existing: None,
        analysis: None,
    })
}

fn drop_in_content(version: i64, d: &Desired) -> String {
    let mut s = format!(
        "# Written by kubectl-gpu (patch-containerd): NVIDIA runtime `{}`.\n# Imported by the generated config.toml; remove this file and restart RKE2 to undo.\nversion = {version}\n\n",
        d.name
    );
    if d.set_as_default {
        s.push_str(&default_snippet(version, &d.name));
        s.push('\n');
    }
    s.push_str(&runtime_snippet(
        version,
        &d.name,
        &d.binary.path,
        d.systemd,
    ));
    s
}

fn plan_drop_in(mut ctx: Ctx, dir: String, restart: Restart) -> Result<Plan> {
    let drop_ins = &ctx.input.state.drop_ins;
    let eff = effective_config(
        ctx.generated.path(),
        &ctx.input.state.generated_config,
        drop_ins,
    )?;
    // Mirror runc's options as containerd will see them.
    if let Some(s) = eff.runtime("runc").and_then(|r| r.systemd_cgroup) {
        ctx.desired.systemd = Some(s);
    }
    let d = &ctx.desired;
    let ok_runtime = runtime_matches(eff.runtime(&d.name).as_ref(), &d.binary.path, d.systemd);
    let ok_default =
        !d.set_as_default || eff.default_runtime_name().as_deref() == Some(d.name.as_str());
    if ok_runtime.is_ok() && ok_default {
        ctx.reasons.push(format!(
            "{} merged with {dir}/*.toml already has runtime `{}` as intended",
            ctx.generated.path(),
            d.name
        ));
        return Ok(ctx.finish(Some(Method::DropIn), Vec::new(), restart, Some(dir)));
    }
    let version = ctx.generated.version();
    let content = drop_in_content(version, d);
    let mut after = drop_ins.clone();
    after.insert(DROP_IN_NAME.into(), content.clone());
    let eff2 = effective_config(
        ctx.generated.path(),
        &ctx.input.state.generated_config,
        &after,
    )?;
    let later = drop_ins
        .keys()
        .filter(|k| k.as_str() > DROP_IN_NAME && k.ends_with(".toml"))
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if runtime_matches(eff2.runtime(&d.name).as_ref(), &d.binary.path, d.systemd).is_err()
        || (d.set_as_default && eff2.default_runtime_name().as_deref() != Some(d.name.as_str()))
    {
        return Err(Error::RuntimeConflict {
            path: format!("{dir}/{DROP_IN_NAME}"),
            reason: format!(
                "drop-ins read after {DROP_IN_NAME} ({later}) override runtime `{}` or the default runtime; fix or remove them",
                d.name
            ),
        });
    }
    ctx.reasons.push(format!(
        "drop-in version = {version}, the root config's version (never above it)"
    ));
    if let Err(why) = ok_runtime {
        ctx.reasons.push(format!("runtime `{}`: {why}", d.name));
    }
    let path = format!("{dir}/{DROP_IN_NAME}");
    let change = FileChange {
        old: drop_ins.get(DROP_IN_NAME).cloned(),
        path,
        new: Some(content),
        mode: FILE_MODE,
    };
    Ok(ctx.finish(Some(Method::DropIn), vec![change], restart, Some(dir)))
}

fn plan_default_runtime(mut ctx: Ctx) -> Result<Plan> {
    let name = ctx.desired.name.clone();
    if let Some((v, file)) = &ctx.rke2_default
        && *v == name
    {
        ctx.reasons
            .push(format!("{file} already sets default-runtime: {v}"));
        return Ok(ctx.finish(
            Some(Method::DefaultRuntime),
            Vec::new(),
            Restart::Rke2,
            None,
        ));
    }
    let path = format!("{RKE2_CONFIG_D}/{GPU_RKE2_CONFIG_NAME}");
    let old = ctx
        .input
        .state
        .rke2_config_d
        .get(GPU_RKE2_CONFIG_NAME)
        .cloned();
    let line = format!("default-runtime: \"{name}\"");
    let new = match &old {
        None => format!(
            "# Written by kubectl-gpu (patch-containerd): make `{name}` containerd's default runtime.\n{line}\n"
        ),
        Some(text) => {
            let mut replaced = false;
            let mut out: Vec<String> = text
                .lines()
                .map(|l| {
                    if l.starts_with("default-runtime:") || l.starts_with("default-runtime :") {
                        replaced = true;
                        line.clone()
                    } else {
                        l.to_owned()
                    }
                })
                .collect();
            if !replaced {
                out.push(line.clone());
            }
            out.join("\n") + "\n"
        }
    };
    if let Some((v, file)) = &ctx.rke2_default {
        ctx.reasons.push(format!(
            "{file} sets default-runtime: {v}; {path} is read later and overrides it"
        ));
    }
    let change = FileChange {
        path,
        old,
        new: Some(new),
        mode: FILE_MODE,
    };
    Ok(ctx.finish(
        Some(Method::DefaultRuntime),
        vec![change],
        Restart::Rke2,
        None,
    ))
}

fn plan_template(mut ctx: Ctx, t: TemplateTarget) -> Result<Plan> {
    let v = t.version;
    let cri = cri_runtime_plugin(v);
    let d = &ctx.desired;
    let (prefix, mut app) = match &t.analysis {
        Some(a) if a.kind == TemplateKind::Base => (a.prefix().to_owned(), a.appended_document()?),
        _ => ("{{ template \"base\" . }}\n".to_owned(), DocumentMut::new()),
    };
    let rt_path = ["plugins", cri, "containerd", "runtimes", d.name.as_str()];
    let user_declares_rt = item_at(app.as_table(), &rt_path).is_some();
    let detected = rke2_detects(&d.name, &ctx.input.state);
    // The generated config shows what RKE2 renders only when the template in
    // use extends the base; a static template's copy says nothing about it.
    let generated_reflects_base = !matches!(
        t.analysis.as_ref().map(|a| a.kind),
        Some(TemplateKind::Static)
    );
    let base_renders = detected.is_some()
        || (standard_runtime_binary(&d.name).is_some()
            && !user_declares_rt
            && generated_reflects_base
            && ctx.generated.runtime(&d.name).is_some());
    let mut snippet = String::new();
    let mut edited = false;
    let mut notes = Vec::new();
    if base_renders {
        let rendered_bin = detected
            .clone()
            .or_else(|| ctx.generated.runtime(&d.name).and_then(|r| r.binary_name));
        if user_declares_rt {
            return Err(Error::RuntimeConflict {
                path: t.path.clone(),
                reason: format!(
                    "it declares runtime `{}`, which RKE2 also renders (it detects {}): containerd fails with `table {} already exists`; remove that table from the template",
                    d.name,
                    rendered_bin.as_deref().unwrap_or("the binary"),
                    d.name
                ),
            });
        }
        if ctx.input.options.binary_path.is_some()
            && rendered_bin.as_deref() != Some(d.binary.path.as_str())
        {
            return Err(Error::RuntimeConflict {
                path: t.path.clone(),
                reason: format!(
                    "RKE2 renders runtime `{}` itself with BinaryName {}; a template cannot redeclare it, so {} needs another runtime name",
                    d.name,
                    rendered_bin.as_deref().unwrap_or("?"),
                    d.binary.path
                ),
            });
        }
        notes.push(format!(
            "RKE2 renders runtime `{}` itself (detected binary {}): not redeclared in the template",
            d.name,
            rendered_bin.as_deref().unwrap_or("?")
        ));
    } else if user_declares_rt {
        edited |= upsert_runtime(&mut app, &rt_path, &d.binary.path, d.systemd, &t.path)?;
        notes.push(format!(
            "the template already declares runtime `{}`: updated in place",
            d.name
        ));
    } else {
        snippet.push_str(&runtime_snippet(v, &d.name, &d.binary.path, d.systemd));
        notes.push(format!(
            "appending [{}.containerd.runtimes.{}] with runtime_type = \"{RUNC_V2}\"",
            cri_header(v),
            quote_key(v, &d.name)
        ));
    }
    if d.set_as_default {
        match &ctx.rke2_default {
            Some((val, file)) if *val == d.name => {
                notes.push(format!(
                    "{file} sets default-runtime: {val}; RKE2 renders default_runtime_name"
                ));
            }
            Some((val, file)) => {
                return Err(Error::RuntimeConflict {
                    path: file.clone(),
                    reason: format!(
                        "it sets default-runtime: {val}, so the base template already renders default_runtime_name = \"{val}\"; change it to `{}` or remove it",
                        d.name
                    ),
                });
            }
            None => {
                let ct = containerd_table_path(v);
                if declares_table(app.as_table(), &ct) {
                    let tl = table_like_at_mut(app.as_table_mut(), &ct).ok_or_else(|| {
                        Error::InvalidContainerdConfig {
                            path: t.path.clone(),
                            reason: format!("`{}` is not a table", ct.join(".")),
                        }
                    })?;
                    edited |= set_value(tl, "default_runtime_name", Value::from(d.name.as_str()));
                } else if v == 2
                    || (declares_table(ctx.generated.root(), &ct)
                        && !header_available(app.as_table(), &ct))
                {
                    return Err(Error::MethodUnsupported {
                        method: Method::Template.to_string(),
                        path: t.path.clone(),
                        reason: format!(
                            "the version {v} base template already declares [{}.containerd] (it renders the snapshotter there), so default_runtime_name cannot be appended; use RKE2's default-runtime (v1.26.12/v1.27.9/v1.28.5+) once RKE2 has detected runtime `{}`",
                            cri_header(v),
                            d.name
                        ),
                    });
                } else {
                    if !snippet.is_empty() {
                        snippet.push('\n');
                    }
                    snippet.push_str(&default_snippet(v, &d.name));
                    notes.push("appending default_runtime_name to the CRI containerd table".into());
                }
            }
        }
    }
    ctx.reasons.extend(notes);
    let mut appended = app.to_string();
    if !snippet.is_empty() {
        if !appended.is_empty() && !appended.ends_with('\n') {
            appended.push('\n');
        }
        if !appended.trim().is_empty() {
            appended.push('\n');
        }
        appended.push_str(&snippet);
    }
    let mut new_text = prefix;
    if !new_text.ends_with('\n') {
        new_text.push('\n');
    }
    if !appended.is_empty() && !appended.starts_with('\n') && t.analysis.is_none() {
        new_text.push('\n');
    }
    new_text.push_str(&appended);
    // The TOML part must still parse and declare nothing twice.
    TemplateAnalysis::analyze(&t.path, &new_text).appended_document()?;
    let static_replace = t
        .analysis
        .as_ref()
        .is_some_and(|a| a.kind == TemplateKind::Static);
    let nothing_added = snippet.is_empty() && !edited;
    let changes =
        if t.existing.as_deref() == Some(new_text.as_str()) || (nothing_added && !static_replace) {
            Vec::new()
        } else {
            vec![FileChange {
                path: t.path.clone(),
                old: t.existing.clone(),
                new: Some(new_text),
                mode: FILE_MODE,
            }]
        };
    Ok(ctx.finish(Some(Method::Template), changes, Restart::Rke2, None))
}

fn max_position(t: &Table) -> isize {
    t.iter()
        .filter_map(|(_, i)| match i {
            Item::Table(sub) => Some(sub.position().unwrap_or(0).max(max_position(sub))),
            Item::ArrayOfTables(a) => a
                .iter()
                .map(|sub| sub.position().unwrap_or(0).max(max_position(sub)))
                .max(),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

fn place_unpositioned_last(t: &mut Table, next: &mut isize) {
    for (_, item) in t.iter_mut() {
        if let Item::Table(sub) = item {
            if sub.position().is_none() {
                sub.set_position(Some(*next));
                *next += 1;
            }
            place_unpositioned_last(sub, next);
        }
    }
}

/// Generic containerd (not RKE2): a drop-in when the config imports a glob
/// and containerd merges drop-ins, else an in-place edit of the config.
fn plan_generic(input: &PlanInput) -> Result<Plan> {
    let o = &input.options;
    let path = o
        .config_path
        .clone()
        .unwrap_or_else(|| GENERIC_CONFIG.into());
    let generated = ContainerdConfig::parse(&path, &input.state.generated_config)?;
    check_schema(&generated, input.caps.containerd)?;
    let binary = resolve_binary(o, &input.state)?;
    if o.set_as_default && !binary.exists {
        return Err(Error::NoRuntimeBinary {
            path: path.clone(),
            runtime: o.runtime_name.clone(),
            looked_for: binary.path.clone(),
        });
    }
    let systemd = generated.runtime("runc").and_then(|r| r.systemd_cgroup);
    let mut reasons = vec![
        "generic containerd (not RKE2): its config file is user-owned".to_owned(),
        binary.reason.clone(),
    ];
    let dir = imported_drop_in_dir(&generated, true);
    let ctx_reasons = std::mem::take(&mut reasons);
    let ctx = Ctx {
        input,
        paths: Rke2Paths::new(&input.data_dir),
        generated,
        in_use: None,
        desired: Desired {
            name: o.runtime_name.clone(),
            binary,
            systemd,
            set_as_default: o.set_as_default,
        },
        rke2_default: None,
        reasons: ctx_reasons,
    };
    let unsupported = |m: Method, why: &str| Error::MethodUnsupported {
        method: m.to_string(),
        path: path.clone(),
        reason: why.to_owned(),
    };
    let merges = input.caps.containerd.merges_drop_ins();
    match (o.method, dir) {
        (Some(m @ (Method::DefaultRuntime | Method::Template)), _) => Err(unsupported(
            m,
            "only for RKE2 (not with --generic-containerd)",
        )),
        (Some(Method::DropIn), None) => Err(unsupported(
            Method::DropIn,
            "the config has no `imports` glob (`<dir>/*.toml`)",
        )),
        (Some(Method::DropIn), Some(_)) if !merges => Err(unsupported(
            Method::DropIn,
            "containerd 1.x replaces imported plugin tables instead of merging them",
        )),
        (None | Some(Method::DropIn), Some(d)) if merges => {
            let mut ctx = ctx;
            ctx.reasons.push(format!(
                "{path} imports {d}/*.toml: writing a drop-in there"
            ));
            plan_drop_in(ctx, d, Restart::Containerd)
        }
        _ => plan_config_file(ctx, path),
    }
}

fn plan_config_file(mut ctx: Ctx, path: String) -> Result<Plan> {
    let eff = effective_config(
        &path,
        &ctx.input.state.generated_config,
        &ctx.input.state.drop_ins,
    )?;
    let d = &ctx.desired;
    let ok_rt = runtime_matches(eff.runtime(&d.name).as_ref(), &d.binary.path, d.systemd);
    let ok_def =
        !d.set_as_default || eff.default_runtime_name().as_deref() == Some(d.name.as_str());
    if ok_rt.is_ok() && ok_def {
        ctx.reasons.push(format!(
            "{path} already has runtime `{}` as intended",
            d.name
        ));
        return Ok(ctx.finish(
            Some(Method::ConfigFile),
            Vec::new(),
            Restart::Containerd,
            None,
        ));
    }
    let v = ctx.generated.version();
    let mut doc = ctx.generated.document().clone();
    if ctx.generated.declared_version().is_none() && doc.as_table().is_empty() {
        doc.insert("version", toml_edit::value(v));
    }
    let rt = ctx.generated.runtime_path(&d.name);
    upsert_runtime(&mut doc, &rt, &d.binary.path, d.systemd, &path)?;
    if d.set_as_default {
        let ct = containerd_table_path(v);
        let bad = || Error::InvalidContainerdConfig {
            path: path.clone(),
            reason: format!("`{}` is not a table", ct.join(".")),
        };
        let t = ensure_table(doc.as_table_mut(), &ct).ok_or_else(bad)?;
        set_value(t, "default_runtime_name", Value::from(d.name.as_str()));
        if let Some(Item::Table(t)) = doc
            .get_mut("plugins")
            .and_then(|p| p.get_mut(cri_runtime_plugin(v)))
            .and_then(|p| p.get_mut("containerd"))
            && t.is_implicit()
        {
            t.set_implicit(false);
            t.set_position(None);
        }
    }
    // New tables go after the existing text, which stays as it was.
    let mut next = max_position(doc.as_table()) + 1;
    place_unpositioned_last(doc.as_table_mut(), &mut next);
    let new = doc.to_string();
    ContainerdConfig::parse(&path, &new)?;
    ctx.reasons.push(format!(
        "editing {path} in place (no mergeable drop-in dir): runtime `{}` with runtime_type = \"{RUNC_V2}\"",
        d.name
    ));
    let change = FileChange {
        path: path.clone(),
        old: Some(ctx.input.state.generated_config.clone()),
        new: Some(new),
        mode: FILE_MODE,
    };
    Ok(ctx.finish(
        Some(Method::ConfigFile),
        vec![change],
        Restart::Containerd,
        None,
    ))
}
