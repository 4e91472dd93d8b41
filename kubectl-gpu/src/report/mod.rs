//! `kubectl gpu report`: what the cluster's GPUs are doing.
//!
//! - [`nodes`]: one row per GPU node: capacity, allocatable, allocated,
//!   free per GPU resource (full, MIG, shared), versions, how pods reach
//!   the GPU, operand health; totals.
//! - [`pods`]: the pods holding GPU resources, and the scheduler's
//!   effective-request arithmetic ([`pods::effective_request`]).
//! - [`operator_view`]: chart and operator version, `ClusterPolicy` state,
//!   operand DaemonSets per node, validator results, known-bad versions.
//! - [`read`]: the one extra list call (pods, paginated, field-selected).
//! - [`table`]: kubectl-style tables; JSON/YAML come from the same structs.
//! - [`bundle`]: the support bundle (`--bundle FILE.tar.gz`), [`redact`]ed.
//! - [`watch`]: `--watch`, driven by watchers on nodes and pods.
//!
//! [`run`] reads the cluster and builds the [`GpuReport`]; [`table::render`]
//! renders a view; [`watch::run`] with [`watch::Frames`] is `--watch`;
//! [`bundle::write_file`] is `--bundle`.
//!
//! The JSON schema (`apiVersion: kubectl-gpu.rke2.io/v1`) is documented in
//! `docs/report.md`; field names are stable, new fields may be added.

pub mod bundle;
pub mod nodes;
pub mod operator_view;
pub mod pods;
pub mod quantity;
pub mod read;
pub mod redact;
pub mod table;
pub mod watch;

use crate::client::Kube;
use crate::error::Result;
use crate::facts::ClusterView;
use crate::snapshot::{Snapshot, Unreadable};
use nodes::NodesView;
use operator_view::OperatorView;
use pods::{GpuPod, jiff_now::Now};
use read::PodsRead;
use serde::Serialize;

/// `apiVersion` of every report document.
pub const API_VERSION: &str = "kubectl-gpu.rke2.io/v1";

/// The pods view.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PodsView {
    /// The namespace shown; None: all namespaces.
    pub namespace: Option<String>,
    /// Non-terminal GPU pods in scope, sorted by namespace and name
    /// (unscheduled ones included, with `counted: false`).
    pub pods: Vec<GpuPod>,
    /// GPU pods outside the namespace shown.
    pub other_namespaces: usize,
    /// Pods the API returned (GPU or not).
    pub pods_scanned: usize,
}

/// One problem the report found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `node` or `operator`.
    pub scope: String,
    pub node: Option<String>,
    pub message: String,
}

/// Everything the report knows: every view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuReport {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub server: String,
    /// RFC 3339.
    pub generated_at: String,
    /// No problem found on any GPU node or in the operator.
    pub healthy: bool,
    pub problems: Vec<Problem>,
    /// Whether pods could be listed (ALLOCATED is unknown otherwise).
    pub allocation_known: bool,
    /// What could not be read (partial RBAC), and why.
    pub unreadable: Vec<Unreadable>,
    pub nodes: NodesView,
    pub pods: PodsView,
    pub operator: OperatorView,
}

/// Which view a document carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Nodes,
    Pods,
    Operator,
}

/// One view as a document: the common header plus that view's fields.
#[derive(Debug, Serialize)]
pub struct ViewDoc<'a> {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub server: &'a str,
    pub generated_at: &'a str,
    pub healthy: bool,
    pub problems: &'a [Problem],
    pub allocation_known: bool,
    pub unreadable: &'a [Unreadable],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<&'a NodesView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pods: Option<&'a PodsView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<&'a OperatorView>,
}

