//! `--deep` upgrade prediction: the `config.toml` the target release will
//! generate from a node's own files, load-checked the way `patch-containerd`
//! checks its plans, and its diff from today's.
//!
//! RKE2 renders `config.toml` at every start from the user template it
//! picks (k3s pkg/agent/containerd/config.go writeContainerdConfig) over a
//! base template of the schema that template extends, through k3s'
//! `trimEmpty` ([`TemplateAnalysis::render_over`]). The base is read from
//! today's `config.toml` ([`TemplateAnalysis::base_render_for`]): the same
//! schema renders the same settings, with the `imports` line added or
//! dropped as the target's base has it (k3s PR #13680). Where the target
//! renders another schema's base than the node's `config.toml` holds (no
//! template, containerd 1.7 → 2), that base is not on the node and nothing
//! is predicted.

use std::collections::BTreeMap;

use serde::Serialize;

use super::super::Finding;
use crate::containerd::merge::effective_config;
use crate::containerd::model::ContainerdConfig;
use crate::containerd::redeclared::{self, Inputs};
use crate::containerd::template::{
    BaseOrigin, BaseRender, TemplateAnalysis, TemplateKind, template_in_use, trim_empty,
};
use crate::matrix::{self, NodePaths};
use crate::node::probe::ProbeResult;
use crate::version::Triple;

/// What the target release will write to one node's `config.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PredictedConfig {
    pub node: String,
    /// `config.toml`'s path on the node.
    pub path: String,
    /// How it was predicted (the template and base used).
    pub basis: String,
    /// The predicted `config.toml`.
    pub text: String,
    /// Unified diff, today's `config.toml` → the predicted one.
    pub diff: String,
}

/// The node's side of a prediction: what it runs and what the target
/// release will render from.
pub(super) struct PredictInputs<'a> {
    pub node: &'a str,
    pub paths: &'a NodePaths,
    pub probe: &'a ProbeResult,
    /// The containerd the node runs and the target's.
    pub now: Option<Triple>,
    pub then: Triple,
    /// The target's base templates carry the imports line.
    pub imports_then: bool,
    /// Today's config.toml loads its drop-ins.
    pub imports_now: bool,
}

/// The prediction and its `upgrade-render` finding; `None` when the node
/// has no `config.toml` to compare with.
pub(super) fn predict(i: &PredictInputs) -> Option<(Option<PredictedConfig>, Finding)> {
    let generated = i.probe.file(&i.paths.generated_config)?;
    let v3 = i.probe.file(&i.paths.template_v3);
    let v2 = i.probe.file(&i.paths.template_v2);
    let root_then = matrix::rendered_root_version(i.then);
    let (basis, text, template) = match template_in_use(i.then.major, v3, v2) {
        None => {
            let today = ContainerdConfig::parse(&i.paths.generated_config, generated).ok()?;
            if today.version() != root_then {
                return Some((
                    None,
                    not_predicted(
                        i,
                        format!(
                            "the target generates a version {root_then} config.toml from its own base template (today's is version {}): only the drop-ins carry over",
                            today.version()
                        ),
                    ),
                ));
            }
            let base = with_imports(generated, i, root_then);
            (
                format!(
                    "no user template: today's {} with the target's imports line",
                    i.paths.generated_config
                ),
                base,
                None,
            )
        }
        Some((schema, t)) => {
            let path = if schema >= 3 {
                &i.paths.template_v3
            } else {
                &i.paths.template_v2
            };
            let a = TemplateAnalysis::analyze(path, t);
            match a.kind {
                TemplateKind::Static => (
                    format!("{path} is static: rendered verbatim"),
                    trim_empty(t),
                    None,
                ),
                TemplateKind::Other => {
                    return Some((
                        None,
                        not_predicted(
                            i,
                            format!(
                                "{path} uses Go template actions beyond the base template: not predicted"
                            ),
                        ),
                    ));
                }
                TemplateKind::Base => {
                    let Some(base) = a.base_render_for(generated, schema) else {
                        return Some((
                            None,
                            not_predicted(
                                i,
                                format!(
                                    "{path} extends the version {schema} base, which {} was not rendered from: the base is not on the node",
                                    i.paths.generated_config
                                ),
                            ),
                        ));
                    };
                    let base = BaseRender {
                        text: with_imports(&base.text, i, schema),
                        origin: BaseOrigin::Current,
                    };
                    let rendered = a.render_over(&base.text).text;
                    (
                        format!(
                            "{path} over the version {schema} base read from today's {}",
                            i.paths.generated_config
                        ),
                        rendered,
                        Some((a, base)),
                    )
                }
            }
        }
    };
    let finding = load_check(i, generated, &text, template.as_ref());
    let diff = similar::TextDiff::from_lines(generated, text.as_str())
        .unified_diff()
        .context_radius(3)
        .header(
            &i.paths.generated_config,
            &format!("{} (predicted)", i.paths.generated_config),
        )
        .to_string();
    let finding = finding.evidence(format!("predicted from {basis}"));
    Some((
        Some(PredictedConfig {
            node: i.node.to_string(),
            path: i.paths.generated_config.clone(),
            basis,
            text,
            diff,
        }),
        finding,
    ))
}

fn not_predicted(i: &PredictInputs, why: String) -> Finding {
    Finding::skipped("upgrade-render", Some(i.node), why)
}

