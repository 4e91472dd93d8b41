//! Computes the GPU Operator values an RKE2/K3s cluster needs, from the
//! nodes' RKE2 and containerd versions, the chart version and the chart's own
//! `values.yaml`. Every value carries the reason it was chosen (which nodes,
//! which chart version, which matrix row and its source); the YAML rendering
//! ([`render`]) puts that reason in a `# why` comment above the value.
//!
//! The versioned facts come from [`crate::matrix`]; this module only combines
//! them, one concern per submodule, in this order: the chart version and
//! known-bad refusals ([`known_bad`]), the nodes the values are for
//! ([`nodes`]), the NRI plugin ([`nri`]), the toolkit env and per-version
//! toolkit/device-plugin values ([`toolkit`]), `cdi.enabled` ([`cdi`]), GPU
//! isolation where CDI ends up off ([`isolation`]), the OS vendor's driver
//! values (`--os`, [`driver`]), GPU sharing (`--time-slicing`, `--mps`,
//! [`sharing`]), image repositories on a mirror (`--mirror`, [`mirror`]), how pods reach their GPU
//! ([`runtime_class`]) and the namespace's Pod Security
//! label ([`namespace`]). User values are not merged here: the binary passes
//! the computed file first (`-f computed.yaml`) and the user's flags after
//! it, so Helm's own precedence makes user values win ([`user_set_conflicts`]
//! warns when a user `--set` would clobber a computed list). They are read
//! ([`user`], [`compute_values_with`]) only to refuse what cannot work on
//! RKE2/K3s: an `operator.runtimeClass` RKE2 does not render
//! ([`runtime_class`]), NRI with `toolkit.enabled=false` or
//! `cdi.enabled=false` ([`nri`]).

mod cdi;
mod conflicts;
mod driver;
mod isolation;
mod known_bad;
mod mirror;
mod namespace;
mod nodes;
mod nri;
mod render;
mod runtime_class;
mod sharing;
mod toolkit;
mod user;

pub use conflicts::user_set_conflicts;
pub use user::{ReadUserValues, UserValue, UserValues, merge_into};

use super::chart::{Chart, GPU_OPERATOR_CHART};
use crate::matrix::{self, ChartRow, Rke2ChartValues};
use crate::version::{KubeletVersion, Triple};
use crate::{Error, Result};
use nodes::Target;
use serde::Serialize;
use serde_json::Value;

/// One node as the value computation sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeInput {
    pub name: String,
    pub kubelet: KubeletVersion,
    /// The containerd version, when the node runs containerd.
    pub containerd: Option<Triple>,
    /// Whether the node has an NVIDIA GPU (labels or capacity).
    pub gpu: bool,
    /// `status.nodeInfo.osImage` (`SUSE Linux Enterprise Server 16.0`).
    pub os_image: String,
    /// The driver image's OS tag (`ubuntu24.04`), from NFD's os-release
    /// labels or the osImage ([`crate::matrix::driver_os_tag`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub os_tag: Option<String>,
    /// `status.nodeInfo.kernelVersion`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// The operator found a driver on the host
    /// (`nvidia.com/gpu.deploy.driver=pre-installed`): it deploys none there.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub driver_preinstalled: bool,
}

/// What the value computation needs to know about the cluster.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClusterInputs {
    pub nodes: Vec<NodeInput>,
    /// RKE2 `profile: cis` seen on any server (PSA `restricted` enforced).
    pub cis_profile: bool,
    /// RKE2 `data-dir`, when a node says it is not the default.
    pub data_dir: Option<String>,
}

