//! The `helm rke2gpu` commands, one entry point each: [`values`],
//! [`install_or_upgrade`] and [`uninstall`]. This is the imperative shell:
//! it reads the chart (running `helm show` for repository charts), the nodes
//! (the cluster through [`crate::client`], or `--nodes-file`), labels the
//! namespace on CIS clusters and runs `$HELM_BIN`; the decisions are the
//! pure functions of [`super::values`], [`super::invocation`],
//! [`super::helmchart`], [`super::crds`] and [`super::upgrade`]. On
//! `upgrade` it first shows the values diff, the user keys the target chart
//! no longer has and what the chart's CRDs change, then server-side applies
//! those CRDs (asking on a terminal) before `helm upgrade` runs.

mod crd_step;
use crd_step::{Upgrade, skip_crds_warning};

use super::chart::{self, Chart, ChartSource, ChartTexts, ShowWhat};
use super::cluster as nodes;
use super::crds::{self, CLUSTER_POLICY_CRD, Crd, CrdChange, CrdPlan, FIELD_MANAGER};
use super::helmchart;
use super::invocation::{self, DEFAULT_RELEASE, Mode, PluginFlags, Split, WrapArgv, display_cmd};
use super::release;
use super::uninstall::cleanup_notes;
use super::upgrade::{self, CrdAction};
use super::values::{
    ClusterInputs, ComputedValues, UserValues, compute_values_with, user_set_conflicts,
};
use crate::cli::KubeOpts;
use crate::client::{self, Kube};
use crate::labels::PSA_ENFORCE;
use crate::matrix::PSA_PRIVILEGED;
use crate::{Error, Result};
use k8s_openapi::api::core::v1::{Namespace, Node, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::Value;
use std::io::Write as _;
use std::process::{Command, Stdio};

/// What the plugin reads from the environment Helm gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HelmEnv {
    /// `HELM_BIN` (default `helm`).
    pub bin: String,
    /// `HELM_NAMESPACE` (Helm's `-n`, `default` when not given).
    pub namespace: Option<String>,
    /// `HELM_KUBECONTEXT` (Helm's `--kube-context`).
    pub kube_context: Option<String>,
}

impl HelmEnv {
    /// Reads `HELM_BIN`, `HELM_NAMESPACE` and `HELM_KUBECONTEXT`; empty
    /// values count as unset. `KUBECONFIG` is read by [`client::connect`].
    pub fn from_env() -> Self {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Self {
            bin: env("HELM_BIN").unwrap_or_else(|| "helm".into()),
            namespace: env("HELM_NAMESPACE"),
            kube_context: env("HELM_KUBECONTEXT"),
        }
    }
}

/// A message for the user's terminal (stderr), in the order it arises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// `warning: …`
    Warning(String),
    /// `hint: …`
    Hint(String),
    /// `note: …`
    Note(String),
    /// Plain progress (`labelled namespace …`).
    Info(String),
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Notice::Warning(m) => write!(f, "warning: {m}"),
            Notice::Hint(m) => write!(f, "hint: {m}"),
            Notice::Note(m) => write!(f, "note: {m}"),
            Notice::Info(m) => f.write_str(m),
        }
    }
}

/// The output forms of `helm rke2gpu values`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ValuesOutput {
    /// values file with `# why` comments
    Yaml,
    /// values, reasons, warnings and hints as JSON
    Json,
    /// `--set`/`--set-string` arguments, one per line
    Set,
    /// an RKE2 HelmChart manifest
    Helmchart,
}

/// `helm rke2gpu values` arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValuesRequest {
    pub chart: String,
    pub version: Option<String>,
    pub repo: Option<String>,
    pub devel: bool,
    pub flags: PluginFlags,
    pub output: ValuesOutput,
    /// The values flags the user will pass to Helm after ours (`-f FILE`,
    /// `--set K=V`, …), checked against our refusals, not merged.
    pub user_args: Vec<String>,
}

