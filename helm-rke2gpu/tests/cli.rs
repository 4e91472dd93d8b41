//! Drives the `helm-rke2gpu` binary with a fake `HELM_BIN` that records its
//! argv, a chart `.tgz` built from the verbatim v26.7.0 values.yaml, and a
//! real RKE2 node list (`--nodes-file`), so no cluster is needed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_helm-rke2gpu");
const SOCKET: &str = "/run/k3s/containerd/containerd.sock";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// tests/fixtures/gpu-operator-values-v26.7.0.yaml: verbatim NVIDIA/gpu-operator
/// deployments/gpu-operator/values.yaml at tag v26.7.0.
fn values_fixture() -> String {
    std::fs::read_to_string(repo_root().join("tests/fixtures/gpu-operator-values-v26.7.0.yaml"))
        .unwrap()
}

/// tests/fixtures/real-world/nodes: single-node RKE2 v1.31.6+rke2r1, containerd 2.0.2-k3s2, GPU.
fn nodes_fixture() -> PathBuf {
    repo_root().join("tests/fixtures/real-world/nodes/rke2-v1.31.6-vgpu-a16-nodelist.json")
}

fn chart_yaml(version: &str) -> String {
    format!("apiVersion: v2\nname: gpu-operator\nversion: {version}\nappVersion: {version}\n")
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new(version: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("Chart.yaml"), chart_yaml(version)).unwrap();
        std::fs::write(d.join("values.yaml"), values_fixture()).unwrap();
        let script = format!(
            r#"#!/bin/sh
d='{d}'
{{ for a in "$@"; do printf '%s\n' "$a"; done; echo '---'; }} >> "$d/argv.log"
if [ "$1" = show ] && [ "$2" = chart ]; then cat "$d/Chart.yaml"; exit 0; fi
if [ "$1" = show ] && [ "$2" = values ]; then cat "$d/values.yaml"; exit 0; fi
prev=
for a in "$@"; do
  if [ "$prev" = -f ] && [ ! -e "$d/first-values.yaml" ]; then cp "$a" "$d/first-values.yaml"; fi
  prev=$a
done
exit "${{FAKE_HELM_RC:-0}}"
"#,
            d = d.display()
        );
        let helm = d.join("helm");
        std::fs::write(&helm, script).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&helm, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Self { dir }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .env("HELM_BIN", self.dir.path().join("helm"))
            .env("HELM_NAMESPACE", "default")
            .env_remove("HELM_KUBECONTEXT")
            .env("KUBECONFIG", self.dir.path().join("no-such-kubeconfig"))
            .env_remove("FAKE_HELM_RC");
        c
    }

    /// Each helm invocation's argv.
    fn calls(&self) -> Vec<Vec<String>> {
        let log = std::fs::read_to_string(self.dir.path().join("argv.log")).unwrap_or_default();
        log.split("---\n")
            .filter(|c| !c.is_empty())
            .map(|c| c.lines().map(str::to_string).collect())
            .collect()
    }

    fn tgz(&self, version: &str) -> PathBuf {
        let path = self.dir.path().join(format!("gpu-operator-{version}.tgz"));
        let file = std::fs::File::create(&path).unwrap();
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::default(),
        ));
        for (name, text) in [
            ("gpu-operator/Chart.yaml", chart_yaml(version)),
            ("gpu-operator/values.yaml", values_fixture()),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(text.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, text.as_bytes()).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap();
        path
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn values_from_a_local_tgz() {
    let env = Env::new("v26.7.0");
    let tgz = env.tgz("v26.7.0");
    let nodes = nodes_fixture();
    let o = env
        .cmd(&[
            "values",
            tgz.to_str().unwrap(),
            "--nodes-file",
            nodes.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    // rke2-docs tab v26.3.x/v25.10.x: only CONTAINERD_SOCKET on containerd 2.x
    assert!(out.contains("# why: "), "{out}");
    assert!(out.contains(&format!("value: \"{SOCKET}\"")), "{out}");
    assert!(!out.contains("cdi:"), "{out}");
    assert!(env.calls().is_empty(), "a local chart needs no helm call");
}

#[test]
fn install_passes_values_first_and_user_flags_verbatim() {
    let env = Env::new("v26.7.0");
    let nodes = nodes_fixture();
    let o = env
        .cmd(&[
            "install",
            "--nodes-file",
            nodes.to_str().unwrap(),
            "--version",
            "v26.7.0",
            "--set",
            "driver.enabled=false",
            "--wait",
            "--timeout",
            "10m",
            "--some-unknown-flag",
            "--set-string=toolkit.env[0].value=x",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let calls = env.calls();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(
        calls[0],
        [
            "show",
            "chart",
            "nvidia/gpu-operator",
            "--version",
            "v26.7.0"
        ]
    );
    assert_eq!(
        calls[1],
        [
            "show",
            "values",
            "nvidia/gpu-operator",
            "--version",
            "v26.7.0"
        ]
    );
    let install = &calls[2];
    assert_eq!(
        install[..6],
        [
            "install",
            "gpu-operator",
            "nvidia/gpu-operator",
            "-n",
            "gpu-operator",
            "--create-namespace"
        ]
    );
    assert_eq!(install[6], "-f");
    assert_eq!(
        install[8..],
        [
            "--version",
            "v26.7.0",
            "--set",
            "driver.enabled=false",
            "--wait",
            "--timeout",
            "10m",
            "--some-unknown-flag",
            "--set-string=toolkit.env[0].value=x"
        ]
    );
    let values = std::fs::read_to_string(env.dir.path().join("first-values.yaml")).unwrap();
    assert!(values.contains(SOCKET), "{values}");
    // the user --set-string clobbers our list entry: warned
    assert!(
        stderr(&o).contains("overwrites entry 0 (CONTAINERD_SOCKET)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn install_pins_the_resolved_version_and_honours_helm_namespace() {
    let env = Env::new("v25.10.1");
    let nodes = nodes_fixture();
    let o = env
        .cmd(&[
            "install",
            "my-gpu",
            "nvidia/gpu-operator",
            "--nodes-file",
            nodes.to_str().unwrap(),
        ])
        .env("HELM_NAMESPACE", "team-gpu")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let calls = env.calls();
    assert_eq!(calls[0], ["show", "chart", "nvidia/gpu-operator"]);
    assert_eq!(
        calls[1],
        [
            "show",
            "values",
            "nvidia/gpu-operator",
            "--version",
            "v25.10.1"
        ]
    );
    let install = &calls[2];
    assert_eq!(
        install[..5],
        ["install", "my-gpu", "nvidia/gpu-operator", "-n", "team-gpu"]
    );
    assert_eq!(install[install.len() - 2..], ["--version", "v25.10.1"]);
}

#[test]
fn helm_failure_exit_code_is_passed_on() {
    let env = Env::new("v26.7.0");
    let nodes = nodes_fixture();
    let o = env
        .cmd(&["install", "--nodes-file", nodes.to_str().unwrap()])
        .env("FAKE_HELM_RC", "3")
        .output()
        .unwrap();
    // show chart fails first with the fake's rc 3
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
}

#[test]
fn print_command_and_helmchart_do_not_run_helm_install() {
    let env = Env::new("v25.3.4");
    let nodes = nodes_fixture();
    let tgz = env.tgz("v25.3.4");
    let o = env
        .cmd(&[
            "install",
            tgz.to_str().unwrap(),
            "--nodes-file",
            nodes.to_str().unwrap(),
            "--print-command",
            "--wait",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("helm install gpu-operator "), "{out}");
    // 8: booleans in env via --set-string
    assert!(
        out.contains("--set-string 'toolkit.env[1].value=false'"),
        "{out}"
    );
    assert!(out.contains("--set cdi.enabled=false"), "{out}");
    assert!(out.trim_end().ends_with("--wait"), "{out}");
    assert!(env.calls().is_empty());

    let o = env
        .cmd(&[
            "install",
            "--nodes-file",
            nodes.to_str().unwrap(),
            "--version",
            "v25.3.4",
            "--output",
            "helmchart",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("apiVersion: helm.cattle.io/v1\nkind: HelmChart"),
        "{out}"
    );
    assert!(out.contains("  namespace: kube-system"), "{out}");
    assert!(
        out.contains("  repo: \"https://helm.ngc.nvidia.com/nvidia\""),
        "{out}"
    );
    assert!(out.contains("  version: \"v25.3.4\""), "{out}");
    assert!(out.contains("  targetNamespace: \"gpu-operator\""), "{out}");
    assert!(out.contains("  valuesContent: |-\n    #"), "{out}");
    let calls = env.calls();
    assert!(calls.iter().all(|c| c[0] == "show"), "{calls:?}");
}

#[test]
fn upgrade_needs_the_cluster_for_the_crd_step_unless_skip_crds() {
    let env = Env::new("v26.7.0");
    let nodes = nodes_fixture();
    let o = env
        .cmd(&["upgrade", "--nodes-file", nodes.to_str().unwrap()])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--skip-crds upgrades without that step"),
        "{err}"
    );
    assert!(
        env.calls().iter().all(|c| c[0] != "upgrade"),
        "helm upgrade ran: {err}"
    );
}

#[test]
fn upgrade_keeps_helms_force_and_uninstall_prints_cleanup() {
    let env = Env::new("v26.7.0");
    let nodes = nodes_fixture();
    let o = env
        .cmd(&[
            "upgrade",
            "--nodes-file",
            nodes.to_str().unwrap(),
            // No cluster here: without --skip-crds the CRD step needs one.
            "--skip-crds",
            "--version=v26.7.0",
            "--force",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--skip-crds: not applying the CRDs of chart v26.7.0"),
        "{}",
        stderr(&o)
    );
    let up = env.calls().pop().unwrap();
    assert_eq!(
        up[..5],
        [
            "upgrade",
            "gpu-operator",
            "nvidia/gpu-operator",
            "-n",
            "gpu-operator"
        ]
    );
    assert!(!up.contains(&"--create-namespace".to_string()));
    assert_eq!(up[up.len() - 2..], ["--version=v26.7.0", "--force"]);

    let o = env.cmd(&["uninstall", "--wait"]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        env.calls().pop().unwrap(),
        ["uninstall", "gpu-operator", "-n", "gpu-operator", "--wait"]
    );
    let out = stdout(&o);
    assert!(
        out.contains("/usr/local/nvidia") && out.contains("rke2-agent"),
        "{out}"
    );
    assert!(out.contains("clusterpolicies.nvidia.com") && out.contains("nvidiadrivers.nvidia.com"));
}

#[test]
fn no_cluster_is_exit_2_naming_the_server_and_no_release() {
    let env = Env::new("v26.7.0");
    let kc = env.dir.path().join("kubeconfig");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n    insecure-skip-tls-verify: true\ncontexts:\n- name: ctx\n  context: {cluster: c, user: u}\ncurrent-context: ctx\nusers:\n- name: u\n  user: {token: x}\n",
    )
    .unwrap();
    let o = env
        .cmd(&["install", "--version", "v26.7.0"])
        .env("KUBECONFIG", &kc)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("127.0.0.1:1"), "{}", stderr(&o));
    assert!(env.calls().iter().all(|c| c[0] != "install"));
}

#[test]
fn refusals_and_usage_errors() {
    let env = Env::new("v26.7.0");
    let nodes = nodes_fixture();
    // NRI needs containerd ≥ 2.1: the fixture node runs 2.0.2 → refused, exit 1
    let o = env
        .cmd(&[
            "install",
            "--nodes-file",
            nodes.to_str().unwrap(),
            "--nri",
            "--version",
            "v26.7.0",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("2.0.2"), "{}", stderr(&o));
    assert!(env.calls().iter().all(|c| c[0] != "install"));
    // usage
    let o = env.cmd(&["install", "--cdi", "maybe"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = env.cmd(&["values", "--cdi", "maybe"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}

/// k3s pkg/agent/containerd/runtimes.go: RKE2 renders only nvidia, nvidia-experimental, nvidia-cdi. A custom
/// operator.runtimeClass, however given, is refused before helm runs (exit 1), unless forced.
#[test]
fn custom_runtime_class_is_refused_before_helm_runs() {
    let env = Env::new("v26.7.0");
    let nodes = nodes_fixture();
    let nodes = nodes.to_str().unwrap();
    let mine = env.dir.path().join("mine.yaml");
    std::fs::write(&mine, "operator:\n  runtimeClass: foo\n").unwrap();
    let mine = mine.to_str().unwrap();
    let cases: [&[&str]; 5] = [
        &[
            "install",
            "--nodes-file",
            nodes,
            "--set",
            "operator.runtimeClass=foo",
        ],
        &[
            "install",
            "--nodes-file",
            nodes,
            "--set-string=operator.runtimeClass=foo",
        ],
        &["upgrade", "--nodes-file", nodes, "-f", mine],
        &[
            "values",
            "--nodes-file",
            nodes,
            "--set",
            "operator.runtimeClass=foo",
        ],
        &["values", "--nodes-file", nodes, "-f", mine],
    ];
    for args in cases {
        let o = env.cmd(args).output().unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("operator.runtimeClass=foo")
                && err.contains("nvidia, nvidia-experimental, nvidia-cdi")
                && err.contains("--force"),
            "{args:?}: {err}"
        );
        assert!(
            env.calls()
                .iter()
                .all(|c| c[0] != "install" && c[0] != "upgrade"),
            "{args:?}: helm ran"
        );
    }
    // --force (install) and --rke2gpu-force (upgrade) go on, with the reason as a warning.
    for args in [
        vec![
            "install",
            "--nodes-file",
            nodes,
            "--set",
            "operator.runtimeClass=foo",
            "--force",
        ],
        vec![
            "upgrade",
            "--nodes-file",
            nodes,
            "-f",
            mine,
            "--rke2gpu-force",
            "--skip-crds",
        ],
    ] {
        let o = env.cmd(&args).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("warning: --force: operator.runtimeClass=foo"),
            "{}",
            stderr(&o)
        );
    }
    // The user's flags still reach helm verbatim, after our values file.
    let install = env.calls().into_iter().find(|c| c[0] == "install").unwrap();
    assert!(
        install.ends_with(&["--set".to_string(), "operator.runtimeClass=foo".to_string()]),
        "{install:?}"
    );
}

/// gpu-operator v26.7.0 templates/validations.yaml: NRI needs the toolkit. Refused before helm runs.
#[test]
fn nri_with_the_toolkit_disabled_is_refused() {
    let env = Env::new("v26.7.0");
    let nodes = nodes_fixture();
    let nodes = nodes.to_str().unwrap();
    for args in [
        vec![
            "install",
            "--nodes-file",
            nodes,
            "--nri",
            "--set",
            "toolkit.enabled=false",
        ],
        vec![
            "values",
            "--nodes-file",
            nodes,
            "--nri",
            "--set",
            "toolkit.enabled=false",
        ],
    ] {
        let o = env.cmd(&args).output().unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("--nri with toolkit.enabled=false (from --set toolkit.enabled=false)"),
            "{err}"
        );
    }
    assert!(env.calls().iter().all(|c| c[0] != "install"));
}

/// nvidia-container-toolkit v1.19.0 runtime.go: in NRI mode nothing signals containerd, so RKE2 renders its
/// nvidia runtime only at its next restart: said after a successful install, and ahead of it for `values`.
#[test]
fn nri_install_notes_the_rke2_restart_after_helm() {
    let env = Env::new("v26.7.0");
    // The fixture node moved to RKE2 v1.33.5 (containerd 2.1.4, rke2 Dockerfile tag), which has NRI.
    let text = std::fs::read_to_string(nodes_fixture())
        .unwrap()
        .replace("2.0.2-k3s2", "2.1.4-k3s1")
        .replace("v1.31.6+rke2r1", "v1.33.5+rke2r1");
    let nodes = env.dir.path().join("nodes-21.json");
    std::fs::write(&nodes, text).unwrap();
    let nodes = nodes.to_str().unwrap();
    let o = env
        .cmd(&["install", "--nodes-file", nodes, "--nri"])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(env.calls().iter().any(|c| c[0] == "install"));
    assert!(
        err.contains("note: NRI mode: the toolkit") && err.contains("only at its next restart"),
        "{err}"
    );
    let o = env
        .cmd(&["values", "--nodes-file", nodes, "--nri"])
        .output()
        .unwrap();
    assert!(
        stderr(&o).contains("note: after install: NRI mode"),
        "{}",
        stderr(&o)
    );
}

/// rke2-docs add-ons/gpu_operators.md tab v26.3.x, SLES 16.0 block: detected from the nodes' osImage, or asked with
/// --os sles16 (our flag: not passed to helm).
#[test]
fn sles16_driver_values_from_os_image_and_os_flag() {
    let env = Env::new("v26.7.0");
    let tgz = env.tgz("v26.7.0");
    let text = std::fs::read_to_string(nodes_fixture())
        .unwrap()
        .replace("Ubuntu 22.04.5 LTS", "SUSE Linux Enterprise Server 16.0");
    let sles = env.dir.path().join("nodes-sles.json");
    std::fs::write(&sles, text).unwrap();
    let o = env
        .cmd(&[
            "values",
            tgz.to_str().unwrap(),
            "--nodes-file",
            sles.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("repository: \"registry.suse.com/third-party/nvidia\"")
            && out.contains("usePrecompiled: true")
            && out.contains("version: \"595\""),
        "{out}"
    );
    // The Ubuntu fixture needs --os sles16; install consumes the flag.
    let nodes = nodes_fixture();
    let o = env
        .cmd(&[
            "install",
            tgz.to_str().unwrap(),
            "--nodes-file",
            nodes.to_str().unwrap(),
            "--os",
            "sles16",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let install = env.calls().into_iter().find(|c| c[0] == "install").unwrap();
    assert!(
        !install.iter().any(|a| a == "--os" || a == "sles16"),
        "{install:?}"
    );
    let first = std::fs::read_to_string(env.dir.path().join("first-values.yaml")).unwrap();
    assert!(
        first.contains("registry.suse.com/third-party/nvidia"),
        "{first}"
    );
}

#[test]
fn version_completion_and_help() {
    let env = Env::new("v26.7.0");
    let o = env.cmd(&["version"]).output().unwrap();
    assert!(stdout(&o).starts_with(&format!("helm-rke2gpu {}", env!("CARGO_PKG_VERSION"))));
    assert!(stdout(&o).contains("commit "));
    let o = env.cmd(&["completion", "bash"]).output().unwrap();
    assert!(o.status.success() && stdout(&o).contains("helm-rke2gpu"));
    let o = env.cmd(&["install", "--help"]).output().unwrap();
    assert!(o.status.success());
    assert!(stdout(&o).contains("--print-command"), "{}", stdout(&o));
    let o = env.cmd(&["--help"]).output().unwrap();
    assert!(stdout(&o).contains("Examples:"));
}

#[test]
fn plugin_yaml_is_the_legacy_format() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("plugin.yaml")).unwrap();
    let v: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    // plugins-and-peers 3.1/3.5: fields both Helm 3 (strict) and Helm 4 (legacy) accept
    for k in &keys {
        assert!(
            [
                "name",
                "version",
                "usage",
                "description",
                "command",
                "hooks"
            ]
            .contains(k),
            "unexpected key {k}"
        );
    }
    assert_eq!(v["name"], "rke2gpu");
    assert_eq!(v["command"], "$HELM_PLUGIN_DIR/bin/helm-rke2gpu");
    // `hooks` strings (Helm 3.0+, `sh -c` in Helm 3 and 4), install only: it runs the binary
    // once, so an unbuilt checkout fails at `helm plugin install`.
    let hooks = v["hooks"].as_object().unwrap();
    assert_eq!(hooks.keys().collect::<Vec<_>>(), ["install"]);
    assert!(
        hooks["install"]
            .as_str()
            .unwrap()
            .starts_with("\"$HELM_PLUGIN_DIR/bin/helm-rke2gpu\" version")
    );
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
}
