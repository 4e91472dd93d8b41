//! The verify Pod, built from plain inputs (no I/O).
//!
//! One pod per node, pinned with `nodeName`, `restartPolicy: Never`, a GPU
//! limit and request, and `activeDeadlineSeconds` so a stuck pod ends
//! itself. The default image is a CUDA *base* image: it contains no
//! `nvidia-smi`; the binary and the driver libraries come from the host
//! driver, injected by the NVIDIA runtime (legacy hook, CDI or NRI). A pod
//! that says `nvidia-smi: not found` therefore proves the runtime did not
//! inject the driver (k3s-io/k3s#4391).
//!
//! Placement and taints: `nodeName` bypasses the scheduler, so neither a
//! cordon (`spec.unschedulable`) nor `NoSchedule` taints stop the pod;
//! only `NoExecute` taints do (the kubelet rejects or evicts it). The pod
//! tolerates the `nvidia.com/gpu` taint key (any value and effect), the
//! taint GPU node pools commonly carry, and nothing else by default. Whether
//! a cordoned or otherwise tainted node may be used at all is a decision
//! for the caller: [`placement_issues`] lists what the user should be asked
//! about, and `tolerate_all_taints` is the explicit opt-in.
//!
//! Pod security: CUDA images run as root, which PSA `restricted` forbids
//! (`runAsNonRoot`). The pod therefore meets `baseline` and as much of
//! `restricted` as possible: no privilege escalation, all capabilities
//! dropped, seccomp `RuntimeDefault`, no service-account token. With
//! `run_as_user` set it also sets `runAsNonRoot`/`runAsUser`/`runAsGroup`
//! and then passes `restricted`; nvidia-smi works as a non-root user when
//! the driver's device nodes are world-accessible (the driver's default
//! device file mode, 0666).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, Node, Pod, PodSecurityContext, PodSpec, ResourceRequirements,
    SeccompProfile, SecurityContext, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::output::verify_script;
use crate::error::{Error, Result};
use crate::labels;
use crate::objects::{self, ANNOTATION_NODE, Component};

/// Default image for the nvidia-smi workload. A current CUDA base image;
/// nvidia-smi itself comes from the host driver through the runtime.
pub const DEFAULT_SMI_IMAGE: &str = "nvcr.io/nvidia/cuda:13.0.1-base-ubuntu24.04";
/// Default image for the vectoradd workload (NVIDIA's docs' sample).
pub const DEFAULT_VECTORADD_IMAGE: &str =
    "nvcr.io/nvidia/k8s/cuda-sample:vectoradd-cuda12.5.0-ubuntu22.04";
/// The whole-GPU extended resource of the NVIDIA device plugin.
pub const DEFAULT_RESOURCE_NAME: &str = labels::RESOURCE_GPU;
/// Long enough for a first pull of a CUDA image on a slow link.
pub const DEFAULT_ACTIVE_DEADLINE_SECONDS: i64 = 300;
/// The container's name.
pub const CONTAINER_NAME: &str = "verify";

/// What the verify container runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// `sh -c` [`verify_script`]: nvidia-smi `-L`, query and `--version`.
    Smi,
    /// The CUDA vectorAdd sample with its image's default command.
    VectorAdd,
}

impl Workload {
    pub fn default_image(self) -> &'static str {
        match self {
            Workload::Smi => DEFAULT_SMI_IMAGE,
            Workload::VectorAdd => DEFAULT_VECTORADD_IMAGE,
        }
    }
}

/// Inputs of [`build_verify_pod`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifySpecInput {
    pub node_name: String,
    pub namespace: String,
    pub pod_name: String,
    /// `None`: the workload's default image.
    pub image: Option<String>,
    /// How many units of `resource_name` to request (≥ 1).
    pub gpus: u32,
    /// `nvidia.com/gpu`, or a MIG resource such as `nvidia.com/mig-1g.10gb`.
    pub resource_name: String,
    /// Set `runtimeClassName` only when given (needed for GPU Operator
    /// ≤ 25.3 on RKE2 unless nvidia is the default runtime).
    pub runtime_class: Option<String>,
    pub active_deadline_seconds: i64,
    pub workload: Workload,
    /// Goes into the run-id label; a valid label value.
    pub run_id: String,
    /// Run as this non-root uid (and gid), making the pod PSA-restricted.
    pub run_as_user: Option<i64>,
    /// Tolerate every taint (explicit user opt-in for tainted nodes).
    pub tolerate_all_taints: bool,
}

impl VerifySpecInput {
    /// Defaults: namespace `default`, derived pod name, default image,
    /// 1 × `nvidia.com/gpu`, no runtime class, 300 s deadline, nvidia-smi.
    pub fn new(node_name: &str, run_id: &str) -> Self {
        VerifySpecInput {
            node_name: node_name.to_string(),
            namespace: "default".to_string(),
            pod_name: objects::pod_name(Component::Verify, node_name, run_id),
            image: None,
            gpus: 1,
            resource_name: DEFAULT_RESOURCE_NAME.to_string(),
            runtime_class: None,
            active_deadline_seconds: DEFAULT_ACTIVE_DEADLINE_SECONDS,
            workload: Workload::Smi,
            run_id: run_id.to_string(),
            run_as_user: None,
            tolerate_all_taints: false,
        }
    }

