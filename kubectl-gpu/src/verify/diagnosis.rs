//! Why a verify pod did not succeed, from its phase and container statuses,
//! its events, its log and the API's answer to its creation.
//!
//! Each known failure text (the public issues and sources are cited at each
//! rule) maps to a [`DiagnosisKind`] with a one-line fix and the next
//! command to run. The rules are one function each, listed in [`RULES`] in
//! order of specificity; the first diagnosis returned is the primary one.
//! Versions named in fixes come from [`crate::matrix`].

use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use serde::Serialize;

use crate::matrix;
use crate::nvidia_smi::SmiFailure;

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiagnosisKind {
    /// `violates PodSecurity "restricted:latest"`: admission refused the pod.
    PodSecurityRejected,
    /// `pod rejected: RuntimeClass "nvidia" not found`.
    RuntimeClassNotFound,
    /// `no runtime for "nvidia" is configured` (FailedCreatePodSandBox).
    NoRuntimeConfigured,
    /// `unresolvable CDI devices …`.
    UnresolvableCdiDevices,
    /// `driver/library version mismatch` (runtime hook or nvidia-smi).
    DriverLibraryMismatch,
    /// `nvidia-container-cli: initialization error`, e.g. `load library failed: libnvidia-ml.so.1`.
    ContainerCliInitError,
    /// `ErrImagePull` / `ImagePullBackOff`.
    ImagePullFailed,
    /// The GPU resource is not advertised or all of it is allocated.
    InsufficientGpuResource,
    /// `nvidia-smi: not found` / `executable file not found in $PATH`.
    NvidiaSmiNotFound,
    /// `couldn't communicate with the NVIDIA driver`.
    DriverNotLoaded,
    /// `Failed to initialize NVML: Unknown Error`.
    NvmlUnknownError,
    /// Another `Failed to initialize NVML: …`.
    NvmlInitFailed,
    /// `No devices were found`.
    NoDevicesFound,
    /// The vectorAdd sample printed a CUDA error.
    CudaError,
    /// Another `FailedCreatePodSandBox`.
    SandboxCreationFailed,
    /// `activeDeadlineSeconds` ran out (`DeadlineExceeded`).
    DeadlineExceeded,
    /// The caller stopped waiting before the pod finished.
    Timeout,
    /// The container exited non-zero for no known reason.
    ContainerFailed,
    Unknown,
}

/// One diagnosis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    pub kind: DiagnosisKind,
    pub summary: String,
    /// The exact line seen.
    pub evidence: String,
    /// Where the line was seen: `create`, `pod status`, `container verify`,
    /// `event FailedCreatePodSandBox`, `log`.
    pub source: String,
    /// One line.
    pub fix: String,
    pub next_command: Option<String>,
}

/// Everything known about a verify pod that did not succeed.
#[derive(Debug, Clone, Copy)]
pub struct DiagnosisInput<'a> {
    pub node_name: &'a str,
    pub namespace: &'a str,
    pub image: &'a str,
    pub resource_name: &'a str,
    pub runtime_class: Option<&'a str>,
    /// `None` when the API refused to create it.
    pub pod: Option<&'a Pod>,
    pub events: &'a [Event],
    pub log: Option<&'a str>,
    /// The API's error message when creating the pod failed.
    pub create_error: Option<&'a str>,
    /// The caller gave up waiting.
    pub timed_out: bool,
}

impl<'a> DiagnosisInput<'a> {
    /// Inputs with nothing observed yet.
    pub fn new(node_name: &'a str, namespace: &'a str, image: &'a str) -> Self {
        DiagnosisInput {
            node_name,
            namespace,
            image,
            resource_name: "nvidia.com/gpu",
            runtime_class: None,
            pod: None,
            events: &[],
            log: None,
            create_error: None,
            timed_out: false,
        }
    }
}

struct Text {
    source: String,
    body: String,
}

fn container_texts(out: &mut Vec<Text>, statuses: Option<&Vec<ContainerStatus>>) {
    for cs in statuses.into_iter().flatten() {
        let src = format!("container {}", cs.name);
        for state in [cs.state.as_ref(), cs.last_state.as_ref()]
            .into_iter()
            .flatten()
        {
            if let Some(w) = &state.waiting {
                let body = join_reason(w.reason.as_deref(), w.message.as_deref());
                if !body.is_empty() {
                    out.push(Text {
                        source: src.clone(),
                        body,
                    });
                }
            }
            if let Some(t) = &state.terminated {
                let mut body = join_reason(t.reason.as_deref(), t.message.as_deref());
                if t.exit_code != 0 {
                    body = format!("exit code {}: {body}", t.exit_code);
                }
                out.push(Text {
                    source: src.clone(),
                    body,
                });
            }
        }
    }
}

