//! check-runtime rules on realistic objects: GFD-labelled RKE2 nodes,
//! operator pods and a ClusterPolicy shaped like the real chart's, and real
//! containerd config files from tests/fixtures (provenance in each `.source`).

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::node::v1::RuntimeClass;
use kube::api::DynamicObject;
use rke2gpu::check_runtime::{Finding, Status, api, host};
use rke2gpu::cli::OutputFormat;
use rke2gpu::facts::NodeFacts;
use rke2gpu::matrix::NodePaths;
use rke2gpu::node::probe::{ProbeRequest, ProbeResult};
use rke2gpu::snapshot::{OperatorObjects, Snapshot};
use rke2gpu::version::Distribution;
use serde_json::json;

fn fixture(rel: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../tests/fixtures/{rel}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

pub(crate) fn gpu_node(name: &str, kubelet: &str, containerd: &str, allocatable: &str) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name,
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.product": "NVIDIA-H200",
            "nvidia.com/gpu.count": "8",
            "nvidia.com/cuda.driver-version.full": "580.159.04",
            "feature.node.kubernetes.io/pci-10de.present": "true",
            "nvidia.com/gpu.deploy.device-plugin": "true"}},
        "spec": {},
        "status": {
            "capacity": {"nvidia.com/gpu": allocatable},
            "allocatable": {"nvidia.com/gpu": allocatable},
            "conditions": [{"type": "Ready", "status": "True"}],
            "nodeInfo": {"kubeletVersion": kubelet, "containerRuntimeVersion": containerd,
                "architecture": "amd64", "bootID": "", "kernelVersion": "6.8.0-45-generic", "kubeProxyVersion": "", "machineID": "",
                "operatingSystem": "linux", "osImage": "Ubuntu 24.04.1 LTS", "systemUUID": ""}}
    }))
    .unwrap()
}

fn operand(app: &str, node: &str, ready: bool, waiting: Option<(&str, &str)>) -> Pod {
    let state = match waiting {
        Some((reason, message)) => json!({"waiting": {"reason": reason, "message": message}}),
        None => json!({"running": {"startedAt": "2026-11-30T10:00:00Z"}}),
    };
    serde_json::from_value(json!({
        "metadata": {"name": format!("{app}-x7k2p"), "namespace": "gpu-operator", "labels": {"app": app}},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "nvcr.io/nvidia/x"}]},
        "status": {"phase": if ready {"Running"} else {"Pending"},
            "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}],
            "containerStatuses": [{"name": "main", "ready": ready, "restartCount": if ready {0} else {7}, "image": "x", "imageID": "",
                "state": state}]}
    }))
    .unwrap()
}

pub(crate) fn cluster_policy(
    state: &str,
    toolkit_env: serde_json::Value,
    cdi: bool,
) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "nvidia.com/v1", "kind": "ClusterPolicy",
        "metadata": {"name": "cluster-policy"},
        "spec": {"operator": {"runtimeClass": "nvidia"}, "toolkit": {"enabled": true, "env": toolkit_env},
                 "driver": {"enabled": false}, "cdi": {"enabled": cdi}},
        "status": {"state": state, "namespace": "gpu-operator"}
    }))
    .unwrap()
}

pub(crate) fn deployment(chart: &str) -> k8s_openapi::api::apps::v1::Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "gpu-operator", "namespace": "gpu-operator",
            "labels": {"app.kubernetes.io/component": "gpu-operator", "helm.sh/chart": format!("gpu-operator-{chart}"), "app.kubernetes.io/instance": "gpu-operator"}},
        "spec": {"selector": {}, "template": {}}
    }))
    .unwrap()
}

pub(crate) fn rc(name: &str, handler: &str) -> RuntimeClass {
    serde_json::from_value(json!({"metadata": {"name": name}, "handler": handler})).unwrap()
}

struct World {
    snap: Snapshot,
}

impl World {
    /// A healthy RKE2 v1.33 cluster with chart v25.10.1 and socket-only values.
    fn healthy() -> Self {
        let nodes = vec![gpu_node(
            "gpu-1",
            "v1.33.10+rke2r1",
            "containerd://2.2.2-k3s1",
            "8",
        )];
        let pods = [
            "nvidia-container-toolkit-daemonset",
            "nvidia-device-plugin-daemonset",
            "nvidia-operator-validator",
        ]
        .iter()
        .map(|a| operand(a, "gpu-1", true, None))
        .collect();
        let ds: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": "nvidia-device-plugin-daemonset", "namespace": "gpu-operator"},
            "spec": {"selector": {}, "template": {"metadata": {"labels": {"app": "nvidia-device-plugin-daemonset"}},
                "spec": {"containers": [], "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}}}
        }))
        .unwrap();
        World {
            snap: Snapshot {
                server: "https://127.0.0.1:6443".into(),
                nodes,
                runtime_classes: Some(vec![
                    rc("nvidia", "nvidia"),
                    rc("nvidia-experimental", "nvidia-experimental"),
                ]),
                cluster_policies: Some(vec![cluster_policy(
                    "ready",
                    json!([{"name": "CONTAINERD_SOCKET", "value": "/run/k3s/containerd/containerd.sock"}]),
                    true,
                )]),
                crd_present: Some(true),
                operator: Some(OperatorObjects {
                    namespace: "gpu-operator".into(),
                    found_by: "operator Deployment labels".into(),
                    deployments: vec![deployment("v25.10.1")],
                    daemonsets: vec![ds],
                    pods,
                    ..Default::default()
                }),
                unreadable: vec![],
            },
        }
    }

