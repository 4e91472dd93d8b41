//! Air-gap mirrors for `helm rke2gpu images`: where each image lives in a
//! mirror registry, whether the mirror has it (`--check-mirror`, the
//! registry's v2 API: `GET /v2/<name>/manifests/<reference>`, with the
//! platforms of an image index), and RKE2's `registries.yaml` `mirrors`
//! entries for the source registries (`--registries-yaml`).
//!
//! A mirror keeps the repository path and drops the source host, as
//! containerd's registry mirrors (and RKE2's `registries.yaml`) resolve
//! `nvcr.io/nvidia/driver` to `<mirror>/nvidia/driver`. Credentials come
//! from RKE2's `registries.yaml` (`configs.<host>.auth`) or a docker
//! config (`auths.<host>.auth`), sent as Basic, or exchanged for a Bearer
//! token where the registry asks for one (the distribution token flow).
//! Parsing and rendering are pure; [`check`] does the HTTP.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;

use crate::{Error, Result};

/// An image reference split as the registry API needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName {
    /// `nvcr.io`, `docker.io`, `registry.k8s.io`.
    pub registry: String,
    /// `nvidia/driver`.
    pub repository: String,
    /// `595.91.07-ubuntu24.04` or `sha256:…`.
    pub reference: String,
}

impl ImageName {
    /// Docker's rules: no host part means `docker.io` (and `library/` for
    /// one-part names); a first part with a `.` or `:` or `localhost` is a host.
    pub fn parse(image: &str) -> Option<Self> {
        let (name, reference) = match image.split_once('@') {
            Some((n, d)) => (n, d.to_string()),
            None => match image.rsplit_once(':') {
                Some((n, t)) if !t.contains('/') => (n, t.to_string()),
                _ => (image, "latest".to_string()),
            },
        };
        if name.is_empty() {
            return None;
        }
        let (registry, repository) = match name.split_once('/') {
            Some((h, rest)) if h.contains('.') || h.contains(':') || h == "localhost" => {
                (h.to_string(), rest.to_string())
            }
            Some(_) => ("docker.io".to_string(), name.to_string()),
            None => ("docker.io".to_string(), format!("library/{name}")),
        };
        Some(ImageName {
            registry,
            repository,
            reference,
        })
    }

    /// The same image in `mirror` (a host, `host:port`, or a URL).
    pub fn in_mirror(&self, mirror: &str) -> String {
        let host = mirror_host(mirror);
        let sep = if self.reference.starts_with("sha256:") {
            '@'
        } else {
            ':'
        };
        format!("{host}/{}{sep}{}", self.repository, self.reference)
    }
}

/// `https://reg.local:5000/` → `reg.local:5000`.
pub fn mirror_host(mirror: &str) -> &str {
    mirror
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
}

/// The base URL of the registry API (`http://` only when given).
pub fn api_base(mirror: &str) -> String {
    if mirror.starts_with("http://") || mirror.starts_with("https://") {
        mirror.trim_end_matches('/').to_string()
    } else {
        format!("https://{}", mirror.trim_end_matches('/'))
    }
}

/// RKE2's `/etc/rancher/rke2/registries.yaml` mirror entries: every source
/// registry of `images` pulled from `mirror`.
pub fn registries_yaml(images: &[String], mirror: &str) -> String {
    let mut hosts: Vec<String> = images
        .iter()
        .filter_map(|i| ImageName::parse(i))
        .map(|n| n.registry)
        .collect();
    hosts.sort();
    hosts.dedup();
    let endpoint = api_base(mirror);
    let mut s = String::from(
        "# /etc/rancher/rke2/registries.yaml on every node (then restart rke2-server/rke2-agent)\nmirrors:\n",
    );
    for h in hosts {
        s.push_str(&format!("  {h}:\n    endpoint:\n      - \"{endpoint}\"\n"));
    }
    s
}

