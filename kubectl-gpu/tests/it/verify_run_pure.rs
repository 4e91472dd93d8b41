//! The pure parts of `kubectl gpu verify`'s orchestration: runtime class per
//! node, node selection, evaluation of a pod's log, aggregation into rows and
//! the exit code, rendering and progress text.
//!
//! Logs are the H200 captures in `tests/fixtures/nvidia-smi/` (driver
//! 580.159.04) wrapped in the verify script's markers; node objects are
//! shaped like RKE2 GPU nodes (labels as GPU Feature Discovery writes them).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use k8s_openapi::api::node::v1::RuntimeClass;
use rke2gpu::Error;
use rke2gpu::cli::OutputFormat;
use rke2gpu::error::{EXIT_FAILED, EXIT_USAGE};
use rke2gpu::facts::NodeFacts;
use rke2gpu::objects::{CleanupResult, verify_namespace};
use rke2gpu::operator::OperatorFacts;
use rke2gpu::render;
use rke2gpu::verify::RuntimeClassChoice;
use rke2gpu::verify::node_run::is_finished;
use rke2gpu::verify::progress::progress_message;
use rke2gpu::verify::results::{
    NodeResult, Outcome, VerifyReport, attach_diagnosis, evaluate_output, finalize,
};
use rke2gpu::verify::runtime_class::decide_runtime_class;
use rke2gpu::verify::table::{format_duration, render_table};
use rke2gpu::verify::targets::select_targets;
use rke2gpu::verify::{DiagnosisKind, NodeGpuFacts, Workload};
use rke2gpu::version::Triple;

use crate::support::verify::{h200_log, section};

fn driver_not_loaded_log() -> String {
    let msg = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.";
    section("list", msg, 9) + &section("query", msg, 9) + &section("version", msg, 9)
}

/// An RKE2 agent with one H200, GFD labels, containerd from RKE2.
fn gpu_node(name: &str, containerd: &str) -> Node {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name,
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.product": "NVIDIA-H200",
            "nvidia.com/gpu.count": "1",
            "nvidia.com/cuda.driver-version.full": "580.159.04",
            "nvidia.com/cuda.driver-version.major": "580",
            "nvidia.com/cuda.driver-version.minor": "159",
            "nvidia.com/cuda.driver-version.revision": "04"}},
        "spec": {"taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]},
        "status": {
            "capacity": {"nvidia.com/gpu": "1"},
            "allocatable": {"nvidia.com/gpu": "1"},
            "conditions": [{"type": "Ready", "status": "True"}],
            "nodeInfo": {"kubeletVersion": "v1.33.10+rke2r1",
              "containerRuntimeVersion": format!("containerd://{containerd}"),
              "architecture": "amd64", "bootID": "", "kernelVersion": "6.8.0", "kubeProxyVersion": "",
              "machineID": "", "operatingSystem": "linux", "osImage": "Ubuntu 24.04.1 LTS", "systemUUID": ""}}
    }))
    .expect("node")
}

fn cpu_node(name: &str) -> Node {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
            "node-role.kubernetes.io/control-plane": "true"}},
        "status": {"nodeInfo": {"kubeletVersion": "v1.33.10+rke2r1",
            "containerRuntimeVersion": "containerd://2.0.5-k3s1",
            "architecture": "amd64", "bootID": "", "kernelVersion": "6.8.0", "kubeProxyVersion": "",
            "machineID": "", "operatingSystem": "linux", "osImage": "Ubuntu 24.04.1 LTS", "systemUUID": ""}}
    }))
    .expect("node")
}

fn runtime_class(name: &str) -> RuntimeClass {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "handler": name}))
        .expect("rc")
}

fn operator(chart: &str, cdi: Option<bool>) -> OperatorFacts {
    OperatorFacts {
        namespace: "gpu-operator".into(),
        chart_version: Triple::parse_loose(chart),
        chart_version_raw: Some(chart.into()),
        cdi_enabled: cdi,
        ..Default::default()
    }
}

