//! The node-agent pod: one short-lived pod per node that mounts the host
//! root at `/host`, pinned with `nodeName`, tolerating every taint, in
//! `kube-system` by default (RKE2's CIS profile enforces `restricted`
//! elsewhere), labelled as ours, with `activeDeadlineSeconds` so that even a
//! killed client never leaves it running for long. Read-only unless a
//! command needs to write (then privileged, with host PID for restarts).
//!
//! [`Agents`] creates, waits (watch, not poll), execs and deletes them, and
//! deletes them on Ctrl-C too.

use crate::client::Kube;
use crate::error::{Error, Result};
use crate::labels;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, AttachParams, DeleteParams, ListParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
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

/// A fresh id for the pods of one command run.
pub fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}", (nanos as u64) ^ (std::process::id() as u64) << 20)
        .chars()
        .rev()
        .take(8)
        .collect()
}

/// A DNS-1123 pod name `kubectl-gpu-<what>-<node>-<run>` of at most 63 characters.
pub fn pod_name(what: &str, node: &str, run: &str) -> String {
    let node: String = node
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let budget = 63 - ("kubectl-gpu-".len() + what.len() + 2 + run.len());
    let node = node.chars().take(budget).collect::<String>();
    format!("kubectl-gpu-{what}-{}-{run}", node.trim_matches('-'))
}

/// Labels on every agent pod.
pub fn agent_labels(run: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            labels::LABEL_NAME.to_string(),
            labels::MANAGED_BY.to_string(),
        ),
        (
            labels::LABEL_MANAGED_BY.to_string(),
            labels::MANAGED_BY.to_string(),
        ),
        (
            labels::LABEL_COMPONENT.to_string(),
            labels::COMPONENT_NODE_AGENT.to_string(),
        ),
        (labels::LABEL_RUN_ID.to_string(), run.to_string()),
    ])
}

/// The node-agent pod for a node.
pub fn agent_pod(node: &str, run: &str, opts: &AgentOptions) -> Result<Pod> {
    let name = pod_name("agent", node, run);
    let spec = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": opts.namespace,
            "labels": agent_labels(run),
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

/// Asks the API server (SelfSubjectAccessReview) whether we may `verb` the
/// `resource` (`sub`resource) in `namespace` (cluster scope when None).
pub async fn can_i(
    kube: &Kube,
    verb: &str,
    resource: &str,
    sub: Option<&str>,
    namespace: Option<&str>,
) -> Result<bool> {
    let ssar: Api<SelfSubjectAccessReview> = Api::all(kube.client.clone());
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: namespace.map(str::to_string),
                verb: Some(verb.to_string()),
                resource: Some(resource.to_string()),
                subresource: sub.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = ssar
        .create(&PostParams::default(), &review)
        .await
        .map_err(kube.err("create selfsubjectaccessreviews"))?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// Checks, before creating anything, that we may create pods and exec into
/// them in the namespace, and that its PodSecurity level admits a hostPath
/// pod. Says exactly what is missing.
pub async fn preflight(kube: &Kube, namespace: &str) -> Result<()> {
    for (verb, resource, sub) in [
        ("create", "pods", None),
        ("create", "pods", Some("exec")),
        ("delete", "pods", None),
    ] {
        if !can_i(kube, verb, resource, sub, Some(namespace)).await? {
            return Err(Error::Forbidden {
                verb: verb.to_string(),
                resource: match sub {
                    Some(s) => format!("{resource}/{s}"),
                    None => resource.to_string(),
                },
                namespace: Some(namespace.to_string()),
            });
        }
    }
    let ns_api: Api<Namespace> = Api::all(kube.client.clone());
    let ns = match ns_api.get(namespace).await {
        Ok(ns) => ns,
        Err(kube::Error::Api(s)) if s.code == 404 => {
            return Err(Error::Usage(format!(
                "namespace {namespace} does not exist; pick another with -n"
            )));
        }
        Err(e) => {
            return Err(Error::from_kube(
                e,
                &format!("get namespace {namespace}"),
                &kube.server,
            ));
        }
    };
    if let Some(level) = ns
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(labels::PSA_ENFORCE))
        && level != "privileged"
    {
        return Err(Error::Usage(format!(
            "namespace {namespace} enforces PodSecurity {level:?}, which rejects the node-agent pod (hostPath /); use -n kube-system or label the namespace: kubectl label ns {namespace} {}=privileged",
            labels::PSA_ENFORCE
        )));
    }
    Ok(())
}

type Registry = Arc<Mutex<Vec<(String, String)>>>;

/// The agent pods of one run; deletes them on drop of the run (call
/// [`Agents::cleanup`]) and on Ctrl-C.
pub struct Agents {
    kube: Kube,
    opts: AgentOptions,
    run: String,
    created: Registry,
}

/// Deletes every pod in the registry (best effort, short timeout).
async fn delete_registered(client: kube::Client, created: &Registry) {
    let pods: Vec<(String, String)> = match created.lock() {
        Ok(mut list) => list.drain(..).collect(),
        Err(_) => return,
    };
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    for (ns, name) in pods {
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let _ = tokio::time::timeout(Duration::from_secs(10), api.delete(&name, &dp)).await;
    }
}

impl Agents {
    pub fn new(kube: &Kube, opts: AgentOptions) -> Self {
        let created: Registry = Arc::default();
        let on_signal = created.clone();
        let client = kube.client.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("interrupted: removing node-agent pods");
                delete_registered(client, &on_signal).await;
                std::process::exit(130);
            }
        });
        Agents {
            kube: kube.clone(),
            opts,
            run: run_id(),
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
        let pod = agent_pod(node, &self.run, &self.opts)?;
        let name = pod.metadata.name.clone().unwrap_or_default();
        self.api()
            .create(&PostParams::default(), &pod)
            .await
            .map_err(
                self.kube
                    .err(&format!("create pod {name} in {}", self.opts.namespace)),
            )?;
        if let Ok(mut list) = self.created.lock() {
            list.push((self.opts.namespace.clone(), name.clone()));
        }
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

    /// Deletes every pod this run created.
    pub async fn cleanup(&self) {
        delete_registered(self.kube.client.clone(), &self.created).await;
    }
}

