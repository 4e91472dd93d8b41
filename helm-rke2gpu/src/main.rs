//! `helm rke2gpu`: installs NVIDIA's GPU Operator on RKE2/K3s with values
//! computed from the cluster's nodes and the chart version. Turns the
//! arguments into options, calls one `rke2gpu::helm::plugin` entry point per
//! subcommand and prints the result; the library runs `$HELM_BIN`
//! install|upgrade with the computed values file first and the user's own
//! flags after it, so user values win.
//!
//! Exit codes: 0 ok; helm's own code when helm fails; 1 we refused; 2 usage,
//! kubeconfig or connection errors (the library's `rke2gpu::error::exit_code_of`).
//!
//! About 300 lines, all clap definitions and dispatch: each subcommand's
//! work (values, images, the mirror check and their rendering) is a library
//! call.

use clap::{Args, CommandFactory, Parser, Subcommand};
use rke2gpu::error::EXIT_FAILED;
use rke2gpu::helm::chart::DEFAULT_CHART_REF;
use rke2gpu::helm::images::{self, ImagesFormat};
use rke2gpu::helm::invocation::{Mode, PluginFlags};
use rke2gpu::helm::mirror;
use rke2gpu::helm::plugin::{self, HelmEnv, Notice, Outcome, ValuesOutput, ValuesRequest};
use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

mod help;
mod logging;
use help::{ABOUT, EXAMPLES, LONG_ABOUT, PASSTHROUGH_HELP};

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
    Values(Box<ValuesArgs>),
    /// List every image the chart will pull with the computed values (air-gapped installs)
    Images {
        #[command(flatten)]
        values: Box<ChartArgs>,
        /// table, json, yaml, or plain (one enabled image a line, for skopeo/crane scripts)
        #[arg(long, short = 'o', value_enum, default_value = "table")]
        output: ImagesFormat,
        /// List disabled operands too (plain: enabled only)
        #[arg(long)]
        all: bool,
        /// Look each enabled image up in this mirror registry (host[:port], or http://host:port without TLS): present / missing per image and platform; exit 1 when any is missing
        #[arg(long, value_name = "REGISTRY")]
        check_mirror: Option<String>,
        /// Credentials for --check-mirror from RKE2's registries.yaml (configs.<host>.auth)
        #[arg(long, value_name = "FILE")]
        registries_yaml_auth: Option<String>,
        /// Credentials for --check-mirror from a docker config.json (auths.<host>.auth)
        #[arg(long, value_name = "FILE")]
        docker_config: Option<String>,
        /// Platforms the mirror's copies must have (repeatable)
        #[arg(long, value_name = "OS/ARCH", default_value = "linux/amd64")]
        platform: Vec<String>,
        /// Print RKE2's registries.yaml mirror entries for these images, pulled from REGISTRY
        #[arg(long, value_name = "REGISTRY", conflicts_with = "check_mirror")]
        registries_yaml: Option<String>,
    },
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

#[derive(Args)]
struct ValuesArgs {
    #[command(flatten)]
    chart: ChartArgs,
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value = "yaml")]
    output: ValuesOutput,
}

#[derive(Args)]
struct ChartArgs {
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
    #[command(flatten)]
    flags: PluginFlags,
    /// A values file you will pass to helm after ours: checked against the refusals, not merged
    #[arg(short = 'f', long = "values", value_name = "FILE")]
    user_files: Vec<String>,
    /// A --set you will pass to helm after ours: checked against the refusals, not merged
    #[arg(long = "set", value_name = "KEY=VAL")]
    user_set: Vec<String>,
    /// A --set-string you will pass to helm after ours: checked against the refusals, not merged
    #[arg(long = "set-string", value_name = "KEY=VAL")]
    user_set_string: Vec<String>,
    /// A --set-json you will pass to helm after ours: checked against the refusals, not merged
    #[arg(long = "set-json", value_name = "KEY=JSON")]
    user_set_json: Vec<String>,
}

impl ChartArgs {
    /// The library's request for these arguments.
    fn request(self, output: ValuesOutput) -> ValuesRequest {
        let user_args = self.user_args();
        ValuesRequest {
            chart: self.chart,
            version: self.version,
            repo: self.repo,
            devel: self.devel,
            flags: self.flags,
            output,
            user_args,
        }
    }