// --- runtime class --------------------------------------------------------

#[test]
fn runtime_class_per_operator_version_and_containerd() {
    let rke2_c2 = NodeFacts::from_node(&gpu_node("gpu-1", "2.0.5-k3s1"));
    let rke2_c17 = NodeFacts::from_node(&gpu_node("gpu-2", "1.7.27-k3s1"));
    let rcs = [runtime_class("nvidia")];
    let auto = RuntimeClassChoice::Auto;

    // 25.3.x: legacy runtime class, whatever containerd.
    let d = decide_runtime_class(
        &auto,
        Some(&operator("v25.3.4", None)),
        &rke2_c2,
        Some(&rcs),
    );
    assert_eq!(d.name.as_deref(), Some("nvidia"), "{}", d.reason);
    assert!(d.reason.contains("25.3.4"), "{}", d.reason);

    // 25.10 with CDI on containerd 2: no runtime class.
    let d = decide_runtime_class(
        &auto,
        Some(&operator("v25.10.1", Some(true))),
        &rke2_c2,
        Some(&rcs),
    );
    assert_eq!(d.name, None, "{}", d.reason);
    assert!(d.reason.contains("CDI"));

    // Same operator on containerd 1.7: needs the runtime class.
    let d = decide_runtime_class(
        &auto,
        Some(&operator("v25.10.1", Some(true))),
        &rke2_c17,
        Some(&rcs),
    );
    assert_eq!(d.name.as_deref(), Some("nvidia"));

    // CDI explicitly off on 25.10: runtime class.
    let d = decide_runtime_class(
        &auto,
        Some(&operator("v25.10.1", Some(false))),
        &rke2_c2,
        Some(&rcs),
    );
    assert_eq!(d.name.as_deref(), Some("nvidia"));

    // The operator's own runtimeClass name is used.
    let mut op = operator("v24.9.2", None);
    op.runtime_class = Some("nvidia-legacy".into());
    let d = decide_runtime_class(&auto, Some(&op), &rke2_c2, Some(&rcs));
    assert_eq!(d.name.as_deref(), Some("nvidia-legacy"));
}

#[test]
fn runtime_class_without_operator_and_overrides() {
    let node = NodeFacts::from_node(&gpu_node("gpu-1", "2.0.5-k3s1"));
    let auto = RuntimeClassChoice::Auto;
    let d = decide_runtime_class(&auto, None, &node, Some(&[runtime_class("nvidia")]));
    assert_eq!(d.name.as_deref(), Some("nvidia"));
    assert!(d.reason.contains("no GPU Operator"));
    let d = decide_runtime_class(&auto, None, &node, Some(&[runtime_class("runc")]));
    assert_eq!(d.name, None);
    let d = decide_runtime_class(&auto, None, &node, None);
    assert_eq!(d.name, None);
    assert!(d.reason.contains("unreadable"));
    // Operator found but its version unknown: like no operator.
    let op = OperatorFacts::default();
    let d = decide_runtime_class(&auto, Some(&op), &node, Some(&[runtime_class("nvidia")]));
    assert_eq!(d.name.as_deref(), Some("nvidia"));
    assert!(d.reason.contains("version unknown"));

    let op = operator("v25.3.4", None);
    let none: RuntimeClassChoice = "none".parse().expect("none");
    assert_eq!(
        decide_runtime_class(&none, Some(&op), &node, None).name,
        None
    );
    let named: RuntimeClassChoice = "nvidia-cdi".parse().expect("name");
    assert_eq!(
        decide_runtime_class(&named, Some(&op), &node, None)
            .name
            .as_deref(),
        Some("nvidia-cdi")
    );
    assert_eq!(
        "auto".parse::<RuntimeClassChoice>(),
        Ok(RuntimeClassChoice::Auto)
    );
    assert!("Bad_Name".parse::<RuntimeClassChoice>().is_err());
    assert!("".parse::<RuntimeClassChoice>().is_err());
}

