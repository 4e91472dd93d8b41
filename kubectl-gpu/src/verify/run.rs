//! `kubectl gpu verify`, the I/O: pick the GPU nodes, decide the runtime
//! class per node, check RBAC before creating anything, create one verify
//! pod per node (bounded concurrency), wait for each with a watch, read its
//! log (and, when it failed, its events), run the checks, and always clean
//! up (also on Ctrl-C) unless `--keep`.
//!
//! The pure parts of this module ([`decide_runtime_class`],
//! [`select_targets`], [`finalize`], [`render_table`], [`progress_message`])
//! are tested without a cluster; [`verify`] and [`cleanup`] talk to the API.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use serde::Serialize;

use super::checks::{
    Check, CheckStatus, GpuRequest, NodeGpuFacts, PodGpus, check_unique_uuids, check_vectoradd,
    run_checks,
};
use super::diagnosis::{Diagnosis, DiagnosisInput, DiagnosisKind, diagnose};
use super::output::{SmiResult, VectorAddResult, parse_smi_log, parse_vectoradd_log};
use super::spec::{
    APP_NAME, COMPONENT_VERIFY, CONTAINER_NAME, LABEL_COMPONENT, LABEL_MANAGED_BY, LABEL_NAME,
    LABEL_RUN_ID, PlacementIssue, VerifySpecInput, Workload, build_verify_pod, placement_issues,
};
use crate::client::Kube;
use crate::error::{EXIT_FAILED, Error, Result};
use crate::facts::NodeFacts;
use crate::labels;
use crate::matrix::{self, GpuInjection};
use crate::nvidia_smi::Gpu;
use crate::operator::OperatorFacts;
use crate::snapshot::{self, Snapshot};

/// The RuntimeClass the GPU Operator and rke2-runtimeclasses create.
pub const NVIDIA_RUNTIME_CLASS: &str = "nvidia";
/// Prefix of the namespace `verify` creates when `-n` is not given.
pub const NAMESPACE_PREFIX: &str = "kubectl-gpu-verify-";
/// Default `--timeout`.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 180;
/// Default `--parallel`.
pub const DEFAULT_PARALLEL: usize = 16;
/// `activeDeadlineSeconds` = timeout + this, so a killed client never leaves a pod running long.
pub const DEADLINE_MARGIN_SECONDS: u64 = 30;

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

/// `--runtime-class auto|none|NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeClassChoice {
    /// Decide per node from the operator version, CDI and containerd.
    #[default]
    Auto,
    /// Never set `runtimeClassName`.
    None,
    /// Always set this `runtimeClassName`.
    Named(String),
}

impl FromStr for RuntimeClassChoice {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        match s {
            "" => Err("empty RuntimeClass name (use auto, none or a name)".into()),
            "auto" => Ok(RuntimeClassChoice::Auto),
            "none" => Ok(RuntimeClassChoice::None),
            name if is_dns_subdomain(name) => Ok(RuntimeClassChoice::Named(name.to_string())),
            name => Err(format!("{name:?} is not a valid RuntimeClass name")),
        }
    }
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// Everything `verify` was asked to do.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// `--node` (repeatable); empty: every GPU node (or the selector's).
    pub nodes: Vec<String>,
    /// `-l`: a label selector on nodes.
    pub selector: Option<String>,
    /// `-n`: an existing namespace; `None`: create `kubectl-gpu-verify-<run>`.
    pub namespace: Option<String>,
    pub gpus: u32,
    pub resource: String,
    pub runtime_class: RuntimeClassChoice,
    pub image: Option<String>,
    pub workload: Workload,
    pub timeout: Duration,
    pub parallel: usize,
    pub keep: bool,
    pub tolerate_all_taints: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            nodes: Vec::new(),
            selector: None,
            namespace: None,
            gpus: 1,
            resource: super::spec::DEFAULT_RESOURCE_NAME.to_string(),
            runtime_class: RuntimeClassChoice::Auto,
            image: None,
            workload: Workload::Smi,
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECONDS),
            parallel: DEFAULT_PARALLEL,
            keep: false,
            tolerate_all_taints: false,
        }
    }
}

// ---------------------------------------------------------------------------
// Pure: runtime class per node
// ---------------------------------------------------------------------------

/// The `runtimeClassName` of one node's verify pod, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuntimeClassDecision {
    pub name: Option<String>,
    pub reason: String,
}

fn rc_exists(runtime_classes: Option<&[RuntimeClass]>, name: &str) -> Option<bool> {
    runtime_classes.map(|list| {
        list.iter()
            .any(|r| r.metadata.name.as_deref() == Some(name))
    })
}

