//! The user's own values (`-f`/`--values`, `--set`, `--set-string`,
//! `--set-json`, `--set-literal`), read only as far as our refusals need
//! them: the value Helm ends up with at one key path, and where it came
//! from. They are not merged into the computed file; Helm applies them after
//! it.
//!
//! Helm's precedence (`pkg/cli/values/options.go` `MergeValues`): the
//! values files in order, then every `--set-json`, then `--set`, then
//! `--set-string`, then `--set-file`, then `--set-literal`; within one kind
//! the later flag wins (Helm 4's `--set-json '{…}'` merges a whole object
//! like a file). `--set` types `true`/`false`/`null` and integers,
//! `--set-string` keeps strings. `--set-file` values are file contents and
//! are not read here.

use serde_json::Value;

/// One kind of value source, in Helm's order of application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Layer {
    File,
    Json,
    Set,
    String,
    Literal,
}

#[derive(Debug, Clone, PartialEq)]
enum Source {
    /// A values file's parsed tree.
    File(Value),
    /// One `key=value` assignment (dotted key).
    Assign(String, Value),
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    layer: Layer,
    /// Position on the command line (order within a layer).
    pos: usize,
    /// How the user wrote it, for messages (`--set operator.runtimeClass=foo`).
    origin: String,
    source: Source,
}

/// The effective value of one key and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct UserValue {
    pub value: Value,
    /// `--set operator.runtimeClass=foo`, `-f my-values.yaml`.
    pub origin: String,
}

/// The user's values, as Helm will layer them after ours.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserValues {
    entries: Vec<Entry>,
}

/// What reading the user's values produced: the values and the files that
/// could not be checked (a URL, stdin, an unreadable or non-YAML file).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadUserValues {
    pub values: UserValues,
    pub warnings: Vec<String>,
}

/// The value flags: name and layer; `None` for `--set-file`, which is
/// recognised (its value skipped) but not read.
const FLAGS: &[(&str, Option<Layer>)] = &[
    ("-f", Some(Layer::File)),
    ("--values", Some(Layer::File)),
    ("--set-json", Some(Layer::Json)),
    ("--set", Some(Layer::Set)),
    ("--set-string", Some(Layer::String)),
    ("--set-file", None),
    ("--set-literal", Some(Layer::Literal)),
];

impl UserValues {
    /// Reads the value flags in a Helm command line (the arguments after
    /// ours, in order; anything after `--` included, as Helm sees it).
    /// `read_file` reads a local values file.
    pub fn from_helm_args(
        args: &[String],
        read_file: &dyn Fn(&str) -> std::result::Result<String, String>,
    ) -> ReadUserValues {
        let mut out = ReadUserValues::default();
        let mut pos = 0;
        let mut it = args.iter().peekable();
        while let Some(a) = it.next() {
            let Some((flag, layer, inline)) = value_flag(a) else {
                continue;
            };
            let value = match inline {
                Some(v) => v,
                None => match it.next() {
                    Some(v) => v.clone(),
                    None => continue,
                },
            };
            let Some(layer) = layer else { continue };
            match layer {
                Layer::File => {
                    // `-f a.yaml,b.yaml` (Helm's flag is a string slice).
                    for path in value.split(',').filter(|p| !p.is_empty()) {
                        pos += 1;
                        match read_values_file(path, read_file) {
                            Ok(tree) => out.values.entries.push(Entry {
                                layer,
                                pos,
                                origin: format!("-f {path}"),
                                source: Source::File(tree),
                            }),
                            Err(why) => out.warnings.push(format!(
                                "{flag} {path}: not checked for values helm rke2gpu refuses ({why})"
                            )),
                        }
                    }
                }
                Layer::Literal => {
                    pos += 1;
                    if let Some((k, v)) = value.split_once('=') {
                        out.values.entries.push(Entry {
                            layer,
                            pos,
                            origin: format!("{flag} {value}"),
                            source: Source::Assign(k.to_string(), Value::String(v.to_string())),
                        });
                    }
                }
                // Helm 4: `--set-json '{"a":{"b":1}}'`, a whole object merged like a file.
                Layer::Json if value.trim_start().starts_with('{') => {
                    pos += 1;
                    match serde_json::from_str::<Value>(value.trim()) {
                        Ok(tree) => out.values.entries.push(Entry {
                            layer,
                            pos,
                            origin: format!("{flag} {value}"),
                            source: Source::File(tree),
                        }),
                        Err(e) => out.warnings.push(format!(
                            "{flag} {value}: not checked for values helm rke2gpu refuses (not JSON: {e})"
                        )),
                    }
                }
                _ => {
                    for part in split_unescaped_commas(&value) {
                        pos += 1;
                        let Some((k, v)) = part.split_once('=') else {
                            continue;
                        };
                        let v = unescape(v);
                        let typed = match layer {
                            Layer::Json => serde_json::from_str(&v).unwrap_or(Value::String(v)),
                            Layer::Set => typed_set_value(&v),
                            _ => Value::String(v),
                        };
                        out.values.entries.push(Entry {
                            layer,
                            pos,
                            origin: format!("{flag} {part}"),
                            source: Source::Assign(k.to_string(), typed),
                        });
                    }
                }
            }
        }
        out
    }