    fn findings(&self) -> Vec<Finding> {
        api::run(&rke2gpu::facts::ClusterView::from_snapshot(&self.snap))
    }
}

fn status_of<'a>(findings: &'a [Finding], id: &str) -> Vec<&'a Finding> {
    findings.iter().filter(|f| f.id == id).collect()
}

fn worst(findings: &[Finding], id: &str) -> Status {
    status_of(findings, id)
        .iter()
        .map(|f| f.status)
        .max()
        .unwrap_or_else(|| panic!("no finding {id}: {findings:#?}"))
}

#[test]
fn healthy_cluster_has_no_failures() {
    let f = World::healthy().findings();
    let bad: Vec<_> = f.iter().filter(|f| f.status >= Status::Warn).collect();
    assert!(bad.is_empty(), "{bad:#?}");
    assert_eq!(worst(&f, "operator-chart-version"), Status::Ok);
    assert_eq!(worst(&f, "gpu-allocatable"), Status::Ok);
}

#[test]
fn legacy_tmpl_toolkit_env_fails_with_fix() {
    let mut w = World::healthy();
    w.snap.cluster_policies = Some(vec![cluster_policy(
        "ready",
        json!([
            {"name": "CONTAINERD_CONFIG", "value": "/var/lib/rancher/rke2/agent/etc/containerd/config.toml.tmpl"},
            {"name": "CONTAINERD_SOCKET", "value": "/run/k3s/containerd/containerd.sock"},
            {"name": "CONTAINERD_RUNTIME_CLASS", "value": "nvidia"},
            {"name": "CONTAINERD_SET_AS_DEFAULT", "value": "true"}]),
        true,
    )]);
    let f = w.findings();
    let legacy = status_of(&f, "toolkit-env")
        .into_iter()
        .find(|f| f.status == Status::Fail)
        .expect("a failing toolkit-env finding");
    assert!(legacy.message.contains("config.toml.tmpl"));
    assert!(
        legacy
            .fix
            .as_deref()
            .unwrap()
            .contains("CONTAINERD_SOCKET=/run/k3s/containerd/containerd.sock")
    );
    // 25.10 with CDI forces NVIDIA_RUNTIME_SET_AS_DEFAULT=false: the user's value is ignored.
    assert!(
        status_of(&f, "toolkit-env")
            .iter()
            .any(|f| f.status == Status::Warn && f.message.contains("CONTAINERD_SET_AS_DEFAULT"))
    );
}

#[test]
fn missing_socket_env_fails() {
    let mut w = World::healthy();
    w.snap.cluster_policies = Some(vec![cluster_policy("ready", json!([]), true)]);
    assert_eq!(worst(&w.findings(), "toolkit-env"), Status::Fail);
}

#[test]
fn runtime_class_needed_only_without_cdi() {
    // 25.10.1 with CDI on containerd 2: no runtime class needed.
    let mut w = World::healthy();
    w.snap.runtime_classes = Some(vec![]);
    assert_eq!(worst(&w.findings(), "runtimeclass-nvidia"), Status::Ok);
    // 25.3.4 (no CDI on RKE2): RuntimeClass nvidia is required.
    w.snap.operator.as_mut().unwrap().deployments = vec![deployment("v25.3.4")];
    w.snap.cluster_policies = Some(vec![cluster_policy(
        "ready",
        json!([{"name": "CONTAINERD_SOCKET", "value": "/run/k3s/containerd/containerd.sock"}]),
        false,
    )]);
    let f = w.findings();
    let rc = status_of(&f, "runtimeclass-nvidia");
    assert_eq!(rc[0].status, Status::Fail);
    assert!(rc[0].fix.as_deref().unwrap().contains("handler: nvidia"));
    // And with a wrong handler it fails too.
    w.snap.runtime_classes = Some(vec![rc_wrong()]);
    assert_eq!(worst(&w.findings(), "runtimeclass-nvidia"), Status::Fail);
}

fn rc_wrong() -> RuntimeClass {
    rc("nvidia", "runc")
}

#[test]
fn known_bad_chart_and_cdi_on_25_3() {
    let mut w = World::healthy();
    w.snap.operator.as_mut().unwrap().deployments = vec![deployment("v24.9.0")];
    let f = w.findings();
    let bad = status_of(&f, "operator-chart-version");
    assert!(
        bad.iter().any(|f| f.status == Status::Fail
            && f.fix.as_deref().unwrap().contains("v1.17.1-ubuntu20.04")),
        "{bad:#?}"
    );
    let mut w = World::healthy();
    w.snap.operator.as_mut().unwrap().deployments = vec![deployment("v25.3.4")];
    assert_eq!(worst(&w.findings(), "cdi-mode"), Status::Fail);
}

