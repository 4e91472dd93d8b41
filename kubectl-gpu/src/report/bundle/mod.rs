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

//!
//! - [`contents`]: what goes in ([`assemble`], pure).
//! - [`collect`]: what is fetched beyond the snapshot (I/O).
//! - [`archive`]: the tar.gz writing.
//!
//! [`write_file`] is the command: collect, assemble, write the file.

mod archive;
pub mod collect;
pub mod contents;

pub use collect::{CollectOptions, collect};
pub use contents::{assemble, log_targets};

use super::GpuReport;
use super::redact::redact_value;
use crate::check_runtime::CheckReport;
use crate::client::Kube;
use crate::error::{Error, Result};
use crate::node::probe::ProbeResult;
use crate::snapshot::Snapshot;
use k8s_openapi::api::core::v1::{Event, Pod};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;

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
    /// `check-runtime -o json` on the same snapshot.
    pub check_runtime: Option<CheckReport>,
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
    pub fn manifest(&self, report: &GpuReport) -> Manifest {
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
}

/// Options of [`write_file`].
#[derive(Debug, Clone)]
pub struct BundleOptions {
    /// The `.tar.gz` to write.
    pub path: PathBuf,
    pub collect: CollectOptions,
    /// mtime of every entry (`SOURCE_DATE_EPOCH`, else 0).
    pub mtime: u64,
}

/// What [`write_file`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    pub summary: BundleSummary,
    /// What was not collected, and why (also in `manifest.json`).
    pub not_collected: Vec<String>,
}

/// `report --bundle`: fetches what the bundle needs, assembles it and
/// writes the archive to `opts.path`.
pub async fn write_file(
    kube: &Kube,
    snap: &Snapshot,
    report: &GpuReport,
    opts: &BundleOptions,
    progress: &indicatif::ProgressBar,
) -> Result<Written> {
    let collected = collect(kube, snap, report, &opts.collect, progress).await;
    progress.set_message("writing");
    let b = assemble(snap, report, &collected);
    let path = opts.path.display().to_string();
    let file = std::fs::File::create(&opts.path).map_err(|source| Error::BundleCreate {
        path: path.clone(),
        source,
    })?;
    let mut w = std::io::BufWriter::new(file);
    let summary = b.write(report, &mut w, opts.mtime)?;
    w.flush().map_err(|e| Error::BundleWrite {
        reason: format!("writing {path}: {e}"),
    })?;
    Ok(Written {
        summary,
        not_collected: b.not_collected,
    })
}

impl BundleSummary {
    /// The line `report --bundle` prints after writing `path`.
    pub fn line(&self, path: &std::path::Path) -> String {
        format!(
            "Wrote {}: {} entries, {} bytes uncompressed, {} bytes compressed ({:.1}%)",
            path.display(),
            self.entries,
            self.uncompressed_bytes,
            self.compressed_bytes,
            if self.uncompressed_bytes == 0 {
                0.0
            } else {
                self.compressed_bytes as f64 * 100.0 / self.uncompressed_bytes as f64
            }
        )
    }
}
