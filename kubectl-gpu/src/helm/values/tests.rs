//! The value computation on one case per version-matrix row, plus the
//! refusals, overrides and renderings.
//!
//! Over 800 lines, test-only (`#[cfg(test)] mod tests;`): one table-driven
//! case per chart row of the matrix; the chart versions written here are test
//! inputs that re-create each tag's values.yaml, not knowledge the code uses.

use super::render::escape_strval;
use super::*;
use crate::helm::chart::tests::VALUES_26_7;
use crate::helm::chart::{Chart, ChartMeta, parse_values_yaml};
use crate::matrix::{CHART_ROWS, RKE2_CONTAINERD_SOCKET};
use crate::version::{KubeletVersion, Triple};
use serde_json::{Value, json};

const SOCKET: &str = RKE2_CONTAINERD_SOCKET;

/// The chart's values at a version, per NVIDIA/gpu-operator deployments/gpu-operator/values.yaml at each tag: start from
/// the verbatim v26.7.0 values.yaml and undo what later versions added.
pub(super) fn chart_at(version: &str) -> Chart {
    let v = Triple::parse_loose(version).unwrap();
    let mut values = parse_values_yaml("fixture", VALUES_26_7).unwrap();
    // values.yaml at the tags: operator.defaultRuntime `docker` up to v24.9.2, removed in v25.3.0
    if v < Triple::new(25, 3, 0) {
        values["operator"]["defaultRuntime"] = json!("docker");
    }
    // values.yaml at the tags: cdi {enabled:false, default:false} before 25.10; nriPluginEnabled from 26.3.0
    if v < Triple::new(26, 3, 0) {
        values["cdi"]
            .as_object_mut()
            .unwrap()
            .remove("nriPluginEnabled");
    }
    if v < Triple::new(25, 10, 0) {
        values["cdi"] = json!({"enabled": false, "default": false});
    }
    // values.yaml at the tags: no cdi key before v23.3
    if v < Triple::new(23, 3, 0) {
        values.as_object_mut().unwrap().remove("cdi");
    }
    Chart {
        origin: format!("nvidia/gpu-operator@{version}"),
        meta: ChartMeta {
            name: "gpu-operator".into(),
            version: version.into(),
            app_version: Some(version.into()),
        },
        values,
    }
}

fn node(name: &str, kubelet: &str, containerd: Option<&str>, gpu: bool) -> NodeInput {
    NodeInput {
        name: name.into(),
        kubelet: KubeletVersion::parse(kubelet).unwrap(),
        containerd: containerd.and_then(Triple::parse_loose),
        gpu,
        os_image: "Ubuntu 24.04.1 LTS".into(),
        os_tag: None,
        kernel: None,
        driver_preinstalled: false,
    }
}

fn cluster(nodes: Vec<NodeInput>) -> ClusterInputs {
    ClusterInputs {
        nodes,
        ..Default::default()
    }
}

pub(super) fn one(kubelet: &str, containerd: &str) -> ClusterInputs {
    cluster(vec![node("gpu-1", kubelet, Some(containerd), true)])
}

pub(super) fn get<'a>(c: &'a ComputedValues, path: &str) -> Option<&'a Value> {
    c.values.iter().find(|v| v.path == path).map(|v| &v.value)
}

fn env(pairs: &[(&str, &str)]) -> Value {
    Value::Array(
        pairs
            .iter()
            .map(|(n, v)| json!({"name": n, "value": v}))
            .collect(),
    )
}

struct Case {
    /// Reference citation.
    why: &'static str,
    kubelet: &'static str,
    containerd: &'static str,
    chart: &'static str,
    toolkit_env: Option<Value>,
    device_plugin_env: Option<Value>,
    cdi_enabled: Option<bool>,
    toolkit_version: Option<&'static str>,
    access: PodGpuAccess,
}

