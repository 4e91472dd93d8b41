//! `kubectl gpu`: argument parsing and dispatch. Each subcommand lives in
//! its own module and calls into the `rke2gpu` library.

mod check_runtime;
mod completion;
mod version;

use clap::{Parser, Subcommand};
use rke2gpu::cli::{KubeOpts, OutputOpts};
use rke2gpu::error::{EXIT_FAILED, EXIT_USAGE};
use std::process::ExitCode;

const AFTER_HELP: &str = "\
Exit codes:
  0  no failures
  1  at least one check or verification failed
  2  usage, kubeconfig or connection error (nothing was changed)

Examples:
  kubectl gpu check-runtime                 # will GPU pods work, node by node?
  kubectl gpu check-runtime --deep          # also read each GPU node's containerd and RKE2 files
  kubectl gpu --context prod check-runtime -o json";

/// Take an RKE2 cluster from \"nodes with NVIDIA GPUs\" to \"pods that provably use them\".
#[derive(Debug, Parser)]
#[command(name = "kubectl gpu", bin_name = "kubectl gpu", version, after_help = AFTER_HELP, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    kube: KubeOpts,
    #[command(flatten)]
    out: OutputOpts,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Per node: will GPU pods work? Every finding names its fix
    CheckRuntime(check_runtime::Args),
    /// Print a shell completion script (or the kubectl_complete-gpu helper)
    Completion(completion::Args),
    /// Print version, git commit and build date (-o json|yaml for scripts)
    Version,
}

fn main() -> ExitCode {
    if let Some(code) = completion::intercept() {
        return code;
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    cli.out.init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::CheckRuntime(args) => check_runtime::run(&cli.kube, &cli.out, args).await,
            Command::Completion(args) => completion::run(&args),
            Command::Version => version::run(&cli.out),
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            let code = err
                .chain()
                .find_map(|e| e.downcast_ref::<rke2gpu::Error>())
                .map(rke2gpu::Error::exit_code)
                .unwrap_or(EXIT_FAILED);
            ExitCode::from(code)
        }
    }
}
