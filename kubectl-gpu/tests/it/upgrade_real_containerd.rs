//! The upgrade preflight's `--deep` predictions against REAL renders and
//! REAL containerd: a predicted break is really a break, and the prepared
//! node really loads.
//!
//! Each case copies a node fixture tree (`tests/node-trees/<node>`), writes
//! the user's files, renders today's `config.toml` with `render-config`
//! (the real k3s base templates, a profile for the node's release), runs
//! the preflight over the tree (the probe sequence and script `--deep`
//! sends to the node agent), then renders `config.toml` with the target
//! release's profile, as RKE2 does at its first start after the upgrade,
//! and loads it with `containerd config dump`. The predicted `config.toml`
//! must be the one RKE2 renders, byte for byte.
//!
//! containerd binaries (`tests/e2e/build-bins`): 1.7.35 stands for RKE2's
//! 1.7.x, 2.4.2 for 2.0–2.2 (it no longer refuses a newer drop-in: the
//! rule was reverted after 2.3.4), 2.3.3 is RKE2 v1.36.3's own. Skipped,
//! with the reason printed, when they or render-config are not built.

use std::fs;
use std::path::{Path, PathBuf};

use rke2gpu::check_runtime::Status;
use serde_json::Value;

use super::patch_real_containerd::containerd_bin;
use super::template_fix_real_containerd::{copy_tree, dump, dump_in, render_config, render_in};
use super::template_redeclared::cases;
use super::upgrade_preflight::{one, one_node, plan, preflight, read_root, target};

const CTD: &str = "var/lib/rancher/rke2/agent/etc/containerd";
const K3S_CTD: &str = "var/lib/rancher/k3s/agent/etc/containerd";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Bins {
    render: PathBuf,
    c17: PathBuf,
    c2: PathBuf,
    c23: PathBuf,
}

fn bins() -> Option<Bins> {
    let b = Bins {
        render: render_config()?,
        c17: containerd_bin("1", "CONTAINERD17_BIN")?,
        c2: containerd_bin("2.4", "CONTAINERD2_BIN")?,
        c23: containerd_bin("2.3", "CONTAINERD23_BIN")?,
    };
    Some(b)
}

macro_rules! bins_or_skip {
    () => {
        match bins() {
            Some(b) => b,
            None => {
                eprintln!(
                    "SKIP: render-config or containerd 1.7/2.3/2.4 not built (tests/e2e/build-bins --only render-config,containerd17,containerd2,containerd23)"
                );
                return;
            }
        }
    };
}

/// A node tree for `node` with no toolkit in k3s' detection path (so the
/// nvidia runtime comes only from the user's files), and a profile file for
/// `release`: which base templates and imports line it renders.
struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
    node: String,
    ctd: &'static str,
}

impl Tree {
    fn new(node: &str) -> Tree {
        Tree::with_toolkit(node, false)
    }

    /// `toolkit`: keep the toolkit dir, so RKE2's base renders the nvidia
    /// runtimes it detects.
    fn with_toolkit(node: &str, toolkit: bool) -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        copy_tree(&repo().join("tests/node-trees").join(node), &root);
        if !toolkit {
            let _ = fs::remove_dir_all(root.join("usr/local/nvidia"));
        }
        let ctd = if node.contains("k3s") { K3S_CTD } else { CTD };
        fs::remove_file(root.join(ctd).join("config.toml")).unwrap();
        Tree {
            _dir: dir,
            root,
            node: node.into(),
            ctd,
        }
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.root.join(self.ctd).join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    /// `config.toml` as `release` renders it (RKE2's start).
    fn render_as(
        &self,
        b: &Bins,
        release: &str,
        containerd: &str,
        v3: bool,
        imports: bool,
    ) -> String {
        let p = repo().join(format!(
            "tests/e2e/render-config/profiles/{}.json",
            self.node
        ));
        let mut prof: Value = serde_json::from_str(&fs::read_to_string(p).unwrap()).unwrap();
        prof["version"] = release.into();
        prof["containerd"] = format!("v{containerd}").into();
        prof["v3Template"] = v3.into();
        prof["defaultBase"] = if v3 { "v3" } else { "v2" }.into();
        prof["imports"] = imports.into();
        let file = self._dir.path().join(format!("profile-{release}.json"));
        fs::write(&file, prof.to_string()).unwrap();
        render_in(&b.render, &self.root, file.to_str().unwrap(), self.ctd)
    }

