//! `kubectl gpu patch-containerd` end to end (project issue 5): the real binary through
//! kubectl's plugin lookup, against the local test cluster, where `kubectl exec` into the
//! node-agent pod runs in a sandbox whose `/host` is the node's live fixture tree and whose
//! `systemctl` records its calls and re-renders `config.toml` on an RKE2 restart.
//! A port of `tests/e2e/scenarios/patch-containerd.sh`.
//!
//!   gpu-h200-0         RKE2 v1.33.10, containerd 2.2.2, v3 config importing config-v3.toml.d
//!   gpu-a100-legacy-0  RKE2 v1.30.14, containerd 1.7.27, v2 config, no imports
//!   worker-0           no GPU (used for the corrupt-TOML case)
//!
//! The expectations are written from the rules (docs/patch-containerd.md "How the
//! method is chosen", which cites k3s and rancher/rke2 at the tags it names), not from the tool's output. Every test takes one
//! process-wide lock (the nodes are shared) and a [`TreeGuard`] per node it changes, which
//! puts the node's `etc/`, `var/lib/` and `var/log/` back byte for byte when dropped, also on
//! panic.

use cluster_harness::Cluster;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::MutexGuard;
use std::time::Duration;

const H200: &str = "gpu-h200-0";
const A100: &str = "gpu-a100-legacy-0";
const WORKER: &str = "worker-0";
const K3S: &str = "gpu-k3s-0";
/// RKE2's containerd config dir (default data dir), relative to a node tree.
const CTD: &str = "var/lib/rancher/rke2/agent/etc/containerd";
/// What a timed-out wait inside the tool may take (each wait), in seconds.
const TOOL_TIMEOUT: &str = "90";
/// The dirs of a node tree a patch may touch (and the stub's restart log).
const SNAPSHOT_DIRS: [&str; 3] = ["etc", "var/lib", "var/log"];
const V3_RUNTIME: &str = "plugins.'io.containerd.cri.v1.runtime'.containerd";
const V2_CRI: &str = "plugins.\"io.containerd.grpc.v1.cri\".containerd";
const TOOLKIT_RUNTIME: &str = "/usr/local/nvidia/toolkit/nvidia-container-runtime";

fn lock() -> MutexGuard<'static, ()> {
    cluster_harness::serial()
}

// ---------------------------------------------------------------------------
// Node-tree snapshots
// ---------------------------------------------------------------------------

#[derive(Clone, PartialEq, Eq)]
struct Entry {
    bytes: Vec<u8>,
    mode: u32,
}

/// Files (content and mode) and dirs under `SNAPSHOT_DIRS` of a node tree.
#[derive(Default)]
struct Snapshot {
    files: BTreeMap<PathBuf, Entry>,
    dirs: BTreeSet<PathBuf>,
}

fn walk(root: &Path, rel: &Path, snap: &mut Snapshot) {
    let dir = root.join(rel);
    let Ok(rd) = fs::read_dir(&dir) else { return };
    snap.dirs.insert(rel.to_path_buf());
    for e in rd {
        let e = e.unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()));
        let r = rel.join(e.file_name());
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            walk(root, &r, snap);
        } else if ft.is_file() {
            let p = root.join(&r);
            let bytes = fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
            let mode = e.metadata().unwrap().permissions().mode() & 0o7777;
            snap.files.insert(r, Entry { bytes, mode });
        }
    }
}

fn snapshot(root: &Path) -> Snapshot {
    let mut s = Snapshot::default();
    for d in SNAPSHOT_DIRS {
        walk(root, Path::new(d), &mut s);
    }
    s
}

/// The files a "byte-identical" comparison looks at: everything under `etc/` and `var/lib/`
/// except the tool's backups (kept on purpose by a rollback).
fn compared(s: &Snapshot) -> BTreeMap<&Path, &[u8]> {
    s.files
        .iter()
        .filter(|(p, _)| !p.starts_with("var/log"))
        .filter(|(p, _)| !p.to_string_lossy().contains(".bak-kubectl-gpu-"))
        .map(|(p, e)| (p.as_path(), e.bytes.as_slice()))
        .collect()
}

/// Panics with the paths that differ.
fn assert_same_tree(what: &str, before: &Snapshot, after: &Snapshot) {
    let (a, b) = (compared(before), compared(after));
    if a == b {
        return;
    }
    let mut diffs = Vec::new();
    for p in a.keys().chain(b.keys()).collect::<BTreeSet<_>>() {
        match (a.get(p), b.get(p)) {
            (Some(x), Some(y)) if x != y => diffs.push(format!(
                "changed {}:\n--- before\n{}\n--- after\n{}",
                p.display(),
                String::from_utf8_lossy(x),
                String::from_utf8_lossy(y)
            )),
            (Some(_), None) => diffs.push(format!("removed {}", p.display())),
            (None, Some(_)) => diffs.push(format!("added {}", p.display())),
            _ => {}
        }
    }
    panic!(
        "{what}: node tree not byte-identical:\n{}",
        diffs.join("\n")
    );
}

/// Puts a node tree back as it was when the guard was made (files, modes, dirs), when dropped.
struct TreeGuard {
    root: PathBuf,
    before: Snapshot,
}

impl TreeGuard {
    fn new(c: &Cluster, node: &str) -> Self {
        let root = c.node_tree(node);
        let before = snapshot(&root);
        assert!(
            !before.files.is_empty(),
            "{node}: empty node tree {}",
            root.display()
        );
        TreeGuard { root, before }
    }

