//! `helm rke2gpu` end to end (project issue 7): the plugin installed with `helm plugin install`
//! into real Helm 3 and real Helm 4 (each in its own temporary HELM_PLUGINS / HELM_DATA_HOME /
//! HELM_CONFIG_HOME / HELM_CACHE_HOME), driving real releases of the stand-in gpu-operator chart
//! (tests/charts/dist) on the local test cluster.
//!
//! What the rendered `ClusterPolicy` must carry is written from the upstream rules
//! (rke2-docs add-ons/gpu_operators.md tabs, the rancher/rke2 Dockerfile containerd tags,
//! NVIDIA/gpu-operator values.yaml at each tag), not from the tool's output:
//! - every version: toolkit env `CONTAINERD_SOCKET=/run/k3s/containerd/containerd.sock` and no
//!   `CONTAINERD_CONFIG` (that is the 2021 `--legacy-2021` value that freezes RKE2's config);
//! - v25.10+ (CDI on by default): the cluster has a GPU node on containerd 1.7
//!   (gpu-a100-legacy-0), which has no `enable_cdi`, so `cdi.enabled=false`;
//! - v24.9.2, v25.3.x: CDI off (the chart's default; NVIDIA: not operational with RKE2 on 25.3.x);
//! - wherever CDI is off (so every version here), pods reach their GPU through the nvidia
//!   runtime, which honours `NVIDIA_VISIBLE_DEVICES` from any unprivileged container unless told
//!   otherwise (nvidia-container-toolkit ≥ v1.11.0 installer defaults, cuda_image.go): also
//!   `ACCEPT_NVIDIA_VISIBLE_DEVICES_ENVVAR_WHEN_UNPRIVILEGED=false`,
//!   `ACCEPT_NVIDIA_VISIBLE_DEVICES_AS_VOLUME_MOUNTS=true` and the device plugin's
//!   `DEVICE_LIST_STRATEGY=volume-mounts` (k8s-device-plugin; rke2-docs tab v25.3.x).
//!
//! The chart is cluster-scoped (one `ClusterPolicy`), so chart tests take a process-wide lock
//! and uninstall (guard, also on panic) before releasing it.

use cluster_harness::{Cluster, bin_dir};
use serde_json::Value;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::{MutexGuard, OnceLock};
use std::time::Duration;

const RELEASE: &str = "gpu-operator";
/// The plugin's namespace when Helm passes its `default` fallback.
const NS: &str = "gpu-operator";
const SOCKET: &str = "/run/k3s/containerd/containerd.sock";
const VERSIONS: [&str; 4] = ["v24.9.2", "v25.3.4", "v25.10.1", "v26.7.0"];

fn lock() -> MutexGuard<'static, ()> {
    cluster_harness::serial()
}

fn chart(c: &Cluster, version: &str) -> PathBuf {
    let p = c
        .repo_root()
        .join(format!("tests/charts/dist/gpu-operator-{version}.tgz"));
    assert!(p.is_file(), "no packaged chart {}", p.display());
    p
}

// ---------------------------------------------------------------------------
// Helm with the plugin installed
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HelmMajor {
    V3,
    V4,
}

/// One Helm binary with private plugin/data/config/cache dirs and the plugin installed.
struct Helm {
    bin: PathBuf,
    home: tempfile::TempDir,
    install_output: String,
}

impl Helm {
    fn dir(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    /// `helm` with the cluster's environment and the private Helm dirs. HELM_PLUGINS is
    /// `$HELM_DATA_HOME/plugins` (Helm's default): Helm 4.3.2's `plugin install` of a local dir
    /// links it under `$HELM_DATA_HOME/plugins` whatever HELM_PLUGINS says, while `plugin list`
    /// and plugin lookup read HELM_PLUGINS (seen here: with a separate HELM_PLUGINS the install
    /// says "Installed plugin: rke2gpu" and `helm rke2gpu` is an unknown command).
    fn cmd(&self, c: &Cluster) -> Command {
        self.with_env(c.cmd(&self.bin))
    }

    /// Any program with this Helm's environment (`script` running `helm rke2gpu` on a pty).
    fn with_env(&self, mut cmd: Command) -> Command {
        cmd.env("HELM_PLUGINS", self.dir("data/plugins"))
            .env("HELM_DATA_HOME", self.dir("data"))
            .env("HELM_CONFIG_HOME", self.dir("config"))
            .env("HELM_CACHE_HOME", self.dir("cache"))
            .env_remove("HELM_NAMESPACE")
            .env_remove("HELM_BIN")
            .env_remove("HELM_DEBUG");
        cmd
    }

    /// Build the plugin dir like `helm-rke2gpu/scripts/dev-install` (plugin.yaml and
    /// bin/helm-rke2gpu linked to the cargo build) and `helm plugin install` it.
    fn install(c: &Cluster, major: HelmMajor) -> Helm {
        let bin = match major {
            HelmMajor::V3 => PathBuf::from(c.var("HELM3_BIN")),
            HelmMajor::V4 => PathBuf::from(c.var("HELM4_BIN")),
        };
        let home = tempfile::Builder::new()
            .prefix("helm-e2e-")
            .tempdir()
            .unwrap();
        let mut h = Helm {
            bin,
            home,
            install_output: String::new(),
        };
        for d in ["data/plugins", "config", "cache"] {
            std::fs::create_dir_all(h.dir(d)).unwrap();
        }
        let built = bin_dir().join("helm-rke2gpu");
        assert!(
            built.is_file(),
            "{} missing: run `cargo build --workspace` first",
            built.display()
        );
        let src = h.dir("src/rke2gpu");
        std::fs::create_dir_all(src.join("bin")).unwrap();
        std::fs::copy(
            c.repo_root().join("helm-rke2gpu/plugin.yaml"),
            src.join("plugin.yaml"),
        )
        .unwrap();
        std::os::unix::fs::symlink(&built, src.join("bin/helm-rke2gpu")).unwrap();
        let out = h
            .cmd(c)
            .args(["plugin", "install"])
            .arg(&src)
            .output()
            .unwrap();
        h.install_output = text(&out);
        assert!(
            out.status.success(),
            "{major:?}: helm plugin install {}: {}",
            src.display(),
            h.install_output
        );
        h
    }

    fn shared(c: &Cluster, major: HelmMajor) -> &'static Helm {
        static H3: OnceLock<Helm> = OnceLock::new();
        static H4: OnceLock<Helm> = OnceLock::new();
        let cell = match major {
            HelmMajor::V3 => &H3,
            HelmMajor::V4 => &H4,
        };
        cell.get_or_init(|| Helm::install(c, major))
    }

