//! Where the installed chart version comes from, in order: `helm.sh/chart`
//! on the operator Deployment, on the ClusterPolicy, on the operand
//! DaemonSets, then the Helm release Secret; and that check-runtime and
//! `report operator` say which. The objects carry the labels the chart's
//! templates render (NVIDIA/gpu-operator v25.10.1:
//! deployments/gpu-operator/templates/_helpers.tpl `gpu-operator.labels` on
//! operator.yaml and clusterpolicy.yaml, `gpu-operator.operand-labels` as the
//! ClusterPolicy's `daemonsets.labels`; NFD's subchart its own
//! `node-feature-discovery-<version>`).

use crate::support::report as common;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use kube::api::DynamicObject;
use rke2gpu::check_runtime::api;
use rke2gpu::facts::ClusterView;
use rke2gpu::operator::{OperatorFacts, chart_label_version_of};
use rke2gpu::snapshot::{OperatorObjects, Snapshot, Unreadable};
use serde_json::json;

const CHART: &str = "v25.10.1";

fn chart_labels() -> serde_json::Value {
    json!({
        "app.kubernetes.io/name": "gpu-operator",
        "helm.sh/chart": format!("gpu-operator-{CHART}"),
        "app.kubernetes.io/instance": "gpu-operator",
        "app.kubernetes.io/version": CHART,
        "app.kubernetes.io/managed-by": "Helm",
        "app.kubernetes.io/component": "gpu-operator"
    })
}

fn operator_deployment(labelled: bool) -> Deployment {
    let mut labels = chart_labels();
    if !labelled {
        labels = json!({"app.kubernetes.io/component": "gpu-operator", "app": "gpu-operator"});
    }
    serde_json::from_value(json!({
        "metadata": {"name": "gpu-operator", "namespace": "gpu-operator", "labels": labels},
        "spec": {"selector": {}, "template": {}}
    }))
    .unwrap()
}

fn nfd_deployment() -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "gpu-operator-node-feature-discovery-master", "namespace": "gpu-operator",
            "labels": {"helm.sh/chart": "node-feature-discovery-0.18.2", "app.kubernetes.io/instance": "gpu-operator"}},
        "spec": {"selector": {}, "template": {}}
    }))
    .unwrap()
}

fn cluster_policy(labelled: bool) -> DynamicObject {
    let labels = if labelled { chart_labels() } else { json!({}) };
    serde_json::from_value(json!({
        "apiVersion": "nvidia.com/v1", "kind": "ClusterPolicy",
        "metadata": {"name": "cluster-policy", "labels": labels},
        "spec": {"daemonsets": {"labels": {"helm.sh/chart": format!("gpu-operator-{CHART}"), "app.kubernetes.io/managed-by": "gpu-operator"}}},
        "status": {"state": "ready", "namespace": "gpu-operator"}
    }))
    .unwrap()
}

fn operand_daemonset(labelled: bool) -> DaemonSet {
    let labels = if labelled {
        json!({"helm.sh/chart": format!("gpu-operator-{CHART}"), "app.kubernetes.io/managed-by": "gpu-operator", "app": "nvidia-device-plugin-daemonset"})
    } else {
        json!({"app": "nvidia-device-plugin-daemonset"})
    };
    serde_json::from_value(json!({
        "metadata": {"name": "nvidia-device-plugin-daemonset", "namespace": "gpu-operator", "labels": labels},
        "spec": {"selector": {}, "template": {"metadata": {"labels": {"app": "nvidia-device-plugin-daemonset"}}}}
    }))
    .unwrap()
}

