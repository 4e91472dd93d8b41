//! `kubectl gpu patch-containerd`: add the NVIDIA runtime to RKE2's
//! containerd the way RKE2 supports (drop-in, default-runtime or base
//! template), show the diff, and with `--apply` write it with backups,
//! restart RKE2 detached, wait for the node and confirm. Offline mode
//! (`--config-file`) plans over local files and needs no cluster.

use std::collections::BTreeSet;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use rke2gpu::agent_host::{self, Request};
use rke2gpu::cli::{KubeOpts, OutputOpts};
use rke2gpu::containerd::{ContainerdVersion, Method, NodeState, PatchOptions};
use rke2gpu::error::EXIT_FAILED;
use rke2gpu::facts::NodeFacts;
use rke2gpu::matrix::NodePaths;
use rke2gpu::node::agent::{self, AgentOptions, Agents};
use rke2gpu::patch::{self, NodeReport, Outcome, Target};
use rke2gpu::render;
use rke2gpu::version::{Distribution, KubeletVersion};
use serde::Serialize;

#[derive(Debug, clap::Args)]
#[command(
    group(clap::ArgGroup::new("targets").required(true).args(["nodes", "all_gpu_nodes", "config_file"])),
    after_help = "\
Methods, in the order they are tried (override with --method):
  drop-in          99-nvidia.toml in the config-v3.toml.d / config.toml.d dir the generated config imports
  default-runtime  default-runtime: in /etc/rancher/rke2/config.yaml.d/99-gpu.yaml (only the default is missing)
  template         {{ template \"base\" . }} plus the runtime tables in config-v3.toml.tmpl / config.toml.tmpl

Exit codes: 0 ok (also: nothing to do), 1 a node failed, was refused or is unconfirmed, 2 usage/kubeconfig/connection.

Examples:
  kubectl gpu patch-containerd --node gpu-1                      # show the method, the reasons and the diff
  kubectl gpu patch-containerd --node gpu-1 --set-as-default --apply
  kubectl gpu patch-containerd --all-gpu-nodes --apply -o json
  kubectl gpu patch-containerd --node gpu-1 --rollback --apply   # restore the newest backups, restart
  kubectl gpu patch-containerd --node gpu-1 --replace-static-template --apply
  # offline (Ansible, Salt, image builds): no cluster needed
  kubectl-gpu patch-containerd --config-file ./config.toml --rke2-version v1.33.10+rke2r1 \\
      --containerd-version 2.2.2 --set-as-default --out-dir ./out"
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
    #[arg(long, value_name = "VERSION", requires = "config_file")]
    pub containerd_version: Option<String>,
    /// Offline: the node's RKE2 version, e.g. v1.33.10+rke2r1 (default: assume current RKE2 features)
    #[arg(long, value_name = "VERSION", requires = "config_file")]
    pub rke2_version: Option<String>,
    /// Offline: write the resulting files under this dir (at their host paths) plus rendered/config.toml and rendered/effective-config.toml
    #[arg(long, value_name = "DIR", requires = "config_file")]
    pub out_dir: Option<PathBuf>,
}

fn usage(msg: impl Into<String>) -> anyhow::Error {
    rke2gpu::Error::Usage(msg.into()).into()
}

fn options(args: &Args) -> Result<PatchOptions> {
    let method = match &args.method {
        Some(m) => Some(m.parse::<Method>()?),
        None => None,
    };
    Ok(PatchOptions {
        runtime_name: args.runtime_name.clone(),
        set_as_default: args.set_as_default,
        binary_path: args.binary_path.clone(),
        method,
        replace_static_template: args.replace_static_template,
        generic_containerd: args.generic_containerd,
        config_path: None,
    })
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    server: Option<&'a str>,
    dry_run: bool,
    rollback: bool,
    nodes: &'a [NodeReport],
}

pub async fn run(kube_opts: &KubeOpts, out: &OutputOpts, args: Args) -> Result<u8> {
    let opts = options(&args)?;
    if let Some(cfg) = args.config_file.clone() {
        return offline(out, &args, opts, &cfg);
    }
    let kube = rke2gpu::client::connect(kube_opts).await?;
    let nodes = select(&kube, &args).await?;
    let namespace = kube_opts
        .namespace
        .clone()
        .unwrap_or_else(|| agent::DEFAULT_NAMESPACE.to_owned());
    rke2gpu::preflight::node_agent(&kube, &namespace).await?;
    let interactive = !args.apply
        && out.output.is_table()
        && std::io::stdin().is_terminal()
        && std::io::stdout().is_terminal();
    let mut req = Request {
        options: opts,
        apply: args.apply,
        rollback: args.rollback,
        data_dir: args.data_dir.clone(),
        timeout: Duration::from_secs(args.timeout),
        expect_diff: None,
        namespace: namespace.clone(),
    };
    let agent_opts = |privileged: bool| AgentOptions {
        namespace: namespace.clone(),
        image: args.image.clone(),
        timeout: Duration::from_secs(args.timeout),
        privileged,
    };
    let mut reports = run_nodes(&kube, agent_opts(args.apply), &nodes, &req).await;
    let to_apply: Vec<usize> = reports
        .iter()
        .enumerate()
        .filter(|(_, r)| r.outcome == Outcome::Planned)
        .map(|(i, _)| i)
        .collect();
    if interactive && !to_apply.is_empty() {
        print!("{}", render_details(&reports, out));
        print!("Apply these changes to {} node(s)? [y/N] ", to_apply.len());
        std::io::stdout().flush().ok();
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).ok();
        if matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
            req.apply = true;
            let privileged = agent_opts(true);
            for i in to_apply {
                req.expect_diff = Some(reports[i].diff());
                let node = &nodes[i];
                let mut r =
                    run_nodes(&kube, privileged.clone(), std::slice::from_ref(node), &req).await;
                if let Some(r) = r.pop() {
                    reports[i] = r;
                }
            }
            print!("{}", render_summary(&reports, out, true, args.rollback));
        } else {
            println!("Nothing was written.");
        }
    } else if out.output.is_table() {
        print!("{}", render_details(&reports, out));
        print!(
            "{}",
            render_summary(&reports, out, req.apply, args.rollback)
        );
    } else {
        let report = Report {
            server: Some(&kube.server),
            dry_run: !req.apply,
            rollback: args.rollback,
            nodes: &reports,
        };
        print!("{}", render::structured(&report, out.output)?);
    }
    Ok(if reports.iter().any(|r| r.outcome.is_failure()) {
        EXIT_FAILED
    } else {
        0
    })
}

