//! `kubectl gpu patch-containerd --apply` against the cluster's real nodes: the file is written
//! on a real node, `systemctl restart rke2-agent` (the node's init, RKE2's unit semantics) really
//! stops containerd and the kubelet, re-renders config.toml from the k3s templates and starts
//! them; the tool confirms from the new generated config; containerd itself (CRI status) then
//! runs pods with the NVIDIA runtime, the real `nvidia-container-runtime` (on a CPU node it hands
//! the container to runc). Expectations come from the node (its files, `crictl info`, process
//! IDs, the runtime's own log), not from the tool's output.

use crate::real_node_support::*;
use cluster_harness::realnode::{
    CONTAINERD_DIR, GpuNodeGuard, REAL_NODE, REAL_NODE_LEGACY, RealNode,
};
use cluster_harness::{Cluster, TestNamespace, serial};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

const TIMEOUT: &str = "120";

fn patch(c: &Cluster, args: &[&str]) -> Run {
    let mut all = vec!["patch-containerd", "--timeout", TIMEOUT];
    all.extend_from_slice(args);
    gpu(c, &all)
}

fn restarts(c: &Cluster, node: &str, since: usize) -> Vec<String> {
    c.systemctl_calls(node)
        .into_iter()
        .skip(since)
        .filter(|l| l.contains("restart"))
        .collect()
}

fn generated_config(n: &RealNode) -> std::path::PathBuf {
    // /var is the node's own dir (no overlay): the machine sees the node's bytes.
    n.root.join(format!(
        "{}/config.toml",
        CONTAINERD_DIR.trim_start_matches('/')
    ))
}

fn mtime_ns(p: &std::path::Path) -> i64 {
    let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    m.mtime() * 1_000_000_000 + m.mtime_nsec()
}

