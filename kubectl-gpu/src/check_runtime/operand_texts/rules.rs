//! The operand failure rules: one function per known text, tried in the
//! order of [`RULES`] (most specific first), each returning the cause, the
//! line it matched and the fix. Each cites the public issues its text comes
//! from; the texts themselves, with provenance, are in
//! `tests/fixtures/real-world/operator/operand-failure-texts.yaml`.
//! Versions named in fixes come from [`crate::matrix`].

use super::Target;
use crate::matrix;
use crate::operator::{OperatorFacts, TOOLKIT_APP, VALIDATOR_APP};
use regex::Regex;
use std::sync::LazyLock;

/// One text of a pod: a container state, an event's message or a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    /// `container X`, `event Reason`, `log X`, `log X (previous)`.
    pub source: String,
    pub body: String,
}

impl Text {
    pub fn new(source: impl Into<String>, body: impl Into<String>) -> Self {
        Text {
            source: source.into(),
            body: body.into(),
        }
    }
}

/// What the rules know besides the texts.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub target: &'a Target,
    pub op: Option<&'a OperatorFacts>,
}

impl Ctx<'_> {
    fn ns(&self) -> &str {
        &self.target.namespace
    }

    fn node(&self) -> &str {
        self.target.node.as_deref().unwrap_or("<node>")
    }

    /// The pod of `app` on this pod's node, for the fix's next command.
    fn pod_of(&self, app: &str) -> String {
        self.op
            .zip(self.target.node.as_deref())
            .and_then(|(op, node)| op.operands_on(node).find(|p| p.app == app))
            .map(|p| p.pod.clone())
            .unwrap_or_else(|| format!("<{app} pod on {}>", self.node()))
    }
}

/// A cause found in a pod's texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// Stable id of the cause, e.g. `toolkit-config-template`.
    pub kind: &'static str,
    /// What it means, in one line.
    pub summary: String,
    /// Where the line was seen (a [`Text::source`]).
    pub source: String,
    /// The line that matched, as seen.
    pub line: String,
    /// More evidence (settings that confirm the cause).
    pub extra: Vec<String>,
    pub fix: String,
    /// The public issues the text comes from.
    pub sources: &'static str,
}

/// One rule: the cause it recognises in a pod's texts.
type Rule = fn(ctx: &Ctx<'_>, texts: &[Text]) -> Option<Cause>;

/// The rules, most specific first.
const RULES: &[Rule] = &[
    toolkit_config_template,
    unresolvable_cdi_devices,
    no_runtime_configured,
    toolkit_validation_failed,
    cuda_validation_failed,
    validator_waits_for_driver,
    waits_for_driver_validation,
    waits_for_container_stack,
    clusterpolicy_not_ready,
];

/// Every rule's cause, one per kind, in rule order.
pub fn classify(ctx: &Ctx<'_>, texts: &[Text]) -> Vec<Cause> {
    let mut out: Vec<Cause> = Vec::new();
    for rule in RULES {
        if let Some(c) = rule(ctx, texts)
            && !out.iter().any(|x| x.kind == c.kind)
        {
            out.push(c);
        }
    }
    out
}

/// A line cut to 600 bytes (at a character boundary), with `…`.
pub fn clip(line: &str) -> String {
    const MAX: usize = 600;
    let l = line.trim_end_matches('\r').trim();
    if l.len() <= MAX {
        return l.to_string();
    }
    let mut end = MAX;
    while !l.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &l[..end])
}

/// The latest line holding `needle` (case-insensitive): texts are searched
/// in order (states, events, log), lines of each from the end.
fn find(texts: &[Text], needle: &str) -> Option<(String, String)> {
    find_by(texts, |l| {
        l.to_ascii_lowercase()
            .contains(&needle.to_ascii_lowercase())
    })
}

fn find_by(texts: &[Text], pred: impl Fn(&str) -> bool) -> Option<(String, String)> {
    let mut found = None;
    for t in texts {
        for l in t.body.lines().map(|l| l.trim_end_matches('\r').trim()) {
            if pred(l) {
                found = Some((t.source.clone(), l.to_string()));
            }
        }
        if found.is_some() {
            return found;
        }
    }
    None
}

