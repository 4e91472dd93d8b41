//! `kubectl gpu verify` and `kubectl gpu cleanup` end to end: the real
//! binary through kubectl's plugin lookup, against the local test cluster
//! (real kube-apiserver, KWOK GPU nodes whose verify pods print real
//! nvidia-smi output, seeded failures via `test.rke2gpu.io/verify-result`).
//!
//! `cargo build -p kubectl-gpu` first (the harness puts target/debug first on
//! PATH). The tests change shared cluster state (annotations, RuntimeClasses,
//! an extra Node) and assert that nothing labelled
//! `app.kubernetes.io/managed-by=kubectl-gpu` is left anywhere, so they take
//! a process-wide lock and put back what they change.

use std::fs;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use cluster_harness::{Cluster, TestNamespace, VerifyResult, VerifyResultGuard};
use serde_json::Value;

const OURS: &str = "app.kubernetes.io/managed-by=kubectl-gpu";
const GPU_NODES: [&str; 3] = ["gpu-a100-legacy-0", "gpu-h200-0", "gpu-k3s-0"];

fn lock() -> MutexGuard<'static, ()> {
    cluster_harness::serial()
}

fn gpu(c: &Cluster, args: &[&str]) -> Output {
    c.kubectl()
        .arg("gpu")
        .args(args)
        .output()
        .expect("run kubectl gpu")
}

/// `kubectl gpu verify --timeout 30 ARGS` (a hang fails in 30 s, not 180 s).
fn verify(c: &Cluster, args: &[&str]) -> Output {
    let mut all = vec!["verify", "--timeout", "30"];
    all.extend_from_slice(args);
    gpu(c, &all)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", show(out)))
}

fn node<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["nodes"]
        .as_array()
        .and_then(|ns| ns.iter().find(|n| n["node"] == name))
        .unwrap_or_else(|| panic!("no node {name} in {report:#}"))
}

