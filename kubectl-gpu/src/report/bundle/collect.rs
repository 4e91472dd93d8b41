//! The bundle's I/O: what it needs beyond the snapshot (full GPU pods,
//! events, operand logs, `--deep` node files), and check-runtime's report
//! on the same snapshot and reads (failing operands' logs and events, the
//! `--deep` files) through [`crate::check_runtime::evaluate_all`].

use super::{Collected, LogResult, log_targets, safe};
use crate::check_runtime::{self, host};
use crate::facts::ClusterView;
use crate::report::GpuReport;
use crate::snapshot::Snapshot;
use std::collections::BTreeMap;

/// Options of [`collect`].
#[derive(Debug, Clone)]
pub struct CollectOptions {
    /// Cap of each log file in bytes (its tail is kept).
    pub log_cap: usize,
    /// `--deep`: read node files through node-agent pods with these options.
    pub deep: Option<crate::node::agent::AgentOptions>,
}

/// Fetches what the bundle needs beyond the snapshot: full GPU pods,
/// events, operand logs, the check-runtime result and (`--deep`) node files.
/// Failures become `not_collected` notes, never errors.
pub async fn collect(
    kube: &crate::client::Kube,
    snap: &Snapshot,
    report: &GpuReport,
    opts: &CollectOptions,
    progress: &indicatif::ProgressBar,
) -> Collected {
    use futures::StreamExt as _;
    let mut c = Collected::default();

    progress.set_message("GPU pods");
    c.gpu_pods = Some(
        crate::report::read::full_gpu_pods(kube)
            .await
            .map_err(|e| crate::snapshot::describe(&e)),
    );

    progress.set_message("events");
    let mut namespaces: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(Ok(pods)) = &c.gpu_pods {
        for p in pods {
            namespaces
                .entry(p.metadata.namespace.clone().unwrap_or_default())
                .or_default()
                .push(p.metadata.name.clone().unwrap_or_default());
        }
    }
    if let Some(ops) = &snap.operator {
        let ev = crate::report::read::events(kube, &ops.namespace)
            .await
            .map_err(|e| crate::snapshot::describe(&e));
        c.events
            .insert(format!("events/{}.yaml", safe(&ops.namespace)), ev);
    }
    for (ns, names) in &namespaces {
        let ev = crate::report::read::events(kube, ns)
            .await
            .map(|list| {
                list.into_iter()
                    .filter(|e| {
                        e.involved_object.kind.as_deref() == Some("Pod")
                            && e.involved_object
                                .name
                                .as_ref()
                                .is_some_and(|n| names.contains(n))
                    })
                    .collect::<Vec<_>>()
            })
            .map_err(|e| crate::snapshot::describe(&e));
        c.events
            .insert(format!("events/gpu-pods/{}.yaml", safe(ns)), ev);
    }

    let targets = log_targets(snap);
    progress.set_message(format!("logs ({} containers)", targets.len()));
    let logs: Vec<(String, LogResult)> = futures::stream::iter(targets)
        .map(|(ns, pod, container, previous, path)| async move {
            let r =
                crate::report::read::log_tail(kube, &ns, &pod, &container, previous, opts.log_cap)
                    .await
                    .map_err(|e| crate::snapshot::describe(&e));
            (path, r)
        })
        .buffer_unordered(8)
        .collect()
        .await;
    c.logs = logs.into_iter().collect();

    let mut deep = None;
    if let Some(agent_opts) = &opts.deep {
        progress.set_message("node files (--deep)");
        let view = ClusterView::from_snapshot(snap);
        let nodes: Vec<_> = view
            .gpu_nodes()
            .filter(|n| report.nodes.nodes.iter().any(|r| r.name == n.name))
            .cloned()
            .collect();
        let read = host::read_nodes(kube, &nodes, agent_opts)
            .await
            .unwrap_or_else(|e| host::DeepRead::failed(&agent_opts.image, &nodes, &e.to_string()));
        c.node_files = read
            .nodes
            .iter()
            .map(|(node, r)| (node.clone(), r.clone().map(|(_, probe)| probe)))
            .collect();
        deep = Some(read);
    }
    progress.set_message("check-runtime (failing operands' logs and events)");
    let texts = check_runtime::operand_texts::read(
        kube,
        snap,
        &[],
        crate::report::pods::jiff_now::Now::system(),
    )
    .await;
    c.check_runtime = Some(check_runtime::evaluate_all(
        snap,
        deep.as_ref(),
        Some(&texts),
    ));
    c
}
