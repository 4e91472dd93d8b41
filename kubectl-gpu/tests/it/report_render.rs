//! Rendered tables of `kubectl gpu report`, colour off, on the fixture
//! cluster of support::report (numbers checked by hand in report_alloc.rs).

use crate::support::report as common;

use rke2gpu::cli::OutputFormat;
use rke2gpu::report::table::{nodes_table, operator_text, pods_table};
use rke2gpu::report::{GpuReport, View};

fn report() -> GpuReport {
    GpuReport::build(
        &common::snapshot(),
        Some(&common::pods_read()),
        None,
        common::now(),
    )
}

#[test]
fn nodes_table_plain() {
    insta::assert_snapshot!(nodes_table(&report(), false, false));
}

#[test]
fn nodes_table_wide() {
    insta::assert_snapshot!(nodes_table(&report(), true, false));
}

#[test]
fn pods_table_all_namespaces() {
    insta::assert_snapshot!(pods_table(&report(), false));
}

#[test]
fn pods_table_one_namespace_wide() {
    let r = GpuReport::build(
        &common::snapshot(),
        Some(&common::pods_read()),
        Some("ml"),
        common::now(),
    );
    insta::assert_snapshot!(pods_table(&r, true));
}

#[test]
fn operator_view() {
    insta::assert_snapshot!(operator_text(&report(), false, false));
}

#[test]
fn partial_rbac_and_no_operator() {
    let mut snap = common::snapshot();
    snap.operator = None;
    snap.cluster_policies = None;
    snap.crd_present = None;
    snap.runtime_classes = None;
    snap.unreadable = common::unreadable();
    snap.unreadable.push(rke2gpu::snapshot::Unreadable::new(
        "clusterpolicies.nvidia.com",
        &common::forbidden("clusterpolicies", "nvidia.com", None),
    ));
    snap.unreadable.push(rke2gpu::snapshot::Unreadable::new(
        "pods (all namespaces)",
        &common::forbidden("pods", "", None),
    ));
    let r = GpuReport::build(&snap, None, None, common::now());
    insta::assert_snapshot!(format!(
        "{}\n---\n{}",
        nodes_table(&r, false, false),
        operator_text(&r, false, false)
    ));
}

#[test]
fn json_carries_every_column() {
    let r = report();
    let text = rke2gpu::render::structured(&r.doc(View::Nodes), OutputFormat::Json).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["kind"], "GpuNodeReport");
    assert_eq!(v["api_version"], "kubectl-gpu.rke2.io/v1");
    assert!(v.get("pods").is_none());
    let h200 = &v["nodes"]["nodes"][2];
    assert_eq!(h200["name"], "gpu-h200-0");
    for key in [
        "status",
        "ready",
        "cordoned",
        "taints",
        "product",
        "gpu",
        "resources",
        "driver_version",
        "kubelet_version",
        "containerd_version",
        "runtime",
        "operator",
        "mig_strategy",
        "matrix_row",
        "problems",
    ] {
        assert!(h200.get(key).is_some(), "{key} missing");
    }
    assert_eq!(h200["gpu"]["allocated"], 6);
    assert_eq!(v["nodes"]["totals"]["free_schedulable"], 2);
    // YAML has the same fields.
    let y = rke2gpu::render::structured(&r.doc(View::Pods), OutputFormat::Yaml).unwrap();
    let back: serde_json::Value = serde_saphyr::from_str(&y).unwrap();
    assert_eq!(back["pods"]["pods"].as_array().unwrap().len(), 9);
    assert_eq!(back["kind"], "GpuPodReport");
    let o = serde_json::to_value(r.doc(View::Operator)).unwrap();
    assert_eq!(
        o["operator"]["warnings"][0]["id"],
        "toolkit-1.17.0-containerd-not-on-path"
    );
}