/// What a command prints on stdout, or that its help was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `-h/--help` in a passthrough command line: print the subcommand's help.
    Help,
    /// Text for stdout (may be empty).
    Print(String),
}

// ---------------------------------------------------------------------------
// Helm processes
// ---------------------------------------------------------------------------

fn not_runnable(bin: &str, e: std::io::Error) -> Error {
    Error::HelmNotRunnable {
        bin: bin.to_string(),
        reason: e.to_string(),
    }
}

fn exit_code(status: std::process::ExitStatus) -> u8 {
    status
        .code()
        .and_then(|c| u8::try_from(c).ok())
        .unwrap_or(1)
}

/// Runs helm and returns its stdout; its stderr goes to ours.
pub fn helm_capture(bin: &str, args: &[String]) -> Result<String> {
    tracing::debug!(command = %display_cmd(bin, args), "running");
    let out = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| not_runnable(bin, e))?;
    if !out.status.success() {
        return Err(Error::HelmFailed {
            message: format!(
                "`{}` failed (see helm's message above)",
                display_cmd(bin, args)
            ),
            code: exit_code(out.status),
        });
    }
    String::from_utf8(out.stdout)
        .map_err(|e| Error::Other(format!("`{bin}` printed non-UTF-8 output: {e}")))
}

/// Runs helm with inherited stdio and returns its exit code.
pub fn helm_run(bin: &str, args: &[String]) -> Result<u8> {
    tracing::debug!(command = %display_cmd(bin, args), "running");
    let status = Command::new(bin)
        .args(args)
        .status()
        .map_err(|e| not_runnable(bin, e))?;
    Ok(exit_code(status))
}

// ---------------------------------------------------------------------------
// Reading inputs
// ---------------------------------------------------------------------------

/// A chart and where it was read from.
struct ReadChart {
    chart: Chart,
    source: ChartSource,
}

fn read_chart(
    env: &HelmEnv,
    reference: &str,
    version: Option<&str>,
    locating: &[String],
) -> Result<ReadChart> {
    let source = ChartSource::classify(reference);
    let texts = match &source {
        ChartSource::Archive(p) => chart::read_chart_archive_file(p)?,
        ChartSource::Directory(p) => chart::read_chart_dir(p)?,
        ChartSource::Remote(r) => {
            let show = |what, version| {
                helm_capture(&env.bin, &chart::helm_show_args(what, r, version, locating))
            };
            let chart_yaml = show(ShowWhat::Chart, version)?;
            // Ask for the values of exactly the version `show chart` resolved.
            let meta = chart::parse_chart_yaml(r, &chart_yaml)?;
            let resolved = version.map(str::to_string).unwrap_or(meta.version);
            let values_yaml = show(ShowWhat::Values, Some(&resolved))?;
            ChartTexts {
                origin: r.clone(),
                chart_yaml,
                values_yaml,
            }
        }
    };
    Ok(ReadChart {
        chart: Chart::from_texts(&texts)?,
        source,
    })
}

fn kube_opts(env: &HelmEnv, split: Option<&Split>) -> KubeOpts {
    KubeOpts {
        kubeconfig: split.and_then(|s| s.kubeconfig.clone()),
        context: split
            .and_then(|s| s.kube_context.clone())
            .or_else(|| env.kube_context.clone()),
        ..Default::default()
    }
}

/// The cluster inputs from `--nodes-file` or the cluster (then also the client).
async fn read_cluster(
    flags: &PluginFlags,
    opts: &KubeOpts,
) -> Result<(ClusterInputs, Option<Kube>)> {
    let (mut inputs, kube) = match &flags.nodes_file {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| Error::Usage(format!("--nodes-file {}: {e}", p.display())))?;
            let list = nodes::parse_nodes(&p.display().to_string(), &text)
                .map_err(|e| Error::Usage(e.to_string()))?;
            (nodes::cluster_inputs(&list), None)
        }
        None => {
            let kube = client::connect(opts).await?;
            let api: Api<Node> = Api::all(kube.client.clone());
            let list =
                client::list_all(&kube, &api, ListParams::default().limit(500), "list nodes")
                    .await?;
            (nodes::cluster_inputs(&list), Some(kube))
        }
    };
    inputs.cis_profile |= flags.cis;
    Ok((inputs, kube))
}

