//! One test per diagnosis kind. Pods and events are built with serde_json in
//! the shape `kubectl get pod/events -o json` returns; the texts are quoted
//! from the public issues named at each test and the captures under
//! `tests/fixtures/nvidia-smi`.

use std::fs;
use std::path::Path;

use k8s_openapi::api::core::v1::{Event, Pod};
use rke2gpu::nvidia_smi::SmiFailure;
use rke2gpu::verify::{Diagnosis, DiagnosisInput, DiagnosisKind, diagnose, diagnose_smi_failure};
use serde_json::{Value, json};

const NODE: &str = "gpu-node-1";
const NS: &str = "default";
const POD: &str = "gpu-verify-gpu-node-1-r1";
const IMAGE: &str = "nvcr.io/nvidia/cuda:13.0.1-base-ubuntu24.04";

fn pod(status: Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": POD,
            "namespace": NS,
            "labels": {"app.kubernetes.io/name": "kubectl-gpu", "kubectl-gpu.rke2.io/run-id": "r1"}
        },
        "spec": {
            "nodeName": NODE,
            "restartPolicy": "Never",
            "containers": [{"name": "verify", "image": IMAGE}]
        },
        "status": status
    }))
    .expect("pod json")
}

fn event(type_: &str, reason: &str, message: &str) -> Event {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": format!("{POD}.17f3a1b2c3d4e5f6"), "namespace": NS},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": POD, "namespace": NS, "fieldPath": "spec.containers{verify}"},
        "reason": reason,
        "message": message,
        "type": type_,
        "source": {"component": "kubelet", "host": NODE},
        "count": 3,
        "firstTimestamp": "2026-11-29T00:54:56Z",
        "lastTimestamp": "2026-11-29T00:55:26Z"
    }))
    .expect("event json")
}

fn container(state: Value, last_state: Value) -> Value {
    json!({
        "name": "verify",
        "image": IMAGE,
        "imageID": "",
        "ready": false,
        "restartCount": 0,
        "started": false,
        "state": state,
        "lastState": last_state
    })
}

fn pending_creating() -> Pod {
    pod(json!({
        "phase": "Pending",
        "containerStatuses": [container(json!({"waiting": {"reason": "ContainerCreating"}}), json!({}))]
    }))
}

fn failed_with(exit_code: i32, reason: &str, message: Option<&str>) -> Pod {
    let mut term = json!({
        "exitCode": exit_code,
        "reason": reason,
        "startedAt": "2026-11-29T00:54:58Z",
        "finishedAt": "2026-11-29T00:54:59Z"
    });
    if let Some(m) = message {
        term["message"] = json!(m);
    }
    pod(json!({
        "phase": "Failed",
        "containerStatuses": [container(json!({"terminated": term}), json!({}))]
    }))
}

fn input<'a>() -> DiagnosisInput<'a> {
    DiagnosisInput::new(NODE, NS, IMAGE)
}

fn primary(ds: &[Diagnosis]) -> &Diagnosis {
    ds.first().expect("at least one diagnosis")
}

fn section(name: &str, body: &str, rc: i32) -> String {
    format!(
        "### kubectl-gpu begin {name}\n{}\n### kubectl-gpu end {name} rc={rc}\n",
        body.trim_end()
    )
}

fn smi_log(body: &str, rc: i32) -> String {
    section("list", body, rc) + &section("query", body, rc) + &section("version", body, rc)
}

#[test]
fn pod_security_rejected() {
    // Shape: redhat-developer/odo#6847 (`violates PodSecurity "restricted:latest": …`); the
    // verify pod meets everything but runAsNonRoot.
    let err = "pods \"gpu-verify-gpu-node-1-r1\" is forbidden: violates PodSecurity \"restricted:latest\": runAsNonRoot != true (pod or container \"verify\" must set securityContext.runAsNonRoot=true)";
    let mut i = input();
    i.create_error = Some(err);
    let ds = diagnose(&i);
    let d = primary(&ds);
    assert_eq!(d.kind, DiagnosisKind::PodSecurityRejected);
    assert_eq!(d.evidence, err);
    assert_eq!(d.source, "create");
    assert!(
        d.fix
            .contains("kubectl label ns default pod-security.kubernetes.io/enforce=baseline")
    );
    assert_eq!(
        d.next_command.as_deref(),
        Some("kubectl get ns default --show-labels")
    );
}