/// k3s pkg/agent/containerd/runtimes.go: RKE2 renders only nvidia,
/// nvidia-experimental and nvidia-cdi; another operator.runtimeClass fails.
#[test]
fn custom_operator_runtime_class_fails_on_rke2() {
    let with_class = |name: &str| {
        let mut w = World::healthy();
        let mut cp = cluster_policy(
            "ready",
            json!([{"name": "CONTAINERD_SOCKET", "value": "/run/k3s/containerd/containerd.sock"}]),
            true,
        );
        cp.data["spec"]["operator"]["runtimeClass"] = json!(name);
        w.snap.cluster_policies = Some(vec![cp]);
        w.findings()
    };
    let f = with_class("nvidia-gpu");
    let bad = status_of(&f, "operator-runtime-class");
    assert!(
        bad.iter().any(|f| f.status == Status::Fail
            && f.message.contains("\"nvidia-gpu\"")
            && f.message.contains("/etc/containerd")
            && f.fix
                .as_deref()
                .unwrap()
                .contains("operator.runtimeClass=nvidia")),
        "{bad:#?}"
    );
    for ok in ["nvidia", "nvidia-experimental", "nvidia-cdi"] {
        assert!(
            status_of(&with_class(ok), "operator-runtime-class").is_empty(),
            "{ok} is rendered by RKE2"
        );
    }
}

/// NVIDIA/gpu-operator#1694: an installed v25.3.3 fails on RKE2 with the fix
/// naming v25.3.4; v25.3.4 itself has no such finding.
#[test]
fn installed_chart_25_3_3_fails_with_the_fix() {
    let mut w = World::healthy();
    w.snap.operator.as_mut().unwrap().deployments = vec![deployment("v25.3.3")];
    let f = w.findings();
    let bad = status_of(&f, "operator-chart-version");
    assert!(
        bad.iter().any(|f| f.status == Status::Fail
            && f.message.contains("CONTAINERD_SOCKET")
            && f.fix.as_deref().unwrap().contains("--version v25.3.4")),
        "{bad:#?}"
    );
    let mut w = World::healthy();
    w.snap.operator.as_mut().unwrap().deployments = vec![deployment("v25.3.4")];
    let f = w.findings();
    assert!(
        !status_of(&f, "operator-chart-version")
            .iter()
            .any(|f| f.message.contains("CONTAINERD_SOCKET")),
        "{f:#?}"
    );
}

#[test]
fn zero_allocatable_and_crashing_device_plugin() {
    let mut w = World::healthy();
    w.snap.nodes = vec![gpu_node(
        "gpu-1",
        "v1.33.10+rke2r1",
        "containerd://2.2.2-k3s1",
        "0",
    )];
    let ops = w.snap.operator.as_mut().unwrap();
    ops.pods
        .retain(|p| p.metadata.labels.as_ref().unwrap()["app"] != "nvidia-device-plugin-daemonset");
    ops.pods.push(operand(
        "nvidia-device-plugin-daemonset",
        "gpu-1",
        false,
        Some((
            "CrashLoopBackOff",
            "back-off 5m0s restarting failed container",
        )),
    ));
    let f = w.findings();
    let alloc = status_of(&f, "gpu-allocatable");
    assert_eq!(alloc[0].status, Status::Fail);
    assert!(alloc[0].message.contains("no ready device plugin"));
    let dp = status_of(&f, "operand-pods")
        .into_iter()
        .find(|f| f.status == Status::Fail)
        .unwrap();
    assert!(
        dp.evidence.iter().any(|e| e.contains("CrashLoopBackOff")),
        "{dp:#?}"
    );
}

#[test]
fn cordoned_and_untolerated_taint_are_shown() {
    let mut w = World::healthy();
    let spec = w.snap.nodes[0].spec.get_or_insert_with(Default::default);
    spec.unschedulable = Some(true);
    spec.taints = Some(vec![
        serde_json::from_value(json!({"key": "dedicated", "value": "ml", "effect": "NoSchedule"}))
            .unwrap(),
    ]);
    let f = w.findings();
    assert_eq!(worst(&f, "node-schedulable"), Status::Warn);
    let t = status_of(&f, "node-taints");
    assert_eq!(t[0].status, Status::Warn);
    assert!(t[0].message.contains("dedicated=ml:NoSchedule"));
}

#[test]
fn psa_restricted_operator_namespace_fails() {
    let mut w = World::healthy();
    w.snap.operator.as_mut().unwrap().namespace_labels.insert(
        "pod-security.kubernetes.io/enforce".into(),
        "restricted".into(),
    );
    let f = w.findings();
    let p = status_of(&f, "psa-enforce");
    assert_eq!(p[0].status, Status::Fail);
    assert!(p[0].fix.as_deref().unwrap().contains("enforce=privileged"));
}

