//! TOML text the planner writes (runtime tables in the style k3s renders
//! them) and in-place edits of `toml_edit` documents.

use super::*;

/// TOML basic string.
pub(super) fn toml_str(s: &str) -> String {
    Value::from(s).to_string().trim().to_owned()
}

pub(super) fn quote_key(version: i64, k: &str) -> String {
    if version >= 3 {
        format!("'{k}'")
    } else {
        format!("\"{k}\"")
    }
}

pub(super) fn cri_header(version: i64) -> String {
    if version <= 1 {
        "plugins.cri".into()
    } else {
        format!(
            "plugins.{}",
            quote_key(version, cri_runtime_plugin(version))
        )
    }
}

/// The runtime tables, in the style k3s renders them (k3s@2a1e2e8cf:pkg/agent/templates/templates_linux.go).
pub(super) fn runtime_snippet(
    version: i64,
    name: &str,
    binary: &str,
    systemd: Option<bool>,
) -> String {
    let t = format!(
        "{}.containerd.runtimes.{}",
        cri_header(version),
        quote_key(version, name)
    );
    let mut s = format!(
        "[{t}]\n  runtime_type = \"{RUNC_V2}\"\n\n[{t}.options]\n  BinaryName = {}\n",
        toml_str(binary)
    );
    if let Some(v) = systemd {
        s.push_str(&format!("  SystemdCgroup = {v}\n"));
    }
    s
}

pub(super) fn default_snippet(version: i64, name: &str) -> String {
    format!(
        "[{}.containerd]\n  default_runtime_name = {}\n",
        cri_header(version),
        toml_str(name)
    )
}

pub(super) fn set_value(t: &mut dyn TableLike, key: &str, v: Value) -> bool {
    if let Some(item) = t.get_mut(key)
        && let Some(old) = item.as_value_mut()
    {
        if old.to_string().trim() == v.to_string().trim() {
            return false;
        }
        let decor = old.decor().clone();
        *old = v;
        *old.decor_mut() = decor;
        return true;
    }
    t.insert(key, Item::Value(v));
    true
}

pub(super) fn table_like_at_mut<'a>(
    root: &'a mut Table,
    path: &[&str],
) -> Option<&'a mut dyn TableLike> {
    let mut cur: &mut dyn TableLike = root;
    for k in path {
        cur = cur.get_mut(k)?.as_table_like_mut()?;
    }
    Some(cur)
}

/// Get or create the table at `path` (creating implicit parents); `None` if
/// something on the way is not a table.
pub(super) fn ensure_table<'a>(
    root: &'a mut Table,
    path: &[&str],
) -> Option<&'a mut dyn TableLike> {
    let mut cur: &mut dyn TableLike = root;
    for (i, k) in path.iter().enumerate() {
        if cur.get(k).is_none() {
            let mut t = Table::new();
            t.set_implicit(i + 1 < path.len());
            cur.insert(k, Item::Table(t));
        }
        cur = cur.get_mut(k)?.as_table_like_mut()?;
    }
    Some(cur)
}

/// Make the runtime table at `rt` in `doc` what we want; true if changed.
pub(super) fn upsert_runtime(
    doc: &mut DocumentMut,
    rt: &[&str],
    binary: &str,
    systemd: Option<bool>,
    path: &str,
) -> Result<bool> {
    let bad = || Error::InvalidContainerdConfig {
        path: path.to_owned(),
        reason: format!("`{}` is not a table", rt.join(".")),
    };
    let t = ensure_table(doc.as_table_mut(), rt).ok_or_else(bad)?;
    let mut changed = set_value(t, "runtime_type", Value::from(RUNC_V2));
    if t.get("options").is_none() {
        t.insert("options", Item::Table(Table::new()));
        changed = true;
    }
    let o = t
        .get_mut("options")
        .and_then(Item::as_table_like_mut)
        .ok_or_else(bad)?;
    changed |= set_value(o, "BinaryName", Value::from(binary));
    if let Some(s) = systemd {
        changed |= set_value(o, "SystemdCgroup", Value::from(s));
    }
    Ok(changed)
}

pub(super) fn max_position(t: &Table) -> isize {
    t.iter()
        .filter_map(|(_, i)| match i {
            Item::Table(sub) => Some(sub.position().unwrap_or(0).max(max_position(sub))),
            Item::ArrayOfTables(a) => a
                .iter()
                .map(|sub| sub.position().unwrap_or(0).max(max_position(sub)))
                .max(),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

pub(super) fn place_unpositioned_last(t: &mut Table, next: &mut isize) {
    for (_, item) in t.iter_mut() {
        if let Item::Table(sub) = item {
            if sub.position().is_none() {
                sub.set_position(Some(*next));
                *next += 1;
            }
            place_unpositioned_last(sub, next);
        }
    }
}
