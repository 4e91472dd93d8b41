//! `kubectl gpu verify`, the run: pick the GPU nodes, decide the runtime
//! class per node, check RBAC and Pod Security before creating anything,
//! create one verify pod per node (bounded concurrency, [`node_run`]),
//! run the run-wide checks and always clean up (also on Ctrl-C, through
//! [`crate::objects`]) unless `--keep`.
//!
//! [`node_run`]: super::node_run

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};

use super::diagnosis::{DiagnosisInput, diagnose};
use super::node_run::{Ctx, spec_input, verify_node};
use super::options::VerifyOptions;
use super::progress::Progress;
use super::results::{CleanupResult, NodeResult, VerifyReport, finalize};
use super::spec::build_verify_pod;
use super::targets::{Target, nodes_matching, select_targets};
use crate::client::Kube;
use crate::error::{Error, Result};
use crate::objects::{self, Component, NAMESPACE_PREFIX, OnInterrupt, Registry, until_interrupted};
use crate::operator::OperatorFacts;
use crate::preflight;
use crate::snapshot::Snapshot;

/// Runs `kubectl gpu verify`. Ctrl-C during the run removes what it
/// created (unless `--keep`) and returns [`Error::Interrupted`].
pub async fn verify(
    kube: &Kube,
    opts: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<VerifyReport> {
    if opts.gpus == 0 {
        return Err(Error::Usage("--gpus must be at least 1".into()));
    }
    if let Some(s) = &opts.selector
        && s.trim().is_empty()
    {
        return Err(Error::InvalidSelector {
            selector: s.clone(),
            message: "empty selector".into(),
        });
    }
    let run_id = objects::run_id();
    let snap = Snapshot::read(kube).await?;
    let matched = match &opts.selector {
        Some(s) => Some((s.as_str(), nodes_matching(kube, s).await?)),
        None => None,
    };
    let selected = select_targets(
        &snap.nodes,
        &opts.nodes,
        matched.as_ref().map(|(s, m)| (*s, m)),
    )?;
    let operator = OperatorFacts::from_snapshot(&snap);
    let targets: Vec<Target> = selected
        .iter()
        .map(|n| {
            Target::new(
                n,
                &opts.runtime_class,
                operator.as_ref(),
                &snap,
                &opts.resource,
            )
        })
        .collect();
    for t in &targets {
        tracing::info!(node = %t.facts.name, runtime_class = ?t.rc.name, "{}", t.rc.reason);
        for p in &t.placement {
            tracing::warn!(node = %t.facts.name, "placement: {p:?}");
        }
    }

    // Namespace and RBAC, before creating anything.
    let (namespace, create_ns) = match &opts.namespace {
        Some(ns) => (ns.clone(), false),
        None => (format!("{NAMESPACE_PREFIX}{run_id}"), true),
    };
    preflight::verify(kube, &namespace, create_ns, opts.keep).await?;

    let keep_cmd = objects::removal_command(&namespace, create_ns, Component::Verify, &run_id);
    let what = "the verify pods";
    let registry = Registry::new(
        kube.client.clone(),
        if opts.keep {
            OnInterrupt::Keep {
                what,
                remove_with: keep_cmd.clone(),
            }
        } else {
            OnInterrupt::Remove { what }
        },
    );
    let ctx = Ctx {
        kube: kube.clone(),
        namespace,
        ns_created: create_ns,
        run_id,
        opts: opts.clone(),
        registry,
    };
    until_interrupted(run_pods(&ctx, targets, progress, keep_cmd)).await
}

/// Creates the namespace (when ours), the pods, and cleans up.
async fn run_pods(
    ctx: &Ctx,
    targets: Vec<Target>,
    progress: &dyn Progress,
    keep_cmd: String,
) -> Result<VerifyReport> {
    let kube = &ctx.kube;
    let namespace = &ctx.namespace;
    if ctx.ns_created {
        let ns_api: Api<Namespace> = Api::all(kube.client.clone());
        ns_api
            .create(
                &PostParams::default(),
                &objects::verify_namespace(&ctx.run_id),
            )
            .await
            .map_err(|e| {
                Error::from_kube(e, &format!("create namespace {namespace}"), &kube.server)
            })?;
        ctx.registry.set_namespace(namespace);
    }

    // Admission (PodSecurity) does not depend on the node: one server-side
    // dry run answers for all, so a rejecting namespace creates nothing.
    let mut nodes: Vec<NodeResult> = Vec::new();
    let mut rejected = false;
    if let Some(first) = targets.first()
        && let Ok(pod) = build_verify_pod(&spec_input(ctx, first))
        && let Some(message) = preflight::pod_security_rejection(kube, namespace, &pod).await
    {
        rejected = true;
        for t in &targets {
            let input = spec_input(ctx, t);
            let mut r = NodeResult::new(
                &t.facts.name,
                &input.pod_name,
                namespace,
                input.effective_image(),
            );
            r.runtime_class = t.rc.name.clone();
            r.runtime_class_reason = t.rc.reason.clone();
            r.product = t.gpu_facts.product_label.clone();
            r.resource_name = input.resource_name.clone();
            r.gpus_requested = input.gpus;
            let mut di = DiagnosisInput::new(&t.facts.name, namespace, input.effective_image());
            di.create_error = Some(&message);
            r.diagnoses = diagnose(&di);
            r.api_requests = u32::from(std::ptr::eq(t, first));
            nodes.push(r);
        }
    }

    if !rejected {
        progress.begin(targets.len());
        nodes = futures::stream::iter(targets)
            .map(|t| async move {
                progress.started(&t.facts.name);
                let r = verify_node(ctx, t).await;
                progress.finished(&r.node, r.result);
                r
            })
            .buffer_unordered(ctx.opts.parallel.max(1))
            .collect()
            .await;
        progress.end();
    }

    let (cluster_checks, summary) = finalize(&mut nodes);
    let cleanup = if ctx.opts.keep {
        CleanupResult {
            kept: true,
            delete_command: Some(keep_cmd),
            ..CleanupResult::default()
        }
    } else {
        ctx.registry.delete_all().await
    };
    let total_requests: u32 = nodes.iter().map(|n| n.api_requests).sum();
    tracing::debug!(
        nodes = nodes.len(),
        api_requests = total_requests,
        "verify: API requests for all nodes (snapshot and preflight not included)"
    );
    Ok(VerifyReport {
        server: kube.server.clone(),
        run_id: ctx.run_id.clone(),
        namespace: namespace.clone(),
        namespace_created: ctx.ns_created,
        workload: ctx.opts.workload,
        summary,
        cluster_checks,
        nodes,
        cleanup,
    })
}
