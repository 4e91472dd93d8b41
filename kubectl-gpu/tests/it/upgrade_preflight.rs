//! The upgrade preflight (`check-runtime --upgrade-to-rke2 R
//! --upgrade-to-chart V`) on realistic clusters: GFD-labelled GPU nodes at
//! the RKE2/K3s releases around each containerd boundary, the operator's
//! Deployment and Helm release Secret as the chart writes them, and (for
//! `--deep`) node files laid out as a root and read by the same probe
//! sequence and script the node agent runs. Each case asserts what the
//! upgrade does according to the release tables (rancher/rke2 Dockerfile
//! per tag, k3s release notes) and the chart's values.yaml per version.

use k8s_openapi::api::core::v1::Secret;
use rke2gpu::check_runtime::upgrade::{UpgradePlan, UpgradeTarget};
use rke2gpu::check_runtime::{self, CheckReport, Finding, Status, host};
use rke2gpu::facts::NodeFacts;
use rke2gpu::node::probe::ProbeRequest;
use rke2gpu::snapshot::{OperatorObjects, Snapshot};
use rke2gpu::version::{KubeletVersion, Triple};
use serde_json::{Value, json};

use super::checks_rules::{cluster_policy, deployment, gpu_node, rc};

const CTD: &str = "var/lib/rancher/rke2/agent/etc/containerd";

