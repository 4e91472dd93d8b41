//! Cluster mode of `patch-containerd` ([`run`]): select the nodes, then per
//! node start a node-agent pod, [`crate::patch::gather`] through it
//! ([`crate::node::exec::AgentHost`]), plan, and with `apply` write with backups, restart RKE2
//! detached, wait for the node and confirm ([`crate::patch::restart`]).

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

use crate::client::Kube;
use crate::error::{Error, Result};
use crate::facts::NodeFacts;
use crate::node::agent::{AgentOptions, Agents};
use crate::node::{BackupStamp, Host};
use crate::patch::plan::PatchOptions;
use crate::patch::report::{ClusterReport, Shown};
use crate::patch::restart::{NodeSession, confirm, restart_and_wait};
use crate::patch::{self, NodeReport, Outcome, PatchReport, PatchTarget};

/// What to do on each node.
#[derive(Debug, Clone)]
pub struct ClusterRequest {
    /// Nodes to patch (by name).
    pub nodes: Vec<String>,
    /// Every GPU node (and the named ones).
    pub all_gpu_nodes: bool,
    pub options: PatchOptions,
    /// Write (needs a privileged agent pod).
    pub apply: bool,
    /// Restore the newest backups instead of patching.
    pub rollback: bool,
    /// RKE2 data dir override (default: the node's `rke2.io/node-args`, else the default).
    pub data_dir: Option<String>,
    /// Timeout for each wait (agent pod, node Ready, confirmation).
    pub timeout: Duration,
    /// Only apply when the plan's diff is still this one (the diff shown
    /// before an interactive yes).
    pub expect_diff: Option<String>,
    /// Namespace of the agent pods (as in their `AgentOptions`).
    pub namespace: String,
    /// Image of the node-agent pods.
    pub image: String,
}

/// What the caller answers when asked to apply the planned changes (the
/// report shows them): `true` applies them.
pub type Ask<'a> = &'a mut dyn FnMut(&PatchReport) -> bool;

/// `kubectl gpu patch-containerd` over the cluster: plans every selected
/// node (with `apply`, writes, restarts and confirms). With `ask` (an
/// interactive dry run) and something to change, the planned report is
/// shown through `ask`; on yes, the nodes with changes are applied, each
/// only if its diff is still the one shown.
pub async fn run(kube: &Kube, req: &ClusterRequest, ask: Option<Ask<'_>>) -> Result<PatchReport> {
    let nodes = select(kube, req).await?;
    crate::preflight::node_agent(kube, &req.namespace).await?;
    let mut req = req.clone();
    let agent_opts = |privileged: bool| AgentOptions {
        namespace: req.namespace.clone(),
        image: req.image.clone(),
        timeout: req.timeout,
        privileged,
    };
    let mut reports = run_nodes(kube, agent_opts(req.apply), &nodes, &req).await;
    let to_apply: Vec<usize> = reports
        .iter()
        .enumerate()
        .filter(|(_, r)| r.outcome == Outcome::Planned)
        .map(|(i, _)| i)
        .collect();
    let mut shown = Shown::Full;
    if let Some(ask) = ask
        && !to_apply.is_empty()
    {
        let planned = ClusterReport {
            server: Some(kube.server.clone()),
            dry_run: true,
            rollback: req.rollback,
            nodes: reports.clone(),
            shown: Shown::Full,
        };
        if ask(&PatchReport::Cluster(planned)) {
            let privileged = agent_opts(true);
            req.apply = true;
            for i in to_apply {
                req.expect_diff = Some(reports[i].diff());
                let node = &nodes[i];
                let mut r =
                    run_nodes(kube, privileged.clone(), std::slice::from_ref(node), &req).await;
                if let Some(r) = r.pop() {
                    reports[i] = r;
                }
            }
            shown = Shown::SummaryAfterYes;
        } else {
            shown = Shown::Declined;
        }
    }
    Ok(PatchReport::Cluster(ClusterReport {
        server: Some(kube.server.clone()),
        dry_run: !req.apply,
        rollback: req.rollback,
        nodes: reports,
        shown,
    }))
}

/// Runs one agent set over the nodes and always removes its pods.
async fn run_nodes(
    kube: &Kube,
    opts: AgentOptions,
    nodes: &[NodeFacts],
    req: &ClusterRequest,
) -> Vec<NodeReport> {
    let agents = Agents::new(kube, opts);
    let mut out = Vec::new();
    for n in nodes {
        out.push(process_node(kube, &agents, n, req).await);
    }
    agents.cleanup().await;
    out
}

