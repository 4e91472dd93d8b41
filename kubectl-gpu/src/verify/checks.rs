//! Checks of a verify pod's nvidia-smi output against its node's GPU
//! Feature Discovery labels (NVIDIA/k8s-device-plugin gpu-feature-discovery): a GPU is visible,
//! exactly as many as requested (isolation), the driver matches the
//! labels, the product matches `nvidia.com/gpu.product`, MIG devices match
//! a MIG request, and no GPU UUID is claimed by two pods of one run.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use serde::Serialize;

use super::diagnosis::{diagnose_smi_failure, diagnose_smi_failure_in};
use super::output::{SmiResult, VectorAddResult};
use crate::nvidia_smi::Gpu;

pub const LABEL_PRODUCT: &str = "nvidia.com/gpu.product";
pub const LABEL_COUNT: &str = "nvidia.com/gpu.count";
pub const LABEL_DRIVER_FULL: &str = "nvidia.com/cuda.driver-version.full";
pub const LABEL_DRIVER_MAJOR: &str = "nvidia.com/cuda.driver-version.major";
pub const LABEL_DRIVER_MINOR: &str = "nvidia.com/cuda.driver-version.minor";
pub const LABEL_DRIVER_REVISION: &str = "nvidia.com/cuda.driver-version.revision";
/// Deprecated GFD labels, still the only ones on older GFD versions.
pub const LABEL_DRIVER_MAJOR_OLD: &str = "nvidia.com/cuda.driver.major";
pub const LABEL_DRIVER_MINOR_OLD: &str = "nvidia.com/cuda.driver.minor";
pub const LABEL_DRIVER_REV_OLD: &str = "nvidia.com/cuda.driver.rev";
pub const LABEL_MIG_STRATEGY: &str = "nvidia.com/mig.strategy";
pub const LABEL_MIG_CAPABLE: &str = "nvidia.com/mig.capable";
/// GFD appends this to the product of time-sliced (shared) GPUs.
pub const SHARED_SUFFIX: &str = "-SHARED";

/// The GPU facts of one node, from its labels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodeGpuFacts {
    pub node_name: String,
    /// `nvidia.com/gpu.product`: the model with spaces as `-`, maybe
    /// `-SHARED`, or `<model>-MIG-<profile>` under the single MIG strategy.
    pub product_label: Option<String>,
    pub driver_version_full: Option<String>,
    /// From `cuda.driver-version.major`, else the deprecated `cuda.driver.major`.
    pub driver_version_major: Option<String>,
    pub driver_version_minor: Option<String>,
    pub driver_version_revision: Option<String>,
    pub gpu_count_label: Option<u32>,
    pub mig_strategy: Option<String>,
    pub mig_capable: Option<bool>,
    /// Per MIG profile (mixed strategy): `nvidia.com/mig-<profile>.product`.
    pub mig_products: BTreeMap<String, String>,
    /// Per MIG profile: `nvidia.com/mig-<profile>.count`.
    pub mig_counts: BTreeMap<String, u32>,
}

