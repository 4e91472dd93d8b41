//! Previews for offline mode and the real-containerd tests: the generated
//! config as RKE2 should render it after the restart, the drop-ins after a
//! plan, and the flattened effective config.

use std::collections::BTreeMap;

use toml_edit::{Item, Table, Value};

use crate::containerd::{ContainerdConfig, cri_runtime_plugin, effective_config};
use crate::error::{Error, Result};
use crate::patch::plan::{Method, NodeState, Plan};

/// The generated config as RKE2 should render it after the restart, for
/// offline previews and the real-containerd tests: the planner's own render
/// ([`Plan::rendered`]) where it made one, else approximations:
/// - drop-in: the generated config does not change (containerd merges the
///   drop-in at load time);
/// - default-runtime: RKE2 adds `default_runtime_name` to the CRI
///   containerd table; it is inserted into the current generated config;
/// - template: the new template with `{{ template "base" . }}` replaced by
///   the base render. With no template before, the base render *is* the
///   current generated config; with a base template before whose text the
///   new one extends, the generated config already holds the old appended
///   TOML and only the addition is appended. A static template replaced by
///   a base template, or one edited in place, cannot be previewed exactly:
///   the current generated config (the static copy) stands for the base.
///
/// Returns `None` when the plan changes nothing.
pub fn preview_generated(plan: &Plan, state: &NodeState) -> Result<Option<String>> {
    let Some(method) = plan.method else {
        return Ok(None);
    };
    if plan.changes.is_empty() {
        return Ok(None);
    }
    if let Some(r) = &plan.rendered {
        return Ok(Some(r.clone()));
    }
    let generated = &state.generated_config;
    match method {
        Method::DropIn | Method::ConfigFile => Ok(Some(
            plan.changes
                .iter()
                .find(|c| c.path == plan.expectation.config_path)
                .and_then(|c| c.new.clone())
                .unwrap_or_else(|| generated.clone()),
        )),
        Method::DefaultRuntime => {
            let cfg = ContainerdConfig::parse(&plan.expectation.config_path, generated)?;
            let mut doc = cfg.document().clone();
            let cri = cri_runtime_plugin(cfg.version());
            let plugins = doc
                .entry("plugins")
                .or_insert(Item::Table(implicit()))
                .as_table_like_mut();
            let ok = plugins
                .and_then(|p| {
                    p.entry(cri)
                        .or_insert(Item::Table(implicit()))
                        .as_table_like_mut()
                })
                .and_then(|c| {
                    c.entry("containerd")
                        .or_insert(Item::Table(Table::new()))
                        .as_table_like_mut()
                })
                .map(|t| {
                    t.insert(
                        "default_runtime_name",
                        Item::Value(Value::from(plan.expectation.runtime_name.as_str())),
                    );
                })
                .is_some();
            if !ok {
                return Err(Error::InvalidContainerdConfig {
                    path: plan.expectation.config_path.clone(),
                    reason: format!("plugins.{cri}.containerd is not a table"),
                });
            }
            Ok(Some(doc.to_string()))
        }
        Method::Template => {
            let Some(c) = plan.changes.iter().find(|c| c.path.ends_with(".tmpl")) else {
                return Ok(None);
            };
            let new = c.new.clone().unwrap_or_default();
            if let Some(old) = &c.old
                && old.contains("{{")
                && let Some(added) = new.strip_prefix(old.as_str())
            {
                let mut s = generated.clone();
                if !s.ends_with('\n') {
                    s.push('\n');
                }
                s.push_str(added);
                return Ok(Some(s));
            }
            let mut out = String::new();
            for line in new.split_inclusive('\n') {
                let t = line.trim();
                if t.starts_with("{{") && t.contains("template \"base\"") {
                    out.push_str(generated);
                    if !out.ends_with('\n') {
                        out.push('\n');
                    }
                } else {
                    out.push_str(line);
                }
            }
            Ok(Some(out))
        }
    }
}

fn implicit() -> Table {
    let mut t = Table::new();
    t.set_implicit(true);
    t
}

/// A standalone config with the drop-ins merged in and `imports` removed:
/// what containerd effectively loads, loadable without the drop-in dir.
pub fn flatten(path: &str, generated: &str, drop_ins: &BTreeMap<String, String>) -> Result<String> {
    let eff = effective_config(path, generated, drop_ins)?;
    let mut doc = eff.document().clone();
    doc.remove("imports");
    Ok(doc.to_string())
}

/// The drop-ins after a plan (name → text), for confirmation and previews.
pub fn drop_ins_after(plan: &Plan, state: &NodeState) -> BTreeMap<String, String> {
    let mut d = state.drop_ins.clone();
    if let Some(dir) = &plan.expectation.drop_in_dir {
        for c in &plan.changes {
            if let Some(name) = c.path.strip_prefix(&format!("{dir}/")) {
                match &c.new {
                    Some(n) => {
                        d.insert(name.to_owned(), n.clone());
                    }
                    None => {
                        d.remove(name);
                    }
                }
            }
        }
    }
    d
}
