//! The repair of a base template that redeclares what RKE2's base template
//! renders ([`crate::containerd::redeclared`]): its `config.toml` declares
//! a table twice and containerd does not start. Planned before the runtime,
//! in the same plan (one diff, one backup, one restart, one confirmation).
//!
//! Each overlapping key of the template goes where it can take effect:
//! - under a table the base does not declare: it stays in the template,
//!   under that table's own header;
//! - under a table the base declares: into [`TEMPLATE_DROP_IN_NAME`] in the
//!   drop-in dir the generated config imports, where containerd ≥ 2.0
//!   merges it over the base (containerd PR #9982);
//! - there, without an imported dir, or on containerd 1.x (which replaces a
//!   whole plugin table from a drop-in): a key the base renders with the same
//!   value is dropped, any other is refused with the reason.
//!
//! The rest of the template is kept as written.

use super::*;
use crate::containerd::model::parse_toml;
use crate::containerd::redeclared::{
    self, BaseEntry, BaseTables, Inputs, Overlap, OverlapKind, display_path, value_text,
};
use crate::containerd::template::{BaseRender, template_in_use as template_file_in_use};
use crate::patch::confirm::KeptKey;

/// One key-value of the template, flattened: its table, key and value.
#[derive(Debug, Clone)]
struct Leaf {
    table: Vec<String>,
    key: String,
    value: Value,
}

impl Leaf {
    fn path(&self) -> Vec<String> {
        let mut p = self.table.clone();
        p.push(self.key.clone());
        p
    }
    fn display(&self) -> String {
        format!(
            "{} = {}",
            display_path(&self.path()),
            value_text(&self.value)
        )
    }
}

/// What the repair writes and what the runtime is then planned on.
pub(super) struct Repair {
    version: i64,
    path: String,
    old: String,
    new: String,
    base: BaseRender,
    drop_in: Option<FileChange>,
    drop_in_dir: Option<String>,
    reasons: Vec<String>,
    kept: Vec<KeptKey>,
    /// Restart even when nothing is written (config.toml is stale).
    restart: bool,
}

fn flatten(table: &[String], key: &str, item: &Item, out: &mut Vec<Leaf>) {
    let mut path = table.to_vec();
    path.push(key.to_owned());
    match item {
        Item::Value(Value::InlineTable(t)) => {
            for (k, v) in t.iter() {
                flatten(&path, k, &Item::Value(v.clone()), out);
            }
        }
        Item::Value(v) => {
            let mut v = v.clone();
            v.decor_mut().clear();
            out.push(Leaf {
                table: table.to_vec(),
                key: key.to_owned(),
                value: v,
            })
        }
        Item::Table(t) => {
            for (k, i) in t.iter() {
                flatten(&path, k, i, out);
            }
        }
        _ => {}
    }
}

fn table_at_mut<'a>(root: &'a mut Table, path: &[String]) -> Option<&'a mut Table> {
    let mut cur = root;
    for k in path {
        cur = cur.get_mut(k)?.as_table_mut()?;
    }
    Some(cur)
}

/// Removes an overlap's part from the template's document; returns its leaves.
fn take(doc: &mut DocumentMut, o: &Overlap) -> Vec<Leaf> {
    let mut out = Vec::new();
    let Some(t) = table_at_mut(doc.as_table_mut(), &o.table) else {
        return out;
    };
    match o.kind {
        OverlapKind::Table => {
            let direct: Vec<String> = t
                .iter()
                .filter(|(_, i)| match i {
                    Item::Value(_) => true,
                    Item::Table(s) => s.is_dotted(),
                    _ => false,
                })
                .map(|(k, _)| k.to_owned())
                .collect();
            for k in direct {
                if let Some(i) = t.remove(&k) {
                    flatten(&o.table, &k, &i, &mut out);
                }
            }
            t.set_implicit(true);
        }
        OverlapKind::Key => {
            let Some((last, init)) = o.key.split_last() else {
                return out;
            };
            let mut prefix = o.table.clone();
            prefix.extend(init.iter().cloned());
            if let Some(holder) = table_at_mut(t, init)
                && let Some(i) = holder.remove(last)
            {
                flatten(&prefix, last, &i, &mut out);
            }
            prune_dotted(t);
            // A header left with no keys of its own is not written.
            if t.iter()
                .all(|(_, i)| matches!(i, Item::Table(s) if !s.is_dotted()))
            {
                t.set_implicit(true);
            }
        }
    }
    out
}

