//! Method (c): a `{{ template "base" . }}` user template that never
//! redeclares a table the base renders (k3s PR #7991).

use super::*;

/// Which user template RKE2 renders from (config-v3.toml.tmpl first, on
/// containerd 2 RKE2 builds; else config.toml.tmpl).
pub(super) fn template_in_use(
    input: &PlanInput,
    paths: &Rke2Paths,
    reasons: &mut Vec<String>,
) -> Option<TemplateChoice> {
    let s = &input.state;
    let mk = |version: i64, text: &String| {
        let path = paths.template(version);
        TemplateChoice {
            analysis: Some(TemplateAnalysis::analyze(&path, text)),
            path,
            version,
            existing: Some(text.clone()),
        }
    };
    if input.caps.containerd.major >= 2 {
        if let Some(t) = &s.template_v3 {
            if s.template_v2.is_some() {
                reasons.push(format!(
                    "{} is ignored because {} exists",
                    paths.template(2),
                    paths.template(3)
                ));
            }
            return Some(mk(3, t));
        }
    } else if s.template_v3.is_some() {
        reasons.push(format!(
            "{} is ignored: RKE2 with containerd {} only reads config.toml.tmpl",
            paths.template(3),
            containerd_line(input.caps.containerd)
        ));
    }
    s.template_v2.as_ref().map(|t| mk(2, t))
}

pub(super) fn template_available(ctx: &Ctx) -> std::result::Result<TemplateChoice, Unavailable> {
    if !ctx.input.caps.base_templates {
        return Err(Unavailable::Why(format!(
            "this RKE2 predates base templates (`{{{{ template \"base\" . }}}}`, {})",
            matrix::feature(Rke2Feature::BaseTemplate).line_versions("/")
        )));
    }
    if let Some(t) = &ctx.in_use {
        if let Some(a) = &t.analysis
            && a.kind == TemplateKind::Other
        {
            return Err(Unavailable::Fatal(Error::UnsupportedTemplate {
                path: t.path.clone(),
                reason: a.reason.clone(),
            }));
        }
        return Ok(TemplateChoice {
            path: t.path.clone(),
            version: t.version,
            existing: t.existing.clone(),
            analysis: t.analysis.clone(),
        });
    }
    let v = ctx.generated.version();
    if v < 2 {
        return Err(Unavailable::Why(format!(
            "{} is schema version 1, which no base template renders",
            ctx.generated.path()
        )));
    }
    Ok(TemplateChoice {
        path: ctx.paths.template(v),
        version: v,
        existing: None,
        analysis: None,
    })
}

