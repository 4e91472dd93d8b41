//! Computes the GPU Operator values an RKE2/K3s cluster needs, from the
//! nodes' RKE2 and containerd versions, the chart version and the chart's own
//! `values.yaml`. Every value carries the reason it was chosen (which nodes,
//! which chart version, which matrix row and its source); the YAML rendering
//! puts that reason in a `# why` comment above the value.
//!
//! The versioned facts come from [`crate::matrix`]; this module only combines
//! them. User values are not merged here: the binary passes the computed file
//! first (`-f computed.yaml`) and the user's flags after it, so Helm's own
//! precedence makes user values win ([`user_set_conflicts`] warns when a user
//! `--set` would clobber a computed list).

use super::chart::{Chart, GPU_OPERATOR_CHART};
use crate::matrix::{
    self, CHART_ROWS, ChartRow, EnvVar, GpuInjection, LEGACY_2021_DEFAULT_RUNTIME,
    LEGACY_2021_SOURCE, LEGACY_2021_TOOLKIT_ENV, NEWEST_KNOWN_CHART, NRI_SOURCE, NodePaths,
    PSA_CIS_SOURCE, RKE2_SOCKET_ENV, RKE2_SOCKET_ENV_SOURCE, Rke2ChartValues, Rke2Feature,
    Severity,
};
use crate::version::{Distribution, KubeletVersion, Triple};
use crate::{Error, Result};
use serde::Serialize;
use serde_json::{Value, json};
use std::fmt::Write as _;

/// One node as the value computation sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeInput {
    pub name: String,
    pub kubelet: KubeletVersion,
    /// The containerd version, when the node runs containerd.
    pub containerd: Option<Triple>,
    /// Whether the node has an NVIDIA GPU (labels or capacity).
    pub gpu: bool,
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

/// Options of `helm rke2gpu values|install|upgrade`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ValuesOptions {
    /// Use the operator's NRI plugin (`cdi.nriPluginEnabled=true`, no toolkit env).
    pub nri: bool,
    /// Emit the 2021-era `CONTAINERD_CONFIG=…config.toml.tmpl` values.
    pub legacy_2021: bool,
    /// Go on despite a known-bad chart or an unworkable CDI request.
    pub force: bool,
    /// Allow clusters without RKE2/K3s nodes (generic values only).
    pub allow_generic: bool,
    /// Override `cdi.enabled`.
    pub cdi: Option<bool>,
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
    pub pod_access: PodGpuAccess,
    /// The operator namespace must be PSA-privileged before install (CIS).
    pub namespace_needs_privileged: bool,
}

/// A node the values are computed for, with its effective containerd.
struct Target<'a> {
    node: &'a NodeInput,
    containerd: Triple,
    inferred: bool,
}

impl Target<'_> {
    fn describe(&self) -> String {
        format!(
            "{} ({}, containerd {}{})",
            self.node.name,
            self.node.kubelet.raw,
            self.containerd,
            if self.inferred { " inferred" } else { "" }
        )
    }
}

fn describe_all(targets: &[&Target<'_>]) -> String {
    const MAX: usize = 4;
    let mut s: Vec<String> = targets.iter().take(MAX).map(|t| t.describe()).collect();
    if targets.len() > MAX {
        s.push(format!("and {} more", targets.len() - MAX));
    }
    s.join(", ")
}

/// The containerd a node runs, or the one its RKE2 release ships.
fn effective_containerd(node: &NodeInput) -> (Triple, bool) {
    match node.containerd {
        Some(c) => (c, false),
        None if matrix::has(&node.kubelet, Rke2Feature::Containerd21) => {
            (Triple::new(2, 1, 0), true)
        }
        None if matrix::has(&node.kubelet, Rke2Feature::Containerd2) => {
            (Triple::new(2, 0, 0), true)
        }
        None => (Triple::new(1, 7, 0), true),
    }
}

fn env_list(vars: &[(String, String)]) -> Value {
    Value::Array(
        vars.iter()
            .map(|(n, v)| json!({"name": n, "value": v}))
            .collect(),
    )
}

fn owned(vars: &[EnvVar]) -> Vec<(String, String)> {
    vars.iter()
        .map(|e| (e.name.to_string(), e.value.to_string()))
        .collect()
}

struct Out<'c> {
    chart: &'c Chart,
    values: Vec<ComputedValue>,
    dropped: Vec<ComputedValue>,
    warnings: Vec<String>,
    hints: Vec<String>,
}

impl Out<'_> {
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

fn refuse(reason: String) -> Error {
    Error::ValuesRefused { reason }
}

/// The chart version to look rows up by, and a warning when it lies outside
/// the matrix.
fn resolve_version(version: &str) -> (Triple, Option<String>) {
    let first = &CHART_ROWS[0];
    match Triple::parse_loose(version) {
        // Chart.yaml in git says v1.0.0-devel (reference section 3.1).
        Some(_) | None if version.contains("devel") => (
            NEWEST_KNOWN_CHART,
            Some(format!(
                "chart version {version} is a development build: using the newest known row (v{NEWEST_KNOWN_CHART})"
            )),
        ),
        None => (
            NEWEST_KNOWN_CHART,
            Some(format!(
                "chart version `{version}` does not parse: using the newest known row (v{NEWEST_KNOWN_CHART})"
            )),
        ),
        Some(v) if v < first.since => (
            v,
            Some(format!(
                "chart {version} is older than the oldest known row ({}): using that row; values may not fit",
                first.label
            )),
        ),
        Some(v) if !matrix::chart_is_known(v) => (
            v,
            Some(format!(
                "chart {version} is newer than the newest version checked (v{NEWEST_KNOWN_CHART}): using the row {}; check the release notes for RKE2 changes",
                matrix::chart_row(v).label
            )),
        ),
        Some(v) => (v, None),
    }
}