// --- node selection -------------------------------------------------------

#[test]
fn selection_errors_name_the_node_and_map_to_exit_codes() {
    let nodes = vec![
        cpu_node("cp-1"),
        gpu_node("gpu-1", "2.0.5-k3s1"),
        gpu_node("gpu-2", "2.0.5-k3s1"),
    ];
    let all = select_targets(&nodes, &[], None).expect("all");
    let names: Vec<_> = all
        .iter()
        .filter_map(|n| n.metadata.name.as_deref())
        .collect();
    assert_eq!(names, ["gpu-1", "gpu-2"]);

    let e = select_targets(&nodes, &["nope".into()], None).expect_err("unknown");
    assert!(matches!(e, Error::NodeNotFound(ref n) if n == "nope"));
    assert_eq!(e.exit_code(), EXIT_USAGE);

    let e = select_targets(&nodes, &["cp-1".into()], None).expect_err("cpu node");
    assert!(matches!(e, Error::NotAGpuNode(ref n) if n == "cp-1"));
    assert!(e.to_string().contains("\"cp-1\" has no GPUs"));
    assert_eq!(e.exit_code(), EXIT_USAGE);

    let twice = select_targets(&nodes, &["gpu-2".into(), "gpu-2".into()], None).expect("dedupe");
    assert_eq!(twice.len(), 1);

    let matched: BTreeSet<String> = ["cp-1".to_string(), "gpu-2".to_string()].into();
    let sel = select_targets(&nodes, &[], Some(("pool=a", &matched))).expect("selector");
    assert_eq!(sel.len(), 1);
    assert_eq!(sel[0].metadata.name.as_deref(), Some("gpu-2"));

    let only_cpu: BTreeSet<String> = ["cp-1".to_string()].into();
    let e = select_targets(&nodes, &[], Some(("pool=cpu", &only_cpu))).expect_err("no gpu");
    assert!(matches!(e, Error::NoGpuNodes(_)));
    assert!(e.to_string().contains("pool=cpu"), "{e}");
    assert_eq!(e.exit_code(), EXIT_FAILED);

    let e = select_targets(&[cpu_node("cp-1")], &[], None).expect_err("no gpu nodes");
    assert!(
        e.to_string().contains("no GPU nodes among 1 node(s)"),
        "{e}"
    );
    assert_eq!(e.exit_code(), EXIT_FAILED);
}

// --- evaluation, aggregation, exit code -----------------------------------

fn h200_facts(node: &str) -> NodeGpuFacts {
    NodeGpuFacts::from_node(&gpu_node(node, "2.0.5-k3s1"))
}

fn result(node: &str, phase: &str, log: Option<&str>) -> NodeResult {
    let pod = format!("gpu-verify-{node}-abc123");
    let mut r = NodeResult::new(
        node,
        &pod,
        "kubectl-gpu-verify-abc123",
        "nvcr.io/nvidia/cuda:13.0.1-base-ubuntu24.04",
    );
    r.phase = Some(phase.to_string());
    r.duration_ms = 4200;
    r.api_requests = 4;
    evaluate_output(&mut r, Workload::Smi, &h200_facts(node), log);
    r
}

fn report(nodes: Vec<NodeResult>) -> VerifyReport {
    let mut nodes = nodes;
    let (cluster_checks, summary) = finalize(&mut nodes);
    VerifyReport {
        server: "https://127.0.0.1:6443/".into(),
        run_id: "abc123".into(),
        namespace: "kubectl-gpu-verify-abc123".into(),
        namespace_created: true,
        workload: Workload::Smi,
        summary,
        cluster_checks,
        nodes,
        cleanup: CleanupResult {
            deleted_namespace: Some("kubectl-gpu-verify-abc123".into()),
            ..Default::default()
        },
    }
}