impl NodeGpuFacts {
    pub fn from_labels(node_name: &str, labels: &BTreeMap<String, String>) -> Self {
        let get = |k: &str| {
            labels
                .get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut facts = NodeGpuFacts {
            node_name: node_name.to_string(),
            product_label: get(LABEL_PRODUCT),
            driver_version_full: get(LABEL_DRIVER_FULL),
            driver_version_major: get(LABEL_DRIVER_MAJOR).or_else(|| get(LABEL_DRIVER_MAJOR_OLD)),
            driver_version_minor: get(LABEL_DRIVER_MINOR).or_else(|| get(LABEL_DRIVER_MINOR_OLD)),
            driver_version_revision: get(LABEL_DRIVER_REVISION)
                .or_else(|| get(LABEL_DRIVER_REV_OLD)),
            gpu_count_label: get(LABEL_COUNT).and_then(|v| v.parse().ok()),
            mig_strategy: get(LABEL_MIG_STRATEGY),
            mig_capable: get(LABEL_MIG_CAPABLE).map(|v| v == "true"),
            ..Default::default()
        };
        for (k, v) in labels {
            let Some(rest) = k.strip_prefix("nvidia.com/mig-") else {
                continue;
            };
            if let Some(profile) = rest.strip_suffix(".product") {
                facts.mig_products.insert(profile.to_string(), v.clone());
            } else if let Some(profile) = rest.strip_suffix(".count")
                && let Ok(n) = v.parse()
            {
                facts.mig_counts.insert(profile.to_string(), n);
            }
        }
        facts
    }

    pub fn from_node(node: &Node) -> Self {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        let empty = BTreeMap::new();
        NodeGpuFacts::from_labels(name, node.metadata.labels.as_ref().unwrap_or(&empty))
    }

    /// The driver version the labels claim: `full`, else `major.minor.revision`.
    pub fn expected_driver_version(&self) -> Option<String> {
        if let Some(full) = &self.driver_version_full {
            return Some(full.clone());
        }
        let major = self.driver_version_major.as_ref()?;
        let mut v = major.clone();
        if let Some(minor) = &self.driver_version_minor {
            v.push('.');
            v.push_str(minor);
            if let Some(rev) = &self.driver_version_revision {
                v.push('.');
                v.push_str(rev);
            }
        }
        Some(v)
    }

    /// Time-sliced GPUs (`-SHARED` product label).
    pub fn is_shared(&self) -> bool {
        self.product_label
            .as_deref()
            .is_some_and(|p| p.ends_with(SHARED_SUFFIX))
            || self
                .mig_products
                .values()
                .any(|p| p.ends_with(SHARED_SUFFIX))
    }
}

/// What the verify pod asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GpuRequest {
    pub resource_name: String,
    pub count: u32,
    /// The pod's `runtimeClassName` (a failure's fix depends on it).
    pub runtime_class: Option<String>,
}

impl GpuRequest {
    /// `nvidia.com/mig-1g.10gb` → `1g.10gb` (mixed-strategy MIG resources).
    pub fn mig_profile(&self) -> Option<&str> {
        self.resource_name.strip_prefix("nvidia.com/mig-")
    }
}

/// Which check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckId {
    GpuVisible,
    GpuCount,
    DriverVersion,
    Product,
    MigDevices,
    UuidUnique,
    Workload,
}

/// A check's outcome. Serialised with a `state` tag, e.g.
/// `{"state":"pass"}`, `{"state":"skipped","reason":"…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CheckStatus {
    Pass,
    Fail,
    Warn,
    Skipped { reason: String },
}

/// One check result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub id: CheckId,
    pub status: CheckStatus,
    pub message: String,
    pub evidence: Vec<String>,
    pub fix: Option<String>,
}

impl Check {
    fn new(id: CheckId, status: CheckStatus, message: impl Into<String>) -> Self {
        Check {
            id,
            status,
            message: message.into(),
            evidence: Vec::new(),
            fix: None,
        }
    }

    fn skipped(id: CheckId, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        Check::new(
            id,
            CheckStatus::Skipped {
                reason: reason.clone(),
            },
            reason,
        )
    }

    fn with_evidence(mut self, e: impl IntoIterator<Item = String>) -> Self {
        self.evidence.extend(e);
        self
    }

    fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    pub fn is_fail(&self) -> bool {
        self.status == CheckStatus::Fail
    }
}

fn gpu_line(g: &Gpu) -> String {
    format!(
        "GPU {}: {} (UUID: {})",
        g.index,
        g.name,
        g.uuid.as_deref().unwrap_or("?")
    )
}

fn mig_count(gpus: &[Gpu]) -> usize {
    gpus.iter().map(|g| g.mig_devices.len()).sum()
}

/// How many units the pod sees: MIG devices when any are listed (a MIG
/// device is one allocatable unit), else whole GPUs.
fn visible_units(gpus: &[Gpu]) -> (usize, &'static str) {
    let migs = mig_count(gpus);
    if migs > 0 {
        (migs, "MIG devices")
    } else {
        (gpus.len(), "GPUs")
    }
}

/// `580.159.04` vs `580.159.4`: equal component-wise as numbers.
pub fn driver_versions_match(a: &str, b: &str) -> bool {
    let norm = |s: &str| -> Vec<String> {
        s.trim()
            .split('.')
            .map(|p| match p.parse::<u64>() {
                Ok(n) => n.to_string(),
                Err(_) => p.to_string(),
            })
            .collect()
    };
    norm(a) == norm(b)
}

