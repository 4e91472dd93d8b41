//! The outcome of `verify`: one [`NodeResult`] per node (filled from the
//! pod's log by [`evaluate_output`] and, on failure, [`attach_diagnosis`]),
//! the run-wide checks and counts ([`finalize`]) and the [`VerifyReport`].
//! Pure.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Event, Pod};
use serde::Serialize;

use super::checks::{
    Check, CheckStatus, GpuRequest, NodeGpuFacts, PodGpus, check_unique_uuids, check_vectoradd,
    run_checks,
};
use super::diagnosis::{Diagnosis, DiagnosisInput, DiagnosisKind, diagnose};
use super::output::{SmiResult, VectorAddResult, parse_smi_log, parse_vectoradd_log};
use super::spec::{DEFAULT_RESOURCE_NAME, PlacementIssue, Workload};
use crate::error::EXIT_FAILED;
use crate::nvidia_smi::Gpu;
pub use crate::objects::CleanupResult;

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
            resource_name: DEFAULT_RESOURCE_NAME.to_string(),
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
        runtime_class: r.runtime_class.clone(),
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
