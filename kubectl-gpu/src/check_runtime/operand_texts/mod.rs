//! What failing GPU Operator pods say, and what it means: the last lines of
//! a failing container's log, the pod's Warning events and its container
//! states, classified by [`rules`] into a known cause with its fix.
//!
//! - [`targets`] (pure): which pods of the operator's namespace are failing
//!   (a container waiting in CrashLoopBackOff, CreateContainerError, … or
//!   terminated non-zero, init containers included; a pod not ready for
//!   longer than [`NOT_READY_SECONDS`]; the operator itself while the
//!   ClusterPolicy is not ready) and which container to read.
//! - [`read`] (I/O): the tail of each target's log ([`TAIL_LINES`],
//!   [`TAIL_BYTES`]; the previous instance when the current one has none)
//!   and one event list for the namespace. A forbidden read is kept as its
//!   reason, never an error.
//! - [`findings`] (pure): one finding per cause found, with the quoted line,
//!   the pod's events and the fix; a pod whose texts match no rule still
//!   gets its last lines as evidence; missing `pods/log` or `events`
//!   permissions are named in one finding.

pub mod read;
pub mod rules;

use super::finding::Finding;
use crate::operator::OperatorFacts;
use crate::report::pods::{human_age, jiff_now::Now};
use crate::snapshot::Snapshot;
use k8s_openapi::api::core::v1::{ContainerState, ContainerStatus, Event, Pod};
use serde::Serialize;

pub use read::read;

/// Lines of a log asked for (the apiserver returns the last N).
pub const TAIL_LINES: i64 = 40;
/// Bytes of a log kept (its end, cut at a line start).
pub const TAIL_BYTES: usize = 16 * 1024;
/// A pod not ready for this long counts as failing though nothing crashed
/// (init containers that wait for the driver or the toolkit).
pub const NOT_READY_SECONDS: i64 = 300;
/// Failing pods read per run, at most (one per app and container first).
pub const MAX_PODS: usize = 16;
/// Log lines shown for a pod whose texts match no rule.
pub const UNKNOWN_LINES: usize = 5;
/// Warning events shown per pod.
pub const EVENTS_SHOWN: usize = 3;

/// The finding id of everything this module reports.
pub const ID: &str = "operand-texts";

/// A failing pod of the operator's namespace and the container to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    pub namespace: String,
    pub pod: String,
    /// Its `app` label (or its name).
    pub app: String,
    /// Its node; None for the operator, whose findings are cluster-wide.
    pub node: Option<String>,
    pub container: String,
    pub init: bool,
    /// Why it counts as failing: `waiting: CrashLoopBackOff`,
    /// `terminated: Error (exit 1)`, `not ready for 12m`, `ClusterPolicy cluster-policy is notReady`.
    pub why: String,
    pub restarts: i32,
    /// The container has run at least once, so a log may exist.
    pub has_run: bool,
    /// The container's state texts: `waiting: CrashLoopBackOff: back-off 5m0s …`,
    /// `last state: terminated: StartError (exit 128): failed to create containerd task: …`.
    pub states: Vec<String>,
}

/// What the log read gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogText {
    /// The last lines; `previous`: of the instance before the current one;
    /// `cut`: more was there than [`TAIL_BYTES`].
    Lines {
        previous: bool,
        lines: Vec<String>,
        cut: bool,
    },
    /// The container never started (CreateContainerError, image pulls): no log.
    NotRun,
    /// The read failed: why (`forbidden: …` when RBAC refused it).
    Unreadable(String),
}

/// One Warning event of a pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventLine {
    pub reason: String,
    pub message: String,
    pub count: i32,
    /// The container it names (`spec.containers{name}`), if any.
    pub container: Option<String>,
    /// When it was last seen (RFC 3339), for ordering.
    pub last_seen: Option<String>,
}