fn cause(
    kind: &'static str,
    (source, line): (String, String),
    summary: String,
    fix: String,
    sources: &'static str,
) -> Cause {
    Cause {
        kind,
        summary,
        source,
        line,
        extra: Vec::new(),
        fix,
        sources,
    }
}

/// rancher/rke2#3385, NVIDIA/gpu-operator#673, #623: the toolkit reads
/// `CONTAINERD_CONFIG` as TOML, and a `config.toml.tmpl` with `{{ … }}` is not:
/// `Error: unable to load config: (6, 21): unexpected token type in inline table: keys cannot contain { character`.
fn toolkit_config_template(ctx: &Ctx<'_>, texts: &[Text]) -> Option<Cause> {
    let found = find(texts, "keys cannot contain { character")?;
    let mut c = cause(
        "toolkit-config-template",
        found,
        "the toolkit cannot load its containerd config: the file CONTAINERD_CONFIG names is a Go template ({{ … }}), which it parses as TOML".into(),
        format!(
            "remove CONTAINERD_CONFIG (and RUNTIME_CONFIG) from toolkit.env and keep only CONTAINERD_SOCKET={}: RKE2/K3s find the nvidia runtime themselves (helm rke2gpu upgrade computes these values); then kubectl gpu check-runtime --deep --node {} finds a template the toolkit already wrote",
            matrix::RKE2_CONTAINERD_SOCKET,
            ctx.node()
        ),
        "rancher/rke2#3385, NVIDIA/gpu-operator#673, NVIDIA/gpu-operator#623",
    );
    if let Some(op) = ctx.op {
        for name in ["CONTAINERD_CONFIG", "RUNTIME_CONFIG"] {
            if let Some(v) = op.env(name) {
                c.extra.push(format!("toolkit.env {name}={v}"));
            }
        }
    }
    Some(c)
}

static CDI_DEVICE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"unresolvable CDI devices ([^\s:]+)").expect("valid regex"));

/// NVIDIA/nvidia-container-toolkit#1239 (event `Failed`), NVIDIA/gpu-operator#531
/// (state `StartError`): `failed to inject CDI devices: unresolvable CDI devices management.nvidia.com/gpu=…`.
fn unresolvable_cdi_devices(ctx: &Ctx<'_>, texts: &[Text]) -> Option<Cause> {
    let found = find(texts, "unresolvable CDI devices")?;
    let device = CDI_DEVICE
        .captures(&found.1)
        .and_then(|c| c.get(1))
        .map_or("the device asked for", |m| m.as_str())
        .to_string();
    Some(cause(
        "unresolvable-cdi-devices",
        found,
        format!(
            "the container asked for CDI device {device}, which no CDI spec on the node defines"
        ),
        format!(
            "the toolkit writes the CDI spec (/var/run/cdi/management.nvidia.com-gpu.yaml): check that {} on {} is ready and list the devices on the node with /usr/local/nvidia/toolkit/nvidia-ctk cdi list (restarting the toolkit pod regenerates the spec); GPU Operator {} CDI is not operational on RKE2: set cdi.enabled=false there, or use GPU Operator >= {} with containerd >= {}",
            ctx.pod_of(TOOLKIT_APP),
            ctx.node(),
            matrix::cdi_broken_on_rke2_lines(),
            matrix::CDI_CHART.line_text(),
            matrix::CDI_CONTAINERD.line_text()
        ),
        "NVIDIA/nvidia-container-toolkit#1239, NVIDIA/gpu-operator#531",
    ))
}

/// NVIDIA/gpu-operator#413: operand pods with `runtimeClassName: nvidia` before
/// containerd has the runtime: `failed to get sandbox runtime: no runtime for "nvidia" is configured`.
fn no_runtime_configured(ctx: &Ctx<'_>, texts: &[Text]) -> Option<Cause> {
    let found = find_by(texts, |l| {
        let l = l.to_ascii_lowercase();
        l.contains("no runtime for") && l.contains("is configured")
    })?;
    Some(cause(
        "no-runtime-configured",
        found,
        "containerd on the node has no runtime for the pod's RuntimeClass: the toolkit has not installed it, or RKE2 has not loaded it".into(),
        format!(
            "the toolkit pod on {node} must be ready first ({toolkit}); then RKE2 must restart once {bin} exists, or the toolkit wrote a config RKE2 ignores: kubectl gpu check-runtime --deep --node {node}, and kubectl gpu patch-containerd --node {node} to fix it",
            node = ctx.node(),
            toolkit = ctx.pod_of(TOOLKIT_APP),
            bin = matrix::TOOLKIT_RUNTIME
        ),
        "NVIDIA/gpu-operator#413",
    ))
}

