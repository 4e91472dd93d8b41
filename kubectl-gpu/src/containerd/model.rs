//! Read-only model of a containerd config over `toml_edit`: schema version,
//! CRI runtime plugin path, runtimes, default runtime, `imports`, `enable_cdi`.
//!
//! Quoting (`'…'` from k3s, `"…"` from go-toml) and table forms (nested
//! headers, dotted keys, inline tables) all read the same.

use std::collections::BTreeMap;

use toml_edit::{DocumentMut, Item, Table, TableLike};

use crate::error::{Error, Result};

/// The runtime type every runc-compatible runtime (nvidia included) needs.
pub const RUNC_V2: &str = "io.containerd.runc.v2";

/// The CRI runtime plugin key for a config schema version:
/// v1 `cri`, v2 `io.containerd.grpc.v1.cri`, v3+ `io.containerd.cri.v1.runtime`.
pub fn cri_runtime_plugin(version: i64) -> &'static str {
    match version {
        ..=1 => "cri",
        2 => "io.containerd.grpc.v1.cri",
        _ => "io.containerd.cri.v1.runtime",
    }
}

/// Key path of the CRI runtime plugin's `containerd` table.
pub fn containerd_table_path(version: i64) -> [&'static str; 3] {
    ["plugins", cri_runtime_plugin(version), "containerd"]
}

/// One entry of `plugins.<cri>.containerd.runtimes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeEntry {
    pub name: String,
    pub runtime_type: Option<String>,
    /// `options.BinaryName`.
    pub binary_name: Option<String>,
    /// `options.SystemdCgroup`.
    pub systemd_cgroup: Option<bool>,
    /// Every `options` key with its TOML value text (`"…"`, `true`, …).
    pub options: BTreeMap<String, String>,
}

/// A parsed containerd config (read-only view; keeps the document).
#[derive(Debug, Clone)]
pub struct ContainerdConfig {
    path: String,
    doc: DocumentMut,
    version: i64,
    declared_version: Option<i64>,
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

/// Parse TOML, mapping errors to [`Error::TomlParse`] naming `path`; the
/// reported line is shifted by `line_offset` (for TOML cut out of a template).
pub fn parse_toml(path: &str, text: &str, line_offset: usize) -> Result<DocumentMut> {
    text.parse::<DocumentMut>().map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        Error::TomlParse {
            path: path.to_owned(),
            line: line + line_offset,
            column,
            message: e.message().trim().to_owned(),
        }
    })
}

/// The item at a key path, through any table form.
pub fn item_at<'a>(root: &'a Table, path: &[&str]) -> Option<&'a Item> {
    let (last, init) = path.split_last()?;
    let mut cur: &dyn TableLike = root;
    for k in init {
        cur = cur.get(k)?.as_table_like()?;
    }
    cur.get(last)
}

/// Whether a `[path]` header may still be written after `root`'s content
/// without a TOML "duplicate table" error: the table is absent or only
/// implicitly created (by a sub-table header), and no ancestor is an inline
/// table or a plain value.
pub fn header_available(root: &Table, path: &[&str]) -> bool {
    let Some((last, init)) = path.split_last() else {
        return false;
    };
    let mut cur: &dyn TableLike = root;
    for k in init {
        match cur.get(k) {
            None => return true,
            Some(Item::Table(t)) => cur = t,
            Some(_) => return false,
        }
    }
    match cur.get(last) {
        None => true,
        Some(Item::Table(t)) => t.is_implicit() && !t.is_dotted(),
        Some(_) => false,
    }
}

/// Whether `path` is a table the document declares itself (header, dotted
/// keys or inline table), as opposed to absent or implicitly created.
pub fn declares_table(root: &Table, path: &[&str]) -> bool {
    match item_at(root, path) {
        Some(Item::Table(t)) => !t.is_implicit() || t.is_dotted(),
        Some(Item::Value(v)) => v.is_inline_table(),
        _ => false,
    }
}

impl ContainerdConfig {
    /// Parse a config; `path` names it in errors.
    pub fn parse(path: &str, text: &str) -> Result<Self> {
        let doc = parse_toml(path, text, 0)?;
        Self::from_document(path, doc)
    }

    /// Wrap an already parsed document.
    pub fn from_document(path: &str, doc: DocumentMut) -> Result<Self> {
        let declared_version = match doc.get("version") {
            None => None,
            Some(item) => match item.as_integer() {
                Some(v) if v >= 1 => Some(v),
                _ => {
                    return Err(Error::InvalidContainerdConfig {
                        path: path.to_owned(),
                        reason: format!(
                            "`version` must be a positive integer, found `{}`",
                            item.to_string().trim()
                        ),
                    });
                }
            },
        };
        // The toolkit's rule: missing `version` means 1, except that an
        // empty config defaults to 2.
        let version = declared_version.unwrap_or(if doc.as_table().is_empty() { 2 } else { 1 });
        Ok(Self {
            path: path.to_owned(),
            doc,
            version,
            declared_version,
        })
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// The effective schema version (see [`ContainerdConfig::from_document`]).
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The `version` key as written, if any.
    pub fn declared_version(&self) -> Option<i64> {
        self.declared_version
    }

    /// The CRI runtime plugin key for this config's version.
    pub fn cri_plugin(&self) -> &'static str {
        cri_runtime_plugin(self.version)
    }

    pub fn document(&self) -> &DocumentMut {
        &self.doc
    }

    pub fn root(&self) -> &Table {
        self.doc.as_table()
    }

