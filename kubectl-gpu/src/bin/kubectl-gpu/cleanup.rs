//! `kubectl gpu cleanup`: remove every pod and namespace labelled
//! `app.kubernetes.io/managed-by=kubectl-gpu` (left behind by a crash).

use anyhow::Result;
use rke2gpu::cleanup::{self, CleanupOptions};
use rke2gpu::cli::{KubeOpts, OutputOpts};
use rke2gpu::render;

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
    let opts = CleanupOptions {
        dry_run: args.dry_run,
    };
    let report = cleanup::run(&kube, &opts).await?;
    if out.output.is_table() {
        print!("{}", cleanup::render_table(&report));
    } else {
        print!("{}", render::structured(&report, out.output)?);
    }
    Ok(0)
}
