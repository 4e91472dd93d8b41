//! Verifying one node, the I/O: create its pod (recorded in the run's
//! [`Registry`]), wait for it with a watch, read its log and, when it
//! failed, its events, evaluate and diagnose, and delete it unless the
//! namespace goes away at the end anyway.

use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;

use super::checks::Check;
use super::diagnosis::{Diagnosis, DiagnosisKind};
use super::options::{DEADLINE_MARGIN_SECONDS, VerifyOptions};
use super::results::{NodeResult, Outcome, attach_diagnosis, evaluate_output};
use super::spec::{CONTAINER_NAME, VerifySpecInput, build_verify_pod};
use super::targets::Target;
use crate::client::Kube;
use crate::objects::Registry;

/// What every node's verification shares.
pub(crate) struct Ctx {
    pub(crate) kube: Kube,
    pub(crate) namespace: String,
    pub(crate) ns_created: bool,
    pub(crate) run_id: String,
    pub(crate) opts: VerifyOptions,
    pub(crate) registry: Registry,
}

pub(crate) fn spec_input(ctx: &Ctx, t: &Target) -> VerifySpecInput {
    let mut input = VerifySpecInput::new(&t.facts.name, &ctx.run_id);
    input.namespace = ctx.namespace.clone();
    input.image = ctx.opts.image.clone();
    input.gpus = ctx.opts.gpus;
    input.resource_name = ctx.opts.resource.clone();
    input.runtime_class = t.rc.name.clone();
    input.active_deadline_seconds =
        i64::try_from(ctx.opts.timeout.as_secs() + DEADLINE_MARGIN_SECONDS).unwrap_or(i64::MAX);
    input.workload = ctx.opts.workload;
    input.tolerate_all_taints = ctx.opts.tolerate_all_taints;
    input
}

/// Waiting reasons after which the pod will not start by itself.
const STUCK_REASONS: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// `Succeeded`/`Failed`, or a container stuck waiting for a reason that will not clear.
pub fn is_finished(pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return true;
    }
    status
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.as_deref())
        .any(|r| STUCK_REASONS.contains(&r))
}

fn container_started(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .any(|c| {
            c.state
                .as_ref()
                .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
        })
}

enum WaitEnd {
    Finished,
    Gone,
    StreamEnded,
    TimedOut,
}