    /// The top-level `imports` entries (strings only).
    pub fn imports(&self) -> Vec<String> {
        self.doc
            .get("imports")
            .and_then(Item::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn cri_get(&self, rest: &[&str]) -> Option<&Item> {
        let mut path = vec!["plugins", self.cri_plugin()];
        path.extend_from_slice(rest);
        item_at(self.root(), &path)
    }

    /// `plugins.<cri>.containerd.default_runtime_name`.
    pub fn default_runtime_name(&self) -> Option<String> {
        self.cri_get(&["containerd", "default_runtime_name"])
            .and_then(Item::as_str)
            .map(str::to_owned)
    }

    /// `plugins.<cri>.enable_cdi`.
    pub fn enable_cdi(&self) -> Option<bool> {
        self.cri_get(&["enable_cdi"]).and_then(Item::as_bool)
    }

    /// All runtimes, sorted by name.
    pub fn runtimes(&self) -> Vec<RuntimeEntry> {
        let Some(rts) = self
            .cri_get(&["containerd", "runtimes"])
            .and_then(Item::as_table_like)
        else {
            return Vec::new();
        };
        let mut out: Vec<RuntimeEntry> = rts
            .iter()
            .filter_map(|(name, item)| Some(runtime_entry(name, item.as_table_like()?)))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// One runtime by name.
    pub fn runtime(&self, name: &str) -> Option<RuntimeEntry> {
        let t = self
            .cri_get(&["containerd", "runtimes", name])
            .and_then(Item::as_table_like)?;
        Some(runtime_entry(name, t))
    }

    /// Key path of a runtime's table in this config's schema.
    pub fn runtime_path<'a>(&self, name: &'a str) -> [&'a str; 5] {
        ["plugins", self.cri_plugin(), "containerd", "runtimes", name]
    }
}

fn runtime_entry(name: &str, t: &dyn TableLike) -> RuntimeEntry {
    let runtime_type = t
        .get("runtime_type")
        .and_then(Item::as_str)
        .map(str::to_owned);
    let opts = t.get("options").and_then(Item::as_table_like);
    let mut options = BTreeMap::new();
    if let Some(o) = opts {
        for (k, v) in o.iter() {
            if let Some(v) = v.as_value() {
                // Normalise string quoting ('…' vs "…") so equal values compare equal.
                let text = match v.as_str() {
                    Some(s) => toml_edit::Value::from(s).to_string(),
                    None => v.to_string(),
                };
                options.insert(k.to_owned(), text.trim().to_owned());
            }
        }
    }
    RuntimeEntry {
        name: name.to_owned(),
        runtime_type,
        binary_name: opts
            .and_then(|o| o.get("BinaryName"))
            .and_then(Item::as_str)
            .map(str::to_owned),
        systemd_cgroup: opts
            .and_then(|o| o.get("SystemdCgroup"))
            .and_then(Item::as_bool),
        options,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_rule() -> Result<()> {
        assert_eq!(ContainerdConfig::parse("x", "")?.version(), 2);
        assert_eq!(
            ContainerdConfig::parse("x", "# only a comment\n")?.version(),
            2
        );
        assert_eq!(
            ContainerdConfig::parse("x", "root = \"/r\"\n")?.version(),
            1
        );
        assert_eq!(ContainerdConfig::parse("x", "version = 3\n")?.version(), 3);
        assert!(matches!(
            ContainerdConfig::parse("x", "version = \"3\"\n"),
            Err(Error::InvalidContainerdConfig { .. })
        ));
        Ok(())
    }

    #[test]
    fn parse_error_has_line_and_column() {
        let err = ContainerdConfig::parse("/c.toml", "version = 2\n[plugins\n").err();
        match err {
            Some(Error::TomlParse { path, line, .. }) => {
                assert_eq!(path, "/c.toml");
                assert_eq!(line, 2);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn dotted_inline_and_nested_forms_read_alike() -> Result<()> {
        let nested = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.nvidia]\n  runtime_type = \"io.containerd.runc.v2\"\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.nvidia.options]\n  BinaryName = \"/b\"\n  SystemdCgroup = true\n";
        let dotted = "version = 2\nplugins.'io.containerd.grpc.v1.cri'.containerd.runtimes.nvidia.runtime_type = 'io.containerd.runc.v2'\nplugins.'io.containerd.grpc.v1.cri'.containerd.runtimes.nvidia.options.BinaryName = '/b'\nplugins.'io.containerd.grpc.v1.cri'.containerd.runtimes.nvidia.options.SystemdCgroup = true\n";
        let inline = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes]\nnvidia = { runtime_type = \"io.containerd.runc.v2\", options = { BinaryName = \"/b\", SystemdCgroup = true } }\n";
        for text in [nested, dotted, inline] {
            let c = ContainerdConfig::parse("x", text)?;
            let r = c.runtime("nvidia");
            assert_eq!(
                r.as_ref().and_then(|r| r.binary_name.as_deref()),
                Some("/b"),
                "{text}"
            );
            assert_eq!(r.as_ref().and_then(|r| r.systemd_cgroup), Some(true));
            assert_eq!(r.and_then(|r| r.runtime_type), Some(RUNC_V2.to_owned()));
        }
        Ok(())
    }

    #[test]
    fn header_availability() -> Result<()> {
        let d = parse_toml("x", "[a.b.c]\nk = 1\n[d]\ne.f = 1\n[g]\nh = { i = 1 }\n", 0)?;
        let root = d.as_table();
        assert!(header_available(root, &["a"]));
        assert!(header_available(root, &["a", "b"]));
        assert!(!header_available(root, &["a", "b", "c"]));
        assert!(header_available(root, &["a", "b", "c", "z"]));
        assert!(!header_available(root, &["d", "e"]));
        assert!(!header_available(root, &["g", "h"]));
        assert!(!header_available(root, &["g", "h", "i"]));
        assert!(header_available(root, &["zz"]));
        assert!(declares_table(root, &["d", "e"]));
        assert!(!declares_table(root, &["a", "b"]));
        Ok(())
    }
}