    fn now(&self) -> Snapshot {
        snapshot(&self.root)
    }

    fn restore(&self) {
        let now = self.now();
        for p in now.files.keys() {
            if !self.before.files.contains_key(p) {
                let _ = fs::remove_file(self.root.join(p));
            }
        }
        // Deepest first, so a created dir's created parents go too.
        for d in now.dirs.iter().rev() {
            if !self.before.dirs.contains(d) {
                let _ = fs::remove_dir_all(self.root.join(d));
            }
        }
        for d in &self.before.dirs {
            let _ = fs::create_dir_all(self.root.join(d));
        }
        for (p, e) in &self.before.files {
            if now.files.get(p) != Some(e) {
                let path = self.root.join(p);
                if let Err(err) = fs::write(&path, &e.bytes)
                    .and_then(|_| fs::set_permissions(&path, fs::Permissions::from_mode(e.mode)))
                {
                    eprintln!("TreeGuard: cannot restore {}: {err}", path.display());
                }
            }
        }
    }
}

impl Drop for TreeGuard {
    fn drop(&mut self) {
        self.restore();
    }
}

// ---------------------------------------------------------------------------
// Running the tool
// ---------------------------------------------------------------------------

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn show(&self) -> String {
        format!(
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.show()))
    }

    /// The single node of a `-o json` report.
    fn node(&self) -> Value {
        let v = self.json();
        let nodes = v["nodes"].as_array().cloned().unwrap_or_default();
        assert_eq!(nodes.len(), 1, "one node expected:\n{}", self.show());
        nodes[0].clone()
    }
}

