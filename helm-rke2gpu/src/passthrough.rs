//! Splits `install`/`upgrade`/`uninstall` arguments into ours and Helm's.
//!
//! Our flags are consumed; every other argument reaches `$HELM_BIN` verbatim
//! and in order. Helm flags that take a value in the next argument are listed
//! in [`HELM_VALUE_FLAGS`] so their values are not mistaken for NAME/CHART; an
//! unknown flag is taken as boolean, so give unknown value flags as
//! `--flag=value`. Everything after `--` passes through untouched.
//!
//! `--version` is both read (to pick the matrix row) and passed to Helm.
//! On `upgrade`, `--force` is Helm's own flag and passes through; use
//! `--rke2gpu-force` there (it works everywhere).

use std::path::Path;

/// Which wrapped Helm command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Install,
    Upgrade,
    Uninstall,
}

/// Helm (3 and 4) install/upgrade/uninstall flags that take a separate value.
pub const HELM_VALUE_FLAGS: &[&str] = &[
    "-f",
    "--values",
    "--set",
    "--set-string",
    "--set-file",
    "--set-json",
    "--set-literal",
    "--version",
    "--timeout",
    "--description",
    "--post-renderer",
    "--post-renderer-args",
    "--repo",
    "--username",
    "--password",
    "--ca-file",
    "--cert-file",
    "--key-file",
    "--keyring",
    "--name-template",
    "--labels",
    "-l",
    "--output",
    "-o",
    "--history-max",
    "--max-history",
    "--deletion-propagation",
    "--cascade",
    "--namespace",
    "-n",
    "--kube-context",
    "--kubeconfig",
    "--kube-apiserver",
    "--kube-as-user",
    "--kube-as-group",
    "--kube-ca-file",
    "--kube-tls-server-name",
    "--kube-token",
    "--registry-config",
    "--repository-cache",
    "--repository-config",
    "--burst-limit",
    "--qps",
];

/// Helm flags that locate a chart: forwarded to `helm show` as well.
pub const CHART_LOCATING_FLAGS: &[&str] = &[
    "--repo",
    "--devel",
    "--username",
    "--password",
    "--ca-file",
    "--cert-file",
    "--key-file",
    "--keyring",
    "--verify",
    "--insecure-skip-tls-verify",
    "--plain-http",
    "--pass-credentials",
];

/// Our flags, as parsed from a passthrough command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ours {
    pub nri: bool,
    pub legacy_2021: bool,
    pub force: bool,
    pub allow_generic: bool,
    pub cdi: Option<bool>,
    pub print_command: bool,
    pub output_helmchart: bool,
    pub cis: bool,
    pub nodes_file: Option<String>,
}

/// A split command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    pub positionals: Vec<String>,
    pub ours: Ours,
    /// `--version` (also kept in `helm`).
    pub version: Option<String>,
    /// `-n/--namespace` if it reached us (Helm normally strips it).
    pub namespace: Option<String>,
    pub kube_context: Option<String>,
    pub kubeconfig: Option<String>,
    pub dry_run: bool,
    pub generate_name: bool,
    /// Everything for Helm, in order (without `-n`, which we pass ourselves).
    pub helm: Vec<String>,
    pub help: bool,
}

impl Split {
    /// Whether Helm gets this flag (`--create-namespace`, `--install`).
    pub fn helm_has(&self, flag: &str) -> bool {
        self.helm
            .iter()
            .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
    }

    /// The chart-locating flags with their values, for `helm show`.
    pub fn chart_locating(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut it = self.helm.iter();
        while let Some(a) = it.next() {
            let name = a.split_once('=').map(|(n, _)| n).unwrap_or(a);
            if !CHART_LOCATING_FLAGS.contains(&name) {
                continue;
            }
            out.push(a.clone());
            if !a.contains('=')
                && HELM_VALUE_FLAGS.contains(&name)
                && let Some(v) = it.next()
            {
                out.push(v.clone());
            }
        }
        out
    }

    /// `--repo URL` if given.
    pub fn repo(&self) -> Option<String> {
        flag_value(&self.helm, "--repo")
    }
}

/// The value of `--flag V` / `--flag=V`.
pub fn flag_value(args: &[String], flag: &str) -> Option<String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == flag {
            return it.next().cloned();
        }
        if let Some(v) = a.strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
            return Some(v.to_string());
        }
    }
    None
}

fn parse_bool(flag: &str, v: &str) -> Result<bool, String> {
    match v {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        other => Err(format!("{flag}: expected true or false, got `{other}`")),
    }
}

