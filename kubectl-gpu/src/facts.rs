//! Typed views over raw Kubernetes objects: what kind of node this is
//! (RKE2, K3s, other containerd, unsupported runtime), its versions and
//! role, its GPUs as GPU Feature Discovery and the device plugin describe
//! them, and what RKE2 itself recorded about its configuration; and
//! [`ClusterView`], those facts for a whole cluster snapshot.

use crate::labels;
use crate::operator::OperatorFacts;
use crate::snapshot::{Snapshot, Unreadable};
use crate::version::{ContainerRuntime, Distribution, KubeletVersion, Triple};
use k8s_openapi::api::core::v1::{Node, Taint, Toleration};
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde::Serialize;
use std::collections::BTreeMap;

/// Server (control plane / etcd) or agent, as RKE2 names its two services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeRole {
    Server,
    Agent,
}

impl NodeRole {
    /// The systemd unit that runs RKE2 (or K3s) on this node.
    pub fn unit(self, distribution: Distribution) -> &'static str {
        match (distribution, self) {
            (Distribution::K3s, NodeRole::Server) => "k3s",
            (Distribution::K3s, NodeRole::Agent) => "k3s-agent",
            (_, NodeRole::Server) => "rke2-server",
            (_, NodeRole::Agent) => "rke2-agent",
        }
    }
}

/// What the node's RKE2/K3s recorded about its own configuration in the
/// `rke2.io/node-args` / `k3s.io/node-args` annotation (command-line flags
/// and config-file keys, secrets redacted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodeArgs {
    pub data_dir: Option<String>,
    pub profile: Option<String>,
    pub default_runtime: Option<String>,
}

impl NodeArgs {
    /// Parses the JSON array RKE2 writes, e.g.
    /// `["server","--profile","cis","--data-dir","/data/rke2"]`.
    pub fn parse(json: &str) -> Self {
        let args: Vec<String> = serde_json::from_str(json).unwrap_or_default();
        let mut out = NodeArgs::default();
        let mut iter = args.iter().peekable();
        while let Some(arg) = iter.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) => (f, Some(v.to_string())),
                None => (arg.as_str(), None),
            };
            let slot = match flag {
                "--data-dir" | "-d" => &mut out.data_dir,
                "--profile" => &mut out.profile,
                "--default-runtime" => &mut out.default_runtime,
                _ => continue,
            };
            let value = match inline {
                Some(v) => Some(v),
                None => iter
                    .next_if(|next| !next.starts_with("--"))
                    .map(|v| v.to_string()),
            };
            *slot = value;
        }
        out
    }

    pub fn cis(&self) -> bool {
        self.profile
            .as_deref()
            .is_some_and(|p| p.starts_with("cis"))
    }
}

/// GPUs on a node as labels and resources describe them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GpuFacts {
    /// `nvidia.com/gpu.present=true` or an NFD NVIDIA PCI label.
    pub present: bool,
    /// Which label said so.
    pub present_by: Vec<String>,
    pub product: Option<String>,
    pub count_label: Option<u64>,
    pub memory_mib: Option<u64>,
    pub driver_version: Option<String>,
    pub cuda_runtime: Option<String>,
    pub mig_strategy: Option<String>,
    pub mig_capable: Option<bool>,
    /// `nvidia.com/gpu` capacity / allocatable (None: not advertised).
    pub capacity: Option<i64>,
    pub allocatable: Option<i64>,
    /// `nvidia.com/gpu.shared` and `nvidia.com/mig-*` allocatable.
    pub other_resources: BTreeMap<String, i64>,
    /// `nvidia.com/gpu.deploy.driver` (`pre-installed` when the host has a driver).
    pub deploy_driver: Option<String>,
}

/// Everything we derive from one Node object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeFacts {
    pub name: String,
    pub distribution: Distribution,
    pub kubelet: Option<KubeletVersion>,
    pub kubelet_raw: String,
    pub runtime: ContainerRuntime,
    pub role: NodeRole,
    pub ready: bool,
    pub cordoned: bool,
    pub taints: Vec<TaintView>,
    pub os_image: String,
    pub kernel: String,
    pub args: NodeArgs,
    pub gpu: GpuFacts,
    pub labels: BTreeMap<String, String>,
}

/// A taint in `key=value:Effect` form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaintView {
    pub key: String,
    pub value: Option<String>,
    pub effect: String,
}

impl std::fmt::Display for TaintView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.value {
            Some(v) => write!(f, "{}={}:{}", self.key, v, self.effect),
            None => write!(f, "{}:{}", self.key, self.effect),
        }
    }
}

impl From<&Taint> for TaintView {
    fn from(t: &Taint) -> Self {
        TaintView {
            key: t.key.clone(),
            value: t.value.clone().filter(|v| !v.is_empty()),
            effect: t.effect.clone(),
        }
    }
}

