//! `helm rke2gpu images`: every image a chart version will pull with the
//! computed and the user's values, for air-gapped installs. Pure, from two
//! inputs: the values the release will have (the chart's `values.yaml`
//! merged with ours and the user's, as Helm layers them), where each
//! operand is a map with `repository`, `image` and `version` that the
//! chart's ClusterPolicy template copies into the spec and the operator
//! turns into an image (gpu-operator internal/image ImagePath); and the
//! containers of the manifests `helm template` renders (the operator
//! Deployment, the NFD subchart, hooks). Operands are on by their
//! `enabled` (or their parent's), the sandbox-only ones only with
//! `sandboxWorkloads.enabled`; the driver image carries the GPU nodes'
//! OS tag ([`matrix::driver_os_tag`]), and with `driver.usePrecompiled`
//! their kernel. Our own verify and node-agent images close the list.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::matrix;

/// One image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageRef {
    /// `nvcr.io/nvidia/k8s-device-plugin:v0.20.0`.
    pub image: String,
    /// Where it comes from: a values key (`devicePlugin`), a rendered
    /// object (`Deployment/gpu-operator`) or `kubectl-gpu`.
    pub from: String,
    /// Pulled with these values.
    pub enabled: bool,
    /// Why it is on or off, or what it depends on.
    pub note: String,
}

/// A GPU node's OS as the driver image tag needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeOs {
    pub node: String,
    /// `ubuntu24.04`, `rhel9`; `None` when it cannot be told.
    pub os_tag: Option<String>,
    pub kernel: Option<String>,
    /// `nvidia.com/gpu.deploy.driver=pre-installed`: no driver pod there.
    pub driver_preinstalled: bool,
}

fn s<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str).filter(|x| !x.is_empty())
}

/// `repository/image:version`, `repository/image@sha256:…` or `image` (the
/// operator's ImagePath); `version` defaults to `default_version`.
fn image_path(m: &Value, default_version: &str) -> Option<String> {
    let image = s(m, "image")?;
    let version = s(m, "version").unwrap_or(default_version);
    let name = match s(m, "repository") {
        Some(r) => format!("{}/{image}", r.trim_end_matches('/')),
        None => image.to_string(),
    };
    Some(if version.is_empty() {
        name
    } else if version.starts_with("sha256:") {
        format!("{name}@{version}")
    } else {
        format!("{name}:{version}")
    })
}

fn enabled_of(m: &Value) -> Option<bool> {
    match m.get("enabled")? {
        Value::Bool(b) => Some(*b),
        Value::String(t) => t.parse().ok(),
        _ => None,
    }
}

/// Every operand image in the values, with whether it is on.
fn operand_images(values: &Value, app_version: &str, nodes: &[NodeOs], out: &mut Vec<ImageRef>) {
    let sandbox = values
        .get("sandboxWorkloads")
        .and_then(enabled_of)
        .unwrap_or(false);
    let Some(top) = values.as_object() else {
        return;
    };
    for (key, m) in top {
        walk(key, m, None, sandbox, values, app_version, nodes, out);
    }
}

#[allow(clippy::too_many_arguments)] // one recursive walk with its context
fn walk(
    key: &str,
    m: &Value,
    parent_enabled: Option<bool>,
    sandbox: bool,
    values: &Value,
    app_version: &str,
    nodes: &[NodeOs],
    out: &mut Vec<ImageRef>,
) {
    let Some(obj) = m.as_object() else {
        return;
    };
    let own = enabled_of(m);
    let top = !key.contains('.');
    let sandbox_only = top && matrix::SANDBOX_OPERANDS.contains(&key);
    if obj.contains_key("image") && obj.contains_key("repository") {
        let (enabled, note) = match (own.or(parent_enabled), sandbox_only) {
            (_, true) if !sandbox => (false, "only with sandboxWorkloads.enabled=true".to_string()),
            (Some(true), _) => (true, format!("{key}.enabled")),
            (Some(false), _) => (false, format!("{key}.enabled=false")),
            (None, _) if matrix::ALWAYS_ON_OPERANDS.contains(&key) => {
                (true, "always deployed".to_string())
            }
            (None, _) => (
                false,
                format!("{key} has no enabled key: not deployed by default"),
            ),
        };
        let version_default =
            if matrix::ALWAYS_ON_OPERANDS.contains(&key) || key == "nodeStatusExporter" {
                app_version
            } else {
                ""
            };
        if key == "driver" {
            driver_images(m, enabled, &note, nodes, out);
        } else if let Some(image) = image_path(m, version_default) {
            out.push(ImageRef {
                image,
                from: key.to_string(),
                enabled,
                note,
            });
        }
    }
    let _ = values;
    for (k, sub) in obj {
        if sub.is_object() && k != "env" && k != "resources" {
            walk(
                &format!("{key}.{k}"),
                sub,
                own.or(parent_enabled),
                sandbox,
                values,
                app_version,
                nodes,
                out,
            );
        }
    }
}

