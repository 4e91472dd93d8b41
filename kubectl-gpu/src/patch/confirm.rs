//! Post-restart confirmation: after RKE2 restarts, the re-read generated
//! `config.toml` (merged with the imported drop-ins, as containerd ≥ 2.0
//! merges them, see [`crate::containerd::effective_config`]) must show the
//! runtime the plan intended ([`Expectation`]), and still the keys of a
//! repaired user template ([`KeptKey`]).

use std::collections::BTreeMap;

use crate::containerd::effective_config;
use crate::containerd::model::{RUNC_V2, cri_runtime_plugin, item_at};
use crate::containerd::redeclared::{display_path, value_text};
use crate::error::Result;

/// A key of the user's template that a repair moved or re-homed
/// (`patch::plan` template repair): it must still be in effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptKey {
    /// Key path from the config's root.
    pub path: Vec<String>,
    /// Its value as [`value_text`] writes it.
    pub value: String,
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
    /// Keys of a repaired user template that must keep their value.
    pub kept: Vec<KeptKey>,
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
        for k in &self.kept {
            let parts: Vec<&str> = k.path.iter().map(String::as_str).collect();
            let key = display_path(&k.path);
            match item_at(eff.root(), &parts).and_then(|i| i.as_value()) {
                Some(v) if value_text(v) == k.value => evidence.push(format!(
                    "{key} = {} (the template's, still in effect)",
                    k.value
                )),
                Some(v) => problems.push(format!(
                    "{key} is {}, the template set {}",
                    value_text(v),
                    k.value
                )),
                None => problems.push(format!(
                    "{where_} has no {key}; the template set {}",
                    k.value
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
