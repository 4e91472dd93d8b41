//! Smoke tests of the local test cluster itself (tests/e2e/cluster): real apiserver, kubectl,
//! Helm 3/4, kwok-simulated RKE2 GPU nodes, verify pods, node-agent exec sandbox, containerd.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cluster_harness::{Cluster, NODES, TestNamespace, VerifyResult, VerifyResultGuard};

fn verify_pod(name: &str, node: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels:
    app.kubernetes.io/name: gpu-verify
    app.kubernetes.io/component: verify
    app.kubernetes.io/managed-by: kubectl-gpu
spec:
  restartPolicy: Never
  nodeName: {node}
  tolerations:
  - key: nvidia.com/gpu
    operator: Exists
    effect: NoSchedule
  containers:
  - name: nvidia-smi
    image: nvcr.io/nvidia/cuda:13.0.1-base-ubuntu24.04
    command: ["sh", "-c", "echo the verify script"]
    resources:
      limits:
        nvidia.com/gpu: 1
"#
    )
}

fn node_agent_pod(name: &str, node: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels:
    app.kubernetes.io/name: node-agent
    app.kubernetes.io/component: node-agent
    app.kubernetes.io/managed-by: kubectl-gpu
spec:
  nodeName: {node}
  hostPID: true
  hostNetwork: true
  tolerations:
  - operator: Exists
  containers:
  - name: agent
    image: registry.suse.com/bci/bci-busybox:latest
    command: ["sleep", "infinity"]
    securityContext:
      privileged: true
    volumeMounts:
    - name: host
      mountPath: /host
  volumes:
  - name: host
    hostPath:
      path: /
"#
    )
}

fn h200_uuid(c: &Cluster) -> String {
    // The real capture's UUID (tests/fixtures/nvidia-smi/h200-580/nvidia-smi-L.txt).
    let l = fs::read_to_string(c.fixture("nvidia-smi/h200-580/nvidia-smi-L.txt")).unwrap();
    let start = l.find("GPU-").expect("UUID in nvidia-smi -L capture");
    l[start..].split(')').next().unwrap().to_string()
}

#[test]
fn nodes_are_ready_with_rke2_versions() {
    let c = Cluster::shared();
    let out = c.run_ok(c.kubectl().args(["get", "nodes", "-o", "wide"]));
    for n in NODES {
        let line = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(n))
            .unwrap_or_else(|| panic!("{n} missing:\n{out}"));
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[1], "Ready", "{n} not Ready:\n{out}");
    }
    assert!(
        out.contains("v1.33.10+rke2r1") && out.contains("containerd://2.2.2-k3s1"),
        "{out}"
    );
    assert!(
        out.contains("v1.30.14+rke2r1") && out.contains("containerd://1.7.27-k3s1"),
        "{out}"
    );
    assert!(
        out.contains("v1.33.5+k3s1") && out.contains("containerd://2.1.4-k3s1"),
        "{out}"
    );
    let gpus = c.run_ok(c.kubectl().args(["get", "node", "gpu-h200-0", "-o", "jsonpath={.status.allocatable.nvidia\\.com/gpu} {.metadata.labels.nvidia\\.com/gpu\\.product}"]));
    assert_eq!(gpus.trim(), "8 NVIDIA-H200");
}

