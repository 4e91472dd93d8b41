//! What a base template's TOML declares again over what RKE2's base
//! template renders (`{{ template "base" . }}` followed by a table the base
//! already has): the generated `config.toml` then declares that table twice,
//! and containerd refuses to start (`toml: table … already exists` on 2.x,
//! `duplicated tables` on 1.7).
//!
//! [`find`] judges every table header and key of the template's TOML
//! against the base render the way the node's containerd parser does
//! ([`matrix::TomlParserRow`]: go-toml v1 on 1.7, which compares header text
//! and so merges a differently quoted header; go-toml v2 on 2.x, which
//! compares key paths), and words each finding as containerd prints it. An
//! [`Overlap`] the node's containerd happens to accept (a go-toml quirk) is
//! still reported: the newest parser and the TOML spec refuse it.

use std::collections::BTreeMap;

use toml_edit::{Document, Item, Table, Value};

use crate::containerd::model::line_col;
use crate::containerd::template::{BaseRender, Rendered, TemplateAnalysis};
use crate::error::{Error, Result};
use crate::matrix::{self, DottedIntoTable, TomlParserRow};
use crate::version::Triple;

/// What the base render has at a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseEntry {
    /// A table declared by its own `[header]`: the text between the brackets
    /// and its line in the base render.
    Header { text: String, line: usize },
    /// A table that exists only as the parent of another header.
    Implicit,
    /// A value (canonical text, see [`value_text`]).
    Value(String),
    /// Anything else (array of tables, inline or dotted table).
    Other,
}

/// The key paths of a base render.
#[derive(Debug, Clone, Default)]
pub struct BaseTables {
    entries: BTreeMap<Vec<String>, BaseEntry>,
}

/// A value's text with quoting and decor normalised, so that equal values
/// written differently (`'a'`, `"a"`) compare equal.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{:?}", s.value()),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(value_text).collect::<Vec<_>>().join(", ")
        ),
        Value::InlineTable(t) => format!(
            "{{{}}}",
            t.iter()
                .map(|(k, v)| format!("{k:?} = {}", value_text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => {
            let mut o = other.clone();
            o.decor_mut().clear();
            o.to_string().trim().to_owned()
        }
    }
}

impl BaseTables {
    /// Parse a base render (`path` names it in errors).
    pub fn parse(path: &str, text: &str) -> Result<Self> {
        let doc = Document::parse(text.to_owned()).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            Error::TomlParse {
                path: path.to_owned(),
                line,
                column,
                message: e.message().trim().to_owned(),
            }
        })?;
        let mut out = Self::default();
        out.walk(doc.as_table(), text, &mut Vec::new());
        Ok(out)
    }

    fn walk(&mut self, t: &Table, raw: &str, path: &mut Vec<String>) {
        for (k, item) in t.iter() {
            path.push(k.to_owned());
            match item {
                Item::Table(sub) => {
                    let e = if sub.is_dotted() {
                        BaseEntry::Other
                    } else if sub.is_implicit() {
                        BaseEntry::Implicit
                    } else {
                        let span = sub.span().unwrap_or(0..0);
                        BaseEntry::Header {
                            text: header_text(raw, span.clone()),
                            line: line_col(raw, span.start).0,
                        }
                    };
                    self.entries.insert(path.clone(), e);
                    self.walk(sub, raw, path);
                }
                Item::Value(Value::InlineTable(it)) => {
                    self.entries.insert(path.clone(), BaseEntry::Other);
                    self.walk_inline(it, path);
                }
                Item::Value(v) => {
                    self.entries
                        .insert(path.clone(), BaseEntry::Value(value_text(v)));
                }
                _ => {
                    self.entries.insert(path.clone(), BaseEntry::Other);
                }
            }
            path.pop();
        }
    }

    fn walk_inline(&mut self, t: &toml_edit::InlineTable, path: &mut Vec<String>) {
        for (k, v) in t.iter() {
            path.push(k.to_owned());
            if let Value::InlineTable(it) = v {
                self.entries.insert(path.clone(), BaseEntry::Other);
                self.walk_inline(it, path);
            } else {
                self.entries
                    .insert(path.clone(), BaseEntry::Value(value_text(v)));
            }
            path.pop();
        }
    }

    /// What the base has at `path`.
    pub fn get(&self, path: &[String]) -> Option<&BaseEntry> {
        self.entries.get(path)
    }

    /// Whether the base declares `path` itself (header, value or other),
    /// as opposed to absent or only implicit.
    pub fn declares(&self, path: &[String]) -> bool {
        !matches!(self.get(path), None | Some(BaseEntry::Implicit))
    }
}