/// Whether nvidia-smi's product name matches a GFD product label: spaces
/// become `-`; the label may carry `-SHARED` (time-slicing) and, for MIG,
/// `-MIG-<profile>` after the model. Labels cut at 63 characters match by prefix.
pub fn product_matches(smi_name: &str, label: &str) -> bool {
    let name = smi_name.trim().replace(' ', "-");
    let label = label.trim();
    let label = label.strip_suffix(SHARED_SUFFIX).unwrap_or(label);
    if label == name {
        return true;
    }
    if let Some(rest) = label.strip_prefix(name.as_str())
        && rest.starts_with("-MIG-")
    {
        return true;
    }
    label.len() == 63 && name.starts_with(label)
}

/// Runs the per-pod checks of an nvidia-smi verify pod.
pub fn run_checks(facts: &NodeGpuFacts, request: &GpuRequest, smi: &SmiResult) -> Vec<Check> {
    let mut out = vec![check_visible(facts, request, smi)];
    if smi.gpus.is_empty() {
        let reason = "no GPU visible in the pod";
        for id in [
            CheckId::GpuCount,
            CheckId::DriverVersion,
            CheckId::Product,
            CheckId::MigDevices,
        ] {
            out.push(Check::skipped(id, reason));
        }
        return out;
    }
    out.push(check_count(facts, request, smi));
    out.push(check_driver(facts, smi));
    out.push(check_product(facts, request, smi));
    out.push(check_mig(facts, request, smi));
    out
}

fn check_visible(facts: &NodeGpuFacts, request: &GpuRequest, smi: &SmiResult) -> Check {
    if !smi.gpus.is_empty() {
        return Check::new(
            CheckId::GpuVisible,
            CheckStatus::Pass,
            format!(
                "the pod sees {} GPU(s) on {}",
                smi.gpus.len(),
                facts.node_name
            ),
        )
        .with_evidence(smi.gpus.iter().map(gpu_line));
    }
    match smi.primary_failure() {
        Some(f) => {
            let d = diagnose_smi_failure_in(f, &facts.node_name, request.runtime_class.as_deref());
            Check::new(CheckId::GpuVisible, CheckStatus::Fail, d.summary)
                .with_evidence([d.evidence])
                .with_fix(d.fix)
        }
        None => {
            let why = if smi.truncated {
                "the log ends before nvidia-smi printed any GPU (pod killed or log truncated)"
            } else {
                "nvidia-smi printed no GPU"
            };
            Check::new(CheckId::GpuVisible, CheckStatus::Fail, why).with_fix(
                "inspect the pod's events and log; rerun with a longer --timeout if it was killed",
            )
        }
    }
}

fn check_count(facts: &NodeGpuFacts, request: &GpuRequest, smi: &SmiResult) -> Check {
    let (seen, what) = visible_units(&smi.gpus);
    let want = request.count as usize;
    let evidence: Vec<String> = smi.gpus.iter().map(gpu_line).collect();
    if seen == want {
        return Check::new(
            CheckId::GpuCount,
            CheckStatus::Pass,
            format!(
                "the pod sees {seen} {what}, as requested ({want} × {})",
                request.resource_name
            ),
        )
        .with_evidence(evidence);
    }
    if seen > want {
        let all = facts
            .gpu_count_label
            .filter(|n| *n as usize == smi.gpus.len())
            .map(|n| format!(" (all {n} GPUs of the node)"))
            .unwrap_or_default();
        return Check::new(
            CheckId::GpuCount,
            CheckStatus::Fail,
            format!(
                "no isolation: the pod sees {seen} {what}{all} but requested {want}; \
                 NVIDIA_VISIBLE_DEVICES=all (set by CUDA images) is honoured under the nvidia default runtime"
            ),
        )
        .with_evidence(evidence)
        .with_fix(format!(
            "set ACCEPT_NVIDIA_VISIBLE_DEVICES_ENVVAR_WHEN_UNPRIVILEGED=false and \
             ACCEPT_NVIDIA_VISIBLE_DEVICES_AS_VOLUME_MOUNTS=true in toolkit.env, and \
             DEVICE_LIST_STRATEGY=volume-mounts in devicePlugin.env (or use CDI, GPU Operator >= {})",
            crate::matrix::CDI_CHART.line_text()
        ));
    }
    Check::new(
        CheckId::GpuCount,
        CheckStatus::Fail,
        format!("the pod sees {seen} {what} but requested {want} × {}", request.resource_name),
    )
    .with_evidence(evidence)
    .with_fix("the runtime injected fewer devices than the device plugin allocated: check the device plugin and toolkit logs on the node")
}

