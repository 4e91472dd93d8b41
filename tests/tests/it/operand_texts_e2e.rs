//! `kubectl gpu check-runtime` reading what failing operand pods say, end to
//! end: the stand-in operator's pods on KWOK nodes are put into the states
//! of public issues (the test patches their status the way a kubelet would;
//! kwok's pod-ready Stage leaves pods annotated `test.rke2gpu.io/operand-fault`
//! alone), their logs are served by kwok from the per-node files
//! `<run>/operand-logs/<node>/<container>[.previous].log`, and their events
//! are created in the API as a kubelet creates them. Every text comes from
//! tests/fixtures/real-world/operator/operand-failure-texts.yaml (URL, date
//! and where it was printed are there).

use crate::check_runtime_e2e::{find, gpu, install_operator, json_findings};
use cluster_harness::Cluster;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const NS: &str = "gpu-operator";
const NODE: &str = "gpu-h200-0";
const FAULT: &str = "test.rke2gpu.io/operand-fault";

/// The `text` of a fixture entry, as written there (its lines, in order).
fn quoted(c: &Cluster, id: &str) -> Vec<String> {
    let all = std::fs::read_to_string(c.fixture("real-world/operator/operand-failure-texts.yaml"))
        .unwrap();
    let start = all
        .find(&format!("- id: {id}\n"))
        .unwrap_or_else(|| panic!("no fixture entry {id}"));
    let entry = &all[start..];
    let text = &entry[entry.find("\n  text: |\n").unwrap() + "\n  text: |\n".len()..];
    text.lines()
        .take_while(|l| l.starts_with("    "))
        .map(|l| l[4..].to_string())
        .collect()
}

/// A CRI log file's lines (`<time> <stream> F <line>`), as kubelet stores them.
fn cri(lines: &[String]) -> String {
    lines
        .iter()
        .map(|l| format!("2026-11-30T10:00:00.000000000Z stderr F {l}\n"))
        .collect()
}

fn operand_log(c: &Cluster, node: &str, container: &str, previous: bool) -> PathBuf {
    PathBuf::from(c.var("RKE2GPU_CLUSTER_DIR"))
        .join("operand-logs")
        .join(node)
        .join(format!(
            "{container}{}.log",
            if previous { ".previous" } else { "" }
        ))
}

/// The healthy stand-in operator for one test. Installed when absent (Helm's
/// tests install and uninstall every chart), and then uninstalled again on
/// drop, so later tests find the cluster as it was.
struct Operator<'a> {
    c: &'a Cluster,
    installed_here: bool,
}

fn healthy_operator(c: &Cluster) -> Operator<'_> {
    let status = c
        .helm()
        .args(["status", "gpu-operator", "-n", NS])
        .output()
        .unwrap();
    let pods = kubectl_json(c, &["-n", NS, "get", "pods"])["items"]
        .as_array()
        .map_or(0, Vec::len);
    let installed_here = !status.status.success() || pods == 0;
    if installed_here {
        install_operator(c, &[]);
    }
    Operator { c, installed_here }
}

impl Drop for Operator<'_> {
    fn drop(&mut self) {
        if self.installed_here {
            let _ = self
                .c
                .helm()
                .args(["uninstall", "gpu-operator", "-n", NS, "--wait"])
                .output();
        }
    }
}

fn kubectl_json(c: &Cluster, args: &[&str]) -> Value {
    serde_json::from_str(&c.run_ok(c.kubectl().args(args).args(["-o", "json"]))).unwrap()
}

/// The pod of `app` on `node`: (name, uid).
fn operand_pod(c: &Cluster, app: &str, node: &str) -> (String, String) {
    let v = kubectl_json(
        c,
        &[
            "-n",
            NS,
            "get",
            "pods",
            "-l",
            &format!("app={app}"),
            "--field-selector",
            &format!("spec.nodeName={node}"),
        ],
    );
    let p = &v["items"][0];
    (
        p["metadata"]["name"].as_str().unwrap().to_string(),
        p["metadata"]["uid"].as_str().unwrap().to_string(),
    )
}