/// Decides `runtimeClassName` for a node: the user's choice, else from the
/// GPU Operator's chart version and CDI/NRI settings and the node's
/// containerd (`matrix::gpu_injection`), else (no operator, or its version
/// unknown) `nvidia` when that RuntimeClass exists.
pub fn decide_runtime_class(
    choice: &RuntimeClassChoice,
    operator: Option<&OperatorFacts>,
    node: &NodeFacts,
    runtime_classes: Option<&[RuntimeClass]>,
) -> RuntimeClassDecision {
    match choice {
        RuntimeClassChoice::None => {
            return RuntimeClassDecision {
                name: None,
                reason: "--runtime-class none".into(),
            };
        }
        RuntimeClassChoice::Named(n) => {
            return RuntimeClassDecision {
                name: Some(n.clone()),
                reason: format!("--runtime-class {n}"),
            };
        }
        RuntimeClassChoice::Auto => {}
    }
    let containerd = node.containerd();
    let containerd_text = containerd
        .map(|c| format!("containerd {c}"))
        .unwrap_or_else(|| format!("runtime {:?}", node.runtime.raw()));
    if let Some(op) = operator
        && let Some(chart) = op.chart_version
    {
        let rc = op
            .runtime_class
            .clone()
            .unwrap_or_else(|| NVIDIA_RUNTIME_CLASS.to_string());
        if op.nri_enabled == Some(true) && matrix::nri_supported(chart, containerd) {
            return RuntimeClassDecision {
                name: None,
                reason: format!(
                    "GPU Operator {chart} in NRI mode on {containerd_text}: no runtime class needed"
                ),
            };
        }
        return match matrix::gpu_injection(chart, op.cdi_enabled, containerd) {
            GpuInjection::Cdi => RuntimeClassDecision {
                name: None,
                reason: format!(
                    "GPU Operator {chart} with CDI on {containerd_text}: no runtime class needed"
                ),
            },
            GpuInjection::RuntimeClass => RuntimeClassDecision {
                reason: format!(
                    "GPU Operator {chart} on {containerd_text} needs runtimeClassName {rc}"
                ),
                name: Some(rc),
            },
        };
    }
    let why = if operator.is_some() {
        "GPU Operator version unknown"
    } else {
        "no GPU Operator found"
    };
    match rc_exists(runtime_classes, NVIDIA_RUNTIME_CLASS) {
        Some(true) => RuntimeClassDecision {
            name: Some(NVIDIA_RUNTIME_CLASS.to_string()),
            reason: format!("{why}; RuntimeClass {NVIDIA_RUNTIME_CLASS} exists"),
        },
        Some(false) => RuntimeClassDecision {
            name: None,
            reason: format!(
                "{why} and no RuntimeClass {NVIDIA_RUNTIME_CLASS}: relying on the node's default runtime"
            ),
        },
        None => RuntimeClassDecision {
            name: None,
            reason: format!(
                "{why} and RuntimeClasses unreadable: relying on the node's default runtime"
            ),
        },
    }
}

// ---------------------------------------------------------------------------
// Pure: node selection
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------

/// PASS or FAIL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
        }
    }
}

/// One node's verification.
#[derive(Debug, Clone, Serialize)]
pub struct NodeResult {
    pub node: String,
    pub result: Outcome,
    pub pod: String,
    pub namespace: String,
    pub image: String,
    pub resource_name: String,
    pub gpus_requested: u32,
    pub runtime_class: Option<String>,
    pub runtime_class_reason: String,
    /// The pod's last phase seen (`None`: never created).
    pub phase: Option<String>,
    pub timed_out: bool,
    pub duration_ms: u64,
    /// The GPUs nvidia-smi listed (empty for vectoradd or on failure).
    pub gpus: Vec<Gpu>,
    pub product: Option<String>,
    pub driver_version: Option<String>,
    pub cuda_version: Option<String>,
    pub smi: Option<SmiResult>,
    pub vectoradd: Option<VectorAddResult>,
    pub checks: Vec<Check>,
    pub diagnoses: Vec<Diagnosis>,
    pub placement_issues: Vec<PlacementIssue>,
    /// An API error that stopped the verification of this node.
    pub error: Option<String>,
    /// API requests made for this node (create, watch, log, events, delete).
    pub api_requests: u32,
}

impl NodeResult {
    /// A result with nothing observed yet.
    pub fn new(node: &str, pod: &str, namespace: &str, image: &str) -> Self {
        NodeResult {
            node: node.to_string(),
            result: Outcome::Fail,
            pod: pod.to_string(),
            namespace: namespace.to_string(),
            image: image.to_string(),
            resource_name: super::spec::DEFAULT_RESOURCE_NAME.to_string(),
            gpus_requested: 1,
            runtime_class: None,
            runtime_class_reason: String::new(),
            phase: None,
            timed_out: false,
            duration_ms: 0,
            gpus: Vec::new(),
            product: None,
            driver_version: None,
            cuda_version: None,
            smi: None,
            vectoradd: None,
            checks: Vec::new(),
            diagnoses: Vec::new(),
            placement_issues: Vec::new(),
            error: None,
            api_requests: 0,
        }
    }

    fn first_failing_check(&self) -> Option<&Check> {
        self.checks.iter().find(|c| c.is_fail())
    }

    /// The DETAIL cell: the first failing check, else the primary diagnosis,
    /// else the error; for passing nodes a short summary.
    pub fn detail(&self) -> String {
        if self.result == Outcome::Pass {
            let warns = self
                .checks
                .iter()
                .filter(|c| c.status == CheckStatus::Warn)
                .count();
            let passed = self
                .checks
                .iter()
                .filter(|c| c.status == CheckStatus::Pass)
                .count();
            return if warns > 0 {
                format!("{passed} checks passed, {warns} warning(s)")
            } else {
                format!("{passed} checks passed")
            };
        }
        if let Some(c) = self.first_failing_check() {
            return c.message.clone();
        }
        let known = self
            .diagnoses
            .first()
            .filter(|d| d.kind != DiagnosisKind::Unknown);
        if let Some(d) = known {
            return d.summary.clone();
        }
        if let Some(e) = &self.error {
            return e.clone();
        }
        if let Some(d) = self.diagnoses.first() {
            return d.summary.clone();
        }
        if self.timed_out {
            return "timed out".into();
        }
        match &self.phase {
            Some(p) => format!("pod ended in phase {p}"),
            None => "no result".into(),
        }
    }