/// rancher/rke2 pkg/rke2/psa.go: profile cis exempts kube-system, compliance-operator-system (cis-operator-system
/// before commit fd52255c6, first in v1.32.13+rke2r2/v1.33.10+rke2r1/v1.34.6+rke2r1/v1.35.3+rke2r1) and tigera-operator.
#[test]
fn cis_psa_exemptions_follow_the_rke2_release() {
    let cis = |w: &mut World, kubelet: &str, ns: &str| {
        let n = &mut w.snap.nodes[0];
        n.metadata.annotations = Some(
            [(
                "rke2.io/node-args".to_string(),
                "[\"server\",\"--profile\",\"cis\"]".to_string(),
            )]
            .into(),
        );
        n.status
            .as_mut()
            .unwrap()
            .node_info
            .as_mut()
            .unwrap()
            .kubelet_version = kubelet.into();
        w.snap.operator.as_mut().unwrap().namespace = ns.into();
    };
    // The operator in an exempt namespace needs no label.
    let mut w = World::healthy();
    cis(&mut w, "v1.33.10+rke2r1", "kube-system");
    let p = w
        .findings()
        .into_iter()
        .filter(|f| f.id == "psa-enforce")
        .collect::<Vec<_>>();
    assert_eq!(p[0].status, Status::Ok, "{p:#?}");
    assert!(p[0].message.contains("exempt"), "{}", p[0].message);
    // Elsewhere it fails, naming the release's exemptions.
    let mut w = World::healthy();
    cis(&mut w, "v1.33.10+rke2r1", "gpu-operator");
    let p = w
        .findings()
        .into_iter()
        .filter(|f| f.id == "psa-enforce")
        .collect::<Vec<_>>();
    assert_eq!(p[0].status, Status::Fail, "{p:#?}");
    assert!(
        p[0].message
            .contains("kube-system, compliance-operator-system, tigera-operator"),
        "{}",
        p[0].message
    );
    let mut w = World::healthy();
    cis(&mut w, "v1.33.9+rke2r1", "gpu-operator");
    let p = w
        .findings()
        .into_iter()
        .filter(|f| f.id == "psa-enforce")
        .collect::<Vec<_>>();
    assert!(
        p[0].message
            .contains("kube-system, cis-operator-system, tigera-operator"),
        "{}",
        p[0].message
    );
}

#[test]
fn no_gpu_nodes_and_no_operator() {
    let mut w = World::healthy();
    let mut n = gpu_node(
        "worker-1",
        "v1.33.10+rke2r1",
        "containerd://2.2.2-k3s1",
        "0",
    );
    n.metadata.labels = Some(Default::default());
    n.status.as_mut().unwrap().capacity = None;
    n.status.as_mut().unwrap().allocatable = None;
    w.snap.nodes = vec![n];
    w.snap.operator = None;
    w.snap.cluster_policies = None;
    let f = w.findings();
    assert_eq!(worst(&f, "gpu-nodes-found"), Status::Fail);
    assert_eq!(worst(&f, "operator-installed"), Status::Fail);
}

#[test]
fn unsupported_and_generic_runtimes() {
    let mut w = World::healthy();
    w.snap.nodes = vec![
        gpu_node("crio-1", "v1.30.2", "cri-o://1.30.1", "1"),
        gpu_node("kubeadm-1", "v1.30.2", "containerd://1.7.20", "1"),
    ];
    let f = w.findings();
    let crio = f
        .iter()
        .find(|f| f.id == "node-flavour" && f.node.as_deref() == Some("crio-1"))
        .unwrap();
    assert_eq!(crio.status, Status::Fail);
    let generic = f
        .iter()
        .find(|f| f.id == "node-flavour" && f.node.as_deref() == Some("kubeadm-1"))
        .unwrap();
    assert_eq!(generic.status, Status::Warn);
    assert!(generic.message.contains("RKE2-only checks are skipped"));
    // RKE2 toolkit rules are skipped on a non-RKE2 cluster.
    assert_eq!(worst(&f, "toolkit-env"), Status::Skipped);
}

// ----- host rules on real files -----

fn probe_with(files: &[(&str, Option<String>)], exists: &[(&str, bool)]) -> ProbeResult {
    let mut p = ProbeResult::default();
    for (k, v) in files {
        p.files.insert(k.to_string(), v.clone());
    }
    for (k, v) in exists {
        p.exists.insert(k.to_string(), *v);
    }
    p
}

fn node_facts() -> NodeFacts {
    NodeFacts::from_node(&gpu_node(
        "gpu-1",
        "v1.33.10+rke2r1",
        "containerd://2.2.2-k3s1",
        "8",
    ))
}

const DRIVER: &str = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  (dvs-builder@U22-I3-AE18-23-3)  Thu Oct 30 2025\nGCC version:  gcc version 13.3.0 (Ubuntu 13.3.0-6ubuntu2~24.04)\n";

