//! Templates that redeclare a table RKE2's base template renders, rendered
//! by `render-config` from the real k3s templates and loaded by REAL
//! containerd, before and after `patch-containerd`'s repair.
//!
//! For each case of `tests/fixtures/containerd-toml-errors/cases.json`, on a
//! copy of the node's fixture tree (`tests/node-trees/<node>`):
//! 1. the template is written and `config.toml` rendered (`render-config
//!    render`, as RKE2 does at start); `containerd config dump` with the
//!    node's containerd line (1.7.35 for the v1.30 node, 2.4.2 for the
//!    v1.33 node) refuses it, with exactly the line the tool predicts;
//! 2. offline `patch-containerd --node-root` plans over the tree (the same
//!    gather and planner as cluster mode) and the plan is applied with the
//!    tool's own applier (backups, atomic writes); a case containerd 1.7
//!    cannot take from a drop-in is refused instead, quoting containerd;
//! 3. `config.toml` is rendered again (RKE2's restart); the plan's own
//!    confirmation holds on it, and `containerd config dump` (drop-ins
//!    imported from the tree) accepts it with the user's key still in
//!    effect and the nvidia runtime present.
//!
//! Skipped, with the reason printed, when the containerd binaries or
//! render-config are not built (`tests/e2e/build-bins`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use rke2gpu::containerd::TemplateAnalysis;
use rke2gpu::containerd::model::item_at;
use rke2gpu::containerd::redeclared::{self, Inputs, Verdict, value_text};
use rke2gpu::node::{BackupStamp, LocalRoot};
use rke2gpu::patch::offline::{OfflineRequest, OfflineSource};
use rke2gpu::patch::plan::PatchOptions;
use rke2gpu::patch::{self};
use rke2gpu::version::Triple;

use super::patch_real_containerd::containerd_bin;
use super::template_redeclared::{Case, cases};

const CTD: &str = "var/lib/rancher/rke2/agent/etc/containerd";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub(crate) fn render_config() -> Option<PathBuf> {
    let out = Command::new(repo().join("tests/e2e/build-bins"))
        .args(["--path", "render-config"])
        .output()
        .ok()?;
    let dir = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()?
        .trim()
        .to_owned();
    let p = PathBuf::from(dir).join("render-config");
    (out.status.success() && p.is_file()).then_some(p)
}

pub(crate) fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp");
    assert!(st.success(), "cp -a {}", from.display());
}

pub(crate) fn render(bin: &Path, tree: &Path, node: &str) -> String {
    render_in(bin, tree, node, CTD)
}

