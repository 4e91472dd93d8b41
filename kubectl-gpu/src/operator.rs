//! Typed view of the installed GPU Operator: chart version (the
//! `helm.sh/chart` labels first, the Helm release Secret only when no label
//! names it: [`chart_label_version_of`]), the `ClusterPolicy` state and the
//! settings that matter on RKE2 (toolkit env, CDI, NRI, driver), and its
//! operand pods per node.

use crate::snapshot::{OperatorObjects, Snapshot};
use crate::version::Triple;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::api::DynamicObject;
use serde::Serialize;
use std::collections::BTreeMap;

/// The operands `check-runtime` expects on every GPU node, by their `app` label.
pub const TOOLKIT_APP: &str = "nvidia-container-toolkit-daemonset";
pub const DEVICE_PLUGIN_APP: &str = "nvidia-device-plugin-daemonset";
pub const VALIDATOR_APP: &str = "nvidia-operator-validator";
pub const EXPECTED_OPERANDS: &[&str] = &[TOOLKIT_APP, DEVICE_PLUGIN_APP, VALIDATOR_APP];
/// The MIG manager's operand, by its `app` label.
pub const MIG_MANAGER_APP: &str = "nvidia-mig-manager";

/// The `nvidia.com/gpu.deploy.<operand>` label that schedules an operand
/// (the operator's state names), for the operands we expect.
pub fn deploy_label_of(app: &str) -> Option<String> {
    let operand = match app {
        TOOLKIT_APP => "container-toolkit",
        DEVICE_PLUGIN_APP => "device-plugin",
        VALIDATOR_APP => "operator-validator",
        MIG_MANAGER_APP => "mig-manager",
        _ => return None,
    };
    Some(format!("{}{operand}", crate::labels::DEPLOY_PREFIX))
}

/// An environment variable as set in `toolkit.env`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

/// One operand pod's state on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperandPod {
    pub app: String,
    pub pod: String,
    pub node: String,
    pub phase: String,
    pub ready: bool,
    pub restarts: i32,
    /// `waiting: CrashLoopBackOff: ...` or `terminated: Error (exit 1): ...` of the first unhealthy container.
    pub problem: Option<String>,
}

/// What we know of the installed operator.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OperatorFacts {
    pub namespace: String,
    pub found_by: String,
    pub release: Option<String>,
    pub chart_version: Option<Triple>,
    pub chart_version_raw: Option<String>,
    /// Where the version was read: `label helm.sh/chart on deployment
    /// gpu-operator`, `Helm release gpu-operator (revision 3)`.
    pub chart_version_source: Option<String>,
    /// The chart's appVersion: label `app.kubernetes.io/version`, else the Helm release.
    pub app_version: Option<String>,
    /// A Helm release Secret that could not be decoded.
    pub release_error: Option<String>,
    pub namespace_labels: BTreeMap<String, String>,
    pub cluster_policy: Option<String>,
    pub cluster_policy_state: Option<String>,
    pub cluster_policy_message: Option<String>,
    pub toolkit_env: Vec<EnvVar>,
    pub toolkit_version: Option<String>,
    pub toolkit_enabled: Option<bool>,
    pub driver_enabled: Option<bool>,
    pub cdi_enabled: Option<bool>,
    pub nri_enabled: Option<bool>,
    pub runtime_class: Option<String>,
    pub operands: Vec<OperandPod>,
}

