//! `mig-state` and the operand rules on MIG nodes, over the real label sets
//! of NVIDIA's docs (tests/fixtures/real-world/nodes: an H100 with
//! mig.strategy=mixed and mig.config=all-balanced, and one with single /
//! all-disabled; provenance in each `.source`), with the MIG manager's
//! states and the resources the device plugin advertises varied.

use k8s_openapi::api::core::v1::{Node, Pod};
use rke2gpu::check_runtime::{Finding, Status, api};
use rke2gpu::facts::ClusterView;
use rke2gpu::mig::MigView;
use rke2gpu::snapshot::{OperatorObjects, Snapshot};
use serde_json::{Value, json};

use super::checks_rules::{cluster_policy, deployment, rc};

fn labels(name: &str) -> serde_json::Map<String, Value> {
    let text = std::fs::read_to_string(format!(
        "{}/../tests/fixtures/real-world/nodes/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The docs' mixed-strategy H100 node, advertising `resources`.
fn node(mut labels: serde_json::Map<String, Value>, allocatable: Value) -> Node {
    labels.insert("kubernetes.io/hostname".into(), "gpu-mig".into());
    serde_json::from_value(json!({
        "metadata": {"name": "gpu-mig", "labels": labels},
        "spec": {},
        "status": {
            "capacity": allocatable.clone(), "allocatable": allocatable,
            "conditions": [{"type": "Ready", "status": "True"}],
            "nodeInfo": {"kubeletVersion": "v1.33.10+rke2r1", "containerRuntimeVersion": "containerd://2.2.2-k3s1",
                "architecture": "amd64", "bootID": "", "kernelVersion": "5.15.0-102-generic", "kubeProxyVersion": "", "machineID": "",
                "operatingSystem": "linux", "osImage": "Ubuntu 22.04.4 LTS", "systemUUID": ""}}
    }))
    .unwrap()
}

fn pod(app: &str, ready: bool) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{app}-q8x2m"), "namespace": "gpu-operator", "labels": {"app": app}},
        "spec": {"nodeName": "gpu-mig", "containers": [{"name": "main", "image": "nvcr.io/nvidia/x"}]},
        "status": {"phase": if ready {"Running"} else {"Pending"},
            "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}],
            "containerStatuses": [{"name": "main", "ready": ready, "restartCount": 0, "image": "x", "imageID": "",
                "state": {"running": {"startedAt": "2026-12-01T10:00:00Z"}}}]}
    }))
    .unwrap()
}

fn findings(node: Node, apps: &[(&str, bool)]) -> Vec<Finding> {
    let snap = Snapshot {
        server: "https://127.0.0.1:6443".into(),
        nodes: vec![node],
        runtime_classes: Some(vec![rc("nvidia", "nvidia")]),
        cluster_policies: Some(vec![cluster_policy("ready", json!([]), true)]),
        crd_present: Some(true),
        operator: Some(OperatorObjects {
            namespace: "gpu-operator".into(),
            found_by: "operator Deployment labels".into(),
            deployments: vec![deployment("v25.10.1")],
            pods: apps.iter().map(|(a, r)| pod(a, *r)).collect(),
            ..Default::default()
        }),
        unreadable: vec![],
    };
    api::run(&ClusterView::from_snapshot(&snap))
}

fn mig_state(f: &[Finding]) -> &Finding {
    let m: Vec<&Finding> = f.iter().filter(|f| f.id == "mig-state").collect();
    assert_eq!(m.len(), 1, "{f:#?}");
    m[0]
}

const OPERANDS: &[(&str, bool)] = &[
    ("nvidia-container-toolkit-daemonset", true),
    ("nvidia-device-plugin-daemonset", true),
    ("nvidia-operator-validator", true),
    ("nvidia-mig-manager", true),
];

fn mixed_allocatable() -> Value {
    json!({"nvidia.com/gpu": "0", "nvidia.com/mig-1g.10gb": "2", "nvidia.com/mig-2g.20gb": "1", "nvidia.com/mig-3g.40gb": "1"})
}

#[test]
fn the_docs_mixed_node_is_applied_and_reads_as_gfd_labels_it() {
    let n = node(
        labels("node-labels-h100-mig-mixed-all-balanced.json"),
        mixed_allocatable(),
    );
    let view = MigView::of(&rke2gpu::facts::NodeFacts::from_node(&n)).unwrap();
    assert_eq!(view.strategy.as_deref(), Some("mixed"));
    assert_eq!(view.config.as_deref(), Some("all-balanced"));
    assert_eq!(view.profiles.len(), 3);
    assert_eq!(view.profiles["1g.10gb"].labelled, Some(2));
    assert_eq!(view.profiles["1g.10gb"].advertised, Some(2));
    assert!(view.enabled());
    let f = findings(n, OPERANDS);
    let m = mig_state(&f);
    assert_eq!(m.status, Status::Ok, "{m:#?}");
    assert!(
        m.message.contains("mixed all-balanced success"),
        "{}",
        m.message
    );
}

/// After the MIG manager's success, a device plugin that still advertises
/// the old layout (no MIG resources yet) is named with the restart.
#[test]
fn an_applied_layout_the_device_plugin_does_not_advertise_warns() {
    let n = node(
        labels("node-labels-h100-mig-mixed-all-balanced.json"),
        json!({"nvidia.com/gpu": "1"}),
    );
    let m = mig_state(&findings(n, OPERANDS)).clone();
    assert_eq!(m.status, Status::Warn, "{m:#?}");
    assert!(
        m.message.contains("mig-1g.10gb: 2 by GFD, 0 advertised"),
        "{}",
        m.message
    );
    assert!(
        m.fix
            .unwrap()
            .contains("delete pod -l app=nvidia-device-plugin-daemonset")
    );
}