/// [`render`] for the containerd dir `ctd` (relative to the tree).
pub(crate) fn render_in(bin: &Path, tree: &Path, node: &str, ctd: &str) -> String {
    let out = Command::new(bin)
        .arg("render")
        .arg("--root")
        .arg(tree)
        .args(["--profile", node])
        .output()
        .expect("render-config");
    assert!(
        out.status.success(),
        "render-config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::read_to_string(tree.join(ctd).join("config.toml")).expect("config.toml")
}

/// `containerd --config F config dump` on the tree's config.toml with its
/// imports pointed into the tree: (exit, last `containerd:` line, stdout).
pub(crate) fn dump(bin: &Path, tree: &Path) -> (i32, Option<String>, String) {
    dump_in(bin, tree, CTD)
}

/// [`dump`] for the containerd dir `ctd` (relative to the tree: K3s' is
/// `var/lib/rancher/k3s/agent/etc/containerd`).
pub(crate) fn dump_in(bin: &Path, tree: &Path, ctd: &str) -> (i32, Option<String>, String) {
    let cfg = tree.join(ctd).join("config.toml");
    let text = fs::read_to_string(&cfg).expect("config.toml");
    let moved = text.replace(
        &format!("\"/{ctd}/"),
        &format!("\"{}/", tree.join(ctd).display()),
    );
    // Same line count, so the rows containerd names are config.toml's.
    fs::write(&cfg, moved).expect("write");
    let out = Command::new(bin)
        .arg("--config")
        .arg(&cfg)
        .args(["config", "dump"])
        .output()
        .expect("containerd");
    fs::write(&cfg, text).expect("write back");
    let prefix = tree.display().to_string();
    let line = String::from_utf8_lossy(&out.stderr)
        .lines()
        .rfind(|l| l.starts_with("containerd: "))
        .map(|l| l.replace(&prefix, ""));
    (
        out.status.code().unwrap_or(-1),
        line,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The node's containerd line, the binary that stands for it, its version,
/// and the RKE2 release of the test cluster's profile.
fn node_binary(node: &str, c17: &Path, c2: &Path) -> (PathBuf, Triple, &'static str) {
    match node {
        "gpu-a100-legacy-0" => (c17.to_path_buf(), Triple::new(1, 7, 35), "v1.30.14+rke2r1"),
        _ => (c2.to_path_buf(), Triple::new(2, 4, 2), "v1.33.10+rke2r1"),
    }
}

/// What `config dump` must show after the repair (written from the rules:
/// containerd 2.x dumps version 3 keys, migrating a v2 config's CRI keys to
/// `io.containerd.cri.v1.*`; 1.7 dumps version 2 keys).
fn kept_in_dump(name: &str) -> Option<(&'static [&'static str], &'static str)> {
    const RT: &str = "io.containerd.cri.v1.runtime";
    const IMG: &str = "io.containerd.cri.v1.images";
    const V2: &str = "io.containerd.grpc.v1.cri";
    Some(match name {
        "v3-images-double-quoted" => (&["plugins", IMG, "snapshotter"], "\"native\""),
        "v3-runtime-table" => (
            &["plugins", RT, "device_ownership_from_security_context"],
            "true",
        ),
        "v3-runc-options" | "v3-dotted-runc-options" | "v2-template-on-containerd2" => (
            &[
                "plugins",
                RT,
                "containerd",
                "runtimes",
                "runc",
                "options",
                "SystemdCgroup",
            ],
            "false",
        ),
        "v3-custom-runtime-and-registry" => (
            &["plugins", IMG, "registry", "config_path"],
            "\"/etc/containerd/certs.d\"",
        ),
        "v3-dotted-new-runtime" => (
            &[
                "plugins",
                RT,
                "containerd",
                "runtimes",
                "crun",
                "runtime_type",
            ],
            "\"io.containerd.runc.v2\"",
        ),
        "v2-runc-options-same-value" => (
            &[
                "plugins",
                V2,
                "containerd",
                "runtimes",
                "runc",
                "options",
                "SystemdCgroup",
            ],
            "true",
        ),
        _ => return None,
    })
}

async fn run_case(
    c: &Case,
    rc: &Path,
    c17: &Path,
    c2: &Path,
    default: bool,
) -> Result<String, String> {
    let (bin, version, rke2) = node_binary(&c.node, c17, c2);
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let tree = tmp.path().join("tree");
    copy_tree(&repo().join("tests/node-trees").join(&c.node), &tree);
    fs::write(tree.join(CTD).join(&c.template_file), &c.template).map_err(|e| e.to_string())?;
    let before = render(rc, &tree, &c.node);
    if before != c.config_toml {
        return Err("render-config renders another config.toml than the fixture's: re-run tests/fixtures/containerd-toml-errors/capture".into());
    }
    // 1. Before: what containerd prints is what the tool predicts.
    let (exit, line, _) = dump(&bin, &tree);
    let a = TemplateAnalysis::analyze(&format!("/{CTD}/{}", c.template_file), &c.template);
    let base = a.base_render(&before).ok_or("no base render")?;
    let overlaps = redeclared::find(&Inputs {
        template: &a,
        base: &base,
        config_path: &format!("/{CTD}/config.toml"),
        containerd: version,
    })
    .map_err(|e| e.to_string())?;
    let predicted = overlaps.iter().find_map(|o| match &o.verdict {
        Verdict::Refused(m) => Some(m.clone()),
        Verdict::Accepted(_) => None,
    });
    if (exit == 0) != predicted.is_none() || (exit != 0 && line != predicted) {
        return Err(format!(
            "before: containerd {version} exit {exit} `{line:?}`, the tool predicted {predicted:?}"
        ));
    }
    // 2. Plan offline over the tree and apply with the tool's applier.
    let req = OfflineRequest {
        source: OfflineSource::NodeRoot(tree.clone()),
        options: PatchOptions {
            set_as_default: default,
            ..PatchOptions::default()
        },
        data_dir: None,
        containerd_version: Some(version.to_string()),
        rke2_version: Some(rke2.into()),
        out_dir: None,
    };
    let plan = match patch::offline::plan(&req).await {
        Ok(p) => p,
        Err(e) => {
            let m = e.to_string();
            if kept_in_dump(&c.name).is_some() {
                return Err(format!("refused: {m}"));
            }
            // Refused: it names the template and quotes containerd.
            if let Some(l) = &line
                && !m.contains(l.as_str())
            {
                return Err(format!(
                    "the refusal does not quote containerd's `{l}`: {m}"
                ));
            }
            if !m.contains(&c.template_file) || !m.contains("already renders") {
                return Err(format!("the refusal does not say what and why: {m}"));
            }
            return Ok(format!("refused (containerd {version}), as it must"));
        }
    };
    let Some((path, value)) = kept_in_dump(&c.name) else {
        return Err(format!(
            "planned, but containerd {version} cannot take it: {:#?}",
            plan.changes
        ));
    };
    let host = LocalRoot::new(&tree);
    patch::apply_changes(&host, &plan.changes, &BackupStamp::now())
        .await
        .map_err(|e| format!("apply: {e}"))?;
    // 3. RKE2 restarts: render again, confirm, load.
    let after = render(rc, &tree, &c.node);
    // Equal up to indentation (the preview of RKE2's default-runtime line is not indented).
    let unindent = |t: &str| {
        t.lines()
            .map(str::trim_start)
            .collect::<Vec<_>>()
            .join("\n")
    };
    if Some(unindent(&after)) != plan.rendered.as_deref().map(unindent) {
        return Err(format!(
            "render-config renders another config.toml than the plan previewed:\n--- render-config\n{after}\n--- plan\n{:?}",
            plan.rendered
        ));
    }
    let mut drop_ins = BTreeMap::new();
    if let Some(dir) = &plan.expectation.drop_in_dir {
        for e in fs::read_dir(tree.join(dir.trim_start_matches('/')))
            .into_iter()
            .flatten()
            .flatten()
        {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.ends_with(".toml") {
                drop_ins.insert(n, fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
    }
    let conf = plan
        .expectation
        .confirm(&after, &drop_ins)
        .map_err(|e| format!("confirm: {e}"))?;
    if !conf.confirmed {
        return Err(format!("not confirmed: {:?}", conf.problems));
    }
    let (exit, line, out) = dump(&bin, &tree);
    if exit != 0 {
        return Err(format!("after: containerd {version} refuses: {line:?}"));
    }
    let d: toml_edit::DocumentMut = out.parse().map_err(|e| format!("dump: {e}"))?;
    let got = item_at(d.as_table(), path)
        .and_then(|i| i.as_value())
        .map(value_text);
    if got.as_deref() != Some(value) {
        return Err(format!(
            "after: {} is {got:?} in config dump, the template set {value}",
            path.join(".")
        ));
    }
    let rt: &[&str] = if version.major >= 2 {
        &[
            "plugins",
            "io.containerd.cri.v1.runtime",
            "containerd",
            "runtimes",
            "nvidia",
            "options",
            "BinaryName",
        ]
    } else {
        &[
            "plugins",
            "io.containerd.grpc.v1.cri",
            "containerd",
            "runtimes",
            "nvidia",
            "options",
            "BinaryName",
        ]
    };
    let nv = item_at(d.as_table(), rt)
        .and_then(|i| i.as_str())
        .map(str::to_owned);
    if nv.as_deref() != Some("/usr/local/nvidia/toolkit/nvidia-container-runtime") {
        return Err(format!("after: the nvidia runtime's BinaryName is {nv:?}"));
    }
    if default {
        let cri = if version.major >= 2 {
            "io.containerd.cri.v1.runtime"
        } else {
            "io.containerd.grpc.v1.cri"
        };
        let d = item_at(
            d.as_table(),
            &["plugins", cri, "containerd", "default_runtime_name"],
        )
        .and_then(|i| i.as_str())
        .map(str::to_owned);
        if d.as_deref() != Some("nvidia") {
            return Err(format!("after: default_runtime_name is {d:?}"));
        }
    }
    Ok(format!(
        "refused before, accepted after by containerd {version}; {} = {value} in effect ({} files changed)",
        path.join("."),
        plan.changes.len()
    ))
}

#[tokio::test]
async fn broken_templates_before_and_after_the_repair_in_real_containerd() {
    let c17 = containerd_bin("1", "CONTAINERD17_BIN");
    let c2 = containerd_bin("2", "CONTAINERD2_BIN");
    let rc = render_config();
    let (Some(c17), Some(c2), Some(rc)) = (c17.clone(), c2.clone(), rc.clone()) else {
        println!(
            "SKIP broken_templates_before_and_after_the_repair_in_real_containerd: need containerd 1.7.x ({c17:?}), 2.x ({c2:?}) and render-config ({rc:?}); run tests/e2e/build-bins"
        );
        return;
    };
    let mut failures = Vec::new();
    let mut repaired = 0;
    for c in cases() {
        // The runtime as RKE2 detects it, then also made the default.
        for default in [false, true] {
            let label = format!(
                "{}{}",
                c.name,
                if default { " --set-as-default" } else { "" }
            );
            match run_case(&c, &rc, &c17, &c2, default).await {
                Ok(m) => {
                    if m.starts_with("refused before") {
                        repaired += 1;
                    }
                    println!("{label}: {m}");
                }
                Err(e) => failures.push(format!("{label}: {e}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(repaired >= 14, "{repaired} repaired");
}
