//! `helm rke2gpu`: installs NVIDIA's GPU Operator on RKE2/K3s with values
//! computed from the cluster's nodes and the chart version (the library's
//! `rke2gpu::helm`), by running `$HELM_BIN install|upgrade` with the computed
//! values file first and the user's own flags after it, so user values win.
//!
//! Exit codes: 0 ok; 1 helm failed (helm's own code is passed on) or we
//! refused; 2 usage, kubeconfig or connection errors.

mod cluster;
mod passthrough;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use passthrough::{Mode, Split, shell_quote};
use rke2gpu::helm::chart::{
    self, Chart, ChartSource, ChartTexts, DEFAULT_CHART_REF, NVIDIA_HELM_REPO, ShowWhat,
};
use rke2gpu::helm::cluster as nodes;
use rke2gpu::helm::values::{ClusterInputs, ComputedValues, ValuesOptions, compute_values};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The release name used when none is given.
const DEFAULT_RELEASE: &str = "gpu-operator";
/// The namespace used when Helm's is the `default` fallback.
const DEFAULT_NAMESPACE: &str = "gpu-operator";

/// An error with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub fn usage(m: impl Into<String>) -> Self {
        Self {
            code: 2,
            message: m.into(),
        }
    }
    pub fn cluster(m: impl Into<String>) -> Self {
        Self {
            code: 2,
            message: m.into(),
        }
    }
    pub fn refused(m: impl Into<String>) -> Self {
        Self {
            code: 1,
            message: m.into(),
        }
    }
}

impl From<rke2gpu::Error> for Failure {
    fn from(e: rke2gpu::Error) -> Self {
        Failure::refused(e.to_string())
    }
}

const ABOUT: &str =
    "Install the NVIDIA GPU Operator on RKE2/K3s with values computed from your nodes";

const LONG_ABOUT: &str = "\
Install the NVIDIA GPU Operator on RKE2/K3s with values computed from your nodes.

Reads the nodes (RKE2 release, containerd version, GPU labels, CIS profile) and the
chart's Chart.yaml/values.yaml, and computes the values RKE2 needs: the containerd
socket for the toolkit, the v25.3.x isolation envs, the v24.9.0 toolkit pin, CDI on or
off by containerd generation, NRI on request. Every value comes with a `# why` comment.

The computed values go to Helm FIRST (-f computed.yaml); your own -f/--set follow,
so your values win. Helm's global flags (-n, --kube-context, --kubeconfig) reach the
plugin as HELM_NAMESPACE, HELM_KUBECONTEXT and KUBECONFIG and are honoured.";

const EXAMPLES: &str = "\
Examples:
  helm rke2gpu values                                  # values for nvidia/gpu-operator (latest)
  helm rke2gpu values nvidia/gpu-operator --version v26.7.0
  helm rke2gpu values ./gpu-operator-v26.7.0.tgz --nodes-file nodes.json
  helm rke2gpu install --version v26.7.0 --wait        # release gpu-operator in ns gpu-operator
  helm rke2gpu install --print-command                 # show the plain helm command instead
  helm rke2gpu install --output helmchart > gpu-operator.yaml   # RKE2 HelmChart manifest
  helm rke2gpu upgrade gpu-operator nvidia/gpu-operator --version v26.7.0
  helm rke2gpu uninstall
  helm rke2gpu completion bash > /etc/bash_completion.d/helm-rke2gpu";

const PASSTHROUGH_HELP: &str = "\
Arguments: [NAME] [CHART] [FLAGS...]
  NAME   release name (default gpu-operator); CHART chart reference, .tgz or directory
         (default nvidia/gpu-operator). A lone argument containing '/' or ending in .tgz
         is the CHART.

