//! Helm release Secrets (`type: helm.sh/release.v1`): decoding one and picking
//! the latest deployed revision, so `kubectl gpu` can tell which GPU
//! Operator chart version is installed without running Helm.
//!
//! Storage format (helm/helm `pkg/storage/driver/util.go`, `encodeRelease` /
//! `decodeRelease`, same in Helm 3 and 4; `pkg/storage/driver/secrets.go`,
//! `newSecretsObject`):
//!
//! - the release is marshalled to JSON, gzipped (`gzip.BestCompression`) and
//!   base64-encoded (`base64.StdEncoding`) into a string;
//! - that string is stored as the bytes of `data.release`, which the API
//!   server base64-encodes once more on the wire. A Kubernetes client that
//!   decodes `data` therefore hands over base64 *text*;
//! - releases written before compression was introduced lack the gzip magic
//!   `1f 8b 08` and are plain JSON after the base64 step;
//! - the Secret is named `sh.helm.release.v1.<name>.v<revision>` and labelled
//!   `owner=helm`, `name=<name>`, `status=<status>`, `version=<revision>`.

use crate::{Error, Result};
use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use serde::{Deserialize, Serialize};
use std::io::Read as _;

/// The Secret type Helm stores releases under.
pub const RELEASE_SECRET_TYPE: &str = "helm.sh/release.v1";
/// Label selector for every Helm release Secret.
pub const RELEASE_LABEL_SELECTOR: &str = "owner=helm";
/// The `status` label value of the live revision.
pub const STATUS_DEPLOYED: &str = "deployed";

const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];

/// What we need from a Helm release.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HelmRelease {
    /// Release name (`gpu-operator`).
    pub name: String,
    pub namespace: String,
    /// `deployed`, `superseded`, `failed`, `pending-install`, …
    pub status: String,
    /// The release revision (`version` in Helm's JSON).
    pub revision: u64,
    /// `chart.metadata.name`
    pub chart_name: String,
    /// `chart.metadata.version`, e.g. `v26.7.0`
    pub chart_version: String,
    /// `chart.metadata.appVersion`
    pub app_version: Option<String>,
    /// The user-supplied values (`config`); `{}` when none.
    pub config: serde_json::Value,
}

#[derive(Deserialize)]
struct RawRelease {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    version: u64,
    #[serde(default)]
    info: Option<RawInfo>,
    #[serde(default)]
    chart: Option<RawChart>,
    #[serde(default)]
    config: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawInfo {
    #[serde(default)]
    status: String,
}

#[derive(Deserialize)]
struct RawChart {
    #[serde(default)]
    metadata: Option<RawMetadata>,
}

#[derive(Deserialize)]
struct RawMetadata {
    #[serde(default)]
    name: String,
    #[serde(default)]
    version: String,
    #[serde(default, rename = "appVersion")]
    app_version: Option<String>,
}

/// Decodes the bytes of a release Secret's `data.release` (base64 text of
/// gzipped JSON, as the Kubernetes client returns them).
pub fn decode_release(secret_data_release: &[u8]) -> Result<HelmRelease> {
    decode_named(secret_data_release, "data.release")
}

fn decode_named(data: &[u8], what: &str) -> Result<HelmRelease> {
    let err = |reason: String| Error::HelmRelease {
        secret: what.to_string(),
        reason,
    };
    let text: Vec<u8> = data
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&text)
        .map_err(|e| err(format!("data.release is not base64: {e}")))?;
    let json = if raw.starts_with(&GZIP_MAGIC) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| err(format!("data.release is not valid gzip: {e}")))?;
        out
    } else {
        raw
    };
    let rel: RawRelease = serde_json::from_slice(&json)
        .map_err(|e| err(format!("data.release is not a Helm release JSON: {e}")))?;
    let meta = rel.chart.and_then(|c| c.metadata);
    Ok(HelmRelease {
        name: rel.name,
        namespace: rel.namespace,
        status: rel.info.map(|i| i.status).unwrap_or_default(),
        revision: rel.version,
        chart_name: meta.as_ref().map(|m| m.name.clone()).unwrap_or_default(),
        chart_version: meta.as_ref().map(|m| m.version.clone()).unwrap_or_default(),
        app_version: meta.and_then(|m| m.app_version).filter(|v| !v.is_empty()),
        config: rel
            .config
            .filter(|c| !c.is_null())
            .unwrap_or_else(|| serde_json::Value::Object(Default::default())),
    })
}

/// The name, namespace, status and revision a release Secret's labels
/// carry; `None` for Secrets that are not Helm releases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseSecretMeta {
    pub secret: String,
    pub release: String,
    pub namespace: String,
    pub status: String,
    pub revision: u64,
}

