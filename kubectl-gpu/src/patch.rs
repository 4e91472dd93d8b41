//! `kubectl gpu patch-containerd` orchestration over the pure planner
//! ([`crate::containerd`]) and the host seam ([`crate::host`]): read a
//! node's state through any [`Host`] ([`gather`]), fill the planner's
//! [`Capabilities`] from the version matrix ([`capabilities`]), apply a plan
//! with backups and atomic writes ([`apply_changes`]), plan and apply a
//! rollback ([`plan_rollbacks`]), and the detached restart script
//! ([`restart_script`]), and the per-node report. The cluster-side steps
//! (agent pods, restart, waiting for the node, re-reading) are in
//! [`crate::agent_host`].
//!
//! Everything here works on a [`crate::host::LocalRoot`] too, which is how
//! offline mode and the apply/rollback tests use it.

use std::collections::BTreeMap;

use serde::Serialize;
use toml_edit::{Item, Table, Value};

use crate::containerd::plan::{GPU_RKE2_CONFIG_NAME, RKE2_CONFIG, RKE2_CONFIG_D};
use crate::containerd::{
    Capabilities, ContainerdConfig, ContainerdVersion, FileChange, Method, NodeState, Plan,
    PlanInput, Rollback, cri_runtime_plugin, effective_config, imported_drop_in_dir, plan_rollback,
};
use crate::error::{Error, Result};
use crate::host::{BACKUP_INFIX, BackupStamp, Host, parse_backup_path};
use crate::matrix::{self, NodePaths, Rke2Feature};
use crate::version::{Distribution, KubeletVersion};

/// The drop-in file name the planner writes (in the imported dir).
pub const DROP_IN_NAME: &str = crate::containerd::plan::DROP_IN_NAME;
/// Marker in every file this tool writes from scratch (drop-in, RKE2 config).
pub const WRITTEN_BY: &str = "Written by kubectl-gpu";
/// Infix of the empty marker left next to a file this tool created
/// (`<file>.kubectl-gpu-created-<stamp>`), so that `--rollback` removes that
/// file (it has no backup) and never a user's file.
pub const CREATED_INFIX: &str = ".kubectl-gpu-created-";
/// Largest file content written through a node-agent pod (configs are small).
pub const MAX_FILE_BYTES: usize = 64 * 1024;

/// Generic containerd's own config and drop-in (the toolkit's defaults).
pub const GENERIC_CONFIG: &str = crate::containerd::plan::GENERIC_CONFIG;

/// Nvidia runtime binary names RKE2 detects (k3s `runtimes.go`).
pub const RUNTIME_BINARIES: &[&str] = &[
    "nvidia-container-runtime",
    "nvidia-container-runtime-experimental",
    "nvidia-container-runtime.cdi",
];
/// Where RKE2 looks for them, in order (see [`matrix::RUNTIME_SEARCH_PATH`]).
pub const RUNTIME_DIRS: &[&str] = matrix::RUNTIME_SEARCH_PATH;

/// What to patch on one host and how to restart it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// Node name (offline: the config file).
    pub node: String,
    pub distribution: Distribution,
    #[serde(skip)]
    pub paths: NodePaths,
    #[serde(skip)]
    pub caps: Capabilities,
    /// systemd unit to restart: rke2-server/rke2-agent (k3s/k3s-agent), or
    /// `containerd` in generic mode.
    pub unit: String,
    /// Generic containerd (not RKE2): the config file to patch.
    pub generic_config: Option<String>,
    /// Notes on how the capabilities were decided (offline defaults).
    pub notes: Vec<String>,
}

/// The planner's capabilities for an RKE2/K3s version and containerd. With
/// no RKE2 version known, every RKE2 feature is assumed.
pub fn capabilities(
    kubelet: Option<&KubeletVersion>,
    containerd: ContainerdVersion,
) -> Capabilities {
    Capabilities {
        default_runtime_flag: kubelet
            .is_none_or(|k| matrix::has(k, Rke2Feature::DefaultRuntimeFlag)),
        base_templates: kubelet.is_none_or(|k| matrix::has(k, Rke2Feature::BaseTemplate)),
        containerd,
    }
}

