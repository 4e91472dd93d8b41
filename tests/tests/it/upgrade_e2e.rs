//! `kubectl gpu check-runtime --upgrade-to-rke2/--upgrade-to-chart` end to
//! end: the real binary through kubectl's plugin lookup, against the local
//! test cluster, reading a node's files through the node agent (`--deep`)
//! and the operator's Helm release Secret.

use cluster_harness::Cluster;
use serde_json::Value;

use super::check_runtime_e2e::{find, gpu, healthy_operator, json_findings, our_pods};
use super::patch_e2e::{broken_template, write_broken_template};

const NODE: &str = "gpu-a100-legacy-0";
const CTD: &str = "var/lib/rancher/rke2/agent/etc/containerd";

/// The legacy node (v1.30.14+rke2r1, containerd 1.7) with a config.toml.tmpl
/// containerd 1.7 takes and containerd 2 refuses: RKE2 v1.31.6 (containerd
/// 2.0.2) would not start containerd. The preflight says so with exit 1, the
/// predicted config.toml diff and the safe order, and leaves no pod behind.
#[test]
fn a_template_that_breaks_on_containerd_2_fails_the_preflight() {
    let c = Cluster::shared();
    let _g = cluster_harness::serial();
    healthy_operator(c);
    let before = c.read_node_file(NODE, &format!("{CTD}/config.toml"));
    let (file, text) = broken_template(c, "v2-containerd-single-quoted-new-key");
    write_broken_template(c, NODE, &file, &text);
    let args = [
        "check-runtime",
        "--deep",
        "--node",
        NODE,
        "--upgrade-to-rke2",
        "v1.31.6+rke2r1",
        "--upgrade-to-chart",
        "v26.7.0",
    ];
    let json = gpu(c, &[&args[..], &["-o", "json"]].concat());
    let table = gpu(c, &args);
    c.remove_node_file(NODE, &format!("{CTD}/{file}"));
    c.write_node_file(NODE, &format!("{CTD}/config.toml"), &before);

    assert_eq!(
        json.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let findings = json_findings(&json);
    let render = find(&findings, "upgrade-render", Some(NODE), "fail")
        .unwrap_or_else(|| panic!("{findings:#?}"));
    assert!(
        render["message"].as_str().unwrap().contains("2.0.2"),
        "{render}"
    );
    let jump = find(&findings, "upgrade-containerd", Some(NODE), "warn").expect("containerd jump");
    assert!(
        jump["message"].as_str().unwrap().contains("1.7.27 → 2.0.2"),
        "{jump}"
    );
    // The chart part read the installed release (v26.7.0, the stand-in).
    assert!(
        find(&findings, "upgrade-chart", None, "ok").is_some(),
        "{findings:#?}"
    );
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    let plan = &v["upgrade"];
    assert_eq!(plan["breaks_gpu_pods"], true);
    assert_eq!(plan["rke2"], "v1.31.6+rke2r1");
    let predicted = &plan["predicted"][0];
    assert_eq!(predicted["node"], NODE);
    assert!(predicted["diff"].as_str().is_some(), "{predicted}");
    assert!(predicted["text"].as_str().unwrap().contains("version = 2"));
    let order: Vec<&str> = plan["order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(order.last(), Some(&"kubectl gpu verify"), "{order:#?}");
    assert!(
        order
            .iter()
            .any(|s| s.contains("patch-containerd --node gpu-a100-legacy-0")),
        "{order:#?}"
    );

    let t = String::from_utf8_lossy(&table.stdout);
    assert_eq!(table.status.code(), Some(1));
    assert!(
        t.contains("Upgrade to RKE2 v1.31.6+rke2r1 and chart v26.7.0: would break GPU pods"),
        "{t}"
    );
    assert!(
        t.contains(&format!("Predicted /{CTD}/config.toml on {NODE}")),
        "{t}"
    );
    assert!(our_pods(c).is_empty(), "pods left behind");
}

/// A bad target is a usage error (exit 2) before anything is read.
#[test]
fn a_bad_upgrade_target_is_refused() {
    let c = Cluster::shared();
    let out = gpu(c, &["check-runtime", "--upgrade-to-rke2", "1.31"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--upgrade-to-rke2"), "{err}");
}

const USER_V2_TEMPLATE: &str = "{{ template \"base\" . }}\n\n[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"docker.io\"]\n  endpoint = [\"https://mirror.example.internal\"]\n";

/// `patch-containerd --for-rke2` in cluster mode on the legacy node
/// (containerd 1.7): the dry run shows the staged config-v3.toml.tmpl and
/// writes nothing; `--apply` writes it, restarts nothing and reads it back
/// (outcome `staged`); the preflight then finds the v3 template; a rollback
/// removes it again.
#[test]
fn staging_for_an_upgrade_through_the_node_agent() {
    let c = Cluster::shared();
    let _g = cluster_harness::serial();
    healthy_operator(c);
    let tmpl = format!("{CTD}/config.toml.tmpl");
    let v3 = format!("{CTD}/config-v3.toml.tmpl");
    let before = c.read_node_file(NODE, &format!("{CTD}/config.toml"));
    write_broken_template(c, NODE, "config.toml.tmpl", USER_V2_TEMPLATE);
    let rendered = c.read_node_file(NODE, &format!("{CTD}/config.toml"));
    let calls = c.systemctl_calls(NODE).len();
    let run = |extra: &[&str]| {
        c.kubectl()
            .args([
                "gpu",
                "patch-containerd",
                "--node",
                NODE,
                "--for-rke2",
                "v1.31.6+rke2r1",
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let dry = run(&[]);
    let dry_out = String::from_utf8_lossy(&dry.stdout).into_owned();
    let exists_after_dry = c.node_path(NODE, &v3).exists();
    let applied = run(&["--apply", "-o", "json"]);
    let staged = std::fs::read_to_string(c.node_path(NODE, &v3)).ok();
    let calls_after_apply = c.systemctl_calls(NODE).len();
    let config_after_apply = c.read_node_file(NODE, &format!("{CTD}/config.toml"));
    let check = gpu(
        c,
        &[
            "check-runtime",
            "--deep",
            "--node",
            NODE,
            "--upgrade-to-rke2",
            "v1.31.6+rke2r1",
            "-o",
            "json",
        ],
    );
    let rollback = c
        .kubectl()
        .args([
            "gpu",
            "patch-containerd",
            "--node",
            NODE,
            "--rollback",
            "--apply",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    let exists_after_rollback = c.node_path(NODE, &v3).exists();
    c.remove_node_file(NODE, &tmpl);
    c.remove_node_file(NODE, &v3);
    c.write_node_file(NODE, &format!("{CTD}/config.toml"), &before);

    assert_eq!(
        dry.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(dry_out.contains("config-v3.toml.tmpl"), "{dry_out}");
    assert!(dry_out.contains("io.containerd.cri.v1.images"), "{dry_out}");
    assert!(!exists_after_dry, "the dry run wrote");
    assert_eq!(
        applied.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let v: Value = serde_json::from_slice(&applied.stdout).unwrap();
    assert_eq!(v["nodes"][0]["outcome"], "staged", "{v}");
    let staged = staged.expect("config-v3.toml.tmpl written");
    assert!(staged.starts_with("{{ template \"base\" . }}"), "{staged}");
    assert!(
        staged.contains("[plugins.\"io.containerd.cri.v1.images\".registry.mirrors.\"docker.io\"]"),
        "{staged}"
    );
    // Nothing restarted, and the running release renders what it rendered.
    assert_eq!(calls_after_apply, calls, "staging restarted RKE2");
    assert_eq!(config_after_apply, rendered);
    let findings = json_findings(&check);
    assert!(
        find(&findings, "upgrade-template", Some(NODE), "ok").is_some(),
        "{findings:#?}"
    );
    assert_eq!(
        rollback.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&rollback.stderr)
    );
    assert!(!exists_after_rollback, "rollback left the staged file");
    assert!(our_pods(c).is_empty(), "pods left behind");
}