/// The text between a header's brackets (`[a."b"]` → `a."b"`).
fn header_text(raw: &str, span: std::ops::Range<usize>) -> String {
    let h = raw.get(span).unwrap_or("");
    h.strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(h)
        .to_owned()
}

/// Which part of the template's TOML collides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OverlapKind {
    /// A `[header]` naming a table the base declares.
    Table,
    /// A key (possibly dotted) under a table the template may declare, that
    /// names something the base renders.
    Key,
}

/// What the node's containerd does with an overlap.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// It refuses to start, with this error line.
    Refused(String),
    /// It merges the two (a go-toml quirk); containerd with the newest
    /// parser, the TOML spec and this tool refuse the file, with this line.
    Accepted(String),
}

impl Verdict {
    pub fn refused(&self) -> bool {
        matches!(self, Verdict::Refused(_))
    }
    /// The error line (containerd's own, or the newest parser's).
    pub fn message(&self) -> &str {
        match self {
            Verdict::Refused(m) | Verdict::Accepted(m) => m,
        }
    }
}

/// One table or key the template declares again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Overlap {
    pub kind: OverlapKind,
    /// Key path of the template's table (the header's, or the one holding the key).
    pub table: Vec<String>,
    /// [`OverlapKind::Key`]: the key's dotted parts under [`Overlap::table`].
    pub key: Vec<String>,
    /// As the template writes it: `[plugins."io.containerd.cri.v1.images"]`,
    /// or `runtimes.runc.options.SystemdCgroup` under its table.
    pub written: String,
    /// 1-based line and column in the template file.
    pub line: usize,
    pub column: usize,
    /// Its row in the generated `config.toml`.
    pub config_row: Option<usize>,
    /// The base's declaration it collides with, as written (`[…]`) and its
    /// row in `config.toml`.
    pub base_written: String,
    pub base_row: usize,
    pub verdict: Verdict,
}

impl Overlap {
    /// `plugins.'io.containerd.cri.v1.images'`-style display of the table.
    pub fn table_display(&self) -> String {
        display_path(&self.table)
    }

    /// One sentence for messages: the template, its line, what it
    /// redeclares, why (the base already declares it, at which
    /// `config.toml` row) and containerd's own error line.
    pub fn describe(&self, template: &str, containerd: Triple) -> String {
        let what = match self.kind {
            OverlapKind::Table => format!("{} declares a table", self.written),
            OverlapKind::Key => format!(
                "`{}` under [{}] sets a key",
                self.written,
                self.table_display()
            ),
        };
        let at = if self.base_row > 0 {
            format!(" (config.toml row {})", self.base_row)
        } else {
            String::new()
        };
        let line = format!("{}.{}", containerd.major, containerd.minor);
        let tail = match &self.verdict {
            Verdict::Refused(m) => {
                format!("containerd {line} refuses the rendered config.toml: `{m}`")
            }
            Verdict::Accepted(m) => format!(
                "containerd {line} merges the two, but TOML forbids it and containerd's newest parser refuses it: `{m}`"
            ),
        };
        format!(
            "{template} line {}: {what} that RKE2's base template already renders as {}{at}; {tail}",
            self.line, self.base_written
        )
    }
}

/// A key path as TOML writes it, quoting parts that need it.
pub fn display_path(path: &[String]) -> String {
    path.iter()
        .map(|p| toml_edit::Key::new(p.as_str()).display_repr().into_owned())
        .collect::<Vec<_>>()
        .join(".")
}