impl Target {
    /// The target for an RKE2 or K3s node, or a generic containerd node when
    /// `generic` is set (refused otherwise).
    pub fn for_node(
        facts: &crate::facts::NodeFacts,
        data_dir: Option<&str>,
        generic: bool,
    ) -> Result<Self> {
        let containerd = facts
            .containerd()
            .map(|t| ContainerdVersion::new(t.major as u32, t.minor as u32))
            .ok_or_else(|| Error::NotContainerd {
                node: facts.name.clone(),
                runtime: facts.runtime.raw().to_owned(),
            })?;
        if !facts.is_rke2_like() && !generic {
            return Err(Error::NotRke2Node {
                node: facts.name.clone(),
                distribution: facts.distribution.to_string(),
                kubelet: facts.kubelet_raw.clone(),
            });
        }
        let data_dir = data_dir.or(facts.args.data_dir.as_deref());
        let paths = NodePaths::new(facts.distribution, data_dir);
        let kubelet = facts.kubelet.as_ref().filter(|_| facts.is_rke2_like());
        let mut caps = capabilities(kubelet, containerd);
        let mut notes = Vec::new();
        if facts.is_rke2_like() && kubelet.is_none() {
            notes.push(format!(
                "kubelet version {:?} not understood: assuming current RKE2 features",
                facts.kubelet_raw
            ));
        }
        let (unit, generic_config) = if generic {
            caps.default_runtime_flag = false;
            ("containerd".to_owned(), Some(GENERIC_CONFIG.to_owned()))
        } else {
            (facts.role.unit(facts.distribution).to_owned(), None)
        };
        Ok(Self {
            node: facts.name.clone(),
            distribution: facts.distribution,
            paths,
            caps,
            unit,
            generic_config,
            notes,
        })
    }

    /// The config file the planner reads as "generated".
    pub fn config_path(&self) -> &str {
        self.generic_config
            .as_deref()
            .unwrap_or(&self.paths.generated_config)
    }

    /// The RKE2 (or K3s) config dir, `/etc/rancher/<program>`.
    fn etc_dir(&self) -> &str {
        self.paths
            .config_yaml
            .strip_suffix("/config.yaml")
            .unwrap_or("/etc/rancher/rke2")
    }

    /// Planner paths are RKE2's; map them to K3s's `/etc/rancher/k3s`.
    fn map_path(&self, p: &str) -> String {
        match p.strip_prefix("/etc/rancher/rke2") {
            Some(rest) if self.etc_dir() != "/etc/rancher/rke2" => {
                format!("{}{rest}", self.etc_dir())
            }
            _ => p.to_owned(),
        }
    }

    /// Every file `patch-containerd` may write, for `--rollback`.
    pub fn managed_files(&self) -> Vec<String> {
        if let Some(cfg) = &self.generic_config {
            let dir = cfg
                .rsplit_once('/')
                .map(|(d, _)| d)
                .unwrap_or("/etc/containerd");
            return vec![cfg.clone(), format!("{dir}/conf.d/{DROP_IN_NAME}")];
        }
        vec![
            format!("{}/{DROP_IN_NAME}", self.paths.drop_in_v3),
            format!("{}/{DROP_IN_NAME}", self.paths.drop_in_v2),
            format!("{}/{GPU_RKE2_CONFIG_NAME}", self.paths.config_yaml_d),
            self.paths.template_v3.clone(),
            self.paths.template_v2.clone(),
        ]
    }

    /// The planner input for a state and options.
    pub fn plan_input(
        &self,
        state: NodeState,
        options: crate::containerd::PatchOptions,
    ) -> PlanInput {
        let mut options = options;
        if let Some(c) = &self.generic_config {
            options.generic_containerd = true;
            options.config_path = Some(c.clone());
        }
        PlanInput {
            state,
            caps: self.caps,
            data_dir: self.paths.data_dir.clone(),
            options,
        }
    }

