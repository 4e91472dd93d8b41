//! `kubectl gpu cleanup`: list, and unless `--dry-run` delete, every pod
//! and namespace labelled `app.kubernetes.io/managed-by=kubectl-gpu` (what
//! a killed run left behind), and render what it found or did. Before
//! deleting anything it checks (SelfSubjectAccessReview) that every delete
//! is allowed, and names the missing permission and its role otherwise.

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams};
use serde::Serialize;

use crate::client::Kube;
use crate::error::{Error, Result};
use crate::objects::{Component, LABEL_COMPONENT, OURS_SELECTOR};
use crate::preflight::{self, Permission};
use crate::rbac::Role;
use crate::snapshot;
use std::collections::BTreeSet;

/// What `cleanup` was asked to do.
#[derive(Debug, Clone, Copy, Default)]
pub struct CleanupOptions {
    /// Only list what would be removed.
    pub dry_run: bool,
}

/// One object left behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Leftover {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

/// What `cleanup` found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CleanupReport {
    pub dry_run: bool,
    pub found: Vec<Leftover>,
    pub deleted: Vec<Leftover>,
}

/// Lists (and unless `dry_run` deletes) every pod and namespace labelled
/// `app.kubernetes.io/managed-by=kubectl-gpu`.
pub async fn run(kube: &Kube, opts: &CleanupOptions) -> Result<CleanupReport> {
    let dry_run = opts.dry_run;
    let pod_api: Api<Pod> = Api::all(kube.client.clone());
    let ns_api: Api<Namespace> = Api::all(kube.client.clone());
    let lp = ListParams::default().labels(OURS_SELECTOR);
    let (pods, namespaces) = tokio::join!(
        snapshot::list_all(&pod_api, &lp),
        snapshot::list_all(&ns_api, &lp)
    );
    let pods =
        pods.map_err(kube.err("list pods labelled app.kubernetes.io/managed-by=kubectl-gpu"))?;
    let namespaces = namespaces
        .map_err(kube.err("list namespaces labelled app.kubernetes.io/managed-by=kubectl-gpu"))?;
    let mut report = CleanupReport {
        dry_run,
        ..CleanupReport::default()
    };
    for p in &pods {
        report.found.push(Leftover {
            kind: "pod".into(),
            namespace: p.metadata.namespace.clone(),
            name: p.metadata.name.clone().unwrap_or_default(),
        });
    }
    for n in &namespaces {
        report.found.push(Leftover {
            kind: "namespace".into(),
            namespace: None,
            name: n.metadata.name.clone().unwrap_or_default(),
        });
    }
    if dry_run {
        return Ok(report);
    }
    preflight::require(kube, &delete_permissions(&pods, &namespaces)).await?;
    let removed = delete_our_pods(kube).await?;
    for p in removed {
        let (ns, name) = p.split_once('/').unwrap_or(("", p.as_str()));
        report.deleted.push(Leftover {
            kind: "pod".into(),
            namespace: Some(ns.to_string()),
            name: name.to_string(),
        });
    }
    let deletes = futures::stream::iter(namespaces.iter().filter_map(|n| n.metadata.name.clone()))
        .map(|name| {
            let api = ns_api.clone();
            async move {
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => Ok(Some(name)),
                    Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
                    Err(e) => Err((name, e)),
                }
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    for r in deletes {
        match r {
            Ok(Some(name)) => report.deleted.push(Leftover {
                kind: "namespace".into(),
                namespace: None,
                name,
            }),
            Ok(None) => {}
            Err((name, e)) => {
                return Err(Error::from_kube(
                    e,
                    &format!("delete namespace {name}"),
                    &kube.server,
                ));
            }
        }
    }
    Ok(report)
}

/// The deletes `cleanup` makes: our pods, per namespace (node-agent pods:
/// the node-agent role, bound in their namespace; verify pods: the verify
/// role, bound cluster-wide in a verify namespace of ours, else in theirs),
/// and our namespaces (the verify role, cluster-wide).
pub fn delete_permissions<'a>(pods: &'a [Pod], namespaces: &'a [Namespace]) -> Vec<Permission<'a>> {
    let ours: BTreeSet<&str> = namespaces
        .iter()
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for p in pods {
        let Some(ns) = p.metadata.namespace.as_deref() else {
            continue;
        };
        let agent = p
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(LABEL_COMPONENT))
            .is_some_and(|c| c == Component::NodeAgent.label());
        let role = if agent { Role::NodeAgent } else { Role::Verify };
        if seen.insert((ns, role)) {
            let p = Permission::new(role, "delete", "pods", Some(ns));
            out.push(if role == Role::Verify && ours.contains(ns) {
                p.bound_cluster_wide()
            } else {
                p
            });
        }
    }
    if !namespaces.is_empty() {
        out.push(Permission::new(Role::Verify, "delete", "namespaces", None));
    }
    out
}

/// Deletes every pod we ever created, in every namespace (without grace:
/// a pod on a node whose kubelet is gone never confirms a graceful delete).
/// Returns `namespace/name` of each deleted pod.
async fn delete_our_pods(kube: &Kube) -> Result<Vec<String>> {
    let api: Api<Pod> = Api::all(kube.client.clone());
    let pods = snapshot::list_all(&api, &ListParams::default().labels(OURS_SELECTOR))
        .await
        .map_err(kube.err("list pods labelled app.kubernetes.io/managed-by=kubectl-gpu"))?;
    let mut removed = Vec::new();
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    for pod in pods {
        let (Some(ns), Some(name)) = (pod.metadata.namespace, pod.metadata.name) else {
            continue;
        };
        let api: Api<Pod> = Api::namespaced(kube.client.clone(), &ns);
        match api.delete(&name, &dp).await {
            Ok(_) => removed.push(format!("{ns}/{name}")),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                return Err(Error::from_kube(
                    e,
                    &format!("delete pod {ns}/{name}"),
                    &kube.server,
                ));
            }
        }
    }
    Ok(removed)
}

