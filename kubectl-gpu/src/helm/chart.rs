//! The GPU Operator chart as input: `Chart.yaml` metadata and `values.yaml`,
//! read from a packaged `.tgz`, an unpacked chart directory, or the texts
//! `helm show chart` / `helm show values` print (the binary runs Helm; this
//! module only parses). Also answers "does the chart have this key?", so
//! computed values never set a key the chart does not know.

use crate::version::Triple;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The chart name of NVIDIA's GPU Operator.
pub const GPU_OPERATOR_CHART: &str = "gpu-operator";
/// The chart reference used when none is given.
pub const DEFAULT_CHART_REF: &str = "nvidia/gpu-operator";
/// NVIDIA's current Helm repository (NVIDIA cloud-native-docs gpu-operator/getting-started.rst;
/// the 2021 docs used https://nvidia.github.io/gpu-operator).
pub const NVIDIA_HELM_REPO: &str = "https://helm.ngc.nvidia.com/nvidia";

/// `Chart.yaml` fields we use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChartMeta {
    pub name: String,
    pub version: String,
    #[serde(
        default,
        rename = "appVersion",
        skip_serializing_if = "Option::is_none"
    )]
    pub app_version: Option<String>,
}

impl ChartMeta {
    /// The numeric chart version (`v26.7.0` → 26.7.0).
    pub fn triple(&self) -> Option<Triple> {
        Triple::parse_loose(&self.version)
    }
}

/// The raw texts of a chart's `Chart.yaml` and `values.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartTexts {
    /// Where they came from, for messages (`./gpu-operator-v26.7.0.tgz`).
    pub origin: String,
    pub chart_yaml: String,
    pub values_yaml: String,
}

/// A parsed GPU Operator chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub origin: String,
    pub meta: ChartMeta,
    /// `values.yaml` as a JSON tree.
    pub values: Value,
}

impl Chart {
    /// Parses the texts and checks that the chart is the GPU Operator.
    pub fn from_texts(texts: &ChartTexts) -> Result<Self> {
        let meta = parse_chart_yaml(&texts.origin, &texts.chart_yaml)?;
        if meta.name != GPU_OPERATOR_CHART {
            return Err(Error::NotGpuOperatorChart {
                chart: texts.origin.clone(),
                name: meta.name,
            });
        }
        let values = parse_values_yaml(&texts.origin, &texts.values_yaml)?;
        Ok(Self {
            origin: texts.origin.clone(),
            meta,
            values,
        })
    }

    /// Whether a dotted key path exists in the chart's default values.
    pub fn has_value(&self, path: &str) -> bool {
        has_path(&self.values, path)
    }
}

/// Parses `Chart.yaml`.
pub fn parse_chart_yaml(origin: &str, text: &str) -> Result<ChartMeta> {
    serde_saphyr::from_str::<ChartMeta>(text).map_err(|e| Error::ChartRead {
        chart: origin.to_string(),
        reason: format!("Chart.yaml does not parse (needs name and version): {e}"),
    })
}

/// Parses `values.yaml` into a JSON tree (an empty file is `{}`).
pub fn parse_values_yaml(origin: &str, text: &str) -> Result<Value> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    let v: Value = serde_saphyr::from_str(text).map_err(|e| Error::ChartRead {
        chart: origin.to_string(),
        reason: format!("values.yaml does not parse: {e}"),
    })?;
    Ok(if v.is_null() {
        Value::Object(Default::default())
    } else {
        v
    })
}

/// Whether a dotted key path (`toolkit.env`, `cdi.nriPluginEnabled`) exists
/// in a values tree. A key whose value is `null` exists.
pub fn has_path(values: &Value, path: &str) -> bool {
    let mut cur = values;
    for key in path.split('.') {
        match cur.as_object().and_then(|m| m.get(key)) {
            Some(next) => cur = next,
            None => return false,
        }
    }
    true
}

/// Where a chart reference points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChartSource {
    /// A packaged chart on disk (`.tgz`, `.tar.gz`).
    Archive(PathBuf),
    /// An unpacked chart directory (holds `Chart.yaml`).
    Directory(PathBuf),
    /// Anything Helm resolves itself: `repo/name`, `oci://…`, a URL.
    Remote(String),
}

