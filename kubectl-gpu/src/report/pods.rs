//! GPU pods and what they hold: a slim pod type that deserialises only the
//! fields allocation needs (so 50,000 pods cost little memory), and the
//! scheduler's arithmetic for a pod's effective request of a resource.
//!
//! Effective request of a resource, as `kube-scheduler` and
//! `k8s.io/component-helpers/resource.PodRequests` compute it:
//!
//! ```text
//! sidecars = 0; init = 0
//! for each init container, in order:
//!     if restartPolicy == Always (a sidecar): sidecars += req; init = max(init, sidecars)
//!     else:                                   init = max(init, sidecars + req)
//! effective = max(init, sum(containers) + sidecars) + overhead
//! ```
//!
//! where a container's request is `requests[r]`, or `limits[r]` when only
//! the limit is set (the API server defaults the request to the limit;
//! extended resources must have requests == limits). Pods in a terminal
//! phase (Succeeded, Failed) hold nothing; pending pods hold their request
//! only once bound to a node (`spec.nodeName`).

use super::quantity;
use crate::labels;
use k8s_openapi::api::core::v1::{Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Resource;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Whether a resource name is a GPU resource the report counts:
/// `nvidia.com/gpu`, `nvidia.com/gpu.shared` and `nvidia.com/mig-*`.
pub fn is_gpu_resource(name: &str) -> bool {
    name == labels::RESOURCE_GPU
        || name == labels::RESOURCE_GPU_SHARED
        || name.starts_with(labels::RESOURCE_MIG_PREFIX)
}

/// The kind of a GPU resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuKind {
    /// `nvidia.com/gpu`: whole GPUs.
    Full,
    /// `nvidia.com/gpu.shared`: time-sliced or MPS replicas.
    Shared,
    /// `nvidia.com/mig-<profile>`: MIG devices.
    Mig,
}

pub fn gpu_kind(name: &str) -> Option<GpuKind> {
    if name == labels::RESOURCE_GPU {
        Some(GpuKind::Full)
    } else if name == labels::RESOURCE_GPU_SHARED {
        Some(GpuKind::Shared)
    } else if name.starts_with(labels::RESOURCE_MIG_PREFIX) {
        Some(GpuKind::Mig)
    } else {
        None
    }
}

