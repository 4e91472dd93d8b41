//! Analysis of RKE2 user templates (`config.toml.tmpl`, `config-v3.toml.tmpl`).
//!
//! A template is one of: *static* (no `{{`: a frozen copy of a rendered
//! config, the legacy 2021 recipe), a *base* template (`{{ template "base" . }}`
//! followed by plain TOML, k3s PR #7991), or *other* Go template text that we
//! cannot safely place tables into.
//!
//! For a base template this module also knows how RKE2 renders it: the base
//! render, then the appended TOML, through k3s' `trimEmpty` (k3s
//! pkg/agent/templates; [`trim_empty`], [`TemplateAnalysis::render_over`]),
//! and so how to find the base render inside a `config.toml` rendered from
//! the template ([`TemplateAnalysis::base_render`]).

use toml_edit::{DocumentMut, Item, Table};

use crate::containerd::model::{ContainerdConfig, parse_toml};
use crate::error::{Error, Result};
use crate::matrix;

/// What kind of template a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateKind {
    /// No template actions at all: RKE2 renders it verbatim.
    Static,
    /// `{{ template "base" . }}` then plain TOML.
    Base,
    /// Other Go template text.
    Other,
}

/// The analysis of one template file.
#[derive(Debug, Clone)]
pub struct TemplateAnalysis {
    pub path: String,
    pub kind: TemplateKind,
    /// Why the kind was chosen (for `Other`: what we cannot handle).
    pub reason: String,
    /// Base templates: the text up to and including the base action's line.
    prefix: String,
    /// Base templates: the plain TOML after the base line.
    appended: String,
}

fn is_base_action(line: &str) -> bool {
    let t = line.trim();
    let Some(inner) = t.strip_prefix("{{").and_then(|s| s.strip_suffix("}}")) else {
        return false;
    };
    let inner = inner.strip_prefix('-').unwrap_or(inner);
    let inner = inner.strip_suffix('-').unwrap_or(inner);
    let words: Vec<&str> = inner.split_whitespace().collect();
    words == ["template", "\"base\"", "."]
}

fn is_go_comment(line: &str) -> bool {
    let t = line.trim();
    let t = t.strip_prefix("{{").and_then(|s| s.strip_suffix("}}"));
    t.map(|s| s.trim_matches('-').trim())
        .is_some_and(|s| s.starts_with("/*") && s.ends_with("*/"))
}

impl TemplateAnalysis {
    /// Classify `text` (the file at `path`).
    pub fn analyze(path: &str, text: &str) -> Self {
        let mk = |kind, reason: &str, prefix: &str, appended: &str| Self {
            path: path.to_owned(),
            kind,
            reason: reason.to_owned(),
            prefix: prefix.to_owned(),
            appended: appended.to_owned(),
        };
        if !text.contains("{{") {
            return mk(
                TemplateKind::Static,
                "no `{{` template actions: a static copy that RKE2 renders verbatim",
                "",
                "",
            );
        }
        let mut offset = 0;
        for line in text.split_inclusive('\n') {
            let end = offset + line.len();
            let t = line.trim();
            if is_base_action(line) {
                let appended = &text[end..];
                if appended.contains("{{") {
                    return mk(
                        TemplateKind::Other,
                        "it has Go template actions after `{{ template \"base\" . }}`",
                        "",
                        "",
                    );
                }
                return mk(
                    TemplateKind::Base,
                    "`{{ template \"base\" . }}` followed by plain TOML",
                    &text[..end],
                    appended,
                );
            }
            if !(t.is_empty() || t.starts_with('#') || is_go_comment(line)) {
                let reason = if text.contains("template \"base\"") {
                    "`{{ template \"base\" . }}` is not on its own line at the start of the file"
                } else {
                    "it is a Go template that does not start with `{{ template \"base\" . }}`"
                };
                return mk(TemplateKind::Other, reason, "", "");
            }
            offset = end;
        }
        mk(
            TemplateKind::Other,
            "it has only Go template comments and no `{{ template \"base\" . }}`",
            "",
            "",
        )
    }

