//! What failing operand pods say, classified: the real texts of public
//! issues (tests/fixtures/real-world/operator/operand-failure-texts.yaml,
//! each with its URL, date and where it was printed) through the rules of
//! `check_runtime::operand_texts`, the choice of which pods to read, the
//! events of a pod, and missing RBAC.

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::DynamicObject;
use rke2gpu::check_runtime::operand_texts::{
    self, EventLine, LogText, MAX_PODS, OperandTexts, PodTexts, Target,
};
use rke2gpu::check_runtime::{self, Finding, Status};
use rke2gpu::operator::OperatorFacts;
use rke2gpu::report::pods::jiff_now::Now;
use rke2gpu::snapshot::{OperatorObjects, Snapshot};
use serde::Deserialize;
use serde_json::json;

const FIXTURE: &str = "real-world/operator/operand-failure-texts.yaml";
const NS: &str = "gpu-operator";
const NODE: &str = "gpu-h200-0";

/// One entry of the fixture file.
#[derive(Debug, Deserialize)]
struct Quoted {
    id: String,
    url: String,
    date: String,
    #[serde(rename = "where")]
    where_: String,
    kind: String,
    app: String,
    container: String,
    text: String,
    expect: String,
    #[serde(default)]
    cri: bool,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    count: Option<i32>,
}

