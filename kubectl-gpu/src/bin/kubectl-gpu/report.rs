//! `kubectl gpu report`: GPU nodes, GPU pods and the operator, as tables,
//! JSON/YAML, a live `--watch`, or a support bundle. Arguments →
//! [`ReportOptions`] → [`report::run`] → [`table::render`], [`watch::Frames`]
//! or [`bundle::write_file`] → the exit code.

use anyhow::Result;
use rke2gpu::cli::{KubeOpts, OutputOpts};
use rke2gpu::report::{self, ReportOptions, ReportRun, View, bundle, table, watch};
use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Exit codes:
  0  the report was produced (also when it shows problems)
  1  --fail-on-unhealthy and a problem was found (NotReady GPU node, unhealthy
     operand, missing RuntimeClass, overcommitted or unadvertised GPUs,
     ClusterPolicy not ready, failed validation, known-bad chart)
  2  usage, kubeconfig or connection error, or the bundle could not be written

Examples:
  kubectl gpu report                          # one row per GPU node, with totals
  kubectl gpu report -o wide                  # + MIG, shared GPUs, taints, matrix row
  kubectl gpu report pods -A                  # which pod holds which GPU
  kubectl gpu report operator                 # chart, ClusterPolicy, operands per node
  kubectl gpu report --watch                  # re-render on node and pod changes
  kubectl gpu report -o json | jq '.nodes.totals'
  kubectl gpu report --bundle gpu-support.tar.gz --deep
  kubectl gpu report --fail-on-unhealthy -o json > /dev/null   # CI gate")]
pub struct Args {
    #[command(subcommand)]
    pub view: Option<ViewCmd>,
    /// Pods view: GPU pods of every namespace (default: -n, else the context's namespace)
    #[arg(short = 'A', long, global = true)]
    pub all_namespaces: bool,
    /// Re-render whenever nodes or pods change (watch, not poll); Ctrl-C ends
    #[arg(short = 'w', long, global = true, conflicts_with = "bundle")]
    pub watch: bool,
    /// Write a support bundle (tar.gz) instead of printing the report
    #[arg(long, value_name = "FILE.tar.gz", global = true)]
    pub bundle: Option<PathBuf>,
    /// With --bundle: also collect the node files `check-runtime --deep` reads (node-agent pods)
    #[arg(long, global = true, requires = "bundle")]
    pub deep: bool,
    /// Keep at most this many bytes of each log in the bundle (the tail)
    #[arg(long, value_name = "BYTES", default_value_t = bundle::LOG_CAP, global = true)]
    pub log_limit: usize,
    /// Image of the node-agent pod for --deep
    #[arg(long, default_value = rke2gpu::node::agent::DEFAULT_IMAGE, global = true)]
    pub image: String,
    /// Namespace of the node-agent pods for --deep
    #[arg(long, default_value = rke2gpu::node::agent::DEFAULT_NAMESPACE, global = true)]
    pub agent_namespace: String,
    /// Seconds to wait for each node-agent pod (--deep)
    #[arg(long, default_value_t = 120, global = true)]
    pub timeout: u64,
    /// Exit 1 when the report finds a problem
    #[arg(long, global = true)]
    pub fail_on_unhealthy: bool,
}

#[derive(Debug, Clone, Copy, clap::Subcommand)]
pub enum ViewCmd {
    /// One row per GPU node (the default)
    Nodes,
    /// The pods holding GPU resources (full GPUs, MIG devices, shared GPUs)
    Pods,
    /// GPU Operator: chart, ClusterPolicy, operand DaemonSets per node, validator, known issues
    Operator,
}

fn view_of(cmd: Option<ViewCmd>) -> View {
    match cmd {
        None | Some(ViewCmd::Nodes) => View::Nodes,
        Some(ViewCmd::Pods) => View::Pods,
        Some(ViewCmd::Operator) => View::Operator,
    }
}

pub async fn run(kube_opts: &KubeOpts, out: &OutputOpts, args: Args) -> Result<u8> {
    let kube = rke2gpu::client::connect(kube_opts).await?;
    let view = view_of(args.view);
    let namespace: Option<String> = if args.all_namespaces {
        None
    } else {
        Some(
            kube_opts
                .namespace
                .clone()
                .unwrap_or_else(|| kube.default_namespace.clone()),
        )
    };
    let opts = ReportOptions {
        view,
        namespace: namespace.clone(),
        helm_release: args.bundle.is_some(),
    };
    let ReportRun { snapshot, report } = report::run(&kube, &opts).await?;

    if let Some(path) = &args.bundle {
        let opts = bundle::BundleOptions {
            path: path.clone(),
            collect: bundle::CollectOptions {
                log_cap: args.log_limit,
                deep: args.deep.then(|| rke2gpu::node::agent::AgentOptions {
                    namespace: args.agent_namespace.clone(),
                    image: args.image.clone(),
                    timeout: std::time::Duration::from_secs(args.timeout),
                    privileged: false,
                }),
            },
            mtime: std::env::var("SOURCE_DATE_EPOCH")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        };
        let pb = if std::io::stderr().is_terminal() {
            let pb = indicatif::ProgressBar::new_spinner();
            pb.enable_steady_tick(std::time::Duration::from_millis(120));
            pb
        } else {
            indicatif::ProgressBar::hidden()
        };
        let written = bundle::write_file(&kube, &snapshot, &report, &opts, &pb).await?;
        pb.finish_and_clear();
        for note in &written.not_collected {
            eprintln!("not collected: {note}");
        }
        println!("{}", written.summary.line(path));
    } else if args.watch {
        let tty = std::io::stdout().is_terminal();
        let mut frames = watch::Frames::new(view, out.output, out.color(), tty);
        watch::run(&kube, snapshot, namespace, watch::DEBOUNCE, |r| {
            if let Some(text) = frames.next(r)? {
                let mut stdout = std::io::stdout().lock();
                let _ = stdout.write_all(text.as_bytes());
                let _ = stdout.flush();
            }
            Ok(())
        })
        .await?;
    } else {
        print!("{}", table::render(&report, view, out.output, out.color())?);
    }
    Ok(if args.fail_on_unhealthy && !report.healthy {
        rke2gpu::error::EXIT_FAILED
    } else {
        0
    })
}
