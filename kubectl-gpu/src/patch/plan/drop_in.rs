//! Method (a): `99-nvidia.toml` in the drop-in dir the generated config
//! imports (k3s PR #13680).

use super::*;

pub(super) fn drop_in_available(ctx: &Ctx) -> std::result::Result<String, String> {
    let Some(dir) = imported_drop_in_dir(&ctx.generated, false) else {
        return Err(format!(
            "{} has no `imports` of config-v3.toml.d/*.toml or config.toml.d/*.toml (RKE2 renders it from {})",
            ctx.generated.path(),
            matrix::feature(Rke2Feature::DropInImports).release_names(", ")
        ));
    };
    if let Some(t) = &ctx.in_use
        && t.analysis
            .as_ref()
            .is_some_and(|a| a.kind == TemplateKind::Static)
    {
        return Err(format!(
            "{} is a static template being replaced; its imports line is frozen",
            t.path
        ));
    }
    if !matrix::containerd_merges_drop_ins(ctx.input.caps.containerd) {
        return Err(format!(
            "containerd {} replaces imported plugin tables instead of merging them",
            containerd_line(ctx.input.caps.containerd)
        ));
    }
    Ok(dir)
}

pub(super) fn drop_in_content(version: i64, d: &Desired) -> String {
    let mut s = format!(
        "# Written by kubectl-gpu (patch-containerd): NVIDIA runtime `{}`.\n# Imported by the generated config.toml; remove this file and restart RKE2 to undo.\nversion = {version}\n\n",
        d.name
    );
    if d.set_as_default {
        s.push_str(&default_snippet(version, &d.name));
        s.push('\n');
    }
    s.push_str(&runtime_snippet(
        version,
        &d.name,
        &d.binary.path,
        d.systemd,
    ));
    s
}

pub(super) fn plan_drop_in(mut ctx: Ctx, dir: String, restart: Restart) -> Result<Plan> {
    let drop_ins = &ctx.input.state.drop_ins;
    let eff = effective_config(
        ctx.generated.path(),
        &ctx.input.state.generated_config,
        drop_ins,
    )?;
    // Mirror runc's options as containerd will see them.
    if let Some(s) = eff.runtime("runc").and_then(|r| r.systemd_cgroup) {
        ctx.desired.systemd = Some(s);
    }
    let d = &ctx.desired;
    let ok_runtime = runtime_matches(eff.runtime(&d.name).as_ref(), &d.binary.path, d.systemd);
    let ok_default =
        !d.set_as_default || eff.default_runtime_name().as_deref() == Some(d.name.as_str());
    if ok_runtime.is_ok() && ok_default {
        ctx.reasons.push(format!(
            "{} merged with {dir}/*.toml already has runtime `{}` as intended",
            ctx.generated.path(),
            d.name
        ));
        return Ok(ctx.finish(Some(Method::DropIn), Vec::new(), restart, Some(dir)));
    }
    let version = ctx.generated.version();
    let content = drop_in_content(version, d);
    let mut after = drop_ins.clone();
    after.insert(DROP_IN_NAME.into(), content.clone());
    let eff2 = effective_config(
        ctx.generated.path(),
        &ctx.input.state.generated_config,
        &after,
    )?;
    let later = drop_ins
        .keys()
        .filter(|k| k.as_str() > DROP_IN_NAME && k.ends_with(".toml"))
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if runtime_matches(eff2.runtime(&d.name).as_ref(), &d.binary.path, d.systemd).is_err()
        || (d.set_as_default && eff2.default_runtime_name().as_deref() != Some(d.name.as_str()))
    {
        return Err(Error::RuntimeConflict {
            path: format!("{dir}/{DROP_IN_NAME}"),
            reason: format!(
                "drop-ins read after {DROP_IN_NAME} ({later}) override runtime `{}` or the default runtime; fix or remove them",
                d.name
            ),
        });
    }
    ctx.reasons.push(format!(
        "drop-in version = {version}, the root config's version (never above it)"
    ));
    if let Err(why) = ok_runtime {
        ctx.reasons.push(format!("runtime `{}`: {why}", d.name));
    }
    let path = format!("{dir}/{DROP_IN_NAME}");
    let change = FileChange {
        old: drop_ins.get(DROP_IN_NAME).cloned(),
        path,
        new: Some(content),
        mode: FILE_MODE,
    };
    Ok(ctx.finish(Some(Method::DropIn), vec![change], restart, Some(dir)))
}