fn quoted() -> Vec<Quoted> {
    let path = format!("{}/../tests/fixtures/{FIXTURE}", env!("CARGO_MANIFEST_DIR"));
    serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn entry(id: &str) -> Quoted {
    quoted().into_iter().find(|q| q.id == id).unwrap()
}

/// What `kubectl logs` prints for a line of a CRI log file: the text after
/// `<time> <stream> <tag> `.
fn kubectl_view(line: &str) -> String {
    line.splitn(4, ' ').nth(3).unwrap_or(line).to_string()
}

fn target(app: &str, container: &str, node: Option<&str>) -> Target {
    Target {
        namespace: NS.into(),
        pod: format!("{app}-x7k2p"),
        app: app.into(),
        node: node.map(str::to_string),
        container: container.into(),
        init: ["driver-validation", "toolkit-validation", "cuda-validation"].contains(&container),
        why: "waiting: CrashLoopBackOff".into(),
        restarts: 6,
        has_run: true,
        states: vec!["waiting: CrashLoopBackOff: back-off 5m0s restarting failed container".into()],
    }
}

/// The fixture entry as check-runtime would have read it from a cluster.
fn as_read(q: &Quoted) -> PodTexts {
    let node = (q.app != "gpu-operator").then_some(NODE);
    let mut t = target(&q.app, &q.container, node);
    let mut log = LogText::Lines {
        previous: true,
        lines: Vec::new(),
        cut: false,
    };
    let mut events = Vec::new();
    match q.kind.as_str() {
        "log" => {
            log = LogText::Lines {
                previous: true,
                lines: q
                    .text
                    .lines()
                    .map(|l| {
                        if q.cri {
                            kubectl_view(l)
                        } else {
                            l.to_string()
                        }
                    })
                    .collect(),
                cut: false,
            }
        }
        "event" => events.push(EventLine {
            reason: q.reason.clone().unwrap(),
            message: q.text.trim().to_string(),
            count: q.count.unwrap_or(1),
            container: None,
            last_seen: Some("2026-11-30T10:00:00Z".into()),
        }),
        "status" => t.states.push(format!(
            "last state: terminated: {} (exit 128): {}",
            q.reason.as_deref().unwrap(),
            q.text.trim()
        )),
        other => panic!("{}: unknown kind {other}", q.id),
    }
    PodTexts {
        target: t,
        log,
        events,
    }
}

/// The operator as an RKE2 user with the legacy template values has it.
fn operator_facts(config: Option<&str>, driver_enabled: Option<bool>) -> OperatorFacts {
    let mut env = vec![rke2gpu::operator::EnvVar {
        name: "CONTAINERD_SOCKET".into(),
        value: "/run/k3s/containerd/containerd.sock".into(),
    }];
    if let Some(c) = config {
        env.push(rke2gpu::operator::EnvVar {
            name: "CONTAINERD_CONFIG".into(),
            value: c.into(),
        });
    }
    OperatorFacts {
        namespace: NS.into(),
        toolkit_env: env,
        driver_enabled,
        ..OperatorFacts::default()
    }
}

fn texts(pods: Vec<PodTexts>) -> OperandTexts {
    OperandTexts {
        namespace: NS.into(),
        pods,
        ..OperandTexts::default()
    }
}

/// The issue an entry's URL names, as the findings cite it: `rancher/rke2#3385`.
fn issue_ref(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://github.com/")?;
    let (repo, n) = rest.split_once("/issues/")?;
    Some(format!("{repo}#{n}"))
}

/// Every quoted text gets the classification the fixture expects; the
/// finding quotes the line, cites the issue the text comes from, and fixes.
#[test]
fn every_quoted_text_is_classified_with_its_source_and_fix() {
    let all = quoted();
    assert!(all.len() >= 15, "{} entries", all.len());
    let op = operator_facts(None, Some(false));
    for q in &all {
        assert!(q.url.starts_with("https://github.com/"), "{}", q.id);
        assert!(
            q.date.len() == 10 && q.date.as_bytes()[4] == b'-',
            "{}: date {}",
            q.id,
            q.date
        );
        assert!(!q.where_.is_empty(), "{}", q.id);
        let read = as_read(q);
        let found = operand_texts::findings(&texts(vec![read]), Some(&op));
        assert!(!found.is_empty(), "{}", q.id);
        let f = &found[0];
        assert_eq!(f.id, "operand-texts", "{}", q.id);
        if q.expect == "unknown" {
            assert_eq!(f.status, Status::Warn, "{}: {f:#?}", q.id);
            assert_eq!(f.cause, None, "{}", q.id);
            let line = q.text.lines().next().unwrap();
            assert!(
                f.evidence.iter().any(|e| e.contains(line)),
                "{}: the text is shown as evidence: {f:#?}",
                q.id
            );
            continue;
        }
        assert_eq!(f.cause, Some(q.expect.as_str()), "{}: {found:#?}", q.id);
        assert_eq!(f.status, Status::Fail, "{}", q.id);
        // The quoted line is one of the entry's lines, verbatim (as kubectl shows it).
        let quoted_line = &f.evidence[0];
        assert!(
            q.text
                .lines()
                .map(|l| if q.cri {
                    kubectl_view(l)
                } else {
                    l.to_string()
                })
                .any(|l| quoted_line.ends_with(l.trim())),
            "{}: evidence {quoted_line:?} is not a line of the text",
            q.id
        );
        let source = f
            .evidence
            .iter()
            .find(|e| e.starts_with("source: "))
            .unwrap_or_else(|| panic!("{}: no source", q.id));
        if let Some(issue) = issue_ref(&q.url) {
            assert!(
                source.contains(&issue),
                "{}: the rule cites {source:?}, not {issue}",
                q.id
            );
        }
        assert!(f.fix.as_ref().is_some_and(|x| !x.is_empty()), "{}", q.id);
        assert!(f.message.contains(&q.container), "{}: {}", q.id, f.message);
    }
}

#[test]
fn toolkit_template_names_the_setting_and_keeps_the_socket() {
    let q = entry("rke2-3385-toolkit-template");
    let op = operator_facts(
        Some("/var/lib/rancher/rke2/agent/etc/containerd/config.toml.tmpl"),
        Some(false),
    );
    let f = &operand_texts::findings(&texts(vec![as_read(&q)]), Some(&op))[0];
    assert_eq!(f.node.as_deref(), Some(NODE));
    assert!(
        f.evidence[0].starts_with("log nvidia-container-toolkit-ctr (previous): "),
        "{f:#?}"
    );
    assert!(
        f.evidence
            .contains(&"toolkit.env CONTAINERD_CONFIG=/var/lib/rancher/rke2/agent/etc/containerd/config.toml.tmpl".to_string()),
        "{f:#?}"
    );
    let fix = f.fix.as_deref().unwrap();
    assert!(fix.contains("remove CONTAINERD_CONFIG"), "{fix}");
    assert!(
        fix.contains("CONTAINERD_SOCKET=/run/k3s/containerd/containerd.sock"),
        "{fix}"
    );
}

#[test]
fn cdi_event_is_quoted_whole_with_its_count_and_device() {
    let q = entry("toolkit-1239-unresolvable-cdi-event");
    let f = &operand_texts::findings(&texts(vec![as_read(&q)]), None)[0];
    assert_eq!(
        f.evidence[0],
        format!("event Failed (x2): {}", q.text.trim()),
        "{f:#?}"
    );
    assert!(
        f.message
            .contains("management.nvidia.com/gpu=GPU-e78e68c0-4e6a-737e-f9cc-4223fe50aead"),
        "{}",
        f.message
    );
    assert!(f.fix.as_deref().unwrap().contains("cdi.enabled=false"));
}

/// Each vectorAdd error code has its own cause and fix.
#[test]
fn cuda_validation_errors_get_their_own_fixes() {
    let cases = [
        (
            "gpu-operator-1947-cuda-driver-insufficient",
            "upgrade the driver",
        ),
        (
            "gpu-operator-253-no-cuda-device",
            "kubectl gpu check-runtime --deep",
        ),
        (
            "gpu-operator-1043-system-not-initialized",
            "nvidia-fabricmanager",
        ),
        ("gpu-operator-1146-unknown-error", "Xid"),
        (
            "home-ops-13689-no-kernel-for-arch",
            "nvidia.com/gpu.deploy.operator-validator=false",
        ),
    ];
    let mut fixes = Vec::new();
    for (id, expected) in cases {
        let f = &operand_texts::findings(&texts(vec![as_read(&entry(id))]), None)[0];
        let fix = f.fix.clone().unwrap();
        assert!(fix.contains(expected), "{id}: {fix}");
        assert!(
            f.message.contains("container cuda-validation"),
            "{}",
            f.message
        );
        fixes.push(fix);
    }
    fixes.dedup();
    assert_eq!(fixes.len(), cases.len());
}

#[test]
fn driver_wait_fix_follows_driver_enabled() {
    let q = entry("gpu-operator-531-driver-container-wait");
    let host = operator_facts(None, Some(false));
    let f = &operand_texts::findings(&texts(vec![as_read(&q)]), Some(&host))[0];
    assert!(f.message.contains("driver.enabled=false"), "{}", f.message);
    assert!(
        f.fix
            .as_deref()
            .unwrap()
            .contains("install the NVIDIA driver on gpu-h200-0")
    );
    // The line that says what the validator waits for is quoted.
    assert_eq!(
        f.evidence[0],
        "log driver-validation (previous): time=\"2023-05-22T13:36:27Z\" level=info msg=\"Driver is not pre-installed on the host. Checking driver container status.\"",
        "{f:#?}"
    );
    let managed = operator_facts(None, Some(true));
    let f = &operand_texts::findings(&texts(vec![as_read(&q)]), Some(&managed))[0];
    assert!(
        f.fix
            .as_deref()
            .unwrap()
            .contains("app=nvidia-driver-daemonset")
    );
    assert!(
        f.evidence
            .contains(&"ClusterPolicy driver.enabled=true".to_string())
    );
}

#[test]
fn clusterpolicy_not_ready_lists_the_states_and_their_operands() {
    let q = entry("gpu-operator-1310-clusterpolicy-not-ready");
    let f = &operand_texts::findings(&texts(vec![as_read(&q)]), None)[0];
    assert_eq!(f.node, None, "the operator's findings are cluster-wide");
    assert!(
        f.message.contains(
            "states not ready: state-operator-validation, state-device-plugin, state-dcgm-exporter, gpu-feature-discovery, state-mig-manager"
        ),
        "{}",
        f.message
    );
    assert!(
        f.fix.as_deref().unwrap().contains(
            "-l 'app in (nvidia-operator-validator,nvidia-device-plugin-daemonset,nvidia-dcgm-exporter,gpu-feature-discovery,nvidia-mig-manager)'"
        ),
        "{f:#?}"
    );
    // The console encoding of #413 names them as a JSON list.
    let q = entry("gpu-operator-413-clusterpolicy-not-ready-cri");
    let f = &operand_texts::findings(&texts(vec![as_read(&q)]), None)[0];
    assert!(
        f.message.ends_with(
            "states not ready: state-operator-validation, state-device-plugin, state-dcgm-exporter, gpu-feature-discovery"
        ),
        "{}",
        f.message
    );
}

#[test]
fn unknown_texts_show_the_last_lines_and_the_events() {
    let mut p = as_read(&entry("gpu-operator-699-backoff-event"));
    p.log = LogText::Lines {
        previous: false,
        lines: (1..=8).map(|i| format!("line {i}")).collect(),
        cut: false,
    };
    let f = &operand_texts::findings(&texts(vec![p]), None)[0];
    assert_eq!(f.status, Status::Warn);
    let logs: Vec<&String> = f
        .evidence
        .iter()
        .filter(|e| e.starts_with("log "))
        .collect();
    assert_eq!(logs.len(), operand_texts::UNKNOWN_LINES);
    assert!(logs.last().unwrap().ends_with(": line 8"));
    assert!(f.evidence.iter().any(
        |e| e == "event BackOff: Back-off restarting failed container nvidia-device-plugin-ctr"
    ));
    assert!(
        f.fix
            .as_deref()
            .unwrap()
            .contains("logs nvidia-device-plugin-daemonset-x7k2p -c nvidia-device-plugin-ctr")
    );
}

/// Missing `get pods/log` and `list events`: one warning names both; the
/// texts that were readable (a container state) are still classified.
#[test]
fn missing_permissions_are_named_and_the_rest_is_classified() {
    let forbidden = "forbidden: pods \"x\" is forbidden: User \"u\" cannot get resource \"pods/log\" in API group \"\" in the namespace \"gpu-operator\"";
    let mut cdi = as_read(&entry("gpu-operator-531-unresolvable-cdi-status"));
    cdi.log = LogText::Unreadable(forbidden.into());
    let mut plain = as_read(&entry("gpu-operator-253-no-cuda-device"));
    plain.log = LogText::Unreadable(forbidden.into());
    plain.target.states.clear();
    let mut t = texts(vec![cdi, plain]);
    t.events_unreadable =
        Some("forbidden: events is forbidden: User \"u\" cannot list resource \"events\"".into());
    let found = operand_texts::findings(&t, None);
    let perm: Vec<&Finding> = found.iter().filter(|f| f.node.is_none()).collect();
    assert_eq!(perm.len(), 1, "{found:#?}");
    assert_eq!(perm[0].status, Status::Warn);
    assert!(
        perm[0].message.contains(
            "missing permission get pods/log in namespace gpu-operator and list events in namespace gpu-operator"
        ),
        "{}",
        perm[0].message
    );
    assert!(
        perm[0]
            .evidence
            .iter()
            .any(|e| e.contains("(and 1 more pods)"))
    );
    assert!(
        found
            .iter()
            .any(|f| f.cause == Some("unresolvable-cdi-devices")),
        "the StartError state is classified without the log"
    );
    assert!(
        found.iter().any(|f| f.status == Status::Warn
            && f.evidence.iter().any(|e| e.contains("not read: forbidden"))),
        "{found:#?}"
    );
}

// ---- which pods are read ------------------------------------------------------------------

fn now() -> Now {
    Now("2026-11-30T12:00:00Z".parse::<Timestamp>().unwrap())
}

fn pod(name: &str, app: &str, node: &str, status: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS, "labels": {"app": app}},
        "spec": {"nodeName": node, "containers": [{"name": "main"}]},
        "status": status
    }))
    .unwrap()
}