    fn root(&self) -> &Path {
        &self.root
    }
}

/// A config.toml.tmpl containerd 1.7 takes and containerd 2 refuses (the
/// single-quoted containerd table with a key the base does not render;
/// tests/fixtures/containerd-toml-errors, measured on 1.7.35 and 2.4.2):
/// v1.31.5 → v1.31.6 moves RKE2 to containerd 2.0.
#[test]
fn a_template_containerd_2_refuses_is_predicted_before_the_upgrade() {
    let b = bins_or_skip!();
    let case = cases()
        .into_iter()
        .find(|c| c.name == "v2-containerd-single-quoted-new-key")
        .expect("case");
    assert_eq!(case.results["containerd 1.7.35"].0, 0, "1.7 takes it");
    let t = Tree::new("gpu-a100-legacy-0");
    t.write("config.toml.tmpl", &case.template);
    t.render_as(&b, "v1.31.5+rke2r1", "1.7.23-k3s2", false, false);
    let (code, line, _) = dump(&b.c17, t.root());
    assert_eq!(code, 0, "today's containerd takes it: {line:?}");

    let snap = one_node("v1.31.5+rke2r1", "1.7.23-k3s2", None);
    let deep = read_root(&snap, t.root());
    let r = preflight(&snap, &target(Some("v1.31.6+rke2r1"), None), Some(&deep));
    let f = one(&r, "upgrade-render");
    assert_eq!(f.status, Status::Fail, "{f:#?}");
    assert!(f.message.contains("will refuse"), "{}", f.message);
    assert!(plan(&r).breaks_gpu_pods);
    let predicted = plan(&r).predicted[0].text.clone();

    // The upgrade: RKE2 v1.31.6 renders the same template on the v2 base.
    let real = t.render_as(&b, "v1.31.6+rke2r1", "2.0.2-k3s2", true, false);
    assert_eq!(predicted, real, "the predicted config.toml is RKE2's");
    let (code, line, _) = dump(&b.c2, t.root());
    assert_ne!(code, 0, "containerd 2 refuses it, as predicted");
    assert!(line.as_deref().unwrap_or("").contains("toml"), "{line:?}");
}

const V2_TEMPLATE: &str = "{{ template \"base\" . }}\n";

/// The version 2 form of the real GPU node's drop-in (what the
/// `upgrade-drop-in-version` fix asks for).
const V2_NVIDIA_DROP_IN: &str = "version = 2\n\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.nvidia]\n  runtime_type = \"io.containerd.runc.v2\"\n\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.nvidia.options]\n  BinaryName = \"/opt/nvidia/toolkit/nvidia-container-runtime\"\n";

/// v1.35.3 → v1.36.3: containerd 2.3.3 refuses a drop-in whose version is
/// above the root's. A node on a v2 `config.toml.tmpl` whose nvidia
/// runtime sits in a version 3 drop-in does not start; with the drop-in at
/// version 2 (the fix) containerd 2.3.3 loads it and has the runtime.
#[test]
fn a_drop_in_above_the_root_is_refused_by_containerd_2_3_and_the_prepared_one_loads() {
    let b = bins_or_skip!();
    let t = Tree::new("gpu-h200-0");
    t.write("config.toml.tmpl", V2_TEMPLATE);
    let v3 = fs::read_to_string(repo().join(
        "tests/fixtures/real-gpu-cluster/files/1-patched/containerd/config-v3.toml.d/99-nvidia.toml",
    ))
    .unwrap();
    t.write("config.toml.d/99-nvidia.toml", &v3);
    let today = t.render_as(&b, "v1.35.3+rke2r1", "2.2.2-k3s1", true, true);
    assert!(today.starts_with("# File generated by rke2") && today.contains("version = 2"));

    let snap = one_node("v1.35.3+rke2r1", "2.2.2-k3s1", None);
    let r = preflight(
        &snap,
        &target(Some("v1.36.3+rke2r1"), None),
        Some(&read_root(&snap, t.root())),
    );
    let f = one(&r, "upgrade-drop-in-version");
    assert_eq!(f.status, Status::Fail, "{f:#?}");
    let predicted = plan(&r).predicted[0].text.clone();

    let real = t.render_as(&b, "v1.36.3+rke2r1", "2.3.3-k3s1", true, true);
    assert_eq!(predicted, real, "the predicted config.toml is RKE2's");
    let (code, line, _) = dump(&b.c23, t.root());
    assert_ne!(code, 0, "containerd 2.3.3 refuses the version 3 drop-in");
    let line = line.unwrap_or_default();
    assert!(line.contains("version"), "{line}");

    // Prepared as the fix says: the drop-in at the root's version.
    t.write("config.toml.d/99-nvidia.toml", V2_NVIDIA_DROP_IN);
    let r = preflight(
        &snap,
        &target(Some("v1.36.3+rke2r1"), None),
        Some(&read_root(&snap, t.root())),
    );
    assert!(
        r.findings.iter().all(|f| f.id != "upgrade-drop-in-version"),
        "{:#?}",
        r.findings
    );
    let render = one(&r, "upgrade-render");
    assert_eq!(render.status, Status::Ok, "{render:#?}");
    assert!(
        render.message.contains("nvidia runtime"),
        "{}",
        render.message
    );
    let (code, line, out) = dump(&b.c23, t.root());
    assert_eq!(code, 0, "{line:?}");
    assert!(
        out.contains("/opt/nvidia/toolkit/nvidia-container-runtime"),
        "{out}"
    );
}