#[test]
fn passing_h200_node() {
    let log = h200_log();
    let r = result("gpu-1", "Succeeded", Some(&log));
    assert_eq!(r.result, Outcome::Pass, "{:#?}", r.checks);
    assert_eq!(r.gpus.len(), 1);
    assert_eq!(r.driver_version.as_deref(), Some("580.159.04"));
    assert_eq!(r.cuda_version.as_deref(), Some("13.0"));
    assert_eq!(r.product.as_deref(), Some("NVIDIA H200"));
    let rep = report(vec![r]);
    assert_eq!(rep.exit_code(), 0);
    assert_eq!(rep.summary.passed, 1);
    let t = render_table(&rep, false, false);
    let lines: Vec<&str> = t.lines().collect();
    assert!(lines[0].starts_with("NODE"), "{t}");
    for h in [
        "RESULT", "GPUS", "PRODUCT", "DRIVER", "CUDA", "DURATION", "DETAIL",
    ] {
        assert!(lines[0].contains(h), "{h} missing: {t}");
    }
    assert!(lines[1].starts_with("gpu-1"), "{t}");
    assert!(lines[1].contains("PASS"));
    assert!(lines[1].contains("NVIDIA-H200"));
    assert!(lines[1].contains("580.159.04"));
    assert!(lines[1].contains("13.0"));
    assert!(lines[1].contains("4s"));
    assert!(
        t.contains("Summary: 1 passed, 0 failed of 1 GPU node(s)"),
        "{t}"
    );
    assert!(t.contains("namespace kubectl-gpu-verify-abc123 removed"));

    let wide = render_table(&rep, true, false);
    assert!(
        wide.contains("GPU-5ede5d59-c949-3aca-4b28-11bd00045ab5"),
        "{wide}"
    );
    assert!(wide.contains("00000000:00:06.0"));
    assert!(wide.contains("143771MiB"));
    assert!(wide.contains("gpu-verify-gpu-1-abc123"));
}

#[test]
fn failing_node_gets_diagnosis_fix_and_next_command() {
    let ok = h200_log();
    let bad = driver_not_loaded_log();
    let mut r = result("gpu-2", "Failed", Some(&bad));
    assert_eq!(r.result, Outcome::Fail);
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "gpu-verify-gpu-2-abc123"},
        "status": {"phase": "Failed", "containerStatuses": [{
            "name": "verify", "image": "", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 9, "reason": "Error"}}}]}
    }))
    .expect("pod");
    attach_diagnosis(&mut r, Some(&pod), &[], Some(&bad), None);
    assert_eq!(r.diagnoses[0].kind, DiagnosisKind::DriverNotLoaded);

    let rep = report(vec![r, result("gpu-1", "Succeeded", Some(&ok))]);
    assert_eq!(rep.exit_code(), EXIT_FAILED);
    assert_eq!((rep.summary.passed, rep.summary.failed), (1, 1));
    // Sorted by node name.
    assert_eq!(rep.nodes[0].node, "gpu-1");
    let t = render_table(&rep, false, false);
    let fail_row = t
        .lines()
        .position(|l| l.starts_with("gpu-2"))
        .expect("gpu-2 row");
    let lines: Vec<&str> = t.lines().collect();
    assert!(lines[fail_row].contains("FAIL"), "{t}");
    assert!(lines[fail_row].contains("driver"), "{t}");
    let below = lines[fail_row + 1..].join("\n");
    assert!(below.contains("fix:  check the driver"), "{t}");
    assert!(
        below.contains("next: kubectl gpu check-runtime --deep --node gpu-2"),
        "{t}"
    );
}

#[test]
fn duplicate_uuid_fails_both_nodes() {
    let log = h200_log();
    let rep = report(vec![
        result("gpu-1", "Succeeded", Some(&log)),
        result("gpu-2", "Succeeded", Some(&log)),
    ]);
    assert_eq!(rep.summary.failed, 2, "{:#?}", rep.cluster_checks);
    assert!(rep.cluster_checks.iter().any(|c| c.is_fail()));
    assert_eq!(rep.exit_code(), EXIT_FAILED);
    let t = render_table(&rep, false, false);
    assert!(t.contains("FAIL uuid_unique"), "{t}");
}