/// kubelet's shape of a crash-looping container (`kubectl get pod -o yaml`).
fn crash_looping(container: &str) -> serde_json::Value {
    json!({
        "name": container, "ready": false, "restartCount": 6, "image": "x", "imageID": "",
        "state": {"waiting": {"reason": "CrashLoopBackOff",
            "message": format!("back-off 5m0s restarting failed container={container} pod=p_gpu-operator(uid)")}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
            "startedAt": "2026-11-30T11:50:00Z", "finishedAt": "2026-11-30T11:50:01Z"}}
    })
}

fn running(container: &str, ready: bool) -> serde_json::Value {
    json!({"name": container, "ready": ready, "restartCount": 0, "image": "x", "imageID": "",
        "state": {"running": {"startedAt": "2026-11-30T11:00:00Z"}}})
}

fn phase(phase: &str, ready: bool, since: &str) -> serde_json::Value {
    json!({"phase": phase, "startTime": since,
        "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}, "lastTransitionTime": since}]})
}

fn with(mut status: serde_json::Value, key: &str, v: serde_json::Value) -> serde_json::Value {
    status[key] = v;
    status
}

fn snapshot(pods: Vec<Pod>, policy_state: &str) -> Snapshot {
    let node =
        |n: &str| -> Node { serde_json::from_value(json!({"metadata": {"name": n}})).unwrap() };
    let cp: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "nvidia.com/v1", "kind": "ClusterPolicy",
        "metadata": {"name": "cluster-policy"},
        "spec": {}, "status": {"state": policy_state, "namespace": NS}
    }))
    .unwrap();
    Snapshot {
        server: "https://127.0.0.1:6443".into(),
        nodes: vec![node(NODE), node("gpu-b-0")],
        cluster_policies: Some(vec![cp]),
        crd_present: Some(true),
        operator: Some(OperatorObjects {
            namespace: NS.into(),
            found_by: "operator Deployment labels".into(),
            pods,
            ..OperatorObjects::default()
        }),
        ..Snapshot::default()
    }
}

