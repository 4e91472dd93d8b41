//! The support bundle (`kubectl gpu report --bundle FILE.tar.gz`).
//!
//! Layout (every path sorted, every entry mode 0644, uid/gid 0, one fixed
//! mtime, gzip header without time or name: the same inputs give the same
//! bytes):
//!
//! ```text
//! manifest.json                         index: every entry, its size and what it is
//! report.json                           every view of `kubectl gpu report`
//! check-runtime.json                    `kubectl gpu check-runtime -o json`
//! nodes/<node>.yaml                     GPU nodes
//! pods/<namespace>/<pod>.yaml           GPU pods
//! operator/<ns>/<kind>/<name>.yaml      the operator's Deployments, DaemonSets, pods
//! operator/clusterpolicy/<name>.yaml    the ClusterPolicy
//! operator/helm/<release>.values.yaml   the Helm release's user values, redacted
//! operator/helm/<release>.release.json  its name, revision, status, chart version
//! logs/<ns>/<pod>/<container>[.previous].log   operand logs, last 1 MiB each
//! events/<ns>.yaml                      events of the operator namespace
//! events/gpu-pods/<ns>.yaml             events of GPU pods
//! node-files/<node>/<host path>         with --deep: the files check-runtime --deep reads
//! ```
//!
//! Secret objects are never written: the Helm release Secret is decoded in
//! memory and only its `config` (user values) leaves it, through
//! [`super::redact::redact_value`]. Every object written passes through the
//! same redaction; host files through [`super::redact::redact_lines`].

use super::Report;
use super::redact::{redact_lines, redact_value};
use crate::error::{Error, Result};
use crate::node::probe::ProbeResult;
use crate::snapshot::Snapshot;
use flate2::{Compression, GzBuilder};
use k8s_openapi::api::core::v1::{Event, Pod};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;

/// Default cap of each log file (its tail is kept).
pub const LOG_CAP: usize = 1 << 20;

/// One file of the bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub data: Vec<u8>,
    /// What it is, for the manifest.
    pub kind: String,
    /// Cut to its tail (logs).
    pub truncated: bool,
}

/// An entry as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestEntry {
    pub path: String,
    pub kind: String,
    pub bytes: usize,
    pub truncated: bool,
}

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Manifest {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub generated_at: String,
    pub server: String,
    pub tool: String,
    pub entries: Vec<ManifestEntry>,
    /// What was not collected, and why.
    pub not_collected: Vec<String>,
}

/// The bundle being built: entries by path (so they come out sorted).
#[derive(Debug, Clone, Default)]
pub struct Bundle {
    pub entries: BTreeMap<String, Entry>,
    pub not_collected: Vec<String>,
}

/// Sizes of the written archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BundleSummary {
    pub entries: usize,
    pub uncompressed_bytes: u64,
    pub compressed_bytes: u64,
}

/// A fetched log: (text, cut to its tail), or why it could not be read.
pub type LogResult = std::result::Result<(String, bool), String>;

/// What the async part fetched, handed to [`assemble`].
#[derive(Debug, Clone, Default)]
pub struct Collected {
    /// Full GPU pod objects; Err: why they could not be read.
    pub gpu_pods: Option<std::result::Result<Vec<Pod>, String>>,
    /// Events by bundle path (`events/<ns>.yaml`, `events/gpu-pods/<ns>.yaml`).
    pub events: BTreeMap<String, std::result::Result<Vec<Event>, String>>,
    /// Logs by bundle path: (text, truncated) or why not.
    pub logs: BTreeMap<String, LogResult>,
    /// `check-runtime -o json`.
    pub check_runtime: Option<serde_json::Value>,
    /// `--deep`: what was read on each node.
    pub node_files: BTreeMap<String, std::result::Result<ProbeResult, String>>,
}

fn clean(mut v: serde_json::Value) -> serde_json::Value {
    if let Some(meta) = v.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        meta.remove("managedFields");
    }
    redact_value(&mut v);
    v
}

fn safe(part: &str) -> String {
    let s: String = part
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match s.as_str() {
        "" | "." | ".." => "_".into(),
        _ => s,
    }
}

impl Bundle {
    pub fn add(&mut self, path: String, kind: &str, data: Vec<u8>, truncated: bool) {
        self.entries.insert(
            path,
            Entry {
                data,
                kind: kind.to_string(),
                truncated,
            },
        );
    }

    /// Adds an object as YAML, managed fields dropped, redacted.
    pub fn add_yaml<T: Serialize>(&mut self, path: String, kind: &str, obj: &T) {
        match serde_json::to_value(obj)
            .map_err(|e| e.to_string())
            .map(clean)
            .and_then(|v| serde_saphyr::to_string(&v).map_err(|e| e.to_string()))
        {
            Ok(y) => self.add(path, kind, y.into_bytes(), false),
            Err(e) => self.not_collected.push(format!("{path}: {e}")),
        }
    }