#[test]
fn one_case_per_reference_row() {
    let socket = || Some(env(&[("CONTAINERD_SOCKET", SOCKET)]));
    // GPU isolation wherever CDI ends up off (matrix::GPU_ISOLATION; rke2-docs tab v25.3.x gives the same envs)
    let isolated = || {
        Some(env(&[
            ("CONTAINERD_SOCKET", SOCKET),
            (
                "ACCEPT_NVIDIA_VISIBLE_DEVICES_ENVVAR_WHEN_UNPRIVILEGED",
                "false",
            ),
            ("ACCEPT_NVIDIA_VISIBLE_DEVICES_AS_VOLUME_MOUNTS", "true"),
        ]))
    };
    let volume_mounts = || Some(env(&[("DEVICE_LIST_STRATEGY", "volume-mounts")]));
    let cases = [
        Case {
            why: "rke2 Dockerfile hardened-containerd tag, containerd 1.7 (v1.30.14 → 1.7.27): GPU Op ≤25.3 socket plus GPU isolation (toolkit v1.17.4 reads ACCEPT_*, CDI off); runtimeClassName",
            kubelet: "v1.30.14+rke2r1",
            containerd: "1.7.27-k3s1",
            chart: "v24.9.2",
            toolkit_env: isolated(),
            device_plugin_env: volume_mounts(),
            cdi_enabled: None,
            toolkit_version: None,
            access: PodGpuAccess::RuntimeClass,
        },
        Case {
            why: "rke2-docs add-ons/gpu_operators.md tab v25.3.x (chart v25.3.4): socket + two ACCEPT_* envs, DEVICE_LIST_STRATEGY=volume-mounts, CDI off (25.3.1/25.3.2 known issues), runtimeClassName",
            kubelet: "v1.30.14+rke2r1",
            containerd: "1.7.27-k3s1",
            chart: "v25.3.4",
            toolkit_env: isolated(),
            device_plugin_env: Some(env(&[("DEVICE_LIST_STRATEGY", "volume-mounts")])),
            cdi_enabled: Some(false),
            toolkit_version: None,
            access: PodGpuAccess::RuntimeClass,
        },
        Case {
            why: "rke2-docs gpu_operators.md tab v25.3.x applies on containerd 2.x too (RKE2 v1.31.6 → 2.0.2)",
            kubelet: "v1.31.6+rke2r1",
            containerd: "2.0.2-k3s2",
            chart: "v25.3.4",
            toolkit_env: isolated(),
            device_plugin_env: Some(env(&[("DEVICE_LIST_STRATEGY", "volume-mounts")])),
            cdi_enabled: Some(false),
            toolkit_version: None,
            access: PodGpuAccess::RuntimeClass,
        },
        Case {
            why: "rke2 Dockerfile hardened-containerd tag, containerd 1.7: GPU Op ≥25.10 on containerd 1.7: cdi.enabled=false, so GPU isolation (toolkit v1.18.1, device plugin v0.18.1 envvar strategy)",
            kubelet: "v1.30.14+rke2r1",
            containerd: "1.7.27-k3s1",
            chart: "v25.10.1",
            toolkit_env: isolated(),
            device_plugin_env: volume_mounts(),
            cdi_enabled: Some(false),
            toolkit_version: None,
            access: PodGpuAccess::RuntimeClass,
        },
        Case {
            why: "rke2-docs gpu_operators.md tab v25.10.x / rke2 Dockerfile hardened-containerd tag, containerd 2.0–2.1: only CONTAINERD_SOCKET, CDI default, no runtimeClassName",
            kubelet: "v1.31.6+rke2r1",
            containerd: "2.0.2-k3s2",
            chart: "v25.10.1",
            toolkit_env: socket(),
            device_plugin_env: None,
            cdi_enabled: None,
            toolkit_version: None,
            access: PodGpuAccess::Cdi,
        },
        Case {
            why: "rke2-docs gpu_operators.md tab v26.3.x (chart v26.3.2): only CONTAINERD_SOCKET",
            kubelet: "v1.33.5+rke2r1",
            containerd: "2.1.4-k3s1",
            chart: "v26.3.2",
            toolkit_env: socket(),
            device_plugin_env: None,
            cdi_enabled: None,
            toolkit_version: None,
            access: PodGpuAccess::Cdi,
        },
        Case {
            why: "rke2 Dockerfile hardened-containerd tag, containerd 2.2 with imports (v1.34.6 → 2.2.2): same as above",
            kubelet: "v1.34.6+rke2r1",
            containerd: "2.2.2-k3s1",
            chart: "v26.7.0",
            toolkit_env: socket(),
            device_plugin_env: None,
            cdi_enabled: None,
            toolkit_version: None,
            access: PodGpuAccess::Cdi,
        },
        Case {
            why: "rke2 Dockerfile hardened-containerd tag, containerd 2.3 (v1.36.3 → 2.3.3): same",
            kubelet: "v1.36.3+rke2r1",
            containerd: "2.3.3-k3s1",
            chart: "v26.7.0",
            toolkit_env: socket(),
            device_plugin_env: None,
            cdi_enabled: None,
            toolkit_version: None,
            access: PodGpuAccess::Cdi,
        },
        Case {
            why: "release-notes.rst 24.9.0 known limitation: force toolkit.version=v1.17.1-ubuntu20.04; GPU isolation (CDI off)",
            kubelet: "v1.30.6+rke2r1",
            containerd: "1.7.22-k3s1",
            chart: "v24.9.0",
            toolkit_env: isolated(),
            device_plugin_env: volume_mounts(),
            cdi_enabled: None,
            toolkit_version: Some("v1.17.1-ubuntu20.04"),
            access: PodGpuAccess::RuntimeClass,
        },
        Case {
            why: "release-notes.rst 24.9.1: default values for GPU Op ≥ 24.9.1: the socket plus GPU isolation (CDI off)",
            kubelet: "v1.30.6+rke2r1",
            containerd: "1.7.22-k3s1",
            chart: "v24.9.1",
            toolkit_env: isolated(),
            device_plugin_env: volume_mounts(),
            cdi_enabled: None,
            toolkit_version: None,
            access: PodGpuAccess::RuntimeClass,
        },
        Case {
            why: "K3s shares the socket (k3s config_linux.go); 26.3.0 notes add K3s support",
            kubelet: "v1.33.5+k3s1",
            containerd: "2.1.4-k3s1",
            chart: "v26.7.0",
            toolkit_env: socket(),
            device_plugin_env: None,
            cdi_enabled: None,
            toolkit_version: None,
            access: PodGpuAccess::Cdi,
        },
    ];
    for c in cases {
        let got = compute_values(
            &one(c.kubelet, c.containerd),
            &chart_at(c.chart),
            &ValuesOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", c.why));
        assert_eq!(
            get(&got, "toolkit.env"),
            c.toolkit_env.as_ref(),
            "{}",
            c.why
        );
        assert_eq!(
            get(&got, "devicePlugin.env"),
            c.device_plugin_env.as_ref(),
            "{}",
            c.why
        );
        assert_eq!(
            get(&got, "cdi.enabled").and_then(Value::as_bool),
            c.cdi_enabled,
            "{}",
            c.why
        );
        assert_eq!(
            get(&got, "toolkit.version").and_then(Value::as_str),
            c.toolkit_version,
            "{}",
            c.why
        );
        assert_eq!(got.pod_access, c.access, "{}", c.why);
        // 8: CONTAINERD_CONFIG=…tmpl never without --legacy-2021; no NRI key
        let env_names: Vec<&str> = got
            .values
            .iter()
            .filter(|v| v.path.ends_with(".env"))
            .flat_map(|v| v.value.as_array().into_iter().flatten())
            .filter_map(|e| e["name"].as_str())
            .collect();
        assert!(!env_names.contains(&"CONTAINERD_CONFIG"), "{}", c.why);
        assert!(get(&got, "cdi.nriPluginEnabled").is_none(), "{}", c.why);
        assert!(get(&got, "operator.defaultRuntime").is_none(), "{}", c.why);
        // 8: booleans in env are strings
        for v in got.values.iter().filter(|v| v.path.ends_with(".env")) {
            for e in v.value.as_array().unwrap() {
                assert!(e["value"].is_string(), "{}: {e}", c.why);
            }
        }
        for v in &got.values {
            assert!(!v.reason.is_empty() && !v.source.is_empty(), "{}", c.why);
        }
    }
}

#[test]
fn runtime_class_hint_for_25_3() {
    // rke2-docs gpu_operators.md tab v25.3.x: "Test pods need runtimeClassName: nvidia"
    let got = compute_values(
        &one("v1.31.6+rke2r1", "2.0.2-k3s2"),
        &chart_at("v25.3.4"),
        &ValuesOptions::default(),
    )
    .unwrap();
    assert!(
        got.hints
            .iter()
            .any(|h| h.contains("runtimeClassName: nvidia"))
    );
    assert!(
        got.warnings
            .iter()
            .any(|w| w.contains("not operational with RKE2"))
    );
}

#[test]
fn nri_only_where_every_gpu_node_supports_it() {
    // rke2-docs gpu_operators.md tab v26.3.x with NRI (chart v26.3.1): only cdi.nriPluginEnabled=true; containerd 2.1 from v1.33.5
    let nri = ValuesOptions {
        nri: true,
        ..Default::default()
    };
    let got = compute_values(
        &one("v1.33.5+rke2r1", "2.1.4-k3s1"),
        &chart_at("v26.3.1"),
        &nri,
    )
    .unwrap();
    assert_eq!(get(&got, "cdi.nriPluginEnabled"), Some(&json!(true)));
    assert!(get(&got, "toolkit.env").is_none());
    assert_eq!(got.pod_access, PodGpuAccess::Nri);
    assert!(got.warnings.iter().any(|w| w.contains("experimental")));
    // toolkit v1.19.0 runtime.go: no-op configurer in NRI mode, no SIGHUP: RKE2 renders nvidia at its next restart.
    assert!(
        got.after_install
            .iter()
            .any(|n| n.contains("only at its next restart") && n.contains("rke2-agent")),
        "{:?}",
        got.after_install
    );
    // toolkit v1.19 (chart v26.3.x) injects NRI CDI devices only in the operator's namespace; v1.20 (v26.7.0) adds
    // NRI_MANAGEMENT_CDI_DEVICE_NAMESPACES.
    assert!(
        got.hints
            .iter()
            .any(|h| h.contains("only into pods in the operator's namespace"))
    );
    let got = compute_values(
        &one("v1.34.6+rke2r1", "2.2.2-k3s1"),
        &chart_at("v26.7.0"),
        &nri,
    )
    .unwrap();
    assert!(
        got.hints
            .iter()
            .any(|h| h.contains("NRI_MANAGEMENT_CDI_DEVICE_NAMESPACES="))
    );
    assert!(
        compute_values(
            &one("v1.34.6+rke2r1", "2.2.2-k3s1"),
            &chart_at("v26.7.0"),
            &ValuesOptions::default()
        )
        .unwrap()
        .after_install
        .is_empty()
    );
    // containerd 2.0 has no NRI support the plugin accepts (26.3.0 notes: 1.7.30+, 2.1, 2.2)
    let e = compute_values(
        &one("v1.33.0+rke2r1", "2.0.4-k3s1"),
        &chart_at("v26.7.0"),
        &nri,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("gpu-1") && e.contains("2.0.4"), "{e}");
    // mixed lines: one node on containerd 1.7.2x refuses the whole cluster
    let mixed = cluster(vec![
        node("gpu-new", "v1.34.6+rke2r1", Some("2.2.2-k3s1"), true),
        node("gpu-old", "v1.30.14+rke2r1", Some("1.7.27-k3s1"), true),
    ]);
    let e = compute_values(&mixed, &chart_at("v26.7.0"), &nri)
        .unwrap_err()
        .to_string();
    assert!(e.contains("gpu-old") && !e.contains("gpu-new"), "{e}");
    // chart before 26.3 has no NRI plugin
    let e = compute_values(
        &one("v1.34.6+rke2r1", "2.2.2-k3s1"),
        &chart_at("v25.10.1"),
        &nri,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("v26.3.0"), "{e}");
}

#[test]
fn mixed_lines_agree_on_cdi_off() {
    // rke2-docs gpu_operators.md; containerd 1.7 needs enable_cdi: ≥25.10 on containerd 1.7 needs cdi.enabled=false; one value for the whole cluster
    let mixed = cluster(vec![
        node("gpu-new", "v1.33.5+rke2r1", Some("2.1.4-k3s1"), true),
        node("gpu-old", "v1.30.14+rke2r1", Some("1.7.27-k3s1"), true),
        node("cpu-old", "v1.30.14+rke2r1", Some("1.7.27-k3s1"), false),
    ]);
    let got = compute_values(&mixed, &chart_at("v26.7.0"), &ValuesOptions::default()).unwrap();
    assert_eq!(get(&got, "cdi.enabled"), Some(&json!(false)));
    let why = &got
        .values
        .iter()
        .find(|v| v.path == "cdi.enabled")
        .unwrap()
        .reason;
    assert!(why.contains("gpu-old") && why.contains("gpu-new"), "{why}");
    assert!(!why.contains("cpu-old"), "{why}");
    assert_eq!(got.pod_access, PodGpuAccess::RuntimeClass);
    // only the GPU nodes count: CPU-only containerd 1.7 nodes do not turn CDI off
    let gpu_new_only = cluster(vec![
        node("gpu-new", "v1.33.5+rke2r1", Some("2.1.4-k3s1"), true),
        node("cpu-old", "v1.30.14+rke2r1", Some("1.7.27-k3s1"), false),
    ]);
    let got = compute_values(
        &gpu_new_only,
        &chart_at("v26.7.0"),
        &ValuesOptions::default(),
    )
    .unwrap();
    assert!(get(&got, "cdi.enabled").is_none());
}

#[test]
fn cdi_overrides() {
    let on = ValuesOptions {
        cdi: Some(true),
        ..Default::default()
    };
    // 25.3.1/25.3.2 known issues: CDI not operational with RKE2
    let e = compute_values(
        &one("v1.31.6+rke2r1", "2.0.2-k3s2"),
        &chart_at("v25.3.4"),
        &on,
    )
    .unwrap_err();
    assert!(matches!(e, Error::ValuesRefused { .. }), "{e}");
    // CDI needs containerd ≥ 2.0
    let e = compute_values(
        &one("v1.30.14+rke2r1", "1.7.27-k3s1"),
        &chart_at("v26.7.0"),
        &on,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("containerd 1.x"), "{e}");
    let forced = ValuesOptions { force: true, ..on };
    let got = compute_values(
        &one("v1.30.14+rke2r1", "1.7.27-k3s1"),
        &chart_at("v26.7.0"),
        &forced,
    )
    .unwrap();
    assert_eq!(get(&got, "cdi.enabled"), Some(&json!(true)));
    let off = ValuesOptions {
        cdi: Some(false),
        ..Default::default()
    };
    let got = compute_values(
        &one("v1.34.6+rke2r1", "2.2.2-k3s1"),
        &chart_at("v26.7.0"),
        &off,
    )
    .unwrap();
    assert_eq!(get(&got, "cdi.enabled"), Some(&json!(false)));
    assert_eq!(got.pod_access, PodGpuAccess::RuntimeClass);
}

#[test]
fn legacy_2021_values_only_on_request_and_loudly() {
    // NVIDIA cloud-native-docs getting-started.rst, Jan 2023 – Sep 2024 NVIDIA docs; 3.1: operator.defaultRuntime exists up to v24.9.2
    let legacy = ValuesOptions {
        legacy_2021: true,
        ..Default::default()
    };
    let got = compute_values(
        &one("v1.30.14+rke2r1", "1.7.27-k3s1"),
        &chart_at("v24.9.2"),
        &legacy,
    )
    .unwrap();
    assert_eq!(
        get(&got, "toolkit.env"),
        Some(&env(&[
            (
                "CONTAINERD_CONFIG",
                "/var/lib/rancher/rke2/agent/etc/containerd/config.toml.tmpl"
            ),
            ("CONTAINERD_SOCKET", SOCKET),
            ("CONTAINERD_RUNTIME_CLASS", "nvidia"),
            ("CONTAINERD_SET_AS_DEFAULT", "true"),
            // nvidia as the default runtime makes isolation matter most (CDI off on 24.9.2)
            (
                "ACCEPT_NVIDIA_VISIBLE_DEVICES_ENVVAR_WHEN_UNPRIVILEGED",
                "false",
            ),
            ("ACCEPT_NVIDIA_VISIBLE_DEVICES_AS_VOLUME_MOUNTS", "true"),
        ]))
    );
    assert_eq!(
        get(&got, "operator.defaultRuntime"),
        Some(&json!("containerd"))
    );
    assert!(
        got.warnings
            .iter()
            .any(|w| w.contains("STATIC") && w.contains("reboot"))
    );
    // values.yaml at the tags: removed in v25.3.0 → not set; data-dir moves the template
    let mut c = one("v1.34.6+rke2r1", "2.2.2-k3s1");
    c.data_dir = Some("/data/rke2".into());
    let got = compute_values(&c, &chart_at("v26.7.0"), &legacy).unwrap();
    assert!(get(&got, "operator.defaultRuntime").is_none());
    assert_eq!(
        get(&got, "toolkit.env").unwrap()[0]["value"],
        "/data/rke2/agent/etc/containerd/config.toml.tmpl"
    );
    assert!(got.warnings.iter().any(|w| w.contains("version = 3")));
}

#[test]
fn generic_clusters_need_opt_in() {
    let kubeadm = cluster(vec![node(
        "n1",
        "v1.29.4-eks-036c24b",
        Some("1.7.11"),
        true,
    )]);
    let e = compute_values(&kubeadm, &chart_at("v26.7.0"), &ValuesOptions::default()).unwrap_err();
    assert!(matches!(e, Error::NotRke2 { .. }), "{e}");
    assert!(e.to_string().contains("n1 (v1.29.4-eks-036c24b)"));
    let generic = ValuesOptions {
        allow_generic: true,
        ..Default::default()
    };
    let got = compute_values(&kubeadm, &chart_at("v26.7.0"), &generic).unwrap();
    assert!(got.values.is_empty(), "{:?}", got.values);
    assert!(got.to_yaml().contains("{}"));
}

#[test]
fn chart_checks() {
    let mut other = chart_at("v26.7.0");
    other.meta.name = "nginx".into();
    let e = compute_values(
        &one("v1.34.6+rke2r1", "2.2.2"),
        &other,
        &ValuesOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::NotGpuOperatorChart { .. }));
    // newer than the matrix: nearest (last) row, and say so
    let got = compute_values(
        &one("v1.36.3+rke2r1", "2.3.3"),
        &chart_at("v27.1.0"),
        &ValuesOptions::default(),
    )
    .unwrap();
    assert_eq!(got.chart_row, CHART_ROWS.last().unwrap().label);
    assert!(got.warnings.iter().any(|w| w.contains("newer than")));
    let got = compute_values(
        &one("v1.21.5+rke2r2", "1.4.11-k3s1"),
        &chart_at("v1.7.0"),
        &ValuesOptions::default(),
    )
    .unwrap();
    assert_eq!(got.chart_row, CHART_ROWS[0].label);
    assert!(got.warnings.iter().any(|w| w.contains("older than")));
}

