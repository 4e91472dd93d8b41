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

use crate::nvidia_smi::SmiFailure;

mod rules;
use rules::diagnose_texts;

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
    diagnose_smi_failure_in(failure, node_name, None)
}

/// [`diagnose_smi_failure`] for a pod that ran with `runtime_class` (its fix differs: a pod
/// under RuntimeClass nvidia did not run under runc).
pub fn diagnose_smi_failure_in(
    failure: &SmiFailure,
    node_name: &str,
    runtime_class: Option<&str>,
) -> Diagnosis {
    let mut input = DiagnosisInput::new(node_name, "default", "");
    let line = failure.evidence().to_string();
    input.log = Some(&line);
    input.runtime_class = runtime_class;
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
