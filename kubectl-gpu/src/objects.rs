//! The objects we create in a cluster (verify pods, the verify namespace,
//! node-agent pods): their labels, the run id, pod names, one [`Registry`]
//! of what a run created, and the one Ctrl-C handler. On Ctrl-C the handler
//! deletes what every live registry holds (or keeps it, with `--keep`),
//! then [`until_interrupted`] makes the library return
//! [`Error::Interrupted`], which the binaries turn into exit code 130.
//! Nothing here calls `process::exit`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams};
use serde::Serialize;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::labels;

/// `app.kubernetes.io/name` and `app.kubernetes.io/managed-by` value on
/// every object we create.
pub const MANAGED_BY: &str = "kubectl-gpu";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
/// Groups the objects of one command run.
pub const LABEL_RUN_ID: &str = "kubectl-gpu.rke2.io/run-id";
/// The node a verify pod is pinned to.
pub const ANNOTATION_NODE: &str = "kubectl-gpu.rke2.io/node";
/// Selects every object we ever created (for `kubectl gpu cleanup`).
pub const OURS_SELECTOR: &str = "app.kubernetes.io/managed-by=kubectl-gpu";
/// Prefix of the namespace `verify` creates when `-n` is not given.
pub const NAMESPACE_PREFIX: &str = "kubectl-gpu-verify-";

/// Which of our objects: the `app.kubernetes.io/component` label and the
/// pod name prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// `kubectl gpu verify`'s pods and namespace.
    Verify,
    /// The node-agent pods (`check-runtime --deep`, `patch-containerd`, `report --bundle --deep`).
    NodeAgent,
}

impl Component {
    /// The `app.kubernetes.io/component` value.
    pub fn label(self) -> &'static str {
        match self {
            Component::Verify => "verify",
            Component::NodeAgent => "node-agent",
        }
    }

    fn pod_prefix(self) -> &'static str {
        match self {
            Component::Verify => "gpu-verify-",
            Component::NodeAgent => "kubectl-gpu-agent-",
        }
    }
}

/// A fresh id for the objects of one command run (8 hex digits).
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

/// The labels on every object of `component` in run `run_id`.
pub fn our_labels(component: Component, run_id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_string(), MANAGED_BY.to_string()),
        (LABEL_MANAGED_BY.to_string(), MANAGED_BY.to_string()),
        (LABEL_COMPONENT.to_string(), component.label().to_string()),
        (LABEL_RUN_ID.to_string(), run_id.to_string()),
    ])
}

/// The label selector that finds every object of `component` in a run.
pub fn run_selector(component: Component, run_id: &str) -> String {
    format!(
        "{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_COMPONENT}={},{LABEL_RUN_ID}={run_id}",
        component.label()
    )
}

/// `gpu-verify-<node>-<run id>` or `kubectl-gpu-agent-<node>-<run id>`: a
/// valid pod name (and label value) of at most 63 characters. The node name
/// is lower-cased, runs of other characters become one `-`, and it is
/// shortened first; the run id (at most 16 characters) is kept.
pub fn pod_name(component: Component, node_name: &str, run_id: &str) -> String {
    fn sanitise(s: &str) -> String {
        let mut out = String::new();
        for c in s.chars() {
            let c = c.to_ascii_lowercase();
            let c = if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            };
            if !(c == '-' && out.ends_with('-')) {
                out.push(c);
            }
        }
        out.trim_matches('-').to_string()
    }
    let run: String = sanitise(run_id).chars().take(16).collect();
    let run = run.trim_matches('-').to_string();
    let prefix = component.pod_prefix();
    let room = 63 - prefix.len() - if run.is_empty() { 0 } else { run.len() + 1 };
    let node: String = sanitise(node_name).chars().take(room).collect();
    let node = node.trim_matches('-');
    let mut name = String::from(prefix);
    name.push_str(if node.is_empty() { "node" } else { node });
    if !run.is_empty() {
        name.push('-');
        name.push_str(&run);
    }
    name
}