/// The driver image per GPU node OS (and kernel, precompiled).
fn driver_images(m: &Value, enabled: bool, note: &str, nodes: &[NodeOs], out: &mut Vec<ImageRef>) {
    let Some(base) = image_path(m, "") else {
        return;
    };
    let precompiled = m
        .get("usePrecompiled")
        .and_then(|v| {
            v.as_bool()
                .or_else(|| v.as_str().and_then(|t| t.parse().ok()))
        })
        .unwrap_or(false);
    if base.contains("@sha256:") {
        out.push(ImageRef {
            image: base,
            from: "driver".into(),
            enabled,
            note: format!("{note}; a digest: no OS suffix"),
        });
        return;
    }
    let (pre, nodes): (Vec<&NodeOs>, Vec<&NodeOs>) =
        nodes.iter().partition(|n| n.driver_preinstalled);
    if !pre.is_empty() && nodes.is_empty() {
        out.push(ImageRef {
            image: format!("{base}-<os>"),
            from: "driver".into(),
            enabled: false,
            note: format!(
                "every GPU node has a pre-installed driver (nvidia.com/gpu.deploy.driver=pre-installed: {}): not pulled",
                pre.iter().map(|n| n.node.as_str()).collect::<Vec<_>>().join(", ")
            ),
        });
        return;
    }
    let mut tags: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in nodes {
        let tag = match (&n.os_tag, precompiled, &n.kernel) {
            (Some(os), false, _) => format!("{base}-{os}"),
            (Some(os), true, Some(k)) => format!("{base}-{k}-{os}"),
            _ => format!("{base}-<os of {}>", n.node),
        };
        tags.entry(tag).or_default().push(n.node.clone());
    }
    if tags.is_empty() && pre.is_empty() {
        tags.insert(
            format!("{base}-<GPU node OS, e.g. ubuntu24.04>"),
            Vec::new(),
        );
    }
    let mixed = tags.len() > 1;
    for (image, on) in tags {
        let mut n = format!("{note}{}", if precompiled { ", precompiled" } else { "" });
        if !on.is_empty() {
            n.push_str(&format!("; GPU nodes {}", on.join(", ")));
        }
        if mixed {
            n.push_str("; mixed OSes: the ClusterPolicy uses the first GPU node's, use NVIDIADriver CRs per OS");
        }
        out.push(ImageRef {
            image,
            from: "driver".into(),
            enabled,
            note: n,
        });
    }
}

/// Container images of the rendered manifests (`helm template` output).
fn rendered_images(rendered: &str, out: &mut Vec<ImageRef>) {
    for doc in rendered.split("\n---") {
        let Ok(v) = serde_saphyr::from_str::<Value>(doc) else {
            continue;
        };
        let kind = s(&v, "kind").unwrap_or_default();
        let name = v
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut images = Vec::new();
        collect_container_images(&v, &mut images);
        for image in images {
            if out.iter().any(|i| i.image == image) {
                continue;
            }
            out.push(ImageRef {
                image,
                from: format!("{kind}/{name}"),
                enabled: true,
                note: "rendered by the chart".into(),
            });
        }
    }
}

fn collect_container_images(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if (k == "containers" || k == "initContainers")
                    && let Some(a) = x.as_array()
                {
                    for c in a {
                        if let Some(i) = s(c, "image")
                            && !out.iter().any(|o| o == i)
                        {
                            out.push(i.to_string());
                        }
                    }
                } else {
                    collect_container_images(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_container_images(x, out)),
        _ => {}
    }
}