    /// Plan ([`crate::containerd::plan`]), with paths mapped for K3s and the capability
    /// notes added.
    pub fn plan(&self, input: &PlanInput) -> Result<Plan> {
        let mut p = crate::containerd::plan(input)?;
        for c in &mut p.changes {
            c.path = self.map_path(&c.path);
        }
        let mut reasons = self.notes.clone();
        reasons.append(&mut p.reasons);
        p.reasons = reasons;
        Ok(p)
    }
}

fn utf8(path: &str, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|_| Error::InvalidContainerdConfig {
        path: path.to_owned(),
        reason: "not UTF-8 text".into(),
    })
}

async fn read_text<H: Host>(host: &H, path: &str) -> Result<Option<String>> {
    match host.read(path).await? {
        Some(b) => Ok(Some(utf8(path, b)?)),
        None => Ok(None),
    }
}

/// Reads a dir's files whose names pass `keep` (name → text).
async fn read_dir_files<H: Host>(
    host: &H,
    dir: &str,
    keep: impl Fn(&str) -> bool,
) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for name in host.list_dir(dir).await?.unwrap_or_default() {
        if !keep(&name) {
            continue;
        }
        if let Some(t) = read_text(host, &format!("{dir}/{name}")).await? {
            out.insert(name, t);
        }
    }
    Ok(out)
}

/// The paths [`gather`] reads, for hosts that batch reads (the agent pod).
pub fn gather_paths(
    target: &Target,
    binary_path: Option<&str>,
) -> crate::node::probe::ProbeRequest {
    let p = &target.paths;
    let mut exists: Vec<String> = RUNTIME_DIRS
        .iter()
        .flat_map(|d| RUNTIME_BINARIES.iter().map(move |b| format!("{d}/{b}")))
        .collect();
    if let Some(b) = binary_path {
        exists.push(b.to_owned());
    }
    let mut files = vec![
        target.config_path().to_owned(),
        p.template_v3.clone(),
        p.template_v2.clone(),
        p.config_yaml.clone(),
    ];
    files.dedup();
    crate::node::probe::ProbeRequest {
        files,
        dirs: vec![
            p.drop_in_v3.clone(),
            p.drop_in_v2.clone(),
            p.config_yaml_d.clone(),
            format!(
                "{}/conf.d",
                target
                    .config_path()
                    .rsplit_once('/')
                    .map(|(d, _)| d)
                    .unwrap_or("/")
            ),
        ],
        binary: Vec::new(),
        exists,
    }
}

/// Reads what the planner needs from a host: the generated config (its
/// absence is an error), the user templates, the imported drop-ins, the
/// RKE2 config files and which nvidia runtime binaries exist.
pub async fn gather<H: Host>(
    host: &H,
    target: &Target,
    binary_path: Option<&str>,
) -> Result<NodeState> {
    let p = &target.paths;
    let cfg_path = target.config_path();
    let generated =
        read_text(host, cfg_path)
            .await?
            .ok_or_else(|| Error::MissingGeneratedConfig {
                path: cfg_path.to_owned(),
                hint: if target.generic_config.is_some() {
                    "(generic containerd: is containerd installed with its config there?)".into()
                } else {
                    format!("(RKE2 writes it on every start of {})", target.unit)
                },
            })?;
    let mut state = NodeState {
        generated_config: generated,
        ..NodeState::default()
    };
    if target.generic_config.is_none() {
        state.template_v3 = read_text(host, &p.template_v3).await?;
        state.template_v2 = read_text(host, &p.template_v2).await?;
        state.rke2_config = read_text(host, &p.config_yaml).await?;
        state.rke2_config_d = read_dir_files(host, &p.config_yaml_d, |n| {
            n.ends_with(".yaml") || n.ends_with(".yml")
        })
        .await?;
    }
    // An unparseable config is reported by the planner; it has no drop-ins then.
    if let Ok(cfg) = ContainerdConfig::parse(cfg_path, &state.generated_config)
        && let Some(dir) = imported_drop_in_dir(&cfg, target.generic_config.is_some())
    {
        state.drop_ins = read_dir_files(host, &dir, |n| n.ends_with(".toml")).await?;
    }
    let mut candidates: Vec<String> = RUNTIME_DIRS
        .iter()
        .flat_map(|d| RUNTIME_BINARIES.iter().map(move |b| format!("{d}/{b}")))
        .collect();
    if let Some(b) = binary_path {
        candidates.push(b.to_owned());
    }
    for c in candidates {
        if host.exists(&c).await? {
            state.runtime_binaries.insert(c);
        }
    }
    Ok(state)
}

