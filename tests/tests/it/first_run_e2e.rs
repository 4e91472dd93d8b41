//! What a new user meets first, following the README on a fresh machine (project issue 13,
//! "found trying the README as a new user would"): the real binaries through kubectl's plugin
//! lookup and real Helm 3 / Helm 4, each asserting the message a user reads.
//!
//! - an unreachable API server gives our one error, without kube-rs' own ERROR log lines
//!   unless `-v` asks for logs;
//! - offline `patch-containerd --config-file ./bad.toml` names `./bad.toml`, not the host
//!   path the file stands for;
//! - `report --bundle` into a directory that does not exist names the cause once;
//! - `helm plugin install ./helm-rke2gpu` from a checkout: works once helm-rke2gpu is built,
//!   fails at install naming `scripts/dev-install` when it is not.

use cluster_harness::Cluster;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A kubeconfig whose server is a 127.0.0.1 port nothing listens on (bound, then released).
fn unreachable_kubeconfig(dir: &Path) -> PathBuf {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = dir.join("unreachable.yaml");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:{port}\n\
             contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n\
             users:\n- name: u\n  user:\n    token: not-used\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn unreachable_server_prints_our_error_and_library_logs_only_with_v() {
    let c = Cluster::shared();
    let dir = tempfile::tempdir().unwrap();
    let kc = unreachable_kubeconfig(dir.path());
    let run = |extra: &[&str]| {
        c.kubectl()
            .args(["gpu", "check-runtime", "--kubeconfig"])
            .arg(&kc)
            .args(extra)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    let quiet = run(&[]);
    assert_eq!(quiet.status.code(), Some(2), "{}", text(&quiet));
    let err = stderr(&quiet);
    assert!(
        err.contains("error: cannot reach the Kubernetes API server https://127.0.0.1:"),
        "{}",
        text(&quiet)
    );
    assert!(
        !err.contains("kube_client") && !err.contains("ERROR"),
        "library log lines without -v:\n{}",
        text(&quiet)
    );
    assert_eq!(err.lines().count(), 1, "one line, ours:\n{}", text(&quiet));

    // -v: kube-rs' own log of the failed connection, uncoloured (stderr is not a terminal).
    let verbose = run(&["-v"]);
    assert_eq!(verbose.status.code(), Some(2), "{}", text(&verbose));
    let err = stderr(&verbose);
    assert!(err.contains("kube_client"), "{}", text(&verbose));
    assert!(!err.contains('\u{1b}'), "colour codes on a pipe:\n{err}");
    assert!(err.contains("error: cannot reach the Kubernetes API server"));
}

#[test]
fn offline_patch_containerd_names_the_given_file() {
    let c = Cluster::shared();
    let dir = tempfile::tempdir().unwrap();
    // A table header without its `]`, as an editor slip leaves it.
    std::fs::write(
        dir.path().join("bad.toml"),
        "version = 3\n[plugins.\"io.containerd.cri.v1.runtime\"\n",
    )
    .unwrap();
    let o = c
        .kubectl()
        .args(["gpu", "patch-containerd", "--config-file", "./bad.toml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let all = text(&o);
    assert_eq!(o.status.code(), Some(1), "{all}");
    assert!(all.contains("./bad.toml: invalid TOML at line 2"), "{all}");
    assert!(!all.contains("/var/lib/rancher"), "{all}");

    // The same for the other staged files: a broken --rke2-config.
    std::fs::copy(
        c.repo_root()
            .join("tests/node-trees/gpu-h200-0/var/lib/rancher/rke2/agent/etc/containerd/config.toml"),
        dir.path().join("config.toml"),
    )
    .unwrap();
    std::fs::write(dir.path().join("config.yaml"), "default-runtime: [\n").unwrap();
    let o = c
        .kubectl()
        .args(["gpu", "patch-containerd", "--config-file", "./config.toml"])
        .args(["--rke2-config", "./config.yaml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let all = text(&o);
    assert_eq!(o.status.code(), Some(1), "{all}");
    assert!(all.contains("./config.yaml: invalid RKE2 config YAML"), "{all}");
    assert!(!all.contains("/etc/rancher"), "{all}");
}

#[test]
fn bundle_into_a_missing_directory_names_the_cause_once() {
    let c = Cluster::shared();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("no-such-dir/x.tar.gz");
    let o = c
        .kubectl()
        .args(["gpu", "report", "--bundle"])
        .arg(&target)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("cannot create {}", target.display())),
        "{err}"
    );
    assert_eq!(err.matches("(os error").count(), 1, "cause twice:\n{err}");
    assert!(err.contains("No such file or directory"), "{err}");
    assert!(err.contains("pick a writable path for --bundle"), "{err}");
}

// ---------------------------------------------------------------------------
// helm plugin install ./helm-rke2gpu
// ---------------------------------------------------------------------------

/// Private Helm dirs. HELM_PLUGINS = `$HELM_DATA_HOME/plugins`: Helm 4.3.2 links a local dir
/// there whatever HELM_PLUGINS says (see helm_e2e.rs).
fn helm(c: &Cluster, bin: &str, home: &Path) -> Command {
    let mut cmd = c.cmd(bin);
    cmd.env("HELM_PLUGINS", home.join("data/plugins"))
        .env("HELM_DATA_HOME", home.join("data"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env_remove("HELM_DEBUG")
        .env_remove("CARGO_TARGET_DIR");
    cmd
}

fn helms(c: &Cluster) -> [(&'static str, &str); 2] {
    [("helm 3", c.var("HELM3_BIN")), ("helm 4", c.var("HELM4_BIN"))]
}

/// The README's "from source" path, literally: `helm plugin install ./helm-rke2gpu` in the
/// checkout (whose target/ has the build the tests run with) gives a working `helm rke2gpu`.
#[test]
fn helm_plugin_install_from_the_checkout_runs_the_build() {
    let c = Cluster::shared();
    let built = cluster_harness::bin_dir().join("helm-rke2gpu");
    assert!(
        built.is_file(),
        "{} missing: cargo build first",
        built.display()
    );
    for (name, bin) in helms(c) {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join("data/plugins")).unwrap();
        let o = helm(c, bin, home.path())
            .args(["plugin", "install", "./helm-rke2gpu"])
            .current_dir(c.repo_root())
            .output()
            .unwrap();
        assert!(o.status.success(), "{name}: install: {}", text(&o));
        let o = helm(c, bin, home.path())
            .args(["rke2gpu", "version"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{name}: helm rke2gpu version: {}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.starts_with(&format!("helm-rke2gpu {} (commit ", env!("CARGO_PKG_VERSION"))),
            "{name}: {out}"
        );
    }
}

/// A checkout with nothing built: the install itself fails and says what to run.
#[test]
fn helm_plugin_install_from_an_unbuilt_checkout_fails_naming_dev_install() {
    let c = Cluster::shared();
    let checkout = tempfile::tempdir().unwrap();
    let src = c.repo_root().join("helm-rke2gpu");
    let dst = checkout.path().join("helm-rke2gpu");
    let copied = Command::new("cp")
        .arg("-a")
        .arg(&src)
        .arg(&dst)
        .output()
        .unwrap();
    assert!(copied.status.success(), "cp: {}", text(&copied));
    assert!(!checkout.path().join("target").exists());
    for (name, bin) in helms(c) {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join("data/plugins")).unwrap();
        let o = helm(c, bin, home.path())
            .args(["plugin", "install", "./helm-rke2gpu"])
            .current_dir(checkout.path())
            .output()
            .unwrap();
        let all = text(&o);
        assert!(!o.status.success(), "{name}: install succeeded: {all}");
        assert!(
            all.contains(&format!("run {}/scripts/dev-install", dst.display())),
            "{name}: {all}"
        );
        assert!(all.contains("cargo build -p helm-rke2gpu"), "{name}: {all}");
        assert!(!all.contains("fork/exec"), "{name}: {all}");
    }
}
