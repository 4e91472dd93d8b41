//! `kubectl gpu`: argument parsing and dispatch. Each subcommand lives in
//! its own module and calls into the `rke2gpu` library.

mod check_runtime;
mod cleanup;
mod completion;
mod patch_containerd;
mod report;
mod verify;
mod version;

use clap::{Parser, Subcommand};
use rke2gpu::cli::{KubeOpts, OutputOpts};
use rke2gpu::error::EXIT_USAGE;
use std::process::ExitCode;

const AFTER_HELP: &str = "\
Exit codes:
  0    no failures
  1    at least one check or verification failed
  2    usage, kubeconfig or connection error (nothing was changed)
  130  interrupted (Ctrl-C); the pods and namespaces it created were removed first

Examples:
  kubectl gpu check-runtime                 # will GPU pods work, node by node?
  kubectl gpu check-runtime --deep          # also read each GPU node's containerd and RKE2 files
  kubectl gpu patch-containerd --node gpu-1 # the fix for a node, as a diff (--apply to write it)
  kubectl gpu verify                        # prove every GPU node runs a GPU pod
  kubectl gpu report                        # GPUs, allocation and operator health
  kubectl gpu --context prod check-runtime -o json
  source <(kubectl gpu completion bash)     # shell completion";

/// Take an RKE2 cluster from "nodes with NVIDIA GPUs" to "pods that provably use them".
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
    /// Run a pod on each GPU node and prove it gets its GPU (nvidia-smi or CUDA vectorAdd)
    Verify(verify::Args),
    /// Remove pods and namespaces kubectl gpu left behind (label app.kubernetes.io/managed-by=kubectl-gpu)
    Cleanup(cleanup::Args),
    /// Add the NVIDIA runtime to RKE2's containerd: shows the diff; --apply writes, restarts and confirms
    PatchContainerd(Box<patch_containerd::Args>),
    /// GPU nodes (allocatable, allocated, free), GPU pods, the operator; --bundle for support
    Report(report::Args),
    /// Print a shell completion script (or the kubectl_complete-gpu helper)
    Completion(completion::Args),
    /// Print version, git commit and build date (-o json|yaml for scripts)
    Version,
}

fn main() -> ExitCode {
    if let Some(code) = completion::intercept() {
        return code;
    }
    let cli: Cli = match rke2gpu::cli::parse_args() {
        Ok(cli) => cli,
        Err(code) => return code,
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
    // Ctrl-C: the library's handler removes what the run created, then the
    // command ends with `Error::Interrupted` (exit 130).
    let result = runtime.block_on(rke2gpu::objects::until_interrupted(async {
        match cli.command {
            Command::CheckRuntime(args) => check_runtime::run(&cli.kube, &cli.out, args).await,
            Command::Verify(args) => verify::run(&cli.kube, &cli.out, args).await,
            Command::Cleanup(args) => cleanup::run(&cli.kube, &cli.out, args).await,
            Command::PatchContainerd(args) => {
                patch_containerd::run(&cli.kube, &cli.out, *args).await
            }
            Command::Report(args) => report::run(&cli.kube, &cli.out, args).await,
            Command::Completion(args) => completion::run(&args),
            Command::Version => version::run(&cli.out),
        }
    }));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            let lib = err.chain().find_map(|e| e.downcast_ref::<rke2gpu::Error>());
            // The handler already said what it removed.
            if !matches!(lib, Some(rke2gpu::Error::Interrupted)) {
                eprintln!("error: {}", rke2gpu::error::message_of(err.as_ref()));
            }
            ExitCode::from(rke2gpu::error::exit_code_of(err.as_ref()))
        }
    }
}
