//! Checks of verify output against node labels.
//!
//! Node labels come from `tests/fixtures/real-world/nodes/`:
//! - `node-labels-h100-mig-single-all-disabled.json`, `node-labels-h100-mig-mixed-all-balanced.json`:
//!   github.com/NVIDIA/cloud-native-docs gpu-operator/manifests/output/mig-{node,mixed-node}-labels.json
//!   @ 52dcb7b8 (node s4124-0073, 1x H100 80GB HBM3, driver 550.54.15).
//! - `rke2-v1.31.6-vgpu-a16-nodelist.json`: github.com/edgexr/edge-cloud-platform
//!   pkg/k8smgmt/cluster_test.go @ 8fd354ca (RKE2 v1.31.6, vGPU A16-4Q, driver 550.90.07).
//! - `kubeadm-tinykube-t4-describe-node.txt`: github.com/router-gao/ai-demos
//!   '01 - NVIDIA GPU on Kubernetes 101.md' @ a927732c (Tesla T4, only the deprecated
//!   cuda.driver.major/minor/rev labels, driver 530.41.03).
//!
//! Pod outputs come from `tests/fixtures/nvidia-smi/` (the H200 host, driver
//! 580.159.04) and `real-world/nvidia-smi/` (each `.source` named where used).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use k8s_openapi::api::core::v1::Node;
use rke2gpu::verify::checks::{driver_versions_match, product_matches};
use rke2gpu::verify::{
    CheckId, CheckStatus, GpuRequest, NodeGpuFacts, PodGpus, SmiResult, check_unique_uuids,
    check_vectoradd, parse_smi_log, parse_vectoradd_log, run_checks,
};

