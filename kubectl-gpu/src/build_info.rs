//! What `kubectl gpu version` and `helm rke2gpu version` print: version, git
//! commit and build date (stamped by each binary's build.rs), and the
//! platform as Go, krew and Helm name it. One shape, one rendering.

use crate::cli::OutputFormat;
use crate::error::{Error, Result};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BuildInfo {
    pub name: &'static str,
    pub version: &'static str,
    pub git_commit: &'static str,
    pub build_date: &'static str,
    pub target: String,
}

impl BuildInfo {
    pub fn new(
        name: &'static str,
        version: &'static str,
        git_commit: Option<&'static str>,
        build_date: &'static str,
    ) -> Self {
        BuildInfo {
            name,
            version,
            git_commit: git_commit.unwrap_or("unknown"),
            build_date,
            target: format!("{}/{}", std::env::consts::OS, go_arch()),
        }
    }

    /// One line for tables, JSON/YAML otherwise.
    pub fn render(&self, format: OutputFormat) -> Result<String> {
        match format {
            OutputFormat::Table | OutputFormat::Wide => Ok(format!(
                "{} {} (commit {}, built {}, {})\n",
                self.name, self.version, self.git_commit, self.build_date, self.target
            )),
            other => {
                crate::render::structured(self, other).map_err(|e| Error::Other(e.to_string()))
            }
        }
    }
}

/// The architecture as Go, krew and Helm name it.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_documented_keys() {
        let info = BuildInfo::new("kubectl-gpu", "0.1.0", None, "2026-12-01");
        let v: serde_json::Value =
            serde_json::from_str(&info.render(OutputFormat::Json).unwrap()).unwrap();
        for k in ["name", "version", "gitCommit", "buildDate", "target"] {
            assert!(v.get(k).is_some_and(|x| x.is_string()), "missing {k}: {v}");
        }
        assert_eq!(v["gitCommit"], "unknown");
        let t = info.render(OutputFormat::Table).unwrap();
        assert!(
            t.starts_with("kubectl-gpu 0.1.0 (commit unknown, built 2026-12-01, ")
                && t.lines().count() == 1
        );
    }
}