/// Deletes every pod we ever created, in every namespace (`kubectl gpu cleanup`).
pub async fn cleanup_all(kube: &Kube) -> Result<Vec<String>> {
    let api: Api<Pod> = Api::all(kube.client.clone());
    let pods =
        crate::snapshot::list_all(&api, &ListParams::default().labels(labels::OURS_SELECTOR))
            .await
            .map_err(kube.err("list pods labelled app.kubernetes.io/managed-by=kubectl-gpu"))?;
    let mut removed = Vec::new();
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    for pod in pods {
        let (Some(ns), Some(name)) = (pod.metadata.namespace, pod.metadata.name) else {
            continue;
        };
        let api: Api<Pod> = Api::namespaced(kube.client.clone(), &ns);
        match api.delete(&name, &dp).await {
            Ok(_) => removed.push(format!("{ns}/{name}")),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                return Err(Error::from_kube(
                    e,
                    &format!("delete pod {ns}/{name}"),
                    &kube.server,
                ));
            }
        }
    }
    Ok(removed)
}

// ---------------------------------------------------------------------------
// Reading host files in one exec
// ---------------------------------------------------------------------------

const MARK: &str = "### kubectl-gpu";

/// What one probe asks for: files to cat and dirs to list (host paths).
#[derive(Debug, Clone, Default)]
pub struct ProbeRequest {
    pub files: Vec<String>,
    pub dirs: Vec<String>,
    /// Files read as bytes (printed by `od`), e.g. EFI variables.
    pub binary: Vec<String>,
    /// Paths only tested for existence (binaries).
    pub exists: Vec<String>,
}

/// What one probe read. `None`: the path does not exist (or is unreadable).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProbeResult {
    pub files: BTreeMap<String, Option<String>>,
    pub dirs: BTreeMap<String, Option<Vec<String>>>,
    pub binary: BTreeMap<String, Option<Vec<u8>>>,
    pub exists: BTreeMap<String, bool>,
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

impl ProbeRequest {
    /// A POSIX sh script that prints every requested path between markers.
    pub fn script(&self) -> String {
        let mut s = String::from("H=/host\n");
        for f in &self.files {
            let q = sh_quote(f);
            s.push_str(&format!(
                "echo \"{MARK} file \"{q}; if [ -f \"$H\"{q} ] && [ -r \"$H\"{q} ]; then cat \"$H\"{q}; rc=$?; else rc=2; fi; echo; echo \"{MARK} end rc=$rc\"\n"
            ));
        }
        for d in &self.dirs {
            let q = sh_quote(d);
            s.push_str(&format!(
                "echo \"{MARK} dir \"{q}; if [ -d \"$H\"{q} ]; then ls -1a \"$H\"{q}; rc=$?; else rc=2; fi; echo; echo \"{MARK} end rc=$rc\"\n"
            ));
        }
        for b in &self.binary {
            let q = sh_quote(b);
            s.push_str(&format!(
                "echo \"{MARK} bin \"{q}; if [ -f \"$H\"{q} ]; then od -An -tu1 -v \"$H\"{q}; rc=$?; else rc=2; fi; echo; echo \"{MARK} end rc=$rc\"\n"
            ));
        }
        for e in &self.exists {
            let q = sh_quote(e);
            s.push_str(&format!(
                "echo \"{MARK} exists \"{q}; if [ -e \"$H\"{q} ]; then rc=0; else rc=2; fi; echo; echo \"{MARK} end rc=$rc\"\n"
            ));
        }
        s
    }
}

