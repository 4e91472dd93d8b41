//! The CRI plugin's config migration between schema 2 and schema 3, as
//! containerd 2.x performs it when it loads a version 2 config (containerd
//! v2.x plugins/cri/runtime/plugin.go and plugins/cri/images/plugin.go
//! `configMigration`, plugins/cri/cri.go): where each key of
//! `plugins."io.containerd.grpc.v1.cri"` lives in a version 3 config, and
//! back. `patch-containerd --for-rke2` uses it to stage a
//! `config-v3.toml.tmpl` from a `config.toml.tmpl` before RKE2 moves to
//! containerd 2, and a drop-in at a lower root's version.
//!
//! The mapping, per key of the v2 CRI table: `sandbox_image` →
//! `images.pinned_images.sandbox`; `registry`, `image_decryption`,
//! `max_concurrent_downloads`, `image_pull_progress_timeout`,
//! `image_pull_with_sync_fs`, `stats_collect_period` → `images`;
//! `containerd.snapshotter`, `containerd.disable_snapshot_annotations`,
//! `containerd.discard_unpacked_layers` → `images`; `cni.bin_dir` →
//! `runtime.cni.bin_dirs = [dir]`; the streaming server keys stay in the
//! CRI table; `enable_cdi` is dropped (CDI is always on in containerd 2);
//! everything else (`containerd.*`, `cni.*`, the runtime options) →
//! `runtime`. (containerd moves the `containerd.snapshotter` keys only in a
//! config that has a `containerd.runtimes` table: images/plugin.go returns
//! before them otherwise. RKE2's v2 base always renders runc, so a rendered
//! config always has one.) Other plugins and top-level keys are the same in both
//! schemas. Only plain key/value tables move: a key this module cannot
//! place (`containerd.runtimes.X.snapshot`, which containerd turns into a
//! per-platform `runtime_platform` entry) is reported, not guessed.

use toml_edit::{DocumentMut, Item, Table, Value};

/// The CRI plugin's table in schema 2.
pub const CRI_V2: &str = "io.containerd.grpc.v1.cri";
/// The CRI runtime plugin's table in schema 3.
pub const CRI_RUNTIME: &str = "io.containerd.cri.v1.runtime";
/// The CRI images plugin's table in schema 3.
pub const CRI_IMAGES: &str = "io.containerd.cri.v1.images";

const IMAGE_KEYS: &[&str] = &[
    "registry",
    "image_decryption",
    "max_concurrent_downloads",
    "image_pull_progress_timeout",
    "image_pull_with_sync_fs",
    "stats_collect_period",
];
const SERVER_KEYS: &[&str] = &[
    "disable_tcp_service",
    "stream_server_address",
    "stream_server_port",
    "stream_idle_timeout",
    "enable_tls_streaming",
    "x509_key_pair_streaming",
];
const SNAPSHOT_KEYS: &[&str] = &[
    "snapshotter",
    "disable_snapshot_annotations",
    "discard_unpacked_layers",
];

/// A migrated document and what did not carry over.
#[derive(Debug, Clone)]
pub struct Migrated {
    pub doc: DocumentMut,
    /// Keys dropped on purpose (e.g. `enable_cdi` in schema 3), with why.
    pub dropped: Vec<String>,
    /// Keys that cannot be placed: the migration is refused when any.
    pub unplaced: Vec<String>,
}

/// One leaf: its key path and value.
type Leaf = (Vec<String>, Value);

fn leaves(t: &Table, prefix: &mut Vec<String>, out: &mut Vec<Leaf>, unplaced: &mut Vec<String>) {
    for (k, item) in t.iter() {
        prefix.push(k.to_owned());
        match item {
            Item::Value(Value::InlineTable(it)) => {
                let mut tbl = it.clone().into_table();
                tbl.set_implicit(true);
                leaves(&tbl, prefix, out, unplaced);
            }
            Item::Value(v) => out.push((prefix.clone(), v.clone())),
            Item::Table(sub) => leaves(sub, prefix, out, unplaced),
            Item::ArrayOfTables(_) => unplaced.push(prefix.join(".")),
            Item::None => {}
        }
        prefix.pop();
    }
}

fn s(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| (*p).to_owned()).collect()
}