    /// The value Helm ends up with at a dotted key path (`operator.runtimeClass`), if the user set it.
    pub fn get(&self, path: &str) -> Option<UserValue> {
        let keys: Vec<&str> = path.split('.').collect();
        self.entries
            .iter()
            .filter_map(|e| {
                let value = match &e.source {
                    Source::Assign(k, v) if k == path => v.clone(),
                    Source::Assign(..) => return None,
                    Source::File(tree) => keys.iter().try_fold(tree, |cur, k| cur.get(*k))?.clone(),
                };
                Some((e.layer, e.pos, value, &e.origin))
            })
            .max_by_key(|(layer, pos, _, _)| (*layer, *pos))
            .map(|(_, _, value, origin)| UserValue {
                value,
                origin: origin.clone(),
            })
    }

    /// Every value the user set, layered into one tree as Helm applies
    /// them (files merged key by key, then the `--set*` assignments; a later
    /// one wins). `--set a[0].b=x` sets list items; `--set-file` is not read.
    pub fn merged(&self) -> Value {
        let mut entries: Vec<&Entry> = self.entries.iter().collect();
        entries.sort_by_key(|e| (e.layer, e.pos));
        let mut root = Value::Object(Default::default());
        for e in entries {
            match &e.source {
                Source::File(tree) => merge_into(&mut root, tree),
                Source::Assign(k, v) => set_path(&mut root, k, v.clone()),
            }
        }
        root
    }

