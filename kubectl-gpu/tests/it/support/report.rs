//! A realistic cluster for the report tests: five GPU nodes of different
//! kinds, a worker, the GPU Operator with one broken operand, and GPU pods.
#![allow(dead_code)]

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::jiff::Timestamp;
use kube::api::DynamicObject;
use rke2gpu::report::pods::GpuPod;
use rke2gpu::report::pods::PodLite;
use rke2gpu::report::pods::jiff_now::Now;
use rke2gpu::report::read::PodsRead;
use rke2gpu::snapshot::{OperatorObjects, Snapshot, Unreadable};
use serde_json::{Value, json};

/// A marker that must never appear in a bundle.
pub const SECRET_MARKER: &str = "S3CRET-hunter2-do-not-leak";
pub const TOKEN_MARKER: &str = "nvapi-TOKEN-do-not-leak";

pub fn now() -> Now {
    Now("2026-12-01T12:00:00Z".parse::<Timestamp>().unwrap())
}

#[allow(clippy::too_many_arguments)]
pub fn node(
    name: &str,
    kubelet: &str,
    containerd: &str,
    labels: Value,
    capacity: Value,
    allocatable: Value,
    ready: bool,
    cordoned: bool,
    taints: Value,
) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels,
            "annotations": {"rke2.io/node-args": "[\"agent\",\"--token\",\"********\"]"},
            "managedFields": [{"manager": "kubelet", "operation": "Update"}]},
        "spec": {"unschedulable": cordoned, "taints": taints},
        "status": {
            "capacity": capacity,
            "allocatable": allocatable,
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "Unknown" }}],
            "nodeInfo": {"kubeletVersion": kubelet, "containerRuntimeVersion": containerd,
                "architecture": "amd64", "bootID": "", "kernelVersion": "6.8.0-87-generic", "kubeProxyVersion": "",
                "machineID": "", "operatingSystem": "linux", "osImage": "Ubuntu 24.04.3 LTS", "systemUUID": ""}}
    }))
    .unwrap()
}

fn gpu_labels(product: &str, count: u32, driver: &str, extra: Value) -> Value {
    let mut l = json!({
        "kubernetes.io/hostname": "x",
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": product,
        "nvidia.com/gpu.count": count.to_string(),
        "nvidia.com/cuda.driver-version.full": driver,
        "nvidia.com/mig.strategy": "single",
        "feature.node.kubernetes.io/pci-10de.present": "true",
    });
    if let (Some(m), Some(e)) = (l.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            m.insert(k.clone(), v.clone());
        }
    }
    l
}