/// Credentials for a registry host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// Credentials for `host` from RKE2's `registries.yaml` text
/// (`configs.<host>.auth.{username,password}` or `auth`).
pub fn from_registries_yaml(text: &str, host: &str) -> Result<Option<Credentials>> {
    let v: Value = serde_saphyr::from_str(text).map_err(|e| Error::Other(format!(
        "registries.yaml does not parse: {e}; pass the file RKE2 reads (/etc/rancher/rke2/registries.yaml)"
    )))?;
    let Some(auth) = v
        .pointer("/configs")
        .and_then(|c| c.get(host))
        .and_then(|c| c.get("auth"))
    else {
        return Ok(None);
    };
    Ok(creds_of(auth))
}

/// Credentials for `host` from a docker config (`~/.docker/config.json`).
pub fn from_docker_config(text: &str, host: &str) -> Result<Option<Credentials>> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| Error::Other(format!("the docker config does not parse as JSON: {e}")))?;
    let Some(auths) = v.get("auths").and_then(Value::as_object) else {
        return Ok(None);
    };
    let entry = auths
        .iter()
        .find(|(k, _)| mirror_host(k) == host)
        .map(|(_, e)| e);
    Ok(entry.and_then(creds_of))
}

fn creds_of(a: &Value) -> Option<Credentials> {
    let s = |k: &str| a.get(k).and_then(Value::as_str).filter(|x| !x.is_empty());
    if let (Some(u), Some(p)) = (s("username"), s("password")) {
        return Some(Credentials {
            username: u.into(),
            password: p.into(),
        });
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(s("auth")?)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some(Credentials {
        username: u.into(),
        password: p.into(),
    })
}

/// What the mirror has for one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MirrorCheck {
    pub image: String,
    /// Where it is looked up: `<mirror>/<repository>:<reference>`.
    pub mirrored: String,
    /// `present`, `missing`, `platform-missing`, `unauthorized`.
    pub status: String,
    /// `linux/amd64`, … (an index's manifests, or the image config's).
    pub platforms: Vec<String>,
    pub detail: String,
}

impl MirrorCheck {
    pub fn ok(&self) -> bool {
        self.status == "present"
    }
}

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// A `WWW-Authenticate: Bearer realm="…",service="…",scope="…"` challenge.
fn bearer_challenge(h: &str) -> Option<BTreeMap<String, String>> {
    let rest = h.strip_prefix("Bearer ")?;
    let mut out = BTreeMap::new();
    for part in rest.split(',') {
        if let Some((k, v)) = part.trim().split_once('=') {
            out.insert(k.to_string(), v.trim_matches('"').to_string());
        }
    }
    Some(out)
}

struct Session<'a> {
    http: reqwest::Client,
    base: String,
    creds: Option<&'a Credentials>,
    token: Option<String>,
}

impl Session<'_> {
    async fn get(&mut self, path: &str) -> Result<reqwest::Response> {
        let url = format!("{}{path}", self.base);
        let send = |s: &Session<'_>| {
            let mut r = s.http.get(&url).header("Accept", ACCEPT);
            if let Some(t) = &s.token {
                r = r.bearer_auth(t);
            } else if let Some(c) = s.creds {
                r = r.basic_auth(&c.username, Some(&c.password));
            }
            r.send()
        };
        let unreachable = |e: reqwest::Error| {
            Error::Other(format!(
                "registry {} is unreachable: {e}; check the address (http:// for a registry without TLS) and that it serves the v2 API",
                self.base
            ))
        };
        let resp = send(self).await.map_err(unreachable)?;
        if resp.status() != reqwest::StatusCode::UNAUTHORIZED || self.token.is_some() {
            return Ok(resp);
        }
        // The token flow: ask the realm for a token for this scope.
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .and_then(|h| h.to_str().ok())
            .and_then(bearer_challenge);
        let Some(ch) = challenge else {
            return Ok(resp);
        };
        let Some(realm) = ch.get("realm") else {
            return Ok(resp);
        };
        let mut req = self.http.get(realm);
        let query: Vec<(&str, &String)> = ["service", "scope"]
            .iter()
            .filter_map(|k| ch.get(*k).map(|v| (*k, v)))
            .collect();
        req = req.query(&query);
        if let Some(c) = self.creds {
            req = req.basic_auth(&c.username, Some(&c.password));
        }
        let tok = req.send().await.map_err(unreachable)?;
        if !tok.status().is_success() {
            return Ok(resp);
        }
        let v: Value = tok.json().await.map_err(unreachable)?;
        self.token = v
            .get("token")
            .or_else(|| v.get("access_token"))
            .and_then(Value::as_str)
            .map(str::to_string);
        send(self).await.map_err(unreachable)
    }
}