fn fixture(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(rel);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn label_file(rel: &str) -> BTreeMap<String, String> {
    serde_json::from_str(&fixture(rel)).expect("labels json")
}

fn section(name: &str, body: &str, rc: i32) -> String {
    format!(
        "### kubectl-gpu begin {name}\n{}\n### kubectl-gpu end {name} rc={rc}\n",
        body.trim_end()
    )
}

/// The H200 container captures as a verify log (driver 580.159.04).
fn h200_log() -> SmiResult {
    parse_smi_log(
        &(section(
            "list",
            &fixture("nvidia-smi/h200-580-container/nvidia-smi-L.txt"),
            0,
        ) + &section(
            "query",
            &fixture("nvidia-smi/h200-580-container/query-gpu-noheader.csv"),
            0,
        ) + &section("version", &fixture("nvidia-smi/h200-580/version.txt"), 0)),
    )
}

/// GFD labels the H200 host would carry (product and driver as nvidia-smi reports them).
fn h200_facts() -> NodeGpuFacts {
    let labels = BTreeMap::from([
        (
            "nvidia.com/gpu.product".to_string(),
            "NVIDIA-H200".to_string(),
        ),
        ("nvidia.com/gpu.count".to_string(), "1".to_string()),
        (
            "nvidia.com/cuda.driver-version.full".to_string(),
            "580.159.04".to_string(),
        ),
        (
            "nvidia.com/cuda.driver-version.major".to_string(),
            "580".to_string(),
        ),
        (
            "nvidia.com/cuda.driver-version.minor".to_string(),
            "159".to_string(),
        ),
        (
            "nvidia.com/cuda.driver-version.revision".to_string(),
            "04".to_string(),
        ),
    ]);
    NodeGpuFacts::from_labels("h200-node", &labels)
}

fn gpu_request(n: u32) -> GpuRequest {
    GpuRequest {
        resource_name: "nvidia.com/gpu".into(),
        count: n,
        runtime_class: None,
    }
}

fn status_of(checks: &[rke2gpu::verify::Check], id: CheckId) -> &CheckStatus {
    &checks
        .iter()
        .find(|c| c.id == id)
        .expect("check present")
        .status
}

#[test]
fn facts_from_real_label_sets() {
    let single = NodeGpuFacts::from_labels(
        "s4124-0073",
        &label_file("real-world/nodes/node-labels-h100-mig-single-all-disabled.json"),
    );
    assert_eq!(
        single.product_label.as_deref(),
        Some("NVIDIA-H100-80GB-HBM3")
    );
    assert_eq!(
        single.expected_driver_version().as_deref(),
        Some("550.54.15")
    );
    assert_eq!(single.gpu_count_label, Some(1));
    assert_eq!(single.mig_strategy.as_deref(), Some("single"));
    assert_eq!(single.mig_capable, Some(true));
    assert!(single.mig_products.is_empty());

    let mixed = NodeGpuFacts::from_labels(
        "s4124-0073",
        &label_file("real-world/nodes/node-labels-h100-mig-mixed-all-balanced.json"),
    );
    assert_eq!(mixed.mig_strategy.as_deref(), Some("mixed"));
    assert_eq!(
        mixed.mig_products.get("1g.10gb").map(String::as_str),
        Some("NVIDIA-H100-80GB-HBM3-MIG-1g.10gb")
    );
    assert_eq!(mixed.mig_counts.get("1g.10gb"), Some(&2));
    assert_eq!(mixed.mig_counts.get("2g.20gb"), Some(&1));
    assert_eq!(mixed.mig_counts.get("3g.40gb"), Some(&1));
    assert!(!mixed.is_shared());
}

#[test]
fn facts_from_rke2_node_object() {
    let list: serde_json::Value = serde_json::from_str(&fixture(
        "real-world/nodes/rke2-v1.31.6-vgpu-a16-nodelist.json",
    ))
    .expect("json");
    let node: Node = serde_json::from_value(list["items"][0].clone()).expect("node");
    let facts = NodeGpuFacts::from_node(&node);
    assert_eq!(facts.node_name, "nori");
    assert_eq!(facts.product_label.as_deref(), Some("NVIDIA-A16-4Q"));
    assert_eq!(
        facts.expected_driver_version().as_deref(),
        Some("550.90.07")
    );
    assert_eq!(facts.driver_version_revision.as_deref(), Some("07"));
}

#[test]
fn facts_from_deprecated_driver_labels() {
    let text = fixture("real-world/nodes/kubeadm-tinykube-t4-describe-node.txt");
    let labels: BTreeMap<String, String> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("nvidia.com/"))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let facts = NodeGpuFacts::from_labels("ubuntu-2004-server", &labels);
    assert_eq!(facts.driver_version_full, None);
    assert_eq!(
        facts.expected_driver_version().as_deref(),
        Some("530.41.03")
    );
    assert_eq!(facts.product_label.as_deref(), Some("Tesla-T4"));
    // The T4 fixture table (router-gao/ai-demos, same article, same host) reports 530.41.03.
    let table = parse_smi_log(&fixture("real-world/nvidia-smi/r530-t4-narrow-table.txt"));
    let checks = run_checks(&facts, &gpu_request(1), &table);
    assert_eq!(
        status_of(&checks, CheckId::DriverVersion),
        &CheckStatus::Pass
    );
    assert_eq!(status_of(&checks, CheckId::Product), &CheckStatus::Pass);
}

#[test]
fn all_pass_for_matching_node() {
    let checks = run_checks(&h200_facts(), &gpu_request(1), &h200_log());
    for c in &checks {
        match c.id {
            CheckId::MigDevices => assert!(matches!(c.status, CheckStatus::Skipped { .. })),
            _ => assert_eq!(c.status, CheckStatus::Pass, "{c:?}"),
        }
    }
    let visible = checks
        .iter()
        .find(|c| c.id == CheckId::GpuVisible)
        .expect("visible");
    assert_eq!(
        visible.evidence,
        ["GPU 0: NVIDIA H200 (UUID: GPU-5ede5d59-c949-3aca-4b28-11bd00045ab5)"]
    );
}