pub fn nodes() -> Vec<Node> {
    vec![
        node(
            "gpu-h200-0",
            "v1.33.10+rke2r1",
            "containerd://2.2.2-k3s1",
            gpu_labels("NVIDIA-H200", 8, "580.159.04", json!({})),
            json!({"cpu": "192", "memory": "2Ti", "nvidia.com/gpu": "8"}),
            json!({"cpu": "191500m", "memory": "2047Gi", "nvidia.com/gpu": "8"}),
            true,
            false,
            json!([{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]),
        ),
        // Cordoned for maintenance, one GPU fell off the bus.
        node(
            "gpu-a100-legacy-0",
            "v1.30.14+rke2r1",
            "containerd://1.7.27-k3s1",
            gpu_labels("NVIDIA-A100-SXM4-80GB", 4, "550.90.07", json!({})),
            json!({"nvidia.com/gpu": "4"}),
            json!({"nvidia.com/gpu": "3"}),
            true,
            true,
            json!([{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]),
        ),
        // MIG mixed strategy: no full GPUs, MIG devices instead.
        node(
            "gpu-mig-0",
            "v1.33.10+rke2r1",
            "containerd://2.2.2-k3s1",
            gpu_labels(
                "NVIDIA-A100-SXM4-80GB-MIG-1g.10gb",
                1,
                "580.159.04",
                json!({"nvidia.com/mig.strategy": "mixed", "nvidia.com/mig.capable": "true"}),
            ),
            json!({"nvidia.com/gpu": "0", "nvidia.com/mig-1g.10gb": "7", "nvidia.com/mig-3g.40gb": "2"}),
            json!({"nvidia.com/gpu": "0", "nvidia.com/mig-1g.10gb": "7", "nvidia.com/mig-3g.40gb": "2"}),
            true,
            false,
            json!([]),
        ),
        // Time-slicing with renameByDefault: 2 GPUs x 4 replicas.
        node(
            "gpu-shared-0",
            "v1.33.5+k3s1",
            "containerd://2.1.4-k3s1",
            gpu_labels(
                "NVIDIA-L4-SHARED",
                2,
                "550.90.07",
                json!({"nvidia.com/gpu.replicas": "4"}),
            ),
            json!({"nvidia.com/gpu.shared": "8"}),
            json!({"nvidia.com/gpu.shared": "8"}),
            true,
            false,
            json!([]),
        ),
        // NotReady; the device plugin never advertised anything.
        node(
            "gpu-down-0",
            "v1.33.10+rke2r1",
            "containerd://2.2.2-k3s1",
            gpu_labels("NVIDIA-L40S", 4, "580.159.04", json!({})),
            json!({"cpu": "64"}),
            json!({"cpu": "64"}),
            false,
            false,
            json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]),
        ),
        node(
            "worker-0",
            "v1.33.10+rke2r1",
            "containerd://2.2.2-k3s1",
            json!({"kubernetes.io/hostname": "worker-0"}),
            json!({"cpu": "16"}),
            json!({"cpu": "16"}),
            true,
            false,
            json!([]),
        ),
    ]
}

/// A pod of the operator namespace.
fn operand(app: &str, node: &str, ready: bool, waiting: Option<&str>, restarts: i32) -> Pod {
    let state = match waiting {
        Some(r) => {
            json!({"waiting": {"reason": r, "message": "back-off 5m0s restarting failed container"}})
        }
        None => json!({"running": {"startedAt": "2026-12-01T10:00:00Z"}}),
    };
    serde_json::from_value(json!({
        "metadata": {"name": format!("{app}-{node}"), "namespace": "gpu-operator", "labels": {"app": app},
            "creationTimestamp": "2026-12-01T10:00:00Z"},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "nvcr.io/nvidia/x:1",
            "env": [{"name": "NGC_API_TOKEN", "value": TOKEN_MARKER}, {"name": "CONTAINERD_SOCKET", "value": "/run/k3s/containerd/containerd.sock"}]}]},
        "status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
            "containerStatuses": [{"name": "main", "ready": ready, "restartCount": restarts, "image": "x", "imageID": "",
                "state": state}]}
    }))
    .unwrap()
}

fn validator(node: &str, cuda_failed: bool) -> Pod {
    let term = |code: i32| json!({"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" }}});
    let inits = [
        "driver-validation",
        "toolkit-validation",
        "cuda-validation",
        "plugin-validation",
    ];
    let statuses: Vec<Value> = inits
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let state = match (cuda_failed, i) {
                (true, 2) => json!({"waiting": {"reason": "CrashLoopBackOff"}}),
                (true, 3) => json!({"waiting": {"reason": "PodInitializing"}}),
                _ => term(0),
            };
            let mut s = json!({"name": n, "ready": false, "restartCount": if cuda_failed && i == 2 { 4 } else { 0 }, "image": "x", "imageID": "", "state": state});
            if cuda_failed && i == 2 {
                s["lastState"] = term(1);
            }
            s
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": format!("nvidia-operator-validator-{node}"), "namespace": "gpu-operator",
            "labels": {"app": "nvidia-operator-validator"}},
        "spec": {"nodeName": node,
            "initContainers": inits.iter().map(|n| json!({"name": n})).collect::<Vec<_>>(),
            "containers": [{"name": "nvidia-operator-validator"}]},
        "status": {"phase": if cuda_failed { "Pending" } else { "Running" },
            "conditions": [{"type": "Ready", "status": if cuda_failed { "False" } else { "True" }}],
            "initContainerStatuses": statuses,
            "containerStatuses": [{"name": "nvidia-operator-validator", "ready": !cuda_failed, "restartCount": 0, "image": "x", "imageID": "",
                "state": if cuda_failed { json!({"waiting": {"reason": "PodInitializing"}}) } else { json!({"running": {}}) }}]}
    }))
    .unwrap()
}

