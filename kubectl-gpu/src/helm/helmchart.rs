//! `--output helmchart`: an RKE2 HelmChart (`helm.cattle.io/v1`, rancher
//! helm-controller `pkg/apis/helm.cattle.io/v1/types.go`) that installs the
//! GPU Operator with the computed values as `valuesContent`, preceded by a
//! PSA-privileged Namespace on CIS clusters. Built from serde structs and
//! serialised with serde-saphyr.

use super::chart::{Chart, ChartSource, NVIDIA_HELM_REPO};
use super::values::ComputedValues;
use crate::labels::PSA_ENFORCE;
use crate::matrix::PSA_PRIVILEGED;
use crate::{Error, Result};
use serde::Serialize;
use serde_saphyr::{DoubleQuoted, LitString};
use std::collections::BTreeMap;

/// The namespace RKE2's helm-controller watches for HelmChart objects.
pub const HELMCHART_NAMESPACE: &str = "kube-system";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Namespace {
    api_version: &'static str,
    kind: &'static str,
    metadata: NamespaceMeta,
}

#[derive(Serialize)]
struct NamespaceMeta {
    name: DoubleQuoted<String>,
    labels: BTreeMap<&'static str, &'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HelmChart {
    api_version: &'static str,
    kind: &'static str,
    metadata: HelmChartMeta,
    spec: HelmChartSpec,
}

#[derive(Serialize)]
struct HelmChartMeta {
    name: DoubleQuoted<String>,
    namespace: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HelmChartSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    repo: Option<DoubleQuoted<String>>,
    chart: DoubleQuoted<String>,
    version: DoubleQuoted<String>,
    target_namespace: DoubleQuoted<String>,
    create_namespace: bool,
    values_content: LitString,
}

/// The manifest and notes for the user (where the chart reference had to be
/// translated into a repository and name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub yaml: String,
    pub notes: Vec<String>,
}

/// `spec.chart` and `spec.repo` for a chart read from `source`.
fn chart_and_repo(
    chart: &Chart,
    source: &ChartSource,
    repo: Option<&str>,
    notes: &mut Vec<String>,
) -> (String, Option<String>) {
    let nvidia_or = |repo: Option<&str>| Some(repo.unwrap_or(NVIDIA_HELM_REPO).to_string());
    match source {
        ChartSource::Remote(r) if r.starts_with("oci://") => (r.clone(), None),
        ChartSource::Remote(r) => {
            if repo.is_none() && !r.starts_with("nvidia/") {
                notes.push(format!(
                    "chart {r}: assuming NVIDIA's repository {NVIDIA_HELM_REPO} in spec.repo"
                ));
            }
            (chart.meta.name.clone(), nvidia_or(repo))
        }
        _ => {
            notes.push(format!(
                "the chart was read from {}; the HelmChart points at {NVIDIA_HELM_REPO} version {} instead",
                chart.origin, chart.meta.version
            ));
            (chart.meta.name.clone(), nvidia_or(repo))
        }
    }
}

/// The HelmChart for `release` installing into `namespace` (plus the
/// privileged Namespace when the computed values ask for it).
pub fn manifest(
    release: &str,
    namespace: &str,
    chart: &Chart,
    source: &ChartSource,
    repo: Option<&str>,
    computed: &ComputedValues,
) -> Result<Manifest> {
    let mut notes = Vec::new();
    let (chart_field, repo_field) = chart_and_repo(chart, source, repo, &mut notes);
    let err = |e: serde_saphyr::SerializeError| {
        Error::Other(format!("rendering the HelmChart manifest: {e}"))
    };
    let mut yaml = String::new();
    if computed.namespace_needs_privileged {
        let ns = Namespace {
            api_version: "v1",
            kind: "Namespace",
            metadata: NamespaceMeta {
                name: DoubleQuoted(namespace.to_string()),
                labels: BTreeMap::from([(PSA_ENFORCE, PSA_PRIVILEGED)]),
            },
        };
        yaml.push_str(&serde_saphyr::to_string(&ns).map_err(err)?);
        yaml.push_str("---\n");
    }
    let hc = HelmChart {
        api_version: "helm.cattle.io/v1",
        kind: "HelmChart",
        metadata: HelmChartMeta {
            name: DoubleQuoted(release.to_string()),
            namespace: HELMCHART_NAMESPACE,
        },
        spec: HelmChartSpec {
            repo: repo_field.map(DoubleQuoted),
            chart: DoubleQuoted(chart_field),
            version: DoubleQuoted(chart.meta.version.clone()),
            target_namespace: DoubleQuoted(namespace.to_string()),
            create_namespace: true,
            values_content: LitString(computed.to_yaml().trim_end().to_string()),
        },
    };
    yaml.push_str(&serde_saphyr::to_string(&hc).map_err(err)?);
    Ok(Manifest { yaml, notes })
}