/// Computes the values for a cluster, a chart and options.
pub fn compute_values(
    cluster: &ClusterInputs,
    chart: &Chart,
    opts: &ValuesOptions,
) -> Result<ComputedValues> {
    if chart.meta.name != GPU_OPERATOR_CHART {
        return Err(Error::NotGpuOperatorChart {
            chart: chart.origin.clone(),
            name: chart.meta.name.clone(),
        });
    }
    let vs = chart.meta.version.as_str();
    let (version, version_warning) = resolve_version(vs);
    let row: &ChartRow = matrix::chart_row(version);
    let chart_desc = format!("chart {vs} (matrix row {})", row.label);
    let mut out = Out {
        chart,
        values: Vec::new(),
        dropped: Vec::new(),
        warnings: version_warning.into_iter().collect(),
        hints: Vec::new(),
    };

    if opts.nri && opts.legacy_2021 {
        return Err(refuse(
            "--nri and --legacy-2021 contradict each other: NRI leaves containerd's config alone, the 2021 values rewrite it".into(),
        ));
    }
    if opts.nri && opts.cdi == Some(false) {
        return Err(refuse(
            "--nri with --cdi false: the NRI plugin (cdi.nriPluginEnabled) injects CDI devices and needs cdi.enabled=true".into(),
        ));
    }

    // Which nodes: RKE2/K3s ones, GPU nodes among them.
    let is_rke2 = |n: &&NodeInput| {
        matches!(
            n.kubelet.distribution,
            Distribution::Rke2 | Distribution::K3s
        )
    };
    let rke2_nodes: Vec<&NodeInput> = cluster.nodes.iter().filter(is_rke2).collect();
    let generic = rke2_nodes.is_empty();
    if generic && !opts.allow_generic {
        let mut names: Vec<String> = cluster
            .nodes
            .iter()
            .take(5)
            .map(|n| format!("{} ({})", n.name, n.kubelet.raw))
            .collect();
        if names.is_empty() {
            names.push("none".into());
        }
        return Err(Error::NotRke2 {
            nodes: names.join(", "),
        });
    }
    let others = cluster.nodes.len() - rke2_nodes.len();
    if !generic && others > 0 {
        out.warnings.push(format!(
            "{others} node(s) are neither RKE2 nor K3s and were not considered"
        ));
    }
    let pool: Vec<&NodeInput> = if generic {
        cluster.nodes.iter().collect()
    } else {
        rke2_nodes
    };
    let gpu_pool: Vec<&NodeInput> = pool.iter().copied().filter(|n| n.gpu).collect();
    let chosen = if gpu_pool.is_empty() {
        if !pool.is_empty() {
            out.hints.push(
                "no node is labelled as a GPU node yet (NFD and GFD label them after install): the values fit every node".into(),
            );
        }
        pool
    } else {
        gpu_pool
    };
    let targets: Vec<Target<'_>> = chosen
        .into_iter()
        .map(|node| {
            let (containerd, inferred) = effective_containerd(node);
            Target {
                node,
                containerd,
                inferred,
            }
        })
        .collect();
    for t in targets.iter().filter(|t| t.inferred) {
        out.warnings.push(format!(
            "node {}: no containerd version reported; assuming containerd {} from its RKE2 release {}",
            t.node.name, t.containerd, t.node.kubelet.raw
        ));
    }
    let all: Vec<&Target<'_>> = targets.iter().collect();
    let nodes_desc = if all.is_empty() {
        "no nodes".to_string()
    } else {
        describe_all(&all)
    };

    let fixes: Vec<&'static Rke2ChartValues> = if generic {
        Vec::new()
    } else {
        matrix::rke2_chart_values(version).collect()
    };

    // Known defects (they are RKE2/K3s defects).
    if !generic {
        for d in matrix::chart_defects(version) {
            // A workaround counts only if the chart has the keys it sets.
            let fix = fixes.iter().find(|f| {
                f.fixes_defect == Some(d.id)
                    && (f.toolkit_version.is_none() || chart.has_value("toolkit.version"))
            });
            match (d.severity, fix) {
                (Severity::Fail, Some(f)) => out
                    .warnings
                    .push(format!("{}; working around it: {}", d.summary, f.note)),
                (Severity::Fail, None) if !opts.force => {
                    return Err(Error::KnownBadChart {
                        version: vs.to_string(),
                        summary: d.summary.to_string(),
                        fix: d.fix.to_string(),
                    });
                }
                (Severity::Fail, None) => out.warnings.push(format!(
                    "--force: installing a chart known to fail on RKE2: {}; {}",
                    d.summary, d.fix
                )),
                (Severity::Warn, _) => out.warnings.push(format!("{}; {}", d.summary, d.fix)),
            }
        }
    }

    let old_containerd: Vec<&Target<'_>> =
        targets.iter().filter(|t| t.containerd.major < 2).collect();
    let new_containerd: Vec<&Target<'_>> =
        targets.iter().filter(|t| t.containerd.major >= 2).collect();

    // NRI.
    if opts.nri {
        if !row.has_nri {
            return Err(refuse(format!(
                "--nri: {chart_desc} has no NRI plugin (cdi.nriPluginEnabled arrived in chart v26.3.0)"
            )));
        }
        let bad: Vec<&Target<'_>> = targets
            .iter()
            .filter(|t| !matrix::nri_supported(version, Some(t.containerd)))
            .collect();
        if !bad.is_empty() {
            return Err(refuse(format!(
                "--nri needs containerd 1.7.30+ or ≥ 2.1 on every GPU node, but {} do not have it; upgrade RKE2 (containerd 2.1 ships from v1.31.13, v1.32.9, v1.33.5, v1.34.1) or drop --nri",
                describe_all(&bad)
            )));
        }
        if targets.is_empty() {
            return Err(refuse(
                "--nri: no node to check containerd's NRI support on".into(),
            ));
        }
        out.set(
            "cdi.nriPluginEnabled",
            Value::Bool(true),
            format!("--nri: every GPU node runs a containerd with NRI ({nodes_desc}); {chart_desc}; no toolkit env is needed"),
            NRI_SOURCE,
        );
        out.warnings.push(
            "NRI mode: NVIDIA calls the NRI plugin experimental (not GA, not recommended for production)".into(),
        );
    }

    // toolkit.env
    if !generic && !opts.nri {
        let mut env: Vec<(String, String)>;
        let mut reason;
        let mut source;
        if opts.legacy_2021 {
            let dist = targets
                .first()
                .map(|t| t.node.kubelet.distribution)
                .unwrap_or(Distribution::Rke2);
            let paths = NodePaths::new(dist, cluster.data_dir.as_deref());
            env = vec![
                ("CONTAINERD_CONFIG".into(), paths.template_v2.clone()),
                (RKE2_SOCKET_ENV.name.into(), RKE2_SOCKET_ENV.value.into()),
            ];
            env.extend(owned(LEGACY_2021_TOOLKIT_ENV));
            reason = format!(
                "--legacy-2021: the NVIDIA docs' RKE2 values of 2021–2024, CONTAINERD_CONFIG at {} (data dir {})",
                paths.template_v2, paths.data_dir
            );
            source = LEGACY_2021_SOURCE.to_string();
            out.warnings.push(format!(
                "--legacy-2021: CONTAINERD_CONFIG={} makes the toolkit write a STATIC containerd config into RKE2's template; RKE2 then renders it verbatim on every restart, freezing registry config, pause image and cgroup settings, and nodes may not come back after a reboot (reference section 6 row 4; gpu-operator#992, #623). Prefer the default socket-only values",
                paths.template_v2
            ));
            if !new_containerd.is_empty() {
                out.warnings.push(format!(
                    "--legacy-2021 on containerd 2.x ({}): the static version = 2 template also loses RKE2's version = 3 layout",
                    describe_all(&new_containerd)
                ));
            }
        } else {
            env = vec![(RKE2_SOCKET_ENV.name.into(), RKE2_SOCKET_ENV.value.into())];
            reason = format!(
                "RKE2/K3s nodes {nodes_desc}: containerd listens on {}; the toolkit only needs the socket to signal it, and RKE2 re-renders its own config with the nvidia runtimes",
                RKE2_SOCKET_ENV.value
            );
            source = RKE2_SOCKET_ENV_SOURCE.to_string();
        }
        for f in fixes.iter().filter(|f| !f.toolkit_env.is_empty()) {
            env.extend(owned(f.toolkit_env));
            let names: Vec<&str> = f.toolkit_env.iter().map(|e| e.name).collect();
            let _ = write!(
                reason,
                "; plus {} for {chart_desc}: {}",
                names.join(", "),
                f.note
            );
            let _ = write!(source, "; {}", f.source);
        }
        out.set("toolkit.env", env_list(&env), reason, &source);

        if opts.legacy_2021 {
            if chart.has_value("operator.defaultRuntime") {
                out.set(
                    "operator.defaultRuntime",
                    Value::String(LEGACY_2021_DEFAULT_RUNTIME.into()),
                    format!("--legacy-2021: the 2021 recipe sets the default runtime; {chart_desc} still has the key"),
                    LEGACY_2021_SOURCE,
                );
            } else {
                out.hints.push(format!(
                    "--legacy-2021: {chart_desc} has no operator.defaultRuntime (removed in v25.3.0): not set"
                ));
            }
        }
    }

    // Per-version extras.
    for f in &fixes {
        if let Some(tv) = f.toolkit_version {
            out.set(
                "toolkit.version",
                Value::String(tv.into()),
                format!("{} ({chart_desc})", f.note),
                f.source,
            );
        }
        if !f.device_plugin_env.is_empty() {
            out.set(
                "devicePlugin.env",
                env_list(&owned(f.device_plugin_env)),
                format!("{} ({chart_desc})", f.note),
                f.source,
            );
        }
    }

    // cdi.enabled
    let cdi_off_fix = fixes.iter().find(|f| f.cdi_off);
    let mut cdi_effective = row.cdi_default;
    match opts.cdi {
        Some(true) => {
            if let Some(f) = cdi_off_fix {
                if !opts.force {
                    return Err(refuse(format!(
                        "--cdi true: {chart_desc}: {}; keep CDI off or pass --force",
                        f.note
                    )));
                }
                out.warnings.push(format!(
                    "--force: enabling CDI on {chart_desc}, which NVIDIA says is not operational with RKE2"
                ));
            }
            if !generic && row.cdi_default && !old_containerd.is_empty() && !opts.nri {
                if !opts.force {
                    return Err(refuse(format!(
                        "--cdi true: CDI needs containerd ≥ 2.0 (enable_cdi), but {} run containerd 1.x; upgrade RKE2 to ≥ v1.31.6/v1.32.2 or drop --cdi",
                        describe_all(&old_containerd)
                    )));
                }
                out.warnings.push(format!(
                    "--force: CDI on containerd 1.x nodes ({}) will not inject GPUs",
                    describe_all(&old_containerd)
                ));
            }
            out.set(
                "cdi.enabled",
                Value::Bool(true),
                format!("--cdi true requested; {chart_desc}"),
                row.source,
            );
            cdi_effective = true;
        }
        Some(false) => {
            out.set(
                "cdi.enabled",
                Value::Bool(false),
                format!("--cdi false requested; {chart_desc}"),
                row.source,
            );
            cdi_effective = false;
        }
        None => {
            if let Some(f) = cdi_off_fix {
                out.set(
                    "cdi.enabled",
                    Value::Bool(false),
                    format!(
                        "{chart_desc}: NVIDIA says CDI mode is not operational with RKE2; {}",
                        f.note
                    ),
                    f.source,
                );
                cdi_effective = false;
            } else if !generic && row.cdi_default && !old_containerd.is_empty() && !opts.nri {
                let mut reason = format!(
                    "{chart_desc} enables CDI by default, which needs containerd ≥ 2.0 (enable_cdi); {} run containerd 1.x",
                    describe_all(&old_containerd)
                );
                if !new_containerd.is_empty() {
                    let _ = write!(
                        reason,
                        "; {} run 2.x, but one cluster-wide value must work on every GPU node",
                        describe_all(&new_containerd)
                    );
                }
                out.set(
                    "cdi.enabled",
                    Value::Bool(false),
                    reason,
                    &format!(
                        "{}; reference section 2.4 (GPU Op ≥ 25.10 on containerd 1.7: cdi.enabled=false)",
                        row.source
                    ),
                );
                cdi_effective = false;
            }
        }
    }

    // How pods get GPUs.
    let pod_access = if opts.nri {
        PodGpuAccess::Nri
    } else if !targets.is_empty()
        && targets.iter().all(|t| {
            matrix::gpu_injection(version, Some(cdi_effective), Some(t.containerd))
                == GpuInjection::Cdi
        })
    {
        PodGpuAccess::Cdi
    } else {
        PodGpuAccess::RuntimeClass
    };
    match pod_access {
        PodGpuAccess::RuntimeClass => {
            let why = fixes
                .iter()
                .find(|f| f.needs_runtime_class)
                .map(|f| format!("{}: ", f.note))
                .unwrap_or_default();
            out.hints.push(format!(
                "{why}GPU pods need `runtimeClassName: nvidia` (or RKE2 `default-runtime: nvidia` once the toolkit is installed) besides a nvidia.com/gpu limit"
            ));
        }
        PodGpuAccess::Cdi => out.hints.push(
            "CDI: GPU pods need no runtimeClassName, only a nvidia.com/gpu limit".into(),
        ),
        PodGpuAccess::Nri => out.hints.push(
            "NRI: no nvidia RuntimeClass is created and RKE2's containerd config is not modified; GPU pods need only a nvidia.com/gpu limit".into(),
        ),
    }
    if !generic && !row.supports_containerd2 && !new_containerd.is_empty() {
        out.warnings.push(format!(
            "{chart_desc} predates containerd 2.0 support (chart v25.3.0), and {} run containerd 2.x: prefer a newer chart",
            describe_all(&new_containerd)
        ));
    }
    if generic {
        out.warnings.push(
            "--allow-generic: no RKE2/K3s node, so no containerd socket or other RKE2 values are set".into(),
        );
        if opts.legacy_2021 {
            return Err(refuse(
                "--legacy-2021 is an RKE2 recipe and this cluster has no RKE2/K3s node".into(),
            ));
        }
    }

    let namespace_needs_privileged = cluster.cis_profile;
    if namespace_needs_privileged {
        out.hints.push(format!(
            "RKE2 profile: cis enforces PSA restricted: the operator namespace needs the label {}={} before install (`helm rke2gpu install` sets it; source: {PSA_CIS_SOURCE})",
            crate::labels::PSA_ENFORCE,
            matrix::PSA_PRIVILEGED
        ));
    }

    Ok(ComputedValues {
        chart_version: vs.to_string(),
        chart_row: row.label,
        values: out.values,
        dropped: out.dropped,
        warnings: out.warnings,
        hints: out.hints,
        pod_access,
        namespace_needs_privileged,
    })
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