Our flags (consumed):
  --nri                 use the operator's NRI plugin (chart >= v26.3, containerd >= 2.1
                        or 1.7.30+ on every GPU node); no toolkit env
  --legacy-2021         emit the 2021-2024 NVIDIA values (CONTAINERD_CONFIG=...config.toml.tmpl):
                        freezes RKE2's containerd config; do not use unless you must
  --force               install a chart known to fail on RKE2 / force a CDI choice
                        (on upgrade --force is Helm's: use --rke2gpu-force)
  --rke2gpu-force       same as --force, on every command
  --allow-generic       allow clusters without RKE2/K3s nodes (generic values only)
  --cdi true|false      override cdi.enabled
  --cis                 treat the cluster as RKE2 profile: cis (label the namespace
                        PSA-privileged) when the rke2.io/node-args annotation is missing
  --nodes-file FILE     read nodes from `kubectl get nodes -o json` output, not the cluster
  --print-command       print the equivalent plain helm command (--set/--set-string) and exit
  --output helmchart    print an RKE2 HelmChart (helm.cattle.io/v1) manifest and exit

Every other flag goes to helm verbatim, in order (--version is read AND passed on;
--wait, --timeout, --dry-run, --set, --set-string, -f, ...). Give flags unknown to
this plugin that take a value as --flag=value.";

#[derive(Parser)]
#[command(
    name = "helm-rke2gpu",
    bin_name = "helm rke2gpu",
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = EXAMPLES,
    disable_version_flag = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the computed values (YAML with `# why` comments)
    Values(ValuesArgs),
    /// `helm install` the GPU Operator with the computed values
    #[command(disable_help_flag = true, after_help = PASSTHROUGH_HELP)]
    Install {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0.., value_name = "ARGS")]
        args: Vec<String>,
    },
    /// `helm upgrade` the GPU Operator with freshly computed values
    #[command(disable_help_flag = true, after_help = PASSTHROUGH_HELP)]
    Upgrade {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0.., value_name = "ARGS")]
        args: Vec<String>,
    },
    /// `helm uninstall` the GPU Operator, then print what to clean on the nodes
    #[command(disable_help_flag = true)]
    Uninstall {
        /// [NAME...] [helm uninstall flags...] (default release gpu-operator)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0.., value_name = "ARGS")]
        args: Vec<String>,
    },
    /// Print a shell completion script for helm-rke2gpu
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print version, git commit and build date
    Version {
        /// Output format: text (one line), json or yaml (same keys as `kubectl gpu version -o json`)
        #[arg(short = 'o', long, value_enum, default_value_t = rke2gpu::cli::OutputFormat::Table)]
        output: rke2gpu::cli::OutputFormat,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ValuesOutput {
    /// values file with `# why` comments
    Yaml,
    /// values, reasons, warnings and hints as JSON
    Json,
    /// `--set`/`--set-string` arguments, one per line
    Set,
    /// an RKE2 HelmChart manifest
    Helmchart,
}

#[derive(Args)]
struct ValuesArgs {
    /// Chart reference, packaged .tgz or chart directory
    #[arg(default_value = DEFAULT_CHART_REF)]
    chart: String,
    /// Chart version (for repository charts)
    #[arg(long)]
    version: Option<String>,
    /// Chart repository URL (as `helm show --repo`)
    #[arg(long)]
    repo: Option<String>,
    /// Allow development versions (as `helm show --devel`)
    #[arg(long)]
    devel: bool,
    /// Use the operator's NRI plugin instead of the toolkit env
    #[arg(long)]
    nri: bool,
    /// Emit the 2021-era CONTAINERD_CONFIG values (freezes RKE2's config)
    #[arg(long = "legacy-2021")]
    legacy_2021: bool,
    /// Go on with a known-bad chart or an unworkable CDI request
    #[arg(long, alias = "rke2gpu-force")]
    force: bool,
    /// Allow clusters without RKE2/K3s nodes
    #[arg(long)]
    allow_generic: bool,
    /// Override cdi.enabled
    #[arg(long, value_name = "true|false", value_parser = clap::value_parser!(bool))]
    cdi: Option<bool>,
    /// Treat the cluster as RKE2 `profile: cis`
    #[arg(long)]
    cis: bool,
    /// Read nodes from `kubectl get nodes -o json` output instead of the cluster
    #[arg(long)]
    nodes_file: Option<PathBuf>,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value = "yaml")]
    output: ValuesOutput,
}

fn main() {
    init_logging();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: starting the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(f) => {
            eprintln!("Error: {}", f.message);
            f.code
        }
    };
    std::process::exit(code);
}

