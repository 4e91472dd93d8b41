//! The node-agent pod: one short-lived pod per node that mounts the host
//! root at `/host`, pinned with `nodeName`, tolerating every taint, in
//! `kube-system` by default (RKE2's CIS profile enforces `restricted`
//! elsewhere), labelled as ours, with `activeDeadlineSeconds` so that even a
//! killed client never leaves it running for long. Read-only unless a
//! command needs to write (then privileged, with host PID for restarts).
//!
//! [`Agents`] creates, waits (watch, not poll), execs and deletes them; they
//! are recorded in an [`objects::Registry`], so Ctrl-C deletes them too and
//! every call then returns [`Error::Interrupted`].

use crate::client::Kube;
use crate::error::{Error, Result};
use crate::node::probe::{ProbeRequest, ProbeResult};
use crate::objects::{self, Component, OnInterrupt, Registry, until_interrupted};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// A small image with sh, cat, ls, od, cp, mv, nsenter (busybox). Mirror it
/// for air-gapped clusters and pass `--image`.
pub const DEFAULT_IMAGE: &str = "docker.io/library/busybox:1.37";
/// RKE2's CIS profile exempts kube-system from PSA `restricted`.
pub const DEFAULT_NAMESPACE: &str = "kube-system";
/// Upper bound on an agent pod's life, whatever happens to the client.
pub const ACTIVE_DEADLINE_SECONDS: i64 = 900;
pub const CONTAINER: &str = "agent";

#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub namespace: String,
    pub image: String,
    pub timeout: Duration,
    /// Privileged with host PID and a writable host root (patch-containerd --apply).
    pub privileged: bool,
}

/// The node-agent pod for a node.
pub fn agent_pod(node: &str, run: &str, opts: &AgentOptions) -> Result<Pod> {
    let name = objects::pod_name(Component::NodeAgent, node, run);
    let spec = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": opts.namespace,
            "labels": objects::our_labels(Component::NodeAgent, run),
        },
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "activeDeadlineSeconds": ACTIVE_DEADLINE_SECONDS,
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
            "hostPID": opts.privileged,
            "tolerations": [{"operator": "Exists"}],
            "containers": [{
                "name": CONTAINER,
                "image": opts.image,
                "command": ["sleep", ACTIVE_DEADLINE_SECONDS.to_string()],
                "securityContext": if opts.privileged {
                    serde_json::json!({"privileged": true})
                } else {
                    serde_json::json!({"privileged": false, "allowPrivilegeEscalation": false, "runAsUser": 0})
                },
                "volumeMounts": [{"name": "host", "mountPath": "/host", "readOnly": !opts.privileged}],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
            }],
            "volumes": [{"name": "host", "hostPath": {"path": "/", "type": "Directory"}}],
        }
    });
    serde_json::from_value(spec).map_err(|e| Error::Other(format!("internal: agent pod spec: {e}")))
}

/// The agent pods of one run; call [`Agents::cleanup`] at the end. Ctrl-C
/// deletes them.
pub struct Agents {
    kube: Kube,
    opts: AgentOptions,
    run: String,
    created: Registry,
}

impl Agents {
    pub fn new(kube: &Kube, opts: AgentOptions) -> Self {
        let created = Registry::new(
            kube.client.clone(),
            OnInterrupt::Remove {
                what: "node-agent pods",
            },
        );
        Agents {
            kube: kube.clone(),
            opts,
            run: objects::run_id(),
            created,
        }
    }

    pub fn run_id(&self) -> &str {
        &self.run
    }

    fn api(&self) -> Api<Pod> {
        Api::namespaced(self.kube.client.clone(), &self.opts.namespace)
    }

    /// Creates the agent pod on a node and waits until it runs.
    pub async fn start(&self, node: &str) -> Result<String> {
        until_interrupted(self.start_pod(node)).await
    }

    async fn start_pod(&self, node: &str) -> Result<String> {
        let pod = agent_pod(node, &self.run, &self.opts)?;
        let name = pod.metadata.name.clone().unwrap_or_default();
        self.api()
            .create(&PostParams::default(), &pod)
            .await
            .map_err(
                self.kube
                    .err(&format!("create pod {name} in {}", self.opts.namespace)),
            )?;
        self.created.add_pod(&self.opts.namespace, &name);
        let running = await_condition(self.api(), &name, conditions::is_pod_running());
        match tokio::time::timeout(self.opts.timeout, running).await {
            Ok(Ok(_)) => Ok(name),
            Ok(Err(e)) => Err(Error::Node {
                node: node.to_string(),
                message: format!("watching node-agent pod {name}: {e}"),
            }),
            Err(_) => {
                let why = self.why_not_running(&name).await;
                Err(Error::Node {
                    node: node.to_string(),
                    message: format!(
                        "node-agent pod {}/{name} did not start within {}s{why}; check `kubectl -n {} describe pod {name}`, or mirror the image and pass --image",
                        self.opts.namespace,
                        self.opts.timeout.as_secs(),
                        self.opts.namespace
                    ),
                })
            }
        }
    }