/// A change in progress: operands paused by the MIG manager are not
/// failures, and the state says what is happening; without a ready MIG
/// manager the change cannot finish.
#[test]
fn a_pending_change_pauses_operands_and_needs_the_mig_manager() {
    let mut l = labels("node-labels-h100-mig-mixed-all-balanced.json");
    l.insert("nvidia.com/mig.config.state".into(), "pending".into());
    l.insert(
        "nvidia.com/gpu.deploy.device-plugin".into(),
        "paused-for-mig-change".into(),
    );
    let operands: Vec<(&str, bool)> = OPERANDS
        .iter()
        .copied()
        .filter(|(a, _)| *a != "nvidia-device-plugin-daemonset")
        .collect();
    let f = findings(node(l.clone(), json!({"nvidia.com/gpu": "0"})), &operands);
    let m = mig_state(&f);
    assert_eq!(m.status, Status::Warn, "{m:#?}");
    assert!(
        m.evidence
            .iter()
            .any(|e| e.contains("paused for the MIG change: device-plugin")),
        "{m:#?}"
    );
    let dp: Vec<&Finding> = f
        .iter()
        .filter(|f| f.id == "operand-pods" && f.message.contains("nvidia-device-plugin-daemonset"))
        .collect();
    assert_eq!(dp.len(), 1);
    assert_eq!(dp[0].status, Status::Warn, "paused, not failed: {dp:#?}");

    let no_manager: Vec<(&str, bool)> = operands
        .iter()
        .copied()
        .filter(|(a, _)| *a != "nvidia-mig-manager")
        .collect();
    let f = findings(node(l.clone(), json!({"nvidia.com/gpu": "0"})), &no_manager);
    let m = mig_state(&f);
    assert_eq!(m.status, Status::Fail);
    assert!(m.message.contains("no MIG manager pod"), "{}", m.message);

    let mut crashing = operands.clone();
    crashing.retain(|(a, _)| *a != "nvidia-mig-manager");
    crashing.push(("nvidia-mig-manager", false));
    let m = mig_state(&findings(
        node(l, json!({"nvidia.com/gpu": "0"})),
        &crashing,
    ))
    .clone();
    assert_eq!(m.status, Status::Fail);
    assert!(m.message.contains("not ready"), "{}", m.message);
}

#[test]
fn a_failed_change_fails_with_the_logs_and_a_layout_to_fall_back_to() {
    let mut l = labels("node-labels-h100-mig-mixed-all-balanced.json");
    l.insert("nvidia.com/mig.config.state".into(), "failed".into());
    let m = mig_state(&findings(node(l, json!({"nvidia.com/gpu": "0"})), OPERANDS)).clone();
    assert_eq!(m.status, Status::Fail);
    let fix = m.fix.unwrap();
    assert!(fix.contains("logs -l app=nvidia-mig-manager"), "{fix}");
    assert!(fix.contains("nvidia.com/mig.config=all-disabled"), "{fix}");
}

#[test]
fn the_docs_single_all_disabled_node_is_mig_off() {
    let n = node(
        labels("node-labels-h100-mig-single-all-disabled.json"),
        json!({"nvidia.com/gpu": "1"}),
    );
    let m = mig_state(&findings(n, OPERANDS)).clone();
    assert_eq!(m.status, Status::Ok);
    assert!(m.message.starts_with("MIG off"), "{}", m.message);
}

/// `report`: the node row carries the MIG view, the wide MIG column the
/// config and state, and the problems what is wrong.
#[test]
fn report_shows_the_mig_config_state_and_problems() {
    let mut l = labels("node-labels-h100-mig-mixed-all-balanced.json");
    l.insert("nvidia.com/mig.config.state".into(), "pending".into());
    l.insert(
        "nvidia.com/gpu.deploy.device-plugin".into(),
        "paused-for-mig-change".into(),
    );
    let snap = Snapshot {
        server: "https://127.0.0.1:6443".into(),
        nodes: vec![node(l, json!({"nvidia.com/gpu": "0"}))],
        ..Default::default()
    };
    let view = ClusterView::from_snapshot(&snap);
    let nodes = rke2gpu::report::nodes::build(&snap, &view, &[]);
    let row = &nodes.nodes[0];
    let mig = row.mig.as_ref().expect("MIG view");
    assert_eq!(mig.summary(), "mixed all-balanced pending");
    assert_eq!(mig.paused, vec!["device-plugin".to_string()]);
    assert!(
        row.problems.iter().any(|p| p == "MIG change to all-balanced in progress (pending), paused: device-plugin"),
        "{:?}",
        row.problems
    );
    assert!(
        row.problems
            .iter()
            .any(|p| p.starts_with("mig-1g.10gb: 2 MIG devices by GFD, 0 advertised")),
        "{:?}",
        row.problems
    );
    let report =
        rke2gpu::report::GpuReport::build(&snap, None, None, super::support::report::now());
    assert!(!report.healthy);
    let table = rke2gpu::report::table::nodes_table(&report, true, false);
    assert!(table.contains("mixed all-balanced pending"), "{table}");
}