fn init_logging() {
    let debug = std::env::var("HELM_DEBUG")
        .map(|v| matches!(v.as_str(), "1" | "true" | "TRUE" | "True"))
        .unwrap_or(false);
    let filter = if debug {
        "helm_rke2gpu=debug,rke2gpu=debug"
    } else {
        // Our own warnings only: kube's connection errors are reported by us.
        "helm_rke2gpu=warn,rke2gpu=warn"
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
}

async fn run(cli: Cli) -> Result<i32, Failure> {
    match cli.cmd {
        Cmd::Values(a) => values_cmd(a).await,
        Cmd::Install { args } => wrap_cmd(&args, Mode::Install).await,
        Cmd::Upgrade { args } => wrap_cmd(&args, Mode::Upgrade).await,
        Cmd::Uninstall { args } => uninstall_cmd(&args),
        Cmd::Completion { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "helm-rke2gpu",
                &mut std::io::stdout(),
            );
            Ok(0)
        }
        Cmd::Version { output } => {
            let info = rke2gpu::build_info::BuildInfo::new(
                "helm-rke2gpu",
                env!("CARGO_PKG_VERSION"),
                option_env!("GIT_COMMIT"),
                env!("BUILD_DATE"),
            );
            print!("{}", info.render(output)?);
            Ok(0)
        }
    }
}

// ---------------------------------------------------------------------------
// Helm processes
// ---------------------------------------------------------------------------

fn helm_bin() -> String {
    std::env::var("HELM_BIN")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "helm".into())
}