    async fn why_not_running(&self, name: &str) -> String {
        let Ok(pod) = self.api().get(name).await else {
            return String::new();
        };
        let status = pod.status.unwrap_or_default();
        let waiting = status
            .container_statuses
            .iter()
            .flatten()
            .find_map(|c| c.state.as_ref()?.waiting.as_ref())
            .map(|w| {
                format!(
                    " ({}: {})",
                    w.reason.clone().unwrap_or_default(),
                    w.message.clone().unwrap_or_default()
                )
            });
        waiting.unwrap_or_else(|| format!(" (phase {})", status.phase.unwrap_or_default()))
    }

    /// Runs a command in the agent pod; returns (exit code, stdout, stderr).
    pub async fn exec(&self, pod: &str, argv: &[&str]) -> Result<(i32, String, String)> {
        until_interrupted(self.exec_in(pod, argv)).await
    }

    async fn exec_in(&self, pod: &str, argv: &[&str]) -> Result<(i32, String, String)> {
        let params = AttachParams::default()
            .container(CONTAINER)
            .stdin(false)
            .stdout(true)
            .stderr(true);
        let mut proc = self
            .api()
            .exec(
                pod,
                argv.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                &params,
            )
            .await
            .map_err(self.kube.err(&format!("exec into pod {pod}")))?;
        let mut stdout = String::new();
        let mut stderr = String::new();
        let out_reader = proc.stdout();
        let err_reader = proc.stderr();
        let read_out = async {
            if let Some(mut r) = out_reader {
                let _ = r.read_to_string(&mut stdout).await;
            }
        };
        let read_err = async {
            if let Some(mut r) = err_reader {
                let _ = r.read_to_string(&mut stderr).await;
            }
        };
        tokio::join!(read_out, read_err);
        let status = match proc.take_status() {
            Some(s) => s.await,
            None => None,
        };
        let _ = proc.join().await;
        let code = match status {
            Some(s) if s.status.as_deref() == Some("Success") => 0,
            Some(s) => s
                .details
                .and_then(|d| d.causes)
                .and_then(|c| {
                    c.into_iter()
                        .find(|c| c.reason.as_deref() == Some("ExitCode"))
                })
                .and_then(|c| c.message)
                .and_then(|m| m.parse().ok())
                .unwrap_or(1),
            None => 0,
        };
        Ok((code, stdout, stderr))
    }

    /// Deletes every pod this run created. After Ctrl-C it only waits for
    /// the handler, which deletes them.
    pub async fn cleanup(&self) {
        if objects::check_interrupted().await.is_ok() {
            self.created.delete_all().await;
        }
    }
}

impl Agents {
    /// Reads the requested host paths through the agent pod in one exec.
    pub async fn probe(&self, pod: &str, request: &ProbeRequest) -> Result<ProbeResult> {
        let script = request.script();
        let (code, out, err) = self.exec(pod, &["sh", "-c", &script]).await?;
        if code != 0 && out.is_empty() {
            return Err(Error::Other(format!(
                "reading host files in pod {pod} failed (exit {code}): {}",
                err.trim()
            )));
        }
        Ok(ProbeResult::parse(&out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_pod_is_pinned_labelled_and_bounded() {
        let opts = AgentOptions {
            namespace: "kube-system".into(),
            image: "busybox".into(),
            timeout: Duration::from_secs(5),
            privileged: false,
        };
        let pod = agent_pod("gpu-1", "r1", &opts).unwrap();
        assert_eq!(
            pod.metadata.name.as_deref(),
            Some("kubectl-gpu-agent-gpu-1-r1")
        );
        let spec = pod.spec.unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("gpu-1"));
        assert_eq!(spec.active_deadline_seconds, Some(ACTIVE_DEADLINE_SECONDS));
        assert_eq!(spec.host_pid, Some(false));
        let tol = &spec.tolerations.unwrap()[0];
        assert_eq!(
            (tol.operator.as_deref(), tol.key.as_deref()),
            (Some("Exists"), None)
        );
        let c = &spec.containers[0];
        assert_eq!(c.volume_mounts.as_ref().unwrap()[0].read_only, Some(true));
        assert_eq!(c.security_context.as_ref().unwrap().privileged, Some(false));
        let labels = pod.metadata.labels.unwrap();
        assert_eq!(
            labels.get(objects::LABEL_MANAGED_BY).map(String::as_str),
            Some("kubectl-gpu")
        );
        assert_eq!(
            labels.get(objects::LABEL_COMPONENT).map(String::as_str),
            Some("node-agent")
        );
        let privileged = agent_pod(
            "gpu-1",
            "r1",
            &AgentOptions {
                privileged: true,
                ..opts
            },
        )
        .unwrap()
        .spec
        .unwrap();
        assert_eq!(privileged.host_pid, Some(true));
        assert_eq!(
            privileged.containers[0].volume_mounts.as_ref().unwrap()[0].read_only,
            Some(false)
        );
    }
}