/// The inputs [`find`] needs for one template.
pub struct Inputs<'a> {
    pub template: &'a TemplateAnalysis,
    pub base: &'a BaseRender,
    /// `config.toml`'s path (go-toml v1 names it in its error).
    pub config_path: &'a str,
    pub containerd: Triple,
}

/// A user assignment: its table, key parts and position.
struct Assign {
    parts: Vec<String>,
    written: String,
    offset: usize,
}

/// The key-values of a table, dotted keys as their parts; `offset` is the
/// start of the key's line (a key-value starts its line).
fn assignments(
    t: &Table,
    raw: &str,
    prefix: &mut Vec<String>,
    written: &mut Vec<String>,
    out: &mut Vec<Assign>,
) {
    for (k, item) in t.iter() {
        let key = t.key(k);
        let text = key
            .map(|k| k.display_repr().into_owned())
            .unwrap_or_else(|| k.to_owned());
        let leaf = key.and_then(|k| k.span()).map(|s| s.start).unwrap_or(0);
        let line_start = raw
            .get(..leaf)
            .and_then(|b| b.rfind('\n'))
            .map(|i| i + 1)
            .unwrap_or(0);
        let offset = raw
            .get(line_start..)
            .and_then(|l| l.find(|c: char| !c.is_whitespace()))
            .map(|i| line_start + i)
            .unwrap_or(leaf);
        match item {
            Item::Table(sub) if sub.is_dotted() => {
                prefix.push(k.to_owned());
                written.push(text);
                assignments(sub, raw, prefix, written, out);
                written.pop();
                prefix.pop();
            }
            Item::Value(_) => {
                let mut parts = prefix.clone();
                parts.push(k.to_owned());
                let mut w = written.clone();
                w.push(text);
                out.push(Assign {
                    parts,
                    written: w.join("."),
                    offset,
                });
            }
            _ => {}
        }
    }
}

/// A user `[header]` table with its path and position.
struct Header<'a> {
    path: Vec<String>,
    text: String,
    offset: usize,
    table: &'a Table,
}

fn headers<'a>(t: &'a Table, raw: &str, path: &mut Vec<String>, out: &mut Vec<Header<'a>>) {
    for (k, item) in t.iter() {
        if let Item::Table(sub) = item {
            if sub.is_dotted() {
                continue;
            }
            path.push(k.to_owned());
            if !sub.is_implicit() {
                let span = sub.span().unwrap_or(0..0);
                out.push(Header {
                    path: path.clone(),
                    text: header_text(raw, span.clone()),
                    offset: span.start,
                    table: sub,
                });
            }
            headers(sub, raw, path, out);
            path.pop();
        }
    }
}

fn fill(tmpl: &str, path: &str, row: Option<usize>, col: usize, name: &str) -> String {
    tmpl.replace("{path}", path)
        .replace(
            "{row}",
            &row.map(|r| r.to_string()).unwrap_or_else(|| "?".into()),
        )
        .replace("{col}", &col.to_string())
        .replace("{name}", name)
}

/// How one parser sees a header over the base.
enum HeaderCheck {
    Refuse,
    /// The header adds to the base's table (go-toml v1, other header text):
    /// its keys are checked.
    Merge,
    /// The base does not declare the table: its keys are checked.
    Keys,
}

fn header_check(p: &TomlParserRow, base: &BaseTables, h: &Header) -> HeaderCheck {
    match base.get(&h.path) {
        Some(BaseEntry::Header { text, .. }) if p.same_text_only => {
            if *text == h.text {
                HeaderCheck::Refuse
            } else {
                HeaderCheck::Merge
            }
        }
        Some(BaseEntry::Implicit) | None => HeaderCheck::Keys,
        Some(_) if p.same_text_only => HeaderCheck::Merge,
        Some(_) => HeaderCheck::Refuse,
    }
}