/// Splits arguments (after the subcommand name).
pub fn split(args: &[String], mode: Mode) -> Result<Split, String> {
    let mut s = Split::default();
    let mut i = 0;
    let next = |i: &mut usize, flag: &str| -> Result<String, String> {
        *i += 1;
        args.get(*i)
            .cloned()
            .ok_or_else(|| format!("{flag} needs a value"))
    };
    while i < args.len() {
        let a = args[i].as_str();
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (a, None),
        };
        match name {
            "--" => {
                s.helm.extend(args[i + 1..].iter().cloned());
                break;
            }
            "-h" | "--help" => s.help = true,
            "--nri" => s.ours.nri = true,
            "--legacy-2021" => s.ours.legacy_2021 = true,
            "--allow-generic" => s.ours.allow_generic = true,
            "--print-command" => s.ours.print_command = true,
            "--cis" => s.ours.cis = true,
            "--rke2gpu-force" => s.ours.force = true,
            "--force" if mode != Mode::Upgrade => s.ours.force = true,
            "--cdi" => {
                let v = match inline {
                    Some(v) => v,
                    None => next(&mut i, "--cdi")?,
                };
                s.ours.cdi = Some(parse_bool("--cdi", &v)?);
            }
            "--nodes-file" => {
                s.ours.nodes_file = Some(match inline {
                    Some(v) => v,
                    None => next(&mut i, "--nodes-file")?,
                });
            }
            "-n" | "--namespace" => {
                s.namespace = Some(match inline {
                    Some(v) => v,
                    None => next(&mut i, name)?,
                });
            }
            "--output" | "-o" => {
                let v = match inline {
                    Some(v) => v,
                    None => next(&mut i, name)?,
                };
                if v == "helmchart" {
                    s.ours.output_helmchart = true;
                } else {
                    s.helm.push(name.to_string());
                    s.helm.push(v);
                }
            }
            _ if name.starts_with('-') => {
                s.helm.push(args[i].clone());
                if name == "--dry-run" {
                    s.dry_run = inline.as_deref() != Some("none");
                }
                if name == "--generate-name" || name == "-g" {
                    s.generate_name = true;
                }
                let takes_value = HELM_VALUE_FLAGS.contains(&name) && inline.is_none();
                // `-fvalues.yaml` (value attached) is not in the list: no value to take.
                if takes_value {
                    let v = next(&mut i, name)?;
                    match name {
                        "--version" => s.version = Some(v.clone()),
                        "--kube-context" => s.kube_context = Some(v.clone()),
                        "--kubeconfig" => s.kubeconfig = Some(v.clone()),
                        _ => {}
                    }
                    s.helm.push(v);
                } else if let Some(v) = inline {
                    match name {
                        "--version" => s.version = Some(v),
                        "--kube-context" => s.kube_context = Some(v),
                        "--kubeconfig" => s.kubeconfig = Some(v),
                        _ => {}
                    }
                }
            }
            _ => s.positionals.push(args[i].clone()),
        }
        i += 1;
    }
    if mode != Mode::Uninstall && s.positionals.len() > 2 {
        return Err(format!(
            "too many arguments: {:?}; expected [NAME] [CHART] (give unknown value flags as --flag=value)",
            s.positionals
        ));
    }
    Ok(s)
}

/// Whether a lone positional is a chart reference rather than a release name.
pub fn looks_like_chart(s: &str) -> bool {
    s.contains('/')
        || s.ends_with(".tgz")
        || s.ends_with(".tar.gz")
        || s.starts_with('.')
        || Path::new(s).exists()
}

/// Quotes an argument for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ours_are_consumed_the_rest_passes_in_order() {
        let s = split(
            &v(&[
                "my-gpu",
                "--nri",
                "--set",
                "a=b",
                "nvidia/gpu-operator",
                "--version",
                "v26.7.0",
                "--wait",
                "--cdi=false",
                "--timeout",
                "10m",
                "-o",
                "helmchart",
                "--unknown",
                "-fuser.yaml",
                "--dry-run=server",
            ]),
            Mode::Install,
        )
        .unwrap();
        assert_eq!(s.positionals, v(&["my-gpu", "nvidia/gpu-operator"]));
        assert!(s.ours.nri && s.ours.output_helmchart);
        assert_eq!(s.ours.cdi, Some(false));
        assert_eq!(s.version.as_deref(), Some("v26.7.0"));
        assert!(s.dry_run);
        assert_eq!(
            s.helm,
            v(&[
                "--set",
                "a=b",
                "--version",
                "v26.7.0",
                "--wait",
                "--timeout",
                "10m",
                "--unknown",
                "-fuser.yaml",
                "--dry-run=server"
            ])
        );
    }

    #[test]
    fn force_belongs_to_helm_on_upgrade() {
        let s = split(&v(&["--force"]), Mode::Upgrade).unwrap();
        assert!(!s.ours.force);
        assert_eq!(s.helm, v(&["--force"]));
        let s = split(&v(&["--force"]), Mode::Install).unwrap();
        assert!(s.ours.force && s.helm.is_empty());
        let s = split(&v(&["--rke2gpu-force"]), Mode::Upgrade).unwrap();
        assert!(s.ours.force);
    }

    #[test]
    fn errors_and_helpers() {
        assert!(split(&v(&["a", "b", "c"]), Mode::Install).is_err());
        assert!(split(&v(&["--cdi", "maybe"]), Mode::Install).is_err());
        assert!(split(&v(&["--set"]), Mode::Install).is_err());
        let s = split(
            &v(&["-o", "json", "--repo", "https://x", "--devel"]),
            Mode::Install,
        )
        .unwrap();
        assert_eq!(s.helm, v(&["-o", "json", "--repo", "https://x", "--devel"]));
        assert_eq!(s.chart_locating(), v(&["--repo", "https://x", "--devel"]));
        assert!(looks_like_chart("nvidia/gpu-operator"));
        assert!(!looks_like_chart("gpu-operator"));
        assert_eq!(
            shell_quote("toolkit.env[0].name=X"),
            "'toolkit.env[0].name=X'"
        );
        assert_eq!(shell_quote("--wait"), "--wait");
    }
}