/// Parses a Kubernetes quantity that counts devices (`8`, `8000m`).
pub fn quantity_count(q: &Quantity) -> Option<i64> {
    let s = q.0.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    if let Some(milli) = s.strip_suffix('m') {
        return milli.parse::<i64>().ok().map(|m| m / 1000);
    }
    let (num, mult) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let mult: i64 = match &s[i..] {
                "k" => 1_000,
                "M" => 1_000_000,
                "Ki" => 1 << 10,
                "Mi" => 1 << 20,
                _ => return None,
            };
            (&s[..i], mult)
        }
        None => (s, 1),
    };
    num.parse::<i64>().ok().map(|n| n * mult)
}

fn label<'a>(labels: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    labels
        .get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// Whether an NFD PCI label names an NVIDIA device (vendor 0x10de):
/// `feature.node.kubernetes.io/pci-10de.present` or `pci-0302_10de.present`.
fn is_nfd_nvidia(key: &str) -> bool {
    key.strip_prefix(labels::NFD_PCI_NVIDIA_PREFIX)
        .and_then(|rest| rest.strip_suffix(".present"))
        .is_some_and(|dev| dev == "10de" || dev.split('_').any(|part| part == "10de"))
}

impl GpuFacts {
    pub fn from_node(node: &Node) -> Self {
        let empty = BTreeMap::new();
        let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
        let mut present_by = Vec::new();
        if label(labels, labels::GPU_PRESENT) == Some("true") {
            present_by.push(labels::GPU_PRESENT.to_string());
        }
        for (k, v) in labels {
            if is_nfd_nvidia(k) && v == "true" {
                present_by.push(k.clone());
            }
        }
        let status = node.status.as_ref();
        let capacity = status
            .and_then(|s| s.capacity.as_ref())
            .and_then(|c| c.get(labels::RESOURCE_GPU))
            .and_then(quantity_count);
        let allocatable_map = status.and_then(|s| s.allocatable.as_ref());
        let allocatable = allocatable_map
            .and_then(|c| c.get(labels::RESOURCE_GPU))
            .and_then(quantity_count);
        let mut other_resources = BTreeMap::new();
        if let Some(alloc) = allocatable_map {
            for (k, q) in alloc {
                if (k == labels::RESOURCE_GPU_SHARED || k.starts_with(labels::RESOURCE_MIG_PREFIX))
                    && let Some(n) = quantity_count(q)
                {
                    other_resources.insert(k.clone(), n);
                }
            }
        }
        let driver_version = label(labels, labels::DRIVER_FULL)
            .map(str::to_string)
            .or_else(|| {
                let major = label(labels, labels::DRIVER_MAJOR)
                    .or(label(labels, labels::DRIVER_MAJOR_OLD))?;
                let minor = label(labels, labels::DRIVER_MINOR)
                    .or(label(labels, labels::DRIVER_MINOR_OLD))?;
                let rev = label(labels, labels::DRIVER_REVISION)
                    .or(label(labels, labels::DRIVER_REV_OLD));
                Some(match rev {
                    Some(r) => format!("{major}.{minor}.{r}"),
                    None => format!("{major}.{minor}"),
                })
            });
        GpuFacts {
            present: !present_by.is_empty() || capacity.unwrap_or(0) > 0,
            present_by,
            product: label(labels, labels::GPU_PRODUCT).map(str::to_string),
            count_label: label(labels, labels::GPU_COUNT).and_then(|v| v.parse().ok()),
            memory_mib: label(labels, labels::GPU_MEMORY).and_then(|v| v.parse().ok()),
            driver_version,
            cuda_runtime: label(labels, labels::CUDA_RUNTIME_FULL).map(str::to_string),
            mig_strategy: label(labels, labels::MIG_STRATEGY).map(str::to_string),
            mig_capable: label(labels, labels::MIG_CAPABLE).map(|v| v == "true"),
            capacity,
            allocatable,
            other_resources,
            deploy_driver: label(labels, labels::DEPLOY_DRIVER).map(str::to_string),
        }
    }
}