/// A pod under RuntimeClass nvidia runs, and the NVIDIA runtime on the node handled its
/// container (its own debug log names the container's bundle).
fn assert_runs_under_nvidia_runtime(
    c: &Cluster,
    n: &RealNode,
    ns: &str,
    pod: &str,
    runtime_class: bool,
) {
    let extra = if runtime_class {
        "  runtimeClassName: nvidia\n"
    } else {
        ""
    };
    c.apply(&sleeper(pod, ns, &n.name, extra));
    let id = running_container_id(c, ns, pod);
    let log = String::from_utf8(
        c.node_file(n, "/var/log/nvidia-container-runtime.log")
            .unwrap_or_default(),
    )
    .unwrap();
    assert!(
        log.lines().any(|l| l.contains(&id)),
        "{}: nvidia-container-runtime's log does not mention container {id}:\n{}",
        n.name,
        log.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn v3_drop_in_apply_really_restarts_containerd_then_noop_and_rollback() {
    let c = Cluster::shared();
    let _l = serial();
    let Some(n) = c.real_node(REAL_NODE) else {
        return;
    };
    let files = NodeFilesGuard::new(c, &n);
    let _gpu = GpuNodeGuard::new(c, &n.name, None);
    let ns = TestNamespace::new(c, "real-patch");
    let dropin = format!("{CONTAINERD_DIR}/config-v3.toml.d/99-nvidia.toml");

    // A pod that runs across the restart (KillMode=process: its shim and container survive).
    c.apply(&sleeper("survivor", ns.name(), &n.name, ""));
    let survivor = running_container_id(c, ns.name(), "survivor");
    assert_eq!(cri_default_runtime(c, &n), "runc");
    let calls = c.systemctl_calls(&n.name).len();
    let pids = c.node_containerd_pids(&n);
    assert!(!pids.is_empty());
    let rendered = mtime_ns(&generated_config(&n));

    let r = patch(
        c,
        &[
            "--node",
            &n.name,
            "--set-as-default",
            "--apply",
            "-o",
            "json",
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.show());
    let v = r.json();
    let out = &v["nodes"][0];
    assert_eq!(out["outcome"], "confirmed", "{out:#}");
    assert_eq!(out["method"], "drop-in", "{out:#}");
    assert_eq!(out["restart_unit"], "rke2-agent", "{out:#}");

    // The real file, with the marker that lets --rollback remove it.
    let text = String::from_utf8(c.node_file(&n, &dropin).expect("drop-in on the node")).unwrap();
    assert_eq!(config_version(&text), Some(3), "{text}");
    let cri = toml_table(&text, cri_prefix(3)).unwrap_or_else(|| panic!("{text}"));
    assert_eq!(
        toml_value(&cri, "default_runtime_name"),
        Some("\"nvidia\""),
        "{text}"
    );
    let dir = c.on_node_ok(&n, &format!("ls -a {CONTAINERD_DIR}/config-v3.toml.d"));
    assert!(
        dir.lines()
            .any(|l| l.starts_with("99-nvidia.toml.kubectl-gpu-created-")),
        "{dir}"
    );

    // RKE2's restart: one `systemctl restart rke2-agent`, a new containerd, a re-rendered config.
    let r1 = restarts(c, &n.name, calls);
    assert_eq!(r1.len(), 1, "{r1:?}");
    assert!(r1[0].ends_with("restart rke2-agent"), "{r1:?}");
    let pids2 = c.node_containerd_pids(&n);
    assert!(
        !pids2.is_empty() && pids2 != pids,
        "containerd was not restarted: {pids} -> {pids2}"
    );
    assert!(
        mtime_ns(&generated_config(&n)) > rendered,
        "config.toml was not re-rendered"
    );
    // containerd loaded the drop-in: the CRI's default runtime is nvidia now.
    assert_eq!(cri_default_runtime(c, &n), "nvidia");
    // The running pod did not notice.
    assert_eq!(running_container_id(c, ns.name(), "survivor"), survivor);
    let rc = c.run_ok(c.kubectl().args([
        "get",
        "pod",
        "-n",
        ns.name(),
        "survivor",
        "-o",
        "jsonpath={.status.containerStatuses[0].restartCount}",
    ]));
    assert_eq!(rc.trim(), "0");
    // Pods run under the real NVIDIA runtime: with RuntimeClass nvidia and by default.
    assert_runs_under_nvidia_runtime(c, &n, ns.name(), "with-class", true);
    assert_runs_under_nvidia_runtime(c, &n, ns.name(), "by-default", false);
    assert_no_pod_left(c, &n, AGENTS);

    // Second --apply: nothing to do, no restart.
    let calls2 = c.systemctl_calls(&n.name).len();
    let r = patch(c, &["--node", &n.name, "--set-as-default", "--apply"]);
    assert_eq!(r.code, Some(0), "{}", r.show());
    assert!(
        r.stdout.to_lowercase().contains("nothing to do"),
        "{}",
        r.show()
    );
    assert!(restarts(c, &n.name, calls2).is_empty());
    assert_eq!(c.node_containerd_pids(&n), pids2);

    // --rollback --apply: byte-identical files, another real restart, runc is the default again.
    let r = patch(
        c,
        &["--node", &n.name, "--rollback", "--apply", "-o", "json"],
    );
    assert_eq!(r.code, Some(0), "{}", r.show());
    assert_eq!(
        r.json()["nodes"][0]["outcome"],
        "rolled-back",
        "{}",
        r.show()
    );
    assert_eq!(
        &config_files(c, &n),
        files.before(),
        "rollback: not byte-identical"
    );
    assert_eq!(restarts(c, &n.name, calls2).len(), 1);
    assert_eq!(cri_default_runtime(c, &n), "runc");
    assert_no_pod_left(c, &n, AGENTS);
}

#[test]
fn v2_node_default_runtime_rendered_by_rke2_then_rollback() {
    // containerd 1.7, config version 2 without imports: RKE2 renders `nvidia` itself (toolkit
    // present), only the default is missing, so the tool writes `default-runtime: nvidia` to
    // config.yaml.d and RKE2's re-render puts default_runtime_name into config.toml.
    let c = Cluster::shared();
    let _l = serial();
    let Some(n) = c.real_node(REAL_NODE_LEGACY) else {
        return;
    };
    let files = NodeFilesGuard::new(c, &n);
    let _gpu = GpuNodeGuard::new(c, &n.name, None);
    let before = String::from_utf8(std::fs::read(generated_config(&n)).unwrap()).unwrap();
    assert_eq!(config_version(&before), Some(2), "{before}");
    assert!(!before.contains("imports"), "{before}");
    assert_eq!(cri_default_runtime(c, &n), "runc");
    let calls = c.systemctl_calls(&n.name).len();

    let r = patch(
        c,
        &[
            "--node",
            &n.name,
            "--set-as-default",
            "--apply",
            "-o",
            "json",
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.show());
    let out = &r.json()["nodes"][0];
    assert_eq!(out["outcome"], "confirmed", "{out:#}");
    assert_eq!(out["method"], "default-runtime", "{out:#}");
    let yaml = String::from_utf8(
        c.node_file(&n, "/etc/rancher/rke2/config.yaml.d/99-gpu.yaml")
            .expect("99-gpu.yaml"),
    )
    .unwrap();
    assert!(
        yaml.lines()
            .any(|l| l.replace(' ', "") == "default-runtime:\"nvidia\""
                || l.replace(' ', "") == "default-runtime:nvidia"),
        "{yaml}"
    );
    assert_eq!(restarts(c, &n.name, calls).len(), 1);
    // RKE2 (render-config, the k3s v2 template) rendered it; containerd 1.7 runs with it.
    let after = String::from_utf8(std::fs::read(generated_config(&n)).unwrap()).unwrap();
    let cri = toml_table(&after, cri_prefix(2)).unwrap_or_else(|| panic!("{after}"));
    assert_eq!(
        toml_value(&cri, "default_runtime_name"),
        Some("\"nvidia\""),
        "{after}"
    );
    assert_eq!(cri_default_runtime(c, &n), "nvidia");
    let ns = TestNamespace::new(c, "real-patch-v2");
    assert_runs_under_nvidia_runtime(c, &n, ns.name(), "by-default", false);

    let r = patch(c, &["--node", &n.name, "--rollback", "--apply"]);
    assert_eq!(r.code, Some(0), "{}", r.show());
    assert_eq!(
        &config_files(c, &n),
        files.before(),
        "rollback: not byte-identical"
    );
    assert_eq!(cri_default_runtime(c, &n), "runc");
    assert_no_pod_left(c, &n, AGENTS);
}

/// The content a `create` diff adds.
fn created_content(diff: &str) -> Vec<u8> {
    let mut out = String::new();
    let mut body = false;
    for l in diff.lines() {
        if l.starts_with("@@") {
            body = true;
        } else if body && let Some(rest) = l.strip_prefix('+') {
            out.push_str(rest);
            out.push('\n');
        }
    }
    out.into_bytes()
}

#[test]
fn sigkill_mid_apply_leaves_the_old_or_the_new_file() {
    let c = Cluster::shared();
    let _l = serial();
    let Some(n) = c.real_node(REAL_NODE) else {
        return;
    };
    let files = NodeFilesGuard::new(c, &n);
    let _gpu = GpuNodeGuard::new(c, &n.name, None);
    let rel = format!("{CONTAINERD_DIR}/config-v3.toml.d")
        .trim_start_matches('/')
        .to_string();
    let dir = n.root.join(&rel);
    let plan = patch(c, &["--node", &n.name, "--set-as-default", "-o", "json"]);
    assert_eq!(plan.code, Some(0), "{}", plan.show());
    let f = &plan.json()["nodes"][0]["files"][0];
    assert_eq!(f["action"], "create", "{f:#}");
    let new = created_content(f["diff"].as_str().unwrap());
    assert!(
        new.starts_with(b"# Written by kubectl-gpu"),
        "{}",
        String::from_utf8_lossy(&new)
    );

    // Kill points: as soon as anything appears in the drop-in dir (the write probe or the temp
    // file), and 50 ms / 400 ms later.
    for delay in [0u64, 50, 400] {
        let mut child = c
            .kubectl()
            .args([
                "gpu",
                "patch-containerd",
                "--node",
                &n.name,
                "--set-as-default",
                "--apply",
                "--timeout",
                TIMEOUT,
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        loop {
            let seen = std::fs::read_dir(&dir)
                .map(|d| d.count() > 0)
                .unwrap_or(false);
            if seen || t0.elapsed() > Duration::from_secs(90) {
                break;
            }
            if let Some(st) = child.try_wait().unwrap() {
                panic!("patch-containerd exited ({st}) before writing");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(delay));
        child.kill().unwrap();
        child.wait().unwrap();
        // Let a write the agent pod had started finish (the client is gone, its exec may not be).
        std::thread::sleep(Duration::from_secs(3));
        let listing: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        // What containerd imports (*.toml) is absent or the whole new file, never a part.
        for name in listing.iter().filter(|n| n.ends_with(".toml")) {
            let bytes = std::fs::read(dir.join(name)).unwrap();
            assert_eq!(
                bytes, new,
                "kill after +{delay} ms: {name} is neither absent nor the new file; dir: {listing:?}"
            );
        }
        // Clean up the agent pod the killed run left, then put the node back.
        let r = gpu(c, &["cleanup"]);
        assert_eq!(r.code, Some(0), "{}", r.show());
        assert_no_pod_left(c, &n, AGENTS);
        let out = c.on_node(
            &n,
            &format!("rm -rf /{rel} && systemctl restart rke2-agent"),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        wait_ready(c, &n.name);
    }
    drop(files);
}

#[test]
fn a_render_error_fails_the_restart_like_systemd_and_the_unit_retries() {
    // The harness' RKE2 semantics the tools depend on: a default runtime RKE2 cannot find fails
    // `systemctl restart rke2-agent` (k3s: "default runtime X was not found"), containerd and the
    // kubelet stay down, and Restart=always brings the unit back once the config is fixed.
    let c = Cluster::shared();
    let _l = serial();
    let Some(n) = c.real_node(REAL_NODE) else {
        return;
    };
    let _files = NodeFilesGuard::new(c, &n);
    let bad = "/etc/rancher/rke2/config.yaml.d/50-e2e-bad.yaml";
    let out = c.on_node(
        &n,
        &format!("mkdir -p /etc/rancher/rke2/config.yaml.d && echo 'default-runtime: nvidia-e2e-missing' > {bad} && systemctl restart rke2-agent"),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("Job for rke2-agent.service failed"),
        "{err}"
    );
    let why =
        String::from_utf8(c.node_file(&n, "/var/log/rke2-agent.failed.log").unwrap()).unwrap();
    assert_eq!(
        why.trim(),
        "default runtime nvidia-e2e-missing was not found"
    );
    assert_eq!(
        c.on_node_ok(&n, "systemctl is-active rke2-agent || true")
            .trim(),
        "failed"
    );
    assert!(
        c.node_containerd_pids(&n).is_empty(),
        "containerd still runs"
    );
    c.on_node_ok(&n, &format!("rm {bad}"));
    c.wait_until(
        Duration::from_secs(30),
        "rke2-agent active again (Restart=always)",
        || {
            c.on_node_ok(&n, "systemctl is-active rke2-agent || true")
                .trim()
                == "active"
        },
    );
    wait_ready(c, &n.name);
}