/// The user's values flags (`-f`, `--set`, …) as Helm will apply them; a
/// file we cannot read (URL, stdin, missing) is a warning, not an error.
fn read_user_values(args: &[String], notice: &mut dyn FnMut(Notice)) -> UserValues {
    let read = UserValues::from_helm_args(args, &|path| {
        std::fs::read_to_string(path).map_err(|e| e.to_string())
    });
    for w in read.warnings {
        notice(Notice::Warning(w));
    }
    read.values
}

fn report(computed: &ComputedValues, notice: &mut dyn FnMut(Notice)) {
    for w in &computed.warnings {
        notice(Notice::Warning(w.clone()));
    }
    for h in &computed.hints {
        notice(Notice::Hint(h.clone()));
    }
}

/// What to know once the release is installed: after `helm install`
/// succeeded, or (`installed` false) ahead of it, for output that installs
/// later (values file, HelmChart, printed command).
fn report_after_install(
    computed: &ComputedValues,
    installed: bool,
    notice: &mut dyn FnMut(Notice),
) {
    for n in &computed.after_install {
        notice(Notice::Note(if installed {
            n.clone()
        } else {
            format!("after install: {n}")
        }));
    }
}

/// Creates the namespace with `pod-security.kubernetes.io/enforce=privileged`,
/// or adds the label to an existing one.
async fn ensure_privileged_namespace(kube: &Kube, name: &str) -> Result<()> {
    let api: Api<Namespace> = Api::all(kube.client.clone());
    let fail = |action: &'static str| {
        move |e: kube::Error| Error::PrivilegedNamespace {
            action,
            namespace: name.to_string(),
            label: format!("{PSA_ENFORCE}={PSA_PRIVILEGED}"),
            server: kube.server.clone(),
            message: e.to_string(),
        }
    };
    let mut ns = Namespace::default();
    ns.metadata.name = Some(name.to_string());
    ns.metadata.labels = Some([(PSA_ENFORCE.to_string(), PSA_PRIVILEGED.to_string())].into());
    if api.get_opt(name).await.map_err(fail("reading"))?.is_some() {
        let patch = serde_json::json!({"metadata": {"labels": {PSA_ENFORCE: PSA_PRIVILEGED}}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(fail("labelling"))?;
    } else {
        api.create(&PostParams::default(), &ns)
            .await
            .map_err(fail("creating"))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------

/// What `values` and `images` read and compute for a [`ValuesRequest`].
struct Computed {
    inputs: ClusterInputs,
    /// `--repo`/`--devel` as `helm show`/`helm template` take them.
    locating: Vec<String>,
    read: ReadChart,
    user: UserValues,
    computed: ComputedValues,
}

async fn compute_for(
    env: &HelmEnv,
    req: &ValuesRequest,
    notice: &mut dyn FnMut(Notice),
) -> Result<Computed> {
    let (inputs, _kube) = read_cluster(&req.flags, &kube_opts(env, None)).await?;
    let mut locating = Vec::new();
    if let Some(r) = &req.repo {
        locating.extend(["--repo".to_string(), r.clone()]);
    }
    if req.devel {
        locating.push("--devel".into());
    }
    let read = read_chart(env, &req.chart, req.version.as_deref(), &locating)?;
    let user = read_user_values(&req.user_args, notice);
    let computed = compute_values_with(&inputs, &read.chart, &req.flags.values, &user)?;
    Ok(Computed {
        inputs,
        locating,
        read,
        user,
        computed,
    })
}

/// `helm rke2gpu images`: every image the chart version pulls with the
/// computed and the user's values ([`super::images::list`]): the operands
/// from the merged values, the containers `helm template` renders (the
/// operator, NFD; skipped with a warning when `helm template` fails) and
/// our own verify and node-agent images.
pub async fn images(
    env: &HelmEnv,
    req: &ValuesRequest,
    notice: &mut dyn FnMut(Notice),
) -> Result<Vec<super::images::ImageRef>> {
    let Computed {
        inputs,
        locating,
        read,
        user,
        computed,
    } = compute_for(env, req, notice).await?;
    let mut merged = read.chart.values.clone();
    super::values::merge_into(&mut merged, &computed.tree());
    super::values::merge_into(&mut merged, &user.merged());
    let nodes: Vec<super::images::NodeOs> = inputs
        .nodes
        .iter()
        .filter(|n| n.gpu)
        .map(|n| super::images::NodeOs {
            node: n.name.clone(),
            os_tag: n.os_tag.clone(),
            kernel: n.kernel.clone(),
            driver_preinstalled: n.driver_preinstalled,
        })
        .collect();
    // The chart's own containers: `helm template` with the same values.
    let file = tempfile::Builder::new()
        .prefix("rke2gpu-values-")
        .suffix(".yaml")
        .tempfile()
        .map_err(|e| Error::Other(format!("creating a temporary values file: {e}")))?;
    std::fs::write(file.path(), computed.to_yaml())
        .map_err(|e| Error::Other(format!("writing the temporary values file: {e}")))?;
    let mut args = vec![
        "template".to_string(),
        DEFAULT_RELEASE.to_string(),
        req.chart.clone(),
    ];
    if let Some(v) = &req.version {
        args.extend(["--version".into(), v.clone()]);
    }
    args.extend(locating);
    args.extend(["-f".into(), file.path().display().to_string()]);
    args.extend(req.user_args.iter().cloned());
    let rendered = match helm_capture(&env.bin, &args) {
        Ok(r) => Some(r),
        Err(e) => {
            notice(Notice::Warning(format!(
                "helm template failed, so images the chart's own templates add (the operator Deployment, NFD) are missing: {e}"
            )));
            None
        }
    };
    let app_version = read
        .chart
        .meta
        .app_version
        .clone()
        .unwrap_or_else(|| read.chart.meta.version.clone());
    Ok(super::images::list(
        &merged,
        &app_version,
        &nodes,
        rendered.as_deref(),
        &[
            (crate::verify::spec::DEFAULT_SMI_IMAGE, "kubectl gpu verify"),
            (
                crate::verify::spec::DEFAULT_VECTORADD_IMAGE,
                "kubectl gpu verify --workload vectoradd",
            ),
            (
                crate::node::agent::DEFAULT_IMAGE,
                "kubectl gpu check-runtime --deep, patch-containerd (node agent)",
            ),
        ],
    ))
}

/// `helm rke2gpu values`: the computed values in the requested form.
pub async fn values(
    env: &HelmEnv,
    req: &ValuesRequest,
    notice: &mut dyn FnMut(Notice),
) -> Result<String> {
    let Computed { read, computed, .. } = compute_for(env, req, notice).await?;
    report(&computed, notice);
    report_after_install(&computed, false, notice);
    Ok(match req.output {
        ValuesOutput::Yaml => computed.to_yaml(),
        ValuesOutput::Json => serde_json::to_string_pretty(&computed)
            .map(|s| s + "\n")
            .map_err(|e| Error::Other(format!("rendering JSON: {e}")))?,
        ValuesOutput::Set => computed
            .set_flags()
            .chunks(2)
            .map(|c| {
                c.iter()
                    .map(|a| crate::shell::quote(a))
                    .collect::<Vec<_>>()
                    .join(" ")
                    + "\n"
            })
            .collect(),
        ValuesOutput::Helmchart => {
            let ns = invocation::namespace(None, env.namespace.as_deref());
            let m = helmchart::manifest(
                DEFAULT_RELEASE,
                &ns,
                &read.chart,
                &read.source,
                req.repo.as_deref(),
                &computed,
            )?;
            for n in m.notes {
                notice(Notice::Note(n));
            }
            m.yaml
        }
    })
}

/// `helm rke2gpu install|upgrade ARGS…`: computes the values and runs
/// `helm install|upgrade` with them first (or prints the command or a
/// HelmChart instead). A failing helm is [`Error::HelmFailed`] with its code.
///
/// On `upgrade`, `ask` is the yes/no question for the CRD step (`None`: no
/// terminal to ask on; see [`upgrade::crd_action`]).
pub async fn install_or_upgrade(
    env: &HelmEnv,
    mode: Mode,
    args: &[String],
    notice: &mut dyn FnMut(Notice),
    ask: Option<&mut dyn FnMut(&str) -> bool>,
) -> Result<Outcome> {
    let s = invocation::split(args, mode).map_err(Error::Usage)?;
    if s.help {
        return Ok(Outcome::Help);
    }
    let (release, chart_ref) = s.release_and_chart();
    let ns = invocation::namespace(s.namespace.as_deref(), env.namespace.as_deref());
    let opts = kube_opts(env, Some(&s));
    let (inputs, kube) = read_cluster(&s.ours, &opts).await?;
    let read = read_chart(env, &chart_ref, s.version.as_deref(), &s.chart_locating())?;
    let user = read_user_values(&s.helm, notice);
    let computed = compute_values_with(&inputs, &read.chart, &s.ours.values, &user)?;
    report(&computed, notice);
    for w in user_set_conflicts(&computed, &s.helm) {
        notice(Notice::Warning(w));
    }

    if s.output_helmchart {
        let repo = s.repo();
        let m = helmchart::manifest(
            &release,
            &ns,
            &read.chart,
            &read.source,
            repo.as_deref(),
            &computed,
        )?;
        for n in m.notes {
            notice(Notice::Note(n));
        }
        report_after_install(&computed, false, notice);
        return Ok(Outcome::Print(m.yaml));
    }

    let pin = (s.version.is_none() && read.source.is_remote()).then(|| {
        notice(Notice::Note(format!(
            "pinning --version {} (the chart version the values were computed for)",
            read.chart.meta.version
        )));
        read.chart.meta.version.clone()
    });
    let argv = WrapArgv::new(mode, &s, &release, &chart_ref, &ns, pin.as_deref());
    if s.print_command {
        report_after_install(&computed, false, notice);
        return Ok(Outcome::Print(invocation::print_command(
            &argv.with_set_flags(computed.set_flags()),
            &ns,
            computed.namespace_needs_privileged,
        )));
    }

    let mut file = tempfile::Builder::new()
        .prefix("rke2gpu-values-")
        .suffix(".yaml")
        .tempfile()
        .map_err(|e| Error::Other(format!("creating a temporary values file: {e}")))?;
    file.write_all(computed.to_yaml().as_bytes())
        .and_then(|_| file.flush())
        .map_err(|e| Error::Other(format!("writing the temporary values file: {e}")))?;
    let path = file.path().display().to_string();

    if computed.namespace_needs_privileged {
        let kube = kube.clone();
        if s.dry_run {
            notice(Notice::Note(format!(
                "--dry-run: not labelling namespace {ns} {PSA_ENFORCE}={PSA_PRIVILEGED}"
            )));
        } else {
            let kube = match kube {
                Some(k) => k,
                None => client::connect(&opts).await?,
            };
            ensure_privileged_namespace(&kube, &ns).await?;
            notice(Notice::Info(format!(
                "labelled namespace {ns} {PSA_ENFORCE}={PSA_PRIVILEGED} (RKE2 CIS profile)"
            )));
        }
    }

    let up = Upgrade {
        env,
        split: &s,
        release: &release,
        namespace: &ns,
        read: &read,
        computed: &computed,
        user: &user,
    };
    if mode == Mode::Upgrade {
        // `--nodes-file` replaces the node read only: the CRD step reads the cluster.
        let kube = match &kube {
            Some(k) => Ok(k.clone()),
            None => client::connect(&opts).await,
        };
        let kube = match kube {
            Ok(k) => k,
            Err(e) if s.skip_crds => {
                notice(Notice::Warning(format!(
                    "cannot read the cluster ({e}): no values diff"
                )));
                notice(Notice::Warning(skip_crds_warning(&read.chart.meta.version)));
                return run_helm(
                    env, mode, &s, &argv, &path, &release, &ns, &computed, notice,
                );
            }
            Err(e) => {
                notice(Notice::Hint(
                    "upgrade compares and applies the chart's CRDs in the cluster first; --skip-crds upgrades without that step".into(),
                ));
                return Err(e);
            }
        };
        up.before_helm(&kube, notice, ask).await?;
    } else if mode == Mode::Install && !s.skip_crds {
        let kube = match &kube {
            Some(k) => Ok(k.clone()),
            None => client::connect(&opts).await,
        };
        match kube {
            Ok(kube) => {
                let mut supplied = computed.tree();
                super::values::merge_into(&mut supplied, &user.merged());
                match up.crd_step(&kube, &supplied, true, notice, ask).await {
                    Ok(()) => {}
                    Err(e @ (Error::CrdStepDeclined { .. } | Error::CrdApply { .. })) => {
                        return Err(e);
                    }
                    Err(e) => notice(Notice::Warning(format!(
                        "the chart's CRDs were not compared with the cluster's: {e}"
                    ))),
                }
            }
            Err(e) => notice(Notice::Note(format!(
                "cannot read the cluster ({e}): the chart's CRDs were not compared with the cluster's"
            ))),
        }
    }

    run_helm(
        env, mode, &s, &argv, &path, &release, &ns, &computed, notice,
    )
}

/// Runs `helm install|upgrade` with the computed values file, then the after-install notes.
#[allow(clippy::too_many_arguments)]
fn run_helm(
    env: &HelmEnv,
    mode: Mode,
    s: &Split,
    argv: &WrapArgv,
    path: &str,
    release: &str,
    ns: &str,
    computed: &ComputedValues,
    notice: &mut dyn FnMut(Notice),
) -> Result<Outcome> {
    let verb = mode.verb();
    let code = helm_run(&env.bin, &argv.with_values_file(path))?;
    if code != 0 {
        return Err(Error::HelmFailed {
            message: format!(
                "helm {verb} of release {release} in namespace {ns} failed with exit code {code}; `helm rke2gpu values` shows the values that were passed"
            ),
            code,
        });
    }
    // `--dry-run` installs nothing; the notes still say what the real install will need.
    report_after_install(computed, !s.dry_run, notice);
    Ok(Outcome::Print(String::new()))
}

/// `helm rke2gpu uninstall ARGS…`: `helm uninstall`, then the cleanup notes.
pub fn uninstall(env: &HelmEnv, args: &[String]) -> Result<Outcome> {
    let s = invocation::split(args, Mode::Uninstall).map_err(Error::Usage)?;
    if s.help {
        return Ok(Outcome::Help);
    }
    let ns = invocation::namespace(s.namespace.as_deref(), env.namespace.as_deref());
    let (releases, argv) = invocation::uninstall_argv(&s, &ns);
    let code = helm_run(&env.bin, &argv)?;
    if code != 0 {
        return Err(Error::HelmFailed {
            message: format!(
                "helm uninstall {} -n {ns} failed with exit code {code}",
                releases.join(" ")
            ),
            code,
        });
    }
    Ok(Outcome::Print(cleanup_notes(&ns)))
}
