//! `kubectl gpu verify` on the cluster's real node (no GPU, no device plugin): the pod statuses,
//! events and logs are the real kubelet's and containerd's, and the diagnoses must be right on
//! those texts.
//!
//! * `nvidia.com/gpu` advertised and free: the container runs and its shell says nvidia-smi is
//!   not there (busybox ash: `sh: nvidia-smi: not found`, exit 127).
//! * advertised but taken by another pod: the kubelet rejects the pod itself
//!   (`OutOfnvidia.com/gpu`, "Pod was rejected: Node didn't have enough resource: ...").
//! * not advertised at all (no device plugin): a kubelet admits a pod requesting an extended
//!   resource the node does not know, without it (kubernetes pkg/kubelet/lifecycle/predicate.go,
//!   removeMissingExtendedResources), so the pod would run without a GPU.
//! * SIGKILL mid-run, then `cleanup`: nothing left, in the API and on the node.

use crate::real_node_support::*;
use cluster_harness::realnode::{GpuNodeGuard, REAL_NODE};
use cluster_harness::{Cluster, TestNamespace, serial};
use serde_json::Value;
use std::time::{Duration, Instant};

fn verify(c: &Cluster, node: &str) -> (Run, Value) {
    let r = gpu(
        c,
        &["verify", "--node", node, "--timeout", "60", "-o", "json"],
    );
    let v = r.json();
    let n = v["nodes"]
        .as_array()
        .and_then(|ns| ns.iter().find(|n| n["node"] == node).cloned())
        .unwrap_or_else(|| panic!("no node {node}:\n{}", r.show()));
    (r, n)
}