impl ChartSource {
    /// Classifies a chart reference by looking at the local file system.
    pub fn classify(reference: &str) -> Self {
        let p = Path::new(reference);
        if !reference.contains("://") {
            if p.is_dir() && p.join("Chart.yaml").is_file() {
                return ChartSource::Directory(p.to_path_buf());
            }
            if p.is_file() {
                return ChartSource::Archive(p.to_path_buf());
            }
        }
        ChartSource::Remote(reference.to_string())
    }

    /// Whether `--version` means anything for this source.
    pub fn is_remote(&self) -> bool {
        matches!(self, ChartSource::Remote(_))
    }
}

/// The argv (after `$HELM_BIN`) that prints a chart's `Chart.yaml` or
/// `values.yaml`: `show chart|values REF [--version V] [extra...]`.
pub fn helm_show_args(
    what: ShowWhat,
    reference: &str,
    version: Option<&str>,
    extra: &[String],
) -> Vec<String> {
    let mut args = vec![
        "show".to_string(),
        match what {
            ShowWhat::Chart => "chart",
            ShowWhat::Values => "values",
            ShowWhat::Crds => "crds",
        }
        .to_string(),
        reference.to_string(),
    ];
    if let Some(v) = version {
        args.push("--version".into());
        args.push(v.into());
    }
    args.extend(extra.iter().cloned());
    args
}

/// Which file `helm show` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShowWhat {
    Chart,
    Values,
    Crds,
}

/// The files of a packaged chart (gzipped tar) whose path parts (without a
/// leading `./`) `want` accepts, as (path, text), in archive order.
fn archive_files(
    origin: &str,
    reader: impl Read,
    want: impl Fn(&[&str], &str) -> bool,
) -> Result<Vec<(String, String)>> {
    let err = |reason: String| Error::ChartRead {
        chart: origin.to_string(),
        reason,
    };
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(reader));
    let mut files = Vec::new();
    let entries = archive
        .entries()
        .map_err(|e| err(format!("not a gzipped tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| err(format!("reading the archive: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| err(format!("bad entry name: {e}")))?
            .to_string_lossy()
            .into_owned();
        let parts: Vec<&str> = path.trim_start_matches("./").split('/').collect();
        if !want(&parts, &path) {
            continue;
        }
        let mut text = String::new();
        entry
            .read_to_string(&mut text)
            .map_err(|e| err(format!("reading {path}: {e}")))?;
        files.push((path, text));
    }
    Ok(files)
}

/// Reads `<chart>/Chart.yaml` and `<chart>/values.yaml` from a packaged
/// chart (gzipped tar). Subcharts (`<chart>/charts/…`) are skipped.
pub fn read_chart_archive(origin: &str, reader: impl Read) -> Result<ChartTexts> {
    // `<chart>/Chart.yaml` or `<chart>/values.yaml`, not a subchart's.
    fn top(parts: &[&str]) -> Option<&'static str> {
        match parts {
            [_, "Chart.yaml"] => Some("Chart.yaml"),
            [_, "values.yaml"] => Some("values.yaml"),
            _ => None,
        }
    }
    let mut chart_yaml = None;
    let mut values_yaml = None;
    for (path, text) in archive_files(origin, reader, |parts, _| top(parts).is_some())? {
        let parts: Vec<&str> = path.trim_start_matches("./").split('/').collect();
        match top(&parts) {
            Some("Chart.yaml") => chart_yaml = Some(text),
            _ => values_yaml = Some(text),
        }
    }
    Ok(ChartTexts {
        origin: origin.to_string(),
        chart_yaml: chart_yaml.ok_or_else(|| Error::ChartRead {
            chart: origin.to_string(),
            reason: "archive has no <chart>/Chart.yaml: is it a Helm chart?".into(),
        })?,
        values_yaml: values_yaml.unwrap_or_default(),
    })
}

/// Whether Helm loads a file under `crds/` as a manifest (helm/helm
/// `pkg/chart` `CRDObjects`: `.yaml`, `.yml`, `.json`).
fn is_manifest(name: &str) -> bool {
    [".yaml", ".yml", ".json"].iter().any(|e| name.ends_with(e))
}

