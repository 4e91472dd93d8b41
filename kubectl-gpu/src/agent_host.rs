//! [`Host`] over a node-agent pod, and the cluster side of
//! `patch-containerd`: per node, start the agent pod, read the node, plan,
//! apply with backups, restart RKE2 detached, wait for the node, re-read the
//! generated config (through a new pod if the old exec channel is gone) and
//! confirm.
//!
//! Host paths map to `/host<path>` in the pod. Reads are byte-exact
//! (`base64` of the file, decoded here) and can be batched with
//! [`AgentHost::prefetch`] (one exec for everything [`crate::patch::gather`]
//! reads); writes embed the content, base64-encoded, in the exec command
//! line (configs are small; [`crate::patch::MAX_FILE_BYTES`]) and go
//! through a temp file in the same dir, `sync` and `mv`. Commands run on
//! the host via [`crate::patch::host_exec_script`].

use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams};
use kube::runtime::wait::{await_condition, conditions};

use crate::client::Kube;
use crate::containerd::{PatchOptions, Plan};
use crate::error::{Error, Result};
use crate::facts::NodeFacts;
use crate::host::{BackupStamp, CommandOutput, Host, backup_path};
use crate::node::agent::Agents;
use crate::node::probe::{ProbeRequest, ProbeResult};
use crate::patch::{
    self, NodeReport, Outcome, RestartReport, Target, host_exec_script, restart_script, sh_quote,
};

/// A node's host through its node-agent pod.
pub struct AgentHost<'a> {
    agents: &'a Agents,
    node: String,
    pod: String,
    cache: Mutex<Option<ProbeResult>>,
}

