//! The effective config containerd loads: the root config with its imported
//! drop-ins merged in (containerd v2.0.0 and later merge plugin tables,
//! containerd PR #9982).

use std::collections::BTreeMap;

use toml_edit::{Item, TableLike};

use crate::containerd::model::ContainerdConfig;
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
