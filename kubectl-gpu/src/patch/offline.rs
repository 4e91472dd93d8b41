//! Offline mode of `patch-containerd` ([`run`]): no cluster. The node is a
//! local filesystem tree (`--node-root`, e.g. `tests/node-trees/gpu-h200-0`),
//! read by the same [`crate::patch::gather`] as cluster mode, over
//! [`LocalRoot`]; so the RKE2 config drop-ins (`config.yaml.d`) are read and
//! the runtime binaries are looked up in that tree. With `--config-file`
//! (and `--template-file`, `--drop-in-dir`, `--rke2-config`) the given files
//! are first staged into a temporary tree at the paths [`NodePaths`] names;
//! errors about a staged file name the given file, not its host path.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::containerd::template::config_head;
use crate::error::{Error, Result};
use crate::matrix::{self, NodePaths};
use crate::node::{Host, LocalRoot};
use crate::patch::plan::{NodeState, PatchOptions, Plan, containerd_line, imported_drop_in_dir};
use crate::patch::report::{OfflineFile, OfflineReport};
use crate::patch::{
    self, GENERIC_CONFIG, NodeReport, Outcome, PatchReport, PatchTarget, RUNTIME_BINARIES,
};
use crate::version::{Distribution, KubeletVersion, Triple};

/// Where the node's files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfflineSource {
    /// A node's filesystem tree: host paths are read below it.
    NodeRoot(PathBuf),
    /// Single files, staged into a temporary tree.
    Files {
        /// The generated config.toml (generic mode: the containerd config).
        config: PathBuf,
        /// The user template (config-v3.toml.tmpl or config.toml.tmpl).
        template: Option<PathBuf>,
        /// The drop-in dir the config imports (its `*.toml` files).
        drop_in_dir: Option<PathBuf>,
        /// `/etc/rancher/rke2/config.yaml`.
        rke2_config: Option<PathBuf>,
    },
}

/// What to plan offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineRequest {
    pub source: OfflineSource,
    pub options: PatchOptions,
    /// RKE2 data dir (default: the distribution's).
    pub data_dir: Option<String>,
    /// The node's containerd, e.g. `2.2.2` (default from the config's schema).
    pub containerd_version: Option<String>,
    /// The node's RKE2 or K3s version, e.g. `v1.33.10+rke2r1` (default:
    /// current RKE2 features).
    pub rke2_version: Option<String>,
    /// Write the resulting files below this dir (at their host paths), plus
    /// `rendered/config.toml` and `rendered/effective-config.toml`.
    pub out_dir: Option<PathBuf>,
}

/// A containerd version from the command line: `2.2.2`, `v1.7.23-k3s2` or
/// `containerd://2.1.4-k3s2` (major and minor needed).
pub fn parse_containerd_version(s: &str) -> Option<Triple> {
    let s = s.trim();
    let s = s.strip_prefix("containerd://").unwrap_or(s);
    let s = s.strip_prefix('v').unwrap_or(s);
    let mut it = s.split(|c: char| !c.is_ascii_digit());
    it.next()?.parse::<u64>().ok()?;
    it.next()?.parse::<u64>().ok()?;
    Triple::parse_loose(s)
}

/// A temporary node tree, removed when dropped.
struct Stage(PathBuf);

impl Drop for Stage {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn stage_dir() -> Result<Stage> {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "kubectl-gpu-offline-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).map_err(|source| Error::HostIo {
        op: "create",
        path: dir.display().to_string(),
        source,
    })?;
    Ok(Stage(dir))
}

fn read_local(path: &Path, what: &str) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::Usage(format!("cannot read {what} {}: {e}", path.display())))
}

/// The target, the host and (when files were staged) the temporary tree.
struct Prepared {
    target: PatchTarget,
    host: LocalRoot,
    _stage: Option<Stage>,
    /// (host path, the user's file) of each staged file.
    staged: Vec<(String, PathBuf)>,
}

