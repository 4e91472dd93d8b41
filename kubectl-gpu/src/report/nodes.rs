//! The nodes view: one row per GPU node with capacity, allocatable,
//! allocated (sum of the effective requests of pods bound to it and not in a
//! terminal phase) and free, per GPU resource, plus versions, the GPU
//! injection path and operand health. Cordoned, NotReady and tainted GPU
//! nodes are always rows.

use super::pods::{GpuKind, GpuPod, gpu_kind, is_gpu_resource};
use crate::facts::ClusterView;
use crate::facts::{NodeFacts, quantity_count};
use crate::labels;
use crate::matrix::{self, GpuInjection};
use crate::operator::{EXPECTED_OPERANDS, OperandPod, OperatorFacts};
use crate::snapshot::Snapshot;
use k8s_openapi::api::core::v1::Node;
use serde::Serialize;
use std::collections::BTreeMap;

/// Counts of one resource on one node (devices).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ResourceCount {
    /// `status.capacity`; None when the node does not advertise it.
    pub capacity: Option<i64>,
    /// `status.allocatable`; None when the node does not advertise it.
    pub allocatable: Option<i64>,
    /// Sum of effective requests of pods bound to the node, not terminal.
    pub allocated: i64,
    /// `allocatable - allocated`, never below 0; None when not advertised.
    pub free: Option<i64>,
}

impl ResourceCount {
    fn finish(mut self) -> Self {
        self.free = self.allocatable.map(|a| (a - self.allocated).max(0));
        self
    }

    /// More allocated than allocatable (devices went unhealthy or vanished
    /// after pods were bound).
    pub fn overcommitted(&self) -> bool {
        self.allocated > self.allocatable.unwrap_or(0)
    }
}

/// How GPU pods reach the GPU on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuntimeInfo {
    /// `runtime-class`, `cdi` or `unknown` (RuntimeClasses unreadable).
    pub mode: String,
    /// The nvidia RuntimeClass pods must name (runtime-class mode).
    pub runtime_class: Option<String>,
    /// Whether that RuntimeClass exists; None when unreadable.
    pub runtime_class_present: Option<bool>,
    /// RKE2/K3s `default-runtime` from the node's args annotation.
    pub default_runtime: Option<String>,
    /// What the RUNTIME column shows.
    pub summary: String,
}

/// The operands on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeOperands {
    /// `absent` (no operator), `disabled` (nvidia.com/gpu.deploy.operands=false),
    /// `healthy` or `unhealthy`.
    pub state: String,
    /// Operand pods that are ready (or completed).
    pub ready: usize,
    pub total: usize,
    /// Expected operands (`app` labels) with no pod on the node.
    pub missing: Vec<String>,
    pub pods: Vec<OperandPod>,
    /// What the OPERATOR column shows.
    pub summary: String,
}

/// One GPU node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeRow {
    pub name: String,
    /// `Ready`, `NotReady`, with `,SchedulingDisabled` when cordoned.
    pub status: String,
    pub ready: bool,
    pub cordoned: bool,
    /// Every taint, `key=value:Effect`.
    pub taints: Vec<String>,
    pub product: Option<String>,
    /// `nvidia.com/gpu`.
    pub gpu: ResourceCount,
    /// Every GPU resource the node advertises or pods hold: `nvidia.com/gpu`,
    /// `nvidia.com/gpu.shared`, `nvidia.com/mig-*`.
    pub resources: BTreeMap<String, ResourceCount>,
    /// GPU pods counted on this node.
    pub gpu_pods: usize,
    pub driver_version: Option<String>,
    pub cuda_runtime: Option<String>,
    /// `rke2`, `k3s` or `other`.
    pub distribution: String,
    /// The kubelet version (`v1.33.10+rke2r1`).
    pub kubelet_version: String,
    /// The containerd version (`2.2.2`), None for other runtimes.
    pub containerd_version: Option<String>,
    /// `containerd://2.2.2-k3s1` as the node reports it.
    pub container_runtime: String,
    pub runtime: RuntimeInfo,
    pub operator: NodeOperands,
    pub mig_strategy: Option<String>,
    pub mig_capable: Option<bool>,
    /// MIG config, the MIG manager's state, profiles GFD counts vs what is
    /// advertised, operands paused for a MIG change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mig: Option<crate::mig::MigView>,
    /// Time-slicing / MPS: strategy, replicas, the resource and what it
    /// advertises, the selected device plugin config.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sharing: Option<crate::sharing::SharingView>,
    /// The RKE2 version-matrix row that applies (RKE2/K3s nodes).
    pub matrix_row: Option<String>,
    /// What is wrong on this node (empty: healthy).
    pub problems: Vec<String>,
}