    /// Lines shown under a failing row: other failing checks, then the
    /// primary diagnosis' (else the first failing check's) fix and next command.
    pub fn fix_lines(&self) -> Vec<String> {
        if self.result == Outcome::Pass {
            return Vec::new();
        }
        let mut out = Vec::new();
        let first = self.first_failing_check();
        for c in self.checks.iter().filter(|c| c.is_fail()).skip(1) {
            out.push(format!("also: {}", c.message));
        }
        if let Some(c) = first
            && let Some(e) = c.evidence.first()
            && !e.is_empty()
        {
            out.push(format!("seen: {e}"));
        }
        match self.diagnoses.first() {
            Some(d) => {
                if first.is_some_and(|c| c.message != d.summary) {
                    out.push(format!("why:  {}", d.summary));
                }
                if first.is_none() && !d.evidence.is_empty() {
                    out.push(format!("seen: {} ({})", d.evidence, d.source));
                }
                out.push(format!("fix:  {}", d.fix));
                if let Some(n) = &d.next_command {
                    out.push(format!("next: {n}"));
                }
            }
            None => {
                if let Some(fix) = first.and_then(|c| c.fix.as_ref()) {
                    out.push(format!("fix:  {fix}"));
                }
                out.push(format!(
                    "next: kubectl describe pod -n {} {}",
                    self.namespace, self.pod
                ));
            }
        }
        out
    }
}

/// What was removed at the end, or how to remove it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CleanupResult {
    pub kept: bool,
    pub deleted_pods: Vec<String>,
    pub deleted_namespace: Option<String>,
    pub errors: Vec<String>,
    /// With `--keep`: the command that removes what was kept.
    pub delete_command: Option<String>,
}

/// Counts over the nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct VerifySummary {
    pub total: usize,
    pub passed: usize,
    pub failed: usize,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub server: String,
    pub run_id: String,
    pub namespace: String,
    pub namespace_created: bool,
    pub workload: Workload,
    pub summary: VerifySummary,
    /// Checks across the run (`uuid_unique`).
    pub cluster_checks: Vec<Check>,
    pub nodes: Vec<NodeResult>,
    pub cleanup: CleanupResult,
}

impl VerifyReport {
    /// 0 only if every node passed and no run-wide check failed.
    pub fn exit_code(&self) -> u8 {
        if self.summary.failed > 0
            || self.nodes.is_empty()
            || self.cluster_checks.iter().any(Check::is_fail)
        {
            EXIT_FAILED
        } else {
            0
        }
    }
}

/// Sorts the nodes, runs the run-wide UUID check (marking every node that
/// shares a UUID with another as failed) and counts.
pub fn finalize(nodes: &mut [NodeResult]) -> (Vec<Check>, VerifySummary) {
    nodes.sort_by(|a, b| a.node.cmp(&b.node));
    let mut cluster_checks = Vec::new();
    let pods: Vec<(usize, PodGpus)> = nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            let smi = n.smi.as_ref()?;
            if smi.gpus.is_empty() {
                return None;
            }
            // The facts only matter for `shared`; rebuild the name.
            let facts = NodeGpuFacts {
                node_name: n.node.clone(),
                product_label: n.product.clone(),
                ..Default::default()
            };
            Some((i, PodGpus::from_result(&n.pod, &facts, smi)))
        })
        .collect();
    if pods.len() >= 2 {
        let list: Vec<PodGpus> = pods.iter().map(|(_, p)| p.clone()).collect();
        let check = check_unique_uuids(&list);
        if check.is_fail() {
            let mut count: BTreeMap<&str, usize> = BTreeMap::new();
            for (_, p) in &pods {
                for u in p.uuids.iter().collect::<BTreeSet<_>>() {
                    *count.entry(u.as_str()).or_default() += 1;
                }
            }
            let involved: Vec<usize> = pods
                .iter()
                .filter(|(_, p)| p.uuids.iter().any(|u| count.get(u.as_str()) > Some(&1)))
                .map(|(i, _)| *i)
                .collect();
            for i in involved {
                if let Some(n) = nodes.get_mut(i) {
                    n.checks.push(check.clone());
                    n.result = Outcome::Fail;
                }
            }
        }
        cluster_checks.push(check);
    }
    let passed = nodes.iter().filter(|n| n.result == Outcome::Pass).count();
    let summary = VerifySummary {
        total: nodes.len(),
        passed,
        failed: nodes.len() - passed,
    };
    (cluster_checks, summary)
}

// ---------------------------------------------------------------------------
// Pure: rendering
// ---------------------------------------------------------------------------

/// `850ms`, `12s`, `2m05s`.
pub fn format_duration(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

fn or_dash(v: Option<&str>) -> String {
    v.filter(|s| !s.is_empty()).unwrap_or("-").to_string()
}

fn gpus_cell(n: &NodeResult) -> String {
    if n.gpus.is_empty() {
        return "-".into();
    }
    let migs: usize = n.gpus.iter().map(|g| g.mig_devices.len()).sum();
    if migs > 0 {
        format!("{} ({migs} MIG)", n.gpus.len())
    } else {
        n.gpus.len().to_string()
    }
}

fn join_gpus(n: &NodeResult, f: impl Fn(&Gpu) -> Option<String>) -> String {
    let v: Vec<String> = n.gpus.iter().filter_map(f).collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(",")
    }
}