impl Prepared {
    /// An error about a staged file names the user's file (`./config.toml`),
    /// not the host path it stands for.
    fn user_error(&self, mut e: Error) -> Error {
        if let Some(path) = e.file_path_mut()
            && let Some((_, user)) = self.staged.iter().find(|(host, _)| host == path)
        {
            *path = user.display().to_string();
        }
        e
    }
}

/// Distribution from the version, else from the tree (a K3s data dir and
/// no RKE2 one), else RKE2.
fn distribution(kubelet: Option<&KubeletVersion>, source: &OfflineSource) -> Distribution {
    if let Some(k) = kubelet {
        return k.distribution;
    }
    if let OfflineSource::NodeRoot(root) = source {
        let has = |d: Distribution| {
            let p = NodePaths::new(d, None).generated_config;
            root.join(p.trim_start_matches('/')).exists()
        };
        if has(Distribution::K3s) && !has(Distribution::Rke2) {
            return Distribution::K3s;
        }
    }
    Distribution::Rke2
}

async fn prepare(req: &OfflineRequest) -> Result<Prepared> {
    let kubelet = match &req.rke2_version {
        Some(v) => Some(
            KubeletVersion::parse(v)
                .filter(|k| k.distribution != Distribution::Other)
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "--rke2-version {v:?} is not an RKE2 or K3s version like v1.33.10+rke2r1"
                    ))
                })?,
        ),
        None => None,
    };
    let generic = req.options.generic_containerd;
    let distribution = distribution(kubelet.as_ref(), &req.source);
    let paths = NodePaths::new(distribution, req.data_dir.as_deref());
    let config_path = if generic {
        GENERIC_CONFIG.to_owned()
    } else {
        paths.generated_config.clone()
    };
    let (host, stage, node, generated) = match &req.source {
        OfflineSource::NodeRoot(root) => {
            let host = LocalRoot::new(root);
            let generated = match host.read(&config_path).await? {
                Some(b) => String::from_utf8(b).ok(),
                None => None,
            };
            (host, None, root.display().to_string(), generated)
        }
        OfflineSource::Files { config, .. } => {
            let stage = stage_dir()?;
            let host = LocalRoot::new(&stage.0);
            let generated = read_local(config, "--config-file")?;
            (
                host,
                Some(stage),
                config.display().to_string(),
                Some(generated),
            )
        }
    };
    let version_of_config = generated
        .as_deref()
        .and_then(|g| config_head(&node, g))
        .map(|c| c.version())
        .unwrap_or(2);
    let mut notes = Vec::new();
    let containerd = match &req.containerd_version {
        Some(v) => parse_containerd_version(v).ok_or_else(|| {
            Error::Usage(format!(
                "--containerd-version {v:?} is not a version like 2.2.2"
            ))
        })?,
        None => {
            let c = matrix::assumed_containerd(version_of_config);
            notes.push(format!(
                "no --containerd-version: assuming containerd {} for a version {version_of_config} config",
                containerd_line(c)
            ));
            c
        }
    };
    if kubelet.is_none() {
        notes.push(
            "no --rke2-version: assuming current RKE2 features (base templates, default-runtime)"
                .into(),
        );
    }
    let unit = if generic {
        "containerd"
    } else if distribution == Distribution::K3s {
        "k3s or k3s-agent"
    } else {
        "rke2-server or rke2-agent"
    };
    let target = PatchTarget::new(
        &node,
        distribution,
        paths,
        kubelet.as_ref(),
        containerd,
        generic,
        unit,
        notes,
    );
    let staged = match (&req.source, &generated) {
        (OfflineSource::Files { .. }, Some(generated)) => {
            stage_files(&host, &target, req, generated, version_of_config).await?
        }
        _ => Vec::new(),
    };
    Ok(Prepared {
        target,
        host,
        _stage: stage,
        staged,
    })
}