/// The nodes asked for: every GPU node, or the named ones in order.
async fn select(kube: &Kube, req: &ClusterRequest) -> Result<Vec<NodeFacts>> {
    let api: Api<Node> = Api::all(kube.client.clone());
    if req.all_gpu_nodes {
        let list = crate::snapshot::list_all(&api, &ListParams::default())
            .await
            .map_err(kube.err("list nodes"))?;
        let mut facts: Vec<NodeFacts> = list
            .iter()
            .map(NodeFacts::from_node)
            .filter(|f| f.gpu.present || req.nodes.contains(&f.name))
            .collect();
        facts.sort_by(|a, b| a.name.cmp(&b.name));
        if facts.is_empty() {
            return Err(Error::Usage(
                "no GPU node found (no nvidia.com/gpu.present=true, NFD NVIDIA PCI label or nvidia.com/gpu capacity); name nodes with --node".into(),
            ));
        }
        return Ok(facts);
    }
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for name in &req.nodes {
        if !seen.insert(name.clone()) {
            continue;
        }
        match api
            .get_opt(name)
            .await
            .map_err(kube.err(&format!("get node {name}")))?
        {
            Some(n) => out.push(NodeFacts::from_node(&n)),
            None => return Err(Error::NodeNotFound(name.clone())),
        }
    }
    Ok(out)
}

/// Plans (and with `apply`, applies, restarts and confirms) one node.
/// Never fails: errors end up in the report.
pub async fn process_node(
    kube: &Kube,
    agents: &Agents,
    facts: &NodeFacts,
    req: &ClusterRequest,
) -> NodeReport {
    let target = match PatchTarget::for_node(
        facts,
        req.data_dir.as_deref(),
        req.options.generic_containerd,
    ) {
        Ok(t) => t,
        Err(e) => return NodeReport::failed(&facts.name, &e),
    };
    let pod = match agents.start(&facts.name).await {
        Ok(p) => p,
        Err(e) => return NodeReport::failed(&facts.name, &e),
    };
    let mut s = NodeSession {
        kube,
        agents,
        namespace: req.namespace.clone(),
        node: facts.name.clone(),
        pod,
    };
    match process(&mut s, &target, req).await {
        Ok(r) => r,
        Err((mut r, e)) => {
            r.outcome = Outcome::Failed;
            r.error = Some(e.to_string());
            r
        }
    }
}

type Failure = (NodeReport, Error);

async fn process(
    s: &mut NodeSession<'_>,
    target: &PatchTarget,
    req: &ClusterRequest,
) -> std::result::Result<NodeReport, Failure> {
    let node = target.node.clone();
    let bare = || NodeReport::new(&node);
    let host = s.host();
    host.prefetch(&patch::gather_paths(
        target,
        req.options.binary_path.as_deref(),
    ))
    .await
    .map_err(|e| (bare(), e))?;
    if req.rollback {
        return rollback(s, target, req).await;
    }
    let (_, plan) = patch::plan_on(&host, target, &req.options)
        .await
        .map_err(|e| (bare(), e))?;
    let mut report = bare().with_plan(&plan, &target.unit);
    if !req.apply || (plan.changes.is_empty() && plan.restart.is_none()) {
        return Ok(report);
    }
    if let Some(expected) = &req.expect_diff
        && *expected != plan.diff()
    {
        let e = Error::Node {
            node: node.clone(),
            message: "the node's files changed since the diff was shown; nothing was written. Run the command again".into(),
        };
        return Err((report, e));
    }
    let stamp = BackupStamp::now();
    let applied = patch::apply_changes(&host, &plan.changes, &stamp)
        .await
        .map_err(|e| (report.clone(), e))?;
    report.backups = applied.backups;
    if let Some(release) = &plan.staged_for {
        // Nothing restarts: read the staged files back instead.
        for ch in &plan.changes {
            let back = host.read(&ch.path).await.map_err(|e| (report.clone(), e))?;
            let same = back.as_deref().map(String::from_utf8_lossy).as_deref() == ch.new.as_deref();
            report.evidence.push(format!(
                "{}: {}",
                ch.path,
                if same {
                    "staged as planned"
                } else {
                    "differs from the plan"
                }
            ));
            if !same {
                report
                    .problems
                    .push(format!("{} does not hold what was written", ch.path));
            }
        }
        report.evidence.push(format!(
            "takes effect at {release}'s first start; check it now with: kubectl gpu check-runtime --deep --node {} --upgrade-to-rke2 {release}",
            node
        ));
        report.outcome = if report.problems.is_empty() {
            Outcome::Staged
        } else {
            Outcome::Unconfirmed
        };
        return Ok(report);
    }
    drop(host);
    if plan.restart.is_some() {
        let r = restart_and_wait(s, &target.unit, req.timeout)
            .await
            .map_err(|e| (report.clone(), e))?;
        report.restart = Some(r);
    }
    let c = confirm(s, &plan, req.timeout)
        .await
        .map_err(|e| (report.clone(), e))?;
    report.confirmed = Some(c.confirmed);
    report.evidence = c.evidence;
    report.problems = c.problems;
    report.outcome = if c.confirmed {
        Outcome::Confirmed
    } else {
        Outcome::Unconfirmed
    };
    Ok(report)
}