/// The table of what was (or would be) deleted, or the line saying there
/// was nothing.
pub fn render_table(report: &CleanupReport) -> String {
    let list = if report.dry_run {
        &report.found
    } else {
        &report.deleted
    };
    if list.is_empty() {
        return "nothing labelled app.kubernetes.io/managed-by=kubectl-gpu found\n".to_string();
    }
    let action = if report.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    let rows = list.iter().map(|l| {
        vec![
            l.kind.clone(),
            l.namespace.clone().unwrap_or_else(|| "-".into()),
            l.name.clone(),
            action.to_string(),
        ]
    });
    crate::render::table(&["kind", "namespace", "name", "action"], rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, name: &str) -> Leftover {
        Leftover {
            kind: "pod".into(),
            namespace: Some(ns.into()),
            name: name.into(),
        }
    }

    #[test]
    fn nothing_found() {
        let r = CleanupReport::default();
        assert_eq!(
            render_table(&r),
            "nothing labelled app.kubernetes.io/managed-by=kubectl-gpu found\n"
        );
    }

    #[test]
    fn dry_run_lists_what_would_go() {
        let r = CleanupReport {
            dry_run: true,
            found: vec![
                pod("kubectl-gpu-verify-r1", "gpu-verify-gpu-1-r1"),
                Leftover {
                    kind: "namespace".into(),
                    namespace: None,
                    name: "kubectl-gpu-verify-r1".into(),
                },
            ],
            deleted: vec![],
        };
        let t = render_table(&r);
        assert!(t.starts_with("KIND"), "{t}");
        assert!(t.contains("would delete"), "{t}");
        assert!(t.contains("gpu-verify-gpu-1-r1"), "{t}");
        assert_eq!(t.lines().count(), 3, "{t}");
    }
}