fn repo_file(rel: &str) -> String {
    std::fs::read_to_string(format!("{}/../{rel}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn release_secret(chart: &str, config: Value) -> Secret {
    let release = json!({
        "name": "gpu-operator", "namespace": "gpu-operator", "version": 1,
        "info": {"status": "deployed"},
        "chart": {"metadata": {"name": "gpu-operator", "version": chart, "appVersion": chart}},
        "config": config,
        "manifest": "",
    });
    let data = rke2gpu::helm::release::encode_release_json(&release).unwrap();
    let mut s: Secret = serde_json::from_value(json!({
        "metadata": {"name": "sh.helm.release.v1.gpu-operator.v1", "namespace": "gpu-operator",
            "labels": {"owner": "helm", "name": "gpu-operator", "status": "deployed", "version": "1"}},
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

/// A cluster of GPU nodes at `kubelet`/`containerd`, with the operator at
/// `chart` (none: no operator) installed with the user values `config`.
pub(crate) fn cluster(
    nodes: &[(&str, &str, &str)],
    chart: Option<&str>,
    config: Value,
) -> Snapshot {
    Snapshot {
        server: "https://127.0.0.1:6443".into(),
        nodes: nodes
            .iter()
            .map(|(n, k, c)| gpu_node(n, k, &format!("containerd://{c}"), "8"))
            .collect(),
        runtime_classes: Some(vec![rc("nvidia", "nvidia")]),
        cluster_policies: chart.map(|_| {
            vec![cluster_policy(
                "ready",
                json!([{"name": "CONTAINERD_SOCKET", "value": "/run/k3s/containerd/containerd.sock"}]),
                false,
            )]
        }),
        crd_present: Some(chart.is_some()),
        operator: chart.map(|c| OperatorObjects {
            namespace: "gpu-operator".into(),
            found_by: "operator Deployment labels".into(),
            deployments: vec![deployment(c)],
            helm_secrets: vec![release_secret(c, config)],
            ..Default::default()
        }),
        unreadable: vec![],
    }
}

pub(crate) fn one_node(kubelet: &str, containerd: &str, chart: Option<&str>) -> Snapshot {
    cluster(&[("gpu-1", kubelet, containerd)], chart, json!({}))
}

pub(crate) fn target(rke2: Option<&str>, chart: Option<&str>) -> UpgradeTarget {
    UpgradeTarget {
        rke2: rke2.map(|r| KubeletVersion::parse(r).unwrap()),
        chart: chart.map(|c| Triple::parse_loose(c).unwrap()),
    }
}

pub(crate) fn preflight(
    snap: &Snapshot,
    t: &UpgradeTarget,
    deep: Option<&host::DeepRead>,
) -> CheckReport {
    check_runtime::evaluate_upgrade(snap, &[], deep, t).unwrap()
}

pub(crate) fn plan(r: &CheckReport) -> &UpgradePlan {
    r.upgrade.as_ref().expect("an upgrade plan")
}

pub(crate) fn with_id<'a>(r: &'a CheckReport, id: &str) -> Vec<&'a Finding> {
    r.findings.iter().filter(|f| f.id == id).collect()
}

pub(crate) fn one<'a>(r: &'a CheckReport, id: &str) -> &'a Finding {
    let f = with_id(r, id);
    assert_eq!(f.len(), 1, "one {id} finding: {:#?}", r.findings);
    f[0]
}

fn none(r: &CheckReport, id: &str) {
    assert!(with_id(r, id).is_empty(), "no {id}: {:#?}", with_id(r, id));
}

/// The node's files laid out as a root (paths relative to `/`), read the
/// way `--deep` reads a node.
fn deep(snap: &Snapshot, files: &[(&str, &str)]) -> host::DeepRead {
    let root = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = root.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    read_root(snap, root.path())
}

/// Every node of `snap` read from the node root `root` by the probe
/// sequence and script of `--deep`.
pub(crate) fn read_root(snap: &Snapshot, root: &std::path::Path) -> host::DeepRead {
    let mut out = host::DeepRead {
        image: "node-agent".into(),
        ..Default::default()
    };
    for node in &snap.nodes {
        let facts = NodeFacts::from_node(node);
        let read = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(host::probe_sequence(&facts, async |req: &ProbeRequest| {
                req.run_under(root)
            }))
            .map_err(|e| e.to_string());
        out.nodes.insert(facts.name.clone(), read);
    }
    out
}

// ---------------------------------------------------------------------------
// The release step and the containerd jump, from the API alone
// ---------------------------------------------------------------------------

/// RKE2 moved containerd 1.7 → 2.0 in patch releases (v1.31.6, v1.32.2);
/// the config schema goes v2 → v3 and the user template's name changes.
#[test]
fn containerd_2_boundaries_warn_about_the_schema_and_template_name() {
    for (from, containerd, to) in [
        ("v1.31.5+rke2r1", "1.7.23-k3s2", "v1.31.6+rke2r1"),
        ("v1.32.1+rke2r1", "1.7.23-k3s2", "v1.32.2+rke2r1"),
        ("v1.31.5+k3s1", "1.7.23-k3s2", "v1.31.6+k3s1"),
    ] {
        let r = preflight(
            &one_node(from, containerd, None),
            &target(Some(to), None),
            None,
        );
        assert_eq!(one(&r, "upgrade-release").status, Status::Ok, "{from}");
        let c = one(&r, "upgrade-containerd");
        assert_eq!(c.status, Status::Warn, "{from} → {to}: {c:#?}");
        assert!(c.message.contains("1.7.23 → 2.0.2"), "{}", c.message);
        assert!(c.message.contains("schema v2 → v3"), "{}", c.message);
        assert!(c.message.contains("config-v3.toml.tmpl"), "{}", c.message);
        assert!(
            c.evidence.iter().any(|e| e.contains("2.0.2-k3s2")),
            "{:?}",
            c.evidence
        );
        // Without --deep the template and drop-ins are not known: say how.
        let t = one(&r, "upgrade-template");
        assert_eq!(t.status, Status::Skipped);
        assert!(t.fix.as_deref().unwrap().contains("--deep"));
        // Nothing here breaks GPU pods by itself.
        assert!(!plan(&r).breaks_gpu_pods, "{from}");
    }
}

/// The patch before the boundary keeps containerd 1.7: no jump.
#[test]
fn a_patch_on_the_same_containerd_line_is_quiet() {
    let r = preflight(
        &one_node("v1.31.3+rke2r1", "1.7.23-k3s2", None),
        &target(Some("v1.31.5+rke2r1"), None),
        None,
    );
    let c = one(&r, "upgrade-containerd");
    assert_eq!(c.status, Status::Ok);
    assert!(c.message.contains("same line"), "{}", c.message);
    none(&r, "upgrade-template");
}

#[test]
fn downgrades_other_distributions_and_skipped_minors() {
    let snap = one_node("v1.33.10+rke2r1", "2.2.2-k3s1", None);
    let down = preflight(&snap, &target(Some("v1.33.9+rke2r1"), None), None);
    assert_eq!(one(&down, "upgrade-release").status, Status::Fail);
    assert!(plan(&down).breaks_gpu_pods);

    let k3s = preflight(&snap, &target(Some("v1.34.6+k3s1"), None), None);
    let f = one(&k3s, "upgrade-release");
    assert_eq!(f.status, Status::Fail);
    assert!(
        f.message.contains("RKE2") || f.message.contains("rke2"),
        "{}",
        f.message
    );

    let skip = preflight(&snap, &target(Some("v1.35.3+rke2r1"), None), None);
    let f = one(&skip, "upgrade-release");
    assert_eq!(f.status, Status::Warn, "{f:#?}");
    assert!(f.fix.as_deref().unwrap().contains("v1.34"), "{:?}", f.fix);

    let same = preflight(&snap, &target(Some("v1.33.10+rke2r1"), None), None);
    assert_eq!(one(&same, "upgrade-release").status, Status::Ok);
}

/// A release past the newest one the table read on its line is assumed to
/// ship that release's containerd, and says so.
#[test]
fn a_release_beyond_the_table_is_assumed_unchanged() {
    let r = preflight(
        &one_node("v1.36.3+rke2r1", "2.3.3-k3s1", None),
        &target(Some("v1.36.9+rke2r1"), None),
        None,
    );
    let c = one(&r, "upgrade-containerd");
    assert!(
        c.evidence.iter().any(|e| e.contains("assumed unchanged")),
        "{c:#?}"
    );
}

// ---------------------------------------------------------------------------
// The operator's toolkit and NRI on the new containerd
// ---------------------------------------------------------------------------

/// A chart whose toolkit cannot read version 3 configs breaks GPU pods on
/// containerd 2: upgrade the chart first. With the chart target in the same
/// plan, the target's toolkit is judged, and the chart comes first.
#[test]
fn an_old_toolkit_on_containerd_2_fails_unless_the_chart_goes_first() {
    let snap = one_node("v1.31.5+rke2r1", "1.7.23-k3s2", Some("v24.9.1"));
    let r = preflight(&snap, &target(Some("v1.31.6+rke2r1"), None), None);
    let f = one(&r, "upgrade-toolkit-containerd");
    assert_eq!(f.status, Status::Fail, "{f:#?}");
    assert!(
        f.fix
            .as_deref()
            .unwrap()
            .contains("upgrade the chart first")
    );
    assert!(plan(&r).breaks_gpu_pods);

    let both = preflight(
        &snap,
        &target(Some("v1.31.6+rke2r1"), Some("v25.10.1")),
        None,
    );
    none(&both, "upgrade-toolkit-containerd");
    let order = &plan(&both).order;
    let chart = order
        .iter()
        .position(|s| s.starts_with("upgrade the chart"))
        .unwrap();
    let rke2 = order
        .iter()
        .position(|s| s.starts_with("upgrade RKE2"))
        .unwrap();
    assert!(chart < rke2, "{order:#?}");
    assert_eq!(order.last().map(String::as_str), Some("kubectl gpu verify"));
}

// ---------------------------------------------------------------------------
// Chart rules
// ---------------------------------------------------------------------------

/// 24.9 → 25.3: `operator.defaultRuntime` is gone from the chart (it is in
/// v24.9.2's values.yaml, not in v25.3.0's); the release that sets it is told.
#[test]
fn chart_values_the_target_no_longer_has_are_named() {
    let snap = cluster(
        &[("gpu-1", "v1.32.2+rke2r1", "2.0.2-k3s2")],
        Some("v24.9.2"),
        json!({"operator": {"defaultRuntime": "containerd"}, "cdi": {"enabled": false}}),
    );
    let r = preflight(&snap, &target(None, Some("v25.3.4")), None);
    let f = one(&r, "upgrade-chart-values");
    assert_eq!(f.status, Status::Warn);
    assert!(
        f.message.contains("operator.defaultRuntime"),
        "{}",
        f.message
    );
    assert!(
        f.evidence.iter().any(|e| e.contains("\"containerd\"")),
        "{:?}",
        f.evidence
    );
    assert_eq!(one(&r, "upgrade-chart").status, Status::Ok);
    // 24.9.2 → 25.3.4 leaves cdi.enabled's default at false.
    none(&r, "upgrade-chart-defaults");
}

/// 25.3 → 25.10: CDI becomes the default. A release that does not set
/// cdi.enabled changes how GPU pods get devices; one that sets it does not.
#[test]
fn the_cdi_default_change_is_named_when_the_release_relies_on_the_default() {
    let unset = cluster(
        &[("gpu-1", "v1.33.10+rke2r1", "2.2.2-k3s1")],
        Some("v25.3.4"),
        json!({}),
    );
    let r = preflight(&unset, &target(None, Some("v25.10.1")), None);
    let f = one(&r, "upgrade-chart-defaults");
    assert_eq!(f.status, Status::Warn);
    assert!(f.message.contains("false → true"), "{}", f.message);
    assert!(f.fix.as_deref().unwrap().contains("cdi.enabled=false"));

    let set = cluster(
        &[("gpu-1", "v1.33.10+rke2r1", "2.2.2-k3s1")],
        Some("v25.3.4"),
        json!({"cdi": {"enabled": false}}),
    );
    let r = preflight(&set, &target(None, Some("v25.10.1")), None);
    assert!(
        with_id(&r, "upgrade-chart-defaults")
            .iter()
            .all(|f| f.status == Status::Ok),
        "{:#?}",
        with_id(&r, "upgrade-chart-defaults")
    );
}

/// The CRD step: the chart's pre-upgrade hook applies the CRDs from
/// v24.9.0 (operator.upgradeCRD defaults to true); a release that turns it
/// off, or a target before it, leaves the ClusterPolicy CRD stale.
#[test]
fn the_crd_step_is_checked() {
    let snap = |config: Value| {
        cluster(
            &[("gpu-1", "v1.33.10+rke2r1", "2.2.2-k3s1")],
            Some("v25.3.4"),
            config,
        )
    };
    let r = preflight(&snap(json!({})), &target(None, Some("v25.10.1")), None);
    assert_eq!(one(&r, "upgrade-chart-crds").status, Status::Ok);

    let off = preflight(
        &snap(json!({"operator": {"upgradeCRD": false}})),
        &target(None, Some("v25.10.1")),
        None,
    );
    let f = one(&off, "upgrade-chart-crds");
    assert_eq!(f.status, Status::Warn);
    assert!(f.message.contains("upgradeCRD=false"), "{}", f.message);
    assert!(
        f.fix.as_deref().unwrap().contains("--server-side"),
        "{:?}",
        f.fix
    );
    // An operator at v24.3 upgraded to v24.6.2: no hook yet.
    let old = cluster(
        &[("gpu-1", "v1.30.14+rke2r1", "1.7.27-k3s1")],
        Some("v24.3.0"),
        json!({}),
    );
    let f = preflight(&old, &target(None, Some("v24.6.2")), None);
    assert_eq!(one(&f, "upgrade-chart-crds").status, Status::Warn);
}

/// v24.9.0's toolkit 1.17.0 cannot find containerd on RKE2 (a known-bad
/// target); a downgrade warns that Helm does not roll CRDs back.
#[test]
fn known_bad_targets_and_downgrades() {
    let snap = cluster(
        &[("gpu-1", "v1.30.14+rke2r1", "1.7.27-k3s1")],
        Some("v24.6.2"),
        json!({}),
    );
    let r = preflight(&snap, &target(None, Some("v24.9.0")), None);
    let f = one(&r, "upgrade-chart-defect");
    assert_eq!(f.status, Status::Fail, "{f:#?}");
    assert!(f.message.contains("known-bad"));
    assert!(plan(&r).breaks_gpu_pods);

    let newer = cluster(
        &[("gpu-1", "v1.33.10+rke2r1", "2.2.2-k3s1")],
        Some("v25.10.1"),
        json!({}),
    );
    let r = preflight(&newer, &target(None, Some("v25.3.4")), None);
    let f = one(&r, "upgrade-chart");
    assert_eq!(f.status, Status::Warn);
    assert!(f.message.contains("downgrade"));
}

// ---------------------------------------------------------------------------
// --deep: the node's templates and drop-ins against what the target renders
// ---------------------------------------------------------------------------

fn h200_config() -> String {
    repo_file(&format!("tests/node-trees/gpu-h200-0/{CTD}/config.toml"))
}

/// The same config.toml as a release before the imports line renders it.
fn without_imports(config: &str) -> String {
    config
        .lines()
        .filter(|l| !l.starts_with("imports = "))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn real_nvidia_drop_in() -> String {
    repo_file(
        "tests/fixtures/real-gpu-cluster/files/1-patched/containerd/config-v3.toml.d/99-nvidia.toml",
    )
}

/// v1.33.9 → v1.33.10 adds the `imports` line: drop-ins already in
/// config-v3.toml.d start to apply at the upgrade.
#[test]
fn drop_ins_that_start_to_load_with_the_imports_line() {
    let snap = one_node("v1.33.9+rke2r1", "2.2.2-k3s1", None);
    let cfg = without_imports(&h200_config());
    let user = "version = 3\n[plugins.'io.containerd.cri.v1.images']\n  snapshotter = \"native\"\n";
    let d = deep(
        &snap,
        &[
            (&format!("{CTD}/config.toml"), &cfg),
            (&format!("{CTD}/config-v3.toml.d/50-user.toml"), user),
        ],
    );
    let r = preflight(&snap, &target(Some("v1.33.10+rke2r1"), None), Some(&d));
    let f = one(&r, "upgrade-imports");
    assert_eq!(f.status, Status::Warn, "{f:#?}");
    assert!(
        f.fix.as_deref().unwrap().contains("50-user.toml"),
        "{:?}",
        f.fix
    );
    assert_eq!(one(&r, "upgrade-template").status, Status::Ok);
    none(&r, "upgrade-drop-in-version");

    // With an empty drop-in dir the new line is harmless.
    let d = deep(&snap, &[(&format!("{CTD}/config.toml"), &cfg)]);
    let r = preflight(&snap, &target(Some("v1.33.10+rke2r1"), None), Some(&d));
    assert_eq!(one(&r, "upgrade-imports").status, Status::Ok);
}

/// v1.32.13+rke2r2 has the imports line (a backport); v1.33.9 does not. A
/// node whose nvidia runtime lives in the drop-in `patch-containerd` wrote
/// (the real GPU node's file) loses it: GPU pods break. Without --deep the
/// loss is a warning; with it, a failure, and the fix names the release.
#[test]
fn losing_the_imports_backport_breaks_a_drop_in_runtime() {
    let snap = one_node("v1.32.13+rke2r2", "2.2.2-k3s1", None);
    let t = target(Some("v1.33.9+rke2r1"), None);
    let api = preflight(&snap, &t, None);
    let imports = |r: &CheckReport| -> Finding {
        let f: Vec<&Finding> = with_id(r, "upgrade-feature-lost")
            .into_iter()
            .filter(|f| f.message.contains("imports"))
            .collect();
        assert_eq!(f.len(), 1, "{:#?}", r.findings);
        f[0].clone()
    };
    let f = imports(&api);
    assert_eq!(f.status, Status::Warn, "{f:#?}");
    assert!(
        f.fix.as_deref().unwrap().contains("v1.33.10+rke2r1"),
        "{:?}",
        f.fix
    );

    let d = deep(
        &snap,
        &[
            (&format!("{CTD}/config.toml"), &h200_config()),
            (
                &format!("{CTD}/config-v3.toml.d/99-nvidia.toml"),
                &real_nvidia_drop_in(),
            ),
        ],
    );
    let r = preflight(&snap, &t, Some(&d));
    let f = imports(&r);
    assert_eq!(f.status, Status::Fail, "{f:#?}");
    assert!(f.message.contains("drop-in"), "{}", f.message);
    assert!(plan(&r).breaks_gpu_pods);
    // v1.33.9 ships an older containerd (2.1.5) than v1.32.13+rke2r2 (2.2.2).
    let c = one(&r, "upgrade-containerd");
    assert_eq!(c.status, Status::Warn, "{c:#?}");
    assert!(c.message.contains("older"), "{}", c.message);
    assert!(
        c.fix.as_deref().unwrap().contains("v1.33.10+rke2r1"),
        "{:?}",
        c.fix
    );
    // It is also named as drop-ins that will not load.
    assert_eq!(one(&r, "upgrade-imports").status, Status::Warn);
}

const V2_TEMPLATE: &str = "{{ template \"base\" . }}\n\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.nvidia]\n  runtime_type = \"io.containerd.runc.v2\"\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.nvidia.options]\n  BinaryName = \"/usr/local/nvidia/toolkit/nvidia-container-runtime\"\n";

/// RKE2 v1.36.2+ ships containerd 2.3.x, which refuses a drop-in whose
/// version is above the root's. A node on a v2 `config.toml.tmpl` (the v2
/// root keeps rendering) with a version 3 drop-in in config.toml.d cannot
/// start after the upgrade; to v1.36.0 (containerd 2.2.3) it only warns.
#[test]
fn a_drop_in_above_the_root_version_fails_on_containerd_2_3() {
    let snap = one_node("v1.35.3+rke2r1", "2.2.2-k3s1", None);
    let legacy = repo_file(&format!(
        "tests/node-trees/gpu-a100-legacy-0/{CTD}/config.toml"
    ));
    let v2_config = format!(
        "{}\nimports = [\"/{CTD}/config.toml.d/*.toml\"]\n",
        legacy.trim_end()
    );
    let files = [
        (format!("{CTD}/config.toml"), v2_config.clone()),
        (format!("{CTD}/config.toml.tmpl"), V2_TEMPLATE.to_string()),
        (
            format!("{CTD}/config.toml.d/99-nvidia.toml"),
            real_nvidia_drop_in(),
        ),
    ];
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let d = deep(&snap, &files);
    let r = preflight(&snap, &target(Some("v1.36.3+rke2r1"), None), Some(&d));
    let f = one(&r, "upgrade-drop-in-version");
    assert_eq!(f.status, Status::Fail, "{f:#?}");
    assert!(f.message.contains("99-nvidia.toml"), "{}", f.message);
    assert!(f.message.contains("2.3.3"), "{}", f.message);
    assert!(
        f.fix.as_deref().unwrap().contains("version = 2"),
        "{:?}",
        f.fix
    );
    assert!(plan(&r).breaks_gpu_pods);

    let r = preflight(&snap, &target(Some("v1.36.0+rke2r1"), None), Some(&d));
    assert_eq!(one(&r, "upgrade-drop-in-version").status, Status::Warn);
}

/// Across containerd 2.0, a `config.toml.tmpl` keeps rendering on the v2
/// base (containerd migrates it at every start) and a static template
/// freezes the new release's defaults.
#[test]
fn templates_across_the_containerd_2_boundary() {
    let snap = one_node("v1.31.5+rke2r1", "1.7.23-k3s2", None);
    let legacy = repo_file(&format!(
        "tests/node-trees/gpu-a100-legacy-0/{CTD}/config.toml"
    ));
    let t = target(Some("v1.31.6+rke2r1"), None);
    let d = deep(
        &snap,
        &[
            (&format!("{CTD}/config.toml"), &legacy),
            (&format!("{CTD}/config.toml.tmpl"), V2_TEMPLATE),
        ],
    );
    let r = preflight(&snap, &t, Some(&d));
    let f = one(&r, "upgrade-template");
    assert_eq!(f.status, Status::Warn, "{f:#?}");
    assert!(f.message.contains("v2 base"), "{}", f.message);
    assert!(f.fix.as_deref().unwrap().contains("config-v3.toml.tmpl"));

    let d = deep(
        &snap,
        &[
            (&format!("{CTD}/config.toml"), &legacy),
            (&format!("{CTD}/config.toml.tmpl"), &legacy),
        ],
    );
    let r = preflight(&snap, &t, Some(&d));
    let f = one(&r, "upgrade-template");
    assert_eq!(f.status, Status::Warn);
    assert!(f.message.contains("static"), "{}", f.message);
    assert!(
        f.fix
            .as_deref()
            .unwrap()
            .contains("--replace-static-template")
    );
}

/// The report as `-o json` carries the plan next to the findings.
#[test]
fn the_plan_is_in_the_json_report() {
    let snap = one_node("v1.31.5+rke2r1", "1.7.23-k3s2", Some("v24.9.1"));
    let r = preflight(&snap, &target(Some("v1.31.6+rke2r1"), None), None);
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["upgrade"]["rke2"], "v1.31.6+rke2r1");
    assert_eq!(v["upgrade"]["breaks_gpu_pods"], true);
    assert!(r.summary.fail > 0, "exit 1: a failing finding");
    // Without targets there is no plan at all.
    let plain = check_runtime::evaluate(&snap, &[], None, None).unwrap();
    assert!(
        serde_json::to_value(&plain)
            .unwrap()
            .get("upgrade")
            .is_none()
    );
}
