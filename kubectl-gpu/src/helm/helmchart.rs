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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::helm::chart::ChartMeta;
    use crate::helm::values::{ComputedValue, PodGpuAccess};
    use serde_json::{Value, json};

    fn chart() -> Chart {
        Chart {
            origin: "nvidia/gpu-operator".into(),
            meta: ChartMeta {
                name: "gpu-operator".into(),
                version: "v25.10.1".into(),
                app_version: None,
            },
            values: json!({"toolkit": {"env": []}}),
        }
    }

    fn computed(cis: bool) -> ComputedValues {
        ComputedValues {
            chart_version: "v25.10.1".into(),
            chart_row: "v25.10.x",
            values: vec![ComputedValue {
                path: "toolkit.env".into(),
                value: json!([{"name": "CONTAINERD_SOCKET", "value": "/run/k3s/containerd/containerd.sock"}]),
                reason: "RKE2 nodes".into(),
                source: "rke2-docs".into(),
            }],
            dropped: Vec::new(),
            warnings: Vec::new(),
            hints: Vec::new(),
            after_install: Vec::new(),
            pod_access: PodGpuAccess::Cdi,
            namespace_needs_privileged: cis,
        }
    }

    #[test]
    fn helmchart_parses_back_with_the_computed_values() {
        let c = computed(false);
        let m = manifest(
            "gpu-operator",
            "gpu-operator",
            &chart(),
            &ChartSource::Remote("nvidia/gpu-operator".into()),
            None,
            &c,
        )
        .unwrap();
        assert!(m.notes.is_empty(), "{:?}", m.notes);
        let v: Value = serde_saphyr::from_str(&m.yaml).unwrap();
        assert_eq!(v["apiVersion"], "helm.cattle.io/v1");
        assert_eq!(v["kind"], "HelmChart");
        assert_eq!(v["metadata"]["name"], "gpu-operator");
        assert_eq!(v["metadata"]["namespace"], "kube-system");
        let spec = &v["spec"];
        assert_eq!(spec["repo"], NVIDIA_HELM_REPO);
        assert_eq!(spec["chart"], "gpu-operator");
        assert_eq!(spec["version"], "v25.10.1");
        assert_eq!(spec["targetNamespace"], "gpu-operator");
        assert_eq!(spec["createNamespace"], true);
        let values_content = spec["valuesContent"].as_str().unwrap();
        assert_eq!(values_content, c.to_yaml().trim_end());
        let values: Value = serde_saphyr::from_str(values_content).unwrap();
        assert_eq!(values, c.tree());
        // The layout the format!-built manifest had: quoted strings, a `|-` block.
        assert!(m.yaml.starts_with(
            "apiVersion: helm.cattle.io/v1\nkind: HelmChart\nmetadata:\n  name: \"gpu-operator\"\n  namespace: kube-system\nspec:\n  repo: \"https://helm.ngc.nvidia.com/nvidia\"\n  chart: \"gpu-operator\"\n  version: \"v25.10.1\"\n  targetNamespace: \"gpu-operator\"\n  createNamespace: true\n  valuesContent: |-\n    # GPU Operator values"
        ), "{}", m.yaml);
        assert!(
            m.yaml
                .ends_with("        value: \"/run/k3s/containerd/containerd.sock\"\n"),
            "{}",
            m.yaml
        );
    }

    #[test]
    fn cis_adds_a_privileged_namespace_and_local_charts_note_the_repo() {
        let m = manifest(
            "gpu",
            "gpu-ops",
            &chart(),
            &ChartSource::Archive("/tmp/gpu-operator-v25.10.1.tgz".into()),
            None,
            &computed(true),
        )
        .unwrap();
        assert!(m.yaml.starts_with(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: \"gpu-ops\"\n  labels:\n    pod-security.kubernetes.io/enforce: privileged\n---\napiVersion: helm.cattle.io/v1\n"
        ), "{}", m.yaml);
        let docs: Vec<&str> = m.yaml.split("---\n").collect();
        let ns: Value = serde_saphyr::from_str(docs[0]).unwrap();
        assert_eq!(ns["metadata"]["labels"][PSA_ENFORCE], PSA_PRIVILEGED);
        let hc: Value = serde_saphyr::from_str(docs[1]).unwrap();
        assert_eq!(hc["metadata"]["name"], "gpu");
        assert_eq!(hc["spec"]["targetNamespace"], "gpu-ops");
        assert_eq!(m.notes.len(), 1);
        assert!(
            m.notes[0].contains("points at https://helm.ngc.nvidia.com/nvidia version v25.10.1")
        );
        // OCI references go to spec.chart as they are, without spec.repo.
        let m = manifest(
            "gpu",
            "gpu-ops",
            &chart(),
            &ChartSource::Remote("oci://ghcr.io/nvidia/gpu-operator".into()),
            None,
            &computed(false),
        )
        .unwrap();
        let hc: Value = serde_saphyr::from_str(&m.yaml).unwrap();
        assert_eq!(hc["spec"]["chart"], "oci://ghcr.io/nvidia/gpu-operator");
        assert!(hc["spec"].get("repo").is_none());
    }
}