fn daemonset(name: &str, app: &str, desired: i32, ready: i32, updated: i32) -> DaemonSet {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "gpu-operator"},
        "spec": {"selector": {"matchLabels": {"app": app}},
            "template": {"metadata": {"labels": {"app": app}},
                "spec": {"nodeSelector": {"nvidia.com/gpu.deploy.container-toolkit": "true"},
                    "containers": [{"name": "main", "env": [{"name": "REGISTRY_PASSWORD", "value": SECRET_MARKER}]}]}}},
        "status": {"desiredNumberScheduled": desired, "currentNumberScheduled": desired, "numberReady": ready,
            "updatedNumberScheduled": updated, "numberAvailable": ready, "numberMisscheduled": 0}
    }))
    .unwrap()
}

/// A Helm release Secret whose values carry secrets.
pub fn helm_secret() -> Secret {
    let release = json!({
        "name": "gpu-operator", "namespace": "gpu-operator", "version": 3,
        "info": {"status": "deployed"},
        "chart": {"metadata": {"name": "gpu-operator", "version": "v24.9.0", "appVersion": "v24.9.0"}},
        "config": {
            "driver": {"enabled": false},
            "toolkit": {"env": [{"name": "CONTAINERD_SOCKET", "value": "/run/k3s/containerd/containerd.sock"},
                                {"name": "ACCESS_TOKEN", "value": TOKEN_MARKER}]},
            "ngc": {"apiKey": TOKEN_MARKER, "password": SECRET_MARKER},
            "daemonsets": {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}
        },
        "manifest": format!("apiVersion: v1\nkind: Secret\nstringData:\n  password: {SECRET_MARKER}\n"),
    });
    let data = rke2gpu::helm::release::encode_release_json(&release).unwrap();
    let mut s: Secret = serde_json::from_value(json!({
        "metadata": {"name": "sh.helm.release.v1.gpu-operator.v3", "namespace": "gpu-operator",
            "labels": {"owner": "helm", "name": "gpu-operator", "status": "deployed", "version": "3"}},
        "type": "helm.sh/release.v1"
    }))
    .unwrap();
    s.data = Some(
        [("release".to_string(), k8s_openapi::ByteString(data))]
            .into_iter()
            .collect(),
    );
    s
}

/// An ordinary Secret in the operator namespace (as if a label matched).
pub fn other_secret() -> Secret {
    let mut s: Secret = serde_json::from_value(json!({
        "metadata": {"name": "ngc-api", "namespace": "gpu-operator", "labels": {"owner": "helm"}},
        "type": "Opaque"
    }))
    .unwrap();
    s.data = Some(
        [(
            "token".to_string(),
            k8s_openapi::ByteString(SECRET_MARKER.as_bytes().to_vec()),
        )]
        .into_iter()
        .collect(),
    );
    s
}

