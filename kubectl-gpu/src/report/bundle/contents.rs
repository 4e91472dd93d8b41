//! What goes into the bundle: [`assemble`] turns the snapshot, the report
//! and what [`super::collect`] fetched into entries (pure, no I/O), and
//! [`log_targets`] names the operand logs to fetch.

use super::{Bundle, Collected, safe};
use crate::report::GpuReport;
use crate::report::redact::redact_lines;
use crate::snapshot::Snapshot;
use std::collections::BTreeMap;

/// The operand pods whose logs the bundle collects, as
/// `(namespace, pod, container, previous, bundle path)`.
pub fn log_targets(snap: &Snapshot) -> Vec<(String, String, String, bool, String)> {
    let mut out = Vec::new();
    let Some(ops) = &snap.operator else {
        return out;
    };
    for pod in &ops.pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let ns = ops.namespace.clone();
        let statuses = crate::operator::container_statuses(pod);
        let containers = pod.spec.iter().flat_map(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(s.containers.iter())
        });
        for c in containers {
            let base = format!("logs/{}/{}/{}", safe(&ns), safe(&name), safe(&c.name));
            out.push((
                ns.clone(),
                name.clone(),
                c.name.clone(),
                false,
                format!("{base}.log"),
            ));
            let restarted = statuses
                .iter()
                .any(|s| s.name == c.name && s.restart_count > 0);
            if restarted {
                out.push((
                    ns.clone(),
                    name.clone(),
                    c.name.clone(),
                    true,
                    format!("{base}.previous.log"),
                ));
            }
        }
    }
    out
}

/// Builds the bundle from the snapshot, the report and what was fetched.
/// Pure: no I/O. Never serialises a Secret (nor the Snapshot, which holds
/// the Helm release Secrets).
pub fn assemble(snap: &Snapshot, report: &GpuReport, collected: &Collected) -> Bundle {
    let mut b = Bundle::default();
    add_reports(&mut b, report, collected);
    add_gpu_nodes(&mut b, snap, report);
    add_gpu_pods(&mut b, collected);
    add_operator(&mut b, snap);
    add_cluster_policies(&mut b, snap);
    add_events(&mut b, collected);
    add_logs(&mut b, collected);
    add_node_files(&mut b, collected);
    b
}

/// report.json and check-runtime.json.
fn add_reports(b: &mut Bundle, report: &GpuReport, collected: &Collected) {
    b.add_json(
        "report.json".into(),
        "kubectl gpu report (every view)",
        report,
    );
    match &collected.check_runtime {
        Some(c) => b.add_json(
            "check-runtime.json".into(),
            "kubectl gpu check-runtime -o json",
            c,
        ),
        None => b.not_collected.push("check-runtime.json: not run".into()),
    }
}

/// The GPU nodes (the report's node rows).
fn add_gpu_nodes(b: &mut Bundle, snap: &Snapshot, report: &GpuReport) {
    let gpu_nodes: std::collections::BTreeSet<&str> =
        report.nodes.nodes.iter().map(|n| n.name.as_str()).collect();
    for n in &snap.nodes {
        let name = n.metadata.name.clone().unwrap_or_default();
        if gpu_nodes.contains(name.as_str()) {
            b.add_yaml(format!("nodes/{}.yaml", safe(&name)), "Node", n);
        }
    }
}

/// The full GPU pod objects.
fn add_gpu_pods(b: &mut Bundle, collected: &Collected) {
    match &collected.gpu_pods {
        Some(Ok(pods)) => {
            for p in pods {
                b.add_yaml(
                    format!(
                        "pods/{}/{}.yaml",
                        safe(p.metadata.namespace.as_deref().unwrap_or_default()),
                        safe(p.metadata.name.as_deref().unwrap_or_default())
                    ),
                    "Pod (GPU)",
                    p,
                );
            }
        }
        Some(Err(e)) => b.not_collected.push(format!("GPU pods: {e}")),
        None => b.not_collected.push("GPU pods: not read".into()),
    }
}