impl EventLine {
    /// A core/v1 Event as a line; None for Normal events.
    pub fn from_event(e: &Event) -> Option<Self> {
        if e.type_.as_deref() == Some("Normal") {
            return None;
        }
        let container = e.involved_object.field_path.as_deref().and_then(|p| {
            let inner = p.split_once('{')?.1.strip_suffix('}')?;
            Some(inner.to_string())
        });
        let last_seen = e
            .last_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string()))
            .or_else(|| {
                e.metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.to_string())
            });
        Some(EventLine {
            reason: e.reason.clone().unwrap_or_default(),
            message: e.message.clone().unwrap_or_default().trim().to_string(),
            count: e.count.unwrap_or(1).max(1),
            container,
            last_seen,
        })
    }

    /// `event BackOff (x6): Back-off restarting failed container …`.
    pub fn line(&self) -> String {
        let count = if self.count > 1 {
            format!(" (x{})", self.count)
        } else {
            String::new()
        };
        format!("event {}{count}: {}", self.reason, self.message)
    }
}

/// The Warning events of one pod, latest first, from a namespace's list.
pub fn pod_events(events: &[Event], pod: &str) -> Vec<EventLine> {
    let mut out: Vec<EventLine> = events
        .iter()
        .filter(|e| {
            e.involved_object.kind.as_deref() == Some("Pod")
                && e.involved_object.name.as_deref() == Some(pod)
        })
        .filter_map(EventLine::from_event)
        .collect();
    out.sort_by(|a, b| b.last_seen.cmp(&a.last_seen));
    out
}

/// What was read for one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodTexts {
    pub target: Target,
    pub log: LogText,
    /// Its Warning events, latest first (empty when the list was unreadable).
    pub events: Vec<EventLine>,
}

/// Everything read about the failing pods of the operator's namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OperandTexts {
    pub namespace: String,
    pub pods: Vec<PodTexts>,
    /// Why the namespace's events could not be listed.
    pub events_unreadable: Option<String>,
    /// Failing pods beyond [`MAX_PODS`], not read.
    pub not_read: usize,
}

/// Labels the operator's own pod carries.
fn is_operator_pod(pod: &Pod) -> bool {
    pod.metadata.labels.as_ref().is_some_and(|l| {
        l.get("app").map(String::as_str) == Some("gpu-operator")
            || l.get("app.kubernetes.io/component").map(String::as_str) == Some("gpu-operator")
    })
}

fn state_text(state: &ContainerState) -> Option<String> {
    if let Some(w) = &state.waiting {
        let reason = w.reason.clone().unwrap_or_default();
        return Some(match w.message.as_deref().filter(|m| !m.is_empty()) {
            Some(m) => format!("waiting: {reason}: {m}"),
            None => format!("waiting: {reason}"),
        });
    }
    let t = state.terminated.as_ref()?;
    let reason = t.reason.clone().unwrap_or_default();
    let head = format!("terminated: {reason} (exit {})", t.exit_code);
    Some(match t.message.as_deref().filter(|m| !m.is_empty()) {
        Some(m) => format!("{head}: {}", m.trim()),
        None => head,
    })
}

fn states_of(cs: &ContainerStatus) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(s) = cs.state.as_ref().and_then(state_text) {
        out.push(s);
    }
    if let Some(s) = cs.last_state.as_ref().and_then(state_text) {
        out.push(format!("last state: {s}"));
    }
    out
}

fn has_run(cs: &ContainerStatus) -> bool {
    cs.restart_count > 0
        || cs
            .state
            .as_ref()
            .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
        || cs
            .last_state
            .as_ref()
            .is_some_and(|s| s.terminated.is_some())
}

/// Waiting reasons that are not (yet) failures.
const PENDING_REASONS: &[&str] = &["PodInitializing", "ContainerCreating"];

