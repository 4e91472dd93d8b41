//! What `helm rke2gpu upgrade` shows before it runs `helm upgrade`, as pure
//! functions over values trees: the supplied values of the deployed release
//! against the new ones ([`values_diff`]), the user's keys the target
//! chart's `values.yaml` no longer has ([`unknown_overrides`]), and whether
//! the CRD step applies, asks or only shows ([`crd_action`]).
//!
//! "Supplied values" are what Helm stores as the release's `config`: our
//! computed file and the user's `-f`/`--set`, merged (with `--reuse-values`
//! or `--reset-then-reuse-values`, the stored config underneath).

use super::values::merge_into;
use crate::matrix::UPGRADE_CRD_HOOK_DEFAULT_SINCE;
use crate::version::Triple;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// How long a value may get in a diff line before it is cut.
const MAX_VALUE_CHARS: usize = 60;

/// A values tree as dotted keys to leaves: scalars, lists (whole) and empty maps.
pub fn flatten(v: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    walk(v, "", &mut out);
    out
}

fn walk(v: &Value, path: &str, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, sub) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(sub, &p, out);
            }
        }
        _ if !path.is_empty() => {
            out.insert(path.to_string(), v.clone());
        }
        _ => {}
    }
}

/// One dotted key that differs between the deployed and the new values.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "change")]
pub enum ValueChange {
    Added { key: String, new: Value },
    Removed { key: String, old: Value },
    Changed { key: String, old: Value, new: Value },
}

impl ValueChange {
    pub fn key(&self) -> &str {
        match self {
            ValueChange::Added { key, .. }
            | ValueChange::Removed { key, .. }
            | ValueChange::Changed { key, .. } => key,
        }
    }

    /// `+ key: new`, `- key: old`, `~ key: old → new`.
    pub fn line(&self) -> String {
        match self {
            ValueChange::Added { key, new } => format!("+ {key}: {}", short(new)),
            ValueChange::Removed { key, old } => format!("- {key}: {}", short(old)),
            ValueChange::Changed { key, old, new } => {
                format!("~ {key}: {} → {}", short(old), short(new))
            }
        }
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() <= MAX_VALUE_CHARS {
        return s;
    }
    let cut: String = s.chars().take(MAX_VALUE_CHARS).collect();
    format!("{cut}…")
}

/// The dotted keys added, removed or changed from `old` to `new`, sorted by key.
pub fn values_diff(old: &Value, new: &Value) -> Vec<ValueChange> {
    let a = flatten(old);
    let b = flatten(new);
    let mut out = Vec::new();
    for (k, ov) in &a {
        match b.get(k) {
            None => out.push(ValueChange::Removed {
                key: k.clone(),
                old: ov.clone(),
            }),
            Some(nv) if nv != ov => out.push(ValueChange::Changed {
                key: k.clone(),
                old: ov.clone(),
                new: nv.clone(),
            }),
            Some(_) => {}
        }
    }
    for (k, nv) in &b {
        if !a.contains_key(k) {
            out.push(ValueChange::Added {
                key: k.clone(),
                new: nv.clone(),
            });
        }
    }
    out.sort_by(|x, y| x.key().cmp(y.key()));
    out
}

/// The values Helm stores as the new release's `config`: the deployed
/// release's config when it reuses values, then the computed values, then
/// the user's (Helm's order: our `-f computed.yaml` comes first).
pub fn new_supplied(
    deployed_config: Option<&Value>,
    reuse: bool,
    computed: &Value,
    user: &Value,
) -> Value {
    let mut out = Value::Object(Default::default());
    if reuse && let Some(c) = deployed_config {
        merge_into(&mut out, c);
    }
    merge_into(&mut out, computed);
    merge_into(&mut out, user);
    out
}

/// Whether Helm's flags make it reuse the stored values
/// (`--reuse-values`, `--reset-then-reuse-values`; not `=false`).
pub fn reuses_values(helm_args: &[String]) -> bool {
    helm_args.iter().any(|a| {
        ["--reuse-values", "--reset-then-reuse-values"]
            .iter()
            .any(|f| a == f || a.strip_prefix(f).is_some_and(|r| r == "=true"))
    })
}

/// Keys whose value the chart passes through whole, whatever its default
/// holds: Kubernetes maps and objects (`labels`, `nodeSelector`,
/// `resources`, …), env lists, and the operands' own config files
/// (`config`, e.g. NFD's `worker.config`).
const FREE_FORM_KEYS: &[&str] = &[
    "labels",
    "annotations",
    "nodeSelector",
    "tolerations",
    "affinity",
    "resources",
    "env",
    "securityContext",
    "podSecurityContext",
    "config",
];

/// The dotted keys of `user` that the chart's default values do not have.
/// Below a key whose default is not a map (a list, a scalar, `null`), an
/// empty map (`{}`: free-form) or one of [`FREE_FORM_KEYS`], any key is
/// accepted: the chart passes it through as a whole. A key that is
/// unknown is named once (not with the keys below it).
pub fn unknown_overrides(chart_values: &Value, user: &Value) -> Vec<String> {
    let mut out = Vec::new();
    unknown(chart_values, user, "", &mut out);
    out
}

fn unknown(chart: &Value, user: &Value, path: &str, out: &mut Vec<String>) {
    let (Some(defaults), Some(set)) = (chart.as_object(), user.as_object()) else {
        return;
    };
    if defaults.is_empty() {
        return;
    }
    for (k, v) in set {
        let p = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        match defaults.get(k) {
            None => out.push(p),
            Some(_) if FREE_FORM_KEYS.contains(&k.as_str()) => {}
            Some(d) => unknown(d, v, &p, out),
        }
    }
}

/// What to do with the chart's CRDs before `helm upgrade`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CrdAction {
    /// `--skip-crds`: neither shown nor applied.
    Skip,
    /// `--dry-run`: shown, not applied.
    ShowOnly,
    /// A terminal and no `--yes`: ask, apply on yes, stop on no.
    Ask,
    /// `--yes`, or no terminal to ask on (`unattended`: say so in a note).
    Apply { unattended: bool },
}