impl NodeFacts {
    pub fn from_node(node: &Node) -> Self {
        let name = node.metadata.name.clone().unwrap_or_default();
        let labels = node.metadata.labels.clone().unwrap_or_default();
        let annotations = node.metadata.annotations.clone().unwrap_or_default();
        let info = node.status.as_ref().and_then(|s| s.node_info.as_ref());
        let kubelet_raw = info.map(|i| i.kubelet_version.clone()).unwrap_or_default();
        let kubelet = KubeletVersion::parse(&kubelet_raw);
        let distribution = kubelet
            .as_ref()
            .map(|k| k.distribution)
            .unwrap_or(Distribution::Other);
        let runtime = ContainerRuntime::parse(
            info.map(|i| i.container_runtime_version.as_str())
                .unwrap_or_default(),
        );
        let is_server = [
            labels::ROLE_CONTROL_PLANE,
            labels::ROLE_MASTER,
            labels::ROLE_ETCD,
        ]
        .iter()
        .any(|k| labels.get(*k).is_some_and(|v| v == "true"));
        let ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True");
        let spec = node.spec.as_ref();
        let args_json = annotations
            .get("rke2.io/node-args")
            .or_else(|| annotations.get("k3s.io/node-args"));
        NodeFacts {
            gpu: GpuFacts::from_node(node),
            name,
            distribution,
            kubelet,
            kubelet_raw,
            runtime,
            role: if is_server {
                NodeRole::Server
            } else {
                NodeRole::Agent
            },
            ready,
            cordoned: spec.and_then(|s| s.unschedulable).unwrap_or(false),
            taints: spec
                .and_then(|s| s.taints.as_ref())
                .map(|t| t.iter().map(TaintView::from).collect())
                .unwrap_or_default(),
            os_image: info.map(|i| i.os_image.clone()).unwrap_or_default(),
            kernel: info.map(|i| i.kernel_version.clone()).unwrap_or_default(),
            args: args_json.map(|j| NodeArgs::parse(j)).unwrap_or_default(),
            labels,
        }
    }

    pub fn is_rke2_like(&self) -> bool {
        matches!(self.distribution, Distribution::Rke2 | Distribution::K3s)
    }

    pub fn containerd(&self) -> Option<Triple> {
        self.runtime.containerd()
    }

    /// Taints that keep pods without a matching toleration off this node
    /// (NoSchedule and NoExecute), cordoning excluded.
    pub fn blocking_taints(&self) -> impl Iterator<Item = &TaintView> {
        self.taints
            .iter()
            .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
            .filter(|t| t.key != labels::TAINT_UNSCHEDULABLE)
    }

    /// Ready / NotReady, plus cordoned.
    pub fn status_text(&self) -> String {
        let ready = if self.ready { "Ready" } else { "NotReady" };
        if self.cordoned {
            format!("{ready},SchedulingDisabled")
        } else {
            ready.to_string()
        }
    }
}

/// The pure input of check-runtime's API rules and of the report views,
/// built from a [`Snapshot`]: node facts, RuntimeClasses, the operator.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    pub nodes: Vec<NodeFacts>,
    pub runtime_classes: Option<Vec<RuntimeClass>>,
    pub operator: Option<OperatorFacts>,
    pub crd_present: Option<bool>,
    /// Tolerations of each operand DaemonSet's pod template, by `app` label.
    pub operand_tolerations: BTreeMap<String, Vec<Toleration>>,
    pub unreadable: Vec<Unreadable>,
}

impl ClusterView {
    pub fn from_snapshot(snap: &Snapshot) -> Self {
        let mut operand_tolerations = BTreeMap::new();
        if let Some(ops) = &snap.operator {
            for ds in &ops.daemonsets {
                let app = Some(crate::operator::daemonset_app(ds)).filter(|a| !a.is_empty());
                let tolerations = ds
                    .spec
                    .template
                    .spec
                    .as_ref()
                    .and_then(|s| s.tolerations.clone())
                    .unwrap_or_default();
                if let Some(app) = app {
                    operand_tolerations.insert(app, tolerations);
                }
            }
        }
        ClusterView {
            nodes: snap.nodes.iter().map(NodeFacts::from_node).collect(),
            runtime_classes: snap.runtime_classes.clone(),
            operator: OperatorFacts::from_snapshot(snap),
            crd_present: snap.crd_present,
            operand_tolerations,
            unreadable: snap.unreadable.clone(),
        }
    }

    pub fn gpu_nodes(&self) -> impl Iterator<Item = &NodeFacts> {
        self.nodes.iter().filter(|n| n.gpu.present)
    }
}

