//! The `runtimeClassName` of each node's verify pod: the user's choice,
//! else decided from the GPU Operator's version and CDI/NRI settings and
//! the node's containerd ([`crate::matrix::gpu_injection`]). Pure.

use k8s_openapi::api::node::v1::RuntimeClass;
use serde::Serialize;

use super::options::RuntimeClassChoice;
use crate::facts::NodeFacts;
use crate::matrix::{self, GpuInjection};
use crate::operator::OperatorFacts;

/// The RuntimeClass the GPU Operator and rke2-runtimeclasses create.
pub const NVIDIA_RUNTIME_CLASS: &str = "nvidia";

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
