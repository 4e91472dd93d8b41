//! One read of everything the commands need, with as few API calls as
//! possible, all paginated, concurrent where independent: nodes,
//! RuntimeClasses, the GPU Operator's namespace (found from its labels or
//! its `ClusterPolicy`, never hard-coded) with its Deployments, DaemonSets,
//! pods, and the `ClusterPolicy` through the dynamic API when the CRD
//! exists. The Helm release Secrets only when no `helm.sh/chart` label
//! names the chart version ([`crate::operator::chart_label_version_of`]), or
//! when asked ([`read_helm_release`], the support bundle's user values):
//! the read role of `deploy/rbac.yaml` holds no Secrets.
//!
//! Only the node list is required: anything else that cannot be read (RBAC)
//! is recorded in [`Snapshot::unreadable`], with the permission and the role
//! that grants it, and reported instead of failing.

use crate::client::Kube;
use crate::error::{Error, Result};
use crate::rbac::Missing;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Secret};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::Resource;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt::Debug;

/// Page size for list calls.
pub const PAGE: u32 = 500;

/// Labels the GPU Operator chart puts on its operator Deployment.
pub const OPERATOR_SELECTORS: &[&str] = &[
    "app.kubernetes.io/component=gpu-operator",
    "app=gpu-operator",
];

/// The ClusterPolicy kind (nvidia.com/v1, cluster scoped).
pub fn cluster_policy_resource() -> ApiResource {
    ApiResource {
        group: "nvidia.com".into(),
        version: "v1".into(),
        api_version: "nvidia.com/v1".into(),
        kind: "ClusterPolicy".into(),
        plural: "clusterpolicies".into(),
    }
}

/// Something the snapshot could not read, and why.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Unreadable {
    pub what: String,
    pub reason: String,
    /// Forbidden (403): the permission and the role that grants it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<Missing>,
}

impl Unreadable {
    /// `what` could not be read because of `err`; a 403 names the
    /// permission and its role.
    pub fn new(what: impl Into<String>, err: &kube::Error) -> Self {
        Unreadable {
            what: what.into(),
            reason: describe(err),
            missing: match err {
                kube::Error::Api(s) if s.code == 403 => Missing::from_forbidden_message(&s.message),
                _ => None,
            },
        }
    }
}

/// `what: reason`, and for a refused permission the role to bind.
impl std::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.missing {
            Some(m) => write!(f, "{}: forbidden: {m}; {}", self.what, m.advice()),
            None => write!(f, "{}: {}", self.what, self.reason),
        }
    }
}

/// The GPU Operator's namespace and what runs in it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OperatorObjects {
    pub namespace: String,
    /// How the namespace was found.
    pub found_by: String,
    pub namespace_labels: BTreeMap<String, String>,
    pub deployments: Vec<Deployment>,
    pub daemonsets: Vec<DaemonSet>,
    pub pods: Vec<Pod>,
    /// The Helm release Secrets (`owner=helm`); empty unless no
    /// `helm.sh/chart` label named the chart version or
    /// [`read_helm_release`] was called.
    pub helm_secrets: Vec<Secret>,
}

/// Everything read from the cluster, once.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    pub server: String,
    pub nodes: Vec<Node>,
    /// None when it could not be read.
    pub runtime_classes: Option<Vec<RuntimeClass>>,
    /// None when the ClusterPolicy CRD does not exist or could not be read.
    pub cluster_policies: Option<Vec<DynamicObject>>,
    pub crd_present: Option<bool>,
    pub operator: Option<OperatorObjects>,
    pub unreadable: Vec<Unreadable>,
}

/// Lists every object of a kind, page by page.
pub async fn list_all<K>(api: &Api<K>, params: &ListParams) -> Result<Vec<K>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let mut out = Vec::new();
    let mut params = params.clone().limit(PAGE);
    loop {
        let page = api.list(&params).await?;
        out.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params.continue_token = Some(token),
            None => break,
        }
    }
    Ok(out)
}

/// A kube error as one line for a partial-read note: `forbidden: …` or
/// `message (code)`.
pub fn describe(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(s) if s.code == 403 => format!("forbidden: {}", s.message),
        kube::Error::Api(s) => format!("{} ({})", s.message, s.code),
        other => other.to_string(),
    }
}

fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(s) if s.code == 404)
}

