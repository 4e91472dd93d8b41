//! `kubectl gpu check-runtime` as a library command: read the cluster once,
//! run every rule, optionally read each GPU node's host files (`--deep`),
//! and return one [`CheckReport`] — the `-o json|yaml` document, the table
//! ([`table`]) and the support bundle's `check-runtime.json` all come from it.
//!
//! Each known RKE2/K3s failure mode is a small pure function from facts to
//! [`Finding`]s (sources: the gpu-operator, k3s and rke2 issues each rule
//! names). The rules live under this command (they were `checks`) because
//! no other command runs them, and `verify::checks` is a different thing.
//!
//! - [`api`]: rules over the API snapshot (nodes, RuntimeClasses, operator).
//! - [`host`]: rules over files read from a node (`--deep`), and that read.
//! - [`operand_texts`]: what failing operand pods say (log tail, events,
//!   container states), that read, and the rules that classify it.
//! - [`finding`]: [`Finding`], [`Status`], [`Summary`].
//! - [`sharing`]: how a node partitions or shares its GPUs (`mig-state`,
//!   `gpu-sharing`).
//! - [`table`]: the human-readable output.
//! - [`upgrade`]: the upgrade preflight (`--upgrade-to-rke2`,
//!   `--upgrade-to-chart`): `upgrade-*` findings and the safe order.
//!
//! [`run`] is the imperative shell (snapshot, failing operands' logs and
//! events, node-agent pods); [`evaluate`] is the pure core, called by
//! `report --bundle` on its own snapshot and reads.

pub mod api;
pub mod finding;
pub mod host;
pub mod operand_texts;
pub mod sharing;
pub mod table;
pub mod upgrade;

pub use finding::{Finding, Status, Summary};

use crate::client::Kube;
use crate::error::{EXIT_FAILED, Result};
use crate::facts::{ClusterView, NodeFacts};
use crate::node::agent::AgentOptions;
use crate::snapshot::{self, Snapshot};
use host::DeepRead;
use operand_texts::OperandTexts;
use serde::Serialize;

/// What `check-runtime` checks.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// Only these nodes (`--node`); empty: every node.
    pub nodes: Vec<String>,
    /// `--deep`: also read host files on each selected GPU node.
    pub deep: bool,
    /// The node-agent pods of `--deep`.
    pub agent: AgentOptions,
    /// The upgrade preflight's targets (empty: no preflight).
    pub upgrade: upgrade::UpgradeTarget,
}

/// The `check-runtime -o json|yaml` document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckReport {
    /// The API server checked.
    pub server: String,
    pub summary: Summary,
    /// Sorted by node (cluster-wide first), worst status first.
    pub findings: Vec<Finding>,
    /// The upgrade preflight's plan, when targets were given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<upgrade::UpgradePlan>,
}

impl CheckReport {
    /// 1 when a rule failed, else 0.
    pub fn exit_code(&self) -> u8 {
        if self.summary.fail > 0 {
            EXIT_FAILED
        } else {
            0
        }
    }
}

/// Reads the cluster, runs every rule (with the logs and events of failing
/// operand pods, and with `deep` the host rules of each selected GPU node),
/// and returns the report. Fails on an unknown `--node`, on a failed read,
/// or when the node-agent namespace is unusable.
pub async fn run(kube: &Kube, opts: &CheckOptions) -> Result<CheckReport> {
    let mut snap = Snapshot::read(kube).await?;
    if opts.upgrade.chart.is_some() {
        // The release's user values: which removed values it sets.
        snapshot::read_helm_release(kube, &mut snap).await;
    }
    selected_names(&snap, &opts.nodes)?;
    let texts = operand_texts::read(
        kube,
        &snap,
        &opts.nodes,
        crate::report::pods::jiff_now::Now::system(),
    )
    .await;
    let deep = if opts.deep {
        let view = ClusterView::from_snapshot(&snap);
        let nodes = deep_targets(&snap, &view, &opts.nodes)?;
        Some(host::read_nodes(kube, &nodes, &opts.agent).await?)
    } else {
        None
    };
    let selected = selected_names(&snap, &opts.nodes)?;
    Ok(report(
        &snap,
        &selected,
        &opts.nodes,
        deep.as_ref(),
        Some(&texts),
        &opts.upgrade,
    ))
}

/// The nodes `--deep` reads: every GPU node when `names` is empty, else
/// each named node, labelled or not (before NFD or a device plugin runs, a
/// GPU node has no label yet, and its host is exactly what to check). Fails
/// on a name that is not a node.
pub fn deep_targets(
    snap: &Snapshot,
    view: &ClusterView,
    names: &[String],
) -> Result<Vec<NodeFacts>> {
    let selected = selected_names(snap, names)?;
    Ok(host_nodes(view, names)
        .filter(|n| selected.contains(&n.name))
        .cloned()
        .collect())
}

/// The nodes host rules run on: the GPU nodes, and the nodes `names` names.
fn host_nodes<'a>(
    view: &'a ClusterView,
    names: &'a [String],
) -> impl Iterator<Item = &'a NodeFacts> {
    view.nodes
        .iter()
        .filter(move |n| n.gpu.present || names.contains(&n.name))
}

fn selected_names(snap: &Snapshot, names: &[String]) -> Result<Vec<String>> {
    Ok(snapshot::select_nodes(&snap.nodes, names)?
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect())
}

