//! The operator view: chart and operator version, the `ClusterPolicy`
//! state, each operand DaemonSet's desired / ready / updated counts and its
//! pod on every node, the validator's results per node, and the known-bad
//! version warnings of the matrix.

use crate::facts::ClusterView;
use crate::matrix;
use crate::operator::{OperandPod, VALIDATOR_APP, operand_pod};
use crate::snapshot::Snapshot;
use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;
use std::collections::BTreeMap;

/// One operand DaemonSet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DaemonSetRow {
    pub name: String,
    /// The pod template's `app` label (the operand's name).
    pub app: String,
    pub desired: i32,
    pub current: i32,
    pub ready: i32,
    pub updated: i32,
    pub available: i32,
    pub misscheduled: i32,
    /// `nodeSelector` of the pod template, `key=value`.
    pub node_selector: Vec<String>,
}

/// One validation step of the validator pod on a node (its init containers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationStep {
    /// The init container, e.g. `driver-validation`.
    pub name: String,
    /// `passed`, `failed`, `running`, `waiting` or `pending`.
    pub result: String,
    pub detail: Option<String>,
}

/// The validator's results on one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidatorResult {
    pub node: String,
    pub pod: String,
    pub phase: String,
    pub ready: bool,
    pub steps: Vec<ValidationStep>,
}

/// A known-bad chart version warning from the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionWarning {
    pub id: String,
    /// `fail` or `warn`.
    pub severity: String,
    pub summary: String,
    pub fix: String,
    pub source: String,
}

/// The operator view.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OperatorView {
    /// Whether an installed GPU Operator was found.
    pub installed: bool,
    /// Whether the ClusterPolicy CRD exists; None when it could not be read.
    pub crd_present: Option<bool>,
    pub namespace: Option<String>,
    pub found_by: Option<String>,
    pub release: Option<String>,
    pub chart_version: Option<String>,
    pub chart_version_source: Option<String>,
    /// The chart's appVersion (label `app.kubernetes.io/version`, else the Helm release).
    pub app_version: Option<String>,
    /// The operator Deployment's image.
    pub operator_image: Option<String>,
    pub operator_ready: Option<String>,
    pub release_error: Option<String>,
    pub cluster_policy: Option<String>,
    pub cluster_policy_state: Option<String>,
    pub cluster_policy_message: Option<String>,
    pub cdi_enabled: Option<bool>,
    pub driver_enabled: Option<bool>,
    pub toolkit_version: Option<String>,
    pub daemonsets: Vec<DaemonSetRow>,
    /// Operand pods per node: node → app → pod.
    pub operands: BTreeMap<String, BTreeMap<String, OperandPod>>,
    pub validators: Vec<ValidatorResult>,
    pub warnings: Vec<VersionWarning>,
    /// What is wrong (empty: healthy).
    pub problems: Vec<String>,
}

fn validator(pod: &Pod) -> Option<ValidatorResult> {
    let op = operand_pod(pod)?;
    if op.app != VALIDATOR_APP {
        return None;
    }
    let status = pod.status.as_ref();
    let spec_inits: Vec<String> = pod
        .spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .map(|c| c.name.clone())
        .collect();
    let statuses = status
        .and_then(|s| s.init_container_statuses.clone())
        .unwrap_or_default();
    let steps = spec_inits
        .iter()
        .map(|name| {
            let st = statuses.iter().find(|s| &s.name == name);
            let state = st.and_then(|s| s.state.as_ref());
            let (result, detail) = match state {
                Some(s) if s.terminated.is_some() => {
                    let t = s.terminated.as_ref();
                    let code = t.map(|t| t.exit_code).unwrap_or(0);
                    if code == 0 {
                        ("passed", None)
                    } else {
                        (
                            "failed",
                            Some(format!(
                                "exit {code}{}",
                                t.and_then(|t| t.reason.clone())
                                    .map(|r| format!(": {r}"))
                                    .unwrap_or_default()
                            )),
                        )
                    }
                }
                Some(s) if s.running.is_some() => ("running", None),
                Some(s) if s.waiting.is_some() => {
                    let w = s.waiting.as_ref();
                    let last_fail = st
                        .and_then(|s| s.last_state.as_ref())
                        .and_then(|l| l.terminated.as_ref())
                        .filter(|t| t.exit_code != 0)
                        .map(|t| format!(", last exit {}", t.exit_code))
                        .unwrap_or_default();
                    (
                        if last_fail.is_empty() {
                            "waiting"
                        } else {
                            "failed"
                        },
                        Some(format!(
                            "{}{last_fail}",
                            w.and_then(|w| w.reason.clone()).unwrap_or_default()
                        )),
                    )
                }
                _ => ("pending", None),
            };
            ValidationStep {
                name: name.clone(),
                result: result.into(),
                detail,
            }
        })
        .collect();
    Some(ValidatorResult {
        node: op.node,
        pod: op.pod,
        phase: op.phase,
        ready: op.ready,
        steps,
    })
}

