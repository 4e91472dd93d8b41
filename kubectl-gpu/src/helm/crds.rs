//! The target chart's CRDs against the cluster's, as pure functions over
//! JSON trees: parsing the `crds/` texts ([`parse_crds`]), the spec fields a
//! CRD's `openAPIV3Schema` declares ([`spec_fields`]), what changes when the
//! cluster's CRD is replaced by the chart's ([`compare`]), and which fields
//! of an object a structural schema prunes ([`pruned_fields`], the API
//! server's rule: unknown fields go unless `x-kubernetes-preserve-unknown-fields`
//! or `additionalProperties` keeps them).
//!
//! Helm installs `crds/` on first install only and never upgrades them
//! (helm.sh/docs chart_best_practices/custom_resource_definitions): a stale
//! ClusterPolicy CRD silently prunes the fields a newer chart renders
//! (NVIDIA/gpu-operator#2342, #2339, #431). `helm rke2gpu upgrade` applies
//! the target's CRDs first; [`crate::helm::plugin`] does the I/O.

use crate::{Error, Result};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeSet;

/// The field manager of our server-side apply.
pub const FIELD_MANAGER: &str = "helm-rke2gpu";
/// The ClusterPolicy CRD's name.
pub const CLUSTER_POLICY_CRD: &str = "clusterpolicies.nvidia.com";

/// How many field paths a summary line names before "… and N more".
const SUMMARY_PATHS: usize = 6;

/// One CRD from the chart, as it will be applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Crd {
    /// `metadata.name` (`clusterpolicies.nvidia.com`).
    pub name: String,
    /// The whole object (apiVersion, kind, metadata, spec).
    pub object: Value,
}

/// Parses the CRDs of a chart's `crds/` texts (several YAML documents, as
/// `helm show crds` prints them); documents of other kinds are skipped.
pub fn parse_crds(origin: &str, text: &str) -> Result<Vec<Crd>> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| Error::CrdRead {
        origin: origin.to_string(),
        reason: format!("the CRD YAML does not parse: {e}"),
    })?;
    let mut out = Vec::new();
    for doc in docs {
        if doc.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
            continue;
        }
        let name = doc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::CrdRead {
                origin: origin.to_string(),
                reason: "a CustomResourceDefinition has no metadata.name".into(),
            })?
            .to_string();
        out.push(Crd { name, object: doc });
    }
    Ok(out)
}

/// The `openAPIV3Schema` of a CRD's storage version (else its first version).
pub fn storage_schema(crd: &Value) -> Option<&Value> {
    let versions = crd.pointer("/spec/versions")?.as_array()?;
    versions
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .or_else(|| versions.first())?
        .pointer("/schema/openAPIV3Schema")
}