/// The error one parser gives for an assignment under `table`, as
/// (template of the message, the name it names).
fn assign_check(
    p: &TomlParserRow,
    base: &BaseTables,
    table: &[String],
    parts: &[String],
) -> Option<(&'static str, String)> {
    let mut path = table.to_vec();
    for (i, part) in parts.iter().enumerate() {
        path.push(part.clone());
        let last = i + 1 == parts.len();
        let e = base.get(&path)?;
        match p.dotted_into_table {
            DottedIntoTable::Merge => {
                if last {
                    return Some((p.key_error, path.join(".")));
                }
            }
            DottedIntoTable::MergeIfImplicit => {
                if last || matches!(e, BaseEntry::Value(_)) {
                    return Some((p.key_error, part.clone()));
                }
                if !matches!(e, BaseEntry::Implicit) {
                    return Some((p.redefine_error, part.clone()));
                }
            }
            DottedIntoTable::Refuse => return Some((p.key_error, part.clone())),
        }
    }
    None
}

/// Every table and key of the template's TOML that collides with the base
/// render, in template order, each with what the node's containerd does.
/// The first [`Verdict::Refused`] is the error containerd prints.
pub fn find(i: &Inputs) -> Result<Vec<Overlap>> {
    let a = i.template;
    let base = BaseTables::parse(i.config_path, &i.base.text)?;
    let rendered: Rendered = a.render_over(&i.base.text);
    // The appended TOML alone must parse (a plain TOML error is reported as such).
    a.appended_document()?;
    let raw = a.appended().to_owned();
    let doc = Document::parse(raw.clone()).map_err(|e| Error::TomlParse {
        path: a.path.clone(),
        line: a.appended_line_offset() + 1,
        column: 1,
        message: e.message().trim().to_owned(),
    })?;
    let node = matrix::containerd_toml_parser(i.containerd);
    let newest = matrix::CONTAINERD_TOML_PARSERS.last().unwrap_or(node);
    let pos = |offset: usize| {
        let (l, c) = line_col(&raw, offset);
        (l + a.appended_line_offset(), c)
    };
    let mut hs = Vec::new();
    headers(doc.as_table(), &raw, &mut Vec::new(), &mut hs);
    hs.sort_by_key(|h| h.offset);
    let mut out = Vec::new();
    for h in &hs {
        let (line, hcol) = pos(h.offset);
        // The key starts after `[` (and any blanks): both parsers report its column.
        let col = hcol + 1 + h.text.len() - h.text.trim_start().len();
        let row = rendered.row_of(line);
        let name = h.path.last().cloned().unwrap_or_default();
        let base_written = match base.get(&h.path) {
            Some(BaseEntry::Header { text, line }) => (format!("[{text}]"), *line),
            _ => (format!("[{}]", display_path(&h.path)), 0),
        };
        let mut assigns = Vec::new();
        assignments(
            h.table,
            &raw,
            &mut Vec::new(),
            &mut Vec::new(),
            &mut assigns,
        );
        let assign_msg = |p: &TomlParserRow, x: &Assign| {
            assign_check(p, &base, &h.path, &x.parts).map(|(tmpl, name)| {
                let (l, c) = pos(x.offset);
                fill(tmpl, i.config_path, rendered.row_of(l), c, &name)
            })
        };
        if matches!(header_check(newest, &base, h), HeaderCheck::Refuse) {
            let strict = fill(newest.table_error, i.config_path, row, col, &name);
            let verdict = match header_check(node, &base, h) {
                HeaderCheck::Refuse => {
                    Verdict::Refused(fill(node.table_error, i.config_path, row, col, &name))
                }
                HeaderCheck::Merge | HeaderCheck::Keys => {
                    match assigns.iter().find_map(|x| assign_msg(node, x)) {
                        Some(m) => Verdict::Refused(m),
                        None => Verdict::Accepted(strict),
                    }
                }
            };
            out.push(Overlap {
                kind: OverlapKind::Table,
                table: h.path.clone(),
                key: Vec::new(),
                written: format!("[{}]", h.text),
                line,
                column: col,
                config_row: row,
                base_written: base_written.0,
                base_row: base_written.1,
                verdict,
            });
            continue;
        }
        for x in &assigns {
            let Some(strict) = assign_msg(newest, x) else {
                continue;
            };
            let (l, c) = pos(x.offset);
            let mut bpath = h.path.clone();
            let mut base_at = (format!("[{}]", display_path(&h.path)), 0);
            for part in &x.parts {
                bpath.push(part.clone());
                if let Some(BaseEntry::Header { text, line }) = base.get(&bpath) {
                    base_at = (format!("[{text}]"), *line);
                    break;
                }
            }
            out.push(Overlap {
                kind: OverlapKind::Key,
                table: h.path.clone(),
                key: x.parts.clone(),
                written: x.written.clone(),
                line: l,
                column: c,
                config_row: rendered.row_of(l),
                base_written: base_at.0,
                base_row: base_at.1,
                verdict: match assign_msg(node, x) {
                    Some(m) => Verdict::Refused(m),
                    None => Verdict::Accepted(strict),
                },
            });
        }
    }
    Ok(out)
}

