//! The library's error type: every variant names the object it concerns and
//! what the user can do next. Binaries wrap it with `anyhow` and map it to
//! exit codes in one place: [`exit_code_of`] walks the cause chain to the first
//! [`Error`], whose [`Error::exit_code`] matches every variant (no catch-all).
//!
//! Over 800 lines because of its tests: they list one value of every variant
//! with its documented exit code, so a new variant without a mapping fails to
//! compile; the code itself is about 430 lines.

use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Exit code: a check or verification failed.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: usage, kubeconfig or connection errors.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: interrupted (Ctrl-C, 128 + SIGINT), after removing what we created.
pub const EXIT_INTERRUPTED: u8 = 130;

#[derive(Debug, Error)]
pub enum Error {
    #[error(
        "no kubeconfig found (tried: {tried}); pass --kubeconfig PATH, set KUBECONFIG, or run inside a pod with a service account"
    )]
    NoKubeconfig { tried: String },

    #[error(
        "cannot load kubeconfig {path}: {message}; check the file or pass another with --kubeconfig"
    )]
    BadKubeconfig { path: String, message: String },

    #[error("context {context:?} is not in the kubeconfig ({available}); pick one with --context")]
    UnknownContext { context: String, available: String },

    #[error(
        "cannot reach the Kubernetes API server {server}: {message}; check that it is up and that --context points at the right cluster"
    )]
    Unreachable { server: String, message: String },

    /// A permission we lack; `bind` is the role of `deploy/rbac.yaml` that
    /// grants it and where to bind it (the message gives the command).
    #[error("forbidden: cannot {verb} {resource}{ns}; {advice}", ns = namespace.as_ref().map(|n| format!(" in namespace {n}")).unwrap_or_default(), advice = crate::rbac::advice(bind.as_ref()))]
    Forbidden {
        verb: String,
        resource: String,
        namespace: Option<String>,
        bind: Option<crate::rbac::Binding>,
    },

    #[error("Kubernetes API error while trying to {action}: {message}")]
    Api { action: String, message: String },

    #[error("node {0:?} does not exist; list nodes with `kubectl get nodes`")]
    NodeNotFound(String),

    #[error("{0}")]
    Usage(String),

    #[error("node {node}: {message}")]
    Node { node: String, message: String },

    #[error("{0}")]
    Other(String),
    /// A verify pod cannot be built from these inputs.
    #[error("invalid verify pod input: {field}: {reason}")]
    InvalidVerifySpec { field: &'static str, reason: String },

    // ---- host access (`host`) ----
    /// A host path handed to a [`crate::host::Host`] is not absolute or tries
    /// to leave the host root.
    #[error("invalid host path {path:?}: {reason}")]
    HostPath { path: String, reason: String },

    /// An I/O operation on a host file failed.
    #[error("cannot {op} {path}: {source}")]
    HostIo {
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// A command could not be run on the host.
    #[error("cannot run `{command}` on the host: {reason}")]
    HostCommand { command: String, reason: String },

    // ---- containerd configuration (`containerd`) ----
    /// A TOML file (containerd config, drop-in, or the TOML part of a
    /// template) does not parse.
    #[error(
        "{path}: invalid TOML at line {line}, column {column}: {message}; fix the file (or restore its backup) and run again"
    )]
    TomlParse {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },

    /// A containerd config parses but is not usable (e.g. a non-integer
    /// `version`, or a runtime entry that is not a table).
    #[error("{path}: {reason}")]
    InvalidContainerdConfig { path: String, reason: String },

    /// A user template contains Go template actions we cannot safely place
    /// TOML tables into.
    #[error(
        "{path}: cannot add the runtime to this Go template: {reason}; rewrite it as `{{{{ template \"base\" . }}}}` followed by plain TOML tables, or add the runtime tables by hand"
    )]
    UnsupportedTemplate { path: String, reason: String },

    /// The config's schema version cannot be loaded by the node's containerd.
    #[error(
        "{path}: config schema version {version} does not match containerd {containerd}: {hint}"
    )]
    SchemaMismatch {
        path: String,
        version: i64,
        containerd: String,
        hint: String,
    },

    /// A user template is a static copy of a rendered config (no `{{`): it
    /// freezes RKE2's defaults (registries, pause image, cgroup driver, schema).
    #[error(
        "{path} is a static copy of a rendered config.toml (it has no `{{{{` template actions), which freezes RKE2's defaults (registry config, pause image, cgroup driver, config schema); run again with --replace-static-template to replace it by a `{{{{ template \"base\" . }}}}` template (its old content is kept as a backup), or delete it and restart RKE2"
    )]
    StaticTemplate { path: String },

    /// A default runtime was asked for but no nvidia runtime binary exists.
    #[error(
        "cannot make {runtime} the default runtime in {path}: no nvidia runtime binary exists on the node (looked for {looked_for}); RKE2 would not start (`default runtime {runtime} was not found`). Install the GPU Operator toolkit or the nvidia-container-toolkit package first, restart RKE2, then run again"
    )]
    NoRuntimeBinary {
        path: String,
        runtime: String,
        looked_for: String,
    },

    /// A patch method was forced (or is the only candidate) but the node
    /// cannot support it.
    #[error("method {method} cannot be used for {path}: {reason}")]
    MethodUnsupported {
        method: String,
        path: String,
        reason: String,
    },

    /// The requested runtime conflicts with what the node already renders or
    /// configures.
    #[error("{path}: {reason}")]
    RuntimeConflict { path: String, reason: String },

    /// A drop-in declares a higher config version than the root config.
    #[error(
        "{path}: drop-in config version {dropin} higher than root config version {root}; set `version = {root}` in the drop-in"
    )]
    DropInVersionTooHigh {
        path: String,
        dropin: i64,
        root: i64,
    },

    /// An RKE2 config file (`config.yaml`, `config.yaml.d/*.yaml`) does not parse.
    #[error("{path}: invalid RKE2 config YAML: {reason}")]
    Rke2Config { path: String, reason: String },

    /// An option value is invalid.
    #[error("invalid {option}: {reason}")]
    InvalidOption { option: String, reason: String },

    /// A Helm release Secret that could not be decoded.
    #[error(
        "Helm release secret {secret}: {reason}; check it with `kubectl get secret {secret} -o yaml` (type helm.sh/release.v1)"
    )]
    HelmRelease { secret: String, reason: String },

    /// A chart that could not be read (archive, directory or `helm show`).
    #[error("chart {chart}: {reason}")]
    ChartRead { chart: String, reason: String },

    /// A chart that is not NVIDIA's GPU Operator.
    #[error(
        "chart {chart} is `{name}`, not the NVIDIA GPU Operator (`gpu-operator`); pass the GPU Operator chart, e.g. nvidia/gpu-operator from https://helm.ngc.nvidia.com/nvidia"
    )]
    NotGpuOperatorChart { chart: String, name: String },

    /// A chart version with a known defect on RKE2 and no value that works around it.
    #[error(
        "GPU Operator chart {version} is known to fail on RKE2/K3s: {summary}; {fix} (or pass --force to install it anyway; on upgrade, where --force is Helm's own, --rke2gpu-force)"
    )]
    KnownBadChart {
        version: String,
        summary: String,
        fix: String,
    },

    /// No RKE2 or K3s node in the cluster.
    #[error(
        "no RKE2 or K3s node found (nodes: {nodes}); these values are for RKE2/K3s. Pass --allow-generic to compute only distribution-neutral values"
    )]
    NotRke2 { nodes: String },

    /// A requested combination of values that cannot work on these nodes or this chart.
    #[error("refused: {reason}")]
    ValuesRefused { reason: String },

    /// `--node` names a node without GPUs.
    #[error(
        "node {0:?} has no GPUs (no nvidia.com/gpu.present or NFD pci-10de label, no nvidia.com/gpu capacity); list GPU nodes with `kubectl get nodes -l nvidia.com/gpu.present=true`"
    )]
    NotAGpuNode(String),

    /// Nothing to verify: no GPU node in the cluster or the selection.
    #[error("{0}")]
    NoGpuNodes(String),

    /// The API server rejected a label selector.
    #[error("invalid label selector {selector:?}: {message}")]
    InvalidSelector { selector: String, message: String },

    // ---- patch-containerd (`patch`, `agent_host`) ----
    /// A command run in a node-agent pod (to read or write host files) failed.
    #[error("node {node}: `{what}` in node-agent pod {pod} failed: {reason}")]
    AgentExec {
        node: String,
        pod: String,
        what: String,
        reason: String,
    },

    /// The generated containerd config is missing on the node (or in offline mode).
    #[error(
        "no generated containerd config at {path}: is RKE2 installed and has it started once, and is its data-dir right (pass --data-dir)? {hint}"
    )]
    MissingGeneratedConfig { path: String, hint: String },

    /// A directory the patch must write into is read-only or cannot be created.
    #[error("cannot write into {dir}: {reason}; nothing was changed")]
    NotWritable { dir: String, reason: String },

    /// A file changed on the node between the plan and the write.
    #[error("{path} changed since it was read; nothing was written to it. Run the command again")]
    ChangedSinceRead { path: String },

    /// A node that is not RKE2 or K3s, without --generic-containerd.
    #[error(
        "node {node} runs {distribution} ({kubelet}), not RKE2 or K3s: its containerd config is not generated by RKE2. Pass --generic-containerd to patch a plain containerd config (/etc/containerd/config.toml)"
    )]
    NotRke2Node {
        node: String,
        distribution: String,
        kubelet: String,
    },

    /// The node's container runtime is not containerd (or its version is unknown).
    #[error(
        "node {node}: container runtime {runtime:?} is not a containerd with a known version; patch-containerd only handles containerd"
    )]
    NotContainerd { node: String, runtime: String },
    // ---- report (`report`) ----
    /// The support bundle could not be written.
    #[error("cannot write the support bundle: {reason}")]
    BundleWrite { reason: String },

    /// The support bundle file could not be created.
    #[error("cannot create {path}: {source}; pick a writable path for --bundle")]
    BundleCreate {
        path: String,
        #[source]
        source: std::io::Error,
    },

    /// A watch on nodes or pods ended with an error.
    #[error("watching {what} failed: {reason}")]
    Watch { what: String, reason: String },

    // ---- helm rke2gpu (`helm`) ----
    /// The `helm` binary (`HELM_BIN`) could not be started.
    #[error("cannot run `{bin}` (HELM_BIN): {reason}; install Helm or set HELM_BIN")]
    HelmNotRunnable { bin: String, reason: String },

    /// `helm` ran and failed; its own exit code is passed on.
    #[error("{message}")]
    HelmFailed { message: String, code: u8 },

    /// The operator namespace could not be created or labelled PSA-privileged.
    #[error(
        "{action} namespace {namespace} with {label} on {server}: {message}; label it by hand: kubectl label ns {namespace} {label}"
    )]
    PrivilegedNamespace {
        action: &'static str,
        namespace: String,
        label: String,
        server: String,
        message: String,
    },

    /// The target chart's CRDs could not be read or parsed (`helm rke2gpu upgrade`).
    #[error(
        "reading the CRDs of chart {origin}: {reason}; fix the chart, or pass --skip-crds to upgrade without applying its CRDs (Helm never upgrades crds/ itself)"
    )]
    CrdRead { origin: String, reason: String },

    /// Server-side apply of one of the chart's CRDs failed; helm did not run.
    #[error(
        "applying CRD {crd} of chart {chart} (server-side, field manager {manager}) on {server}: {message}; helm upgrade did not run: apply the CRDs yourself (`helm show crds CHART | kubectl apply --server-side --force-conflicts -f -`) and rerun, or pass --skip-crds"
    )]
    CrdApply {
        crd: String,
        chart: String,
        manager: &'static str,
        server: String,
        message: String,
    },

    /// The user answered no to applying the chart's CRDs.
    #[error(
        "not running helm {verb}: the CRDs of chart {chart} were not applied ({crds}); Helm does not update CRDs that exist, so the API server would prune the fields only the new CRDs have; rerun and answer yes (or pass --yes), or pass --skip-crds to {verb} without them, knowing that risk"
    )]
    CrdStepDeclined {
        verb: &'static str,
        chart: String,
        crds: String,
    },

    // ---- verify area: the objects we create (`objects`) ----
    /// Ctrl-C: the objects the run created were removed (or kept with
    /// `--keep`) before this was returned. Exit code 130.
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    /// The documented exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Node { .. } | Error::Other(_) | Error::NoGpuNodes(_) => EXIT_FAILED,
            // helm rke2gpu: refusals are 1 (helm-rke2gpu/README.md), a failed
            // helm passes its own code on.
            Error::KnownBadChart { .. }
            | Error::ValuesRefused { .. }
            | Error::NotGpuOperatorChart { .. }
            | Error::NotRke2 { .. }
            | Error::CrdStepDeclined { .. }
            | Error::HelmNotRunnable { .. } => EXIT_FAILED,
            Error::HelmFailed { code, .. } => *code,
            Error::Interrupted => EXIT_INTERRUPTED,
            // Usage, kubeconfig, connection, config and refused-input errors.
            // Listed one by one (no catch-all): a new variant must pick its code.
            Error::NoKubeconfig { .. }
            | Error::BadKubeconfig { .. }
            | Error::UnknownContext { .. }
            | Error::PrivilegedNamespace { .. }
            | Error::CrdRead { .. }
            | Error::CrdApply { .. }
            | Error::Unreachable { .. }
            | Error::Forbidden { .. }
            | Error::Api { .. }
            | Error::NodeNotFound { .. }
            | Error::Usage { .. }
            | Error::InvalidVerifySpec { .. }
            | Error::HostPath { .. }
            | Error::HostIo { .. }
            | Error::HostCommand { .. }
            | Error::TomlParse { .. }
            | Error::InvalidContainerdConfig { .. }
            | Error::UnsupportedTemplate { .. }
            | Error::SchemaMismatch { .. }
            | Error::StaticTemplate { .. }
            | Error::NoRuntimeBinary { .. }
            | Error::MethodUnsupported { .. }
            | Error::RuntimeConflict { .. }
            | Error::DropInVersionTooHigh { .. }
            | Error::InvalidOption { .. }
            | Error::HelmRelease { .. }
            | Error::ChartRead { .. }
            | Error::Rke2Config { .. }
            | Error::NotAGpuNode { .. }
            | Error::InvalidSelector { .. }
            | Error::AgentExec { .. }
            | Error::MissingGeneratedConfig { .. }
            | Error::NotWritable { .. }
            | Error::ChangedSinceRead { .. }
            | Error::NotContainerd { .. }
            | Error::BundleWrite { .. }
            | Error::BundleCreate { .. }
            | Error::Watch { .. }
            | Error::NotRke2Node { .. } => EXIT_USAGE,
        }
    }

    /// The file an error is about, for the variants that name one (host
    /// files, TOML and YAML configs, templates, drop-ins, the bundle); `None`
    /// for the others. Offline `patch-containerd --config-file` uses it to
    /// name the user's file instead of the host path it was staged at.
    pub fn file_path_mut(&mut self) -> Option<&mut String> {
        match self {
            Error::HostPath { path, .. }
            | Error::HostIo { path, .. }
            | Error::TomlParse { path, .. }
            | Error::InvalidContainerdConfig { path, .. }
            | Error::UnsupportedTemplate { path, .. }
            | Error::SchemaMismatch { path, .. }
            | Error::StaticTemplate { path }
            | Error::NoRuntimeBinary { path, .. }
            | Error::MethodUnsupported { path, .. }
            | Error::RuntimeConflict { path, .. }
            | Error::DropInVersionTooHigh { path, .. }
            | Error::Rke2Config { path, .. }
            | Error::MissingGeneratedConfig { path, .. }
            | Error::ChangedSinceRead { path }
            | Error::BundleCreate { path, .. } => Some(path),
            _ => None,
        }
    }

    /// Wraps a kube client error with the action that failed, recognising
    /// forbidden and connection errors.
    pub fn from_kube(err: kube::Error, action: &str, server: &str) -> Self {
        match err {
            kube::Error::Api(status) if status.code == 403 => {
                let (verb, resource, namespace) = parse_forbidden(&status.message)
                    .unwrap_or_else(|| (action.to_string(), String::new(), None));
                let bind = crate::rbac::binding_for_read(&verb, &resource, namespace.as_deref());
                Error::Forbidden {
                    verb,
                    resource,
                    namespace,
                    bind,
                }
            }
            kube::Error::Api(status) => Error::Api {
                action: action.to_string(),
                message: status.message.clone(),
            },
            kube::Error::HyperError(e) => Error::Unreachable {
                server: server.to_string(),
                message: e.to_string(),
            },
            kube::Error::Service(e) => Error::Unreachable {
                server: server.to_string(),
                message: e.to_string(),
            },
            other => Error::Api {
                action: action.to_string(),
                message: other.to_string(),
            },
        }
    }
}

