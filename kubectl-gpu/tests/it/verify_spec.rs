//! The verify Pod spec: what must be in it, what must
//! not, and input validation.

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use rke2gpu::Error;
use rke2gpu::objects::{Component, LABEL_RUN_ID, pod_name, run_selector};
use rke2gpu::verify::output::verify_script;
use rke2gpu::verify::spec::{
    DEFAULT_SMI_IMAGE, DEFAULT_VECTORADD_IMAGE, PlacementIssue, is_label_value, placement_issues,
};
use rke2gpu::verify::{VerifySpecInput, Workload, build_verify_pod};

fn input() -> VerifySpecInput {
    VerifySpecInput::new("gpu-node-1", "r20261129a")
}

#[test]
fn default_pod() {
    let pod = build_verify_pod(&input()).expect("pod");
    let meta = &pod.metadata;
    assert_eq!(meta.namespace.as_deref(), Some("default"));
    assert_eq!(
        meta.name.as_deref(),
        Some("gpu-verify-gpu-node-1-r20261129a")
    );
    let labels = meta.labels.as_ref().expect("labels");
    assert_eq!(labels["app.kubernetes.io/name"], "kubectl-gpu");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "kubectl-gpu");
    assert_eq!(labels["app.kubernetes.io/component"], "verify");
    assert_eq!(labels[LABEL_RUN_ID], "r20261129a");

    let spec = pod.spec.as_ref().expect("spec");
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    assert_eq!(spec.node_name.as_deref(), Some("gpu-node-1"));
    assert_eq!(spec.active_deadline_seconds, Some(300));
    assert_eq!(spec.runtime_class_name, None);
    assert_eq!(spec.automount_service_account_token, Some(false));

    // Only the nvidia.com/gpu taint is tolerated.
    let tol = spec.tolerations.as_ref().expect("tolerations");
    assert_eq!(tol.len(), 1);
    assert_eq!(tol[0].key.as_deref(), Some("nvidia.com/gpu"));
    assert_eq!(tol[0].operator.as_deref(), Some("Exists"));

    let seccomp = spec
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref())
        .expect("seccomp");
    assert_eq!(seccomp.type_, "RuntimeDefault");

    assert_eq!(spec.containers.len(), 1);
    let c = &spec.containers[0];
    assert_eq!(c.name, "verify");
    assert_eq!(c.image.as_deref(), Some(DEFAULT_SMI_IMAGE));
    assert_eq!(
        DEFAULT_SMI_IMAGE,
        "nvcr.io/nvidia/cuda:13.0.1-base-ubuntu24.04"
    );
    let cmd = c.command.as_ref().expect("command");
    assert_eq!(cmd[..2], ["sh".to_string(), "-c".to_string()]);
    assert_eq!(cmd[2], verify_script());

    let res = c.resources.as_ref().expect("resources");
    let one = Quantity("1".into());
    assert_eq!(res.limits.as_ref().expect("limits")["nvidia.com/gpu"], one);
    assert_eq!(
        res.requests.as_ref().expect("requests")["nvidia.com/gpu"],
        one
    );

    let sc = c.security_context.as_ref().expect("securityContext");
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.privileged, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_string()])
    );
    // CUDA images run as root: not forced non-root by default.
    assert_eq!(sc.run_as_non_root, None);
}

#[test]
fn serialises_with_kubernetes_field_names() {
    let pod = build_verify_pod(&input()).expect("pod");
    let v = serde_json::to_value(&pod).expect("json");
    assert_eq!(v["spec"]["restartPolicy"], "Never");
    assert_eq!(v["spec"]["nodeName"], "gpu-node-1");
    assert_eq!(
        v["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"],
        "1"
    );
    assert!(v["spec"].get("runtimeClassName").is_none());
}

#[test]
fn runtime_class_mig_resource_and_count() {
    let mut i = input();
    i.runtime_class = Some("nvidia".into());
    i.resource_name = "nvidia.com/mig-1g.10gb".into();
    i.gpus = 2;
    i.active_deadline_seconds = 120;
    let pod = build_verify_pod(&i).expect("pod");
    let spec = pod.spec.expect("spec");
    assert_eq!(spec.runtime_class_name.as_deref(), Some("nvidia"));
    assert_eq!(spec.active_deadline_seconds, Some(120));
    let res = spec.containers[0].resources.clone().expect("res");
    assert_eq!(
        res.limits.expect("limits")["nvidia.com/mig-1g.10gb"],
        Quantity("2".into())
    );
    assert_eq!(
        res.requests.expect("requests")["nvidia.com/mig-1g.10gb"],
        Quantity("2".into())
    );
}