/// The kubectl-style table (`-o wide` adds UUIDs, bus ids, memory, MIG
/// devices and the pod name), fix lines under failing rows, a summary.
pub fn render_table(report: &VerifyReport, wide: bool, color: bool) -> String {
    let mut headers = vec![
        "node", "result", "gpus", "product", "driver", "cuda", "duration",
    ];
    if wide {
        headers.extend(["uuids", "bus-ids", "memory", "mig-devices", "pod"]);
    }
    headers.push("detail");
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut extras: Vec<Vec<String>> = Vec::new();
    for n in &report.nodes {
        let product = n
            .gpus
            .first()
            .map(|g| g.name.replace(' ', "-"))
            .or_else(|| n.product.clone());
        let mut row = vec![
            n.node.clone(),
            crate::render::paint(n.result.label(), color),
            gpus_cell(n),
            or_dash(product.as_deref()),
            or_dash(n.driver_version.as_deref()),
            or_dash(n.cuda_version.as_deref()),
            format_duration(n.duration_ms),
        ];
        if wide {
            row.push(join_gpus(n, |g| g.uuid.clone()));
            row.push(join_gpus(n, |g| g.pci_bus_id.clone()));
            row.push(join_gpus(n, |g| {
                g.memory_total_mib.map(|m| format!("{m}MiB"))
            }));
            let migs: Vec<String> = n
                .gpus
                .iter()
                .flat_map(|g| g.mig_devices.iter().map(|m| m.profile.clone()))
                .collect();
            row.push(if migs.is_empty() {
                "-".into()
            } else {
                migs.join(",")
            });
            row.push(n.pod.clone());
        }
        row.push(n.detail());
        rows.push(row);
        extras.push(n.fix_lines());
    }
    // Fix lines go under their row, indented to the DETAIL column, outside
    // the table so that long fixes do not widen it.
    let table = crate::render::table(&headers, rows);
    let mut lines = table.lines();
    let mut s = String::new();
    let indent = lines
        .next()
        .map(|header| {
            s.push_str(header);
            s.push('\n');
            header.find("DETAIL").unwrap_or(0)
        })
        .unwrap_or(0);
    for (line, fixes) in lines.zip(extras) {
        s.push_str(line);
        s.push('\n');
        for f in fixes {
            s.push_str(&format!("{:indent$}  {f}\n", ""));
        }
    }
    for c in &report.cluster_checks {
        if c.status != CheckStatus::Pass && !matches!(c.status, CheckStatus::Skipped { .. }) {
            let word = if c.is_fail() { "FAIL" } else { "warn" };
            s.push_str(&format!(
                "\n{} uuid_unique: {}\n",
                crate::render::paint(word, color),
                c.message
            ));
            for e in &c.evidence {
                s.push_str(&format!("  seen: {e}\n"));
            }
        }
    }
    s.push_str(&format!(
        "\nSummary: {} passed, {} failed of {} GPU node(s); run {}",
        report.summary.passed, report.summary.failed, report.summary.total, report.run_id
    ));
    let cl = &report.cleanup;
    if cl.kept {
        s.push_str(&format!(
            ", kept in namespace {}\n  remove with: {}\n",
            report.namespace,
            cl.delete_command
                .as_deref()
                .unwrap_or("kubectl gpu cleanup")
        ));
    } else if let Some(ns) = &cl.deleted_namespace {
        s.push_str(&format!(", namespace {ns} removed\n"));
    } else {
        s.push_str(&format!(
            ", {} pod(s) removed from {}\n",
            cl.deleted_pods.len(),
            report.namespace
        ));
    }
    for e in &cl.errors {
        s.push_str(&format!("cleanup: {e}; run `kubectl gpu cleanup`\n"));
    }
    s
}

/// The progress bar's message: the nodes in flight, shortened to `max` chars.
pub fn progress_message(in_flight: &[String], max: usize) -> String {
    if in_flight.is_empty() {
        return String::new();
    }
    let mut out = String::new();
    for (i, n) in in_flight.iter().enumerate() {
        let sep = if out.is_empty() { "" } else { ", " };
        let rest = in_flight.len() - i;
        let more = format!(" +{} more", rest);
        if out.len() + sep.len() + n.len() + if rest > 1 { more.len() } else { 0 } > max
            && !out.is_empty()
        {
            out.push_str(&format!(" +{rest} more"));
            return out;
        }
        out.push_str(sep);
        out.push_str(n);
    }
    out
}

/// Receives progress (the binary draws a bar from it).
pub trait Progress: Send + Sync {
    fn begin(&self, _total: usize) {}
    fn started(&self, _node: &str) {}
    fn finished(&self, _node: &str, _outcome: Outcome) {}
    fn end(&self) {}
}

/// No progress output.
pub struct NoProgress;
impl Progress for NoProgress {}

// ---------------------------------------------------------------------------
// I/O: cleanup registry and Ctrl-C
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Created {
    namespace: Option<String>,
    pods: Vec<(String, String)>,
    /// Pods already deleted during the run (`ns/name`).
    deleted: Vec<String>,
}

type Registry = Arc<Mutex<Created>>;

fn delete_params() -> DeleteParams {
    DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    }
}