pub fn operator() -> OperatorObjects {
    let deploy: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "gpu-operator", "namespace": "gpu-operator",
            "labels": {"app.kubernetes.io/component": "gpu-operator", "helm.sh/chart": "gpu-operator-v24.9.0"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "gpu-operator"}},
            "template": {"metadata": {"labels": {"app": "gpu-operator"}},
                "spec": {"containers": [{"name": "gpu-operator", "image": "nvcr.io/nvidia/gpu-operator:v24.9.0"}]}}},
        "status": {"replicas": 1, "readyReplicas": 1}
    }))
    .unwrap();
    let gpu_nodes = [
        "gpu-h200-0",
        "gpu-a100-legacy-0",
        "gpu-mig-0",
        "gpu-shared-0",
    ];
    let mut pods = Vec::new();
    for n in gpu_nodes {
        let broken = n == "gpu-a100-legacy-0";
        pods.push(operand(
            "nvidia-container-toolkit-daemonset",
            n,
            !broken,
            broken.then_some("CrashLoopBackOff"),
            if broken { 7 } else { 0 },
        ));
        pods.push(operand("nvidia-device-plugin-daemonset", n, true, None, 0));
        pods.push(validator(n, broken));
    }
    OperatorObjects {
        namespace: "gpu-operator".into(),
        found_by: "operator Deployment labels".into(),
        namespace_labels: Default::default(),
        deployments: vec![deploy],
        daemonsets: vec![
            daemonset(
                "nvidia-container-toolkit-daemonset",
                "nvidia-container-toolkit-daemonset",
                4,
                3,
                4,
            ),
            daemonset(
                "nvidia-device-plugin-daemonset",
                "nvidia-device-plugin-daemonset",
                4,
                4,
                4,
            ),
            daemonset(
                "nvidia-operator-validator",
                "nvidia-operator-validator",
                4,
                3,
                4,
            ),
        ],
        pods,
        helm_secrets: vec![helm_secret(), other_secret()],
    }
}

pub fn cluster_policy() -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "nvidia.com/v1", "kind": "ClusterPolicy",
        "metadata": {"name": "cluster-policy"},
        "spec": {"toolkit": {"enabled": true, "version": "v1.17.0-ubuntu20.04",
                    "env": [{"name": "CONTAINERD_SOCKET", "value": "/run/k3s/containerd/containerd.sock"}]},
                 "driver": {"enabled": false}, "cdi": {"enabled": false},
                 "validator": {"repoConfig": {"secretToken": SECRET_MARKER}}},
        "status": {"state": "notReady", "namespace": "gpu-operator"}
    }))
    .unwrap()
}

pub fn snapshot() -> Snapshot {
    let rc: RuntimeClass =
        serde_json::from_value(json!({"metadata": {"name": "nvidia"}, "handler": "nvidia"}))
            .unwrap();
    Snapshot {
        server: "https://127.0.0.1:6443/".into(),
        nodes: nodes(),
        runtime_classes: Some(vec![rc]),
        cluster_policies: Some(vec![cluster_policy()]),
        crd_present: Some(true),
        operator: Some(operator()),
        unreadable: vec![],
    }
}

pub fn pod_json(
    ns: &str,
    name: &str,
    node: Option<&str>,
    phase: &str,
    age_s: i64,
    spec: Value,
) -> Value {
    let created = Timestamp::from_second(now().0.as_second() - age_s).unwrap();
    let mut spec = spec;
    if let Some(n) = node {
        spec["nodeName"] = json!(n);
    }
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}"),
            "creationTimestamp": created.to_string(),
            "labels": {"app": name}, "managedFields": [{"manager": "kubectl"}]},
        "spec": spec,
        "status": {"phase": phase}
    })
}

pub fn gpus(resource: &str, n: &str) -> Value {
    json!({"limits": {resource: n}})
}

