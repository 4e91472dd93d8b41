//! Rendering computed values: the values file with `# why` / `# source`
//! comments above every value ([`ComputedValues::to_yaml`]), the nested tree
//! Helm sees ([`ComputedValues::tree`]) and the same values as
//! `--set`/`--set-string` arguments ([`ComputedValues::set_flags`]).

use super::{ComputedValue, ComputedValues};
use serde_json::Value;
use std::fmt::Write as _;

enum TreeNode {
    Leaf(usize),
    Map(Vec<(String, TreeNode)>),
}

fn insert(tree: &mut Vec<(String, TreeNode)>, keys: &[&str], idx: usize) {
    let Some((first, rest)) = keys.split_first() else {
        return;
    };
    let pos = tree.iter().position(|(k, _)| k == first);
    if rest.is_empty() {
        match pos {
            Some(p) => tree[p].1 = TreeNode::Leaf(idx),
            None => tree.push((first.to_string(), TreeNode::Leaf(idx))),
        }
        return;
    }
    let p = match pos {
        Some(p) => {
            if matches!(tree[p].1, TreeNode::Leaf(_)) {
                tree[p].1 = TreeNode::Map(Vec::new());
            }
            p
        }
        None => {
            tree.push((first.to_string(), TreeNode::Map(Vec::new())));
            tree.len() - 1
        }
    };
    if let TreeNode::Map(m) = &mut tree[p].1 {
        insert(m, rest, idx);
    }
}

fn build_tree(values: &[ComputedValue]) -> Vec<(String, TreeNode)> {
    let mut tree = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let keys: Vec<&str> = v.path.split('.').collect();
        insert(&mut tree, &keys, i);
    }
    tree
}

fn yaml_key(k: &str) -> String {
    let plain = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && k.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && !matches!(
            k.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain {
        k.to_string()
    } else {
        Value::String(k.to_string()).to_string()
    }
}

/// A scalar or empty container in flow form (JSON is valid YAML flow).
fn inline(v: &Value) -> Option<String> {
    match v {
        Value::Array(a) if a.is_empty() => Some("[]".into()),
        Value::Object(o) if o.is_empty() => Some("{}".into()),
        Value::Array(_) | Value::Object(_) => None,
        other => Some(other.to_string()),
    }
}

fn write_entry(out: &mut String, indent: usize, key: &str, v: &Value) {
    let pad = " ".repeat(indent);
    let key = yaml_key(key);
    if let Some(s) = inline(v) {
        let _ = writeln!(out, "{pad}{key}: {s}");
        return;
    }
    let _ = writeln!(out, "{pad}{key}:");
    write_block(out, indent + 2, v);
}

fn write_block(out: &mut String, indent: usize, v: &Value) {
    match v {
        Value::Object(o) => {
            for (k, val) in o {
                write_entry(out, indent, k, val);
            }
        }
        Value::Array(a) => {
            let pad = " ".repeat(indent);
            for item in a {
                if let Some(s) = inline(item) {
                    let _ = writeln!(out, "{pad}- {s}");
                    continue;
                }
                let mut inner = String::new();
                write_block(&mut inner, indent + 2, item);
                let first_pad = " ".repeat(indent + 2);
                let replaced = inner.replacen(&first_pad, &format!("{pad}- "), 1);
                out.push_str(&replaced);
            }
        }
        other => {
            let _ = writeln!(out, "{}{}", " ".repeat(indent), other);
        }
    }
}

fn write_comment(out: &mut String, indent: usize, first: &str, text: &str) {
    const WIDTH: usize = 100;
    let pad = " ".repeat(indent);
    let mut line = format!("{pad}# {first}");
    let cont = format!("{pad}#   ");
    let mut at_start = true;
    for word in text.split_whitespace() {
        if !at_start && line.chars().count() + 1 + word.chars().count() > WIDTH {
            out.push_str(&line);
            out.push('\n');
            line = cont.clone();
            at_start = true;
        }
        if !at_start {
            line.push(' ');
        }
        line.push_str(word);
        at_start = false;
    }
    out.push_str(&line);
    out.push('\n');
}

fn write_tree(
    out: &mut String,
    indent: usize,
    tree: &[(String, TreeNode)],
    values: &[ComputedValue],
) {
    let pad = " ".repeat(indent);
    for (key, node) in tree {
        match node {
            TreeNode::Leaf(i) => {
                let cv = &values[*i];
                write_comment(out, indent, "why: ", &cv.reason);
                write_comment(out, indent, "source: ", &cv.source);
                write_entry(out, indent, key, &cv.value);
            }
            TreeNode::Map(m) => {
                let _ = writeln!(out, "{pad}{}:", yaml_key(key));
                write_tree(out, indent + 2, m, values);
            }
        }
    }
}

impl ComputedValues {
    /// The values as one nested tree (what Helm sees).
    pub fn tree(&self) -> Value {
        let mut root = Value::Object(Default::default());
        for cv in &self.values {
            let mut cur = &mut root;
            let keys: Vec<&str> = cv.path.split('.').collect();
            for (i, k) in keys.iter().enumerate() {
                if !cur.is_object() {
                    *cur = Value::Object(Default::default());
                }
                let Value::Object(map) = cur else { break };
                if i + 1 == keys.len() {
                    map.insert((*k).to_string(), cv.value.clone());
                    break;
                }
                cur = map
                    .entry((*k).to_string())
                    .or_insert_with(|| Value::Object(Default::default()));
            }
        }
        root
    }

    /// The values file: a header, then every value with `# why` and
    /// `# source` comments above it. Warnings are repeated as comments.
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        write_comment(
            &mut out,
            0,
            "",
            &format!(
                "GPU Operator values computed by helm rke2gpu for chart {} (matrix row {}). Pass this file first (-f) so your own -f/--set win.",
                self.chart_version, self.chart_row
            ),
        );
        for w in &self.warnings {
            write_comment(&mut out, 0, "WARNING: ", w);
        }
        if self.values.is_empty() {
            out.push_str("{}\n");
            return out;
        }
        let tree = build_tree(&self.values);
        write_tree(&mut out, 0, &tree, &self.values);
        out
    }

    /// The same values as `helm --set`/`--set-string` arguments: strings go
    /// through `--set-string` so `"true"`/`"false"` stay strings.
    pub fn set_flags(&self) -> Vec<String> {
        let mut out = Vec::new();
        for cv in &self.values {
            flatten(&cv.path, &cv.value, &mut out);
        }
        out
    }
}

pub(super) fn escape_strval(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c == '\\' || c == ',' || (i == 0 && (c == '{' || c == '[')) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn flatten(path: &str, v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) if !o.is_empty() => {
            for (k, val) in o {
                flatten(&format!("{path}.{k}"), val, out);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for (i, val) in a.iter().enumerate() {
                flatten(&format!("{path}[{i}]"), val, out);
            }
        }
        Value::Array(_) => {
            out.push("--set".into());
            out.push(format!("{path}={{}}"));
        }
        Value::Object(_) => {
            out.push("--set-json".into());
            out.push(format!("{path}={{}}"));
        }
        Value::String(s) => {
            out.push("--set-string".into());
            out.push(format!("{path}={}", escape_strval(s)));
        }
        other => {
            out.push("--set".into());
            out.push(format!("{path}={other}"));
        }
    }
}