/// Deletes what the registry holds: the namespace (which takes its pods
/// along) else each pod. Best effort, short timeouts.
async fn delete_registered(client: kube::Client, created: &Registry) -> CleanupResult {
    let (namespace, pods, deleted) = match created.lock() {
        Ok(mut c) => (
            c.namespace.take(),
            std::mem::take(&mut c.pods),
            std::mem::take(&mut c.deleted),
        ),
        Err(_) => return CleanupResult::default(),
    };
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
        let lp = ListParams::default().labels(&format!("{LABEL_MANAGED_BY}={APP_NAME}"));
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

/// Never returns once Ctrl-C was seen: the signal task cleans up and exits 130.
async fn wait_if_interrupted(flag: &AtomicBool) {
    if flag.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
}

fn keep_command(namespace: &str, created_ns: bool, run_id: &str) -> String {
    if created_ns {
        format!("kubectl delete namespace {namespace}")
    } else {
        format!(
            "kubectl delete pods -n {namespace} -l {}",
            super::spec::run_selector(run_id)
        )
    }
}

// ---------------------------------------------------------------------------
// I/O: preflight
// ---------------------------------------------------------------------------

use crate::agent::can_i;

/// Everything `verify` needs to be allowed, checked before anything is
/// created. Listing events is optional (diagnosis degrades without it).
async fn preflight(kube: &Kube, namespace: &str, create_ns: bool, keep: bool) -> Result<()> {
    let mut needed: Vec<(&str, &str, Option<&str>, Option<&str>)> = vec![
        ("create", "pods", None, Some(namespace)),
        ("watch", "pods", None, Some(namespace)),
        ("get", "pods", Some("log"), Some(namespace)),
    ];
    if create_ns {
        needed.push(("create", "namespaces", None, None));
        if !keep {
            needed.push(("delete", "namespaces", None, None));
        }
    } else if !keep {
        needed.push(("delete", "pods", None, Some(namespace)));
    }
    let answers = futures::future::join_all(
        needed
            .iter()
            .map(|(v, r, s, ns)| can_i(kube, v, r, *s, *ns)),
    )
    .await;
    for ((verb, resource, sub, ns), allowed) in needed.iter().zip(answers) {
        if !allowed? {
            return Err(Error::Forbidden {
                verb: verb.to_string(),
                resource: match sub {
                    Some(s) => format!("{resource}/{s}"),
                    None => resource.to_string(),
                },
                namespace: ns.map(str::to_string),
            });
        }
    }
    if !can_i(kube, "list", "events", None, Some(namespace)).await? {
        tracing::warn!(
            "cannot list events in namespace {namespace}: failed pods will be diagnosed from their status and log only"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// I/O: one node
// ---------------------------------------------------------------------------

struct Ctx {
    kube: Kube,
    namespace: String,
    ns_created: bool,
    run_id: String,
    opts: VerifyOptions,
    registry: Registry,
}

struct Target {
    facts: NodeFacts,
    gpu_facts: NodeGpuFacts,
    placement: Vec<PlacementIssue>,
    rc: RuntimeClassDecision,
    /// `status.allocatable[--resource]` (`None`: not advertised or not a plain integer).
    allocatable: Option<u64>,
}

/// The node's allocatable count of `resource`, when it advertises one.
fn allocatable_units(node: &Node, resource: &str) -> Option<u64> {
    let q = node.status.as_ref()?.allocatable.as_ref()?.get(resource)?;
    q.0.trim().parse().ok()
}

fn spec_input(ctx: &Ctx, t: &Target) -> VerifySpecInput {
    let mut input = VerifySpecInput::new(&t.facts.name, &ctx.run_id);
    input.namespace = ctx.namespace.clone();
    input.image = ctx.opts.image.clone();
    input.gpus = ctx.opts.gpus;
    input.resource_name = ctx.opts.resource.clone();
    input.runtime_class = t.rc.name.clone();
    input.active_deadline_seconds =
        i64::try_from(ctx.opts.timeout.as_secs() + DEADLINE_MARGIN_SECONDS).unwrap_or(i64::MAX);
    input.workload = ctx.opts.workload;
    input.tolerate_all_taints = ctx.opts.tolerate_all_taints;
    input
}

/// Waiting reasons after which the pod will not start by itself.
const STUCK_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// `Succeeded`/`Failed`, or a container stuck waiting for a reason that will not clear.
pub fn is_finished(pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return true;
    }
    status
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.as_deref())
        .any(|r| STUCK_REASONS.contains(&r))
}

fn container_started(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .any(|c| {
            c.state
                .as_ref()
                .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
        })
}

enum WaitEnd {
    Finished,
    Gone,
    StreamEnded,
    TimedOut,
}

async fn verify_node(ctx: &Ctx, t: Target) -> NodeResult {
    let started = Instant::now();
    let input = spec_input(ctx, &t);
    let node = t.facts.name.clone();
    let mut r = NodeResult::new(
        &node,
        &input.pod_name,
        &ctx.namespace,
        input.effective_image(),
    );
    r.resource_name = input.resource_name.clone();
    r.gpus_requested = input.gpus;
    r.runtime_class = t.rc.name.clone();
    r.runtime_class_reason = t.rc.reason.clone();
    r.placement_issues = t.placement.clone();
    r.product = t.gpu_facts.product_label.clone();
    let pod = match build_verify_pod(&input) {
        Ok(p) => p,
        Err(e) => {
            r.error = Some(e.to_string());
            r.duration_ms = ms(started);
            return r;
        }
    };
    // More than the node has can never be admitted: a kubelet rejects the pod
    // (`OutOfnvidia.com/gpu`), a simulated one may run it anyway. Say so
    // without creating it.
    if let Some(have) = t.allocatable
        && have < u64::from(input.gpus)
    {
        let res = &input.resource_name;
        r.diagnoses = vec![Diagnosis {
            kind: DiagnosisKind::InsufficientGpuResource,
            summary: format!(
                "{node} has {have} allocatable {res}; the verify pod requests {}",
                input.gpus
            ),
            evidence: format!("status.allocatable[{res}] = {have}"),
            source: "node status".into(),
            fix: format!("request at most {have} (--gpus {have}), or pick nodes with more {res}"),
            next_command: Some(format!(
                "kubectl get node {node} -o jsonpath='{{.status.allocatable}}'"
            )),
        }];
        r.duration_ms = ms(started);
        return r;
    }
    let api: Api<Pod> = Api::namespaced(ctx.kube.client.clone(), &ctx.namespace);
    let mut requests = 0u32;

    // Create.
    requests += 1;
    let mut create_error: Option<String> = None;
    match api.create(&PostParams::default(), &pod).await {
        Ok(_) => {
            if let Ok(mut reg) = ctx.registry.lock() {
                reg.pods
                    .push((ctx.namespace.clone(), input.pod_name.clone()));
            }
        }
        Err(kube::Error::Api(s)) => create_error = Some(s.message.clone()),
        Err(e) => create_error = Some(e.to_string()),
    }

    let mut last: Option<Pod> = None;
    let mut log: Option<String> = None;
    let mut events: Vec<Event> = Vec::new();
    if create_error.is_none() {
        // Wait with a watch on this one pod (list + watch).
        requests += 2;
        let mut watch_error: Option<String> = None;
        let end = {
            let stream = watcher::watch_object(api.clone(), &input.pod_name).default_backoff();
            let wait = async {
                futures::pin_mut!(stream);
                while let Some(ev) = stream.next().await {
                    match ev {
                        Ok(Some(p)) => {
                            let done = is_finished(&p);
                            last = Some(p);
                            if done {
                                return WaitEnd::Finished;
                            }
                        }
                        Ok(None) => {
                            if last.is_some() {
                                return WaitEnd::Gone;
                            }
                        }
                        Err(e) => {
                            tracing::debug!(node = %node, "watch error: {e}");
                            watch_error = Some(e.to_string());
                        }
                    }
                }
                WaitEnd::StreamEnded
            };
            match tokio::time::timeout(ctx.opts.timeout, wait).await {
                Ok(end) => end,
                Err(_) => WaitEnd::TimedOut,
            }
        };
        r.phase = last
            .as_ref()
            .and_then(|p| p.status.as_ref())
            .and_then(|s| s.phase.clone());
        match end {
            WaitEnd::Finished => {}
            WaitEnd::TimedOut => {
                r.timed_out = true;
                if let Some(e) = &watch_error {
                    r.error = Some(format!("watch error: {e}"));
                }
            }
            WaitEnd::Gone => r.error = Some("the pod was deleted before it finished".into()),
            WaitEnd::StreamEnded => {
                r.error = Some(format!(
                    "the watch ended early{}",
                    watch_error.map(|e| format!(": {e}")).unwrap_or_default()
                ))
            }
        }
        if last.as_ref().is_some_and(container_started) {
            requests += 1;
            let lp = LogParams {
                container: Some(CONTAINER_NAME.to_string()),
                ..LogParams::default()
            };
            match api.logs(&input.pod_name, &lp).await {
                Ok(l) => log = Some(l),
                // Without the log nothing can be checked: say why (e.g. the
                // apiserver cannot reach the kubelet's log endpoint).
                Err(e) => {
                    tracing::debug!(node = %node, "reading the log: {e}");
                    if r.error.is_none() {
                        r.error = Some(format!("cannot read the verify pod's log: {e}"));
                    }
                }
            }
        }
    }

    // Evaluate.
    evaluate_output(&mut r, ctx.opts.workload, &t.gpu_facts, log.as_deref());
    if create_error.is_some() {
        r.result = Outcome::Fail;
    }
    if r.result == Outcome::Fail {
        if create_error.is_none() {
            requests += 1;
            let ev_api: Api<Event> = Api::namespaced(ctx.kube.client.clone(), &ctx.namespace);
            let lp = ListParams::default().fields(&format!(
                "involvedObject.name={},involvedObject.kind=Pod",
                input.pod_name
            ));
            match ev_api.list(&lp).await {
                Ok(list) => events = list.items,
                Err(e) => tracing::debug!(node = %node, "listing events: {e}"),
            }
        }
        attach_diagnosis(
            &mut r,
            last.as_ref(),
            &events,
            log.as_deref(),
            create_error.as_deref(),
        );
        // A pod that succeeded but failed a check: the check is the
        // explanation, not an "unrecognised reason".
        if r.phase.as_deref() == Some("Succeeded") && r.checks.iter().any(Check::is_fail) {
            r.diagnoses.retain(|d| d.kind != DiagnosisKind::Unknown);
        }
    }

    // Delete the pod now unless the namespace goes away at the end anyway.
    if create_error.is_none() && !ctx.opts.keep && !ctx.ns_created {
        requests += 1;
        match api.delete(&input.pod_name, &delete_params()).await {
            Ok(_) => {
                if let Ok(mut reg) = ctx.registry.lock() {
                    reg.pods.retain(|(_, n)| n != &input.pod_name);
                    reg.deleted
                        .push(format!("{}/{}", ctx.namespace, input.pod_name));
                }
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => tracing::warn!(node = %node, "deleting pod {}: {e}", input.pod_name),
        }
    }
    r.api_requests = requests;
    r.duration_ms = ms(started);
    tracing::debug!(
        node = %node,
        api_requests = requests,
        result = r.result.label(),
        "verify: API requests for node"
    );
    r
}

/// Parses the pod's log into `r` (GPUs, versions, checks) and decides
/// PASS/FAIL from the phase, the timeout, any error and the checks. Pure.
pub fn evaluate_output(
    r: &mut NodeResult,
    workload: Workload,
    facts: &NodeGpuFacts,
    log: Option<&str>,
) {
    let request = GpuRequest {
        resource_name: r.resource_name.clone(),
        count: r.gpus_requested,
    };
    let mut workload_ok = false;
    if let Some(l) = log {
        match workload {
            Workload::Smi => {
                let smi = parse_smi_log(l);
                r.checks = run_checks(facts, &request, &smi);
                workload_ok = smi.succeeded();
                r.gpus = smi.gpus.clone();
                r.driver_version = smi.driver_version().map(str::to_string);
                r.cuda_version = smi
                    .version
                    .as_ref()
                    .and_then(|v| v.cuda_version.clone())
                    .or_else(|| smi.table.as_ref().and_then(|t| t.cuda_version.clone()));
                if let Some(g) = smi.gpus.first() {
                    r.product = Some(g.name.clone());
                }
                r.smi = Some(smi);
            }
            Workload::VectorAdd => {
                let va = parse_vectoradd_log(l);
                let c = check_vectoradd(&r.node, &va);
                workload_ok = !c.is_fail();
                r.checks = vec![c];
                r.vectoradd = Some(va);
            }
        }
    }
    let passed = r.phase.as_deref() == Some("Succeeded")
        && !r.timed_out
        && r.error.is_none()
        && workload_ok
        && !r.checks.iter().any(Check::is_fail);
    r.result = if passed { Outcome::Pass } else { Outcome::Fail };
}

/// Diagnoses a failed node from everything observed (events sorted by
/// time first). Pure.
pub fn attach_diagnosis(
    r: &mut NodeResult,
    pod: Option<&Pod>,
    events: &[Event],
    log: Option<&str>,
    create_error: Option<&str>,
) {
    let mut events = events.to_vec();
    events.sort_by_key(|e| {
        e.last_timestamp
            .clone()
            .map(|t| t.0)
            .or_else(|| e.event_time.clone().map(|t| t.0))
    });
    let mut di = DiagnosisInput::new(&r.node, &r.namespace, &r.image);
    di.resource_name = &r.resource_name;
    di.runtime_class = r.runtime_class.as_deref();
    di.pod = pod;
    di.events = &events;
    di.log = log;
    di.create_error = create_error;
    di.timed_out = r.timed_out;
    let diagnoses = diagnose(&di);
    if let Some(e) = create_error
        && diagnoses.iter().all(|d| d.kind == DiagnosisKind::Unknown)
    {
        r.error = Some(format!("the API refused the pod: {e}"));
    }
    r.diagnoses = diagnoses;
}

fn ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------------------
// I/O: the run
// ---------------------------------------------------------------------------

fn our_labels(run_id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_string(), APP_NAME.to_string()),
        (LABEL_MANAGED_BY.to_string(), APP_NAME.to_string()),
        (LABEL_COMPONENT.to_string(), COMPONENT_VERIFY.to_string()),
        (LABEL_RUN_ID.to_string(), run_id.to_string()),
    ])
}