/// NVIDIA/gpu-operator#1374: the toolkit validation runs `nvidia-smi` in a
/// container the NVIDIA runtime should have injected it into:
/// `Error: error validating toolkit installation: exec: "nvidia-smi": executable file not found in $PATH`.
fn toolkit_validation_failed(ctx: &Ctx<'_>, texts: &[Text]) -> Option<Cause> {
    let found = find(texts, "error validating toolkit installation")?;
    let not_injected = found.1.contains("executable file not found");
    Some(cause(
        "toolkit-validation-failed",
        found,
        if not_injected {
            "the toolkit validation found no nvidia-smi: its container did not run under the NVIDIA runtime, which injects the driver".into()
        } else {
            "the toolkit validation could not run nvidia-smi in a container under the NVIDIA runtime".into()
        },
        format!(
            "check that containerd on {node} runs the nvidia runtime for RuntimeClass nvidia (or injects CDI devices): kubectl gpu check-runtime --deep --node {node}; kubectl gpu patch-containerd --node {node} when the runtime is missing",
            node = ctx.node()
        ),
        "NVIDIA/gpu-operator#1374",
    ))
}

static CUDA_ERROR: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"Failed to (?:allocate device vector A|launch vectorAdd kernel) \(error code (.+?)\)!",
    )
    .expect("valid regex")
});

/// The CUDA validator's `vectorAdd`: `Failed to allocate device vector A (error code …)!`,
/// by error code: NVIDIA/gpu-operator#1947 (`CUDA driver version is insufficient for CUDA
/// runtime version`), #253 (`no CUDA-capable device is detected`), #1043 (`system not yet
/// initialized`), #1146 (`unknown error`); rwlove/home-ops#13689 (`named symbol not found`).
fn cuda_validation_failed(ctx: &Ctx<'_>, texts: &[Text]) -> Option<Cause> {
    let found = find_by(texts, |l| CUDA_ERROR.is_match(l))?;
    let code = CUDA_ERROR
        .captures(&found.1)
        .and_then(|c| c.get(1))
        .map_or("", |m| m.as_str())
        .to_string();
    let node = ctx.node();
    let (why, fix) = if code.contains("driver version is insufficient") {
        (
            "the node's NVIDIA driver is older than the CUDA the validator was built with"
                .to_string(),
            format!(
                "upgrade the driver on {node} (nvidia-smi prints the CUDA version it supports), or install the GPU Operator release whose validator matches this driver"
            ),
        )
    } else if code.contains("no CUDA-capable device") {
        (
            "the validator's container got no GPU: the NVIDIA runtime (or CDI) did not inject the devices".to_string(),
            format!("kubectl gpu check-runtime --deep --node {node}; kubectl gpu verify --node {node} runs a GPU pod and says what is missing"),
        )
    } else if code.contains("system not yet initialized") {
        (
            "CUDA cannot initialise before the NVIDIA Fabric Manager runs (NVSwitch systems: HGX, DGX)".to_string(),
            format!("start nvidia-fabricmanager on {node} in the driver's exact version (systemctl enable --now nvidia-fabricmanager); with the operator's driver container it runs there"),
        )
    } else if code.contains("named symbol not found") || code.contains("no kernel image") {
        (
            "the validator's CUDA build has no kernel for this GPU's architecture".to_string(),
            format!(
                "use a GPU Operator release whose CUDA still supports this GPU, or skip the validator there: kubectl label node {node} nvidia.com/gpu.deploy.operator-validator=false"
            ),
        )
    } else {
        (
            "CUDA failed on the GPU itself".to_string(),
            format!(
                "check the GPU on {node}: nvidia-smi -q and the kernel log for Xid errors (dmesg | grep -i xid); drain the node and reset or replace the GPU"
            ),
        )
    };
    Some(cause(
        "cuda-validation-failed",
        found,
        format!("the CUDA validation (vectorAdd) fails with \"{code}\": {why}"),
        fix,
        "NVIDIA/gpu-operator#1947, NVIDIA/gpu-operator#253, NVIDIA/gpu-operator#1043, NVIDIA/gpu-operator#1146, rwlove/home-ops#13689",
    ))
}

