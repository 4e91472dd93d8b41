//! Least privilege end to end: ServiceAccounts bound to exactly the roles of
//! `deploy/rbac.yaml` (the real file, applied with kubectl), real tokens
//! (`kubectl create token`), one kubeconfig each, and every documented
//! command run as that account through kubectl's plugin lookup. Each command
//! works with the roles the README gives it; with a role missing, the
//! read-only commands still run and name what they could not read (verb,
//! resource, namespace, the role and its binding command), and the
//! commands that create pods stop before creating anything, naming the
//! missing permission and its role, with exit code 2.

use cluster_harness::Cluster;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{MutexGuard, OnceLock};
use std::time::Duration;

const SA_NS: &str = "rbac-e2e";
const OP_NS: &str = "gpu-operator";
const RELEASE: &str = "gpu-operator";
const CHART: &str = "tests/charts/dist/gpu-operator-v26.7.0.tgz";
const CHART_VERSION: &str = "v26.7.0";
/// An existing namespace for `verify -n` (a RoleBinding of the verify role in it).
const VERIFY_NS: &str = "rbac-e2e-verify";
const OURS: &str = "app.kubernetes.io/managed-by=kubectl-gpu";

fn lock() -> MutexGuard<'static, ()> {
    cluster_harness::serial()
}

/// One ServiceAccount and the kubeconfig holding its token.
struct Account {
    name: &'static str,
    kubeconfig: PathBuf,
}

struct World {
    accounts: Vec<Account>,
}

/// Which roles each account holds, bound the way the README says
/// (ClusterRoleBinding for read and verify, RoleBindings in the operator
/// namespace, kube-system or the `-n` namespace for the others).
/// A role and the namespace of its RoleBinding (None: a ClusterRoleBinding).
type Grant = (&'static str, Option<&'static str>);

const ACCOUNTS: &[(&str, &[Grant])] = &[
    ("reader", &[("kubectl-gpu-read", None)]),
    (
        "reader-release",
        &[
            ("kubectl-gpu-read", None),
            ("kubectl-gpu-helm-release", Some(OP_NS)),
        ],
    ),
    (
        "deep",
        &[
            ("kubectl-gpu-read", None),
            ("kubectl-gpu-node-agent", Some("kube-system")),
        ],
    ),
    (
        "verifier",
        &[("kubectl-gpu-read", None), ("kubectl-gpu-verify", None)],
    ),
    (
        "verifier-ns",
        &[
            ("kubectl-gpu-read", None),
            ("kubectl-gpu-verify", Some(VERIFY_NS)),
        ],
    ),
    // Only a pod role: not even the nodes can be read.
    (
        "agent-only",
        &[("kubectl-gpu-node-agent", Some("kube-system"))],
    ),
    // The read role only; the test binds what the error tells it to.
    ("learner", &[("kubectl-gpu-read", None)]),
    // A read role narrowed to nodes, pods and workloads (no RuntimeClasses,
    // no ClusterPolicy): see `narrowed_read_role`.
    ("narrowed", &[("rbac-e2e-narrowed-read", None)]),
];

/// The accounts (created once), with deploy/rbac.yaml applied again (its
/// Role lives in the operator namespace). Call it with the operator installed.
fn world(c: &Cluster) -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    apply_roles(c);
    W.get_or_init(|| setup(c))
}

/// The real file, as the README says.
fn apply_roles(c: &Cluster) {
    c.run_ok(
        c.kubectl()
            .args(["apply", "-f"])
            .arg(c.repo_root().join("deploy/rbac.yaml")),
    );
}