#[test]
fn host_rules_on_the_reference_rke2_config() {
    let paths = NodePaths::new(Distribution::Rke2, None);
    // rke2-containerd-config-example.toml: a v3 config RKE2 rendered with the nvidia runtimes detected.
    let probe = probe_with(
        &[
            (
                &paths.generated_config,
                Some(fixture("rke2-containerd-config-example.toml")),
            ),
            (host::DRIVER_VERSION_FILE, Some(DRIVER.into())),
            (
                host::MODULES_FILE,
                Some(
                    "nvidia_uvm 2076672 0 - Live 0x0\nnvidia 14376960 2 nvidia_uvm, Live 0x0\n"
                        .into(),
                ),
            ),
        ],
        &[("/usr/local/nvidia/toolkit/nvidia-container-runtime", true)],
    );
    let f = host::rules(&node_facts(), None, &paths, &probe);
    let rt = status_of(&f, "nvidia-runtime");
    assert_eq!(rt[0].status, Status::Ok, "{f:#?}");
    assert!(
        rt[0]
            .message
            .contains("/usr/local/nvidia/toolkit/nvidia-container-runtime")
    );
    assert_eq!(worst(&f, "driver"), Status::Ok);
    assert!(status_of(&f, "nouveau").is_empty());
}

#[test]
fn host_rules_seeded_faults() {
    let paths = NodePaths::new(Distribution::Rke2, None);
    // The static v2 copy with nvidia as default, from a public issue (real-world/containerd/.source).
    let static_copy =
        fixture("real-world/containerd/rke2-v2-config.toml.tmpl-static-copy-nvidia-default.toml");
    let probe = probe_with(
        &[
            (
                &paths.generated_config,
                Some(fixture("rke2-containerd-config-example.toml")),
            ),
            (&paths.template_v2, Some(static_copy)),
            (
                host::MODULES_FILE,
                Some("nouveau 2891776 0 - Live 0xffffffffc0a00000\n".into()),
            ),
            (
                &paths.config_yaml,
                Some("default-runtime: nvidia\nprofile: cis\n".into()),
            ),
        ],
        &[
            ("/usr/local/nvidia/toolkit/nvidia-container-runtime", false),
            ("/usr/bin/nvidia-container-runtime", false),
            (host::HOST_CONTAINERD_DROPIN, true),
        ],
    );
    let f = host::rules(&node_facts(), None, &paths, &probe);
    assert_eq!(worst(&f, "static-template"), Status::Fail);
    assert_eq!(worst(&f, "nouveau"), Status::Fail);
    assert_eq!(worst(&f, "driver"), Status::Fail);
    assert_eq!(worst(&f, "host-containerd-dropin"), Status::Warn);
    // default-runtime set while no nvidia runtime binary exists: RKE2 will not start.
    let dr = status_of(&f, "default-runtime")
        .into_iter()
        .find(|f| f.status == Status::Fail)
        .unwrap();
    assert!(dr.message.contains("default runtime nvidia was not found"));
    // The generated config names a binary that is gone.
    assert_eq!(worst(&f, "nvidia-runtime"), Status::Fail);
    // A base template (RKE2 docs example) is fine.
    let probe = probe_with(
        &[(
            &paths.template_v3,
            Some(fixture(
                "real-world/containerd/rke2-docs-config-v3.toml.tmpl-base-template.toml",
            )),
        )],
        &[],
    );
    let f = host::rules(&node_facts(), None, &paths, &probe);
    assert_eq!(worst(&f, "static-template"), Status::Ok);
}

// ----- the host drop-in /etc/containerd/conf.d/99-nvidia.toml (issue 13, Domain item 2) -----

/// The drop-in the toolkit writes when the top-level config does not exist
/// and `containerd config dump` fails: RKE2's case (toolkit v1.20.0 golden).
fn toolkit_drop_in() -> String {
    fixture(
        "upstream/toolkit-golden/installer-lifecycle-v2-top-level-config-does-not-exist.expected-dropin.toml",
    )
}

fn operator_at(chart: &str) -> rke2gpu::operator::OperatorFacts {
    rke2gpu::operator::OperatorFacts {
        namespace: "gpu-operator".into(),
        chart_version: rke2gpu::version::Triple::parse_loose(chart),
        toolkit_enabled: Some(true),
        ..Default::default()
    }
}

fn dropin_probe(generated: String, dropin: String) -> ProbeResult {
    let paths = NodePaths::new(Distribution::Rke2, None);
    probe_with(
        &[
            (&paths.generated_config, Some(generated)),
            (host::HOST_CONTAINERD_DROPIN, Some(dropin)),
        ],
        &[
            ("/usr/local/nvidia/toolkit/nvidia-container-runtime", true),
            (host::HOST_CONTAINERD_DROPIN, true),
        ],
    )
}