/// An operand pod put into a failure; on drop (also on panic) the pod is
/// deleted (its DaemonSet makes a healthy one), the log files emptied and
/// the events deleted.
struct Fault<'a> {
    c: &'a Cluster,
    /// Pods in the namespace before, all ready.
    pods: usize,
    pod: String,
    uid: String,
    logs: Vec<PathBuf>,
    events: Vec<String>,
}

impl<'a> Fault<'a> {
    fn new(c: &'a Cluster, app: &str) -> Self {
        let (pod, uid) = operand_pod(c, app, NODE);
        let pods = kubectl_json(c, &["-n", NS, "get", "pods"])["items"]
            .as_array()
            .map_or(0, Vec::len);
        c.run_ok(
            c.kubectl()
                .args(["-n", NS, "annotate", "pod", &pod, &format!("{FAULT}=e2e")]),
        );
        Fault {
            c,
            pods,
            pod,
            uid,
            logs: Vec::new(),
            events: Vec::new(),
        }
    }

    /// kubelet's `format.Pod`: `name_namespace(uid)`.
    fn desc(&self) -> String {
        format!("{}_{NS}({})", self.pod, self.uid)
    }

    fn log(&mut self, container: &str, previous: bool, contents: &str) {
        let p = operand_log(self.c, NODE, container, previous);
        std::fs::write(&p, contents).unwrap();
        self.logs.push(p);
    }

    fn status(&self, status: Value) {
        self.c.run_ok(self.c.kubectl().args([
            "-n",
            NS,
            "patch",
            "pod",
            &self.pod,
            "--subresource=status",
            "--type=merge",
            "-p",
            &json!({ "status": status }).to_string(),
        ]));
    }

    /// A Warning event on the pod's container, as kubelet records it.
    fn event(&mut self, field_path: &str, reason: &str, message: &str, count: i32) {
        let name = format!("{}.e2e-{}", self.pod, self.events.len());
        let ev = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": NS},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": self.pod, "namespace": NS,
                "uid": self.uid, "fieldPath": field_path},
            "type": "Warning", "reason": reason, "message": message, "count": count,
            "firstTimestamp": "2026-11-30T10:00:00Z", "lastTimestamp": "2026-11-30T10:05:00Z",
            "source": {"component": "kubelet", "host": NODE},
            "reportingComponent": "kubelet", "reportingInstance": NODE
        });
        self.c.apply(&ev.to_string());
        self.events.push(name);
    }
}

impl Drop for Fault<'_> {
    fn drop(&mut self) {
        for p in &self.logs {
            let _ = std::fs::write(p, "");
        }
        for e in &self.events {
            let _ = self
                .c
                .kubectl()
                .args(["-n", NS, "delete", "event", e, "--ignore-not-found"])
                .output();
        }
        let _ = self
            .c
            .kubectl()
            .args([
                "-n",
                NS,
                "delete",
                "pod",
                &self.pod,
                "--wait=true",
                "--timeout=60s",
            ])
            .output();
        let (c, want) = (self.c, self.pods);
        c.wait_until(Duration::from_secs(90), "operand pods ready again", || {
            let out = c
                .kubectl()
                .args(["-n", NS, "get", "pods", "-o", "json"])
                .output()
                .unwrap();
            let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let pods = v["items"].as_array().cloned().unwrap_or_default();
            pods.len() == want
                && pods.iter().all(|p| {
                    p["status"]["conditions"].as_array().is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
                })
        });
    }
}

fn operand_text_findings(findings: &[Value]) -> Vec<&Value> {
    findings
        .iter()
        .filter(|f| f["id"] == "operand-texts")
        .collect()
}

