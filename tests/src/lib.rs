//! End-to-end harness for the local test cluster (`tests/e2e/cluster`, see `tests/e2e/README.md`).
//!
//! ```no_run
//! use cluster_harness::{Cluster, TestNamespace};
//! let c = Cluster::shared();
//! let ns = TestNamespace::new(c, "verify");
//! let out = c.run_ok(c.cmd("kubectl").args(["get", "nodes", "-o", "wide"]));
//! assert!(out.contains("gpu-h200-0"));
//! ```
//!
//! `Cluster::shared()` runs `tests/e2e/cluster up` once per test process (the script reuses a
//! cluster that already runs, and serialises concurrent `up`s with a lock), then reads
//! `tests/e2e/cluster env`. The cluster is left running for the next test binary; stop it with
//! `tests/e2e/cluster down`. Extra `up` arguments (e.g. `--nodes 2000 --pods-per-node 4`) can be
//! given in `RKE2GPU_CLUSTER_UP_ARGS`.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub mod realnode;

/// Annotation that makes a node's verify pods print a real nvidia-smi failure.
pub const VERIFY_RESULT_ANNOTATION: &str = "test.rke2gpu.io/verify-result";
/// Set by the cluster's simulator once it applied `VERIFY_RESULT_ANNOTATION`.
pub const VERIFY_RESULT_APPLIED_ANNOTATION: &str = "test.rke2gpu.io/verify-result-applied";

/// The simulated nodes every cluster has.
pub const NODES: [&str; 5] = [
    "rke2-server-0",
    "gpu-h200-0",
    "gpu-a100-legacy-0",
    "gpu-k3s-0",
    "worker-0",
];

/// What a node's verify pods answer (`test.rke2gpu.io/verify-result`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyResult {
    /// Real nvidia-smi output of that node's GPU, exit 0.
    Ok,
    /// "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver...", exit 9.
    DriverNotLoaded,
    /// "Failed to initialize NVML: Driver/library version mismatch", exit 18.
    NvmlMismatch,
    /// "Failed to initialize NVML: Unknown Error", exit 255.
    NvmlUnknown,
    /// "sh: 1: nvidia-smi: not found", exit 127.
    SmiNotFound,
}

impl VerifyResult {
    pub fn annotation_value(self) -> &'static str {
        match self {
            VerifyResult::Ok => "ok",
            VerifyResult::DriverNotLoaded => "driver-not-loaded",
            VerifyResult::NvmlMismatch => "nvml-mismatch",
            VerifyResult::NvmlUnknown => "nvml-unknown",
            VerifyResult::SmiNotFound => "smi-not-found",
        }
    }
    /// The exit code of the verify container (and of each nvidia-smi call in its log).
    pub fn exit_code(self) -> i32 {
        match self {
            VerifyResult::Ok => 0,
            VerifyResult::DriverNotLoaded => 9,
            VerifyResult::NvmlMismatch => 18,
            VerifyResult::NvmlUnknown => 255,
            VerifyResult::SmiNotFound => 127,
        }
    }
}

/// A running test cluster and the environment to talk to it.
#[derive(Debug)]
pub struct Cluster {
    env: BTreeMap<String, String>,
    path: String,
    repo_root: PathBuf,
}

