//! Reading host files through a node-agent pod in one exec: a
//! [`ProbeRequest`] becomes one POSIX `sh` script that prints every
//! requested path between markers, and [`ProbeResult::parse`] reads its
//! output back. Pure; the exec is [`crate::node::agent::Agents::probe`].

use std::collections::BTreeMap;

use crate::shell::quote;

const MARK: &str = "### kubectl-gpu";

/// What one probe asks for: files to cat and dirs to list (host paths).
#[derive(Debug, Clone, Default)]
pub struct ProbeRequest {
    pub files: Vec<String>,
    pub dirs: Vec<String>,
    /// Files read as bytes (printed by `od`), e.g. EFI variables.
    pub binary: Vec<String>,
    /// Paths only tested for existence (binaries).
    pub exists: Vec<String>,
}

/// What one probe read. `None`: the path does not exist (or is unreadable).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProbeResult {
    pub files: BTreeMap<String, Option<String>>,
    pub dirs: BTreeMap<String, Option<Vec<String>>>,
    pub binary: BTreeMap<String, Option<Vec<u8>>>,
    pub exists: BTreeMap<String, bool>,
}

impl ProbeRequest {
    /// A POSIX sh script that prints every requested path between markers,
    /// for the node agent (the host's root mounted at /host).
    pub fn script(&self) -> String {
        self.script_under("/host")
    }

    /// Runs the same script with this machine's `sh` over a local directory
    /// standing for the host's root (a node tree, a captured node's files).
    pub fn run_under(&self, root: &std::path::Path) -> std::io::Result<ProbeResult> {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(self.script_under(&root.to_string_lossy()))
            .output()?;
        Ok(ProbeResult::parse(&String::from_utf8_lossy(&out.stdout)))
    }

    fn script_under(&self, root: &str) -> String {
        let mut s = format!("H={}\n", quote(root));
        let sections: [(&str, &[String], &str, &str); 4] = [
            (
                "file",
                &self.files,
                "[ -f \"$H\"{q} ] && [ -r \"$H\"{q} ]",
                "cat \"$H\"{q}; rc=$?",
            ),
            (
                "dir",
                &self.dirs,
                "[ -d \"$H\"{q} ]",
                "ls -1a \"$H\"{q}; rc=$?",
            ),
            (
                "bin",
                &self.binary,
                "[ -f \"$H\"{q} ]",
                "od -An -tu1 -v \"$H\"{q}; rc=$?",
            ),
            ("exists", &self.exists, "[ -e \"$H\"{q} ]", "rc=0"),
        ];
        for (kind, paths, test, action) in sections {
            for path in paths {
                let q = quote(path);
                let test = test.replace("{q}", &q);
                let action = action.replace("{q}", &q);
                s.push_str(&format!(
                    "echo \"{MARK} {kind} \"{q}; if {test}; then {action}; else rc=2; fi; echo; echo \"{MARK} end rc=$rc\"\n"
                ));
            }
        }
        s
    }
}

impl ProbeResult {
    /// Parses the script's output.
    pub fn parse(out: &str) -> Self {
        let mut result = ProbeResult::default();
        let mut rest = out;
        let header = format!("{MARK} ");
        while let Some(start) = rest.find(&header) {
            let after = &rest[start + header.len()..];
            let Some(nl) = after.find('\n') else { break };
            let head = &after[..nl];
            let body_start = &after[nl + 1..];
            let end_mark = format!("\n{MARK} end rc=");
            let (body, tail) = match body_start.find(&end_mark) {
                Some(i) => (&body_start[..i], &body_start[i + end_mark.len()..]),
                None => (body_start, ""),
            };
            let rc: i32 = tail
                .split_whitespace()
                .next()
                .and_then(|r| r.parse().ok())
                .unwrap_or(1);
            rest = tail;
            let Some((kind, path)) = head.split_once(' ') else {
                continue;
            };
            let ok = rc == 0;
            match kind {
                "file" => {
                    result
                        .files
                        .insert(path.to_string(), ok.then(|| body.to_string()));
                }
                "dir" => {
                    result.dirs.insert(
                        path.to_string(),
                        ok.then(|| {
                            body.lines()
                                .filter(|l| !l.is_empty() && *l != "." && *l != "..")
                                .map(str::to_string)
                                .collect()
                        }),
                    );
                }
                "exists" => {
                    result.exists.insert(path.to_string(), ok);
                }
                "bin" => {
                    result.binary.insert(
                        path.to_string(),
                        ok.then(|| {
                            body.split_whitespace()
                                .filter_map(|b| b.parse().ok())
                                .collect()
                        }),
                    );
                }
                _ => {}
            }
        }
        result
    }