fn setup(c: &Cluster) -> World {
    c.apply(&narrowed_read_role(c));
    for ns in [SA_NS, VERIFY_NS] {
        c.apply(&format!(
            "{{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{{\"name\":\"{ns}\"}}}}"
        ));
    }
    // Under the cluster's run dir: `cluster down` removes the tokens with it.
    let dir = Path::new(c.var("RKE2GPU_CLUSTER_DIR")).join("rbac-e2e");
    std::fs::create_dir_all(&dir).unwrap();
    let (server, ca) = cluster_endpoint(c);
    let mut accounts = Vec::new();
    for (name, roles) in ACCOUNTS {
        c.apply(&format!(
            "{{\"apiVersion\":\"v1\",\"kind\":\"ServiceAccount\",\"metadata\":{{\"name\":\"{name}\",\"namespace\":\"{SA_NS}\"}}}}"
        ));
        for (role, ns) in *roles {
            bind(c, name, role, *ns);
        }
        let token =
            c.run_ok(
                c.kubectl()
                    .args(["create", "token", name, "-n", SA_NS, "--duration=2h"]),
            );
        let kubeconfig = dir.join(format!("{name}.kubeconfig"));
        std::fs::write(
            &kubeconfig,
            kubeconfig_yaml(&server, &ca, name, token.trim()),
        )
        .unwrap();
        accounts.push(Account { name, kubeconfig });
    }
    World { accounts }
}

/// `kubectl create clusterrolebinding|rolebinding`, one binding per
/// (account, role) so accounts do not share one.
fn bind(c: &Cluster, sa: &str, role: &str, ns: Option<&str>) {
    let binding = format!("{sa}-{role}");
    let subject = format!("--serviceaccount={SA_NS}:{sa}");
    let mut cmd = c.kubectl();
    match ns {
        None => cmd.args([
            "create",
            "clusterrolebinding",
            &binding,
            &format!("--clusterrole={role}"),
            &subject,
        ]),
        Some(ns) => {
            // The Helm release role is a Role; the others are ClusterRoles.
            let role_ref = if role == "kubectl-gpu-helm-release" {
                format!("--role={role}")
            } else {
                format!("--clusterrole={role}")
            };
            cmd.args([
                "-n",
                ns,
                "create",
                "rolebinding",
                &binding,
                &role_ref,
                &subject,
            ])
        }
    };
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || err.contains("already exists"),
        "bind {sa} to {role}: {err}"
    );
}

/// kubectl-gpu-read of deploy/rbac.yaml without its node.k8s.io and
/// nvidia.com rules, under another name.
fn narrowed_read_role(c: &Cluster) -> String {
    let text = std::fs::read_to_string(c.repo_root().join("deploy/rbac.yaml")).unwrap();
    let doc = text
        .split("\n---\n")
        .find(|d| d.contains("name: kubectl-gpu-read\n"))
        .expect("kubectl-gpu-read in deploy/rbac.yaml");
    let json = c.run_with_stdin(
        c.kubectl()
            .args(["create", "--dry-run=client", "-o", "json", "-f", "-"]),
        doc,
    );
    let mut role: Value = serde_json::from_str(&json).unwrap();
    role["metadata"]["name"] = "rbac-e2e-narrowed-read".into();
    let rules = role["rules"].as_array_mut().unwrap();
    let before = rules.len();
    rules.retain(|r| {
        !r["apiGroups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == "node.k8s.io" || g == "nvidia.com")
    });
    assert_eq!(rules.len(), before - 2, "{role:#}");
    role.to_string()
}

/// The API server and CA of the admin kubeconfig.
fn cluster_endpoint(c: &Cluster) -> (String, String) {
    let v: Value = serde_json::from_str(
        &c.run_ok(
            c.kubectl()
                .args(["config", "view", "--raw", "--minify", "-o", "json"]),
        ),
    )
    .unwrap();
    let cluster = &v["clusters"][0]["cluster"];
    (
        cluster["server"].as_str().unwrap().to_string(),
        cluster["certificate-authority-data"]
            .as_str()
            .expect("the admin kubeconfig embeds its CA")
            .to_string(),
    )
}

fn kubeconfig_yaml(server: &str, ca: &str, user: &str, token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: rbac\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n    token: {token}\ncontexts:\n- name: {user}\n  context:\n    cluster: rbac\n    user: {user}\n    namespace: default\ncurrent-context: {user}\n"
    )
}