/// The namespace `verify` creates: ours, and PSA `baseline` (the verify pod
/// meets it; RKE2's CIS profile defaults other namespaces to `restricted`).
pub fn verify_namespace(run_id: &str) -> Namespace {
    let mut labels = our_labels(run_id);
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

async fn nodes_matching(kube: &Kube, selector: &str) -> Result<BTreeSet<String>> {
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

/// Runs `kubectl gpu verify`.
pub async fn verify(
    kube: &Kube,
    opts: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<VerifyReport> {
    if opts.gpus == 0 {
        return Err(Error::Usage("--gpus must be at least 1".into()));
    }
    if let Some(s) = &opts.selector
        && s.trim().is_empty()
    {
        return Err(Error::InvalidSelector {
            selector: s.clone(),
            message: "empty selector".into(),
        });
    }
    let run_id = crate::agent::run_id();
    let snap = Snapshot::read(kube).await?;
    let matched = match &opts.selector {
        Some(s) => Some((s.as_str(), nodes_matching(kube, s).await?)),
        None => None,
    };
    let selected = select_targets(
        &snap.nodes,
        &opts.nodes,
        matched.as_ref().map(|(s, m)| (*s, m)),
    )?;
    let operator = OperatorFacts::from_snapshot(&snap);
    let targets: Vec<Target> = selected
        .iter()
        .map(|n| {
            let facts = NodeFacts::from_node(n);
            let rc = decide_runtime_class(
                &opts.runtime_class,
                operator.as_ref(),
                &facts,
                snap.runtime_classes.as_deref(),
            );
            Target {
                gpu_facts: NodeGpuFacts::from_node(n),
                placement: placement_issues(n),
                allocatable: allocatable_units(n, &opts.resource),
                facts,
                rc,
            }
        })
        .collect();
    for t in &targets {
        tracing::info!(node = %t.facts.name, runtime_class = ?t.rc.name, "{}", t.rc.reason);
        for p in &t.placement {
            tracing::warn!(node = %t.facts.name, "placement: {p:?}");
        }
    }

    // Namespace and RBAC, before creating anything.
    let (namespace, create_ns) = match &opts.namespace {
        Some(ns) => (ns.clone(), false),
        None => (format!("{NAMESPACE_PREFIX}{run_id}"), true),
    };
    preflight(kube, &namespace, create_ns, opts.keep).await?;
    if !create_ns {
        let ns_api: Api<Namespace> = Api::all(kube.client.clone());
        match ns_api.get(&namespace).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {
                return Err(Error::Usage(format!(
                    "namespace {namespace} does not exist; create it or leave out -n to let verify create a temporary one"
                )));
            }
            Err(e) => {
                return Err(Error::from_kube(
                    e,
                    &format!("get namespace {namespace}"),
                    &kube.server,
                ));
            }
        }
    }

    let registry: Registry = Arc::default();
    let keep = opts.keep;
    let on_signal = registry.clone();
    let client = kube.client.clone();
    let keep_cmd = keep_command(&namespace, create_ns, &run_id);
    // Set first thing on Ctrl-C. The handler's deletes make the in-flight
    // watches end, so the run could otherwise finish, print a report and
    // exit 1 before the handler's exit(130).
    let interrupted = Arc::new(AtomicBool::new(false));
    let on_signal_flag = interrupted.clone();
    let signal_task = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            on_signal_flag.store(true, Ordering::SeqCst);
            if keep {
                eprintln!("interrupted: keeping the verify pods (--keep); remove with: {keep_cmd}");
            } else {
                eprintln!("interrupted: removing the verify pods");
                let res = delete_registered(client, &on_signal).await;
                for e in res.errors {
                    eprintln!("cleanup: {e}; run `kubectl gpu cleanup`");
                }
            }
            std::process::exit(130);
        }
    });

    if create_ns {
        let ns_api: Api<Namespace> = Api::all(kube.client.clone());
        if let Err(e) = ns_api
            .create(&PostParams::default(), &verify_namespace(&run_id))
            .await
        {
            signal_task.abort();
            return Err(Error::from_kube(
                e,
                &format!("create namespace {namespace}"),
                &kube.server,
            ));
        }
        if let Ok(mut reg) = registry.lock() {
            reg.namespace = Some(namespace.clone());
        }
    }

    let ctx = Ctx {
        kube: kube.clone(),
        namespace: namespace.clone(),
        ns_created: create_ns,
        run_id: run_id.clone(),
        opts: opts.clone(),
        registry: registry.clone(),
    };

    // Admission (PodSecurity) does not depend on the node: one server-side
    // dry run answers for all, so a rejecting namespace creates nothing.
    let mut nodes: Vec<NodeResult> = Vec::new();
    let mut rejected = false;
    if let Some(first) = targets.first()
        && let Ok(pod) = build_verify_pod(&spec_input(&ctx, first))
    {
        let api: Api<Pod> = Api::namespaced(kube.client.clone(), &namespace);
        let pp = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        if let Err(kube::Error::Api(s)) = api.create(&pp, &pod).await
            && s.message.contains("violates PodSecurity")
        {
            rejected = true;
            for t in &targets {
                let input = spec_input(&ctx, t);
                let mut r = NodeResult::new(
                    &t.facts.name,
                    &input.pod_name,
                    &namespace,
                    input.effective_image(),
                );
                r.runtime_class = t.rc.name.clone();
                r.runtime_class_reason = t.rc.reason.clone();
                r.product = t.gpu_facts.product_label.clone();
                r.resource_name = input.resource_name.clone();
                r.gpus_requested = input.gpus;
                let mut di =
                    DiagnosisInput::new(&t.facts.name, &namespace, input.effective_image());
                di.create_error = Some(&s.message);
                r.diagnoses = diagnose(&di);
                r.api_requests = u32::from(std::ptr::eq(t, first));
                nodes.push(r);
            }
        }
    }

    if !rejected {
        progress.begin(targets.len());
        let ctx_ref = &ctx;
        nodes = futures::stream::iter(targets)
            .map(|t| async move {
                progress.started(&t.facts.name);
                let r = verify_node(ctx_ref, t).await;
                progress.finished(&r.node, r.result);
                r
            })
            .buffer_unordered(opts.parallel.max(1))
            .collect()
            .await;
        progress.end();
    }
    wait_if_interrupted(&interrupted).await;

    let (cluster_checks, summary) = finalize(&mut nodes);
    let cleanup = if opts.keep {
        CleanupResult {
            kept: true,
            delete_command: Some(keep_command(&namespace, create_ns, &run_id)),
            ..CleanupResult::default()
        }
    } else {
        delete_registered(kube.client.clone(), &registry).await
    };
    wait_if_interrupted(&interrupted).await;
    signal_task.abort();
    let total_requests: u32 = nodes.iter().map(|n| n.api_requests).sum();
    tracing::debug!(
        nodes = nodes.len(),
        api_requests = total_requests,
        "verify: API requests for all nodes (snapshot and preflight not included)"
    );
    Ok(VerifyReport {
        server: kube.server.clone(),
        run_id,
        namespace,
        namespace_created: create_ns,
        workload: opts.workload,
        summary,
        cluster_checks,
        nodes,
        cleanup,
    })
}