/// The operator with the labels present where `deploy`, `cp`, `ds` say, and
/// (when `secrets`) its Helm release Secret (chart v24.9.0, revision 3).
fn snapshot(deploy: bool, cp: bool, ds: bool, secrets: bool) -> Snapshot {
    Snapshot {
        nodes: common::nodes(),
        cluster_policies: Some(vec![cluster_policy(cp)]),
        crd_present: Some(true),
        operator: Some(OperatorObjects {
            namespace: "gpu-operator".into(),
            found_by: "operator Deployment labels".into(),
            deployments: vec![nfd_deployment(), operator_deployment(deploy)],
            daemonsets: vec![operand_daemonset(ds)],
            helm_secrets: if secrets {
                vec![common::helm_secret()]
            } else {
                vec![]
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn facts(snap: &Snapshot) -> OperatorFacts {
    OperatorFacts::from_snapshot(snap).unwrap()
}

#[test]
fn labels_come_first_in_order_then_the_release() {
    let cases = [
        (
            (true, true, true),
            CHART,
            "label helm.sh/chart on deployment gpu-operator",
        ),
        (
            (false, true, true),
            CHART,
            "label helm.sh/chart on clusterpolicy cluster-policy",
        ),
        (
            (false, false, true),
            CHART,
            "label helm.sh/chart on daemonset nvidia-device-plugin-daemonset",
        ),
        (
            (false, false, false),
            "v24.9.0",
            "Helm release gpu-operator (revision 3)",
        ),
    ];
    for ((d, c, s), version, source) in cases {
        // The Secret is there in every case: a label still wins.
        let f = facts(&snapshot(d, c, s, true));
        assert_eq!(f.chart_version_raw.as_deref(), Some(version), "{source}");
        assert_eq!(f.chart_version_source.as_deref(), Some(source));
    }
}

#[test]
fn the_snapshot_needs_the_secret_only_without_a_label() {
    let with = snapshot(true, true, true, false);
    let ops = with.operator.as_ref().unwrap();
    let cps = with.cluster_policies.as_deref().unwrap();
    assert!(chart_label_version_of(ops, cps).is_some());
    // NFD's subchart label is not the GPU Operator's version.
    let without = snapshot(false, false, false, false);
    let ops = without.operator.as_ref().unwrap();
    let cps = without.cluster_policies.as_deref().unwrap();
    assert_eq!(chart_label_version_of(ops, cps), None);
}

#[test]
fn app_version_and_release_from_the_labels_without_a_secret() {
    let f = facts(&snapshot(true, true, true, false));
    assert_eq!(f.app_version.as_deref(), Some(CHART));
    assert_eq!(f.release.as_deref(), Some("gpu-operator"));
}

#[test]
fn check_runtime_names_the_source_of_the_version() {
    let snap = snapshot(true, true, true, false);
    let findings = api::run(&ClusterView::from_snapshot(&snap));
    let evidence = format!("chart {CHART} from label helm.sh/chart on deployment gpu-operator");
    for id in ["operator-installed", "operator-chart-version"] {
        let f = findings
            .iter()
            .find(|f| f.id == id)
            .unwrap_or_else(|| panic!("no {id}: {findings:#?}"));
        assert!(f.evidence.contains(&evidence), "{id}: {f:#?}");
    }
    let r = rke2gpu::report::GpuReport::build(&snap, None, None, common::now());
    let text = rke2gpu::report::table::operator_text(&r, false, false);
    assert!(
        text.contains("v25.10.1 (label helm.sh/chart on deployment gpu-operator)"),
        "{text}"
    );
}

#[test]
fn no_label_and_secrets_refused_names_the_helm_release_role() {
    let mut snap = snapshot(false, false, false, false);
    snap.unreadable.push(Unreadable::new(
        "secrets (Helm release) in namespace gpu-operator",
        &common::forbidden("secrets", "", Some("gpu-operator")),
    ));
    let findings = api::run(&ClusterView::from_snapshot(&snap));
    let unreadable = findings.iter().find(|f| f.id == "rbac-unreadable").unwrap();
    assert_eq!(
        unreadable.message,
        "could not read secrets (Helm release) in namespace gpu-operator: cannot list secrets in namespace gpu-operator"
    );
    let version = findings
        .iter()
        .find(|f| f.id == "operator-chart-version")
        .unwrap();
    let fix = version.fix.as_deref().unwrap();
    assert!(
        fix.contains("kubectl -n gpu-operator create rolebinding kubectl-gpu-helm-release --role=kubectl-gpu-helm-release"),
        "{fix}"
    );
}