fn check_driver(facts: &NodeGpuFacts, smi: &SmiResult) -> Check {
    let Some(expected) = facts.expected_driver_version() else {
        return Check::skipped(
            CheckId::DriverVersion,
            format!(
                "{} has no {LABEL_DRIVER_FULL} or {LABEL_DRIVER_MAJOR_OLD} label (is gpu-feature-discovery running?)",
                facts.node_name
            ),
        );
    };
    let Some(seen) = smi.driver_version() else {
        return Check::skipped(CheckId::DriverVersion, "the pod printed no driver version");
    };
    let per_gpu: Vec<&str> = smi
        .gpus
        .iter()
        .filter_map(|g| g.driver_version.as_deref())
        .collect();
    let mut evidence = vec![
        format!("pod: driver {seen}"),
        format!("node label: {expected}"),
    ];
    if let Some(other) = per_gpu.iter().find(|v| !driver_versions_match(v, seen)) {
        evidence.push(format!("another GPU reports {other}"));
        return Check::new(
            CheckId::DriverVersion,
            CheckStatus::Fail,
            "the pod's GPUs report different driver versions",
        )
        .with_evidence(evidence)
        .with_fix("a half-upgraded driver: reboot the node");
    }
    if driver_versions_match(seen, &expected) {
        Check::new(
            CheckId::DriverVersion,
            CheckStatus::Pass,
            format!("driver {seen} matches the node labels"),
        )
        .with_evidence(evidence)
    } else {
        Check::new(
            CheckId::DriverVersion,
            CheckStatus::Fail,
            format!("driver in the pod is {seen}, the node labels say {expected}"),
        )
        .with_evidence(evidence)
        .with_fix(
            "the driver changed since gpu-feature-discovery labelled the node (upgrade without reboot, \
             or a host driver and a driver container both present): reboot the node or restart \
             gpu-feature-discovery, then rerun verify",
        )
    }
}

fn check_product(facts: &NodeGpuFacts, request: &GpuRequest, smi: &SmiResult) -> Check {
    let (label_key, label) = match request.mig_profile() {
        Some(profile) => (
            format!("nvidia.com/mig-{profile}.product"),
            facts.mig_products.get(profile).cloned(),
        ),
        None => (LABEL_PRODUCT.to_string(), facts.product_label.clone()),
    };
    let Some(label) = label else {
        return Check::skipped(
            CheckId::Product,
            format!("{} has no {label_key} label", facts.node_name),
        );
    };
    let evidence: Vec<String> = std::iter::once(format!("{label_key}={label}"))
        .chain(smi.gpus.iter().map(gpu_line))
        .collect();
    let bad: Vec<&str> = smi
        .gpus
        .iter()
        .filter(|g| !product_matches(&g.name, &label))
        .map(|g| g.name.as_str())
        .collect();
    if bad.is_empty() {
        Check::new(
            CheckId::Product,
            CheckStatus::Pass,
            format!("product matches {label_key}"),
        )
        .with_evidence(evidence)
    } else {
        Check::new(
            CheckId::Product,
            CheckStatus::Fail,
            format!("the pod sees {:?} but {label_key} is {label}", bad),
        )
        .with_evidence(evidence)
        .with_fix("the pod did not get the node's GPU: check that --node is the node you meant, and that gpu-feature-discovery labels are current")
    }
}