fn platform_of(v: &Value) -> Option<String> {
    let os = v.get("os")?.as_str()?;
    let arch = v.get("architecture")?.as_str()?;
    Some(match v.get("variant").and_then(Value::as_str) {
        Some(var) => format!("{os}/{arch}/{var}"),
        None => format!("{os}/{arch}"),
    })
}

/// Looks each image up in `mirror`. Fails only when the registry cannot be
/// reached at all; a missing or refused image is a [`MirrorCheck`].
pub async fn check(
    images: &[String],
    mirror: &str,
    creds: Option<&Credentials>,
    want_platforms: &[String],
) -> Result<Vec<MirrorCheck>> {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .map_err(|e| Error::Other(format!("building the HTTP client: {e}")))?;
    let mut s = Session {
        http,
        base: api_base(mirror),
        creds,
        token: None,
    };
    let mut out = Vec::new();
    for image in images {
        let Some(n) = ImageName::parse(image) else {
            continue;
        };
        s.token = None;
        let mirrored = n.in_mirror(mirror);
        let resp = s
            .get(&format!("/v2/{}/manifests/{}", n.repository, n.reference))
            .await?;
        let code = resp.status();
        let mut c = MirrorCheck {
            image: image.clone(),
            mirrored,
            status: String::new(),
            platforms: Vec::new(),
            detail: String::new(),
        };
        if code == reqwest::StatusCode::NOT_FOUND {
            c.status = "missing".into();
            c.detail = format!("push it: crane copy {image} {}", c.mirrored);
        } else if code == reqwest::StatusCode::UNAUTHORIZED
            || code == reqwest::StatusCode::FORBIDDEN
        {
            c.status = "unauthorized".into();
            c.detail = format!(
                "{code} from the registry{}: pass --registries-yaml-auth or --docker-config with credentials for {}",
                if creds.is_some() {
                    " with the credentials given"
                } else {
                    " without credentials"
                },
                mirror_host(mirror)
            );
        } else if !code.is_success() {
            c.status = "error".into();
            c.detail = format!("{code} from the registry");
        } else {
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            if let Some(ms) = body.get("manifests").and_then(Value::as_array) {
                c.platforms = ms
                    .iter()
                    .filter_map(|m| m.get("platform").and_then(platform_of))
                    .collect();
            } else if let Some(d) = body.pointer("/config/digest").and_then(Value::as_str) {
                let cfg = s.get(&format!("/v2/{}/blobs/{d}", n.repository)).await?;
                if cfg.status().is_success()
                    && let Ok(v) = cfg.json::<Value>().await
                    && let Some(p) = platform_of(&v)
                {
                    c.platforms.push(p);
                }
            }
            let lacking: Vec<&String> = want_platforms
                .iter()
                .filter(|w| {
                    !c.platforms.is_empty()
                        && !c
                            .platforms
                            .iter()
                            .any(|p| p == *w || p.starts_with(&format!("{w}/")))
                })
                .collect();
            if lacking.is_empty() {
                c.status = "present".into();
            } else {
                c.status = "platform-missing".into();
                c.detail = format!(
                    "no {} in the mirror's copy: copy all platforms (crane copy --all-tags, or skopeo copy --all)",
                    lacking
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        out.push(c);
    }
    Ok(out)
}

/// Credentials for `mirror` from the files the user named (RKE2's
/// `registries.yaml` first, else a docker config); `None` without files.
pub fn credentials_from_files(
    mirror: &str,
    registries_yaml: Option<&str>,
    docker_config: Option<&str>,
) -> Result<Option<Credentials>> {
    let host = mirror_host(mirror);
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map_err(|e| Error::Other(format!("reading the credentials file {p}: {e}")))
    };
    match (registries_yaml, docker_config) {
        (Some(f), _) => from_registries_yaml(&read(f)?, host),
        (None, Some(f)) => from_docker_config(&read(f)?, host),
        _ => Ok(None),
    }
}

/// The checks in a form (table for `table` and `plain`).
pub fn render(checks: &[MirrorCheck], format: crate::helm::images::ImagesFormat) -> Result<String> {
    use crate::helm::images::ImagesFormat;
    Ok(match format {
        ImagesFormat::Json => crate::render::structured(&checks, crate::cli::OutputFormat::Json)?,
        ImagesFormat::Yaml => crate::render::structured(&checks, crate::cli::OutputFormat::Yaml)?,
        ImagesFormat::Table | ImagesFormat::Plain => crate::render::table(
            &["IMAGE", "MIRROR", "STATUS", "PLATFORMS", "DETAIL"],
            checks
                .iter()
                .map(|c| {
                    vec![
                        c.image.clone(),
                        c.mirrored.clone(),
                        c.status.clone(),
                        c.platforms.join(","),
                        c.detail.clone(),
                    ]
                })
                .collect::<Vec<Vec<String>>>(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references_as_docker_does() {
        let p = |s: &str| ImageName::parse(s).unwrap();
        assert_eq!(
            p("nvcr.io/nvidia/driver:595.91.07-ubuntu24.04"),
            ImageName {
                registry: "nvcr.io".into(),
                repository: "nvidia/driver".into(),
                reference: "595.91.07-ubuntu24.04".into()
            }
        );
        assert_eq!(p("busybox:1.37").repository, "library/busybox");
        assert_eq!(p("busybox:1.37").registry, "docker.io");
        assert_eq!(p("rancher/pause:3.6").registry, "docker.io");
        assert_eq!(p("localhost:5000/x/y@sha256:ab").reference, "sha256:ab");
        assert_eq!(p("localhost:5000/x/y").reference, "latest");
        assert_eq!(
            p("nvcr.io/nvidia/driver@sha256:ab").in_mirror("https://reg.local:5000/"),
            "reg.local:5000/nvidia/driver@sha256:ab"
        );
    }

    #[test]
    fn registries_yaml_has_one_mirror_per_source_registry() {
        let y = registries_yaml(
            &[
                "nvcr.io/nvidia/a:1".into(),
                "nvcr.io/nvidia/b:2".into(),
                "registry.k8s.io/nfd/x:3".into(),
            ],
            "reg.local:5000",
        );
        let v: Value = serde_saphyr::from_str(&y).unwrap();
        assert_eq!(
            v["mirrors"]["nvcr.io"]["endpoint"][0],
            "https://reg.local:5000"
        );
        assert_eq!(
            v["mirrors"]["registry.k8s.io"]["endpoint"][0],
            "https://reg.local:5000"
        );
        assert_eq!(v["mirrors"].as_object().unwrap().len(), 2);
    }

    #[test]
    fn credentials_from_registries_yaml_and_docker_config() {
        let ry = "configs:\n  reg.local:5000:\n    auth:\n      username: u\n      password: p\n";
        assert_eq!(
            from_registries_yaml(ry, "reg.local:5000").unwrap(),
            Some(Credentials {
                username: "u".into(),
                password: "p".into()
            })
        );
        assert_eq!(from_registries_yaml(ry, "other").unwrap(), None);
        let dc = r#"{"auths": {"https://reg.local:5000": {"auth": "dTpw"}}}"#;
        assert_eq!(
            from_docker_config(dc, "reg.local:5000").unwrap(),
            Some(Credentials {
                username: "u".into(),
                password: "p".into()
            })
        );
    }

    #[test]
    fn bearer_challenges() {
        let c = bearer_challenge(r#"Bearer realm="https://auth.local/token",service="registry",scope="repository:nvidia/driver:pull""#).unwrap();
        assert_eq!(c["realm"], "https://auth.local/token");
        assert_eq!(c["scope"], "repository:nvidia/driver:pull");
    }
}