/// Drops dotted tables left empty by [`take`].
fn prune_dotted(t: &mut Table) {
    let keys: Vec<String> = t.iter().map(|(k, _)| k.to_owned()).collect();
    for k in keys {
        if let Some(Item::Table(s)) = t.get_mut(&k) {
            if !s.is_dotted() {
                continue;
            }
            prune_dotted(s);
            if s.is_empty() {
                t.remove(&k);
            }
        }
    }
}

/// Puts leaves under their tables in `doc`, each table with its own header.
fn place(doc: &mut DocumentMut, leaves: &[Leaf], path: &str) -> Result<()> {
    // New tables go after every table the document has (toml_edit writes
    // tables in position order).
    let mut next = isize::MAX / 2;
    for l in leaves {
        let mut cur = doc.as_table_mut();
        for (i, k) in l.table.iter().enumerate() {
            if cur.get(k).is_none() {
                let mut t = Table::new();
                t.set_implicit(true);
                cur.insert(k, Item::Table(t));
            }
            cur = cur.get_mut(k).and_then(Item::as_table_mut).ok_or_else(|| {
                Error::InvalidContainerdConfig {
                    path: path.to_owned(),
                    reason: format!("`{}` is not a table", display_path(&l.table[..=i])),
                }
            })?;
        }
        if cur.is_implicit() || cur.position().is_none() {
            cur.set_implicit(false);
            cur.set_position(Some(next));
            next += 1;
        }
        if cur.contains_key(&l.key) {
            return Err(Error::InvalidContainerdConfig {
                path: path.to_owned(),
                reason: format!("{} is set twice", display_path(&l.path())),
            });
        }
        cur.insert(&l.key, Item::Value(l.value.clone()));
        if let Some(mut k) = cur.key_mut(&l.key) {
            // Indented like the tables k3s renders.
            k.leaf_decor_mut().set_prefix("  ");
        }
    }
    Ok(())
}