/// The documented exit code for an error returned by a binary's `run`: the
/// first [`Error`] in the `source()` chain decides; anything else is
/// [`EXIT_FAILED`]. Both binaries (kubectl-gpu, helm-rke2gpu) call this.
pub fn exit_code_of(err: &(dyn std::error::Error + 'static)) -> u8 {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(lib) = e.downcast_ref::<Error>() {
            return lib.exit_code();
        }
        cur = e.source();
    }
    EXIT_FAILED
}

/// What the binaries print after `error: `: the error and its causes joined
/// with `: ` like anyhow's `{:#}`, leaving out a cause whose text is already
/// in what comes before it. Variants that name their `#[source]` in their
/// own message (`cannot create PATH: CAUSE; ...`) would otherwise show the
/// cause twice.
pub fn message_of(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let cause = e.to_string();
        if !out.contains(&cause) {
            out.push_str(": ");
            out.push_str(&cause);
        }
        cur = e.source();
    }
    out
}

/// Reads `pods is forbidden: User "x" cannot create resource "pods" in API
/// group "" in the namespace "kube-system"` into (verb, resource, namespace).
pub(crate) fn parse_forbidden(message: &str) -> Option<(String, String, Option<String>)> {
    let rest = message.split(" cannot ").nth(1)?;
    let mut words = rest.split_whitespace();
    let verb = words.next()?.to_string();
    let resource = rest
        .split("resource \"")
        .nth(1)?
        .split('"')
        .next()?
        .to_string();
    let group = rest
        .split("API group \"")
        .nth(1)
        .and_then(|g| g.split('"').next())
        .filter(|g| !g.is_empty());
    let namespace = rest
        .split("namespace \"")
        .nth(1)
        .and_then(|n| n.split('"').next())
        .map(str::to_string);
    let resource = match group {
        Some(g) => format!("{resource}.{g}"),
        None => resource,
    };
    Some((verb, resource, namespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s() -> String {
        "x".to_string()
    }

    fn io() -> std::io::Error {
        std::io::Error::other("x")
    }

    /// One value of each variant with its documented exit code.
    fn one_of_each() -> Vec<(Error, u8)> {
        use Error::*;
        vec![
            (NoKubeconfig { tried: s() }, EXIT_USAGE),
            (
                BadKubeconfig {
                    path: s(),
                    message: s(),
                },
                EXIT_USAGE,
            ),
            (
                UnknownContext {
                    context: s(),
                    available: s(),
                },
                EXIT_USAGE,
            ),
            (
                Unreachable {
                    server: s(),
                    message: s(),
                },
                EXIT_USAGE,
            ),
            (
                Forbidden {
                    verb: s(),
                    resource: s(),
                    namespace: None,
                    bind: None,
                },
                EXIT_USAGE,
            ),
            (
                Api {
                    action: s(),
                    message: s(),
                },
                EXIT_USAGE,
            ),
            (NodeNotFound(s()), EXIT_USAGE),
            (Usage(s()), EXIT_USAGE),
            (
                Node {
                    node: s(),
                    message: s(),
                },
                EXIT_FAILED,
            ),
            (Other(s()), EXIT_FAILED),
            (
                InvalidVerifySpec {
                    field: "x",
                    reason: s(),
                },
                EXIT_USAGE,
            ),
            (
                HostPath {
                    path: s(),
                    reason: s(),
                },
                EXIT_USAGE,
            ),
            (
                HostIo {
                    op: "x",
                    path: s(),
                    source: io(),
                },
                EXIT_USAGE,
            ),
            (
                HostCommand {
                    command: s(),
                    reason: s(),
                },
                EXIT_USAGE,
            ),
            (
                TomlParse {
                    path: s(),
                    line: 1,
                    column: 1,
                    message: s(),
                },
                EXIT_USAGE,
            ),
            (
                InvalidContainerdConfig {
                    path: s(),
                    reason: s(),
                },
                EXIT_USAGE,
            ),
            (
                UnsupportedTemplate {
                    path: s(),
                    reason: s(),
                },
                EXIT_USAGE,
            ),
            (
                SchemaMismatch {
                    path: s(),
                    version: 3,
                    containerd: s(),
                    hint: s(),
                },
                EXIT_USAGE,
            ),
            (StaticTemplate { path: s() }, EXIT_USAGE),
            (
                NoRuntimeBinary {
                    path: s(),
                    runtime: s(),
                    looked_for: s(),
                },
                EXIT_USAGE,
            ),
            (
                MethodUnsupported {
                    method: s(),
                    path: s(),
                    reason: s(),
                },
                EXIT_USAGE,
            ),
            (
                RuntimeConflict {
                    path: s(),
                    reason: s(),
                },
                EXIT_USAGE,
            ),
            (
                DropInVersionTooHigh {
                    path: s(),
                    dropin: 3,
                    root: 2,
                },
                EXIT_USAGE,
            ),
            (
                Rke2Config {
                    path: s(),
                    reason: s(),
                },
                EXIT_USAGE,
            ),
            (
                InvalidOption {
                    option: s(),
                    reason: s(),
                },
                EXIT_USAGE,
            ),
            (
                HelmRelease {
                    secret: s(),
                    reason: s(),
                },
                EXIT_USAGE,
            ),
            (
                ChartRead {
                    chart: s(),
                    reason: s(),
                },
                EXIT_USAGE,
            ),
            (
                NotGpuOperatorChart {
                    chart: s(),
                    name: s(),
                },
                EXIT_FAILED,
            ),
            (
                KnownBadChart {
                    version: s(),
                    summary: s(),
                    fix: s(),
                },
                EXIT_FAILED,
            ),
            (NotRke2 { nodes: s() }, EXIT_FAILED),
            (ValuesRefused { reason: s() }, EXIT_FAILED),
            (NotAGpuNode(s()), EXIT_USAGE),
            (NoGpuNodes(s()), EXIT_FAILED),
            (
                InvalidSelector {
                    selector: s(),
                    message: s(),
                },
                EXIT_USAGE,
            ),
            (
                AgentExec {
                    node: s(),
                    pod: s(),
                    what: s(),
                    reason: s(),
                },
                EXIT_USAGE,
            ),
            (
                MissingGeneratedConfig {
                    path: s(),
                    hint: s(),
                },
                EXIT_USAGE,
            ),
            (
                NotWritable {
                    dir: s(),
                    reason: s(),
                },
                EXIT_USAGE,
            ),
            (ChangedSinceRead { path: s() }, EXIT_USAGE),
            (
                NotRke2Node {
                    node: s(),
                    distribution: s(),
                    kubelet: s(),
                },
                EXIT_USAGE,
            ),
            (
                NotContainerd {
                    node: s(),
                    runtime: s(),
                },
                EXIT_USAGE,
            ),
            (BundleWrite { reason: s() }, EXIT_USAGE),
            (
                BundleCreate {
                    path: s(),
                    source: io(),
                },
                EXIT_USAGE,
            ),
            (
                Watch {
                    what: s(),
                    reason: s(),
                },
                EXIT_USAGE,
            ),
            (
                HelmNotRunnable {
                    bin: s(),
                    reason: s(),
                },
                EXIT_FAILED,
            ),
            (
                HelmFailed {
                    message: s(),
                    code: 7,
                },
                7,
            ),
            (
                PrivilegedNamespace {
                    action: "x",
                    namespace: s(),
                    label: s(),
                    server: s(),
                    message: s(),
                },
                EXIT_USAGE,
            ),
            (
                CrdRead {
                    origin: s(),
                    reason: s(),
                },
                EXIT_USAGE,
            ),
            (
                CrdApply {
                    crd: s(),
                    chart: s(),
                    manager: "m",
                    server: s(),
                    message: s(),
                },
                EXIT_USAGE,
            ),
            (
                CrdStepDeclined {
                    verb: "upgrade",
                    chart: s(),
                    crds: s(),
                },
                EXIT_FAILED,
            ),
            (Interrupted, EXIT_INTERRUPTED),
        ]
    }

    /// The variant's position in the enum. Exhaustive (no catch-all): a new
    /// variant fails to compile here until it is added to `one_of_each`.
    fn index(e: &Error) -> usize {
        use Error::*;
        match e {
            NoKubeconfig { .. } => 0,
            BadKubeconfig { .. } => 1,
            UnknownContext { .. } => 2,
            Unreachable { .. } => 3,
            Forbidden { .. } => 4,
            Api { .. } => 5,
            NodeNotFound(_) => 6,
            Usage(_) => 7,
            Node { .. } => 8,
            Other(_) => 9,
            InvalidVerifySpec { .. } => 10,
            HostPath { .. } => 11,
            HostIo { .. } => 12,
            HostCommand { .. } => 13,
            TomlParse { .. } => 14,
            InvalidContainerdConfig { .. } => 15,
            UnsupportedTemplate { .. } => 16,
            SchemaMismatch { .. } => 17,
            StaticTemplate { .. } => 18,
            NoRuntimeBinary { .. } => 19,
            MethodUnsupported { .. } => 20,
            RuntimeConflict { .. } => 21,
            DropInVersionTooHigh { .. } => 22,
            Rke2Config { .. } => 23,
            InvalidOption { .. } => 24,
            HelmRelease { .. } => 25,
            ChartRead { .. } => 26,
            NotGpuOperatorChart { .. } => 27,
            KnownBadChart { .. } => 28,
            NotRke2 { .. } => 29,
            ValuesRefused { .. } => 30,
            NotAGpuNode(_) => 31,
            NoGpuNodes(_) => 32,
            InvalidSelector { .. } => 33,
            AgentExec { .. } => 34,
            MissingGeneratedConfig { .. } => 35,
            NotWritable { .. } => 36,
            ChangedSinceRead { .. } => 37,
            NotRke2Node { .. } => 38,
            NotContainerd { .. } => 39,
            BundleWrite { .. } => 40,
            BundleCreate { .. } => 41,
            Watch { .. } => 42,
            HelmNotRunnable { .. } => 43,
            HelmFailed { .. } => 44,
            PrivilegedNamespace { .. } => 45,
            CrdRead { .. } => 46,
            CrdApply { .. } => 47,
            CrdStepDeclined { .. } => 48,
            Interrupted => 49,
        }
    }

    #[test]
    fn every_variant_maps_to_its_documented_exit_code() {
        let all = one_of_each();
        let indices: Vec<usize> = all.iter().map(|(e, _)| index(e)).collect();
        assert_eq!(
            indices,
            (0..=49).collect::<Vec<_>>(),
            "one value per variant, in order"
        );
        for (e, code) in &all {
            assert_eq!(e.exit_code(), *code, "{e:?}");
        }
    }

    #[test]
    fn exit_code_of_walks_the_source_chain() {
        let wrapped = anyhow::Error::new(Error::Interrupted).context("running verify");
        assert_eq!(exit_code_of(wrapped.as_ref()), EXIT_INTERRUPTED);
        let wrapped = anyhow::Error::new(Error::Usage(s()))
            .context("a")
            .context("b");
        assert_eq!(exit_code_of(wrapped.as_ref()), EXIT_USAGE);
        assert_eq!(exit_code_of(anyhow::anyhow!("plain").as_ref()), EXIT_FAILED);
        assert_eq!(exit_code_of(&io()), EXIT_FAILED);
    }

    #[test]
    fn forbidden_message_is_parsed() {
        let (verb, resource, ns) = parse_forbidden(
            "pods is forbidden: User \"bob\" cannot create resource \"pods\" in API group \"\" in the namespace \"kube-system\"",
        )
        .unwrap();
        assert_eq!((verb.as_str(), resource.as_str()), ("create", "pods"));
        assert_eq!(ns.as_deref(), Some("kube-system"));
        let (_, resource, ns) = parse_forbidden(
            "clusterpolicies.nvidia.com is forbidden: User \"bob\" cannot list resource \"clusterpolicies\" in API group \"nvidia.com\" at the cluster scope",
        )
        .unwrap();
        assert_eq!(resource, "clusterpolicies.nvidia.com");
        assert_eq!(ns, None);
        let e = Error::Forbidden {
            verb: "list".into(),
            resource: "nodes".into(),
            namespace: None,
            bind: Some(crate::rbac::Role::Read.default_binding()),
        };
        assert!(e.to_string().contains("cannot list nodes"));
        assert!(
            e.to_string()
                .contains("bind the ClusterRole kubectl-gpu-read from deploy/rbac.yaml"),
            "{e}"
        );
        assert_eq!(e.exit_code(), EXIT_USAGE);
    }

    #[test]
    fn message_names_each_cause_once() {
        let denied = || std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let cause = denied().to_string();
        // BundleCreate says its #[source] in its own text: once, not twice as `{:#}` did.
        let e = anyhow::Error::new(Error::BundleCreate {
            path: "/unwritable/x.tar.gz".into(),
            source: denied(),
        });
        assert_eq!(format!("{e:#}").matches(&cause).count(), 2);
        let m = message_of(e.as_ref());
        assert_eq!(m.matches(&cause).count(), 1, "{m}");
        assert!(m.starts_with("cannot create /unwritable/x.tar.gz: "), "{m}");
        assert!(m.ends_with("pick a writable path for --bundle"), "{m}");
        // Context layers that do not repeat their cause keep it, as in `{:#}`.
        let wrapped = anyhow::Error::new(Error::Usage("inner".into()))
            .context("middle")
            .context("outer");
        assert_eq!(message_of(wrapped.as_ref()), "outer: middle: inner");
        assert_eq!(message_of(&denied()), cause);
    }
}