#[test]
fn runtime_class_not_found() {
    // truenas/middleware#11178
    let err = "pods \"gpu-verify-gpu-node-1-r1\" is forbidden: pod rejected: RuntimeClass \"nvidia\" not found";
    let mut i = input();
    i.create_error = Some(err);
    i.runtime_class = Some("nvidia");
    let d = diagnose(&i).remove(0);
    assert_eq!(d.kind, DiagnosisKind::RuntimeClassNotFound);
    assert_eq!(d.evidence, err);
    assert_eq!(d.next_command.as_deref(), Some("kubectl get runtimeclass"));
}

#[test]
fn no_runtime_for_nvidia() {
    // NVIDIA/gpu-operator#730 (describe pod events)
    let p = pending_creating();
    let events = [
        event(
            "Normal",
            "Scheduled",
            "Successfully assigned default/gpu-verify-gpu-node-1-r1 to gpu-node-1",
        ),
        event(
            "Warning",
            "FailedCreatePodSandBox",
            "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to get sandbox runtime: no runtime for \"nvidia\" is configured",
        ),
    ];
    let mut i = input();
    i.pod = Some(&p);
    i.events = &events;
    i.runtime_class = Some("nvidia");
    let ds = diagnose(&i);
    assert_eq!(ds.len(), 1, "{ds:?}");
    let d = &ds[0];
    assert_eq!(d.kind, DiagnosisKind::NoRuntimeConfigured);
    assert!(
        d.evidence
            .ends_with("no runtime for \"nvidia\" is configured")
    );
    assert_eq!(d.source, "event FailedCreatePodSandBox");
    assert_eq!(
        d.next_command.as_deref(),
        Some("kubectl gpu check-runtime --deep --node gpu-node-1")
    );
    assert!(d.fix.contains("patch-containerd"));
}

#[test]
fn unresolvable_cdi_devices() {
    // NVIDIA/nvidia-container-toolkit#1239 (RKE2, runtimeClassName nvidia-cdi)
    let msg = "failed to create containerd task: failed to create shim task: OCI runtime create failed: could not apply required modification to OCI specification: error modifying OCI spec: failed to inject CDI devices: unresolvable CDI devices management.nvidia.com/gpu=GPU-e78e68c0-4e6a-737e-f9cc-4223fe50aead";
    let p = failed_with(128, "StartError", Some(msg));
    let events = [event("Warning", "Failed", &format!("Error: {msg}"))];
    let mut i = input();
    i.pod = Some(&p);
    i.events = &events;
    let d = diagnose(&i).remove(0);
    assert_eq!(d.kind, DiagnosisKind::UnresolvableCdiDevices);
    assert!(
        d.evidence
            .contains("unresolvable CDI devices management.nvidia.com/gpu=GPU-e78e68c0")
    );
    assert_eq!(d.source, "container verify");
    assert!(d.fix.contains("25.10"));
}

#[test]
fn driver_library_mismatch_in_runtime_hook() {
    // NVIDIA/gpu-operator#898 (lastState.terminated, exit code 128)
    let msg = "failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: error during container init: error running hook #0: error running hook: exit status 1, stdout: , stderr: Auto-detected mode as 'legacy'\nnvidia-container-cli: initialization error: nvml error: driver/library version mismatch: unknown";
    let p = pod(json!({
        "phase": "Failed",
        "containerStatuses": [container(
            json!({"terminated": {"exitCode": 128, "reason": "StartError", "message": msg}}),
            json!({})
        )]
    }));
    let mut i = input();
    i.pod = Some(&p);
    let ds = diagnose(&i);
    let d = primary(&ds);
    assert_eq!(d.kind, DiagnosisKind::DriverLibraryMismatch);
    assert_eq!(
        d.evidence,
        "nvidia-container-cli: initialization error: nvml error: driver/library version mismatch: unknown"
    );
    assert!(
        !ds.iter()
            .any(|d| d.kind == DiagnosisKind::ContainerCliInitError),
        "{ds:?}"
    );
}