/// Where a leaf of the v2 CRI table (path relative to it) lives in schema 3:
/// `Ok(Some((plugin, path, value)))`, `Ok(None)` dropped, `Err` unplaced.
fn to_v3_home(rel: &[String], v: &Value) -> Result<Option<(String, Vec<String>, Value)>, String> {
    let first = rel.first().map(String::as_str).unwrap_or_default();
    let home = |plugin: &str, path: Vec<String>| Ok(Some((plugin.to_owned(), path, v.clone())));
    match first {
        "sandbox_image" if rel.len() == 1 => home(CRI_IMAGES, s(&["pinned_images", "sandbox"])),
        "enable_cdi" if rel.len() == 1 => Ok(None),
        k if IMAGE_KEYS.contains(&k) => home(CRI_IMAGES, rel.to_vec()),
        k if SERVER_KEYS.contains(&k) => home(CRI_V2, rel.to_vec()),
        "cni" if rel.len() == 2 && rel[1] == "bin_dir" => {
            let mut a = toml_edit::Array::new();
            a.push(v.as_str().unwrap_or_default());
            Ok(Some((
                CRI_RUNTIME.to_owned(),
                s(&["cni", "bin_dirs"]),
                Value::Array(a),
            )))
        }
        "containerd" if rel.len() == 2 && SNAPSHOT_KEYS.contains(&rel[1].as_str()) => {
            home(CRI_IMAGES, vec![rel[1].clone()])
        }
        "containerd" if rel.len() >= 4 && rel[1] == "runtimes" && rel[3] == "snapshot" => {
            Err(format!("{CRI_V2}.{}", rel.join(".")))
        }
        _ => home(CRI_RUNTIME, rel.to_vec()),
    }
}

/// Where a leaf of a schema 3 CRI table lives in schema 2 (the inverse of
/// [`to_v3_home`]); `plugin` is [`CRI_RUNTIME`], [`CRI_IMAGES`] or [`CRI_V2`].
fn to_v2_home(plugin: &str, rel: &[String], v: &Value) -> Result<Vec<String>, String> {
    let first = rel.first().map(String::as_str).unwrap_or_default();
    let unplaced = || Err(format!("{plugin}.{}", rel.join(".")));
    match plugin {
        CRI_IMAGES => match first {
            "pinned_images" if rel.len() == 2 && rel[1] == "sandbox" => Ok(s(&["sandbox_image"])),
            k if SNAPSHOT_KEYS.contains(&k) && rel.len() == 1 => {
                Ok(vec!["containerd".into(), k.to_owned()])
            }
            k if IMAGE_KEYS.contains(&k) => Ok(rel.to_vec()),
            _ => unplaced(),
        },
        CRI_RUNTIME => match first {
            "cni" if rel.len() == 2 && rel[1] == "bin_dirs" => {
                match v.as_array().map(|a| a.iter().collect::<Vec<_>>()) {
                    Some(a) if a.len() == 1 && a[0].is_str() => Ok(s(&["cni", "bin_dir"])),
                    _ => unplaced(),
                }
            }
            k if IMAGE_KEYS.contains(&k) || SERVER_KEYS.contains(&k) || k == "sandbox_image" => {
                unplaced()
            }
            _ => Ok(rel.to_vec()),
        },
        _ if SERVER_KEYS.contains(&first) => Ok(rel.to_vec()),
        _ => unplaced(),
    }
}

/// Inserts `value` at `path` below `root`, creating implicit tables (so
/// only tables that hold keys get a header).
fn insert(root: &mut Table, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut t = root;
    for p in parents {
        if !t.get(p).is_some_and(Item::is_table) {
            let mut n = Table::new();
            n.set_implicit(true);
            t.insert(p, Item::Table(n));
        }
        let Some(next) = t.get_mut(p).and_then(Item::as_table_mut) else {
            return;
        };
        t = next;
    }
    t.insert(last, Item::Value(value.decorated(" ", "")));
    if let Some(mut k) = t.key_mut(last) {
        k.leaf_decor_mut().set_prefix("  ");
    }
}

