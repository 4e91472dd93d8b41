//! `gpu-sharing` and the report's sharing view over the GPU Operator docs'
//! `kubectl describe node` excerpts of time-slicing and MPS nodes, with and
//! without `renameByDefault` (tests/fixtures/real-world/nodes/sharing, each
//! with its `.source`), and the same nodes in the states users report:
//! the device plugin not restarted, a config that was not loaded, MPS under
//! the mixed MIG strategy.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use rke2gpu::check_runtime::{Finding, Status, api};
use rke2gpu::facts::{ClusterView, NodeFacts};
use rke2gpu::sharing::SharingView;
use rke2gpu::snapshot::Snapshot;
use serde_json::json;

/// Labels and capacity from a `kubectl describe node` excerpt.
fn describe(name: &str) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let text = std::fs::read_to_string(format!(
        "{}/../tests/fixtures/real-world/nodes/sharing/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let (mut labels, mut capacity) = (BTreeMap::new(), BTreeMap::new());
    let mut section = "";
    for line in text.lines() {
        let t = line.trim();
        if !line.starts_with(' ') {
            section = t.trim_end_matches(':');
            continue;
        }
        match section {
            "Labels" => {
                if let Some((k, v)) = t.split_once('=') {
                    labels.insert(k.to_owned(), v.to_owned());
                }
            }
            "Capacity" => {
                if let Some((k, v)) = t.split_once(':') {
                    capacity.insert(k.trim().to_owned(), v.trim().to_owned());
                }
            }
            _ => {}
        }
    }
    assert!(!labels.is_empty() && !capacity.is_empty(), "{name}");
    (labels, capacity)
}

fn node(labels: &BTreeMap<String, String>, capacity: &BTreeMap<String, String>) -> Node {
    let mut l = labels.clone();
    l.insert("nvidia.com/gpu.present".into(), "true".into());
    serde_json::from_value(json!({
        "metadata": {"name": "gpu-shared", "labels": l},
        "spec": {},
        "status": {"capacity": capacity, "allocatable": capacity,
            "conditions": [{"type": "Ready", "status": "True"}],
            "nodeInfo": {"kubeletVersion": "v1.33.10+rke2r1", "containerRuntimeVersion": "containerd://2.2.2-k3s1",
                "architecture": "amd64", "bootID": "", "kernelVersion": "", "kubeProxyVersion": "", "machineID": "",
                "operatingSystem": "linux", "osImage": "", "systemUUID": ""}}
    }))
    .unwrap()
}

fn sharing(f: &[Finding]) -> Finding {
    let s: Vec<&Finding> = f.iter().filter(|f| f.id == "gpu-sharing").collect();
    assert_eq!(s.len(), 1, "{f:#?}");
    s[0].clone()
}

fn check(n: Node) -> Finding {
    let snap = Snapshot {
        server: "https://127.0.0.1:6443".into(),
        nodes: vec![n],
        ..Default::default()
    };
    sharing(&api::run(&ClusterView::from_snapshot(&snap)))
}

#[test]
fn the_docs_nodes_advertise_gpus_times_replicas() {
    for (file, strategy, resource) in [
        (
            "timeslicing-describe-node-renameByDefault-false.txt",
            "time-slicing",
            "nvidia.com/gpu",
        ),
        (
            "timeslicing-describe-node-renameByDefault-true.txt",
            "time-slicing",
            "nvidia.com/gpu.shared",
        ),
        (
            "mps-describe-node-renameByDefault-false.txt",
            "mps",
            "nvidia.com/gpu",
        ),
        (
            "mps-describe-node-renameByDefault-true.txt",
            "mps",
            "nvidia.com/gpu.shared",
        ),
    ] {
        let (l, c) = describe(file);
        let n = node(&l, &c);
        let v = SharingView::of(&NodeFacts::from_node(&n)).expect(file);
        assert_eq!(v.strategy_name(), strategy, "{file}");
        assert_eq!(v.resource, resource, "{file}");
        assert_eq!(v.expected(), Some(16), "{file}: 4 T4 x 4 replicas");
        assert_eq!(v.advertised, Some(16), "{file}");
        let f = check(n);
        assert_eq!(f.status, Status::Ok, "{file}: {f:#?}");
        assert_eq!(
            f.message,
            format!("{strategy} 4x4 = 16 {resource}"),
            "{file}"
        );
    }
}

/// GFD already labels the new replicas, the device plugin still advertises
/// the physical GPUs: the restart is named.
#[test]
fn a_config_the_device_plugin_did_not_apply_names_the_restart() {
    let (l, mut c) = describe("timeslicing-describe-node-renameByDefault-false.txt");
    c.insert("nvidia.com/gpu".into(), "4".into());
    let f = check(node(&l, &c));
    assert_eq!(f.status, Status::Warn, "{f:#?}");
    assert!(
        f.message
            .contains("advertises 4 nvidia.com/gpu instead of 16"),
        "{}",
        f.message
    );
    assert!(
        f.fix
            .unwrap()
            .contains("rollout restart daemonset/nvidia-device-plugin-daemonset")
    );

    let snap = Snapshot {
        server: "s".into(),
        nodes: vec![node(&l, &c)],
        ..Default::default()
    };
    let nodes = rke2gpu::report::nodes::build(&snap, &ClusterView::from_snapshot(&snap), &[]);
    let row = &nodes.nodes[0];
    assert!(row.sharing.is_some());
    assert!(
        row.problems.iter().any(|p| p == "time-slicing 4 replicas x 4 GPUs, but 4 nvidia.com/gpu advertised (restart the device plugin)"),
        "{:?}",
        row.problems
    );
}

#[test]
fn a_selected_config_gfd_did_not_load_warns() {
    let (mut l, mut c) = describe("timeslicing-describe-node-renameByDefault-false.txt");
    l.insert("nvidia.com/device-plugin.config".into(), "tesla-t4".into());
    l.insert("nvidia.com/gpu.replicas".into(), "0".into());
    l.remove("nvidia.com/gpu.product");
    c.insert("nvidia.com/gpu".into(), "4".into());
    let f = check(node(&l, &c));
    assert_eq!(f.status, Status::Warn, "{f:#?}");
    assert!(
        f.message.contains("selects device plugin config tesla-t4"),
        "{}",
        f.message
    );
}

#[test]
fn mps_under_the_mixed_mig_strategy_fails() {
    let (mut l, c) = describe("mps-describe-node-renameByDefault-false.txt");
    l.insert("nvidia.com/mig.strategy".into(), "mixed".into());
    let f = check(node(&l, &c));
    assert_eq!(f.status, Status::Fail, "{f:#?}");
    assert!(f.message.contains("mixed MIG strategy"), "{}", f.message);
}

#[test]
fn nodes_without_sharing_labels_have_no_sharing_finding() {
    let mut l = BTreeMap::new();
    l.insert("nvidia.com/gpu.count".to_string(), "8".to_string());
    let mut c = BTreeMap::new();
    c.insert("nvidia.com/gpu".to_string(), "8".to_string());
    let snap = Snapshot {
        server: "s".into(),
        nodes: vec![node(&l, &c)],
        ..Default::default()
    };
    let f = api::run(&ClusterView::from_snapshot(&snap));
    assert!(f.iter().all(|f| f.id != "gpu-sharing"), "{f:#?}");
}