#[test]
fn host_drop_in_is_ok_where_the_operator_always_writes_it() {
    // gpu-operator v25.10.0+ object_controls.go: DefaultContainerdDropInConfigFile is always set, toolkit ≥ 1.18 writes it.
    let paths = NodePaths::new(Distribution::Rke2, None);
    let probe = dropin_probe(
        fixture("rke2-containerd-config-example.toml"),
        toolkit_drop_in(),
    );
    for chart in ["v25.10.1", "v26.3.2", "v26.7.0"] {
        let op = operator_at(chart);
        let f = host::rules(&node_facts(), Some(&op), &paths, &probe);
        let d = status_of(&f, "host-containerd-dropin");
        assert_eq!(d.len(), 1, "{chart}: {f:#?}");
        assert_eq!(d[0].status, Status::Ok, "{chart}: {:#?}", d[0]);
    }
    // Chart v25.3.4 (toolkit 1.17.8) never points the toolkit there: the file means something else wrote it.
    let f = host::rules(&node_facts(), Some(&operator_at("v25.3.4")), &paths, &probe);
    let d = status_of(&f, "host-containerd-dropin");
    assert_eq!(d[0].status, Status::Warn, "{:#?}", d[0]);
    assert!(d[0].message.contains("chart 25.3.4"), "{}", d[0].message);
    // Chart v25.10.1 with toolkit pinned to 1.17.8: no drop-in from that toolkit.
    let mut op = operator_at("v25.10.1");
    op.toolkit_version = Some("v1.17.8-ubuntu20.04".into());
    let f = host::rules(&node_facts(), Some(&op), &paths, &probe);
    assert_eq!(worst(&f, "host-containerd-dropin"), Status::Warn);
    // NRI mode (toolkit ≥ 1.19 configures nothing): a harmless leftover.
    let mut op = operator_at("v26.7.0");
    op.nri_enabled = Some(true);
    let f = host::rules(&node_facts(), Some(&op), &paths, &probe);
    assert_eq!(worst(&f, "host-containerd-dropin"), Status::Ok);
}

#[test]
fn host_drop_in_warns_where_its_content_conflicts_with_rke2() {
    let paths = NodePaths::new(Distribution::Rke2, None);
    let op = operator_at("v26.7.0");
    // Toolkit golden with SetAsDefault=true: default_runtime_name = "nvidia", which RKE2 never applies.
    let probe = dropin_probe(
        fixture("rke2-containerd-config-example.toml"),
        fixture(
            "upstream/toolkit-golden/installer-lifecycle-v2-existing-config-without-default-runtime-setasdefault-true.expected-dropin.toml",
        ),
    );
    let f = host::rules(&node_facts(), Some(&op), &paths, &probe);
    let d = status_of(&f, "host-containerd-dropin");
    assert_eq!(d[0].status, Status::Warn, "{:#?}", d[0]);
    assert!(d[0].message.contains("default runtime"), "{}", d[0].message);
    assert!(d[0].fix.as_deref().unwrap().contains("default-runtime"));
    // operator.runtimeClass=foo: the toolkit registers foo, foo-cdi, foo-legacy, which RKE2 never renders.
    let custom = toolkit_drop_in().replace("runtimes.nvidia", "runtimes.foo");
    let probe = dropin_probe(fixture("rke2-containerd-config-example.toml"), custom);
    let f = host::rules(&node_facts(), Some(&op), &paths, &probe);
    let d = status_of(&f, "host-containerd-dropin");
    assert_eq!(d[0].status, Status::Warn, "{:#?}", d[0]);
    assert!(
        d[0].message.contains("foo, foo-cdi, foo-legacy"),
        "{}",
        d[0].message
    );
    // A user template that makes RKE2 import /etc/containerd/conf.d: on containerd 1.7 the
    // drop-in's CRI plugin table replaces RKE2's (no merge before containerd 2.0).
    let legacy = fixture(
        "../node-trees/gpu-a100-legacy-0/var/lib/rancher/rke2/agent/etc/containerd/config.toml",
    );
    let generated = format!("imports = [\"/etc/containerd/conf.d/*.toml\"]\n{legacy}");
    let node = NodeFacts::from_node(&gpu_node(
        "gpu-1",
        "v1.30.14+rke2r1",
        "containerd://1.7.27-k3s1",
        "8",
    ));
    let f = host::rules(
        &node,
        Some(&op),
        &paths,
        &dropin_probe(generated.clone(), toolkit_drop_in()),
    );
    let d = status_of(&f, "host-containerd-dropin");
    assert_eq!(d[0].status, Status::Fail, "{:#?}", d[0]);
    assert!(
        d[0].message
            .contains("imports /etc/containerd/conf.d/*.toml"),
        "{}",
        d[0].message
    );
    // On containerd 2.x imported tables merge: still a warning.
    let f = host::rules(
        &node_facts(),
        Some(&op),
        &paths,
        &dropin_probe(generated, toolkit_drop_in()),
    );
    assert_eq!(worst(&f, "host-containerd-dropin"), Status::Warn);
}