pub(crate) async fn verify_node(ctx: &Ctx, t: Target) -> NodeResult {
    let started = Instant::now();
    let input = spec_input(ctx, &t);
    let node = t.facts.name.clone();
    let mut r = NodeResult::new(
        &node,
        &input.pod_name,
        &ctx.namespace,
        input.effective_image(),
    );
    r.resource_name = input.resource_name.clone();
    r.gpus_requested = input.gpus;
    r.runtime_class = t.rc.name.clone();
    r.runtime_class_reason = t.rc.reason.clone();
    r.placement_issues = t.placement.clone();
    r.product = t.gpu_facts.product_label.clone();
    let pod = match build_verify_pod(&input) {
        Ok(p) => p,
        Err(e) => {
            r.error = Some(e.to_string());
            r.duration_ms = ms(started);
            return r;
        }
    };
    // A resource the node does not advertise: a kubelet admits the pod without
    // it (it drops unknown extended resources from the request), so the pod
    // would run without a GPU. Say so without creating it.
    if t.advertised == Some(false) {
        r.diagnoses = vec![unadvertised_resource(&node, &input.resource_name)];
        r.duration_ms = ms(started);
        return r;
    }
    // More than the node has can never be admitted: a kubelet rejects the pod
    // (`OutOfnvidia.com/gpu`), a simulated one may run it anyway. Say so
    // without creating it.
    if let Some(have) = t.allocatable
        && have < u64::from(input.gpus)
    {
        let res = &input.resource_name;
        r.diagnoses = vec![Diagnosis {
            kind: DiagnosisKind::InsufficientGpuResource,
            summary: format!(
                "{node} has {have} allocatable {res}; the verify pod requests {}",
                input.gpus
            ),
            evidence: format!("status.allocatable[{res}] = {have}"),
            source: "node status".into(),
            fix: format!("request at most {have} (--gpus {have}), or pick nodes with more {res}"),
            next_command: Some(format!(
                "kubectl get node {node} -o jsonpath='{{.status.allocatable}}'"
            )),
        }];
        r.duration_ms = ms(started);
        return r;
    }
    let api: Api<Pod> = Api::namespaced(ctx.kube.client.clone(), &ctx.namespace);
    let mut requests = 0u32;

    // Create.
    requests += 1;
    let mut create_error: Option<String> = None;
    match api.create(&PostParams::default(), &pod).await {
        Ok(_) => ctx.registry.add_pod(&ctx.namespace, &input.pod_name),
        Err(kube::Error::Api(s)) => create_error = Some(s.message.clone()),
        Err(e) => create_error = Some(e.to_string()),
    }

    let mut last: Option<Pod> = None;
    let mut log: Option<String> = None;
    let mut events: Vec<Event> = Vec::new();
    if create_error.is_none() {
        // Wait with a watch on this one pod (list + watch).
        requests += 2;
        let mut watch_error: Option<String> = None;
        let end = {
            let stream = watcher::watch_object(api.clone(), &input.pod_name).default_backoff();
            let wait = async {
                futures::pin_mut!(stream);
                while let Some(ev) = stream.next().await {
                    match ev {
                        Ok(Some(p)) => {
                            let done = is_finished(&p);
                            last = Some(p);
                            if done {
                                return WaitEnd::Finished;
                            }
                        }
                        Ok(None) => {
                            if last.is_some() {
                                return WaitEnd::Gone;
                            }
                        }
                        Err(e) => {
                            tracing::debug!(node = %node, "watch error: {e}");
                            watch_error = Some(e.to_string());
                        }
                    }
                }
                WaitEnd::StreamEnded
            };
            match tokio::time::timeout(ctx.opts.timeout, wait).await {
                Ok(end) => end,
                Err(_) => WaitEnd::TimedOut,
            }
        };
        r.phase = last
            .as_ref()
            .and_then(|p| p.status.as_ref())
            .and_then(|s| s.phase.clone());
        match end {
            WaitEnd::Finished => {}
            WaitEnd::TimedOut => {
                r.timed_out = true;
                if let Some(e) = &watch_error {
                    r.error = Some(format!("watch error: {e}"));
                }
            }
            WaitEnd::Gone => r.error = Some("the pod was deleted before it finished".into()),
            WaitEnd::StreamEnded => {
                r.error = Some(format!(
                    "the watch ended early{}",
                    watch_error.map(|e| format!(": {e}")).unwrap_or_default()
                ))
            }
        }
        if last.as_ref().is_some_and(container_started) {
            requests += 1;
            let lp = LogParams {
                container: Some(CONTAINER_NAME.to_string()),
                ..LogParams::default()
            };
            match api.logs(&input.pod_name, &lp).await {
                Ok(l) => log = Some(l),
                // Without the log nothing can be checked: say why (e.g. the
                // apiserver cannot reach the kubelet's log endpoint).
                Err(e) => {
                    tracing::debug!(node = %node, "reading the log: {e}");
                    if r.error.is_none() {
                        r.error = Some(format!("cannot read the verify pod's log: {e}"));
                    }
                }
            }
        }
    }

    // Evaluate.
    evaluate_output(&mut r, ctx.opts.workload, &t.gpu_facts, log.as_deref());
    if create_error.is_some() {
        r.result = Outcome::Fail;
    }
    if r.result == Outcome::Fail {
        if create_error.is_none() {
            requests += 1;
            let ev_api: Api<Event> = Api::namespaced(ctx.kube.client.clone(), &ctx.namespace);
            let lp = ListParams::default().fields(&format!(
                "involvedObject.name={},involvedObject.kind=Pod",
                input.pod_name
            ));
            match ev_api.list(&lp).await {
                Ok(list) => events = list.items,
                Err(e) => tracing::debug!(node = %node, "listing events: {e}"),
            }
        }
        attach_diagnosis(
            &mut r,
            last.as_ref(),
            &events,
            log.as_deref(),
            create_error.as_deref(),
        );
        // A pod that succeeded but failed a check: the check is the
        // explanation, not an "unrecognised reason".
        if r.phase.as_deref() == Some("Succeeded") && r.checks.iter().any(Check::is_fail) {
            r.diagnoses.retain(|d| d.kind != DiagnosisKind::Unknown);
        }
    }

    // Delete the pod now unless the namespace goes away at the end anyway.
    if create_error.is_none() && !ctx.opts.keep && !ctx.ns_created {
        requests += 1;
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        };
        match api.delete(&input.pod_name, &dp).await {
            Ok(_) => ctx.registry.pod_deleted(&ctx.namespace, &input.pod_name),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => tracing::warn!(node = %node, "deleting pod {}: {e}", input.pod_name),
        }
    }
    r.api_requests = requests;
    r.duration_ms = ms(started);
    tracing::debug!(
        node = %node,
        api_requests = requests,
        result = r.result.label(),
        "verify: API requests for node"
    );
    r
}

/// The node does not advertise `res` at all: no device plugin registered it. A kubelet admits a
/// pod requesting an extended resource the node does not know, without it
/// (kubernetes pkg/kubelet/lifecycle/predicate.go, `removeMissingExtendedResources`), so a
/// verify pod would run without a GPU and fail as if the runtime were at fault.
fn unadvertised_resource(node: &str, res: &str) -> Diagnosis {
    Diagnosis {
        kind: DiagnosisKind::InsufficientGpuResource,
        summary: format!("{node} does not advertise {res}: no device plugin registered it"),
        evidence: format!("status.capacity has no {res}"),
        source: "node status".into(),
        fix: format!(
            "install the GPU Operator (its device plugin advertises {res}: helm rke2gpu install), or check that nvidia-device-plugin-daemonset runs on {node}"
        ),
        next_command: Some(format!("kubectl gpu check-runtime --deep --node {node}")),
    }
}

fn ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unadvertised_resource_names_the_device_plugin() {
        let d = unadvertised_resource("gpu-1", "nvidia.com/gpu");
        assert_eq!(d.kind, DiagnosisKind::InsufficientGpuResource);
        assert_eq!(
            d.summary,
            "gpu-1 does not advertise nvidia.com/gpu: no device plugin registered it"
        );
        assert!(
            d.fix
                .contains("nvidia-device-plugin-daemonset runs on gpu-1"),
            "{}",
            d.fix
        );
    }
}
