//! Rendering: kubectl-style tables (no borders, upper-case headers, two
//! spaces between columns), JSON and YAML of the same structs, and the
//! colour policy (only on a terminal, never with `--no-color`/`NO_COLOR`).

use crate::cli::OutputFormat;
use crate::error::{Error, Result};
use owo_colors::OwoColorize;
use serde::Serialize;
use tabled::builder::Builder;
use tabled::settings::{Padding, Style};

/// A kubectl-style table.
pub fn table<I, R, S>(headers: &[&str], rows: I) -> String
where
    I: IntoIterator<Item = R>,
    R: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut b = Builder::default();
    b.push_record(headers.iter().map(|h| h.to_uppercase()));
    let mut n = 0;
    for row in rows {
        b.push_record(row.into_iter().map(Into::into));
        n += 1;
    }
    if n == 0 {
        return String::new();
    }
    let mut t = b.build();
    t.with(Style::blank()).with(Padding::new(0, 1, 0, 0));
    let mut out = String::new();
    for line in t.to_string().lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Colours a status word when colour is on.
pub fn paint(text: &str, color: bool) -> String {
    if !color {
        return text.to_string();
    }
    match text {
        "ok" | "PASS" | "pass" | "Ready" | "ready" => text.green().to_string(),
        "warn" | "WARN" => text.yellow().to_string(),
        "FAIL" | "fail" | "NotReady" => text.red().bold().to_string(),
        "skipped" => text.dimmed().to_string(),
        _ => text.to_string(),
    }
}

/// JSON or YAML of a value (table formats are rendered by each command).
pub fn structured<T: Serialize>(value: &T, format: OutputFormat) -> Result<String> {
    match format {
        OutputFormat::Yaml => serde_saphyr::to_string(value)
            .map_err(|e| Error::Other(format!("cannot render YAML: {e}"))),
        _ => serde_json::to_string_pretty(value)
            .map(|mut s| {
                s.push('\n');
                s
            })
            .map_err(|e| Error::Other(format!("cannot render JSON: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_look_like_kubectl() {
        let t = table(
            &["name", "status"],
            [["gpu-1", "Ready"], ["node-with-long-name", "NotReady"]],
        );
        let lines: Vec<_> = t.lines().collect();
        assert_eq!(lines[0], "NAME                 STATUS");
        assert_eq!(lines[1], "gpu-1                Ready");
        assert_eq!(lines[2], "node-with-long-name  NotReady");
        assert_eq!(table(&["a"], Vec::<Vec<String>>::new()), "");
    }

    #[test]
    fn yaml_and_json_carry_the_same_fields() {
        #[derive(Serialize)]
        struct S {
            node_name: &'static str,
            gpus: u32,
        }
        let v = S {
            node_name: "n",
            gpus: 2,
        };
        let y = structured(&v, OutputFormat::Yaml).unwrap();
        let back: serde_json::Value = serde_saphyr::from_str(&y).unwrap();
        assert_eq!(back["node_name"], "n");
        assert_eq!(back["gpus"], 2);
        let j: serde_json::Value =
            serde_json::from_str(&structured(&v, OutputFormat::Json).unwrap()).unwrap();
        assert_eq!(j["gpus"], 2);
    }
}