fn join_reason(reason: Option<&str>, message: Option<&str>) -> String {
    match (reason, message) {
        (Some(r), Some(m)) if !m.is_empty() => format!("{r}: {m}"),
        (Some(r), _) => r.to_string(),
        (None, Some(m)) => m.to_string(),
        (None, None) => String::new(),
    }
}

fn gather(input: &DiagnosisInput<'_>) -> Vec<Text> {
    let mut out = Vec::new();
    if let Some(e) = input.create_error {
        out.push(Text {
            source: "create".into(),
            body: e.to_string(),
        });
    }
    if let Some(status) = input.pod.and_then(|p| p.status.as_ref()) {
        let body = join_reason(status.reason.as_deref(), status.message.as_deref());
        if !body.is_empty() {
            out.push(Text {
                source: "pod status".into(),
                body,
            });
        }
        container_texts(&mut out, status.init_container_statuses.as_ref());
        container_texts(&mut out, status.container_statuses.as_ref());
    }
    for ev in input.events {
        let reason = ev.reason.as_deref().unwrap_or("");
        let body = ev.message.clone().unwrap_or_default();
        if body.is_empty() && reason.is_empty() {
            continue;
        }
        out.push(Text {
            source: format!("event {reason}"),
            body: if body.is_empty() {
                reason.to_string()
            } else {
                body
            },
        });
    }
    if let Some(log) = input.log {
        out.push(Text {
            source: "log".into(),
            body: log.to_string(),
        });
    }
    out
}

/// The line of `body` that contains `needle_lower` (case-insensitive).
fn matching_line(body: &str, needle_lower: &str) -> Option<String> {
    body.lines()
        .map(|l| l.trim_end_matches('\r').trim())
        .find(|l| l.to_ascii_lowercase().contains(needle_lower))
        .map(|l| {
            const MAX: usize = 600;
            if l.len() > MAX {
                let mut end = MAX;
                while !l.is_char_boundary(end) {
                    end -= 1;
                }
                format!("{}…", &l[..end])
            } else {
                l.to_string()
            }
        })
}

struct Found {
    evidence: String,
    source: String,
}

/// The first text (in gathering order) holding one of `needles` (tried in order).
fn find(texts: &[Text], needles: &[&str]) -> Option<Found> {
    for n in needles {
        let n = n.to_ascii_lowercase();
        for t in texts {
            if let Some(line) = matching_line(&t.body, &n) {
                return Some(Found {
                    evidence: line,
                    source: t.source.clone(),
                });
            }
        }
    }
    None
}

/// Like [`find`], for lines that hold all of `needles`.
fn find_all(texts: &[Text], needles: &[&str]) -> Option<Found> {
    let needles: Vec<String> = needles.iter().map(|n| n.to_ascii_lowercase()).collect();
    for t in texts {
        for l in t.body.lines().map(|l| l.trim_end_matches('\r').trim()) {
            let lower = l.to_ascii_lowercase();
            if needles.iter().all(|n| lower.contains(n.as_str())) {
                return Some(Found {
                    evidence: l.to_string(),
                    source: t.source.clone(),
                });
            }
        }
    }
    None
}

fn deep(node: &str) -> Option<String> {
    Some(format!("kubectl gpu check-runtime --deep --node {node}"))
}

fn mk(
    kind: DiagnosisKind,
    found: Found,
    summary: String,
    fix: String,
    next_command: Option<String>,
) -> Diagnosis {
    Diagnosis {
        kind,
        summary,
        evidence: found.evidence,
        source: found.source,
        fix,
        next_command,
    }
}