/// The whole list: operands from `values`, images of `rendered` not among
/// them, then ours (`kubectl gpu verify`'s and the node agent's).
pub fn list(
    values: &Value,
    app_version: &str,
    nodes: &[NodeOs],
    rendered: Option<&str>,
    ours: &[(&str, &str)],
) -> Vec<ImageRef> {
    let mut out = Vec::new();
    operand_images(values, app_version, nodes, &mut out);
    if let Some(r) = rendered {
        rendered_images(r, &mut out);
    }
    for (image, what) in ours {
        out.push(ImageRef {
            image: image.to_string(),
            from: "kubectl-gpu".into(),
            enabled: true,
            note: what.to_string(),
        });
    }
    out
}

/// The output forms of `helm rke2gpu images`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImagesFormat {
    Table,
    Json,
    Yaml,
    /// One image a line, each once (for skopeo/crane scripts).
    Plain,
}

/// The images that will be pulled: enabled, with a concrete reference,
/// each once, in list order.
pub fn pulled(list: &[ImageRef]) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    list.iter()
        .filter(|i| i.enabled && !i.image.contains('<') && seen.insert(i.image.clone()))
        .map(|i| i.image.clone())
        .collect()
}

/// The list in a form (`all`: the disabled ones too; `plain` never).
pub fn render(list: &[ImageRef], format: ImagesFormat, all: bool) -> crate::Result<String> {
    let shown: Vec<&ImageRef> = list.iter().filter(|i| all || i.enabled).collect();
    Ok(match format {
        ImagesFormat::Plain => pulled(list).iter().map(|i| format!("{i}\n")).collect(),
        ImagesFormat::Json => crate::render::structured(&shown, crate::cli::OutputFormat::Json)?,
        ImagesFormat::Yaml => crate::render::structured(&shown, crate::cli::OutputFormat::Yaml)?,
        ImagesFormat::Table => crate::render::table(
            &["IMAGE", "FROM", "ENABLED", "NOTE"],
            shown
                .iter()
                .map(|i| {
                    vec![
                        i.image.clone(),
                        i.from.clone(),
                        i.enabled.to_string(),
                        i.note.clone(),
                    ]
                })
                .collect::<Vec<Vec<String>>>(),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values_26_7() -> Value {
        crate::helm::chart::parse_values_yaml("fixture", crate::helm::chart::tests::VALUES_26_7)
            .unwrap()
    }

    fn find<'a>(l: &'a [ImageRef], from: &str) -> Vec<&'a ImageRef> {
        l.iter().filter(|i| i.from == from).collect()
    }

    /// The real v26.7.0 values.yaml (tests/fixtures): the images the
    /// research of the chart's values lists, on and off as the chart ships.
    #[test]
    fn the_real_values_give_the_operands_on_and_off() {
        let nodes = [NodeOs {
            node: "gpu-1".into(),
            os_tag: Some("ubuntu24.04".into()),
            kernel: Some("6.8.0-45-generic".into()),
            driver_preinstalled: false,
        }];
        let l = list(&values_26_7(), "v26.7.0", &nodes, None, &[]);
        let one = |from: &str| {
            let f = find(&l, from);
            assert_eq!(f.len(), 1, "{from}: {l:#?}");
            f[0].clone()
        };
        assert_eq!(one("operator").image, "nvcr.io/nvidia/gpu-operator:v26.7.0");
        assert!(one("operator").enabled);
        assert_eq!(
            one("validator").image,
            "nvcr.io/nvidia/gpu-operator:v26.7.0"
        );
        assert_eq!(
            one("devicePlugin").image,
            "nvcr.io/nvidia/k8s-device-plugin:v0.20.0"
        );
        assert!(one("devicePlugin").enabled);
        assert_eq!(
            one("toolkit").image,
            "nvcr.io/nvidia/k8s/container-toolkit:v1.20.0"
        );
        assert!(!one("dcgm").enabled, "dcgm is off by default");
        assert!(one("dcgmExporter").enabled);
        assert!(one("migManager").enabled);
        assert_eq!(
            one("driver.manager").image,
            "nvcr.io/nvidia/cloud-native/k8s-driver-manager:v0.12.0"
        );
        assert!(one("driver.manager").enabled, "on with the driver");
        let d = one("driver");
        assert_eq!(d.image, "nvcr.io/nvidia/driver:595.91.07-ubuntu24.04");
        assert!(d.enabled);
        // Sandbox operands are off without sandboxWorkloads.enabled, even with enabled: true.
        for k in [
            "sandboxDevicePlugin",
            "vfioManager",
            "ccManager",
            "vgpuDeviceManager",
        ] {
            let i = one(k);
            assert!(!i.enabled, "{k}: {i:?}");
            assert!(i.note.contains("sandboxWorkloads"), "{k}: {i:?}");
        }
    }

    #[test]
    fn precompiled_digest_and_mixed_os_drivers() {
        let mut v = values_26_7();
        v["driver"]["usePrecompiled"] = Value::Bool(true);
        v["driver"]["version"] = "595".into();
        let nodes = [
            NodeOs {
                node: "a".into(),
                os_tag: Some("ubuntu24.04".into()),
                kernel: Some("6.8.0-45-generic".into()),
                driver_preinstalled: false,
            },
            NodeOs {
                node: "b".into(),
                os_tag: Some("rhel9".into()),
                kernel: Some("5.14.0-427.el9.x86_64".into()),
                driver_preinstalled: false,
            },
        ];
        let l = list(&v, "v26.7.0", &nodes, None, &[]);
        let d: Vec<&str> = find(&l, "driver")
            .iter()
            .map(|i| i.image.as_str())
            .collect();
        assert_eq!(
            d,
            vec![
                "nvcr.io/nvidia/driver:595-5.14.0-427.el9.x86_64-rhel9",
                "nvcr.io/nvidia/driver:595-6.8.0-45-generic-ubuntu24.04"
            ]
        );
        assert!(find(&l, "driver")[0].note.contains("NVIDIADriver"));
        v["driver"]["version"] = "sha256:abc".into();
        let l = list(&v, "v26.7.0", &nodes, None, &[]);
        assert_eq!(
            find(&l, "driver")[0].image,
            "nvcr.io/nvidia/driver@sha256:abc"
        );
    }

    /// Nodes where the operator found a host driver get no driver pod.
    #[test]
    fn pre_installed_drivers_are_not_pulled() {
        let node = |name: &str, os: &str, pre: bool| NodeOs {
            node: name.into(),
            os_tag: Some(os.into()),
            kernel: None,
            driver_preinstalled: pre,
        };
        let l = list(
            &values_26_7(),
            "v26.7.0",
            &[node("a", "ubuntu24.04", true), node("b", "rhel9", false)],
            None,
            &[],
        );
        let d = find(&l, "driver");
        assert_eq!(d.len(), 1, "{d:#?}");
        assert_eq!(d[0].image, "nvcr.io/nvidia/driver:595.91.07-rhel9");
        let l = list(
            &values_26_7(),
            "v26.7.0",
            &[node("a", "ubuntu24.04", true)],
            None,
            &[],
        );
        let d = find(&l, "driver");
        assert_eq!(d.len(), 1);
        assert!(!d[0].enabled);
        assert!(d[0].note.contains("pre-installed"), "{d:#?}");
    }

    #[test]
    fn rendered_containers_and_ours_are_added_once() {
        let rendered = "---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: gpu-operator-node-feature-discovery-worker\nspec:\n  template:\n    spec:\n      containers:\n      - name: worker\n        image: registry.k8s.io/nfd/node-feature-discovery:v0.19.0\n---\nkind: Deployment\nmetadata:\n  name: gpu-operator\nspec:\n  template:\n    spec:\n      containers:\n      - image: nvcr.io/nvidia/gpu-operator:v26.7.0\n";
        let l = list(
            &values_26_7(),
            "v26.7.0",
            &[],
            Some(rendered),
            &[("docker.io/library/busybox:1.37", "node agent")],
        );
        let nfd = find(&l, "DaemonSet/gpu-operator-node-feature-discovery-worker");
        assert_eq!(nfd.len(), 1);
        // operator, validator (and nodeStatusExporter, off): the Deployment's
        // container is not listed again.
        assert!(find(&l, "Deployment/gpu-operator").is_empty(), "{l:#?}");
        assert_eq!(
            l.iter()
                .filter(|i| i.image == "nvcr.io/nvidia/gpu-operator:v26.7.0" && i.enabled)
                .count(),
            2
        );
        assert_eq!(l.last().unwrap().from, "kubectl-gpu");
    }
}