#[test]
fn driver_library_mismatch_from_nvidia_smi() {
    // NVIDIA/k8s-device-plugin#1431
    let p = failed_with(18, "Error", None);
    let log = smi_log(
        "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 570.195",
        18,
    );
    let mut i = input();
    i.pod = Some(&p);
    i.log = Some(&log);
    let d = diagnose(&i).remove(0);
    assert_eq!(d.kind, DiagnosisKind::DriverLibraryMismatch);
    assert_eq!(d.source, "log");
    assert_eq!(
        d.evidence,
        "Failed to initialize NVML: Driver/library version mismatch"
    );
    assert_eq!(diagnose(&i).len(), 1);
}

#[test]
fn container_cli_cannot_load_libnvidia_ml() {
    // NVIDIA/nvidia-container-toolkit#154, NVIDIA/gpu-operator#511
    let p = pod(json!({
        "phase": "Pending",
        "containerStatuses": [container(json!({"waiting": {"reason": "RunContainerError", "message": "context deadline exceeded"}}), json!({}))]
    }));
    let events = [event(
        "Warning",
        "Failed",
        "Error: failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: error during container init: error running hook #0: error running hook: exit status 1, stdout: , stderr: Auto-detected mode as 'legacy'\nnvidia-container-cli: initialization error: load library failed: libnvidia-ml.so.1: cannot open shared object file: no such file or directory: unknown",
    )];
    let mut i = input();
    i.pod = Some(&p);
    i.events = &events;
    let d = diagnose(&i).remove(0);
    assert_eq!(d.kind, DiagnosisKind::ContainerCliInitError);
    assert!(d.evidence.starts_with(
        "nvidia-container-cli: initialization error: load library failed: libnvidia-ml.so.1"
    ));
    assert!(d.fix.contains("driver.enabled=false"));
}

#[test]
fn image_pull_failure() {
    // charmed-kubernetes/kubernetes-docs#648, NVIDIA/gpu-operator#273 (event texts)
    let p = pod(json!({
        "phase": "Pending",
        "containerStatuses": [container(json!({"waiting": {"reason": "ImagePullBackOff", "message": format!("Back-off pulling image \"{IMAGE}\"")}}), json!({}))]
    }));
    let events = [
        event("Normal", "Pulling", &format!("Pulling image \"{IMAGE}\"")),
        event(
            "Warning",
            "Failed",
            &format!(
                "Failed to pull image \"{IMAGE}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{IMAGE}\": failed to resolve reference \"{IMAGE}\": {IMAGE}: not found"
            ),
        ),
        event("Warning", "Failed", "Error: ErrImagePull"),
        event(
            "Normal",
            "BackOff",
            &format!("Back-off pulling image \"{IMAGE}\""),
        ),
        event("Warning", "Failed", "Error: ImagePullBackOff"),
    ];
    let mut i = input();
    i.pod = Some(&p);
    i.events = &events;
    let d = diagnose(&i).remove(0);
    assert_eq!(d.kind, DiagnosisKind::ImagePullFailed);
    assert!(
        d.evidence
            .starts_with("Failed to pull image \"nvcr.io/nvidia/cuda:13.0.1-base-ubuntu24.04\"")
    );
    assert!(d.fix.contains("--image"));
    assert_eq!(
        d.next_command.as_deref(),
        Some(
            "kubectl gpu verify --node gpu-node-1 --image REGISTRY/nvidia/cuda:13.0.1-base-ubuntu24.04"
        )
    );
}