/// Writes the given files into the staged tree at the target's paths, and
/// an empty stand-in for each runtime binary known to exist on the target
/// host: the one given with `--binary-path`, and the nvidia runtimes the
/// generated config names (RKE2 found them when it wrote it). Returns the
/// (host path, user's file) pairs.
async fn stage_files(
    host: &LocalRoot,
    target: &PatchTarget,
    req: &OfflineRequest,
    generated: &str,
    version_of_config: i64,
) -> Result<Vec<(String, PathBuf)>> {
    let OfflineSource::Files {
        config,
        template,
        drop_in_dir,
        rke2_config,
    } = &req.source
    else {
        return Ok(Vec::new());
    };
    let p = &target.paths;
    let mut staged = vec![(target.config_path().to_owned(), config.clone())];
    host.write_atomic(target.config_path(), generated.as_bytes(), 0o600)
        .await?;
    if let Some(t) = template {
        let text = read_local(t, "--template-file")?;
        let name = t
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dest = if name.contains("v3")
            || (!name.starts_with("config.toml") && version_of_config >= 3)
        {
            &p.template_v3
        } else {
            &p.template_v2
        };
        host.write_atomic(dest, text.as_bytes(), 0o600).await?;
        staged.push((dest.clone(), t.clone()));
    }
    if let Some(r) = rke2_config {
        let text = read_local(r, "--rke2-config")?;
        host.write_atomic(&p.config_yaml, text.as_bytes(), 0o600)
            .await?;
        staged.push((p.config_yaml.clone(), r.clone()));
    }
    let parsed = config_head(target.config_path(), generated);
    if let Some(d) = drop_in_dir {
        let rd = std::fs::read_dir(d)
            .map_err(|e| Error::Usage(format!("cannot read --drop-in-dir {}: {e}", d.display())))?;
        let dir = parsed
            .as_ref()
            .and_then(|c| imported_drop_in_dir(c, target.generic_config.is_some()))
            .unwrap_or_else(|| {
                if version_of_config >= 3 {
                    p.drop_in_v3.clone()
                } else {
                    p.drop_in_v2.clone()
                }
            });
        let mut names: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        for f in names {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.ends_with(".toml") && f.is_file() {
                let text = read_local(&f, "drop-in")?;
                let dest = format!("{dir}/{name}");
                host.write_atomic(&dest, text.as_bytes(), 0o600).await?;
                staged.push((dest, f));
            }
        }
    }
    let mut binaries: Vec<String> = parsed
        .map(|c| {
            c.runtimes()
                .into_iter()
                .filter_map(|r| r.binary_name)
                .filter(|b| {
                    b.starts_with('/')
                        && RUNTIME_BINARIES
                            .iter()
                            .any(|n| b.rsplit('/').next() == Some(n))
                })
                .collect()
        })
        .unwrap_or_default();
    binaries.extend(req.options.binary_path.clone());
    for b in binaries {
        if host.resolve(&b).is_ok() && !host.exists(&b).await? {
            host.write_atomic(&b, b"", 0o755).await?;
        }
    }
    Ok(staged)
}

/// The offline plan (for tests and previews): the same gather and planner
/// as cluster mode, over the node tree.
pub async fn plan(req: &OfflineRequest) -> Result<Plan> {
    let p = prepare(req).await?;
    patch::plan_on(&p.host, &p.target, &req.options)
        .await
        .map(|(_, plan)| plan)
        .map_err(|e| p.user_error(e))
}

fn write_file(dest: &Path, text: &str) -> Result<()> {
    let io = |op: &'static str, p: &Path| {
        let path = p.display().to_string();
        move |source| Error::HostIo { op, path, source }
    };
    if let Some(p) = dest.parent() {
        std::fs::create_dir_all(p).map_err(io("create", p))?;
    }
    std::fs::write(dest, text).map_err(io("write", dest))
}

