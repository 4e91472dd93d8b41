//! Warnings for user `--set` flags that clobber computed values: Helm applies
//! `--set` after our `-f` file, index by index, so a user `toolkit.env[0]`
//! replaces our first entry instead of adding one.

use super::ComputedValues;
use super::user::split_unescaped_commas;
use serde_json::Value;

/// Warnings for user `--set`-style flags that would clobber a computed list
/// or value (Helm applies them after our `-f` file, index by index).
pub fn user_set_conflicts(computed: &ComputedValues, helm_args: &[String]) -> Vec<String> {
    const SET_FLAGS: &[&str] = &[
        "--set",
        "--set-string",
        "--set-json",
        "--set-file",
        "--set-literal",
    ];
    let mut assignments: Vec<(String, String)> = Vec::new();
    let mut it = helm_args.iter();
    while let Some(a) = it.next() {
        let (flag, val) = match a.split_once('=') {
            Some((f, v)) if SET_FLAGS.contains(&f) => (f.to_string(), v.to_string()),
            _ if SET_FLAGS.contains(&a.as_str()) => match it.next() {
                Some(v) => (a.clone(), v.clone()),
                None => continue,
            },
            _ => continue,
        };
        let parts: Vec<String> = if flag == "--set-json" || flag == "--set-literal" {
            vec![val]
        } else {
            split_unescaped_commas(&val)
        };
        for p in parts {
            let key = p.split_once('=').map(|(k, _)| k).unwrap_or(&p).to_string();
            assignments.push((flag.clone(), key));
        }
    }
    let mut warnings = Vec::new();
    for (flag, key) in assignments {
        for cv in &computed.values {
            let p = &cv.path;
            let hit_index = key.strip_prefix(p.as_str()).and_then(|rest| {
                rest.strip_prefix('[')
                    .and_then(|r| r.split_once(']'))
                    .and_then(|(n, _)| n.parse::<usize>().ok())
            });
            if let (Some(i), Value::Array(items)) = (hit_index, &cv.value) {
                let what = items
                    .get(i)
                    .and_then(|e| e.get("name"))
                    .and_then(Value::as_str)
                    .map(|n| format!("entry {i} ({n})"))
                    .unwrap_or_else(|| format!("index {i}"));
                warnings.push(format!(
                    "{flag} {key}: overwrites {what} of the computed {p} list (Helm applies --set after our -f file); to add an entry use index {} or pass the whole list in your own -f file",
                    items.len()
                ));
            } else if key == *p || key.starts_with(&format!("{p}.")) {
                warnings.push(format!(
                    "{flag} {key}: replaces the computed {p} (your value wins); computed because: {}",
                    cv.reason
                ));
            }
        }
    }
    warnings
}