/// Everything of `doc` but its CRI plugin tables and `version`, then the
/// moved leaves at their homes, then `version = to`.
fn rebuild(
    doc: &DocumentMut,
    cri: &[&str],
    moved: Vec<(String, Vec<String>, Value)>,
    to: i64,
) -> DocumentMut {
    let mut out = DocumentMut::new();
    for (k, item) in doc.as_table().iter() {
        match k {
            "version" => {}
            "plugins" => {
                if let Some(p) = item.as_table() {
                    let mut keep = p.clone();
                    for c in cri {
                        keep.remove(c);
                    }
                    keep.set_implicit(true);
                    out.insert("plugins", Item::Table(keep));
                }
            }
            _ => {
                out.insert(k, item.clone());
            }
        }
    }
    if let Some(key) = doc.as_table().key("version") {
        // The key keeps its decor (the comment lines above it).
        let mut v = Value::from(to);
        if let Some(old) = doc.get("version").and_then(Item::as_value) {
            *v.decor_mut() = old.decor().clone();
        }
        out.insert_formatted(key, Item::Value(v));
        // `version` first, as containerd and k3s write it.
        out.sort_values_by(|a, _, b, _| (b.get() == "version").cmp(&(a.get() == "version")));
    }
    if !moved.is_empty() && !out.contains_key("plugins") {
        let mut p = Table::new();
        p.set_implicit(true);
        out.insert("plugins", Item::Table(p));
    }
    if let Some(plugins) = out.get_mut("plugins").and_then(Item::as_table_mut) {
        for (plugin, path, value) in moved {
            let mut full = vec![plugin];
            full.extend(path);
            insert(plugins, &full, value);
        }
    }
    out
}

/// The schema 3 form of a schema 2 document (a whole config, a drop-in or
/// the TOML a `config.toml.tmpl` appends to its base).
pub fn to_v3(doc: &DocumentMut) -> Migrated {
    let mut leaves_v2 = Vec::new();
    let mut unplaced = Vec::new();
    if let Some(cri) = doc
        .get("plugins")
        .and_then(|p| p.get(CRI_V2))
        .and_then(Item::as_table_like)
    {
        let mut t = Table::new();
        for (k, v) in cri.iter() {
            t.insert(k, v.clone());
        }
        leaves(&t, &mut Vec::new(), &mut leaves_v2, &mut unplaced);
    }
    let mut moved = Vec::new();
    let mut dropped = Vec::new();
    for (rel, v) in leaves_v2 {
        match to_v3_home(&rel, &v) {
            Ok(Some(m)) => moved.push(m),
            Ok(None) => dropped.push(format!(
                "{CRI_V2}.{} (CDI is always enabled in containerd 2)",
                rel.join(".")
            )),
            Err(e) => unplaced.push(e),
        }
    }
    Migrated {
        doc: rebuild(doc, &[CRI_V2], moved, 3),
        dropped,
        unplaced,
    }
}

/// The schema 2 form of a schema 3 document (the inverse of [`to_v3`] for
/// the keys it moves).
pub fn to_v2(doc: &DocumentMut) -> Migrated {
    let mut moved = Vec::new();
    let mut unplaced = Vec::new();
    for plugin in [CRI_RUNTIME, CRI_IMAGES, CRI_V2] {
        let Some(t) = doc
            .get("plugins")
            .and_then(|p| p.get(plugin))
            .and_then(Item::as_table_like)
        else {
            continue;
        };
        let mut tbl = Table::new();
        for (k, v) in t.iter() {
            tbl.insert(k, v.clone());
        }
        let mut ls = Vec::new();
        leaves(&tbl, &mut Vec::new(), &mut ls, &mut unplaced);
        for (rel, v) in ls {
            match to_v2_home(plugin, &rel, &v) {
                Ok(path) => {
                    let v = if path.last().map(String::as_str) == Some("bin_dir") {
                        v.as_array().and_then(|a| a.get(0)).cloned().unwrap_or(v)
                    } else {
                        v
                    };
                    moved.push((CRI_V2.to_owned(), path, v));
                }
                Err(e) => unplaced.push(e),
            }
        }
    }
    Migrated {
        doc: rebuild(doc, &[CRI_RUNTIME, CRI_IMAGES, CRI_V2], moved, 2),
        dropped: Vec::new(),
        unplaced,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(s: &str) -> DocumentMut {
        s.parse().unwrap()
    }

    fn get<'a>(d: &'a DocumentMut, path: &[&str]) -> Option<&'a Item> {
        let mut i = d.as_item();
        for p in path {
            i = i.get(p)?;
        }
        Some(i)
    }

    const V2: &str = r#"version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  enable_cdi = true
  stream_server_address = "127.0.0.1"
  device_ownership_from_security_context = true
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/opt/cni/bin"
  conf_dir = "/etc/cni/net.d"