fn check_path(path: &str) -> Result<String> {
    let bad = |reason: &str| Error::HostPath {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    if !path.starts_with('/') {
        return Err(bad("host paths must be absolute"));
    }
    if path.split('/').any(|c| c == "..") {
        return Err(bad("`..` is not allowed"));
    }
    if path.chars().any(|c| c.is_control()) {
        return Err(bad("control characters are not allowed"));
    }
    Ok(sh_quote(&format!("/host{path}")))
}

impl<'a> AgentHost<'a> {
    pub fn new(agents: &'a Agents, node: &str, pod: &str) -> Self {
        Self {
            agents,
            node: node.to_owned(),
            pod: pod.to_owned(),
            cache: Mutex::new(None),
        }
    }

    pub fn pod(&self) -> &str {
        &self.pod
    }

    fn err(&self, what: &str, reason: impl Into<String>) -> Error {
        Error::AgentExec {
            node: self.node.clone(),
            pod: self.pod.clone(),
            what: what.to_owned(),
            reason: reason.into(),
        }
    }

    async fn sh(&self, what: &str, script: &str) -> Result<(i32, String, String)> {
        self.agents
            .exec(&self.pod, &["sh", "-c", script])
            .await
            .map_err(|e| self.err(what, e.to_string()))
    }

    fn invalidate(&self) {
        if let Ok(mut c) = self.cache.lock() {
            *c = None;
        }
    }

    fn cached<T>(&self, f: impl FnOnce(&ProbeResult) -> Option<T>) -> Option<T> {
        self.cache.lock().ok()?.as_ref().and_then(f)
    }

    /// Reads everything in `req` in one exec (and the files in its dirs in
    /// a second), so that later reads of those paths are served from memory
    /// until the next write.
    pub async fn prefetch(&self, req: &ProbeRequest) -> Result<()> {
        let mut first = self.agents.probe(&self.pod, req).await?;
        let mut second = ProbeRequest::default();
        for d in &req.dirs {
            for name in first.dir(d).unwrap_or_default() {
                if !patch::is_our_side_file(name) {
                    second.files.push(format!("{d}/{name}"));
                }
            }
        }
        if !second.files.is_empty() {
            first.merge(self.agents.probe(&self.pod, &second).await?);
        }
        if let Ok(mut c) = self.cache.lock() {
            *c = Some(first);
        }
        Ok(())
    }
}

impl Host for AgentHost<'_> {
    async fn read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        if let Some(hit) = self.cached(|c| c.files.get(path).cloned()) {
            return Ok(hit.map(String::into_bytes));
        }
        let p = check_path(path)?;
        let script = format!(
            "if [ -f {p} ]; then base64 {p}; elif [ -e {p} ]; then echo 'not a regular file' >&2; exit 4; else exit 3; fi"
        );
        let (code, out, err) = self.sh(&format!("read {path}"), &script).await?;
        match code {
            0 => {
                let compact: String = out.split_whitespace().collect();
                base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .map(Some)
                    .map_err(|e| self.err(&format!("read {path}"), format!("bad base64: {e}")))
            }
            3 => Ok(None),
            _ => Err(self.err(&format!("read {path}"), err.trim())),
        }
    }

    async fn list_dir(&self, path: &str) -> Result<Option<Vec<String>>> {
        if let Some(hit) = self.cached(|c| c.dirs.get(path).cloned()) {
            return Ok(hit);
        }
        let p = check_path(path)?;
        let script = format!("if [ -d {p} ]; then ls -1a {p}; else exit 3; fi");
        let (code, out, err) = self.sh(&format!("list {path}"), &script).await?;
        match code {
            0 => {
                let mut names: Vec<String> = out
                    .lines()
                    .filter(|l| !l.is_empty() && *l != "." && *l != "..")
                    .map(str::to_owned)
                    .collect();
                names.sort();
                Ok(Some(names))
            }
            3 => Ok(None),
            _ => Err(self.err(&format!("list {path}"), err.trim())),
        }
    }

    async fn exists(&self, path: &str) -> Result<bool> {
        if let Some(hit) = self.cached(|c| {
            c.exists
                .get(path)
                .copied()
                .or_else(|| c.files.get(path).map(|f| f.is_some()))
                .filter(|e| *e)
                .or_else(|| c.exists.get(path).copied())
        }) {
            return Ok(hit);
        }
        let p = check_path(path)?;
        let (code, _, err) = self
            .sh(
                &format!("stat {path}"),
                &format!("if [ -e {p} ] || [ -L {p} ]; then exit 0; else exit 3; fi"),
            )
            .await?;
        match code {
            0 => Ok(true),
            3 => Ok(false),
            _ => Err(self.err(&format!("stat {path}"), err.trim())),
        }
    }

    async fn write_atomic(&self, path: &str, content: &[u8], mode: u32) -> Result<()> {
        self.invalidate();
        if content.len() > patch::MAX_FILE_BYTES {
            return Err(self.err(
                &format!("write {path}"),
                format!(
                    "{} bytes is more than the {} this tool writes through exec",
                    content.len(),
                    patch::MAX_FILE_BYTES
                ),
            ));
        }
        let p = check_path(path)?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(content);
        let script = format!(
            "set -e\nP={p}\nD=$(dirname \"$P\")\nT=\"$D/.$(basename \"$P\").kubectl-gpu-tmp-$$\"\ntrap 'rm -f \"$T\"' EXIT\nmkdir -p \"$D\"\nprintf '%s' '{b64}' | base64 -d > \"$T\"\nchmod {mode:o} \"$T\"\nsync\nmv -f \"$T\" \"$P\"\nsync\n"
        );
        let (code, _, err) = self.sh(&format!("write {path}"), &script).await?;
        if code == 0 {
            Ok(())
        } else {
            Err(Error::HostIo {
                op: "write",
                path: path.to_owned(),
                source: std::io::Error::other(format!(
                    "{} (exit {code}, in node-agent pod {} on {})",
                    err.trim(),
                    self.pod,
                    self.node
                )),
            })
        }
    }

    async fn backup(&self, path: &str, stamp: &BackupStamp) -> Result<String> {
        self.invalidate();
        let dest = backup_path(path, stamp);
        let p = check_path(path)?;
        let b = check_path(&dest)?;
        let script = format!(
            "P={p}; B={b}\n[ -f \"$P\" ] || {{ echo \"no such file\" >&2; exit 3; }}\nif [ -e \"$B\" ]; then cmp -s \"$P\" \"$B\" && exit 0; echo \"$B exists with other content\" >&2; exit 4; fi\nT=\"$B.kubectl-gpu-tmp-$$\"\ncp -p \"$P\" \"$T\" && sync && mv -f \"$T\" \"$B\" && sync\n"
        );
        let (code, _, err) = self.sh(&format!("back up {path}"), &script).await?;
        if code == 0 {
            Ok(dest)
        } else {
            Err(Error::HostIo {
                op: "back up",
                path: path.to_owned(),
                source: std::io::Error::other(format!("{} (exit {code})", err.trim())),
            })
        }
    }

    async fn remove(&self, path: &str) -> Result<bool> {
        self.invalidate();
        let p = check_path(path)?;
        let script =
            format!("if [ -e {p} ] || [ -L {p} ]; then rm -f {p} && sync && echo removed; fi");
        let (code, out, err) = self.sh(&format!("remove {path}"), &script).await?;
        if code == 0 {
            Ok(out.contains("removed"))
        } else {
            Err(Error::HostIo {
                op: "remove",
                path: path.to_owned(),
                source: std::io::Error::other(format!("{} (exit {code})", err.trim())),
            })
        }
    }

    async fn run(&self, argv: &[String]) -> Result<CommandOutput> {
        let mut full: Vec<&str> = vec!["sh", "-c", host_exec_script(), "sh"];
        full.extend(argv.iter().map(String::as_str));
        let (code, out, err) =
            self.agents
                .exec(&self.pod, &full)
                .await
                .map_err(|e| Error::HostCommand {
                    command: argv.join(" "),
                    reason: e.to_string(),
                })?;
        Ok(CommandOutput {
            exit: code,
            stdout: out.into_bytes(),
            stderr: err.into_bytes(),
        })
    }
}

