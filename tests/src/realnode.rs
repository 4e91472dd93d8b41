//! The cluster's real nodes (`tests/e2e/realnode`, README "Real nodes"): a real kubelet,
//! containerd and runc in RKE2's layout, each in its own mount/PID/network namespaces, beside the
//! KWOK nodes. [`Cluster::real_node`] finds one (from the cluster's state file),
//! [`Cluster::on_node`] runs a shell command on it (in its namespaces, as a root shell on the
//! node), [`GpuNodeGuard`] makes it look like a GPU node to the tools for one test.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use crate::Cluster;

/// containerd 2.x (`v2.4.2-k3s1`), generated config version 3 importing `config-v3.toml.d/*.toml`.
pub const REAL_NODE: &str = "rke2-real-0";
/// containerd 1.7 (`v1.7.35-k3s1`), generated config version 2 without imports.
pub const REAL_NODE_LEGACY: &str = "rke2-real-legacy-0";
/// RKE2's containerd config dir (default data dir).
pub const CONTAINERD_DIR: &str = "/var/lib/rancher/rke2/agent/etc/containerd";
/// The service PATH of the node's rke2-agent (RKE2's bin dir first).
const NODE_PATH: &str =
    "/var/lib/rancher/rke2/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One real node of the running cluster.
#[derive(Debug, Clone)]
pub struct RealNode {
    pub name: String,
    /// The node's PID 1 (its init) as this machine sees it.
    pub init_pid: u32,
    /// The node's root as this machine sees it (`/etc` and `/usr` are overlays inside the node:
    /// here they hold the node's own files only).
    pub root: PathBuf,
    pub node_ip: String,
    pub cgroup_root: String,
    /// The machine's end of the node's veth.
    pub host_if: String,
}

