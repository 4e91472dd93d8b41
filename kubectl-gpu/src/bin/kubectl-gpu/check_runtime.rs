//! `kubectl gpu check-runtime`: arguments → [`CheckOptions`] →
//! [`check_runtime::run`] → the table or JSON/YAML → the exit code.

use anyhow::Result;
use rke2gpu::check_runtime::{self, CheckOptions};
use rke2gpu::cli::{KubeOpts, OutputOpts};
use rke2gpu::node::agent::AgentOptions;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  kubectl gpu check-runtime
  kubectl gpu check-runtime --node gpu-1 --node gpu-2 -o wide
  kubectl gpu check-runtime --deep --image registry.local/busybox:1.37   # air-gapped: mirror busybox first
  kubectl gpu check-runtime -o json | jq '.findings[] | select(.status==\"fail\")'")]
pub struct Args {
    /// Only check these nodes (repeatable); default: every GPU node
    #[arg(long = "node", value_name = "NAME")]
    pub nodes: Vec<String>,
    /// Also read host files on each GPU node through a short-lived read-only node-agent pod
    #[arg(long)]
    pub deep: bool,
    /// Image of the node-agent pod (needs sh, cat, ls, od)
    #[arg(long, default_value = rke2gpu::node::agent::DEFAULT_IMAGE)]
    pub image: String,
    /// Seconds to wait for each node-agent pod
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

pub async fn run(kube_opts: &KubeOpts, out: &OutputOpts, args: Args) -> Result<u8> {
    let kube = rke2gpu::client::connect(kube_opts).await?;
    let opts = CheckOptions {
        nodes: args.nodes,
        deep: args.deep,
        agent: AgentOptions {
            namespace: kube_opts
                .namespace
                .clone()
                .unwrap_or_else(|| rke2gpu::node::agent::DEFAULT_NAMESPACE.to_string()),
            image: args.image,
            timeout: std::time::Duration::from_secs(args.timeout),
            privileged: false,
        },
    };
    let report = check_runtime::run(&kube, &opts).await?;
    print!(
        "{}",
        check_runtime::table::render(&report, out.output, out.color())?
    );
    Ok(report.exit_code())
}