// ---------------------------------------------------------------------------
// The cluster side of patch-containerd
// ---------------------------------------------------------------------------

/// What to do on each node.
#[derive(Debug, Clone)]
pub struct Request {
    pub options: PatchOptions,
    /// Write (needs a privileged agent pod).
    pub apply: bool,
    /// Restore the newest backups instead of patching.
    pub rollback: bool,
    /// RKE2 data dir override (default: the node's `rke2.io/node-args`, else the default).
    pub data_dir: Option<String>,
    /// Timeout for each wait (agent pod, node Ready, confirmation).
    pub timeout: Duration,
    /// Only apply when the plan's diff is still this one (the diff shown
    /// before an interactive yes).
    pub expect_diff: Option<String>,
    /// Namespace of the agent pods (as in their `AgentOptions`).
    pub namespace: String,
}

/// The pods of one node: the first agent pod, and a replacement if its
/// exec channel stops answering after the restart.
struct NodeSession<'a> {
    kube: &'a Kube,
    agents: &'a Agents,
    namespace: String,
    node: String,
    pod: String,
}

impl NodeSession<'_> {
    fn host(&self) -> AgentHost<'_> {
        AgentHost::new(self.agents, &self.node, &self.pod)
    }

    /// Replaces the agent pod (delete, wait gone, create again).
    async fn renew(&mut self, timeout: Duration) -> Result<()> {
        let api: Api<Pod> = Api::namespaced(self.kube.client.clone(), &self.namespace);
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        };
        let uid = api
            .get_opt(&self.pod)
            .await
            .ok()
            .flatten()
            .and_then(|p| p.metadata.uid);
        let _ = api.delete(&self.pod, &dp).await;
        if let Some(uid) = uid {
            let _ = tokio::time::timeout(
                timeout,
                await_condition(api, &self.pod, conditions::is_deleted(&uid)),
            )
            .await;
        }
        self.pod = self.agents.start(&self.node).await?;
        Ok(())
    }
}