/// The `openAPIV3Schema` of each version, by version name.
fn version_schemas(crd: &Value) -> Vec<(String, Value)> {
    crd.pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .map(|v| {
                    (
                        v.get("name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        v.pointer("/schema/openAPIV3Schema")
                            .cloned()
                            .unwrap_or(Value::Null),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every field path a schema declares under `spec`, as JSON paths from the
/// object root: `spec.cdi.nriPluginEnabled`, list items as `[]`
/// (`spec.toolkit.env[].name`), map values (`additionalProperties`) as `*`.
pub fn spec_fields(schema: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Some(spec) = schema.pointer("/properties/spec") {
        out.insert("spec".to_string());
        declared(spec, "spec", &mut out);
    }
    out
}

fn declared(schema: &Value, path: &str, out: &mut BTreeSet<String>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, sub) in props {
            let p = format!("{path}.{k}");
            out.insert(p.clone());
            declared(sub, &p, out);
        }
    }
    if let Some(ap) = schema.get("additionalProperties").filter(|a| a.is_object()) {
        declared(ap, &format!("{path}.*"), out);
    }
    if let Some(items) = schema.get("items").filter(|i| i.is_object()) {
        declared(items, &format!("{path}[]"), out);
    }
}

/// Paths of `set` whose parent path is not in `set` too: a new section is
/// named once, not with each of its fields.
pub fn outermost(set: &BTreeSet<String>) -> Vec<String> {
    set.iter()
        .filter(|p| {
            let mut cur = parent_path(p);
            while let Some(a) = cur {
                if set.contains(a) {
                    return false;
                }
                cur = parent_path(a);
            }
            true
        })
        .cloned()
        .collect()
}

fn parent_path(p: &str) -> Option<&str> {
    if let Some(s) = p.strip_suffix("[]") {
        return Some(s);
    }
    p.rfind('.').map(|i| &p[..i])
}

/// What replacing the cluster's CRD by the chart's changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "change")]
pub enum CrdChange {
    /// The cluster has no such CRD: it will be created.
    New,
    /// Same versions and schemas.
    Unchanged,
    /// Other schema or versions; spec fields the chart's CRD adds and drops.
    Changed {
        added: Vec<String>,
        removed: Vec<String>,
    },
}

/// One CRD of the chart against the cluster's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrdPlan {
    pub name: String,
    #[serde(flatten)]
    pub change: CrdChange,
}

impl CrdPlan {
    /// Whether applying the chart's CRD changes anything.
    pub fn changes(&self) -> bool {
        self.change != CrdChange::Unchanged
    }

    /// One line: `clusterpolicies.nvidia.com: 1 new spec field: spec.cdi.nriPluginEnabled`.
    pub fn summary(&self) -> String {
        let body = match &self.change {
            CrdChange::New => "not in the cluster: will be created".to_string(),
            CrdChange::Unchanged => "unchanged".to_string(),
            CrdChange::Changed { added, removed } if added.is_empty() && removed.is_empty() => {
                "same spec fields; other schema changes (validation, defaults, descriptions)"
                    .to_string()
            }
            CrdChange::Changed { added, removed } => {
                let mut parts = Vec::new();
                if !added.is_empty() {
                    parts.push(format!("new spec fields: {}", list(added)));
                }
                if !removed.is_empty() {
                    parts.push(format!("removed spec fields: {}", list(removed)));
                }
                parts.join("; ")
            }
        };
        format!("{}: {body}", self.name)
    }
}

fn list(paths: &[String]) -> String {
    let mut s = paths
        .iter()
        .take(SUMMARY_PATHS)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if paths.len() > SUMMARY_PATHS {
        s.push_str(&format!(" … and {} more", paths.len() - SUMMARY_PATHS));
    }
    s
}

/// Compares the chart's CRD with the cluster's (`None`: not there). The
/// added and removed spec fields are the outermost ones ([`outermost`]) of
/// the storage versions' schemas.
pub fn compare(current: Option<&Value>, target: &Crd) -> CrdPlan {
    let change = match current {
        None => CrdChange::New,
        Some(cur) if version_schemas(cur) == version_schemas(&target.object) => {
            CrdChange::Unchanged
        }
        Some(cur) => {
            let before = storage_schema(cur).map(spec_fields).unwrap_or_default();
            let after = storage_schema(&target.object)
                .map(spec_fields)
                .unwrap_or_default();
            CrdChange::Changed {
                added: outermost(&after.difference(&before).cloned().collect()),
                removed: outermost(&before.difference(&after).cloned().collect()),
            }
        }
    };
    CrdPlan {
        name: target.name.clone(),
        change,
    }
}

/// The fields of `object` (a whole custom resource, from its root) that the
/// API server prunes under a structural `schema`, as JSON paths
/// (`spec.cdi.nriPluginEnabled`, `spec.toolkit.env[].x`). `apiVersion`,
/// `kind` and `metadata` at the root are never pruned.
pub fn pruned_fields(schema: &Value, object: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Some(map) = object.as_object() {
        for (k, v) in map {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            child(schema, k, v, k, &mut out);
        }
    }
    out
}

fn child(schema: &Value, key: &str, value: &Value, path: &str, out: &mut BTreeSet<String>) {
    if let Some(sub) = schema.get("properties").and_then(|p| p.get(key)) {
        prune(sub, value, path, out);
        return;
    }
    match schema.get("additionalProperties") {
        Some(ap @ Value::Object(_)) => return prune(ap, value, path, out),
        Some(Value::Bool(true)) => return,
        _ => {}
    }
    if !preserves_unknown(schema) {
        out.insert(path.to_string());
    }
}

fn preserves_unknown(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

fn prune(schema: &Value, value: &Value, path: &str, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            let embedded = schema
                .get("x-kubernetes-embedded-resource")
                .and_then(Value::as_bool)
                == Some(true);
            for (k, v) in map {
                if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                child(schema, k, v, &format!("{path}.{k}"), out);
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items").filter(|i| i.is_object()) {
                for item in items {
                    prune(item_schema, item, &format!("{path}[]"), out);
                }
            }
        }
        _ => {}
    }
}

/// What the new CRD changes for one object (a stored ClusterPolicy, or the
/// spec the chart will render from the values).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PruneDiff {
    /// Pruned under the cluster's CRD, kept under the chart's: these need
    /// the CRD step (with `--skip-crds` the API server drops them).
    pub kept_by_new: Vec<String>,
    /// Kept under the cluster's CRD, pruned under the chart's: lost once the
    /// chart's CRD is in place.
    pub pruned_by_new: Vec<String>,
}

