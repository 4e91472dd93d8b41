//! Fills [`ClusterInputs`] from Kubernetes `Node` objects: kubelet and
//! containerd versions from `status.nodeInfo`, GPU presence from NFD/GFD
//! labels or capacity, and the RKE2 CIS profile and data dir from the
//! `rke2.io/node-args` annotation.
//!
//! `rke2.io/node-args` (`k3s.io/node-args` on K3s) is a JSON array of the
//! arguments the node's rke2 process runs with, config-file keys included
//! (k3s' `configfilearg` expands `/etc/rancher/rke2/config.yaml` into argv),
//! e.g. `["server","--profile","cis"]`. Agents do not carry `--profile`; we
//! look at every node. When no node has the annotation (stripped, or a
//! managed control plane), the CIS profile cannot be seen: pass `--cis` to
//! the binary to label the namespace anyway.

use super::values::{ClusterInputs, NodeInput};
use crate::labels;
use crate::version::{ContainerRuntime, KubeletVersion};
use k8s_openapi::api::core::v1::Node;

/// The RKE2 node-args annotation.
pub const RKE2_NODE_ARGS: &str = "rke2.io/node-args";
/// The K3s node-args annotation.
pub const K3S_NODE_ARGS: &str = "k3s.io/node-args";

/// Whether a node has an NVIDIA GPU: GFD's `nvidia.com/gpu.present=true`,
/// NFD's PCI vendor 10de label, or `nvidia.com/gpu` capacity.
pub fn node_has_gpu(node: &Node) -> bool {
    let labels = node.metadata.labels.as_ref();
    let label_true = |k: &str| labels.and_then(|l| l.get(k)).is_some_and(|v| v == "true");
    if label_true(labels::GPU_PRESENT) || label_true(labels::NFD_PCI_NVIDIA) {
        return true;
    }
    // Older NFD: feature.node.kubernetes.io/pci-0302_10de.present
    let nfd_class = labels.is_some_and(|l| {
        l.iter().any(|(k, v)| {
            v == "true" && k.starts_with(labels::NFD_PCI_NVIDIA_PREFIX) && k.contains("10de")
        })
    });
    if nfd_class {
        return true;
    }
    node.status
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get(labels::RESOURCE_GPU))
        .is_some_and(|q| q.0.trim() != "0" && !q.0.trim().is_empty())
}

/// The node-args of a node, if annotated.
pub fn node_args(node: &Node) -> Option<Vec<String>> {
    let ann = node.metadata.annotations.as_ref()?;
    let raw = ann.get(RKE2_NODE_ARGS).or_else(|| ann.get(K3S_NODE_ARGS))?;
    serde_json::from_str(raw).ok()
}

/// The value of `--flag V` or `--flag=V` in an argv.
pub fn arg_value(args: &[String], flag: &str) -> Option<String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == flag {
            return it.next().cloned();
        }
        if let Some(v) = a.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
            return Some(v.to_string());
        }
    }
    None
}

/// Whether node-args carry an RKE2 CIS profile (`cis`, `cis-1.23`, `cis-1.6`).
pub fn args_have_cis_profile(args: &[String]) -> bool {
    arg_value(args, "--profile").is_some_and(|p| p.starts_with("cis"))
}

/// One node as [`NodeInput`]; `None` without a parseable kubelet version.
pub fn node_input(node: &Node) -> Option<NodeInput> {
    let info = node.status.as_ref()?.node_info.as_ref()?;
    let kubelet = KubeletVersion::parse(&info.kubelet_version)?;
    Some(NodeInput {
        name: node.metadata.name.clone().unwrap_or_default(),
        kubelet,
        containerd: ContainerRuntime::parse(&info.container_runtime_version).containerd(),
        gpu: node_has_gpu(node),
    })
}