#[test]
fn known_bad_chart_refused_without_its_workaround() {
    // 24.9.0 defect is Fail; its workaround needs toolkit.version in the chart
    let mut c = chart_at("v24.9.0");
    c.values["toolkit"]
        .as_object_mut()
        .unwrap()
        .remove("version");
    let e = compute_values(
        &one("v1.30.6+rke2r1", "1.7.22"),
        &c,
        &ValuesOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::KnownBadChart { .. }), "{e}");
    assert!(e.to_string().contains("--force"));
    let forced = ValuesOptions {
        force: true,
        ..Default::default()
    };
    let got = compute_values(&one("v1.30.6+rke2r1", "1.7.22"), &c, &forced).unwrap();
    assert!(got.dropped.iter().any(|d| d.path == "toolkit.version"));
    assert!(got.warnings.iter().any(|w| w.contains("--force")));
}

/// NVIDIA/gpu-operator#1694: v25.3.3 ignores the RKE2 socket; refused, naming
/// the fixed v25.3.4, unless --force.
#[test]
fn chart_25_3_3_is_refused_naming_25_3_4() {
    let c = chart_at("v25.3.3");
    let nodes = one("v1.31.6+rke2r1", "2.0.2");
    let e = compute_values(&nodes, &c, &ValuesOptions::default()).unwrap_err();
    assert!(matches!(e, Error::KnownBadChart { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("v25.3.4") && text.contains("CONTAINERD_SOCKET"),
        "{text}"
    );
    // `helm rke2gpu upgrade` passes --force to Helm: the message names our override too.
    assert!(
        text.contains("pass --force") && text.contains("--rke2gpu-force"),
        "{text}"
    );
    let forced = ValuesOptions {
        force: true,
        ..Default::default()
    };
    let got = compute_values(&nodes, &c, &forced).unwrap();
    assert!(
        got.warnings
            .iter()
            .any(|w| w.contains("--force") && w.contains("v25.3.3"))
    );
    // The neighbours are fine.
    assert!(compute_values(&nodes, &chart_at("v25.3.4"), &ValuesOptions::default()).is_ok());
    assert!(compute_values(&nodes, &chart_at("v25.3.2"), &ValuesOptions::default()).is_ok());
}

#[test]
fn keys_the_chart_lacks_are_dropped() {
    let mut c = chart_at("v25.3.4");
    c.values["devicePlugin"]
        .as_object_mut()
        .unwrap()
        .remove("env");
    let got = compute_values(
        &one("v1.31.6+rke2r1", "2.0.2"),
        &c,
        &ValuesOptions::default(),
    )
    .unwrap();
    assert!(get(&got, "devicePlugin.env").is_none());
    assert!(got.dropped.iter().any(|d| d.path == "devicePlugin.env"));
    assert!(
        got.warnings
            .iter()
            .any(|w| w.contains("no key `devicePlugin.env`"))
    );
}

#[test]
fn cis_needs_a_privileged_namespace() {
    let mut c = one("v1.34.6+rke2r1", "2.2.2");
    c.cis_profile = true;
    let got = compute_values(&c, &chart_at("v26.7.0"), &ValuesOptions::default()).unwrap();
    assert!(got.namespace_needs_privileged);
    assert!(
        got.hints
            .iter()
            .any(|h| h.contains("pod-security.kubernetes.io/enforce=privileged"))
    );
}

#[test]
fn unknown_containerd_is_inferred_from_the_rke2_release() {
    let c = cluster(vec![node("gpu-1", "v1.30.14+rke2r1", None, true)]);
    let got = compute_values(&c, &chart_at("v26.7.0"), &ValuesOptions::default()).unwrap();
    assert_eq!(get(&got, "cdi.enabled"), Some(&json!(false)));
    assert!(
        got.warnings
            .iter()
            .any(|w| w.contains("assuming containerd"))
    );
}

#[test]
fn yaml_has_why_comments_and_round_trips() {
    let got = compute_values(
        &one("v1.31.6+rke2r1", "2.0.2"),
        &chart_at("v25.3.4"),
        &ValuesOptions::default(),
    )
    .unwrap();
    let yaml = got.to_yaml();
    assert!(yaml.contains("# why: "), "{yaml}");
    assert!(yaml.contains("# source: "), "{yaml}");
    assert!(yaml.contains("value: \"false\""), "{yaml}");
    let back: Value = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(back, got.tree());
    assert_eq!(back["toolkit"]["env"][0]["value"], SOCKET);
    assert_eq!(back["cdi"]["enabled"], false);
    for line in yaml.lines().filter(|l| l.trim_start().starts_with('#')) {
        assert!(line.chars().count() <= 140, "{line}");
    }
}

#[test]
fn set_flags_keep_strings_strings() {
    let got = compute_values(
        &one("v1.31.6+rke2r1", "2.0.2"),
        &chart_at("v25.3.4"),
        &ValuesOptions::default(),
    )
    .unwrap();
    let flags = got.set_flags();
    let pairs: Vec<(String, String)> = flags
        .chunks(2)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect();
    assert!(pairs.contains(&(
        "--set-string".into(),
        format!("toolkit.env[0].value={SOCKET}")
    )));
    assert!(pairs.contains(&("--set-string".into(), "toolkit.env[1].value=false".into())));
    assert!(pairs.contains(&("--set".into(), "cdi.enabled=false".into())));
    assert_eq!(escape_strval("a,b\\c"), "a\\,b\\\\c");
}

#[test]
fn warns_when_user_set_clobbers_the_computed_list() {
    let got = compute_values(
        &one("v1.34.6+rke2r1", "2.2.2"),
        &chart_at("v26.7.0"),
        &ValuesOptions::default(),
    )
    .unwrap();
    let args: Vec<String> = [
        "--set",
        "toolkit.env[0].name=RUNTIME_CONFIG_SOURCE,toolkit.env[0].value=file",
        "--set-string=toolkit.env[1].value=x",
        "--set",
        "driver.enabled=false",
        "--wait",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let w = user_set_conflicts(&got, &args);
    assert_eq!(w.len(), 3, "{w:?}");
    assert!(
        w[0].contains("entry 0 (CONTAINERD_SOCKET)") && w[0].contains("index 1"),
        "{}",
        w[0]
    );
    assert!(w[2].contains("index 1"), "{}", w[2]);
}

#[test]
fn messages_built_from_the_matrix_read_as_before() {
    // The versions in these messages come from matrix.rs; the text is unchanged.
    let e = compute_values(
        &one("v1.33.0+rke2r1", "2.0.4"),
        &chart_at("v26.7.0"),
        &ValuesOptions {
            nri: true,
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("--nri needs containerd 1.7.30+ or ≥ 2.1 on every GPU node")
            && e.contains("(containerd 2.1 ships from v1.31.13, v1.32.9, v1.33.5, v1.34.1)"),
        "{e}"
    );
    let e = compute_values(
        &one("v1.30.14+rke2r1", "1.7.27"),
        &chart_at("v26.7.0"),
        &ValuesOptions {
            cdi: Some(true),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("upgrade RKE2 to ≥ v1.31.6/v1.32.2 or drop --cdi"),
        "{e}"
    );
    let e = compute_values(
        &one("v1.33.0+rke2r1", "2.0.4"),
        &chart_at("v25.10.1"),
        &ValuesOptions {
            nri: true,
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("(cdi.nriPluginEnabled arrived in chart v26.3.0)"),
        "{e}"
    );
    let got = compute_values(
        &one("v1.34.6+rke2r1", "2.2.2"),
        &chart_at("v24.9.2"),
        &ValuesOptions::default(),
    )
    .unwrap();
    assert!(
        got.warnings
            .iter()
            .any(|w| w.contains("predates containerd 2.0 support (chart v25.3.0)")),
        "{:?}",
        got.warnings
    );
    let got = compute_values(
        &one("v1.34.6+rke2r1", "2.2.2"),
        &chart_at("v26.7.0"),
        &ValuesOptions {
            legacy_2021: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(
        got.hints
            .iter()
            .any(|h| h.contains("has no operator.defaultRuntime (removed in v25.3.0)")),
        "{:?}",
        got.hints
    );
}

fn user(args: &[&str], files: &[(&str, &str)]) -> UserValues {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let files: Vec<(String, String)> = files
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect();
    let read = UserValues::from_helm_args(&args, &|path| {
        files
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, t)| t.clone())
            .ok_or_else(|| "no such file".to_string())
    });
    assert!(read.warnings.is_empty(), "{:?}", read.warnings);
    read.values
}

/// k3s pkg/agent/containerd/runtimes.go renders only nvidia, nvidia-experimental and nvidia-cdi; gpu-operator
/// object_controls.go runs the operands with runtimeClassName = operator.runtimeClass: any other name is refused.
#[test]
fn custom_runtime_class_is_refused_on_rke2_unless_forced() {
    let nodes = one("v1.34.6+rke2r1", "2.2.2-k3s1");
    let file = "operator:\n  runtimeClass: foo\n";
    for (args, origin) in [
        (
            vec!["--set", "operator.runtimeClass=foo"],
            "--set operator.runtimeClass=foo",
        ),
        (
            vec!["--set-string", "operator.runtimeClass=foo"],
            "--set-string operator.runtimeClass=foo",
        ),
        (vec!["-f", "my-values.yaml"], "-f my-values.yaml"),
    ] {
        for chart in ["v25.3.4", "v25.10.1", "v26.7.0"] {
            let u = user(&args, &[("my-values.yaml", file)]);
            let e = compute_values_with(&nodes, &chart_at(chart), &ValuesOptions::default(), &u)
                .unwrap_err();
            assert!(matches!(e, Error::ValuesRefused { .. }), "{e}");
            let text = e.to_string();
            assert!(
                text.contains(origin)
                    && text.contains("nvidia, nvidia-experimental, nvidia-cdi")
                    && text.contains("--set operator.runtimeClass=nvidia")
                    && text.contains("--force"),
                "{chart}: {text}"
            );
        }
    }
    // --force goes on, loudly.
    let u = user(&["--set", "operator.runtimeClass=foo"], &[]);
    let forced = ValuesOptions {
        force: true,
        ..Default::default()
    };
    let got = compute_values_with(&nodes, &chart_at("v26.7.0"), &forced, &u).unwrap();
    assert!(
        got.warnings
            .iter()
            .any(|w| w.starts_with("--force: operator.runtimeClass=foo"))
    );
    // The three names RKE2 renders are fine; so is the chart's own default.
    for name in ["nvidia", "nvidia-experimental", "nvidia-cdi"] {
        let u = user(&["--set", &format!("operator.runtimeClass={name}")], &[]);
        compute_values_with(&nodes, &chart_at("v26.7.0"), &ValuesOptions::default(), &u)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // A later --set-string wins over the file (Helm applies --set-string last).
    let u = user(
        &[
            "-f",
            "my-values.yaml",
            "--set-string",
            "operator.runtimeClass=nvidia",
        ],
        &[("my-values.yaml", file)],
    );
    compute_values_with(&nodes, &chart_at("v26.7.0"), &ValuesOptions::default(), &u).unwrap();
    // NRI mode puts no runtime class on the operands: not refused there.
    let nri = ValuesOptions {
        nri: true,
        ..Default::default()
    };
    let u = user(&["--set", "operator.runtimeClass=foo"], &[]);
    compute_values_with(&nodes, &chart_at("v26.7.0"), &nri, &u).unwrap();
    // A chart whose own values.yaml names another class is refused the same way.
    let mut c = chart_at("v26.7.0");
    c.values["operator"]["runtimeClass"] = json!("gpu");
    let e = compute_values(&nodes, &c, &ValuesOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("operator.runtimeClass=gpu (from the chart's values.yaml"),
        "{e}"
    );
    // Not an RKE2 cluster: nothing to refuse.
    let kubeadm = cluster(vec![node(
        "n1",
        "v1.29.4-eks-036c24b",
        Some("1.7.11"),
        true,
    )]);
    let generic = ValuesOptions {
        allow_generic: true,
        ..Default::default()
    };
    compute_values_with(&kubeadm, &chart_at("v26.7.0"), &generic, &u).unwrap();
}

/// gpu-operator v26.7.0 templates/validations.yaml: "the NRI Plugin cannot be enabled when the Container Toolkit is
/// disabled" (and, since v26.3.0, when CDI is disabled): refused before Helm, from any source of the value.
#[test]
fn nri_refuses_toolkit_or_cdi_disabled() {
    let nodes = one("v1.34.6+rke2r1", "2.2.2-k3s1");
    let nri = ValuesOptions {
        nri: true,
        ..Default::default()
    };
    for (args, origin) in [
        (
            vec!["--set", "toolkit.enabled=false"],
            "--set toolkit.enabled=false",
        ),
        (vec!["-f", "host-toolkit.yaml"], "-f host-toolkit.yaml"),
        (
            vec!["--set-json", "toolkit.enabled=false"],
            "--set-json toolkit.enabled=false",
        ),
    ] {
        for chart in ["v26.3.0", "v26.7.0"] {
            let u = user(
                &args,
                &[("host-toolkit.yaml", "toolkit:\n  enabled: false\n")],
            );
            let e = compute_values_with(&nodes, &chart_at(chart), &nri, &u).unwrap_err();
            assert!(matches!(e, Error::ValuesRefused { .. }), "{e}");
            let text = e.to_string();
            assert!(
                text.contains("--nri with toolkit.enabled=false")
                    && text.contains(origin)
                    && text.contains("toolkit container"),
                "{chart}: {text}"
            );
        }
    }
    // --set-string "false": clusterpolicy.yaml renders `enabled: false` unquoted (v26.3.x disables the toolkit;
    // v26.7.0's validation fails with `incompatible types for comparison`): refused the same way.
    let u = user(&["--set-string", "toolkit.enabled=false"], &[]);
    let e = compute_values_with(&nodes, &chart_at("v26.3.0"), &nri, &u).unwrap_err();
    assert!(
        e.to_string().contains("--set-string toolkit.enabled=false"),
        "{e}"
    );
    // The user's cdi.nriPluginEnabled=true is NRI mode too; cdi.enabled=false is refused with it.
    let u = user(
        &["--set", "cdi.nriPluginEnabled=true,cdi.enabled=false"],
        &[],
    );
    let e = compute_values_with(&nodes, &chart_at("v26.7.0"), &ValuesOptions::default(), &u)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cdi.nriPluginEnabled=true with cdi.enabled=false"),
        "{e}"
    );
    // The toolkit on (explicitly or by default) is fine.
    let u = user(&["--set", "toolkit.enabled=true"], &[]);
    compute_values_with(&nodes, &chart_at("v26.7.0"), &nri, &u).unwrap();
    // Without NRI the host may provide the toolkit.
    let u = user(&["--set", "toolkit.enabled=false"], &[]);
    compute_values_with(&nodes, &chart_at("v26.7.0"), &ValuesOptions::default(), &u).unwrap();
    // A chart without the NRI plugin still says so first.
    let e = compute_values_with(&nodes, &chart_at("v25.10.1"), &nri, &u)
        .unwrap_err()
        .to_string();
    assert!(e.contains("has no NRI plugin"), "{e}");
}

/// Toolkit v1.11.0…v1.20.0 honour ACCEPT_NVIDIA_VISIBLE_DEVICES_* and default to accepting the env from unprivileged
/// containers; device plugin v0.9.0…v0.20.0 has DEVICE_LIST_STRATEGY=volume-mounts. So wherever CDI ends up off, not
/// only on 25.3.x, pods on the nvidia runtime need both for isolation; never with CDI on.
#[test]
fn gpu_isolation_wherever_cdi_is_off() {
    let iso = [
        "ACCEPT_NVIDIA_VISIBLE_DEVICES_ENVVAR_WHEN_UNPRIVILEGED",
        "ACCEPT_NVIDIA_VISIBLE_DEVICES_AS_VOLUME_MOUNTS",
    ];
    let names = |c: &ComputedValues| -> Vec<String> {
        get(c, "toolkit.env")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| e["name"].as_str().map(str::to_string))
            .collect()
    };
    let off = ValuesOptions {
        cdi: Some(false),
        ..Default::default()
    };
    let on = ValuesOptions {
        cdi: Some(true),
        ..Default::default()
    };
    let new = one("v1.34.6+rke2r1", "2.2.2-k3s1");
    let old = one("v1.30.14+rke2r1", "1.7.27-k3s1");
    // (nodes, chart, options, isolated)
    let cases: [(&ClusterInputs, &str, &ValuesOptions, bool); 9] = [
        (&new, "v26.7.0", &off, true), // --cdi false on a CDI-by-default chart
        (&new, "v26.7.0", &ValuesOptions::default(), false), // CDI on: cdi-annotations,cdi-cri stays
        (&old, "v26.7.0", &ValuesOptions::default(), true), // containerd 1.7: cdi.enabled=false computed
        (&new, "v25.10.1", &off, true),
        (&old, "v24.9.2", &ValuesOptions::default(), true), // ≤ 24.9: no CDI by default
        (&old, "v24.9.2", &on, false), // old CDI mode (envvar,cdi-annotations) keeps its strategy
        (&old, "v23.9.2", &ValuesOptions::default(), true),
        (&old, "v22.9.0", &ValuesOptions::default(), true), // toolkit v1.11.0: the first that reads the envs
        (&old, "v1.11.0", &ValuesOptions::default(), false), // toolkit v1.10.0 ignores them
    ];
    for (nodes, chart, opts, want) in cases {
        let got = compute_values(nodes, &chart_at(chart), opts)
            .unwrap_or_else(|e| panic!("{chart}: {e}"));
        let n = names(&got);
        assert_eq!(
            iso.iter().all(|i| n.iter().any(|x| x == i)),
            want,
            "{chart} {opts:?}: {n:?}"
        );
        assert_eq!(
            get(&got, "devicePlugin.env")
                == Some(&env(&[("DEVICE_LIST_STRATEGY", "volume-mounts")])),
            want,
            "{chart} {opts:?}"
        );
        if want {
            let tv = got.values.iter().find(|v| v.path == "toolkit.env").unwrap();
            assert!(tv.reason.contains("GPU isolation"), "{}", tv.reason);
            assert!(
                tv.source.contains("nvidia-container-toolkit v1.11.0")
                    && tv.source.contains("k8s-device-plugin"),
                "{}",
                tv.source
            );
            // the socket stays first
            assert_eq!(n[0], "CONTAINERD_SOCKET");
        }
    }
    // Before toolkit v1.11.0 the envs cannot be set: say so.
    let got = compute_values(&old, &chart_at("v1.11.0"), &ValuesOptions::default()).unwrap();
    assert!(
        got.warnings
            .iter()
            .any(|w| w.contains("does not read ACCEPT_NVIDIA_VISIBLE_DEVICES_*")),
        "{:?}",
        got.warnings
    );
    // NRI: no toolkit env, no device-plugin strategy override.
    let nri = ValuesOptions {
        nri: true,
        ..Default::default()
    };
    let got = compute_values(&new, &chart_at("v26.7.0"), &nri).unwrap();
    assert!(get(&got, "devicePlugin.env").is_none());
}

fn sles(name: &str) -> NodeInput {
    NodeInput {
        os_image: "SUSE Linux Enterprise Server 16.0".into(),
        ..node(name, "v1.34.6+rke2r1", Some("2.2.2-k3s1"), true)
    }
}

/// rke2-docs add-ons/gpu_operators.md tab v26.3.x: "in SLES 16.0" driver.repository=registry.suse.com/third-party/nvidia,
/// usePrecompiled: true, version: 595. From --os sles16, or detected when every GPU node's osImage is SLES 16.
#[test]
fn sles16_driver_values_from_the_os_image_or_os_flag() {
    let drv = |c: &ComputedValues| {
        (
            get(c, "driver.repository").cloned(),
            get(c, "driver.usePrecompiled").cloned(),
            get(c, "driver.version").cloned(),
        )
    };
    let suse = (
        Some(json!("registry.suse.com/third-party/nvidia")),
        Some(json!(true)),
        Some(json!("595")),
    );
    let none = (None, None, None);
    // Detected: every GPU node runs SLES 16 (CPU nodes do not count).
    let mut c = cluster(vec![sles("gpu-1"), sles("gpu-2")]);
    c.nodes
        .push(node("cpu-1", "v1.34.6+rke2r1", Some("2.2.2-k3s1"), false));
    for chart in ["v26.3.2", "v26.7.0"] {
        let got = compute_values(&c, &chart_at(chart), &ValuesOptions::default()).unwrap();
        assert_eq!(drv(&got), suse, "{chart}");
        let why = &got
            .values
            .iter()
            .find(|v| v.path == "driver.version")
            .unwrap()
            .reason;
        assert!(
            why.contains("GPU architecture") && why.contains("osImage"),
            "{why}"
        );
        // The values pass as strings/bools Helm keeps (driver.version "595" stays a string).
        assert!(got.set_flags().contains(&"driver.version=595".to_string()));
    }
    // Ubuntu GPU nodes: nothing, unless asked.
    let ubuntu = one("v1.34.6+rke2r1", "2.2.2-k3s1");
    let got = compute_values(&ubuntu, &chart_at("v26.7.0"), &ValuesOptions::default()).unwrap();
    assert_eq!(drv(&got), none);
    let sles16 = ValuesOptions {
        os: NodeOs::Sles16,
        ..Default::default()
    };
    let got = compute_values(&ubuntu, &chart_at("v26.7.0"), &sles16).unwrap();
    assert_eq!(drv(&got), suse);
    assert!(
        got.warnings
            .iter()
            .any(|w| w.contains("do not run SLES 16")),
        "{:?}",
        got.warnings
    );
    // Mixed OS under auto: not set, said why.
    let mixed = cluster(vec![
        sles("gpu-1"),
        node("gpu-2", "v1.34.6+rke2r1", Some("2.2.2-k3s1"), true),
    ]);
    let got = compute_values(&mixed, &chart_at("v26.7.0"), &ValuesOptions::default()).unwrap();
    assert_eq!(drv(&got), none);
    assert!(
        got.warnings
            .iter()
            .any(|w| w.contains("cluster-wide driver image")),
        "{:?}",
        got.warnings
    );
    // --os other: never.
    let other = ValuesOptions {
        os: NodeOs::Other,
        ..Default::default()
    };
    assert_eq!(
        drv(&compute_values(&c, &chart_at("v26.7.0"), &other).unwrap()),
        none
    );
    // A chart before the docs' v26.3.x tab: only a hint under auto.
    let got = compute_values(&c, &chart_at("v25.10.1"), &ValuesOptions::default()).unwrap();
    assert_eq!(drv(&got), none);
    assert!(
        got.hints.iter().any(|h| h.contains("chart ≥ v26.3.0")),
        "{:?}",
        got.hints
    );
    // driver.enabled=false from the user: the operator installs no driver.
    let u = user(&["--set", "driver.enabled=false"], &[]);
    let got = compute_values_with(&c, &chart_at("v26.7.0"), &ValuesOptions::default(), &u).unwrap();
    assert_eq!(drv(&got), none);
}
