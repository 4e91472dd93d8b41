//! `tests/e2e/cluster down` leaves nothing of the real nodes behind: no process (in their PID,
//! network or mount namespaces, or recorded by `up`), no mount, no cgroup, no veth, no file.
//! Runs its own cluster (own name), with a pod on each real node and one node's init killed
//! with SIGKILL first (its containers die with the PID namespace, its cgroups stay for `down`).
//! The checks read /proc, /sys and the file system directly.

use cluster_harness::{Cluster, repo_root};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn cache_dir() -> PathBuf {
    std::env::var_os("RKE2GPU_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&std::env::var("HOME").unwrap()).join(".cache/rke2gpu-test"))
}

fn ns_inode(pid: &str, ns: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/{ns}"))
        .ok()
        .map(|m| m.ino())
}

fn starttime(pid: u64) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    (!matches!(f.first(), Some(&"Z") | Some(&"X"))).then(|| f.get(19)?.parse().ok())?
}

/// The node's cgroup dirs in every hierarchy (with their sub-cgroups).
fn cgroup_dirs(root: &str) -> Vec<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        out.push(d.to_path_buf());
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&e.path(), out);
            }
        }
    }
    let mut out = Vec::new();
    for h in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let d = h.path().join(root.trim_start_matches('/'));
        if d.is_dir() {
            walk(&d, &mut out);
        }
    }
    out
}

/// Everything of `st`'s real nodes still on this machine.
fn leftovers(st: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let nodes = st["real_nodes"].as_array().cloned().unwrap_or_default();
    let mut want = Vec::new();
    for n in &nodes {
        for (key, ns) in [("pidns", "pid"), ("netns", "net"), ("mntns", "mnt")] {
            if let Some(ino) = n[key].as_u64() {
                want.push((ns, ino, n["name"].as_str().unwrap().to_string()));
            }
        }
    }
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        for (ns, ino, node) in &want {
            if ns_inode(&pid, ns) == Some(*ino) {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                out.push(format!(
                    "process {pid} ({}) in {node}'s {ns} namespace",
                    String::from_utf8_lossy(&cmd).replace('\0', " ")
                ));
            }
        }
    }
    for p in st["procs"].as_array().cloned().unwrap_or_default() {
        let pid = p["pid"].as_u64().unwrap();
        if starttime(pid).is_some() && starttime(pid) == p["starttime"].as_u64() {
            out.push(format!("process {pid} ({}) that up started", p["name"]));
        }
    }
    let dir = st["dir"].as_str().unwrap();
    for l in std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
    {
        if l.contains(dir) {
            out.push(format!("mount {l}"));
        }
    }
    for n in &nodes {
        for d in cgroup_dirs(n["cgroup_root"].as_str().unwrap()) {
            out.push(format!("cgroup {}", d.display()));
        }
        let link = n["host_if"].as_str().unwrap();
        if Path::new("/sys/class/net").join(link).exists() {
            out.push(format!("network link {link}"));
        }
    }
    if Path::new(dir).exists() {
        out.push(format!("run dir {dir}"));
    }
    out
}

#[test]
fn down_leaves_no_process_mount_cgroup_veth_or_file() {
    if std::env::var("RKE2GPU_REAL_NODES").as_deref() == Ok("0") {
        eprintln!("skipped: real nodes are off (RKE2GPU_REAL_NODES=0)");
        return;
    }
    let shared = Cluster::shared(); // for its PATH (kubectl)
    let name = format!("downtest-{}", std::process::id());
    let script = repo_root().join("tests/e2e/cluster");
    let state_file = cache_dir().join(format!("clusters/{name}.json"));
    let up = Command::new(&script)
        .args(["up", "--real-nodes"])
        .env("RKE2GPU_CLUSTER", &name)
        .status()
        .unwrap();
    let down = || {
        Command::new(&script)
            .arg("down")
            .env("RKE2GPU_CLUSTER", &name)
            .status()
            .unwrap()
    };
    // A failed assertion must not leave this cluster running.
    struct DownOnPanic<F: Fn() -> std::process::ExitStatus>(F);
    impl<F: Fn() -> std::process::ExitStatus> Drop for DownOnPanic<F> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                (self.0)();
            }
        }
    }
    let _down_on_panic = DownOnPanic(down);
    assert!(up.success(), "cluster up {name}: {up}");
    let st: Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    let kubeconfig = st["kubeconfig"].as_str().unwrap().to_string();
    let nodes: Vec<Value> = st["real_nodes"].as_array().cloned().unwrap_or_default();
    if nodes.is_empty() {
        panic!(
            "cluster {name} started without real nodes: {}",
            st["real_nodes_skipped"]
        );
    }

    // A pod on each real node: containers, their cgroups, a veth in the node, CNI state.
    for n in &nodes {
        let node = n["name"].as_str().unwrap();
        let manifest = crate::real_node_support::sleeper(&format!("p-{node}"), "default", node, "");
        shared.run_with_stdin(
            shared
                .kubectl()
                .env("KUBECONFIG", &kubeconfig)
                .args(["apply", "-f", "-"]),
            &manifest,
        );
    }
    for n in &nodes {
        let pod = format!("p-{}", n["name"].as_str().unwrap());
        shared.wait_until(Duration::from_secs(60), &format!("{pod} Running"), || {
            shared.run_ok(shared.kubectl().env("KUBECONFIG", &kubeconfig).args([
                "get",
                "pod",
                &pod,
                "-o",
                "jsonpath={.status.phase}",
            ])) == "Running"
        });
    }
    // While up, every check sees each node: the checks can tell.
    let before = leftovers(&st);
    for n in &nodes {
        let node = n["name"].as_str().unwrap();
        let sees = |needle: String| {
            assert!(
                before.iter().any(|l| l.contains(&needle)),
                "{node}: not seen while up: {needle}\n{before:#?}"
            )
        };
        for ns in ["pid", "net", "mnt"] {
            sees(format!("in {node}'s {ns} namespace"));
        }
        sees(format!("{}/kubepods", n["cgroup_root"].as_str().unwrap()));
        sees(format!("network link {}", n["host_if"].as_str().unwrap()));
    }
    // The hard way for one node: its init is SIGKILLed (the kernel ends its PID namespace).
    let last = nodes.last().unwrap();
    let init = last["init_pid"].as_u64().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-KILL", &init])
            .status()
            .unwrap()
            .success()
    );

    let st_down = down();
    let left = leftovers(&st);
    assert!(left.is_empty(), "left behind after `down`: {left:#?}");
    assert!(st_down.success(), "cluster down exited {st_down}");
    assert!(!state_file.exists(), "{} still there", state_file.display());
    // The cluster's lock file stays by design (flock); this cluster's name is never reused.
    let _ = std::fs::remove_file(cache_dir().join(format!("clusters/{name}.lock")));
}
