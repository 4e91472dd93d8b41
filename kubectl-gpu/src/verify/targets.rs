//! Which nodes `verify` runs on ([`select_targets`], pure), the nodes a
//! `-l` selector matches (one list call), and what is known about each
//! target before its pod is created ([`Target`]).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

use super::checks::NodeGpuFacts;
use super::options::RuntimeClassChoice;
use super::runtime_class::{RuntimeClassDecision, decide_runtime_class};
use super::spec::{PlacementIssue, placement_issues};
use crate::client::Kube;
use crate::error::{Error, Result};
use crate::facts::NodeFacts;
use crate::operator::OperatorFacts;
use crate::snapshot::{self, Snapshot};

/// The nodes to verify. `--node` names must exist (`NodeNotFound`) and be
/// GPU nodes (`NotAGpuNode`); a selector's matches are narrowed to GPU nodes;
/// no GPU node at all is `NoGpuNodes`.
pub fn select_targets<'a>(
    nodes: &'a [Node],
    names: &[String],
    selector: Option<(&str, &BTreeSet<String>)>,
) -> Result<Vec<&'a Node>> {
    let is_gpu = |n: &Node| NodeFacts::from_node(n).gpu.present;
    if !names.is_empty() {
        let picked = snapshot::select_nodes(nodes, names)?;
        let mut out: Vec<&Node> = Vec::new();
        for n in picked {
            if !is_gpu(n) {
                return Err(Error::NotAGpuNode(
                    n.metadata.name.clone().unwrap_or_default(),
                ));
            }
            if !out.iter().any(|o| o.metadata.name == n.metadata.name) {
                out.push(n);
            }
        }
        return Ok(out);
    }
    let (scope, candidates): (String, Vec<&Node>) = match selector {
        Some((sel, matched)) => (
            format!("{} node(s) matching {sel:?}", matched.len()),
            nodes
                .iter()
                .filter(|n| {
                    n.metadata
                        .name
                        .as_ref()
                        .is_some_and(|m| matched.contains(m))
                })
                .collect(),
        ),
        None => (format!("{} node(s)", nodes.len()), nodes.iter().collect()),
    };
    let out: Vec<&Node> = candidates.into_iter().filter(|n| is_gpu(n)).collect();
    if out.is_empty() {
        return Err(Error::NoGpuNodes(format!(
            "no GPU nodes among {scope}: none has the nvidia.com/gpu.present or NFD pci-10de label or nvidia.com/gpu capacity; \
             check with: kubectl get nodes -L nvidia.com/gpu.present,nvidia.com/gpu.product"
        )));
    }
    Ok(out)
}

/// One node to verify, with what its pod depends on.
pub(crate) struct Target {
    pub(crate) facts: NodeFacts,
    pub(crate) gpu_facts: NodeGpuFacts,
    pub(crate) placement: Vec<PlacementIssue>,
    pub(crate) rc: RuntimeClassDecision,
    /// `status.allocatable[--resource]` (`None`: not advertised or not a plain integer).
    pub(crate) allocatable: Option<u64>,
    /// Whether `status.capacity` lists `--resource` (`None`: the node reports no capacity).
    pub(crate) advertised: Option<bool>,
}

impl Target {
    /// The target for `node`: its facts, placement issues and runtime class.
    pub(crate) fn new(
        node: &Node,
        choice: &RuntimeClassChoice,
        operator: Option<&OperatorFacts>,
        snap: &Snapshot,
        resource: &str,
    ) -> Self {
        let facts = NodeFacts::from_node(node);
        let rc = decide_runtime_class(choice, operator, &facts, snap.runtime_classes.as_deref());
        Target {
            gpu_facts: NodeGpuFacts::from_node(node),
            placement: placement_issues(node),
            allocatable: allocatable_units(node, resource),
            advertised: advertises(node, resource),
            facts,
            rc,
        }
    }
}

/// Whether the node's reported capacity lists `resource`; `None` when it reports none (no
/// kubelet has written the node's status).
fn advertises(node: &Node, resource: &str) -> Option<bool> {
    let cap = node.status.as_ref()?.capacity.as_ref()?;
    (!cap.is_empty()).then(|| cap.contains_key(resource))
}

/// The node's allocatable count of `resource`, when it advertises one.
fn allocatable_units(node: &Node, resource: &str) -> Option<u64> {
    let q = node.status.as_ref()?.allocatable.as_ref()?.get(resource)?;
    q.0.trim().parse().ok()
}

/// The names of the nodes `selector` matches (a bad selector is
/// [`Error::InvalidSelector`]).
pub(crate) async fn nodes_matching(kube: &Kube, selector: &str) -> Result<BTreeSet<String>> {
    let api: Api<Node> = Api::all(kube.client.clone());
    let lp = ListParams::default().labels(selector);
    match snapshot::list_all(&api, &lp).await {
        Ok(nodes) => Ok(nodes.into_iter().filter_map(|n| n.metadata.name).collect()),
        Err(kube::Error::Api(s)) if s.code == 400 => Err(Error::InvalidSelector {
            selector: selector.to_string(),
            message: s.message.clone(),
        }),
        Err(e) => Err(Error::from_kube(
            e,
            &format!("list nodes -l {selector}"),
            &kube.server,
        )),
    }
}