/// The stand-in operator installed for a test; dropped, it uninstalls the
/// release again when there was none before (verify's and report's tests
/// expect the cluster as they found it).
struct Operator<'a> {
    c: &'a Cluster,
    was_installed: bool,
}

impl<'a> Operator<'a> {
    fn install(c: &'a Cluster) -> Self {
        let was_installed = c
            .helm()
            .args(["status", RELEASE, "-n", OP_NS])
            .output()
            .unwrap()
            .status
            .success();
        install_operator(c);
        Operator { c, was_installed }
    }
}

impl Drop for Operator<'_> {
    fn drop(&mut self) {
        if self.was_installed {
            return;
        }
        let c = self.c;
        let _ = c
            .helm()
            .args([
                "uninstall",
                RELEASE,
                "-n",
                OP_NS,
                "--wait",
                "--ignore-not-found",
            ])
            .output();
        c.wait_until(Duration::from_secs(60), "ClusterPolicy removed", || {
            c.kubectl()
                .args(["get", "clusterpolicy", "cluster-policy"])
                .output()
                .is_ok_and(|o| !o.status.success())
        });
    }
}

/// Installs (or upgrades back to) the stand-in operator chart, ready.
fn install_operator(c: &Cluster) {
    c.run_ok(
        c.helm()
            .args(["upgrade", "--install", RELEASE])
            .arg(c.repo_root().join(CHART))
            .args([
                "-n",
                OP_NS,
                "--create-namespace",
                "--wait",
                "--timeout",
                "120s",
                "--set",
                "toolkit.env[0].name=CONTAINERD_SOCKET",
                "--set",
                "toolkit.env[0].value=/run/k3s/containerd/containerd.sock",
            ]),
    );
    c.run_ok(c.kubectl().args([
        "patch",
        "clusterpolicy",
        "cluster-policy",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"state":"ready","namespace":"gpu-operator"}}"#,
    ]));
    c.wait_until(Duration::from_secs(90), "operand pods ready", || {
        let out = c
            .kubectl()
            .args(["-n", OP_NS, "get", "pods", "-o", "json"])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let pods = v["items"].as_array().cloned().unwrap_or_default();
        !pods.is_empty()
            && pods.iter().all(|p| {
                p["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
    });
}

fn account<'a>(w: &'a World, name: &str) -> &'a Path {
    &w.accounts
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("no account {name}"))
        .kubeconfig
}

/// What a command run as an account did.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn show(&self) -> String {
        format!(
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        )
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.show()))
    }
    fn ok(&self, what: &str) -> &Self {
        assert_eq!(self.code, Some(0), "{what}: {}", self.show());
        self
    }
}

fn run(mut cmd: Command, kubeconfig: &Path) -> Run {
    let out: Output = cmd
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("run command");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `kubectl gpu ARGS...` as the account.
fn gpu(c: &Cluster, w: &World, who: &str, args: &[&str]) -> Run {
    let mut cmd = c.kubectl();
    cmd.arg("gpu").args(args);
    run(cmd, account(w, who))
}

/// Pods and namespaces we created, as the admin sees them.
fn ours(c: &Cluster) -> String {
    let mut all = String::new();
    for what in ["pods", "namespaces"] {
        let mut cmd = c.kubectl();
        cmd.args(["get", what, "-l", OURS, "-o", "name"]);
        if what == "pods" {
            cmd.arg("-A");
        }
        all.push_str(c.run_ok(&mut cmd).trim());
    }
    all
}

/// Waits until nothing of ours is left (namespace deletion is asynchronous).
fn wait_nothing_ours(c: &Cluster, what: &str) {
    c.wait_until(
        Duration::from_secs(60),
        &format!("{what}: nothing of ours left"),
        || ours(c).is_empty(),
    );
}

fn findings(r: &Run) -> Vec<Value> {
    r.json()["findings"].as_array().cloned().unwrap_or_default()
}

fn with_id<'a>(findings: &'a [Value], id: &str) -> Vec<&'a Value> {
    findings.iter().filter(|f| f["id"] == id).collect()
}