#[test]
fn isolation_failure_on_eight_gpu_node() {
    // github.com/leptonai/gpud nvidia-smi.550.90.07.out.0.valid @ 5098ae17: 8x H100 visible.
    // A pod that asked for one GPU and printed this table sees the whole node.
    let smi = parse_smi_log(&fixture("real-world/nvidia-smi/r550-8x-h100-80gb-hbm3.txt"));
    let labels = BTreeMap::from([
        (
            "nvidia.com/gpu.product".to_string(),
            "NVIDIA-H100-80GB-HBM3".to_string(),
        ),
        ("nvidia.com/gpu.count".to_string(), "8".to_string()),
        (
            "nvidia.com/cuda.driver-version.full".to_string(),
            "550.90.07".to_string(),
        ),
    ]);
    let facts = NodeGpuFacts::from_labels("hgx-1", &labels);
    let checks = run_checks(&facts, &gpu_request(1), &smi);
    let count = checks
        .iter()
        .find(|c| c.id == CheckId::GpuCount)
        .expect("count");
    assert_eq!(count.status, CheckStatus::Fail);
    assert!(
        count.message.starts_with(
            "no isolation: the pod sees 8 GPUs (all 8 GPUs of the node) but requested 1"
        ),
        "{}",
        count.message
    );
    assert!(count.fix.as_deref().is_some_and(|f| {
        f.contains("ACCEPT_NVIDIA_VISIBLE_DEVICES_ENVVAR_WHEN_UNPRIVILEGED=false")
    }));
    assert!(
        count
            .fix
            .as_deref()
            .is_some_and(|f| f.ends_with("(or use CDI, GPU Operator >= 25.10)")),
        "{:?}",
        count.fix
    );
    assert_eq!(count.evidence.len(), 8);
    // The rest still passes: right product, right driver.
    assert_eq!(status_of(&checks, CheckId::Product), &CheckStatus::Pass);
    assert_eq!(
        status_of(&checks, CheckId::DriverVersion),
        &CheckStatus::Pass
    );
}

#[test]
fn fewer_gpus_than_requested() {
    let checks = run_checks(&h200_facts(), &gpu_request(2), &h200_log());
    let c = checks
        .iter()
        .find(|c| c.id == CheckId::GpuCount)
        .expect("count");
    assert_eq!(c.status, CheckStatus::Fail);
    assert!(
        c.message.contains("sees 1 GPUs but requested 2"),
        "{}",
        c.message
    );
}

#[test]
fn driver_mismatch_against_labels() {
    // The H200 pod says 580.159.04; these labels (cloud-native-docs node) say 550.54.15.
    let mut facts = NodeGpuFacts::from_labels(
        "s4124-0073",
        &label_file("real-world/nodes/node-labels-h100-mig-single-all-disabled.json"),
    );
    facts.product_label = Some("NVIDIA-H200".into());
    let checks = run_checks(&facts, &gpu_request(1), &h200_log());
    let c = checks
        .iter()
        .find(|c| c.id == CheckId::DriverVersion)
        .expect("driver");
    assert_eq!(c.status, CheckStatus::Fail);
    assert_eq!(
        c.message,
        "driver in the pod is 580.159.04, the node labels say 550.54.15"
    );
    assert!(c.fix.is_some());
}

#[test]
fn product_mismatch() {
    let facts = NodeGpuFacts::from_labels(
        "s4124-0073",
        &label_file("real-world/nodes/node-labels-h100-mig-single-all-disabled.json"),
    );
    let checks = run_checks(&facts, &gpu_request(1), &h200_log());
    let c = checks
        .iter()
        .find(|c| c.id == CheckId::Product)
        .expect("product");
    assert_eq!(c.status, CheckStatus::Fail);
    assert!(c.message.contains("NVIDIA H200"));
    assert!(c.message.contains("NVIDIA-H100-80GB-HBM3"));
}