/// `kubectl gpu patch-containerd ARGS...` (through kubectl's plugin lookup).
fn patch(c: &Cluster, args: &[&str]) -> Run {
    let out: Output = c
        .kubectl()
        .args(["gpu", "patch-containerd", "--timeout", TOOL_TIMEOUT])
        .args(args)
        .output()
        .expect("run kubectl gpu patch-containerd");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn new_calls(c: &Cluster, node: &str, before: usize) -> Vec<String> {
    c.systemctl_calls(node).into_iter().skip(before).collect()
}

/// Exactly one restart, of `unit`, in the calls recorded since `before`.
fn assert_one_restart(c: &Cluster, node: &str, before: usize, unit: &str) {
    let calls = new_calls(c, node, before);
    let restarts: Vec<_> = calls.iter().filter(|l| l.contains("restart")).collect();
    assert_eq!(
        restarts.len(),
        1,
        "{node}: one restart expected, got {calls:?}"
    );
    let words: Vec<&str> = restarts[0].split_whitespace().collect();
    assert!(
        words.first() == Some(&"systemctl") && words.ends_with(&["restart", unit]),
        "{node}: expected `systemctl ... restart {unit}`, got {:?}",
        restarts[0]
    );
}

/// No node-agent pod is left behind (deletion may take a moment to be observed).
fn assert_no_agent_pod(c: &Cluster) {
    let list = || {
        let out = c
            .kubectl()
            .args([
                "get",
                "pods",
                "-A",
                "-l",
                "app.kubernetes.io/managed-by=kubectl-gpu,app.kubernetes.io/component=node-agent",
                "-o",
                "name",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    c.wait_until(Duration::from_secs(60), "no node-agent pod left", || {
        list().is_empty()
    });
}

/// The body of a TOML table `[name]` (up to the next header), if declared.
fn toml_table(text: &str, name: &str) -> Option<String> {
    let header = format!("[{name}]");
    let mut lines = text.lines();
    lines.position(|l| l.trim() == header)?;
    Some(
        lines
            .take_while(|l| !l.trim_start().starts_with('['))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// `key = value` (value as written) in a TOML table body.
fn toml_value<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    body.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// The header forms a runtime table may be written with: `runtimes.X`, `runtimes."X"`,
/// `runtimes.'X'`.
fn runtime_table(text: &str, prefix: &str, runtime: &str, sub: &str) -> Option<String> {
    ["", "\"", "'"]
        .iter()
        .find_map(|q| toml_table(text, &format!("{prefix}.runtimes.{q}{runtime}{q}{sub}")))
}

/// A runtime that is loadable as the NVIDIA toolkit writes it: `runtime_type =
/// "io.containerd.runc.v2"` and `options.BinaryName`.
fn assert_runtime(text: &str, prefix: &str, runtime: &str, binary: &str, what: &str) {
    let t = runtime_table(text, prefix, runtime, "")
        .unwrap_or_else(|| panic!("{what}: no [{prefix}.runtimes.{runtime}] table:\n{text}"));
    assert_eq!(
        toml_value(&t, "runtime_type"),
        Some("\"io.containerd.runc.v2\""),
        "{what}: runtime_type of {runtime}:\n{text}"
    );
    let o = runtime_table(text, prefix, runtime, ".options")
        .unwrap_or_else(|| panic!("{what}: no {runtime}.options table:\n{text}"));
    assert_eq!(
        toml_value(&o, "BinaryName"),
        Some(format!("\"{binary}\"").as_str()),
        "{what}: BinaryName of {runtime}:\n{text}"
    );
}

fn read(c: &Cluster, node: &str, rel: &str) -> String {
    c.read_node_file(node, rel)
}

fn exists(c: &Cluster, node: &str, rel: &str) -> bool {
    c.node_path(node, rel).exists()
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn dry_run_shows_the_diff_and_changes_nothing() {
    let c = Cluster::shared();
    let _l = lock();
    let g = TreeGuard::new(c, H200);
    let calls = c.systemctl_calls(H200).len();

    let r = patch(c, &["--node", H200, "--set-as-default"]);
    assert_eq!(r.code, Some(0), "{}", r.show());
    let dropin = format!("{CTD}/config-v3.toml.d/99-nvidia.toml");
    assert!(
        r.stdout.contains(&format!("+++ b/{dropin}")),
        "diff of the drop-in expected:\n{}",
        r.show()
    );
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with('+') && l.contains("default_runtime_name = \"nvidia\"")),
        "{}",
        r.show()
    );
    assert!(r.stdout.contains("drop-in"), "{}", r.show());
    assert_same_tree("dry run", &g.before, &g.now());
    assert!(!exists(c, H200, &dropin));
    assert_eq!(c.systemctl_calls(H200).len(), calls, "dry run restarted");

    // The same as JSON: planned, one file to create.
    let r = patch(c, &["--node", H200, "--set-as-default", "-o", "json"]);
    assert_eq!(r.code, Some(0), "{}", r.show());
    let n = r.node();
    assert_eq!(n["outcome"], "planned", "{n:#}");
    assert_eq!(n["method"], "drop-in", "{n:#}");
    assert_eq!(n["files"][0]["action"], "create", "{n:#}");
    assert_eq!(n["files"][0]["path"], format!("/{dropin}"), "{n:#}");
    assert_same_tree("dry run -o json", &g.before, &g.now());
    assert_eq!(c.systemctl_calls(H200).len(), calls, "dry run restarted");
    assert_no_agent_pod(c);
}

#[test]
fn v3_node_drop_in_apply_confirm_noop_and_rollback() {
    let c = Cluster::shared();
    let _l = lock();
    let g = TreeGuard::new(c, H200);
    let dropin = format!("{CTD}/config-v3.toml.d/99-nvidia.toml");
    let calls = c.systemctl_calls(H200).len();

    // RKE2 v1.33.10+rke2r1 imports config-v3.toml.d/*.toml and containerd 2.2 merges imported
    // plugin tables: the drop-in is the method. A runtime RKE2 does not render itself.
    let r = patch(
        c,
        &[
            "--node",
            H200,
            "--runtime-name",
            "nvidia-e2e",
            "--set-as-default",
            "--apply",
            "-o",
            "json",
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.show());
    let n = r.node();
    assert_eq!(n["outcome"], "confirmed", "{n:#}");
    assert_eq!(n["method"], "drop-in", "{n:#}");
    assert_eq!(n["confirmed"], true, "{n:#}");
    assert_eq!(n["restart_unit"], "rke2-agent", "{n:#}");

    let text = read(c, H200, &dropin);
    // Same version as the root config (3).
    assert_eq!(
        text.lines()
            .find(|l| l.starts_with("version"))
            .map(str::trim),
        Some("version = 3"),
        "{text}"
    );
    assert_runtime(&text, V3_RUNTIME, "nvidia-e2e", TOOLKIT_RUNTIME, "drop-in");
    let cri = toml_table(&text, V3_RUNTIME).unwrap_or_else(|| panic!("no [{V3_RUNTIME}]:\n{text}"));
    assert_eq!(
        toml_value(&cri, "default_runtime_name"),
        Some("\"nvidia-e2e\""),
        "{text}"
    );
    // The runc table RKE2 renders is not redeclared.
    assert!(
        runtime_table(&text, V3_RUNTIME, "runc", "").is_none(),
        "{text}"
    );
    // The generated config.toml is never edited (RKE2 rewrites it) and still imports the dir.
    let root_before = &g.before.files[Path::new(&format!("{CTD}/config.toml"))].bytes;
    assert_eq!(
        read(c, H200, &format!("{CTD}/config.toml")).as_bytes(),
        root_before.as_slice(),
        "config.toml changed by a drop-in patch"
    );
    assert_one_restart(c, H200, calls, "rke2-agent");
    assert_no_agent_pod(c);

    // Second run: nothing to do, no restart.
    let calls2 = c.systemctl_calls(H200).len();
    let after_apply = g.now();
    let r = patch(
        c,
        &[
            "--node",
            H200,
            "--runtime-name",
            "nvidia-e2e",
            "--set-as-default",
            "--apply",
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.show());
    assert!(
        r.stdout.to_lowercase().contains("nothing to do"),
        "{}",
        r.show()
    );
    assert_eq!(c.systemctl_calls(H200).len(), calls2, "no-op run restarted");
    assert_same_tree("second run", &after_apply, &g.now());

    // Rollback: dry run lists the removal, --apply restores byte for byte and restarts.
    let r = patch(c, &["--node", H200, "--rollback"]);
    assert_eq!(r.code, Some(0), "{}", r.show());
    assert!(r.stdout.contains(&format!("/{dropin}")), "{}", r.show());
    assert!(
        exists(c, H200, &dropin),
        "rollback dry run removed the drop-in"
    );
    let calls3 = c.systemctl_calls(H200).len();
    let r = patch(c, &["--node", H200, "--rollback", "--apply", "-o", "json"]);
    assert_eq!(r.code, Some(0), "{}", r.show());
    assert_eq!(r.node()["outcome"], "rolled-back", "{}", r.show());
    assert_same_tree("rollback", &g.before, &g.now());
    assert_one_restart(c, H200, calls3, "rke2-agent");
    let r = patch(c, &["--node", H200, "--rollback", "--apply"]);
    assert_eq!(r.code, Some(0), "{}", r.show());
    assert!(
        r.stdout.to_lowercase().contains("nothing to do"),
        "{}",
        r.show()
    );
    assert_no_agent_pod(c);
}

#[test]
fn v3_node_default_only_drop_in() {
    // RKE2 already renders `nvidia` (it found the toolkit binary): only the default is missing.
    let c = Cluster::shared();
    let _l = lock();
    let g = TreeGuard::new(c, H200);
    let dropin = format!("{CTD}/config-v3.toml.d/99-nvidia.toml");
    let calls = c.systemctl_calls(H200).len();
    let r = patch(
        c,
        &["--node", H200, "--set-as-default", "--apply", "-o", "json"],
    );
    assert_eq!(r.code, Some(0), "{}", r.show());
    let n = r.node();
    assert_eq!(n["outcome"], "confirmed", "{n:#}");
    assert_eq!(n["method"], "drop-in", "{n:#}");
    let text = read(c, H200, &dropin);
    assert!(text.lines().any(|l| l.trim() == "version = 3"), "{text}");
    let cri = toml_table(&text, V3_RUNTIME).unwrap_or_else(|| panic!("no [{V3_RUNTIME}]:\n{text}"));
    assert_eq!(
        toml_value(&cri, "default_runtime_name"),
        Some("\"nvidia\""),
        "{text}"
    );
    // If the drop-in declares the runtime at all, it is the loadable toolkit runtime.
    if runtime_table(&text, V3_RUNTIME, "nvidia", "").is_some() {
        assert_runtime(&text, V3_RUNTIME, "nvidia", TOOLKIT_RUNTIME, "drop-in");
    }
    assert_one_restart(c, H200, calls, "rke2-agent");
    let r = patch(c, &["--node", H200, "--rollback", "--apply"]);
    assert_eq!(r.code, Some(0), "{}", r.show());
    assert_same_tree("rollback", &g.before, &g.now());
    assert_no_agent_pod(c);
}

#[test]
fn v2_node_default_runtime_file() {
    // RKE2 v1.30.14 (>= v1.28.5) has the `default-runtime` flag and already renders `nvidia`
    // (toolkit binary present): with --set-as-default only the default is missing, so the
    // method is 99-gpu.yaml with `default-runtime: nvidia`; no template, no drop-in.
    let c = Cluster::shared();
    let _l = lock();
    let g = TreeGuard::new(c, A100);
    let calls = c.systemctl_calls(A100).len();
    let yaml = "etc/rancher/rke2/config.yaml.d/99-gpu.yaml";
    let r = patch(
        c,
        &["--node", A100, "--set-as-default", "--apply", "-o", "json"],
    );
    assert_eq!(r.code, Some(0), "{}", r.show());
    let n = r.node();
    assert_eq!(n["outcome"], "confirmed", "{n:#}");
    assert_eq!(n["method"], "default-runtime", "{n:#}");
    assert_eq!(n["confirmed"], true, "{n:#}");
    let text = read(c, A100, yaml);
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix("default-runtime:"))
        .map(|v| v.trim().trim_matches('"'));
    assert_eq!(value, Some("nvidia"), "{text}");
    assert!(!exists(c, A100, &format!("{CTD}/config.toml.tmpl")));
    assert!(!exists(c, A100, &format!("{CTD}/config-v3.toml.tmpl")));
    // RKE2 (the stub) re-rendered config.toml with the default.
    let cfg = read(c, A100, &format!("{CTD}/config.toml"));
    let cri = toml_table(&cfg, V2_CRI).unwrap_or_else(|| panic!("no [{V2_CRI}]:\n{cfg}"));
    assert_eq!(
        toml_value(&cri, "default_runtime_name"),
        Some("\"nvidia\""),
        "{cfg}"
    );
    assert_runtime(&cfg, V2_CRI, "nvidia", TOOLKIT_RUNTIME, "config.toml");
    assert_one_restart(c, A100, calls, "rke2-agent");
    assert_no_agent_pod(c);

    let calls2 = c.systemctl_calls(A100).len();
    let r = patch(c, &["--node", A100, "--set-as-default", "--apply"]);
    assert_eq!(r.code, Some(0), "{}", r.show());
    assert!(
        r.stdout.to_lowercase().contains("nothing to do"),
        "{}",
        r.show()
    );
    assert_eq!(c.systemctl_calls(A100).len(), calls2, "no-op run restarted");

    let r = patch(c, &["--node", A100, "--rollback", "--apply", "-o", "json"]);
    assert_eq!(r.code, Some(0), "{}", r.show());
    assert_eq!(r.node()["outcome"], "rolled-back", "{}", r.show());
    // config.toml is re-rendered as before (no default).
    assert_same_tree("rollback", &g.before, &g.now());
    assert_no_agent_pod(c);
}

#[test]
fn v2_node_custom_runtime_base_template() {
    // A runtime RKE2 does not detect: the only way on a v2 node without imports is a
    // config.toml.tmpl that starts with {{ template "base" . }} and adds the runtime tables.
    let c = Cluster::shared();
    let _l = lock();
    let g = TreeGuard::new(c, A100);
    let calls = c.systemctl_calls(A100).len();
    let tmpl = format!("{CTD}/config.toml.tmpl");
    let r = patch(
        c,
        &[
            "--node",
            A100,
            "--runtime-name",
            "nvidia-custom",
            "--apply",
            "-o",
            "json",
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.show());
    let n = r.node();
    assert_eq!(n["outcome"], "confirmed", "{n:#}");
    assert_eq!(n["method"], "template", "{n:#}");
    let text = read(c, A100, &tmpl);
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .unwrap_or_default();
    assert!(
        first.contains("{{ template \"base\" . }}"),
        "first line of the template:\n{text}"
    );
    // v2 schema (containerd 1.7), never a v3 template on this node.
    assert!(!exists(c, A100, &format!("{CTD}/config-v3.toml.tmpl")));
    assert_runtime(&text, V2_CRI, "nvidia-custom", TOOLKIT_RUNTIME, "template");
    for base in ["runc", "nvidia"] {
        assert!(
            runtime_table(&text, V2_CRI, base, "").is_none(),
            "template redeclares {base}, which the base renders:\n{text}"
        );
    }
    // The re-rendered config.toml has the custom runtime.
    let cfg = read(c, A100, &format!("{CTD}/config.toml"));
    assert_runtime(
        &cfg,
        V2_CRI,
        "nvidia-custom",
        TOOLKIT_RUNTIME,
        "config.toml",
    );
    assert_one_restart(c, A100, calls, "rke2-agent");

    let calls2 = c.systemctl_calls(A100).len();
    let r = patch(
        c,
        &["--node", A100, "--runtime-name", "nvidia-custom", "--apply"],
    );
    assert_eq!(r.code, Some(0), "{}", r.show());
    assert!(
        r.stdout.to_lowercase().contains("nothing to do"),
        "{}",
        r.show()
    );
    assert_eq!(c.systemctl_calls(A100).len(), calls2, "no-op run restarted");

    let r = patch(c, &["--node", A100, "--rollback", "--apply"]);
    assert_eq!(r.code, Some(0), "{}", r.show());
    assert_same_tree("rollback", &g.before, &g.now());
    assert_no_agent_pod(c);
}

#[test]
fn stacked_patches_on_two_nodes_roll_back_in_one_run() {
    // As the shell scenario: the drop-in on the v3 node, then on the v2 node default-runtime
    // and a template for a second runtime; one rollback of both nodes restores both trees.
    let c = Cluster::shared();
    let _l = lock();
    let gh = TreeGuard::new(c, H200);
    let ga = TreeGuard::new(c, A100);
    for args in [
        &["--node", H200, "--set-as-default"][..],
        &["--node", A100, "--set-as-default"][..],
        &["--node", A100, "--runtime-name", "nvidia-custom"][..],
    ] {
        let mut a = args.to_vec();
        a.extend(["--apply", "-o", "json"]);
        let r = patch(c, &a);
        assert_eq!(r.code, Some(0), "{args:?}: {}", r.show());
        assert_eq!(r.node()["outcome"], "confirmed", "{args:?}: {}", r.show());
    }
    // Both patches are live in the re-rendered v2 config.
    let cfg = read(c, A100, &format!("{CTD}/config.toml"));
    let cri = toml_table(&cfg, V2_CRI).unwrap_or_else(|| panic!("no [{V2_CRI}]:\n{cfg}"));
    assert_eq!(
        toml_value(&cri, "default_runtime_name"),
        Some("\"nvidia\""),
        "{cfg}"
    );
    assert_runtime(
        &cfg,
        V2_CRI,
        "nvidia-custom",
        TOOLKIT_RUNTIME,
        "config.toml",
    );

    let r = patch(
        c,
        &[
            "--node",
            H200,
            "--node",
            A100,
            "--rollback",
            "--apply",
            "-o",
            "json",
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.show());
    let outcomes: Vec<Value> = r.json()["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["outcome"].clone())
        .collect();
    assert_eq!(outcomes, ["rolled-back", "rolled-back"], "{}", r.show());
    assert_same_tree("v3 rollback", &gh.before, &gh.now());
    assert_same_tree(
        "v2 rollback (config.toml re-rendered)",
        &ga.before,
        &ga.now(),
    );
    let r = patch(
        c,
        &["--node", H200, "--node", A100, "--rollback", "--apply"],
    );
    assert_eq!(r.code, Some(0), "{}", r.show());
    assert!(r.stdout.contains("Nothing to do"), "{}", r.show());
    assert_no_agent_pod(c);
}

#[test]
fn k3s_node_default_runtime_restarts_k3s_agent() {
    // K3s v1.33.5 (containerd 2.1.4, no imports) renders `nvidia` itself: default-runtime in
    // K3s's own config dir, and the unit is k3s-agent.
    let c = Cluster::shared();
    let _l = lock();
    let g = TreeGuard::new(c, K3S);
    let calls = c.systemctl_calls(K3S).len();
    let r = patch(
        c,
        &["--node", K3S, "--set-as-default", "--apply", "-o", "json"],
    );
    assert_eq!(r.code, Some(0), "{}", r.show());
    let n = r.node();
    assert_eq!(n["outcome"], "confirmed", "{n:#}");
    assert_eq!(n["method"], "default-runtime", "{n:#}");
    assert_eq!(n["restart_unit"], "k3s-agent", "{n:#}");
    let text = read(c, K3S, "etc/rancher/k3s/config.yaml.d/99-gpu.yaml");
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix("default-runtime:"))
        .map(|v| v.trim().trim_matches('"'));
    assert_eq!(value, Some("nvidia"), "{text}");
    assert_one_restart(c, K3S, calls, "k3s-agent");
    let r = patch(c, &["--node", K3S, "--rollback", "--apply"]);
    assert_eq!(r.code, Some(0), "{}", r.show());
    assert_same_tree("rollback", &g.before, &g.now());
    assert_no_agent_pod(c);
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let c = Cluster::shared();
    let _l = lock();

    // Unknown node: exit 2.
    let r = patch(c, &["--node", "no-such-node"]);
    assert_eq!(r.code, Some(2), "{}", r.show());
    assert!(r.stderr.contains("no-such-node"), "{}", r.show());

    // A forced method the node cannot do: the v2 node imports nothing, so no drop-in.
    let ga = TreeGuard::new(c, A100);
    let calls = c.systemctl_calls(A100).len();
    for apply in [false, true] {
        let mut args = vec!["--node", A100, "--set-as-default", "--method", "drop-in"];
        if apply {
            args.push("--apply");
        }
        let r = patch(c, &args);
        assert_eq!(r.code, Some(1), "{}", r.show());
        assert!(
            r.stdout.contains("method drop-in cannot be used"),
            "the reason is named: {}",
            r.show()
        );
        assert_same_tree("forced drop-in", &ga.before, &ga.now());
    }
    assert_eq!(c.systemctl_calls(A100).len(), calls);

    // A default RKE2 cannot render: RKE2 only detects nvidia, nvidia-experimental and
    // nvidia-cdi, so `default-runtime: nvidia-custom` would stop RKE2 from starting.
    let r = patch(
        c,
        &[
            "--node",
            A100,
            "--runtime-name",
            "nvidia-custom",
            "--set-as-default",
            "--method",
            "default-runtime",
            "--apply",
        ],
    );
    assert_eq!(r.code, Some(1), "{}", r.show());
    assert!(r.stdout.contains("cannot be used"), "{}", r.show());
    assert_same_tree("forced default-runtime", &ga.before, &ga.now());
    assert_eq!(c.systemctl_calls(A100).len(), calls);

    // Unparseable config.toml: exit 1, line named, nothing written, no restart.
    let gw = TreeGuard::new(c, WORKER);
    c.write_node_file(
        WORKER,
        &format!("{CTD}/config.toml"),
        "version = 3\n[plugins\n",
    );
    let seeded = gw.now();
    let wcalls = c.systemctl_calls(WORKER).len();
    let r = patch(c, &["--node", WORKER, "--apply"]);
    assert_eq!(r.code, Some(1), "{}", r.show());
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("line 2"), "{}", r.show());
    assert_same_tree("corrupt TOML", &seeded, &gw.now());
    assert_eq!(c.systemctl_calls(WORKER).len(), wcalls);
    drop(gw);
    assert_no_agent_pod(c);
}

#[test]
fn offline_out_dir_needs_no_cluster() {
    let c = Cluster::shared();
    let _l = lock();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let cfg = c.node_path(H200, &format!("/{CTD}/config.toml"));
    let o = c
        .cmd("kubectl-gpu")
        .env("KUBECONFIG", "/nonexistent")
        .args(["patch-containerd", "--config-file"])
        .arg(&cfg)
        .args([
            "--rke2-version",
            "v1.33.10+rke2r1",
            "--containerd-version",
            "2.2.2",
            "--set-as-default",
            "--out-dir",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let so = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{so}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let dropin = out.join(format!("{CTD}/config-v3.toml.d/99-nvidia.toml"));
    assert!(so.contains("config-v3.toml.d/99-nvidia.toml"), "{so}");
    let text = fs::read_to_string(&dropin).unwrap();
    assert!(text.lines().any(|l| l.trim() == "version = 3"), "{text}");
    assert!(out.join("rendered/effective-config.toml").is_file());
}

/// `kubectl-gpu patch-containerd --node-root DIR ARGS... -o json` (offline, no cluster).
fn patch_offline(c: &Cluster, root: &Path, args: &[&str]) -> Run {
    let out: Output = c
        .cmd("kubectl-gpu")
        .env("KUBECONFIG", "/nonexistent")
        .args(["patch-containerd", "--node-root"])
        .arg(root)
        .args(args)
        .output()
        .expect("run kubectl-gpu patch-containerd --node-root");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// What both modes must agree on in a node report (the unit and node name
/// differ by design: offline knows neither the node's role nor its name).
fn plan_fields(node: &Value) -> Value {
    serde_json::json!({
        "outcome": node["outcome"],
        "method": node["method"],
        "reasons": node["reasons"],
        "files": node["files"],
        "error": node["error"],
    })
}

/// Offline mode over a node's tree plans what cluster mode plans through the node-agent pod
/// whose `/host` is that tree: `--node N -o json` (dry run) equals `--node-root
/// tests/node-trees/N -o json` with the node's RKE2 and containerd versions.
#[test]
fn offline_node_root_plans_what_the_cluster_plans() {
    let c = Cluster::shared();
    let _l = lock();
    for node in [H200, A100, K3S, WORKER] {
        let info: Value =
            serde_json::from_str(&c.run_ok(c.kubectl().args(["get", "node", node, "-o", "json"])))
                .unwrap();
        let ni = &info["status"]["nodeInfo"];
        let kubelet = ni["kubeletVersion"].as_str().unwrap().to_owned();
        let containerd = ni["containerRuntimeVersion"].as_str().unwrap().to_owned();
        let tree = c.repo_root().join("tests/node-trees").join(node);
        for extra in [&[][..], &["--set-as-default"][..]] {
            let mut args = vec!["--node", node, "-o", "json"];
            args.extend_from_slice(extra);
            let cluster = patch(c, &args);
            let mut off_args = vec![
                "--rke2-version",
                kubelet.as_str(),
                "--containerd-version",
                containerd.as_str(),
                "-o",
                "json",
            ];
            off_args.extend_from_slice(extra);
            let offline = patch_offline(c, &tree, &off_args);
            assert_eq!(
                cluster.code,
                offline.code,
                "{node} {extra:?}: exit codes\ncluster:\n{}\noffline:\n{}",
                cluster.show(),
                offline.show()
            );
            assert_eq!(
                plan_fields(&cluster.node()),
                plan_fields(&offline.json()["report"]),
                "{node} {extra:?}\ncluster:\n{}\noffline:\n{}",
                cluster.show(),
                offline.show()
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Broken user templates (issue 13): a template that redeclares a table the base renders
// ---------------------------------------------------------------------------

/// A case of tests/fixtures/containerd-toml-errors/cases.json: (template file, template text).
pub(crate) fn broken_template(c: &Cluster, name: &str) -> (String, String) {
    let p = c.fixture("containerd-toml-errors/cases.json");
    let v: Value = serde_json::from_str(&fs::read_to_string(&p).expect("cases.json")).unwrap();
    let case = v
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == name))
        .unwrap_or_else(|| panic!("no case {name} in {}", p.display()))
        .clone();
    (
        case["template_file"].as_str().unwrap().to_owned(),
        case["template"].as_str().unwrap().to_owned(),
    )
}

/// Writes the template and renders config.toml from it with the real k3s templates, as RKE2
/// does at its next start (render-config, the sandbox's own restart renderer).
pub(crate) fn write_broken_template(c: &Cluster, node: &str, file: &str, text: &str) {
    c.write_node_file(node, &format!("{CTD}/{file}"), text);
    let out = std::process::Command::new(c.var("RKE2GPU_RENDER_CONFIG"))
        .arg("render")
        .arg("--root")
        .arg(c.node_tree(node))
        .args(["--profile", node])
        .output()
        .expect("render-config");
    assert!(
        out.status.success(),
        "render-config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `containerd config dump` of a node tree's config.toml (imports pointed into the tree):
/// exit code and the last `containerd:` line.
fn containerd_dump(c: &Cluster, node: &str, bin: &Path) -> (Option<i32>, String) {
    let tree = c.node_tree(node);
    let text = read(c, node, &format!("{CTD}/config.toml"));
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("config.toml");
    fs::write(
        &cfg,
        text.replace(
            &format!("\"/{CTD}/"),
            &format!("\"{}/{CTD}/", tree.display()),
        ),
    )
    .unwrap();
    let out = std::process::Command::new(bin)
        .arg("--config")
        .arg(&cfg)
        .args(["config", "dump"])
        .output()
        .expect("containerd");
    let line = String::from_utf8_lossy(&out.stderr)
        .lines()
        .rfind(|l| l.starts_with("containerd: "))
        .unwrap_or_default()
        .replace(&tmp.path().display().to_string(), &format!("/{CTD}"));
    (out.status.code(), line)
}

#[test]
fn v3_node_broken_template_is_named_repaired_confirmed_and_rolled_back() {
    let c = Cluster::shared();
    let _l = lock();
    let g = TreeGuard::new(c, H200);
    let (file, text) = broken_template(c, "v3-images-double-quoted");
    let tmpl = format!("{CTD}/{file}");
    write_broken_template(c, H200, &file, &text);
    let broken = g.now();
    // Real containerd refuses what RKE2 rendered.
    let (code, line) = containerd_dump(c, H200, c.containerd2_bin());
    assert_eq!(code, Some(1), "{line}");
    assert!(
        line.contains("toml: table io.containerd.cri.v1.images already exists"),
        "{line}"
    );

    // check-runtime --deep names the template, its line, the table and why, in containerd's
    // words (containerd 2.2 on this node: go-toml/v2 v2.2.4, no row).
    let out = c
        .kubectl()
        .args([
            "gpu",
            "check-runtime",
            "--deep",
            "--node",
            H200,
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    let findings = report["findings"].as_array().cloned().unwrap_or_default();
    let f = findings
        .iter()
        .find(|f| f["id"] == "template-tables")
        .unwrap_or_else(|| panic!("no template-tables finding: {report:#}"));
    assert_eq!(f["status"], "fail", "{f:#}");
    let m = f["message"].as_str().unwrap_or_default();
    for w in [
        &format!("/{tmpl} line 3:") as &str,
        "[plugins.\"io.containerd.cri.v1.images\"]",
        "already renders as [plugins.'io.containerd.cri.v1.images']",
        "`containerd: failed to unmarshal TOML: toml: table io.containerd.cri.v1.images already exists`",
    ] {
        assert!(m.contains(w), "`{w}` missing: {m}");
    }
    assert!(
        f["fix"]
            .as_str()
            .unwrap_or_default()
            .contains("kubectl gpu patch-containerd --node gpu-h200-0"),
        "{f:#}"
    );
    assert_no_agent_pod(c);

    // Dry run: the diff moves the table into a drop-in and keeps the rest; nothing written.
    let calls = c.systemctl_calls(H200).len();
    let r = patch(c, &["--node", H200]);
    assert_eq!(r.code, Some(0), "{}", r.show());
    let dropin = format!("{CTD}/config-v3.toml.d/50-template-tables.toml");
    assert!(r.stdout.contains(&format!("+++ b/{tmpl}")), "{}", r.show());
    assert!(
        r.stdout.contains(&format!("+++ b/{dropin}")),
        "{}",
        r.show()
    );
    assert!(
        r.stdout.contains(&format!("/{tmpl} line 3:")),
        "{}",
        r.show()
    );
    assert!(r.stdout.contains("already exists"), "{}", r.show());
    assert_same_tree("dry run", &broken, &g.now());
    assert_eq!(c.systemctl_calls(H200).len(), calls, "dry run restarted");
    // Offline over the same tree (the sandbox's /host) plans the same repair.
    let cluster = patch(c, &["--node", H200, "-o", "json"]);
    let offline = patch_offline(
        c,
        &c.node_tree(H200),
        &[
            "--rke2-version",
            "v1.33.10+rke2r1",
            "--containerd-version",
            "containerd://2.2.2-k3s1",
            "-o",
            "json",
        ],
    );
    assert_eq!(
        plan_fields(&cluster.node()),
        plan_fields(&offline.json()["report"]),
        "cluster:\n{}\noffline:\n{}",
        cluster.show(),
        offline.show()
    );
    assert_same_tree("offline dry run", &broken, &g.now());

    // Apply: backup, atomic writes, one restart (the stub re-renders config.toml), confirmed
    // with the user's key still in effect.
    let r = patch(c, &["--node", H200, "--apply", "-o", "json"]);
    assert_eq!(r.code, Some(0), "{}", r.show());
    let n = r.node();
    assert_eq!(n["outcome"], "confirmed", "{n:#}");
    let evidence = n["evidence"].to_string();
    assert!(
        evidence.contains("snapshotter = \\\"native\\\" (the template's, still in effect)"),
        "{n:#}"
    );
    assert_one_restart(c, H200, calls, "rke2-agent");
    assert!(
        !read(c, H200, &tmpl).contains("io.containerd.cri.v1.images"),
        "the table left the template"
    );
    let d = read(c, H200, &dropin);
    let images = toml_table(&d, "plugins.\"io.containerd.cri.v1.images\"")
        .unwrap_or_else(|| panic!("no images table in the drop-in:\n{d}"));
    assert_eq!(
        toml_value(&images, "snapshotter"),
        Some("\"native\""),
        "{d}"
    );
    let backups: Vec<_> = fs::read_dir(c.node_path(H200, CTD))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{file}.bak-kubectl-gpu-")))
        .collect();
    assert_eq!(backups.len(), 1, "one backup of the template: {backups:?}");
    // Real containerd loads what RKE2 rendered now, the drop-in merged.
    let (code, line) = containerd_dump(c, H200, c.containerd2_bin());
    assert_eq!(code, Some(0), "{line}");
    assert_no_agent_pod(c);

    // Rollback puts the user's files back byte for byte and RKE2 renders them again: the
    // broken config is back, and the report says why, naming the template, not config.toml.
    let r = patch(c, &["--node", H200, "--rollback", "--apply", "-o", "json"]);
    assert_eq!(r.code, Some(1), "{}", r.show());
    let n = r.node();
    assert_eq!(n["outcome"], "unconfirmed", "{n:#}");
    let problems = n["problems"].to_string();
    assert!(problems.contains(&format!("/{tmpl} line 3:")), "{n:#}");
    assert!(problems.contains("already exists"), "{n:#}");
    assert_same_tree("rollback", &broken, &g.now());
    assert_no_agent_pod(c);
}

#[test]
fn v2_node_on_containerd_1_7_refuses_what_cannot_move_and_says_why() {
    let c = Cluster::shared();
    let _l = lock();
    let g = TreeGuard::new(c, A100);
    let (file, text) = broken_template(c, "v2-cri-table");
    write_broken_template(c, A100, &file, &text);
    let broken = g.now();
    let (code, line) = containerd_dump(c, A100, c.containerd17_bin());
    assert_eq!(code, Some(1), "{line}");
    let calls = c.systemctl_calls(A100).len();
    let r = patch(c, &["--node", A100, "--apply"]);
    assert_eq!(r.code, Some(1), "{}", r.show());
    for w in [
        &format!("/{CTD}/{file} line 3:") as &str,
        "[plugins.\"io.containerd.grpc.v1.cri\"]",
        line.as_str(),
        "replaces a whole plugin table",
        "enable_cdi = true",
    ] {
        assert!(
            r.stdout.contains(w) || r.stderr.contains(w),
            "`{w}` missing:\n{}",
            r.show()
        );
    }
    assert_same_tree("refused", &broken, &g.now());
    assert_eq!(c.systemctl_calls(A100).len(), calls, "refusal restarted");
    assert_no_agent_pod(c);
}