/// NVIDIA/gpu-operator#531 (`driver-validation` log): with no driver on the
/// host the validator waits for the operator's driver container:
/// `Driver is not pre-installed on the host. Checking driver container status.`,
/// `stat: cannot statx '/run/nvidia/validations/.driver-ctr-ready': No such file or directory`.
/// Newer validators (gpu-operator cmd/nvidia-validator/main.go) say
/// `Driver is not pre-installed on the host and is managed by GPU Operator…`,
/// `failed to validate the driver, retrying after 5 seconds`, `driver is not ready: …`.
fn validator_waits_for_driver(ctx: &Ctx<'_>, texts: &[Text]) -> Option<Cause> {
    let found = find(texts, "driver is not pre-installed on the host")
        .or_else(|| find(texts, ".driver-ctr-ready"))
        .or_else(|| find(texts, "failed to validate the driver"))
        .or_else(|| find(texts, "driver is not ready:"))?;
    let ns = ctx.ns();
    let node = ctx.node();
    let (why, fix) = match ctx.op.and_then(|o| o.driver_enabled) {
        Some(false) => (
            "driver.enabled=false, but the validator finds no NVIDIA driver on the host",
            format!(
                "install the NVIDIA driver on {node} (kubectl gpu check-runtime --deep --node {node} reads /proc/driver/nvidia/version), or let the operator install it: driver.enabled=true"
            ),
        ),
        _ => (
            "the validator finds no driver on the host and waits for the operator's driver container",
            format!(
                "kubectl -n {ns} get pods -l app=nvidia-driver-daemonset -o wide   # the driver container on {node} must be ready; with a driver installed on the host, set driver.enabled=false (helm rke2gpu upgrade)"
            ),
        ),
    };
    let mut c = cause(
        "validator-waits-for-driver",
        found,
        why.to_string(),
        fix,
        "NVIDIA/gpu-operator#531",
    );
    if let Some(v) = ctx.op.and_then(|o| o.driver_enabled) {
        c.extra.push(format!("ClusterPolicy driver.enabled={v}"));
    }
    Some(c)
}

/// The entrypoints of the toolkit, device plugin and MIG manager (gpu-operator
/// assets/state-*/0400_configmap.yaml) loop on `waiting for the driver validations to be ready...`
/// until the validator's driver-validation writes /run/nvidia/validations/driver-ready.
fn waits_for_driver_validation(ctx: &Ctx<'_>, texts: &[Text]) -> Option<Cause> {
    let found = find(texts, "waiting for the driver validations to be ready")?;
    Some(cause(
        "waits-for-driver-validation",
        found,
        "waits for /run/nvidia/validations/driver-ready, which the operator validator writes once it finds the driver".into(),
        format!(
            "kubectl -n {} logs {} -c driver-validation   # why the driver is not validated on {}",
            ctx.ns(),
            ctx.pod_of(VALIDATOR_APP),
            ctx.node()
        ),
        "NVIDIA/gpu-operator assets/state-container-toolkit/0400_configmap.yaml",
    ))
}

/// NVIDIA/gpu-operator#448, #378, #459: the operands' `toolkit-validation`
/// init container loops on `waiting for nvidia container stack to be setup`
/// (the MIG manager: `… container toolkit to be setup`) until
/// /run/nvidia/validations/toolkit-ready exists.
fn waits_for_container_stack(ctx: &Ctx<'_>, texts: &[Text]) -> Option<Cause> {
    let found = find(texts, "waiting for nvidia container stack to be setup")
        .or_else(|| find(texts, "waiting for nvidia container toolkit to be setup"))?;
    Some(cause(
        "waits-for-container-stack",
        found,
        "waits for /run/nvidia/validations/toolkit-ready: the toolkit on this node is not installed and validated yet".into(),
        format!(
            "kubectl -n {ns} logs {toolkit}; kubectl -n {ns} logs {validator} -c toolkit-validation   # the toolkit and its validation on {node}",
            ns = ctx.ns(),
            toolkit = ctx.pod_of(TOOLKIT_APP),
            validator = ctx.pod_of(VALIDATOR_APP),
            node = ctx.node()
        ),
        "NVIDIA/gpu-operator#448, NVIDIA/gpu-operator#378, NVIDIA/gpu-operator#459",
    ))
}

