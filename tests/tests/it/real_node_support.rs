//! Shared by the `real_node_*` tests: running the tool, reading the real node's files and
//! containerd config, and [`NodeFilesGuard`], which puts a real node's RKE2 and containerd
//! config back (and restarts rke2-agent) when a test changed them.

use cluster_harness::Cluster;
use cluster_harness::realnode::RealNode;
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const OURS: &str = "app.kubernetes.io/managed-by=kubectl-gpu";
pub const AGENTS: &str =
    "app.kubernetes.io/managed-by=kubectl-gpu,app.kubernetes.io/component=node-agent";
/// What RKE2 and the tool write on a node: RKE2's config and containerd's generated config,
/// templates and drop-ins.
pub const CONFIG_DIRS: [&str; 2] = ["etc/rancher", "var/lib/rancher/rke2/agent/etc"];

pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn show(&self) -> String {
        format!(
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.show()))
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// `kubectl gpu ARGS` (kubectl's plugin lookup finds target/debug/kubectl-gpu).
pub fn gpu(c: &Cluster, args: &[&str]) -> Run {
    c.kubectl()
        .arg("gpu")
        .args(args)
        .output()
        .expect("run kubectl gpu")
        .into()
}

/// The node object as JSON.
pub fn node_json(c: &Cluster, node: &str) -> Value {
    let out = c.run_ok(c.kubectl().args(["get", "node", node, "-o", "json"]));
    serde_json::from_str(&out).expect("node JSON")
}

pub fn wait_ready(c: &Cluster, node: &str) {
    c.wait_until(Duration::from_secs(120), &format!("{node} Ready"), || {
        node_json(c, node)["status"]["conditions"]
            .as_array()
            .is_some_and(|cs| {
                cs.iter()
                    .any(|x| x["type"] == "Ready" && x["status"] == "True")
            })
    });
}

/// Our pods (all namespaces), as `ns/name`.
pub fn our_pods(c: &Cluster, selector: &str) -> Vec<String> {
    c.run_ok(c.kubectl().args([
        "get",
        "pods",
        "-A",
        "-l",
        selector,
        "-o",
        "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{\"\\n\"}{end}",
    ]))
    .lines()
    .map(str::to_string)
    .collect()
}

/// The node's pod sandboxes labelled ours (the kubelet passes pod labels to the sandbox) and the
/// running containers in them, as crictl lists them on the node: `ready <id>` / `running <id>`.
pub fn ours_on_node(c: &Cluster, n: &RealNode) -> Vec<String> {
    let out = c.on_node_ok(
        n,
        "for p in $(crictl pods -q --label app.kubernetes.io/managed-by=kubectl-gpu); do \
           crictl ps -q --pod \"$p\" | sed 's/^/running /'; done; \
         crictl pods -q --state ready --label app.kubernetes.io/managed-by=kubectl-gpu | sed 's/^/ready /'",
    );
    out.lines()
        .map(str::to_string)
        .filter(|l| !l.trim().is_empty())
        .collect()
}

/// No pod of ours in the API and no running container or ready sandbox of one on the node
/// (the kubelet really stopped them).
pub fn assert_no_pod_left(c: &Cluster, n: &RealNode, selector: &str) {
    let t0 = Instant::now();
    loop {
        let api = our_pods(c, selector);
        let node = ours_on_node(c, n);
        if api.is_empty() && node.is_empty() {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "pods of ours left after 90 s: API {api:?}; on {} (crictl): {node:?}",
            n.name
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// `sh -c script` on the node with `input` on stdin.
pub fn on_node_stdin(n: &RealNode, script: &str, input: &[u8]) -> Output {
    let mut child = Command::new("nsenter")
        .args(["-t", &n.init_pid.to_string(), "-m", "-u", "-i", "-n", "-p", "--", "/bin/sh", "-c", script])
        .env("PATH", "/var/lib/rancher/rke2/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nsenter");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// Every regular file under `dirs` on the node (read inside it), path -> bytes.
pub fn node_files(
    c: &Cluster,
    n: &RealNode,
    dirs: &[&str],
) -> std::collections::BTreeMap<String, Vec<u8>> {
    let script = format!(
        "cd / && find {} -type f 2>/dev/null | sort | while read -r f; do printf '%s %s\\n' \"$f\" \"$(base64 -w0 \"$f\")\"; done",
        dirs.join(" ")
    );
    let out = c.on_node_ok(n, &script);
    out.lines()
        .filter_map(|l| {
            let (p, b) = l.split_once(' ')?;
            Some((p.to_string(), b64(b)))
        })
        .collect()
}

fn b64(s: &str) -> Vec<u8> {
    let out = Command::new("base64")
        .arg("-d")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut ch| {
            ch.stdin.take().unwrap().write_all(s.as_bytes())?;
            ch.wait_with_output()
        });
    out.expect("base64 -d").stdout
}

/// The node's RKE2/containerd config files, without the tool's backups and markers.
pub fn config_files(c: &Cluster, n: &RealNode) -> std::collections::BTreeMap<String, Vec<u8>> {
    node_files(c, n, &CONFIG_DIRS)
        .into_iter()
        .filter(|(p, _)| !p.contains(".bak-kubectl-gpu-") && !p.contains(".kubectl-gpu-created-"))
        .collect()
}

/// Puts CONFIG_DIRS of a real node back as they were (tar inside the node) and restarts
/// rke2-agent when anything changed, when dropped (also on panic).
pub struct NodeFilesGuard<'a> {
    c: &'a Cluster,
    n: RealNode,
    tar: Vec<u8>,
    before: std::collections::BTreeMap<String, Vec<u8>>,
}

impl<'a> NodeFilesGuard<'a> {
    pub fn new(c: &'a Cluster, n: &RealNode) -> Self {
        let out = c.on_node(n, &format!("cd / && tar -cpf - {}", CONFIG_DIRS.join(" ")));
        assert!(
            out.status.success(),
            "tar on {}: {}",
            n.name,
            String::from_utf8_lossy(&out.stderr)
        );
        NodeFilesGuard {
            c,
            n: n.clone(),
            tar: out.stdout,
            before: node_files(c, n, &CONFIG_DIRS),
        }
    }

    pub fn before(&self) -> &std::collections::BTreeMap<String, Vec<u8>> {
        &self.before
    }
}

impl Drop for NodeFilesGuard<'_> {
    fn drop(&mut self) {
        if node_files(self.c, &self.n, &CONFIG_DIRS) == self.before {
            return;
        }
        let rm = CONFIG_DIRS
            .iter()
            .map(|d| format!("/{d}"))
            .collect::<Vec<_>>()
            .join(" ");
        let out = on_node_stdin(
            &self.n,
            &format!("rm -rf {rm} && tar -C / -xpf - && systemctl restart rke2-agent"),
            &self.tar,
        );
        if !out.status.success() {
            eprintln!(
                "NodeFilesGuard: restoring {} failed: {}",
                self.n.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        wait_ready(self.c, &self.n.name);
    }
}

/// A TOML table's body (`[name]` up to the next header).
pub fn toml_table(text: &str, name: &str) -> Option<String> {
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

pub fn toml_value<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    body.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| v.trim())
    })
}