    /// Whether the user set nothing we read.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// `--set`, `--set=…`, `-f`, `-fFILE`, `-f=FILE`: the flag, its layer and
/// an inline value.
fn value_flag(a: &str) -> Option<(&'static str, Option<Layer>, Option<String>)> {
    if let Some(rest) = a.strip_prefix("-f")
        && !a.starts_with("--")
    {
        let inline = (!rest.is_empty()).then(|| rest.strip_prefix('=').unwrap_or(rest).to_string());
        return Some(("-f", Some(Layer::File), inline));
    }
    let (name, inline) = match a.split_once('=') {
        Some((n, v)) => (n, Some(v.to_string())),
        None => (a, None),
    };
    FLAGS
        .iter()
        .find(|(f, _)| *f == name)
        .map(|(f, layer)| (*f, *layer, inline))
}

fn read_values_file(
    path: &str,
    read_file: &dyn Fn(&str) -> std::result::Result<String, String>,
) -> std::result::Result<Value, String> {
    if path == "-" {
        return Err("read from stdin by helm".into());
    }
    if path.contains("://") {
        return Err("a URL, fetched by helm".into());
    }
    let text = read_file(path)?;
    if text.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_saphyr::from_str::<Value>(&text).map_err(|e| format!("not YAML: {e}"))
}

/// Merges `over` into `base` as Helm coalesces values: maps key by key,
/// anything else replaced; a `null` removes the key.
pub fn merge_into(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                if v.is_null() {
                    b.remove(k);
                } else if let Some(slot) = b.get_mut(k).filter(|s| s.is_object() && v.is_object()) {
                    merge_into(slot, v);
                } else {
                    b.insert(k.clone(), v.clone());
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

/// One step of a `--set` key: a map key or a list index.
enum Step {
    Key(String),
    Index(usize),
}

/// `a.b[0].c` as steps (Helm `strvals`; escaped dots are not split).
fn steps(key: &str) -> Vec<Step> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = key.chars().peekable();
    let flush = |cur: &mut String, out: &mut Vec<Step>| {
        if !cur.is_empty() {
            out.push(Step::Key(std::mem::take(cur)));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '.' => flush(&mut cur, &mut out),
            '[' => {
                flush(&mut cur, &mut out);
                let mut idx = String::new();
                for n in chars.by_ref() {
                    if n == ']' {
                        break;
                    }
                    idx.push(n);
                }
                match idx.parse() {
                    Ok(i) => out.push(Step::Index(i)),
                    Err(_) => out.push(Step::Key(format!("[{idx}]"))),
                }
            }
            _ => cur.push(c),
        }
    }
    flush(&mut cur, &mut out);
    out
}

/// Sets a `--set` key path in a tree, creating maps and list items on the way.
fn set_path(root: &mut Value, key: &str, value: Value) {
    let steps = steps(key);
    let mut cur = root;
    for (i, step) in steps.iter().enumerate() {
        let last = i + 1 == steps.len();
        match step {
            Step::Key(k) => {
                if !cur.is_object() {
                    *cur = Value::Object(Default::default());
                }
                let Value::Object(map) = cur else { return };
                if last {
                    map.insert(k.clone(), value);
                    return;
                }
                cur = map.entry(k.clone()).or_insert(Value::Null);
            }
            Step::Index(n) => {
                if !cur.is_array() {
                    *cur = Value::Array(Vec::new());
                }
                let Value::Array(list) = cur else { return };
                while list.len() <= *n {
                    list.push(Value::Null);
                }
                if last {
                    list[*n] = value;
                    return;
                }
                cur = &mut list[*n];
            }
        }
    }
}

/// `--set`'s typing (Helm `strvals`): `true`, `false`, `null` and integers
/// are typed, everything else is a string.
fn typed_set_value(v: &str) -> Value {
    match v {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        "null" => Value::Null,
        _ => v
            .parse::<i64>()
            .ok()
            .filter(|_| !(v.len() > 1 && v.starts_with('0')))
            .map(Value::from)
            .unwrap_or_else(|| Value::String(v.to_string())),
    }
}

pub(super) fn split_unescaped_commas(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            cur.push(c);
            escaped = true;
        } else if c == ',' {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped || c != '\\' {
            out.push(c);
            escaped = false;
        } else {
            escaped = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn files(path: &str) -> std::result::Result<String, String> {
        match path {
            "rc.yaml" => {
                Ok("operator:\n  runtimeClass: from-file\ntoolkit:\n  enabled: false\n".into())
            }
            "rc2.yaml" => Ok("operator:\n  runtimeClass: second-file\n".into()),
            "empty.yaml" => Ok(String::new()),
            _ => Err("no such file".into()),
        }
    }

    #[test]
    fn merged_layers_files_then_sets() {
        let read = UserValues::from_helm_args(
            &args(&[
                "--set",
                "toolkit.env[1].name=B,cdi.enabled=true",
                "-f",
                "rc.yaml",
                "--set-string",
                "operator.runtimeClass=from-string",
                "-f",
                "rc2.yaml",
            ]),
            &files,
        );
        assert_eq!(
            read.values.merged(),
            json!({
                "operator": {"runtimeClass": "from-string"},
                "toolkit": {"enabled": false, "env": [null, {"name": "B"}]},
                "cdi": {"enabled": true},
            })
        );
        let mut base = json!({"a": {"b": 1, "c": 2}, "d": [1]});
        merge_into(&mut base, &json!({"a": {"b": null, "e": 3}, "d": [2]}));
        assert_eq!(base, json!({"a": {"c": 2, "e": 3}, "d": [2]}));
    }

    #[test]
    fn helm_precedence_files_then_set_kinds_in_order() {
        let r = UserValues::from_helm_args(
            &args(&[
                "--set-string",
                "operator.runtimeClass=from-set-string",
                "-f",
                "rc.yaml",
                "--set",
                "operator.runtimeClass=from-set,toolkit.enabled=true",
                "--values=rc2.yaml",
            ]),
            &files,
        );
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        // --set-string is applied after --set, whatever the order on the line.
        let rc = r.values.get("operator.runtimeClass").unwrap();
        assert_eq!(rc.value, json!("from-set-string"));
        assert_eq!(
            rc.origin,
            "--set-string operator.runtimeClass=from-set-string"
        );
        // --set types booleans and wins over the file.
        let tk = r.values.get("toolkit.enabled").unwrap();
        assert_eq!(
            (tk.value, tk.origin.as_str()),
            (json!(true), "--set toolkit.enabled=true")
        );
        // Files alone: the later file wins; a key only in the first one stays.
        let r =
            UserValues::from_helm_args(&args(&["-frc.yaml", "-f", "rc2.yaml,empty.yaml"]), &files);
        assert_eq!(
            r.values.get("operator.runtimeClass").unwrap().origin,
            "-f rc2.yaml"
        );
        assert_eq!(r.values.get("toolkit.enabled").unwrap().value, json!(false));
        assert_eq!(r.values.get("driver.enabled"), None);
        // Helm 4 --set-json with a whole object, applied after the files.
        let r = UserValues::from_helm_args(
            &args(&[
                "--set-json",
                "{\"operator\":{\"runtimeClass\":\"from-json\"}}",
                "-f",
                "rc.yaml",
            ]),
            &files,
        );
        assert_eq!(
            r.values.get("operator.runtimeClass").unwrap().value,
            json!("from-json")
        );
        assert_eq!(r.values.get("toolkit.enabled").unwrap().value, json!(false));
    }

    #[test]
    fn typing_escapes_and_files_we_cannot_read() {
        let r = UserValues::from_helm_args(
            &args(&[
                "--set",
                "a=007,b=12,c=null,d=x\\,y",
                "--set-json",
                "e={\"k\":1}",
                "--set-literal",
                "f=a,b",
                "--set-file",
                "g=path",
                "-f",
                "https://example.com/v.yaml",
                "-f",
                "-",
                "-f",
                "missing.yaml",
            ]),
            &files,
        );
        let v = |k: &str| r.values.get(k).map(|u| u.value);
        assert_eq!(v("a"), Some(json!("007")));
        assert_eq!(v("b"), Some(json!(12)));
        assert_eq!(v("c"), Some(Value::Null));
        assert_eq!(v("d"), Some(json!("x,y")));
        assert_eq!(v("e"), Some(json!({"k": 1})));
        assert_eq!(v("f"), Some(json!("a,b")));
        assert_eq!(v("g"), None);
        assert_eq!(r.warnings.len(), 3, "{:?}", r.warnings);
        assert!(r.warnings[0].contains("URL") && r.warnings[2].contains("missing.yaml"));
    }
}