enum TreeNode {
    Leaf(usize),
    Map(Vec<(String, TreeNode)>),
}

fn insert(tree: &mut Vec<(String, TreeNode)>, keys: &[&str], idx: usize) {
    let Some((first, rest)) = keys.split_first() else {
        return;
    };
    let pos = tree.iter().position(|(k, _)| k == first);
    if rest.is_empty() {
        match pos {
            Some(p) => tree[p].1 = TreeNode::Leaf(idx),
            None => tree.push((first.to_string(), TreeNode::Leaf(idx))),
        }
        return;
    }
    let p = match pos {
        Some(p) => {
            if matches!(tree[p].1, TreeNode::Leaf(_)) {
                tree[p].1 = TreeNode::Map(Vec::new());
            }
            p
        }
        None => {
            tree.push((first.to_string(), TreeNode::Map(Vec::new())));
            tree.len() - 1
        }
    };
    if let TreeNode::Map(m) = &mut tree[p].1 {
        insert(m, rest, idx);
    }
}

fn build_tree(values: &[ComputedValue]) -> Vec<(String, TreeNode)> {
    let mut tree = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let keys: Vec<&str> = v.path.split('.').collect();
        insert(&mut tree, &keys, i);
    }
    tree
}

fn yaml_key(k: &str) -> String {
    let plain = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && k.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && !matches!(
            k.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain {
        k.to_string()
    } else {
        Value::String(k.to_string()).to_string()
    }
}

/// A scalar or empty container in flow form (JSON is valid YAML flow).
fn inline(v: &Value) -> Option<String> {
    match v {
        Value::Array(a) if a.is_empty() => Some("[]".into()),
        Value::Object(o) if o.is_empty() => Some("{}".into()),
        Value::Array(_) | Value::Object(_) => None,
        other => Some(other.to_string()),
    }
}

fn write_entry(out: &mut String, indent: usize, key: &str, v: &Value) {
    let pad = " ".repeat(indent);
    let key = yaml_key(key);
    if let Some(s) = inline(v) {
        let _ = writeln!(out, "{pad}{key}: {s}");
        return;
    }
    let _ = writeln!(out, "{pad}{key}:");
    write_block(out, indent + 2, v);
}

fn write_block(out: &mut String, indent: usize, v: &Value) {
    match v {
        Value::Object(o) => {
            for (k, val) in o {
                write_entry(out, indent, k, val);
            }
        }
        Value::Array(a) => {
            let pad = " ".repeat(indent);
            for item in a {
                if let Some(s) = inline(item) {
                    let _ = writeln!(out, "{pad}- {s}");
                    continue;
                }
                let mut inner = String::new();
                write_block(&mut inner, indent + 2, item);
                let first_pad = " ".repeat(indent + 2);
                let replaced = inner.replacen(&first_pad, &format!("{pad}- "), 1);
                out.push_str(&replaced);
            }
        }
        other => {
            let _ = writeln!(out, "{}{}", " ".repeat(indent), other);
        }
    }
}

fn write_comment(out: &mut String, indent: usize, first: &str, text: &str) {
    const WIDTH: usize = 100;
    let pad = " ".repeat(indent);
    let mut line = format!("{pad}# {first}");
    let cont = format!("{pad}#   ");
    let mut at_start = true;
    for word in text.split_whitespace() {
        if !at_start && line.chars().count() + 1 + word.chars().count() > WIDTH {
            out.push_str(&line);
            out.push('\n');
            line = cont.clone();
            at_start = true;
        }
        if !at_start {
            line.push(' ');
        }
        line.push_str(word);
        at_start = false;
    }
    out.push_str(&line);
    out.push('\n');
}

fn write_tree(
    out: &mut String,
    indent: usize,
    tree: &[(String, TreeNode)],
    values: &[ComputedValue],
) {
    let pad = " ".repeat(indent);
    for (key, node) in tree {
        match node {
            TreeNode::Leaf(i) => {
                let cv = &values[*i];
                write_comment(out, indent, "why: ", &cv.reason);
                write_comment(out, indent, "source: ", &cv.source);
                write_entry(out, indent, key, &cv.value);
            }
            TreeNode::Map(m) => {
                let _ = writeln!(out, "{pad}{}:", yaml_key(key));
                write_tree(out, indent + 2, m, values);
            }
        }
    }
}

impl ComputedValues {
    /// The values as one nested tree (what Helm sees).
    pub fn tree(&self) -> Value {
        let mut root = Value::Object(Default::default());
        for cv in &self.values {
            let mut cur = &mut root;
            let keys: Vec<&str> = cv.path.split('.').collect();
            for (i, k) in keys.iter().enumerate() {
                if !cur.is_object() {
                    *cur = Value::Object(Default::default());
                }
                let Value::Object(map) = cur else { break };
                if i + 1 == keys.len() {
                    map.insert((*k).to_string(), cv.value.clone());
                    break;
                }
                cur = map
                    .entry((*k).to_string())
                    .or_insert_with(|| Value::Object(Default::default()));
            }
        }
        root
    }

    /// The values file: a header, then every value with `# why` and
    /// `# source` comments above it. Warnings are repeated as comments.
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        write_comment(
            &mut out,
            0,
            "",
            &format!(
                "GPU Operator values computed by helm rke2gpu for chart {} (matrix row {}). Pass this file first (-f) so your own -f/--set win.",
                self.chart_version, self.chart_row
            ),
        );
        for w in &self.warnings {
            write_comment(&mut out, 0, "WARNING: ", w);
        }
        if self.values.is_empty() {
            out.push_str("{}\n");
            return out;
        }
        let tree = build_tree(&self.values);
        write_tree(&mut out, 0, &tree, &self.values);
        out
    }

    /// The same values as `helm --set`/`--set-string` arguments: strings go
    /// through `--set-string` so `"true"`/`"false"` stay strings.
    pub fn set_flags(&self) -> Vec<String> {
        let mut out = Vec::new();
        for cv in &self.values {
            flatten(&cv.path, &cv.value, &mut out);
        }
        out
    }
}