/// The drop-in dir the base template of `schema` imports.
fn drop_in_dir(paths: &NodePaths, schema: i64) -> &str {
    if schema >= 3 {
        &paths.drop_in_v3
    } else {
        &paths.drop_in_v2
    }
}

/// `base` with the imports line the target's base template of `schema`
/// renders (right after `version`, as k3s' base templates write it), or
/// without one when the target's has none.
fn with_imports(base: &str, i: &PredictInputs, schema: i64) -> String {
    let is_imports = |l: &str| {
        l.trim_start().starts_with("imports = ") || l.trim_start().starts_with("imports=")
    };
    let mut out = String::new();
    let mut in_head = true;
    for line in base.split_inclusive('\n') {
        if line.trim_start().starts_with('[') {
            in_head = false;
        }
        if in_head && is_imports(line) {
            continue;
        }
        out.push_str(line);
        if in_head && i.imports_then && line.trim_start().starts_with("version") {
            out.push_str(&format!(
                "imports = [\"{}/*.toml\"]\n",
                drop_in_dir(i.paths, schema)
            ));
        }
    }
    out
}

/// The `*.toml` drop-ins a config imports from `dir`, at or below the
/// root's version (those above it are `upgrade-drop-in-version`'s).
fn loaded_drop_ins(dir: &str, probe: &ProbeResult, root: i64) -> BTreeMap<String, String> {
    crate::check_runtime::host::drop_in_files(dir, probe)
        .into_iter()
        .filter(|(p, t)| {
            p.ends_with(".toml")
                && ContainerdConfig::parse(p, t)
                    .ok()
                    .and_then(|c| c.declared_version())
                    .unwrap_or(1)
                    <= root
        })
        .map(|(p, t)| (p, t.to_string()))
        .collect()
}

/// `upgrade-render`: does containerd `then` take the predicted config, and
/// does the nvidia runtime survive?
fn load_check(
    i: &PredictInputs,
    generated: &str,
    predicted: &str,
    template: Option<&(TemplateAnalysis, BaseRender)>,
) -> Finding {
    let n = Some(i.node);
    let path = &i.paths.generated_config;
    let then = i.then;
    if let Some((a, base)) = template {
        let inputs = |containerd| Inputs {
            template: a,
            base,
            config_path: path,
            containerd,
        };
        if let Ok(overlaps) = redeclared::find(&inputs(then))
            && let Some(o) = overlaps.iter().find(|o| o.verdict.refused())
        {
            let today = i
                .now
                .and_then(|now| redeclared::find(&inputs(now)).ok())
                .is_some_and(|o| o.iter().any(|o| o.verdict.refused()));
            let mut f = Finding::fail(
                "upgrade-render",
                n,
                format!("containerd {then} will refuse the predicted {path}: {}", o.describe(&a.path, then)),
            )
            .fix(format!("kubectl gpu patch-containerd --node {}   # moves the redeclared tables out of {}; then run this preflight again", i.node, a.path));
            if today {
                f = f.evidence(
                    "today's containerd refuses it too (check-runtime's template-tables)",
                );
            }
            return f;
        }
    }
    let cfg = match ContainerdConfig::parse(path, predicted) {
        Ok(c) => c,
        Err(e) => {
            return Finding::fail(
                "upgrade-render",
                n,
                format!("containerd {then} will not parse the predicted {path}: {e}"),
            )
            .fix("fix the user template before upgrading");
        }
    };
    let root = cfg.version();
    let after = if i.imports_then && !cfg.imports().is_empty() {
        effective_config(
            path,
            predicted,
            &loaded_drop_ins(drop_in_dir(i.paths, root), i.probe, root),
        )
    } else {
        Ok(cfg)
    };
    let after = match after {
        Ok(c) => c,
        Err(e) => {
            return Finding::fail(
                "upgrade-render",
                n,
                format!("the predicted {path} with its drop-ins does not load: {e}"),
            );
        }
    };
    let before = ContainerdConfig::parse(path, generated).ok().and_then(|c| {
        let root = c.version();
        if i.imports_now && !c.imports().is_empty() {
            effective_config(
                path,
                generated,
                &loaded_drop_ins(drop_in_dir(i.paths, root), i.probe, root),
            )
            .ok()
        } else {
            Some(c)
        }
    });
    let had = before.as_ref().and_then(|c| c.runtime("nvidia"));
    let has = after.runtime("nvidia");
    match (had, has) {
        (Some(_), None) => Finding::fail(
            "upgrade-render",
            n,
            format!("the predicted {path} (with the drop-ins it imports) has no nvidia runtime: GPU pods lose it at the upgrade"),
        )
        .fix("keep the runtime where the target loads it: kubectl gpu patch-containerd --node NODE after the upgrade, or in the template before it"),
        (_, Some(rt)) => Finding::ok(
            "upgrade-render",
            n,
            format!(
                "the predicted {path} loads (version {root}){}: nvidia runtime {}",
                if after.default_runtime_name().as_deref() == Some("nvidia") { ", nvidia the default runtime" } else { "" },
                rt.binary_name.as_deref().unwrap_or("(no BinaryName)")
            ),
        ),
        (None, None) => Finding::ok(
            "upgrade-render",
            n,
            format!("the predicted {path} loads (version {root}); no nvidia runtime before or after"),
        ),
    }
}