/// The operator's Deployments, DaemonSets, pods and Helm release
/// (user values, redacted; metadata). Never the release Secret itself.
fn add_operator(b: &mut Bundle, snap: &Snapshot) {
    if let Some(ops) = &snap.operator {
        let ns = safe(&ops.namespace);
        for d in &ops.deployments {
            let n = safe(d.metadata.name.as_deref().unwrap_or_default());
            b.add_yaml(
                format!("operator/{ns}/deployments/{n}.yaml"),
                "Deployment",
                d,
            );
        }
        for d in &ops.daemonsets {
            let n = safe(d.metadata.name.as_deref().unwrap_or_default());
            b.add_yaml(format!("operator/{ns}/daemonsets/{n}.yaml"), "DaemonSet", d);
        }
        for p in &ops.pods {
            let n = safe(p.metadata.name.as_deref().unwrap_or_default());
            b.add_yaml(format!("operator/{ns}/pods/{n}.yaml"), "Pod (operand)", p);
        }
        match crate::helm::release::find_gpu_operator(&ops.helm_secrets) {
            Ok(Some(rel)) => {
                let n = safe(&rel.name);
                b.add_yaml(
                    format!("operator/helm/{n}.values.yaml"),
                    "Helm release user values (redacted)",
                    &rel.config,
                );
                b.add_json(
                    format!("operator/helm/{n}.release.json"),
                    "Helm release metadata",
                    &serde_json::json!({
                        "name": rel.name, "namespace": rel.namespace, "status": rel.status,
                        "revision": rel.revision, "chart_name": rel.chart_name,
                        "chart_version": rel.chart_version, "app_version": rel.app_version,
                    }),
                );
            }
            Ok(None) => b.not_collected.push(
                match snap
                    .unreadable
                    .iter()
                    .find(|u| u.what.starts_with(crate::snapshot::HELM_SECRETS_WHAT))
                {
                    Some(u) => format!("Helm values: {u}"),
                    None => "Helm values: no gpu-operator Helm release found".into(),
                },
            ),
            Err(e) => b.not_collected.push(format!("Helm values: {e}")),
        }
    }
}

/// The ClusterPolicies.
fn add_cluster_policies(b: &mut Bundle, snap: &Snapshot) {
    for cp in snap.cluster_policies.iter().flatten() {
        let n = safe(cp.metadata.name.as_deref().unwrap_or_default());
        b.add_yaml(
            format!("operator/clusterpolicy/{n}.yaml"),
            "ClusterPolicy",
            cp,
        );
    }
}

/// Events, sorted by time and name.
fn add_events(b: &mut Bundle, collected: &Collected) {
    for (path, ev) in &collected.events {
        match ev {
            Ok(list) => {
                let mut list = list.clone();
                list.sort_by(|a, b| {
                    (&a.last_timestamp, &a.metadata.name)
                        .cmp(&(&b.last_timestamp, &b.metadata.name))
                });
                b.add_yaml(path.clone(), "Events", &list);
            }
            Err(e) => b.not_collected.push(format!("{path}: {e}")),
        }
    }
}

/// Operand log tails.
fn add_logs(b: &mut Bundle, collected: &Collected) {
    for (path, log) in &collected.logs {
        match log {
            Ok((text, cut)) => b.add(
                path.clone(),
                "container log (tail)",
                text.clone().into_bytes(),
                *cut,
            ),
            Err(e) => b.not_collected.push(format!("{path}: {e}")),
        }
    }
}

/// `--deep`: host files (redacted) and what the probe saw.
fn add_node_files(b: &mut Bundle, collected: &Collected) {
    for (node, probe) in &collected.node_files {
        let base = format!("node-files/{}", safe(node));
        match probe {
            Ok(p) => {
                for (path, content) in &p.files {
                    if let Some(text) = content {
                        b.add(
                            format!("{base}/{}", path.trim_start_matches('/')),
                            "host file (redacted)",
                            redact_lines(text).into_bytes(),
                            false,
                        );
                    }
                }
                b.add_json(
                    format!("{base}/_probe.json"),
                    "directories listed, paths tested, missing files",
                    &serde_json::json!({
                        "dirs": p.dirs,
                        "exists": p.exists,
                        "missing_files": p.files.iter().filter(|(_, v)| v.is_none()).map(|(k, _)| k).collect::<Vec<_>>(),
                        "binary_files": p.binary.iter().map(|(k, v)| (k.clone(), v.as_ref().map(|b| b.len()))).collect::<BTreeMap<_, _>>(),
                    }),
                );
            }
            Err(e) => b.not_collected.push(format!("{base}: {e}")),
        }
    }
}