#[test]
fn product_label_forms() {
    // GFD: spaces → '-', `-SHARED` for time-slicing, `-MIG-<profile>` under the single strategy.
    assert!(product_matches(
        "NVIDIA H100 80GB HBM3",
        "NVIDIA-H100-80GB-HBM3"
    ));
    assert!(product_matches("Tesla T4", "Tesla-T4-SHARED"));
    assert!(product_matches(
        "NVIDIA H100 80GB HBM3",
        "NVIDIA-H100-80GB-HBM3-MIG-1g.10gb"
    ));
    // NVIDIA GPU Operator MIG docs (2021): "A100-SXM4-40GB-MIG-3g.20gb"
    assert!(product_matches(
        "A100-SXM4-40GB",
        "A100-SXM4-40GB-MIG-3g.20gb"
    ));
    assert!(product_matches("NVIDIA A16-4Q", "NVIDIA-A16-4Q"));
    assert!(!product_matches("NVIDIA H200", "NVIDIA-H100-80GB-HBM3"));
    assert!(!product_matches("NVIDIA H100", "NVIDIA-H100-80GB-HBM3"));
}

#[test]
fn driver_version_comparison() {
    assert!(driver_versions_match("550.90.07", "550.90.07"));
    assert!(driver_versions_match("550.90.07", "550.90.7"));
    assert!(!driver_versions_match("550.90.07", "550.54.15"));
}

/// The first two lines of the 7x 1g.10gb `-L` (cloud-native-docs mig-nvidia-smi.txt @ 52dcb7b8):
/// what a pod given one `nvidia.com/mig-1g.10gb` device prints.
fn one_mig_device_log() -> SmiResult {
    let full = fixture("real-world/nvidia-smi/r550-h100-mig-list-L-7x1g10gb-single.txt");
    let two: Vec<&str> = full.lines().take(2).collect();
    parse_smi_log(
        &(section("list", &two.join("\n"), 0)
            + &section(
                "query",
                "0, NVIDIA H100 80GB HBM3, GPU-b4895dbf-9350-2524-a89b-98161ddd9fe4, 550.54.15, 81559 MiB, 9.0, 00000000:00:09.0",
                0,
            )
            + &section("version", "DRIVER version      : 550.54.15", 0)),
    )
}

#[test]
fn mixed_mig_request_passes() {
    let facts = NodeGpuFacts::from_labels(
        "s4124-0073",
        &label_file("real-world/nodes/node-labels-h100-mig-mixed-all-balanced.json"),
    );
    let req = GpuRequest {
        resource_name: "nvidia.com/mig-1g.10gb".into(),
        count: 1,
        runtime_class: None,
    };
    let checks = run_checks(&facts, &req, &one_mig_device_log());
    for c in &checks {
        assert_eq!(c.status, CheckStatus::Pass, "{c:?}");
    }
    let mig = checks
        .iter()
        .find(|c| c.id == CheckId::MigDevices)
        .expect("mig");
    assert_eq!(
        mig.evidence,
        ["GPU 0 MIG 1g.10gb Device 0: MIG-3f6f389f-b0cc-5e5c-8e32-eaa8fd067902"]
    );
}

#[test]
fn mig_profile_mismatch() {
    let facts = NodeGpuFacts::from_labels(
        "s4124-0073",
        &label_file("real-world/nodes/node-labels-h100-mig-mixed-all-balanced.json"),
    );
    let req = GpuRequest {
        resource_name: "nvidia.com/mig-2g.20gb".into(),
        count: 1,
        runtime_class: None,
    };
    let checks = run_checks(&facts, &req, &one_mig_device_log());
    assert_eq!(status_of(&checks, CheckId::MigDevices), &CheckStatus::Fail);
}

#[test]
fn mig_request_but_whole_gpu_visible() {
    let facts = NodeGpuFacts::from_labels(
        "s4124-0073",
        &label_file("real-world/nodes/node-labels-h100-mig-mixed-all-balanced.json"),
    );
    let req = GpuRequest {
        resource_name: "nvidia.com/mig-1g.10gb".into(),
        count: 1,
        runtime_class: None,
    };
    let smi = parse_smi_log(&section(
        "list",
        "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-b4895dbf-9350-2524-a89b-98161ddd9fe4)",
        0,
    ));
    let checks = run_checks(&facts, &req, &smi);
    assert_eq!(status_of(&checks, CheckId::MigDevices), &CheckStatus::Fail);
}