/// One container's resources and whether it is a sidecar.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerLite {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub resources: Option<ResourceRequirements>,
    /// `Always` on an init container makes it a sidecar.
    #[serde(default)]
    pub restart_policy: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpecLite {
    #[serde(default)]
    pub node_name: Option<String>,
    #[serde(default)]
    pub containers: Vec<ContainerLite>,
    #[serde(default)]
    pub init_containers: Vec<ContainerLite>,
    #[serde(default)]
    pub overhead: Option<BTreeMap<String, Quantity>>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatusLite {
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetaLite {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    resource_version: Option<String>,
    #[serde(default)]
    creation_timestamp: Option<Time>,
    #[serde(default)]
    deletion_timestamp: Option<Time>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct RawPodLite {
    #[serde(default)]
    metadata: MetaLite,
    #[serde(default)]
    spec: Option<PodSpecLite>,
    #[serde(default)]
    status: Option<PodStatusLite>,
}

/// A pod with only what allocation needs. Deserialises from any Pod JSON
/// (labels, annotations, managed fields, volumes, env are skipped).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(from = "RawPodLite")]
pub struct PodLite {
    pub metadata: ObjectMeta,
    pub spec: PodSpecLite,
    pub status: PodStatusLite,
}

impl From<RawPodLite> for PodLite {
    fn from(raw: RawPodLite) -> Self {
        let m = raw.metadata;
        PodLite {
            metadata: ObjectMeta {
                name: m.name,
                namespace: m.namespace,
                uid: m.uid,
                resource_version: m.resource_version,
                creation_timestamp: m.creation_timestamp,
                deletion_timestamp: m.deletion_timestamp,
                ..ObjectMeta::default()
            },
            spec: raw.spec.unwrap_or_default(),
            status: raw.status.unwrap_or_default(),
        }
    }
}

impl Resource for PodLite {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Pod".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "pods".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl PodLite {
    /// The slim view of a full Pod object.
    pub fn from_pod(pod: &Pod) -> Option<PodLite> {
        serde_json::to_value(pod)
            .ok()
            .and_then(|v| serde_json::from_value(v).ok())
    }

    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or_default()
    }

    pub fn node(&self) -> Option<&str> {
        self.spec.node_name.as_deref().filter(|n| !n.is_empty())
    }

    pub fn phase(&self) -> &str {
        self.status.phase.as_deref().unwrap_or("Pending")
    }

    /// Succeeded or Failed: the pod holds nothing any more.
    pub fn is_terminal(&self) -> bool {
        matches!(self.phase(), "Succeeded" | "Failed")
    }

    /// Whether the pod's requests count against its node: not terminal and
    /// bound to a node.
    pub fn holds_resources(&self) -> bool {
        !self.is_terminal() && self.node().is_some()
    }

    /// Effective requests of every resource matching `keep`, in milli-units
    /// (zero requests left out).
    pub fn effective_requests(&self, keep: impl Fn(&str) -> bool) -> BTreeMap<String, i128> {
        let mut names: Vec<&str> = Vec::new();
        let all = self
            .spec
            .containers
            .iter()
            .chain(&self.spec.init_containers);
        for c in all {
            if let Some(r) = &c.resources {
                for map in [&r.requests, &r.limits].into_iter().flatten() {
                    names.extend(map.keys().map(String::as_str));
                }
            }
        }
        if let Some(o) = &self.spec.overhead {
            names.extend(o.keys().map(String::as_str));
        }
        names.sort_unstable();
        names.dedup();
        names
            .into_iter()
            .filter(|n| keep(n))
            .filter_map(|n| {
                let v = effective_request(&self.spec, n);
                (v != 0).then(|| (n.to_string(), v))
            })
            .collect()
    }

    /// Effective requests of GPU resources, in whole devices.
    pub fn gpu_requests(&self) -> BTreeMap<String, i64> {
        self.effective_requests(is_gpu_resource)
            .into_iter()
            .map(|(k, v)| (k, quantity::units(v)))
            .filter(|(_, v)| *v != 0)
            .collect()
    }
}

/// A container's request of one resource in milli-units: the request, or
/// the limit when no request is set.
pub fn container_request(c: &ContainerLite, resource: &str) -> i128 {
    let Some(r) = &c.resources else { return 0 };
    r.requests
        .as_ref()
        .and_then(|m| m.get(resource))
        .or_else(|| r.limits.as_ref().and_then(|m| m.get(resource)))
        .and_then(quantity::milli)
        .unwrap_or(0)
}

/// The pod's effective request of one resource (see the module docs).
pub fn effective_request(spec: &PodSpecLite, resource: &str) -> i128 {
    let mut sidecars: i128 = 0;
    let mut init: i128 = 0;
    for c in &spec.init_containers {
        let r = container_request(c, resource);
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars += r;
            init = init.max(sidecars);
        } else {
            init = init.max(sidecars + r);
        }
    }
    let app: i128 = spec
        .containers
        .iter()
        .map(|c| container_request(c, resource))
        .sum::<i128>()
        + sidecars;
    let overhead = spec
        .overhead
        .as_ref()
        .and_then(|o| o.get(resource))
        .and_then(quantity::milli)
        .unwrap_or(0);
    init.max(app) + overhead
}

/// A pod holding (or asking for) GPU resources, as the `pods` view shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuPod {
    pub namespace: String,
    pub name: String,
    /// The node it is bound to; None while unscheduled.
    pub node: Option<String>,
    pub phase: String,
    /// Whether its requests count against the node (bound, not terminal).
    pub counted: bool,
    /// Being deleted (still counted until it is gone, as the scheduler does).
    pub terminating: bool,
    /// Effective request per GPU resource, in devices.
    pub resources: BTreeMap<String, i64>,
    /// RFC 3339 creation time.
    pub created: Option<String>,
    /// Seconds since creation, at the time of the report.
    pub age_seconds: Option<i64>,
}

impl GpuPod {
    /// The GPU pod view of a pod; None when it requests no GPU resource.
    pub fn from_lite(pod: &PodLite, now: jiff_now::Now) -> Option<GpuPod> {
        let resources = pod.gpu_requests();
        if resources.is_empty() {
            return None;
        }
        let created = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
        Some(GpuPod {
            namespace: pod.namespace().to_string(),
            name: pod.name().to_string(),
            node: pod.node().map(str::to_string),
            phase: pod.phase().to_string(),
            counted: pod.holds_resources(),
            terminating: pod.metadata.deletion_timestamp.is_some(),
            resources,
            created: created.map(|t| t.to_string()),
            age_seconds: created.map(|t| now.seconds_since(t)),
        })
    }

    /// Total devices across its GPU resources.
    pub fn count(&self) -> i64 {
        self.resources.values().sum()
    }
}

/// The clock a report is computed at (fixed in tests).
pub mod jiff_now {
    use k8s_openapi::jiff::Timestamp;

    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct Now(pub Timestamp);

    impl Now {
        pub fn system() -> Self {
            Now(Timestamp::now())
        }
        pub fn seconds_since(self, t: Timestamp) -> i64 {
            (self.0.as_second() - t.as_second()).max(0)
        }
    }
}

/// kubectl's age format: `45s`, `12m`, `3h`, `5d`, `2y`.
pub fn human_age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..120 => format!("{s}s"),
        120..3_600 => format!("{}m", s / 60),
        3_600..86_400 => {
            let h = s / 3_600;
            let m = (s % 3_600) / 60;
            if h < 10 && m > 0 {
                format!("{h}h{m}m")
            } else {
                format!("{h}h")
            }
        }
        86_400..31_536_000 => format!("{}d", s / 86_400),
        _ => format!("{}y", s / 31_536_000),
    }
}