/// Sums over the rows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub nodes: usize,
    pub ready: usize,
    pub cordoned: usize,
    /// `nvidia.com/gpu` summed.
    pub gpu: ResourceCount,
    /// `nvidia.com/gpu` free on Ready, uncordoned nodes.
    pub free_schedulable: i64,
    pub resources: BTreeMap<String, ResourceCount>,
    pub gpu_pods: usize,
}

/// The nodes view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodesView {
    pub nodes: Vec<NodeRow>,
    pub totals: Totals,
    /// Nodes without GPUs (not shown).
    pub non_gpu_nodes: usize,
}

fn short_app(app: &str) -> &str {
    let a = app.strip_prefix("nvidia-").unwrap_or(app);
    a.strip_suffix("-daemonset").unwrap_or(a)
}

fn node_resources(node: &Node) -> BTreeMap<String, ResourceCount> {
    let mut out: BTreeMap<String, ResourceCount> = BTreeMap::new();
    let status = node.status.as_ref();
    for (map, is_cap) in [
        (status.and_then(|s| s.capacity.as_ref()), true),
        (status.and_then(|s| s.allocatable.as_ref()), false),
    ] {
        for (k, q) in map.into_iter().flatten() {
            if !is_gpu_resource(k) {
                continue;
            }
            let n = quantity_count(q);
            let e = out.entry(k.clone()).or_default();
            if is_cap {
                e.capacity = n;
            } else {
                e.allocatable = n;
            }
        }
    }
    out
}