/// GPU pods (and a few that are not) across the nodes.
pub fn pod_values() -> Vec<Value> {
    let c = |name: &str, res: Value| json!({"name": name, "image": "nvcr.io/nvidia/cuda:13.0.1-base", "resources": res});
    vec![
        // H200: 2 + max(init 3, 1+1)=3 + (requests only) 1 = 6 of 8.
        pod_json(
            "ml",
            "train-a",
            Some("gpu-h200-0"),
            "Running",
            7200,
            json!({"containers": [c("main", gpus("nvidia.com/gpu", "2"))]}),
        ),
        pod_json(
            "ml",
            "train-init",
            Some("gpu-h200-0"),
            "Running",
            300,
            json!({"initContainers": [c("warm", gpus("nvidia.com/gpu", "3"))],
                   "containers": [c("a", gpus("nvidia.com/gpu", "1")), c("b", gpus("nvidia.com/gpu", "1"))]}),
        ),
        pod_json(
            "ml",
            "notebook",
            Some("gpu-h200-0"),
            "Pending",
            20,
            json!({"containers": [c("nb", json!({"requests": {"nvidia.com/gpu": "1", "cpu": "500m"}, "limits": {"nvidia.com/gpu": "1"}}))]}),
        ),
        // Terminal: not counted (and not listed by the field selector on a real cluster).
        pod_json(
            "ml",
            "done",
            Some("gpu-h200-0"),
            "Succeeded",
            90000,
            json!({"containers": [c("main", gpus("nvidia.com/gpu", "4"))]}),
        ),
        pod_json(
            "ml",
            "crashed",
            Some("gpu-h200-0"),
            "Failed",
            90000,
            json!({"containers": [c("main", gpus("nvidia.com/gpu", "4"))]}),
        ),
        // Unbound: listed, not counted.
        pod_json(
            "ml",
            "too-big",
            None,
            "Pending",
            600,
            json!({"containers": [c("main", gpus("nvidia.com/gpu", "16"))]}),
        ),
        // Cordoned A100: a pod still running there.
        pod_json(
            "research",
            "legacy-job",
            Some("gpu-a100-legacy-0"),
            "Running",
            3 * 86400,
            json!({"containers": [c("main", gpus("nvidia.com/gpu", "2"))]}),
        ),
        // MIG: 3 x 1g.10gb (sidecar holds 1 for the pod's life) and one 3g.40gb.
        pod_json(
            "inference",
            "mig-small",
            Some("gpu-mig-0"),
            "Running",
            4000,
            json!({"initContainers": [
                       c("setup", gpus("nvidia.com/mig-1g.10gb", "2")),
                       {"name": "proxy", "image": "envoy", "restartPolicy": "Always", "resources": gpus("nvidia.com/mig-1g.10gb", "1")}],
                   "containers": [c("serve", gpus("nvidia.com/mig-1g.10gb", "2"))]}),
        ),
        pod_json(
            "inference",
            "mig-large",
            Some("gpu-mig-0"),
            "Running",
            4000,
            json!({"containers": [c("serve", gpus("nvidia.com/mig-3g.40gb", "1"))]}),
        ),
        // Shared: 3 replicas (one through pod overhead... of a RuntimeClass).
        pod_json(
            "inference",
            "shared-a",
            Some("gpu-shared-0"),
            "Running",
            50,
            json!({"containers": [c("a", gpus("nvidia.com/gpu.shared", "2"))]}),
        ),
        pod_json(
            "inference",
            "shared-b",
            Some("gpu-shared-0"),
            "Running",
            50,
            json!({"containers": [c("a", gpus("nvidia.com/gpu.shared", "1"))]}),
        ),
        // CPU only: not a GPU pod.
        pod_json(
            "web",
            "frontend",
            Some("worker-0"),
            "Running",
            500,
            json!({"containers": [c("web", json!({"requests": {"cpu": "100m"}}))]}),
        ),
    ]
}

pub fn pods_read() -> PodsRead {
    let lites: Vec<PodLite> = pod_values()
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
    let pods: Vec<GpuPod> = lites
        .iter()
        .filter_map(|p| GpuPod::from_lite(p, now()))
        .collect();
    PodsRead {
        scanned: lites.len(),
        pods,
        calls: 1,
    }
}

/// The 403 the API server answers a list it forbids (the Status body of
/// k8s.io/apiserver `responsewriters.ForbiddenStatusError`).
pub fn forbidden(resource: &str, group: &str, namespace: Option<&str>) -> kube::Error {
    let qualified = if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    };
    let scope = match namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".into(),
    };
    let status: kube::core::Status = serde_json::from_value(json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("{qualified} is forbidden: User \"viewer\" cannot list resource \"{resource}\" in API group \"{group}\" {scope}"),
        "reason": "Forbidden", "details": {"group": group, "kind": resource}, "code": 403
    }))
    .unwrap();
    kube::Error::Api(Box::new(status))
}

pub fn unreadable() -> Vec<Unreadable> {
    vec![Unreadable::new(
        "runtimeclasses.node.k8s.io",
        &forbidden("runtimeclasses", "node.k8s.io", None),
    )]
}
