//! Redaction for the support bundle: values under keys that look secret
//! (`password`, `token`, `secret`, `key`, `credential`, `auth`, any case,
//! anywhere in the key), `env` entries whose name looks secret, and
//! `key: value` / `key = value` lines of host config files. Secret objects
//! are never written at all (see [`super::bundle`]).

use regex::Regex;
use serde_json::Value;
use std::sync::OnceLock;

/// What a redacted value is replaced by.
pub const REDACTED: &str = "<redacted>";

fn pattern() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?i)password|passwd|token|secret|key|credential|auth")
            .unwrap_or_else(|_| unreachable_regex())
    })
}

// A constant pattern cannot fail to compile; this keeps the code free of
// unwrap/expect all the same.
fn unreachable_regex() -> Regex {
    match Regex::new("$^") {
        Ok(r) => r,
        Err(_) => std::process::abort(),
    }
}

/// Whether a key name looks like it holds a secret.
pub fn is_secret_key(key: &str) -> bool {
    pattern().is_match(key)
}

/// A toleration or taint: its `key` is a label key, not a secret.
fn is_toleration_like(map: &serde_json::Map<String, Value>) -> bool {
    map.contains_key("effect")
        || map.contains_key("operator")
        || map.contains_key("tolerationSeconds")
}

fn redact_all(v: &mut Value) {
    match v {
        Value::Object(m) => m.values_mut().for_each(redact_all),
        Value::Array(a) => a.iter_mut().for_each(redact_all),
        Value::Null => {}
        Value::String(s) if s.is_empty() => {}
        other => *other = Value::String(REDACTED.into()),
    }
}

/// Redacts a JSON value in place (Helm values, ClusterPolicy, pod specs):
/// - any value under a secret-looking key, recursively;
/// - `{name: SECRET_LOOKING, value: ...}` entries (env lists): the value;
/// - except `key` of tolerations and taints, and `secretKeyRef`/`secretName`
///   style references, which name a Secret but hold none of its data.
pub fn redact_value(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let env_like = map
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(is_secret_key)
                && map.contains_key("value");
            if env_like && let Some(val) = map.get_mut("value") {
                redact_all(val);
            }
            let toleration = is_toleration_like(map);
            for (k, val) in map.iter_mut() {
                let reference = matches!(
                    k.as_str(),
                    "secretKeyRef"
                        | "secretRef"
                        | "secretName"
                        | "imagePullSecrets"
                        | "configMapKeyRef"
                        | "keyRef"
                );
                if reference || (toleration && k == "key") {
                    continue;
                }
                if is_secret_key(k) {
                    redact_all(val);
                } else {
                    redact_value(val);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact_value),
        _ => {}
    }
}

/// Redacts `key: value` (YAML) and `key = value` (TOML) lines of a text file
/// whose key looks secret (RKE2 `token:`, containerd registry `password =`).
pub fn redact_lines(text: &str) -> String {
    static LINE: OnceLock<Regex> = OnceLock::new();
    let re = LINE.get_or_init(|| {
        Regex::new(r#"^(\s*-?\s*["']?)([A-Za-z0-9_.\-]+)(["']?\s*[:=]\s*)(\S.*)$"#)
            .unwrap_or_else(|_| unreachable_regex())
    });
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, nl) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        match re.captures(body) {
            Some(c) if is_secret_key(&c[2]) && !c[4].trim_start().starts_with(['{', '[']) => {
                out.push_str(&c[1]);
                out.push_str(&c[2]);
                out.push_str(&c[3]);
                out.push_str(&format!("\"{REDACTED}\""));
            }
            // `--token=x` / `--token x` in a node-args style list.
            _ => out.push_str(body),
        }
        out.push_str(nl);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_and_env() {
        let mut v = json!({
            "driver": {"licensingConfig": {"nlsEnabled": true, "configMapName": "lic"},
                       "repoConfig": {"configMapName": ""}},
            "ngc": {"apiKey": "nvapi-XYZ", "registryPassword": "hunter2"},
            "toolkit": {"env": [
                {"name": "CONTAINERD_SOCKET", "value": "/run/k3s/containerd/containerd.sock"},
                {"name": "NGC_TOKEN", "value": "abc"}]},
            "daemonsets": {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]},
            "imagePullSecrets": ["ngc-secret"],
            "auth": {"user": "u", "nested": ["p1"]},
            "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]
        });
        redact_value(&mut v);
        assert_eq!(v["ngc"]["apiKey"], REDACTED);
        assert_eq!(v["ngc"]["registryPassword"], REDACTED);
        assert_eq!(
            v["toolkit"]["env"][0]["value"],
            "/run/k3s/containerd/containerd.sock"
        );
        assert_eq!(v["toolkit"]["env"][1]["value"], REDACTED);
        assert_eq!(v["daemonsets"]["tolerations"][0]["key"], "nvidia.com/gpu");
        assert_eq!(v["imagePullSecrets"][0], "ngc-secret");
        assert_eq!(v["auth"]["user"], REDACTED);
        assert_eq!(v["auth"]["nested"][0], REDACTED);
        assert_eq!(v["env"][0]["valueFrom"]["secretKeyRef"]["key"], "k");
        assert_eq!(v["driver"]["licensingConfig"]["nlsEnabled"], true);
    }

    #[test]
    fn lines() {
        let t = "token: K10abc::server:xyz\ndata-dir: /data\n  password = \"p\"\nnode-label:\n  - a=b\n";
        let r = redact_lines(t);
        assert!(!r.contains("K10abc"));
        assert!(!r.contains("\"p\""));
        assert!(r.contains("data-dir: /data"));
        assert!(r.contains("token: \"<redacted>\""));
        assert!(r.ends_with("  - a=b\n"));
    }
}
