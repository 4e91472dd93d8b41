//! `patch-containerd --for-rke2 RELEASE`: stage on the node what the
//! upgraded release will need, without changing what the running release
//! renders or loads. Two stagings, each from the upgrade preflight's rules:
//!
//! - containerd 1.7 → 2 (RKE2 v1.31.6, v1.32.2): a `config-v3.toml.tmpl`
//!   beside the `config.toml.tmpl`, with the template's TOML migrated to
//!   schema 3 ([`crate::containerd::migrate::to_v3`]). RKE2 on containerd
//!   1.7 does not read it (k3s writeContainerdConfig reads
//!   config-v3.toml.tmpl only on containerd 2 builds); the target reads it
//!   first, on the v3 base.
//! - a target whose containerd refuses a drop-in above the root's version
//!   (2.3.0–2.3.4, [`matrix::containerd_rejects_newer_drop_in`]): each such
//!   drop-in rewritten at the root's version
//!   ([`crate::containerd::migrate::to_v2`]). The running containerd 2
//!   migrates a version 2 drop-in the same way, so it loads the same.
//!
//! Nothing is restarted: the files take effect at the upgrade's restart.

use super::*;
use crate::containerd::migrate;
use crate::version::KubeletVersion;

/// The staging plan for `to`.
pub(super) fn plan_for_release(input: &PlanInput, to: &KubeletVersion) -> Result<Plan> {
    let paths = Rke2Paths::new(&input.data_dir);
    let now = input.caps.containerd;
    let Some(then) = matrix::shipped_containerd(to).pin().map(|p| p.containerd) else {
        return Err(Error::InvalidOption {
            option: "--for-rke2".into(),
            reason: format!(
                "which containerd {to} ships is not in this tool's release table; name a release it knows (kubectl gpu check-runtime --upgrade-to-rke2 {to} says which)"
            ),
        });
    };
    let s = &input.state;
    let mut reasons = vec![format!(
        "staging for {to} (containerd {then}); the node runs containerd {now}: nothing the running release renders or loads changes, and nothing is restarted"
    )];
    let mut changes = Vec::new();
    let mut v3_after = s.template_v3.is_some() && then.major >= 2;
    if now.major < 2 && then.major >= 2 {
        match (&s.template_v3, &s.template_v2) {
            (Some(_), _) => reasons.push(format!(
                "{} exists already: {to} reads it first (check it is the v3 form of {})",
                paths.template(3),
                paths.template(2)
            )),
            (None, Some(t2)) => {
                let from = paths.template(2);
                let a = TemplateAnalysis::analyze(&from, t2);
                match a.kind {
                    TemplateKind::Static => {
                        return Err(Error::StaticTemplate { path: from });
                    }
                    TemplateKind::Other => {
                        return Err(Error::UnsupportedTemplate {
                            path: from,
                            reason: a.reason.clone(),
                        });
                    }
                    TemplateKind::Base => {
                        let doc = a.appended_document()?;
                        let m = migrate::to_v3(&doc);
                        if !m.unplaced.is_empty() {
                            return Err(Error::InvalidContainerdConfig {
                                path: from,
                                reason: format!(
                                    "cannot stage config-v3.toml.tmpl for {to}: {} has no single place in a version 3 config (containerd makes it a per-platform runtime_platform entry); write config-v3.toml.tmpl by hand",
                                    m.unplaced.join(", ")
                                ),
                            });
                        }
                        for d in &m.dropped {
                            reasons.push(format!("not carried over: {d}"));
                        }
                        let body = m.doc.to_string();
                        let text = format!(
                            "{}\n{}",
                            a.prefix().trim_end(),
                            if body.trim().is_empty() {
                                String::new()
                            } else {
                                format!("\n{}", body.trim_start())
                            }
                        );
                        // The runtimes RKE2 detects and renders in its base: the
                        // same in both schemas, so read them from today's base.
                        let detected: Vec<String> = a
                            .base_render_for(&s.generated_config, 2)
                            .and_then(|b| {
                                ContainerdConfig::parse(&paths.config_toml(), &b.text).ok()
                            })
                            .map(|c| c.runtimes().into_iter().map(|r| r.name).collect())
                            .unwrap_or_default();
                        let renders = |t: &Vec<String>| match t.as_slice() {
                            [p, plugin, c, r, name, ..]
                                if p == "plugins"
                                    && plugin == migrate::CRI_RUNTIME
                                    && c == "containerd"
                                    && r == "runtimes" =>
                            {
                                detected.contains(name)
                            }
                            _ => matrix::k3s_base_table(t),
                        };
                        let staged = TemplateAnalysis::analyze(&paths.template(3), &text);
                        let clash: Vec<String> = staged
                            .declared_tables()?
                            .into_iter()
                            .filter(renders)
                            .map(|t| crate::containerd::redeclared::display_path(&t))
                            .collect();
                        if !clash.is_empty() {
                            return Err(Error::InvalidContainerdConfig {
                                path: from,
                                reason: format!(
                                    "cannot stage config-v3.toml.tmpl for {to}: in schema 3 its TOML declares [{}], which RKE2's v3 base template renders too, and containerd {then} refuses a table declared twice; set those keys through the RKE2 config (e.g. default-runtime) or a drop-in after the upgrade, or write config-v3.toml.tmpl by hand",
                                    clash.join("], [")
                                ),
                            });
                        }
                        reasons.push(format!(
                            "{} written with {from}'s TOML in schema 3 (as containerd 2 migrates it): containerd {now} ignores it, {to} renders it on the v3 base",
                            paths.template(3)
                        ));
                        changes.push(FileChange {
                            path: paths.template(3),
                            old: None,
                            new: Some(text),
                            mode: FILE_MODE,
                        });
                        v3_after = true;
                    }
                }
            }
            (None, None) => reasons.push(format!(
                "no user template: {to} generates its own version {} config.toml",
                matrix::rendered_root_version(then)
            )),
        }
    }
    if matrix::containerd_rejects_newer_drop_in(then) {
        let root = if v3_after || s.template_v2.is_none() {
            matrix::rendered_root_version(then)
        } else {
            2
        };
        let dir = paths.drop_in_dir(root);
        let generated = ContainerdConfig::parse(&paths.config_toml(), &s.generated_config).ok();
        let imports_dir = generated
            .as_ref()
            .and_then(|g| imported_drop_in_dir(g, false));
        if imports_dir.as_deref() == Some(dir.as_str()) {
            for (name, text) in &s.drop_ins {
                let path = format!("{dir}/{name}");
                if !name.ends_with(".toml") {
                    continue;
                }
                let d = ContainerdConfig::parse(&path, text)?;
                let Some(v) = d.declared_version().filter(|v| *v > root) else {
                    continue;
                };
                if !(v == 3 && root == 2) {
                    return Err(Error::InvalidContainerdConfig {
                        path,
                        reason: format!(
                            "version {v} is above the root's {root}, which containerd {then} refuses, and only version 3 → 2 is staged; rewrite it at version {root} by hand"
                        ),
                    });
                }
                let m = migrate::to_v2(d.document());
                if !m.unplaced.is_empty() {
                    return Err(Error::InvalidContainerdConfig {
                        path,
                        reason: format!(
                            "cannot rewrite it at version {root} for {to}: {} has no version 2 place; rewrite it by hand",
                            m.unplaced.join(", ")
                        ),
                    });
                }
                reasons.push(format!(
                    "{path}: version {v} is above the root's {root}, which containerd {then} refuses (it would not start); rewritten at version {root} with the same settings, which containerd {now} loads the same way"
                ));
                changes.push(FileChange {
                    path,
                    old: Some(text.clone()),
                    new: Some(m.doc.to_string()),
                    mode: FILE_MODE,
                });
            }
        }
    }
    if changes.is_empty() {
        reasons.push(format!("nothing to stage for {to}"));
    }
    Ok(Plan {
        method: None,
        changes,
        reasons,
        restart: None,
        expectation: Expectation {
            config_path: paths.config_toml(),
            drop_in_dir: None,
            runtime_name: input.options.runtime_name.clone(),
            binary_name: String::new(),
            systemd_cgroup: None,
            set_as_default: false,
            kept: Vec::new(),
        },
        rendered: None,
        staged_for: Some(to.raw.clone()),
    })
}