    /// Adds a value as pretty JSON, redacted.
    pub fn add_json<T: Serialize>(&mut self, path: String, kind: &str, obj: &T) {
        match serde_json::to_value(obj)
            .map(clean)
            .and_then(|v| serde_json::to_vec_pretty(&v))
        {
            Ok(mut j) => {
                j.push(b'\n');
                self.add(path, kind, j, false)
            }
            Err(e) => self.not_collected.push(format!("{path}: {e}")),
        }
    }

    /// The manifest of the current entries.
    pub fn manifest(&self, report: &Report) -> Manifest {
        Manifest {
            api_version: super::API_VERSION,
            kind: "SupportBundle",
            generated_at: report.generated_at.clone(),
            server: report.server.clone(),
            tool: format!("kubectl-gpu {}", env!("CARGO_PKG_VERSION")),
            entries: self
                .entries
                .iter()
                .map(|(p, e)| ManifestEntry {
                    path: p.clone(),
                    kind: e.kind.clone(),
                    bytes: e.data.len(),
                    truncated: e.truncated,
                })
                .collect(),
            not_collected: self.not_collected.clone(),
        }
    }

    /// Writes the archive: `manifest.json` first, then every entry sorted.
    pub fn write<W: Write>(&self, report: &Report, out: W, mtime: u64) -> Result<BundleSummary> {
        let io = |e: std::io::Error| Error::BundleWrite {
            reason: e.to_string(),
        };
        let manifest =
            serde_json::to_vec_pretty(&self.manifest(report)).map_err(|e| Error::BundleWrite {
                reason: e.to_string(),
            })?;
        let mut counter = Counting { inner: out, n: 0 };
        let mut uncompressed = 0u64;
        {
            let gz = GzBuilder::new()
                .mtime(0)
                .write(&mut counter, Compression::default());
            let mut tar = tar::Builder::new(gz);
            tar.mode(tar::HeaderMode::Deterministic);
            let mut put = |path: &str, data: &[u8]| -> Result<()> {
                let mut h = tar::Header::new_gnu();
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                h.set_uid(0);
                h.set_gid(0);
                h.set_mtime(mtime);
                h.set_entry_type(tar::EntryType::Regular);
                tar.append_data(&mut h, path, data).map_err(io)?;
                uncompressed += data.len() as u64;
                Ok(())
            };
            put("manifest.json", &manifest)?;
            for (path, e) in &self.entries {
                put(path, &e.data)?;
            }
            let gz = tar.into_inner().map_err(io)?;
            gz.finish().map_err(io)?;
        }
        Ok(BundleSummary {
            entries: self.entries.len() + 1,
            uncompressed_bytes: uncompressed,
            compressed_bytes: counter.n,
        })
    }
}

struct Counting<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The operand pods whose logs the bundle collects, as
/// `(namespace, pod, container, previous, bundle path)`.
pub fn log_targets(snap: &Snapshot) -> Vec<(String, String, String, bool, String)> {
    let mut out = Vec::new();
    let Some(ops) = &snap.operator else {
        return out;
    };
    for pod in &ops.pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let ns = ops.namespace.clone();
        let statuses: Vec<_> = pod
            .status
            .iter()
            .flat_map(|s| {
                s.init_container_statuses
                    .iter()
                    .flatten()
                    .chain(s.container_statuses.iter().flatten())
            })
            .collect();
        let containers = pod.spec.iter().flat_map(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(s.containers.iter())
        });
        for c in containers {
            let base = format!("logs/{}/{}/{}", safe(&ns), safe(&name), safe(&c.name));
            out.push((
                ns.clone(),
                name.clone(),
                c.name.clone(),
                false,
                format!("{base}.log"),
            ));
            let restarted = statuses
                .iter()
                .any(|s| s.name == c.name && s.restart_count > 0);
            if restarted {
                out.push((
                    ns.clone(),
                    name.clone(),
                    c.name.clone(),
                    true,
                    format!("{base}.previous.log"),
                ));
            }
        }
    }
    out
}

