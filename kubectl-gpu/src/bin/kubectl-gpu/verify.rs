//! `kubectl gpu verify`: one pod per GPU node, pinned to it, running
//! nvidia-smi (or the CUDA vectorAdd sample); checks its output against the
//! node's labels and diagnoses failures.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rke2gpu::cli::{KubeOpts, OutputFormat, OutputOpts};
use rke2gpu::render;
use rke2gpu::verify::options::{DEFAULT_PARALLEL, DEFAULT_TIMEOUT_SECONDS};
use rke2gpu::verify::spec::DEFAULT_RESOURCE_NAME;
use rke2gpu::verify::{
    NoProgress, Outcome, Progress, RuntimeClassChoice, VerifyOptions, Workload, progress, run,
    table,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WorkloadArg {
    /// nvidia-smi -L, --query-gpu and --version (nvidia-smi comes from the host driver)
    Smi,
    /// NVIDIA's CUDA vectorAdd sample; must print `Test PASSED`
    Vectoradd,
}

#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Only verify these nodes (repeatable); default: every GPU node
    #[arg(long = "node", value_name = "NAME", conflicts_with = "selector")]
    pub nodes: Vec<String>,
    /// Only verify GPU nodes matching this label selector
    #[arg(short = 'l', long, value_name = "SELECTOR", value_parser = parse_selector)]
    pub selector: Option<String>,
    /// GPUs (units of --resource) each verify pod requests
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub gpus: u32,
    /// Extended resource to request, e.g. nvidia.com/mig-1g.10gb for a MIG slice
    #[arg(long, value_name = "NAME", default_value = DEFAULT_RESOURCE_NAME)]
    pub resource: String,
    /// runtimeClassName of the pods: auto (from the GPU Operator version, CDI and containerd), none, or a name
    #[arg(long, value_name = "NAME|none|auto", default_value = "auto")]
    pub runtime_class: RuntimeClassChoice,
    /// Image of the verify pod (default: a CUDA base image for smi, the cuda-sample for vectoradd)
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<String>,
    /// What the verify pod runs
    #[arg(long, value_enum, default_value_t = WorkloadArg::Smi)]
    pub workload: WorkloadArg,
    /// Seconds to wait for each pod to finish
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_TIMEOUT_SECONDS, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// How many nodes to verify at the same time
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PARALLEL, value_parser = parse_parallel)]
    pub parallel: usize,
    /// Keep the pods (and the namespace verify created) for debugging; prints how to delete them
    #[arg(long)]
    pub keep: bool,
    /// Also tolerate every other taint (cordoned or otherwise tainted GPU nodes)
    #[arg(long)]
    pub tolerate_all_taints: bool,
}

const AFTER_HELP: &str = "\
The pods run in a namespace verify creates and removes (kubectl-gpu-verify-<run id>, PodSecurity
baseline), or in the namespace given with -n. Pods and namespace are removed on success, failure,
timeout and Ctrl-C unless --keep; `kubectl gpu cleanup` removes anything left after a crash.

Air-gapped clusters: mirror the image and pass --image. nvidia-smi is not in the image: the NVIDIA
runtime injects it from the host driver, so any small image with sh works for the smi workload.
  crane copy nvcr.io/nvidia/cuda:13.0.1-base-ubuntu24.04 registry.local/nvidia/cuda:13.0.1-base-ubuntu24.04
  skopeo copy docker://nvcr.io/nvidia/k8s/cuda-sample:vectoradd-cuda12.5.0-ubuntu22.04 \\
              docker://registry.local/nvidia/k8s/cuda-sample:vectoradd-cuda12.5.0-ubuntu22.04
  kubectl gpu verify --image registry.local/nvidia/cuda:13.0.1-base-ubuntu24.04

Examples:
  kubectl gpu verify                                   # every GPU node, 1 GPU each
  kubectl gpu verify --node gpu-1 --node gpu-2 -o wide
  kubectl gpu verify -l nvidia.com/gpu.product=NVIDIA-H200 --gpus 8
  kubectl gpu verify --resource nvidia.com/mig-1g.18gb --runtime-class none
  kubectl gpu verify --workload vectoradd
  kubectl gpu verify -o json | jq '.nodes[] | select(.result==\"fail\") | .diagnoses'

Exit codes: 0 every node passed; 1 a node failed (or no GPU nodes); 2 usage, kubeconfig,
connection or permission error (nothing was created); 130 interrupted (Ctrl-C), after removing
the pods and namespace unless --keep.";

fn parse_selector(s: &str) -> std::result::Result<String, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty selector".into());
    }
    if t.starts_with(',') || t.ends_with(',') || t.contains(",,") {
        return Err(format!("{t:?}: empty requirement in selector"));
    }
    Ok(t.to_string())
}

fn parse_parallel(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// A bar with done/total and the nodes in flight (stderr, TTY only).
struct Bar {
    bar: ProgressBar,
    in_flight: Mutex<BTreeSet<String>>,
}

impl Bar {
    fn new() -> Self {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} verify [{bar:25}] {pos}/{len} {elapsed} {msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        Bar {
            bar,
            in_flight: Mutex::new(BTreeSet::new()),
        }
    }

    fn refresh(&self) {
        if let Ok(set) = self.in_flight.lock() {
            let names: Vec<String> = set.iter().cloned().collect();
            self.bar.set_message(progress::progress_message(&names, 60));
        }
    }
}

impl Progress for Bar {
    fn begin(&self, total: usize) {
        self.bar.set_length(total as u64);
        self.bar.enable_steady_tick(Duration::from_millis(200));
    }
    fn started(&self, node: &str) {
        if let Ok(mut set) = self.in_flight.lock() {
            set.insert(node.to_string());
        }
        self.refresh();
    }
    fn finished(&self, node: &str, _outcome: Outcome) {
        if let Ok(mut set) = self.in_flight.lock() {
            set.remove(node);
        }
        self.bar.inc(1);
        self.refresh();
    }
    fn end(&self) {
        self.bar.finish_and_clear();
    }
}

pub async fn run(kube_opts: &KubeOpts, out: &OutputOpts, args: Args) -> Result<u8> {
    let workload = match args.workload {
        WorkloadArg::Smi => Workload::Smi,
        WorkloadArg::Vectoradd => Workload::VectorAdd,
    };
    let opts = VerifyOptions {
        nodes: args.nodes,
        selector: args.selector,
        namespace: kube_opts.namespace.clone(),
        gpus: args.gpus,
        resource: args.resource,
        runtime_class: args.runtime_class,
        image: args.image,
        workload,
        timeout: Duration::from_secs(args.timeout),
        parallel: args.parallel,
        keep: args.keep,
        tolerate_all_taints: args.tolerate_all_taints,
    };
    let kube = rke2gpu::client::connect(kube_opts).await?;
    let show_bar = out.output.is_table() && std::io::stdout().is_terminal();
    let report = if show_bar {
        run::verify(&kube, &opts, &Bar::new()).await?
    } else {
        run::verify(&kube, &opts, &NoProgress).await?
    };
    if out.output.is_table() {
        print!(
            "{}",
            table::render_table(&report, out.output == OutputFormat::Wide, out.color())
        );
    } else {
        print!("{}", render::structured(&report, out.output)?);
    }
    Ok(report.exit_code())
}