#[test]
fn targets_are_the_failing_pods_and_their_failing_container() {
    let toolkit = pod(
        "nvidia-container-toolkit-daemonset-abcde",
        "nvidia-container-toolkit-daemonset",
        NODE,
        with(
            phase("Running", false, "2026-11-30T11:55:00Z"),
            "containerStatuses",
            json!([crash_looping("nvidia-container-toolkit-ctr")]),
        ),
    );
    // Stuck in its toolkit-validation wait loop for 10 minutes (gpu-operator#459: Init:0/1).
    let plugin = pod(
        "nvidia-device-plugin-daemonset-fghij",
        "nvidia-device-plugin-daemonset",
        NODE,
        with(
            with(
                phase("Pending", false, "2026-11-30T11:50:00Z"),
                "initContainerStatuses",
                json!([running("toolkit-validation", false)]),
            ),
            "containerStatuses",
            json!([{"name": "nvidia-device-plugin", "ready": false, "restartCount": 0, "image": "x", "imageID": "",
                "state": {"waiting": {"reason": "PodInitializing"}}}]),
        ),
    );
    // The same, for one minute only: not yet a failure.
    let young = pod(
        "gpu-feature-discovery-klmno",
        "gpu-feature-discovery",
        NODE,
        with(
            phase("Pending", false, "2026-11-30T11:59:00Z"),
            "initContainerStatuses",
            json!([running("toolkit-validation", false)]),
        ),
    );
    // gpu-operator#1982: RunContainerError, never started.
    let validator = pod(
        "nvidia-operator-validator-pqrst",
        "nvidia-operator-validator",
        NODE,
        with(
            phase("Pending", false, "2026-11-30T11:59:00Z"),
            "initContainerStatuses",
            json!([{"name": "toolkit-validation", "ready": false, "restartCount": 0, "image": "x", "imageID": "",
                "state": {"waiting": {"reason": "RunContainerError", "message": "failed to create containerd task"}}}]),
        ),
    );
    let done = pod(
        "nvidia-cuda-validator-uvwxy",
        "nvidia-cuda-validator",
        NODE,
        json!({"phase": "Succeeded"}),
    );
    let healthy = pod(
        "nvidia-dcgm-exporter-zzzzz",
        "nvidia-dcgm-exporter",
        NODE,
        with(
            phase("Running", true, "2026-11-30T11:00:00Z"),
            "containerStatuses",
            json!([running("nvidia-dcgm-exporter", true)]),
        ),
    );
    let mut operator = pod(
        "gpu-operator-7cd4f955fc-pmm8j",
        "gpu-operator",
        "rke2-server-0",
        with(
            phase("Running", true, "2026-11-30T11:00:00Z"),
            "containerStatuses",
            json!([running("gpu-operator", true)]),
        ),
    );
    operator
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("app.kubernetes.io/component".into(), "gpu-operator".into());
    let snap = snapshot(
        vec![toolkit, plugin, young, validator, done, healthy, operator],
        "notReady",
    );
    let (t, not_read) = operand_texts::targets(&snap, &[], now());
    assert_eq!(not_read, 0);
    let got: Vec<(&str, &str, bool, &str, bool)> = t
        .iter()
        .map(|t| {
            (
                t.pod.as_str(),
                t.container.as_str(),
                t.init,
                t.why.as_str(),
                t.has_run,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "gpu-operator-7cd4f955fc-pmm8j",
                "gpu-operator",
                false,
                "ClusterPolicy cluster-policy is notReady",
                true
            ),
            (
                "nvidia-container-toolkit-daemonset-abcde",
                "nvidia-container-toolkit-ctr",
                false,
                "waiting: CrashLoopBackOff",
                true
            ),
            (
                "nvidia-device-plugin-daemonset-fghij",
                "toolkit-validation",
                true,
                "not ready for 10m",
                true
            ),
            (
                "nvidia-operator-validator-pqrst",
                "toolkit-validation",
                true,
                "waiting: RunContainerError",
                false
            ),
        ]
    );
    assert_eq!(t[0].node, None, "the operator is cluster-wide");
    assert_eq!(t[1].node.as_deref(), Some(NODE));
    assert_eq!(
        t[1].states,
        [
            "waiting: CrashLoopBackOff: back-off 5m0s restarting failed container=nvidia-container-toolkit-ctr pod=p_gpu-operator(uid)",
            "last state: terminated: Error (exit 1)"
        ]
    );
    // --node another: only the operator (cluster-wide) is left.
    let (t, _) = operand_texts::targets(&snap, &["gpu-a100-0".to_string()], now());
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].app, "gpu-operator");
    // A ready ClusterPolicy: the healthy operator is not read.
    let mut ready = snap.clone();
    ready.cluster_policies.as_mut().unwrap()[0].data["status"]["state"] = json!("ready");
    let (t, _) = operand_texts::targets(&ready, &[], now());
    assert!(t.iter().all(|t| t.app != "gpu-operator"));
}

