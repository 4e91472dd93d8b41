//! `kubectl gpu report`: GPU nodes, GPU pods and the operator, as tables,
//! JSON/YAML, a live `--watch`, or a support bundle.

use anyhow::{Context as _, Result};
use rke2gpu::cli::{KubeOpts, OutputFormat, OutputOpts};
use rke2gpu::render;
use rke2gpu::report::pods::jiff_now::Now;
use rke2gpu::report::{self, Report, View, bundle, read, watch};
use rke2gpu::snapshot::Snapshot;
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

fn render_once(report: &Report, view: View, out: &OutputOpts) -> Result<String> {
    let color = out.color();
    let wide = out.output == OutputFormat::Wide;
    Ok(match out.output {
        OutputFormat::Table | OutputFormat::Wide => match view {
            View::Nodes => report::render::nodes_table(report, wide, color),
            View::Pods => report::render::pods_table(report, wide),
            View::Operator => report::render::operator_text(report, wide, color),
        },
        format => render::structured(&report.doc(view), format)?,
    })
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
    let mut snap = Snapshot::read(&kube).await?;
    let now = Now::system();
    let mut pods = read::gpu_pods_or_note(&kube, None, now, &mut snap.unreadable).await;
    if pods.is_none()
        && view == View::Pods
        && let Some(ns) = &namespace
    {
        // Cluster-wide list forbidden: the namespace may still be readable.
        pods = read::gpu_pods_or_note(&kube, Some(ns), now, &mut snap.unreadable).await;
    }
    let report = Report::build(&snap, pods.as_ref(), namespace.as_deref(), now);

    if let Some(path) = &args.bundle {
        write_bundle(&kube, &snap, &report, &args, path).await?;
    } else if args.watch {
        let tty = std::io::stdout().is_terminal();
        let out = out.clone();
        let mut first = true;
        let mut last = String::new();
        watch::run(&kube, snap, namespace, watch::DEBOUNCE, |r| {
            // Node heartbeats change nothing shown: print only what changed.
            let body = match out.output {
                OutputFormat::Json | OutputFormat::Yaml => {
                    let mut v = serde_json::to_value(r.doc(view))
                        .map_err(|e| rke2gpu::Error::Other(e.to_string()))?;
                    if let Some(o) = v.as_object_mut() {
                        o.remove("generated_at");
                    }
                    strip_ages(&mut v);
                    v.to_string()
                }
                _ => {
                    render_once(r, view, &out).map_err(|e| rke2gpu::Error::Other(e.to_string()))?
                }
            };
            if body == last {
                return Ok(());
            }
            last = body;
            let text = match out.output {
                OutputFormat::Json => {
                    let mut s = serde_json::to_string(&r.doc(view))
                        .map_err(|e| rke2gpu::Error::Other(format!("cannot render JSON: {e}")))?;
                    s.push('\n');
                    s
                }
                OutputFormat::Yaml => {
                    format!("---\n{}", render::structured(&r.doc(view), out.output)?)
                }
                _ => {
                    let body = render_once(r, view, &out)
                        .map_err(|e| rke2gpu::Error::Other(e.to_string()))?;
                    if tty {
                        format!(
                            "\x1b[2J\x1b[H{}  (watching; Ctrl-C to stop)\n\n{body}",
                            r.generated_at
                        )
                    } else if first {
                        body
                    } else {
                        format!("\n{body}")
                    }
                }
            };
            first = false;
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(text.as_bytes());
            let _ = stdout.flush();
            Ok(())
        })
        .await?;
    } else {
        print!("{}", render_once(&report, view, out)?);
    }
    Ok(if args.fail_on_unhealthy && !report.healthy {
        rke2gpu::error::EXIT_FAILED
    } else {
        0
    })
}

/// Ages tick every second; they are not a change worth a re-render.
fn strip_ages(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.remove("age_seconds");
            m.values_mut().for_each(strip_ages);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_ages),
        _ => {}
    }
}

async fn write_bundle(
    kube: &rke2gpu::client::Kube,
    snap: &Snapshot,
    report: &Report,
    args: &Args,
    path: &PathBuf,
) -> Result<()> {
    let pb = if std::io::stderr().is_terminal() {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.enable_steady_tick(std::time::Duration::from_millis(120));
        pb
    } else {
        indicatif::ProgressBar::hidden()
    };
    let opts = bundle::CollectOptions {
        log_cap: args.log_limit,
        deep: args.deep.then(|| rke2gpu::node::agent::AgentOptions {
            namespace: args.agent_namespace.clone(),
            image: args.image.clone(),
            timeout: std::time::Duration::from_secs(args.timeout),
            privileged: false,
        }),
    };
    let collected = bundle::collect(kube, snap, report, &opts, &pb).await;
    pb.set_message("writing");
    let b = bundle::assemble(snap, report, &collected);
    let mtime = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let file = std::fs::File::create(path).map_err(|source| rke2gpu::Error::BundleCreate {
        path: path.display().to_string(),
        source,
    })?;
    let mut w = std::io::BufWriter::new(file);
    let summary = b.write(report, &mut w, mtime)?;
    w.flush()
        .with_context(|| format!("writing {}", path.display()))?;
    pb.finish_and_clear();
    for note in &b.not_collected {
        eprintln!("not collected: {note}");
    }
    println!(
        "Wrote {}: {} entries, {} bytes uncompressed, {} bytes compressed ({:.1}%)",
        path.display(),
        summary.entries,
        summary.uncompressed_bytes,
        summary.compressed_bytes,
        if summary.uncompressed_bytes == 0 {
            0.0
        } else {
            summary.compressed_bytes as f64 * 100.0 / summary.uncompressed_bytes as f64
        }
    );
    Ok(())
}