// ---------------------------------------------------------------------------
// I/O: kubectl gpu cleanup
// ---------------------------------------------------------------------------

/// One object left behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leftover {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

/// What `cleanup` found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CleanupReport {
    pub dry_run: bool,
    pub found: Vec<Leftover>,
    pub deleted: Vec<Leftover>,
}

/// Lists (and unless `dry_run` deletes) every pod and namespace labelled
/// `app.kubernetes.io/managed-by=kubectl-gpu`.
pub async fn cleanup(kube: &Kube, dry_run: bool) -> Result<CleanupReport> {
    let pod_api: Api<Pod> = Api::all(kube.client.clone());
    let ns_api: Api<Namespace> = Api::all(kube.client.clone());
    let lp = ListParams::default().labels(labels::OURS_SELECTOR);
    let (pods, namespaces) = tokio::join!(
        snapshot::list_all(&pod_api, &lp),
        snapshot::list_all(&ns_api, &lp)
    );
    let pods =
        pods.map_err(kube.err("list pods labelled app.kubernetes.io/managed-by=kubectl-gpu"))?;
    let namespaces = namespaces
        .map_err(kube.err("list namespaces labelled app.kubernetes.io/managed-by=kubectl-gpu"))?;
    let mut report = CleanupReport {
        dry_run,
        ..CleanupReport::default()
    };
    for p in &pods {
        report.found.push(Leftover {
            kind: "pod".into(),
            namespace: p.metadata.namespace.clone(),
            name: p.metadata.name.clone().unwrap_or_default(),
        });
    }
    for n in &namespaces {
        report.found.push(Leftover {
            kind: "namespace".into(),
            namespace: None,
            name: n.metadata.name.clone().unwrap_or_default(),
        });
    }
    if dry_run {
        return Ok(report);
    }
    let removed = crate::agent::cleanup_all(kube).await?;
    for p in removed {
        let (ns, name) = p.split_once('/').unwrap_or(("", p.as_str()));
        report.deleted.push(Leftover {
            kind: "pod".into(),
            namespace: Some(ns.to_string()),
            name: name.to_string(),
        });
    }
    let deletes = futures::stream::iter(namespaces.iter().filter_map(|n| n.metadata.name.clone()))
        .map(|name| {
            let api = ns_api.clone();
            async move {
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => Ok(Some(name)),
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
                    Err(e) => Err((name, e)),
                }
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    for r in deletes {
        match r {
            Ok(Some(name)) => report.deleted.push(Leftover {
                kind: "namespace".into(),
                namespace: None,
                name,
            }),
            Ok(None) => {}
            Err((name, e)) => {
                return Err(Error::from_kube(
                    e,
                    &format!("delete namespace {name}"),
                    &kube.server,
                ));
            }
        }
    }
    Ok(report)
}