fn escape_strval(s: &str) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c == '\\' || c == ',' || (i == 0 && (c == '{' || c == '[')) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn flatten(path: &str, v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) if !o.is_empty() => {
            for (k, val) in o {
                flatten(&format!("{path}.{k}"), val, out);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for (i, val) in a.iter().enumerate() {
                flatten(&format!("{path}[{i}]"), val, out);
            }
        }
        Value::Array(_) => {
            out.push("--set".into());
            out.push(format!("{path}={{}}"));
        }
        Value::Object(_) => {
            out.push("--set-json".into());
            out.push(format!("{path}={{}}"));
        }
        Value::String(s) => {
            out.push("--set-string".into());
            out.push(format!("{path}={}", escape_strval(s)));
        }
        other => {
            out.push("--set".into());
            out.push(format!("{path}={other}"));
        }
    }
}

/// Warnings for user `--set`-style flags that would clobber a computed list
/// or value (Helm applies them after our `-f` file, index by index).
pub fn user_set_conflicts(computed: &ComputedValues, helm_args: &[String]) -> Vec<String> {
    const SET_FLAGS: &[&str] = &[
        "--set",
        "--set-string",
        "--set-json",
        "--set-file",
        "--set-literal",
    ];
    let mut assignments: Vec<(String, String)> = Vec::new();
    let mut it = helm_args.iter();
    while let Some(a) = it.next() {
        let (flag, val) = match a.split_once('=') {
            Some((f, v)) if SET_FLAGS.contains(&f) => (f.to_string(), v.to_string()),
            _ if SET_FLAGS.contains(&a.as_str()) => match it.next() {
                Some(v) => (a.clone(), v.clone()),
                None => continue,
            },
            _ => continue,
        };
        let parts: Vec<String> = if flag == "--set-json" || flag == "--set-literal" {
            vec![val]
        } else {
            split_unescaped_commas(&val)
        };
        for p in parts {
            let key = p.split_once('=').map(|(k, _)| k).unwrap_or(&p).to_string();
            assignments.push((flag.clone(), key));
        }
    }
    let mut warnings = Vec::new();
    for (flag, key) in assignments {
        for cv in &computed.values {
            let p = &cv.path;
            let hit_index = key.strip_prefix(p.as_str()).and_then(|rest| {
                rest.strip_prefix('[')
                    .and_then(|r| r.split_once(']'))
                    .and_then(|(n, _)| n.parse::<usize>().ok())
            });
            if let (Some(i), Value::Array(items)) = (hit_index, &cv.value) {
                let what = items
                    .get(i)
                    .and_then(|e| e.get("name"))
                    .and_then(Value::as_str)
                    .map(|n| format!("entry {i} ({n})"))
                    .unwrap_or_else(|| format!("index {i}"));
                warnings.push(format!(
                    "{flag} {key}: overwrites {what} of the computed {p} list (Helm applies --set after our -f file); to add an entry use index {} or pass the whole list in your own -f file",
                    items.len()
                ));
            } else if key == *p || key.starts_with(&format!("{p}.")) {
                warnings.push(format!(
                    "{flag} {key}: replaces the computed {p} (your value wins); computed because: {}",
                    cv.reason
                ));
            }
        }
    }
    warnings
}