fn check_mig(facts: &NodeGpuFacts, request: &GpuRequest, smi: &SmiResult) -> Check {
    let migs: Vec<String> = smi
        .gpus
        .iter()
        .flat_map(|g| {
            g.mig_devices.iter().map(move |m| {
                format!(
                    "GPU {} MIG {} Device {}: {}",
                    g.index, m.profile, m.index, m.uuid
                )
            })
        })
        .collect();
    let profiles: Vec<&str> = smi
        .gpus
        .iter()
        .flat_map(|g| g.mig_devices.iter().map(|m| m.profile.as_str()))
        .collect();
    match request.mig_profile() {
        Some(want) => {
            if profiles.is_empty() {
                return Check::new(
                    CheckId::MigDevices,
                    CheckStatus::Fail,
                    format!("requested {} but the pod sees no MIG device", request.resource_name),
                )
                .with_evidence(smi.gpus.iter().map(gpu_line))
                .with_fix("MIG is not enabled on the node's GPUs, or the runtime exposed the whole GPU: check nvidia.com/mig.config.state and the mig-manager logs");
            }
            let wrong: Vec<&str> = profiles
                .iter()
                .copied()
                .filter(|p| !mig_profile_matches(p, want))
                .collect();
            if wrong.is_empty() {
                Check::new(
                    CheckId::MigDevices,
                    CheckStatus::Pass,
                    format!("{} MIG device(s) of profile {want}", profiles.len()),
                )
                .with_evidence(migs)
            } else {
                Check::new(
                    CheckId::MigDevices,
                    CheckStatus::Fail,
                    format!("requested MIG profile {want} but the pod sees {wrong:?}"),
                )
                .with_evidence(migs)
                .with_fix("the device plugin's MIG resources do not match the GPU's MIG layout: check nvidia.com/mig.config and restart the device plugin")
            }
        }
        None if profiles.is_empty() => Check::skipped(
            CheckId::MigDevices,
            "no MIG resource requested and no MIG device visible",
        ),
        None => {
            // Single strategy: nvidia.com/gpu hands out MIG devices; the
            // product label carries the profile.
            let label_profile = facts
                .product_label
                .as_deref()
                .and_then(|p| p.strip_suffix(SHARED_SUFFIX).or(Some(p)))
                .and_then(|p| p.rsplit_once("-MIG-").map(|(_, prof)| prof.to_string()));
            match label_profile {
                Some(want) if profiles.iter().all(|p| mig_profile_matches(p, &want)) => {
                    Check::new(
                        CheckId::MigDevices,
                        CheckStatus::Pass,
                        format!("{} MIG device(s) of profile {want} (single strategy)", profiles.len()),
                    )
                    .with_evidence(migs)
                }
                Some(want) => Check::new(
                    CheckId::MigDevices,
                    CheckStatus::Fail,
                    format!("the product label says MIG profile {want} but the pod sees {profiles:?}"),
                )
                .with_evidence(migs)
                .with_fix("mixed MIG layouts need the mixed strategy (nvidia.com/mig-<profile> resources)"),
                None => Check::new(
                    CheckId::MigDevices,
                    CheckStatus::Warn,
                    format!(
                        "the pod sees {} MIG device(s) but requested whole GPUs ({}), and the product label names no MIG profile",
                        profiles.len(),
                        request.resource_name
                    ),
                )
                .with_evidence(migs),
            }
        }
    }
}

/// `1c.3g.71gb` (a compute instance of a `3g.71gb` GPU instance) matches `3g.71gb`.
fn mig_profile_matches(seen: &str, want: &str) -> bool {
    seen == want
        || seen
            .split_once('.')
            .is_some_and(|(ci, rest)| ci.ends_with('c') && rest == want)
}

/// The GPUs one pod of a run saw (input to [`check_unique_uuids`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodGpus {
    pub pod_name: String,
    pub node_name: String,
    /// MIG UUIDs when the pod sees MIG devices, else GPU UUIDs.
    pub uuids: Vec<String>,
    /// The node time-slices its GPUs (sharing a UUID is then expected).
    pub shared: bool,
}

