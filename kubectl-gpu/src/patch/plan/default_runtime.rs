//! Method (b): RKE2's `default-runtime` in
//! `/etc/rancher/rke2/config.yaml.d/99-gpu.yaml`, and reading the effective
//! `default-runtime` from the RKE2 config files.

use super::*;

#[derive(Debug, Default, Deserialize)]
pub(super) struct Rke2ConfigSubset {
    #[serde(rename = "default-runtime")]
    default_runtime: Option<String>,
}

/// RKE2 config files in load order: config.yaml, then config.yaml.d/*.yaml
/// (and *.yml) by name.
pub(super) fn rke2_config_files(state: &NodeState) -> Vec<(String, &str)> {
    let mut out = Vec::new();
    if let Some(t) = &state.rke2_config {
        out.push((RKE2_CONFIG.to_owned(), t.as_str()));
    }
    for (name, t) in &state.rke2_config_d {
        if name.ends_with(".yaml") || name.ends_with(".yml") {
            out.push((format!("{RKE2_CONFIG_D}/{name}"), t.as_str()));
        }
    }
    out
}

pub(super) fn parse_rke2_config(path: &str, text: &str) -> Result<Rke2ConfigSubset> {
    if text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---"
    }) {
        return Ok(Rke2ConfigSubset::default());
    }
    serde_saphyr::from_str(text).map_err(|e| Error::Rke2Config {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

/// The effective `default-runtime` and the file that sets it (last wins).
pub(super) fn rke2_default_runtime(state: &NodeState) -> Result<Option<(String, String)>> {
    let mut found = None;
    for (path, text) in rke2_config_files(state) {
        if let Some(v) = parse_rke2_config(&path, text)?.default_runtime {
            found = Some((v, path));
        }
    }
    Ok(found)
}

pub(super) fn default_runtime_available(ctx: &Ctx) -> std::result::Result<(), String> {
    let d = &ctx.desired;
    if !d.set_as_default {
        return Err("no default runtime asked".into());
    }
    if !ctx.input.caps.default_runtime_flag {
        return Err(format!(
            "this RKE2 predates the default-runtime flag ({})",
            matrix::feature(Rke2Feature::DefaultRuntimeFlag).line_versions("/")
        ));
    }
    if standard_runtime_binary(&d.name).is_none() {
        return Err(format!(
            "RKE2 only detects nvidia, nvidia-experimental and nvidia-cdi; `{}` would fail with `default runtime {} was not found`",
            d.name, d.name
        ));
    }
    let user_declares = ctx.in_use.as_ref().is_some_and(|t| {
        t.analysis
            .as_ref()
            .and_then(|a| a.appended_document().ok())
            .is_some_and(|doc| {
                item_at(doc.as_table(), &ctx.generated.runtime_path(&d.name)).is_some()
            })
    });
    let rendered = ctx.generated.runtime(&d.name);
    match rendered.as_ref().and_then(|r| r.binary_name.as_deref()) {
        None => {
            return Err(format!(
                "{} does not show runtime `{}` yet (RKE2 must detect it first, else it fails with `default runtime {} was not found`; restart RKE2 once the binary exists)",
                ctx.generated.path(),
                d.name,
                d.name
            ));
        }
        Some(_) if user_declares => {
            return Err(format!(
                "runtime `{}` comes from the user template, not from RKE2's detection",
                d.name
            ));
        }
        Some(b) if ctx.input.options.binary_path.is_some() && b != d.binary.path => {
            return Err(format!(
                "RKE2 renders `{}` with BinaryName {b}, not the requested {}",
                d.name, d.binary.path
            ));
        }
        Some(_) => {}
    }
    for (name, text) in &ctx.input.state.rke2_config_d {
        if name.as_str() > GPU_RKE2_CONFIG_NAME
            && (name.ends_with(".yaml") || name.ends_with(".yml"))
        {
            let path = format!("{RKE2_CONFIG_D}/{name}");
            if let Ok(c) = parse_rke2_config(&path, text)
                && let Some(v) = c.default_runtime
                && v != d.name
            {
                return Err(format!(
                    "{path} is read after {GPU_RKE2_CONFIG_NAME} and sets default-runtime: {v}"
                ));
            }
        }
    }
    Ok(())
}

pub(super) fn plan_default_runtime(mut ctx: Ctx) -> Result<Plan> {
    let name = ctx.desired.name.clone();
    if let Some((v, file)) = &ctx.rke2_default
        && *v == name
    {
        ctx.reasons
            .push(format!("{file} already sets default-runtime: {v}"));
        return Ok(ctx.finish(
            Some(Method::DefaultRuntime),
            Vec::new(),
            Restart::Rke2,
            None,
        ));
    }
    let path = format!("{RKE2_CONFIG_D}/{GPU_RKE2_CONFIG_NAME}");
    let old = ctx
        .input
        .state
        .rke2_config_d
        .get(GPU_RKE2_CONFIG_NAME)
        .cloned();
    let line = format!("default-runtime: \"{name}\"");
    let new = match &old {
        None => format!(
            "# Written by kubectl-gpu (patch-containerd): make `{name}` containerd's default runtime.\n{line}\n"
        ),
        Some(text) => {
            let mut replaced = false;
            let mut out: Vec<String> = text
                .lines()
                .map(|l| {
                    if l.starts_with("default-runtime:") || l.starts_with("default-runtime :") {
                        replaced = true;
                        line.clone()
                    } else {
                        l.to_owned()
                    }
                })
                .collect();
            if !replaced {
                out.push(line.clone());
            }
            out.join("\n") + "\n"
        }
    };
    if let Some((v, file)) = &ctx.rke2_default {
        ctx.reasons.push(format!(
            "{file} sets default-runtime: {v}; {path} is read later and overrides it"
        ));
    }
    let change = FileChange {
        path,
        old,
        new: Some(new),
        mode: FILE_MODE,
    };
    Ok(ctx.finish(
        Some(Method::DefaultRuntime),
        vec![change],
        Restart::Rke2,
        None,
    ))
}