/// The cluster inputs from a node list. Nodes without a kubelet version are
/// skipped.
pub fn cluster_inputs(nodes: &[Node]) -> ClusterInputs {
    let mut cis = false;
    let mut data_dir = None;
    for n in nodes {
        if let Some(args) = node_args(n) {
            cis |= args_have_cis_profile(&args);
            if data_dir.is_none() {
                data_dir = arg_value(&args, "--data-dir").or_else(|| arg_value(&args, "-d"));
            }
        }
    }
    ClusterInputs {
        nodes: nodes.iter().filter_map(node_input).collect(),
        cis_profile: cis,
        data_dir,
    }
}

/// Parses `kubectl get nodes -o json|yaml` output (`kind: List` or
/// `NodeList`) or a single Node, for offline use (`--nodes-file`).
pub fn parse_nodes(origin: &str, text: &str) -> crate::Result<Vec<Node>> {
    let err = |reason: String| crate::Error::Other(format!("{origin}: {reason}"));
    let v: serde_json::Value = serde_saphyr::from_str(text).map_err(|e| {
        err(format!(
            "not JSON/YAML (expected `kubectl get nodes -o json`): {e}"
        ))
    })?;
    let items = match v.get("items") {
        Some(serde_json::Value::Array(items)) => items.clone(),
        _ if v.get("kind").and_then(|k| k.as_str()) == Some("Node") => vec![v],
        _ => return Err(err("no `items` and not a Node".into())),
    };
    items
        .into_iter()
        .map(|i| serde_json::from_value::<Node>(i).map_err(|e| err(format!("bad Node: {e}"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::{Distribution, Triple};

    const NODELIST: &str = include_str!(
        "../../../tests/fixtures/real-world/nodes/rke2-v1.31.6-vgpu-a16-nodelist.json"
    );

    #[test]
    fn reads_a_real_rke2_node_list() {
        // edgexr/edge-cloud-platform cluster_test.go: RKE2 v1.31.6+rke2r1, containerd 2.0.2-k3s2, node-args ["server"]
        let nodes = parse_nodes("fixture", NODELIST).unwrap();
        let inputs = cluster_inputs(&nodes);
        assert_eq!(inputs.nodes.len(), 1);
        let n = &inputs.nodes[0];
        assert_eq!(n.kubelet.distribution, Distribution::Rke2);
        assert_eq!(n.containerd, Some(Triple::new(2, 0, 2)));
        assert!(n.gpu);
        assert!(!inputs.cis_profile);
        assert_eq!(inputs.data_dir, None);
    }

    #[test]
    fn node_args_profiles() {
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(args_have_cis_profile(&a(&["server", "--profile", "cis"])));
        assert!(args_have_cis_profile(&a(&["server", "--profile=cis-1.23"])));
        assert!(!args_have_cis_profile(&a(&["server"])));
        assert_eq!(
            arg_value(&a(&["server", "--data-dir", "/data/rke2"]), "--data-dir").as_deref(),
            Some("/data/rke2")
        );
        let mut node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "s1", "annotations": {"rke2.io/node-args": "[\"server\",\"--profile\",\"cis\",\"--data-dir\",\"/data/rke2\"]"}},
            "status": {"nodeInfo": {"kubeletVersion": "v1.33.5+rke2r1", "containerRuntimeVersion": "containerd://2.1.4-k3s1",
                "architecture": "amd64", "bootID": "", "kernelVersion": "", "kubeProxyVersion": "", "machineID": "",
                "operatingSystem": "linux", "osImage": "", "systemUUID": ""}}
        }))
        .unwrap();
        let inputs = cluster_inputs(std::slice::from_ref(&node));
        assert!(inputs.cis_profile);
        assert_eq!(inputs.data_dir.as_deref(), Some("/data/rke2"));
        assert!(!inputs.nodes[0].gpu);
        node.metadata.labels =
            Some([("nvidia.com/gpu.present".to_string(), "true".to_string())].into());
        assert!(node_has_gpu(&node));
    }
}