#[test]
fn kubelet_rejects_pinned_pod_without_gpus() {
    // nodeName skips the scheduler: the kubelet's admission rejects the pod
    // (kubernetes InsufficientResourceError text, reason OutOf<resource>).
    let p = pod(json!({
        "phase": "Failed",
        "reason": "OutOfnvidia.com/gpu",
        "message": "Pod was rejected: Node didn't have enough resource: nvidia.com/gpu, requested: 1, used: 0, capacity: 0"
    }));
    let events = [event(
        "Warning",
        "OutOfnvidia.com/gpu",
        "Node didn't have enough resource: nvidia.com/gpu, requested: 1, used: 0, capacity: 0",
    )];
    let mut i = input();
    i.pod = Some(&p);
    i.events = &events;
    let d = diagnose(&i).remove(0);
    assert_eq!(d.kind, DiagnosisKind::InsufficientGpuResource);
    assert_eq!(d.source, "pod status");
    assert!(d.evidence.contains("capacity: 0"));
    assert!(d.summary.contains("device plugin is not advertising"));
}

#[test]
fn scheduler_insufficient_gpu() {
    // NVIDIA/k8s-device-plugin#119
    let p = pod(json!({"phase": "Pending"}));
    let events = [event(
        "Warning",
        "FailedScheduling",
        "0/2 nodes are available: 1 Insufficient nvidia.com/gpu, 1 node(s) were unschedulable.",
    )];
    let mut i = input();
    i.pod = Some(&p);
    i.events = &events;
    let d = diagnose(&i).remove(0);
    assert_eq!(d.kind, DiagnosisKind::InsufficientGpuResource);
    assert_eq!(d.source, "event FailedScheduling");
}

#[test]
fn mig_resource_insufficient() {
    let p = pod(
        json!({"phase": "Failed", "reason": "UnexpectedAdmissionError",
        "message": "Pod was rejected: Allocate failed due to requested number of devices unavailable for nvidia.com/mig-1g.10gb. Requested: 1, Available: 0, which is unexpected"}),
    );
    let mut i = input();
    i.pod = Some(&p);
    i.resource_name = "nvidia.com/mig-1g.10gb";
    let d = diagnose(&i).remove(0);
    assert_eq!(d.kind, DiagnosisKind::InsufficientGpuResource);
    assert!(d.summary.contains("nvidia.com/mig-1g.10gb"));
}

#[test]
fn nvidia_smi_not_found_in_log() {
    // k8s-device-plugin#346; the verify script under dash when nothing was injected
    let p = failed_with(127, "Error", None);
    let log = smi_log("sh: 7: nvidia-smi: not found", 127);
    let mut i = input();
    i.pod = Some(&p);
    i.log = Some(&log);
    let ds = diagnose(&i);
    assert_eq!(ds.len(), 1, "{ds:?}");
    let d = &ds[0];
    assert_eq!(d.kind, DiagnosisKind::NvidiaSmiNotFound);
    assert_eq!(d.evidence, "sh: 7: nvidia-smi: not found");
    assert!(d.fix.contains("--runtime-class nvidia"));

    let mut with_rc = i;
    with_rc.runtime_class = Some("nvidia");
    let d = diagnose(&with_rc).remove(0);
    assert!(d.fix.starts_with("RuntimeClass nvidia is set"));
}

#[test]
fn nvidia_smi_executable_not_found_start_error() {
    // NVIDIA/k8s-device-plugin#346: a pod whose command is nvidia-smi itself
    let msg = "failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"nvidia-smi\": executable file not found in $PATH: unknown";
    let p = failed_with(128, "StartError", Some(msg));
    let mut i = input();
    i.pod = Some(&p);
    let d = diagnose(&i).remove(0);
    assert_eq!(d.kind, DiagnosisKind::NvidiaSmiNotFound);
}