#[test]
fn kubectl_version_shows_real_server_version() {
    let c = Cluster::shared();
    let out = c.run_ok(c.kubectl().args(["version", "-o", "json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["serverVersion"]["gitVersion"], c.k8s_version(), "{out}");
    assert_eq!(v["clientVersion"]["gitVersion"], c.k8s_version(), "{out}");
    let auth = c.run_ok(
        c.kubectl()
            .args(["auth", "can-i", "create", "pods", "-n", "kube-system"]),
    );
    assert_eq!(auth.trim(), "yes");
}

#[test]
fn helm3_and_helm4_run() {
    let c = Cluster::shared();
    let v3 = c.run_ok(c.helm().args(["version", "--short"]));
    assert!(v3.starts_with("v3."), "{v3}");
    let v4 = c.run_ok(c.helm4().args(["version", "--short"]));
    assert!(v4.starts_with("v4."), "{v4}");
    // Both talk to the cluster.
    c.run_ok(c.helm().args(["list", "-A"]));
    c.run_ok(c.helm4().args(["list", "-A"]));
}

#[test]
fn verify_pod_on_h200_succeeds_with_real_output() {
    let c = Cluster::shared();
    let ns = TestNamespace::new(c, "smoke-verify");
    c.run_with_stdin(
        c.kubectl().args(["apply", "-n", ns.name(), "-f", "-"]),
        &verify_pod("verify-h200", "gpu-h200-0"),
    );
    let phase = c.wait_pod_phase(
        ns.name(),
        "verify-h200",
        &["Succeeded", "Failed"],
        Duration::from_secs(60),
    );
    assert_eq!(phase, "Succeeded");
    let code = c.run_ok(c.kubectl().args([
        "get",
        "pod",
        "-n",
        ns.name(),
        "verify-h200",
        "-o",
        "jsonpath={.status.containerStatuses[0].state.terminated.exitCode}",
    ]));
    assert_eq!(code, "0");
    let logs = c.run_ok(c.kubectl().args(["logs", "-n", ns.name(), "verify-h200"]));
    assert!(logs.contains(&h200_uuid(c)), "{logs}");
    assert!(
        logs.starts_with("### kubectl-gpu begin list\nGPU 0: NVIDIA H200 (UUID: "),
        "{logs}"
    );
    assert!(
        logs.contains(
            "### kubectl-gpu end list rc=0\n### kubectl-gpu begin query\n0, NVIDIA H200, GPU-"
        ),
        "{logs}"
    );
    assert!(
        logs.contains(", 580.159.04, 143771 MiB, 9.0, 00000000:00:06.0\n"),
        "{logs}"
    );
    assert!(
        logs.ends_with("CUDA Version        : 13.0\n### kubectl-gpu end version rc=0\n"),
        "{logs}"
    );
}

#[test]
fn verify_pod_reports_seeded_nvml_mismatch() {
    let c = Cluster::shared();
    let ns = TestNamespace::new(c, "smoke-verify-fail");
    let _g = VerifyResultGuard::set(c, "gpu-a100-legacy-0", VerifyResult::NvmlMismatch);
    c.run_with_stdin(
        c.kubectl().args(["apply", "-n", ns.name(), "-f", "-"]),
        &verify_pod("verify-a100", "gpu-a100-legacy-0"),
    );
    let phase = c.wait_pod_phase(
        ns.name(),
        "verify-a100",
        &["Succeeded", "Failed"],
        Duration::from_secs(60),
    );
    assert_eq!(phase, "Failed");
    let code = c.run_ok(c.kubectl().args([
        "get",
        "pod",
        "-n",
        ns.name(),
        "verify-a100",
        "-o",
        "jsonpath={.status.containerStatuses[0].state.terminated.exitCode}",
    ]));
    assert_eq!(code, "18");
    let logs = c.run_ok(c.kubectl().args(["logs", "-n", ns.name(), "verify-a100"]));
    assert!(logs.contains("Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 580.95\n### kubectl-gpu end list rc=18"), "{logs}");
}

#[test]
fn node_agent_stays_running_and_exec_sees_the_node_tree() {
    let c = Cluster::shared();
    let ns = TestNamespace::new(c, "smoke-agent");
    for (pod, node) in [
        ("agent-h200", "gpu-h200-0"),
        ("agent-a100", "gpu-a100-legacy-0"),
    ] {
        c.run_with_stdin(
            c.kubectl().args(["apply", "-n", ns.name(), "-f", "-"]),
            &node_agent_pod(pod, node),
        );
    }
    for pod in ["agent-h200", "agent-a100"] {
        c.wait_pod_phase(ns.name(), pod, &["Running"], Duration::from_secs(60));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(c.pod_phase(ns.name(), "agent-h200"), "Running");

    let cfg = "/var/lib/rancher/rke2/agent/etc/containerd/config.toml";
    let h200 = c.run_ok(c.kubectl().args([
        "exec",
        "-n",
        ns.name(),
        "agent-h200",
        "--",
        "cat",
        &format!("/host{cfg}"),
    ]));
    assert_eq!(h200, c.read_node_file("gpu-h200-0", cfg));
    assert!(h200.contains("version = 3\nimports = [\"/var/lib/rancher/rke2/agent/etc/containerd/config-v3.toml.d/*.toml\"]"), "{h200}");
    let a100 = c.run_ok(c.kubectl().args([
        "exec",
        "-n",
        ns.name(),
        "agent-a100",
        "--",
        "cat",
        &format!("/host{cfg}"),
    ]));
    assert!(
        a100.contains("version = 2\n") && !a100.contains("imports"),
        "{a100}"
    );
    assert!(
        a100.contains("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.\"nvidia\"]"),
        "{a100}"
    );

    // Exit codes come through like from a kubelet.
    let st = c
        .kubectl()
        .args([
            "exec",
            "-n",
            ns.name(),
            "agent-h200",
            "--",
            "sh",
            "-c",
            "exit 3",
        ])
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(3));

    // systemctl is a stub, inside and outside chroot; a restart re-renders config.toml like RKE2.
    let before = c.systemctl_calls("gpu-h200-0").len();
    c.write_node_file("gpu-h200-0", cfg, "# hand edit, lost on restart\n");
    c.run_ok(c.kubectl().args([
        "exec",
        "-n",
        ns.name(),
        "agent-h200",
        "--",
        "chroot",
        "/host",
        "systemctl",
        "restart",
        "rke2-agent",
    ]));
    c.run_ok(c.kubectl().args([
        "exec",
        "-n",
        ns.name(),
        "agent-h200",
        "--",
        "systemctl",
        "is-active",
        "rke2-agent",
    ]));
    let calls = c.systemctl_calls("gpu-h200-0");
    assert_eq!(
        &calls[before..],
        [
            "systemctl restart rke2-agent",
            "systemctl is-active rke2-agent"
        ]
    );
    assert_eq!(
        c.read_node_file("gpu-h200-0", cfg),
        h200,
        "restart re-renders the generated config"
    );
    // `nsenter -t 1 -m ...` (the usual node-debug idiom) enters the node tree, not the real host.
    let osr = c.run_ok(c.kubectl().args([
        "exec",
        "-n",
        ns.name(),
        "agent-h200",
        "--",
        "nsenter",
        "-t",
        "1",
        "-m",
        "-u",
        "-i",
        "-n",
        "-p",
        "--",
        "cat",
        "/etc/os-release",
    ]));
    assert!(osr.contains("Ubuntu 24.04.3 LTS"), "{osr}");
    // Nothing of the real host was touched.
    assert!(!Path::new("/var/log/systemctl-calls.log").exists());
}

#[test]
fn containerd_accepts_generated_configs() {
    let c = Cluster::shared();
    let trees = c.repo_root().join("tests/node-trees");
    let cases = [
        (
            "gpu-a100-legacy-0",
            "var/lib/rancher/rke2/agent/etc/containerd/config.toml",
            c.containerd17_bin(),
            2,
        ),
        (
            "gpu-h200-0",
            "var/lib/rancher/rke2/agent/etc/containerd/config.toml",
            c.containerd2_bin(),
            3,
        ),
        (
            "gpu-k3s-0",
            "var/lib/rancher/k3s/agent/etc/containerd/config.toml",
            c.containerd2_bin(),
            3,
        ),
        (
            "worker-0",
            "var/lib/rancher/rke2/agent/etc/containerd/config.toml",
            c.containerd2_bin(),
            3,
        ),
        (
            "rke2-server-0",
            "var/lib/rancher/rke2/agent/etc/containerd/config.toml",
            c.containerd2_bin(),
            3,
        ),
        // containerd 2.x migrates a v2 config.
        (
            "gpu-a100-legacy-0",
            "var/lib/rancher/rke2/agent/etc/containerd/config.toml",
            c.containerd2_bin(),
            2,
        ),
    ];
    for (node, rel, bin, version) in cases {
        let cfg = trees.join(node).join(rel);
        let out = Command::new(bin)
            .args(["--config"])
            .arg(&cfg)
            .args(["config", "dump"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} config dump {}: {}",
            bin.display(),
            cfg.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let dump = String::from_utf8_lossy(&out.stdout);
        assert!(
            dump.contains("nvidia") == node.starts_with("gpu-"),
            "{node}: {dump}"
        );
        if bin == c.containerd17_bin() {
            assert!(dump.contains("version = 2"), "{dump}");
        } else {
            assert!(
                dump.contains("version = 3") || dump.contains("version = 4"),
                "{dump}"
            );
        }
        let _ = version;
    }
}

#[test]
fn pod_security_admission_rejects_privileged_pods_in_restricted_namespaces() {
    let c = Cluster::shared();
    let ns = TestNamespace::with_labels(
        c,
        "smoke-psa",
        &[("pod-security.kubernetes.io/enforce", "restricted")],
    );
    let out = c
        .kubectl()
        .args(["apply", "-n", ns.name(), "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut ch| {
            use std::io::Write;
            ch.stdin
                .take()
                .unwrap()
                .write_all(node_agent_pod("agent", "gpu-h200-0").as_bytes())?;
            ch.wait_with_output()
        })
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("violates PodSecurity \"restricted:latest\"") && err.contains("privileged"),
        "{err}"
    );
}

#[test]
fn kube_rs_client_works_with_the_kubeconfig() {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    use k8s_openapi::api::core::v1::Node;
    use kube::api::{Api, ListParams, PostParams};

    let c = Cluster::shared();
    let kubeconfig = c.kubeconfig().to_path_buf();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
            let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .unwrap();
            let client = kube::Client::try_from(cfg).unwrap();
            let nodes: Api<Node> = Api::all(client.clone());
            let list = nodes.list(&ListParams::default()).await.unwrap();
            assert!(
                list.items
                    .iter()
                    .any(|n| n.metadata.name.as_deref() == Some("gpu-h200-0"))
            );
            let ssar = SelfSubjectAccessReview {
                spec: SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        verb: Some("create".into()),
                        resource: Some("pods".into()),
                        subresource: Some("exec".into()),
                        namespace: Some("kube-system".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            };
            let api: Api<SelfSubjectAccessReview> = Api::all(client);
            let r = api.create(&PostParams::default(), &ssar).await.unwrap();
            assert!(r.status.unwrap().allowed);
        });
}

#[test]
fn stand_in_gpu_operator_chart_installs_with_wait() {
    let c = Cluster::shared();
    let ns = TestNamespace::new(c, "smoke-gpu-operator");
    // ClusterPolicy is cluster-scoped: a release whose namespace was deleted leaves it behind.
    let _ = c
        .kubectl()
        .args([
            "delete",
            "clusterpolicy",
            "cluster-policy",
            "--ignore-not-found",
        ])
        .output();
    struct Uninstall<'a>(&'a Cluster, String);
    impl Drop for Uninstall<'_> {
        fn drop(&mut self) {
            let _ = self
                .0
                .helm()
                .args(["uninstall", "gpu-operator", "-n", &self.1, "--wait"])
                .output();
            let _ = self
                .0
                .kubectl()
                .args([
                    "delete",
                    "clusterpolicy",
                    "cluster-policy",
                    "--ignore-not-found",
                ])
                .output();
        }
    }
    let _uninstall = Uninstall(c, ns.name().to_string());
    let chart = c
        .repo_root()
        .join("tests/charts/dist/gpu-operator-v26.7.0.tgz");
    c.run_ok(c.helm().args(["install", "gpu-operator"]).arg(&chart).args([
        "-n", ns.name(), "--wait", "--timeout", "120s",
        "--set-string", "toolkit.env[0].name=CONTAINERD_SOCKET,toolkit.env[0].value=/run/k3s/containerd/containerd.sock",
        // Operands on the named GPU nodes only (a scale cluster has thousands of GPU nodes).
        "--set-string", "standIn.operandNodeSelector.kubernetes\\.io/hostname=gpu-h200-0",
    ]));
    let op = c.run_ok(c.kubectl().args([
        "get",
        "pods",
        "-n",
        ns.name(),
        "-l",
        "app=gpu-operator",
        "-o",
        "jsonpath={.items[0].spec.nodeName}",
    ]));
    assert_eq!(op, "rke2-server-0");
    let env = c.run_ok(c.kubectl().args([
        "get",
        "ds",
        "-n",
        ns.name(),
        "nvidia-container-toolkit-daemonset",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].env[?(@.name==\"CONTAINERD_SOCKET\")].value}",
    ]));
    assert_eq!(env, "/run/k3s/containerd/containerd.sock");
    let cp = c.run_ok(c.kubectl().args([
        "get",
        "clusterpolicy",
        "cluster-policy",
        "-o",
        "jsonpath={.spec.toolkit.env[0].value}",
    ]));
    assert_eq!(cp, "/run/k3s/containerd/containerd.sock");
    c.wait_until(Duration::from_secs(30), "ClusterPolicy ready", || {
        c.run_ok(c.kubectl().args([
            "get",
            "clusterpolicy",
            "cluster-policy",
            "-o",
            "jsonpath={.status.state}",
        ])) == "ready"
    });
    let logs = c.run_ok(c.kubectl().args([
        "logs",
        "-n",
        ns.name(),
        "ds/nvidia-operator-validator",
        "-c",
        "nvidia-operator-validator",
    ]));
    assert!(logs.contains("all validations are successful"), "{logs}");
}

#[test]
fn containerd2_starts_with_the_generated_config_and_loads_cri() {
    let c = Cluster::shared();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = c
        .repo_root()
        .join("tests/node-trees/gpu-h200-0/var/lib/rancher/rke2/agent/etc/containerd/config.toml");
    let text = fs::read_to_string(cfg).unwrap();
    let root = tmp.path().join("root");
    let state = tmp.path().join("state");
    let sock = tmp.path().join("containerd.sock");
    // Same config, paths moved into the temp dir.
    let text = text
        .replace(
            "\"/var/lib/rancher/rke2/agent/containerd\"",
            &format!("{:?}", root.display().to_string()),
        )
        .replace(
            "\"/run/k3s/containerd\"",
            &format!("{:?}", state.display().to_string()),
        )
        .replace(
            "\"/run/k3s/containerd/containerd.sock\"",
            &format!("{:?}", sock.display().to_string()),
        );
    let cfg = tmp.path().join("config.toml");
    fs::write(&cfg, text).unwrap();
    let log = tmp.path().join("containerd.log");
    let mut child = Command::new(c.containerd2_bin())
        .arg("--config")
        .arg(&cfg)
        .stdout(fs::File::create(&log).unwrap())
        .stderr(fs::File::create(tmp.path().join("containerd.err")).unwrap())
        .spawn()
        .unwrap();
    let errf = tmp.path().join("containerd.err");
    let mut booted = false;
    for _ in 0..100 {
        let err = fs::read_to_string(&errf).unwrap_or_default();
        if err.contains("containerd successfully booted") {
            booted = true;
            break;
        }
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    let err = fs::read_to_string(&errf).unwrap_or_default();
    assert!(booted, "containerd did not boot:\n{err}");
    assert!(err.contains("io.containerd.grpc.v1.cri"), "{err}");
    assert!(
        !err.contains("failed to load plugin")
            || !err.contains("io.containerd.grpc.v1.cri\" type=io.containerd.grpc.v1 error"),
        "{err}"
    );
}