    /// The image the pod will run.
    pub fn effective_image(&self) -> &str {
        self.image
            .as_deref()
            .unwrap_or_else(|| self.workload.default_image())
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidVerifySpec {
        field,
        reason: reason.into(),
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// A Kubernetes label value: ≤ 63 chars, alphanumerics, `-`, `_`, `.`,
/// starting and ending alphanumeric.
pub fn is_label_value(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

/// `nvidia.com/gpu`-style extended resource name: `domain/name`.
fn is_extended_resource(s: &str) -> bool {
    match s.split_once('/') {
        Some((domain, name)) => {
            is_dns_subdomain(domain)
                && !name.is_empty()
                && name.len() <= 63
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        None => false,
    }
}

/// Builds the verify Pod.
pub fn build_verify_pod(input: &VerifySpecInput) -> Result<Pod> {
    if !is_dns_subdomain(&input.node_name) {
        return Err(invalid(
            "node_name",
            format!("{:?} is not a valid node name", input.node_name),
        ));
    }
    if !is_dns_label(&input.namespace) {
        return Err(invalid(
            "namespace",
            format!("{:?} is not a valid namespace", input.namespace),
        ));
    }
    if !is_dns_subdomain(&input.pod_name) {
        return Err(invalid(
            "pod_name",
            format!("{:?} is not a valid pod name", input.pod_name),
        ));
    }
    if input.gpus == 0 {
        return Err(invalid("gpus", "request at least one GPU"));
    }
    if !is_extended_resource(&input.resource_name) {
        return Err(invalid(
            "resource_name",
            format!(
                "{:?} is not an extended resource name like nvidia.com/gpu",
                input.resource_name
            ),
        ));
    }
    if input.active_deadline_seconds < 1 {
        return Err(invalid(
            "active_deadline_seconds",
            "must be a positive number of seconds",
        ));
    }
    if !is_label_value(&input.run_id) {
        return Err(invalid(
            "run_id",
            format!("{:?} is not a valid label value", input.run_id),
        ));
    }
    if let Some(rc) = &input.runtime_class
        && !is_dns_subdomain(rc)
    {
        return Err(invalid(
            "runtime_class",
            format!("{rc:?} is not a valid RuntimeClass name"),
        ));
    }
    if input.image.as_deref().is_some_and(|i| i.trim().is_empty()) {
        return Err(invalid("image", "empty image reference"));
    }
    if input.run_as_user.is_some_and(|u| u <= 0) {
        return Err(invalid("run_as_user", "must be a non-root uid (> 0)"));
    }

    let labels = objects::our_labels(Component::Verify, &input.run_id);
    let annotations = BTreeMap::from([(ANNOTATION_NODE.to_string(), input.node_name.clone())]);

    let gpu = BTreeMap::from([(
        input.resource_name.clone(),
        Quantity(input.gpus.to_string()),
    )]);
    let resources = ResourceRequirements {
        limits: Some(gpu.clone()),
        requests: Some(gpu),
        ..Default::default()
    };

    let mut tolerations = vec![Toleration {
        key: Some(labels::TAINT_GPU.to_string()),
        operator: Some("Exists".to_string()),
        ..Default::default()
    }];
    if input.tolerate_all_taints {
        tolerations.push(Toleration {
            operator: Some("Exists".to_string()),
            ..Default::default()
        });
    }

    let non_root = input.run_as_user.is_some();
    let container_security = SecurityContext {
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            ..Default::default()
        }),
        run_as_non_root: non_root.then_some(true),
        run_as_user: input.run_as_user,
        run_as_group: input.run_as_user,
        ..Default::default()
    };
    let pod_security = PodSecurityContext {
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_string(),
            ..Default::default()
        }),
        run_as_non_root: non_root.then_some(true),
        ..Default::default()
    };

    let command = match input.workload {
        Workload::Smi => Some(vec!["sh".to_string(), "-c".to_string(), verify_script()]),
        Workload::VectorAdd => None,
    };

    let container = Container {
        name: CONTAINER_NAME.to_string(),
        image: Some(input.effective_image().to_string()),
        image_pull_policy: Some("IfNotPresent".to_string()),
        command,
        resources: Some(resources),
        security_context: Some(container_security),
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        ..Default::default()
    };

    Ok(Pod {
        metadata: ObjectMeta {
            name: Some(input.pod_name.clone()),
            namespace: Some(input.namespace.clone()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: Some(input.node_name.clone()),
            restart_policy: Some("Never".to_string()),
            active_deadline_seconds: Some(input.active_deadline_seconds),
            runtime_class_name: input.runtime_class.clone(),
            tolerations: Some(tolerations),
            containers: vec![container],
            security_context: Some(pod_security),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            termination_grace_period_seconds: Some(5),
            ..Default::default()
        }),
        status: None,
    })
}

/// Something about a node the user should confirm before a verify pod is
/// placed there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PlacementIssue {
    /// `spec.unschedulable` (cordoned). `nodeName` would still place the pod.
    Cordoned,
    /// A taint the default tolerations do not cover. `NoExecute` ones make
    /// the kubelet reject the pod; `NoSchedule`/`PreferNoSchedule` would be
    /// bypassed by `nodeName`, against the node owner's intent.
    Taint {
        key: String,
        value: Option<String>,
        effect: String,
    },
}

/// What should stop `verify` from using `node` unless the user opts in.
pub fn placement_issues(node: &Node) -> Vec<PlacementIssue> {
    let mut out = Vec::new();
    let Some(spec) = node.spec.as_ref() else {
        return out;
    };
    if spec.unschedulable == Some(true) {
        out.push(PlacementIssue::Cordoned);
    }
    for t in spec.taints.iter().flatten() {
        if t.key == labels::TAINT_GPU {
            continue;
        }
        // The cordon taint duplicates `Cordoned`.
        if t.key == labels::TAINT_UNSCHEDULABLE {
            continue;
        }
        out.push(PlacementIssue::Taint {
            key: t.key.clone(),
            value: t.value.clone(),
            effect: t.effect.clone(),
        });
    }
    out
}