#[test]
fn driver_not_loaded() {
    // nvidia-smi's message when it cannot reach the kernel driver
    let p = failed_with(9, "Error", None);
    let log = smi_log(
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.",
        9,
    );
    let mut i = input();
    i.pod = Some(&p);
    i.log = Some(&log);
    let d = diagnose(&i).remove(0);
    assert_eq!(d.kind, DiagnosisKind::DriverNotLoaded);
    assert!(d.evidence.starts_with("NVIDIA-SMI has failed"));
}

#[test]
fn nvml_unknown_error_from_container_fixture() {
    // tests/fixtures/nvidia-smi/h200-580-container/no-device-nodes.txt (exit 255)
    let body = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/nvidia-smi/h200-580-container/no-device-nodes.txt"),
    )
    .expect("fixture");
    let p = failed_with(255, "Error", None);
    let log = smi_log(&body, 255);
    let mut i = input();
    i.pod = Some(&p);
    i.log = Some(&log);
    let ds = diagnose(&i);
    let d = primary(&ds);
    assert_eq!(d.kind, DiagnosisKind::NvmlUnknownError);
    assert_eq!(d.evidence, "Failed to initialize NVML: Unknown Error");
    // One diagnosis: the generic NVML rule does not repeat it.
    assert_eq!(ds.len(), 1, "{ds:?}");
}

#[test]
fn nvml_other_init_failure() {
    let p = failed_with(4, "Error", None);
    let log = smi_log("Failed to initialize NVML: Insufficient Permissions", 4);
    let mut i = input();
    i.pod = Some(&p);
    i.log = Some(&log);
    let d = diagnose(&i).remove(0);
    assert_eq!(d.kind, DiagnosisKind::NvmlInitFailed);
}

#[test]
fn no_devices_found() {
    let p = failed_with(6, "Error", None);
    let log = smi_log("No devices were found", 6);
    let mut i = input();
    i.pod = Some(&p);
    i.log = Some(&log);
    let d = diagnose(&i).remove(0);
    assert_eq!(d.kind, DiagnosisKind::NoDevicesFound);
}

#[test]
fn vectoradd_cuda_error() {
    // cuda-samples vectorAdd.cu error path
    let p = failed_with(1, "Error", None);
    let log = "[Vector addition of 50000 elements]\nFailed to allocate device vector A (error code CUDA driver version is insufficient for CUDA runtime version)!\n";
    let mut i = input();
    i.pod = Some(&p);
    i.log = Some(log);
    let d = diagnose(&i).remove(0);
    assert_eq!(d.kind, DiagnosisKind::CudaError);
    assert!(d.fix.contains("older cuda-sample"));
}

#[test]
fn other_sandbox_failure() {
    // A CNI failure during sandbox creation (calico; common on fresh clusters)
    let p = pending_creating();
    let events = [event(
        "Warning",
        "FailedCreatePodSandBox",
        "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for sandbox \"0f1e2d3c\": plugin type=\"calico\" failed (add): error getting ClusterInformation: connection is unauthorized: Unauthorized",
    )];
    let mut i = input();
    i.pod = Some(&p);
    i.events = &events;
    let d = diagnose(&i).remove(0);
    assert_eq!(d.kind, DiagnosisKind::SandboxCreationFailed);
    assert!(d.evidence.contains("calico"));
}

#[test]
fn deadline_exceeded() {
    // kubernetes/kubernetes#88613, argoproj/argo-workflows#11156
    let p = pod(json!({
        "phase": "Failed",
        "reason": "DeadlineExceeded",
        "message": "Pod was active on the node longer than the specified deadline"
    }));
    let mut i = input();
    i.pod = Some(&p);
    let d = diagnose(&i).remove(0);
    assert_eq!(d.kind, DiagnosisKind::DeadlineExceeded);
    assert_eq!(
        d.evidence,
        "DeadlineExceeded: Pod was active on the node longer than the specified deadline"
    );
}