/// The texts of `<chart>/crds/**` of a packaged chart (not the subcharts'),
/// in path order, joined as one multi-document YAML (what `helm show crds`
/// prints).
pub fn read_chart_archive_crds(origin: &str, reader: impl Read) -> Result<String> {
    let files = archive_files(origin, reader, |parts, path| {
        parts.len() >= 3 && parts[1] == "crds" && is_manifest(path)
    })?;
    Ok(join_crds(files))
}

fn join_crds(mut files: Vec<(String, String)>) -> String {
    files.sort();
    files
        .into_iter()
        .map(|(_, t)| t)
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// The CRD texts of a chart archive file.
pub fn read_chart_archive_crds_file(path: &Path) -> Result<String> {
    let (origin, file) = open_archive(path)?;
    read_chart_archive_crds(&origin, file)
}

/// A chart archive opened for reading, with its name for errors.
fn open_archive(path: &Path) -> Result<(String, std::fs::File)> {
    let origin = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| Error::ChartRead {
        chart: origin.clone(),
        reason: format!("cannot open: {e}"),
    })?;
    Ok((origin, file))
}

/// The CRD texts of an unpacked chart directory (`crds/**`; none when it has no `crds/`).
pub fn read_chart_dir_crds(dir: &Path) -> Result<String> {
    let origin = dir.display().to_string();
    let mut files = Vec::new();
    let mut todo = vec![dir.join("crds")];
    while let Some(d) = todo.pop() {
        if !d.is_dir() {
            continue;
        }
        let read = std::fs::read_dir(&d).map_err(|e| Error::ChartRead {
            chart: origin.clone(),
            reason: format!("cannot list {}: {e}", d.display()),
        })?;
        for entry in read {
            let p = entry
                .map_err(|e| Error::ChartRead {
                    chart: origin.clone(),
                    reason: format!("cannot list {}: {e}", d.display()),
                })?
                .path();
            if p.is_dir() {
                todo.push(p);
            } else if is_manifest(&p.to_string_lossy()) {
                let text = std::fs::read_to_string(&p).map_err(|e| Error::ChartRead {
                    chart: origin.clone(),
                    reason: format!("cannot read {}: {e}", p.display()),
                })?;
                files.push((p.display().to_string(), text));
            }
        }
    }
    Ok(join_crds(files))
}

/// Reads a chart archive file.
pub fn read_chart_archive_file(path: &Path) -> Result<ChartTexts> {
    let (origin, file) = open_archive(path)?;
    read_chart_archive(&origin, file)
}