/// The repair, when the template in use redeclares what its base renders;
/// `None` when it does not (or when the base render cannot be told apart).
pub(super) fn repair(input: &PlanInput, paths: &Rke2Paths) -> Result<Option<Repair>> {
    let s = &input.state;
    let c = input.caps.containerd;
    let Some((version, text)) =
        template_file_in_use(c.major, s.template_v3.as_deref(), s.template_v2.as_deref())
    else {
        return Ok(None);
    };
    let path = paths.template(version);
    let a = TemplateAnalysis::analyze(&path, text);
    let Some(base) = a.base_render_for(&s.generated_config, version) else {
        return Ok(None);
    };
    let config_path = paths.config_toml();
    let Ok(tables) = BaseTables::parse(&config_path, &base.text) else {
        return Ok(None);
    };
    let overlaps = redeclared::find(&Inputs {
        template: &a,
        base: &base,
        config_path: &config_path,
        containerd: c,
    })?;
    if overlaps.is_empty() {
        // A config.toml rendered from an older template that does not load,
        // while the template renders one that does (a repair written, RKE2
        // not restarted yet): plan on what the template renders now.
        if base.is_current() || ContainerdConfig::parse(&config_path, &s.generated_config).is_ok() {
            return Ok(None);
        }
        return Ok(Some(Repair {
            version,
            path,
            old: text.to_owned(),
            new: text.to_owned(),
            base,
            drop_in: None,
            drop_in_dir: None,
            reasons: vec![format!(
                "{config_path} does not parse, but it was rendered before {} last changed, and the template renders a config containerd loads: planning on that; the restart renders it",
                paths.template(version)
            )],
            kept: Vec::new(),
            restart: true,
        }));
    }
    let mut reasons: Vec<String> = overlaps.iter().map(|o| o.describe(&path, c)).collect();
    if !base.is_current() {
        reasons.push(format!(
            "{config_path} was rendered before {path} last changed: the base render is read from the tables k3s' base templates declare in it"
        ));
    }
    let root = ContainerdConfig::parse(&config_path, &base.text)?;
    let drop_in_dir =
        imported_drop_in_dir(&root, false).filter(|_| matrix::containerd_merges_drop_ins(c));
    let mut doc = a.appended_document()?;
    let mut leaves = Vec::new();
    for o in &overlaps {
        leaves.extend(take(&mut doc, o));
    }
    let (mut to_template, mut to_drop_in, mut dropped) = (Vec::new(), Vec::new(), Vec::new());
    let mut refused = Vec::new();
    for l in leaves {
        let full = l.path();
        let at = tables.get(&full);
        if !tables.declares(&l.table) && at.is_none() {
            to_template.push(l);
            continue;
        }
        let is_table = matches!(
            at,
            Some(BaseEntry::Header { .. } | BaseEntry::Implicit | BaseEntry::Other)
        );
        if is_table {
            refused.push(format!(
                "{} is a value where the base renders the table [{}]",
                l.display(),
                display_path(&full)
            ));
        } else if drop_in_dir.is_some() {
            to_drop_in.push(l);
        } else if at == Some(&BaseEntry::Value(value_text(&l.value))) {
            dropped.push(l);
        } else {
            refused.push(l.display());
        }
    }
    if !refused.is_empty() {
        let why = if !matrix::containerd_merges_drop_ins(c) {
            format!(
                "containerd {} replaces a whole plugin table with a drop-in's instead of merging the two (containerd PR #9982 made containerd merge them), so these keys cannot move out of the template",
                containerd_line(c)
            )
        } else {
            format!(
                "{config_path} imports no drop-in dir (RKE2 renders the imports line from {}), so these keys cannot move out of the template",
                matrix::feature(Rke2Feature::DropInImports).release_names(", ")
            )
        };
        return Err(Error::InvalidContainerdConfig {
            path: path.clone(),
            reason: format!(
                "{}; the base template already renders their tables and TOML lets no table be declared twice. {why}: {}. Remove them from {path} (or set them through RKE2's own options), then run again",
                reasons.join("; "),
                refused.join(", ")
            ),
        });
    }
    place(&mut doc, &to_template, &path)?;
    let mut new = a.prefix().to_owned();
    if !new.ends_with('\n') {
        new.push('\n');
    }
    let body = doc.to_string();
    if !body.trim().is_empty() && !body.starts_with('\n') {
        new.push('\n');
    }
    new.push_str(&body);
    let after = TemplateAnalysis::analyze(&path, &new);
    let left = redeclared::find(&Inputs {
        template: &after,
        base: &base,
        config_path: &config_path,
        containerd: c,
    })?;
    if let Some(o) = left.first() {
        return Err(Error::InvalidContainerdConfig {
            path: path.clone(),
            reason: format!(
                "the repaired template would still redeclare a base table: {}",
                o.describe(&path, c)
            ),
        });
    }
    for l in &to_template {
        reasons.push(format!(
            "{} stays in {path} under its own table, which the base does not declare",
            l.display()
        ));
    }
    for l in &dropped {
        reasons.push(format!(
            "{} dropped from {path}: the base template already renders it with that value",
            l.display()
        ));
    }
    let mut drop_in = None;
    if let Some(dir) = &drop_in_dir
        && !to_drop_in.is_empty()
    {
        let dpath = format!("{dir}/{TEMPLATE_DROP_IN_NAME}");
        let old = s.drop_ins.get(TEMPLATE_DROP_IN_NAME).cloned();
        let mut d = match &old {
            Some(t) => parse_toml(&dpath, t, 0)?,
            None => {
                let d: DocumentMut = format!(
                    "# Written by kubectl-gpu (patch-containerd): keys moved out of {path},\n# whose tables RKE2's base template already declares (a table declared twice\n# stops containerd). containerd merges this file over config.toml.\nversion = {}\n",
                    root.version()
                )
                .parse()
                .map_err(|e: toml_edit::TomlError| Error::InvalidContainerdConfig {
                    path: dpath.clone(),
                    reason: e.to_string(),
                })?;
                d
            }
        };
        for l in &to_drop_in {
            if let Some(t) = table_at_mut(d.as_table_mut(), &l.table) {
                t.remove(&l.key);
            }
        }
        place(&mut d, &to_drop_in, &dpath)?;
        reasons.push(format!(
            "moving {} into {dpath}: containerd {} merges imported drop-ins over the base (containerd PR #9982)",
            to_drop_in.iter().map(Leaf::display).collect::<Vec<_>>().join(", "),
            containerd_line(c)
        ));
        drop_in = Some(FileChange {
            path: dpath,
            old,
            new: Some(d.to_string()),
            mode: FILE_MODE,
        });
    }
    let kept = to_template
        .iter()
        .chain(&to_drop_in)
        .map(|l| KeptKey {
            path: l.path(),
            value: value_text(&l.value),
        })
        .collect();
    Ok(Some(Repair {
        version,
        path,
        old: text.to_owned(),
        new,
        base,
        drop_in,
        drop_in_dir,
        reasons,
        kept,
        restart: true,
    }))
}