fn bool_at(v: &serde_json::Value, ptr: &str) -> Option<bool> {
    match v.pointer(ptr)? {
        serde_json::Value::Bool(b) => Some(*b),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn env_at(v: &serde_json::Value, ptr: &str) -> Vec<EnvVar> {
    v.pointer(ptr)
        .and_then(|e| e.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|e| {
                    Some(EnvVar {
                        name: e.get("name")?.as_str()?.to_string(),
                        value: match e.get("value") {
                            Some(serde_json::Value::String(s)) => s.clone(),
                            Some(other) => other.to_string(),
                            None => String::new(),
                        },
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// An operand DaemonSet's `app` label (from its pod template, as the operand
/// pods carry it), else its name.
pub fn daemonset_app(ds: &k8s_openapi::api::apps::v1::DaemonSet) -> String {
    ds.spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref())
        .and_then(|l| l.get("app").cloned())
        .or_else(|| ds.metadata.name.clone())
        .unwrap_or_default()
}

/// The `helm.sh/chart: gpu-operator-v26.7.0` label's version.
pub fn chart_label_version(label: &str) -> Option<&str> {
    label.strip_prefix("gpu-operator-")
}

/// The label the chart puts on what it renders.
pub const CHART_LABEL: &str = "helm.sh/chart";

/// A chart version read from a `helm.sh/chart` label: the version and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledVersion {
    pub version: String,
    /// `label helm.sh/chart on deployment gpu-operator`.
    pub source: String,
}

/// The chart version from the `helm.sh/chart: gpu-operator-<version>`
/// labels, first found in this order: the operator Deployment and the
/// ClusterPolicy (the chart renders both with `gpu-operator.labels`), then
/// the operand DaemonSets (the operator copies the ClusterPolicy's
/// `daemonsets.labels`, rendered from `gpu-operator.operand-labels`):
/// NVIDIA/gpu-operator v25.10.1:deployments/gpu-operator/templates/_helpers.tpl,
/// operator.yaml, clusterpolicy.yaml. Labels of subcharts (NFD's
/// `node-feature-discovery-…`) do not count. None: read the Helm release.
pub fn chart_label_version_of(
    ops: &OperatorObjects,
    cluster_policies: &[DynamicObject],
) -> Option<LabelledVersion> {
    let from = |kind: &str, name: Option<&String>, labels: Option<&BTreeMap<String, String>>| {
        let version = chart_label_version(labels?.get(CHART_LABEL)?)?;
        Some(LabelledVersion {
            version: version.to_string(),
            source: format!(
                "label {CHART_LABEL} on {kind} {}",
                name.map(String::as_str).unwrap_or_default()
            ),
        })
    };
    ops.deployments
        .iter()
        .find_map(|d| {
            from(
                "deployment",
                d.metadata.name.as_ref(),
                d.metadata.labels.as_ref(),
            )
        })
        .or_else(|| {
            cluster_policies.iter().find_map(|cp| {
                from(
                    "clusterpolicy",
                    cp.metadata.name.as_ref(),
                    cp.metadata.labels.as_ref(),
                )
            })
        })
        .or_else(|| {
            ops.daemonsets.iter().find_map(|d| {
                from(
                    "daemonset",
                    d.metadata.name.as_ref(),
                    d.metadata.labels.as_ref(),
                )
            })
        })
}

/// A pod's container statuses, init containers first.
pub fn container_statuses(pod: &Pod) -> Vec<&ContainerStatus> {
    pod.status
        .iter()
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .collect()
}

pub fn operand_pod(pod: &Pod) -> Option<OperandPod> {
    let labels = pod.metadata.labels.as_ref()?;
    let app = labels.get("app")?.clone();
    let status = pod.status.as_ref();
    let statuses = container_statuses(pod);
    let problem = statuses.iter().find_map(|cs| {
        let state = cs.state.as_ref()?;
        if let Some(w) = &state.waiting {
            let reason = w.reason.clone().unwrap_or_default();
            if reason == "PodInitializing" || reason == "ContainerCreating" && w.message.is_none() {
                return None;
            }
            return Some(format!(
                "container {}: waiting: {}{}",
                cs.name,
                reason,
                w.message
                    .as_ref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ));
        }
        if let Some(t) = &state.terminated
            && t.exit_code != 0
        {
            return Some(format!(
                "container {}: terminated: {} (exit {}){}",
                cs.name,
                t.reason.clone().unwrap_or_default(),
                t.exit_code,
                t.message
                    .as_ref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ));
        }
        None
    });
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    Some(OperandPod {
        app,
        pod: pod.metadata.name.clone().unwrap_or_default(),
        node: pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
        phase: status.and_then(|s| s.phase.clone()).unwrap_or_default(),
        ready,
        restarts: statuses.iter().map(|c| c.restart_count).sum(),
        problem,
    })
}

impl OperatorFacts {
    pub fn from_snapshot(snap: &Snapshot) -> Option<Self> {
        let ops = snap.operator.as_ref()?;
        Some(Self::from_objects(ops, snap))
    }

    fn from_objects(ops: &OperatorObjects, snap: &Snapshot) -> Self {
        let mut facts = OperatorFacts {
            namespace: ops.namespace.clone(),
            found_by: ops.found_by.clone(),
            namespace_labels: ops.namespace_labels.clone(),
            ..Default::default()
        };
        // Chart version: the helm.sh/chart labels, else the Helm release
        // (the snapshot reads its Secrets only then).
        let cps = snap.cluster_policies.as_deref().unwrap_or_default();
        if let Some(l) = chart_label_version_of(ops, cps) {
            facts.chart_version = Triple::parse_loose(&l.version);
            facts.chart_version_raw = Some(l.version);
            facts.chart_version_source = Some(l.source);
        }
        let release = match crate::helm::release::find_gpu_operator(&ops.helm_secrets) {
            Ok(r) => r,
            Err(e) => {
                facts.release_error = Some(e.to_string());
                None
            }
        };
        if let Some(release) = &release {
            facts.release = Some(release.name.clone());
            facts.app_version = release.app_version.clone();
            if facts.chart_version.is_none() {
                facts.chart_version = Triple::parse_loose(&release.chart_version);
                facts.chart_version_raw = Some(release.chart_version.clone());
                facts.chart_version_source = Some(format!(
                    "Helm release {} (revision {})",
                    release.name, release.revision
                ));
            }
        }
        for d in &ops.deployments {
            let labels = d.metadata.labels.clone().unwrap_or_default();
            if facts.release.is_none() {
                facts.release = labels.get("app.kubernetes.io/instance").cloned();
            }
            if labels
                .get(CHART_LABEL)
                .is_some_and(|l| chart_label_version(l).is_some())
                && let Some(v) = labels.get("app.kubernetes.io/version")
            {
                facts.app_version = Some(v.clone());
            }
        }
        if let Some(cp) = snap.cluster_policies.iter().flatten().next() {
            let data = &cp.data;
            facts.cluster_policy = cp.metadata.name.clone();
            facts.cluster_policy_state = data
                .pointer("/status/state")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            facts.cluster_policy_message = data
                .pointer("/status/conditions")
                .and_then(|c| c.as_array())
                .and_then(|c| {
                    c.iter().find(|c| {
                        c.get("type").and_then(|t| t.as_str()) == Some("Error")
                            && c.get("status").and_then(|s| s.as_str()) == Some("True")
                    })
                })
                .and_then(|c| c.get("message").and_then(|m| m.as_str()))
                .map(str::to_string);
            facts.toolkit_env = env_at(data, "/spec/toolkit/env");
            facts.toolkit_version = data
                .pointer("/spec/toolkit/version")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            facts.toolkit_enabled = bool_at(data, "/spec/toolkit/enabled");
            facts.driver_enabled = bool_at(data, "/spec/driver/enabled");
            facts.cdi_enabled = bool_at(data, "/spec/cdi/enabled");
            facts.nri_enabled = bool_at(data, "/spec/cdi/nriPluginEnabled");
            facts.runtime_class = data
                .pointer("/spec/operator/runtimeClass")
                .and_then(|v| v.as_str())
                .map(str::to_string);
        }
        if facts.toolkit_env.is_empty() {
            // No ClusterPolicy readable: fall back to the toolkit DaemonSet's container env.
            if let Some(ds) = ops
                .daemonsets
                .iter()
                .find(|d| d.metadata.name.as_deref() == Some(TOOLKIT_APP))
                && let Ok(v) = serde_json::to_value(ds)
            {
                facts.toolkit_env = env_at(&v, "/spec/template/spec/containers/0/env");
            }
        }
        facts.operands = ops.pods.iter().filter_map(operand_pod).collect();
        facts
    }

    pub fn env(&self, name: &str) -> Option<&str> {
        self.toolkit_env
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.value.as_str())
    }

    pub fn operands_on<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a OperandPod> + 'a {
        self.operands.iter().filter(move |p| p.node == node)
    }
}