impl GpuReport {
    /// Builds every view from a snapshot and the cluster-wide GPU pods
    /// (None: pods could not be listed). `namespace` scopes the pods view.
    pub fn build(
        snap: &Snapshot,
        pods: Option<&PodsRead>,
        namespace: Option<&str>,
        now: Now,
    ) -> GpuReport {
        let view = ClusterView::from_snapshot(snap);
        let all: &[GpuPod] = pods.map(|p| p.pods.as_slice()).unwrap_or_default();
        let nodes = nodes::build(snap, &view, all);
        let operator = operator_view::build(snap, &view);
        // Terminal pods hold nothing (and a real list never returns them).
        let (in_scope, other): (Vec<&GpuPod>, Vec<&GpuPod>) = all
            .iter()
            .filter(|p| !matches!(p.phase.as_str(), "Succeeded" | "Failed"))
            .partition(|p| namespace.is_none_or(|ns| p.namespace == ns));
        let mut in_scope: Vec<GpuPod> = in_scope.into_iter().cloned().collect();
        in_scope.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let pods_view = PodsView {
            namespace: namespace.map(str::to_string),
            pods: in_scope,
            other_namespaces: other.len(),
            pods_scanned: pods.map(|p| p.scanned).unwrap_or(0),
        };
        let mut problems: Vec<Problem> = nodes
            .nodes
            .iter()
            .flat_map(|n| {
                n.problems.iter().map(|m| Problem {
                    scope: "node".into(),
                    node: Some(n.name.clone()),
                    message: m.clone(),
                })
            })
            .collect();
        problems.extend(operator.problems.iter().map(|m| Problem {
            scope: "operator".into(),
            node: None,
            message: m.clone(),
        }));
        problems.extend(
            operator
                .warnings
                .iter()
                .filter(|w| w.severity == "fail")
                .map(|w| Problem {
                    scope: "operator".into(),
                    node: None,
                    message: format!("known-bad chart version: {}", w.summary),
                }),
        );
        GpuReport {
            api_version: API_VERSION,
            kind: "GpuReport",
            server: snap.server.clone(),
            generated_at: now.0.to_string(),
            healthy: problems.is_empty(),
            problems,
            allocation_known: pods.is_some(),
            unreadable: snap.unreadable.clone(),
            nodes,
            pods: pods_view,
            operator,
        }
    }

    /// One view as a document for `-o json|yaml`.
    pub fn doc(&self, view: View) -> ViewDoc<'_> {
        ViewDoc {
            api_version: self.api_version,
            kind: match view {
                View::Nodes => "GpuNodeReport",
                View::Pods => "GpuPodReport",
                View::Operator => "GpuOperatorReport",
            },
            server: &self.server,
            generated_at: &self.generated_at,
            healthy: self.healthy,
            problems: &self.problems,
            allocation_known: self.allocation_known,
            unreadable: &self.unreadable,
            nodes: (view == View::Nodes).then_some(&self.nodes),
            pods: (view == View::Pods).then_some(&self.pods),
            operator: (view == View::Operator).then_some(&self.operator),
        }
    }
}

/// What `report` shows.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    pub view: View,
    /// Namespace of the pods view; None: every namespace (`-A`).
    pub namespace: Option<String>,
    /// Also read the Helm release Secret when labels gave the chart version
    /// (`--bundle`: the release's user values). Refused: noted, not failed.
    pub helm_release: bool,
}

/// The report and the snapshot it was built from (the base of `--watch`
/// and of the bundle).
#[derive(Debug, Clone)]
pub struct ReportRun {
    pub snapshot: Snapshot,
    pub report: GpuReport,
}

/// Reads the cluster once (snapshot and GPU pods; the pods of
/// `opts.namespace` when a cluster-wide list is forbidden and the pods view
/// is shown) and builds every view.
pub async fn run(kube: &Kube, opts: &ReportOptions) -> Result<ReportRun> {
    let mut snap = Snapshot::read(kube).await?;
    if opts.helm_release {
        crate::snapshot::read_helm_release(kube, &mut snap).await;
    }
    let now = Now::system();
    let mut pods = read::gpu_pods_or_note(kube, None, now, &mut snap.unreadable).await;
    if pods.is_none()
        && opts.view == View::Pods
        && let Some(ns) = &opts.namespace
    {
        // Cluster-wide list forbidden: the namespace may still be readable.
        pods = read::gpu_pods_or_note(kube, Some(ns), now, &mut snap.unreadable).await;
    }
    let report = GpuReport::build(&snap, pods.as_ref(), opts.namespace.as_deref(), now);
    Ok(ReportRun {
        snapshot: snap,
        report,
    })
}