/// Plans the runtime over the repaired node (its template, the new drop-in
/// and the config RKE2 renders from them), then joins the two plans: each
/// file's change from what is on the node now to what both write.
pub(super) fn plan_repaired(input: &PlanInput, r: Repair) -> Result<Plan> {
    let mut state = input.state.clone();
    if r.version >= 3 {
        state.template_v3 = Some(r.new.clone());
    } else {
        state.template_v2 = Some(r.new.clone());
    }
    if let Some(d) = &r.drop_in {
        state.drop_ins.insert(
            TEMPLATE_DROP_IN_NAME.into(),
            d.new.clone().unwrap_or_default(),
        );
    }
    state.generated_config = TemplateAnalysis::analyze(&r.path, &r.new)
        .render_over(&r.base.text)
        .text;
    let repaired = PlanInput {
        state,
        ..input.clone()
    };
    let inner = plan_runtime(&repaired)?;
    let runtime_done = inner.changes.is_empty();
    // RKE2's default-runtime changes the base render itself.
    let default_runtime_render = match inner.method {
        Some(Method::DefaultRuntime) if !runtime_done => {
            crate::patch::preview_generated(&inner, &repaired.state)?
        }
        _ => None,
    };
    let mut changes = vec![FileChange {
        path: r.path.clone(),
        old: Some(r.old.clone()),
        new: Some(r.new.clone()),
        mode: FILE_MODE,
    }];
    changes.extend(r.drop_in.clone());
    for c in inner.changes {
        match changes.iter_mut().find(|x| x.path == c.path) {
            Some(x) => x.new = c.new,
            None => changes.push(c),
        }
    }
    changes.retain(|c| c.old != c.new);
    let template_now = changes
        .iter()
        .find(|c| c.path == r.path)
        .and_then(|c| c.new.clone())
        .unwrap_or_else(|| r.old.clone());
    let rendered = default_runtime_render.unwrap_or_else(|| {
        TemplateAnalysis::analyze(&r.path, &template_now)
            .render_over(&r.base.text)
            .text
    });
    let mut expectation = inner.expectation;
    expectation.kept = r.kept;
    if expectation.drop_in_dir.is_none() {
        expectation.drop_in_dir = r.drop_in_dir;
    }
    let mut reasons = r.reasons;
    reasons.extend(inner.reasons.into_iter().filter(|x| {
        // Said of the repaired node, these would read as "nothing to do".
        !(runtime_done && (x.starts_with(NOTHING_TO_DO) || x.starts_with(NOTHING_TO_WRITE)))
    }));
    if runtime_done {
        reasons.push(format!(
            "runtime `{}` needs nothing beyond the template",
            input.options.runtime_name
        ));
    }
    Ok(Plan {
        method: inner.method.or(Some(Method::Template)),
        restart: (r.restart || !changes.is_empty())
            .then_some(Restart::Rke2)
            .or(inner.restart),
        changes,
        reasons,
        expectation,
        rendered: Some(rendered),
        staged_for: None,
    })
}