/// Options of `helm rke2gpu values|install|upgrade` that shape the values.
/// The one definition of these flags: `helm rke2gpu values` parses them with
/// clap, and the install/upgrade passthrough recognises them from the same
/// definition ([`crate::helm::invocation`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, clap::Args)]
pub struct ValuesOptions {
    /// Use the operator's NRI plugin (`cdi.nriPluginEnabled=true`, no toolkit env).
    #[arg(
        long,
        help = "Use the operator's NRI plugin instead of the toolkit env"
    )]
    pub nri: bool,
    /// Emit the 2021-era `CONTAINERD_CONFIG=…config.toml.tmpl` values.
    #[arg(
        long = "legacy-2021",
        help = "Emit the 2021-era CONTAINERD_CONFIG values (freezes RKE2's config)"
    )]
    pub legacy_2021: bool,
    /// Go on despite a known-bad chart or an unworkable CDI request.
    #[arg(
        long,
        alias = "rke2gpu-force",
        help = "Go on with a known-bad chart or an unworkable CDI request"
    )]
    pub force: bool,
    /// Allow clusters without RKE2/K3s nodes (generic values only).
    #[arg(long, help = "Allow clusters without RKE2/K3s nodes")]
    pub allow_generic: bool,
    /// Override `cdi.enabled`.
    #[arg(
        long,
        value_name = "true|false",
        value_parser = clap::value_parser!(bool),
        help = "Override cdi.enabled"
    )]
    pub cdi: Option<bool>,
    /// The GPU nodes' OS, for the OS vendor's driver values.
    #[arg(
        long,
        value_enum,
        default_value_t = NodeOs::Auto,
        help = "GPU nodes' OS for vendor driver values: auto (from osImage), sles16, other"
    )]
    pub os: NodeOs,
    /// Share each GPU among N pods by time-slicing (the device plugin config).
    #[arg(
        long,
        value_name = "N",
        conflicts_with = "mps",
        help = "Share each GPU among N pods by time-slicing (device plugin config, every GPU node)"
    )]
    pub time_slicing: Option<u32>,
    /// Share each GPU among N pods with MPS.
    #[arg(
        long,
        value_name = "N",
        help = "Share each GPU among N pods with CUDA MPS (device plugin config)"
    )]
    pub mps: Option<u32>,
    /// Advertise the shares as `nvidia.com/gpu.shared` (`renameByDefault`).
    #[arg(
        long,
        help = "Advertise shared GPUs as nvidia.com/gpu.shared (renameByDefault)"
    )]
    pub rename_shared: bool,
    /// Refuse pods that request more than one share.
    #[arg(long, help = "Refuse pods requesting more than one share")]
    pub fail_requests_greater_than_one: bool,
    /// Only nodes labelled `nvidia.com/device-plugin.config=rke2gpu-shared` share.
    #[arg(
        long,
        help = "Share only on nodes labelled nvidia.com/device-plugin.config=rke2gpu-shared"
    )]
    pub sharing_per_node: bool,
    /// Pull every image from this mirror registry (air-gapped).
    #[arg(
        long,
        value_name = "REGISTRY",
        help = "Pull every operand image from this mirror registry: rewrites each image's repository host (see helm rke2gpu images --check-mirror)"
    )]
    pub mirror: Option<String>,
}

/// `--os`: which OS vendor's driver values to set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum NodeOs {
    /// From the GPU nodes' osImage: SLES 16 when every GPU node runs it.
    #[default]
    Auto,
    /// SLES 16: SUSE's precompiled driver images (rke2-docs v26.3.x tab).
    Sles16,
    /// No OS-specific values.
    Other,
}

/// Parses the value of `--cdi` in an install/upgrade passthrough command
/// line: `true`/`1`/`yes` or `false`/`0`/`no` (`helm rke2gpu values` takes
/// clap's `true`/`false`).
pub fn parse_bool_flag(v: &str) -> std::result::Result<bool, String> {
    match v {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        other => Err(format!("expected true or false, got `{other}`")),
    }
}

/// A value to set, with why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComputedValue {
    /// Dotted key path (`toolkit.env`).
    pub path: String,
    pub value: Value,
    /// Which nodes and which chart version led to it.
    pub reason: String,
    /// Where the fact comes from (matrix row source).
    pub source: String,
}

/// How GPU pods get their GPU with the computed values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PodGpuAccess {
    /// `runtimeClassName: nvidia` (or RKE2 `default-runtime: nvidia`).
    RuntimeClass,
    /// CDI through containerd: no runtime class needed.
    Cdi,
    /// The operator's NRI plugin: no runtime class, containerd config untouched.
    Nri,
}