/// Builds the operator view.
pub fn build(snap: &Snapshot, view: &ClusterView) -> OperatorView {
    let mut out = OperatorView {
        crd_present: snap.crd_present,
        ..OperatorView::default()
    };
    let (Some(facts), Some(objects)) = (view.operator.as_ref(), snap.operator.as_ref()) else {
        if let Some(cp) = snap.cluster_policies.iter().flatten().next() {
            out.cluster_policy = cp.metadata.name.clone();
            out.cluster_policy_state = cp
                .data
                .pointer("/status/state")
                .and_then(|v| v.as_str())
                .map(str::to_string);
        }
        if snap.crd_present == Some(true) {
            out.problems.push(
                "the ClusterPolicy CRD exists but no GPU Operator Deployment was found".into(),
            );
        }
        return out;
    };
    out.installed = true;
    out.namespace = Some(facts.namespace.clone());
    out.found_by = Some(facts.found_by.clone());
    out.release = facts.release.clone();
    out.chart_version = facts.chart_version_raw.clone();
    out.chart_version_source = facts.chart_version_source.clone();
    out.release_error = facts.release_error.clone();
    out.cluster_policy = facts.cluster_policy.clone();
    out.cluster_policy_state = facts.cluster_policy_state.clone();
    out.cluster_policy_message = facts.cluster_policy_message.clone();
    out.cdi_enabled = facts.cdi_enabled;
    out.driver_enabled = facts.driver_enabled;
    out.toolkit_version = facts.toolkit_version.clone();
    out.app_version = facts.app_version.clone();
    if let Some(d) = objects.deployments.iter().find(|d| {
        d.spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.as_ref())
            .is_some_and(|l| {
                l.get("app").is_some_and(|v| v == "gpu-operator")
                    || l.get("app.kubernetes.io/component")
                        .is_some_and(|v| v == "gpu-operator")
            })
            || d.metadata.name.as_deref() == Some("gpu-operator")
    }) {
        out.operator_image = d
            .spec
            .template
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.clone());
        let st = d.status.as_ref();
        out.operator_ready = Some(format!(
            "{}/{}",
            st.and_then(|s| s.ready_replicas).unwrap_or(0),
            d.spec.replicas.unwrap_or(1)
        ));
        if st.and_then(|s| s.ready_replicas).unwrap_or(0) == 0 {
            out.problems.push(format!(
                "operator Deployment {} has no ready replica",
                d.metadata.name.clone().unwrap_or_default()
            ));
        }
    }
    for ds in &objects.daemonsets {
        let name = ds.metadata.name.clone().unwrap_or_default();
        let app = crate::operator::daemonset_app(ds);
        let st = ds.status.clone().unwrap_or_default();
        let row = DaemonSetRow {
            name,
            app,
            desired: st.desired_number_scheduled,
            current: st.current_number_scheduled,
            ready: st.number_ready,
            updated: st.updated_number_scheduled.unwrap_or(0),
            available: st.number_available.unwrap_or(0),
            misscheduled: st.number_misscheduled,
            node_selector: ds
                .spec
                .template
                .spec
                .as_ref()
                .and_then(|s| s.node_selector.as_ref())
                .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                .unwrap_or_default(),
        };
        if row.ready < row.desired {
            out.problems.push(format!(
                "DaemonSet {}: {}/{} ready",
                row.name, row.ready, row.desired
            ));
        }
        out.daemonsets.push(row);
    }
    out.daemonsets.sort_by(|a, b| a.name.cmp(&b.name));
    for p in &facts.operands {
        if p.node.is_empty() {
            continue;
        }
        out.operands
            .entry(p.node.clone())
            .or_default()
            .insert(p.app.clone(), p.clone());
    }
    out.validators = objects.pods.iter().filter_map(validator).collect();
    out.validators.sort_by(|a, b| a.node.cmp(&b.node));
    for v in &out.validators {
        for s in v.steps.iter().filter(|s| s.result == "failed") {
            out.problems.push(format!(
                "validator on {}: {} failed{}",
                v.node,
                s.name,
                s.detail
                    .as_ref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default()
            ));
        }
    }
    match facts.cluster_policy_state.as_deref() {
        Some("ready") => {}
        Some(state) => out.problems.push(format!(
            "ClusterPolicy {} is {state}{}",
            facts.cluster_policy.clone().unwrap_or_default(),
            facts
                .cluster_policy_message
                .as_ref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        )),
        None => {}
    }
    if let Some(v) = facts.chart_version {
        for d in matrix::chart_defects(v) {
            out.warnings.push(VersionWarning {
                id: d.id.into(),
                severity: match d.severity {
                    matrix::Severity::Fail => "fail".into(),
                    matrix::Severity::Warn => "warn".into(),
                },
                summary: d.summary.into(),
                fix: d.fix.into(),
                source: d.source.into(),
            });
        }
        if !matrix::chart_is_known(v) {
            out.warnings.push(VersionWarning {
                id: "chart-version-unknown".into(),
                severity: "warn".into(),
                summary: format!(
                    "chart {v} is outside the versions this plugin knows (up to {})",
                    matrix::NEWEST_KNOWN_CHART
                ),
                fix: "check the release notes; upgrade kubectl-gpu for a newer matrix".into(),
                source: "matrix::NEWEST_KNOWN_CHART".into(),
            });
        }
    }
    out
}