/// `kubectl-gpu patch-containerd --node-root DIR | --config-file FILE`:
/// plans over the node tree and, with `out_dir`, writes the resulting
/// files. Bad options are errors; a plan that is refused is a failed report.
pub async fn run(req: &OfflineRequest) -> Result<PatchReport> {
    let p = prepare(req).await?;
    let target = &p.target;
    let (state, plan): (NodeState, Plan) = match patch::plan_on(&p.host, target, &req.options).await
    {
        Ok(x) => x,
        Err(e) => {
            return Ok(PatchReport::Offline(Box::new(OfflineReport {
                report: NodeReport::failed(&target.node, &p.user_error(e)),
                files: Vec::new(),
                rendered_config: None,
                written: Vec::new(),
            })));
        }
    };
    let mut report = NodeReport::new(&target.node).with_plan(&plan, &target.unit);
    let files: Vec<OfflineFile> = plan
        .changes
        .iter()
        .map(|c| OfflineFile {
            path: c.path.clone(),
            content: c.new.clone(),
        })
        .collect();
    let rendered = patch::preview_generated(&plan, &state).map_err(|e| p.user_error(e))?;
    let mut written = Vec::new();
    if let Some(dir) = &req.out_dir {
        for c in &plan.changes {
            let Some(n) = &c.new else { continue };
            let dest = dir.join(c.path.trim_start_matches('/'));
            write_file(&dest, n)?;
            written.push(dest.display().to_string());
        }
        let cfg_text = rendered
            .clone()
            .unwrap_or_else(|| state.generated_config.clone());
        let dest = dir.join("rendered/config.toml");
        write_file(&dest, &cfg_text)?;
        written.push(dest.display().to_string());
        let drop_ins = patch::drop_ins_after(&plan, &state);
        let flat = patch::flatten(&plan.expectation.config_path, &cfg_text, &drop_ins)
            .map_err(|e| p.user_error(e))?;
        let dest = dir.join("rendered/effective-config.toml");
        write_file(&dest, &flat)?;
        written.push(dest.display().to_string());
        if !plan.changes.is_empty() {
            report.outcome = Outcome::Written;
        }
    }
    Ok(PatchReport::Offline(Box::new(OfflineReport {
        report,
        files,
        rendered_config: rendered,
        written,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containerd_versions() {
        assert_eq!(
            parse_containerd_version("containerd://2.1.4-k3s2"),
            Some(Triple::new(2, 1, 4))
        );
        assert_eq!(
            parse_containerd_version("v1.7.23-k3s2"),
            Some(Triple::new(1, 7, 23))
        );
        assert_eq!(parse_containerd_version("garbage"), None);
        assert_eq!(parse_containerd_version("2"), None);
        // Moved from containerd::model (ContainerdVersion::supports_schema).
        let c17 = Triple::new(1, 7, 0);
        assert!(
            matrix::containerd_loads_schema(c17, 2) && !matrix::containerd_loads_schema(c17, 3)
        );
        let c20 = Triple::new(2, 0, 0);
        assert!(
            matrix::containerd_loads_schema(c20, 3)
                && !matrix::containerd_loads_schema(c20, 1)
                && !matrix::containerd_loads_schema(c20, 4)
        );
        assert!(matrix::containerd_loads_schema(Triple::new(2, 3, 0), 4));
    }

    #[tokio::test]
    async fn errors_about_given_files_name_them_not_their_host_paths() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("bad.toml");
        std::fs::write(&config, "version = 3\n[plugins\n").unwrap();
        let mut req = OfflineRequest {
            source: OfflineSource::Files {
                config: config.clone(),
                template: None,
                drop_in_dir: None,
                rke2_config: None,
            },
            options: PatchOptions::default(),
            data_dir: None,
            containerd_version: None,
            rke2_version: None,
            out_dir: None,
        };
        let m = plan(&req).await.unwrap_err().to_string();
        assert!(
            m.starts_with(&format!("{}: invalid TOML at line 2", config.display())),
            "{m}"
        );
        // A good config with a broken --rke2-config: the YAML file is named.
        std::fs::copy(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/node-trees/gpu-h200-0/var/lib/rancher/rke2/agent/etc/containerd/config.toml"
            ),
            &config,
        )
        .unwrap();
        let yaml = dir.path().join("config.yaml");
        std::fs::write(&yaml, "default-runtime: [\n").unwrap();
        if let OfflineSource::Files { rke2_config, .. } = &mut req.source {
            *rke2_config = Some(yaml.clone());
        }
        let m = plan(&req).await.unwrap_err().to_string();
        assert!(
            m.starts_with(&format!("{}: invalid RKE2 config YAML", yaml.display())),
            "{m}"
        );
    }
}