/// Builds the bundle from the snapshot, the report and what was fetched.
/// Pure: no I/O. Never serialises a Secret (nor the Snapshot, which holds
/// the Helm release Secrets).
pub fn assemble(snap: &Snapshot, report: &Report, collected: &Collected) -> Bundle {
    let mut b = Bundle::default();
    b.add_json(
        "report.json".into(),
        "kubectl gpu report (every view)",
        report,
    );
    match &collected.check_runtime {
        Some(c) => b.add_json(
            "check-runtime.json".into(),
            "kubectl gpu check-runtime -o json",
            c,
        ),
        None => b.not_collected.push("check-runtime.json: not run".into()),
    }
    let gpu_nodes: std::collections::BTreeSet<&str> =
        report.nodes.nodes.iter().map(|n| n.name.as_str()).collect();
    for n in &snap.nodes {
        let name = n.metadata.name.clone().unwrap_or_default();
        if gpu_nodes.contains(name.as_str()) {
            b.add_yaml(format!("nodes/{}.yaml", safe(&name)), "Node", n);
        }
    }
    match &collected.gpu_pods {
        Some(Ok(pods)) => {
            for p in pods {
                b.add_yaml(
                    format!(
                        "pods/{}/{}.yaml",
                        safe(p.metadata.namespace.as_deref().unwrap_or_default()),
                        safe(p.metadata.name.as_deref().unwrap_or_default())
                    ),
                    "Pod (GPU)",
                    p,
                );
            }
        }
        Some(Err(e)) => b.not_collected.push(format!("GPU pods: {e}")),
        None => b.not_collected.push("GPU pods: not read".into()),
    }
    if let Some(ops) = &snap.operator {
        let ns = safe(&ops.namespace);
        for d in &ops.deployments {
            let n = safe(d.metadata.name.as_deref().unwrap_or_default());
            b.add_yaml(
                format!("operator/{ns}/deployments/{n}.yaml"),
                "Deployment",
                d,
            );
        }
        for d in &ops.daemonsets {
            let n = safe(d.metadata.name.as_deref().unwrap_or_default());
            b.add_yaml(format!("operator/{ns}/daemonsets/{n}.yaml"), "DaemonSet", d);
        }
        for p in &ops.pods {
            let n = safe(p.metadata.name.as_deref().unwrap_or_default());
            b.add_yaml(format!("operator/{ns}/pods/{n}.yaml"), "Pod (operand)", p);
        }
        match crate::helm::release::find_gpu_operator(&ops.helm_secrets) {
            Ok(Some(rel)) => {
                let n = safe(&rel.name);
                b.add_yaml(
                    format!("operator/helm/{n}.values.yaml"),
                    "Helm release user values (redacted)",
                    &rel.config,
                );
                b.add_json(
                    format!("operator/helm/{n}.release.json"),
                    "Helm release metadata",
                    &serde_json::json!({
                        "name": rel.name, "namespace": rel.namespace, "status": rel.status,
                        "revision": rel.revision, "chart_name": rel.chart_name,
                        "chart_version": rel.chart_version, "app_version": rel.app_version,
                    }),
                );
            }
            Ok(None) => b
                .not_collected
                .push("Helm values: no gpu-operator Helm release found".into()),
            Err(e) => b.not_collected.push(format!("Helm values: {e}")),
        }
    }
    for cp in snap.cluster_policies.iter().flatten() {
        let n = safe(cp.metadata.name.as_deref().unwrap_or_default());
        b.add_yaml(
            format!("operator/clusterpolicy/{n}.yaml"),
            "ClusterPolicy",
            cp,
        );
    }
    for (path, ev) in &collected.events {
        match ev {
            Ok(list) => {
                let mut list = list.clone();
                list.sort_by(|a, b| {
                    (&a.last_timestamp, &a.metadata.name)
                        .cmp(&(&b.last_timestamp, &b.metadata.name))
                });
                b.add_yaml(path.clone(), "Events", &list);
            }
            Err(e) => b.not_collected.push(format!("{path}: {e}")),
        }
    }
    for (path, log) in &collected.logs {
        match log {
            Ok((text, cut)) => b.add(
                path.clone(),
                "container log (tail)",
                text.clone().into_bytes(),
                *cut,
            ),
            Err(e) => b.not_collected.push(format!("{path}: {e}")),
        }
    }
    for (node, probe) in &collected.node_files {
        let base = format!("node-files/{}", safe(node));
        match probe {
            Ok(p) => {
                for (path, content) in &p.files {
                    if let Some(text) = content {
                        b.add(
                            format!("{base}/{}", path.trim_start_matches('/')),
                            "host file (redacted)",
                            redact_lines(text).into_bytes(),
                            false,
                        );
                    }
                }
                b.add_json(
                    format!("{base}/_probe.json"),
                    "directories listed, paths tested, missing files",
                    &serde_json::json!({
                        "dirs": p.dirs,
                        "exists": p.exists,
                        "missing_files": p.files.iter().filter(|(_, v)| v.is_none()).map(|(k, _)| k).collect::<Vec<_>>(),
                        "binary_files": p.binary.iter().map(|(k, v)| (k.clone(), v.as_ref().map(|b| b.len()))).collect::<BTreeMap<_, _>>(),
                    }),
                );
            }
            Err(e) => b.not_collected.push(format!("{base}: {e}")),
        }
    }
    b
}