/// Reads the labels of a Helm release Secret.
pub fn release_secret_meta(secret: &Secret) -> Option<ReleaseSecretMeta> {
    if secret.type_.as_deref() != Some(RELEASE_SECRET_TYPE) {
        return None;
    }
    let labels = secret.metadata.labels.as_ref()?;
    if labels.get("owner").map(String::as_str) != Some("helm") {
        return None;
    }
    Some(ReleaseSecretMeta {
        secret: secret.metadata.name.clone().unwrap_or_default(),
        release: labels.get("name").cloned()?,
        namespace: secret.metadata.namespace.clone().unwrap_or_default(),
        status: labels.get("status").cloned().unwrap_or_default(),
        revision: labels.get("version")?.parse().ok()?,
    })
}

/// Among Helm release Secrets (typically those listed with
/// [`RELEASE_LABEL_SELECTOR`] and `name=<release>`), the deployed one with the
/// highest revision. Secrets of other releases are compared too: filter by
/// release name first, or use [`latest_per_release`].
pub fn latest_release<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> Option<&'a Secret> {
    secrets
        .into_iter()
        .filter_map(|s| release_secret_meta(s).map(|m| (s, m)))
        .filter(|(_, m)| m.status == STATUS_DEPLOYED)
        .max_by_key(|(_, m)| m.revision)
        .map(|(s, _)| s)
}

/// The latest deployed revision of every release (namespace, name) found.
pub fn latest_per_release<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> Vec<&'a Secret> {
    let mut best: Vec<(&'a Secret, ReleaseSecretMeta)> = Vec::new();
    for s in secrets {
        let Some(m) = release_secret_meta(s) else {
            continue;
        };
        if m.status != STATUS_DEPLOYED {
            continue;
        }
        match best
            .iter_mut()
            .find(|(_, b)| b.release == m.release && b.namespace == m.namespace)
        {
            Some(slot) if slot.1.revision < m.revision => *slot = (s, m),
            Some(_) => {}
            None => best.push((s, m)),
        }
    }
    best.into_iter().map(|(s, _)| s).collect()
}

/// Decodes a release Secret's `data.release`.
pub fn decode_secret(secret: &Secret) -> Result<HelmRelease> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let qualified = match &secret.metadata.namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name,
    };
    let data = secret
        .data
        .as_ref()
        .and_then(|d| d.get("release"))
        .ok_or_else(|| Error::HelmRelease {
            secret: qualified.clone(),
            reason: "has no data.release".into(),
        })?;
    decode_named(&data.0, &qualified)
}

/// The deployed GPU Operator release (chart name `gpu-operator`) among
/// release Secrets, newest revision per release; the first one found when a
/// cluster has several.
pub fn find_gpu_operator<'a>(
    secrets: impl IntoIterator<Item = &'a Secret>,
) -> Result<Option<HelmRelease>> {
    for s in latest_per_release(secrets) {
        let rel = decode_secret(s)?;
        if rel.chart_name == super::chart::GPU_OPERATOR_CHART {
            return Ok(Some(rel));
        }
    }
    Ok(None)
}