#[test]
fn all_seven_mig_devices_visible_is_no_isolation() {
    // cloud-native-docs mig-nvidia-smi.txt: all 7 instances; single strategy, 1 requested.
    let mut facts = NodeGpuFacts::from_labels(
        "s4124-0073",
        &label_file("real-world/nodes/node-labels-h100-mig-single-all-disabled.json"),
    );
    facts.product_label = Some("NVIDIA-H100-80GB-HBM3-MIG-1g.10gb".into());
    let smi = parse_smi_log(&section(
        "list",
        &fixture("real-world/nvidia-smi/r550-h100-mig-list-L-7x1g10gb-single.txt"),
        0,
    ));
    let checks = run_checks(&facts, &gpu_request(1), &smi);
    let c = checks
        .iter()
        .find(|c| c.id == CheckId::GpuCount)
        .expect("count");
    assert_eq!(c.status, CheckStatus::Fail);
    assert!(c.message.contains("sees 7 MIG devices"), "{}", c.message);
    assert_eq!(status_of(&checks, CheckId::MigDevices), &CheckStatus::Pass);
    assert_eq!(status_of(&checks, CheckId::Product), &CheckStatus::Pass);
}

#[test]
fn nothing_visible_skips_the_rest() {
    // h200-580-container/no-device-nodes.txt
    let body = fixture("nvidia-smi/h200-580-container/no-device-nodes.txt");
    let smi = parse_smi_log(&(section("list", &body, 255) + &section("query", &body, 255)));
    let checks = run_checks(&h200_facts(), &gpu_request(1), &smi);
    let v = checks
        .iter()
        .find(|c| c.id == CheckId::GpuVisible)
        .expect("visible");
    assert_eq!(v.status, CheckStatus::Fail);
    assert_eq!(v.evidence, ["Failed to initialize NVML: Unknown Error"]);
    assert!(v.fix.is_some());
    for c in checks.iter().filter(|c| c.id != CheckId::GpuVisible) {
        assert!(matches!(c.status, CheckStatus::Skipped { .. }), "{c:?}");
    }
}

#[test]
fn driver_check_skipped_without_labels() {
    let facts = NodeGpuFacts::from_labels("bare", &BTreeMap::new());
    let checks = run_checks(&facts, &gpu_request(1), &h200_log());
    assert!(matches!(
        status_of(&checks, CheckId::DriverVersion),
        CheckStatus::Skipped { .. }
    ));
    assert!(matches!(
        status_of(&checks, CheckId::Product),
        CheckStatus::Skipped { .. }
    ));
}

#[test]
fn duplicate_uuid_across_pods() {
    let facts = h200_facts();
    let smi = h200_log();
    let a = PodGpus::from_result("gpu-verify-a", &facts, &smi);
    let b = PodGpus::from_result("gpu-verify-b", &facts, &smi);
    assert_eq!(a.uuids, ["GPU-5ede5d59-c949-3aca-4b28-11bd00045ab5"]);
    let c = check_unique_uuids(&[a.clone(), b.clone()]);
    assert_eq!(c.status, CheckStatus::Fail);
    assert_eq!(
        c.evidence,
        [
            "GPU-5ede5d59-c949-3aca-4b28-11bd00045ab5: gpu-verify-a on h200-node, gpu-verify-b on h200-node"
        ]
    );

    // Time-sliced node: sharing is expected.
    let mut shared = h200_facts();
    shared.product_label = Some("NVIDIA-H200-SHARED".into());
    let sa = PodGpus::from_result("a", &shared, &smi);
    let sb = PodGpus::from_result("b", &shared, &smi);
    assert_eq!(check_unique_uuids(&[sa, sb]).status, CheckStatus::Warn);

    // Different GPUs: pass (the second UUID is the H200 host's other capture).
    let other = parse_smi_log(&section(
        "list",
        &fixture("nvidia-smi/h200-580/nvidia-smi-L.txt"),
        0,
    ));
    let c2 = PodGpus::from_result("gpu-verify-c", &facts, &other);
    assert_eq!(
        check_unique_uuids(&[a.clone(), c2]).status,
        CheckStatus::Pass
    );

    assert!(matches!(
        check_unique_uuids(&[a]).status,
        CheckStatus::Skipped { .. }
    ));
}

