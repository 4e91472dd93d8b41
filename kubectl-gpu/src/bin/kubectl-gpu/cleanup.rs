//! `kubectl gpu cleanup`: remove every pod and namespace labelled
//! `app.kubernetes.io/managed-by=kubectl-gpu` (left behind by a crash).

use anyhow::Result;
use rke2gpu::cli::{KubeOpts, OutputOpts};
use rke2gpu::render;
use rke2gpu::verify::run;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  kubectl gpu cleanup --dry-run     # list what would be removed
  kubectl gpu cleanup")]
pub struct Args {
    /// Only list what would be removed
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn run(kube_opts: &KubeOpts, out: &OutputOpts, args: Args) -> Result<u8> {
    let kube = rke2gpu::client::connect(kube_opts).await?;
    let report = run::cleanup(&kube, args.dry_run).await?;
    if !out.output.is_table() {
        print!("{}", render::structured(&report, out.output)?);
        return Ok(0);
    }
    let list = if args.dry_run {
        &report.found
    } else {
        &report.deleted
    };
    if list.is_empty() {
        println!("nothing labelled app.kubernetes.io/managed-by=kubectl-gpu found");
        return Ok(0);
    }
    let action = if args.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    let rows = list.iter().map(|l| {
        vec![
            l.kind.clone(),
            l.namespace.clone().unwrap_or_else(|| "-".into()),
            l.name.clone(),
            action.to_string(),
        ]
    });
    print!(
        "{}",
        render::table(&["kind", "namespace", "name", "action"], rows)
    );
    Ok(0)
}