/// The first container of a pod that is failing now, init containers first.
fn crashed(pod: &Pod) -> Option<(&ContainerStatus, bool, String)> {
    let status = pod.status.as_ref()?;
    let init = status
        .init_container_statuses
        .iter()
        .flatten()
        .map(|c| (c, true));
    let main = status
        .container_statuses
        .iter()
        .flatten()
        .map(|c| (c, false));
    init.chain(main).find_map(|(cs, is_init)| {
        let state = cs.state.as_ref()?;
        if let Some(w) = &state.waiting {
            let reason = w.reason.as_deref().unwrap_or("");
            if reason.is_empty()
                || PENDING_REASONS.contains(&reason)
                    && w.message.as_deref().is_none_or(str::is_empty)
            {
                return None;
            }
            return Some((cs, is_init, format!("waiting: {reason}")));
        }
        let t = state.terminated.as_ref().filter(|t| t.exit_code != 0)?;
        Some((
            cs,
            is_init,
            format!(
                "terminated: {} (exit {})",
                t.reason.as_deref().unwrap_or("Error"),
                t.exit_code
            ),
        ))
    })
}

/// Seconds a pod has been not ready (its Ready condition, else its start).
fn not_ready_for(pod: &Pod, now: Now) -> Option<i64> {
    let status = pod.status.as_ref()?;
    let ready = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready");
    if ready.is_some_and(|c| c.status == "True") {
        return None;
    }
    let since = ready
        .and_then(|c| c.last_transition_time.as_ref())
        .or(status.start_time.as_ref())
        .or(pod.metadata.creation_timestamp.as_ref())?;
    Some(now.seconds_since(since.0))
}

/// The container a not-ready pod is stuck in: a running init container
/// (a wait loop), else the first main container that is not ready.
fn stuck(pod: &Pod) -> Option<(&ContainerStatus, bool)> {
    let status = pod.status.as_ref()?;
    status
        .init_container_statuses
        .iter()
        .flatten()
        .find(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
        .map(|c| (c, true))
        .or_else(|| {
            status
                .container_statuses
                .iter()
                .flatten()
                .find(|c| !c.ready)
                .map(|c| (c, false))
        })
}

fn target(
    namespace: &str,
    pod: &Pod,
    node: Option<String>,
    cs: &ContainerStatus,
    init: bool,
    why: String,
) -> Target {
    let labels = pod.metadata.labels.as_ref();
    let name = pod.metadata.name.clone().unwrap_or_default();
    Target {
        namespace: namespace.to_string(),
        app: labels
            .and_then(|l| l.get("app").cloned())
            .unwrap_or_else(|| name.clone()),
        pod: name,
        node,
        container: cs.name.clone(),
        init,
        why,
        restarts: cs.restart_count,
        has_run: has_run(cs),
        states: states_of(cs),
    }
}

/// The failing pods of the operator's namespace worth reading, on the
/// selected nodes (all when `nodes` is empty), at most [`MAX_PODS`]: one
/// per app and container first, then the rest. Returns them and how many
/// more were left out.
pub fn targets(snap: &Snapshot, nodes: &[String], now: Now) -> (Vec<Target>, usize) {
    let Some(ops) = &snap.operator else {
        return (Vec::new(), 0);
    };
    let policy = snap
        .cluster_policies
        .iter()
        .flatten()
        .next()
        .and_then(|cp| {
            let state = cp.data.pointer("/status/state")?.as_str()?;
            (state != "ready").then(|| {
                format!(
                    "ClusterPolicy {} is {state}",
                    cp.metadata.name.as_deref().unwrap_or("")
                )
            })
        });
    let mut all = Vec::new();
    for pod in &ops.pods {
        if pod.metadata.deletion_timestamp.is_some()
            || pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded")
        {
            continue;
        }
        let operator = is_operator_pod(pod);
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        if !operator {
            match &node {
                None => continue,
                Some(n) if !nodes.is_empty() && !nodes.contains(n) => continue,
                Some(_) => {}
            }
        }
        let node = if operator { None } else { node };
        if let Some((cs, init, why)) = crashed(pod) {
            all.push(target(&ops.namespace, pod, node, cs, init, why));
        } else if let Some(why) = policy.as_ref().filter(|_| operator) {
            let first = pod
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|c| c.first());
            if let Some(cs) = first {
                all.push(target(&ops.namespace, pod, None, cs, false, why.clone()));
            }
        } else if let Some(secs) = not_ready_for(pod, now).filter(|s| *s >= NOT_READY_SECONDS)
            && let Some((cs, init)) = stuck(pod)
        {
            let why = format!("not ready for {}", human_age(secs));
            all.push(target(&ops.namespace, pod, node, cs, init, why));
        }
    }
    all.sort_by(|a, b| (&a.node, &a.app, &a.pod).cmp(&(&b.node, &b.app, &b.pod)));
    let total = all.len();
    let mut picked: Vec<Target> = Vec::new();
    let mut rest = Vec::new();
    for t in all {
        if picked.len() < MAX_PODS
            && !picked
                .iter()
                .any(|p| p.app == t.app && p.container == t.container)
        {
            picked.push(t);
        } else {
            rest.push(t);
        }
    }
    picked.extend(rest.into_iter().take(MAX_PODS.saturating_sub(picked.len())));
    picked.sort_by(|a, b| (&a.node, &a.app, &a.pod).cmp(&(&b.node, &b.app, &b.pod)));
    let not_read = total - picked.len();
    (picked, not_read)
}