#[test]
fn at_most_max_pods_are_read_one_per_app_first() {
    let mut pods: Vec<Pod> = (0..40)
        .map(|i| {
            pod(
                &format!("nvidia-container-toolkit-daemonset-{i:05}"),
                "nvidia-container-toolkit-daemonset",
                &format!("gpu-{i:05}"),
                with(
                    phase("Running", false, "2026-11-30T11:55:00Z"),
                    "containerStatuses",
                    json!([crash_looping("nvidia-container-toolkit-ctr")]),
                ),
            )
        })
        .collect();
    pods.push(pod(
        "nvidia-operator-validator-zzzzz",
        "nvidia-operator-validator",
        "gpu-99999",
        with(
            phase("Running", false, "2026-11-30T11:55:00Z"),
            "containerStatuses",
            json!([crash_looping("nvidia-operator-validator")]),
        ),
    ));
    let (t, not_read) = operand_texts::targets(&snapshot(pods, "ready"), &[], now());
    assert_eq!(t.len(), MAX_PODS);
    assert_eq!(not_read, 41 - MAX_PODS);
    assert!(t.iter().any(|t| t.app == "nvidia-operator-validator"));
    let f = operand_texts::findings(
        &OperandTexts {
            namespace: NS.into(),
            not_read,
            ..OperandTexts::default()
        },
        None,
    );
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].status, Status::Skipped);
    assert!(f[0].message.starts_with("25 more failing pods"));
}