    /// Base templates: the text through the base action line.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Base templates: the TOML after the base line.
    pub fn appended(&self) -> &str {
        &self.appended
    }

    /// Lines before the appended TOML (for error positions).
    pub fn appended_line_offset(&self) -> usize {
        self.prefix.matches('\n').count()
    }

    /// Parse the appended TOML of a base template. Refuses `Other`
    /// templates, and appended TOML that starts with bare keys (they would
    /// attach to the last table the base renders).
    pub fn appended_document(&self) -> Result<DocumentMut> {
        if self.kind != TemplateKind::Base {
            return Err(Error::UnsupportedTemplate {
                path: self.path.clone(),
                reason: self.reason.clone(),
            });
        }
        let doc = parse_toml(&self.path, &self.appended, self.appended_line_offset())?;
        if let Some((k, _)) = doc.as_table().iter().find(|(_, v)| {
            !matches!(v, Item::Table(t) if !t.is_dotted()) && !v.is_array_of_tables()
        }) {
            return Err(Error::UnsupportedTemplate {
                path: self.path.clone(),
                reason: format!(
                    "key `{k}` comes before any table header after `{{{{ template \"base\" . }}}}`, so it would land in the last table the base renders"
                ),
            });
        }
        Ok(doc)
    }

    /// Key paths of the tables the appended TOML declares with headers
    /// (or dotted keys / inline tables), in document order.
    pub fn declared_tables(&self) -> Result<Vec<Vec<String>>> {
        Ok(declared_tables_of(&self.appended_document()?))
    }
}

/// The user template RKE2 renders from: `config-v3.toml.tmpl` on a
/// containerd 2 build when it exists, else `config.toml.tmpl` (k3s
/// pkg/agent/containerd/config.go writeContainerdConfig). Returns the
/// schema version of the base it extends (3 or 2) and its text.
pub fn template_in_use<'a>(
    containerd_major: u64,
    v3: Option<&'a str>,
    v2: Option<&'a str>,
) -> Option<(i64, &'a str)> {
    match (v3, v2) {
        (Some(t), _) if containerd_major >= 2 => Some((3, t)),
        (_, Some(t)) => Some((2, t)),
        _ => None,
    }
}

/// The top-level keys of a rendered config that may not parse as a whole
/// (a template that redeclares a base table): the lines before its first
/// table header, where RKE2's base template renders `version` and
/// `imports`. `None` when those do not parse either.
pub fn config_head(path: &str, text: &str) -> Option<ContainerdConfig> {
    if let Ok(c) = ContainerdConfig::parse(path, text) {
        return Some(c);
    }
    let end = text
        .split_inclusive('\n')
        .scan(0, |off, l| {
            let start = *off;
            *off += l.len();
            Some((start, l))
        })
        .find(|(_, l)| l.trim_start().starts_with('['))
        .map(|(o, _)| o)
        .unwrap_or(text.len());
    ContainerdConfig::parse(path, &text[..end]).ok()
}

/// k3s `trimEmpty` (pkg/agent/templates): every blank line is dropped and an
/// empty line is written before each line that starts with `[`.
pub fn trim_empty(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with('[') {
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The part of `config.toml` that RKE2 renders for a template's prefix and
/// its `{{ template "base" . }}` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseRender {
    pub text: String,
    pub origin: BaseOrigin,
}

/// How [`BaseRender`] was found in `config.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseOrigin {
    /// `config.toml` is the base followed by the template's TOML: it was
    /// rendered from the template as it is now, so its rows are the ones
    /// containerd reports.
    Current,
    /// `config.toml` was rendered before the template last changed: the base
    /// is its top-level keys and the first declaration of each table k3s'
    /// base templates can declare ([`matrix::k3s_base_table`]); the rest
    /// came from an older template.
    Earlier,
}

impl BaseRender {
    pub fn is_current(&self) -> bool {
        self.origin == BaseOrigin::Current
    }
}