/// nvidia-container-toolkit v1.19.0 runtime.go NewConfigurer: in NRI mode a no-op configurer (no SIGHUP), so RKE2
/// renders nvidia only at its next restart: say so instead of a bare "skipped".
#[test]
fn nri_mode_without_a_rendered_nvidia_runtime_says_when_it_comes() {
    let paths = NodePaths::new(Distribution::Rke2, None);
    // A v3 config RKE2 rendered before the toolkit installed anything (no nvidia runtime).
    let generated =
        fixture("../node-trees/worker-0/var/lib/rancher/rke2/agent/etc/containerd/config.toml");
    let mut op = operator_at("v26.7.0");
    op.nri_enabled = Some(true);
    let probe = probe_with(
        &[(&paths.generated_config, Some(generated.clone()))],
        &[("/usr/local/nvidia/toolkit/nvidia-container-runtime", true)],
    );
    let f = host::rules(&node_facts(), Some(&op), &paths, &probe);
    let rt = status_of(&f, "nvidia-runtime");
    assert_eq!(rt[0].status, Status::Skipped, "{rt:#?}");
    assert!(
        rt[0].message.contains("only at its next restart"),
        "{}",
        rt[0].message
    );
    assert!(
        rt[0]
            .fix
            .as_deref()
            .unwrap()
            .contains("systemctl restart rke2-"),
        "{rt:#?}"
    );
    // Before the toolkit installed its binaries there is nothing to render yet.
    let probe = probe_with(&[(&paths.generated_config, Some(generated))], &[]);
    let f = host::rules(&node_facts(), Some(&op), &paths, &probe);
    let rt = status_of(&f, "nvidia-runtime");
    assert_eq!(rt[0].status, Status::Skipped);
    assert!(!rt[0].message.contains("next restart"));
}

#[test]
fn leftover_toolkit_without_operator() {
    let paths = NodePaths::new(Distribution::Rke2, None);
    let probe = probe_with(
        &[
            (
                &paths.generated_config,
                Some(fixture("rke2-containerd-config-example.toml")),
            ),
            (host::DRIVER_VERSION_FILE, Some(DRIVER.into())),
        ],
        &[
            ("/usr/local/nvidia/toolkit/nvidia-container-runtime", true),
            ("/usr/bin/nvidia-container-runtime", true),
        ],
    );
    let f = host::rules(&node_facts(), None, &paths, &probe);
    assert!(
        status_of(&f, "leftover-toolkit")
            .iter()
            .all(|f| f.status == Status::Warn)
    );
    assert!(
        status_of(&f, "leftover-toolkit")
            .iter()
            .any(|f| f.message.contains("shadows"))
    );
}

#[test]
fn drop_in_above_root_version_fails() {
    let paths = NodePaths::new(Distribution::Rke2, None);
    let mut probe = probe_with(
        &[
            (
                &paths.generated_config,
                Some("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n".into()),
            ),
            (
                &format!("{}/99-nvidia.toml", paths.drop_in_v2),
                Some("version = 3\n".into()),
            ),
        ],
        &[],
    );
    probe.dirs.insert(
        paths.drop_in_v2.clone(),
        Some(vec!["99-nvidia.toml".into()]),
    );
    let f = host::rules(&node_facts(), None, &paths, &probe);
    assert_eq!(worst(&f, "drop-in-version"), Status::Fail);
    // rancher/rke2 Dockerfile: v1.36.3+rke2r1 ships containerd 2.3.3, which refuses such a drop-in (containerd #12891).
    let node = NodeFacts::from_node(&gpu_node(
        "gpu-1",
        "v1.36.3+rke2r1",
        "containerd://2.3.3-k3s1",
        "8",
    ));
    let f = host::rules(&node, None, &paths, &probe);
    let d = status_of(&f, "drop-in-version");
    assert_eq!(d[0].status, Status::Fail);
    assert!(
        d[0].message
            .contains("this node's containerd 2.3.3 refuses to start")
            && d[0].message.contains("v1.36.3+rke2r1"),
        "{}",
        d[0].message
    );
}