/// Whether a toleration list tolerates a taint (Kubernetes' matching rules).
pub fn tolerates(tolerations: &[Toleration], key: &str, value: Option<&str>, effect: &str) -> bool {
    tolerations.iter().any(|t| {
        let effect_ok = t
            .effect
            .as_deref()
            .is_none_or(|e| e.is_empty() || e == effect);
        let op = t.operator.as_deref().unwrap_or("Equal");
        let key_ok = match t.key.as_deref() {
            None | Some("") => op == "Exists",
            Some(k) => k == key,
        };
        let value_ok = op == "Exists" || t.value.as_deref().unwrap_or("") == value.unwrap_or("");
        effect_ok && key_ok && value_ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(json: serde_json::Value) -> Node {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn rke2_gpu_agent() {
        let n = node(serde_json::json!({
            "metadata": {"name": "gpu-1", "labels": {
                "nvidia.com/gpu.present": "true",
                "nvidia.com/gpu.product": "NVIDIA-H200",
                "nvidia.com/gpu.count": "8",
                "nvidia.com/cuda.driver-version.full": "580.159.04",
                "feature.node.kubernetes.io/pci-10de.present": "true"},
              "annotations": {"rke2.io/node-args": "[\"agent\",\"--data-dir\",\"/data/rke2\",\"--default-runtime\",\"nvidia\"]"}},
            "spec": {"taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]},
            "status": {
                "capacity": {"nvidia.com/gpu": "8"},
                "allocatable": {"nvidia.com/gpu": "8", "nvidia.com/mig-1g.10gb": "0"},
                "conditions": [{"type": "Ready", "status": "True"}],
                "nodeInfo": {"kubeletVersion": "v1.33.10+rke2r1", "containerRuntimeVersion": "containerd://2.2.2-k3s1",
                  "architecture": "amd64", "bootID": "", "kernelVersion": "6.8.0", "kubeProxyVersion": "", "machineID": "",
                  "operatingSystem": "linux", "osImage": "Ubuntu 24.04.1 LTS", "systemUUID": ""}}
        }));
        let f = NodeFacts::from_node(&n);
        assert_eq!(f.distribution, Distribution::Rke2);
        assert_eq!(f.role, NodeRole::Agent);
        assert_eq!(f.role.unit(f.distribution), "rke2-agent");
        assert_eq!(f.containerd(), Some(Triple::new(2, 2, 2)));
        assert!(f.gpu.present);
        assert_eq!(f.gpu.present_by.len(), 2);
        assert_eq!(f.gpu.allocatable, Some(8));
        assert_eq!(f.gpu.driver_version.as_deref(), Some("580.159.04"));
        assert_eq!(
            f.gpu.other_resources.get("nvidia.com/mig-1g.10gb"),
            Some(&0)
        );
        assert_eq!(f.args.data_dir.as_deref(), Some("/data/rke2"));
        assert_eq!(f.args.default_runtime.as_deref(), Some("nvidia"));
        assert_eq!(f.blocking_taints().count(), 1);
        assert!(f.ready);
    }

    /// Real RKE2 v1.31.6 node list with vGPU A16s (fixture provenance in its .source file).
    #[test]
    fn real_rke2_node_list() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/real-world/nodes/rke2-v1.31.6-vgpu-a16-nodelist.json"
        ))
        .unwrap();
        // `kubectl get nodes -o json` prints kind: List; read its items.
        let list: serde_json::Value = serde_json::from_str(&text).unwrap();
        let nodes: Vec<Node> = serde_json::from_value(list["items"].clone()).unwrap();
        let facts: Vec<_> = nodes.iter().map(NodeFacts::from_node).collect();
        assert!(facts.iter().all(|f| f.distribution == Distribution::Rke2));
        let gpu: Vec<_> = facts.iter().filter(|f| f.gpu.present).collect();
        assert!(!gpu.is_empty());
        assert!(
            gpu.iter()
                .all(|f| f.gpu.product.as_deref().is_some_and(|p| p.contains("A16")))
        );
        // The single node runs the control plane and has one vGPU slice.
        assert_eq!(facts[0].role, NodeRole::Server);
        assert_eq!(facts[0].role.unit(facts[0].distribution), "rke2-server");
        assert_eq!(facts[0].gpu.allocatable, Some(1));
        assert_eq!(facts[0].containerd().map(|c| c.major), Some(2));
    }

    #[test]
    fn node_args_forms() {
        let a = NodeArgs::parse(r#"["server","--profile=cis","--data-dir","/x"]"#);
        assert!(a.cis());
        assert_eq!(a.data_dir.as_deref(), Some("/x"));
        assert_eq!(NodeArgs::parse("not json"), NodeArgs::default());
    }

    #[test]
    fn nfd_label_forms() {
        assert!(is_nfd_nvidia("feature.node.kubernetes.io/pci-10de.present"));
        assert!(is_nfd_nvidia(
            "feature.node.kubernetes.io/pci-0302_10de.present"
        ));
        assert!(!is_nfd_nvidia(
            "feature.node.kubernetes.io/pci-1af4.present"
        ));
        assert!(!is_nfd_nvidia(
            "feature.node.kubernetes.io/pci-0300_8086.present"
        ));
    }

    #[test]
    fn quantities() {
        assert_eq!(quantity_count(&Quantity("8".into())), Some(8));
        assert_eq!(quantity_count(&Quantity("2000m".into())), Some(2));
        assert_eq!(quantity_count(&Quantity("1k".into())), Some(1000));
        assert_eq!(quantity_count(&Quantity("x".into())), None);
    }
}
