//! `kubectl gpu version`: the plugin's version, git commit and build date.
//! Needs no cluster. `-o json|yaml` for scripts (`-o table|wide` print one
//! line). The commit comes from `GIT_COMMIT` at build time (`release/build`
//! sets it), the date from `SOURCE_DATE_EPOCH` (see build.rs).

use anyhow::Result;
use rke2gpu::cli::{OutputFormat, OutputOpts};
use serde::Serialize;

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Info {
    pub name: &'static str,
    pub version: &'static str,
    pub git_commit: &'static str,
    pub build_date: &'static str,
    pub target: String,
}

pub fn info() -> Info {
    Info {
        name: "kubectl-gpu",
        version: env!("CARGO_PKG_VERSION"),
        git_commit: option_env!("GIT_COMMIT").unwrap_or("unknown"),
        build_date: env!("BUILD_DATE"),
        target: format!("{}/{}", std::env::consts::OS, go_arch()),
    }
}

/// The architecture as Go, krew and Helm name it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

pub fn render(info: &Info, format: OutputFormat) -> Result<String> {
    Ok(match format {
        OutputFormat::Json => serde_json::to_string_pretty(info)? + "\n",
        OutputFormat::Yaml => serde_saphyr::to_string(info)?,
        OutputFormat::Table | OutputFormat::Wide => format!(
            "{} {} (commit {}, built {}, {})\n",
            info.name, info.version, info.git_commit, info.build_date, info.target
        ),
    })
}

pub fn run(out: &OutputOpts) -> Result<u8> {
    print!("{}", render(&info(), out.output)?);
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_documented_keys() {
        let v: serde_json::Value =
            serde_json::from_str(&render(&info(), OutputFormat::Json).unwrap()).unwrap();
        for k in ["name", "version", "gitCommit", "buildDate", "target"] {
            assert!(v.get(k).is_some_and(|x| x.is_string()), "missing {k}: {v}");
        }
        assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn text_is_one_line() {
        let t = render(&info(), OutputFormat::Table).unwrap();
        assert!(t.starts_with("kubectl-gpu ") && t.ends_with(")\n") && t.lines().count() == 1);
    }
}
