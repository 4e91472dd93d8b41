//! `kubectl gpu check-runtime` end to end: the real binary through kubectl's
//! plugin lookup, against the local test cluster (real kube-apiserver, KWOK
//! GPU nodes, the stand-in gpu-operator chart installed with real Helm, and
//! per-node host trees behind `kubectl exec`).
//!
//! The tests share one cluster and one operator release, so they take a
//! process-wide lock and put back what they change.

use cluster_harness::Cluster;
use serde_json::Value;
use std::process::Output;
use std::sync::{MutexGuard, OnceLock};
use std::time::Duration;

const RELEASE: &str = "gpu-operator";
const OP_NS: &str = "gpu-operator";
const CHART: &str = "tests/charts/dist/gpu-operator-v26.7.0.tgz";
const SOCKET_VALUES: &[&str] = &[
    "--set",
    "toolkit.env[0].name=CONTAINERD_SOCKET",
    "--set",
    "toolkit.env[0].value=/run/k3s/containerd/containerd.sock",
];

fn lock() -> MutexGuard<'static, ()> {
    cluster_harness::serial()
}

/// Installs (or upgrades back to) the healthy operator release once per process.
pub(crate) fn healthy_operator(c: &Cluster) {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| install_operator(c, &[]));
}

pub(crate) fn install_operator(c: &Cluster, extra: &[&str]) {
    let chart = c.repo_root().join(CHART);
    let mut cmd = c.helm();
    cmd.args(["upgrade", "--install", RELEASE])
        .arg(&chart)
        .args([
            "-n",
            OP_NS,
            "--create-namespace",
            "--wait",
            "--timeout",
            "120s",
        ])
        .args(SOCKET_VALUES)
        .args(extra);
    c.run_ok(&mut cmd);
    // No real operator runs: report the ClusterPolicy ready the way it would.
    c.run_ok(c.kubectl().args([
        "patch",
        "clusterpolicy",
        "cluster-policy",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"state":"ready","namespace":"gpu-operator"}}"#,
    ]));
    // Operand pods on every GPU node are ready.
    c.wait_until(Duration::from_secs(90), "operand pods ready", || {
        let out = c
            .kubectl()
            .args(["-n", OP_NS, "get", "pods", "-o", "json"])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let pods = v["items"].as_array().cloned().unwrap_or_default();
        !pods.is_empty()
            && pods.iter().all(|p| {
                p["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
    });
}

pub(crate) fn gpu(c: &Cluster, args: &[&str]) -> Output {
    c.kubectl()
        .arg("gpu")
        .args(args)
        .output()
        .expect("run kubectl gpu")
}

pub(crate) fn json_findings(out: &Output) -> Vec<Value> {
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    v["findings"].as_array().cloned().unwrap_or_default()
}

pub(crate) fn find<'a>(
    findings: &'a [Value],
    id: &str,
    node: Option<&str>,
    status: &str,
) -> Option<&'a Value> {
    findings
        .iter()
        .find(|f| f["id"] == id && f["status"] == status && node.is_none_or(|n| f["node"] == n))
}