/// What [`apply_changes`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// Files written (created or replaced).
    pub written: Vec<String>,
    /// Files removed.
    pub removed: Vec<String>,
    /// Backups made, one per replaced or removed file.
    pub backups: Vec<String>,
}

fn parent(path: &str) -> &str {
    match path.rsplit_once('/') {
        Some(("", _)) => "/",
        Some((d, _)) => d,
        None => "/",
    }
}

/// `<path>.kubectl-gpu-created-<stamp>`.
pub fn created_marker(path: &str, stamp: &BackupStamp) -> String {
    format!("{path}{CREATED_INFIX}{stamp}")
}

/// Applies file changes: checks that every file still has the content the
/// plan saw and that every target dir is writable (before anything is
/// written), backs up every file it replaces or removes
/// (`<file>.bak-kubectl-gpu-<stamp>`), then writes each file by temp file
/// and atomic rename. A file it creates gets an empty created-marker beside
/// it. If a write fails, the files already written are restored (best
/// effort) and the error is returned.
pub async fn apply_changes<H: Host>(
    host: &H,
    changes: &[FileChange],
    stamp: &BackupStamp,
) -> Result<Applied> {
    for c in changes {
        let now = read_text(host, &c.path).await?;
        if now != c.old {
            return Err(Error::ChangedSinceRead {
                path: c.path.clone(),
            });
        }
        if let Some(n) = &c.new
            && n.len() > MAX_FILE_BYTES
        {
            return Err(Error::InvalidOption {
                option: "file size".into(),
                reason: format!(
                    "{} would be {} bytes, more than the {MAX_FILE_BYTES} this tool writes",
                    c.path,
                    n.len()
                ),
            });
        }
    }
    let mut dirs: Vec<&str> = changes.iter().map(|c| parent(&c.path)).collect();
    dirs.sort();
    dirs.dedup();
    for d in dirs {
        let probe = format!("{d}/.kubectl-gpu-write-test-{stamp}");
        if let Err(e) = host.write_atomic(&probe, b"", 0o600).await {
            return Err(Error::NotWritable {
                dir: d.to_owned(),
                reason: e.to_string(),
            });
        }
        let _ = host.remove(&probe).await;
    }
    let mut applied = Applied::default();
    for c in changes {
        if c.old.is_some() {
            applied.backups.push(host.backup(&c.path, stamp).await?);
        }
    }
    let mut done: Vec<&FileChange> = Vec::new();
    for c in changes {
        let r = match &c.new {
            Some(n) => {
                let r = host.write_atomic(&c.path, n.as_bytes(), c.mode).await;
                if r.is_ok() && c.old.is_none() {
                    host.write_atomic(&created_marker(&c.path, stamp), b"", 0o600)
                        .await
                } else {
                    r
                }
            }
            None => host.remove(&c.path).await.map(|_| ()),
        };
        if let Err(e) = r {
            for d in done.iter().rev() {
                let _ = match &d.old {
                    Some(o) => host.write_atomic(&d.path, o.as_bytes(), d.mode).await,
                    None => host.remove(&d.path).await.map(|_| ()),
                };
                if d.old.is_none() {
                    let _ = host.remove(&created_marker(&d.path, stamp)).await;
                }
            }
            return Err(e);
        }
        done.push(c);
        match c.new {
            Some(_) => applied.written.push(c.path.clone()),
            None => applied.removed.push(c.path.clone()),
        }
    }
    Ok(applied)
}

/// One file's rollback, with the created-marker to remove afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRollback {
    pub path: String,
    pub rollback: Rollback,
    /// Created-markers of this file (removed once the file is removed).
    pub markers: Vec<String>,
}