/// The result of [`compute_values`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComputedValues {
    /// `Chart.yaml` version as written (`v26.7.0`).
    pub chart_version: String,
    /// The matrix row used (`v26.3.x – v26.7.x`).
    pub chart_row: &'static str,
    pub values: Vec<ComputedValue>,
    /// Values we wanted but the chart has no key for.
    pub dropped: Vec<ComputedValue>,
    pub warnings: Vec<String>,
    pub hints: Vec<String>,
    /// What to know once the release is installed (`helm rke2gpu install`
    /// prints these after Helm succeeds).
    pub after_install: Vec<String>,
    pub pod_access: PodGpuAccess,
    /// The operator namespace must be PSA-privileged before install (CIS).
    pub namespace_needs_privileged: bool,
}

/// What every concern reads: the inputs, the matrix row and the nodes.
struct Ctx<'a> {
    chart: &'a Chart,
    opts: &'a ValuesOptions,
    cluster: &'a ClusterInputs,
    /// The user's own values (applied by Helm after ours), for refusals.
    user: &'a UserValues,
    /// `Chart.yaml` version as written.
    vs: &'a str,
    /// The version rows are looked up by.
    version: Triple,
    row: &'static ChartRow,
    /// `chart v26.7.0 (matrix row …)`, for reasons and messages.
    chart_desc: String,
    /// No RKE2/K3s node: only distribution-neutral values.
    generic: bool,
    targets: Vec<Target<'a>>,
    /// The targets, described for reasons.
    nodes_desc: String,
    /// The RKE2 value rows for this chart version (none when generic).
    fixes: Vec<&'static Rke2ChartValues>,
}

impl<'a> Ctx<'a> {
    /// Targets on containerd 1.x.
    fn old_containerd(&self) -> Vec<&Target<'a>> {
        self.targets
            .iter()
            .filter(|t| t.containerd.major < 2)
            .collect()
    }

    /// The value Helm ends up with at `path` and where it comes from: the
    /// user's (`--set …`, `-f …`), else the chart's `values.yaml` default.
    fn effective(&self, path: &str) -> Option<UserValue> {
        self.user.get(path).or_else(|| {
            let v = path
                .split('.')
                .try_fold(&self.chart.values, |cur, k| cur.get(k))?;
            Some(UserValue {
                value: v.clone(),
                origin: format!("the chart's values.yaml ({})", self.chart.origin),
            })
        })
    }

    /// NRI plugin mode: `--nri`, or `cdi.nriPluginEnabled=true` in the user's values.
    fn nri_mode(&self) -> bool {
        self.opts.nri
            || self
                .user
                .get("cdi.nriPluginEnabled")
                .is_some_and(|v| template_bool(&v.value) == Some(true))
    }

    /// Targets on containerd 2.x or later.
    fn new_containerd(&self) -> Vec<&Target<'a>> {
        self.targets
            .iter()
            .filter(|t| t.containerd.major >= 2)
            .collect()
    }
}

/// The values, warnings and hints collected so far.
struct Out<'c> {
    chart: &'c Chart,
    values: Vec<ComputedValue>,
    dropped: Vec<ComputedValue>,
    warnings: Vec<String>,
    hints: Vec<String>,
    after_install: Vec<String>,
}

impl Out<'_> {
    /// Sets a value the chart has a key for; otherwise drops it with a warning.
    fn set(&mut self, path: &str, value: Value, reason: String, source: &str) {
        let cv = ComputedValue {
            path: path.to_string(),
            value,
            reason,
            source: source.to_string(),
        };
        if self.chart.has_value(path) {
            self.values.push(cv);
        } else {
            self.warnings.push(format!(
                "chart {} has no key `{path}` in its values.yaml: not setting {path}={} ({})",
                self.chart.meta.version, cv.value, cv.reason
            ));
            self.dropped.push(cv);
        }
    }
}

/// A boolean as the chart's templates render it: `enabled: {{ .Values.x }}`
/// writes a `--set-string` `"false"` unquoted, so it is a YAML `false` too.
fn template_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => None,
    }
}