/// The stand-in chart's helm.sh/chart label on the operator's objects.
const CHART_LABEL: &str = "helm.sh/chart";

// ---------------------------------------------------------------------------
// kubectl-gpu-read: every read-only command
// ---------------------------------------------------------------------------

#[test]
fn the_read_role_runs_every_read_only_command_without_secrets() {
    let c = Cluster::shared();
    let _g = lock();
    let _op = Operator::install(c);
    let w = world(c);

    // It cannot read Secrets anywhere.
    let can = run(
        {
            let mut k = c.kubectl();
            k.args(["auth", "can-i", "list", "secrets", "-n", OP_NS]);
            k
        },
        account(w, "reader"),
    );
    assert_eq!(can.stdout.trim(), "no", "{}", can.show());

    let r = gpu(c, w, "reader", &["check-runtime", "-o", "json"]);
    r.ok("check-runtime as kubectl-gpu-read");
    let f = findings(&r);
    assert!(
        with_id(&f, "rbac-unreadable").is_empty(),
        "nothing should be unreadable: {f:#?}"
    );
    let evidence =
        format!("chart {CHART_VERSION} from label helm.sh/chart on deployment gpu-operator");
    for id in ["operator-installed", "operator-chart-version"] {
        assert!(
            with_id(&f, id).iter().any(|x| x["evidence"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e == evidence.as_str())),
            "{id}: no evidence {evidence:?}: {f:#?}"
        );
    }
    gpu(c, w, "reader", &["check-runtime", "--no-color"]).ok("check-runtime table");

    for view in [
        &["report"][..],
        &["report", "nodes", "-o", "wide"],
        &["report", "pods", "-A"],
        &["report", "operator"],
    ] {
        let r = gpu(c, w, "reader", view);
        r.ok(&view.join(" "));
        assert!(
            !r.stdout.contains("Could not read"),
            "{view:?}: {}",
            r.show()
        );
    }
    let r = gpu(c, w, "reader", &["report", "operator", "-o", "json"]);
    r.ok("report operator -o json");
    let v = r.json();
    assert_eq!(v["unreadable"], Value::Array(vec![]), "{v:#}");
    assert_eq!(v["operator"]["chart_version"], CHART_VERSION);
    assert_eq!(
        v["operator"]["chart_version_source"],
        "label helm.sh/chart on deployment gpu-operator"
    );

    // The bundle goes without the Helm values, and says which role gives them.
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("b.tar.gz");
    let r = gpu(
        c,
        w,
        "reader",
        &["report", "--bundle", bundle.to_str().unwrap()],
    );
    r.ok("report --bundle");
    let manifest = bundle_file(c, &bundle, "manifest.json");
    let notes: Vec<String> = serde_json::from_str::<Value>(&manifest).unwrap()["not_collected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    assert!(
        notes.iter().any(|n| n.starts_with("Helm values:")
            && n.contains("cannot list secrets in namespace gpu-operator")
            && n.contains("kubectl -n gpu-operator create rolebinding kubectl-gpu-helm-release --role=kubectl-gpu-helm-release")),
        "{notes:#?}"
    );

    gpu(c, w, "reader", &["cleanup", "--dry-run"]).ok("cleanup --dry-run");

    // helm rke2gpu values: the nodes only (a local chart, no helm run).
    let mut values = c.cmd("helm-rke2gpu");
    values.arg("values").arg(c.repo_root().join(CHART));
    let r = run(values, account(w, "reader"));
    r.ok("helm rke2gpu values");
    assert!(r.stdout.contains("CONTAINERD_SOCKET"), "{}", r.show());
}

fn bundle_file(c: &Cluster, bundle: &Path, name: &str) -> String {
    c.run_ok(Command::new("tar").arg("-xzOf").arg(bundle).arg(name))
}