impl PruneDiff {
    pub fn is_empty(&self) -> bool {
        self.kept_by_new.is_empty() && self.pruned_by_new.is_empty()
    }
}

/// Compares what the cluster's schema (`None`: no CRD yet, nothing is kept)
/// and the chart's schema prune of `object`.
pub fn prune_diff(current: Option<&Value>, target: &Value, object: &Value) -> PruneDiff {
    let after = pruned_fields(target, object);
    let before = match current {
        Some(s) => pruned_fields(s, object),
        None => return PruneDiff::default(),
    };
    PruneDiff {
        kept_by_new: outermost(&before.difference(&after).cloned().collect()),
        pruned_by_new: outermost(&after.difference(&before).cloned().collect()),
    }
}

/// The object the values stand for: `{"spec": values}`. The chart's
/// clusterpolicy template renders most operand sections of the values into
/// `spec` under the same keys (`cdi.nriPluginEnabled` →
/// `spec.cdi.nriPluginEnabled`); keys no schema declares are pruned by both
/// and so never reported by [`prune_diff`].
pub fn values_as_spec(values: &Value) -> Value {
    serde_json::json!({ "spec": values })
}

#[cfg(test)]
mod tests {
    use super::*;

    // NVIDIA/gpu-operator deployments/gpu-operator/crds/nvidia.com_clusterpolicies.yaml at
    // v25.10.1 and v26.7.0 (tests/fixtures/upstream/gpu-operator-crds/*.source).
    const CRD_25_10_1: &str = include_str!(
        "../../../tests/fixtures/upstream/gpu-operator-crds/nvidia.com_clusterpolicies-v25.10.1.yaml"
    );
    const CRD_26_7_0: &str = include_str!(
        "../../../tests/fixtures/upstream/gpu-operator-crds/nvidia.com_clusterpolicies-v26.7.0.yaml"
    );

    fn crd(text: &str) -> Crd {
        let mut v = parse_crds("fixture", text).unwrap();
        assert_eq!(v.len(), 1);
        v.remove(0)
    }

    fn schema(c: &Crd) -> &Value {
        storage_schema(&c.object).unwrap()
    }