/// Options of [`collect`].
#[derive(Debug, Clone)]
pub struct CollectOptions {
    /// Cap of each log file in bytes (its tail is kept).
    pub log_cap: usize,
    /// `--deep`: read node files through node-agent pods with these options.
    pub deep: Option<crate::node::agent::AgentOptions>,
}

fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if s.code == 403 => format!("forbidden: {}", s.message),
        kube::Error::Api(s) => format!("{} ({})", s.message, s.code),
        other => other.to_string(),
    }
}

/// Fetches what the bundle needs beyond the snapshot: full GPU pods,
/// events, operand logs, the check-runtime result and (`--deep`) node files.
/// Failures become `not_collected` notes, never errors.
pub async fn collect(
    kube: &crate::client::Kube,
    snap: &Snapshot,
    report: &Report,
    opts: &CollectOptions,
    progress: &indicatif::ProgressBar,
) -> Collected {
    use futures::StreamExt as _;
    let mut c = Collected::default();

    progress.set_message("check-runtime");
    let view = crate::checks::api::ClusterView::from_snapshot(snap);
    let mut findings = crate::checks::api::run(&view);

    progress.set_message("GPU pods");
    c.gpu_pods = Some(
        super::read::full_gpu_pods(kube)
            .await
            .map_err(|e| describe(&e)),
    );

    progress.set_message("events");
    let mut namespaces: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(Ok(pods)) = &c.gpu_pods {
        for p in pods {
            namespaces
                .entry(p.metadata.namespace.clone().unwrap_or_default())
                .or_default()
                .push(p.metadata.name.clone().unwrap_or_default());
        }
    }
    if let Some(ops) = &snap.operator {
        let ev = super::read::events(kube, &ops.namespace)
            .await
            .map_err(|e| describe(&e));
        c.events
            .insert(format!("events/{}.yaml", safe(&ops.namespace)), ev);
    }
    for (ns, names) in &namespaces {
        let ev = super::read::events(kube, ns)
            .await
            .map(|list| {
                list.into_iter()
                    .filter(|e| {
                        e.involved_object.kind.as_deref() == Some("Pod")
                            && e.involved_object
                                .name
                                .as_ref()
                                .is_some_and(|n| names.contains(n))
                    })
                    .collect::<Vec<_>>()
            })
            .map_err(|e| describe(&e));
        c.events
            .insert(format!("events/gpu-pods/{}.yaml", safe(ns)), ev);
    }

    let targets = log_targets(snap);
    progress.set_message(format!("logs ({} containers)", targets.len()));
    let logs: Vec<(String, LogResult)> = futures::stream::iter(targets)
        .map(|(ns, pod, container, previous, path)| async move {
            let r = super::read::log_tail(kube, &ns, &pod, &container, previous, opts.log_cap)
                .await
                .map_err(|e| describe(&e));
            (path, r)
        })
        .buffer_unordered(8)
        .collect()
        .await;
    c.logs = logs.into_iter().collect();

    if let Some(agent_opts) = &opts.deep {
        progress.set_message("node files (--deep)");
        let nodes: Vec<_> = view
            .gpu_nodes()
            .filter(|n| report.nodes.nodes.iter().any(|r| r.name == n.name))
            .cloned()
            .collect();
        match crate::preflight::node_agent(kube, &agent_opts.namespace).await {
            Err(e) => {
                for n in &nodes {
                    c.node_files.insert(n.name.clone(), Err(e.to_string()));
                }
            }
            Ok(()) => {
                let agents = crate::node::agent::Agents::new(kube, agent_opts.clone());
                #[allow(clippy::type_complexity)]
                let results: Vec<(
                    String,
                    std::result::Result<(crate::matrix::NodePaths, ProbeResult), String>,
                )> = futures::stream::iter(&nodes)
                    .map(|n| {
                        let agents = &agents;
                        async move {
                            (
                                n.name.clone(),
                                crate::checks::host::probe_node(agents, n)
                                    .await
                                    .map_err(|e| e.to_string()),
                            )
                        }
                    })
                    .buffer_unordered(8)
                    .collect()
                    .await;
                agents.cleanup().await;
                for (node, r) in results {
                    let facts = nodes.iter().find(|n| n.name == node);
                    if let (Ok((paths, probe)), Some(facts)) = (&r, facts) {
                        findings.extend(crate::checks::host::rules(
                            facts,
                            view.operator.as_ref(),
                            paths,
                            probe,
                        ));
                    }
                    c.node_files.insert(node, r.map(|(_, p)| p));
                }
            }
        }
    }
    findings.sort_by_key(|f| (f.node.clone(), std::cmp::Reverse(f.status)));
    let summary = crate::checks::Summary::of(&findings);
    c.check_runtime = Some(serde_json::json!({
        "server": snap.server,
        "summary": summary,
        "findings": findings,
    }));
    c
}
