//! `kubectl gpu patch-containerd`: add the NVIDIA runtime to RKE2's
//! containerd the way RKE2 supports (drop-in, default-runtime or base
//! template), show the diff, and with `--apply` write it with backups,
//! restart RKE2 detached, wait for the node and confirm. Offline mode
//! (`--node-root` or `--config-file`) plans over local files and needs no
//! cluster. The work is in [`rke2gpu::patch`].

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use rke2gpu::cli::{KubeOpts, OutputOpts};
use rke2gpu::node::agent;
use rke2gpu::patch::offline::{self, OfflineRequest, OfflineSource};
use rke2gpu::patch::plan::{Method, PatchOptions};
use rke2gpu::patch::{self, ClusterRequest, PatchReport};
use rke2gpu::render;

/// `--help` text, its offline examples with the newest release the matrix
/// knows and the containerd that release ships.
fn examples() -> String {
    let (release, containerd) = rke2gpu::matrix::example_rke2_release();
    format!(
        "\
Methods, in the order they are tried (override with --method):
  drop-in          99-nvidia.toml in the config-v3.toml.d / config.toml.d dir the generated config imports
  default-runtime  default-runtime: in /etc/rancher/rke2/config.yaml.d/99-gpu.yaml (only the default is missing)
  template         {{{{ template \"base\" . }}}} plus the runtime tables in config-v3.toml.tmpl / config.toml.tmpl

Exit codes: 0 ok (also: nothing to do), 1 a node failed, was refused or is unconfirmed, 2 usage/kubeconfig/connection.

Examples:
  kubectl gpu patch-containerd --node gpu-1                      # show the method, the reasons and the diff
  kubectl gpu patch-containerd --node gpu-1 --set-as-default --apply
  kubectl gpu patch-containerd --all-gpu-nodes --apply -o json
  kubectl gpu patch-containerd --node gpu-1 --rollback --apply   # restore the newest backups, restart
  kubectl gpu patch-containerd --node gpu-1 --replace-static-template --apply
  kubectl gpu patch-containerd --node gpu-1 --for-rke2 {release}   # stage what {release} needs (no restart)
  # offline (Ansible, Salt, image builds): no cluster needed
  kubectl-gpu patch-containerd --config-file ./config.toml --rke2-version {release} \\
      --containerd-version {containerd} --set-as-default --out-dir ./out
  kubectl-gpu patch-containerd --node-root /mnt/node --rke2-version {release} --containerd-version {containerd}"
    )
}

#[derive(Debug, clap::Args)]
#[command(
    group(clap::ArgGroup::new("targets").required(true).args(["nodes", "all_gpu_nodes", "config_file", "node_root"])),
    group(clap::ArgGroup::new("offline").args(["config_file", "node_root"])),
    after_help = examples()
)]
pub struct Args {
    /// Node to patch (repeatable)
    #[arg(long = "node", value_name = "NAME")]
    pub nodes: Vec<String>,
    /// Every GPU node (nvidia.com/gpu.present, NFD NVIDIA PCI label or nvidia.com/gpu capacity)
    #[arg(long)]
    pub all_gpu_nodes: bool,
    /// Runtime name (and RuntimeClass handler)
    #[arg(long, default_value = "nvidia", value_name = "NAME")]
    pub runtime_name: String,
    /// Make it containerd's default runtime
    #[arg(long)]
    pub set_as_default: bool,
    /// Runtime binary (default: the GPU Operator toolkit's if it exists, else the host package's)
    #[arg(long, value_name = "PATH")]
    pub binary_path: Option<String>,
    /// Force a method; fails with the reason when the node cannot support it
    #[arg(long, value_parser = ["drop-in", "default-runtime", "template", "config-file"])]
    pub method: Option<String>,
    /// Replace a static config(-v3).toml.tmpl (no `{{`) by a base template; its content is kept as a backup
    #[arg(long)]
    pub replace_static_template: bool,
    /// Not RKE2: patch a plain containerd's /etc/containerd/config.toml and restart containerd
    #[arg(long)]
    pub generic_containerd: bool,
    /// Before an RKE2 upgrade: stage what RELEASE will need (config-v3.toml.tmpl from config.toml.tmpl before containerd 2; drop-ins at the new root's version) without changing the running release; nothing is restarted. Run check-runtime --deep --upgrade-to-rke2 RELEASE first
    #[arg(long, value_name = "RELEASE", conflicts_with_all = ["set_as_default", "binary_path", "method", "replace_static_template", "generic_containerd", "rollback"])]
    pub for_rke2: Option<String>,
    /// RKE2 data dir (default: the node's rke2.io/node-args, else /var/lib/rancher/rke2)
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// Write the changes, restart RKE2 and confirm (default: show them only)
    #[arg(long)]
    pub apply: bool,
    /// Restore the newest backups (and remove files this tool created), then restart
    #[arg(long, conflicts_with_all = ["set_as_default", "binary_path", "method", "replace_static_template"])]
    pub rollback: bool,
    /// Image of the node-agent pod (needs sh, cat, ls, base64, cmp, stat, nsenter or chroot)
    #[arg(long, default_value = agent::DEFAULT_IMAGE)]
    pub image: String,
    /// Seconds to wait for each step (agent pod start, node Ready, confirmation)
    #[arg(long, default_value_t = 180, value_name = "SECONDS")]
    pub timeout: u64,

    /// Offline: the generated config.toml to plan from (no cluster needed)
    #[arg(long, value_name = "PATH", conflicts_with_all = ["nodes", "all_gpu_nodes", "apply", "rollback"])]
    pub config_file: Option<PathBuf>,
    /// Offline: a node's filesystem tree (its /etc, /var/lib, /usr below DIR) to plan from
    #[arg(long, value_name = "DIR", conflicts_with_all = ["nodes", "all_gpu_nodes", "apply", "rollback", "config_file"])]
    pub node_root: Option<PathBuf>,
    /// Offline: the user template (config-v3.toml.tmpl or config.toml.tmpl)
    #[arg(long, value_name = "PATH", requires = "config_file")]
    pub template_file: Option<PathBuf>,
    /// Offline: the drop-in dir the config imports (its *.toml files)
    #[arg(long, value_name = "DIR", requires = "config_file")]
    pub drop_in_dir: Option<PathBuf>,
    /// Offline: /etc/rancher/rke2/config.yaml
    #[arg(long, value_name = "PATH", requires = "config_file")]
    pub rke2_config: Option<PathBuf>,
    /// Offline: the node's containerd version, e.g. 2.2.2 (default: 2.0 for version 3 configs, 1.7 for version 2)
    #[arg(long, value_name = "VERSION", requires = "offline")]
    pub containerd_version: Option<String>,
    /// Offline: the node's RKE2 version, e.g. v1.33.10+rke2r1 (default: assume current RKE2 features)
    #[arg(long, value_name = "VERSION", requires = "offline")]
    pub rke2_version: Option<String>,
    /// Offline: write the resulting files under this dir (at their host paths) plus rendered/config.toml and rendered/effective-config.toml
    #[arg(long, value_name = "DIR", requires = "offline")]
    pub out_dir: Option<PathBuf>,
}

fn options(args: &Args) -> Result<PatchOptions> {
    let method = match &args.method {
        Some(m) => Some(m.parse::<Method>()?),
        None => None,
    };
    let for_release = match &args.for_rke2 {
        Some(raw) => match rke2gpu::version::KubeletVersion::parse(raw) {
            Some(v) if v.distribution != rke2gpu::version::Distribution::Other => Some(v),
            _ => {
                return Err(rke2gpu::Error::InvalidOption {
                    option: "--for-rke2".into(),
                    reason: format!(
                        "`{raw}` is not an RKE2 or K3s release such as {}",
                        rke2gpu::matrix::example_rke2_release().0
                    ),
                }
                .into());
            }
        },
        None => None,
    };
    Ok(PatchOptions {
        for_release,
        runtime_name: args.runtime_name.clone(),
        set_as_default: args.set_as_default,
        binary_path: args.binary_path.clone(),
        method,
        replace_static_template: args.replace_static_template,
        generic_containerd: args.generic_containerd,
        config_path: None,
    })
}

/// Shows the planned changes and asks whether to apply them.
fn ask_apply(report: &PatchReport, color: bool) -> bool {
    print!("{}", patch::report::render_details(report.nodes(), color));
    let planned = report
        .nodes()
        .iter()
        .filter(|r| r.outcome == patch::Outcome::Planned)
        .count();
    print!("Apply these changes to {planned} node(s)? [y/N] ");
    std::io::stdout().flush().ok();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).ok();
    matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes")
}

pub async fn run(kube_opts: &KubeOpts, out: &OutputOpts, args: Args) -> Result<u8> {
    let options = options(&args)?;
    let source = match (args.node_root, args.config_file) {
        (Some(root), _) => Some(OfflineSource::NodeRoot(root)),
        (None, Some(config)) => Some(OfflineSource::Files {
            config,
            template: args.template_file,
            drop_in_dir: args.drop_in_dir,
            rke2_config: args.rke2_config,
        }),
        (None, None) => None,
    };
    let report = if let Some(source) = source {
        offline::run(&OfflineRequest {
            source,
            options,
            data_dir: args.data_dir,
            containerd_version: args.containerd_version,
            rke2_version: args.rke2_version,
            out_dir: args.out_dir,
        })
        .await?
    } else {
        let kube = rke2gpu::client::connect(kube_opts).await?;
        let req = ClusterRequest {
            nodes: args.nodes,
            all_gpu_nodes: args.all_gpu_nodes,
            options,
            apply: args.apply,
            rollback: args.rollback,
            data_dir: args.data_dir,
            timeout: Duration::from_secs(args.timeout),
            expect_diff: None,
            namespace: kube_opts
                .namespace
                .clone()
                .unwrap_or_else(|| agent::DEFAULT_NAMESPACE.to_owned()),
            image: args.image,
        };
        let interactive = !args.apply
            && out.output.is_table()
            && std::io::stdin().is_terminal()
            && std::io::stdout().is_terminal();
        let color = out.color();
        let mut ask = |r: &PatchReport| ask_apply(r, color);
        patch::run(
            &kube,
            &req,
            interactive.then_some(&mut ask as patch::cluster::Ask),
        )
        .await?
    };
    if out.output.is_table() {
        print!("{}", report.render_table(out.color()));
    } else {
        print!("{}", render::structured(&report, out.output)?);
    }
    Ok(report.exit_code())
}