fn kinds(n: &Value) -> Vec<String> {
    n["diagnoses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["kind"].as_str().map(str::to_string))
        .collect()
}

fn h200_uuid(c: &Cluster) -> String {
    // The real capture's UUID (the cluster serves that file's capture).
    let l = fs::read_to_string(c.fixture("nvidia-smi/h200-580/nvidia-smi-L.txt")).unwrap();
    let start = l.find("GPU-").expect("UUID in nvidia-smi -L capture");
    l[start..].split(')').next().unwrap().to_string()
}

/// `kind/name` of every pod (`ns/name`) and namespace labelled ours.
fn leftovers(c: &Cluster) -> Vec<String> {
    let mut out = Vec::new();
    for (what, all) in [("pods", true), ("namespaces", false)] {
        let mut cmd = c.kubectl();
        cmd.args(["get", what, "-l", OURS, "-o"]);
        cmd.arg(
            "jsonpath={range .items[*]}{.kind}/{.metadata.namespace}/{.metadata.name}{\"\\n\"}{end}",
        );
        if all {
            cmd.arg("-A");
        }
        out.extend(c.run_ok(&mut cmd).lines().map(str::to_string));
    }
    out.retain(|l| !l.is_empty());
    out
}

/// Nothing of ours is left (namespace deletion finishes asynchronously).
fn assert_nothing_left(c: &Cluster, what: &str) {
    let t0 = Instant::now();
    loop {
        let left = leftovers(c);
        if left.is_empty() {
            return;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            panic!("{what}: still left after 60 s: {left:?}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Nothing of ours exists right now (for runs that must create nothing).
fn assert_nothing_created(c: &Cluster, what: &str) {
    let left = leftovers(c);
    assert!(left.is_empty(), "{what}: created {left:?}");
}

/// A GPU node object no kwok manages: like a node whose kubelet is gone,
/// pods bound to it stay Pending (and, once deleted gracefully, Terminating).
struct OrphanNode<'a> {
    c: &'a Cluster,
    name: String,
}

impl<'a> OrphanNode<'a> {
    fn new(c: &'a Cluster) -> Self {
        let name = format!("gpu-orphan-{}", std::process::id());
        c.apply(&format!(
            "apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels:\n    \
             nvidia.com/gpu.present: \"true\"\n    nvidia.com/gpu.product: NVIDIA-H200\n    \
             nvidia.com/gpu.count: \"8\"\n"
        ));
        OrphanNode { c, name }
    }
}

impl Drop for OrphanNode<'_> {
    fn drop(&mut self) {
        let _ = self
            .c
            .kubectl()
            .args(["delete", "node", &self.name, "--ignore-not-found"])
            .output();
    }
}

/// `kubectl gpu verify ARGS` in the background.
fn spawn_verify(c: &Cluster, args: &[&str]) -> Child {
    c.kubectl()
        .args(["gpu", "verify"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kubectl gpu")
}

/// Waits until a pod of ours is on `node` (kubectl execs the plugin, so the
/// child is kubectl-gpu itself by then).
fn wait_for_our_pod(c: &Cluster, node: &str, child: &mut Child) -> String {
    let t0 = Instant::now();
    loop {
        let out = c.run_ok(c.kubectl().args([
            "get",
            "pods",
            "-A",
            "-l",
            OURS,
            "--field-selector",
            &format!("spec.nodeName={node}"),
            "-o",
            "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name} {.status.phase}{\"\\n\"}{end}",
        ]));
        if let Some(l) = out.lines().find(|l| !l.is_empty()) {
            return l.to_string();
        }
        if let Ok(Some(st)) = child.try_wait() {
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            panic!("verify ended ({st}) before its pod appeared: {err}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no verify pod on {node} after 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_child(child: &mut Child, timeout: Duration) -> ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if t0.elapsed() > timeout {
            let _ = child.kill();
            panic!("kubectl gpu verify did not end within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------
// Healthy cluster
// ---------------------------------------------------------------------------

#[test]
fn all_gpu_nodes_pass_with_real_output_and_leave_nothing() {
    let c = Cluster::shared();
    let _g = lock();
    let out = verify(c, &["-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let r = json(&out);
    let nodes = r["nodes"].as_array().unwrap();
    let names: Vec<&str> = nodes.iter().filter_map(|n| n["node"].as_str()).collect();
    assert_eq!(names, GPU_NODES, "{r:#}");
    for n in nodes {
        assert_eq!(n["result"], "pass", "{n:#}");
        assert_eq!(n["phase"], "Succeeded", "{n:#}");
        assert!(n["diagnoses"].as_array().unwrap().is_empty(), "{n:#}");
        assert!(n["api_requests"].as_u64().unwrap() >= 4, "{n:#}");
    }
    assert_eq!(r["summary"]["passed"], 3);
    assert_eq!(r["summary"]["failed"], 0);
    assert_eq!(r["namespace_created"], true);
    let ns = r["namespace"].as_str().unwrap();
    assert!(ns.starts_with("kubectl-gpu-verify-"), "{ns}");
    assert_eq!(r["cleanup"]["deleted_namespace"], ns);
    assert!(r["cleanup"]["errors"].as_array().unwrap().is_empty());

    let h = node(&r, "gpu-h200-0");
    assert_eq!(h["driver_version"], "580.159.04");
    assert_eq!(h["cuda_version"], "13.0");
    // JSON has nvidia-smi's name; the table shows it as the GFD label does.
    assert_eq!(h["product"], "NVIDIA H200");
    let uuid = h200_uuid(c);
    assert_eq!(h["gpus"][0]["uuid"], uuid.as_str(), "{h:#}");
    assert_eq!(h["gpus"].as_array().unwrap().len(), 1);
    assert_eq!(h["runtime_class"], "nvidia", "{h:#}");
    assert_nothing_left(c, "verify -o json");

    // The table: one row per node, the H200 row with label-style product and UUID.
    let out = verify(c, &["-o", "wide", "--no-color"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let t = text(&out.stdout);
    let row = t
        .lines()
        .find(|l| l.starts_with("gpu-h200-0 "))
        .unwrap_or_else(|| panic!("no H200 row:\n{t}"));
    for want in ["PASS", "NVIDIA-H200", "580.159.04", "13.0", uuid.as_str()] {
        assert!(row.contains(want), "{want:?} not in {row:?}");
    }
    assert!(
        t.contains("Summary: 3 passed, 0 failed of 3 GPU node(s)"),
        "{t}"
    );
    assert_nothing_left(c, "verify -o wide");
}

// ---------------------------------------------------------------------------
// Real nvidia-smi failures (test.rke2gpu.io/verify-result)
// ---------------------------------------------------------------------------

fn seeded_failure(result: VerifyResult, kind: &str, evidence: &str) {
    let c = Cluster::shared();
    let _g = lock();
    let _seed = VerifyResultGuard::set(c, "gpu-h200-0", result);
    let out = verify(c, &["-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let r = json(&out);
    assert_eq!(r["summary"]["failed"], 1, "{r:#}");
    assert_eq!(r["summary"]["passed"], 2, "{r:#}");
    let h = node(&r, "gpu-h200-0");
    assert_eq!(h["result"], "fail");
    assert_eq!(h["phase"], "Failed", "{h:#}");
    let k = kinds(h);
    assert_eq!(k.first().map(String::as_str), Some(kind), "{h:#}");
    let d = &h["diagnoses"][0];
    assert!(
        d["evidence"].as_str().unwrap().contains(evidence),
        "{evidence:?} not in {d:#}"
    );
    assert!(!d["fix"].as_str().unwrap().is_empty());
    assert_eq!(
        d["next_command"],
        "kubectl gpu check-runtime --deep --node gpu-h200-0"
    );
    for other in ["gpu-a100-legacy-0", "gpu-k3s-0"] {
        assert_eq!(node(&r, other)["result"], "pass");
    }
    assert_nothing_left(c, &format!("verify with {result:?}"));

    // The table says the same under the failing row.
    let out = verify(c, &["--node", "gpu-h200-0", "--no-color"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let t = text(&out.stdout);
    assert!(t.contains("FAIL"), "{t}");
    assert!(t.contains("seen: ") && t.contains(evidence), "{t}");
    assert!(t.contains("fix:  "), "{t}");
    assert_nothing_left(c, &format!("verify --node with {result:?}"));
}

#[test]
fn driver_not_loaded_is_diagnosed() {
    seeded_failure(
        VerifyResult::DriverNotLoaded,
        "driver_not_loaded",
        "couldn't communicate with the NVIDIA driver",
    );
}

#[test]
fn nvml_mismatch_is_diagnosed() {
    seeded_failure(
        VerifyResult::NvmlMismatch,
        "driver_library_mismatch",
        "Failed to initialize NVML: Driver/library version mismatch",
    );
}

#[test]
fn nvml_unknown_error_is_diagnosed() {
    seeded_failure(
        VerifyResult::NvmlUnknown,
        "nvml_unknown_error",
        "Failed to initialize NVML: Unknown Error",
    );
}

#[test]
fn nvidia_smi_not_found_is_diagnosed() {
    seeded_failure(
        VerifyResult::SmiNotFound,
        "nvidia_smi_not_found",
        "nvidia-smi: not found",
    );
}

// ---------------------------------------------------------------------------
// RuntimeClass and resources
// ---------------------------------------------------------------------------

#[test]
fn missing_runtime_class_is_diagnosed() {
    let c = Cluster::shared();
    let _g = lock();
    let out = verify(
        c,
        &[
            "--node",
            "gpu-h200-0",
            "--runtime-class",
            "does-not-exist",
            "-o",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let r = json(&out);
    let h = node(&r, "gpu-h200-0");
    assert_eq!(kinds(h), ["runtime_class_not_found"], "{h:#}");
    assert_eq!(h["phase"], Value::Null, "the API refused it: {h:#}");
    let d = &h["diagnoses"][0];
    assert_eq!(d["source"], "create");
    assert!(
        d["evidence"]
            .as_str()
            .unwrap()
            .contains(r#"RuntimeClass "does-not-exist" not found"#),
        "{d:#}"
    );
    assert_eq!(d["next_command"], "kubectl get runtimeclass");
    assert_nothing_left(c, "--runtime-class does-not-exist");
}

/// Puts a deleted RuntimeClass back.
struct RestoreRuntimeClass<'a> {
    c: &'a Cluster,
    manifest: String,
}

impl Drop for RestoreRuntimeClass<'_> {
    fn drop(&mut self) {
        self.c.apply(&self.manifest);
    }
}

#[test]
fn deleted_nvidia_runtime_class_is_diagnosed_or_skipped_by_auto() {
    let c = Cluster::shared();
    let _g = lock();
    let v: Value = serde_json::from_str(&c.run_ok(c.kubectl().args([
        "get",
        "runtimeclass",
        "nvidia",
        "-o",
        "json",
    ])))
    .unwrap();
    let mut rc = v.clone();
    let meta = rc["metadata"].as_object_mut().unwrap();
    for k in [
        "resourceVersion",
        "uid",
        "creationTimestamp",
        "managedFields",
    ] {
        meta.remove(k);
    }
    let _restore = RestoreRuntimeClass {
        c,
        manifest: rc.to_string(),
    };
    c.run_ok(
        c.kubectl()
            .args(["delete", "runtimeclass", "nvidia", "--wait"]),
    );

    // Asked for explicitly: the API refuses the pod, verify says why.
    let out = verify(
        c,
        &[
            "--node",
            "gpu-a100-legacy-0",
            "--runtime-class",
            "nvidia",
            "-o",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let n = node(&json(&out), "gpu-a100-legacy-0").clone();
    assert_eq!(kinds(&n), ["runtime_class_not_found"], "{n:#}");
    assert!(
        n["diagnoses"][0]["summary"]
            .as_str()
            .unwrap()
            .contains(r#"RuntimeClass "nvidia" does not exist"#),
        "{n:#}"
    );
    assert_nothing_left(c, "--runtime-class nvidia without the RuntimeClass");

    // auto without an operator and without the RuntimeClass: no runtimeClassName
    // (the node's default runtime); the simulated node still answers.
    let out = verify(c, &["--node", "gpu-a100-legacy-0", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let n = node(&json(&out), "gpu-a100-legacy-0").clone();
    assert_eq!(n["runtime_class"], Value::Null, "{n:#}");
    assert!(
        n["runtime_class_reason"]
            .as_str()
            .unwrap()
            .contains("no RuntimeClass nvidia"),
        "{n:#}"
    );
    assert_nothing_left(c, "auto without the RuntimeClass");
}

#[test]
fn more_gpus_than_the_node_has_is_diagnosed_without_a_pod() {
    let c = Cluster::shared();
    let _g = lock();
    // KWOK (unlike a kubelet, which rejects with OutOfnvidia.com/gpu) would run
    // such a pod; verify compares with the node's allocatable first.
    let out = verify(c, &["--node", "gpu-h200-0", "--gpus", "99", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let r = json(&out);
    let h = node(&r, "gpu-h200-0");
    assert_eq!(kinds(h), ["insufficient_gpu_resource"], "{h:#}");
    assert_eq!(h["phase"], Value::Null, "no pod should be created: {h:#}");
    assert_eq!(h["api_requests"], 0);
    let d = &h["diagnoses"][0];
    assert!(
        d["summary"]
            .as_str()
            .unwrap()
            .contains("has 8 allocatable nvidia.com/gpu; the verify pod requests 99"),
        "{d:#}"
    );
    assert!(d["fix"].as_str().unwrap().contains("--gpus 8"), "{d:#}");
    assert_nothing_left(c, "--gpus 99");

    // Within allocatable but the pod sees fewer GPUs than requested: the
    // count check fails, and no "unrecognised reason" diagnosis is added.
    let out = verify(c, &["--node", "gpu-h200-0", "--gpus", "2", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let r = json(&out);
    let h = node(&r, "gpu-h200-0");
    assert_eq!(h["phase"], "Succeeded", "{h:#}");
    let count = h["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|ch| ch["id"] == "gpu_count")
        .unwrap_or_else(|| panic!("no gpu_count check: {h:#}"));
    assert_eq!(count["status"]["state"], "fail", "{count:#}");
    assert!(
        count["message"]
            .as_str()
            .unwrap()
            .contains("sees 1 GPUs but requested 2"),
        "{count:#}"
    );
    assert!(!kinds(h).iter().any(|k| k == "unknown"), "{h:#}");
    assert_nothing_left(c, "--gpus 2");
}

// ---------------------------------------------------------------------------
// Bad input: clear message, non-zero exit, nothing created
// ---------------------------------------------------------------------------

fn refused(args: &[&str], code: i32, message: &str) {
    let c = Cluster::shared();
    let out = gpu(c, args);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {}", show(&out));
    assert!(out.stdout.is_empty(), "{args:?}: {}", show(&out));
    let err = text(&out.stderr);
    assert!(err.contains(message), "{args:?}: {message:?} not in {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_nothing_created(c, &format!("{args:?}"));
}

#[test]
fn bad_input_is_refused_before_anything_is_created() {
    let _g = lock();
    refused(
        &["verify", "--node", "no-such-node"],
        2,
        r#"node "no-such-node" does not exist"#,
    );
    refused(
        &["verify", "--node", "worker-0"],
        2,
        r#"node "worker-0" has no GPUs"#,
    );
    refused(
        &["verify", "--node", "gpu-h200-0", "--node", "rke2-server-0"],
        2,
        r#"node "rke2-server-0" has no GPUs"#,
    );
    refused(
        &["verify", "-l", "a=b=c"],
        2,
        r#"invalid label selector "a=b=c""#,
    );
    refused(&["verify", "-l", ",x"], 2, "empty requirement in selector");
    refused(
        &["verify", "-l", "kubernetes.io/hostname=worker-0"],
        1,
        "no GPU nodes among 1 node(s) matching",
    );
    refused(
        &["verify", "-n", "no-such-namespace"],
        2,
        "namespace no-such-namespace does not exist",
    );
    refused(&["verify", "--gpus", "0"], 2, "--gpus");
    refused(&["verify", "--parallel", "0"], 2, "must be at least 1");
    refused(
        &["verify", "--runtime-class", "Not_Valid"],
        2,
        "is not a valid RuntimeClass name",
    );
}

#[test]
fn pod_security_restricted_namespace_is_diagnosed_without_pods() {
    let c = Cluster::shared();
    let _g = lock();
    let ns = TestNamespace::with_labels(
        c,
        "verify-psa",
        &[("pod-security.kubernetes.io/enforce", "restricted")],
    );
    let out = verify(c, &["-n", ns.name(), "-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let r = json(&out);
    assert_eq!(r["namespace"], ns.name());
    assert_eq!(r["namespace_created"], false);
    assert_eq!(r["summary"]["failed"], 3, "{r:#}");
    for name in GPU_NODES {
        let n = node(&r, name);
        assert_eq!(kinds(n), ["pod_security_rejected"], "{n:#}");
        assert_eq!(n["phase"], Value::Null);
        assert!(
            n["diagnoses"][0]["evidence"]
                .as_str()
                .unwrap()
                .contains(r#"violates PodSecurity "restricted:latest""#),
            "{n:#}"
        );
        assert!(
            n["diagnoses"][0]["fix"]
                .as_str()
                .unwrap()
                .contains("pod-security.kubernetes.io/enforce=baseline"),
            "{n:#}"
        );
    }
    // One server-side dry run for all nodes; no pod was created.
    let total: u64 = r["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["api_requests"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 1, "{r:#}");
    assert_nothing_created(c, "restricted namespace");
    let pods = c.run_ok(
        c.kubectl()
            .args(["get", "pods", "-n", ns.name(), "-o", "name"]),
    );
    assert!(pods.trim().is_empty(), "{pods}");
}

// ---------------------------------------------------------------------------
// Interrupted runs
// ---------------------------------------------------------------------------

#[test]
fn sigkill_mid_run_then_cleanup_removes_pod_and_namespace() {
    let c = Cluster::shared();
    let _g = lock();
    let orphan = OrphanNode::new(c);
    let mut child = spawn_verify(c, &["--node", &orphan.name, "--timeout", "60"]);
    let pod = wait_for_our_pod(c, &orphan.name, &mut child);
    assert!(pod.ends_with(" Pending"), "{pod}");
    child.kill().unwrap(); // SIGKILL: no handler runs
    let st = child.wait().unwrap();
    assert_eq!(st.code(), None, "killed by a signal: {st}");

    // Left behind: the pod and the namespace verify created.
    let left = leftovers(c);
    assert!(
        left.iter()
            .any(|l| l.starts_with("Pod/kubectl-gpu-verify-")),
        "{left:?}"
    );
    assert!(
        left.iter()
            .any(|l| l.starts_with("Namespace//kubectl-gpu-verify-")),
        "{left:?}"
    );

    let dry = gpu(c, &["cleanup", "--dry-run", "--no-color"]);
    assert_eq!(dry.status.code(), Some(0), "{}", show(&dry));
    let t = text(&dry.stdout);
    assert!(t.contains("would delete"), "{t}");
    assert_eq!(leftovers(c), left, "--dry-run deleted something");

    let out = gpu(c, &["cleanup", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let r = json(&out);
    let deleted: Vec<String> = r["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap(),
                d["name"].as_str().unwrap()
            )
        })
        .collect();
    let (ns, name) = pod
        .split_whitespace()
        .next()
        .unwrap()
        .split_once('/')
        .unwrap();
    assert!(deleted.contains(&format!("pod/{name}")), "{r:#}");
    assert!(deleted.contains(&format!("namespace/{ns}")), "{r:#}");
    assert_nothing_left(c, "cleanup after SIGKILL");

    let again = gpu(c, &["cleanup", "--no-color"]);
    assert_eq!(again.status.code(), Some(0), "{}", show(&again));
    assert!(
        text(&again.stdout)
            .contains("nothing labelled app.kubernetes.io/managed-by=kubectl-gpu found"),
        "{}",
        show(&again)
    );
}

#[test]
fn sigkill_in_a_user_namespace_then_cleanup_keeps_the_namespace() {
    let c = Cluster::shared();
    let _g = lock();
    let orphan = OrphanNode::new(c);
    let ns = TestNamespace::new(c, "verify-user");
    let mut child = spawn_verify(
        c,
        &["-n", ns.name(), "--node", &orphan.name, "--timeout", "60"],
    );
    let pod = wait_for_our_pod(c, &orphan.name, &mut child);
    assert!(pod.starts_with(&format!("{}/", ns.name())), "{pod}");
    child.kill().unwrap();
    child.wait().unwrap();
    let out = gpu(c, &["cleanup"]);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert_nothing_left(c, "cleanup after SIGKILL with -n");
    // The user's namespace is not ours: it stays.
    let phase =
        c.run_ok(
            c.kubectl()
                .args(["get", "ns", ns.name(), "-o", "jsonpath={.status.phase}"]),
        );
    assert_eq!(phase, "Active");
}

#[test]
fn sigint_mid_run_exits_130_and_cleans_up_itself() {
    let c = Cluster::shared();
    let _g = lock();
    let orphan = OrphanNode::new(c);
    // The orphan's pod stays Pending, the real nodes' pods finish: both kinds
    // are in flight or done when the signal comes.
    let mut child = spawn_verify(
        c,
        &[
            "--node",
            &orphan.name,
            "--node",
            "gpu-h200-0",
            "--timeout",
            "60",
        ],
    );
    wait_for_our_pod(c, &orphan.name, &mut child);
    let pid = child.id().to_string();
    let kill = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(kill.success());
    let st = wait_child(&mut child, Duration::from_secs(30));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(st.code(), Some(130), "{st}: {err}");
    assert!(
        err.contains("interrupted: removing the verify pods"),
        "{err}"
    );
    assert!(!err.contains("run `kubectl gpu cleanup`"), "{err}");
    // Nothing left, without `kubectl gpu cleanup` (the orphan's pod is gone
    // although no kubelet confirms its deletion).
    assert_nothing_left(c, "SIGINT");
}