    /// The user's values flags as a Helm command line would carry them.
    fn user_args(&self) -> Vec<String> {
        let pairs = [
            ("-f", &self.user_files),
            ("--set", &self.user_set),
            ("--set-string", &self.user_set_string),
            ("--set-json", &self.user_set_json),
        ];
        pairs
            .iter()
            .flat_map(|(flag, vals)| vals.iter().flat_map(move |v| [flag.to_string(), v.clone()]))
            .collect()
    }
}

fn main() -> ExitCode {
    logging::init();
    let cli: Cli = match rke2gpu::cli::parse_args() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: starting the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("Error: {}", rke2gpu::error::message_of(err.as_ref()));
            ExitCode::from(rke2gpu::error::exit_code_of(err.as_ref()))
        }
    }
}

fn notify(n: Notice) {
    eprintln!("{n}");
}

/// Asks on stderr, reads one line from stdin: `y`/`yes` is yes, anything else no.
fn ask_yes_no(question: &str) -> bool {
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let env = HelmEnv::from_env();
    let is_install = matches!(cli.cmd, Cmd::Install { .. });
    let (outcome, sub) = match cli.cmd {
        Cmd::Values(v) => {
            let req = v.chart.request(v.output);
            let text = plugin::values(&env, &req, &mut notify).await?;
            (Outcome::Print(text), "values")
        }
        Cmd::Images {
            values: a,
            output: format,
            all,
            check_mirror,
            registries_yaml_auth,
            docker_config,
            platform,
            registries_yaml,
        } => {
            let req = a.request(ValuesOutput::Json);
            let list = plugin::images(&env, &req, &mut notify).await?;
            let pulled = images::pulled(&list);
            let text = if let Some(mirror) = registries_yaml {
                mirror::registries_yaml(&pulled, &mirror)
            } else if let Some(m) = check_mirror {
                let creds = mirror::credentials_from_files(
                    &m,
                    registries_yaml_auth.as_deref(),
                    docker_config.as_deref(),
                )?;
                let checks = mirror::check(&pulled, &m, creds.as_ref(), &platform).await?;
                print!("{}", mirror::render(&checks, format)?);
                let missing = checks.iter().filter(|c| !c.ok()).count();
                if missing > 0 {
                    eprintln!(
                        "{missing} of {} image(s) not in {m} as needed",
                        checks.len()
                    );
                    std::process::exit(i32::from(EXIT_FAILED));
                }
                String::new()
            } else {
                images::render(&list, format, all)?
            };
            (Outcome::Print(text), "images")
        }
        Cmd::Install { args } | Cmd::Upgrade { args } => {
            let (mode, sub) = if is_install {
                (Mode::Install, "install")
            } else {
                (Mode::Upgrade, "upgrade")
            };
            // Ask (the CRD step) only where someone can answer: stdin and stderr on a terminal.
            let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
            let mut ask = |q: &str| ask_yes_no(q);
            let ask = interactive.then_some(&mut ask as &mut dyn FnMut(&str) -> bool);
            (
                plugin::install_or_upgrade(&env, mode, &args, &mut notify, ask).await?,
                sub,
            )
        }
        Cmd::Uninstall { args } => (plugin::uninstall(&env, &args)?, "uninstall"),
        Cmd::Completion { shell } => {
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "helm-rke2gpu", &mut text);
            (
                Outcome::Print(String::from_utf8_lossy(&text).into_owned()),
                "",
            )
        }
        Cmd::Version { output } => {
            let info = rke2gpu::build_info::BuildInfo::new(
                "helm-rke2gpu",
                env!("CARGO_PKG_VERSION"),
                option_env!("GIT_COMMIT"),
                env!("BUILD_DATE"),
            );
            (Outcome::Print(info.render(output)?), "")
        }
    };
    match outcome {
        Outcome::Help => {
            let mut cmd = Cli::command();
            cmd.build();
            if let Some(sub) = cmd.find_subcommand_mut(sub) {
                let _ = sub.print_long_help();
            }
        }
        Outcome::Print(text) => std::io::stdout()
            .write_all(text.as_bytes())
            .map_err(|e| anyhow::anyhow!("writing to stdout: {e}"))?,
    }
    Ok(())
}