/// Plans the rollback of every file in `files`: a file with backups is
/// restored from its newest backup unless a newer created-marker says this
/// tool created it (then it is removed); a file with no backup is removed
/// only if this tool created it (created-marker, or the
/// `Written by kubectl-gpu` header); any other file is left alone.
pub async fn plan_rollbacks<H: Host>(host: &H, files: &[String]) -> Result<Vec<FileRollback>> {
    let mut out = Vec::new();
    for path in files {
        let dir = parent(path);
        let file = path.rsplit('/').next().unwrap_or(path);
        let names = host.list_dir(dir).await?.unwrap_or_default();
        let mut backups = BTreeMap::new();
        let mut markers = Vec::new();
        let mut newest_marker: Option<BackupStamp> = None;
        for n in &names {
            if parse_backup_path(path, n).is_some() {
                if let Some(t) = read_text(host, &format!("{dir}/{n}")).await? {
                    backups.insert(n.clone(), t);
                }
            } else if let Some(s) = n
                .strip_prefix(file)
                .and_then(|r| r.strip_prefix(CREATED_INFIX))
                .and_then(BackupStamp::parse)
            {
                markers.push(format!("{dir}/{n}"));
                if newest_marker.as_ref().is_none_or(|m| s > *m) {
                    newest_marker = Some(s);
                }
            }
        }
        let current = read_text(host, path).await?;
        let newest_backup = backups
            .keys()
            .filter_map(|n| parse_backup_path(path, n))
            .max();
        let created_last = match (&newest_marker, &newest_backup) {
            (Some(m), Some(b)) => m > b,
            (Some(_), None) => true,
            _ => false,
        };
        let ours = current
            .as_deref()
            .is_some_and(|t| t.lines().take(3).any(|l| l.contains(WRITTEN_BY)));
        let rollback = if created_last || (backups.is_empty() && ours) {
            plan_rollback(path, current.as_deref(), &BTreeMap::new())
        } else if backups.is_empty() {
            Rollback {
                change: None,
                restored_from: None,
                reason: match current {
                    Some(_) => format!(
                        "{path} has no kubectl-gpu backup and was not created by kubectl-gpu: left alone"
                    ),
                    None => {
                        format!("{path} does not exist and has no backup: nothing to roll back")
                    }
                },
            }
        } else {
            plan_rollback(path, current.as_deref(), &backups)
        };
        out.push(FileRollback {
            path: path.clone(),
            rollback,
            markers: if created_last || backups.is_empty() {
                markers
            } else {
                Vec::new()
            },
        });
    }
    Ok(out)
}

/// Applies planned rollbacks (through [`apply_changes`], so a restored file
/// replaced again gets a backup too), then removes the created-markers of
/// removed files.
pub async fn apply_rollbacks<H: Host>(
    host: &H,
    rollbacks: &[FileRollback],
    stamp: &BackupStamp,
) -> Result<Applied> {
    let changes: Vec<FileChange> = rollbacks
        .iter()
        .filter_map(|r| r.rollback.change.clone())
        .collect();
    // Restoring must not leave a new backup of our own content behind; apply
    // without backups: write/remove directly after the same checks.
    for c in &changes {
        if read_text(host, &c.path).await? != c.old {
            return Err(Error::ChangedSinceRead {
                path: c.path.clone(),
            });
        }
    }
    let mut applied = Applied::default();
    for c in &changes {
        match &c.new {
            Some(n) => {
                host.write_atomic(&c.path, n.as_bytes(), c.mode).await?;
                applied.written.push(c.path.clone());
            }
            None => {
                host.remove(&c.path).await?;
                applied.removed.push(c.path.clone());
            }
        }
    }
    for r in rollbacks {
        let removed = r.rollback.change.as_ref().is_some_and(|c| c.new.is_none());
        let absent = r.rollback.change.is_none() && read_text(host, &r.path).await?.is_none();
        if removed || absent {
            for m in &r.markers {
                host.remove(m).await?;
            }
        }
    }
    let _ = stamp;
    Ok(applied)
}

