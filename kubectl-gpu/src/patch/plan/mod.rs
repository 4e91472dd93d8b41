//! The patch planner: from what was read on a node ([`NodeState`]), what the
//! node's versions can do ([`Capabilities`]) and the user's [`PatchOptions`],
//! decide how to add the nvidia runtime and produce a [`Plan`] of file
//! changes with the reasons for the choice. The rules (never edit the
//! generated `config.toml`; prefer (a) a drop-in in the imported
//! `config-v3.toml.d` dir (k3s PR #13680), then (b) RKE2's `default-runtime`
//! (rancher/rke2 commit 542e848b6), then (c) a `{{ template "base" . }}`
//! template (k3s PR #7991) that never redeclares tables the base renders)
//! are chosen here ([`plan`]); each method is planned in its own module. A
//! template that already redeclares what its base renders (so containerd
//! does not start) is repaired first, in the same plan (`template_fix`).

mod binary;
mod default_runtime;
mod drop_in;
mod edit;
mod generic;
mod stage;
mod template;
mod template_fix;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use similar::TextDiff;
use toml_edit::{DocumentMut, Item, Table, TableLike, Value};

use crate::containerd::effective_config;
use crate::containerd::model::{
    ContainerdConfig, RUNC_V2, RuntimeEntry, containerd_table_path, cri_runtime_plugin,
    declares_table, header_available, item_at,
};
use crate::containerd::template::{TemplateAnalysis, TemplateKind};
use crate::error::{Error, Result};
use crate::matrix::{self, Rke2Feature};
use crate::patch::confirm::Expectation;
use crate::version::Triple;

pub use binary::standard_runtime_binary;
use binary::*;
use default_runtime::*;
use drop_in::*;
use edit::*;
use generic::*;
use template::*;
use template_fix::*;

/// RKE2's default data dir.
pub const DEFAULT_DATA_DIR: &str = matrix::RKE2_DATA_DIR;
/// RKE2's main config file.
pub const RKE2_CONFIG: &str = "/etc/rancher/rke2/config.yaml";
/// RKE2's config drop-in dir.
pub const RKE2_CONFIG_D: &str = "/etc/rancher/rke2/config.yaml.d";
/// The RKE2 config drop-in this tool writes (`default-runtime`).
pub const GPU_RKE2_CONFIG_NAME: &str = "99-gpu.yaml";
/// The containerd drop-in this tool writes.
pub const DROP_IN_NAME: &str = "99-nvidia.toml";
/// The drop-in a template repair moves a template's overlapping keys into
/// (before [`DROP_IN_NAME`], so the runtime written there wins).
pub const TEMPLATE_DROP_IN_NAME: &str = "50-template-tables.toml";
/// Where the GPU Operator's toolkit installs the runtime binaries.
pub const TOOLKIT_DIR: &str = matrix::TOOLKIT_DIR;
/// A plain containerd's config (generic mode).
pub const GENERIC_CONFIG: &str = "/etc/containerd/config.toml";
/// Mode of every file the planner writes.
pub const FILE_MODE: u32 = 0o600;

/// How a plan's reasons say that the runtime needs no file written.
const NOTHING_TO_DO: &str = "the generated config already shows the runtime as intended";
const NOTHING_TO_WRITE: &str = "nothing to write";

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
    /// RKE2's `default-runtime` flag ([`matrix::Rke2Feature::DefaultRuntimeFlag`]).
    pub default_runtime_flag: bool,
    /// `{{ template "base" . }}` ([`matrix::Rke2Feature::BaseTemplate`]).
    pub base_templates: bool,
    /// The node's containerd.
    pub containerd: Triple,
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
    /// `--for-rke2`: stage what this release will need instead of adding
    /// the runtime ([`stage`]).
    pub for_release: Option<crate::version::KubeletVersion>,
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
            for_release: None,
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
    /// The generated `config.toml` RKE2 renders after these changes, where
    /// the planner rendered it itself (a repaired template); previews use it.
    pub rendered: Option<String>,
    /// `--for-rke2`: the release these files are staged for; they take
    /// effect at its first start, so nothing is restarted or confirmed now.
    pub staged_for: Option<String>,
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

/// containerd `major.minor` as messages name it (`2.2`).
pub fn containerd_line(c: Triple) -> String {
    format!("{}.{}", c.major, c.minor)
}

fn check_schema(cfg: &ContainerdConfig, c: Triple) -> Result<()> {
    if matrix::containerd_loads_schema(c, cfg.version()) {
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
        containerd: containerd_line(c),
        hint,
    })
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

struct TemplateChoice {
    path: String,
    version: i64,
    existing: Option<String>,
    analysis: Option<TemplateAnalysis>,
}

struct Ctx<'a> {
    input: &'a PlanInput,
    paths: Rke2Paths,
    generated: ContainerdConfig,
    in_use: Option<TemplateChoice>,
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
            kept: Vec::new(),
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
            self.reasons.push(format!("{NOTHING_TO_DO}: nothing to do"));
            None
        } else {
            self.reasons.push(format!(
                "{NOTHING_TO_WRITE}, but {} does not show it yet: restart to apply",
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
            rendered: None,
            staged_for: None,
        }
    }
}

/// Plan the change for the node.
pub fn plan(input: &PlanInput) -> Result<Plan> {
    let o = &input.options;
    validate_runtime_name(&o.runtime_name)?;
    if o.generic_containerd {
        return plan_generic(input);
    }
    if let Some(to) = &o.for_release {
        return stage::plan_for_release(input, to);
    }
    let paths = Rke2Paths::new(&input.data_dir);
    if let Some(r) = repair(input, &paths)? {
        return plan_repaired(input, r);
    }
    plan_runtime(input)
}

/// Plan the runtime for a node whose template (if any) renders a config
/// containerd can load.
fn plan_runtime(input: &PlanInput) -> Result<Plan> {
    let o = &input.options;
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