/// The findings of what was read: per pod, one finding for each cause
/// [`rules::classify`] finds (fail), or its last lines when none is found
/// (warn); one warning naming the permissions that were missing; one note
/// for pods not read.
pub fn findings(texts: &OperandTexts, op: Option<&OperatorFacts>) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut forbidden_logs = Vec::new();
    for p in &texts.pods {
        if let LogText::Unreadable(reason) = &p.log
            && reason.starts_with("forbidden")
        {
            forbidden_logs.push((p.target.pod.clone(), reason.clone()));
        }
        out.extend(pod_findings(p, op));
    }
    out.extend(permissions(texts, &forbidden_logs));
    if texts.not_read > 0 {
        out.push(Finding::skipped(
            ID,
            None,
            format!(
                "{} more failing pods in namespace {} were not read (at most {MAX_PODS} a run); their operand-pods findings still list them",
                texts.not_read, texts.namespace
            ),
        ));
    }
    out
}

/// `pod (container, why)`.
fn subject(t: &Target) -> String {
    format!(
        "{} ({}container {}, {})",
        t.pod,
        if t.init { "init " } else { "" },
        t.container,
        t.why
    )
}

/// The texts of one pod, in the order rules search them: container states,
/// events, then the log (one text, latest line last).
pub fn texts_of(p: &PodTexts) -> Vec<rules::Text> {
    let mut out: Vec<rules::Text> = p
        .target
        .states
        .iter()
        .map(|s| rules::Text::new(format!("container {}", p.target.container), s.clone()))
        .collect();
    out.extend(
        p.events
            .iter()
            .map(|e| rules::Text::new(format!("event {}", e.reason), e.message.clone())),
    );
    if let LogText::Lines {
        previous, lines, ..
    } = &p.log
    {
        let source = format!(
            "log {}{}",
            p.target.container,
            if *previous { " (previous)" } else { "" }
        );
        out.push(rules::Text::new(source, lines.join("\n")));
    }
    out
}

fn pod_findings(p: &PodTexts, op: Option<&OperatorFacts>) -> Vec<Finding> {
    let t = &p.target;
    let node = t.node.as_deref();
    let texts = texts_of(p);
    let ctx = rules::Ctx { target: t, op };
    let causes = rules::classify(&ctx, &texts);
    let events: Vec<&EventLine> = p
        .events
        .iter()
        .filter(|e| e.container.as_ref().is_none_or(|c| c == &t.container))
        .collect();
    if causes.is_empty() {
        return vec![unknown(
            p,
            events.iter().take(EVENTS_SHOWN).map(|e| e.line()).collect(),
        )];
    }
    causes
        .into_iter()
        .map(|c| {
            // An event quoted whole (with its count); a log or state line as seen.
            let quoted = events
                .iter()
                .find(|e| c.source.starts_with("event ") && e.message.contains(&c.line))
                .map(|e| e.line())
                .unwrap_or_else(|| format!("{}: {}", c.source, rules::clip(&c.line)));
            let mut f = Finding::fail(ID, node, format!("{}: {}", subject(t), c.summary))
                .cause(c.kind)
                .evidence(quoted);
            for e in events
                .iter()
                .filter(|e| !e.message.contains(&c.line))
                .take(EVENTS_SHOWN)
            {
                f = f.evidence(e.line());
            }
            for x in c.extra {
                f = f.evidence(x);
            }
            f.evidence(format!("source: {}", c.sources)).fix(c.fix)
        })
        .collect()
}