fn evidence(f: &Value) -> Vec<&str> {
    f["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect()
}

/// rancher/rke2#3385: the toolkit crash-loops on a templated CONTAINERD_CONFIG.
/// check-runtime reads the previous instance's log (the current one has
/// none yet) and the pod's BackOff event, quotes both and names the cause
/// and the fix; the support bundle holds the same finding.
#[test]
fn crash_looping_toolkit_is_classified_from_its_log_and_event() {
    let c = Cluster::shared();
    let _g = cluster_harness::serial();
    let _op = healthy_operator(c);
    let line = quoted(c, "rke2-3385-toolkit-template").remove(0);
    let mut fault = Fault::new(c, "nvidia-container-toolkit-daemonset");
    fault.log(
        "nvidia-container-toolkit-ctr",
        true,
        &cri(std::slice::from_ref(&line)),
    );
    let backoff = format!(
        "Back-off restarting failed container nvidia-container-toolkit-ctr in pod {}",
        fault.desc()
    );
    fault.event(
        "spec.containers{nvidia-container-toolkit-ctr}",
        "BackOff",
        &backoff,
        6,
    );
    fault.status(json!({
        "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
                       {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady"}],
        "containerStatuses": [{
            "name": "nvidia-container-toolkit-ctr", "image": "nvcr.io/nvidia/k8s/container-toolkit", "imageID": "",
            "ready": false, "restartCount": 6, "started": false,
            "state": {"waiting": {"reason": "CrashLoopBackOff",
                "message": format!("back-off 5m0s restarting failed container=nvidia-container-toolkit-ctr pod={}", fault.desc())}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                "startedAt": "2026-11-30T10:04:59Z", "finishedAt": "2026-11-30T10:05:00Z"}}
        }]
    }));
    // kwok serves the files: the current instance has no log, the previous one the line.
    let previous = c.run_ok(c.kubectl().args([
        "-n",
        NS,
        "logs",
        &fault.pod,
        "-c",
        "nvidia-container-toolkit-ctr",
        "--previous",
    ]));
    assert_eq!(previous.trim_end(), line);

    let out = gpu(c, &["check-runtime", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let findings = json_findings(&out);
    let ours = operand_text_findings(&findings);
    assert_eq!(ours.len(), 1, "{ours:#?}");
    let f = ours[0];
    assert_eq!(f["node"], NODE);
    assert_eq!(f["status"], "fail");
    assert_eq!(f["cause"], "toolkit-config-template");
    assert!(
        f["message"].as_str().unwrap().starts_with(&format!(
            "{} (container nvidia-container-toolkit-ctr, waiting: CrashLoopBackOff): the toolkit cannot load its containerd config",
            fault.pod
        )),
        "{f:#}"
    );
    let ev = evidence(f);
    assert_eq!(
        ev[0],
        format!("log nvidia-container-toolkit-ctr (previous): {line}")
    );
    assert!(
        ev.contains(&format!("event BackOff (x6): {backoff}").as_str()),
        "{ev:#?}"
    );
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .contains("keep only CONTAINERD_SOCKET=/run/k3s/containerd/containerd.sock"),
        "{f:#}"
    );
    // The operand-pods rule still reports the state; nothing else fails.
    assert!(find(&findings, "operand-pods", Some(NODE), "fail").is_some());

    // The table quotes the log line and the event.
    let table =
        String::from_utf8_lossy(&gpu(c, &["check-runtime", "--node", NODE, "--no-color"]).stdout)
            .into_owned();
    assert!(
        table.contains(&format!(
            "seen: log nvidia-container-toolkit-ctr (previous): {line}"
        )),
        "{table}"
    );
    assert!(
        table.contains(&format!("seen: event BackOff (x6): {backoff}")),
        "{table}"
    );

    // The support bundle's check-runtime.json carries the same finding.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bundle.tar.gz");
    c.run_ok(c.cmd("kubectl-gpu").args(["report", "--bundle"]).arg(&file));
    let cr = Command::new("tar")
        .arg("-xzOf")
        .arg(&file)
        .arg("check-runtime.json")
        .output()
        .unwrap();
    let in_bundle: Value = serde_json::from_slice(&cr.stdout).unwrap();
    let b = in_bundle["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == "operand-texts")
        .unwrap_or_else(|| panic!("no operand-texts finding in the bundle: {in_bundle:#}"));
    assert_eq!(b, f);
}

/// NVIDIA/gpu-operator#531 and nvidia-container-toolkit#1239: the
/// validator's toolkit-validation init container cannot start because of
/// an unresolvable CDI device (its StartError state and the kubelet's
/// Failed event); the pod stays Init:CrashLoopBackOff (Pending).
#[test]
fn init_container_cdi_failure_is_classified_from_state_and_event() {
    let c = Cluster::shared();
    let _g = cluster_harness::serial();
    let _op = healthy_operator(c);
    let state = quoted(c, "gpu-operator-531-unresolvable-cdi-status").remove(0);
    let event = quoted(c, "toolkit-1239-unresolvable-cdi-event").remove(0);
    let mut fault = Fault::new(c, "nvidia-operator-validator");
    fault.event(
        "spec.initContainers{toolkit-validation}",
        "Failed",
        &event,
        2,
    );
    fault.status(json!({
        "phase": "Pending",
        "conditions": [{"type": "Initialized", "status": "False", "reason": "ContainersNotInitialized"},
                       {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
                       {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady"}],
        "initContainerStatuses": [
            {"name": "driver-validation", "image": "nvcr.io/nvidia/gpu-operator", "imageID": "", "ready": true,
             "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                "startedAt": "2026-11-30T10:00:00Z", "finishedAt": "2026-11-30T10:00:02Z"}}},
            {"name": "toolkit-validation", "image": "nvcr.io/nvidia/gpu-operator", "imageID": "", "ready": false,
             "restartCount": 3,
             "state": {"waiting": {"reason": "CrashLoopBackOff",
                "message": format!("back-off 40s restarting failed container=toolkit-validation pod={}", fault.desc())}},
             "lastState": {"terminated": {"exitCode": 128, "reason": "StartError", "message": state,
                "startedAt": "1970-01-01T00:00:00Z", "finishedAt": "2026-11-30T10:05:00Z"}}}
        ],
        "containerStatuses": [{"name": "nvidia-operator-validator", "image": "nvcr.io/nvidia/gpu-operator", "imageID": "",
            "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}]
    }));
    // kwok's pod-ready Stage leaves the annotated pod Pending.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(c.pod_phase(NS, &fault.pod), "Pending");

    let out = gpu(c, &["check-runtime", "--node", NODE, "-o", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let findings = json_findings(&out);
    let ours = operand_text_findings(&findings);
    assert_eq!(ours.len(), 1, "{ours:#?}");
    let f = ours[0];
    assert_eq!(f["cause"], "unresolvable-cdi-devices");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("(init container toolkit-validation, waiting: CrashLoopBackOff): the container asked for CDI device management.nvidia.com/gpu=all"),
        "{f:#}"
    );
    let ev = evidence(f);
    assert_eq!(
        ev[0],
        format!(
            "container toolkit-validation: last state: terminated: StartError (exit 128): {state}"
        )
    );
    assert!(
        ev.contains(&format!("event Failed (x2): {event}").as_str()),
        "{ev:#?}"
    );
    assert!(f["fix"].as_str().unwrap().contains("cdi.enabled=false"));
}

/// NVIDIA/gpu-operator#413: the ClusterPolicy is notReady and the operator's
/// log (its CRI file, as posted) names the states; the finding is
/// cluster-wide and points at those states' operands.
#[test]
fn clusterpolicy_not_ready_is_explained_by_the_operator_log() {
    let c = Cluster::shared();
    let _g = cluster_harness::serial();
    let _op = healthy_operator(c);
    let lines = quoted(c, "gpu-operator-413-clusterpolicy-not-ready-cri");
    let log = operand_log(c, "rke2-server-0", "gpu-operator", false);
    let healthy_log = std::fs::read_to_string(&log).unwrap();
    std::fs::write(
        &log,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    let patch = |state: &str| {
        c.run_ok(c.kubectl().args([
            "patch",
            "clusterpolicy",
            "cluster-policy",
            "--subresource=status",
            "--type=merge",
            "-p",
            &json!({"status": {"state": state, "namespace": NS}}).to_string(),
        ]));
    };
    patch("notReady");
    let out = gpu(c, &["check-runtime", "-o", "json"]);
    patch("ready");
    std::fs::write(&log, healthy_log).unwrap();

    assert_eq!(out.status.code(), Some(1));
    let findings = json_findings(&out);
    let f =
        find(&findings, "operand-texts", None, "fail").unwrap_or_else(|| panic!("{findings:#?}"));
    assert!(f["node"].is_null());
    assert_eq!(f["cause"], "clusterpolicy-not-ready");
    assert!(
        f["message"].as_str().unwrap().ends_with(
            "states not ready: state-operator-validation, state-device-plugin, state-dcgm-exporter, gpu-feature-discovery"
        ),
        "{f:#}"
    );
    // kubectl shows the text after the CRI prefix; that is what is quoted.
    let shown = lines[1].splitn(4, ' ').nth(3).unwrap();
    assert_eq!(evidence(f)[0], format!("log gpu-operator: {shown}"));
    assert!(find(&findings, "cluster-policy", None, "fail").is_some());
}

/// Without `get pods/log` and `list events` the run does not fail: one
/// warning names the missing permissions, the pod is still reported with
/// its state, and the other checks run.
#[test]
fn missing_log_and_event_permissions_are_named_not_fatal() {
    let c = Cluster::shared();
    let _g = cluster_harness::serial();
    let _op = healthy_operator(c);
    let ns = cluster_harness::TestNamespace::new(c, "oplog-rbac");
    let sa = "check-runtime-no-logs";
    let role = format!("{}-reader", ns.name());
    c.apply(&format!(
        r#"apiVersion: v1
kind: ServiceAccount
metadata: {{name: {sa}, namespace: {ns}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: {role}}}
rules:
- apiGroups: [""]
  resources: [nodes, pods, namespaces, secrets]
  verbs: [get, list]
- apiGroups: [apps]
  resources: [deployments, daemonsets]
  verbs: [get, list]
- apiGroups: [node.k8s.io]
  resources: [runtimeclasses]
  verbs: [get, list]
- apiGroups: [nvidia.com]
  resources: [clusterpolicies]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {role}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {role}}}
subjects: [{{kind: ServiceAccount, name: {sa}, namespace: {ns}}}]
"#,
        ns = ns.name()
    ));
    let token = c.run_ok(c.kubectl().args(["-n", ns.name(), "create", "token", sa]));
    let admin: Value = serde_json::from_str(
        &c.run_ok(
            c.kubectl()
                .args(["config", "view", "--raw", "--minify", "-o", "json"]),
        ),
    )
    .unwrap();
    let cluster = &admin["clusters"][0]["cluster"];
    let kubeconfig = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": {"token": token.trim()}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c"
    });
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(&kc, kubeconfig.to_string()).unwrap();

    let line = quoted(c, "rke2-3385-toolkit-template").remove(0);
    let mut fault = Fault::new(c, "nvidia-container-toolkit-daemonset");
    fault.log(
        "nvidia-container-toolkit-ctr",
        false,
        &cri(std::slice::from_ref(&line)),
    );
    fault.status(json!({
        "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
        "containerStatuses": [{
            "name": "nvidia-container-toolkit-ctr", "image": "x", "imageID": "", "ready": false, "restartCount": 2,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s restarting failed container"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                "startedAt": "2026-11-30T10:04:59Z", "finishedAt": "2026-11-30T10:05:00Z"}}
        }]
    }));
    let out = c
        .cmd("kubectl-gpu")
        .args(["check-runtime", "-o", "json", "--kubeconfig"])
        .arg(&kc)
        .output()
        .unwrap();
    c.run_ok(
        c.kubectl()
            .args(["delete", "clusterrolebinding,clusterrole", &role]),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let findings = json_findings(&out);
    let perm =
        find(&findings, "operand-texts", None, "warn").unwrap_or_else(|| panic!("{findings:#?}"));
    let msg = perm["message"].as_str().unwrap();
    assert!(
        msg.contains("missing permission get pods/log in namespace gpu-operator and list events in namespace gpu-operator"),
        "{msg}"
    );
    assert!(
        evidence(perm).iter().any(|e| e.contains("forbidden")),
        "{perm:#}"
    );
    let fix = perm["fix"].as_str().unwrap_or_default();
    assert!(
        fix.contains("kubectl-gpu-read") && fix.contains("deploy/rbac.yaml"),
        "the fix names the role to bind: {perm:#}"
    );
    let pod = find(&findings, "operand-texts", Some(NODE), "warn")
        .unwrap_or_else(|| panic!("{findings:#?}"));
    assert!(
        evidence(pod)
            .iter()
            .any(|e| e.starts_with("log nvidia-container-toolkit-ctr: not read: forbidden")),
        "{pod:#}"
    );
    assert!(
        find(&findings, "node-flavour", Some(NODE), "ok").is_some(),
        "the other checks ran"
    );
}