    fn set(paths: &[&str]) -> BTreeSet<String> {
        paths.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_the_real_crds_and_skips_other_documents() {
        let c = crd(CRD_26_7_0);
        assert_eq!(c.name, CLUSTER_POLICY_CRD);
        let text = format!(
            "---\n# comment\n---\n{CRD_25_10_1}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"
        );
        let all = parse_crds("t", &text).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].name, CLUSTER_POLICY_CRD);
        let e = parse_crds("bad.yaml", "kind: CustomResourceDefinition\nspec: {}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.yaml") && e.contains("metadata.name"), "{e}");
    }

    #[test]
    fn spec_fields_follow_the_schema() {
        let old = spec_fields(schema(&crd(CRD_25_10_1)));
        let new = spec_fields(schema(&crd(CRD_26_7_0)));
        // v26.x added cdi.nriPluginEnabled (the chart's NRI plugin) and hostPaths.kubeletRootDir.
        for p in ["spec.cdi.nriPluginEnabled", "spec.hostPaths.kubeletRootDir"] {
            assert!(new.contains(p) && !old.contains(p), "{p}");
        }
        for p in [
            "spec.cdi.enabled",
            "spec.toolkit.env[].name",
            "spec.daemonsets.labels",
        ] {
            assert!(new.contains(p) && old.contains(p), "{p}");
        }
        assert!(!new.iter().any(|p| p.starts_with("status")));
    }

    #[test]
    fn compare_names_new_sections_once() {
        let old = crd(CRD_25_10_1);
        let new = crd(CRD_26_7_0);
        let plan = compare(Some(&old.object), &new);
        let CrdChange::Changed { added, removed } = &plan.change else {
            panic!("{plan:?}")
        };
        assert!(added.contains(&"spec.cdi.nriPluginEnabled".to_string()));
        assert!(added.contains(&"spec.kataSandboxDevicePlugin".to_string()));
        assert!(
            !added
                .iter()
                .any(|p| p.starts_with("spec.kataSandboxDevicePlugin.")
                    || p.starts_with("spec.daemonsets.podSecurityContext.")),
            "{added:?}"
        );
        assert!(added.contains(&"spec.daemonsets.podSecurityContext".to_string()));
        assert!(removed.is_empty(), "{removed:?}");
        let line = plan.summary();
        assert!(
            line.starts_with("clusterpolicies.nvidia.com: new spec fields: "),
            "{line}"
        );
        assert!(line.contains(" more"), "{line}");
        // A downgrade removes them.
        let back = compare(Some(&new.object), &old);
        let CrdChange::Changed { added, removed } = &back.change else {
            panic!("{back:?}")
        };
        assert!(added.is_empty() && removed.contains(&"spec.cdi.nriPluginEnabled".to_string()));
        assert_eq!(
            compare(Some(&new.object), &new).summary(),
            "clusterpolicies.nvidia.com: unchanged"
        );
        assert!(!compare(Some(&new.object), &new).changes());
        assert_eq!(compare(None, &new).change, CrdChange::New);
    }

    /// The ClusterPolicy the v26.7.0 chart renders (its sample values), trimmed.
    fn cluster_policy() -> Value {
        serde_json::json!({
            "apiVersion": "nvidia.com/v1",
            "kind": "ClusterPolicy",
            "metadata": {"name": "cluster-policy", "labels": {"app": "x"}},
            "spec": {
                "cdi": {"enabled": true, "nriPluginEnabled": false},
                "hostPaths": {"rootFS": "/", "kubeletRootDir": "/var/lib/kubelet"},
                "toolkit": {"enabled": true, "env": [{"name": "CONTAINERD_SOCKET", "value": "/run/k3s/containerd/containerd.sock"}]},
                "daemonsets": {"labels": {"any": "label"}, "tolerations": [{"key": "k", "operator": "Exists"}]},
                "operator": {"defaultRuntime": "containerd"},
            },
            "status": {"state": "ready"},
        })
    }

    #[test]
    fn the_old_crd_prunes_what_the_new_chart_renders() {
        let old = crd(CRD_25_10_1);
        let new = crd(CRD_26_7_0);
        let cp = cluster_policy();
        assert_eq!(
            pruned_fields(schema(&old), &cp),
            set(&["spec.cdi.nriPluginEnabled", "spec.hostPaths.kubeletRootDir"])
        );
        assert!(pruned_fields(schema(&new), &cp).is_empty());
        let d = prune_diff(Some(schema(&old)), schema(&new), &cp);
        assert_eq!(
            d.kept_by_new,
            ["spec.cdi.nriPluginEnabled", "spec.hostPaths.kubeletRootDir"]
        );
        assert!(d.pruned_by_new.is_empty());
        // Downgrading the CRD loses them from the stored object.
        let d = prune_diff(Some(schema(&new)), schema(&old), &cp);
        assert!(d.kept_by_new.is_empty());
        assert_eq!(
            d.pruned_by_new,
            ["spec.cdi.nriPluginEnabled", "spec.hostPaths.kubeletRootDir"]
        );
        // No CRD in the cluster: nothing to compare.
        assert!(prune_diff(None, schema(&new), &cp).is_empty());
    }

    #[test]
    fn unknown_fields_go_unless_preserved() {
        let s = serde_json::json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": true,
                    "properties": {
                        "cdi": {"type": "object", "properties": {"enabled": {"type": "boolean"}}},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "list": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
                    }
                }
            }
        });
        let obj = serde_json::json!({
            "apiVersion": "v1", "kind": "X", "metadata": {"name": "n"},
            "spec": {
                "cdi": {"enabled": true, "nriPluginEnabled": true},
                "labels": {"x": "y"},
                "free": {"anything": {"deep": 1}},
                "list": [{"a": "1", "b": "2"}, {"b": "3"}],
                "unknownTop": 1,
            },
            "status": {"state": "ready"},
        });
        assert_eq!(
            pruned_fields(&s, &obj),
            set(&["spec.cdi.nriPluginEnabled", "spec.list[].b", "status"])
        );
        // values as the spec they render into
        let v = values_as_spec(&serde_json::json!({"cdi": {"enabled": false}}));
        assert!(pruned_fields(&s, &v).is_empty());
    }
}
