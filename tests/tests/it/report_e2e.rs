//! `kubectl gpu report` against the local test cluster (tests/e2e/cluster):
//! totals match the GPU pods created, a cordoned node is a row, the bundle
//! opens with `tar -tzf`, holds what its manifest lists and no Secret data.

use std::process::Command;
use std::time::Duration;

use cluster_harness::{Cluster, TestNamespace};

fn gpu_pod(name: &str, node: &str, gpus: u32, init_gpus: u32) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  nodeName: {node}
  tolerations:
  - operator: Exists
  initContainers:
  - name: warm
    image: busybox
    command: ["true"]
    resources:
      limits:
        nvidia.com/gpu: {init_gpus}
  containers:
  - name: main
    image: busybox
    command: ["sleep", "infinity"]
    resources:
      limits:
        nvidia.com/gpu: {gpus}
"#
    )
}

/// The tests create GPU pods on the same nodes and compare totals: one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    cluster_harness::serial()
}

fn report_json(c: &Cluster, args: &[&str]) -> serde_json::Value {
    let out = c.run_ok(
        c.cmd("kubectl-gpu")
            .args(["report"])
            .args(args)
            .args(["-o", "json"]),
    );
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("report -o json: {e}\n{out}"))
}

fn node<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["nodes"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in report: {v}"))
}

#[test]
fn totals_match_the_pods_created() {
    let c = Cluster::shared();
    let _serial = serial();
    let before = report_json(c, &[]);
    let h200_before = node(&before, "gpu-h200-0")["gpu"]["allocated"]
        .as_i64()
        .unwrap();
    let total_before = before["nodes"]["totals"]["gpu"]["allocated"]
        .as_i64()
        .unwrap();

    let ns = TestNamespace::new(c, "report");
    // 2 + max(init 3, 1) = 5 on the H200, 1 on the A100.
    c.apply(
        &format!(
            "{}---\n{}",
            gpu_pod("a", "gpu-h200-0", 2, 0),
            gpu_pod("b", "gpu-h200-0", 1, 3)
        )
        .replace(
            "metadata:\n",
            &format!("metadata:\n  namespace: {}\n", ns.name()),
        ),
    );
    c.apply(&gpu_pod("c", "gpu-a100-legacy-0", 1, 0).replace(
        "metadata:\n",
        &format!("metadata:\n  namespace: {}\n", ns.name()),
    ));
    for p in ["a", "b", "c"] {
        c.wait_pod_phase(ns.name(), p, &["Running"], Duration::from_secs(60));
    }
    let after = report_json(c, &[]);
    assert_eq!(
        node(&after, "gpu-h200-0")["gpu"]["allocated"]
            .as_i64()
            .unwrap(),
        h200_before + 5
    );
    assert_eq!(
        after["nodes"]["totals"]["gpu"]["allocated"]
            .as_i64()
            .unwrap(),
        total_before + 6
    );
    let t = &after["nodes"]["totals"]["gpu"];
    assert_eq!(
        t["free"].as_i64().unwrap(),
        t["allocatable"].as_i64().unwrap() - t["allocated"].as_i64().unwrap()
    );

    // The same number kubectl describe shows.
    let describe = c.run_ok(c.kubectl().args(["describe", "node", "gpu-h200-0"]));
    let line = describe
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with("nvidia.com/gpu"))
        .unwrap();
    let described: i64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_eq!(
        node(&after, "gpu-h200-0")["gpu"]["allocated"]
            .as_i64()
            .unwrap(),
        described
    );

    // Pods view, namespaced.
    let pods = report_json(c, &["pods", "-n", ns.name()]);
    let list = pods["pods"]["pods"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    let b = list.iter().find(|p| p["name"] == "b").unwrap();
    assert_eq!(b["resources"]["nvidia.com/gpu"], 3);
}

#[test]
fn cordoned_node_is_shown() {
    let c = Cluster::shared();
    let _serial = serial();
    c.run_ok(c.kubectl().args(["cordon", "gpu-k3s-0"]));
    let v = report_json(c, &[]);
    let table = c.run_ok(c.cmd("kubectl-gpu").args(["report", "--no-color"]));
    c.run_ok(c.kubectl().args(["uncordon", "gpu-k3s-0"]));
    assert_eq!(node(&v, "gpu-k3s-0")["cordoned"], true);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("gpu-k3s-0") && l.contains("SchedulingDisabled")),
        "{table}"
    );
}

#[test]
fn bundle_opens_and_holds_no_secret_data() {
    let c = Cluster::shared();
    let _serial = serial();
    let ns = TestNamespace::new(c, "report-bundle");
    let marker = "e2e-S3CRET-do-not-leak";
    c.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: leak\n  namespace: {}\n  labels:\n    owner: helm\nstringData:\n  password: {marker}\n",
        ns.name()
    ));
    c.apply(&gpu_pod("p", "gpu-h200-0", 1, 0).replace(
        "metadata:\n",
        &format!("metadata:\n  namespace: {}\n", ns.name()),
    ));
    c.wait_pod_phase(ns.name(), "p", &["Running"], Duration::from_secs(60));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bundle.tar.gz");
    let out = c.run_ok(c.cmd("kubectl-gpu").args(["report", "--bundle"]).arg(&file));
    assert!(out.contains("entries"), "{out}");

    let list = Command::new("tar").arg("-tzf").arg(&file).output().unwrap();
    assert!(list.status.success());
    let listed: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(listed[0], "manifest.json");
    let manifest = Command::new("tar")
        .arg("-xzOf")
        .arg(&file)
        .arg("manifest.json")
        .output()
        .unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&manifest.stdout).unwrap();
    let in_manifest: Vec<String> = manifest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed[1..].to_vec(), in_manifest);
    assert!(
        in_manifest
            .iter()
            .any(|p| p == &format!("pods/{}/p.yaml", ns.name())),
        "{in_manifest:?}"
    );
    assert!(in_manifest.iter().any(|p| p == "check-runtime.json"));

    let all = Command::new("tar")
        .arg("-xzOf")
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&all.stdout);
    assert!(!text.contains(marker));
    assert!(!text.contains("kind: Secret"));
}