/// Reads an unpacked chart directory.
pub fn read_chart_dir(dir: &Path) -> Result<ChartTexts> {
    let origin = dir.display().to_string();
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name)).map_err(|e| Error::ChartRead {
            chart: origin.clone(),
            reason: format!("cannot read {name}: {e}"),
        })
    };
    let chart_yaml = read("Chart.yaml")?;
    let values_yaml = if dir.join("values.yaml").exists() {
        read("values.yaml")?
    } else {
        String::new()
    };
    Ok(ChartTexts {
        origin,
        chart_yaml,
        values_yaml,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const VALUES_26_7: &str =
        include_str!("../../../tests/fixtures/gpu-operator-values-v26.7.0.yaml");

    pub(crate) fn chart_yaml(name: &str, version: &str) -> String {
        format!(
            "apiVersion: v2\nname: {name}\nversion: {version}\nappVersion: {version}\nkubeVersion: '>= 1.16.0-0'\n"
        )
    }

    /// Builds a packaged chart the way `helm package` lays it out.
    pub(crate) fn tgz(name: &str, files: &[(&str, &str)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::default(),
        ));
        for (path, text) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(text.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, format!("{name}/{path}"), text.as_bytes())
                .unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn reads_the_real_values_file() {
        let v = parse_values_yaml("fixture", VALUES_26_7).unwrap();
        // NVIDIA/gpu-operator deployments/gpu-operator/values.yaml @v26.7.0
        assert!(has_path(&v, "toolkit.env"));
        assert!(has_path(&v, "devicePlugin.env"));
        assert!(has_path(&v, "cdi.enabled"));
        assert!(has_path(&v, "cdi.nriPluginEnabled"));
        assert!(has_path(&v, "toolkit.version"));
        assert!(has_path(&v, "psa.enabled"));
        assert!(!has_path(&v, "operator.defaultRuntime"));
        assert!(!has_path(&v, "toolkit.env.name"));
        assert_eq!(v["toolkit"]["version"], "v1.20.0");
        assert_eq!(v["cdi"]["enabled"], true);
    }

    #[test]
    fn reads_an_archive_and_skips_subcharts() {
        let bytes = tgz(
            "gpu-operator",
            &[
                ("Chart.yaml", &chart_yaml("gpu-operator", "v26.7.0")),
                ("values.yaml", VALUES_26_7),
                (
                    "charts/node-feature-discovery/Chart.yaml",
                    &chart_yaml("node-feature-discovery", "0.19.0"),
                ),
                ("charts/node-feature-discovery/values.yaml", "x: 1\n"),
            ],
        );
        let texts = read_chart_archive("t.tgz", bytes.as_slice()).unwrap();
        let chart = Chart::from_texts(&texts).unwrap();
        assert_eq!(
            read_chart_archive_crds("t.tgz", bytes.as_slice()).unwrap(),
            ""
        );
        assert_eq!(chart.meta.name, "gpu-operator");
        assert_eq!(chart.meta.triple(), Some(Triple::new(26, 7, 0)));
        assert!(chart.has_value("toolkit.env"));
    }

    #[test]
    fn reads_the_crds_of_the_chart_not_of_its_subcharts() {
        let bytes = tgz(
            "gpu-operator",
            &[
                ("Chart.yaml", &chart_yaml("gpu-operator", "v26.7.0")),
                ("crds/b.yaml", "kind: B\n"),
                ("crds/a.yaml", "kind: A\n"),
                ("crds/README.md", "not a manifest"),
                ("charts/nfd/crds/c.yaml", "kind: C\n"),
            ],
        );
        let text = read_chart_archive_crds("t.tgz", bytes.as_slice()).unwrap();
        assert_eq!(text, "kind: A\n\n---\nkind: B\n");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("crds/sub")).unwrap();
        std::fs::write(dir.path().join("crds/x.yaml"), "kind: X\n").unwrap();
        std::fs::write(dir.path().join("crds/sub/y.yml"), "kind: Y\n").unwrap();
        let text = read_chart_dir_crds(dir.path()).unwrap();
        assert!(
            text.contains("kind: X") && text.contains("kind: Y"),
            "{text}"
        );
        assert_eq!(read_chart_dir_crds(&dir.path().join("none")).unwrap(), "");
    }

    #[test]
    fn refuses_other_charts() {
        let texts = ChartTexts {
            origin: "bitnami/nginx".into(),
            chart_yaml: chart_yaml("nginx", "15.0.0"),
            values_yaml: String::new(),
        };
        let e = Chart::from_texts(&texts).unwrap_err().to_string();
        assert!(
            e.contains("`nginx`") && e.contains("not the NVIDIA GPU Operator"),
            "{e}"
        );
        let e = read_chart_archive("x.tgz", &b"not gzip"[..])
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.tgz"), "{e}");
    }

    #[test]
    fn reads_a_directory_and_classifies_sources() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Chart.yaml"),
            chart_yaml("gpu-operator", "v25.3.4"),
        )
        .unwrap();
        std::fs::write(dir.path().join("values.yaml"), "toolkit:\n  env: []\n").unwrap();
        let src = ChartSource::classify(&dir.path().display().to_string());
        assert!(matches!(src, ChartSource::Directory(_)));
        let chart = Chart::from_texts(&read_chart_dir(dir.path()).unwrap()).unwrap();
        assert_eq!(chart.meta.version, "v25.3.4");
        assert!(ChartSource::classify("nvidia/gpu-operator").is_remote());
        assert!(ChartSource::classify("oci://ghcr.io/x/gpu-operator").is_remote());
        assert_eq!(
            helm_show_args(
                ShowWhat::Values,
                "nvidia/gpu-operator",
                Some("v26.7.0"),
                &[]
            ),
            [
                "show",
                "values",
                "nvidia/gpu-operator",
                "--version",
                "v26.7.0"
            ]
        );
    }
}
