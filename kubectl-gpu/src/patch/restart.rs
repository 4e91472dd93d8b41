//! Restarting RKE2 (or containerd) on a node and waiting for the result:
//! the detached restart script, running commands on the host from a
//! node-agent pod, waiting for a new containerd and the node's Ready
//! condition, and re-reading the generated config until the plan's
//! [`crate::patch::confirm::Expectation`] holds.

use crate::shell::quote;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams};
use kube::runtime::wait::{await_condition, conditions};

use crate::client::Kube;
use crate::error::{Error, Result};
use crate::node::agent::Agents;
use crate::node::exec::AgentHost;
use crate::node::{CommandOutput, Host};
use crate::patch::confirm::Confirmation;
use crate::patch::plan::Plan;
use crate::patch::report::RestartReport;

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
    let u = quote(unit);
    let name = quote(&format!("kubectl-gpu-restart-{run_id}"));
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

/// The pods of one node: the first agent pod, and a replacement if its
/// exec channel stops answering after the restart.
pub(crate) struct NodeSession<'a> {
    pub(crate) kube: &'a Kube,
    pub(crate) agents: &'a Agents,
    pub(crate) namespace: String,
    pub(crate) node: String,
    pub(crate) pod: String,
}

impl NodeSession<'_> {
    pub(crate) fn host(&self) -> AgentHost<'_> {
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
pub(crate) async fn restart_and_wait(
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
pub(crate) async fn confirm(
    s: &mut NodeSession<'_>,
    plan: &Plan,
    timeout: Duration,
) -> Result<Confirmation> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_script_is_detached_and_quoted() {
        let s = restart_script("rke2-agent", "abc");
        assert!(s.contains("systemd-run --quiet --collect --unit=kubectl-gpu-restart-abc --on-active=2 systemctl restart rke2-agent"));
        assert!(s.contains("systemctl --no-block restart rke2-agent"));
        // A unit name that is not a plain word is quoted (crate::shell::quote).
        let s = restart_script("my unit's", "abc");
        assert!(
            s.contains("systemctl --no-block restart 'my unit'\\''s'"),
            "{s}"
        );
    }
}