impl Snapshot {
    /// Reads the cluster. Fails only when nodes cannot be listed.
    pub async fn read(kube: &Kube) -> Result<Snapshot> {
        let client = kube.client.clone();
        let nodes_api: Api<Node> = Api::all(client.clone());
        let rc_api: Api<RuntimeClass> = Api::all(client.clone());
        let cp_api: Api<DynamicObject> = Api::all_with(client.clone(), &cluster_policy_resource());
        let deploy_api: Api<Deployment> = Api::all(client.clone());

        let lp = ListParams::default();
        let operator_lp = ListParams::default().labels(OPERATOR_SELECTORS[0]);
        let (nodes, rcs, cps, deploys) = tokio::join!(
            list_all(&nodes_api, &lp),
            list_all(&rc_api, &lp),
            list_all(&cp_api, &lp),
            list_all(&deploy_api, &operator_lp),
        );
        let nodes = nodes.map_err(kube.err("list nodes"))?;
        let mut snap = Snapshot {
            server: kube.server.clone(),
            nodes,
            ..Snapshot::default()
        };
        match rcs {
            Ok(r) => snap.runtime_classes = Some(r),
            Err(e) => snap
                .unreadable
                .push(Unreadable::new("runtimeclasses.node.k8s.io", &e)),
        }
        match cps {
            Ok(c) => {
                snap.cluster_policies = Some(c);
                snap.crd_present = Some(true);
            }
            Err(e) if is_not_found(&e) => snap.crd_present = Some(false),
            Err(e) => snap
                .unreadable
                .push(Unreadable::new("clusterpolicies.nvidia.com", &e)),
        }

        // The operator's namespace: its Deployment's labels, else the
        // ClusterPolicy's status.namespace.
        let mut found: Option<(String, String)> = None;
        match deploys {
            Ok(d) => {
                let mut deploys = d;
                if deploys.is_empty()
                    && let Ok(more) = list_all(
                        &deploy_api,
                        &ListParams::default().labels(OPERATOR_SELECTORS[1]),
                    )
                    .await
                {
                    deploys = more;
                }
                if let Some(ns) = deploys.iter().find_map(|d| d.metadata.namespace.clone()) {
                    found = Some((ns, "operator Deployment labels".into()));
                }
            }
            Err(e) => snap
                .unreadable
                .push(Unreadable::new("deployments.apps (all namespaces)", &e)),
        }
        if found.is_none() {
            found = snap
                .cluster_policies
                .iter()
                .flatten()
                .find_map(|cp| {
                    cp.data
                        .pointer("/status/namespace")
                        .and_then(|v| v.as_str())
                })
                .map(|ns| (ns.to_string(), "ClusterPolicy status.namespace".into()));
        }
        if let Some((namespace, found_by)) = found {
            let mut ops = read_operator(kube, &namespace, found_by, &mut snap.unreadable).await;
            let cps = snap.cluster_policies.as_deref().unwrap_or_default();
            if crate::operator::chart_label_version_of(&ops, cps).is_none() {
                read_release_secrets(kube, &mut ops, &mut snap.unreadable).await;
            }
            snap.operator = Some(ops);
        }
        Ok(snap)
    }
}

/// Reads the operator's Helm release Secrets into the snapshot unless they
/// were read already (or refused): for the release's user values, which
/// only the Secret holds. A refusal is recorded in `unreadable`.
pub async fn read_helm_release(kube: &Kube, snap: &mut Snapshot) {
    let Some(ops) = snap.operator.as_mut() else {
        return;
    };
    let tried = !ops.helm_secrets.is_empty()
        || snap
            .unreadable
            .iter()
            .any(|u| u.what.starts_with(HELM_SECRETS_WHAT));
    if !tried {
        read_release_secrets(kube, ops, &mut snap.unreadable).await;
    }
}

/// How an unreadable Helm release is named in [`Snapshot::unreadable`].
pub const HELM_SECRETS_WHAT: &str = "secrets (Helm release)";

async fn read_release_secrets(
    kube: &Kube,
    ops: &mut OperatorObjects,
    unreadable: &mut Vec<Unreadable>,
) {
    let api: Api<Secret> = Api::namespaced(kube.client.clone(), &ops.namespace);
    let lp = ListParams::default().labels(crate::helm::release::RELEASE_LABEL_SELECTOR);
    match list_all(&api, &lp).await {
        Ok(s) => ops.helm_secrets = s,
        Err(e) => unreadable.push(Unreadable::new(
            format!("{HELM_SECRETS_WHAT} in namespace {}", ops.namespace),
            &e,
        )),
    }
}

async fn read_operator(
    kube: &Kube,
    namespace: &str,
    found_by: String,
    unreadable: &mut Vec<Unreadable>,
) -> OperatorObjects {
    let client = kube.client.clone();
    let ns_api: Api<Namespace> = Api::all(client.clone());
    let deploy_api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let ds_api: Api<DaemonSet> = Api::namespaced(client.clone(), namespace);
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let lp = ListParams::default();
    let (ns, deploys, dss, pods) = tokio::join!(
        ns_api.get(namespace),
        list_all(&deploy_api, &lp),
        list_all(&ds_api, &lp),
        list_all(&pod_api, &lp),
    );
    let mut out = OperatorObjects {
        namespace: namespace.to_string(),
        found_by,
        ..OperatorObjects::default()
    };
    let mut note = |what: &str, e: kube::Error| {
        unreadable.push(Unreadable::new(
            format!("{what} in namespace {namespace}"),
            &e,
        ))
    };
    match ns {
        Ok(n) => out.namespace_labels = n.metadata.labels.unwrap_or_default(),
        Err(e) => note("namespace", e),
    }
    match deploys {
        Ok(d) => out.deployments = d,
        Err(e) => note("deployments", e),
    }
    match dss {
        Ok(d) => out.daemonsets = d,
        Err(e) => note("daemonsets", e),
    }
    match pods {
        Ok(p) => out.pods = p,
        Err(e) => note("pods", e),
    }
    out
}

/// Fails with a clear error when `--node` names nodes that do not exist.
pub fn select_nodes<'a>(nodes: &'a [Node], names: &[String]) -> Result<Vec<&'a Node>> {
    if names.is_empty() {
        return Ok(nodes.iter().collect());
    }
    names
        .iter()
        .map(|name| {
            nodes
                .iter()
                .find(|n| n.metadata.name.as_deref() == Some(name))
                .ok_or_else(|| Error::NodeNotFound(name.clone()))
        })
        .collect()
}