fn operands(facts: &NodeFacts, operator: Option<&OperatorFacts>) -> NodeOperands {
    let Some(op) = operator else {
        return NodeOperands {
            state: "absent".into(),
            ready: 0,
            total: 0,
            missing: vec![],
            pods: vec![],
            summary: "-".into(),
        };
    };
    let mut pods: Vec<OperandPod> = op.operands_on(&facts.name).cloned().collect();
    pods.sort_by(|a, b| (&a.app, &a.pod).cmp(&(&b.app, &b.pod)));
    let ok = |p: &OperandPod| p.phase == "Succeeded" || (p.ready && p.problem.is_none());
    let ready = pods.iter().filter(|p| ok(p)).count();
    let disabled = facts
        .labels
        .get(labels::DEPLOY_OPERANDS)
        .is_some_and(|v| v == "false");
    let missing: Vec<String> = if disabled {
        vec![]
    } else {
        EXPECTED_OPERANDS
            .iter()
            .filter(|app| !pods.iter().any(|p| &p.app == *app))
            .map(|a| a.to_string())
            .collect()
    };
    let bad: Vec<String> = pods
        .iter()
        .filter(|p| !ok(p))
        .map(|p| {
            let why = p
                .problem
                .as_deref()
                .and_then(|s| s.split(": ").nth(2))
                .map(str::to_string)
                .unwrap_or_else(|| {
                    if p.phase == "Running" {
                        "not ready".into()
                    } else {
                        p.phase.clone()
                    }
                });
            format!("{} {}", short_app(&p.app), why)
        })
        .collect();
    let state = if disabled && pods.is_empty() {
        "disabled"
    } else if bad.is_empty() && missing.is_empty() {
        "healthy"
    } else {
        "unhealthy"
    };
    let mut summary = if state == "disabled" {
        "disabled".to_string()
    } else {
        format!("{ready}/{} ready", pods.len())
    };
    let mut notes = bad;
    if !missing.is_empty() {
        notes.push(format!(
            "no {}",
            missing
                .iter()
                .map(|m| short_app(m))
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    if !notes.is_empty() {
        summary.push_str(&format!(" ({})", notes.join("; ")));
    }
    NodeOperands {
        state: state.into(),
        ready,
        total: pods.len(),
        missing,
        pods,
        summary,
    }
}

fn runtime_info(facts: &NodeFacts, view: &ClusterView) -> RuntimeInfo {
    let operator = view.operator.as_ref();
    let class = operator
        .and_then(|o| o.runtime_class.clone())
        .unwrap_or_else(|| "nvidia".to_string());
    let present = view.runtime_classes.as_ref().map(|rcs| {
        rcs.iter()
            .any(|rc| rc.metadata.name.as_deref() == Some(&class))
    });
    let default_runtime = facts.args.default_runtime.clone();
    let cdi = operator
        .and_then(|o| o.chart_version)
        .map(|chart| {
            matches!(
                matrix::gpu_injection(
                    chart,
                    operator.and_then(|o| o.cdi_enabled),
                    facts.containerd()
                ),
                GpuInjection::Cdi
            )
        })
        .unwrap_or(false);
    let (mode, summary) = if cdi {
        ("cdi", "cdi".to_string())
    } else {
        match present {
            None => ("unknown", format!("{class}?")),
            Some(true) => ("runtime-class", class.clone()),
            Some(false) => ("runtime-class", format!("{class} missing")),
        }
    };
    let summary = match default_runtime.as_deref() {
        Some(d) if d == class && !cdi => format!("{summary} (default)"),
        _ => summary,
    };
    RuntimeInfo {
        mode: mode.into(),
        runtime_class: (!cdi).then_some(class),
        runtime_class_present: if cdi { None } else { present },
        default_runtime,
        summary,
    }
}

/// Builds the nodes view from a snapshot and the GPU pods.
pub fn build(snap: &Snapshot, view: &ClusterView, pods: &[GpuPod]) -> NodesView {
    let mut allocated: BTreeMap<&str, BTreeMap<&str, i64>> = BTreeMap::new();
    let mut pod_counts: BTreeMap<&str, usize> = BTreeMap::new();
    for p in pods.iter().filter(|p| p.counted) {
        let Some(node) = p.node.as_deref() else {
            continue;
        };
        *pod_counts.entry(node).or_default() += 1;
        let per = allocated.entry(node).or_default();
        for (r, n) in &p.resources {
            *per.entry(r.as_str()).or_default() += n;
        }
    }
    let mut rows = Vec::new();
    let mut non_gpu = 0;
    for (node, facts) in snap.nodes.iter().zip(&view.nodes) {
        let mut resources = node_resources(node);
        if let Some(per) = allocated.get(facts.name.as_str()) {
            for (r, n) in per {
                resources.entry(r.to_string()).or_default().allocated = *n;
            }
        }
        let advertises = resources
            .values()
            .any(|c| c.capacity.unwrap_or(0) > 0 || c.allocatable.unwrap_or(0) > 0);
        if !(facts.gpu.present || advertises || resources.values().any(|c| c.allocated > 0)) {
            non_gpu += 1;
            continue;
        }
        let resources: BTreeMap<String, ResourceCount> = resources
            .into_iter()
            .map(|(k, v)| (k, v.finish()))
            .collect();
        let gpu = resources
            .get(labels::RESOURCE_GPU)
            .copied()
            .unwrap_or_default()
            .finish();
        let operator = operands(facts, view.operator.as_ref());
        let runtime = runtime_info(facts, view);
        let mut problems = Vec::new();
        if !facts.ready {
            problems.push("node is NotReady".to_string());
        }
        if !advertises {
            problems.push("no GPU resource advertised (nvidia.com/gpu missing or 0): is the device plugin running?".to_string());
        }
        for (r, c) in &resources {
            if let (Some(cap), Some(alloc)) = (c.capacity, c.allocatable)
                && alloc < cap
            {
                problems.push(format!(
                    "{r}: allocatable {alloc} < capacity {cap} (devices unhealthy or reserved)"
                ));
            }
            if c.overcommitted() {
                problems.push(format!(
                    "{r}: {} allocated but only {} allocatable",
                    c.allocated,
                    c.allocatable.unwrap_or(0)
                ));
            }
        }
        if operator.state == "unhealthy" {
            problems.push(format!("operands: {}", operator.summary));
        }
        let sharing = crate::sharing::SharingView::of(facts);
        if let Some(sh) = sharing.as_ref().filter(|s| s.not_multiplied()) {
            problems.push(format!(
                "{} {} replicas x {} GPUs, but {} {} advertised (restart the device plugin)",
                sh.strategy_name(),
                sh.replicas.unwrap_or(0),
                sh.gpus.unwrap_or(0),
                sh.advertised.unwrap_or(0),
                sh.resource
            ));
        }
        let mig = crate::mig::MigView::of(facts);
        if let Some(m) = &mig {
            match m.state.as_deref() {
                Some("failed") => problems.push(format!(
                    "MIG manager failed to apply nvidia.com/mig.config={}",
                    m.config.as_deref().unwrap_or("")
                )),
                Some(s @ ("pending" | "rebooting")) => problems.push(format!(
                    "MIG change to {} in progress ({s}){}",
                    m.config.as_deref().unwrap_or(""),
                    if m.paused.is_empty() {
                        String::new()
                    } else {
                        format!(", paused: {}", m.paused.join(", "))
                    }
                )),
                _ => {}
            }
            for (p, want, have) in m.unadvertised() {
                problems.push(format!(
                    "mig-{p}: {want} MIG devices by GFD, {have} advertised (restart the device plugin)"
                ));
            }
        }
        if runtime.runtime_class_present == Some(false) {
            problems.push(format!(
                "RuntimeClass {} does not exist",
                runtime.runtime_class.clone().unwrap_or_default()
            ));
        }
        rows.push(NodeRow {
            name: facts.name.clone(),
            status: facts.status_text(),
            ready: facts.ready,
            cordoned: facts.cordoned,
            taints: facts.taints.iter().map(|t| t.to_string()).collect(),
            product: facts.gpu.product.clone(),
            gpu,
            gpu_pods: pod_counts.get(facts.name.as_str()).copied().unwrap_or(0),
            resources,
            driver_version: facts.gpu.driver_version.clone(),
            cuda_runtime: facts.gpu.cuda_runtime.clone(),
            distribution: facts.distribution.to_string().to_lowercase(),
            kubelet_version: facts.kubelet_raw.clone(),
            containerd_version: facts.containerd().map(|t| t.to_string()),
            container_runtime: node
                .status
                .as_ref()
                .and_then(|s| s.node_info.as_ref())
                .map(|i| i.container_runtime_version.clone())
                .unwrap_or_default(),
            runtime,
            operator,
            mig_strategy: facts.gpu.mig_strategy.clone(),
            mig_capable: facts.gpu.mig_capable,
            mig,
            sharing,
            matrix_row: facts
                .kubelet
                .as_ref()
                .filter(|_| facts.is_rke2_like())
                .map(|k| matrix::rke2_row(k, facts.containerd()).id.to_string()),
            problems,
        });
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    let totals = totals(&rows);
    NodesView {
        nodes: rows,
        totals,
        non_gpu_nodes: non_gpu,
    }
}

fn add(into: &mut ResourceCount, c: &ResourceCount) {
    fn sum(a: Option<i64>, b: Option<i64>) -> Option<i64> {
        match (a, b) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        }
    }
    into.capacity = sum(into.capacity, c.capacity);
    into.allocatable = sum(into.allocatable, c.allocatable);
    into.allocated += c.allocated;
    into.free = sum(into.free, c.free);
}

fn totals(rows: &[NodeRow]) -> Totals {
    let mut t = Totals {
        nodes: rows.len(),
        ..Totals::default()
    };
    for r in rows {
        t.ready += usize::from(r.ready);
        t.cordoned += usize::from(r.cordoned);
        t.gpu_pods += r.gpu_pods;
        add(&mut t.gpu, &r.gpu);
        if r.ready && !r.cordoned {
            t.free_schedulable += r.gpu.free.unwrap_or(0);
        }
        for (k, c) in &r.resources {
            add(t.resources.entry(k.clone()).or_default(), c);
        }
    }
    t
}

/// `1g.10gb 2/7, 2g.20gb 0/3` for the MIG column (allocated/allocatable).
pub fn mig_summary(row: &NodeRow) -> String {
    let parts: Vec<String> = row
        .resources
        .iter()
        .filter(|(k, _)| gpu_kind(k) == Some(GpuKind::Mig))
        .map(|(k, c)| {
            format!(
                "{} {}/{}",
                k.trim_start_matches(labels::RESOURCE_MIG_PREFIX),
                c.allocated,
                c.allocatable.unwrap_or(0)
            )
        })
        .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(",")
    }
}

/// `3/8` for the SHARED column (allocated/allocatable of `nvidia.com/gpu.shared`).
pub fn shared_summary(row: &NodeRow) -> String {
    match row.resources.get(labels::RESOURCE_GPU_SHARED) {
        Some(c) => format!("{}/{}", c.allocated, c.allocatable.unwrap_or(0)),
        None => "-".into(),
    }
}