impl Cluster {
    /// The real node `name`, or `None` (after saying why on stderr) when this run has real nodes
    /// switched off with `RKE2GPU_REAL_NODES=0`. Panics when they should run but do not.
    pub fn real_node(&self, name: &str) -> Option<RealNode> {
        if std::env::var("RKE2GPU_REAL_NODES").as_deref() == Ok("0") {
            eprintln!("skipped: real nodes are off (RKE2GPU_REAL_NODES=0)");
            return None;
        }
        let state_file = self.var("RKE2GPU_CLUSTER_STATE");
        let text = std::fs::read_to_string(state_file)
            .unwrap_or_else(|e| panic!("read cluster state {state_file}: {e}"));
        let st: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{state_file}: {e}"));
        let nodes = st["real_nodes"].as_array().cloned().unwrap_or_default();
        let Some(n) = nodes.iter().find(|n| n["name"] == name) else {
            panic!(
                "real node {name} is not running in this cluster ({}); `tests/e2e/cluster up` \
                 starts it where the machine can run it; set RKE2GPU_REAL_NODES=0 to skip real-node tests",
                st["real_nodes_skipped"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map_or_else(
                        || "the cluster was started without it".to_string(),
                        |why| format!("skipped: {why}")
                    )
            );
        };
        let s = |k: &str| n[k].as_str().unwrap_or_default().to_string();
        Some(RealNode {
            name: name.to_string(),
            init_pid: n["init_pid"].as_u64().expect("init_pid in the state") as u32,
            root: PathBuf::from(s("root")),
            node_ip: s("node_ip"),
            cgroup_root: s("cgroup_root"),
            host_if: s("host_if"),
        })
    }

    /// `sh -c script` on the node: in its mount, UTS, IPC, network and PID namespaces, with the
    /// rke2-agent's PATH (crictl, ctr, containerd are RKE2's).
    pub fn on_node(&self, node: &RealNode, script: &str) -> Output {
        Command::new("nsenter")
            .args([
                "-t",
                &node.init_pid.to_string(),
                "-m",
                "-u",
                "-i",
                "-n",
                "-p",
                "--",
            ])
            .args(["/bin/sh", "-c", script])
            .env("PATH", NODE_PATH)
            .env(
                "CONTAINER_RUNTIME_ENDPOINT",
                "unix:///run/k3s/containerd/containerd.sock",
            )
            .output()
            .unwrap_or_else(|e| panic!("nsenter into {}: {e}", node.name))
    }

    /// [`Cluster::on_node`]; panics unless it exits 0. Returns stdout.
    pub fn on_node_ok(&self, node: &RealNode, script: &str) -> String {
        let out = self.on_node(node, script);
        assert!(
            out.status.success(),
            "on {}: `{script}` failed ({}):\nstdout:\n{}\nstderr:\n{}",
            node.name,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A file on the node, read inside the node (so `/etc` and `/usr` are the node's overlays).
    pub fn node_file(&self, node: &RealNode, path: &str) -> Option<Vec<u8>> {
        let out = self.on_node(node, &format!("cat {}", crate::shell_quote(path)));
        out.status.success().then_some(out.stdout)
    }

    /// The containerd PIDs on the node.
    pub fn node_containerd_pids(&self, node: &RealNode) -> String {
        String::from_utf8_lossy(&self.on_node(node, "pidof containerd").stdout)
            .trim()
            .to_string()
    }
}

/// Makes a real node a GPU node for the tools while it lives: the GFD label
/// `nvidia.com/gpu.present=true` and, with `gpus`, `nvidia.com/gpu` in the node's capacity (an
/// extended resource patched into the status, as a device plugin's registration would show it;
/// the kubelet keeps it). Both are removed on drop (also on panic). Hold `serial()` with it:
/// other tests count GPU nodes.
pub struct GpuNodeGuard<'a> {
    cluster: &'a Cluster,
    node: String,
    capacity: bool,
}

impl<'a> GpuNodeGuard<'a> {
    pub fn new(cluster: &'a Cluster, node: &str, gpus: Option<u32>) -> Self {
        cluster.label_node(node, "nvidia.com/gpu.present", Some("true"));
        let g = GpuNodeGuard {
            cluster,
            node: node.to_string(),
            capacity: gpus.is_some(),
        };
        if let Some(n) = gpus {
            g.set_capacity(n);
        }
        g
    }

    /// Advertise `n` whole GPUs (status.capacity, the kubelet computes allocatable).
    pub fn set_capacity(&self, n: u32) {
        let patch =
            format!(r#"[{{"op":"add","path":"/status/capacity/nvidia.com~1gpu","value":"{n}"}}]"#);
        self.cluster.run_ok(self.cluster.kubectl().args([
            "patch",
            "node",
            &self.node,
            "--subresource=status",
            "--type=json",
            "-p",
            &patch,
        ]));
        let want = n.to_string();
        self.cluster.wait_until(
            Duration::from_secs(30),
            &format!("{}: allocatable nvidia.com/gpu = {n}", self.node),
            || {
                self.cluster
                    .run_ok(self.cluster.kubectl().args([
                        "get",
                        "node",
                        &self.node,
                        "-o",
                        "jsonpath={.status.allocatable.nvidia\\.com/gpu}",
                    ]))
                    .trim()
                    == want
            },
        );
    }
}

impl Drop for GpuNodeGuard<'_> {
    fn drop(&mut self) {
        if self.capacity {
            for f in ["capacity", "allocatable"] {
                let patch = format!(r#"[{{"op":"remove","path":"/status/{f}/nvidia.com~1gpu"}}]"#);
                let _ = self
                    .cluster
                    .kubectl()
                    .args([
                        "patch",
                        "node",
                        &self.node,
                        "--subresource=status",
                        "--type=json",
                        "-p",
                        &patch,
                    ])
                    .output();
            }
        }
        let _ = self
            .cluster
            .kubectl()
            .args(["label", "node", &self.node, "nvidia.com/gpu.present-"])
            .output();
    }
}