#[test]
fn vectoradd_uses_the_image_command() {
    let mut i = input();
    i.workload = Workload::VectorAdd;
    let pod = build_verify_pod(&i).expect("pod");
    let c = &pod.spec.expect("spec").containers[0];
    assert_eq!(c.image.as_deref(), Some(DEFAULT_VECTORADD_IMAGE));
    assert_eq!(c.command, None);
    assert_eq!(c.args, None);
}

#[test]
fn custom_image_and_non_root() {
    let mut i = input();
    i.image = Some("registry.local/mirror/cuda:13.0.1-base-ubuntu24.04".into());
    i.run_as_user = Some(65534);
    let pod = build_verify_pod(&i).expect("pod");
    let spec = pod.spec.expect("spec");
    let c = &spec.containers[0];
    assert_eq!(
        c.image.as_deref(),
        Some("registry.local/mirror/cuda:13.0.1-base-ubuntu24.04")
    );
    let sc = c.security_context.as_ref().expect("sc");
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.run_as_user, Some(65534));
    assert_eq!(
        spec.security_context.and_then(|s| s.run_as_non_root),
        Some(true)
    );
}

#[test]
fn tolerate_all_only_on_request() {
    let mut i = input();
    i.tolerate_all_taints = true;
    let pod = build_verify_pod(&i).expect("pod");
    let tol = pod.spec.expect("spec").tolerations.expect("tol");
    assert!(
        tol.iter()
            .any(|t| t.key.is_none() && t.operator.as_deref() == Some("Exists"))
    );
}

#[test]
fn invalid_inputs_are_refused() {
    type Mutate = Box<dyn Fn(&mut VerifySpecInput)>;
    let cases: Vec<(&str, Mutate)> = vec![
        ("gpus", Box::new(|i| i.gpus = 0)),
        (
            "resource_name",
            Box::new(|i| i.resource_name = "gpu".into()),
        ),
        ("run_id", Box::new(|i| i.run_id = "has space".into())),
        ("namespace", Box::new(|i| i.namespace = "Bad_NS".into())),
        (
            "active_deadline_seconds",
            Box::new(|i| i.active_deadline_seconds = 0),
        ),
        ("node_name", Box::new(|i| i.node_name = String::new())),
        ("image", Box::new(|i| i.image = Some(" ".into()))),
        ("run_as_user", Box::new(|i| i.run_as_user = Some(0))),
    ];
    for (field, mutate) in cases {
        let mut i = input();
        mutate(&mut i);
        match build_verify_pod(&i) {
            Err(Error::InvalidVerifySpec { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
}

#[test]
fn pod_names_are_valid_and_bounded() {
    let long = "ip-10-0-12-34.eu-central-1.compute.internal.very-long-suffix-for-testing-purposes";
    let name = pod_name(Component::Verify, long, "r1");
    assert!(name.len() <= 63, "{name}");
    assert!(name.starts_with("gpu-verify-ip-10-0-12-34-eu-central-1"));
    assert!(name.ends_with("-r1"));
    assert!(is_label_value(&name));
    let i = VerifySpecInput::new(long, "r1");
    assert!(build_verify_pod(&i).is_ok());
}

#[test]
fn run_selector_matches_labels() {
    assert_eq!(
        run_selector(Component::Verify, "r1"),
        "app.kubernetes.io/managed-by=kubectl-gpu,app.kubernetes.io/component=verify,kubectl-gpu.rke2.io/run-id=r1"
    );
}

#[test]
fn placement_issues_for_cordoned_tainted_node() {
    // Shape of `kubectl get node -o json` for a cordoned GPU node (taints as on
    // the node in NVIDIA/k8s-device-plugin#826: nvidia.com/gpu=true:NoSchedule).
    let node: Node = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "ip-172-31-10-219"},
        "spec": {
            "unschedulable": true,
            "taints": [
                {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"},
                {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule", "timeAdded": "2024-07-16T10:00:00Z"},
                {"key": "dedicated", "value": "ml", "effect": "NoExecute"}
            ]
        }
    }))
    .expect("node");
    let issues = placement_issues(&node);
    assert_eq!(
        issues,
        [
            PlacementIssue::Cordoned,
            PlacementIssue::Taint {
                key: "dedicated".into(),
                value: Some("ml".into()),
                effect: "NoExecute".into()
            }
        ]
    );
}

#[test]
fn clean_gpu_node_has_no_placement_issues() {
    let node: Node = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "n1"},
        "spec": {"taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]}
    }))
    .expect("node");
    assert!(placement_issues(&node).is_empty());
}