/// `version = N` of a containerd config.
pub fn config_version(text: &str) -> Option<i64> {
    text.lines().find_map(|l| {
        l.trim()
            .strip_prefix("version")?
            .trim()
            .strip_prefix('=')?
            .trim()
            .parse()
            .ok()
    })
}

/// The runtime names a containerd config declares (`[...containerd.runtimes.NAME]` headers),
/// sorted.
pub fn config_runtimes(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let h = l.trim().strip_prefix('[')?.strip_suffix(']')?;
            let (_, rest) = h.split_once(".containerd.runtimes.")?;
            let (name, tail) = match rest.chars().next()? {
                q @ ('\'' | '"') => {
                    let end = rest[1..].find(q)? + 1;
                    (&rest[1..end], &rest[end + 1..])
                }
                _ => match rest.find('.') {
                    Some(i) => (&rest[..i], &rest[i..]),
                    None => (rest, ""),
                },
            };
            tail.is_empty().then(|| name.to_string())
        })
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The prefix of the CRI runtime tables for a config version.
pub fn cri_prefix(version: i64) -> &'static str {
    if version >= 3 {
        "plugins.'io.containerd.cri.v1.runtime'.containerd"
    } else {
        "plugins.\"io.containerd.grpc.v1.cri\".containerd"
    }
}

/// `BinaryName` of a runtime in a containerd config.
pub fn runtime_binary(text: &str, runtime: &str) -> Option<String> {
    let v = config_version(text)?;
    let p = cri_prefix(v);
    ["", "\"", "'"].iter().find_map(|q| {
        let body = toml_table(text, &format!("{p}.runtimes.{q}{runtime}{q}.options"))?;
        toml_value(&body, "BinaryName").map(|s| s.trim_matches('"').to_string())
    })
}

/// What containerd itself reports (CRI status, `crictl info`), e.g. `.config.containerd.defaultRuntimeName`.
pub fn cri_info(c: &Cluster, n: &RealNode) -> Value {
    serde_json::from_str(&c.on_node_ok(n, "crictl info")).expect("crictl info JSON")
}

/// The default runtime containerd runs pods with when no RuntimeClass is given.
pub fn cri_default_runtime(c: &Cluster, n: &RealNode) -> String {
    let info = cri_info(c, n);
    info["config"]["containerd"]["defaultRuntimeName"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A pod pinned to `node`, running `sleep` in the node-agent's image (imported on the node).
pub fn sleeper(name: &str, ns: &str, node: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 0\n{extra_spec}  containers:\n  - name: c\n    image: docker.io/library/busybox:1.37\n    command: [\"sleep\", \"3600\"]\n"
    )
}

/// The pod's first container ID (without `containerd://`) once it runs.
pub fn running_container_id(c: &Cluster, ns: &str, pod: &str) -> String {
    c.wait_pod_phase(ns, pod, &["Running"], Duration::from_secs(60));
    let id = c.run_ok(c.kubectl().args([
        "get",
        "pod",
        "-n",
        ns,
        pod,
        "-o",
        "jsonpath={.status.containerStatuses[0].containerID}",
    ]));
    id.trim().trim_start_matches("containerd://").to_string()
}