/// v1.32.13+rke2r2 → v1.33.9+rke2r1 drops the imports line (a backport the
/// next line's early patches lack): the nvidia runtime patch-containerd put
/// in config-v3.toml.d is gone from what containerd loads. To v1.33.10+rke2r1
/// (the fix) it stays.
#[test]
fn losing_the_imports_line_really_loses_the_runtime_and_the_fixed_target_keeps_it() {
    let b = bins_or_skip!();
    let t = Tree::new("gpu-h200-0");
    let drop_in = fs::read_to_string(repo().join(
        "tests/fixtures/real-gpu-cluster/files/1-patched/containerd/config-v3.toml.d/99-nvidia.toml",
    ))
    .unwrap();
    t.write("config-v3.toml.d/99-nvidia.toml", &drop_in);
    t.render_as(&b, "v1.32.13+rke2r2", "2.2.2-k3s1", true, true);
    let (code, _, out) = dump(&b.c2, t.root());
    assert_eq!(code, 0);
    assert!(
        out.contains("/opt/nvidia/toolkit/nvidia-container-runtime"),
        "today: {out}"
    );

    let snap = one_node("v1.32.13+rke2r2", "2.2.2-k3s1", None);
    let deep = read_root(&snap, t.root());
    let lost = preflight(&snap, &target(Some("v1.33.9+rke2r1"), None), Some(&deep));
    let f = one(&lost, "upgrade-render");
    assert_eq!(f.status, Status::Fail, "{f:#?}");
    assert!(f.message.contains("no nvidia runtime"), "{}", f.message);
    let predicted = plan(&lost).predicted[0].text.clone();
    let kept = preflight(&snap, &target(Some("v1.33.10+rke2r1"), None), Some(&deep));
    assert_eq!(one(&kept, "upgrade-render").status, Status::Ok);
    let predicted_kept = plan(&kept).predicted[0].text.clone();

    let real = t.render_as(&b, "v1.33.9+rke2r1", "2.1.5-k3s1", true, false);
    assert_eq!(predicted, real, "the predicted config.toml is RKE2's");
    let (code, _, out) = dump(&b.c2, t.root());
    assert_eq!(code, 0);
    assert!(
        !out.contains("nvidia-container-runtime"),
        "the runtime is gone: {out}"
    );

    let real = t.render_as(&b, "v1.33.10+rke2r1", "2.2.2-k3s1", true, true);
    assert_eq!(predicted_kept, real);
    let (code, _, out) = dump(&b.c2, t.root());
    assert_eq!(code, 0);
    assert!(
        out.contains("/opt/nvidia/toolkit/nvidia-container-runtime"),
        "{out}"
    );
}

// ---------------------------------------------------------------------------
// The schema migration, against containerd's own `config migrate`
// ---------------------------------------------------------------------------