/// Encodes a release the way Helm does (JSON → gzip → base64); the result
/// is what `data.release` holds after the API client's own base64 step.
/// For tests and fixtures.
pub fn encode_release_json(json: &serde_json::Value) -> Result<Vec<u8>> {
    use std::io::Write as _;
    let err = |e: std::io::Error| Error::Other(format!("encoding a Helm release: {e}"));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(json.to_string().as_bytes()).map_err(err)?;
    let bytes = gz.finish().map_err(err)?;
    Ok(base64::engine::general_purpose::STANDARD
        .encode(bytes)
        .into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde_json::json;

    fn release_json(rev: u64, status: &str, version: &str) -> serde_json::Value {
        json!({
            "name": "gpu-operator",
            "namespace": "gpu-operator",
            "version": rev,
            "info": {"status": status, "description": "Install complete"},
            "chart": {"metadata": {"name": "gpu-operator", "version": version, "appVersion": version},
                      "values": {"toolkit": {"env": []}}},
            "config": {"toolkit": {"env": [{"name": "CONTAINERD_SOCKET", "value": "/run/k3s/containerd/containerd.sock"}]}},
            "manifest": "---\n"
        })
    }

    /// A Secret built the way Helm's secrets driver builds it. `data.release`
    /// holds the base64 text (k8s-openapi decodes the wire's second base64).
    fn secret(name: &str, rev: u64, status: &str, version: &str) -> Secret {
        let data = encode_release_json(&release_json(rev, status, version)).unwrap();
        Secret {
            metadata: ObjectMeta {
                name: Some(format!("sh.helm.release.v1.{name}.v{rev}")),
                namespace: Some("gpu-operator".into()),
                labels: Some(
                    [
                        ("owner", "helm".to_string()),
                        ("name", name.to_string()),
                        ("status", status.to_string()),
                        ("version", rev.to_string()),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
                ),
                ..Default::default()
            },
            type_: Some(RELEASE_SECRET_TYPE.into()),
            data: Some([("release".to_string(), ByteString(data))].into()),
            ..Default::default()
        }
    }

    #[test]
    fn decodes_what_helm_writes() {
        let s = secret("gpu-operator", 3, "deployed", "v26.7.0");
        let rel = decode_secret(&s).unwrap();
        assert_eq!(rel.name, "gpu-operator");
        assert_eq!(rel.namespace, "gpu-operator");
        assert_eq!(rel.revision, 3);
        assert_eq!(rel.status, "deployed");
        assert_eq!(rel.chart_name, "gpu-operator");
        assert_eq!(rel.chart_version, "v26.7.0");
        assert_eq!(rel.app_version.as_deref(), Some("v26.7.0"));
        assert_eq!(rel.config["toolkit"]["env"][0]["name"], "CONTAINERD_SOCKET");
    }

    #[test]
    fn decodes_the_wire_form_through_k8s_openapi() {
        // On the wire the API server base64-encodes data.release once more;
        // deserializing the Secret must give back the base64 text.
        let inner = encode_release_json(&release_json(1, "deployed", "v25.10.1")).unwrap();
        let wire = base64::engine::general_purpose::STANDARD.encode(&inner);
        let secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "sh.helm.release.v1.gpu-operator.v1", "namespace": "gpu-operator",
                         "labels": {"owner": "helm", "name": "gpu-operator", "status": "deployed", "version": "1"}},
            "type": "helm.sh/release.v1",
            "data": {"release": wire}
        }))
        .unwrap();
        assert_eq!(decode_secret(&secret).unwrap().chart_version, "v25.10.1");
    }

    #[test]
    fn decodes_uncompressed_legacy_releases() {
        let plain = base64::engine::general_purpose::STANDARD
            .encode(release_json(1, "deployed", "v1.9.0").to_string());
        let rel = decode_release(plain.as_bytes()).unwrap();
        assert_eq!(rel.chart_version, "v1.9.0");
    }

    #[test]
    fn bad_data_names_the_secret() {
        let mut s = secret("gpu-operator", 1, "deployed", "v26.7.0");
        s.data = Some([("release".to_string(), ByteString(b"%%%".to_vec()))].into());
        let e = decode_secret(&s).unwrap_err().to_string();
        assert!(
            e.contains("gpu-operator/sh.helm.release.v1.gpu-operator.v1"),
            "{e}"
        );
        assert!(e.contains("not base64"), "{e}");
        s.data = None;
        assert!(
            decode_secret(&s)
                .unwrap_err()
                .to_string()
                .contains("no data.release")
        );
    }

    #[test]
    fn picks_the_latest_deployed_revision() {
        let secrets = [
            secret("gpu-operator", 1, "superseded", "v25.10.1"),
            secret("gpu-operator", 2, "deployed", "v26.3.3"),
            secret("gpu-operator", 3, "failed", "v26.7.0"),
        ];
        let latest = latest_release(&secrets).unwrap();
        assert_eq!(decode_secret(latest).unwrap().chart_version, "v26.3.3");
        assert!(latest_release(&secrets[..1]).is_none());

        let mut other = secret("other", 9, "deployed", "v1.0.0");
        if let Some(d) = other.data.as_mut() {
            let mut j = release_json(9, "deployed", "1.0.0");
            j["name"] = json!("other");
            j["chart"]["metadata"]["name"] = json!("nginx");
            d.insert(
                "release".into(),
                ByteString(encode_release_json(&j).unwrap()),
            );
        }
        let all = [secrets[1].clone(), other];
        assert_eq!(latest_per_release(&all).len(), 2);
        let op = find_gpu_operator(&all).unwrap().unwrap();
        assert_eq!(op.chart_version, "v26.3.3");
    }

    #[test]
    fn ignores_secrets_that_are_not_releases() {
        let mut s = secret("gpu-operator", 1, "deployed", "v26.7.0");
        s.type_ = Some("Opaque".into());
        assert!(release_secret_meta(&s).is_none());
        assert!(latest_release([&s]).is_none());
    }
}