/// Runs one agent set over the nodes and always removes its pods.
async fn run_nodes(
    kube: &rke2gpu::client::Kube,
    opts: AgentOptions,
    nodes: &[NodeFacts],
    req: &Request,
) -> Vec<NodeReport> {
    let agents = Agents::new(kube, opts);
    let mut out = Vec::new();
    for n in nodes {
        out.push(agent_host::process_node(kube, &agents, n, req).await);
    }
    agents.cleanup().await;
    out
}

async fn select(kube: &rke2gpu::client::Kube, args: &Args) -> Result<Vec<NodeFacts>> {
    let api: Api<Node> = Api::all(kube.client.clone());
    if args.all_gpu_nodes {
        let list = rke2gpu::snapshot::list_all(&api, &ListParams::default())
            .await
            .map_err(kube.err("list nodes"))?;
        let mut facts: Vec<NodeFacts> = list
            .iter()
            .map(NodeFacts::from_node)
            .filter(|f| f.gpu.present || args.nodes.contains(&f.name))
            .collect();
        facts.sort_by(|a, b| a.name.cmp(&b.name));
        if facts.is_empty() {
            return Err(usage(
                "no GPU node found (no nvidia.com/gpu.present=true, NFD NVIDIA PCI label or nvidia.com/gpu capacity); name nodes with --node",
            ));
        }
        return Ok(facts);
    }
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for name in &args.nodes {
        if !seen.insert(name.clone()) {
            continue;
        }
        match api
            .get_opt(name)
            .await
            .map_err(kube.err(&format!("get node {name}")))?
        {
            Some(n) => out.push(NodeFacts::from_node(&n)),
            None => return Err(rke2gpu::Error::NodeNotFound(name.clone()).into()),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

fn render_details(reports: &[NodeReport], out: &OutputOpts) -> String {
    let color = out.color();
    let mut s = String::new();
    for r in reports {
        s.push_str(&format!(
            "NODE {}: {}{}\n",
            r.node,
            render::paint(r.outcome.label(), color),
            r.method
                .as_deref()
                .map(|m| format!(", method {m}"))
                .unwrap_or_default()
        ));
        for why in &r.reasons {
            s.push_str(&format!("  why:   {why}\n"));
        }
        if let Some(e) = &r.error {
            s.push_str(&format!("  error: {e}\n"));
        }
        if r.outcome == Outcome::Unchanged && r.error.is_none() {
            s.push_str("  nothing to change\n");
        }
        if let Some(u) = &r.restart_unit
            && r.restart.is_none()
        {
            s.push_str(&format!(
                "  restart: systemctl restart {u} (after --apply)\n"
            ));
        }
        let diff = r.diff();
        if !diff.is_empty() {
            s.push('\n');
            s.push_str(&diff);
            if !diff.ends_with('\n') {
                s.push('\n');
            }
        }
        s.push('\n');
    }
    s
}

fn render_summary(
    reports: &[NodeReport],
    out: &OutputOpts,
    applied: bool,
    rollback: bool,
) -> String {
    let color = out.color();
    let rows = reports.iter().map(|r| {
        vec![
            r.node.clone(),
            r.method.clone().unwrap_or_else(|| "-".into()),
            render::paint(r.outcome.label(), color),
            if r.files.is_empty() {
                "-".into()
            } else {
                r.files
                    .iter()
                    .map(|f| format!("{} {}", f.action, f.path))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            if r.backups.is_empty() {
                "-".into()
            } else {
                r.backups.join(", ")
            },
            match (&r.restart, &r.restart_unit) {
                (Some(x), _) => format!(
                    "{}{}",
                    x.unit,
                    match x.node_ready {
                        Some(true) => " (Ready)",
                        Some(false) => " (not Ready)",
                        None => "",
                    }
                ),
                (None, Some(u)) if !applied => format!("{u} (pending)"),
                _ => "-".into(),
            },
            match r.confirmed {
                Some(true) => "yes".into(),
                Some(false) => "NO".into(),
                None => "-".into(),
            },
        ]
    });
    let mut s = render::table(
        &[
            "node",
            "method",
            "result",
            "files",
            "backups",
            "restart",
            "confirmed",
        ],
        rows,
    );
    for r in reports {
        for p in &r.problems {
            s.push_str(&format!("{}: {p}\n", r.node));
        }
    }
    let pending = reports.iter().any(|r| r.outcome == Outcome::Planned);
    if !applied && pending {
        s.push_str(&format!(
            "\nDry run: nothing was written. Run again with --apply to {}.\n",
            if rollback {
                "restore these files and restart"
            } else {
                "write these files (each replaced file is backed up next to it), restart and confirm"
            }
        ));
    } else if reports.iter().all(|r| r.outcome == Outcome::Unchanged) {
        s.push_str("\nNothing to do: every node already has the runtime as intended.\n");
    }
    s
}

// ---------------------------------------------------------------------------
// Offline mode
// ---------------------------------------------------------------------------

#[derive(Debug, Serialize)]
struct OfflineFile {
    path: String,
    content: Option<String>,
}

#[derive(Debug, Serialize)]
struct OfflineReport<'a> {
    report: &'a NodeReport,
    /// The resulting files (host path and new content; `null`: removed).
    files: Vec<OfflineFile>,
    /// The generated config as RKE2 should render it after a restart (approximation).
    rendered_config: Option<String>,
    /// Files written under --out-dir.
    written: Vec<String>,
}

fn read_local(path: &Path, what: &str) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| usage(format!("cannot read {what} {}: {e}", path.display())))
}

fn offline(out: &OutputOpts, args: &Args, opts: PatchOptions, cfg: &Path) -> Result<u8> {
    let generated = read_local(cfg, "--config-file")?;
    let kubelet = match &args.rke2_version {
        Some(v) => {
            let k = KubeletVersion::parse(v)
                .filter(|k| k.distribution != Distribution::Other)
                .ok_or_else(|| {
                    usage(format!(
                        "--rke2-version {v:?} is not an RKE2 or K3s version like v1.33.10+rke2r1"
                    ))
                })?;
            Some(k)
        }
        None => None,
    };
    let mut notes = Vec::new();
    let version_of_config =
        rke2gpu::containerd::ContainerdConfig::parse(&cfg.display().to_string(), &generated)
            .map(|c| c.version())
            .unwrap_or(2);
    let containerd = match &args.containerd_version {
        Some(v) => ContainerdVersion::parse(v).ok_or_else(|| {
            usage(format!(
                "--containerd-version {v:?} is not a version like 2.2.2"
            ))
        })?,
        None => {
            let c = if version_of_config >= 3 {
                ContainerdVersion::new(2, 0)
            } else {
                ContainerdVersion::new(1, 7)
            };
            notes.push(format!(
                "no --containerd-version: assuming containerd {c} for a version {version_of_config} config"
            ));
            c
        }
    };
    if kubelet.is_none() {
        notes.push(
            "no --rke2-version: assuming current RKE2 features (base templates, default-runtime)"
                .into(),
        );
    }
    let distribution = kubelet
        .as_ref()
        .map(|k| k.distribution)
        .unwrap_or(Distribution::Rke2);
    let paths = NodePaths::new(distribution, args.data_dir.as_deref());
    let mut state = NodeState {
        generated_config: generated,
        ..NodeState::default()
    };
    if let Some(t) = &args.template_file {
        let text = read_local(t, "--template-file")?;
        let name = t
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.contains("v3") || (!name.starts_with("config.toml") && version_of_config >= 3) {
            state.template_v3 = Some(text);
        } else {
            state.template_v2 = Some(text);
        }
    }
    if let Some(d) = &args.drop_in_dir {
        let rd = std::fs::read_dir(d)
            .map_err(|e| usage(format!("cannot read --drop-in-dir {}: {e}", d.display())))?;
        let mut names: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        names.sort();
        for p in names {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name.ends_with(".toml") && p.is_file() {
                state.drop_ins.insert(name, read_local(&p, "drop-in")?);
            }
        }
    }
    if let Some(r) = &args.rke2_config {
        state.rke2_config = Some(read_local(r, "--rke2-config")?);
    }
    // Binaries: the one given (it is where the target host will have it),
    // those RKE2 rendered into the config (it found them when it wrote it),
    // and the standard ones that exist on this machine.
    if let Ok(c) = rke2gpu::containerd::ContainerdConfig::parse(
        &cfg.display().to_string(),
        &state.generated_config,
    ) {
        for r in c.runtimes() {
            if let Some(b) = r.binary_name
                && patch::RUNTIME_BINARIES
                    .iter()
                    .any(|n| b.rsplit('/').next() == Some(n))
            {
                state.runtime_binaries.insert(b);
            }
        }
    }
    if let Some(b) = &args.binary_path {
        state.runtime_binaries.insert(b.clone());
    }
    for d in patch::RUNTIME_DIRS {
        for b in patch::RUNTIME_BINARIES {
            let p = format!("{d}/{b}");
            if Path::new(&p).exists() {
                state.runtime_binaries.insert(p);
            }
        }
    }
    let mut caps = patch::capabilities(kubelet.as_ref(), containerd);
    if args.generic_containerd {
        caps.default_runtime_flag = false;
    }
    let target = Target {
        node: cfg.display().to_string(),
        distribution,
        paths,
        caps,
        unit: if args.generic_containerd {
            "containerd".into()
        } else if distribution == Distribution::K3s {
            "k3s or k3s-agent".into()
        } else {
            "rke2-server or rke2-agent".into()
        },
        generic_config: args
            .generic_containerd
            .then(|| patch::GENERIC_CONFIG.to_owned()),
        notes,
    };
    let input = target.plan_input(state.clone(), opts);
    let plan = match target.plan(&input) {
        Ok(p) => p,
        Err(e) => {
            let r = NodeReport::failed(&target.node, &e);
            emit_offline(out, &r, Vec::new(), None, Vec::new())?;
            return Ok(EXIT_FAILED);
        }
    };
    let mut report = NodeReport::new(&target.node).with_plan(&plan, &target.unit);
    let files: Vec<OfflineFile> = plan
        .changes
        .iter()
        .map(|c| OfflineFile {
            path: c.path.clone(),
            content: c.new.clone(),
        })
        .collect();
    let rendered = patch::preview_generated(&plan, &state)?;
    let mut written = Vec::new();
    if let Some(dir) = &args.out_dir {
        for c in &plan.changes {
            let Some(n) = &c.new else { continue };
            let dest = dir.join(c.path.trim_start_matches('/'));
            write_file(&dest, n)?;
            written.push(dest.display().to_string());
        }
        let cfg_text = rendered
            .clone()
            .unwrap_or_else(|| state.generated_config.clone());
        let dest = dir.join("rendered/config.toml");
        write_file(&dest, &cfg_text)?;
        written.push(dest.display().to_string());
        let drop_ins = patch::drop_ins_after(&plan, &state);
        let flat = patch::flatten(&plan.expectation.config_path, &cfg_text, &drop_ins)?;
        let dest = dir.join("rendered/effective-config.toml");
        write_file(&dest, &flat)?;
        written.push(dest.display().to_string());
        if !written.is_empty() {
            report.outcome = if plan.changes.is_empty() {
                report.outcome
            } else {
                Outcome::Written
            };
        }
    }
    emit_offline(out, &report, files, rendered, written)?;
    Ok(if report.outcome.is_failure() {
        EXIT_FAILED
    } else {
        0
    })
}

fn write_file(dest: &Path, text: &str) -> Result<()> {
    if let Some(p) = dest.parent() {
        std::fs::create_dir_all(p).with_context(|| format!("create {}", p.display()))?;
    }
    std::fs::write(dest, text).with_context(|| format!("write {}", dest.display()))
}

fn emit_offline(
    out: &OutputOpts,
    report: &NodeReport,
    files: Vec<OfflineFile>,
    rendered: Option<String>,
    written: Vec<String>,
) -> Result<()> {
    if out.output.is_table() {
        let mut s = render_details(std::slice::from_ref(report), out);
        if written.is_empty() {
            for f in &files {
                match &f.content {
                    Some(c) => s.push_str(&format!("# ---- resulting {} ----\n{c}\n", f.path)),
                    None => s.push_str(&format!("# ---- {} is removed ----\n", f.path)),
                }
            }
        } else {
            s.push_str("Wrote:\n");
            for w in &written {
                s.push_str(&format!("  {w}\n"));
            }
        }
        print!("{s}");
    } else {
        let r = OfflineReport {
            report,
            files,
            rendered_config: rendered,
            written,
        };
        print!("{}", render::structured(&r, out.output)?);
    }
    Ok(())
}