/// A namespace's events as the apiserver lists them: only the pod's
/// Warning events are kept, latest first, with the container they name.
#[test]
fn pod_events_are_its_warnings_latest_first() {
    let ev = |name: &str,
              pod: &str,
              type_: &str,
              reason: &str,
              last: &str,
              path: Option<&str>|
     -> Event {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": NS},
            "involvedObject": {"kind": "Pod", "name": pod, "namespace": NS, "fieldPath": path},
            "type": type_, "reason": reason, "message": format!("{reason} message"),
            "count": 3, "lastTimestamp": last
        }))
        .unwrap()
    };
    let events = vec![
        ev(
            "a",
            "p",
            "Warning",
            "BackOff",
            "2026-11-30T11:00:00Z",
            Some("spec.containers{nvidia-container-toolkit-ctr}"),
        ),
        ev("b", "p", "Normal", "Pulled", "2026-11-30T11:30:00Z", None),
        ev(
            "c",
            "p",
            "Warning",
            "Failed",
            "2026-11-30T11:40:00Z",
            Some("spec.initContainers{driver-validation}"),
        ),
        ev(
            "d",
            "other",
            "Warning",
            "BackOff",
            "2026-11-30T11:50:00Z",
            None,
        ),
    ];
    let got = operand_texts::pod_events(&events, "p");
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].reason, "Failed");
    assert_eq!(got[0].container.as_deref(), Some("driver-validation"));
    assert_eq!(
        got[1].container.as_deref(),
        Some("nvidia-container-toolkit-ctr")
    );
    assert_eq!(got[1].line(), "event BackOff (x3): BackOff message");
}