static SHARED: OnceLock<std::result::Result<Cluster, String>> = OnceLock::new();
static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Cluster {
    /// The cluster of this test process: started (or reused) on first use. Panics with the
    /// script's error if it cannot be started.
    pub fn shared() -> &'static Cluster {
        match SHARED.get_or_init(|| Cluster::start().map_err(|e| format!("{e:#}"))) {
            Ok(c) => c,
            Err(e) => panic!("test cluster unavailable: {e}"),
        }
    }

    fn start() -> Result<Cluster> {
        let repo_root = repo_root();
        let script = repo_root.join("tests/e2e/cluster");
        let mut up = Command::new(&script);
        // The cluster's binaries plus what the tests run (Helm 3/4, containerd 1.7/2.x).
        up.args(["up", "--for", "e2e"]);
        if let Ok(extra) = std::env::var("RKE2GPU_CLUSTER_UP_ARGS") {
            up.args(extra.split_whitespace());
        }
        // Progress and errors of `up` go to our stderr (shown with --nocapture or on failure).
        let out = up
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("running {}", script.display()))?;
        if !out.status.success() {
            bail!(
                "`{} up` failed ({}); see its output above",
                script.display(),
                out.status
            );
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout.lines().last().unwrap_or_default();
        if !last.starts_with("export KUBECONFIG=") {
            bail!("`cluster up` did not end with `export KUBECONFIG=...`: {stdout}");
        }
        let env_out = Command::new(&script).arg("env").output()?;
        if !env_out.status.success() {
            bail!(
                "`cluster env` failed: {}",
                String::from_utf8_lossy(&env_out.stderr)
            );
        }
        let mut env = BTreeMap::new();
        let mut tool_path = String::new();
        for line in String::from_utf8_lossy(&env_out.stdout).lines() {
            let Some(kv) = line.strip_prefix("export ") else {
                continue;
            };
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let v = v.trim_matches('"');
            if k == "PATH" {
                tool_path = v.trim_end_matches(":$PATH").to_string();
            } else {
                env.insert(k.to_string(), v.to_string());
            }
        }
        if !env.contains_key("KUBECONFIG") {
            bail!("`cluster env` printed no KUBECONFIG (is the cluster running?)");
        }
        // target/debug first so `kubectl gpu` finds kubectl-gpu via kubectl's plugin lookup.
        let mut parts = vec![bin_dir().display().to_string(), tool_path];
        parts.push(std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()));
        Ok(Cluster {
            env,
            path: parts.join(":"),
            repo_root,
        })
    }

    /// A command with the cluster's environment: KUBECONFIG, and PATH = target/debug, the built
    /// kubectl, Helm 3, containerd 2.x, kubectl-krew, then the inherited PATH.
    pub fn cmd(&self, program: impl AsRef<OsStr>) -> Command {
        let program = program.as_ref();
        // Resolve through our PATH (Command uses the parent's PATH to find the program).
        let resolved = if Path::new(program).components().count() == 1 {
            self.path
                .split(':')
                .map(|d| Path::new(d).join(program))
                .find(|p| p.is_file())
                .map(PathBuf::into_os_string)
                .unwrap_or_else(|| program.to_os_string())
        } else {
            program.to_os_string()
        };
        let mut c = Command::new(resolved);
        c.env("PATH", &self.path);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost");
        c
    }

    /// `kubectl` of the built release.
    pub fn kubectl(&self) -> Command {
        self.cmd("kubectl")
    }

    /// Helm 3 (`helm` on PATH).
    pub fn helm(&self) -> Command {
        self.cmd("helm")
    }

    /// Helm 4 (`$HELM4_BIN`).
    pub fn helm4(&self) -> Command {
        self.cmd(self.var("HELM4_BIN"))
    }

    /// An exported variable of `cluster env` (KUBECONFIG, HELM4_BIN, CONTAINERD17_BIN, ...).
    pub fn var(&self, name: &str) -> &str {
        self.env
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("`cluster env` has no {name}"))
    }

    pub fn kubeconfig(&self) -> &Path {
        Path::new(self.var("KUBECONFIG"))
    }

    /// The Kubernetes version of the control plane (e.g. `v1.37.2`).
    pub fn k8s_version(&self) -> &str {
        self.var("RKE2GPU_K8S_VERSION")
    }

    pub fn containerd17_bin(&self) -> &Path {
        Path::new(self.var("CONTAINERD17_BIN"))
    }

    pub fn containerd2_bin(&self) -> &Path {
        Path::new(self.var("CONTAINERD2_BIN"))
    }

    pub fn repo_root(&self) -> &Path {
        &self.repo_root
    }

    /// A file of the repository's test fixtures (`tests/fixtures/<rel>`).
    pub fn fixture(&self, rel: &str) -> PathBuf {
        self.repo_root.join("tests/fixtures").join(rel)
    }

    /// The live fixture tree of a node in the running cluster: what `/host` is inside that
    /// node's node-agent pods. Tests may change it; `cluster down` discards it.
    pub fn node_tree(&self, node: &str) -> PathBuf {
        let p = Path::new(self.var("RKE2GPU_NODE_TREES")).join(node);
        assert!(p.is_dir(), "no node tree for {node} at {}", p.display());
        p
    }

    /// Path of `rel` (absolute inside the node, e.g. `/etc/rancher/rke2/config.yaml`) in the node tree.
    pub fn node_path(&self, node: &str, rel: &str) -> PathBuf {
        self.node_tree(node).join(rel.trim_start_matches('/'))
    }

    /// Seed a fault: write a file into a node's tree (parents created).
    pub fn write_node_file(&self, node: &str, rel: &str, contents: impl AsRef<[u8]>) {
        let p = self.node_path(node, rel);
        if let Some(d) = p.parent() {
            fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        }
        fs::write(&p, contents).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    }

    pub fn read_node_file(&self, node: &str, rel: &str) -> String {
        let p = self.node_path(node, rel);
        fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
    }

    /// Seed a fault: remove a file (or directory tree) from a node's tree.
    pub fn remove_node_file(&self, node: &str, rel: &str) {
        let p = self.node_path(node, rel);
        let r = if p.is_dir() {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        };
        if let Err(e) = r
            && e.kind() != std::io::ErrorKind::NotFound
        {
            panic!("remove {}: {e}", p.display());
        }
    }

    /// The `systemctl` calls recorded on a node (one line each: `systemctl restart rke2-agent`).
    pub fn systemctl_calls(&self, node: &str) -> Vec<String> {
        fs::read_to_string(self.node_path(node, "/var/log/systemctl-calls.log"))
            .map(|s| s.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }

    /// Set (`Some`) or remove (`None`) a node annotation.
    pub fn annotate_node(&self, node: &str, key: &str, value: Option<&str>) {
        let arg = match value {
            Some(v) => format!("{key}={v}"),
            None => format!("{key}-"),
        };
        self.run_ok(
            self.kubectl()
                .args(["annotate", "node", node, "--overwrite", &arg]),
        );
    }

    /// Set or remove a node label.
    pub fn label_node(&self, node: &str, key: &str, value: Option<&str>) {
        let arg = match value {
            Some(v) => format!("{key}={v}"),
            None => format!("{key}-"),
        };
        self.run_ok(
            self.kubectl()
                .args(["label", "node", node, "--overwrite", &arg]),
        );
    }

    /// Make the node's verify pods answer `result`; returns once the simulator applied it.
    /// Restore with `VerifyResult::Ok` (or use [`VerifyResultGuard`]).
    pub fn set_verify_result(&self, node: &str, result: VerifyResult) {
        let v = result.annotation_value();
        self.annotate_node(node, VERIFY_RESULT_ANNOTATION, Some(v));
        let jsonpath = "jsonpath={.metadata.annotations.test\\.rke2gpu\\.io/verify-result-applied}";
        self.wait_until(
            Duration::from_secs(30),
            &format!("{node}: verify result {v} applied"),
            || {
                self.run_ok(self.kubectl().args(["get", "node", node, "-o", jsonpath]))
                    .trim()
                    == v
            },
        );
    }

    /// Run; panic with stdout/stderr when it fails. Returns stdout.
    pub fn run_ok(&self, cmd: &mut Command) -> String {
        let out = run(cmd);
        if !out.status.success() {
            panic!(
                "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl apply -f -` of a manifest.
    pub fn apply(&self, manifest: &str) -> String {
        self.run_with_stdin(self.kubectl().args(["apply", "-f", "-"]), manifest)
    }

    /// Run with stdin; panic when it fails. Returns stdout.
    pub fn run_with_stdin(&self, cmd: &mut Command, stdin: &str) -> String {
        use std::io::Write;
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        if !out.status.success() {
            panic!(
                "{cmd:?} failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A pod's `.status.phase`.
    pub fn pod_phase(&self, ns: &str, pod: &str) -> String {
        self.run_ok(self.kubectl().args([
            "get",
            "pod",
            "-n",
            ns,
            pod,
            "-o",
            "jsonpath={.status.phase}",
        ]))
    }

    /// Wait until the pod is in one of `phases`; returns the phase.
    pub fn wait_pod_phase(
        &self,
        ns: &str,
        pod: &str,
        phases: &[&str],
        timeout: Duration,
    ) -> String {
        let t0 = Instant::now();
        loop {
            let phase = self.pod_phase(ns, pod);
            if phases.contains(&phase.as_str()) {
                return phase;
            }
            if t0.elapsed() > timeout {
                panic!(
                    "timed out after {timeout:?} waiting for pod {ns}/{pod} to be in {phases:?} (is {phase:?})"
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Poll `f` every 200 ms until it returns true; panic after `timeout`.
    pub fn wait_until(&self, timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
        let t0 = Instant::now();
        while t0.elapsed() < timeout {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("timed out after {timeout:?} waiting for {what}");
    }
}

/// Resets a node's verify result to `ok` when dropped (also on panic).
pub struct VerifyResultGuard<'a> {
    cluster: &'a Cluster,
    node: String,
}

impl<'a> VerifyResultGuard<'a> {
    pub fn set(cluster: &'a Cluster, node: &str, result: VerifyResult) -> Self {
        cluster.set_verify_result(node, result);
        VerifyResultGuard {
            cluster,
            node: node.to_string(),
        }
    }
}

impl Drop for VerifyResultGuard<'_> {
    fn drop(&mut self) {
        let _ = run(self.cluster.kubectl().args([
            "annotate",
            "node",
            &self.node,
            "--overwrite",
            &format!("{VERIFY_RESULT_ANNOTATION}-"),
        ]));
    }
}

/// A namespace with a unique name, deleted when dropped.
pub struct TestNamespace<'a> {
    cluster: &'a Cluster,
    name: String,
}

impl<'a> TestNamespace<'a> {
    /// Create `<prefix>-<pid>-<n>`.
    pub fn new(cluster: &'a Cluster, prefix: &str) -> Self {
        Self::with_labels(cluster, prefix, &[])
    }

    /// Create it with labels, e.g. `("pod-security.kubernetes.io/enforce", "restricted")`.
    pub fn with_labels(cluster: &'a Cluster, prefix: &str, labels: &[(&str, &str)]) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let mut name = format!("{}-{}-{n}", prefix.to_lowercase(), std::process::id());
        name.truncate(63);
        let name = name.trim_end_matches('-').to_string();
        let mut manifest = format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels:\n    rke2gpu.test/e2e: \"true\"\n"
        );
        for (k, v) in labels {
            manifest.push_str(&format!("    {k}: {v:?}\n"));
        }
        cluster.run_with_stdin(cluster.kubectl().args(["create", "-f", "-"]), &manifest);
        TestNamespace { cluster, name }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestNamespace<'_> {
    fn drop(&mut self) {
        let _ = run(self.cluster.kubectl().args([
            "delete",
            "namespace",
            &self.name,
            "--wait=false",
            "--ignore-not-found",
        ]));
    }
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// `s` quoted for `sh` (`'...'`).
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The workspace root (this crate lives in `<root>/tests`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `target/<profile>` of the running test binary (`target/debug/deps/<test>` -> `target/debug`),
/// where cargo puts `kubectl-gpu` and `helm-rke2gpu`.
pub fn bin_dir() -> PathBuf {
    if let Ok(exe) = std::env::current_exe()
        && let Some(deps) = exe.parent()
        && deps.file_name() == Some(OsStr::new("deps"))
        && let Some(profile) = deps.parent()
    {
        return profile.to_path_buf();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    target.join("debug")
}

/// The one lock of the `it` test binary: tests that change the cluster (install the operator,
/// patch a node's containerd, run verify pods) hold it, so they run one at a time across all
/// modules, as they did when each area was its own test binary run after the other.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}