pub(crate) fn our_pods(c: &Cluster) -> String {
    let out = c
        .kubectl()
        .args([
            "get",
            "pods",
            "-A",
            "-l",
            "app.kubernetes.io/managed-by=kubectl-gpu",
            "-o",
            "name",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn healthy_cluster_passes_and_deep_leaves_no_pod() {
    let c = Cluster::shared();
    let _g = lock();
    healthy_operator(c);
    let out = gpu(c, &["check-runtime", "-o", "json"]);
    let findings = json_findings(&out);
    let fails: Vec<_> = findings.iter().filter(|f| f["status"] == "fail").collect();
    assert!(fails.is_empty(), "unexpected failures: {fails:#?}");
    assert_eq!(out.status.code(), Some(0));
    // The three GPU nodes and their matrix rows.
    for node in ["gpu-h200-0", "gpu-a100-legacy-0", "gpu-k3s-0"] {
        assert!(
            find(&findings, "node-flavour", Some(node), "ok").is_some(),
            "{node}: {findings:#?}"
        );
        assert!(
            find(&findings, "gpu-allocatable", Some(node), "ok").is_some(),
            "{node}"
        );
    }
    let h200 = find(&findings, "node-flavour", Some("gpu-h200-0"), "ok").unwrap();
    assert!(
        h200["message"]
            .as_str()
            .unwrap()
            .contains("drop-ins in config-v3.toml.d"),
        "{h200}"
    );
    // Chart 26.7.0 defaults to CDI, which containerd 1.7 cannot use without enable_cdi.
    assert!(
        find(&findings, "cdi-mode", None, "warn")
            .is_some_and(|f| f["message"].as_str().unwrap().contains("gpu-a100-legacy-0"))
    );

    // --deep reads every GPU node's files through a node-agent pod and removes it.
    let out = gpu(c, &["check-runtime", "--deep", "-o", "json"]);
    let findings = json_findings(&out);
    assert!(our_pods(c).is_empty(), "pods left behind: {}", our_pods(c));
    for node in ["gpu-h200-0", "gpu-a100-legacy-0"] {
        let rt = find(&findings, "nvidia-runtime", Some(node), "ok")
            .unwrap_or_else(|| panic!("{node}: no ok nvidia-runtime finding: {findings:#?}"));
        assert!(
            rt["message"]
                .as_str()
                .unwrap()
                .contains("/usr/local/nvidia/toolkit/nvidia-container-runtime")
        );
        assert!(
            find(&findings, "driver", Some(node), "ok").is_some(),
            "{node}: {findings:#?}"
        );
    }
    let fails: Vec<_> = findings.iter().filter(|f| f["status"] == "fail").collect();
    assert!(
        fails.is_empty(),
        "--deep failures on the healthy cluster: {fails:#?}"
    );

    // The table groups by node and ends with the summary line.
    let out = gpu(c, &["check-runtime", "--no-color"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("NODE gpu-h200-0"), "{text}");
    assert!(
        text.lines().last().unwrap().starts_with("Summary: "),
        "{text}"
    );
}

#[test]
fn runtime_class_removed_is_a_failure_with_its_fix() {
    let c = Cluster::shared();
    let _g = lock();
    healthy_operator(c);
    let saved = c.run_ok(
        c.kubectl()
            .args(["get", "runtimeclass", "nvidia", "-o", "json"]),
    );
    c.run_ok(c.kubectl().args(["delete", "runtimeclass", "nvidia"]));
    let out = gpu(c, &["check-runtime", "-o", "json"]);
    let restore = c.run_with_stdin(c.kubectl().args(["create", "-f", "-"]), &strip_meta(&saved));
    let findings = json_findings(&out);
    assert_eq!(out.status.code(), Some(1), "{findings:#?}");
    let f =
        find(&findings, "runtimeclass-nvidia", None, "fail").expect("runtimeclass-nvidia fails");
    assert!(f["fix"].as_str().unwrap().contains("handler: nvidia"));
    assert!(restore.contains("nvidia"));
}

fn strip_meta(json: &str) -> String {
    let mut v: Value = serde_json::from_str(json).unwrap();
    let meta = v["metadata"].as_object_mut().unwrap();
    for k in [
        "resourceVersion",
        "uid",
        "creationTimestamp",
        "managedFields",
    ] {
        meta.remove(k);
    }
    v.to_string()
}

#[test]
fn legacy_tmpl_toolkit_env_is_a_failure() {
    let c = Cluster::shared();
    let _g = lock();
    healthy_operator(c);
    install_operator(
        c,
        &[
            "--set",
            "toolkit.env[1].name=CONTAINERD_CONFIG",
            "--set",
            "toolkit.env[1].value=/var/lib/rancher/rke2/agent/etc/containerd/config.toml.tmpl",
        ],
    );
    let out = gpu(c, &["check-runtime", "-o", "json"]);
    install_operator(c, &[]);
    let findings = json_findings(&out);
    assert_eq!(out.status.code(), Some(1));
    let f = find(&findings, "toolkit-env", None, "fail").expect("toolkit-env fails");
    assert!(f["message"].as_str().unwrap().contains("config.toml.tmpl"));
    assert!(f["fix"].as_str().unwrap().contains("CONTAINERD_SOCKET"));
}

#[test]
fn seeded_host_faults_are_found_with_deep() {
    let c = Cluster::shared();
    let _g = lock();
    healthy_operator(c);
    let node = "gpu-a100-legacy-0";
    let tmpl = "var/lib/rancher/rke2/agent/etc/containerd/config.toml.tmpl";
    let modules = "proc/modules";
    let old_modules = c.read_node_file(node, modules);
    // The 2021 recipe's static template, and nouveau loaded.
    c.write_node_file(node, tmpl, "version = 2\n[plugins]\n  [plugins.\"io.containerd.grpc.v1.cri\"]\n    sandbox_image = \"index.docker.io/rancher/pause:3.2\"\n");
    c.write_node_file(
        node,
        modules,
        format!("{old_modules}nouveau 2891776 0 - Live 0xffffffffc0a00000\n"),
    );
    let out = gpu(
        c,
        &["check-runtime", "--deep", "--node", node, "-o", "json"],
    );
    c.remove_node_file(node, tmpl);
    c.write_node_file(node, modules, &old_modules);
    let findings = json_findings(&out);
    assert_eq!(out.status.code(), Some(1));
    let st = find(&findings, "static-template", Some(node), "fail").expect("static template found");
    assert!(st["fix"].as_str().unwrap().contains("patch-containerd"));
    let nv = find(&findings, "nouveau", Some(node), "fail").expect("nouveau found");
    assert!(nv["fix"].as_str().unwrap().contains("blacklist nouveau"));
    assert!(our_pods(c).is_empty(), "pods left behind");
}

#[test]
fn leftover_toolkit_after_uninstall_is_reported() {
    let c = Cluster::shared();
    let _g = lock();
    healthy_operator(c);
    c.run_ok(c.helm().args(["uninstall", RELEASE, "-n", OP_NS, "--wait"]));
    let out = gpu(
        c,
        &[
            "check-runtime",
            "--deep",
            "--node",
            "gpu-h200-0",
            "-o",
            "json",
        ],
    );
    install_operator(c, &[]);
    let findings = json_findings(&out);
    let f = find(&findings, "leftover-toolkit", Some("gpu-h200-0"), "warn")
        .unwrap_or_else(|| panic!("{findings:#?}"));
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .contains("rm -rf /usr/local/nvidia")
    );
    assert!(
        find(&findings, "operator-installed", None, "fail").is_some()
            || find(&findings, "operator-installed", None, "warn").is_some()
    );
}

#[test]
fn bad_input_is_refused_with_exit_2_and_creates_nothing() {
    let c = Cluster::shared();
    let out = gpu(c, &["check-runtime", "--node", "no-such-node"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("node \"no-such-node\" does not exist"));

    let out = gpu(
        c,
        &["check-runtime", "--kubeconfig", "/nonexistent/kubeconfig"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/kubeconfig"));

    let out = c
        .cmd("kubectl-gpu")
        .args(["check-runtime"])
        .env("KUBECONFIG", "/nope/a:/nope/b")
        .env("HOME", "/nonexistent")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nope/a") && err.contains("/nope/b"), "{err}");

    // A server that does not answer.
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(&kc, "apiVersion: v1\nkind: Config\nclusters:\n- name: x\n  cluster:\n    server: https://127.0.0.1:1\n    insecure-skip-tls-verify: true\ncontexts:\n- name: x\n  context:\n    cluster: x\n    user: x\ncurrent-context: x\nusers:\n- name: x\n  user:\n    token: t\n").unwrap();
    let out = c
        .cmd("kubectl-gpu")
        .arg("check-runtime")
        .arg("--kubeconfig")
        .arg(&kc)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("127.0.0.1:1"));

    // --deep into a namespace whose PSA level rejects the agent: refused before any pod exists.
    let ns = cluster_harness::TestNamespace::with_labels(
        c,
        "psa",
        &[("pod-security.kubernetes.io/enforce", "restricted")],
    );
    let out = gpu(c, &["check-runtime", "--deep", "-n", ns.name()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("enforces PodSecurity"));
    assert!(our_pods(c).is_empty());
}
