//! The Helm command lines `helm rke2gpu` runs, as pure functions: the
//! split of the user's `install`/`upgrade`/`uninstall` arguments into ours
//! and Helm's, the release, chart and namespace they name, and the argv with
//! the computed values first (`-f computed.yaml`) so the user's own
//! `-f`/`--set` win.
//!
//! Our flags are consumed, recognised from their one clap definition
//! ([`PluginFlags`], which `helm rke2gpu values` parses directly); every
//! other argument reaches `$HELM_BIN` verbatim and in order. Helm flags that
//! take a value in the next argument are listed in [`HELM_VALUE_FLAGS`] so
//! their values are not mistaken for NAME/CHART; an unknown flag is taken as
//! boolean, so give unknown value flags as `--flag=value`. Everything after
//! `--` passes through untouched.
//!
//! `--version` and `--skip-crds` are both read (the matrix row; no CRD step
//! on upgrade) and passed to Helm; `--yes` is ours.
//! On `upgrade`, `--force` is Helm's own flag and passes through; use
//! `--rke2gpu-force` there (it works everywhere).

use super::chart::DEFAULT_CHART_REF;
use super::values::{ValuesOptions, parse_bool_flag};
use crate::labels::PSA_ENFORCE;
use crate::matrix::PSA_PRIVILEGED;
use clap::{Args, FromArgMatches};
use std::path::{Path, PathBuf};

/// The release name used when none is given.
pub const DEFAULT_RELEASE: &str = "gpu-operator";
/// The namespace used when Helm's is the `default` fallback.
pub const DEFAULT_NAMESPACE: &str = "gpu-operator";

/// Which wrapped Helm command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Install,
    Upgrade,
    Uninstall,
}

impl Mode {
    /// The Helm subcommand.
    pub fn verb(self) -> &'static str {
        match self {
            Mode::Install => "install",
            Mode::Upgrade => "upgrade",
            Mode::Uninstall => "uninstall",
        }
    }
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

/// Our flags shared by `values`, `install` and `upgrade`: the one
/// definition, parsed by clap for `values` and recognised by [`split`] in a
/// passthrough command line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Args)]
pub struct PluginFlags {
    #[command(flatten)]
    pub values: ValuesOptions,
    /// Treat the cluster as RKE2 `profile: cis` (label the namespace PSA-privileged).
    #[arg(long, help = "Treat the cluster as RKE2 `profile: cis`")]
    pub cis: bool,
    /// Read nodes from `kubectl get nodes -o json` output, not the cluster.
    #[arg(
        long,
        help = "Read nodes from `kubectl get nodes -o json` output instead of the cluster"
    )]
    pub nodes_file: Option<PathBuf>,
}