/// Why a generated `config.toml` that does not parse was refused, told
/// through the user template it was rendered from (the one in use among
/// `v3` and `v2`, each `(path, text)`): the template's redeclarations,
/// each as [`Overlap::describe`] words it. `None` when the template does
/// not explain it.
pub fn explain_config(
    config_path: &str,
    generated: &str,
    v3: (&str, Option<&str>),
    v2: (&str, Option<&str>),
    containerd: Triple,
) -> Option<String> {
    let (version, text) =
        crate::containerd::template::template_in_use(containerd.major, v3.1, v2.1)?;
    let path = if version >= 3 { v3.0 } else { v2.0 };
    let a = TemplateAnalysis::analyze(path, text);
    let base = a.base_render_for(generated, version)?;
    let o = find(&Inputs {
        template: &a,
        base: &base,
        config_path,
        containerd,
    })
    .ok()?;
    (!o.is_empty()).then(|| {
        o.iter()
            .map(|o| o.describe(path, containerd))
            .collect::<Vec<_>>()
            .join("; ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::containerd::template::TemplateAnalysis;

    const V3_BASE: &str = "version = 3\n\n[plugins.'io.containerd.cri.v1.runtime']\n  enable_selinux = false\n\n[plugins.'io.containerd.cri.v1.images']\n  snapshotter = \"overlayfs\"\n\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]\n  SystemdCgroup = true\n";
    const V2_BASE: &str = "version = 2\n\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  enable_selinux = false\n\n[plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  snapshotter = \"overlayfs\"\n\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n\n[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = true\n";

    fn overlaps(base: &str, appended: &str, c: Triple) -> Vec<Overlap> {
        let t = format!("{{{{ template \"base\" . }}}}\n{appended}");
        let a = TemplateAnalysis::analyze("/tmpl", &t);
        let b = BaseRender {
            text: base.to_owned(),
            origin: crate::containerd::template::BaseOrigin::Earlier,
        };
        find(&Inputs {
            template: &a,
            base: &b,
            config_path: "/c.toml",
            containerd: c,
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    const C17: Triple = Triple::new(1, 7, 35);
    const C22: Triple = Triple::new(2, 2, 2);
    const C24: Triple = Triple::new(2, 4, 2);

    #[test]
    fn a_redeclared_table_in_either_quoting_is_one_key_for_go_toml_v2() {
        for header in [
            "[plugins.\"io.containerd.cri.v1.images\"]",
            "[plugins.'io.containerd.cri.v1.images']",
        ] {
            let o = overlaps(
                V3_BASE,
                &format!("{header}\n  snapshotter = \"native\"\n"),
                C24,
            );
            assert_eq!(o.len(), 1, "{o:?}");
            assert_eq!(o[0].kind, OverlapKind::Table);
            assert_eq!(o[0].line, 2);
            assert_eq!(o[0].column, 2);
            assert_eq!(o[0].base_written, "[plugins.'io.containerd.cri.v1.images']");
            assert_eq!(o[0].base_row, 6);
            // base (13 lines) + the empty line trimEmpty writes before `[`.
            assert_eq!(
                o[0].verdict,
                Verdict::Refused("containerd: failed to unmarshal TOML at row 15 column 2: toml: table io.containerd.cri.v1.images already exists".into())
            );
            let o = overlaps(
                V3_BASE,
                &format!("{header}\n  snapshotter = \"native\"\n"),
                C22,
            );
            assert_eq!(
                o[0].verdict,
                Verdict::Refused("containerd: failed to unmarshal TOML: toml: table io.containerd.cri.v1.images already exists".into())
            );
        }
    }

    #[test]
    fn go_toml_v1_compares_header_text() {
        // Same text as the base: duplicated tables.
        let o = overlaps(
            V2_BASE,
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = false\n",
            C17,
        );
        assert_eq!(
            o[0].verdict,
            Verdict::Refused(
                "containerd: failed to load TOML: /c.toml: (15, 2): duplicated tables".into()
            )
        );
        // Other quoting: merged, refused only for the key that is set twice.
        let o = overlaps(
            V2_BASE,
            "[plugins.'io.containerd.grpc.v1.cri'.containerd.runtimes.runc.options]\n  SystemdCgroup = false\n",
            C17,
        );
        assert_eq!(
            o[0].verdict,
            Verdict::Refused("containerd: failed to load TOML: /c.toml: (16, 3): The following key was defined twice: plugins.io.containerd.grpc.v1.cri.containerd.runtimes.runc.options.SystemdCgroup".into())
        );
        // … and accepted with a new key, which containerd 2.4 and the spec refuse.
        let o = overlaps(
            V2_BASE,
            "[plugins.'io.containerd.grpc.v1.cri'.containerd.runtimes.runc.options]\n  NoNewKeyring = true\n",
            C17,
        );
        assert_eq!(o.len(), 1);
        assert!(!o[0].verdict.refused());
        assert!(
            o[0].verdict
                .message()
                .contains("toml: table options already exists")
        );
    }

    #[test]
    fn dotted_keys_into_base_tables_by_parser() {
        let dotted = "[plugins.'io.containerd.cri.v1.runtime'.containerd]\n  runtimes.runc.options.SystemdCgroup = false\n";
        let o = overlaps(V3_BASE, dotted, C24);
        assert_eq!(o[0].kind, OverlapKind::Key);
        assert_eq!(o[0].written, "runtimes.runc.options.SystemdCgroup");
        assert_eq!(o[0].column, 3);
        assert!(
            o[0].verdict
                .message()
                .ends_with("toml: key runtimes is already defined")
        );
        let o = overlaps(V3_BASE, dotted, C22);
        assert!(o[0].verdict.message().ends_with(
            "toml: cannot redefine table runc that has already been explicitly defined"
        ));
        // A new runtime through the implicit `runtimes`: containerd 2.0–2.3 merge it.
        let new = "[plugins.'io.containerd.cri.v1.runtime'.containerd]\n  runtimes.foo.runtime_type = \"x\"\n";
        let o = overlaps(V3_BASE, new, C22);
        assert_eq!(o.len(), 1);
        assert!(!o[0].verdict.refused());
        assert!(overlaps(V3_BASE, new, C24)[0].verdict.refused());
        // An inline table over a base table.
        let o = overlaps(
            V3_BASE,
            "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes]\n  runc = { runtime_type = \"io.containerd.runc.v2\" }\n",
            C24,
        );
        assert!(
            o[0].verdict
                .message()
                .ends_with("toml: key runc is already defined")
        );
    }

    #[test]
    fn what_the_base_does_not_declare_is_fine() {
        // `containerd` is only implicit in the base: a header for it is valid TOML.
        let o = overlaps(
            V3_BASE,
            "[plugins.'io.containerd.cri.v1.runtime'.containerd]\n  default_runtime_name = \"nvidia\"\n\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.nvidia]\n  runtime_type = \"io.containerd.runc.v2\"\n",
            C24,
        );
        assert!(o.is_empty(), "{o:?}");
    }
}