/// Every leaf of a TOML table: `a.b.c = value`.
fn leaf_lines(t: &toml_edit::Table, prefix: &str, out: &mut Vec<(String, String)>) {
    for (k, item) in t.iter() {
        let p = if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}.{k}")
        };
        match item {
            toml_edit::Item::Table(sub) => leaf_lines(sub, &p, out),
            toml_edit::Item::Value(toml_edit::Value::InlineTable(it)) => {
                leaf_lines(&it.clone().into_table(), &p, out)
            }
            toml_edit::Item::Value(v) => {
                // containerd writes single-quoted strings: compare values.
                let norm = v.to_string().trim().replace('\'', "\"");
                out.push((p, norm));
            }
            _ => {}
        }
    }
}

/// `to_v3` puts each v2 CRI key where containerd 2.3.3's own migration
/// (`containerd config migrate`, RKE2 v1.36.3's containerd) puts it: on a
/// real RKE2 v2 config.toml (the legacy node's, rendered by k3s' v2 base)
/// and on the user templates of the error cases.
#[test]
fn the_v2_to_v3_migration_matches_containerds_own() {
    let b = bins_or_skip!();
    let mut inputs = vec![
        fs::read_to_string(repo().join(format!(
            "tests/node-trees/gpu-a100-legacy-0/{CTD}/config.toml"
        )))
        .unwrap(),
    ];
    for c in cases()
        .into_iter()
        .filter(|c| c.template_file == "config.toml.tmpl")
    {
        let a = rke2gpu::containerd::TemplateAnalysis::analyze("t", &c.template);
        // As in the config.toml RKE2 renders, whose base always has runc:
        // containerd moves containerd.snapshotter to the images plugin only
        // in a config with a runtimes table.
        inputs.push(format!("version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n{}", a.appended()));
    }
    let dir = tempfile::tempdir().unwrap();
    for (i, text) in inputs.iter().enumerate() {
        let doc: toml_edit::DocumentMut = match text.parse() {
            Ok(d) => d,
            Err(_) => continue, // redeclares a table: not a document on its own
        };
        let ours = rke2gpu::containerd::migrate::to_v3(&doc);
        assert!(ours.unplaced.is_empty(), "{i}: {:?}", ours.unplaced);
        let f = dir.path().join(format!("{i}.toml"));
        fs::write(&f, text).unwrap();
        let out = std::process::Command::new(&b.c23)
            .arg("--config")
            .arg(&f)
            .args(["config", "migrate"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs: toml_edit::DocumentMut = String::from_utf8_lossy(&out.stdout).parse().unwrap();
        let (mut a, mut t) = (Vec::new(), Vec::new());
        leaf_lines(ours.doc.as_table(), "", &mut a);
        leaf_lines(theirs.as_table(), "", &mut t);
        let theirs: std::collections::BTreeMap<_, _> = t.into_iter().collect();
        let cri = a
            .iter()
            .filter(|(p, _)| p.starts_with("plugins.io.containerd.cri.v1"))
            .count();
        assert!(cri > 0 || i > 0, "{i}: the real config has CRI keys: {a:?}");
        for (path, value) in a.iter().filter(|(p, _)| p.starts_with("plugins.")) {
            assert_eq!(
                theirs.get(path),
                Some(value),
                "{i}: {path} (ours {value}); containerd's:\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
}

// ---------------------------------------------------------------------------
// patch-containerd --for-rke2: staged files, the running release untouched
// ---------------------------------------------------------------------------

fn stage(tree: &Path, rke2: &str, containerd: &str, to: &str) -> rke2gpu::patch::plan::Plan {
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(stage_async(tree, rke2, containerd, to))
}

async fn stage_async(
    tree: &Path,
    rke2: &str,
    containerd: &str,
    to: &str,
) -> rke2gpu::patch::plan::Plan {
    use rke2gpu::patch::offline::{OfflineRequest, OfflineSource};
    use rke2gpu::patch::plan::PatchOptions;
    let req = OfflineRequest {
        source: OfflineSource::NodeRoot(tree.to_path_buf()),
        options: PatchOptions {
            for_release: Some(rke2gpu::version::KubeletVersion::parse(to).unwrap()),
            ..PatchOptions::default()
        },
        data_dir: None,
        containerd_version: Some(containerd.into()),
        rke2_version: Some(rke2.into()),
        out_dir: None,
    };
    let plan = rke2gpu::patch::offline::plan(&req).await.expect("plan");
    rke2gpu::patch::apply_changes(
        &rke2gpu::node::LocalRoot::new(tree),
        &plan.changes,
        &rke2gpu::node::BackupStamp::now(),
    )
    .await
    .expect("apply");
    plan
}

const USER_V2_TEMPLATE: &str = "{{ template \"base\" . }}\n\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.crun]\n  runtime_type = \"io.containerd.runc.v2\"\n\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.crun.options]\n  BinaryName = \"/usr/bin/crun\"\n\n[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"docker.io\"]\n  endpoint = [\"https://mirror.example.internal\"]\n";

/// v1.31.5 (containerd 1.7) → v1.31.6 (2.0): `--for-rke2` writes
/// config-v3.toml.tmpl beside config.toml.tmpl. RKE2 on 1.7 renders exactly
/// what it rendered before; the target renders the v3 base with the user's
/// runtime and mirror in their schema 3 places, and containerd 2 loads
/// them. A second run stages nothing.
#[test]
fn staging_config_v3_before_containerd_2_keeps_the_running_release() {
    let b = bins_or_skip!();
    let t = Tree::new("gpu-a100-legacy-0");
    t.write("config.toml.tmpl", USER_V2_TEMPLATE);
    let before = t.render_as(&b, "v1.31.5+rke2r1", "1.7.23-k3s2", false, false);
    let snap = one_node("v1.31.5+rke2r1", "1.7.23-k3s2", None);
    let to = target(Some("v1.31.6+rke2r1"), None);
    let r = preflight(&snap, &to, Some(&read_root(&snap, t.root())));
    assert_eq!(one(&r, "upgrade-template").status, Status::Warn);

    let plan = stage(t.root(), "v1.31.5+rke2r1", "1.7.23", "v1.31.6+rke2r1");
    assert_eq!(plan.changes.len(), 1, "{:#?}", plan.reasons);
    assert!(plan.changes[0].path.ends_with("config-v3.toml.tmpl"));
    assert!(plan.restart.is_none());
    assert_eq!(plan.staged_for.as_deref(), Some("v1.31.6+rke2r1"));

    // The running release (containerd 1.7) renders the same config.toml.
    let again = t.render_as(&b, "v1.31.5+rke2r1", "1.7.23-k3s2", false, false);
    assert_eq!(again, before);
    assert_eq!(dump(&b.c17, t.root()).0, 0);
    // The preflight now sees the v3 template.
    let r = preflight(&snap, &to, Some(&read_root(&snap, t.root())));
    let f = one(&r, "upgrade-template");
    assert_eq!(f.status, Status::Ok, "{f:#?}");

    // The upgrade: the v3 base with the user's tables; containerd 2 loads it.
    let after = t.render_as(&b, "v1.31.6+rke2r1", "2.0.2-k3s2", true, false);
    assert!(after.contains("version = 3"), "{after}");
    let (code, line, out) = dump(&b.c2, t.root());
    assert_eq!(code, 0, "{line:?}\n{after}");
    let d: toml_edit::DocumentMut = out.parse().unwrap();
    let crun = &d["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]["crun"];
    assert_eq!(
        crun["options"]["BinaryName"].as_str(),
        Some("/usr/bin/crun"),
        "{out}"
    );
    let mirror = &d["plugins"]["io.containerd.cri.v1.images"]["registry"]["mirrors"]["docker.io"]["endpoint"];
    assert_eq!(
        mirror
            .as_array()
            .and_then(|a| a.get(0))
            .and_then(|v| v.as_str()),
        Some("https://mirror.example.internal"),
        "{out}"
    );

    let second = stage(t.root(), "v1.31.5+rke2r1", "1.7.23", "v1.31.6+rke2r1");
    assert!(second.changes.is_empty(), "{:#?}", second.changes);
}

/// v1.35.3 → v1.36.3 on a v2 config.toml.tmpl: `--for-rke2` rewrites the
/// version 3 drop-in at version 2. Today's containerd (2.4.2 for 2.2.2) and
/// the target's 2.3.3 both load it, with the nvidia runtime.
#[test]
fn staging_a_drop_in_at_the_root_version_for_containerd_2_3() {
    let b = bins_or_skip!();
    let t = Tree::new("gpu-h200-0");
    t.write("config.toml.tmpl", V2_TEMPLATE);
    let v3 = fs::read_to_string(repo().join(
        "tests/fixtures/real-gpu-cluster/files/1-patched/containerd/config-v3.toml.d/99-nvidia.toml",
    ))
    .unwrap();
    t.write("config.toml.d/99-nvidia.toml", &v3);
    t.render_as(&b, "v1.35.3+rke2r1", "2.2.2-k3s1", true, true);

    let plan = stage(t.root(), "v1.35.3+rke2r1", "2.2.2", "v1.36.3+rke2r1");
    assert_eq!(plan.changes.len(), 1, "{:#?}", plan.reasons);
    assert!(
        plan.changes[0]
            .path
            .ends_with("config.toml.d/99-nvidia.toml")
    );
    assert!(
        plan.changes[0]
            .new
            .as_deref()
            .unwrap()
            .starts_with("# Written by kubectl-gpu"),
        "comments kept: {:?}",
        plan.changes[0].new
    );

    let snap = one_node("v1.35.3+rke2r1", "2.2.2-k3s1", None);
    let r = preflight(
        &snap,
        &target(Some("v1.36.3+rke2r1"), None),
        Some(&read_root(&snap, t.root())),
    );
    assert!(!plan_breaks(&r), "{:#?}", r.findings);
    for bin in [&b.c2, &b.c23] {
        t.render_as(&b, "v1.36.3+rke2r1", "2.3.3-k3s1", true, true);
        let (code, line, out) = dump(bin, t.root());
        assert_eq!(code, 0, "{}: {line:?}", bin.display());
        assert!(
            out.contains("/opt/nvidia/toolkit/nvidia-container-runtime"),
            "{out}"
        );
    }
}

fn plan_breaks(r: &rke2gpu::check_runtime::CheckReport) -> bool {
    plan(r).breaks_gpu_pods
}

/// A v2 template whose tables the v3 base renders too (the nvidia runtime
/// RKE2 detects from the toolkit dir, the containerd table) is not staged:
/// containerd 2 would refuse the render. The error names the tables.
#[test]
fn staging_refuses_a_template_that_would_redeclare_a_v3_base_table() {
    use rke2gpu::patch::offline::{OfflineRequest, OfflineSource};
    use rke2gpu::patch::plan::PatchOptions;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    copy_tree(&repo().join("tests/node-trees/gpu-a100-legacy-0"), &root);
    for (table, what) in [
        (
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.nvidia]\n  runtime_type = \"io.containerd.runc.v2\"\n",
            "containerd.runtimes.nvidia]",
        ),
        (
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  default_runtime_name = \"nvidia\"\n",
            "cri.v1.runtime\".containerd]",
        ),
    ] {
        fs::write(
            root.join(CTD).join("config.toml.tmpl"),
            format!("{{{{ template \"base\" . }}}}\n\n{table}"),
        )
        .unwrap();
        let req = OfflineRequest {
            source: OfflineSource::NodeRoot(root.clone()),
            options: PatchOptions {
                for_release: rke2gpu::version::KubeletVersion::parse("v1.31.6+rke2r1"),
                ..PatchOptions::default()
            },
            data_dir: None,
            containerd_version: Some("1.7.23".into()),
            rke2_version: Some("v1.31.5+rke2r1".into()),
            out_dir: None,
        };
        let e = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(rke2gpu::patch::offline::plan(&req))
            .expect_err("refused");
        let m = e.to_string();
        assert!(m.contains(what) && m.contains("declared twice"), "{m}");
    }
}

// ---------------------------------------------------------------------------
// Every boundary: the prediction is RKE2's render, and containerd agrees
// ---------------------------------------------------------------------------

/// A release as the render profile and the preflight see it.
struct Rel {
    release: &'static str,
    containerd: &'static str,
    v3: bool,
    imports: bool,
}

const fn rel(release: &'static str, containerd: &'static str, v3: bool, imports: bool) -> Rel {
    Rel {
        release,
        containerd,
        v3,
        imports,
    }
}

const V2_MIRROR: &str = "{{ template \"base\" . }}\n\n[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"docker.io\"]\n  endpoint = [\"https://mirror.example.internal\"]\n";
const V3_MIRROR: &str = "{{ template \"base\" . }}\n\n[plugins.'io.containerd.cri.v1.images'.registry.mirrors.'docker.io']\n  endpoint = [\"https://mirror.example.internal\"]\n";

/// At each RKE2 boundary of the issue (v1.31.5 → v1.31.6, v1.32.1 →
/// v1.32.2, v1.33.9 → v1.33.10, v1.35.3 → v1.36.3) and K3s' v1.31.5+k3s1 →
/// v1.31.6+k3s1, with no template, a v2 and a v3 base template: where the
/// preflight predicts config.toml it is byte for byte what RKE2 renders for
/// the target (the real k3s templates), and the target's real containerd
/// loads it exactly when `upgrade-render` does not fail. Where it does not
/// predict (a schema the node's config.toml does not hold), it says so.
#[test]
fn every_boundary_predicts_rke2s_render_and_containerds_verdict() {
    let b = bins_or_skip!();
    let boundaries = [
        (
            "gpu-a100-legacy-0",
            rel("v1.31.5+rke2r1", "1.7.23-k3s2", false, false),
            rel("v1.31.6+rke2r1", "2.0.2-k3s2", true, false),
        ),
        (
            "gpu-a100-legacy-0",
            rel("v1.32.1+rke2r1", "1.7.23-k3s2", false, false),
            rel("v1.32.2+rke2r1", "2.0.2-k3s2", true, false),
        ),
        (
            "gpu-h200-0",
            rel("v1.33.9+rke2r1", "2.1.5-k3s1", true, false),
            rel("v1.33.10+rke2r1", "2.2.2-k3s1", true, true),
        ),
        (
            "gpu-h200-0",
            rel("v1.35.3+rke2r1", "2.2.2-k3s1", true, true),
            rel("v1.36.3+rke2r1", "2.3.3-k3s1", true, true),
        ),
        (
            "gpu-k3s-0",
            rel("v1.31.5+k3s1", "1.7.23-k3s2", false, false),
            rel("v1.31.6+k3s1", "2.0.2-k3s2", true, false),
        ),
    ];
    let mut predicted_count = 0;
    for (node, from, to) in &boundaries {
        for (name, file, template) in [
            ("no template", "", ""),
            ("v2 template", "config.toml.tmpl", V2_MIRROR),
            ("v3 template", "config-v3.toml.tmpl", V3_MIRROR),
        ] {
            let what = format!("{node} {} → {} with {name}", from.release, to.release);
            let t = Tree::with_toolkit(node, true);
            if !file.is_empty() {
                t.write(file, template);
            }
            t.render_as(&b, from.release, from.containerd, from.v3, from.imports);
            let snap = one_node(from.release, from.containerd, None);
            let r = preflight(
                &snap,
                &target(Some(to.release), None),
                Some(&read_root(&snap, t.root())),
            );
            let f = one(&r, "upgrade-render");
            let predicted = plan(&r).predicted.first().map(|p| p.text.clone());
            let real = t.render_as(&b, to.release, to.containerd, to.v3, to.imports);
            let bin = if to.containerd.starts_with("2.3") {
                &b.c23
            } else {
                &b.c2
            };
            let (code, line, _) = dump_in(bin, t.root(), t.ctd);
            match predicted {
                Some(p) => {
                    predicted_count += 1;
                    assert_eq!(p, real, "{what}: the prediction is RKE2's render");
                    assert_eq!(
                        code == 0,
                        f.status != Status::Fail,
                        "{what}: containerd {code} {line:?} vs {f:#?}"
                    );
                }
                None => {
                    assert_eq!(f.status, Status::Skipped, "{what}: {f:#?}");
                    assert!(f.message.contains("base"), "{what}: {}", f.message);
                }
            }
            // None of these healthy nodes breaks: containerd loads the real render.
            assert_eq!(code, 0, "{what}: {line:?}");
        }
    }
    // Not predicted: across containerd 1.7 → 2 with no template or a v3
    // template, the target renders the v3 base, which a 1.7 node's
    // config.toml does not hold (3 boundaries x 2).
    assert_eq!(predicted_count, 9, "predicted {predicted_count} of 15");
}