/// The namespace `verify` creates: ours, and PSA `baseline` (the verify pod
/// meets it; RKE2's CIS profile defaults other namespaces to `restricted`,
/// rancher/rke2 pkg/rke2/psa.go).
pub fn verify_namespace(run_id: &str) -> Namespace {
    let mut labels = our_labels(Component::Verify, run_id);
    labels.insert(labels::PSA_ENFORCE.to_string(), "baseline".to_string());
    Namespace {
        metadata: ObjectMeta {
            name: Some(format!("{NAMESPACE_PREFIX}{run_id}")),
            labels: Some(labels),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The command that removes what a `--keep` run left: the namespace it
/// created, else its pods by run label.
pub fn removal_command(
    namespace: &str,
    namespace_created: bool,
    component: Component,
    run_id: &str,
) -> String {
    if namespace_created {
        format!("kubectl delete namespace {namespace}")
    } else {
        format!(
            "kubectl delete pods -n {namespace} -l {}",
            run_selector(component, run_id)
        )
    }
}

/// What was removed at the end of a run, or how to remove it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CleanupResult {
    pub kept: bool,
    pub deleted_pods: Vec<String>,
    pub deleted_namespace: Option<String>,
    pub errors: Vec<String>,
    /// With `--keep`: the command that removes what was kept.
    pub delete_command: Option<String>,
}

/// What the Ctrl-C handler does with a registry's objects.
#[derive(Debug, Clone)]
pub enum OnInterrupt {
    /// Delete them; `what` names them in the message (`the verify pods`).
    Remove { what: &'static str },
    /// Keep them (`--keep`) and print `remove_with`.
    Keep {
        what: &'static str,
        remove_with: String,
    },
}

#[derive(Default)]
struct Created {
    namespace: Option<String>,
    pods: Vec<(String, String)>,
    /// Pods already deleted during the run (`ns/name`).
    deleted: Vec<String>,
}

struct Inner {
    client: kube::Client,
    created: Mutex<Created>,
    on_interrupt: OnInterrupt,
}

/// The objects one run created (pods, at most one namespace). Cloning
/// shares it. While one is alive, Ctrl-C deletes what it holds.
#[derive(Clone)]
pub struct Registry(Arc<Inner>);

fn delete_params() -> DeleteParams {
    DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    }
}

impl Registry {
    /// A new, empty registry; installs the Ctrl-C handler (once per process).
    pub fn new(client: kube::Client, on_interrupt: OnInterrupt) -> Self {
        let r = Registry(Arc::new(Inner {
            client,
            created: Mutex::new(Created::default()),
            on_interrupt,
        }));
        handler::register(&r.0);
        r
    }

    /// Records a pod we created.
    pub fn add_pod(&self, namespace: &str, name: &str) {
        if let Ok(mut c) = self.0.created.lock() {
            c.pods.push((namespace.to_string(), name.to_string()));
        }
    }

    /// Records the namespace we created (its deletion takes its pods along).
    pub fn set_namespace(&self, namespace: &str) {
        if let Ok(mut c) = self.0.created.lock() {
            c.namespace = Some(namespace.to_string());
        }
    }

    /// Records that a pod was deleted during the run.
    pub fn pod_deleted(&self, namespace: &str, name: &str) {
        if let Ok(mut c) = self.0.created.lock() {
            c.pods.retain(|(ns, n)| !(ns == namespace && n == name));
            c.deleted.push(format!("{namespace}/{name}"));
        }
    }

    /// Deletes what the registry holds and empties it: the namespace (which
    /// takes its pods along) else each pod. Best effort, short timeouts.
    pub async fn delete_all(&self) -> CleanupResult {
        let (namespace, pods, deleted) = match self.0.created.lock() {
            Ok(mut c) => (
                c.namespace.take(),
                std::mem::take(&mut c.pods),
                std::mem::take(&mut c.deleted),
            ),
            Err(_) => return CleanupResult::default(),
        };
        let client = self.0.client.clone();
        let mut out = CleanupResult {
            deleted_pods: deleted,
            ..CleanupResult::default()
        };
        let t = Duration::from_secs(10);
        if let Some(ns) = namespace {
            // Remove the pods first without grace: the namespace controller
            // deletes them gracefully, which never ends on a node whose kubelet
            // is gone (the namespace would stay Terminating). One request, also
            // covering a pod whose create had not returned yet (Ctrl-C).
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let lp = ListParams::default().labels(OURS_SELECTOR);
            match tokio::time::timeout(t, api.delete_collection(&delete_params(), &lp)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::debug!("delete pods in {ns}: {e}"),
                Err(_) => tracing::debug!("delete pods in {ns}: timed out"),
            }
            let api: Api<Namespace> = Api::all(client.clone());
            match tokio::time::timeout(t, api.delete(&ns, &DeleteParams::default())).await {
                Ok(Ok(_)) => out.deleted_namespace = Some(ns),
                Ok(Err(kube::Error::Api(s))) if s.code == 404 => out.deleted_namespace = Some(ns),
                Ok(Err(e)) => out.errors.push(format!("delete namespace {ns}: {e}")),
                Err(_) => out.errors.push(format!("delete namespace {ns}: timed out")),
            }
            return out;
        }
        for (ns, name) in pods {
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            match tokio::time::timeout(t, api.delete(&name, &delete_params())).await {
                Ok(Ok(_)) => out.deleted_pods.push(format!("{ns}/{name}")),
                Ok(Err(kube::Error::Api(s))) if s.code == 404 => {}
                Ok(Err(e)) => out.errors.push(format!("delete pod {ns}/{name}: {e}")),
                Err(_) => out
                    .errors
                    .push(format!("delete pod {ns}/{name}: timed out")),
            }
        }
        out
    }
}

impl Inner {
    /// The handler's work for this registry: say what happens, then do it.
    async fn on_ctrl_c(self: Arc<Self>) {
        match &self.on_interrupt {
            OnInterrupt::Keep { what, remove_with } => {
                eprintln!("interrupted: keeping {what} (--keep); remove with: {remove_with}");
            }
            OnInterrupt::Remove { what } => {
                eprintln!("interrupted: removing {what}");
                let res = Registry(self.clone()).delete_all().await;
                for e in res.errors {
                    eprintln!("cleanup: {e}; run `kubectl gpu cleanup`");
                }
            }
        }
    }
}

/// Runs `fut` unless Ctrl-C comes first: then, once the handler has dealt
/// with every live registry, returns [`Error::Interrupted`] (`fut` is
/// dropped). A `fut` that ends while the handler is still deleting (its
/// watches end when its pods go) also yields `Interrupted`, never its
/// result.
pub async fn until_interrupted<T, E, F>(fut: F) -> std::result::Result<T, E>
where
    F: Future<Output = std::result::Result<T, E>>,
    E: From<Error>,
{
    tokio::select! {
        biased;
        e = interrupted() => Err(e.into()),
        r = fut => {
            if handler::is_interrupted() {
                Err(interrupted().await.into())
            } else {
                r
            }
        }
    }
}

/// Resolves once Ctrl-C was seen and the handler has finished (never, if
/// no Ctrl-C comes).
pub async fn interrupted() -> Error {
    handler::done().await;
    Error::Interrupted
}

/// Err([`Error::Interrupted`]) once Ctrl-C was seen (after the handler has
/// finished), else Ok.
pub async fn check_interrupted() -> Result<()> {
    if handler::is_interrupted() {
        return Err(interrupted().await);
    }
    Ok(())
}

/// The one process-wide Ctrl-C handler over every live registry.
mod handler {
    use super::*;
    use std::sync::OnceLock;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Phase {
        Running,
        CleaningUp,
        Done,
    }

    static LIVE: Mutex<Vec<Weak<Inner>>> = Mutex::new(Vec::new());
    static TASK: Mutex<Option<tokio::task::JoinHandle<()>>> = Mutex::new(None);
    static PHASE: OnceLock<watch::Sender<Phase>> = OnceLock::new();

    fn phase() -> &'static watch::Sender<Phase> {
        PHASE.get_or_init(|| watch::channel(Phase::Running).0)
    }

    pub(super) fn is_interrupted() -> bool {
        *phase().borrow() != Phase::Running
    }

    pub(super) async fn done() {
        let mut rx = phase().subscribe();
        if rx.wait_for(|p| *p == Phase::Done).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    pub(super) fn register(inner: &Arc<Inner>) {
        if let Ok(mut live) = LIVE.lock() {
            live.retain(|w| w.strong_count() > 0);
            live.push(Arc::downgrade(inner));
        }
        let Ok(mut task) = TASK.lock() else { return };
        if task.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        // Listen now, not when the task first runs: a Ctrl-C right after
        // the first object is created must not kill the process.
        #[cfg(unix)]
        let Ok(mut sigint) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        else {
            return;
        };
        *task = Some(tokio::spawn(async move {
            #[cfg(unix)]
            let seen = sigint.recv().await.is_some();
            #[cfg(not(unix))]
            let seen = tokio::signal::ctrl_c().await.is_ok();
            if seen {
                clean_up().await;
            }
        }));
    }

    /// Deals with every live registry, then lets [`done`] resolve.
    async fn clean_up() {
        phase().send_replace(Phase::CleaningUp);
        let live: Vec<Arc<Inner>> = match LIVE.lock() {
            Ok(l) => l.iter().filter_map(Weak::upgrade).collect(),
            Err(_) => Vec::new(),
        };
        futures::future::join_all(live.into_iter().map(Inner::on_ctrl_c)).await;
        phase().send_replace(Phase::Done);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_names_are_dns_labels() {
        let n = pod_name(
            Component::NodeAgent,
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
    fn labels_name_component_and_run() {
        let l = our_labels(Component::NodeAgent, "r1");
        assert_eq!(l[LABEL_MANAGED_BY], "kubectl-gpu");
        assert_eq!(l[LABEL_NAME], "kubectl-gpu");
        assert_eq!(l[LABEL_COMPONENT], "node-agent");
        assert_eq!(l[LABEL_RUN_ID], "r1");
        assert_eq!(
            OURS_SELECTOR,
            format!("{LABEL_MANAGED_BY}={MANAGED_BY}"),
            "the cleanup selector matches our labels"
        );
    }

    #[test]
    fn removal_command_names_namespace_or_run() {
        assert_eq!(
            removal_command("kubectl-gpu-verify-r1", true, Component::Verify, "r1"),
            "kubectl delete namespace kubectl-gpu-verify-r1"
        );
        assert_eq!(
            removal_command("team", false, Component::Verify, "r1"),
            "kubectl delete pods -n team -l app.kubernetes.io/managed-by=kubectl-gpu,app.kubernetes.io/component=verify,kubectl-gpu.rke2.io/run-id=r1"
        );
    }

    /// SIGINT: the handler deals with the live registry (here `--keep`, so
    /// no API call), then the guarded future yields `Interrupted`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sigint_interrupts_after_the_handler() {
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
        let client = kube::Client::try_from(config).expect("client");
        let _registry = Registry::new(
            client,
            OnInterrupt::Keep {
                what: "the test pods",
                remove_with: "nothing".into(),
            },
        );
        assert!(!handler::is_interrupted());
        let guarded = until_interrupted(async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<u8, Error>(0)
        });
        let pid = std::process::id().to_string();
        let kill = std::process::Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("kill");
        assert!(kill.success());
        let r = tokio::time::timeout(Duration::from_secs(20), guarded)
            .await
            .expect("interrupted within 20 s");
        assert!(matches!(r, Err(Error::Interrupted)), "{r:?}");
        assert!(matches!(check_interrupted().await, Err(Error::Interrupted)));
    }

    #[test]
    fn run_ids_are_short_label_values() {
        let id = run_id();
        assert_eq!(id.len(), 8, "{id}");
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
