//! The apply/rollback cycle over a local host root (`host::LocalRoot`),
//! through the same functions the command uses: gather → plan → apply with
//! backups → (simulated RKE2 restart) → second run is a no-op → rollback
//! restores every file byte for byte and leaves no marker behind.
//!
//! Property test over RKE2 node trees: the v3 fixture config (with and
//! without `imports`, with and without its nvidia runtimes), a v2 config,
//! pre-existing files of ours or the user's (a base template, a static
//! template, an older 99-nvidia.toml, a config.yaml.d file), runtime names,
//! --set-as-default and the binaries present.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use rke2gpu::matrix::NodePaths;
use rke2gpu::node::{BackupStamp, Host, LocalRoot};
use rke2gpu::patch::plan::{Method, PatchOptions};
use rke2gpu::patch::{self, PatchTarget};
use rke2gpu::version::{Distribution, KubeletVersion, Triple};

const CTD: &str = "/var/lib/rancher/rke2/agent/etc/containerd";

fn fixture(rel: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn strip_nvidia(text: &str) -> String {
    let mut out = String::new();
    let mut skip = false;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        if t.starts_with('[') {
            skip = t.contains("runtimes.") && t.contains("nvidia");
        }
        if !skip {
            out.push_str(line);
        }
    }
    out
}

/// A v2 generated config: the v3 fixture's content in v2 form is not
/// needed; the real-world static copy minus its nvidia parts is a real
/// RKE2 v2 render.
fn v2_config() -> String {
    strip_nvidia(&fixture(
        "real-world/containerd/rke2-v2-config.toml.tmpl-static-copy-nvidia-default.toml",
    ))
    .lines()
    .filter(|l| !l.trim_start().starts_with("default_runtime_name"))
    .collect::<Vec<_>>()
    .join("\n")
        + "\n"
}

fn target(v3: bool) -> PatchTarget {
    let (k, c) = if v3 {
        ("v1.33.10+rke2r1", Triple::new(2, 2, 0))
    } else {
        ("v1.30.14+rke2r1", Triple::new(1, 7, 0))
    };
    PatchTarget {
        node: "n".into(),
        distribution: Distribution::Rke2,
        paths: NodePaths::new(Distribution::Rke2, None),
        caps: patch::capabilities(KubeletVersion::parse(k).as_ref(), c),
        unit: "rke2-agent".into(),
        generic_config: None,
        notes: Vec::new(),
    }
}

/// Every regular file under `root` (relative path → bytes).
fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p
                    .strip_prefix(root)
                    .map(|r| r.display().to_string())
                    .unwrap_or_default();
                out.insert(rel, std::fs::read(&p).unwrap_or_default());
            }
        }
    }
    out
}

