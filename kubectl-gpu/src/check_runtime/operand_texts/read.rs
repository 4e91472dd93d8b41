//! The I/O of [`super`]: for the [`super::targets`] of a snapshot, the tail
//! of each failing container's log (eight at a time) and one event list of
//! the operator's namespace. Nothing is read when no pod is failing. A read
//! that fails (RBAC, a container that never ran) is kept as its reason.

use super::{LogText, OperandTexts, PodTexts, TAIL_BYTES, TAIL_LINES, Target, pod_events, targets};
use crate::client::Kube;
use crate::report::pods::jiff_now::Now;
use crate::report::read::tail_capped;
use crate::snapshot::{Snapshot, describe, list_all};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, LogParams};

/// The apiserver stops sending a log after this many bytes (a bound on
/// lines of any length; the kept tail is [`TAIL_BYTES`]).
const LIMIT_BYTES: i64 = 1 << 20;

/// Reads what the failing pods of the operator's namespace say (on the
/// selected nodes; all when `nodes` is empty). Never fails.
pub async fn read(kube: &Kube, snap: &Snapshot, nodes: &[String], now: Now) -> OperandTexts {
    let Some(ops) = &snap.operator else {
        return OperandTexts::default();
    };
    let (targets, not_read) = targets(snap, nodes, now);
    let mut out = OperandTexts {
        namespace: ops.namespace.clone(),
        not_read,
        ..OperandTexts::default()
    };
    if targets.is_empty() {
        return out;
    }
    let pods: Api<Pod> = Api::namespaced(kube.client.clone(), &ops.namespace);
    let events: Api<Event> = Api::namespaced(kube.client.clone(), &ops.namespace);
    let lp = ListParams::default();
    let events_read = list_all(&events, &lp);
    let logs_read = futures::stream::iter(targets)
        .map(|t| {
            let pods = &pods;
            async move {
                let log = log_text(pods, &t).await;
                (t, log)
            }
        })
        .buffered(8)
        .collect::<Vec<_>>();
    let (events, logs) = tokio::join!(events_read, logs_read);
    let events = match events {
        Ok(e) => e,
        Err(e) => {
            out.events_unreadable = Some(describe(&e));
            Vec::new()
        }
    };
    out.pods = logs
        .into_iter()
        .map(|(target, log)| PodTexts {
            events: pod_events(&events, &target.pod),
            target,
            log,
        })
        .collect();
    out
}

async fn tail(pods: &Api<Pod>, t: &Target, previous: bool) -> Result<(String, bool), kube::Error> {
    let lp = LogParams {
        container: Some(t.container.clone()),
        previous,
        tail_lines: Some(TAIL_LINES),
        limit_bytes: Some(LIMIT_BYTES),
        ..LogParams::default()
    };
    Ok(tail_capped(pods.logs(&t.pod, &lp).await?, TAIL_BYTES))
}

fn lines(text: &str, previous: bool, cut: bool) -> LogText {
    LogText::Lines {
        previous,
        lines: text.lines().map(str::to_string).collect(),
        cut,
    }
}

fn forbidden(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403)
}

/// The current instance's tail; the previous instance's when the current
/// one has no log yet (a crash loop between two starts) and it restarted.
async fn log_text(pods: &Api<Pod>, t: &Target) -> LogText {
    if !t.has_run {
        return LogText::NotRun;
    }
    let current = tail(pods, t, false).await;
    let retry = t.restarts > 0
        && match &current {
            Ok((text, _)) => text.trim().is_empty(),
            Err(e) => !forbidden(e),
        };
    if retry
        && let Ok((text, cut)) = tail(pods, t, true).await
        && !text.trim().is_empty()
    {
        return lines(&text, true, cut);
    }
    match current {
        Ok((text, cut)) => lines(&text, false, cut),
        Err(e) => LogText::Unreadable(describe(&e)),
    }
}