[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "native"
  default_runtime_name = "nvidia"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]
  BinaryName = "/usr/local/nvidia/toolkit/nvidia-container-runtime"
[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
  endpoint = ["https://mirror.local"]
[plugins."io.containerd.internal.v1.opt"]
  path = "/opt/containerd"
"#;

    #[test]
    fn each_v2_key_lands_where_containerd_2_migrates_it() {
        let m = to_v3(&doc(V2));
        assert!(m.unplaced.is_empty(), "{:?}", m.unplaced);
        assert_eq!(m.dropped.len(), 1, "{:?}", m.dropped);
        let d = &m.doc;
        let at = |p: &[&str]| {
            get(d, p)
                .and_then(Item::as_value)
                .map(|v| v.to_string().trim().to_owned())
        };
        assert_eq!(at(&["version"]).as_deref(), Some("3"));
        assert_eq!(
            at(&["plugins", CRI_IMAGES, "pinned_images", "sandbox"]).as_deref(),
            Some("\"registry.k8s.io/pause:3.10\"")
        );
        assert_eq!(
            at(&["plugins", CRI_IMAGES, "snapshotter"]).as_deref(),
            Some("\"native\"")
        );
        assert_eq!(
            at(&["plugins", CRI_RUNTIME, "cni", "bin_dirs"]).as_deref(),
            Some("[\"/opt/cni/bin\"]")
        );
        assert_eq!(
            at(&["plugins", CRI_RUNTIME, "containerd", "default_runtime_name"]).as_deref(),
            Some("\"nvidia\"")
        );
        assert_eq!(
            at(&[
                "plugins",
                CRI_RUNTIME,
                "containerd",
                "runtimes",
                "nvidia",
                "options",
                "BinaryName"
            ])
            .as_deref(),
            Some("\"/usr/local/nvidia/toolkit/nvidia-container-runtime\"")
        );
        assert_eq!(
            at(&[
                "plugins",
                CRI_IMAGES,
                "registry",
                "mirrors",
                "docker.io",
                "endpoint"
            ])
            .as_deref(),
            Some("[\"https://mirror.local\"]")
        );
        assert_eq!(
            at(&["plugins", CRI_V2, "stream_server_address"]).as_deref(),
            Some("\"127.0.0.1\"")
        );
        assert_eq!(
            at(&["plugins", "io.containerd.internal.v1.opt", "path"]).as_deref(),
            Some("\"/opt/containerd\"")
        );
        assert!(get(d, &["plugins", CRI_V2, "enable_cdi"]).is_none());
        assert!(d.to_string().starts_with("version = 3\n"), "{d}");
    }

    #[test]
    fn back_to_v2_is_the_inverse_for_what_moves() {
        let m = to_v3(&doc(V2));
        let back = to_v2(&m.doc);
        assert!(back.unplaced.is_empty(), "{:?}", back.unplaced);
        let again = to_v3(&back.doc);
        let flat = |d: &DocumentMut| {
            let mut out = Vec::new();
            leaves(d.as_table(), &mut Vec::new(), &mut out, &mut Vec::new());
            let mut out: Vec<String> = out
                .into_iter()
                .map(|(p, v)| format!("{} = {}", p.join("."), v.to_string().trim()))
                .collect();
            out.sort();
            out
        };
        assert_eq!(flat(&again.doc), flat(&m.doc));
        assert!(
            back.doc
                .to_string()
                .contains("sandbox_image = \"registry.k8s.io/pause:3.10\""),
            "{}",
            back.doc
        );
    }

    #[test]
    fn a_per_runtime_snapshotter_is_not_guessed() {
        let m = to_v3(&doc(
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.kata]\n  snapshot = \"devmapper\"\n",
        ));
        assert_eq!(
            m.unplaced,
            vec![format!("{CRI_V2}.containerd.runtimes.kata.snapshot")]
        );
    }
}