fn kinds(n: &Value) -> Vec<String> {
    n["diagnoses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn advertised_gpu_but_no_driver_injected_says_nvidia_smi_not_found() {
    let c = Cluster::shared();
    let _l = serial();
    let Some(n) = c.real_node(REAL_NODE) else {
        return;
    };
    let _gpu = GpuNodeGuard::new(c, &n.name, Some(1));
    let (r, v) = verify(c, &n.name);
    assert_eq!(v["result"], "fail", "{}", r.show());
    assert_eq!(v["phase"], "Failed", "{v:#}");
    // The real shell's text and exit code, from the real container log.
    assert_eq!(v["smi"]["exit_code"], 127, "{v:#}");
    for f in v["smi"]["failures"].as_array().unwrap() {
        assert_eq!(f["failure"]["line"], "sh: nvidia-smi: not found", "{v:#}");
    }
    assert_eq!(kinds(&v), ["nvidia_smi_not_found"], "{v:#}");
    let d = &v["diagnoses"][0];
    assert_eq!(d["evidence"], "sh: nvidia-smi: not found", "{d:#}");
    // verify set RuntimeClass nvidia (no operator, the RuntimeClass exists): the fix is about
    // that handler, not "set --runtime-class".
    assert_eq!(v["runtime_class"], "nvidia", "{v:#}");
    let fix = d["fix"].as_str().unwrap();
    assert!(
        fix.contains("RuntimeClass nvidia") && fix.contains("did not inject"),
        "{d:#}"
    );
    for ch in v["checks"].as_array().unwrap() {
        if let Some(f) = ch["fix"].as_str() {
            assert!(
                !f.starts_with("the pod ran under runc"),
                "a check contradicts the RuntimeClass the pod had: {ch:#}"
            );
        }
    }
    assert_no_pod_left(c, &n, OURS);
}

#[test]
fn gpu_taken_by_another_pod_is_the_kubelets_rejection() {
    let c = Cluster::shared();
    let _l = serial();
    let Some(n) = c.real_node(REAL_NODE) else {
        return;
    };
    let _gpu = GpuNodeGuard::new(c, &n.name, Some(1));
    let ns = TestNamespace::new(c, "real-verify-hog");
    c.apply(&sleeper("hog", ns.name(), &n.name, "").replace(
        "    command: [\"sleep\", \"3600\"]\n",
        "    command: [\"sleep\", \"3600\"]\n    resources: {limits: {nvidia.com/gpu: 1}}\n",
    ));
    c.wait_pod_phase(ns.name(), "hog", &["Running"], Duration::from_secs(60));
    let (r, v) = verify(c, &n.name);
    assert_eq!(v["result"], "fail", "{}", r.show());
    assert_eq!(kinds(&v), ["insufficient_gpu_resource"], "{v:#}");
    let d = &v["diagnoses"][0];
    // The kubelet's own admission text (pkg/kubelet/lifecycle/predicate.go), from the pod status.
    assert_eq!(d["source"], "pod status", "{d:#}");
    assert_eq!(
        d["evidence"],
        "OutOfnvidia.com/gpu: Pod was rejected: Node didn't have enough resource: nvidia.com/gpu, requested: 1, used: 1, capacity: 1",
        "{d:#}"
    );
    assert!(
        d["fix"]
            .as_str()
            .unwrap()
            .contains("free GPUs or request fewer"),
        "{d:#}"
    );
    assert_no_pod_left(c, &n, OURS);
}

#[test]
fn no_device_plugin_is_said_before_a_pod_runs_without_a_gpu() {
    // The node is labelled a GPU node but nothing advertises nvidia.com/gpu. A real kubelet would
    // admit the verify pod without the resource; the right diagnosis is the missing device
    // plugin, not the runtime.
    let c = Cluster::shared();
    let _l = serial();
    let Some(n) = c.real_node(REAL_NODE) else {
        return;
    };
    let _gpu = GpuNodeGuard::new(c, &n.name, None);
    let (r, v) = verify(c, &n.name);
    assert_eq!(v["result"], "fail", "{}", r.show());
    assert_eq!(kinds(&v), ["insufficient_gpu_resource"], "{v:#}");
    let d = &v["diagnoses"][0];
    assert!(
        d["summary"].as_str().unwrap().contains("nvidia.com/gpu"),
        "{d:#}"
    );
    assert!(
        d["fix"].as_str().unwrap().contains("device-plugin"),
        "{d:#}"
    );
    assert_no_pod_left(c, &n, OURS);
}

#[test]
fn sigkill_mid_run_then_cleanup_leaves_nothing_on_the_node() {
    let c = Cluster::shared();
    let _l = serial();
    let Some(n) = c.real_node(REAL_NODE) else {
        return;
    };
    let _gpu = GpuNodeGuard::new(c, &n.name, Some(1));
    // A long-running verify workload: the image's default command (sh) reading nothing would
    // end at once, so wait for the pod to run and kill the tool while its container starts.
    let mut child = c
        .kubectl()
        .args(["gpu", "verify", "--node", &n.name, "--timeout", "120"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let pod = loop {
        let p = our_pods(c, OURS);
        if let Some(p) = p.into_iter().next() {
            break p;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no verify pod appeared"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // The node runs it (so the node-side check below can see one).
    c.wait_until(
        Duration::from_secs(60),
        "the verify pod's sandbox on the node",
        || ours_on_node(c, &n).iter().any(|l| l.starts_with("ready ")),
    );
    child.kill().unwrap();
    let st = child.wait().unwrap();
    assert_eq!(st.code(), None, "killed by a signal: {st}");
    assert!(
        !our_pods(c, OURS).is_empty(),
        "the killed run left its pod ({pod}) behind, as expected"
    );
    let r = gpu(c, &["cleanup", "-o", "json"]);
    assert_eq!(r.code, Some(0), "{}", r.show());
    let deleted = r.json()["deleted"].to_string();
    let name = pod.split('/').nth(1).unwrap();
    assert!(deleted.contains(name), "{}", r.show());
    assert_no_pod_left(c, &n, OURS);
    // The namespace verify created is gone too.
    c.wait_until(Duration::from_secs(60), "verify namespace deleted", || {
        c.run_ok(
            c.kubectl()
                .args(["get", "namespaces", "-l", OURS, "-o", "name"]),
        )
        .trim()
        .is_empty()
    });
}