#[test]
fn the_helm_release_role_adds_the_release_values_to_the_bundle() {
    let c = Cluster::shared();
    let _g = lock();
    let _op = Operator::install(c);
    let w = world(c);
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("b.tar.gz");
    gpu(
        c,
        w,
        "reader-release",
        &["report", "--bundle", bundle.to_str().unwrap()],
    )
    .ok("report --bundle with kubectl-gpu-helm-release");
    let values = bundle_file(c, &bundle, "operator/helm/gpu-operator.values.yaml");
    assert!(values.contains("CONTAINERD_SOCKET"), "{values}");
    let release = bundle_file(c, &bundle, "operator/helm/gpu-operator.release.json");
    assert!(release.contains(CHART_VERSION), "{release}");
}

// ---------------------------------------------------------------------------
// Pod commands: their role, and without it
// ---------------------------------------------------------------------------

#[test]
fn pod_commands_without_their_role_stop_before_creating_anything() {
    let c = Cluster::shared();
    let _g = lock();
    let _op = Operator::install(c);
    let w = world(c);
    wait_nothing_ours(c, "before");

    let node_agent = "bind the ClusterRole kubectl-gpu-node-agent from deploy/rbac.yaml: kubectl -n kube-system create rolebinding kubectl-gpu-node-agent --clusterrole=kubectl-gpu-node-agent";
    for args in [
        &["check-runtime", "--deep"][..],
        &["patch-containerd", "--node", "gpu-h200-0"],
    ] {
        let r = gpu(c, w, "reader", args);
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.show());
        assert!(
            r.stderr
                .contains("forbidden: cannot create pods in namespace kube-system")
                && r.stderr.contains(node_agent),
            "{args:?}: {}",
            r.show()
        );
    }
    // verify: the verify role, cluster-wide for a namespace of its own…
    let r = gpu(c, w, "reader", &["verify"]);
    assert_eq!(r.code, Some(2), "{}", r.show());
    assert!(
        r.stderr.contains("forbidden: cannot create pods in namespace kubectl-gpu-verify-")
            && r.stderr.contains("bind the ClusterRole kubectl-gpu-verify from deploy/rbac.yaml: kubectl create clusterrolebinding kubectl-gpu-verify --clusterrole=kubectl-gpu-verify"),
        "{}",
        r.show()
    );
    // …or in the namespace given with -n.
    let r = gpu(c, w, "reader", &["verify", "-n", VERIFY_NS]);
    assert_eq!(r.code, Some(2), "{}", r.show());
    assert!(
        r.stderr.contains(&format!(
            "kubectl -n {VERIFY_NS} create rolebinding kubectl-gpu-verify --clusterrole=kubectl-gpu-verify"
        )),
        "{}",
        r.show()
    );
    // The node-agent role does not stand in for the verify role.
    let r = gpu(c, w, "deep", &["verify"]);
    assert_eq!(r.code, Some(2), "{}", r.show());
    assert!(r.stderr.contains("kubectl-gpu-verify"), "{}", r.show());
    // A bundle with --deep is still written; the node files say why not.
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("b.tar.gz");
    gpu(
        c,
        w,
        "reader",
        &["report", "--bundle", bundle.to_str().unwrap(), "--deep"],
    )
    .ok("report --bundle --deep without the node-agent role");
    let manifest = bundle_file(c, &bundle, "manifest.json");
    assert!(manifest.contains("kubectl-gpu-node-agent"), "{manifest}");
    assert_eq!(ours(c), "", "something was created");
}

#[test]
fn the_node_agent_role_runs_deep_checks_and_patch_containerd() {
    let c = Cluster::shared();
    let _g = lock();
    let _op = Operator::install(c);
    let w = world(c);
    let r = gpu(c, w, "deep", &["check-runtime", "--deep", "-o", "json"]);
    r.ok("check-runtime --deep as read + node-agent");
    let f = findings(&r);
    assert!(with_id(&f, "rbac-unreadable").is_empty(), "{f:#?}");
    assert!(
        f.iter().any(|x| x["id"] == "nvidia-runtime"
            && x["node"] == "gpu-h200-0"
            && x["status"] == "ok"),
        "no host findings: {f:#?}"
    );
    let r = gpu(
        c,
        w,
        "deep",
        &["patch-containerd", "--node", "gpu-h200-0", "-o", "json"],
    );
    r.ok("patch-containerd (plan) as read + node-agent");
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("b.tar.gz");
    gpu(
        c,
        w,
        "deep",
        &["report", "--bundle", bundle.to_str().unwrap(), "--deep"],
    )
    .ok("report --bundle --deep");
    let manifest = bundle_file(c, &bundle, "manifest.json");
    assert!(manifest.contains("node-files/gpu-h200-0/"), "{manifest}");
    wait_nothing_ours(c, "after");
}