fn display_cmd(bin: &str, args: &[String]) -> String {
    std::iter::once(bin.to_string())
        .chain(args.iter().map(|a| shell_quote(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs helm and returns its stdout; its stderr goes to ours.
fn helm_capture(args: &[String]) -> Result<String, Failure> {
    let bin = helm_bin();
    tracing::debug!(command = %display_cmd(&bin, args), "running");
    let out = Command::new(&bin)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| {
            Failure::refused(format!(
                "cannot run `{bin}` (HELM_BIN): {e}; install Helm or set HELM_BIN"
            ))
        })?;
    if !out.status.success() {
        return Err(Failure {
            code: out.status.code().unwrap_or(1),
            message: format!(
                "`{}` failed (see helm's message above)",
                display_cmd(&bin, args)
            ),
        });
    }
    String::from_utf8(out.stdout)
        .map_err(|e| Failure::refused(format!("`{bin}` printed non-UTF-8 output: {e}")))
}

/// Runs helm with inherited stdio and returns its exit code.
fn helm_run(args: &[String]) -> Result<i32, Failure> {
    let bin = helm_bin();
    tracing::debug!(command = %display_cmd(&bin, args), "running");
    let status = Command::new(&bin).args(args).status().map_err(|e| {
        Failure::refused(format!(
            "cannot run `{bin}` (HELM_BIN): {e}; install Helm or set HELM_BIN"
        ))
    })?;
    Ok(status.code().unwrap_or(1))
}

// ---------------------------------------------------------------------------
// Reading inputs
// ---------------------------------------------------------------------------

struct ReadChart {
    chart: Chart,
    source: ChartSource,
}

fn read_chart(
    reference: &str,
    version: Option<&str>,
    locating: &[String],
) -> Result<ReadChart, Failure> {
    let source = ChartSource::classify(reference);
    let texts = match &source {
        ChartSource::Archive(p) => chart::read_chart_archive_file(p)?,
        ChartSource::Directory(p) => chart::read_chart_dir(p)?,
        ChartSource::Remote(r) => {
            let chart_yaml = helm_capture(&chart::helm_show_args(
                ShowWhat::Chart,
                r,
                version,
                locating,
            ))?;
            // Ask for the values of exactly the version `show chart` resolved.
            let meta = chart::parse_chart_yaml(r, &chart_yaml)?;
            let resolved = version.map(str::to_string).unwrap_or(meta.version);
            let values_yaml = helm_capture(&chart::helm_show_args(
                ShowWhat::Values,
                r,
                Some(&resolved),
                locating,
            ))?;
            ChartTexts {
                origin: r.clone(),
                chart_yaml,
                values_yaml,
            }
        }
    };
    Ok(ReadChart {
        chart: Chart::from_texts(&texts)?,
        source,
    })
}

async fn read_cluster(
    nodes_file: Option<&Path>,
    target: &cluster::Target,
    cis: bool,
) -> Result<(ClusterInputs, Option<cluster::Connected>), Failure> {
    let (mut inputs, conn) = match nodes_file {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| Failure::usage(format!("--nodes-file {}: {e}", p.display())))?;
            let list = nodes::parse_nodes(&p.display().to_string(), &text)
                .map_err(|e| Failure::usage(e.to_string()))?;
            (nodes::cluster_inputs(&list), None)
        }
        None => {
            let conn = cluster::connect(target).await?;
            let list = cluster::list_nodes(&conn).await?;
            (nodes::cluster_inputs(&list), Some(conn))
        }
    };
    inputs.cis_profile |= cis;
    Ok((inputs, conn))
}

fn kube_target(s: Option<&Split>) -> cluster::Target {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    cluster::Target {
        context: s
            .and_then(|s| s.kube_context.clone())
            .or_else(|| env("HELM_KUBECONTEXT")),
        kubeconfig: s.and_then(|s| s.kubeconfig.clone()),
    }
}

fn report(computed: &ComputedValues) {
    for w in &computed.warnings {
        eprintln!("warning: {w}");
    }
    for h in &computed.hints {
        eprintln!("hint: {h}");
    }
}

// ---------------------------------------------------------------------------
// Output forms
// ---------------------------------------------------------------------------

fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{pad}{l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn yaml_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// An RKE2 HelmChart (plus a privileged Namespace on CIS clusters).
fn helmchart_manifest(
    release: &str,
    namespace: &str,
    read: &ReadChart,
    repo: Option<&str>,
    computed: &ComputedValues,
) -> (String, Vec<String>) {
    let mut notes = Vec::new();
    let (chart_field, repo_field) = match &read.source {
        ChartSource::Remote(r) if r.starts_with("oci://") => (r.clone(), None),
        ChartSource::Remote(r) => {
            if repo.is_none() && !r.starts_with("nvidia/") {
                notes.push(format!(
                    "chart {r}: assuming NVIDIA's repository {NVIDIA_HELM_REPO} in spec.repo"
                ));
            }
            (
                read.chart.meta.name.clone(),
                Some(repo.unwrap_or(NVIDIA_HELM_REPO).to_string()),
            )
        }
        _ => {
            notes.push(format!(
                "the chart was read from {}; the HelmChart points at {NVIDIA_HELM_REPO} version {} instead",
                read.chart.origin, read.chart.meta.version
            ));
            (
                read.chart.meta.name.clone(),
                Some(repo.unwrap_or(NVIDIA_HELM_REPO).to_string()),
            )
        }
    };
    let mut out = String::new();
    if computed.namespace_needs_privileged {
        out.push_str(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {}\n  labels:\n    {}: {}\n---\n",
            yaml_str(namespace),
            rke2gpu::labels::PSA_ENFORCE,
            rke2gpu::matrix::PSA_PRIVILEGED
        ));
    }
    out.push_str("apiVersion: helm.cattle.io/v1\nkind: HelmChart\nmetadata:\n");
    out.push_str(&format!(
        "  name: {}\n  namespace: kube-system\nspec:\n",
        yaml_str(release)
    ));
    if let Some(r) = repo_field {
        out.push_str(&format!("  repo: {}\n", yaml_str(&r)));
    }
    out.push_str(&format!("  chart: {}\n", yaml_str(&chart_field)));
    out.push_str(&format!(
        "  version: {}\n",
        yaml_str(&read.chart.meta.version)
    ));
    out.push_str(&format!("  targetNamespace: {}\n", yaml_str(namespace)));
    out.push_str("  createNamespace: true\n");
    out.push_str("  valuesContent: |-\n");
    out.push_str(&indent(computed.to_yaml().trim_end(), 4));
    out.push('\n');
    (out, notes)
}

// ---------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------

async fn values_cmd(a: ValuesArgs) -> Result<i32, Failure> {
    let (inputs, _conn) = read_cluster(a.nodes_file.as_deref(), &kube_target(None), a.cis).await?;
    let mut locating = Vec::new();
    if let Some(r) = &a.repo {
        locating.extend(["--repo".to_string(), r.clone()]);
    }
    if a.devel {
        locating.push("--devel".into());
    }
    let read = read_chart(&a.chart, a.version.as_deref(), &locating)?;
    let opts = ValuesOptions {
        nri: a.nri,
        legacy_2021: a.legacy_2021,
        force: a.force,
        allow_generic: a.allow_generic,
        cdi: a.cdi,
    };
    let computed = compute_values(&inputs, &read.chart, &opts)?;
    report(&computed);
    let mut stdout = std::io::stdout();
    let text = match a.output {
        ValuesOutput::Yaml => computed.to_yaml(),
        ValuesOutput::Json => serde_json::to_string_pretty(&computed)
            .map(|s| s + "\n")
            .map_err(|e| Failure::refused(format!("rendering JSON: {e}")))?,
        ValuesOutput::Set => computed
            .set_flags()
            .chunks(2)
            .map(|c| {
                c.iter()
                    .map(|a| shell_quote(a))
                    .collect::<Vec<_>>()
                    .join(" ")
                    + "\n"
            })
            .collect(),
        ValuesOutput::Helmchart => {
            let ns = namespace(None);
            let (m, notes) =
                helmchart_manifest(DEFAULT_RELEASE, &ns, &read, a.repo.as_deref(), &computed);
            for n in notes {
                eprintln!("note: {n}");
            }
            m
        }
    };
    stdout
        .write_all(text.as_bytes())
        .map_err(|e| Failure::refused(format!("writing to stdout: {e}")))?;
    Ok(0)
}

/// The operator namespace: `-n` if it reached us, else `HELM_NAMESPACE`
/// unless it is Helm's `default` fallback, else `gpu-operator`.
fn namespace(s: Option<&Split>) -> String {
    s.and_then(|s| s.namespace.clone())
        .or_else(|| {
            std::env::var("HELM_NAMESPACE")
                .ok()
                .filter(|n| !n.is_empty() && n != "default")
        })
        .unwrap_or_else(|| DEFAULT_NAMESPACE.into())
}

fn print_sub_help(name: &str) -> Result<i32, Failure> {
    let mut cmd = Cli::command();
    cmd.build();
    if let Some(sub) = cmd.find_subcommand_mut(name) {
        let _ = sub.print_long_help();
    }
    Ok(0)
}

async fn wrap_cmd(args: &[String], mode: Mode) -> Result<i32, Failure> {
    let verb = match mode {
        Mode::Install => "install",
        Mode::Upgrade => "upgrade",
        Mode::Uninstall => "uninstall",
    };
    let s = passthrough::split(args, mode).map_err(Failure::usage)?;
    if s.help {
        return print_sub_help(verb);
    }
    let (release, chart_ref) = match s.positionals.as_slice() {
        [] => (DEFAULT_RELEASE.to_string(), DEFAULT_CHART_REF.to_string()),
        [one] if s.generate_name || passthrough::looks_like_chart(one) => {
            (DEFAULT_RELEASE.to_string(), one.clone())
        }
        [one] => (one.clone(), DEFAULT_CHART_REF.to_string()),
        [name, chart, ..] => (name.clone(), chart.clone()),
    };
    let ns = namespace(Some(&s));

    let (inputs, conn) = read_cluster(
        s.ours.nodes_file.as_deref().map(Path::new),
        &kube_target(Some(&s)),
        s.ours.cis,
    )
    .await?;
    let read = read_chart(&chart_ref, s.version.as_deref(), &s.chart_locating())?;
    let opts = ValuesOptions {
        nri: s.ours.nri,
        legacy_2021: s.ours.legacy_2021,
        force: s.ours.force,
        allow_generic: s.ours.allow_generic,
        cdi: s.ours.cdi,
    };
    let computed = compute_values(&inputs, &read.chart, &opts)?;
    report(&computed);
    for w in rke2gpu::helm::user_set_conflicts(&computed, &s.helm) {
        eprintln!("warning: {w}");
    }

    if s.ours.output_helmchart {
        let (m, notes) = helmchart_manifest(&release, &ns, &read, s.repo().as_deref(), &computed);
        for n in notes {
            eprintln!("note: {n}");
        }
        print!("{m}");
        return Ok(0);
    }

    // The helm command line, computed values first, user flags after.
    let mut head: Vec<String> = vec![verb.into()];
    if !s.generate_name {
        head.push(release.clone());
    }
    head.push(chart_ref.clone());
    head.extend(["-n".to_string(), ns.clone()]);
    let wants_create_ns = mode == Mode::Install || s.helm_has("--install") || s.helm_has("-i");
    if wants_create_ns && !s.helm_has("--create-namespace") {
        head.push("--create-namespace".into());
    }
    let mut tail: Vec<String> = Vec::new();
    if s.version.is_none() && read.source.is_remote() {
        eprintln!(
            "note: pinning --version {} (the chart version the values were computed for)",
            read.chart.meta.version
        );
        tail.extend(["--version".to_string(), read.chart.meta.version.clone()]);
    }
    tail.extend(s.helm.iter().cloned());

    if s.ours.print_command {
        let mut argv = head.clone();
        argv.extend(computed.set_flags());
        argv.extend(tail);
        if computed.namespace_needs_privileged {
            println!(
                "kubectl create namespace {ns} --dry-run=client -o yaml | kubectl apply -f - && kubectl label ns {ns} {}={} --overwrite",
                rke2gpu::labels::PSA_ENFORCE,
                rke2gpu::matrix::PSA_PRIVILEGED
            );
        }
        println!("{}", display_cmd("helm", &argv));
        return Ok(0);
    }

    let mut file = tempfile::Builder::new()
        .prefix("rke2gpu-values-")
        .suffix(".yaml")
        .tempfile()
        .map_err(|e| Failure::refused(format!("creating a temporary values file: {e}")))?;
    file.write_all(computed.to_yaml().as_bytes())
        .and_then(|_| file.flush())
        .map_err(|e| Failure::refused(format!("writing the temporary values file: {e}")))?;
    let path = file.path().display().to_string();

    if computed.namespace_needs_privileged {
        if s.dry_run {
            eprintln!(
                "note: --dry-run: not labelling namespace {ns} {}={}",
                rke2gpu::labels::PSA_ENFORCE,
                rke2gpu::matrix::PSA_PRIVILEGED
            );
        } else {
            let c = match conn {
                Some(c) => c,
                None => cluster::connect(&kube_target(Some(&s))).await?,
            };
            cluster::ensure_privileged_namespace(&c, &ns).await?;
            eprintln!(
                "labelled namespace {ns} {}={} (RKE2 CIS profile)",
                rke2gpu::labels::PSA_ENFORCE,
                rke2gpu::matrix::PSA_PRIVILEGED
            );
        }
    }

    let mut argv = head;
    argv.extend(["-f".to_string(), path]);
    argv.extend(tail);
    let code = helm_run(&argv)?;
    if code != 0 {
        return Err(Failure {
            code,
            message: format!(
                "helm {verb} of release {release} in namespace {ns} failed with exit code {code}; `helm rke2gpu values` shows the values that were passed"
            ),
        });
    }
    Ok(0)
}

fn uninstall_cmd(args: &[String]) -> Result<i32, Failure> {
    let s = passthrough::split(args, Mode::Uninstall).map_err(Failure::usage)?;
    if s.help {
        return print_sub_help("uninstall");
    }
    let ns = namespace(Some(&s));
    let releases = if s.positionals.is_empty() {
        vec![DEFAULT_RELEASE.to_string()]
    } else {
        s.positionals.clone()
    };
    let mut argv = vec!["uninstall".to_string()];
    argv.extend(releases.iter().cloned());
    argv.extend(["-n".to_string(), ns.clone()]);
    argv.extend(s.helm.iter().cloned());
    let code = helm_run(&argv)?;
    if code != 0 {
        return Err(Failure {
            code,
            message: format!(
                "helm uninstall {} -n {ns} failed with exit code {code}",
                releases.join(" ")
            ),
        });
    }
    print!("{}", cleanup_notes(&ns));
    Ok(0)
}

fn cleanup_notes(ns: &str) -> String {
    format!(
        "\
Helm leaves these behind after removing the GPU Operator:

  1. /usr/local/nvidia on every GPU node: the toolkit the operator installed. RKE2/K3s look
     for nvidia-container-runtime there first, so a leftover copy shadows a host toolkit
     and keeps a stale runtime configured (k3s-io/k3s#4391). On each GPU node:
       sudo rm -rf /usr/local/nvidia
       sudo systemctl restart rke2-agent     # rke2-server on servers; k3s-agent/k3s on K3s
  2. RuntimeClass nvidia: created by RKE2's rke2-runtimeclasses chart, not by the operator.
     Leave it.
  3. CRDs: Helm does not delete CRDs. When no GPU Operator remains:
       kubectl delete crd clusterpolicies.nvidia.com nvidiadrivers.nvidia.com
  4. The namespace, if nothing else lives there:
       kubectl delete namespace {ns}
"
    )
}
