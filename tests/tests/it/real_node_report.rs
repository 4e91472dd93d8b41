//! `kubectl gpu report` with the cluster's real nodes: the real node is counted with what its
//! kubelet reports, and `--bundle --deep` collects its real files (through a real node-agent pod).

use crate::real_node_support::*;
use cluster_harness::realnode::{CONTAINERD_DIR, GpuNodeGuard, REAL_NODE, RealNode};
use cluster_harness::{Cluster, serial};
use serde_json::Value;

fn exists_on(c: &Cluster, n: &RealNode, path: &str) -> bool {
    c.on_node(n, &format!("test -e {path}")).status.success()
}

#[test]
fn report_counts_the_real_node() {
    let c = Cluster::shared();
    let _l = serial();
    let Some(n) = c.real_node(REAL_NODE) else {
        return;
    };
    // Not a GPU node: counted among the nodes without GPUs.
    let before = gpu(c, &["report", "-o", "json"]).json();
    let names = |v: &Value| -> Vec<String> {
        v["nodes"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(!names(&before).contains(&n.name), "{before:#}");
    let non_gpu = before["nodes"]["non_gpu_nodes"].as_u64().unwrap();
    let totals = before["nodes"]["totals"].clone();
    let _gpu = GpuNodeGuard::new(c, &n.name, Some(2));
    let pod = "real-report-gpu";
    let ns = cluster_harness::TestNamespace::new(c, "real-report");
    c.apply(&sleeper(pod, ns.name(), &n.name, "").replace(
        "    command: [\"sleep\", \"3600\"]\n",
        "    command: [\"sleep\", \"3600\"]\n    resources: {limits: {nvidia.com/gpu: 1}}\n",
    ));
    c.wait_pod_phase(
        ns.name(),
        pod,
        &["Running"],
        std::time::Duration::from_secs(60),
    );
    let r = gpu(c, &["report", "-o", "json", "-A"]);
    let v = r.json();
    assert!(names(&v).contains(&n.name), "{}", r.show());
    let rn = v["nodes"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == n.name.as_str())
        .unwrap();
    // Counted: one GPU node more, one node without GPUs less, its 2 GPUs in the totals.
    assert_eq!(
        v["nodes"]["non_gpu_nodes"].as_u64(),
        Some(non_gpu - 1),
        "{}",
        r.show()
    );
    let t = &v["nodes"]["totals"];
    assert_eq!(
        t["nodes"].as_u64(),
        totals["nodes"].as_u64().map(|x| x + 1),
        "{t:#}"
    );
    assert_eq!(
        t["gpu"]["capacity"].as_u64(),
        totals["gpu"]["capacity"].as_u64().map(|x| x + 2),
        "{t:#}"
    );
    let info = &node_json(c, &n.name)["status"]["nodeInfo"];
    assert_eq!(rn["kubelet_version"], info["kubeletVersion"], "{rn:#}");
    assert_eq!(
        rn["container_runtime"], info["containerRuntimeVersion"],
        "{rn:#}"
    );
    assert_eq!(rn["distribution"], "rke2", "{rn:#}");
    assert_eq!(rn["gpu"]["capacity"], 2, "{rn:#}");
    assert_eq!(rn["gpu"]["allocated"], 1, "{rn:#}");
    assert_eq!(rn["gpu"]["free"], 1, "{rn:#}");
    assert_eq!(rn["gpu_pods"], 1, "{rn:#}");
    assert_eq!(rn["ready"], true, "{rn:#}");
    let t = gpu(c, &["report"]);
    assert!(
        t.stdout.lines().any(|l| l.starts_with(&n.name)),
        "{}",
        t.show()
    );
}

#[test]
fn the_probe_sees_what_the_node_holds() {
    // report --bundle --deep keeps the raw probe of check-runtime --deep: every path it lists as
    // missing is missing on the node, every one it found exists.
    let c = Cluster::shared();
    let _l = serial();
    let Some(n) = c.real_node(REAL_NODE) else {
        return;
    };
    let _gpu = GpuNodeGuard::new(c, &n.name, Some(1));
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("b.tar.gz");
    let r = gpu(
        c,
        &[
            "report",
            "--bundle",
            bundle.to_str().unwrap(),
            "--deep",
            "--timeout",
            "90",
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.show());
    let out = std::process::Command::new("tar")
        .args([
            "-xzf",
            bundle.to_str().unwrap(),
            "-C",
            dir.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let probe: Value = serde_json::from_slice(
        &std::fs::read(
            dir.path()
                .join(format!("node-files/{}/_probe.json", n.name)),
        )
        .expect("probe in the bundle"),
    )
    .unwrap();
    for p in probe["missing_files"].as_array().unwrap() {
        let p = p.as_str().unwrap();
        assert!(
            !exists_on(c, &n, p),
            "probe says {p} is missing, the node has it"
        );
    }
    for (p, e) in probe["exists"].as_object().unwrap() {
        assert_eq!(
            e.as_bool().unwrap(),
            exists_on(c, &n, p),
            "probe exists[{p}]"
        );
    }
    for (d, list) in probe["dirs"].as_object().unwrap() {
        let on_node = c.on_node(&n, &format!("ls -1 {d}"));
        match list.as_array() {
            None => assert!(
                !on_node.status.success(),
                "probe: {d} absent, the node has it"
            ),
            Some(names) => {
                let mut want: Vec<String> = String::from_utf8_lossy(&on_node.stdout)
                    .lines()
                    .map(str::to_string)
                    .collect();
                want.sort();
                let mut got: Vec<String> = names
                    .iter()
                    .map(|x| x.as_str().unwrap().to_string())
                    .collect();
                got.sort();
                assert_eq!(got, want, "probe dirs[{d}]");
            }
        }
    }
    // The files the bundle copied are the node's bytes.
    let path = format!("{CONTAINERD_DIR}/config.toml");
    assert_eq!(
        std::fs::read(dir.path().join(format!("node-files/{}{path}", n.name))).unwrap(),
        c.node_file(&n, &path).unwrap()
    );
    assert_no_pod_left(c, &n, AGENTS);
}
