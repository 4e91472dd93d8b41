//! `--mirror REGISTRY`: every operand image pulled from a mirror registry.
//! Each values map with `repository` and `image` (the operands the chart's
//! ClusterPolicy copies into its spec, the operator, the driver manager)
//! gets its `repository` on the mirror host with the same path
//! (`nvcr.io/nvidia/cloud-native` → `REGISTRY/nvidia/cloud-native`), as
//! `helm rke2gpu images --check-mirror` looks the images up. The NFD
//! subchart's image is named in a hint (its key is the subchart's).

use super::{Ctx, Out};
use crate::helm::mirror::{ImageName, mirror_host};
use crate::matrix;
use serde_json::{Value, json};

fn walk(prefix: &str, v: &Value, found: &mut Vec<(String, String)>) {
    let Some(m) = v.as_object() else {
        return;
    };
    if let (Some(repo), Some(_)) = (
        m.get("repository").and_then(Value::as_str),
        m.get("image").and_then(Value::as_str),
    ) && !repo.is_empty()
    {
        found.push((prefix.to_string(), repo.to_string()));
    }
    for (k, sub) in m {
        if sub.is_object() && k != "env" && k != "resources" {
            let p = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            walk(&p, sub, found);
        }
    }
}

pub(super) fn mirror(ctx: &Ctx<'_>, out: &mut Out<'_>) {
    let Some(mirror) = ctx.opts.mirror.as_deref() else {
        return;
    };
    let host = mirror_host(mirror);
    let mut found = Vec::new();
    walk("", &ctx.chart.values, &mut found);
    for (key, repo) in found {
        // The repository's host and path, as an image name would split it.
        let Some(n) = ImageName::parse(&format!("{repo}/x")) else {
            continue;
        };
        let path = n.repository.trim_end_matches("/x");
        let new = format!("{host}/{path}");
        if new == repo {
            continue;
        }
        out.set(
            &format!("{key}.repository"),
            json!(new),
            format!("--mirror {mirror}: {repo} from the mirror"),
            matrix::IMAGES_SOURCE,
        );
    }
    out.hints.push(format!(
        "--mirror {mirror}: the NFD subchart pulls registry.k8s.io/nfd/node-feature-discovery; add --set node-feature-discovery.image.repository={host}/nfd/node-feature-discovery, and check the mirror: helm rke2gpu images --check-mirror {mirror}"
    ));
}

#[cfg(test)]
mod tests {
    use super::super::tests::{chart_at, get, one};
    use super::super::*;
    use serde_json::json;

    #[test]
    fn every_operand_repository_moves_to_the_mirror_host() {
        let c = compute_values_with(
            &one("v1.33.10+rke2r1", "2.2.2-k3s1"),
            &chart_at("v26.7.0"),
            &ValuesOptions {
                mirror: Some("https://reg.local:5000".into()),
                ..ValuesOptions::default()
            },
            &UserValues::default(),
        )
        .unwrap();
        assert_eq!(
            get(&c, "devicePlugin.repository"),
            Some(&json!("reg.local:5000/nvidia"))
        );
        assert_eq!(
            get(&c, "operator.repository"),
            Some(&json!("reg.local:5000/nvidia"))
        );
        assert_eq!(
            get(&c, "driver.manager.repository"),
            Some(&json!("reg.local:5000/nvidia/cloud-native"))
        );
        assert_eq!(
            get(&c, "toolkit.repository"),
            Some(&json!("reg.local:5000/nvidia/k8s"))
        );
        // vgpuManager has no repository in the chart: left alone.
        assert!(get(&c, "vgpuManager.repository").is_none());
        assert!(
            c.hints
                .iter()
                .any(|h| h.contains("node-feature-discovery.image.repository"))
        );
        // The images list of the same values is what --check-mirror looks up.
        let mut merged = chart_at("v26.7.0").values;
        crate::helm::values::merge_into(&mut merged, &c.tree());
        let images = crate::helm::images::list(&merged, "v26.7.0", &[], None, &[]);
        let dp = images.iter().find(|i| i.from == "devicePlugin").unwrap();
        assert_eq!(dp.image, "reg.local:5000/nvidia/k8s-device-plugin:v0.20.0");
    }
}
