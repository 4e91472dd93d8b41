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
//!   fails at install naming `scripts/dev-install` when it is not;
//! - the README's commands set themselves up (`tests/setup`) and build only what they use
//!   (`build-bins --for`), saying so up front.

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
        c.repo_root().join(
            "tests/node-trees/gpu-h200-0/var/lib/rancher/rke2/agent/etc/containerd/config.toml",
        ),
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
    assert!(
        all.contains("./config.yaml: invalid RKE2 config YAML"),
        "{all}"
    );
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
    [
        ("helm 3", c.var("HELM3_BIN")),
        ("helm 4", c.var("HELM4_BIN")),
    ]
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
        assert!(
            o.status.success(),
            "{name}: helm rke2gpu version: {}",
            text(&o)
        );
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.starts_with(&format!(
                "helm-rke2gpu {} (commit ",
                env!("CARGO_PKG_VERSION")
            )),
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

// ---------------------------------------------------------------------------
// Set-up and builds of the README's two commands
// ---------------------------------------------------------------------------

/// `build-bins --for demo --plan` on an empty cache: says up front that tests/demo builds the
/// cluster's four targets, each with a rough time, and not Helm, containerd or krew.
#[test]
fn build_bins_plans_only_what_the_demo_needs() {
    let c = Cluster::shared();
    let cache = tempfile::tempdir().unwrap();
    let o = Command::new(c.repo_root().join("tests/e2e/build-bins"))
        .args(["--for", "demo", "--plan"])
        .env("RKE2GPU_TEST_CACHE", cache.path())
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        err.contains("for demo: 4 targets, 0 cached, 4 to build (~"),
        "{err}"
    );
    for t in ["kubernetes", "etcd", "kwok", "render-config"] {
        assert!(
            err.lines()
                .any(|l| l.split_whitespace().nth(1) == Some(t) && l.contains("build  ~")),
            "{t}: {err}"
        );
    }
    let skipped = err
        .lines()
        .find_map(|l| l.split("not needed here: ").nth(1))
        .unwrap_or_default();
    for t in ["helm3", "helm4", "containerd17", "containerd2", "krew"] {
        assert!(skipped.contains(t), "{t} not skipped: {err}");
    }
    // --plan builds nothing.
    assert!(!cache.path().join("bin/kubernetes-v1.37.2").exists());
    // tests/demo asks for exactly that set, and the cluster for its own.
    let demo = std::fs::read_to_string(c.repo_root().join("tests/demo")).unwrap();
    assert!(
        demo.contains("build-bins --for demo --plan") && demo.contains("cluster up --for demo"),
        "{demo}"
    );
}

/// `tests/setup run-all --check` names what a machine without the musl target, rustfmt,
/// clippy and busybox-static lacks (the fresh-machine failure: release/test.sh said "Rust
/// target x86_64-unknown-linux-musl is not installed"), with stand-ins for dpkg and rustup.
#[test]
fn setup_names_what_a_fresh_machine_lacks() {
    let c = Cluster::shared();
    let fake = tempfile::tempdir().unwrap();
    let write = |name: &str, body: &str| {
        let p = fake.path().join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        let mut perm = std::fs::metadata(&p).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&p, perm).unwrap();
    };
    let dpkg = Command::new("sh")
        .args(["-c", "command -v dpkg"])
        .output()
        .unwrap();
    let dpkg = String::from_utf8_lossy(&dpkg.stdout).trim().to_owned();
    assert!(!dpkg.is_empty(), "no dpkg on this machine");
    write(
        "dpkg",
        &format!("[ \"$2\" = busybox-static ] && exit 1; exec {dpkg} \"$@\""),
    );
    write("rustup", "exit 0"); // nothing installed
    let path = format!(
        "{}:{}",
        fake.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = Command::new(c.repo_root().join("tests/setup"))
        .args(["run-all", "--check"])
        .env("PATH", &path)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(err.contains("Debian packages: busybox-static"), "{err}");
    assert!(err.contains("rustup components: rustfmt clippy"), "{err}");
    if std::env::consts::ARCH == "x86_64" {
        assert!(
            err.contains("Rust target x86_64-unknown-linux-musl"),
            "{err}"
        );
    }
    // tests/run-all and tests/demo run it first; .ci/run runs tests/run-all and nothing else.
    for (script, arg) in [("tests/run-all", "run-all"), ("tests/demo", "demo")] {
        let s = std::fs::read_to_string(c.repo_root().join(script)).unwrap();
        assert!(s.contains(&format!("tests/setup {arg}")), "{script}");
    }
    let ci = std::fs::read_to_string(c.repo_root().join(".ci/run")).unwrap();
    assert!(ci.contains("exec tests/run-all"), "{ci}");
}
