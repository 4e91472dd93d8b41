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
use super::template_fix_real_containerd::{copy_tree, dump, render, render_config};
use super::template_redeclared::cases;
use super::upgrade_preflight::{one, one_node, plan, preflight, read_root, target};

const CTD: &str = "var/lib/rancher/rke2/agent/etc/containerd";

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
}

impl Tree {
    fn new(node: &str) -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        copy_tree(&repo().join("tests/node-trees").join(node), &root);
        let _ = fs::remove_dir_all(root.join("usr/local/nvidia"));
        fs::remove_file(root.join(CTD).join("config.toml")).unwrap();
        Tree {
            _dir: dir,
            root,
            node: node.into(),
        }
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.root.join(CTD).join(rel);
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
        render(&b.render, &self.root, file.to_str().unwrap())
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