impl PodGpus {
    pub fn from_result(pod_name: &str, facts: &NodeGpuFacts, smi: &SmiResult) -> Self {
        let migs: Vec<String> = smi
            .gpus
            .iter()
            .flat_map(|g| g.mig_devices.iter().map(|m| m.uuid.clone()))
            .collect();
        let uuids = if migs.is_empty() {
            smi.gpus.iter().filter_map(|g| g.uuid.clone()).collect()
        } else {
            migs
        };
        PodGpus {
            pod_name: pod_name.to_string(),
            node_name: facts.node_name.clone(),
            uuids,
            shared: facts.is_shared(),
        }
    }
}

/// Over all pods of one run that held their GPUs at the same time: no
/// UUID may appear in two pods (Fail), unless every pod involved is on a
/// time-sliced node (Warn: sharing is the configured behaviour).
pub fn check_unique_uuids(pods: &[PodGpus]) -> Check {
    let mut owners: BTreeMap<&str, Vec<&PodGpus>> = BTreeMap::new();
    for p in pods {
        let mut seen_here = std::collections::BTreeSet::new();
        for u in &p.uuids {
            if seen_here.insert(u.as_str()) {
                owners.entry(u.as_str()).or_default().push(p);
            }
        }
    }
    let dups: Vec<(&str, &Vec<&PodGpus>)> = owners
        .iter()
        .filter(|(_, ps)| ps.len() > 1)
        .map(|(u, ps)| (*u, ps))
        .collect();
    if pods.len() < 2 {
        return Check::skipped(
            CheckId::UuidUnique,
            "fewer than two verify pods in this run",
        );
    }
    if dups.is_empty() {
        return Check::new(
            CheckId::UuidUnique,
            CheckStatus::Pass,
            format!(
                "{} pods, {} distinct GPU UUIDs, none shared",
                pods.len(),
                owners.len()
            ),
        );
    }
    let evidence: Vec<String> = dups
        .iter()
        .map(|(u, ps)| {
            let who: Vec<String> = ps
                .iter()
                .map(|p| format!("{} on {}", p.pod_name, p.node_name))
                .collect();
            format!("{u}: {}", who.join(", "))
        })
        .collect();
    let all_shared = dups.iter().all(|(_, ps)| ps.iter().all(|p| p.shared));
    if all_shared {
        Check::new(
            CheckId::UuidUnique,
            CheckStatus::Warn,
            format!(
                "{} GPU UUID(s) seen by more than one pod; the nodes time-slice their GPUs (-SHARED), so this is expected",
                dups.len()
            ),
        )
        .with_evidence(evidence)
    } else {
        Check::new(
            CheckId::UuidUnique,
            CheckStatus::Fail,
            format!(
                "{} GPU UUID(s) were handed to more than one pod at the same time",
                dups.len()
            ),
        )
        .with_evidence(evidence)
        .with_fix("pods are not isolated: every pod sees the same GPU(s); apply the ACCEPT_NVIDIA_VISIBLE_DEVICES_* settings (or CDI) and check the device plugin's sharing config")
    }
}

/// The vectorAdd workload's check.
pub fn check_vectoradd(node_name: &str, result: &VectorAddResult) -> Check {
    if result.passed {
        return Check::new(
            CheckId::Workload,
            CheckStatus::Pass,
            format!("CUDA vectorAdd passed on {node_name}"),
        )
        .with_evidence(["Test PASSED".to_string()]);
    }
    if let Some(f) = &result.smi_failure {
        let d = diagnose_smi_failure(f, node_name);
        return Check::new(CheckId::Workload, CheckStatus::Fail, d.summary)
            .with_evidence([d.evidence])
            .with_fix(d.fix);
    }
    let mut c = Check::new(
        CheckId::Workload,
        CheckStatus::Fail,
        format!("CUDA vectorAdd did not print `Test PASSED` on {node_name}"),
    );
    if let Some(line) = &result.failure_line {
        c.evidence.push(line.clone());
    }
    if let Some(err) = &result.cuda_error {
        c.fix = Some(if err.contains("driver version is insufficient") {
            "the sample's CUDA runtime is newer than the node's driver supports: use --image with an older cuda-sample tag, or upgrade the driver".to_string()
        } else if err.contains("no CUDA-capable device") {
            "no GPU reached the container: check the runtime injection (kubectl gpu check-runtime --deep)".to_string()
        } else {
            format!("CUDA error: {err}")
        });
    }
    c
}