fn unknown(p: &PodTexts, events: Vec<String>) -> Finding {
    let t = &p.target;
    let mut f = Finding::warn(
        ID,
        t.node.as_deref(),
        format!(
            "{}: no known failure text in its log, events or state; the last lines:",
            subject(t)
        ),
    );
    for s in &t.states {
        f = f.evidence(format!("container {}: {s}", t.container));
    }
    let previous = match &p.log {
        LogText::Lines {
            previous, lines, ..
        } => {
            let shown: Vec<&String> = lines.iter().filter(|l| !l.trim().is_empty()).collect();
            if shown.is_empty() {
                f = f.evidence(format!("log {}: empty", t.container));
            }
            let skip = shown.len().saturating_sub(UNKNOWN_LINES);
            for l in &shown[skip..] {
                f = f.evidence(format!(
                    "log {}{}: {}",
                    t.container,
                    if *previous { " (previous)" } else { "" },
                    rules::clip(l)
                ));
            }
            *previous
        }
        LogText::NotRun => {
            f = f.evidence(format!(
                "log {}: none (the container never started)",
                t.container
            ));
            false
        }
        LogText::Unreadable(reason) => {
            f = f.evidence(format!("log {}: not read: {reason}", t.container));
            false
        }
    };
    for e in events {
        f = f.evidence(e);
    }
    f.fix(format!(
        "kubectl -n {ns} logs {pod} -c {c}{prev} --tail 100; kubectl -n {ns} describe pod {pod}",
        ns = t.namespace,
        pod = t.pod,
        c = t.container,
        prev = if previous { " --previous" } else { "" }
    ))
}

/// One warning naming the permissions a forbidden read lacked (and an
/// event list that failed for another reason).
fn permissions(texts: &OperandTexts, forbidden_logs: &[(String, String)]) -> Option<Finding> {
    let ns = &texts.namespace;
    let events = texts.events_unreadable.as_ref();
    let events_forbidden = events.is_some_and(|r| r.starts_with("forbidden"));
    let mut missing = Vec::new();
    if !forbidden_logs.is_empty() {
        missing.push(format!("get pods/log in namespace {ns}"));
    }
    if events_forbidden {
        missing.push(format!("list events in namespace {ns}"));
    }
    let mut f = match (missing.is_empty(), events) {
        (true, None) => return None,
        (true, Some(_)) => Finding::warn(
            ID,
            None,
            format!(
                "could not list the events of namespace {ns}; classified from logs and container states"
            ),
        ),
        (false, _) => Finding::warn(
            ID,
            None,
            format!(
                "could not read what the failing operand pods say: missing permission {}; classified from what was readable",
                missing.join(" and ")
            ),
        ),
    };
    if let Some((pod, reason)) = forbidden_logs.first() {
        f = f.evidence(format!(
            "log of {pod}{}: {reason}",
            if forbidden_logs.len() > 1 {
                format!(" (and {} more pods)", forbidden_logs.len() - 1)
            } else {
                String::new()
            }
        ));
    }
    if let Some(reason) = events {
        f = f.evidence(format!("events: {reason}"));
    }
    Some(if missing.is_empty() {
        f.fix(format!(
            "kubectl -n {ns} get events   # retry; the apiserver answered the list with an error"
        ))
    } else {
        f.fix(format!(
            "{} (it grants {}), or read them yourself: kubectl -n {ns} logs <pod> -c <container>; kubectl -n {ns} get events",
            crate::rbac::advice(crate::rbac::binding_for_read("get", "pods/log", Some(ns)).as_ref()),
            missing.join(" and ")
        ))
    })
}