static STATES_PLAIN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"states not ready: \[([^\]]*)\]").expect("valid regex"));
static STATES_JSON: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#""states not ready": \[([^\]]*)\]"#).expect("valid regex"));

/// The operand (`app` label) each operator state deploys (gpu-operator
/// controllers/state_manager.go, assets/state-*/0500_daemonset.yaml).
const STATE_APPS: &[(&str, &str)] = &[
    ("state-driver", "nvidia-driver-daemonset"),
    (
        "state-container-toolkit",
        "nvidia-container-toolkit-daemonset",
    ),
    ("state-operator-validation", "nvidia-operator-validator"),
    ("state-device-plugin", "nvidia-device-plugin-daemonset"),
    ("state-dcgm", "nvidia-dcgm"),
    ("state-dcgm-exporter", "nvidia-dcgm-exporter"),
    ("gpu-feature-discovery", "gpu-feature-discovery"),
    ("state-mig-manager", "nvidia-mig-manager"),
    ("state-node-status-exporter", "nvidia-node-status-exporter"),
];

/// The states a not-ready line names: `[a b]` (the operator's `%v`) or
/// `["a", "b"]` (zap's JSON field).
fn states_in(line: &str) -> Vec<String> {
    let list = STATES_PLAIN
        .captures(line)
        .or_else(|| STATES_JSON.captures(line))
        .and_then(|c| c.get(1))
        .map_or("", |m| m.as_str());
    list.split([' ', ','])
        .map(|s| s.trim().trim_matches('"'))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The operator's reconcile ends with the states that are not ready:
/// NVIDIA/gpu-operator#1310 (`ClusterPolicy is not ready, states not ready: [state-operator-validation …]`),
/// #413 (`ClusterPolicy isn't ready {"states not ready": […]}`), #331 (`ClusterPolicy step wasn't ready`),
/// #667; controllers/clusterpolicy_controller.go (`ClusterPolicy not yet ready`, error
/// `ClusterPolicy is not ready; states not ready: [...]`).
fn clusterpolicy_not_ready(ctx: &Ctx<'_>, texts: &[Text]) -> Option<Cause> {
    let found = find(texts, "states not ready")
        .or_else(|| find(texts, "ClusterPolicy step wasn't ready"))
        .or_else(|| find(texts, "ClusterPolicy not yet ready"))?;
    let states = states_in(&found.1);
    let apps: Vec<&str> = states
        .iter()
        .filter_map(|s| STATE_APPS.iter().find(|(st, _)| st == s).map(|(_, a)| *a))
        .collect();
    let ns = ctx.ns();
    let (summary, fix) = if states.is_empty() {
        (
            "the operator reports ClusterPolicy states that are not ready".to_string(),
            format!(
                "kubectl -n {ns} get pods -o wide   # the operand pods that are not ready; their findings say why"
            ),
        )
    } else {
        (
            format!(
                "the operator reports states not ready: {}",
                states.join(", ")
            ),
            format!(
                "kubectl -n {ns} get pods -o wide -l 'app in ({})'   # the operands of those states; their findings say why they fail",
                if apps.is_empty() {
                    states.join(",")
                } else {
                    apps.join(",")
                }
            ),
        )
    };
    Some(cause(
        "clusterpolicy-not-ready",
        found,
        summary,
        fix,
        "NVIDIA/gpu-operator#1310, NVIDIA/gpu-operator#413, NVIDIA/gpu-operator#331, NVIDIA/gpu-operator#667",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_from_both_encodings() {
        assert_eq!(
            states_in("ClusterPolicy is not ready, states not ready: [state-driver state-dcgm]"),
            ["state-driver", "state-dcgm"]
        );
        assert_eq!(
            states_in(
                r#"ClusterPolicy isn't ready {"states not ready": ["state-operator-validation", "gpu-feature-discovery"]}"#
            ),
            ["state-operator-validation", "gpu-feature-discovery"]
        );
        assert!(states_in("ClusterPolicy step wasn't ready").is_empty());
    }

    #[test]
    fn clip_cuts_long_lines_at_a_char_boundary() {
        let long = "é".repeat(400);
        let c = clip(&long);
        assert!(c.ends_with('…') && c.len() <= 604, "{}", c.len());
    }
}