#[test]
fn the_verify_role_runs_verify_cluster_wide_or_in_one_namespace() {
    let c = Cluster::shared();
    let _g = lock();
    let _op = Operator::install(c);
    let w = world(c);
    let r = gpu(
        c,
        w,
        "verifier",
        &["verify", "--timeout", "30", "-o", "json"],
    );
    r.ok("verify as read + verify (ClusterRoleBinding)");
    let v = r.json();
    assert_eq!(v["summary"]["failed"], 0, "{v:#}");
    assert_eq!(v["namespace_created"], true);
    assert!(
        v["cleanup"]["errors"].as_array().unwrap().is_empty(),
        "{v:#}"
    );

    let r = gpu(
        c,
        w,
        "verifier-ns",
        &["verify", "--timeout", "30", "-n", VERIFY_NS, "-o", "json"],
    );
    r.ok("verify -n as read + verify (RoleBinding in the namespace)");
    assert_eq!(r.json()["namespace_created"], false);
    // Without -n it would need to create a namespace.
    let r = gpu(c, w, "verifier-ns", &["verify"]);
    assert_eq!(r.code, Some(2), "{}", r.show());
    assert!(
        r.stderr
            .contains("kubectl create clusterrolebinding kubectl-gpu-verify"),
        "{}",
        r.show()
    );
    wait_nothing_ours(c, "after");
}

#[test]
fn cleanup_names_the_delete_it_may_not_make_and_deletes_nothing() {
    let c = Cluster::shared();
    let _g = lock();
    let _op = Operator::install(c);
    let w = world(c);
    wait_nothing_ours(c, "before");
    // A verify run kept its namespace and pods.
    let r = gpu(
        c,
        w,
        "verifier",
        &[
            "verify",
            "--timeout",
            "30",
            "--node",
            "gpu-h200-0",
            "--keep",
            "-o",
            "json",
        ],
    );
    r.ok("verify --keep");
    let ns = r.json()["namespace"].as_str().unwrap().to_string();
    let left = ours(c);
    assert!(left.contains(&ns), "{left}");

    let r = gpu(c, w, "reader", &["cleanup", "--dry-run"]);
    r.ok("cleanup --dry-run as read");
    assert!(r.stdout.contains(&ns), "{}", r.show());
    let r = gpu(c, w, "reader", &["cleanup"]);
    assert_eq!(r.code, Some(2), "{}", r.show());
    assert!(
        r.stderr
            .contains(&format!("forbidden: cannot delete pods in namespace {ns}"))
            && r.stderr
                .contains("kubectl create clusterrolebinding kubectl-gpu-verify"),
        "{}",
        r.show()
    );
    assert_eq!(
        ours(c),
        left,
        "cleanup deleted something without permission"
    );

    let r = gpu(c, w, "verifier", &["cleanup", "-o", "json"]);
    r.ok("cleanup as read + verify");
    wait_nothing_ours(c, "cleanup");
}

// ---------------------------------------------------------------------------
// Missing read permissions: named, never a failed read-only run
// ---------------------------------------------------------------------------

