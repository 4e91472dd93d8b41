//! Post-restart confirmation and the effective (merged) config.
//!
//! After RKE2 restarts, the re-read generated `config.toml` (merged with the
//! imported drop-ins, as containerd ≥ 2.0 merges them) must show the runtime
//! the plan intended.

use std::collections::BTreeMap;

use toml_edit::{Item, TableLike};

use crate::containerd::model::{ContainerdConfig, RUNC_V2, cri_runtime_plugin};
use crate::error::{Error, Result};

/// Merge drop-ins (file name or path → text; only `*.toml` names are used,
/// in name order) over the root config, the way containerd ≥ 2.0 merges
/// imports: tables merge recursively, other values are replaced; the
/// drop-ins' `version` and `imports` keys are not merged.
///
/// A drop-in whose `version` is higher than the root's is refused
/// ([`Error::DropInVersionTooHigh`]). Drop-ins with a lower version are not
/// migrated to the root's plugin names (containerd would).
pub fn effective_config(
    path: &str,
    generated: &str,
    drop_ins: &BTreeMap<String, String>,
) -> Result<ContainerdConfig> {
    let root = ContainerdConfig::parse(path, generated)?;
    let mut doc = root.document().clone();
    for (name, text) in drop_ins {
        if !name.ends_with(".toml") {
            continue;
        }
        let d = ContainerdConfig::parse(name, text)?;
        if let Some(v) = d.declared_version()
            && v > root.version()
        {
            return Err(Error::DropInVersionTooHigh {
                path: name.clone(),
                dropin: v,
                root: root.version(),
            });
        }
        merge_into(doc.as_table_mut(), d.root(), true);
    }
    ContainerdConfig::from_document(path, doc)
}

fn merge_into(dst: &mut dyn TableLike, src: &dyn TableLike, top: bool) {
    for (k, v) in src.iter() {
        if top && (k == "version" || k == "imports") {
            continue;
        }
        let both_tables = v.is_table_like() && dst.get(k).is_some_and(Item::is_table_like);
        if both_tables {
            if let (Some(d), Some(s)) = (
                dst.get_mut(k).and_then(Item::as_table_like_mut),
                v.as_table_like(),
            ) {
                merge_into(d, s, false);
            }
        } else {
            dst.insert(k, v.clone());
        }
    }
}

/// What the plan intends the node's containerd to have after the restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// The generated config to re-read (`<data-dir>/agent/etc/containerd/config.toml`).
    pub config_path: String,
    /// Directory of the imported drop-ins, if the config imports one.
    pub drop_in_dir: Option<String>,
    pub runtime_name: String,
    pub binary_name: String,
    /// `SystemdCgroup` mirrored from runc's options, if runc sets it.
    pub systemd_cgroup: Option<bool>,
    pub set_as_default: bool,
}

/// The outcome of [`Expectation::confirm`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    /// True when every expectation holds.
    pub confirmed: bool,
    /// What was found, one fact a line.
    pub evidence: Vec<String>,
    /// What is missing or different.
    pub problems: Vec<String>,
}

impl Expectation {
    /// Check the re-read generated config (merged with `drop_ins`, the files
    /// of [`Expectation::drop_in_dir`]) against the expectation.
    pub fn confirm(
        &self,
        generated: &str,
        drop_ins: &BTreeMap<String, String>,
    ) -> Result<Confirmation> {
        let eff = effective_config(&self.config_path, generated, drop_ins)?;
        let mut evidence = Vec::new();
        let mut problems = Vec::new();
        let where_ = if drop_ins.is_empty() {
            self.config_path.clone()
        } else {
            format!("{} merged with its drop-ins", self.config_path)
        };
        let key = format!(
            "plugins.\"{}\".containerd.runtimes.{}",
            cri_runtime_plugin(eff.version()),
            self.runtime_name
        );
        evidence.push(format!("{where_}: schema version {}", eff.version()));
        match eff.runtime(&self.runtime_name) {
            None => problems.push(format!("{where_} has no [{key}] table")),
            Some(r) => {
                evidence.push(format!("[{key}] is present"));
                match r.runtime_type.as_deref() {
                    Some(RUNC_V2) => evidence.push(format!("{key}.runtime_type = \"{RUNC_V2}\"")),
                    other => problems.push(format!(
                        "{key}.runtime_type is {other:?}, expected \"{RUNC_V2}\""
                    )),
                }
                match r.binary_name.as_deref() {
                    Some(b) if b == self.binary_name => {
                        evidence.push(format!("{key}.options.BinaryName = \"{b}\""))
                    }
                    other => problems.push(format!(
                        "{key}.options.BinaryName is {other:?}, expected \"{}\"",
                        self.binary_name
                    )),
                }
                if let Some(want) = self.systemd_cgroup {
                    if r.systemd_cgroup == Some(want) {
                        evidence.push(format!("{key}.options.SystemdCgroup = {want} (as runc)"));
                    } else {
                        problems.push(format!(
                            "{key}.options.SystemdCgroup is {:?}, runc has {want}",
                            r.systemd_cgroup
                        ));
                    }
                }
            }
        }
        if self.set_as_default {
            match eff.default_runtime_name() {
                Some(n) if n == self.runtime_name => {
                    evidence.push(format!("default_runtime_name = \"{n}\""))
                }
                other => problems.push(format!(
                    "default_runtime_name is {other:?}, expected \"{}\"",
                    self.runtime_name
                )),
            }
        }
        Ok(Confirmation {
            confirmed: problems.is_empty(),
            evidence,
            problems,
        })
    }
}