    pub fn file(&self, path: &str) -> Option<&str> {
        self.files.get(path).and_then(|f| f.as_deref())
    }

    pub fn dir(&self, path: &str) -> Option<&[String]> {
        self.dirs.get(path).and_then(|d| d.as_deref())
    }

    pub fn exists(&self, path: &str) -> bool {
        self.exists.get(path).copied().unwrap_or(false)
            || self.files.get(path).is_some_and(|f| f.is_some())
            || self.dirs.get(path).is_some_and(|d| d.is_some())
    }

    /// Adds another probe's results (later reads win).
    pub fn merge(&mut self, other: ProbeResult) {
        self.files.extend(other.files);
        self.dirs.extend(other.dirs);
        self.binary.extend(other.binary);
        self.exists.extend(other.exists);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the probe script with a real sh over a temp dir standing in for /host.
    #[test]
    fn probe_script_round_trips_through_sh() {
        let root = tempfile::tempdir().unwrap();
        let host = root.path().join("host");
        std::fs::create_dir_all(host.join("etc/x")).unwrap();
        std::fs::write(host.join("etc/a.toml"), "version = 3\n[plugins]\n").unwrap();
        std::fs::write(host.join("etc/no-newline"), "abc").unwrap();
        std::fs::write(host.join("etc/x/one.toml"), "").unwrap();
        std::fs::write(host.join("etc/sb"), [6u8, 0, 0, 0, 1]).unwrap();
        let req = ProbeRequest {
            files: vec![
                "/etc/a.toml".into(),
                "/etc/no-newline".into(),
                "/etc/missing".into(),
                "/etc/x/one.toml".into(),
            ],
            dirs: vec!["/etc/x".into(), "/etc/none".into()],
            binary: vec!["/etc/sb".into()],
            exists: vec!["/etc/x".into(), "/etc/nope".into()],
        };
        let r = req.run_under(&host).unwrap();
        assert_eq!(r.file("/etc/a.toml"), Some("version = 3\n[plugins]\n"));
        assert_eq!(r.file("/etc/no-newline"), Some("abc"));
        assert_eq!(r.file("/etc/missing"), None);
        assert_eq!(r.file("/etc/x/one.toml"), Some(""));
        assert_eq!(r.dir("/etc/x"), Some(&["one.toml".to_string()][..]));
        assert_eq!(r.dir("/etc/none"), None);
        assert_eq!(r.binary.get("/etc/sb"), Some(&Some(vec![6, 0, 0, 0, 1])));
        assert_eq!(r.exists.get("/etc/x"), Some(&true));
        assert_eq!(r.exists.get("/etc/nope"), Some(&false));
    }

    /// Paths that need quoting (space, quote, `$`) reach sh intact.
    #[test]
    fn probe_script_quotes_odd_paths() {
        let root = tempfile::tempdir().unwrap();
        let host = root.path().join("host");
        std::fs::create_dir_all(host.join("etc")).unwrap();
        std::fs::write(host.join("etc/a b's $x"), "odd\n").unwrap();
        let req = ProbeRequest {
            files: vec!["/etc/a b's $x".into(), "/etc/plain.toml".into()],
            ..ProbeRequest::default()
        };
        let script = req.script();
        assert!(script.contains("cat \"$H\"'/etc/a b'\\''s $x'"), "{script}");
        assert!(script.contains("cat \"$H\"/etc/plain.toml;"), "{script}");
        let r = req.run_under(&host).unwrap();
        assert_eq!(r.file("/etc/a b's $x"), Some("odd\n"));
        assert_eq!(r.file("/etc/plain.toml"), None);
    }
}