/// check-runtime's pure core takes what was read: the finding is in the
/// report, counted, and the table quotes the line and prints the fix.
#[test]
fn evaluate_reports_operand_texts_in_the_table() {
    let q = entry("rke2-3385-toolkit-template");
    let snap = snapshot(Vec::new(), "ready");
    let t = texts(vec![as_read(&q)]);
    let with = check_runtime::evaluate(&snap, &[], None, Some(&t)).unwrap();
    let without = check_runtime::evaluate(&snap, &[], None, None).unwrap();
    assert_eq!(with.summary.fail, without.summary.fail + 1);
    let f = with
        .findings
        .iter()
        .find(|f| f.cause == Some("toolkit-config-template"))
        .unwrap();
    assert_eq!(f.node.as_deref(), Some(NODE));
    let table = check_runtime::table::table(&with, false, false);
    assert!(table.contains("operand-texts"), "{table}");
    assert!(
        table.contains("seen: log nvidia-container-toolkit-ctr (previous): nvidia-container-toolkit-ctr time=\"2022-09-26T15:50:01Z\" level=fatal"),
        "{table}"
    );
    assert!(table.contains("fix:  remove CONTAINERD_CONFIG"), "{table}");
    let json: serde_json::Value = serde_json::to_value(&with).unwrap();
    let js = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["cause"] == "toolkit-config-template")
        .unwrap();
    assert_eq!(js["status"], "fail");
    // Other findings carry no `cause` key.
    assert!(
        json["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["id"] != "operand-texts")
            .all(|f| f.get("cause").is_none())
    );
    // --node of another node leaves the node's finding out.
    let other = check_runtime::evaluate(&snap, &["gpu-b-0".into()], None, Some(&t)).unwrap();
    assert!(other.findings.iter().all(|f| f.cause.is_none()));
}

/// An event list that fails for another reason than RBAC is said, not hidden.
#[test]
fn an_event_list_error_is_reported() {
    let mut t = texts(vec![as_read(&entry("rke2-3385-toolkit-template"))]);
    t.events_unreadable = Some("the server is currently unable to handle the request (503)".into());
    let found = operand_texts::findings(&t, None);
    let f = found.iter().find(|f| f.node.is_none()).unwrap();
    assert_eq!(f.status, Status::Warn);
    assert!(
        f.message
            .starts_with("could not list the events of namespace gpu-operator"),
        "{}",
        f.message
    );
    assert!(f.evidence.iter().any(|e| e.ends_with("(503)")));
    assert!(
        found
            .iter()
            .any(|f| f.cause == Some("toolkit-config-template"))
    );
}
