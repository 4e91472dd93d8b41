//! Allocation arithmetic of `kubectl gpu report` on realistic pod and node
//! objects: effective requests (init containers, sidecars, overhead,
//! requests vs limits), terminal and unbound pods, MIG and shared GPUs.

use crate::support::report as common;

use k8s_openapi::api::core::v1::Pod;
use rke2gpu::report::pods::{PodLite, effective_request};
use rke2gpu::report::{GpuReport, quantity};
use serde_json::json;

fn lite(spec: serde_json::Value, phase: &str, node: Option<&str>) -> PodLite {
    serde_json::from_value(common::pod_json("ns", "p", node, phase, 10, spec)).unwrap()
}

fn gpu_of(p: &PodLite, r: &str) -> i64 {
    quantity::units(effective_request(&p.spec, r))
}

#[test]
fn init_containers_take_the_max() {
    // max(max(init)=4, sum(containers)=1+2) = 4
    let p = lite(
        json!({"initContainers": [
                {"name": "i1", "resources": {"limits": {"nvidia.com/gpu": "4"}}},
                {"name": "i2", "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
               "containers": [
                {"name": "a", "resources": {"limits": {"nvidia.com/gpu": "1"}}},
                {"name": "b", "resources": {"limits": {"nvidia.com/gpu": "2"}}}]}),
        "Running",
        Some("n"),
    );
    assert_eq!(gpu_of(&p, "nvidia.com/gpu"), 4);
    // And the sum wins when larger.
    let p = lite(
        json!({"initContainers": [{"name": "i", "resources": {"limits": {"nvidia.com/gpu": "2"}}}],
               "containers": [
                {"name": "a", "resources": {"limits": {"nvidia.com/gpu": "2"}}},
                {"name": "b", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}),
        "Running",
        Some("n"),
    );
    assert_eq!(gpu_of(&p, "nvidia.com/gpu"), 3);
}

#[test]
fn sidecars_add_to_everything_after_them() {
    // sidecar s=1 then init i=2: init phase peak = 1 + 2 = 3; app = 1 (c) + 1 (s) = 2 → 3
    let p = lite(
        json!({"initContainers": [
                {"name": "s", "restartPolicy": "Always", "resources": {"limits": {"nvidia.com/gpu": "1"}}},
                {"name": "i", "resources": {"limits": {"nvidia.com/gpu": "2"}}}],
               "containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}),
        "Running",
        Some("n"),
    );
    assert_eq!(gpu_of(&p, "nvidia.com/gpu"), 3);
    // init before the sidecar does not stack with it: max(2, 1, 1+3) = 4
    let p = lite(
        json!({"initContainers": [
                {"name": "i", "resources": {"limits": {"nvidia.com/gpu": "2"}}},
                {"name": "s", "restartPolicy": "Always", "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
               "containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "3"}}}]}),
        "Running",
        Some("n"),
    );
    assert_eq!(gpu_of(&p, "nvidia.com/gpu"), 4);
}

#[test]
fn overhead_is_added() {
    let p = lite(
        json!({"overhead": {"nvidia.com/gpu.shared": "1", "cpu": "250m"},
               "containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu.shared": "2"}}}]}),
        "Running",
        Some("n"),
    );
    assert_eq!(gpu_of(&p, "nvidia.com/gpu.shared"), 3);
    assert_eq!(effective_request(&p.spec, "cpu"), 250);
}

#[test]
fn requests_and_limits() {
    // A limit alone implies the request.
    let p = lite(
        json!({"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "2"}}}]}),
        "Running",
        Some("n"),
    );
    assert_eq!(gpu_of(&p, "nvidia.com/gpu"), 2);
    // Requests win when both are set (the API server demands they are equal for
    // extended resources; cpu may differ).
    let p = lite(
        json!({"containers": [{"name": "c", "resources": {
            "requests": {"nvidia.com/gpu": "1", "cpu": "500m"},
            "limits": {"nvidia.com/gpu": "1", "cpu": "2"}}}]}),
        "Running",
        Some("n"),
    );
    assert_eq!(gpu_of(&p, "nvidia.com/gpu"), 1);
    assert_eq!(effective_request(&p.spec, "cpu"), 500);
    // Quantities in other spellings.
    let p = lite(
        json!({"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "2000m"}}},
                              {"name": "d", "resources": {"limits": {"nvidia.com/gpu": "1e0"}}}]}),
        "Running",
        Some("n"),
    );
    assert_eq!(gpu_of(&p, "nvidia.com/gpu"), 3);
    // Only GPU resources are kept.
    assert_eq!(p.gpu_requests().len(), 1);
}

#[test]
fn terminal_and_unbound_pods_hold_nothing() {
    let spec =
        json!({"containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]});
    assert!(lite(spec.clone(), "Running", Some("n")).holds_resources());
    assert!(lite(spec.clone(), "Pending", Some("n")).holds_resources());
    assert!(!lite(spec.clone(), "Pending", None).holds_resources());
    assert!(!lite(spec.clone(), "Succeeded", Some("n")).holds_resources());
    assert!(!lite(spec.clone(), "Failed", Some("n")).holds_resources());
    assert!(lite(spec, "Unknown", Some("n")).holds_resources());
}

#[test]
fn slim_pod_reads_a_full_pod() {
    let v = common::pod_values()[1].clone();
    let full: Pod = serde_json::from_value(v.clone()).unwrap();
    let from_full = PodLite::from_pod(&full).unwrap();
    let from_json: PodLite = serde_json::from_value(v).unwrap();
    assert_eq!(from_full, from_json);
    assert_eq!(from_json.gpu_requests().get("nvidia.com/gpu"), Some(&3));
    // Managed fields and labels are not kept.
    assert!(from_json.metadata.managed_fields.is_none());
    assert!(from_json.metadata.labels.is_none());
}

/// The fixture cluster's numbers, checked by hand (see support::report).
#[test]
fn node_totals_of_the_fixture_cluster() {
    let snap = common::snapshot();
    let pods = common::pods_read();
    let r = GpuReport::build(&snap, Some(&pods), None, common::now());
    let n = |name: &str| r.nodes.nodes.iter().find(|n| n.name == name).unwrap();

    // worker-0 has no GPU: not a row.
    assert_eq!(r.nodes.nodes.len(), 5);
    assert_eq!(r.nodes.non_gpu_nodes, 1);

    // H200: train-a 2 + train-init max(3, 1+1) + notebook 1 (Pending, bound) = 6; done/crashed excluded.
    let h = n("gpu-h200-0");
    assert_eq!(
        (
            h.gpu.capacity,
            h.gpu.allocatable,
            h.gpu.allocated,
            h.gpu.free
        ),
        (Some(8), Some(8), 6, Some(2))
    );
    assert_eq!(h.gpu_pods, 3);

    // Cordoned A100, 3 of 4 allocatable, legacy-job 2.
    let a = n("gpu-a100-legacy-0");
    assert!(a.cordoned);
    assert_eq!(
        (
            a.gpu.capacity,
            a.gpu.allocatable,
            a.gpu.allocated,
            a.gpu.free
        ),
        (Some(4), Some(3), 2, Some(1))
    );
    assert!(
        a.problems
            .iter()
            .any(|p| p.contains("allocatable 3 < capacity 4"))
    );
    assert!(
        a.problems
            .iter()
            .any(|p| p.contains("container-toolkit CrashLoopBackOff"))
    );

    // MIG: mig-small: init setup 2, sidecar proxy 1, serve 2 → max(2, 1, 2+1) = 3.
    let m = n("gpu-mig-0");
    assert_eq!(m.resources["nvidia.com/mig-1g.10gb"].allocated, 3);
    assert_eq!(m.resources["nvidia.com/mig-1g.10gb"].free, Some(4));
    assert_eq!(m.resources["nvidia.com/mig-3g.40gb"].allocated, 1);
    assert_eq!(m.gpu.allocatable, Some(0));

    // Shared: 2 + 1 of 8 replicas; no nvidia.com/gpu at all.
    let s = n("gpu-shared-0");
    assert_eq!(s.resources["nvidia.com/gpu.shared"].allocated, 3);
    assert_eq!(s.resources["nvidia.com/gpu.shared"].free, Some(5));
    assert_eq!(s.gpu.capacity, None);

    // NotReady node without advertised GPUs is a row, with its problems.
    let d = n("gpu-down-0");
    assert!(!d.ready);
    assert!(d.problems.iter().any(|p| p.contains("NotReady")));
    assert!(
        d.problems
            .iter()
            .any(|p| p.contains("no GPU resource advertised"))
    );

    // Totals of nvidia.com/gpu: 8+4+0 capacity, 8+3+0 allocatable, 6+2 allocated, 2+1 free;
    // schedulable excludes the cordoned A100.
    let t = &r.nodes.totals;
    assert_eq!(
        (
            t.gpu.capacity,
            t.gpu.allocatable,
            t.gpu.allocated,
            t.gpu.free
        ),
        (Some(12), Some(11), 8, Some(3))
    );
    assert_eq!(t.free_schedulable, 2);
    assert_eq!((t.nodes, t.ready, t.cordoned), (5, 4, 1));
    assert_eq!(t.resources["nvidia.com/gpu.shared"].allocated, 3);

    // Pods view: every non-terminal GPU pod, unbound ones included (not counted).
    assert_eq!(r.pods.pods.len(), 9);
    let too_big = r.pods.pods.iter().find(|p| p.name == "too-big").unwrap();
    assert!(!too_big.counted);
    assert_eq!(r.pods.pods.iter().filter(|p| p.counted).count(), 8);
    assert!(!r.healthy);
}

#[test]
fn namespace_scope_and_missing_pods() {
    let snap = common::snapshot();
    let pods = common::pods_read();
    let r = GpuReport::build(&snap, Some(&pods), Some("inference"), common::now());
    assert_eq!(r.pods.pods.len(), 4);
    assert_eq!(r.pods.other_namespaces, 5);
    // Allocation is still cluster-wide.
    assert_eq!(r.nodes.totals.gpu.allocated, 8);

    let r = GpuReport::build(&snap, None, None, common::now());
    assert!(!r.allocation_known);
    assert_eq!(r.nodes.totals.gpu.allocated, 0);
}

#[test]
fn no_operator_no_crd_no_gpu_labels() {
    let mut snap = common::snapshot();
    snap.operator = None;
    snap.cluster_policies = None;
    snap.crd_present = Some(false);
    snap.runtime_classes = None;
    snap.unreadable = common::unreadable();
    // A node with capacity but no GPU labels at all still counts as a GPU node.
    for n in &mut snap.nodes {
        n.metadata.labels = None;
    }
    let r = GpuReport::build(&snap, Some(&common::pods_read()), None, common::now());
    assert_eq!(
        r.nodes.nodes.len(),
        4,
        "gpu-down-0 advertises nothing and has no labels now"
    );
    assert!(r.nodes.nodes.iter().all(|n| n.operator.state == "absent"));
    assert!(r.nodes.nodes.iter().all(|n| n.runtime.mode == "unknown"));
    assert!(!r.operator.installed);
    assert_eq!(r.unreadable.len(), 1);
}