/// A split command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    pub positionals: Vec<String>,
    /// Our flags.
    pub ours: PluginFlags,
    /// `--print-command`: print the plain helm command and exit.
    pub print_command: bool,
    /// `--output helmchart` / `-o helmchart`: print an RKE2 HelmChart and exit.
    pub output_helmchart: bool,
    /// `--version` (also kept in `helm`).
    pub version: Option<String>,
    /// `-n/--namespace` if it reached us (Helm normally strips it).
    pub namespace: Option<String>,
    pub kube_context: Option<String>,
    pub kubeconfig: Option<String>,
    pub dry_run: bool,
    pub generate_name: bool,
    /// `--skip-crds` (also kept in `helm`): on upgrade, no CRD step.
    pub skip_crds: bool,
    /// `--yes`: apply the chart's CRDs on upgrade without asking (consumed).
    pub yes: bool,
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

    /// The release name and chart reference: defaults `gpu-operator` and
    /// `nvidia/gpu-operator`; a lone argument that looks like a chart (or
    /// any lone argument with `--generate-name`) is the chart.
    pub fn release_and_chart(&self) -> (String, String) {
        match self.positionals.as_slice() {
            [] => (DEFAULT_RELEASE.to_string(), DEFAULT_CHART_REF.to_string()),
            [one] if self.generate_name || looks_like_chart(one) => {
                (DEFAULT_RELEASE.to_string(), one.clone())
            }
            [one] => (one.clone(), DEFAULT_CHART_REF.to_string()),
            [name, chart, ..] => (name.clone(), chart.clone()),
        }
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

/// The clap command holding our flags (their one definition).
fn our_command() -> clap::Command {
    PluginFlags::augment_args(
        clap::Command::new("rke2gpu")
            .no_binary_name(true)
            .args_override_self(true),
    )
}

/// Our flag named `--name` (or an alias): its canonical `--long` and whether
/// it takes a value.
fn our_flag(cmd: &clap::Command, name: &str) -> Option<(String, bool)> {
    let long = name.strip_prefix("--")?;
    cmd.get_arguments()
        .find(|a| {
            a.get_long() == Some(long)
                || a.get_all_aliases()
                    .is_some_and(|aliases| aliases.contains(&long))
        })
        .and_then(|a| {
            a.get_long()
                .map(|l| (format!("--{l}"), a.get_action().takes_values()))
        })
}

/// Splits arguments (after the subcommand name).
pub fn split(args: &[String], mode: Mode) -> Result<Split, String> {
    let cmd = our_command();
    let mut ours: Vec<String> = Vec::new();
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
        let mine = match name {
            // On upgrade `--force` is Helm's; `--rke2gpu-force` stays ours.
            "--force" if mode == Mode::Upgrade => None,
            _ => our_flag(&cmd, name),
        };
        if let Some((long, takes_value)) = mine {
            ours.push(long.clone());
            if takes_value {
                let v = match inline {
                    Some(v) => v,
                    None => next(&mut i, name)?,
                };
                if long == "--cdi" {
                    // Normalised for clap's `true|false` parser.
                    let b = parse_bool_flag(&v).map_err(|e| format!("{long}: {e}"))?;
                    ours.push(b.to_string());
                } else {
                    ours.push(v);
                }
            }
            i += 1;
            continue;
        }
        match name {
            "--" => {
                s.helm.extend(args[i + 1..].iter().cloned());
                break;
            }
            "-h" | "--help" => s.help = true,
            "--print-command" => s.print_command = true,
            "--yes" => s.yes = true,
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
                    s.output_helmchart = true;
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
                if name == "--skip-crds" {
                    s.skip_crds = inline.as_deref() != Some("false");
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
    let matches = cmd.try_get_matches_from(ours).map_err(|e| e.to_string())?;
    s.ours = PluginFlags::from_arg_matches(&matches).map_err(|e| e.to_string())?;
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

/// The operator namespace: `-n` if it reached us, else `HELM_NAMESPACE`
/// unless it is Helm's `default` fallback, else `gpu-operator`.
pub fn namespace(flag: Option<&str>, helm_namespace: Option<&str>) -> String {
    flag.map(str::to_string)
        .or_else(|| {
            helm_namespace
                .filter(|n| !n.is_empty() && *n != "default")
                .map(str::to_string)
        })
        .unwrap_or_else(|| DEFAULT_NAMESPACE.into())
}

/// A `helm install|upgrade` command line around the computed values: `head`
/// goes before them, `tail` (our `--version` pin, then the user's flags)
/// after, so the user's `-f`/`--set` win.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrapArgv {
    pub head: Vec<String>,
    pub tail: Vec<String>,
}

impl WrapArgv {
    /// `head`, then `-n NS` and `--create-namespace` on install (or
    /// `upgrade --install`) unless given; `tail` gets `--version PIN` when
    /// the user gave none and the chart came from a repository.
    pub fn new(
        mode: Mode,
        split: &Split,
        release: &str,
        chart_ref: &str,
        namespace: &str,
        pin_version: Option<&str>,
    ) -> Self {
        let mut head: Vec<String> = vec![mode.verb().into()];
        if !split.generate_name {
            head.push(release.to_string());
        }
        head.push(chart_ref.to_string());
        head.extend(["-n".to_string(), namespace.to_string()]);
        let wants_create_ns =
            mode == Mode::Install || split.helm_has("--install") || split.helm_has("-i");
        if wants_create_ns && !split.helm_has("--create-namespace") {
            head.push("--create-namespace".into());
        }
        let mut tail: Vec<String> = Vec::new();
        if let Some(v) = pin_version {
            tail.extend(["--version".to_string(), v.to_string()]);
        }
        tail.extend(split.helm.iter().cloned());
        Self { head, tail }
    }

    /// The argv with the computed values file first.
    pub fn with_values_file(&self, path: &str) -> Vec<String> {
        let mut argv = self.head.clone();
        argv.extend(["-f".to_string(), path.to_string()]);
        argv.extend(self.tail.iter().cloned());
        argv
    }

    /// The argv with the computed values as `--set` flags first.
    pub fn with_set_flags(&self, set_flags: Vec<String>) -> Vec<String> {
        let mut argv = self.head.clone();
        argv.extend(set_flags);
        argv.extend(self.tail.iter().cloned());
        argv
    }
}

/// What `--print-command` prints: the namespace labelling (CIS) and the
/// plain `helm` command, one per line.
pub fn print_command(argv: &[String], namespace: &str, needs_privileged: bool) -> String {
    let mut out = String::new();
    if needs_privileged {
        out.push_str(&format!(
            "kubectl create namespace {namespace} --dry-run=client -o yaml | kubectl apply -f - && kubectl label ns {namespace} {PSA_ENFORCE}={PSA_PRIVILEGED} --overwrite\n"
        ));
    }
    out.push_str(&display_cmd("helm", argv));
    out.push('\n');
    out
}

/// `helm uninstall` releases (default `gpu-operator`) in a namespace, with
/// the user's flags after.
pub fn uninstall_argv(split: &Split, namespace: &str) -> (Vec<String>, Vec<String>) {
    let releases = if split.positionals.is_empty() {
        vec![DEFAULT_RELEASE.to_string()]
    } else {
        split.positionals.clone()
    };
    let mut argv = vec!["uninstall".to_string()];
    argv.extend(releases.iter().cloned());
    argv.extend(["-n".to_string(), namespace.to_string()]);
    argv.extend(split.helm.iter().cloned());
    (releases, argv)
}

/// A command line for messages, each argument shell-quoted.
pub fn display_cmd(bin: &str, args: &[String]) -> String {
    std::iter::once(bin.to_string())
        .chain(args.iter().map(|a| crate::shell::quote(a)))
        .collect::<Vec<_>>()
        .join(" ")
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
        assert!(s.ours.values.nri && s.output_helmchart);
        assert_eq!(s.ours.values.cdi, Some(false));
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
    fn skip_crds_is_read_and_passed_on_yes_is_ours() {
        let s = split(&v(&["--skip-crds", "--yes", "--wait"]), Mode::Upgrade).unwrap();
        assert!(s.skip_crds && s.yes);
        assert_eq!(s.helm, v(&["--skip-crds", "--wait"]));
        let s = split(&v(&["--skip-crds=false"]), Mode::Upgrade).unwrap();
        assert!(!s.skip_crds && !s.yes);
    }

    #[test]
    fn force_belongs_to_helm_on_upgrade() {
        let s = split(&v(&["--force"]), Mode::Upgrade).unwrap();
        assert!(!s.ours.values.force);
        assert_eq!(s.helm, v(&["--force"]));
        let s = split(&v(&["--force"]), Mode::Install).unwrap();
        assert!(s.ours.values.force && s.helm.is_empty());
        let s = split(&v(&["--rke2gpu-force"]), Mode::Upgrade).unwrap();
        assert!(s.ours.values.force);
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
            crate::shell::quote("toolkit.env[0].name=X"),
            "'toolkit.env[0].name=X'"
        );
        assert_eq!(crate::shell::quote("--wait"), "--wait");
    }

    #[test]
    fn computed_values_go_first_user_flags_after() {
        let s = split(
            &v(&["my-gpu", "--set", "a=b", "-f", "mine.yaml", "--wait"]),
            Mode::Install,
        )
        .unwrap();
        let (release, chart) = s.release_and_chart();
        assert_eq!(
            (release.as_str(), chart.as_str()),
            ("my-gpu", DEFAULT_CHART_REF)
        );
        let argv = WrapArgv::new(
            Mode::Install,
            &s,
            &release,
            &chart,
            "gpu-operator",
            Some("v26.7.0"),
        );
        assert_eq!(
            argv.with_values_file("/tmp/computed.yaml"),
            v(&[
                "install",
                "my-gpu",
                "nvidia/gpu-operator",
                "-n",
                "gpu-operator",
                "--create-namespace",
                "-f",
                "/tmp/computed.yaml",
                "--version",
                "v26.7.0",
                "--set",
                "a=b",
                "-f",
                "mine.yaml",
                "--wait",
            ])
        );
        assert_eq!(
            argv.with_set_flags(v(&["--set", "cdi.enabled=false"])),
            v(&[
                "install",
                "my-gpu",
                "nvidia/gpu-operator",
                "-n",
                "gpu-operator",
                "--create-namespace",
                "--set",
                "cdi.enabled=false",
                "--version",
                "v26.7.0",
                "--set",
                "a=b",
                "-f",
                "mine.yaml",
                "--wait",
            ])
        );
    }

    #[test]
    fn upgrade_creates_the_namespace_only_with_install() {
        let s = split(&v(&["gpu-operator", "./chart.tgz"]), Mode::Upgrade).unwrap();
        let argv = WrapArgv::new(Mode::Upgrade, &s, "gpu-operator", "./chart.tgz", "ns", None);
        assert_eq!(
            argv.head,
            v(&["upgrade", "gpu-operator", "./chart.tgz", "-n", "ns"])
        );
        assert!(argv.tail.is_empty());
        let s = split(&v(&["--install", "--create-namespace"]), Mode::Upgrade).unwrap();
        let argv = WrapArgv::new(Mode::Upgrade, &s, "r", "c", "ns", None);
        assert_eq!(
            argv.head
                .iter()
                .filter(|a| *a == "--create-namespace")
                .count(),
            0
        );
        assert_eq!(argv.tail, v(&["--install", "--create-namespace"]));
        let s = split(&v(&["--install"]), Mode::Upgrade).unwrap();
        let argv = WrapArgv::new(Mode::Upgrade, &s, "r", "c", "ns", None);
        assert_eq!(
            argv.head.last().map(String::as_str),
            Some("--create-namespace")
        );
        // --generate-name: no release name, the lone argument is the chart
        let s = split(&v(&["--generate-name", "gpu-operator"]), Mode::Install).unwrap();
        let (_, chart) = s.release_and_chart();
        assert_eq!(chart, "gpu-operator");
        let argv = WrapArgv::new(Mode::Install, &s, DEFAULT_RELEASE, &chart, "ns", None);
        assert_eq!(&argv.head[..2], &v(&["install", "gpu-operator"])[..]);
    }

    #[test]
    fn our_flags_come_from_the_one_definition() {
        let s = split(
            &v(&[
                "--nri",
                "--cis",
                "--nodes-file=n.json",
                "--allow-generic",
                "--legacy-2021",
                "--cdi",
                "yes",
                "--nri",
            ]),
            Mode::Install,
        )
        .unwrap();
        assert!(s.ours.values.nri && s.ours.values.allow_generic && s.ours.values.legacy_2021);
        assert!(s.ours.cis);
        assert_eq!(s.ours.values.cdi, Some(true));
        assert_eq!(s.ours.nodes_file, Some(PathBuf::from("n.json")));
        assert!(s.helm.is_empty(), "{:?}", s.helm);
        assert_eq!(
            split(&v(&["--cdi", "maybe"]), Mode::Install).unwrap_err(),
            "--cdi: expected true or false, got `maybe`"
        );
    }

    #[test]
    fn namespace_print_command_and_uninstall() {
        assert_eq!(namespace(Some("x"), Some("y")), "x");
        assert_eq!(namespace(None, Some("y")), "y");
        assert_eq!(namespace(None, Some("default")), DEFAULT_NAMESPACE);
        assert_eq!(namespace(None, None), DEFAULT_NAMESPACE);
        let out = print_command(
            &v(&["install", "--set-string", "a=b c"]),
            "gpu-operator",
            true,
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains("kubectl label ns gpu-operator pod-security.kubernetes.io/enforce=privileged --overwrite"));
        assert_eq!(lines[1], "helm install --set-string 'a=b c'");
        let s = split(&v(&["a", "b", "--wait"]), Mode::Uninstall).unwrap();
        let (releases, argv) = uninstall_argv(&s, "ns");
        assert_eq!(releases, v(&["a", "b"]));
        assert_eq!(argv, v(&["uninstall", "a", "b", "-n", "ns", "--wait"]));
        let s = split(&[], Mode::Uninstall).unwrap();
        assert_eq!(
            uninstall_argv(&s, "ns").1,
            v(&["uninstall", DEFAULT_RELEASE, "-n", "ns"])
        );
    }
}