/// Whether `name` is one of this tool's backups or markers (for listings).
pub fn is_our_side_file(name: &str) -> bool {
    name.contains(BACKUP_INFIX) || name.contains(CREATED_INFIX)
}

/// A shell script, run on the host (see [`host_exec_script`]), that restarts
/// `unit` *detached* from the caller: systemd itself runs the restart 2
/// seconds later as a transient timer (`systemd-run --on-active=2`), so the
/// exec stream that asked for it can return with its exit status before
/// RKE2's `ExecStopPost` kills the kubelet (which cuts every exec stream);
/// where `systemd-run` is missing or fails, `systemctl --no-block restart`
/// queues the job in systemd and returns at once. Either way the restart is
/// systemd's job and no longer depends on the caller's connection. It prints
/// `containerd-pids=<pids>` (before the restart) and what it scheduled.
pub fn restart_script(unit: &str, run_id: &str) -> String {
    let u = sh_quote(unit);
    let name = sh_quote(&format!("kubectl-gpu-restart-{run_id}"));
    format!(
        "echo containerd-pids=$(pidof containerd 2>/dev/null)\n\
         if command -v systemd-run >/dev/null 2>&1 && systemd-run --quiet --collect --unit={name} --on-active=2 systemctl restart {u} >/dev/null 2>&1; then\n\
         \x20 echo scheduled: systemd-run --on-active=2 systemctl restart {u}\n\
         else\n\
         \x20 systemctl --no-block restart {u} || exit $?\n\
         \x20 echo queued: systemctl --no-block restart {u}\n\
         fi\n"
    )
}

/// POSIX single-quoting.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Wraps a command so that it runs *on the host* from a node-agent pod:
/// with `nsenter -t 1 -m -u -i -n -p` when PID 1 is the host's init (host
/// PID namespace: `/proc/1/root` is the same directory as `/host`), else
/// with `chroot /host` (no host PID namespace, or a sandbox whose `/host`
/// is not the machine's root). nsenter is preferred because a chroot stays
/// in the container's namespaces and SELinux domain, where `systemctl` may
/// not work. The first line on stderr names the mode:
/// `kubectl-gpu-host-exec: nsenter|chroot`.
pub fn host_exec_script() -> &'static str {
    "if [ \"$(stat -Lc %d:%i /proc/1/root/ 2>/dev/null)\" = \"$(stat -Lc %d:%i /host/ 2>/dev/null)\" ]; then\n\
     \x20 echo 'kubectl-gpu-host-exec: nsenter' >&2; exec nsenter -t 1 -m -u -i -n -p -- \"$@\"\n\
     else\n\
     \x20 echo 'kubectl-gpu-host-exec: chroot' >&2; exec chroot /host \"$@\"\n\
     fi"
}