#[test]
fn deadline_after_image_pull_backoff_names_the_pull_first() {
    let p = pod(json!({
        "phase": "Failed",
        "reason": "DeadlineExceeded",
        "message": "Pod was active on the node longer than the specified deadline",
        "containerStatuses": [container(json!({"waiting": {"reason": "ImagePullBackOff", "message": format!("Back-off pulling image \"{IMAGE}\"")}}), json!({}))]
    }));
    let mut i = input();
    i.pod = Some(&p);
    let ds = diagnose(&i);
    let kinds: Vec<DiagnosisKind> = ds.iter().map(|d| d.kind).collect();
    assert_eq!(
        kinds,
        [
            DiagnosisKind::ImagePullFailed,
            DiagnosisKind::DeadlineExceeded
        ]
    );
}

#[test]
fn caller_timeout_while_creating() {
    let p = pending_creating();
    let mut i = input();
    i.pod = Some(&p);
    i.timed_out = true;
    let d = diagnose(&i).remove(0);
    assert_eq!(d.kind, DiagnosisKind::Timeout);
    assert_eq!(d.evidence, "ContainerCreating");
    assert_eq!(
        d.next_command.as_deref(),
        Some("kubectl describe pod -n default gpu-verify-gpu-node-1-r1")
    );
}

#[test]
fn unexplained_non_zero_exit() {
    let p = failed_with(1, "Error", None);
    let mut i = input();
    i.pod = Some(&p);
    i.log = Some("something unexpected happened\n");
    let d = diagnose(&i).remove(0);
    assert_eq!(d.kind, DiagnosisKind::ContainerFailed);
    assert_eq!(d.evidence, "exit code 1: Error");
}

#[test]
fn nothing_known() {
    let p = pod(json!({"phase": "Unknown"}));
    let mut i = input();
    i.pod = Some(&p);
    let ds = diagnose(&i);
    assert_eq!(ds.len(), 1);
    assert_eq!(ds[0].kind, DiagnosisKind::Unknown);
    assert!(ds[0].summary.contains("phase Unknown"));
}

#[test]
fn smi_failures_map_to_kinds() {
    let cases = [
        (
            SmiFailure::DriverNotLoaded {
                line:
                    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
                        .into(),
            },
            DiagnosisKind::DriverNotLoaded,
        ),
        (
            SmiFailure::VersionMismatch {
                line: "Failed to initialize NVML: Driver/library version mismatch".into(),
                nvml_library_version: None,
            },
            DiagnosisKind::DriverLibraryMismatch,
        ),
        (
            SmiFailure::NvmlUnknownError {
                line: "Failed to initialize NVML: Unknown Error".into(),
            },
            DiagnosisKind::NvmlUnknownError,
        ),
        (
            SmiFailure::NotFound {
                line: "sh: 1: nvidia-smi: not found".into(),
            },
            DiagnosisKind::NvidiaSmiNotFound,
        ),
        (
            SmiFailure::NoDevices {
                line: "No devices were found".into(),
            },
            DiagnosisKind::NoDevicesFound,
        ),
        (
            SmiFailure::Unknown {
                first_line: "hello".into(),
            },
            DiagnosisKind::Unknown,
        ),
    ];
    for (f, kind) in cases {
        let d = diagnose_smi_failure(&f, NODE);
        assert_eq!(d.kind, kind, "{f:?}");
        assert_eq!(d.evidence, f.evidence());
        assert!(!d.fix.is_empty());
    }
}

#[test]
fn serialises_kind_snake_case() {
    let mut i = input();
    i.create_error =
        Some("pods \"x\" is forbidden: pod rejected: RuntimeClass \"nvidia\" not found");
    let v = serde_json::to_value(diagnose(&i)).expect("json");
    assert_eq!(v[0]["kind"], "runtime_class_not_found");
    assert!(v[0]["next_command"].is_string());
}