fn write(root: &Path, host_path: &str, text: &str) {
    let p = root.join(host_path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[derive(Debug, Clone)]
struct Case {
    v3: bool,
    imports: bool,
    nvidia_rendered: bool,
    toolkit: bool,
    /// 0 none, 1 base template (rke2-docs), 2 static copy
    template: u8,
    old_drop_in: bool,
    yaml_d: bool,
    name: &'static str,
    default: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        0u8..3,
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(vec!["nvidia", "nvidia-cdi", "gpu"]),
        any::<bool>(),
    )
        .prop_map(
            |(
                v3,
                imports,
                nvidia_rendered,
                toolkit,
                template,
                old_drop_in,
                yaml_d,
                name,
                default,
            )| Case {
                v3,
                imports: imports && v3,
                nvidia_rendered: nvidia_rendered && toolkit,
                toolkit,
                template: if v3 { template.min(1) } else { template & 2 },
                old_drop_in,
                yaml_d,
                name,
                default,
            },
        )
}

fn build_tree(root: &Path, c: &Case) -> String {
    let mut cfg = if c.v3 {
        fixture("rke2-containerd-config-example.toml")
    } else {
        v2_config()
    };
    if !c.imports {
        cfg = cfg
            .split_inclusive('\n')
            .filter(|l| !l.starts_with("imports"))
            .collect();
    }
    if !c.nvidia_rendered {
        cfg = strip_nvidia(&cfg);
    }
    match c.template {
        1 => {
            let t =
                fixture("real-world/containerd/rke2-docs-config-v3.toml.tmpl-base-template.toml");
            let appended = t.split_once('\n').map(|x| x.1).unwrap_or("").to_owned();
            cfg = cfg + "\n" + &appended;
            write(root, &format!("{CTD}/config-v3.toml.tmpl"), &t);
        }
        2 => write(root, &format!("{CTD}/config.toml.tmpl"), &cfg),
        _ => {}
    }
    write(root, &format!("{CTD}/config.toml"), &cfg);
    if c.toolkit {
        for b in patch::RUNTIME_BINARIES {
            write(
                root,
                &format!("/usr/local/nvidia/toolkit/{b}"),
                "#!/bin/sh\n",
            );
        }
    }
    if c.old_drop_in && c.imports {
        write(
            root,
            &format!("{CTD}/config-v3.toml.d/99-nvidia.toml"),
            "# an older drop-in\nversion = 3\n",
        );
    }
    if c.yaml_d {
        write(
            root,
            "/etc/rancher/rke2/config.yaml.d/50-user.yaml",
            "node-label:\n  - gpu=true\n",
        );
    }
    write(
        root,
        "/etc/rancher/rke2/config.yaml",
        "server: https://10.0.0.1:9345\n",
    );
    cfg
}

fn run_case(c: &Case) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    rt.block_on(async {
        let tmp = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let root = tmp.path();
        let original_cfg = build_tree(root, c);
        let before = snapshot(root);
        let host = LocalRoot::new(root);
        let t = target(c.v3);
        let options = PatchOptions {
            runtime_name: c.name.into(),
            set_as_default: c.default,
            replace_static_template: c.template == 2,
            ..PatchOptions::default()
        };
        let state = patch::gather(&host, &t, None)
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let input = t.plan_input(state.clone(), options.clone());
        let plan = match t.plan(&input) {
            Ok(p) => p,
            // Refusals (e.g. default without a binary) change nothing.
            Err(_) => {
                prop_assert_eq!(snapshot(root), before);
                return Ok(());
            }
        };
        let stamp = BackupStamp::from_unix(1_787_998_500);
        let applied = patch::apply_changes(&host, &plan.changes, &stamp)
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        // Every replaced file has a byte-identical backup.
        for ch in &plan.changes {
            let now = host
                .read(&ch.path)
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(now.as_deref(), ch.new.as_deref().map(str::as_bytes));
            if let Some(old) = &ch.old {
                let b = rke2gpu::node::backup_path(&ch.path, &stamp);
                prop_assert!(applied.backups.contains(&b), "no backup of {}", ch.path);
                let bb = host
                    .read(&b)
                    .await
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(bb.as_deref(), Some(old.as_bytes()));
            }
        }
        // Second run: no file to change.
        let state2 = patch::gather(&host, &t, None)
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let plan2 = t
            .plan(&t.plan_input(state2.clone(), options.clone()))
            .map_err(|e| TestCaseError::fail(format!("second plan: {e}")))?;
        prop_assert!(
            plan2.changes.is_empty(),
            "second run changes {:?}",
            plan2.changes
        );
        // Simulated restart: RKE2 renders the config; the third run is a
        // full no-op (nothing to write, nothing to restart) and confirms.
        if !plan.changes.is_empty()
            && let Some(rendered) = patch::preview_generated(&plan, &state)
                .map_err(|e| TestCaseError::fail(e.to_string()))?
            && c.template != 2
            && (c.nvidia_rendered || !c.toolkit)
        {
            host.write_atomic(&format!("{CTD}/config.toml"), rendered.as_bytes(), 0o600)
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let state3 = patch::gather(&host, &t, None)
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let plan3 = t
                .plan(&t.plan_input(state3.clone(), options.clone()))
                .map_err(|e| TestCaseError::fail(format!("third plan: {e}")))?;
            prop_assert!(
                plan3.changes.is_empty() && plan3.restart.is_none(),
                "after restart: {:?}",
                plan3
            );
            let conf = plan
                .expectation
                .confirm(&state3.generated_config, &state3.drop_ins)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(conf.confirmed, "{:?}", conf.problems);
            // RKE2 re-renders the original after the rollback's restart.
            host.write_atomic(
                &format!("{CTD}/config.toml"),
                original_cfg.as_bytes(),
                0o600,
            )
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        }
        // Rollback: byte-identical, markers gone, second rollback no-op.
        let rb = patch::plan_rollbacks(&host, &t.managed_files())
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        patch::apply_rollbacks(&host, &rb, &stamp)
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let after: BTreeMap<String, Vec<u8>> = snapshot(root)
            .into_iter()
            .filter(|(k, _)| !k.contains(rke2gpu::node::BACKUP_INFIX))
            .collect();
        prop_assert_eq!(&after, &before, "rollback is not byte-identical");
        let rb2 = patch::plan_rollbacks(&host, &t.managed_files())
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(
            rb2.iter().all(|r| r.rollback.change.is_none()),
            "second rollback: {:?}",
            rb2
        );
        if plan.method == Some(Method::DropIn) {
            prop_assert!(plan.changes.iter().all(|ch| ch.path.contains(".toml.d/")));
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn apply_then_rollback_round_trips(c in case()) {
        run_case(&c)?;
    }
}

/// A user's own template with no backup is never removed by --rollback.
#[tokio::test]
async fn rollback_leaves_user_files_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let t = fixture("real-world/containerd/rke2-docs-config-v3.toml.tmpl-base-template.toml");
    write(root, &format!("{CTD}/config-v3.toml.tmpl"), &t);
    let host = LocalRoot::new(root);
    let rb = patch::plan_rollbacks(&host, &target(true).managed_files())
        .await
        .unwrap();
    assert!(rb.iter().all(|r| r.rollback.change.is_none()), "{rb:?}");
}

/// A read-only dir is refused before anything is written.
#[tokio::test]
async fn read_only_dir_changes_nothing() {
    if nix_is_root() {
        // root ignores directory permissions; covered by the e2e scenario instead.
        println!(
            "SKIP read_only_dir_changes_nothing: running as root (permissions are not enforced)"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let c = Case {
        v3: true,
        imports: true,
        nvidia_rendered: true,
        toolkit: true,
        template: 0,
        old_drop_in: true,
        yaml_d: false,
        name: "nvidia",
        default: true,
    };
    build_tree(root, &c);
    let dir = root.join(&format!("{CTD}/config-v3.toml.d")[1..]);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    let before = snapshot(root);
    let host = LocalRoot::new(root);
    let t = target(true);
    let state = patch::gather(&host, &t, None).await.unwrap();
    let o = PatchOptions {
        set_as_default: true,
        ..PatchOptions::default()
    };
    let plan = t.plan(&t.plan_input(state, o)).unwrap();
    let err = patch::apply_changes(&host, &plan.changes, &BackupStamp::now())
        .await
        .unwrap_err();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(matches!(err, rke2gpu::Error::NotWritable { .. }), "{err}");
    assert_eq!(snapshot(root), before);
}

fn nix_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}