async fn rollback(
    s: &mut NodeSession<'_>,
    target: &PatchTarget,
    req: &ClusterRequest,
) -> std::result::Result<NodeReport, Failure> {
    let mut report = NodeReport::new(&target.node);
    report.method = Some("rollback".into());
    let host = s.host();
    let plans = patch::plan_rollbacks(&host, &target.managed_files())
        .await
        .map_err(|e| (report.clone(), e))?;
    for p in &plans {
        report.reasons.push(p.rollback.reason.clone());
        if let Some(c) = &p.rollback.change {
            report.files.push(patch::FileReport::of(c));
        }
        if let Some(b) = &p.rollback.restored_from
            && p.rollback.change.is_some()
        {
            report.backups.push(b.clone());
        }
    }
    if report.files.is_empty() {
        report.outcome = Outcome::Unchanged;
        return Ok(report);
    }
    report.restart_unit = Some(target.unit.clone());
    report.outcome = Outcome::Planned;
    if !req.apply {
        return Ok(report);
    }
    if let Some(expected) = &req.expect_diff
        && *expected != report.diff()
    {
        let e = Error::Node {
            node: target.node.clone(),
            message: "the node's files changed since the diff was shown; nothing was restored. Run the command again".into(),
        };
        return Err((report, e));
    }
    patch::apply_rollbacks(&host, &plans, &BackupStamp::now())
        .await
        .map_err(|e| (report.clone(), e))?;
    drop(host);
    let r = restart_and_wait(s, &target.unit, req.timeout)
        .await
        .map_err(|e| (report.clone(), e))?;
    report.restart = Some(r);
    // The re-rendered config must still parse.
    let generated = s.host().read(target.config_path()).await;
    let read = |p: &str| {
        let host = s.host();
        let p = p.to_owned();
        async move {
            host.read(&p)
                .await
                .ok()
                .flatten()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        }
    };
    let (v3, v2) = (
        read(&target.paths.template_v3).await,
        read(&target.paths.template_v2).await,
    );
    match generated {
        Ok(Some(g)) => {
            let text = String::from_utf8_lossy(&g).into_owned();
            match crate::containerd::ContainerdConfig::parse(target.config_path(), &text) {
                Ok(c) => report.evidence.push(format!(
                    "{} parses (version {}, runtimes: {})",
                    target.config_path(),
                    c.version(),
                    c.runtimes()
                        .iter()
                        .map(|r| r.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                // A restored template that redeclares a base table says so.
                Err(e) => report.problems.push(
                    crate::containerd::redeclared::explain_config(
                        target.config_path(),
                        &text,
                        (&target.paths.template_v3, v3.as_deref()),
                        (&target.paths.template_v2, v2.as_deref()),
                        target.caps.containerd,
                    )
                    .unwrap_or_else(|| e.to_string()),
                ),
            }
        }
        Ok(None) => report.problems.push(format!(
            "{} is missing after the restart",
            target.config_path()
        )),
        Err(e) => report.problems.push(format!("re-reading the config: {e}")),
    }
    report.outcome = if report.problems.is_empty() {
        Outcome::RolledBack
    } else {
        Outcome::Unconfirmed
    };
    Ok(report)
}