/// Waits for the node's Ready condition to be True (watch; it may never
/// have left Ready, which is fine).
pub async fn wait_node_ready(kube: &Kube, node: &str, timeout: Duration) -> bool {
    let api: Api<Node> = Api::all(kube.client.clone());
    let ready = |n: Option<&Node>| {
        n.and_then(|n| n.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    matches!(
        tokio::time::timeout(timeout, await_condition(api, node, ready)).await,
        Ok(Ok(_))
    )
}

fn parse_restart(out: &CommandOutput, unit: &str) -> RestartReport {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mode = stderr
        .lines()
        .find_map(|l| l.strip_prefix("kubectl-gpu-host-exec: "))
        .map(|m| m.trim().to_owned());
    let pids = stdout
        .lines()
        .find_map(|l| l.strip_prefix("containerd-pids="))
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty());
    let detail = stdout
        .lines()
        .filter(|l| l.starts_with("scheduled:") || l.starts_with("queued:"))
        .collect::<Vec<_>>()
        .join("; ");
    RestartReport {
        unit: unit.to_owned(),
        mode,
        detail: if detail.is_empty() {
            format!(
                "exit {}: {}",
                out.exit,
                stderr
                    .lines()
                    .filter(|l| !l.starts_with("kubectl-gpu-host-exec"))
                    .collect::<Vec<_>>()
                    .join(" ")
                    .trim()
            )
        } else {
            detail
        },
        containerd_before: pids,
        ..RestartReport::default()
    }
}

/// Restarts the unit detached, then waits: for a new containerd (when its
/// PIDs could be seen, i.e. with the host PID namespace), and for the node
/// to be Ready.
async fn restart_and_wait(
    s: &mut NodeSession<'_>,
    unit: &str,
    timeout: Duration,
) -> Result<RestartReport> {
    let script = restart_script(unit, s.agents.run_id());
    let argv = vec!["sh".to_owned(), "-c".to_owned(), script];
    let mut report = match s.host().run(&argv).await {
        Ok(out) if out.exit == 0 => parse_restart(&out, unit),
        Ok(out) => {
            let r = parse_restart(&out, unit);
            return Err(Error::Node {
                node: s.node.clone(),
                message: format!("restarting {unit} failed: {}", r.detail),
            });
        }
        // The stream may drop if the restart was quicker than its reply.
        Err(e) => RestartReport {
            unit: unit.to_owned(),
            detail: format!("restart requested; the exec stream dropped: {e}"),
            ..RestartReport::default()
        },
    };
    let deadline = Instant::now() + timeout;
    if let Some(before) = report.containerd_before.clone()
        && report.mode.as_deref() == Some("nsenter")
    {
        // systemd runs the restart 2 s after it was scheduled.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let argv = vec!["pidof".to_owned(), "containerd".to_owned()];
        let mut renewed = false;
        while Instant::now() < deadline {
            match s.host().run(&argv).await {
                Ok(out) => {
                    let now = String::from_utf8_lossy(&out.stdout).trim().to_owned();
                    if !now.is_empty() && now != before {
                        report.containerd_after = Some(now);
                        break;
                    }
                }
                Err(_)
                    if !renewed
                        && wait_node_ready(s.kube, &s.node, Duration::from_secs(5)).await =>
                {
                    // Exec fails while the node is Ready: the old pod's channel is gone.
                    renewed = s.renew(timeout).await.is_ok();
                }
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    let left = deadline.saturating_duration_since(Instant::now());
    report.node_ready =
        Some(wait_node_ready(s.kube, &s.node, left.max(Duration::from_secs(1))).await);
    Ok(report)
}

/// Re-reads the generated config and drop-ins and confirms the plan's
/// expectation, retrying until it holds or `timeout` passes (RKE2 writes the
/// config shortly after it starts). A new agent pod is started once if the
/// old one no longer answers.
async fn confirm(
    s: &mut NodeSession<'_>,
    plan: &Plan,
    timeout: Duration,
) -> Result<crate::containerd::Confirmation> {
    let deadline = Instant::now() + timeout;
    let mut renewed = false;
    let e = &plan.expectation;
    loop {
        let host = s.host();
        let read = async {
            let generated = host.read(&e.config_path).await?;
            let mut drop_ins = std::collections::BTreeMap::new();
            if let Some(dir) = &e.drop_in_dir {
                for name in host.list_dir(dir).await?.unwrap_or_default() {
                    if name.ends_with(".toml")
                        && let Some(b) = host.read(&format!("{dir}/{name}")).await?
                    {
                        drop_ins.insert(name, String::from_utf8_lossy(&b).into_owned());
                    }
                }
            }
            Ok::<_, Error>((generated, drop_ins))
        }
        .await;
        match read {
            Ok((Some(g), d)) => {
                let text = String::from_utf8_lossy(&g).into_owned();
                let c = e.confirm(&text, &d);
                match c {
                    Ok(c) if c.confirmed || Instant::now() >= deadline => return Ok(c),
                    Err(err) if Instant::now() >= deadline => return Err(err),
                    _ => {}
                }
            }
            Ok((None, _)) if Instant::now() >= deadline => {
                return Err(Error::MissingGeneratedConfig {
                    path: e.config_path.clone(),
                    hint: "(it was not rewritten after the restart: check the service's journal)"
                        .into(),
                });
            }
            Ok((None, _)) => {}
            Err(err) if renewed && Instant::now() >= deadline => return Err(err),
            Err(_) if !renewed => {
                renewed = true;
                s.renew(timeout).await?;
                continue;
            }
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Plans (and with `apply`, applies, restarts and confirms) one node.
/// Never fails: errors end up in the report.
pub async fn process_node(
    kube: &Kube,
    agents: &Agents,
    facts: &NodeFacts,
    req: &Request,
) -> NodeReport {
    let target = match Target::for_node(
        facts,
        req.data_dir.as_deref(),
        req.options.generic_containerd,
    ) {
        Ok(t) => t,
        Err(e) => return NodeReport::failed(&facts.name, &e),
    };
    let pod = match agents.start(&facts.name).await {
        Ok(p) => p,
        Err(e) => return NodeReport::failed(&facts.name, &e),
    };
    let mut s = NodeSession {
        kube,
        agents,
        namespace: req.namespace.clone(),
        node: facts.name.clone(),
        pod,
    };
    match process(&mut s, &target, req).await {
        Ok(r) => r,
        Err((mut r, e)) => {
            r.outcome = Outcome::Failed;
            r.error = Some(e.to_string());
            r
        }
    }
}

type Failure = (NodeReport, Error);

async fn process(
    s: &mut NodeSession<'_>,
    target: &Target,
    req: &Request,
) -> std::result::Result<NodeReport, Failure> {
    let node = target.node.clone();
    let bare = || NodeReport::new(&node);
    let host = s.host();
    host.prefetch(&patch::gather_paths(
        target,
        req.options.binary_path.as_deref(),
    ))
    .await
    .map_err(|e| (bare(), e))?;
    if req.rollback {
        return rollback(s, target, req).await;
    }
    let state = patch::gather(&host, target, req.options.binary_path.as_deref())
        .await
        .map_err(|e| (bare(), e))?;
    let input = target.plan_input(state, req.options.clone());
    let plan = target.plan(&input).map_err(|e| (bare(), e))?;
    let mut report = bare().with_plan(&plan, &target.unit);
    if !req.apply || (plan.changes.is_empty() && plan.restart.is_none()) {
        return Ok(report);
    }
    if let Some(expected) = &req.expect_diff
        && *expected != plan.diff()
    {
        let e = Error::Node {
            node: node.clone(),
            message: "the node's files changed since the diff was shown; nothing was written. Run the command again".into(),
        };
        return Err((report, e));
    }
    let stamp = BackupStamp::now();
    let applied = patch::apply_changes(&host, &plan.changes, &stamp)
        .await
        .map_err(|e| (report.clone(), e))?;
    report.backups = applied.backups;
    drop(host);
    if plan.restart.is_some() {
        let r = restart_and_wait(s, &target.unit, req.timeout)
            .await
            .map_err(|e| (report.clone(), e))?;
        report.restart = Some(r);
    }
    let c = confirm(s, &plan, req.timeout)
        .await
        .map_err(|e| (report.clone(), e))?;
    report.confirmed = Some(c.confirmed);
    report.evidence = c.evidence;
    report.problems = c.problems;
    report.outcome = if c.confirmed {
        Outcome::Confirmed
    } else {
        Outcome::Unconfirmed
    };
    Ok(report)
}

async fn rollback(
    s: &mut NodeSession<'_>,
    target: &Target,
    req: &Request,
) -> std::result::Result<NodeReport, Failure> {
    let mut report = NodeReport::new(&target.node);
    report.method = Some("rollback".into());
    let host = s.host();
    let plans = patch::plan_rollbacks(&host, &target.managed_files())
        .await
        .map_err(|e| (report.clone(), e))?;
    for p in &plans {
        report.reasons.push(p.rollback.reason.clone());
        if let Some(c) = &p.rollback.change {
            report.files.push(patch::FileReport::of(c));
        }
        if let Some(b) = &p.rollback.restored_from
            && p.rollback.change.is_some()
        {
            report.backups.push(b.clone());
        }
    }
    if report.files.is_empty() {
        report.outcome = Outcome::Unchanged;
        return Ok(report);
    }
    report.restart_unit = Some(target.unit.clone());
    report.outcome = Outcome::Planned;
    if !req.apply {
        return Ok(report);
    }
    if let Some(expected) = &req.expect_diff
        && *expected != report.diff()
    {
        let e = Error::Node {
            node: target.node.clone(),
            message: "the node's files changed since the diff was shown; nothing was restored. Run the command again".into(),
        };
        return Err((report, e));
    }
    patch::apply_rollbacks(&host, &plans, &BackupStamp::now())
        .await
        .map_err(|e| (report.clone(), e))?;
    drop(host);
    let r = restart_and_wait(s, &target.unit, req.timeout)
        .await
        .map_err(|e| (report.clone(), e))?;
    report.restart = Some(r);
    // The re-rendered config must still parse.
    let generated = s.host().read(target.config_path()).await;
    match generated {
        Ok(Some(g)) => {
            let text = String::from_utf8_lossy(&g).into_owned();
            match crate::containerd::ContainerdConfig::parse(target.config_path(), &text) {
                Ok(c) => report.evidence.push(format!(
                    "{} parses (version {}, runtimes: {})",
                    target.config_path(),
                    c.version(),
                    c.runtimes()
                        .iter()
                        .map(|r| r.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                Err(e) => report.problems.push(e.to_string()),
            }
        }
        Ok(None) => report.problems.push(format!(
            "{} is missing after the restart",
            target.config_path()
        )),
        Err(e) => report.problems.push(format!("re-reading the config: {e}")),
    }
    report.outcome = if report.problems.is_empty() {
        Outcome::RolledBack
    } else {
        Outcome::Unconfirmed
    };
    Ok(report)
}