/// The header path of a `[table]` or `[[array]]` line, if it is one.
fn header_path(line: &str) -> Option<Vec<String>> {
    let t = line.trim();
    let inner = t
        .strip_prefix("[[")
        .and_then(|x| x.strip_suffix("]]"))
        .or_else(|| t.strip_prefix('[').and_then(|x| x.strip_suffix(']')))?;
    let keys = toml_edit::Key::parse(inner).ok()?;
    Some(keys.iter().map(|k| k.get().to_owned()).collect())
}

/// A section's header: its key path, and whether it is an `[[array]]`.
type Header = (Vec<String>, bool);

/// The base's part of a `config.toml` rendered from an older template: its
/// top-level keys and the first declaration of each k3s base table (with
/// its keys) that still parses with what is kept; other tables, repeated
/// ones and ones that would not parse are the older template's.
fn base_sections(generated: &str) -> String {
    // Sections: the top-level keys, then one per header line.
    let mut sections: Vec<(Option<Header>, String)> = vec![(None, String::new())];
    for line in generated.split_inclusive('\n') {
        if line.trim_start().starts_with('[')
            && let Some(path) = header_path(line)
        {
            sections.push((
                Some((path, line.trim_start().starts_with("[["))),
                String::new(),
            ));
        }
        if let Some((_, text)) = sections.last_mut() {
            text.push_str(line);
        }
    }
    let mut out = String::new();
    let mut seen: Vec<Vec<String>> = Vec::new();
    for (header, text) in sections {
        if let Some((path, aot)) = &header {
            if !matrix::k3s_base_table(path) || (!aot && seen.contains(path)) {
                continue;
            }
            // k3s' base templates write plain `key = value` lines only: a
            // dotted key or an inline table is a user template's.
            let plain = text.parse::<toml_edit::DocumentMut>().is_ok_and(|d| {
                let mut t = d.as_table();
                for k in path {
                    match t.get(k).and_then(|i| i.as_table()) {
                        Some(x) => t = x,
                        None => return *aot,
                    }
                }
                t.iter().all(|(_, i)| {
                    matches!(i, Item::Value(v) if !v.is_inline_table())
                        || matches!(i, Item::Table(x) if !x.is_dotted())
                })
            });
            let mut with = out.clone();
            with.push_str(&text);
            if !plain || with.parse::<toml_edit::DocumentMut>().is_err() {
                continue;
            }
            if !aot {
                seen.push(path.clone());
            }
        }
        out.push_str(&text);
    }
    let mut text = out.trim_end().to_owned();
    text.push('\n');
    text
}

/// A config rendered from a template over a [`BaseRender`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The `config.toml` RKE2 writes.
    pub text: String,
    /// Per line of the template file (index = line - 1): its row in
    /// [`Rendered::text`], `None` for a line that renders to nothing.
    rows: Vec<Option<usize>>,
}

impl Rendered {
    /// The `config.toml` row of a template line (1-based).
    pub fn row_of(&self, template_line: usize) -> Option<usize> {
        self.rows
            .get(template_line.checked_sub(1)?)
            .copied()
            .flatten()
    }
}