pub(super) fn plan_template(mut ctx: Ctx, t: TemplateChoice) -> Result<Plan> {
    let v = t.version;
    let cri = cri_runtime_plugin(v);
    let d = &ctx.desired;
    let (prefix, mut app) = match &t.analysis {
        Some(a) if a.kind == TemplateKind::Base => (a.prefix().to_owned(), a.appended_document()?),
        _ => ("{{ template \"base\" . }}\n".to_owned(), DocumentMut::new()),
    };
    let rt_path = ["plugins", cri, "containerd", "runtimes", d.name.as_str()];
    let user_declares_rt = item_at(app.as_table(), &rt_path).is_some();
    let detected = rke2_detects(&d.name, &ctx.input.state);
    // The generated config shows what RKE2 renders only when the template in
    // use extends the base; a static template's copy says nothing about it.
    let generated_reflects_base = !matches!(
        t.analysis.as_ref().map(|a| a.kind),
        Some(TemplateKind::Static)
    );
    let base_renders = detected.is_some()
        || (standard_runtime_binary(&d.name).is_some()
            && !user_declares_rt
            && generated_reflects_base
            && ctx.generated.runtime(&d.name).is_some());
    let mut snippet = String::new();
    let mut edited = false;
    let mut notes = Vec::new();
    if base_renders {
        let rendered_bin = detected
            .clone()
            .or_else(|| ctx.generated.runtime(&d.name).and_then(|r| r.binary_name));
        if user_declares_rt {
            return Err(Error::RuntimeConflict {
                path: t.path.clone(),
                reason: format!(
                    "it declares runtime `{}`, which RKE2 also renders (it detects {}): containerd fails with `table {} already exists`; remove that table from the template",
                    d.name,
                    rendered_bin.as_deref().unwrap_or("the binary"),
                    d.name
                ),
            });
        }
        if ctx.input.options.binary_path.is_some()
            && rendered_bin.as_deref() != Some(d.binary.path.as_str())
        {
            return Err(Error::RuntimeConflict {
                path: t.path.clone(),
                reason: format!(
                    "RKE2 renders runtime `{}` itself with BinaryName {}; a template cannot redeclare it, so {} needs another runtime name",
                    d.name,
                    rendered_bin.as_deref().unwrap_or("?"),
                    d.binary.path
                ),
            });
        }
        notes.push(format!(
            "RKE2 renders runtime `{}` itself (detected binary {}): not redeclared in the template",
            d.name,
            rendered_bin.as_deref().unwrap_or("?")
        ));
    } else if user_declares_rt {
        edited |= upsert_runtime(&mut app, &rt_path, &d.binary.path, d.systemd, &t.path)?;
        notes.push(format!(
            "the template already declares runtime `{}`: updated in place",
            d.name
        ));
    } else {
        snippet.push_str(&runtime_snippet(v, &d.name, &d.binary.path, d.systemd));
        notes.push(format!(
            "appending [{}.containerd.runtimes.{}] with runtime_type = \"{RUNC_V2}\"",
            cri_header(v),
            quote_key(v, &d.name)
        ));
    }
    if d.set_as_default {
        match &ctx.rke2_default {
            Some((val, file)) if *val == d.name => {
                notes.push(format!(
                    "{file} sets default-runtime: {val}; RKE2 renders default_runtime_name"
                ));
            }
            Some((val, file)) => {
                return Err(Error::RuntimeConflict {
                    path: file.clone(),
                    reason: format!(
                        "it sets default-runtime: {val}, so the base template already renders default_runtime_name = \"{val}\"; change it to `{}` or remove it",
                        d.name
                    ),
                });
            }
            None => {
                let ct = containerd_table_path(v);
                if declares_table(app.as_table(), &ct) {
                    let tl = table_like_at_mut(app.as_table_mut(), &ct).ok_or_else(|| {
                        Error::InvalidContainerdConfig {
                            path: t.path.clone(),
                            reason: format!("`{}` is not a table", ct.join(".")),
                        }
                    })?;
                    edited |= set_value(tl, "default_runtime_name", Value::from(d.name.as_str()));
                } else if v == 2
                    || (declares_table(ctx.generated.root(), &ct)
                        && !header_available(app.as_table(), &ct))
                {
                    return Err(Error::MethodUnsupported {
                        method: Method::Template.to_string(),
                        path: t.path.clone(),
                        reason: format!(
                            "the version {v} base template already declares [{}.containerd] (it renders the snapshotter there), so default_runtime_name cannot be appended; use RKE2's default-runtime ({}+) once RKE2 has detected runtime `{}`",
                            cri_header(v),
                            matrix::feature(Rke2Feature::DefaultRuntimeFlag).line_versions("/"),
                            d.name
                        ),
                    });
                } else {
                    if !snippet.is_empty() {
                        snippet.push('\n');
                    }
                    snippet.push_str(&default_snippet(v, &d.name));
                    notes.push("appending default_runtime_name to the CRI containerd table".into());
                }
            }
        }
    }
    ctx.reasons.extend(notes);
    let mut appended = app.to_string();
    if !snippet.is_empty() {
        if !appended.is_empty() && !appended.ends_with('\n') {
            appended.push('\n');
        }
        if !appended.trim().is_empty() {
            appended.push('\n');
        }
        appended.push_str(&snippet);
    }
    let mut new_text = prefix;
    if !new_text.ends_with('\n') {
        new_text.push('\n');
    }
    if !appended.is_empty() && !appended.starts_with('\n') && t.analysis.is_none() {
        new_text.push('\n');
    }
    new_text.push_str(&appended);
    // The TOML part must still parse and declare nothing twice.
    TemplateAnalysis::analyze(&t.path, &new_text).appended_document()?;
    let static_replace = t
        .analysis
        .as_ref()
        .is_some_and(|a| a.kind == TemplateKind::Static);
    let nothing_added = snippet.is_empty() && !edited;
    let changes =
        if t.existing.as_deref() == Some(new_text.as_str()) || (nothing_added && !static_replace) {
            Vec::new()
        } else {
            vec![FileChange {
                path: t.path.clone(),
                old: t.existing.clone(),
                new: Some(new_text),
                mode: FILE_MODE,
            }]
        };
    Ok(ctx.finish(Some(Method::Template), changes, Restart::Rke2, None))
}
