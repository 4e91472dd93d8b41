//! `kubectl gpu check-runtime --deep` against the cluster's real nodes (tests/e2e/README.md,
//! "Real nodes"): a real node-agent pod on a real kubelet, real `kubectl exec` through the
//! kubelet and containerd's streaming server, the node's real files. The expectations are read
//! from the node itself (inside its namespaces), not from the tool.

use crate::real_node_support::*;
use cluster_harness::realnode::{
    CONTAINERD_DIR, GpuNodeGuard, REAL_NODE, REAL_NODE_LEGACY, RealNode,
};
use cluster_harness::{Cluster, serial};
use serde_json::Value;

fn findings(r: &Run, node: &str) -> Vec<Value> {
    r.json()["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings:\n{}", r.show()))
        .iter()
        .filter(|f| f["node"] == node)
        .cloned()
        .collect()
}

fn finding<'a>(fs: &'a [Value], id: &str, r: &Run) -> &'a Value {
    fs.iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no finding {id}:\n{}", r.show()))
}

fn exists_on(c: &Cluster, n: &RealNode, path: &str) -> bool {
    c.on_node(n, &format!("test -e {path}")).status.success()
}

fn check_node(c: &Cluster, n: &RealNode) {
    let _gpu = GpuNodeGuard::new(c, &n.name, Some(1));
    let r = gpu(
        c,
        &[
            "check-runtime",
            "--deep",
            "--node",
            &n.name,
            "--timeout",
            "90",
            "-o",
            "json",
        ],
    );
    assert!(r.code.is_some(), "{}", r.show());
    let fs = findings(&r, &n.name);

    // The generated config the node's containerd runs with, read on the node.
    let path = format!("{CONTAINERD_DIR}/config.toml");
    let text = String::from_utf8(c.node_file(n, &path).expect("config.toml on the node")).unwrap();
    let version = config_version(&text).expect("version line");
    let runtimes = config_runtimes(&text);
    assert!(runtimes.iter().any(|r| r == "runc"), "{text}");
    let g = finding(&fs, "generated-config", &r);
    assert_eq!(g["status"], "ok", "{g:#}");
    assert_eq!(
        g["message"],
        format!(
            "{path} is version {version} with runtimes [{}]",
            runtimes.join(", ")
        ),
        "{g:#}"
    );

    // The nvidia runtime RKE2 rendered (it found the toolkit binary) and that binary on the node.
    let bin =
        runtime_binary(&text, "nvidia").expect("RKE2 renders nvidia: the toolkit is installed");
    assert!(exists_on(c, n, &bin), "{bin} missing on {}", n.name);
    let nr = finding(&fs, "nvidia-runtime", &r);
    assert_eq!(nr["status"], "ok", "{nr:#}");
    assert_eq!(nr["message"], format!("runtime nvidia → {bin}"), "{nr:#}");

    // The stand-in operator of check_runtime_e2e (installed once per test
    // process, left in place) changes what the driver and toolkit rules
    // expect: state the precondition instead of relying on test order.
    let operator = c
        .kubectl()
        .args(["get", "clusterpolicies.nvidia.com", "-o", "name"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());

    // No NVIDIA driver on this machine: the finding says so because the file is absent.
    assert!(!exists_on(c, n, "/proc/driver/nvidia/version"));
    let d = finding(&fs, "driver", &r);
    if operator {
        // driver.enabled=true in the stand-in: the driver container would install it.
        assert_eq!(d["status"], "ok", "{d:#}");
    } else {
        assert_eq!(d["status"], "fail", "{d:#}");
        assert!(
            d["message"]
                .as_str()
                .unwrap()
                .contains("/proc/driver/nvidia/version missing"),
            "{d:#}"
        );
        // The toolkit dir exists and no operator is installed.
        assert!(exists_on(c, n, "/usr/local/nvidia/toolkit"));
        assert_eq!(finding(&fs, "leftover-toolkit", &r)["status"], "warn");
    }

    // Versions as the kubelet and containerd report them.
    let info = &node_json(c, &n.name)["status"]["nodeInfo"];
    let kubelet = info["kubeletVersion"].as_str().unwrap();
    let ctd = info["containerRuntimeVersion"].as_str().unwrap();
    assert!(kubelet.ends_with("+rke2r1"), "{info:#}");
    let ctd_ver = ctd
        .trim_start_matches("containerd://")
        .split('-')
        .next()
        .unwrap();
    let fl = finding(&fs, "node-flavour", &r);
    let msg = fl["message"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!(
            "RKE2 {kubelet} with containerd {ctd_ver}: config schema v{version}"
        )),
        "{fl:#}"
    );
    assert_eq!(
        finding(&fs, "gpu-allocatable", &r)["message"],
        "nvidia.com/gpu allocatable: 1"
    );

    // The node-agent pod is gone from the API and from the node.
    assert_no_pod_left(c, n, AGENTS);
}

#[test]
fn deep_check_reads_the_real_v3_node() {
    let c = Cluster::shared();
    let _l = serial();
    let Some(n) = c.real_node(REAL_NODE) else {
        return;
    };
    check_node(c, &n);
}

#[test]
fn deep_check_reads_the_real_containerd17_node() {
    let c = Cluster::shared();
    let _l = serial();
    let Some(n) = c.real_node(REAL_NODE_LEGACY) else {
        return;
    };
    check_node(c, &n);
}