    /// `helm rke2gpu ARGS...`.
    fn rke2gpu(&self, c: &Cluster, args: &[&str]) -> Output {
        self.cmd(c).arg("rke2gpu").args(args).output().unwrap()
    }
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: Output, what: &str) -> String {
    assert!(o.status.success(), "{what}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

// ---------------------------------------------------------------------------
// Cluster state
// ---------------------------------------------------------------------------

/// The ClusterPolicy, if there is one.
fn cluster_policy(c: &Cluster) -> Option<Value> {
    let o = c
        .kubectl()
        .args([
            "get",
            "clusterpolicies.nvidia.com",
            "-o",
            "json",
            "--ignore-not-found",
        ])
        .output()
        .unwrap();
    if !o.status.success()
        && String::from_utf8_lossy(&o.stderr).contains("doesn't have a resource type")
    {
        return None; // the CRD is not installed (yet): no ClusterPolicy
    }
    assert!(
        o.status.success(),
        "kubectl get clusterpolicies: {}",
        text(&o)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    let items = v["items"].as_array().cloned().unwrap_or_default();
    assert!(items.len() <= 1, "more than one ClusterPolicy: {items:#?}");
    items.into_iter().next()
}

/// Helm's release records (`owner=helm` secrets) of `RELEASE` in `NS`.
fn release_secrets(c: &Cluster) -> Vec<String> {
    let out = c.run_ok(c.kubectl().args([
        "get",
        "secrets",
        "-n",
        NS,
        "-l",
        &format!("owner=helm,name={RELEASE}"),
        "-o",
        "name",
        "--ignore-not-found",
    ]));
    out.lines().map(str::to_string).collect()
}

/// `helm list`'s CHART column (`gpu-operator-v25.3.4`) of the release.
fn release_chart(c: &Cluster) -> String {
    let out = c.run_ok(c.helm().args(["list", "-n", NS, "-o", "json"]));
    let v: Value = serde_json::from_str(&out).unwrap();
    v.as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == RELEASE))
        .and_then(|r| r["chart"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn env_of(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["name"].as_str().unwrap_or_default().to_string(),
                        e["value"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What of the ClusterPolicy the computed values decide.
#[derive(Debug, PartialEq)]
struct Rendered {
    toolkit_env: Vec<(String, String)>,
    device_plugin_env: Vec<(String, String)>,
    cdi_enabled: Option<bool>,
    toolkit_version: String,
}

fn rendered(cp: &Value) -> Rendered {
    let s = &cp["spec"];
    Rendered {
        toolkit_env: env_of(&s["toolkit"]["env"]),
        device_plugin_env: env_of(&s["devicePlugin"]["env"]),
        cdi_enabled: s["cdi"]["enabled"].as_bool(),
        toolkit_version: s["toolkit"]["version"].as_str().unwrap_or_default().into(),
    }
}

fn env_get<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let hits: Vec<_> = env.iter().filter(|(n, _)| n == name).collect();
    assert!(hits.len() <= 1, "{name} set twice: {env:?}");
    hits.first().map(|(_, v)| v.as_str())
}

/// The reference rules for this cluster (see the module docs).
fn assert_reference_values(r: &Rendered, version: &str, what: &str) {
    let tk = &r.toolkit_env;
    assert_eq!(
        env_get(tk, "CONTAINERD_SOCKET"),
        Some(SOCKET),
        "{what}: {r:#?}"
    );
    assert_eq!(env_get(tk, "CONTAINERD_CONFIG"), None, "{what}: {r:#?}");
    // Isolation wherever CDI is off; never with CDI on (its device list strategy stays).
    let isolation = r.cdi_enabled == Some(false);
    let want = |v: &'static str| isolation.then_some(v);
    assert_eq!(
        env_get(tk, "ACCEPT_NVIDIA_VISIBLE_DEVICES_ENVVAR_WHEN_UNPRIVILEGED"),
        want("false"),
        "{what} ({version}): {r:#?}"
    );
    assert_eq!(
        env_get(tk, "ACCEPT_NVIDIA_VISIBLE_DEVICES_AS_VOLUME_MOUNTS"),
        want("true"),
        "{what} ({version}): {r:#?}"
    );
    assert_eq!(
        env_get(&r.device_plugin_env, "DEVICE_LIST_STRATEGY"),
        want("volume-mounts"),
        "{what} ({version}): {r:#?}"
    );
    // CDI: off by chart default before v25.10; from v25.10 off because a GPU node runs
    // containerd 1.7 (no enable_cdi).
    assert_eq!(r.cdi_enabled, Some(false), "{what}: {r:#?}");
    // Never the broken v24.9.0 toolkit.
    assert!(r.toolkit_version != "v1.17.0", "{what}: {r:#?}");
}

/// Uninstalls the release (Helm 3, ignoring "not found") when dropped, and waits until the
/// ClusterPolicy is gone, so the next chart test starts clean.
struct ReleaseGuard<'a> {
    c: &'a Cluster,
}

impl<'a> ReleaseGuard<'a> {
    fn new(c: &'a Cluster) -> Self {
        let g = ReleaseGuard { c };
        g.clean();
        g
    }

    fn clean(&self) {
        let _ = self
            .c
            .helm()
            .args([
                "uninstall",
                RELEASE,
                "-n",
                NS,
                "--wait",
                "--ignore-not-found",
            ])
            .output();
        let c = self.c;
        c.wait_until(Duration::from_secs(60), "ClusterPolicy removed", || {
            cluster_policy(c).is_none()
        });
    }
}

impl Drop for ReleaseGuard<'_> {
    fn drop(&mut self) {
        // Never panic in a destructor (it may run while unwinding).
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.clean())).is_err() {
            eprintln!("ReleaseGuard: clean-up of release {RELEASE} failed");
        }
    }
}

fn install(h: &Helm, c: &Cluster, version: &str, extra: &[&str]) -> Output {
    let chart = chart(c, version);
    let mut args = vec!["install", RELEASE, chart.to_str().unwrap()];
    args.extend(["--wait", "--timeout", "180s"]);
    args.extend(extra);
    h.rke2gpu(c, &args)
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[test]
fn plugin_installs_in_helm3_and_helm4() {
    let c = Cluster::shared();
    for major in [HelmMajor::V3, HelmMajor::V4] {
        let h = Helm::shared(c, major);
        let list = ok(
            h.cmd(c).args(["plugin", "list"]).output().unwrap(),
            "plugin list",
        );
        assert!(
            list.lines()
                .any(|l| l.split_whitespace().next() == Some("rke2gpu")),
            "{major:?}: rke2gpu not in `helm plugin list`:\n{list}\ninstall said:\n{}",
            h.install_output
        );
        // Installed under the private HELM_PLUGINS, nowhere else.
        assert!(
            std::fs::read_dir(h.dir("data/plugins"))
                .unwrap()
                .flatten()
                .any(|e| e.path().join("plugin.yaml").is_file()),
            "{major:?}: nothing installed under {}",
            h.dir("data/plugins").display()
        );
        let v = ok(h.rke2gpu(c, &["version"]), "helm rke2gpu version");
        assert!(v.starts_with("helm-rke2gpu "), "{major:?}: {v}");
        // Helm's global flags reach the plugin: `helm rke2gpu values` reads the cluster.
        let vals = ok(
            h.rke2gpu(c, &["values", chart(c, "v26.7.0").to_str().unwrap()]),
            "helm rke2gpu values",
        );
        assert!(vals.contains(SOCKET), "{major:?}: {vals}");
        // The plugin drives the Helm that runs it (HELM_BIN), not whatever `helm` is on PATH,
        // and maps Helm's `default` namespace fallback to gpu-operator.
        let o = h
            .cmd(c)
            .env("HELM_DEBUG", "true")
            .args([
                "rke2gpu",
                "uninstall",
                "no-such-release",
                "--ignore-not-found",
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{major:?}: {}", text(&o));
        let expected = format!("{} uninstall no-such-release -n {NS}", h.bin.display());
        assert!(
            err.contains(&expected),
            "{major:?}: expected `{expected}` in the debug log:\n{err}"
        );
    }
}

fn install_every_version(major: HelmMajor) {
    let c = Cluster::shared();
    let h = Helm::shared(c, major);
    let _l = lock();
    for version in VERSIONS {
        let _g = ReleaseGuard::new(c);
        let what = format!("{major:?} {version}");
        let o = install(h, c, version, &[]);
        assert!(o.status.success(), "{what}: install: {}", text(&o));
        assert_eq!(release_secrets(c).len(), 1, "{what}: one release record");
        let status = c.run_ok(c.helm().args(["status", RELEASE, "-n", NS, "-o", "json"]));
        let status: Value = serde_json::from_str(&status).unwrap();
        assert_eq!(status["info"]["status"], "deployed", "{what}: {status:#}");
        assert_eq!(
            release_chart(c),
            format!("gpu-operator-{version}"),
            "{what}: chart of the release"
        );
        let cp = cluster_policy(c).unwrap_or_else(|| panic!("{what}: no ClusterPolicy"));
        assert_reference_values(&rendered(&cp), version, &what);

        let o = h.rke2gpu(c, &["uninstall"]);
        let out = ok(o, &format!("{what}: uninstall"));
        assert!(
            out.contains("/usr/local/nvidia") && out.contains("kubectl delete crd"),
            "{what}: uninstall prints the node clean-up notes:\n{out}"
        );
        assert!(release_secrets(c).is_empty(), "{what}: release left");
    }
}

#[test]
fn helm3_install_and_uninstall_every_chart_version() {
    install_every_version(HelmMajor::V3);
}

#[test]
fn helm4_install_and_uninstall_every_chart_version() {
    install_every_version(HelmMajor::V4);
}

#[test]
fn dry_run_creates_nothing() {
    let c = Cluster::shared();
    let _l = lock();
    let _g = ReleaseGuard::new(c);
    // Helm 3 (3.22) cannot dry-run a chart whose CRD is not installed yet ("resource mapping
    // not found ... ensure CRDs are installed first", plain `helm install --dry-run` too);
    // Helm 4 can. Install the chart's CRD the way Helm would on a real install.
    let crds = ok(
        c.helm()
            .args(["show", "crds"])
            .arg(chart(c, "v25.3.4"))
            .output()
            .unwrap(),
        "helm show crds",
    );
    c.run_with_stdin(c.kubectl().args(["apply", "-f", "-"]), &crds);
    for major in [HelmMajor::V3, HelmMajor::V4] {
        let h = Helm::shared(c, major);
        let chart = chart(c, "v25.3.4");
        let o = h.rke2gpu(
            c,
            &["install", RELEASE, chart.to_str().unwrap(), "--dry-run"],
        );
        let out = ok(o, &format!("{major:?} --dry-run"));
        // Helm printed the manifest it would apply, with the computed env.
        assert!(out.contains("kind: ClusterPolicy"), "{major:?}: {out}");
        assert!(out.contains(SOCKET), "{major:?}: {out}");
        assert!(
            release_secrets(c).is_empty(),
            "{major:?}: --dry-run stored a release"
        );
        assert!(
            cluster_policy(c).is_none(),
            "{major:?}: --dry-run created a ClusterPolicy"
        );
    }
}

#[test]
fn upgrade_recomputes_for_the_new_chart() {
    let c = Cluster::shared();
    let _l = lock();
    let _g = ReleaseGuard::new(c);
    for major in [HelmMajor::V3, HelmMajor::V4] {
        let h = Helm::shared(c, major);
        let what = format!("{major:?}");
        let o = install(h, c, "v25.3.4", &[]);
        assert!(o.status.success(), "{what}: install: {}", text(&o));
        let cp = cluster_policy(c).unwrap();
        assert_reference_values(&rendered(&cp), "v25.3.4", &what);

        let chart = chart(c, "v25.10.1");
        let o = h.rke2gpu(
            c,
            &[
                "upgrade",
                RELEASE,
                chart.to_str().unwrap(),
                "--wait",
                "--timeout",
                "180s",
            ],
        );
        assert!(o.status.success(), "{what}: upgrade: {}", text(&o));
        let status = c.run_ok(c.helm().args(["status", RELEASE, "-n", NS, "-o", "json"]));
        let status: Value = serde_json::from_str(&status).unwrap();
        assert_eq!(status["version"], 2, "{what}: revision after upgrade");
        assert_eq!(release_chart(c), "gpu-operator-v25.10.1", "{what}");
        let r = rendered(&cluster_policy(c).unwrap());
        assert_reference_values(&r, "v25.10.1", &what);
        // CDI stays off on v25.10 here (a containerd 1.7 GPU node), so the isolation stays too.
        assert_eq!(
            env_get(&r.device_plugin_env, "DEVICE_LIST_STRATEGY"),
            Some("volume-mounts"),
            "{r:#?}"
        );

        let out = ok(h.rke2gpu(c, &["uninstall"]), "uninstall");
        assert!(out.contains("kubectl delete crd"), "{out}");
        c.wait_until(Duration::from_secs(60), "ClusterPolicy removed", || {
            cluster_policy(c).is_none()
        });
    }
}

#[test]
fn user_set_overrides_a_computed_value() {
    let c = Cluster::shared();
    let _l = lock();
    let _g = ReleaseGuard::new(c);
    let h = Helm::shared(c, HelmMajor::V3);
    // Which computed entry is toolkit.env[0]? Read it from the computed values (JSON).
    let values = ok(
        h.rke2gpu(
            c,
            &["values", chart(c, "v25.3.4").to_str().unwrap(), "-o", "set"],
        ),
        "values -o set",
    );
    let first = values
        .lines()
        .find_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.trim_matches('\'').strip_prefix("toolkit.env[0].name="))
                .map(str::to_string)
        })
        .unwrap_or_else(|| panic!("no toolkit.env[0] in the computed values:\n{values}"));
    let o = install(
        h,
        c,
        "v25.3.4",
        &[
            "--set",
            "toolkit.env[0].value=/custom.sock",
            "--set",
            "cdi.enabled=true",
        ],
    );
    assert!(o.status.success(), "install: {}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("toolkit.env[0]"),
        "the overwrite of a computed entry is warned about:\n{stderr}"
    );
    let r = rendered(&cluster_policy(c).unwrap());
    assert_eq!(
        env_get(&r.toolkit_env, &first),
        Some("/custom.sock"),
        "{r:#?}"
    );
    // The other computed entries are still there.
    assert_eq!(r.toolkit_env.len(), 3, "{r:#?}");
    assert_eq!(
        r.cdi_enabled,
        Some(true),
        "user --set cdi.enabled wins: {r:#?}"
    );
}

#[test]
fn print_command_gives_the_same_cluster_policy() {
    let c = Cluster::shared();
    let _l = lock();
    let _g = ReleaseGuard::new(c);
    for major in [HelmMajor::V3, HelmMajor::V4] {
        let h = Helm::shared(c, major);
        let what = format!("{major:?}");
        let version = "v25.3.4";
        let chart = chart(c, version);
        let args = [
            "install",
            RELEASE,
            chart.to_str().unwrap(),
            "--wait",
            "--timeout",
            "180s",
        ];
        let mut printed = args.to_vec();
        printed.push("--print-command");
        let out = ok(h.rke2gpu(c, &printed), "--print-command");
        assert!(
            release_secrets(c).is_empty(),
            "{what}: --print-command installed"
        );
        let line = out
            .lines()
            .find(|l| l.starts_with("helm "))
            .unwrap_or_else(|| panic!("{what}: no helm command printed:\n{out}"));
        assert!(line.starts_with("helm install "), "{line}");
        assert!(!line.contains("--print-command"), "{line}");

        // Run the printed command as a user would (`helm` = this Helm).
        let bin_dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&h.bin, bin_dir.path().join("helm")).unwrap();
        let path = format!(
            "{}:{}",
            bin_dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut sh = c.cmd("sh");
        sh.env("PATH", path).args(["-ec", line]);
        for (k, v) in h.cmd(c).get_envs() {
            if let (Some(v), false) = (v, k == "PATH") {
                sh.env(k, v);
            }
        }
        let o = sh.output().unwrap();
        assert!(o.status.success(), "{what}: {line}: {}", text(&o));
        let printed_policy = rendered(&cluster_policy(c).unwrap());
        assert_reference_values(&printed_policy, version, &what);
        c.run_ok(c.helm().args(["uninstall", RELEASE, "-n", NS, "--wait"]));
        c.wait_until(Duration::from_secs(60), "ClusterPolicy removed", || {
            cluster_policy(c).is_none()
        });

        let o = h.rke2gpu(c, &args);
        assert!(o.status.success(), "{what}: install: {}", text(&o));
        let installed = rendered(&cluster_policy(c).unwrap());
        assert_eq!(
            printed_policy, installed,
            "{what}: the printed command and the plugin render different ClusterPolicies"
        );
        c.run_ok(c.helm().args(["uninstall", RELEASE, "-n", NS, "--wait"]));
        c.wait_until(Duration::from_secs(60), "ClusterPolicy removed", || {
            cluster_policy(c).is_none()
        });
    }
}

// ---------------------------------------------------------------------------
// Upgrade: the chart's CRDs first (issue 16)
// ---------------------------------------------------------------------------
//
// The stand-in's ClusterPolicy CRD lists spec.cdi's fields, and only v26.7.0's has
// `cdi.nriPluginEnabled` (as the real chart's CRD: absent at v25.10.1, present from v26.3.0;
// tests/charts/package). Helm installs crds/ on first install only and never upgrades them.

const CP_CRD: &str = "clusterpolicies.nvidia.com";

/// The ClusterPolicy CRD as JSON.
fn cp_crd(c: &Cluster) -> Value {
    let out =
        c.run_ok(
            c.kubectl()
                .args(["get", "crd", CP_CRD, "-o", "json", "--show-managed-fields"]),
        );
    serde_json::from_str(&out).unwrap()
}

/// The `spec.cdi` fields the cluster's ClusterPolicy CRD declares.
fn crd_cdi_fields(c: &Cluster) -> Vec<String> {
    let crd = cp_crd(c);
    crd.pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/cdi/properties")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// The field managers of the ClusterPolicy CRD.
fn crd_managers(c: &Cluster) -> Vec<String> {
    cp_crd(c)["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["manager"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn revision(c: &Cluster) -> u64 {
    let status = c.run_ok(c.helm().args(["status", RELEASE, "-n", NS, "-o", "json"]));
    let status: Value = serde_json::from_str(&status).unwrap();
    status["version"].as_u64().unwrap()
}

/// No CRD left by earlier tests (uninstall keeps CRDs), then `helm rke2gpu install` of
/// v25.10.1: the cluster gets v25.10.1's ClusterPolicy CRD, without `cdi.nriPluginEnabled`.
fn install_v25_10_1_with_its_crd(h: &Helm, c: &Cluster) {
    c.run_ok(
        c.kubectl()
            .args(["delete", "crd", CP_CRD, "--ignore-not-found", "--wait"]),
    );
    let o = install(h, c, "v25.10.1", &[]);
    assert!(o.status.success(), "install v25.10.1: {}", text(&o));
    let fields = crd_cdi_fields(c);
    assert!(
        fields.contains(&"enabled".to_string())
            && !fields.contains(&"nriPluginEnabled".to_string()),
        "v25.10.1's CRD: {fields:?}"
    );
}

/// `helm rke2gpu ARGS…` on a pseudo-terminal (util-linux `script`), typing `answer`; stdin
/// stays open until it exits. Its stdout and stderr both come back as stdout.
fn rke2gpu_on_pty(h: &Helm, c: &Cluster, args: &[&str], answer: &str) -> Output {
    use std::io::{Read as _, Write as _};
    use std::process::Stdio;
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let line = std::iter::once(quote(&h.bin.display().to_string()))
        .chain(std::iter::once("rke2gpu".to_string()))
        .chain(args.iter().map(|a| quote(a)))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = h
        .with_env(c.cmd("script"))
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(answer.as_bytes()).unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let status = child.wait().unwrap();
    drop(stdin);
    Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

#[test]
fn upgrade_applies_the_chart_crds_first() {
    let c = Cluster::shared();
    let _l = lock();
    let g = ReleaseGuard::new(c);
    let new = chart(c, "v26.7.0");
    let new = new.to_str().unwrap();

    // Plain `helm upgrade`: the CRD stays v25.10.1's and the API server prunes the field the
    // v26.7.0 chart renders.
    install_v25_10_1_with_its_crd(Helm::shared(c, HelmMajor::V3), c);
    c.run_ok(c.helm().args([
        "upgrade",
        RELEASE,
        new,
        "-n",
        NS,
        "--wait",
        "--timeout",
        "180s",
    ]));
    assert_eq!(release_chart(c), "gpu-operator-v26.7.0");
    let manifest = c.run_ok(c.helm().args(["get", "manifest", RELEASE, "-n", NS]));
    assert!(
        manifest.contains("nriPluginEnabled: false"),
        "helm rendered the field:\n{manifest}"
    );
    let cp = cluster_policy(c).unwrap();
    assert!(cp["spec"]["cdi"].get("enabled").is_some(), "{cp:#}");
    assert!(
        cp["spec"]["cdi"].get("nriPluginEnabled").is_none(),
        "pruned by the stale CRD: {:#}",
        cp["spec"]["cdi"]
    );
    assert!(!crd_cdi_fields(c).contains(&"nriPluginEnabled".to_string()));

    // `helm rke2gpu upgrade` (Helm 3 and 4): the chart's CRDs go first, and the field survives.
    for major in [HelmMajor::V3, HelmMajor::V4] {
        let h = Helm::shared(c, major);
        let what = format!("{major:?}");
        g.clean();
        install_v25_10_1_with_its_crd(h, c);
        let o = h.rke2gpu(
            c,
            &[
                "upgrade",
                RELEASE,
                new,
                "--set",
                "mig.strategy=mixed",
                "--wait",
                "--timeout",
                "180s",
            ],
        );
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{what}: rke2gpu upgrade: {}", text(&o));
        for want in [
            "CRDs of chart v26.7.0",
            "clusterpolicies.nvidia.com: new spec fields: spec.cdi.nriPluginEnabled",
            "that the cluster's CRD prunes and chart v26.7.0's keeps: spec.cdi.nriPluginEnabled",
            "values supplied to helm, revision 1 (chart v25.10.1) → chart v26.7.0:\n  + mig.strategy: \"mixed\"",
            "no terminal to ask on and no --yes: applying the chart's CRDs",
            "applied CRD clusterpolicies.nvidia.com (server-side, field manager helm-rke2gpu)",
        ] {
            assert!(err.contains(want), "{what}: missing {want:?}:\n{err}");
        }
        assert!(crd_cdi_fields(c).contains(&"nriPluginEnabled".to_string()));
        assert!(crd_managers(c).contains(&"helm-rke2gpu".to_string()));
        assert_eq!(revision(c), 2, "{what}");
        let cp = cluster_policy(c).unwrap();
        assert_eq!(
            cp["spec"]["cdi"]["nriPluginEnabled"],
            Value::Bool(false),
            "{what}: kept: {:#}",
            cp["spec"]["cdi"]
        );
        assert_eq!(cp["spec"]["mig"]["strategy"], "mixed", "{what}");
    }
}

#[test]
fn upgrade_crd_step_dry_run_no_skip_and_yes() {
    let c = Cluster::shared();
    let _l = lock();
    let g = ReleaseGuard::new(c);
    let h = Helm::shared(c, HelmMajor::V3);
    let new = chart(c, "v26.7.0");
    let new = new.to_str().unwrap();
    install_v25_10_1_with_its_crd(h, c);

    // --dry-run: shown, nothing applied; user keys v26.7.0 does not have are named.
    let o = h.rke2gpu(
        c,
        &[
            "upgrade",
            RELEASE,
            new,
            "--dry-run",
            "--set",
            "operator.defaultRuntime=containerd",
            "--set",
            "cdi.typo=true",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "dry run: {}", text(&o));
    for want in [
        "--set operator.defaultRuntime=containerd sets `operator.defaultRuntime`, which chart v26.7.0's values.yaml does not have",
        "--set cdi.typo=true sets `cdi.typo`",
        "clusterpolicies.nvidia.com: new spec fields: spec.cdi.nriPluginEnabled",
        "--dry-run: not applying clusterpolicies.nvidia.com",
    ] {
        assert!(err.contains(want), "missing {want:?}:\n{err}");
    }
    assert!(!err.contains("applied CRD"), "{err}");
    assert!(!crd_cdi_fields(c).contains(&"nriPluginEnabled".to_string()));
    assert!(!crd_managers(c).contains(&"helm-rke2gpu".to_string()));
    assert_eq!(revision(c), 1);

    // On a terminal, answering no refuses: nothing applied, helm not run.
    let o = rke2gpu_on_pty(
        h,
        c,
        &["upgrade", RELEASE, new, "--wait", "--timeout", "180s"],
        "n\n",
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(1), "answered no: {}", text(&o));
    for want in [
        "Apply clusterpolicies.nvidia.com (server-side, field manager helm-rke2gpu) before helm upgrade? [y/N]",
        "not running helm upgrade: the CRDs of chart v26.7.0 were not applied",
        "--skip-crds",
    ] {
        assert!(out.contains(want), "missing {want:?}:\n{out}");
    }
    assert!(!crd_cdi_fields(c).contains(&"nriPluginEnabled".to_string()));
    assert_eq!(revision(c), 1);

    // --skip-crds: helm upgrades, the CRD stays stale and the field is pruned.
    let o = h.rke2gpu(
        c,
        &[
            "upgrade",
            RELEASE,
            new,
            "--skip-crds",
            "--wait",
            "--timeout",
            "180s",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "--skip-crds: {}", text(&o));
    assert!(
        err.contains("--skip-crds: not applying the CRDs of chart v26.7.0"),
        "{err}"
    );
    assert_eq!(revision(c), 2);
    assert!(!crd_cdi_fields(c).contains(&"nriPluginEnabled".to_string()));
    let cp = cluster_policy(c).unwrap();
    assert!(
        cp["spec"]["cdi"].get("nriPluginEnabled").is_none(),
        "{cp:#}"
    );

    // --yes on a terminal: no question; the CRD goes in before helm, and the field is kept.
    // (From the --skip-crds state above the field would stay lost: Helm 3 patches a custom
    // resource with the difference between the old and the new manifest, which is empty for
    // it; seen here. So start again from v25.10.1.)
    g.clean();
    install_v25_10_1_with_its_crd(h, c);
    let o = rke2gpu_on_pty(
        h,
        c,
        &[
            "upgrade",
            RELEASE,
            new,
            "--yes",
            "--wait",
            "--timeout",
            "180s",
        ],
        "",
    );
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "--yes: {}", text(&o));
    assert!(!out.contains("[y/N]"), "{out}");
    assert!(!out.contains("no terminal to ask on"), "{out}");
    assert!(
        out.contains("applied CRD clusterpolicies.nvidia.com"),
        "{out}"
    );
    assert_eq!(revision(c), 2);
    assert!(crd_cdi_fields(c).contains(&"nriPluginEnabled".to_string()));
    let cp = cluster_policy(c).unwrap();
    assert_eq!(
        cp["spec"]["cdi"]["nriPluginEnabled"],
        Value::Bool(false),
        "{cp:#}"
    );
}

/// Copies a directory tree.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

#[test]
fn upgrade_still_refuses_a_known_bad_chart_naming_its_override() {
    let c = Cluster::shared();
    let h = Helm::shared(c, HelmMajor::V3);
    // The stand-in chart as v25.3.3 (toolkit.env applied after the runtime transform:
    // NVIDIA/gpu-operator#1694; refused, v25.3.4 is the fix).
    let dir = tempfile::tempdir().unwrap();
    let chart_dir = dir.path().join("gpu-operator");
    copy_dir(&c.repo_root().join("tests/charts/gpu-operator"), &chart_dir);
    let meta = std::fs::read_to_string(chart_dir.join("Chart.yaml")).unwrap();
    std::fs::write(
        chart_dir.join("Chart.yaml"),
        meta.replace("version: v1.0.0-devel", "version: v25.3.3"),
    )
    .unwrap();
    let o = h.rke2gpu(
        c,
        &[
            "upgrade",
            "no-such-release",
            chart_dir.to_str().unwrap(),
            "--dry-run",
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        err.contains("v25.3.3 is known to fail on RKE2/K3s"),
        "{err}"
    );
    assert!(err.contains("--rke2gpu-force"), "{err}");
    assert!(
        !err.contains("CRDs of chart"),
        "refused before the CRD step: {err}"
    );
}

#[test]
fn install_over_crds_the_upgrade_applied() {
    let c = Cluster::shared();
    let _l = lock();
    let g = ReleaseGuard::new(c);
    let h3 = Helm::shared(c, HelmMajor::V3);
    let h4 = Helm::shared(c, HelmMajor::V4);
    let old = chart(c, "v25.10.1");
    let old = old.to_str().unwrap();
    // The upgrade leaves v26.7.0's CRD, its .spec.versions owned by helm-rke2gpu; uninstall keeps it.
    install_v25_10_1_with_its_crd(h3, c);
    let new = chart(c, "v26.7.0");
    ok(
        h3.rke2gpu(c, &["upgrade", RELEASE, new.to_str().unwrap(), "--wait"]),
        "rke2gpu upgrade",
    );
    g.clean();
    assert!(crd_managers(c).contains(&"helm-rke2gpu".to_string()));

    // Plain Helm 4 applies crds/ server-side without forcing: a different CRD conflicts (seen:
    // "conflict with \"helm-rke2gpu\": .spec.versions").
    let o = c
        .helm4()
        .args(["install", RELEASE, old, "-n", NS, "--create-namespace"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "plain helm 4 install: {}", text(&o));
    assert!(
        err.contains("conflict") && err.contains("helm-rke2gpu"),
        "{err}"
    );
    g.clean();

    // `helm rke2gpu install` applies the chart's CRDs over the existing ones first, so Helm 4
    // finds them equal (no conflict) and Helm 3 does not keep the newer one.
    let o = h4.rke2gpu(c, &["install", RELEASE, old, "--wait", "--timeout", "180s"]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "rke2gpu install (Helm 4): {}", text(&o));
    for want in [
        "CRDs of chart v25.10.1 against the ones already in the cluster",
        "clusterpolicies.nvidia.com: removed spec fields: spec.cdi.nriPluginEnabled",
        "applied CRD clusterpolicies.nvidia.com",
    ] {
        assert!(err.contains(want), "missing {want:?}:\n{err}");
    }
    assert!(!crd_cdi_fields(c).contains(&"nriPluginEnabled".to_string()));
    // Installing the same chart again: nothing to apply, nothing said.
    g.clean();
    let o = h3.rke2gpu(c, &["install", RELEASE, old, "--wait", "--timeout", "180s"]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "rke2gpu install (Helm 3): {}", text(&o));
    assert!(!err.contains("CRDs of chart"), "{err}");
}

/// `--time-slicing 4`: the chart (the stand-in renders devicePlugin.config as
/// the real chart's plugin_config.yaml and clusterpolicy.yaml do) creates
/// the device plugin config ConfigMap, whose file is the device plugin's
/// `version: v1` schema with 4 replicas, and the ClusterPolicy points the
/// device plugin at it as every node's default.
#[test]
fn time_slicing_creates_the_device_plugin_config() {
    let c = Cluster::shared();
    let _l = lock();
    let _g = ReleaseGuard::new(c);
    let h = Helm::shared(c, HelmMajor::V3);
    let o = install(
        h,
        c,
        "v26.7.0",
        &["--time-slicing", "4", "--fail-requests-greater-than-one"],
    );
    assert!(o.status.success(), "install: {}", text(&o));
    let cm = c.run_ok(c.kubectl().args([
        "-n",
        NS,
        "get",
        "configmap",
        "rke2gpu-device-plugin-config",
        "-o",
        "json",
    ]));
    let cm: Value = serde_json::from_str(&cm).unwrap();
    let file = cm["data"]["rke2gpu-shared"]
        .as_str()
        .expect("the config key");
    let cfg: Value = serde_saphyr::from_str(file).unwrap();
    assert_eq!(cfg["version"], "v1");
    assert_eq!(
        cfg["sharing"]["timeSlicing"]["failRequestsGreaterThanOne"],
        true
    );
    assert_eq!(cfg["sharing"]["timeSlicing"]["resources"][0]["replicas"], 4);
    let cp = cluster_policy(c).unwrap();
    assert_eq!(
        cp["spec"]["devicePlugin"]["config"]["name"], "rke2gpu-device-plugin-config",
        "{cp}"
    );
    assert_eq!(
        cp["spec"]["devicePlugin"]["config"]["default"], "rke2gpu-shared",
        "{cp}"
    );
    let err = text(&o);
    assert!(
        err.contains("rollout restart daemonset/nvidia-device-plugin-daemonset"),
        "{err}"
    );
    // A refused combination creates nothing.
    let o = h.rke2gpu(
        c,
        &[
            "values",
            chart(c, "v26.7.0").to_str().unwrap(),
            "--time-slicing",
            "1",
        ],
    );
    assert!(!o.status.success());
    assert!(text(&o).contains("at least 2"), "{}", text(&o));
}

/// `helm rke2gpu images`: the operands from the chart's values with ours and
/// the user's merged (a user `--set` wins), the driver per GPU node OS, the
/// chart's rendered containers and our own images; `-o plain` one image a
/// line, each once, enabled only.
#[test]
fn images_lists_what_the_release_will_pull() {
    let c = Cluster::shared();
    let h = Helm::shared(c, HelmMajor::V3);
    let chart = chart(c, "v26.7.0");
    let chart = chart.to_str().unwrap();
    let o = h.rke2gpu(
        c,
        &[
            "images",
            chart,
            "-o",
            "json",
            "--all",
            "--set",
            "devicePlugin.version=v0.20.1",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let list: Value = serde_json::from_slice(&o.stdout).unwrap();
    let list = list.as_array().unwrap();
    let by = |from: &str| -> Vec<&Value> { list.iter().filter(|i| i["from"] == from).collect() };
    assert_eq!(
        by("devicePlugin")[0]["image"],
        "nvcr.io/nvidia/k8s-device-plugin:v0.20.1",
        "{list:#?}"
    );
    assert_eq!(
        by("operator")[0]["image"],
        "nvcr.io/nvidia/gpu-operator:v26.7.0"
    );
    // The test cluster's GPU nodes carry nvidia.com/gpu.deploy.driver=pre-installed: no driver pulled.
    let drivers = by("driver");
    assert_eq!(drivers.len(), 1, "{drivers:#?}");
    assert_eq!(drivers[0]["enabled"], false);
    assert!(
        drivers[0]["note"]
            .as_str()
            .unwrap()
            .contains("pre-installed"),
        "{drivers:#?}"
    );
    assert!(by("kubectl-gpu").len() >= 2, "{list:#?}");
    let plain = h.rke2gpu(
        c,
        &[
            "images",
            chart,
            "-o",
            "plain",
            "--set",
            "driver.enabled=false",
        ],
    );
    assert!(plain.status.success(), "{}", text(&plain));
    let lines: Vec<String> = String::from_utf8_lossy(&plain.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert!(
        !lines
            .iter()
            .any(|l| l.starts_with("nvcr.io/nvidia/driver:")),
        "driver off: {lines:?}"
    );
    let mut uniq = lines.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), lines.len(), "each image once: {lines:?}");
}

/// A tool binary from tests/e2e/build-bins (built when missing).
fn tool(c: &Cluster, name: &str) -> PathBuf {
    let out =
        c.run_ok(Command::new(c.repo_root().join("tests/e2e/build-bins")).args(["--path", name]));
    PathBuf::from(out.lines().last().unwrap().trim()).join(name)
}

/// A real OCI registry (CNCF distribution, from the Go module proxy) with
/// htpasswd auth, stopped when dropped.
struct Registry {
    child: std::process::Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn registry(c: &Cluster) -> Registry {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    // bcrypt, as the registry's htpasswd wants it (glibc's crypt through Python's crypt module).
    let hash = c.run_ok(Command::new("python3").args([
        "-W",
        "ignore",
        "-c",
        "import crypt; print(crypt.crypt('p', crypt.mksalt(crypt.METHOD_BLOWFISH)))",
    ]));
    fs::write(dir.path().join("htpasswd"), format!("u:{}\n", hash.trim())).unwrap();
    let cfg = format!(
        "version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {d}/data}}}}\nhttp: {{addr: {addr}}}\nauth: {{htpasswd: {{realm: test, path: {d}/htpasswd}}}}\n",
        d = dir.path().display()
    );
    fs::write(dir.path().join("config.yml"), cfg).unwrap();
    let child = Command::new(tool(c, "registry"))
        .arg("serve")
        .arg(dir.path().join("config.yml"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    c.wait_until(Duration::from_secs(20), "registry up", || {
        std::net::TcpStream::connect(&addr).is_ok()
    });
    Registry {
        child,
        addr,
        _dir: dir,
    }
}

/// `images --check-mirror` against a real registry: the images pushed (with
/// crane, one of them for arm64 only) are present or lack the platform,
/// the rest are missing with the copy command, exit 1; without credentials
/// every image is unauthorized; RKE2's registries.yaml credentials work as
/// the docker config does; an unreachable registry is a clear error.
#[test]
fn check_mirror_against_a_real_registry() {
    let c = Cluster::shared();
    let h = Helm::shared(c, HelmMajor::V3);
    let chart = chart(c, "v26.7.0");
    let chart = chart.to_str().unwrap();
    let reg = registry(c);
    let crane = tool(c, "crane");
    let dc = tempfile::tempdir().unwrap();
    let crane_cmd = |args: &[&str]| {
        let mut cmd = Command::new(&crane);
        cmd.env("DOCKER_CONFIG", dc.path()).args(args);
        c.run_ok(&mut cmd)
    };
    crane_cmd(&["auth", "login", &reg.addr, "-u", "u", "-p", "p"]);
    let layer = dc.path().join("layer.tar");
    fs::write(dc.path().join("f"), "x").unwrap();
    c.run_ok(
        Command::new("tar")
            .arg("cf")
            .arg(&layer)
            .arg("-C")
            .arg(dc.path())
            .arg("f"),
    );
    let push = |repo: &str, platform: &str| {
        let r = format!("{}/{repo}", reg.addr);
        crane_cmd(&[
            "append",
            "-f",
            layer.to_str().unwrap(),
            "-t",
            &r,
            "--insecure",
        ]);
        crane_cmd(&[
            "mutate",
            &r,
            "--set-platform",
            platform,
            "-t",
            &r,
            "--insecure",
        ]);
    };
    push("nvidia/k8s-device-plugin:v0.20.0", "linux/amd64");
    push("nvidia/k8s/container-toolkit:v1.20.0", "linux/arm64");

    let mirror = format!("http://{}", reg.addr);
    let docker_config = dc.path().join("config.json");
    let o = h.rke2gpu(
        c,
        &[
            "images",
            chart,
            "--check-mirror",
            &mirror,
            "--docker-config",
            docker_config.to_str().unwrap(),
            "-o",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let checks: Value = serde_json::from_slice(&o.stdout).unwrap();
    let status = |image: &str| -> Value {
        checks
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["image"] == image)
            .cloned()
            .unwrap_or_else(|| panic!("{image}: {checks:#}"))
    };
    let dp = status("nvcr.io/nvidia/k8s-device-plugin:v0.20.0");
    assert_eq!(dp["status"], "present", "{dp}");
    assert_eq!(dp["platforms"][0], "linux/amd64");
    assert_eq!(
        dp["mirrored"],
        format!("{}/nvidia/k8s-device-plugin:v0.20.0", reg.addr)
    );
    let tk = status("nvcr.io/nvidia/k8s/container-toolkit:v1.20.0");
    assert_eq!(tk["status"], "platform-missing", "{tk}");
    let op = status("nvcr.io/nvidia/gpu-operator:v26.7.0");
    assert_eq!(op["status"], "missing", "{op}");
    assert!(
        op["detail"].as_str().unwrap().contains("crane copy"),
        "{op}"
    );

    // The same credentials from RKE2's registries.yaml.
    let ry = dc.path().join("registries.yaml");
    fs::write(
        &ry,
        format!(
            "configs:\n  \"{}\":\n    auth:\n      username: u\n      password: p\n",
            reg.addr
        ),
    )
    .unwrap();
    let o = h.rke2gpu(
        c,
        &[
            "images",
            chart,
            "--check-mirror",
            &mirror,
            "--registries-yaml-auth",
            ry.to_str().unwrap(),
            "-o",
            "json",
        ],
    );
    let again: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        again
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["status"] == "present"),
        "{again:#}"
    );

    // No credentials: refused, and said so.
    let o = h.rke2gpu(
        c,
        &["images", chart, "--check-mirror", &mirror, "-o", "json"],
    );
    assert_eq!(o.status.code(), Some(1));
    let anon: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        anon.as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "unauthorized"),
        "{anon:#}"
    );

    // registries.yaml for the same images.
    let o = h.rke2gpu(c, &["images", chart, "--registries-yaml", &mirror]);
    assert!(o.status.success(), "{}", text(&o));
    let y = String::from_utf8_lossy(&o.stdout);
    assert!(y.contains("nvcr.io:") && y.contains("docker.io:"), "{y}");

    drop(reg);
    let o = h.rke2gpu(c, &["images", chart, "--check-mirror", &mirror]);
    assert!(!o.status.success());
    assert!(text(&o).contains("is unreachable"), "{}", text(&o));
}