/// The generated config as RKE2 should render it after the restart, for
/// offline previews and the real-containerd tests. Approximations:
/// - drop-in: the generated config does not change (containerd merges the
///   drop-in at load time);
/// - default-runtime: RKE2 adds `default_runtime_name` to the CRI
///   containerd table; it is inserted into the current generated config;
/// - template: the new template with `{{ template "base" . }}` replaced by
///   the base render. With no template before, the base render *is* the
///   current generated config; with a base template before whose text the
///   new one extends, the generated config already holds the old appended
///   TOML and only the addition is appended. A static template replaced by
///   a base template, or one edited in place, cannot be previewed exactly:
///   the current generated config (the static copy) stands for the base.
///
/// Returns `None` when the plan changes nothing.
pub fn preview_generated(plan: &Plan, state: &NodeState) -> Result<Option<String>> {
    let Some(method) = plan.method else {
        return Ok(None);
    };
    if plan.changes.is_empty() {
        return Ok(None);
    }
    let generated = &state.generated_config;
    match method {
        Method::DropIn | Method::ConfigFile => Ok(Some(
            plan.changes
                .iter()
                .find(|c| c.path == plan.expectation.config_path)
                .and_then(|c| c.new.clone())
                .unwrap_or_else(|| generated.clone()),
        )),
        Method::DefaultRuntime => {
            let cfg = ContainerdConfig::parse(&plan.expectation.config_path, generated)?;
            let mut doc = cfg.document().clone();
            let cri = cri_runtime_plugin(cfg.version());
            let plugins = doc
                .entry("plugins")
                .or_insert(Item::Table(implicit()))
                .as_table_like_mut();
            let ok = plugins
                .and_then(|p| {
                    p.entry(cri)
                        .or_insert(Item::Table(implicit()))
                        .as_table_like_mut()
                })
                .and_then(|c| {
                    c.entry("containerd")
                        .or_insert(Item::Table(Table::new()))
                        .as_table_like_mut()
                })
                .map(|t| {
                    t.insert(
                        "default_runtime_name",
                        Item::Value(Value::from(plan.expectation.runtime_name.as_str())),
                    );
                })
                .is_some();
            if !ok {
                return Err(Error::InvalidContainerdConfig {
                    path: plan.expectation.config_path.clone(),
                    reason: format!("plugins.{cri}.containerd is not a table"),
                });
            }
            Ok(Some(doc.to_string()))
        }
        Method::Template => {
            let Some(c) = plan.changes.iter().find(|c| c.path.ends_with(".tmpl")) else {
                return Ok(None);
            };
            let new = c.new.clone().unwrap_or_default();
            if let Some(old) = &c.old
                && old.contains("{{")
                && let Some(added) = new.strip_prefix(old.as_str())
            {
                let mut s = generated.clone();
                if !s.ends_with('\n') {
                    s.push('\n');
                }
                s.push_str(added);
                return Ok(Some(s));
            }
            let mut out = String::new();
            for line in new.split_inclusive('\n') {
                let t = line.trim();
                if t.starts_with("{{") && t.contains("template \"base\"") {
                    out.push_str(generated);
                    if !out.ends_with('\n') {
                        out.push('\n');
                    }
                } else {
                    out.push_str(line);
                }
            }
            Ok(Some(out))
        }
    }
}

fn implicit() -> Table {
    let mut t = Table::new();
    t.set_implicit(true);
    t
}

/// A standalone config with the drop-ins merged in and `imports` removed:
/// what containerd effectively loads, loadable without the drop-in dir.
pub fn flatten(path: &str, generated: &str, drop_ins: &BTreeMap<String, String>) -> Result<String> {
    let eff = effective_config(path, generated, drop_ins)?;
    let mut doc = eff.document().clone();
    doc.remove("imports");
    Ok(doc.to_string())
}

/// The drop-ins after a plan (name → text), for confirmation and previews.
pub fn drop_ins_after(plan: &Plan, state: &NodeState) -> BTreeMap<String, String> {
    let mut d = state.drop_ins.clone();
    if let Some(dir) = &plan.expectation.drop_in_dir {
        for c in &plan.changes {
            if let Some(name) = c.path.strip_prefix(&format!("{dir}/")) {
                match &c.new {
                    Some(n) => {
                        d.insert(name.to_owned(), n.clone());
                    }
                    None => {
                        d.remove(name);
                    }
                }
            }
        }
    }
    d
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileReport {
    pub path: String,
    /// `create`, `modify` or `remove`.
    pub action: &'static str,
    /// Unified diff.
    pub diff: String,
}

impl FileReport {
    pub fn of(c: &FileChange) -> Self {
        Self {
            path: c.path.clone(),
            action: match (&c.old, &c.new) {
                (None, _) => "create",
                (Some(_), Some(_)) => "modify",
                (Some(_), None) => "remove",
            },
            diff: c.diff(),
        }
    }
}

/// Outcome of one node (or one offline config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Nothing to change and nothing to restart.
    Unchanged,
    /// Dry run: these changes would be made.
    Planned,
    /// Written (and restarted) and confirmed in the re-read config.
    Confirmed,
    /// Written and restarted, but the re-read config does not show it.
    Unconfirmed,
    /// Rolled back (and restarted).
    RolledBack,
    /// Offline: files written to --out-dir.
    Written,
    /// Refused (bad input, unsupported method) or failed; nothing changed
    /// unless `files` says otherwise.
    Failed,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Unchanged => "unchanged",
            Outcome::Planned => "planned",
            Outcome::Confirmed => "confirmed",
            Outcome::Unconfirmed => "unconfirmed",
            Outcome::RolledBack => "rolled-back",
            Outcome::Written => "written",
            Outcome::Failed => "failed",
        }
    }
    /// Whether this outcome makes the command exit 1.
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Unconfirmed | Outcome::Failed)
    }
}