impl TemplateAnalysis {
    /// The base render inside `generated` (the node's `config.toml`): the
    /// text before the template's TOML when `config.toml` ends with it as
    /// [`trim_empty`] renders it ([`BaseOrigin::Current`]), else the base's
    /// part of a `config.toml` rendered from an older template
    /// ([`BaseOrigin::Earlier`]). `None` for a template that is not a base
    /// template.
    pub fn base_render(&self, generated: &str) -> Option<BaseRender> {
        if self.kind != TemplateKind::Base {
            return None;
        }
        let want: Vec<&str> = self
            .appended
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::trim_end)
            .collect();
        let mut have: Vec<(usize, &str)> = Vec::new();
        let mut offset = 0;
        for line in generated.split_inclusive('\n') {
            if !line.trim().is_empty() {
                have.push((offset, line.trim_end()));
            }
            offset += line.len();
        }
        let earlier = || BaseRender {
            text: base_sections(generated),
            origin: BaseOrigin::Earlier,
        };
        // With no TOML of its own, the template renders the base alone: a
        // config.toml with more than the base's tables is an older render.
        if have.len() < want.len() || (want.is_empty() && base_sections(generated) != generated) {
            return Some(earlier());
        }
        let tail = &have[have.len() - want.len()..];
        if tail.iter().map(|(_, l)| *l).ne(want.iter().copied()) {
            return Some(earlier());
        }
        let cut = tail.first().map(|(o, _)| *o).unwrap_or(generated.len());
        let mut text = generated[..cut].trim_end().to_owned();
        text.push('\n');
        Some(BaseRender {
            text,
            origin: BaseOrigin::Current,
        })
    }

    /// [`TemplateAnalysis::base_render`] for a template that extends the
    /// base of schema `version` (3 for `config-v3.toml.tmpl`, else 2):
    /// `None` also when `config.toml` was rendered from another schema's
    /// base (e.g. before a `config.toml.tmpl` replaced the default v3 base),
    /// which says nothing about the base the template extends.
    pub fn base_render_for(&self, generated: &str, version: i64) -> Option<BaseRender> {
        let b = self.base_render(generated)?;
        let v = config_head(&self.path, &b.text).map(|c| c.version());
        (b.is_current() || v == Some(version)).then_some(b)
    }

    /// The `config.toml` RKE2 renders from this base template over `base`:
    /// the base render, then the appended TOML through [`trim_empty`].
    pub fn render_over(&self, base: &str) -> Rendered {
        let mut text = base.trim_end().to_owned();
        if !text.is_empty() {
            text.push('\n');
        }
        let mut row = text.lines().count();
        let mut rows = vec![None; self.appended_line_offset()];
        for line in self.appended.lines() {
            if line.trim().is_empty() {
                rows.push(None);
                continue;
            }
            if line.starts_with('[') {
                text.push('\n');
                row += 1;
            }
            text.push_str(line);
            text.push('\n');
            row += 1;
            rows.push(Some(row));
        }
        Rendered { text, rows }
    }
}

fn collect_declared(t: &Table, path: &mut Vec<String>, out: &mut Vec<(isize, Vec<String>)>) {
    for (k, item) in t.iter() {
        path.push(k.to_owned());
        match item {
            Item::Table(sub) => {
                if !sub.is_implicit() || sub.is_dotted() {
                    out.push((sub.position().unwrap_or(isize::MAX), path.clone()));
                }
                collect_declared(sub, path, out);
            }
            Item::Value(v) if v.is_inline_table() => {
                out.push((isize::MAX, path.clone()));
            }
            _ => {}
        }
        path.pop();
    }
}

