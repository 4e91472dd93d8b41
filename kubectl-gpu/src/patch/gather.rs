//! [`gather`]: read what the planner needs ([`NodeState`]) from any
//! [`Host`]: a node-agent pod in cluster mode, a node tree offline.

use std::collections::BTreeMap;

use crate::containerd::template::config_head;
use crate::error::{Error, Result};
use crate::node::Host;
use crate::patch::plan::{NodeState, imported_drop_in_dir};
use crate::patch::{PatchTarget, RUNTIME_BINARIES, RUNTIME_DIRS};

fn utf8(path: &str, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|_| Error::InvalidContainerdConfig {
        path: path.to_owned(),
        reason: "not UTF-8 text".into(),
    })
}

pub(crate) async fn read_text<H: Host>(host: &H, path: &str) -> Result<Option<String>> {
    match host.read(path).await? {
        Some(b) => Ok(Some(utf8(path, b)?)),
        None => Ok(None),
    }
}

/// Reads a dir's files whose names pass `keep` (name → text).
async fn read_dir_files<H: Host>(
    host: &H,
    dir: &str,
    keep: impl Fn(&str) -> bool,
) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for name in host.list_dir(dir).await?.unwrap_or_default() {
        if !keep(&name) {
            continue;
        }
        if let Some(t) = read_text(host, &format!("{dir}/{name}")).await? {
            out.insert(name, t);
        }
    }
    Ok(out)
}

/// The paths [`gather`] reads, for hosts that batch reads (the agent pod).
pub fn gather_paths(
    target: &PatchTarget,
    binary_path: Option<&str>,
) -> crate::node::probe::ProbeRequest {
    let p = &target.paths;
    let mut exists: Vec<String> = RUNTIME_DIRS
        .iter()
        .flat_map(|d| RUNTIME_BINARIES.iter().map(move |b| format!("{d}/{b}")))
        .collect();
    if let Some(b) = binary_path {
        exists.push(b.to_owned());
    }
    let mut files = vec![
        target.config_path().to_owned(),
        p.template_v3.clone(),
        p.template_v2.clone(),
        p.config_yaml.clone(),
    ];
    files.dedup();
    crate::node::probe::ProbeRequest {
        files,
        dirs: vec![
            p.drop_in_v3.clone(),
            p.drop_in_v2.clone(),
            p.config_yaml_d.clone(),
            format!(
                "{}/conf.d",
                target
                    .config_path()
                    .rsplit_once('/')
                    .map(|(d, _)| d)
                    .unwrap_or("/")
            ),
        ],
        binary: Vec::new(),
        exists,
    }
}

/// Reads what the planner needs from a host: the generated config (its
/// absence is an error), the user templates, the imported drop-ins, the
/// RKE2 config files and which nvidia runtime binaries exist.
pub async fn gather<H: Host>(
    host: &H,
    target: &PatchTarget,
    binary_path: Option<&str>,
) -> Result<NodeState> {
    let p = &target.paths;
    let cfg_path = target.config_path();
    let generated =
        read_text(host, cfg_path)
            .await?
            .ok_or_else(|| Error::MissingGeneratedConfig {
                path: cfg_path.to_owned(),
                hint: if target.generic_config.is_some() {
                    "(generic containerd: is containerd installed with its config there?)".into()
                } else {
                    format!("(RKE2 writes it on every start of {})", target.unit)
                },
            })?;
    let mut state = NodeState {
        generated_config: generated,
        ..NodeState::default()
    };
    if target.generic_config.is_none() {
        state.template_v3 = read_text(host, &p.template_v3).await?;
        state.template_v2 = read_text(host, &p.template_v2).await?;
        state.rke2_config = read_text(host, &p.config_yaml).await?;
        state.rke2_config_d = read_dir_files(host, &p.config_yaml_d, |n| {
            n.ends_with(".yaml") || n.ends_with(".yml")
        })
        .await?;
    }
    // A config that does not parse as a whole (a template redeclaring a base
    // table) still names its drop-in dir in its first lines; the planner
    // reports or repairs the rest.
    if let Some(cfg) = config_head(cfg_path, &state.generated_config)
        && let Some(dir) = imported_drop_in_dir(&cfg, target.generic_config.is_some())
    {
        state.drop_ins = read_dir_files(host, &dir, |n| n.ends_with(".toml")).await?;
    }
    let mut candidates: Vec<String> = RUNTIME_DIRS
        .iter()
        .flat_map(|d| RUNTIME_BINARIES.iter().map(move |b| format!("{d}/{b}")))
        .collect();
    if let Some(b) = binary_path {
        candidates.push(b.to_owned());
    }
    for c in candidates {
        if host.exists(&c).await? {
            state.runtime_binaries.insert(c);
        }
    }
    Ok(state)
}