/// The restart that was asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RestartReport {
    pub unit: String,
    /// How it ran on the host (`nsenter`, `chroot`), if known.
    pub mode: Option<String>,
    /// What the restart script said (`scheduled: ...` / `queued: ...`).
    pub detail: String,
    /// Containerd PIDs before and after, when they could be seen.
    pub containerd_before: Option<String>,
    pub containerd_after: Option<String>,
    /// The node was seen Ready after the restart.
    pub node_ready: Option<bool>,
}

/// Per-node report (table and -o json|yaml).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeReport {
    pub node: String,
    pub outcome: Outcome,
    pub method: Option<String>,
    /// Why this method, one reason a line.
    pub reasons: Vec<String>,
    pub files: Vec<FileReport>,
    pub backups: Vec<String>,
    /// `rke2-agent`, ... when a restart is (or was) needed.
    pub restart_unit: Option<String>,
    pub restart: Option<RestartReport>,
    pub confirmed: Option<bool>,
    pub evidence: Vec<String>,
    pub problems: Vec<String>,
    pub error: Option<String>,
}

impl NodeReport {
    pub fn new(node: &str) -> Self {
        Self {
            node: node.to_owned(),
            outcome: Outcome::Unchanged,
            method: None,
            reasons: Vec::new(),
            files: Vec::new(),
            backups: Vec::new(),
            restart_unit: None,
            restart: None,
            confirmed: None,
            evidence: Vec::new(),
            problems: Vec::new(),
            error: None,
        }
    }

    /// A failed node with the error's message.
    pub fn failed(node: &str, err: &Error) -> Self {
        let mut r = Self::new(node);
        r.outcome = Outcome::Failed;
        r.error = Some(err.to_string());
        r
    }

    /// Fill method, reasons, files and restart from a plan.
    pub fn with_plan(mut self, plan: &Plan, unit: &str) -> Self {
        self.method = plan.method.map(|m| m.to_string());
        self.reasons = plan.reasons.clone();
        self.files = plan.changes.iter().map(FileReport::of).collect();
        self.restart_unit = plan.restart.map(|_| unit.to_owned());
        self.outcome = if plan.changes.is_empty() && plan.restart.is_none() {
            Outcome::Unchanged
        } else {
            Outcome::Planned
        };
        self
    }

    /// The whole diff of this node.
    pub fn diff(&self) -> String {
        self.files.iter().map(|f| f.diff.as_str()).collect()
    }
}

/// The planner's RKE2 config paths (for documentation and messages).
pub const RKE2_CONFIG_FILES: (&str, &str) = (RKE2_CONFIG, RKE2_CONFIG_D);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_script_is_detached_and_quoted() {
        let s = restart_script("rke2-agent", "abc");
        assert!(s.contains("systemd-run --quiet --collect --unit='kubectl-gpu-restart-abc' --on-active=2 systemctl restart 'rke2-agent'"));
        assert!(s.contains("systemctl --no-block restart 'rke2-agent'"));
        assert_eq!(sh_quote("a'b"), "'a'\\''b'");
    }

    #[test]
    fn capabilities_follow_the_matrix() {
        let old = KubeletVersion::parse("v1.26.7+rke2r1");
        let c = capabilities(old.as_ref(), ContainerdVersion::new(1, 7));
        assert!(!c.default_runtime_flag && !c.base_templates);
        let new = KubeletVersion::parse("v1.33.10+rke2r1");
        let c = capabilities(new.as_ref(), ContainerdVersion::new(2, 2));
        assert!(c.default_runtime_flag && c.base_templates);
        assert!(capabilities(None, ContainerdVersion::new(2, 0)).base_templates);
    }
}
