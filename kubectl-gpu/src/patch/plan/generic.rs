//! Generic containerd (not RKE2): a drop-in when the config imports a glob
//! and containerd merges drop-ins, else an in-place edit of the config file.

use super::*;

/// Generic containerd (not RKE2): a drop-in when the config imports a glob
/// and containerd merges drop-ins, else an in-place edit of the config.
pub(super) fn plan_generic(input: &PlanInput) -> Result<Plan> {
    let o = &input.options;
    let path = o
        .config_path
        .clone()
        .unwrap_or_else(|| GENERIC_CONFIG.into());
    let generated = ContainerdConfig::parse(&path, &input.state.generated_config)?;
    check_schema(&generated, input.caps.containerd)?;
    let binary = resolve_binary(o, &input.state)?;
    if o.set_as_default && !binary.exists {
        return Err(Error::NoRuntimeBinary {
            path: path.clone(),
            runtime: o.runtime_name.clone(),
            looked_for: binary.path.clone(),
        });
    }
    let systemd = generated.runtime("runc").and_then(|r| r.systemd_cgroup);
    let mut reasons = vec![
        "generic containerd (not RKE2): its config file is user-owned".to_owned(),
        binary.reason.clone(),
    ];
    let dir = imported_drop_in_dir(&generated, true);
    let ctx_reasons = std::mem::take(&mut reasons);
    let ctx = Ctx {
        input,
        paths: Rke2Paths::new(&input.data_dir),
        generated,
        in_use: None,
        desired: Desired {
            name: o.runtime_name.clone(),
            binary,
            systemd,
            set_as_default: o.set_as_default,
        },
        rke2_default: None,
        reasons: ctx_reasons,
    };
    let unsupported = |m: Method, why: &str| Error::MethodUnsupported {
        method: m.to_string(),
        path: path.clone(),
        reason: why.to_owned(),
    };
    let merges = matrix::containerd_merges_drop_ins(input.caps.containerd);
    match (o.method, dir) {
        (Some(m @ (Method::DefaultRuntime | Method::Template)), _) => Err(unsupported(
            m,
            "only for RKE2 (not with --generic-containerd)",
        )),
        (Some(Method::DropIn), None) => Err(unsupported(
            Method::DropIn,
            "the config has no `imports` glob (`<dir>/*.toml`)",
        )),
        (Some(Method::DropIn), Some(_)) if !merges => Err(unsupported(
            Method::DropIn,
            "containerd 1.x replaces imported plugin tables instead of merging them",
        )),
        (None | Some(Method::DropIn), Some(d)) if merges => {
            let mut ctx = ctx;
            ctx.reasons.push(format!(
                "{path} imports {d}/*.toml: writing a drop-in there"
            ));
            plan_drop_in(ctx, d, Restart::Containerd)
        }
        _ => plan_config_file(ctx, path),
    }
}

pub(super) fn plan_config_file(mut ctx: Ctx, path: String) -> Result<Plan> {
    let eff = effective_config(
        &path,
        &ctx.input.state.generated_config,
        &ctx.input.state.drop_ins,
    )?;
    let d = &ctx.desired;
    let ok_rt = runtime_matches(eff.runtime(&d.name).as_ref(), &d.binary.path, d.systemd);
    let ok_def =
        !d.set_as_default || eff.default_runtime_name().as_deref() == Some(d.name.as_str());
    if ok_rt.is_ok() && ok_def {
        ctx.reasons.push(format!(
            "{path} already has runtime `{}` as intended",
            d.name
        ));
        return Ok(ctx.finish(
            Some(Method::ConfigFile),
            Vec::new(),
            Restart::Containerd,
            None,
        ));
    }
    let v = ctx.generated.version();
    let mut doc = ctx.generated.document().clone();
    if ctx.generated.declared_version().is_none() && doc.as_table().is_empty() {
        doc.insert("version", toml_edit::value(v));
    }
    let rt = ctx.generated.runtime_path(&d.name);
    upsert_runtime(&mut doc, &rt, &d.binary.path, d.systemd, &path)?;
    if d.set_as_default {
        let ct = containerd_table_path(v);
        let bad = || Error::InvalidContainerdConfig {
            path: path.clone(),
            reason: format!("`{}` is not a table", ct.join(".")),
        };
        let t = ensure_table(doc.as_table_mut(), &ct).ok_or_else(bad)?;
        set_value(t, "default_runtime_name", Value::from(d.name.as_str()));
        if let Some(Item::Table(t)) = doc
            .get_mut("plugins")
            .and_then(|p| p.get_mut(cri_runtime_plugin(v)))
            .and_then(|p| p.get_mut("containerd"))
            && t.is_implicit()
        {
            t.set_implicit(false);
            t.set_position(None);
        }
    }
    // New tables go after the existing text, which stays as it was.
    let mut next = max_position(doc.as_table()) + 1;
    place_unpositioned_last(doc.as_table_mut(), &mut next);
    let new = doc.to_string();
    ContainerdConfig::parse(&path, &new)?;
    ctx.reasons.push(format!(
        "editing {path} in place (no mergeable drop-in dir): runtime `{}` with runtime_type = \"{RUNC_V2}\"",
        d.name
    ));
    let change = FileChange {
        path: path.clone(),
        old: Some(ctx.input.state.generated_config.clone()),
        new: Some(new),
        mode: FILE_MODE,
    };
    Ok(ctx.finish(
        Some(Method::ConfigFile),
        vec![change],
        Restart::Containerd,
        None,
    ))
}