#[test]
fn timeout_and_create_errors() {
    // Timed out in ContainerCreating: no log, a sandbox event.
    let mut r = NodeResult::new("gpu-3", "gpu-verify-gpu-3-abc123", "ns", "img");
    r.runtime_class = Some("nvidia".into());
    r.phase = Some("Pending".into());
    r.timed_out = true;
    evaluate_output(&mut r, Workload::Smi, &h200_facts("gpu-3"), None);
    assert_eq!(r.result, Outcome::Fail);
    let ev: Event = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "e1"},
        "involvedObject": {"name": "gpu-verify-gpu-3-abc123", "kind": "Pod"},
        "reason": "FailedCreatePodSandBox",
        "message": "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to get sandbox runtime: no runtime for \"nvidia\" is configured"
    }))
    .expect("event");
    attach_diagnosis(&mut r, None, &[ev], None, None);
    assert_eq!(r.diagnoses[0].kind, DiagnosisKind::NoRuntimeConfigured);
    assert!(r.diagnoses.iter().any(|d| d.kind == DiagnosisKind::Timeout));
    assert!(r.detail().contains("no handler"), "{}", r.detail());

    // PSA rejected the create: nothing was created, diagnosis with the fix.
    let mut r = NodeResult::new("gpu-4", "p", "team-a", "img");
    evaluate_output(&mut r, Workload::Smi, &h200_facts("gpu-4"), None);
    attach_diagnosis(
        &mut r,
        None,
        &[],
        None,
        Some(
            "pods \"p\" is forbidden: violates PodSecurity \"restricted:latest\": runAsNonRoot != true",
        ),
    );
    assert_eq!(r.diagnoses[0].kind, DiagnosisKind::PodSecurityRejected);
    assert!(
        r.fix_lines()
            .iter()
            .any(|l| l.contains("pod-security.kubernetes.io/enforce=baseline"))
    );

    // An unknown API refusal keeps its text.
    let mut r = NodeResult::new("gpu-5", "p", "ns", "img");
    attach_diagnosis(&mut r, None, &[], None, Some("exceeded quota: gpu-quota"));
    assert!(
        r.error
            .as_deref()
            .is_some_and(|e| e.contains("exceeded quota"))
    );
    assert!(r.detail().contains("exceeded quota"));
}

#[test]
fn vectoradd_workload() {
    let log = "[Vector addition of 50000 elements]\nCopy input data from the host memory to the CUDA device\nCUDA kernel launch with 196 blocks of 256 threads\nCopy output data from the CUDA device to the host memory\nTest PASSED\nDone\n";
    let mut r = NodeResult::new("gpu-1", "p", "ns", "img");
    r.phase = Some("Succeeded".into());
    evaluate_output(&mut r, Workload::VectorAdd, &h200_facts("gpu-1"), Some(log));
    assert_eq!(r.result, Outcome::Pass);
    assert!(r.vectoradd.as_ref().is_some_and(|v| v.passed));
    let mut r = NodeResult::new("gpu-1", "p", "ns", "img");
    r.phase = Some("Failed".into());
    evaluate_output(
        &mut r,
        Workload::VectorAdd,
        &h200_facts("gpu-1"),
        Some(
            "[Vector addition of 50000 elements]\nFailed to allocate device vector A (error code CUDA driver version is insufficient for CUDA runtime version)!\n",
        ),
    );
    assert_eq!(r.result, Outcome::Fail);
}