/// The command's pure core: `--node` selection, the `gpu-node` finding for a
/// named node without GPUs, sorting, the summary and the exit code.
#[test]
fn evaluate_selects_nodes_and_flags_non_gpu_nodes() {
    use rke2gpu::check_runtime::{self, CheckReport};
    let mut w = World::healthy();
    let mut worker = gpu_node(
        "worker-1",
        "v1.33.10+rke2r1",
        "containerd://2.2.2-k3s1",
        "0",
    );
    if let Some(l) = worker.metadata.labels.as_mut() {
        l.retain(|k, _| k == "kubernetes.io/hostname");
    }
    worker.status.as_mut().unwrap().capacity = None;
    worker.status.as_mut().unwrap().allocatable = None;
    w.snap.nodes.push(worker);

    let all = check_runtime::evaluate(&w.snap, &[], None, None).unwrap();
    assert_eq!(all, check_runtime::evaluate_all(&w.snap, None, None));
    assert_eq!(all.exit_code(), 0, "{:#?}", all.findings);
    assert_eq!(all.server, w.snap.server);
    // Cluster-wide findings first, then by node; worst first within a node.
    let nodes: Vec<Option<&str>> = all.findings.iter().map(|f| f.node.as_deref()).collect();
    let mut sorted = nodes.clone();
    sorted.sort();
    assert_eq!(nodes, sorted);

    let one = check_runtime::evaluate(&w.snap, &["worker-1".to_string()], None, None).unwrap();
    let gpu_node: Vec<_> = one.findings.iter().filter(|f| f.id == "gpu-node").collect();
    assert_eq!(gpu_node.len(), 1);
    assert_eq!(gpu_node[0].status, Status::Fail);
    assert!(
        one.findings
            .iter()
            .all(|f| f.node.as_deref() != Some("gpu-1"))
    );
    assert_eq!(one.summary.fail, 1);
    assert_eq!(one.exit_code(), 1);

    let text = check_runtime::table::table(&one, false, false);
    assert!(text.starts_with("CLUSTER\n"), "{text}");
    assert!(text.contains("NODE worker-1\n"), "{text}");
    assert!(text.contains("fix:  pick a GPU node"), "{text}");
    assert!(text.ends_with(&format!(
        "Summary: {} ok, {} warn, 1 fail, {} skipped\n",
        one.summary.ok, one.summary.warn, one.summary.skipped
    )));
    // `-o json`: the document's fields in their documented order.
    let json = check_runtime::table::render(&one, OutputFormat::Json, false).unwrap();
    let at = |k: &str| json.find(&format!("\n  \"{k}\":")).unwrap();
    assert!(
        at("server") < at("summary") && at("summary") < at("findings"),
        "{json}"
    );
    let back: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(back, serde_json::to_value::<&CheckReport>(&one).unwrap());

    assert!(check_runtime::evaluate(&w.snap, &["nope".to_string()], None, None).is_err());
}

/// The real GPU run (tests/fixtures/real-gpu-cluster, an H100 node of the
/// one-node cluster): after `patch-containerd --apply` wrote its runtime to
/// the imported `config-v3.toml.d/99-nvidia.toml`, containerd 2.4.2 ran GPU
/// pods under it (verify PASS), yet `check-runtime` read only the generated
/// config.toml and failed `nvidia-runtime`. It now judges what containerd
/// loads: the generated config merged with the drop-ins it imports.
#[test]
fn nvidia_runtime_in_an_imported_drop_in_is_found_on_the_real_gpu_node() {
    let node: Node =
        serde_saphyr::from_str(&fixture("real-gpu-cluster/files/node-with-gpu.yaml")).unwrap();
    let facts = NodeFacts::from_node(&node);
    assert!(
        facts.gpu.present,
        "the device plugin advertised nvidia.com/gpu"
    );
    // The real node's toolkit dir (tests/gpu/cluster/nodes.json), where the
    // runtime binary was installed for every stage of the run.
    let nodes: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/../tests/gpu/cluster/nodes.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    let toolkit_dir = find_key(&nodes, "toolkitDir").expect("nodes.json names toolkitDir");
    let runtime = format!("{toolkit_dir}/nvidia-container-runtime");
    let paths = NodePaths::new(Distribution::Rke2, None);
    // Each stage's captured files laid out as the node's root, read by the
    // same probe sequence and script `--deep` sends to the node agent.
    let probe_at = |stage: &str| {
        let root = tempfile::tempdir().unwrap();
        let containerd = root
            .path()
            .join(paths.generated_config.trim_start_matches('/'));
        let src = format!(
            "{}/../tests/fixtures/real-gpu-cluster/files/{stage}/containerd",
            env!("CARGO_MANIFEST_DIR")
        );
        copy_tree(std::path::Path::new(&src), containerd.parent().unwrap());
        let bin = root.path().join(runtime.trim_start_matches('/'));
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        std::fs::write(&bin, "#!/bin/sh\n").unwrap();
        let (paths, probe) = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(host::probe_sequence(&facts, async |req: &ProbeRequest| {
                req.run_under(root.path())
            }))
            .unwrap();
        host::rules(&facts, None, &paths, &probe)
    };
    let patched = probe_at("1-patched");
    let rt = status_of(&patched, "nvidia-runtime");
    assert_eq!(rt[0].status, Status::Ok, "{rt:#?}");
    assert!(rt[0].message.contains(&runtime), "{}", rt[0].message);
    // Before the patch and after the rollback (the drop-in removed): missing.
    for stage in ["0-before", "2-rolled-back"] {
        assert_eq!(
            worst(&probe_at(stage), "nvidia-runtime"),
            Status::Fail,
            "{stage}"
        );
    }
}

fn find_key<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    match v {
        serde_json::Value::Object(m) => m
            .get(key)
            .and_then(|x| x.as_str())
            .or_else(|| m.values().find_map(|x| find_key(x, key))),
        serde_json::Value::Array(a) => a.iter().find_map(|x| find_key(x, key)),
        _ => None,
    }
}

pub(crate) fn copy_tree(src: &std::path::Path, dst: &std::path::Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let to = dst.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), to).unwrap();
        }
    }
}