/// All diagnoses that apply, most specific first; never empty when called
/// for a pod that did not succeed (falls back to [`DiagnosisKind::Unknown`]).
pub fn diagnose(input: &DiagnosisInput<'_>) -> Vec<Diagnosis> {
    let texts = gather(input);
    let mut out = diagnose_texts(input, &texts);
    if out.is_empty() {
        let phase = input
            .pod
            .and_then(|p| p.status.as_ref())
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "unknown".to_string());
        let last = texts.last();
        out.push(Diagnosis {
            kind: DiagnosisKind::Unknown,
            summary: format!(
                "the verify pod on {} ended in phase {phase} for an unrecognised reason",
                input.node_name
            ),
            evidence: last
                .and_then(|t| t.body.lines().map(str::trim).find(|l| !l.is_empty()))
                .unwrap_or("")
                .to_string(),
            source: last.map(|t| t.source.clone()).unwrap_or_default(),
            fix: "read the pod's events and log (kubectl describe pod / kubectl logs)".to_string(),
            next_command: input
                .pod
                .and_then(|p| p.metadata.name.as_ref())
                .map(|n| format!("kubectl describe pod -n {} {n}", input.namespace)),
        });
    }
    out
}

/// The diagnosis of one nvidia-smi failure seen in a pod on `node_name`.
pub fn diagnose_smi_failure(failure: &SmiFailure, node_name: &str) -> Diagnosis {
    let mut input = DiagnosisInput::new(node_name, "default", "");
    let line = failure.evidence().to_string();
    input.log = Some(&line);
    let texts = gather(&input);
    diagnose_texts(&input, &texts)
        .into_iter()
        .next()
        .unwrap_or_else(|| Diagnosis {
            kind: DiagnosisKind::Unknown,
            summary: format!("nvidia-smi failed on {node_name}: {failure}"),
            evidence: line.clone(),
            source: "log".to_string(),
            fix: "read the pod's log".to_string(),
            next_command: deep(node_name),
        })
}

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
fn diagnose_texts(input: &DiagnosisInput<'_>, texts: &[Text]) -> Vec<Diagnosis> {
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
        "the sample's CUDA runtime is newer than the driver supports: use --image with an older cuda-sample tag, or upgrade the driver".to_string()
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

/// A `FailedCreatePodSandBox` event (its reason is in the source, not the body).
fn sandbox_event(texts: &[Text]) -> Option<Found> {
    texts
        .iter()
        .find(|t| t.source == "event FailedCreatePodSandBox")
        .map(|t| Found {
            evidence: t.body.lines().next().unwrap_or("").trim().to_string(),
            source: t.source.clone(),
        })
}

/// `nvcr.io/nvidia/cuda:13.0.1-base-ubuntu24.04` → `nvidia/cuda:13.0.1-base-ubuntu24.04`.
fn image_path(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            rest
        }
        _ => image,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn primary(log: &str, runtime_class: Option<&str>) -> Diagnosis {
        let mut input = DiagnosisInput::new("gpu-1", "ns", "busybox");
        input.log = Some(log);
        input.runtime_class = runtime_class;
        diagnose(&input).remove(0)
    }

    /// The fixes that name versions read exactly as before they came from the matrix.
    #[test]
    fn version_texts_are_unchanged() {
        assert_eq!(
            primary("failed to inject CDI devices: unresolvable CDI devices management.nvidia.com/gpu=GPU-1", None).fix,
            "GPU Operator 25.3.x CDI is not operational on RKE2: disable cdi.enabled there, or use GPU Operator >= 25.10 with containerd >= 2.0; regenerate the spec with nvidia-ctk cdi generate"
        );
        assert_eq!(
            primary("sh: 1: nvidia-smi: not found", None).fix,
            "the pod ran under runc: set --runtime-class nvidia (GPU Operator <= 25.3 on RKE2), make nvidia the default runtime (default-runtime: nvidia), or use CDI (GPU Operator >= 25.10)"
        );
        assert_eq!(
            primary("Failed to initialize NVML: Unknown Error", None).fix,
            "the runtime must inject /dev/nvidia*: check the runtime mode and the /dev/char symlinks (GPU Operator >= 22.9.2 creates them); after a systemd daemon-reload recreate the pod"
        );
        assert_eq!(
            primary(
                "failed to get sandbox runtime: no runtime for \"nvidia\" is configured",
                None
            )
            .fix,
            "the toolkit wrote a config RKE2 ignores or RKE2 has not re-detected the runtime: patch the generated containerd config (kubectl gpu patch-containerd) or restart rke2 once /usr/local/nvidia/toolkit/nvidia-container-runtime exists"
        );
    }
}
