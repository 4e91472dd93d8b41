//! `kubectl gpu check-runtime`: arguments → [`CheckOptions`] →
//! [`check_runtime::run`] → the table or JSON/YAML → the exit code.

use anyhow::Result;
use rke2gpu::check_runtime::upgrade::UpgradeTarget;
use rke2gpu::check_runtime::{self, CheckOptions};
use rke2gpu::cli::{KubeOpts, OutputOpts};
use rke2gpu::error::Error;
use rke2gpu::node::agent::AgentOptions;
use rke2gpu::version::{Distribution, KubeletVersion, Triple};

/// `--help` examples, with the newest release and chart the matrix knows.
fn examples() -> String {
    let (release, _) = rke2gpu::matrix::example_rke2_release();
    let chart = rke2gpu::matrix::NEWEST_KNOWN_CHART;
    format!(
        "\
Examples:
  kubectl gpu check-runtime
  kubectl gpu check-runtime --node gpu-1 --node gpu-2 -o wide
  kubectl gpu check-runtime --deep --image registry.local/busybox:1.37   # air-gapped: mirror busybox first
  kubectl gpu check-runtime -o json | jq '.findings[] | select(.status==\"fail\")'
  kubectl gpu check-runtime --upgrade-to-rke2 {release} --upgrade-to-chart v{chart}
  kubectl gpu check-runtime --deep --node gpu-1 --upgrade-to-rke2 {release} -o yaml

The upgrade preflight is a flag set on check-runtime, not a subcommand: it judges the same
nodes, files and operator that check-runtime reads, against a target instead of the running
release, and its findings (upgrade-*) sit beside today's. It changes nothing; it prints each
pre-upgrade action as a command and the safe order (prepare, upgrade, verify). Exit 1 when
the upgrade as planned would break GPU pods (or a check fails today)."
    )
}

#[derive(Debug, clap::Args)]
#[command(after_help = examples())]
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
    /// Preflight an RKE2/K3s upgrade of the GPU nodes to this release (e.g. v1.36.3+rke2r1)
    #[arg(long, value_name = "RELEASE")]
    pub upgrade_to_rke2: Option<String>,
    /// Preflight a GPU Operator chart upgrade to this version (e.g. v26.7.0)
    #[arg(long, value_name = "VERSION")]
    pub upgrade_to_chart: Option<String>,
}

fn upgrade_target(args: &Args) -> Result<UpgradeTarget, Error> {
    let rke2 = match &args.upgrade_to_rke2 {
        Some(raw) => match KubeletVersion::parse(raw) {
            Some(v) if v.distribution != Distribution::Other => Some(v),
            _ => {
                return Err(Error::InvalidOption {
                    option: "--upgrade-to-rke2".into(),
                    reason: format!(
                        "{raw:?} is not an RKE2 or K3s release: give it as vMAJOR.MINOR.PATCH+rke2rN or +k3sN"
                    ),
                });
            }
        },
        None => None,
    };
    let chart = match &args.upgrade_to_chart {
        Some(raw) => match Triple::parse_loose(raw) {
            Some(v) => Some(v),
            None => {
                return Err(Error::InvalidOption {
                    option: "--upgrade-to-chart".into(),
                    reason: format!(
                        "{raw:?} is not a chart version: give it as vMAJOR.MINOR.PATCH"
                    ),
                });
            }
        },
        None => None,
    };
    Ok(UpgradeTarget { rke2, chart })
}

pub async fn run(kube_opts: &KubeOpts, out: &OutputOpts, args: Args) -> Result<u8> {
    let upgrade = upgrade_target(&args)?;
    let kube = rke2gpu::client::connect(kube_opts).await?;
    let opts = CheckOptions {
        upgrade,
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
