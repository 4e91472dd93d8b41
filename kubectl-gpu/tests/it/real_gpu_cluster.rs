//! The one-node cluster on the lent H100 (tests/fixtures/real-gpu-cluster,
//! tests/gpu/cluster): what `kubectl gpu` printed there, checked against the
//! host's own nvidia-smi and the node object the real kubelet reported.

use rke2gpu::facts::NodeFacts;

fn fixture(rel: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../tests/fixtures/real-gpu-cluster/{rel}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// verify's PASS names the GPU the host's own `nvidia-smi --query-gpu` shows.
#[test]
fn verify_pass_is_the_hosts_gpu() {
    let host = fixture("host-query.csv");
    let cols: Vec<&str> = host.trim().split(", ").collect();
    let (name, uuid, driver) = (cols[1], cols[2], cols[3]);
    let v: serde_json::Value = serde_json::from_str(&fixture("steps/11-verify.json")).unwrap();
    assert_eq!(v["summary"]["passed"], 1);
    let node = &v["nodes"][0];
    assert_eq!(node["result"], "pass");
    assert_eq!(node["product"], name);
    assert_eq!(node["driver_version"], driver);
    assert_eq!(node["gpus"][0]["uuid"], uuid);
}

/// The node object from the real kubelet with the real device plugin: one
/// GPU advertised, which the library's facts see.
#[test]
fn the_real_node_advertises_one_gpu() {
    let node: k8s_openapi::api::core::v1::Node =
        serde_saphyr::from_str(&fixture("files/node-with-gpu.yaml")).unwrap();
    let f = NodeFacts::from_node(&node);
    assert!(f.gpu.present);
    let alloc = node.status.unwrap().allocatable.unwrap();
    assert_eq!(alloc["nvidia.com/gpu"].0, "1");
    let r: serde_json::Value = serde_json::from_str(&fixture("steps/16-report.json")).unwrap();
    let g = &r["nodes"]["nodes"][0]["gpu"];
    assert_eq!(
        (g["allocatable"].clone(), g["allocated"].clone()),
        (1.into(), 1.into())
    );
}

/// The negative cases carry the real components' own texts, and verify's
/// diagnosis of each.
#[test]
fn negative_cases_quote_the_real_texts() {
    let none = fixture("steps/19-verify-runtime-class-none.txt");
    assert!(
        none.contains("sh: nvidia-smi: not found") && none.contains("did not inject the driver")
    );
    let two = fixture("steps/21-verify-gpus-2.txt");
    assert!(two.contains("has 1 allocatable nvidia.com/gpu; the verify pod requests 2"));
    let rolled = fixture("steps/26-verify-after-rollback.txt");
    assert!(
        rolled.contains("no runtime for \"nvidia\" is configured"),
        "{rolled}"
    );
    assert!(rolled.contains("has no handler for the pod's RuntimeClass"));
}

/// `verify --workload vectoradd`: the vectorAdd nvcc built on the host, run
/// in a pod under the nvidia runtime, printed `Test PASSED` for its 50000
/// elements.
#[test]
fn vectoradd_passed_in_a_pod() {
    let v: serde_json::Value =
        serde_json::from_str(&fixture("steps/13-verify-vectoradd.json")).unwrap();
    let node = &v["nodes"][0];
    assert_eq!(node["result"], "pass", "{node:#}");
    assert_eq!(node["vectoradd"]["passed"], true);
    assert_eq!(node["vectoradd"]["elements"], 50000);
    assert_eq!(node["checks"][0]["evidence"][0], "Test PASSED");
    assert_eq!(node["runtime_class"], "nvidia");
}

/// NVIDIA's GPU feature discovery (run once on the host) labels the node as
/// the host's own nvidia-smi describes the GPU, and the library's facts read
/// those labels (the node as it would be once NFD applied them).
#[test]
fn gfd_labels_describe_the_hosts_gpu() {
    let host = fixture("host-query.csv");
    let cols: Vec<&str> = host.trim().split(", ").collect();
    let (name, driver, memory, cc) = (cols[1], cols[3], cols[4], cols[5]);
    let labels: std::collections::BTreeMap<String, String> = fixture("gfd-labels.txt")
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(labels["nvidia.com/gpu.product"], name.replace(' ', "-"));
    assert_eq!(labels["nvidia.com/cuda.driver-version.full"], driver);
    assert_eq!(format!("{} MiB", labels["nvidia.com/gpu.memory"]), memory);
    assert_eq!(
        format!(
            "{}.{}",
            labels["nvidia.com/gpu.compute.major"], labels["nvidia.com/gpu.compute.minor"]
        ),
        cc
    );
    assert_eq!(labels["nvidia.com/gpu.count"], "1");

    let mut node: k8s_openapi::api::core::v1::Node =
        serde_saphyr::from_str(&fixture("files/node-with-gpu.yaml")).unwrap();
    node.metadata
        .labels
        .get_or_insert_default()
        .extend(labels.clone());
    let f = NodeFacts::from_node(&node).gpu;
    assert_eq!(
        f.product.as_deref(),
        Some(labels["nvidia.com/gpu.product"].as_str())
    );
    assert_eq!(f.driver_version.as_deref(), Some(driver));
    assert_eq!(f.memory_mib, Some(81559));
    assert_eq!(f.count_label, Some(1));
    assert_eq!(f.mig_capable, Some(true));
    assert_eq!(f.cuda_runtime.as_deref(), Some("13.0"));
}

/// After `patch-containerd --apply` put the runtime in the imported drop-in,
/// `check-runtime --deep` on the real node finds it and its binary: no
/// failure (the only warning: no GPU Operator, as the recipe installs the
/// device plugin on its own).
#[test]
fn check_runtime_is_clean_after_the_patch() {
    let v: serde_json::Value =
        serde_json::from_str(&fixture("steps/09-check-runtime-after.json")).unwrap();
    assert_eq!(v["summary"]["fail"], 0, "{:#}", v["findings"]);
    let rt = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "nvidia-runtime")
        .expect("an nvidia-runtime finding");
    assert_eq!(rt["status"], "ok");
    let warns: Vec<&serde_json::Value> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "warn")
        .map(|f| &f["id"])
        .collect();
    assert_eq!(warns, ["operator-installed"]);
}