/// Decides the CRD step. Without a terminal and without `--yes` the CRDs
/// are applied: that is what the chart's own pre-upgrade hook does from
/// [`UPGRADE_CRD_HOOK_DEFAULT_SINCE`] (`operator.upgradeCRD`), and the
/// plugin runs in CI where nobody answers.
pub fn crd_action(skip: bool, dry_run: bool, yes: bool, terminal: bool) -> CrdAction {
    match (skip, dry_run, yes, terminal) {
        (true, ..) => CrdAction::Skip,
        (_, true, ..) => CrdAction::ShowOnly,
        (_, _, true, _) => CrdAction::Apply { unattended: false },
        (_, _, false, true) => CrdAction::Ask,
        (_, _, false, false) => CrdAction::Apply { unattended: true },
    }
}

/// The note for [`CrdAction::Apply`] without `--yes` and without a terminal.
pub fn unattended_note() -> String {
    let hook: Triple = UPGRADE_CRD_HOOK_DEFAULT_SINCE;
    format!(
        "no terminal to ask on and no --yes: applying the chart's CRDs, as the chart's own pre-upgrade hook does from v{hook} (operator.upgradeCRD); pass --skip-crds to leave them alone"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::helm::chart::parse_values_yaml;
    use crate::helm::chart::tests::VALUES_26_7;
    use serde_json::json;

    fn keys(c: &[ValueChange]) -> Vec<&str> {
        c.iter().map(ValueChange::key).collect()
    }

    #[test]
    fn diff_names_changed_added_and_removed_keys() {
        let old = json!({
            "toolkit": {"version": "v1.18.1", "env": [{"name": "CONTAINERD_SOCKET", "value": "/run/k3s/containerd/containerd.sock"}]},
            "cdi": {"enabled": false},
            "devicePlugin": {"env": [{"name": "DEVICE_LIST_STRATEGY", "value": "volume-mounts"}]},
            "daemonsets": {"labels": {}},
        });
        let new = json!({
            "toolkit": {"version": "v1.20.0", "env": [{"name": "CONTAINERD_SOCKET", "value": "/run/k3s/containerd/containerd.sock"}]},
            "cdi": {"enabled": false, "nriPluginEnabled": false},
            "daemonsets": {"labels": {}},
        });
        let d = values_diff(&old, &new);
        assert_eq!(
            keys(&d),
            [
                "cdi.nriPluginEnabled",
                "devicePlugin.env",
                "toolkit.version"
            ]
        );
        assert_eq!(d[0].line(), "+ cdi.nriPluginEnabled: false");
        assert_eq!(
            d[1].line(),
            "- devicePlugin.env: [{\"name\":\"DEVICE_LIST_STRATEGY\",\"value\":\"volume-mounts\"}]"
        );
        let long = values_diff(&json!({}), &json!({"a": "x".repeat(100)}));
        assert!(long[0].line().ends_with('…') && long[0].line().len() < 100);
        assert_eq!(d[2].line(), "~ toolkit.version: \"v1.18.1\" → \"v1.20.0\"");
        assert!(values_diff(&new, &new).is_empty());
    }

    #[test]
    fn supplied_values_reuse_the_stored_config_only_when_asked() {
        let stored = json!({"driver": {"enabled": false}, "toolkit": {"version": "old"}});
        let computed = json!({"toolkit": {"version": "new"}});
        let user = json!({"mig": {"strategy": "mixed"}});
        assert_eq!(
            new_supplied(Some(&stored), false, &computed, &user),
            json!({"toolkit": {"version": "new"}, "mig": {"strategy": "mixed"}})
        );
        assert_eq!(
            new_supplied(Some(&stored), true, &computed, &user),
            json!({"driver": {"enabled": false}, "toolkit": {"version": "new"}, "mig": {"strategy": "mixed"}})
        );
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(reuses_values(&args(&["--wait", "--reuse-values"])));
        assert!(reuses_values(&args(&["--reset-then-reuse-values"])));
        assert!(reuses_values(&args(&["--reuse-values=true"])));
        assert!(!reuses_values(&args(&["--reuse-values=false"])));
        assert!(!reuses_values(&args(&["--reset-values"])));
    }

    #[test]
    fn unknown_keys_on_the_real_values_file() {
        // NVIDIA/gpu-operator deployments/gpu-operator/values.yaml @v26.7.0
        let chart = parse_values_yaml("fixture", VALUES_26_7).unwrap();
        let user = json!({
            // v26.7.0 has no operator.defaultRuntime (the chart dropped it)
            "operator": {
                "defaultRuntime": "containerd",
                "runtimeClass": "nvidia",
                // a non-empty default map, but a nodeSelector takes any label
                "nodeSelector": {"kubernetes.io/os": "linux", "pool": "gpu"},
                "resources": {"limits": {"nvidia.com/gpu": 1}},
            },
            // free-form maps and lists accept any key below them
            "daemonsets": {"labels": {"team": "ml"}, "annotations": {"a": "b"}},
            "toolkit": {"env": [{"name": "X", "value": "y"}], "version": "v1.20.0"},
            "node-feature-discovery": {"worker": {"config": {"sources": {"custom": [{"name": "x"}]}}}},
            // not a key of the chart at all; its subkeys are not named again
            "noSuchSection": {"a": 1, "b": {"c": 2}},
            "cdi": {"enabled": true, "typo": true},
        });
        let mut got = unknown_overrides(&chart, &user);
        got.sort();
        assert_eq!(
            got,
            ["cdi.typo", "noSuchSection", "operator.defaultRuntime"]
        );
        assert!(unknown_overrides(&chart, &json!({})).is_empty());
    }

    #[test]
    fn crd_step_asks_on_a_terminal_and_applies_unattended() {
        assert_eq!(crd_action(true, true, true, true), CrdAction::Skip);
        assert_eq!(crd_action(false, true, true, true), CrdAction::ShowOnly);
        assert_eq!(
            crd_action(false, false, true, true),
            CrdAction::Apply { unattended: false }
        );
        assert_eq!(crd_action(false, false, false, true), CrdAction::Ask);
        assert_eq!(
            crd_action(false, false, false, false),
            CrdAction::Apply { unattended: true }
        );
        let note = unattended_note();
        assert!(
            note.contains(&format!("v{UPGRADE_CRD_HOOK_DEFAULT_SINCE}")),
            "{note}"
        );
        assert!(note.contains("--skip-crds"), "{note}");
    }
}