impl ProbeResult {
    /// Parses the script's output.
    pub fn parse(out: &str) -> Self {
        let mut result = ProbeResult::default();
        let mut rest = out;
        let header = format!("{MARK} ");
        while let Some(start) = rest.find(&header) {
            let after = &rest[start + header.len()..];
            let Some(nl) = after.find('\n') else { break };
            let head = &after[..nl];
            let body_start = &after[nl + 1..];
            let end_mark = format!("\n{MARK} end rc=");
            let (body, tail) = match body_start.find(&end_mark) {
                Some(i) => (&body_start[..i], &body_start[i + end_mark.len()..]),
                None => (body_start, ""),
            };
            let rc: i32 = tail
                .split_whitespace()
                .next()
                .and_then(|r| r.parse().ok())
                .unwrap_or(1);
            rest = tail;
            let Some((kind, path)) = head.split_once(' ') else {
                continue;
            };
            let ok = rc == 0;
            match kind {
                "file" => {
                    result
                        .files
                        .insert(path.to_string(), ok.then(|| body.to_string()));
                }
                "dir" => {
                    result.dirs.insert(
                        path.to_string(),
                        ok.then(|| {
                            body.lines()
                                .filter(|l| !l.is_empty() && *l != "." && *l != "..")
                                .map(str::to_string)
                                .collect()
                        }),
                    );
                }
                "exists" => {
                    result.exists.insert(path.to_string(), ok);
                }
                "bin" => {
                    result.binary.insert(
                        path.to_string(),
                        ok.then(|| {
                            body.split_whitespace()
                                .filter_map(|b| b.parse().ok())
                                .collect()
                        }),
                    );
                }
                _ => {}
            }
        }
        result
    }

    pub fn file(&self, path: &str) -> Option<&str> {
        self.files.get(path).and_then(|f| f.as_deref())
    }

    pub fn dir(&self, path: &str) -> Option<&[String]> {
        self.dirs.get(path).and_then(|d| d.as_deref())
    }

    pub fn exists(&self, path: &str) -> bool {
        self.exists.get(path).copied().unwrap_or(false)
            || self.files.get(path).is_some_and(|f| f.is_some())
            || self.dirs.get(path).is_some_and(|d| d.is_some())
    }

    /// Adds another probe's results (later reads win).
    pub fn merge(&mut self, other: ProbeResult) {
        self.files.extend(other.files);
        self.dirs.extend(other.dirs);
        self.binary.extend(other.binary);
        self.exists.extend(other.exists);
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
    fn pod_names_are_dns_labels() {
        let n = pod_name(
            "agent",
            "A_Very.Long.Node.Name.example.com-with-many-parts-and-more-text",
            "abc123",
        );
        assert!(n.len() <= 63, "{n}");
        assert!(
            n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
        assert!(n.starts_with("kubectl-gpu-agent-a-very-long"));
        assert!(n.ends_with("-abc123"));
    }

    #[test]
    fn agent_pod_is_pinned_labelled_and_bounded() {
        let opts = AgentOptions {
            namespace: "kube-system".into(),
            image: "busybox".into(),
            timeout: Duration::from_secs(5),
            privileged: false,
        };
        let pod = agent_pod("gpu-1", "r1", &opts).unwrap();
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
            labels.get(labels::LABEL_MANAGED_BY).map(String::as_str),
            Some("kubectl-gpu")
        );
        assert_eq!(
            labels.get(labels::LABEL_COMPONENT).map(String::as_str),
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

    /// Runs the probe script with a real sh over a temp dir standing in for /host.
    #[test]
    fn probe_script_round_trips_through_sh() {
        let root = tempfile::tempdir().unwrap();
        let host = root.path().join("host");
        std::fs::create_dir_all(host.join("etc/x")).unwrap();
        std::fs::write(host.join("etc/a.toml"), "version = 3\n[plugins]\n").unwrap();
        std::fs::write(host.join("etc/no-newline"), "abc").unwrap();
        std::fs::write(host.join("etc/x/one.toml"), "").unwrap();
        std::fs::write(host.join("etc/sb"), [6u8, 0, 0, 0, 1]).unwrap();
        let req = ProbeRequest {
            files: vec![
                "/etc/a.toml".into(),
                "/etc/no-newline".into(),
                "/etc/missing".into(),
                "/etc/x/one.toml".into(),
            ],
            dirs: vec!["/etc/x".into(), "/etc/none".into()],
            binary: vec!["/etc/sb".into()],
            exists: vec!["/etc/x".into(), "/etc/nope".into()],
        };
        let script = req
            .script()
            .replace("H=/host", &format!("H={}", host.display()));
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        let r = ProbeResult::parse(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(r.file("/etc/a.toml"), Some("version = 3\n[plugins]\n"));
        assert_eq!(r.file("/etc/no-newline"), Some("abc"));
        assert_eq!(r.file("/etc/missing"), None);
        assert_eq!(r.file("/etc/x/one.toml"), Some(""));
        assert_eq!(r.dir("/etc/x"), Some(&["one.toml".to_string()][..]));
        assert_eq!(r.dir("/etc/none"), None);
        assert_eq!(r.binary.get("/etc/sb"), Some(&Some(vec![6, 0, 0, 0, 1])));
        assert_eq!(r.exists.get("/etc/x"), Some(&true));
        assert_eq!(r.exists.get("/etc/nope"), Some(&false));
    }
}
