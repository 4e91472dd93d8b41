//! The nodes the values are computed for: RKE2/K3s nodes (all nodes with
//! `--allow-generic` when there is none), GPU nodes among them, each with
//! its containerd, inferred from its RKE2 release when the node reports none.

use super::{ClusterInputs, NodeInput, Out, ValuesOptions};
use crate::matrix::{self, Rke2Feature};
use crate::version::{Distribution, Triple};
use crate::{Error, Result};

/// A node the values are computed for, with its effective containerd.
pub(super) struct Target<'a> {
    pub(super) node: &'a NodeInput,
    pub(super) containerd: Triple,
    pub(super) inferred: bool,
}

impl Target<'_> {
    fn describe(&self) -> String {
        format!(
            "{} ({}, containerd {}{})",
            self.node.name,
            self.node.kubelet.raw,
            self.containerd,
            if self.inferred { " inferred" } else { "" }
        )
    }
}

/// Up to four targets by name, release and containerd, then a count.
pub(super) fn describe_all(targets: &[&Target<'_>]) -> String {
    const MAX: usize = 4;
    let mut s: Vec<String> = targets.iter().take(MAX).map(|t| t.describe()).collect();
    if targets.len() > MAX {
        s.push(format!("and {} more", targets.len() - MAX));
    }
    s.join(", ")
}

/// The containerd a node runs, or the one its RKE2 release ships.
fn effective_containerd(node: &NodeInput) -> (Triple, bool) {
    match node.containerd {
        Some(c) => (c, false),
        None if matrix::has(&node.kubelet, Rke2Feature::Containerd21) => {
            (matrix::ASSUMED_CONTAINERD_21, true)
        }
        None if matrix::has(&node.kubelet, Rke2Feature::Containerd2) => {
            (matrix::ASSUMED_CONTAINERD_2, true)
        }
        None => (matrix::ASSUMED_CONTAINERD_1, true),
    }
}

/// The selected nodes.
pub(super) struct Selected<'a> {
    /// No RKE2/K3s node: the values are distribution-neutral.
    pub(super) generic: bool,
    pub(super) targets: Vec<Target<'a>>,
}

impl Selected<'_> {
    /// The targets for reasons (`no nodes` when there is none).
    pub(super) fn describe(&self) -> String {
        let all: Vec<&Target<'_>> = self.targets.iter().collect();
        if all.is_empty() {
            "no nodes".to_string()
        } else {
            describe_all(&all)
        }
    }
}

/// Picks the nodes: refuses a cluster without RKE2/K3s nodes unless
/// `--allow-generic`, warns about other nodes and inferred containerd.
pub(super) fn select<'a>(
    cluster: &'a ClusterInputs,
    opts: &ValuesOptions,
    out: &mut Out<'_>,
) -> Result<Selected<'a>> {
    let is_rke2 = |n: &&NodeInput| {
        matches!(
            n.kubelet.distribution,
            Distribution::Rke2 | Distribution::K3s
        )
    };
    let rke2_nodes: Vec<&NodeInput> = cluster.nodes.iter().filter(is_rke2).collect();
    let generic = rke2_nodes.is_empty();
    if generic && !opts.allow_generic {
        let mut names: Vec<String> = cluster
            .nodes
            .iter()
            .take(5)
            .map(|n| format!("{} ({})", n.name, n.kubelet.raw))
            .collect();
        if names.is_empty() {
            names.push("none".into());
        }
        return Err(Error::NotRke2 {
            nodes: names.join(", "),
        });
    }
    let others = cluster.nodes.len() - rke2_nodes.len();
    if !generic && others > 0 {
        out.warnings.push(format!(
            "{others} node(s) are neither RKE2 nor K3s and were not considered"
        ));
    }
    let pool: Vec<&NodeInput> = if generic {
        cluster.nodes.iter().collect()
    } else {
        rke2_nodes
    };
    let gpu_pool: Vec<&NodeInput> = pool.iter().copied().filter(|n| n.gpu).collect();
    let chosen = if gpu_pool.is_empty() {
        if !pool.is_empty() {
            out.hints.push(
                "no node is labelled as a GPU node yet (NFD and GFD label them after install): the values fit every node".into(),
            );
        }
        pool
    } else {
        gpu_pool
    };
    let targets: Vec<Target<'_>> = chosen
        .into_iter()
        .map(|node| {
            let (containerd, inferred) = effective_containerd(node);
            Target {
                node,
                containerd,
                inferred,
            }
        })
        .collect();
    for t in targets.iter().filter(|t| t.inferred) {
        out.warnings.push(format!(
            "node {}: no containerd version reported; assuming containerd {} from its RKE2 release {}",
            t.node.name, t.containerd, t.node.kubelet.raw
        ));
    }
    Ok(Selected { generic, targets })
}