#[test]
fn mig_uuids_are_the_units_for_uniqueness() {
    let facts = NodeGpuFacts::from_labels("s4124-0073", &BTreeMap::new());
    let p = PodGpus::from_result("p", &facts, &one_mig_device_log());
    assert_eq!(p.uuids, ["MIG-3f6f389f-b0cc-5e5c-8e32-eaa8fd067902"]);
}

#[test]
fn check_serialises_with_stable_names() {
    let checks = run_checks(&h200_facts(), &gpu_request(1), &h200_log());
    let v = serde_json::to_value(&checks).expect("json");
    assert_eq!(v[0]["id"], "gpu_visible");
    assert_eq!(v[0]["status"]["state"], "pass");
    let skipped = v
        .as_array()
        .expect("array")
        .iter()
        .find(|c| c["id"] == "mig_devices")
        .expect("mig");
    assert_eq!(skipped["status"]["state"], "skipped");
    assert!(skipped["status"]["reason"].is_string());
}

#[test]
fn vectoradd_checks() {
    let ok = parse_vectoradd_log("[Vector addition of 50000 elements]\nTest PASSED\nDone\n");
    assert_eq!(check_vectoradd("n1", &ok).status, CheckStatus::Pass);
    let bad = parse_vectoradd_log(
        "[Vector addition of 50000 elements]\nFailed to allocate device vector A (error code CUDA driver version is insufficient for CUDA runtime version)!\n",
    );
    let c = check_vectoradd("n1", &bad);
    assert_eq!(c.status, CheckStatus::Fail);
    assert!(
        c.fix
            .as_deref()
            .is_some_and(|f| f.contains("older cuda-sample"))
    );
}

/// The log of a verify pod whose shell finds no nvidia-smi, as busybox ash prints it (the real
/// test node's glibc busybox image, `tests/tests/it/real_node_verify.rs`).
fn smi_not_found_log() -> SmiResult {
    let body = "sh: nvidia-smi: not found";
    parse_smi_log(
        &(section("list", body, 127)
            + &section("query", body, 127)
            + &section("version", body, 127)),
    )
}

#[test]
fn smi_not_found_fix_follows_the_pods_runtime_class() {
    let facts = NodeGpuFacts::from_labels("gpu-1", &BTreeMap::new());
    let smi = smi_not_found_log();
    let fix = |rc: Option<&str>| {
        let req = GpuRequest {
            resource_name: "nvidia.com/gpu".into(),
            count: 1,
            runtime_class: rc.map(str::to_string),
        };
        let checks = run_checks(&facts, &req, &smi);
        let c = checks
            .iter()
            .find(|c| c.id == CheckId::GpuVisible)
            .expect("gpu_visible");
        assert_eq!(c.status, CheckStatus::Fail, "{c:?}");
        c.fix.clone().unwrap_or_default()
    };
    // Without a RuntimeClass the pod ran under containerd's default (runc on RKE2).
    assert!(
        fix(None).starts_with("the pod ran under runc"),
        "{}",
        fix(None)
    );
    // With RuntimeClass nvidia it did not: the handler is what failed to inject the driver.
    let with = fix(Some("nvidia"));
    assert!(with.starts_with("RuntimeClass nvidia is set"), "{with}");
    assert!(!with.contains("ran under runc"), "{with}");
}
