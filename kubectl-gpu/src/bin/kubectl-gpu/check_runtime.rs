//! `kubectl gpu check-runtime`: read the cluster once, run every rule,
//! render findings grouped by node.

use anyhow::Result;
use rke2gpu::checks::{Finding, Status, Summary, api};
use rke2gpu::cli::{KubeOpts, OutputOpts};
use rke2gpu::render;
use rke2gpu::snapshot::{self, Snapshot};
use serde::Serialize;

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

#[derive(Debug, Serialize)]
struct Report<'a> {
    server: &'a str,
    summary: Summary,
    findings: &'a [Finding],
}

pub async fn run(kube_opts: &KubeOpts, out: &OutputOpts, args: Args) -> Result<u8> {
    let kube = rke2gpu::client::connect(kube_opts).await?;
    let snap = Snapshot::read(&kube).await?;
    let selected: Vec<String> = snapshot::select_nodes(&snap.nodes, &args.nodes)?
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    let view = api::ClusterView::from_snapshot(&snap);
    let mut findings: Vec<Finding> = api::run(&view)
        .into_iter()
        .filter(|f| f.node.as_ref().is_none_or(|n| selected.contains(n)))
        .collect();
    if !args.nodes.is_empty() {
        for name in &args.nodes {
            if !view.gpu_nodes().any(|n| &n.name == name) {
                findings.push(
                    Finding::fail("gpu-node", Some(name), "not a GPU node: no nvidia.com/gpu.present or NFD NVIDIA PCI label and no nvidia.com/gpu capacity")
                        .fix("pick a GPU node: kubectl get nodes -l nvidia.com/gpu.present=true"),
                );
            }
        }
    }
    if args.deep {
        let nodes: Vec<_> = view
            .gpu_nodes()
            .filter(|n| selected.contains(&n.name))
            .cloned()
            .collect();
        let opts = rke2gpu::node::agent::AgentOptions {
            namespace: kube_opts
                .namespace
                .clone()
                .unwrap_or_else(|| rke2gpu::node::agent::DEFAULT_NAMESPACE.to_string()),
            image: args.image.clone(),
            timeout: std::time::Duration::from_secs(args.timeout),
            privileged: false,
        };
        findings.extend(rke2gpu::checks::host::deep(&kube, &view, &nodes, &opts).await?);
    }
    findings.sort_by_key(|f| (f.node.clone(), std::cmp::Reverse(f.status)));
    let summary = Summary::of(&findings);
    if out.output.is_table() {
        print!("{}", render_table(&findings, &summary, out));
    } else {
        let report = Report {
            server: &kube.server,
            summary,
            findings: &findings,
        };
        print!("{}", render::structured(&report, out.output)?);
    }
    Ok(if summary.fail > 0 {
        rke2gpu::error::EXIT_FAILED
    } else {
        0
    })
}

fn render_table(findings: &[Finding], summary: &Summary, out: &OutputOpts) -> String {
    let color = out.color();
    let wide = out.output == rke2gpu::cli::OutputFormat::Wide;
    let mut groups: Vec<(Option<String>, Vec<&Finding>)> = Vec::new();
    for f in findings {
        match groups.last_mut() {
            Some((node, list)) if *node == f.node => list.push(f),
            _ => groups.push((f.node.clone(), vec![f])),
        }
    }
    let mut s = String::new();
    for (node, list) in groups {
        s.push_str(&format!(
            "{}\n",
            match &node {
                Some(n) => format!("NODE {n}"),
                None => "CLUSTER".to_string(),
            }
        ));
        let mut rows = Vec::new();
        for f in &list {
            rows.push(vec![
                format!("  {}", render::paint(f.status.label(), color)),
                f.id.to_string(),
                f.message.clone(),
            ]);
            if wide || f.status >= Status::Warn {
                for e in &f.evidence {
                    rows.push(vec![String::new(), String::new(), format!("seen: {e}")]);
                }
            }
            if let Some(fix) = &f.fix
                && f.status >= Status::Warn
            {
                for (i, line) in fix.lines().enumerate() {
                    rows.push(vec![
                        String::new(),
                        String::new(),
                        if i == 0 {
                            format!("fix:  {line}")
                        } else {
                            format!("      {line}")
                        },
                    ]);
                }
            }
        }
        s.push_str(&render::table(&["  status", "check", "finding"], rows));
        s.push('\n');
    }
    s.push_str(&format!(
        "Summary: {} ok, {} warn, {} fail, {} skipped\n",
        summary.ok, summary.warn, summary.fail, summary.skipped
    ));
    s
}
