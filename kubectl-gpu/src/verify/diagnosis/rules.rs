//! The diagnosis rules: one function per known failure, tried in the
//! order of [`RULES`] (most specific first). Each cites where its text
//! comes from; versions in fixes come from [`crate::matrix`].

use super::{
    Diagnosis, DiagnosisInput, DiagnosisKind, Found, Text, deep, find, find_all, image_path, mk,
    sandbox_event,
};
use crate::matrix;

/// One diagnosis rule: what it recognises in the texts of a failed pod
/// (`so_far`: the diagnoses of the rules before it).
type Rule =
    fn(input: &DiagnosisInput<'_>, texts: &[Text], so_far: &[Diagnosis]) -> Option<Diagnosis>;

/// The rules, most specific first; the first diagnosis is the primary one.
const RULES: &[Rule] = &[
    pod_security_rejected,
    runtime_class_not_found,
    no_runtime_configured,
    unresolvable_cdi_devices,
    driver_library_mismatch,
    container_cli_init_error,
    image_pull_failed,
    insufficient_gpu_resource,
    nvidia_smi_not_found,
    driver_not_loaded,
    nvml_unknown_error,
    nvml_init_failed,
    no_devices_found,
    cuda_error,
    sandbox_creation_failed,
    deadline_exceeded,
    timeout,
    container_failed,
];

/// Every rule's diagnosis, one per kind, in rule order.
pub(super) fn diagnose_texts(input: &DiagnosisInput<'_>, texts: &[Text]) -> Vec<Diagnosis> {
    let mut out: Vec<Diagnosis> = Vec::new();
    for rule in RULES {
        if let Some(d) = rule(input, texts, &out)
            && !out.iter().any(|x| x.kind == d.kind)
        {
            out.push(d);
        }
    }
    out
}

/// PSA (kubernetes/pod-security-admission). Exact text, e.g. redhat-developer/odo#6847:
/// `pods "x" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false …`
fn pod_security_rejected(
    input: &DiagnosisInput<'_>,
    texts: &[Text],
    _: &[Diagnosis],
) -> Option<Diagnosis> {
    let ns = input.namespace;
    let f = find(texts, &["violates PodSecurity"])?;
    Some(mk(
        DiagnosisKind::PodSecurityRejected,
        f,
        format!("namespace {ns} enforces a PodSecurity level the verify pod does not meet"),
        format!(
            "use a namespace at baseline or privileged, or run: kubectl label ns {ns} pod-security.kubernetes.io/enforce=baseline --overwrite"
        ),
        Some(format!("kubectl get ns {ns} --show-labels")),
    ))
}

/// truenas/middleware#11178: `pods "…" is forbidden: pod rejected: RuntimeClass "nvidia" not found`
fn runtime_class_not_found(
    input: &DiagnosisInput<'_>,
    texts: &[Text],
    _: &[Diagnosis],
) -> Option<Diagnosis> {
    let f = find_all(texts, &["runtimeclass \"", "not found"])?;
    let rc = input.runtime_class.unwrap_or("nvidia");
    Some(mk(
        DiagnosisKind::RuntimeClassNotFound,
        f,
        format!("RuntimeClass {rc:?} does not exist in the cluster"),
        format!(
            "create RuntimeClass {rc} (handler {rc}; the GPU Operator and rke2-runtimeclasses create it), or rerun without --runtime-class when nvidia is the default runtime or CDI is used"
        ),
        Some("kubectl get runtimeclass".to_string()),
    ))
}

/// gpu-operator#730, #413: FailedCreatePodSandBox
/// `failed to get sandbox runtime: no runtime for "nvidia" is configured`.
/// gpu-operator#1298 (CRI-O): `failed to find runtime handler nvidia from runtime list`.
fn no_runtime_configured(
    input: &DiagnosisInput<'_>,
    texts: &[Text],
    _: &[Diagnosis],
) -> Option<Diagnosis> {
    let node = input.node_name;
    let f = find_all(texts, &["no runtime for", "is configured"])
        .or_else(|| find(texts, &["failed to find runtime handler"]))?;
    Some(mk(
        DiagnosisKind::NoRuntimeConfigured,
        f,
        format!("containerd on {node} has no handler for the pod's RuntimeClass"),
        format!(
            "the toolkit wrote a config RKE2 ignores or RKE2 has not re-detected the runtime: patch the generated containerd config (kubectl gpu patch-containerd) or restart rke2 once {} exists",
            matrix::TOOLKIT_RUNTIME
        ),
        deep(node),
    ))
}

/// nvidia-container-toolkit#1239:
/// `failed to inject CDI devices: unresolvable CDI devices management.nvidia.com/gpu=GPU-…`;
/// gpu-operator release-notes.rst 25.3.1/25.3.2 known issues.
fn unresolvable_cdi_devices(
    input: &DiagnosisInput<'_>,
    texts: &[Text],
    _: &[Diagnosis],
) -> Option<Diagnosis> {
    let node = input.node_name;
    let f = find(texts, &["unresolvable CDI devices"])?;
    Some(mk(
        DiagnosisKind::UnresolvableCdiDevices,
        f,
        format!("the CDI spec on {node} lacks the device the pod was given"),
        format!(
            "GPU Operator {} CDI is not operational on RKE2: disable cdi.enabled there, or use GPU Operator >= {} with containerd >= {}; regenerate the spec with nvidia-ctk cdi generate",
            matrix::cdi_broken_on_rke2_lines(),
            matrix::CDI_CHART.line_text(),
            matrix::CDI_CONTAINERD.line_text()
        ),
        deep(node),
    ))
}

/// gpu-operator#898: `nvidia-container-cli: initialization error:
/// nvml error: driver/library version mismatch: unknown`; nvidia-smi prints
/// `Failed to initialize NVML: Driver/library version mismatch` (k8s-device-plugin#1431).
fn driver_library_mismatch(
    input: &DiagnosisInput<'_>,
    texts: &[Text],
    _: &[Diagnosis],
) -> Option<Diagnosis> {
    let node = input.node_name;
    let f = find(texts, &["driver/library version mismatch"])?;
    Some(mk(
        DiagnosisKind::DriverLibraryMismatch,
        f,
        format!("the NVIDIA kernel module and user-space libraries on {node} are different versions"),
        "the driver was upgraded without a reboot (or two drivers are present): reboot the node or reload the nvidia modules, then recreate the GPU operand pods".to_string(),
        deep(node),
    ))
}

/// gpu-operator#511, #625; nvidia-container-toolkit#154:
/// `nvidia-container-cli: initialization error: load library failed: libnvidia-ml.so.1: …`
fn container_cli_init_error(
    input: &DiagnosisInput<'_>,
    texts: &[Text],
    _: &[Diagnosis],
) -> Option<Diagnosis> {
    let node = input.node_name;
    let f = find(
        texts,
        &[
            "nvidia-container-cli: initialization error",
            "load library failed",
        ],
    )
    .filter(|f| !f.evidence.to_ascii_lowercase().contains("version mismatch"))?;
    let fix = if f.evidence.contains("libnvidia-ml.so") {
        "the runtime finds no driver libraries at its driver root: with a host driver set driver.enabled=false (and check /proc/driver/nvidia/version), otherwise wait for nvidia-driver-daemonset to be ready".to_string()
    } else {
        "the NVIDIA container runtime hook failed: check the driver on the node and the toolkit logs".to_string()
    };
    Some(mk(
        DiagnosisKind::ContainerCliInitError,
        f,
        format!("the NVIDIA runtime hook on {node} could not initialise"),
        fix,
        deep(node),
    ))
}

/// gpu-operator#273, charmed-kubernetes/kubernetes-docs#648:
/// `Failed to pull image "…": rpc error: code = NotFound desc = failed to pull and unpack image …`,
/// `Back-off pulling image "…"`, `Error: ErrImagePull`, `Error: ImagePullBackOff`.
fn image_pull_failed(
    input: &DiagnosisInput<'_>,
    texts: &[Text],
    _: &[Diagnosis],
) -> Option<Diagnosis> {
    let node = input.node_name;
    let f = find(
        texts,
        &[
            "failed to pull image",
            "back-off pulling image",
            "errimagepull",
            "imagepullbackoff",
            "invalidimagename",
        ],
    )?;
    let image = input.image;
    Some(mk(
        DiagnosisKind::ImagePullFailed,
        f,
        format!("{node} cannot pull the verify image {image}"),
        format!(
            "mirror {image} into a registry the node can reach (e.g. skopeo copy docker://{image} docker://REGISTRY/…) and rerun with --image REGISTRY/…"
        ),
        Some(format!(
            "kubectl gpu verify --node {node} --image REGISTRY/{}",
            image_path(image)
        )),
    ))
}

/// Scheduler: `0/5 nodes are available: 1 Insufficient nvidia.com/gpu` (k8s-device-plugin#33, #119).
/// Kubelet with nodeName: reason `OutOfnvidia.com/gpu`, `Pod was rejected: Node didn't have
/// enough resource: nvidia.com/gpu, requested: 1, used: 0, capacity: 0`
/// (kubernetes pkg/scheduler/framework InsufficientResourceError). Device manager:
/// `UnexpectedAdmissionError … requested number of devices unavailable for nvidia.com/gpu`.
fn insufficient_gpu_resource(
    input: &DiagnosisInput<'_>,
    texts: &[Text],
    _: &[Diagnosis],
) -> Option<Diagnosis> {
    let node = input.node_name;
    let res = input.resource_name;
    let insufficient = format!("insufficient {res}");
    let out_of = format!("outof{res}");
    let not_enough = format!("didn't have enough resource: {res}");
    let f = find(
        texts,
        &[
            not_enough.as_str(),
            insufficient.as_str(),
            "requested number of devices unavailable",
            out_of.as_str(),
        ],
    )?;
    Some(mk(
        DiagnosisKind::InsufficientGpuResource,
        f,
        format!(
            "{node} has no free {res}: the device plugin is not advertising it, or every unit is allocated"
        ),
        format!(
            "check that nvidia-device-plugin-daemonset runs on {node} and that allocatable {res} > 0; free GPUs or request fewer"
        ),
        Some(format!(
            "kubectl get node {node} -o jsonpath='{{.status.allocatable}}'"
        )),
    ))
}

/// k8s-device-plugin#346, nvkind#31: `exec: "nvidia-smi": executable file
/// not found in $PATH`; from the verify script's shell: `sh: 1: nvidia-smi: not found`.
fn nvidia_smi_not_found(
    input: &DiagnosisInput<'_>,
    texts: &[Text],
    _: &[Diagnosis],
) -> Option<Diagnosis> {
    let node = input.node_name;
    let f = find_all(texts, &["nvidia-smi", "executable file not found"]).or_else(|| {
        find(
            texts,
            &["nvidia-smi: not found", "nvidia-smi: command not found"],
        )
    })?;
    let fix = match input.runtime_class {
        Some(rc) => format!(
            "RuntimeClass {rc} is set but its handler did not inject the driver: check the handler's runtime binary and its mode (legacy/CDI)"
        ),
        None => format!(
            "the pod ran under runc: set --runtime-class nvidia (GPU Operator <= {} on RKE2), make nvidia the default runtime (default-runtime: nvidia), or use CDI (GPU Operator >= {})",
            matrix::last_runtime_class_line(),
            matrix::CDI_CHART.line_text()
        ),
    };
    Some(mk(
        DiagnosisKind::NvidiaSmiNotFound,
        f,
        "the runtime did not inject the driver into the pod (CUDA base images do not contain nvidia-smi)".to_string(),
        fix,
        deep(node),
    ))
}

/// nvidia-smi's own message when it cannot reach the kernel driver:
/// `NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver`.
fn driver_not_loaded(
    input: &DiagnosisInput<'_>,
    texts: &[Text],
    _: &[Diagnosis],
) -> Option<Diagnosis> {
    let node = input.node_name;
    let f = find(texts, &["couldn't communicate with the NVIDIA driver"])?;
    Some(mk(
        DiagnosisKind::DriverNotLoaded,
        f,
        format!("the NVIDIA kernel driver is not loaded on {node}"),
        "check the driver: nvidia-driver-daemonset logs, nouveau (lsmod), Secure Boot signature errors; a pre-installed driver needs driver.enabled=false".to_string(),
        deep(node),
    ))
}

/// gpu-operator#430 and this repo's container fixture
/// `h200-580-container/no-device-nodes.txt`.
fn nvml_unknown_error(
    input: &DiagnosisInput<'_>,
    texts: &[Text],
    _: &[Diagnosis],
) -> Option<Diagnosis> {
    let node = input.node_name;
    let f = find(texts, &["Failed to initialize NVML: Unknown Error"])?;
    Some(mk(
        DiagnosisKind::NvmlUnknownError,
        f,
        "the driver libraries reached the pod but the GPU device nodes did not (or cgroup device rules block them)".to_string(),
        format!(
            "the runtime must inject /dev/nvidia*: check the runtime mode and the /dev/char symlinks (GPU Operator >= {} creates them); after a systemd daemon-reload recreate the pod",
            matrix::DEV_CHAR_SYMLINKS_CHART.version
        ),
        deep(node),
    ))
}

fn nvml_init_failed(
    input: &DiagnosisInput<'_>,
    texts: &[Text],
    _: &[Diagnosis],
) -> Option<Diagnosis> {
    let f = find(texts, &["Failed to initialize NVML:"]).filter(|f| {
        let e = f.evidence.to_ascii_lowercase();
        !e.contains("unknown error") && !e.contains("version mismatch")
    })?;
    Some(mk(
        DiagnosisKind::NvmlInitFailed,
        f,
        "NVML could not initialise in the pod".to_string(),
        "check the device node permissions and the driver on the node".to_string(),
        deep(input.node_name),
    ))
}

fn no_devices_found(
    input: &DiagnosisInput<'_>,
    texts: &[Text],
    _: &[Diagnosis],
) -> Option<Diagnosis> {
    let node = input.node_name;
    let f = find(texts, &["No devices were found"])?;
    Some(mk(
        DiagnosisKind::NoDevicesFound,
        f,
        format!("the driver on {node} sees no GPU"),
        "the GPU is not bound to the nvidia driver (vfio-pci passthrough, fallen off the bus, or an XID error): check dmesg and lspci on the node".to_string(),
        deep(node),
    ))
}

/// cuda-samples vectorAdd: `Failed to allocate device vector A (error code …)!`
fn cuda_error(input: &DiagnosisInput<'_>, texts: &[Text], _: &[Diagnosis]) -> Option<Diagnosis> {
    let node = input.node_name;
    let f = find(texts, &["(error code", "Test FAILED"])?;
    let fix = if f.evidence.contains("driver version is insufficient") {
        // The CUDA runtime says this also when it cannot load libcuda.so.1 at
        // all (seen on the H100 run: the driver supports CUDA 13.0 and an
        // image built with nvcc 13.0 failed so; nvidia-smi passed in the
        // same cluster).
        "the sample's CUDA runtime is newer than the driver supports, or the container cannot load libcuda.so.1: compare the driver's CUDA version (kubectl gpu verify shows it) with the image's; check the image's /etc/ld.so.conf includes /etc/ld.so.conf.d (the runtime's ldcache hook writes the driver's dirs there); else use --image with an older cuda-sample tag, or upgrade the driver".to_string()
    } else {
        "the CUDA sample failed on the GPU: check the node's driver and dmesg for XID errors"
            .to_string()
    };
    Some(mk(
        DiagnosisKind::CudaError,
        f,
        format!("the CUDA sample failed on {node}"),
        fix,
        deep(node),
    ))
}

/// A `FailedCreatePodSandBox` event no earlier rule explained.
fn sandbox_creation_failed(
    input: &DiagnosisInput<'_>,
    texts: &[Text],
    so_far: &[Diagnosis],
) -> Option<Diagnosis> {
    let node = input.node_name;
    let f = sandbox_event(texts).filter(|f| !so_far.iter().any(|d| d.source == f.source))?;
    Some(mk(
        DiagnosisKind::SandboxCreationFailed,
        f,
        format!("the pod sandbox could not be created on {node}"),
        "read the event: CNI, pause image or runtime errors on the node".to_string(),
        deep(node),
    ))
}

/// Kubelet: reason `DeadlineExceeded`, message `Pod was active on the node longer than the
/// specified deadline` (argoproj/argo-workflows#11156, kubernetes/kubernetes#88613).
fn deadline_exceeded(_: &DiagnosisInput<'_>, texts: &[Text], _: &[Diagnosis]) -> Option<Diagnosis> {
    let f = find(
        texts,
        &["longer than the specified deadline", "DeadlineExceeded"],
    )?;
    Some(mk(
        DiagnosisKind::DeadlineExceeded,
        f,
        "the pod ran out of its activeDeadlineSeconds".to_string(),
        "a slow image pull or a hang: rerun with a longer --timeout, or mirror the image closer (--image)".to_string(),
        None,
    ))
}

/// `verify`'s own `--timeout` ran out.
fn timeout(input: &DiagnosisInput<'_>, texts: &[Text], _: &[Diagnosis]) -> Option<Diagnosis> {
    if !input.timed_out {
        return None;
    }
    let f = find(texts, &["ContainerCreating", "Pending", "Pulling"]).unwrap_or(Found {
        evidence: input
            .pod
            .and_then(|p| p.status.as_ref())
            .and_then(|s| s.phase.clone())
            .map(|p| format!("phase {p}"))
            .unwrap_or_default(),
        source: "pod status".into(),
    });
    Some(mk(
        DiagnosisKind::Timeout,
        f,
        format!(
            "the verify pod on {} did not finish in time",
            input.node_name
        ),
        "rerun with a longer --timeout; if it stays in ContainerCreating, read its events"
            .to_string(),
        input
            .pod
            .and_then(|p| p.metadata.name.as_ref())
            .map(|n| format!("kubectl describe pod -n {} {n}", input.namespace)),
    ))
}

/// A non-zero exit no other rule explained.
fn container_failed(
    input: &DiagnosisInput<'_>,
    texts: &[Text],
    so_far: &[Diagnosis],
) -> Option<Diagnosis> {
    if !so_far.is_empty() {
        return None;
    }
    let f = find(texts, &["exit code "])?;
    Some(mk(
        DiagnosisKind::ContainerFailed,
        f,
        "the verify container exited with an error".to_string(),
        "read the pod's log".to_string(),
        input
            .pod
            .and_then(|p| p.metadata.name.as_ref())
            .map(|n| format!("kubectl logs -n {} {n}", input.namespace)),
    ))
}