/// The declared tables of a standalone TOML document (see
/// [`TemplateAnalysis::declared_tables`]).
pub fn declared_tables_of(doc: &DocumentMut) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    collect_declared(doc.as_table(), &mut Vec::new(), &mut out);
    out.sort_by_key(|(p, _)| *p);
    out.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let a = TemplateAnalysis::analyze("/t", "version = 2\n[plugins]\n");
        assert_eq!(a.kind, TemplateKind::Static);
        let a =
            TemplateAnalysis::analyze("/t", "# mine\n{{- template \"base\" . -}}\n[x]\na = 1\n");
        assert_eq!(a.kind, TemplateKind::Base);
        assert_eq!(a.appended(), "[x]\na = 1\n");
        let a = TemplateAnalysis::analyze("/t", "{{ template \"base\" . }}\n[x]\na = {{ .Foo }}\n");
        assert_eq!(a.kind, TemplateKind::Other);
        let a = TemplateAnalysis::analyze("/t", "version = 2\nroot = {{ printf \"%q\" .R }}\n");
        assert_eq!(a.kind, TemplateKind::Other);
        let a = TemplateAnalysis::analyze("/t", "[x]\n{{ template \"base\" . }}\n");
        assert_eq!(a.kind, TemplateKind::Other);
    }

    #[test]
    fn in_use_follows_k3s() {
        assert_eq!(template_in_use(2, Some("a"), Some("b")), Some((3, "a")));
        assert_eq!(template_in_use(1, Some("a"), Some("b")), Some((2, "b")));
        assert_eq!(template_in_use(1, Some("a"), None), None);
        assert_eq!(template_in_use(2, None, Some("b")), Some((2, "b")));
    }

    #[test]
    fn trim_empty_as_k3s() {
        // k3s pkg/agent/templates trimEmpty: blank lines go, `[` lines get one before.
        assert_eq!(
            trim_empty("# h\nversion = 3\n\n\n[a]\n  x = 1\n   \n[b]\n"),
            "# h\nversion = 3\n\n[a]\n  x = 1\n\n[b]\n"
        );
    }

    #[test]
    fn base_render_is_found_before_the_appended_toml() {
        let t = "# mine\n{{ template \"base\" . }}\n\n[x]\n  a = 1\n\n\n[y]\n";
        let a = TemplateAnalysis::analyze("/t", t);
        let base = "# mine\nversion = 3\n\n[p]\n  k = 1\n";
        let rendered = a.render_over(base);
        assert_eq!(
            rendered.text,
            "# mine\nversion = 3\n\n[p]\n  k = 1\n\n[x]\n  a = 1\n\n[y]\n"
        );
        // Template line 4 is `[x]`, line 8 `[y]`; line 3 renders to nothing.
        assert_eq!(rendered.row_of(4), Some(7));
        assert_eq!(rendered.row_of(5), Some(8));
        assert_eq!(rendered.row_of(8), Some(10));
        assert_eq!(rendered.row_of(3), None);
        let b = a.base_render(&rendered.text);
        assert_eq!(
            b,
            Some(BaseRender {
                text: base.to_owned(),
                origin: BaseOrigin::Current
            })
        );
    }

    #[test]
    fn an_earlier_render_keeps_the_first_declaration_of_each_base_table() {
        // Rendered from an older template that added [x] and redeclared a
        // base table; the template now adds [y] only.
        let generated = "version = 3\n\n[plugins.'io.containerd.cri.v1.images']\n  snapshotter = \"overlayfs\"\n\n[x]\n  a = 1\n\n[plugins.\"io.containerd.cri.v1.images\"]\n  snapshotter = \"native\"\n";
        let a = TemplateAnalysis::analyze("/t", "{{ template \"base\" . }}\n[y]\n");
        let b = a.base_render(generated).expect("base");
        assert_eq!(b.origin, BaseOrigin::Earlier);
        assert_eq!(
            b.text,
            "version = 3\n\n[plugins.'io.containerd.cri.v1.images']\n  snapshotter = \"overlayfs\"\n"
        );
        assert!(
            TemplateAnalysis::analyze("/t", "version = 2\n")
                .base_render(generated)
                .is_none()
        );
    }

    #[test]
    fn bare_keys_after_base_are_refused() {
        let a = TemplateAnalysis::analyze("/t", "{{ template \"base\" . }}\nfoo = 1\n[x]\n");
        assert!(matches!(
            a.appended_document(),
            Err(Error::UnsupportedTemplate { .. })
        ));
    }

    #[test]
    fn declared_tables_in_order() -> Result<()> {
        let a = TemplateAnalysis::analyze(
            "/t",
            "{{ template \"base\" . }}\n[a.b]\nx = 1\n[a.b.c]\n[d]\ne.f = 1\n",
        );
        let got = a.declared_tables()?;
        let want: Vec<Vec<String>> = vec![
            vec!["a".into(), "b".into()],
            vec!["a".into(), "b".into(), "c".into()],
            vec!["d".into()],
            vec!["d".into(), "e".into()],
        ];
        let mut got_sorted = got.clone();
        got_sorted.sort();
        assert_eq!(got_sorted, want);
        Ok(())
    }
}