#[test]
fn json_has_stable_snake_case_fields() {
    let log = h200_log();
    let rep = report(vec![result("gpu-1", "Succeeded", Some(&log))]);
    let j: serde_json::Value =
        serde_json::from_str(&render::structured(&rep, OutputFormat::Json).expect("json"))
            .expect("parse");
    for k in [
        "server",
        "run_id",
        "namespace",
        "namespace_created",
        "summary",
        "nodes",
        "cleanup",
        "cluster_checks",
        "workload",
    ] {
        assert!(j.get(k).is_some(), "{k}");
    }
    let n = &j["nodes"][0];
    assert_eq!(n["result"], "pass");
    assert_eq!(n["driver_version"], "580.159.04");
    assert_eq!(
        n["gpus"][0]["uuid"],
        "GPU-5ede5d59-c949-3aca-4b28-11bd00045ab5"
    );
    assert_eq!(n["api_requests"], 4);
    for k in [
        "pod",
        "runtime_class",
        "runtime_class_reason",
        "duration_ms",
        "checks",
        "diagnoses",
        "timed_out",
        "phase",
        "smi",
    ] {
        assert!(n.get(k).is_some(), "{k}");
    }
    let y = render::structured(&rep, OutputFormat::Yaml).expect("yaml");
    assert!(y.contains("run_id: abc123"));
}

#[test]
fn kept_run_prints_how_to_delete() {
    let log = h200_log();
    let mut rep = report(vec![result("gpu-1", "Succeeded", Some(&log))]);
    rep.cleanup = CleanupResult {
        kept: true,
        delete_command: Some("kubectl delete namespace kubectl-gpu-verify-abc123".into()),
        ..Default::default()
    };
    let t = render_table(&rep, false, false);
    assert!(
        t.contains("remove with: kubectl delete namespace kubectl-gpu-verify-abc123"),
        "{t}"
    );
}

// --- small helpers --------------------------------------------------------

#[test]
fn progress_text_and_durations() {
    assert_eq!(progress_message(&[], 40), "");
    let names: Vec<String> = (0..5).map(|i| format!("gpu-node-{i}")).collect();
    assert_eq!(progress_message(&names[..2], 60), "gpu-node-0, gpu-node-1");
    let m = progress_message(&names, 30);
    assert!(m.starts_with("gpu-node-0"), "{m}");
    assert!(m.ends_with("more"), "{m}");
    assert!(m.len() <= 40, "{m}");
    // A single long name is shown whole.
    assert_eq!(progress_message(&names[..1], 3), "gpu-node-0");
    assert_eq!(format_duration(850), "850ms");
    assert_eq!(format_duration(12_300), "12s");
    assert_eq!(format_duration(125_000), "2m05s");
}

#[test]
fn stuck_pods_count_as_finished() {
    let pod = |state: serde_json::Value, phase: &str| -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "status": {"phase": phase, "containerStatuses": [{
                "name": "verify", "image": "", "imageID": "", "ready": false, "restartCount": 0,
                "state": state}]}
        }))
        .expect("pod")
    };
    assert!(is_finished(&pod(
        serde_json::json!({"waiting": {"reason": "ImagePullBackOff"}}),
        "Pending"
    )));
    assert!(!is_finished(&pod(
        serde_json::json!({"waiting": {"reason": "ContainerCreating"}}),
        "Pending"
    )));
    assert!(is_finished(&pod(
        serde_json::json!({"terminated": {"exitCode": 0}}),
        "Succeeded"
    )));
    assert!(!is_finished(&pod(
        serde_json::json!({"running": {}}),
        "Running"
    )));
}

#[test]
fn created_namespace_is_ours_and_baseline() {
    let ns = verify_namespace("abc123");
    assert_eq!(
        ns.metadata.name.as_deref(),
        Some("kubectl-gpu-verify-abc123")
    );
    let l = ns.metadata.labels.expect("labels");
    assert_eq!(l["app.kubernetes.io/managed-by"], "kubectl-gpu");
    assert_eq!(l["app.kubernetes.io/component"], "verify");
    assert_eq!(l["pod-security.kubernetes.io/enforce"], "baseline");
}