impl Out<'_> {
    /// Appends items to a list value computed earlier (`toolkit.env`), adding
    /// to its reason and source; nothing when that value was not set.
    fn extend_list(&mut self, path: &str, items: Vec<Value>, reason: &str, source: &str) {
        let Some(cv) = self.values.iter_mut().find(|v| v.path == path) else {
            return;
        };
        if let Value::Array(list) = &mut cv.value {
            list.extend(items);
            cv.reason.push_str(reason);
            cv.source.push_str("; ");
            cv.source.push_str(source);
        }
    }
}

fn refuse(reason: String) -> Error {
    Error::ValuesRefused { reason }
}

/// Computes the values for a cluster, a chart and options, with no user
/// values to check.
pub fn compute_values(
    cluster: &ClusterInputs,
    chart: &Chart,
    opts: &ValuesOptions,
) -> Result<ComputedValues> {
    compute_values_with(cluster, chart, opts, &UserValues::default())
}

/// Computes the values for a cluster, a chart and options, refusing user
/// values ([`UserValues`], applied by Helm after ours) that cannot work on
/// these nodes unless `--force`.
pub fn compute_values_with(
    cluster: &ClusterInputs,
    chart: &Chart,
    opts: &ValuesOptions,
    user: &UserValues,
) -> Result<ComputedValues> {
    if chart.meta.name != GPU_OPERATOR_CHART {
        return Err(Error::NotGpuOperatorChart {
            chart: chart.origin.clone(),
            name: chart.meta.name.clone(),
        });
    }
    let vs = chart.meta.version.as_str();
    let (version, version_warning) = known_bad::resolve_version(vs);
    let row: &ChartRow = matrix::chart_row(version);
    let mut out = Out {
        chart,
        values: Vec::new(),
        dropped: Vec::new(),
        warnings: version_warning.into_iter().collect(),
        hints: Vec::new(),
        after_install: Vec::new(),
    };
    known_bad::check_options(opts)?;
    let selected = nodes::select(cluster, opts, &mut out)?;
    let fixes = if selected.generic {
        Vec::new()
    } else {
        matrix::rke2_chart_values(version).collect()
    };
    let ctx = Ctx {
        chart,
        opts,
        cluster,
        user,
        vs,
        version,
        row,
        chart_desc: format!("chart {vs} (matrix row {})", row.label),
        generic: selected.generic,
        nodes_desc: selected.describe(),
        targets: selected.targets,
        fixes,
    };

    known_bad::known_defects(&ctx, &mut out)?;
    runtime_class::unrendered_runtime_class(&ctx, &mut out)?;
    nri::nri(&ctx, &mut out)?;
    toolkit::toolkit_env(&ctx, &mut out);
    toolkit::per_version_extras(&ctx, &mut out);
    let cdi_effective = cdi::cdi_enabled(&ctx, &mut out)?;
    isolation::gpu_isolation(&ctx, cdi_effective, &mut out);
    driver::os_driver(&ctx, &mut out);
    sharing::sharing(&ctx, &mut out)?;
    mirror::mirror(&ctx, &mut out);
    let pod_access = runtime_class::pod_access(&ctx, cdi_effective, &mut out);
    known_bad::old_chart_on_containerd2(&ctx, &mut out);
    if ctx.generic {
        out.warnings.push(
            "--allow-generic: no RKE2/K3s node, so no containerd socket or other RKE2 values are set".into(),
        );
        if opts.legacy_2021 {
            return Err(refuse(
                "--legacy-2021 is an RKE2 recipe and this cluster has no RKE2/K3s node".into(),
            ));
        }
    }
    let namespace_needs_privileged = namespace::needs_privileged(&ctx, &mut out);

    Ok(ComputedValues {
        chart_version: vs.to_string(),
        chart_row: row.label,
        values: out.values,
        dropped: out.dropped,
        warnings: out.warnings,
        hints: out.hints,
        after_install: out.after_install,
        pod_access,
        namespace_needs_privileged,
    })
}

#[cfg(test)]
mod tests;