#[test]
fn a_narrower_read_role_names_each_missing_read() {
    let c = Cluster::shared();
    let _g = lock();
    let _op = Operator::install(c);
    let w = world(c);
    let r = gpu(c, w, "narrowed", &["check-runtime", "-o", "json"]);
    assert_ne!(
        r.code,
        Some(2),
        "a read-only run must not fail on RBAC: {}",
        r.show()
    );
    let f = findings(&r);
    for (what, missing) in [
        (
            "runtimeclasses.node.k8s.io",
            "cannot list runtimeclasses.node.k8s.io at the cluster scope",
        ),
        (
            "clusterpolicies.nvidia.com",
            "cannot list clusterpolicies.nvidia.com at the cluster scope",
        ),
    ] {
        let u = with_id(&f, "rbac-unreadable")
            .into_iter()
            .find(|x| x["message"] == format!("could not read {what}: {missing}"))
            .unwrap_or_else(|| panic!("{what} not named: {f:#?}"));
        assert_eq!(u["status"], "warn");
        assert!(
            u["fix"].as_str().unwrap().contains(
                "kubectl create clusterrolebinding kubectl-gpu-read --clusterrole=kubectl-gpu-read"
            ),
            "{u:#}"
        );
    }
    let r = gpu(c, w, "narrowed", &["report", "-o", "json"]);
    r.ok("report with a narrower read role");
    let unreadable = r.json()["unreadable"].as_array().cloned().unwrap();
    let missing: Vec<(String, String)> = unreadable
        .iter()
        .map(|u| {
            (
                format!(
                    "{} {}",
                    u["missing"]["verb"].as_str().unwrap(),
                    u["missing"]["resource"].as_str().unwrap()
                ),
                u["missing"]["bind"]["role"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        missing.contains(&(
            "list runtimeclasses.node.k8s.io".into(),
            "kubectl-gpu-read".into()
        )) && missing.contains(&(
            "list clusterpolicies.nvidia.com".into(),
            "kubectl-gpu-read".into()
        )),
        "{unreadable:#?}"
    );
    let r = gpu(c, w, "narrowed", &["report"]);
    r.ok("report table");
    assert!(r.stdout.contains("Could not read"), "{}", r.show());

    // Without the read role, the one required read (nodes) is named.
    let r = gpu(c, w, "agent-only", &["check-runtime"]);
    assert_eq!(r.code, Some(2), "{}", r.show());
    assert!(
        r.stderr.contains("forbidden: cannot list nodes")
            && r.stderr.contains(
                "kubectl create clusterrolebinding kubectl-gpu-read --clusterrole=kubectl-gpu-read"
            ),
        "{}",
        r.show()
    );
}

/// Removes the helm.sh/chart label from the operator's Deployments, its
/// ClusterPolicy and DaemonSets; puts it back when dropped.
struct LabelsRemoved<'a> {
    c: &'a Cluster,
    saved: Vec<(String, Option<String>, String)>,
}

impl<'a> LabelsRemoved<'a> {
    fn new(c: &'a Cluster) -> Self {
        let mut saved = Vec::new();
        for (kind, ns) in [
            ("deployments", Some(OP_NS)),
            ("daemonsets", Some(OP_NS)),
            ("clusterpolicies", None),
        ] {
            let mut cmd = c.kubectl();
            cmd.args(["get", kind, "-o", "json"]);
            if let Some(ns) = ns {
                cmd.args(["-n", ns]);
            }
            let v: Value = serde_json::from_str(&c.run_ok(&mut cmd)).unwrap();
            for item in v["items"].as_array().unwrap() {
                let Some(value) = item["metadata"]["labels"][CHART_LABEL].as_str() else {
                    continue;
                };
                let name = format!("{kind}/{}", item["metadata"]["name"].as_str().unwrap());
                let mut cmd = c.kubectl();
                cmd.args(["label", &name, &format!("{CHART_LABEL}-")]);
                if let Some(ns) = ns {
                    cmd.args(["-n", ns]);
                }
                c.run_ok(&mut cmd);
                saved.push((name, ns.map(str::to_string), value.to_string()));
            }
        }
        LabelsRemoved { c, saved }
    }
}

impl Drop for LabelsRemoved<'_> {
    fn drop(&mut self) {
        for (name, ns, value) in &self.saved {
            let mut cmd = self.c.kubectl();
            cmd.args([
                "label",
                name,
                &format!("{CHART_LABEL}={value}"),
                "--overwrite",
            ]);
            if let Some(ns) = ns {
                cmd.args(["-n", ns]);
            }
            let _ = cmd.output();
        }
    }
}

#[test]
fn without_chart_labels_the_helm_release_role_gives_the_version() {
    let c = Cluster::shared();
    let _g = lock();
    let _op = Operator::install(c);
    let w = world(c);
    let removed = LabelsRemoved::new(c);
    assert!(
        removed.saved.len() >= 3,
        "labels removed: {:?}",
        removed.saved
    );

    // The read role alone: the version is unknown, and the Secret read it
    // would take is named with its role. Still a finished run.
    let r = gpu(c, w, "reader", &["check-runtime", "-o", "json"]);
    assert_ne!(r.code, Some(2), "{}", r.show());
    let f = findings(&r);
    assert!(
        with_id(&f, "rbac-unreadable").iter().any(|u| u["message"]
            == "could not read secrets (Helm release) in namespace gpu-operator: cannot list secrets in namespace gpu-operator"),
        "{f:#?}"
    );
    let v = with_id(&f, "operator-chart-version");
    assert!(
        v.iter().any(|x| x["status"] == "warn"
            && x["fix"].as_str().unwrap().contains("kubectl -n gpu-operator create rolebinding kubectl-gpu-helm-release --role=kubectl-gpu-helm-release")),
        "{v:#?}"
    );

    // With the Helm release role: the version from the release Secret.
    let r = gpu(c, w, "reader-release", &["check-runtime", "-o", "json"]);
    r.ok("check-runtime with kubectl-gpu-helm-release, no labels");
    let f = findings(&r);
    assert!(with_id(&f, "rbac-unreadable").is_empty(), "{f:#?}");
    let prefix = format!("chart {CHART_VERSION} from Helm release gpu-operator (revision ");
    assert!(
        with_id(&f, "operator-chart-version")
            .iter()
            .any(|x| x["evidence"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e.as_str().unwrap().starts_with(&prefix))),
        "{f:#?}"
    );
    drop(removed);
}

#[test]
fn the_binding_command_the_error_prints_grants_what_was_missing() {
    let c = Cluster::shared();
    let _g = lock();
    let _op = Operator::install(c);
    let w = world(c);
    let _binding = PrintedBinding::new(c);
    let r = gpu(c, w, "learner", &["check-runtime", "--deep"]);
    assert_eq!(r.code, Some(2), "{}", r.show());
    let printed = r
        .stderr
        .split(": kubectl ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .unwrap_or_else(|| panic!("no command in: {}", r.show()));
    // Run it as printed, for this account and under a name of its own.
    let cmd = printed
        .replace("--user=<you>", &format!("--serviceaccount={SA_NS}:learner"))
        .replace(
            "rolebinding kubectl-gpu-node-agent ",
            "rolebinding learner-printed-node-agent ",
        );
    assert!(cmd.contains("--serviceaccount="), "{printed}");
    let args: Vec<&str> = cmd.split_whitespace().collect();
    c.run_ok(c.kubectl().args(&args));
    let r = gpu(c, w, "learner", &["check-runtime", "--deep", "-o", "json"]);
    r.ok("check-runtime --deep after the printed binding");
}

/// Removes the binding the test makes from the printed command (before, in
/// case a failed run left it, and after).
struct PrintedBinding<'a>(&'a Cluster);

impl<'a> PrintedBinding<'a> {
    fn new(c: &'a Cluster) -> Self {
        Self::remove(c);
        PrintedBinding(c)
    }

    fn remove(c: &Cluster) {
        let _ = c
            .kubectl()
            .args([
                "-n",
                "kube-system",
                "delete",
                "rolebinding",
                "learner-printed-node-agent",
                "--ignore-not-found",
            ])
            .output();
    }
}

impl Drop for PrintedBinding<'_> {
    fn drop(&mut self) {
        Self::remove(self.0);
    }
}