fn split_unescaped_commas(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            cur.push(c);
            escaped = true;
        } else if c == ',' {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::helm::chart::tests::VALUES_26_7;
    use crate::helm::chart::{ChartMeta, parse_values_yaml};
    use crate::matrix::RKE2_CONTAINERD_SOCKET;

    const SOCKET: &str = RKE2_CONTAINERD_SOCKET;

    /// The chart's values at a version, per reference section 3.1: start from
    /// the verbatim v26.7.0 values.yaml and undo what later versions added.
    fn chart_at(version: &str) -> Chart {
        let v = Triple::parse_loose(version).unwrap();
        let mut values = parse_values_yaml("fixture", VALUES_26_7).unwrap();
        // 3.1: operator.defaultRuntime `docker` up to v24.9.2, removed in v25.3.0
        if v < Triple::new(25, 3, 0) {
            values["operator"]["defaultRuntime"] = json!("docker");
        }
        // 3.1: cdi {enabled:false, default:false} before 25.10; nriPluginEnabled from 26.3.0
        if v < Triple::new(26, 3, 0) {
            values["cdi"]
                .as_object_mut()
                .unwrap()
                .remove("nriPluginEnabled");
        }
        if v < Triple::new(25, 10, 0) {
            values["cdi"] = json!({"enabled": false, "default": false});
        }
        // 3.1: no cdi key before v23.3
        if v < Triple::new(23, 3, 0) {
            values.as_object_mut().unwrap().remove("cdi");
        }
        Chart {
            origin: format!("nvidia/gpu-operator@{version}"),
            meta: ChartMeta {
                name: "gpu-operator".into(),
                version: version.into(),
                app_version: Some(version.into()),
            },
            values,
        }
    }

    fn node(name: &str, kubelet: &str, containerd: Option<&str>, gpu: bool) -> NodeInput {
        NodeInput {
            name: name.into(),
            kubelet: KubeletVersion::parse(kubelet).unwrap(),
            containerd: containerd.and_then(Triple::parse_loose),
            gpu,
        }
    }

    fn cluster(nodes: Vec<NodeInput>) -> ClusterInputs {
        ClusterInputs {
            nodes,
            ..Default::default()
        }
    }

    fn one(kubelet: &str, containerd: &str) -> ClusterInputs {
        cluster(vec![node("gpu-1", kubelet, Some(containerd), true)])
    }

    fn get<'a>(c: &'a ComputedValues, path: &str) -> Option<&'a Value> {
        c.values.iter().find(|v| v.path == path).map(|v| &v.value)
    }

    fn env(pairs: &[(&str, &str)]) -> Value {
        Value::Array(
            pairs
                .iter()
                .map(|(n, v)| json!({"name": n, "value": v}))
                .collect(),
        )
    }

    struct Case {
        /// Reference citation.
        why: &'static str,
        kubelet: &'static str,
        containerd: &'static str,
        chart: &'static str,
        toolkit_env: Option<Value>,
        device_plugin_env: Option<Value>,
        cdi_enabled: Option<bool>,
        toolkit_version: Option<&'static str>,
        access: PodGpuAccess,
    }

    #[test]
    fn one_case_per_reference_row() {
        let socket = || Some(env(&[("CONTAINERD_SOCKET", SOCKET)]));
        let v25_3_env = || {
            Some(env(&[
                ("CONTAINERD_SOCKET", SOCKET),
                (
                    "ACCEPT_NVIDIA_VISIBLE_DEVICES_ENVVAR_WHEN_UNPRIVILEGED",
                    "false",
                ),
                ("ACCEPT_NVIDIA_VISIBLE_DEVICES_AS_VOLUME_MOUNTS", "true"),
            ]))
        };
        let cases = [
            Case {
                why: "2.4 row containerd 1.7 (v1.30.14 → 1.7.27): GPU Op ≤25.3 socket only; runtimeClassName",
                kubelet: "v1.30.14+rke2r1",
                containerd: "1.7.27-k3s1",
                chart: "v24.9.2",
                toolkit_env: socket(),
                device_plugin_env: None,
                cdi_enabled: None,
                toolkit_version: None,
                access: PodGpuAccess::RuntimeClass,
            },
            Case {
                why: "2.2 RKE2 docs tab v25.3.x (chart v25.3.4): socket + two ACCEPT_* envs, DEVICE_LIST_STRATEGY=volume-mounts, CDI off (25.3.1/25.3.2 known issues), runtimeClassName",
                kubelet: "v1.30.14+rke2r1",
                containerd: "1.7.27-k3s1",
                chart: "v25.3.4",
                toolkit_env: v25_3_env(),
                device_plugin_env: Some(env(&[("DEVICE_LIST_STRATEGY", "volume-mounts")])),
                cdi_enabled: Some(false),
                toolkit_version: None,
                access: PodGpuAccess::RuntimeClass,
            },
            Case {
                why: "2.2 tab v25.3.x applies on containerd 2.x too (RKE2 v1.31.6 → 2.0.2)",
                kubelet: "v1.31.6+rke2r1",
                containerd: "2.0.2-k3s2",
                chart: "v25.3.4",
                toolkit_env: v25_3_env(),
                device_plugin_env: Some(env(&[("DEVICE_LIST_STRATEGY", "volume-mounts")])),
                cdi_enabled: Some(false),
                toolkit_version: None,
                access: PodGpuAccess::RuntimeClass,
            },
            Case {
                why: "2.4 row containerd 1.7: GPU Op ≥25.10 on containerd 1.7: cdi.enabled=false",
                kubelet: "v1.30.14+rke2r1",
                containerd: "1.7.27-k3s1",
                chart: "v25.10.1",
                toolkit_env: socket(),
                device_plugin_env: None,
                cdi_enabled: Some(false),
                toolkit_version: None,
                access: PodGpuAccess::RuntimeClass,
            },
            Case {
                why: "2.2 tab v25.10.x / 2.4 row containerd 2.0–2.1: only CONTAINERD_SOCKET, CDI default, no runtimeClassName",
                kubelet: "v1.31.6+rke2r1",
                containerd: "2.0.2-k3s2",
                chart: "v25.10.1",
                toolkit_env: socket(),
                device_plugin_env: None,
                cdi_enabled: None,
                toolkit_version: None,
                access: PodGpuAccess::Cdi,
            },
            Case {
                why: "2.2 tab v26.3.x (chart v26.3.2): only CONTAINERD_SOCKET",
                kubelet: "v1.33.5+rke2r1",
                containerd: "2.1.4-k3s1",
                chart: "v26.3.2",
                toolkit_env: socket(),
                device_plugin_env: None,
                cdi_enabled: None,
                toolkit_version: None,
                access: PodGpuAccess::Cdi,
            },
            Case {
                why: "2.4 row containerd 2.2 with imports (v1.34.6 → 2.2.2): same as above",
                kubelet: "v1.34.6+rke2r1",
                containerd: "2.2.2-k3s1",
                chart: "v26.7.0",
                toolkit_env: socket(),
                device_plugin_env: None,
                cdi_enabled: None,
                toolkit_version: None,
                access: PodGpuAccess::Cdi,
            },
            Case {
                why: "2.4 row containerd 2.3 (v1.36.3 → 2.3.3): same",
                kubelet: "v1.36.3+rke2r1",
                containerd: "2.3.3-k3s1",
                chart: "v26.7.0",
                toolkit_env: socket(),
                device_plugin_env: None,
                cdi_enabled: None,
                toolkit_version: None,
                access: PodGpuAccess::Cdi,
            },
            Case {
                why: "8 / release-notes 24.9.0 known limitation: force toolkit.version=v1.17.1-ubuntu20.04",
                kubelet: "v1.30.6+rke2r1",
                containerd: "1.7.22-k3s1",
                chart: "v24.9.0",
                toolkit_env: socket(),
                device_plugin_env: None,
                cdi_enabled: None,
                toolkit_version: Some("v1.17.1-ubuntu20.04"),
                access: PodGpuAccess::RuntimeClass,
            },
            Case {
                why: "8: default values for GPU Op ≥ 24.9.1: only the socket",
                kubelet: "v1.30.6+rke2r1",
                containerd: "1.7.22-k3s1",
                chart: "v24.9.1",
                toolkit_env: socket(),
                device_plugin_env: None,
                cdi_enabled: None,
                toolkit_version: None,
                access: PodGpuAccess::RuntimeClass,
            },
            Case {
                why: "K3s shares the socket (k3s config_linux.go); 26.3.0 notes add K3s support",
                kubelet: "v1.33.5+k3s1",
                containerd: "2.1.4-k3s1",
                chart: "v26.7.0",
                toolkit_env: socket(),
                device_plugin_env: None,
                cdi_enabled: None,
                toolkit_version: None,
                access: PodGpuAccess::Cdi,
            },
        ];
        for c in cases {
            let got = compute_values(
                &one(c.kubelet, c.containerd),
                &chart_at(c.chart),
                &ValuesOptions::default(),
            )
            .unwrap_or_else(|e| panic!("{}: {e}", c.why));
            assert_eq!(
                get(&got, "toolkit.env"),
                c.toolkit_env.as_ref(),
                "{}",
                c.why
            );
            assert_eq!(
                get(&got, "devicePlugin.env"),
                c.device_plugin_env.as_ref(),
                "{}",
                c.why
            );
            assert_eq!(
                get(&got, "cdi.enabled").and_then(Value::as_bool),
                c.cdi_enabled,
                "{}",
                c.why
            );
            assert_eq!(
                get(&got, "toolkit.version").and_then(Value::as_str),
                c.toolkit_version,
                "{}",
                c.why
            );
            assert_eq!(got.pod_access, c.access, "{}", c.why);
            // 8: CONTAINERD_CONFIG=…tmpl never without --legacy-2021; no NRI key
            let env_names: Vec<&str> = got
                .values
                .iter()
                .filter(|v| v.path.ends_with(".env"))
                .flat_map(|v| v.value.as_array().into_iter().flatten())
                .filter_map(|e| e["name"].as_str())
                .collect();
            assert!(!env_names.contains(&"CONTAINERD_CONFIG"), "{}", c.why);
            assert!(get(&got, "cdi.nriPluginEnabled").is_none(), "{}", c.why);
            assert!(get(&got, "operator.defaultRuntime").is_none(), "{}", c.why);
            // 8: booleans in env are strings
            for v in got.values.iter().filter(|v| v.path.ends_with(".env")) {
                for e in v.value.as_array().unwrap() {
                    assert!(e["value"].is_string(), "{}: {e}", c.why);
                }
            }
            for v in &got.values {
                assert!(!v.reason.is_empty() && !v.source.is_empty(), "{}", c.why);
            }
        }
    }

    #[test]
    fn runtime_class_hint_for_25_3() {
        // 2.2 tab v25.3.x: "Test pods need runtimeClassName: nvidia"
        let got = compute_values(
            &one("v1.31.6+rke2r1", "2.0.2-k3s2"),
            &chart_at("v25.3.4"),
            &ValuesOptions::default(),
        )
        .unwrap();
        assert!(
            got.hints
                .iter()
                .any(|h| h.contains("runtimeClassName: nvidia"))
        );
        assert!(
            got.warnings
                .iter()
                .any(|w| w.contains("not operational with RKE2"))
        );
    }

    #[test]
    fn nri_only_where_every_gpu_node_supports_it() {
        // 2.2 tab v26.3.x with NRI (chart v26.3.1): only cdi.nriPluginEnabled=true; containerd 2.1 from v1.33.5
        let nri = ValuesOptions {
            nri: true,
            ..Default::default()
        };
        let got = compute_values(
            &one("v1.33.5+rke2r1", "2.1.4-k3s1"),
            &chart_at("v26.3.1"),
            &nri,
        )
        .unwrap();
        assert_eq!(get(&got, "cdi.nriPluginEnabled"), Some(&json!(true)));
        assert!(get(&got, "toolkit.env").is_none());
        assert_eq!(got.pod_access, PodGpuAccess::Nri);
        assert!(got.warnings.iter().any(|w| w.contains("experimental")));
        // containerd 2.0 has no NRI support the plugin accepts (26.3.0 notes: 1.7.30+, 2.1, 2.2)
        let e = compute_values(
            &one("v1.33.0+rke2r1", "2.0.4-k3s1"),
            &chart_at("v26.7.0"),
            &nri,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("gpu-1") && e.contains("2.0.4"), "{e}");
        // mixed lines: one node on containerd 1.7.2x refuses the whole cluster
        let mixed = cluster(vec![
            node("gpu-new", "v1.34.6+rke2r1", Some("2.2.2-k3s1"), true),
            node("gpu-old", "v1.30.14+rke2r1", Some("1.7.27-k3s1"), true),
        ]);
        let e = compute_values(&mixed, &chart_at("v26.7.0"), &nri)
            .unwrap_err()
            .to_string();
        assert!(e.contains("gpu-old") && !e.contains("gpu-new"), "{e}");
        // chart before 26.3 has no NRI plugin
        let e = compute_values(
            &one("v1.34.6+rke2r1", "2.2.2-k3s1"),
            &chart_at("v25.10.1"),
            &nri,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("v26.3.0"), "{e}");
    }

    #[test]
    fn mixed_lines_agree_on_cdi_off() {
        // 2.4: ≥25.10 on containerd 1.7 needs cdi.enabled=false; one value for the whole cluster
        let mixed = cluster(vec![
            node("gpu-new", "v1.33.5+rke2r1", Some("2.1.4-k3s1"), true),
            node("gpu-old", "v1.30.14+rke2r1", Some("1.7.27-k3s1"), true),
            node("cpu-old", "v1.30.14+rke2r1", Some("1.7.27-k3s1"), false),
        ]);
        let got = compute_values(&mixed, &chart_at("v26.7.0"), &ValuesOptions::default()).unwrap();
        assert_eq!(get(&got, "cdi.enabled"), Some(&json!(false)));
        let why = &got
            .values
            .iter()
            .find(|v| v.path == "cdi.enabled")
            .unwrap()
            .reason;
        assert!(why.contains("gpu-old") && why.contains("gpu-new"), "{why}");
        assert!(!why.contains("cpu-old"), "{why}");
        assert_eq!(got.pod_access, PodGpuAccess::RuntimeClass);
        // only the GPU nodes count: CPU-only containerd 1.7 nodes do not turn CDI off
        let gpu_new_only = cluster(vec![
            node("gpu-new", "v1.33.5+rke2r1", Some("2.1.4-k3s1"), true),
            node("cpu-old", "v1.30.14+rke2r1", Some("1.7.27-k3s1"), false),
        ]);
        let got = compute_values(
            &gpu_new_only,
            &chart_at("v26.7.0"),
            &ValuesOptions::default(),
        )
        .unwrap();
        assert!(get(&got, "cdi.enabled").is_none());
    }

    #[test]
    fn cdi_overrides() {
        let on = ValuesOptions {
            cdi: Some(true),
            ..Default::default()
        };
        // 25.3.1/25.3.2 known issues: CDI not operational with RKE2
        let e = compute_values(
            &one("v1.31.6+rke2r1", "2.0.2-k3s2"),
            &chart_at("v25.3.4"),
            &on,
        )
        .unwrap_err();
        assert!(matches!(e, Error::ValuesRefused { .. }), "{e}");
        // CDI needs containerd ≥ 2.0
        let e = compute_values(
            &one("v1.30.14+rke2r1", "1.7.27-k3s1"),
            &chart_at("v26.7.0"),
            &on,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("containerd 1.x"), "{e}");
        let forced = ValuesOptions { force: true, ..on };
        let got = compute_values(
            &one("v1.30.14+rke2r1", "1.7.27-k3s1"),
            &chart_at("v26.7.0"),
            &forced,
        )
        .unwrap();
        assert_eq!(get(&got, "cdi.enabled"), Some(&json!(true)));
        let off = ValuesOptions {
            cdi: Some(false),
            ..Default::default()
        };
        let got = compute_values(
            &one("v1.34.6+rke2r1", "2.2.2-k3s1"),
            &chart_at("v26.7.0"),
            &off,
        )
        .unwrap();
        assert_eq!(get(&got, "cdi.enabled"), Some(&json!(false)));
        assert_eq!(got.pod_access, PodGpuAccess::RuntimeClass);
    }

    #[test]
    fn legacy_2021_values_only_on_request_and_loudly() {
        // 2.1: Jan 2023 – Sep 2024 NVIDIA docs; 3.1: operator.defaultRuntime exists up to v24.9.2
        let legacy = ValuesOptions {
            legacy_2021: true,
            ..Default::default()
        };
        let got = compute_values(
            &one("v1.30.14+rke2r1", "1.7.27-k3s1"),
            &chart_at("v24.9.2"),
            &legacy,
        )
        .unwrap();
        assert_eq!(
            get(&got, "toolkit.env"),
            Some(&env(&[
                (
                    "CONTAINERD_CONFIG",
                    "/var/lib/rancher/rke2/agent/etc/containerd/config.toml.tmpl"
                ),
                ("CONTAINERD_SOCKET", SOCKET),
                ("CONTAINERD_RUNTIME_CLASS", "nvidia"),
                ("CONTAINERD_SET_AS_DEFAULT", "true"),
            ]))
        );
        assert_eq!(
            get(&got, "operator.defaultRuntime"),
            Some(&json!("containerd"))
        );
        assert!(
            got.warnings
                .iter()
                .any(|w| w.contains("STATIC") && w.contains("reboot"))
        );
        // 3.1: removed in v25.3.0 → not set; data-dir moves the template
        let mut c = one("v1.34.6+rke2r1", "2.2.2-k3s1");
        c.data_dir = Some("/data/rke2".into());
        let got = compute_values(&c, &chart_at("v26.7.0"), &legacy).unwrap();
        assert!(get(&got, "operator.defaultRuntime").is_none());
        assert_eq!(
            get(&got, "toolkit.env").unwrap()[0]["value"],
            "/data/rke2/agent/etc/containerd/config.toml.tmpl"
        );
        assert!(got.warnings.iter().any(|w| w.contains("version = 3")));
    }

    #[test]
    fn generic_clusters_need_opt_in() {
        let kubeadm = cluster(vec![node(
            "n1",
            "v1.29.4-eks-036c24b",
            Some("1.7.11"),
            true,
        )]);
        let e =
            compute_values(&kubeadm, &chart_at("v26.7.0"), &ValuesOptions::default()).unwrap_err();
        assert!(matches!(e, Error::NotRke2 { .. }), "{e}");
        assert!(e.to_string().contains("n1 (v1.29.4-eks-036c24b)"));
        let generic = ValuesOptions {
            allow_generic: true,
            ..Default::default()
        };
        let got = compute_values(&kubeadm, &chart_at("v26.7.0"), &generic).unwrap();
        assert!(got.values.is_empty(), "{:?}", got.values);
        assert!(got.to_yaml().contains("{}"));
    }

    #[test]
    fn chart_checks() {
        let mut other = chart_at("v26.7.0");
        other.meta.name = "nginx".into();
        let e = compute_values(
            &one("v1.34.6+rke2r1", "2.2.2"),
            &other,
            &ValuesOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(e, Error::NotGpuOperatorChart { .. }));
        // newer than the matrix: nearest (last) row, and say so
        let got = compute_values(
            &one("v1.36.3+rke2r1", "2.3.3"),
            &chart_at("v27.1.0"),
            &ValuesOptions::default(),
        )
        .unwrap();
        assert_eq!(got.chart_row, CHART_ROWS.last().unwrap().label);
        assert!(got.warnings.iter().any(|w| w.contains("newer than")));
        let got = compute_values(
            &one("v1.21.5+rke2r2", "1.4.11-k3s1"),
            &chart_at("v1.7.0"),
            &ValuesOptions::default(),
        )
        .unwrap();
        assert_eq!(got.chart_row, CHART_ROWS[0].label);
        assert!(got.warnings.iter().any(|w| w.contains("older than")));
    }

    #[test]
    fn known_bad_chart_refused_without_its_workaround() {
        // 24.9.0 defect is Fail; its workaround needs toolkit.version in the chart
        let mut c = chart_at("v24.9.0");
        c.values["toolkit"]
            .as_object_mut()
            .unwrap()
            .remove("version");
        let e = compute_values(
            &one("v1.30.6+rke2r1", "1.7.22"),
            &c,
            &ValuesOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(e, Error::KnownBadChart { .. }), "{e}");
        assert!(e.to_string().contains("--force"));
        let forced = ValuesOptions {
            force: true,
            ..Default::default()
        };
        let got = compute_values(&one("v1.30.6+rke2r1", "1.7.22"), &c, &forced).unwrap();
        assert!(got.dropped.iter().any(|d| d.path == "toolkit.version"));
        assert!(got.warnings.iter().any(|w| w.contains("--force")));
    }

    #[test]
    fn keys_the_chart_lacks_are_dropped() {
        let mut c = chart_at("v25.3.4");
        c.values["devicePlugin"]
            .as_object_mut()
            .unwrap()
            .remove("env");
        let got = compute_values(
            &one("v1.31.6+rke2r1", "2.0.2"),
            &c,
            &ValuesOptions::default(),
        )
        .unwrap();
        assert!(get(&got, "devicePlugin.env").is_none());
        assert!(got.dropped.iter().any(|d| d.path == "devicePlugin.env"));
        assert!(
            got.warnings
                .iter()
                .any(|w| w.contains("no key `devicePlugin.env`"))
        );
    }

    #[test]
    fn cis_needs_a_privileged_namespace() {
        let mut c = one("v1.34.6+rke2r1", "2.2.2");
        c.cis_profile = true;
        let got = compute_values(&c, &chart_at("v26.7.0"), &ValuesOptions::default()).unwrap();
        assert!(got.namespace_needs_privileged);
        assert!(
            got.hints
                .iter()
                .any(|h| h.contains("pod-security.kubernetes.io/enforce=privileged"))
        );
    }

    #[test]
    fn unknown_containerd_is_inferred_from_the_rke2_release() {
        let c = cluster(vec![node("gpu-1", "v1.30.14+rke2r1", None, true)]);
        let got = compute_values(&c, &chart_at("v26.7.0"), &ValuesOptions::default()).unwrap();
        assert_eq!(get(&got, "cdi.enabled"), Some(&json!(false)));
        assert!(
            got.warnings
                .iter()
                .any(|w| w.contains("assuming containerd"))
        );
    }

    #[test]
    fn yaml_has_why_comments_and_round_trips() {
        let got = compute_values(
            &one("v1.31.6+rke2r1", "2.0.2"),
            &chart_at("v25.3.4"),
            &ValuesOptions::default(),
        )
        .unwrap();
        let yaml = got.to_yaml();
        assert!(yaml.contains("# why: "), "{yaml}");
        assert!(yaml.contains("# source: "), "{yaml}");
        assert!(yaml.contains("value: \"false\""), "{yaml}");
        let back: Value = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(back, got.tree());
        assert_eq!(back["toolkit"]["env"][0]["value"], SOCKET);
        assert_eq!(back["cdi"]["enabled"], false);
        for line in yaml.lines().filter(|l| l.trim_start().starts_with('#')) {
            assert!(line.chars().count() <= 140, "{line}");
        }
    }

    #[test]
    fn set_flags_keep_strings_strings() {
        let got = compute_values(
            &one("v1.31.6+rke2r1", "2.0.2"),
            &chart_at("v25.3.4"),
            &ValuesOptions::default(),
        )
        .unwrap();
        let flags = got.set_flags();
        let pairs: Vec<(String, String)> = flags
            .chunks(2)
            .map(|c| (c[0].clone(), c[1].clone()))
            .collect();
        assert!(pairs.contains(&(
            "--set-string".into(),
            format!("toolkit.env[0].value={SOCKET}")
        )));
        assert!(pairs.contains(&("--set-string".into(), "toolkit.env[1].value=false".into())));
        assert!(pairs.contains(&("--set".into(), "cdi.enabled=false".into())));
        assert_eq!(escape_strval("a,b\\c"), "a\\,b\\\\c");
    }

    #[test]
    fn warns_when_user_set_clobbers_the_computed_list() {
        let got = compute_values(
            &one("v1.34.6+rke2r1", "2.2.2"),
            &chart_at("v26.7.0"),
            &ValuesOptions::default(),
        )
        .unwrap();
        let args: Vec<String> = [
            "--set",
            "toolkit.env[0].name=RUNTIME_CONFIG_SOURCE,toolkit.env[0].value=file",
            "--set-string=toolkit.env[1].value=x",
            "--set",
            "driver.enabled=false",
            "--wait",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let w = user_set_conflicts(&got, &args);
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(
            w[0].contains("entry 0 (CONTAINERD_SOCKET)") && w[0].contains("index 1"),
            "{}",
            w[0]
        );
        assert!(w[2].contains("index 1"), "{}", w[2]);
    }
}
