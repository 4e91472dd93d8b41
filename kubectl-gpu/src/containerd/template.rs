//! Analysis of RKE2 user templates (`config.toml.tmpl`, `config-v3.toml.tmpl`).
//!
//! A template is one of: *static* (no `{{`: a frozen copy of a rendered
//! config, the legacy 2021 recipe), a *base* template (`{{ template "base" . }}`
//! followed by plain TOML, k3s PR #7991), or *other* Go template text that we
//! cannot safely place tables into.

use toml_edit::{DocumentMut, Item, Table};

use crate::containerd::model::parse_toml;
use crate::error::{Error, Result};

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