/// The pure core: every API rule on a snapshot, restricted to the nodes
/// named (all when empty), a `gpu-node` failure for each named node that is
/// not a GPU node, the host findings of what `deep` read, the findings of
/// what the failing operand pods say (`operands`), sorted, with the summary.
pub fn evaluate(
    snap: &Snapshot,
    names: &[String],
    deep: Option<&DeepRead>,
    operands: Option<&OperandTexts>,
) -> Result<CheckReport> {
    let selected = selected_names(snap, names)?;
    Ok(report(
        snap,
        &selected,
        names,
        deep,
        operands,
        &upgrade::UpgradeTarget::default(),
    ))
}

/// [`evaluate`] with the upgrade preflight for `target`.
pub fn evaluate_upgrade(
    snap: &Snapshot,
    names: &[String],
    deep: Option<&DeepRead>,
    target: &upgrade::UpgradeTarget,
) -> Result<CheckReport> {
    let selected = selected_names(snap, names)?;
    Ok(report(snap, &selected, names, deep, None, target))
}

/// [`evaluate`] on every node (no `--node`): what `report --bundle` writes
/// as `check-runtime.json`.
pub fn evaluate_all(
    snap: &Snapshot,
    deep: Option<&DeepRead>,
    operands: Option<&OperandTexts>,
) -> CheckReport {
    let all: Vec<String> = snap
        .nodes
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    report(
        snap,
        &all,
        &[],
        deep,
        operands,
        &upgrade::UpgradeTarget::default(),
    )
}

fn report(
    snap: &Snapshot,
    selected: &[String],
    names: &[String],
    deep: Option<&DeepRead>,
    operands: Option<&OperandTexts>,
    target: &upgrade::UpgradeTarget,
) -> CheckReport {
    let view = ClusterView::from_snapshot(snap);
    let mut findings: Vec<Finding> = api::run(&view);
    if let Some(texts) = operands {
        findings.extend(operand_texts::findings(texts, view.operator.as_ref()));
    }
    findings.retain(|f| f.node.as_ref().is_none_or(|n| selected.contains(n)));
    findings.extend(not_gpu_nodes(&view, names, deep));
    if let Some(deep) = deep {
        for node in host_nodes(&view, names) {
            if let Some(read) = deep.nodes.get(&node.name) {
                findings.extend(host::findings(
                    node,
                    view.operator.as_ref(),
                    read,
                    &deep.image,
                ));
            }
        }
    }
    let plan = (!target.is_empty()).then(|| {
        let values = snap
            .operator
            .as_ref()
            .and_then(|o| crate::helm::release::find_gpu_operator(&o.helm_secrets).ok())
            .flatten()
            .map(|r| upgrade::UserValues(r.config));
        let nodes = host_nodes(&view, names).filter(|n| selected.contains(&n.name));
        let up = upgrade::findings(nodes, view.operator.as_ref(), values.as_ref(), deep, target);
        let plan = upgrade::plan(target, &up);
        findings.extend(up.findings);
        plan
    });
    findings.sort_by_key(|f| (f.node.clone(), std::cmp::Reverse(f.status)));
    CheckReport {
        server: snap.server.clone(),
        summary: Summary::of(&findings),
        findings,
        upgrade: plan,
    }
}

/// `gpu-node`: a node named with `--node` that is not a GPU node. With
/// `--deep`, a loaded NVIDIA kernel driver on its host makes it a GPU node
/// whose GPUs are not advertised yet (a warning: the host checks still
/// run); without one, or without `--deep`, it fails.
fn not_gpu_nodes(view: &ClusterView, names: &[String], deep: Option<&DeepRead>) -> Vec<Finding> {
    const NO_LABEL: &str =
        "no nvidia.com/gpu.present or NFD NVIDIA PCI label and no nvidia.com/gpu capacity";
    names
        .iter()
        .filter(|name| !view.gpu_nodes().any(|n| &n.name == *name))
        .map(|name| {
            let driver = deep
                .and_then(|d| d.nodes.get(name.as_str()))
                .and_then(|r| r.as_ref().ok())
                .and_then(|(_, probe)| probe.file(host::DRIVER_VERSION_FILE))
                .and_then(|t| t.lines().next())
                .map(str::trim);
            match (deep.is_some(), driver) {
                (_, Some(line)) => Finding::warn(
                    "gpu-node",
                    Some(name),
                    format!("GPUs not advertised yet ({NO_LABEL}), but the host has the NVIDIA kernel driver loaded: {line}"),
                )
                .evidence(format!("{}: {line}", host::DRIVER_VERSION_FILE))
                .fix(format!(
                    "advertise the GPUs: install the GPU Operator (helm rke2gpu install) or the NVIDIA device plugin, then check: kubectl get node {name} -o jsonpath='{{.status.allocatable.nvidia\\.com/gpu}}'"
                )),
                (true, None) => Finding::fail(
                    "gpu-node",
                    Some(name),
                    format!("not a GPU node: {NO_LABEL}, and no NVIDIA kernel driver is loaded on the host ({} missing)", host::DRIVER_VERSION_FILE),
                )
                .fix("pick a GPU node: kubectl get nodes -l nvidia.com/gpu.present=true; or install the NVIDIA driver on this one (or driver.enabled=true)"),
                (false, None) => Finding::fail("gpu-node", Some(name), format!("not a GPU node: {NO_LABEL}"))
                    .fix(format!("pick a GPU node: kubectl get nodes -l nvidia.com/gpu.present=true; or read its host: kubectl gpu check-runtime --deep --node {name}")),
            }
        })
        .collect()
}
