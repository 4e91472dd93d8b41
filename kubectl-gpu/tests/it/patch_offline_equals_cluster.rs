//! Offline `patch-containerd --node-root` plans exactly what cluster mode
//! plans: for every node tree under `tests/node-trees/` whose node (in
//! `tests/e2e/sim/nodes.json`, the test cluster's nodes) patch-containerd
//! supports, the plan of the offline entry point ([`offline::plan`]) over
//! the tree equals the plan of the cluster-mode code path
//! ([`PatchTarget::for_node`] from the node's facts, then
//! [`patch::plan_on`]) over a [`LocalRoot`] reading the same tree, for the
//! same options. Refusals compare by their message.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Node;
use rke2gpu::facts::NodeFacts;
use rke2gpu::node::LocalRoot;
use rke2gpu::patch::offline::{self, OfflineRequest, OfflineSource};
use rke2gpu::patch::plan::{Method, PatchOptions, Plan};
use rke2gpu::patch::{self, PatchTarget};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The test cluster's nodes as Kubernetes `Node` objects.
fn sim_nodes() -> Vec<Node> {
    let p = repo().join("tests/e2e/sim/nodes.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let v: Value = serde_json::from_str(&text).expect("nodes.json");
    v["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| {
            serde_json::from_value(json!({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": n["name"],
                    "labels": n["labels"],
                    "annotations": n["annotations"],
                },
                "status": {
                    "capacity": n["capacity"],
                    "allocatable": n["allocatable"],
                    "nodeInfo": n["nodeInfo"],
                },
            }))
            .expect("node")
        })
        .collect()
}

fn option_sets() -> Vec<(&'static str, PatchOptions)> {
    let d = PatchOptions::default;
    vec![
        ("default", d()),
        (
            "set-as-default",
            PatchOptions {
                set_as_default: true,
                ..d()
            },
        ),
        (
            "nvidia-cdi default",
            PatchOptions {
                runtime_name: "nvidia-cdi".into(),
                set_as_default: true,
                ..d()
            },
        ),
        (
            "custom runtime",
            PatchOptions {
                runtime_name: "nvidia-custom".into(),
                binary_path: Some("/opt/nvidia/bin/nvidia-container-runtime".into()),
                ..d()
            },
        ),
        (
            "method template",
            PatchOptions {
                method: Some(Method::Template),
                ..d()
            },
        ),
        (
            "method drop-in",
            PatchOptions {
                method: Some(Method::DropIn),
                set_as_default: true,
                ..d()
            },
        ),
    ]
}

async fn cluster_plan(
    tree: &Path,
    facts: &NodeFacts,
    options: &PatchOptions,
) -> Option<Result<Plan, String>> {
    let target = PatchTarget::for_node(facts, None, options.generic_containerd).ok()?;
    let host = LocalRoot::new(tree);
    Some(
        patch::plan_on(&host, &target, options)
            .await
            .map(|(_, p)| p)
            .map_err(|e| e.to_string()),
    )
}

fn offline_request(tree: &Path, facts: &NodeFacts, options: &PatchOptions) -> OfflineRequest {
    OfflineRequest {
        source: OfflineSource::NodeRoot(tree.to_path_buf()),
        options: options.clone(),
        data_dir: facts.args.data_dir.clone(),
        containerd_version: Some(facts.runtime.raw().to_owned()),
        rke2_version: Some(facts.kubelet_raw.clone()),
        out_dir: None,
    }
}

#[tokio::test]
async fn offline_plan_equals_cluster_plan_for_every_node_tree() {
    let mut compared = 0;
    let mut with_changes = 0;
    for node in sim_nodes() {
        let facts = NodeFacts::from_node(&node);
        let tree = repo().join("tests/node-trees").join(&facts.name);
        if !tree.is_dir() {
            continue;
        }
        for (what, options) in option_sets() {
            let Some(cluster) = cluster_plan(&tree, &facts, &options).await else {
                continue;
            };
            let offline = offline::plan(&offline_request(&tree, &facts, &options))
                .await
                .map_err(|e| e.to_string());
            assert_eq!(
                offline, cluster,
                "{} ({what}): offline --node-root and cluster mode plan differently",
                facts.name
            );
            compared += 1;
            if cluster.as_ref().is_ok_and(|p| !p.changes.is_empty()) {
                with_changes += 1;
            }
        }
    }
    // gpu-h200-0, gpu-a100-legacy-0, gpu-k3s-0, rke2-server-0, worker-0.
    assert!(
        compared >= 5 * option_sets().len(),
        "only {compared} comparisons"
    );
    assert!(with_changes >= 3, "only {with_changes} plans change files");
}

fn copy_tree(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let dest = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            std::fs::create_dir_all(&dest).expect("mkdir");
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).expect("copy");
        }
    }
}

/// The bug the old offline mode had: it did not read
/// `/etc/rancher/rke2/config.yaml.d`, so a `default-runtime` set there was
/// not seen. Over a node tree it is.
#[tokio::test]
async fn offline_reads_rke2_config_drop_ins_of_the_node_tree() {
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_tree(
        &repo().join("tests/node-trees/gpu-a100-legacy-0"),
        tmp.path(),
    );
    let d = tmp.path().join("etc/rancher/rke2/config.yaml.d");
    std::fs::create_dir_all(&d).expect("mkdir");
    std::fs::write(d.join("90-default.yaml"), "default-runtime: nvidia\n").expect("write");
    let req = OfflineRequest {
        source: OfflineSource::NodeRoot(tmp.path().to_path_buf()),
        options: PatchOptions {
            set_as_default: true,
            ..PatchOptions::default()
        },
        data_dir: None,
        containerd_version: Some("1.7.27".into()),
        rke2_version: Some("v1.30.14+rke2r1".into()),
        out_dir: None,
    };
    let plan = offline::plan(&req).await.expect("plan");
    assert_eq!(
        plan.method,
        Some(Method::DefaultRuntime),
        "{:?}",
        plan.reasons
    );
    assert!(plan.changes.is_empty(), "{:?}", plan.changes);
    assert!(
        plan.reasons.iter().any(|r| r
            == "/etc/rancher/rke2/config.yaml.d/90-default.yaml already sets default-runtime: nvidia"),
        "{:?}",
        plan.reasons
    );
}

/// The other half of that bug: runtime binaries are looked up in the node
/// tree, not on the machine running the tool. rke2-server-0 has none.
#[tokio::test]
async fn offline_looks_for_runtime_binaries_in_the_node_tree() {
    let req = OfflineRequest {
        source: OfflineSource::NodeRoot(repo().join("tests/node-trees/rke2-server-0")),
        options: PatchOptions::default(),
        data_dir: None,
        containerd_version: Some("2.2.2".into()),
        rke2_version: Some("v1.33.10+rke2r1".into()),
        out_dir: None,
    };
    let plan = offline::plan(&req).await.expect("plan");
    assert!(
        plan.reasons.iter().any(|r| r.starts_with(
            "no nvidia-container-runtime on the node yet: using the GPU Operator toolkit path"
        )),
        "{:?}",
        plan.reasons
    );
}
