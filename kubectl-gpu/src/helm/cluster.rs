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
use crate::facts::NodeFacts;
use k8s_openapi::api::core::v1::Node;

/// One node as [`NodeInput`]; `None` without a parseable kubelet version.
/// GPU presence and versions come from [`NodeFacts`], the one reading of a
/// Node the whole library shares.
pub fn node_input(facts: &NodeFacts) -> Option<NodeInput> {
    Some(NodeInput {
        name: facts.name.clone(),
        kubelet: facts.kubelet.clone()?,
        containerd: facts.containerd(),
        gpu: facts.gpu.present,
        os_image: facts.os_image.clone(),
        os_tag: match (
            facts.labels.get(crate::labels::NFD_OS_ID),
            facts.labels.get(crate::labels::NFD_OS_VERSION_ID),
        ) {
            (Some(id), Some(v)) => Some(crate::matrix::driver_os_tag(id, v)),
            _ => crate::matrix::driver_os_tag_from_os_image(&facts.os_image),
        },
        kernel: Some(facts.kernel.clone()).filter(|k| !k.is_empty()),
        driver_preinstalled: facts.gpu.deploy_driver.as_deref()
            == Some(crate::labels::DRIVER_PRE_INSTALLED),
    })
}

/// The cluster inputs from a node list. Nodes without a kubelet version are
/// skipped.
pub fn cluster_inputs(nodes: &[Node]) -> ClusterInputs {
    let facts: Vec<NodeFacts> = nodes.iter().map(NodeFacts::from_node).collect();
    ClusterInputs {
        nodes: facts.iter().filter_map(node_input).collect(),
        cis_profile: facts.iter().any(|f| f.args.cis()),
        data_dir: facts.iter().find_map(|f| f.args.data_dir.clone()),
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
        assert!(cluster_inputs(std::slice::from_ref(&node)).nodes[0].gpu);
    }
}
