//! Rules over the API snapshot: GPU nodes vs advertised resources, the
//! `nvidia` RuntimeClass, operator version and known defects, ClusterPolicy
//! state, legacy toolkit values, CDI on the wrong versions, operand pods per
//! node, PSA enforcement, cordoned and tainted GPU nodes.

use super::finding::{Finding, Status};
use crate::facts::{ClusterView, NodeFacts, tolerates};
use crate::matrix::{self, GpuInjection, Rke2Feature, Severity};
use crate::operator::{DEVICE_PLUGIN_APP, EXPECTED_OPERANDS, OperatorFacts, TOOLKIT_APP};
use crate::version::{ContainerRuntime, Distribution, Triple};

const FIX_INSTALL: &str =
    "helm rke2gpu install   # installs the GPU Operator with values computed for this cluster";

/// Every cluster-wide and per-node API rule.
pub fn run(view: &ClusterView) -> Vec<Finding> {
    let mut out = Vec::new();
    out.extend(unreadable(view));
    out.extend(gpu_nodes_found(view));
    out.extend(operator_installed(view));
    out.extend(chart_version(view));
    out.extend(cluster_policy(view));
    out.extend(toolkit_env(view));
    out.extend(cdi_mode(view));
    out.extend(operator_runtime_class_name(view));
    out.extend(runtime_class(view));
    out.extend(psa(view));
    for node in view.gpu_nodes() {
        out.extend(node_rules(view, node));
    }
    out
}

/// `rbac-unreadable`: what could not be read, the permission refused and
/// the role of `deploy/rbac.yaml` that grants it. A warning: the checks
/// that needed it are skipped or less precise, the run goes on.
fn unreadable(view: &ClusterView) -> Vec<Finding> {
    view.unreadable
        .iter()
        .map(|u| {
            let (message, fix) = match &u.missing {
                Some(m) => (
                    format!("could not read {}: {m}", u.what),
                    format!("{}; or read the results without these checks", m.advice()),
                ),
                None => (
                    format!("could not read {}", u.what),
                    "see the RBAC section of the README, or read the results without these checks"
                        .to_string(),
                ),
            };
            Finding::warn("rbac-unreadable", None, message)
                .evidence(u.reason.clone())
                .fix(fix)
        })
        .collect()
}

/// `chart v25.10.1 from label helm.sh/chart on deployment gpu-operator`.
fn chart_evidence(op: &OperatorFacts) -> Option<String> {
    Some(format!(
        "chart {} from {}",
        op.chart_version_raw.as_deref()?,
        op.chart_version_source.as_deref()?
    ))
}

fn gpu_nodes_found(view: &ClusterView) -> Vec<Finding> {
    let gpu: Vec<_> = view.gpu_nodes().collect();
    if gpu.is_empty() {
        return vec![Finding::fail(
            "gpu-nodes-found",
            None,
            format!("no GPU nodes among {} nodes: no nvidia.com/gpu.present or NFD pci-10de label, no nvidia.com/gpu capacity", view.nodes.len()),
        )
        .fix("install the GPU Operator (it deploys NFD, which labels NVIDIA PCI devices): helm rke2gpu install; or check that the nodes have NVIDIA GPUs (lspci -d 10de:)")];
    }
    vec![Finding::ok(
        "gpu-nodes-found",
        None,
        format!(
            "{} GPU node(s): {}",
            gpu.len(),
            gpu.iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )]
}

fn operator_installed(view: &ClusterView) -> Vec<Finding> {
    match &view.operator {
        Some(op) => {
            let f = Finding::ok(
                "operator-installed",
                None,
                format!(
                    "GPU Operator in namespace {} (found by {}){}",
                    op.namespace,
                    op.found_by,
                    op.chart_version_raw
                        .as_ref()
                        .map(|v| format!(", chart {v}"))
                        .unwrap_or_default()
                ),
            );
            vec![match chart_evidence(op) {
                Some(e) => f.evidence(e),
                None => f,
            }]
        }
        None => {
            let advertised = view.gpu_nodes().any(|n| n.gpu.allocatable.unwrap_or(0) > 0);
            let f = if advertised {
                Finding::warn(
                    "operator-installed",
                    None,
                    "no GPU Operator found, but nvidia.com/gpu is advertised (a device plugin installed another way)",
                )
            } else {
                Finding::fail(
                    "operator-installed",
                    None,
                    "no GPU Operator found (no Deployment labelled app.kubernetes.io/component=gpu-operator or app=gpu-operator, no ClusterPolicy)",
                )
            };
            vec![f.fix(FIX_INSTALL)]
        }
    }
}

fn rke2_nodes(view: &ClusterView) -> impl Iterator<Item = &NodeFacts> {
    view.nodes.iter().filter(|n| n.is_rke2_like())
}

/// `operator-chart-version` (and `operator-containerd2-support`): the chart
/// version is known, has no known defect on RKE2, and supports the GPU
/// nodes' containerd.
fn chart_version(view: &ClusterView) -> Vec<Finding> {
    let Some(op) = &view.operator else {
        return vec![];
    };
    let Some(version) = op.chart_version else {
        let secrets_refused = view.unreadable.iter().find_map(|u| {
            u.missing
                .as_ref()
                .filter(|m| m.resource == "secrets")
                .map(|m| m.advice())
        });
        let f = Finding::warn("operator-chart-version", None, "could not tell the GPU Operator chart version (no helm.sh/chart label on the operator Deployment, the ClusterPolicy or the operand DaemonSets, no readable Helm release)")
            .fix(match secrets_refused {
                Some(advice) => format!("{advice} (the Helm release Secret then gives the version)"),
                None => format!("reinstall or upgrade the chart (it labels what it renders {}=gpu-operator-<version>): helm rke2gpu upgrade", crate::operator::CHART_LABEL),
            });
        return vec![match &op.release_error {
            Some(e) => f.evidence(e.clone()),
            None => f,
        }];
    };
    let mut out: Vec<Finding> = release_undecodable(op).into_iter().collect();
    let defects = chart_defects(view, version);
    let bad = !defects.is_empty();
    out.extend(defects);
    out.extend(chart_known(version, bad));
    out.extend(containerd2_support(view, version));
    // Every chart-version finding says where the version came from.
    let evidence = chart_evidence(op);
    for f in &mut out {
        if let Some(e) = &evidence
            && f.id == "operator-chart-version"
            && !f.evidence.contains(e)
        {
            f.evidence.insert(0, e.clone());
        }
    }
    out
}

/// The Helm release could not be decoded: the version came from labels.
fn release_undecodable(op: &OperatorFacts) -> Option<Finding> {
    let e = op.release_error.as_ref()?;
    Some(
        Finding::warn(
            "operator-chart-version",
            None,
            format!(
                "the Helm release could not be decoded; version taken from {}",
                op.chart_version_source.as_deref().unwrap_or("labels")
            ),
        )
        .evidence(e.clone()),
    )
}

/// The matrix's known defects of this chart version, on RKE2/K3s nodes.
fn chart_defects(view: &ClusterView, version: Triple) -> Vec<Finding> {
    if rke2_nodes(view).next().is_none() {
        return vec![];
    }
    matrix::chart_defects(version)
        // 25.3.x CDI: only a problem when CDI is on (checked by cdi_mode).
        .filter(|defect| defect.id != "cdi-not-operational-on-rke2")
        .map(|defect| {
            let status = match defect.severity {
                Severity::Fail => Status::Fail,
                Severity::Warn => Status::Warn,
            };
            Finding::new(
                "operator-chart-version",
                None,
                status,
                format!("chart {version}: {}", defect.summary),
            )
            .evidence(format!("source: {}", defect.source))
            .fix(defect.fix)
        })
        .collect()
}

/// A chart outside the matrix (warn), or a known one without defects (ok).
fn chart_known(version: Triple, has_defects: bool) -> Option<Finding> {
    if !matrix::chart_is_known(version) {
        Some(Finding::warn(
            "operator-chart-version",
            None,
            format!(
                "chart {version} is outside the versions this tool knows (up to {}); rules of {} applied",
                matrix::NEWEST_KNOWN_CHART,
                matrix::chart_row(version).label
            ),
        ))
    } else if !has_defects {
        Some(Finding::ok(
            "operator-chart-version",
            None,
            format!(
                "chart {version} ({}) has no known defect on RKE2",
                matrix::chart_row(version).label
            ),
        ))
    } else {
        None
    }
}

/// `operator-containerd2-support`: containerd 2 on a chart that predates
/// its support.
fn containerd2_support(view: &ClusterView, version: Triple) -> Option<Finding> {
    let row = matrix::chart_row(version);
    let c2: Vec<_> = view
        .gpu_nodes()
        .filter(|n| n.containerd().is_some_and(|c| c.major >= 2))
        .map(|n| n.name.clone())
        .collect();
    if row.supports_containerd2 || c2.is_empty() {
        return None;
    }
    let status = if row.toolkit_reads_v3 {
        Status::Warn
    } else {
        Status::Fail
    };
    Some(
        Finding::new("operator-containerd2-support", None, status, format!("chart {version} predates containerd 2.0 support (added in v{}); GPU nodes on containerd 2.x: {}", matrix::first_chart_with(|r| r.supports_containerd2), c2.join(", ")))
            .evidence(format!("toolkit {} reads v3 configs: {}", row.toolkit_version, row.toolkit_reads_v3))
            .fix(format!("upgrade the GPU Operator: helm rke2gpu upgrade --version {} (or newer)", matrix::UPGRADE_CHART)),
    )
}

fn cluster_policy(view: &ClusterView) -> Vec<Finding> {
    let Some(op) = &view.operator else {
        return vec![];
    };
    match (
        view.crd_present,
        &op.cluster_policy,
        op.cluster_policy_state.as_deref(),
    ) {
        (Some(false), _, _) => vec![
            Finding::fail(
                "cluster-policy",
                None,
                "the ClusterPolicy CRD (clusterpolicies.nvidia.com) does not exist",
            )
            .fix("reinstall the GPU Operator chart, which ships the CRD: helm rke2gpu install"),
        ],
        (None, _, _) => vec![Finding::skipped(
            "cluster-policy",
            None,
            "ClusterPolicy could not be read",
        )],
        (_, None, _) => vec![
            Finding::fail(
                "cluster-policy",
                None,
                "no ClusterPolicy exists: the operator deploys nothing",
            )
            .fix("set clusterPolicy.deployCR=true (the chart default) and upgrade the release"),
        ],
        (_, Some(name), Some("ready")) => vec![Finding::ok(
            "cluster-policy",
            None,
            format!("ClusterPolicy {name} is ready"),
        )],
        (_, Some(name), state) => {
            let mut f = Finding::fail("cluster-policy", None, format!("ClusterPolicy {name} is {}", state.unwrap_or("without a state")))
                .fix(format!("kubectl -n {} logs deploy/gpu-operator | tail -50   # the operator says which state is not ready", op.namespace));
            if let Some(m) = &op.cluster_policy_message {
                f = f.evidence(m.clone());
            }
            vec![f]
        }
    }
}

fn toolkit_env(view: &ClusterView) -> Vec<Finding> {
    let Some(op) = &view.operator else {
        return vec![];
    };
    if rke2_nodes(view).next().is_none() {
        return vec![Finding::skipped(
            "toolkit-env",
            None,
            "no RKE2/K3s nodes: RKE2 toolkit settings do not apply",
        )];
    }
    if op.toolkit_enabled == Some(false) {
        return vec![Finding::skipped(
            "toolkit-env",
            None,
            "toolkit.enabled=false: the host provides the NVIDIA container toolkit",
        )];
    }
    if op.nri_enabled == Some(true) {
        return vec![Finding::ok(
            "toolkit-env",
            None,
            "NRI plugin mode: the operator does not touch containerd's config, no toolkit env needed",
        )];
    }
    let mut out = Vec::new();
    if let Some(config) = op.env("CONTAINERD_CONFIG").or(op.env("RUNTIME_CONFIG")) {
        if config.ends_with(".tmpl") {
            out.push(
                Finding::fail("toolkit-env", None, format!("toolkit.env CONTAINERD_CONFIG points at an RKE2 template ({config}): the toolkit writes a static config there (RKE2 defaults frozen, node broken after reboot) or fails on Go template syntax"))
                    .evidence(format!("CONTAINERD_CONFIG={config}"))
                    .evidence("source: gpu-operator#992, #623, rancher/rke2#3385")
                    .fix("remove CONTAINERD_CONFIG from toolkit.env and keep only CONTAINERD_SOCKET=/run/k3s/containerd/containerd.sock: helm rke2gpu upgrade; then kubectl gpu check-runtime --deep to find the written template"),
            );
        } else if config.ends_with("/agent/etc/containerd/config.toml") {
            out.push(
                Finding::warn("toolkit-env", None, format!("toolkit.env CONTAINERD_CONFIG points at RKE2's generated config ({config}), which RKE2 rewrites on every start: the toolkit's edits (default runtime) vanish"))
                    .evidence(format!("CONTAINERD_CONFIG={config}"))
                    .fix("drop CONTAINERD_CONFIG; RKE2 auto-detects the runtime. For a default runtime use `kubectl gpu patch-containerd --method default-runtime`"),
            );
        }
    }
    match op.env("CONTAINERD_SOCKET").or(op.env("RUNTIME_SOCKET")) {
        Some(s) if s == matrix::RKE2_CONTAINERD_SOCKET => {
            out.push(Finding::ok("toolkit-env", None, format!("toolkit.env CONTAINERD_SOCKET={s}")));
        }
        Some(s) => out.push(
            Finding::fail("toolkit-env", None, format!("toolkit.env CONTAINERD_SOCKET={s} is not RKE2's containerd socket: the toolkit cannot signal RKE2's containerd, so the nvidia runtime is never loaded"))
                .fix(format!("set CONTAINERD_SOCKET={} : helm rke2gpu upgrade", matrix::RKE2_CONTAINERD_SOCKET)),
        ),
        None => out.push(
            Finding::fail("toolkit-env", None, "toolkit.env lacks CONTAINERD_SOCKET: the toolkit signals /run/containerd/containerd.sock, which RKE2 does not use, so RKE2 never restarts to load the nvidia runtime")
                .evidence(format!("toolkit.env: [{}]", op.toolkit_env.iter().map(|e| format!("{}={}", e.name, e.value)).collect::<Vec<_>>().join(", ")))
                .fix(format!("set toolkit.env CONTAINERD_SOCKET={} : helm rke2gpu upgrade", matrix::RKE2_CONTAINERD_SOCKET)),
        ),
    }
    if let (Some(v), true) = (
        op.env("CONTAINERD_SET_AS_DEFAULT"),
        op.chart_version
            .is_some_and(|c| matrix::chart_row(c).forces_not_default_with_cdi)
            && op.cdi_enabled != Some(false),
    ) {
        out.push(
            Finding::warn("toolkit-env", None, format!("toolkit.env CONTAINERD_SET_AS_DEFAULT={v} is overridden: with CDI the operator forces NVIDIA_RUNTIME_SET_AS_DEFAULT=false"))
                .fix("drop it; CDI needs no default runtime. For one anyway: kubectl gpu patch-containerd --method default-runtime"),
        );
    }
    out
}

fn cdi_mode(view: &ClusterView) -> Vec<Finding> {
    let Some(op) = &view.operator else {
        return vec![];
    };
    let Some(version) = op.chart_version else {
        return vec![];
    };
    let row = matrix::chart_row(version);
    let cdi = op.cdi_enabled.unwrap_or(row.cdi_default);
    let mut out = Vec::new();
    if row.cdi_broken_on_rke2 && cdi && rke2_nodes(view).next().is_some() {
        out.push(
            Finding::fail("cdi-mode", None, format!("cdi.enabled=true on chart {version}: \"GPU Operator in CDI mode is not operational with RKE2\"; pods fail with `unresolvable CDI devices`"))
                .evidence(format!("source: {}", matrix::chart_defect("cdi-not-operational-on-rke2").map_or("", |d| d.source)))
                .fix(format!("set cdi.enabled=false (helm rke2gpu upgrade --version <{}.{}.x>), or upgrade to ≥ v{}.{} on containerd ≥ 2.0", version.major, version.minor, matrix::CDI_CHART.version.major, matrix::CDI_CHART.version.minor)),
        );
    }
    if cdi && version >= matrix::CDI_CHART.version {
        let old: Vec<_> = view
            .gpu_nodes()
            .filter(|n| n.containerd().is_some_and(|c| c.major < 2))
            .map(|n| n.name.clone())
            .collect();
        if !old.is_empty() {
            out.push(
                Finding::warn("cdi-mode", None, format!("CDI is on (chart {version}) but GPU nodes run containerd 1.x, whose CDI support needs enable_cdi: {}", old.join(", ")))
                    .fix(format!("upgrade those nodes to RKE2 ≥ {} (containerd 2), or set cdi.enabled=false and use runtimeClassName: nvidia", matrix::feature(matrix::Rke2Feature::Containerd2).line_versions(" / "))),
            );
        }
    }
    out
}

/// `operator.runtimeClass` must be a runtime RKE2 renders: the toolkit
/// writes any other name into `/etc/containerd`, which RKE2 ignores.
fn operator_runtime_class_name(view: &ClusterView) -> Option<Finding> {
    let name = view.operator.as_ref()?.runtime_class.as_deref()?;
    rke2_nodes(view).next()?;
    let known = matrix::RKE2_NVIDIA_RUNTIMES;
    if known.contains(&name) {
        return None;
    }
    Some(
        Finding::fail(
            "operator-runtime-class",
            None,
            format!(
                "operator.runtimeClass is {name:?}: RKE2/K3s render only the runtimes {} into their containerd config; the toolkit registers {name:?} in /etc/containerd, which RKE2 ignores, so pods with runtimeClassName {name} fail with `no runtime for \"{name}\" is configured`",
                known.join(", ")
            ),
        )
        .evidence(format!("source: {}", matrix::RKE2_NVIDIA_RUNTIMES_SOURCE))
        .fix("helm rke2gpu upgrade --set operator.runtimeClass=nvidia (and use runtimeClassName: nvidia in GPU pods)"),
    )
}

fn runtime_class(view: &ClusterView) -> Vec<Finding> {
    let Some(rcs) = &view.runtime_classes else {
        return vec![Finding::skipped(
            "runtimeclass-nvidia",
            None,
            "RuntimeClasses could not be read",
        )];
    };
    let name = view
        .operator
        .as_ref()
        .and_then(|o| o.runtime_class.clone())
        .unwrap_or_else(|| "nvidia".to_string());
    let needed = match view
        .operator
        .as_ref()
        .and_then(|o| o.chart_version.map(|v| (v, o.cdi_enabled, o.nri_enabled)))
    {
        Some((_, _, Some(true))) => false,
        Some((v, cdi, _)) => view
            .gpu_nodes()
            .any(|n| matrix::gpu_injection(v, cdi, n.containerd()) == GpuInjection::RuntimeClass),
        None => true,
    };
    match rcs.iter().find(|rc| rc.metadata.name.as_deref() == Some(name.as_str())) {
        Some(rc) if rc.handler == "nvidia" || rc.handler == name => vec![Finding::ok("runtimeclass-nvidia", None, format!("RuntimeClass {name} exists (handler {})", rc.handler))],
        Some(rc) => vec![Finding::fail("runtimeclass-nvidia", None, format!("RuntimeClass {name} has handler {:?}, but the nvidia runtime is registered in containerd as {name:?}", rc.handler))
            .fix(format!("kubectl delete runtimeclass {name} && restart the operator (it recreates it), or fix the handler"))],
        None if needed => vec![Finding::fail("runtimeclass-nvidia", None, format!("RuntimeClass {name} is missing, and this operator version needs it for GPU pods (no CDI injection on these nodes)"))
            .fix(format!("kubectl apply -f - <<EOF\napiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: {name}\nhandler: nvidia\nEOF"))],
        None => vec![Finding::ok("runtimeclass-nvidia", None, format!("RuntimeClass {name} is absent; not needed (CDI or NRI injects GPUs)"))],
    }
}

fn psa(view: &ClusterView) -> Vec<Finding> {
    // The CIS profile is set on servers; their release decides the exemption list.
    let cis_node = view.nodes.iter().find(|n| n.args.cis());
    let exempt = matrix::cis_psa_exempt_namespaces(cis_node.and_then(|n| n.kubelet.as_ref()));
    let Some(op) = &view.operator else {
        if cis_node.is_some() {
            return vec![Finding::warn("psa-enforce", None, format!("RKE2 runs with profile: cis (PSA restricted on every namespace but {}): label the GPU Operator's namespace before installing", exempt.join(", ")))
                .evidence(format!("source: {}", matrix::PSA_CIS_SOURCE))
                .fix("kubectl create ns gpu-operator && kubectl label ns gpu-operator pod-security.kubernetes.io/enforce=privileged   (helm rke2gpu install does this)")];
        }
        return vec![];
    };
    match op.namespace_labels.get(crate::labels::PSA_ENFORCE).map(String::as_str) {
        Some(level @ ("restricted" | "baseline")) => vec![Finding::fail("psa-enforce", None, format!("namespace {} enforces PodSecurity {level}: the operator's privileged operands are rejected (`violates PodSecurity`)", op.namespace))
            .fix(format!("kubectl label ns {} pod-security.kubernetes.io/enforce=privileged --overwrite", op.namespace))],
        Some(level) => vec![Finding::ok("psa-enforce", None, format!("namespace {} enforces PodSecurity {level}", op.namespace))],
        None => {
            if cis_node.is_some() && exempt.contains(&op.namespace.as_str()) {
                vec![Finding::ok("psa-enforce", None, format!("namespace {} is exempt from RKE2 profile cis's PSA restricted ({})", op.namespace, exempt.join(", ")))
                    .evidence(format!("source: {}", matrix::PSA_CIS_SOURCE))]
            } else if cis_node.is_some() {
                vec![Finding::fail("psa-enforce", None, format!("RKE2 profile cis enforces PSA restricted on every namespace but {} and namespace {} has no privileged label", exempt.join(", "), op.namespace))
                    .evidence(format!("source: {}", matrix::PSA_CIS_SOURCE))
                    .fix(format!("kubectl label ns {} pod-security.kubernetes.io/enforce=privileged", op.namespace))]
            } else {
                vec![Finding::ok("psa-enforce", None, format!("namespace {} has no PodSecurity enforce label (cluster default applies)", op.namespace))]
            }
        }
    }
}

/// Rules for one GPU node, one function per rule (in output order).
pub fn node_rules(view: &ClusterView, node: &NodeFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(flavour) = node_flavour(node) else {
        return vec![unsupported_runtime(node)];
    };
    out.push(flavour);
    out.extend(node_ready(node));
    out.push(gpu_allocatable(view, node));
    out.extend(node_schedulable(node));
    out.extend(node_taints(view, node));
    out.extend(operand_pods(view, node));
    out.extend(default_runtime_without_operator(view, node));
    out.extend(super::sharing::mig_state(view, node));
    out.extend(super::sharing::gpu_sharing(view, node));
    out
}

/// `node-flavour`: RKE2/K3s on containerd (ok), other containerd (warn);
/// None for a runtime this tool does not support.
fn node_flavour(node: &NodeFacts) -> Option<Finding> {
    let n = Some(node.name.as_str());
    match (&node.runtime, node.distribution) {
        (ContainerRuntime::Containerd { version, .. }, Distribution::Rke2 | Distribution::K3s) => {
            let kubelet = node.kubelet.as_ref();
            let row = kubelet.map(|k| matrix::rke2_row(k, Some(*version)));
            let mut f = Finding::ok(
                "node-flavour",
                n,
                format!(
                    "{} {} with containerd {}{}",
                    node.distribution,
                    node.kubelet_raw,
                    version,
                    row.map(|r| format!(": config schema v{}, template {}{}", r.schema.number(), r.templates[0], r.drop_in_dir.map(|d| format!(", drop-ins in {d}/")).unwrap_or_default()))
                        .unwrap_or_default()
                ),
            );
            if let Some(k) = kubelet {
                f = f.evidence(format!("default-runtime flag supported: {}", matrix::has(k, Rke2Feature::DefaultRuntimeFlag)));
            }
            Some(f)
        }
        (ContainerRuntime::Containerd { version, .. }, _) => Some(
            Finding::warn("node-flavour", n, format!("not RKE2/K3s ({} on containerd {version}): generic containerd rules apply, RKE2-only checks are skipped", node.kubelet_raw))
                .fix("for generic containerd, use `nvidia-ctk runtime configure --runtime=containerd` on the node"),
        ),
        _ => None,
    }
}

/// `node-flavour` fail: the only finding of a node on CRI-O, Docker, ….
fn unsupported_runtime(node: &NodeFacts) -> Finding {
    Finding::fail(
        "node-flavour",
        Some(&node.name),
        format!(
            "container runtime {} is not supported by this tool (RKE2 and K3s use containerd)",
            node.runtime.raw()
        ),
    )
    .fix("see NVIDIA's docs for CRI-O/Docker; this tool covers containerd")
}

/// `node-ready`: a NotReady node starts no pod.
fn node_ready(node: &NodeFacts) -> Option<Finding> {
    (!node.ready).then(|| {
        Finding::fail(
            "node-ready",
            Some(&node.name),
            "node is NotReady: no pod will start there",
        )
        .fix(format!(
            "kubectl describe node {}   # and on the node: journalctl -u {}",
            node.name,
            node.role.unit(node.distribution)
        ))
    })
}

/// `gpu-allocatable`: the node advertises full, MIG or shared GPUs, and
/// as many as GPU Feature Discovery counted.
fn gpu_allocatable(view: &ClusterView, node: &NodeFacts) -> Finding {
    let n = Some(node.name.as_str());
    let mig: i64 = node
        .gpu
        .other_resources
        .iter()
        .filter(|(k, _)| k.starts_with(crate::labels::RESOURCE_MIG_PREFIX))
        .map(|(_, v)| *v)
        .sum();
    let shared = node
        .gpu
        .other_resources
        .get(crate::labels::RESOURCE_GPU_SHARED)
        .copied()
        .unwrap_or(0);
    match node.gpu.allocatable {
        Some(a) if a > 0 => {
            let mut f = Finding::ok(
                "gpu-allocatable",
                n,
                format!("nvidia.com/gpu allocatable: {a}"),
            );
            if let Some(c) = node.gpu.count_label
                && c as i64 != a
                && node.gpu.mig_strategy.as_deref() != Some("single")
                && node
                    .labels
                    .get(crate::labels::GPU_REPLICAS)
                    .is_none_or(|r| r == "1")
            {
                f = Finding::warn("gpu-allocatable", n, format!("nvidia.com/gpu allocatable {a} differs from the {c} GPUs GPU Feature Discovery counted"))
                        .fix(format!("kubectl -n <operator-ns> logs -l app={DEVICE_PLUGIN_APP} --field-selector spec.nodeName={}  # unhealthy GPUs are withheld", node.name));
            }
            f
        }
        _ if mig > 0 || shared > 0 => Finding::ok(
            "gpu-allocatable",
            n,
            format!("GPUs advertised as MIG ({mig}) or shared ({shared}) resources"),
        ),
        other => {
            let cause = match view.operator.as_ref().map(|o| {
                o.operands_on(&node.name)
                    .any(|p| p.app == DEVICE_PLUGIN_APP && p.ready)
            }) {
                Some(true) => {
                    "the device plugin runs but advertises nothing: the toolkit/runtime is not configured (device plugin `Incompatible strategy detected auto`)"
                }
                Some(false) => "no ready device plugin pod on this node",
                None => "no GPU Operator / device plugin installed",
            };
            Finding::fail(
                "gpu-allocatable",
                n,
                format!(
                    "GPU node without nvidia.com/gpu allocatable ({}): {cause}",
                    match other {
                        Some(v) => v.to_string(),
                        None => "missing".into(),
                    }
                ),
            )
            .fix(format!(
                "kubectl gpu check-runtime --deep --node {}",
                node.name
            ))
        }
    }
}

/// `node-schedulable`: a cordoned node takes no new GPU pod.
fn node_schedulable(node: &NodeFacts) -> Option<Finding> {
    node.cordoned.then(|| {
        Finding::warn(
            "node-schedulable",
            Some(&node.name),
            "node is cordoned: new GPU pods will not be scheduled here",
        )
        .fix(format!("kubectl uncordon {}", node.name))
    })
}

/// `node-taints`: every blocking taint is tolerated by the operands.
fn node_taints(view: &ClusterView, node: &NodeFacts) -> Vec<Finding> {
    let n = Some(node.name.as_str());
    node.blocking_taints()
        .map(|taint| {
            let untolerated: Vec<&str> = EXPECTED_OPERANDS
                .iter()
                .copied()
                .filter(|app| {
                    view.operand_tolerations.get(*app).is_some_and(|t| {
                        !tolerates(t, &taint.key, taint.value.as_deref(), &taint.effect)
                    })
                })
                .collect();
            if untolerated.is_empty() {
                Finding::ok(
                    "node-taints",
                    n,
                    format!("taint {taint}: tolerated by the operands"),
                )
            } else {
                Finding::warn("node-taints", n, format!("taint {taint} is not tolerated by {}: they will not run here", untolerated.join(", ")))
                    .fix(format!("add the toleration to the chart values (daemonsets.tolerations) or: kubectl taint node {} {}-", node.name, taint.key))
            }
        })
        .collect()
}

/// `operand-pods`: one ready pod of each expected operand on the node.
fn operand_pods(view: &ClusterView, node: &NodeFacts) -> Vec<Finding> {
    let n = Some(node.name.as_str());
    let Some(op) = &view.operator else {
        return vec![];
    };
    let mut out = Vec::new();
    if op.toolkit_enabled == Some(false) {
        out.push(Finding::skipped(
            "operand-pods",
            n,
            "toolkit disabled in ClusterPolicy",
        ));
    }
    for app in EXPECTED_OPERANDS {
        if *app == TOOLKIT_APP && op.toolkit_enabled == Some(false) {
            continue;
        }
        let pods: Vec<_> = op
            .operands_on(&node.name)
            .filter(|p| p.app == *app)
            .collect();
        let paused = crate::operator::deploy_label_of(app)
            .and_then(|l| node.labels.get(&l))
            .is_some_and(|v| v == crate::mig::PAUSED_FOR_MIG_CHANGE);
        match pods.first() {
            None if paused => out.push(
                Finding::warn("operand-pods", n, format!("no {app} pod on this node: paused by the MIG manager while it applies a MIG change"))
                    .fix("see mig-state: the operand comes back when the MIG manager reports success"),
            ),
            None => out.push(
                Finding::fail("operand-pods", n, format!("no {app} pod on this node"))
                    .fix(format!("kubectl get node {} --show-labels | tr , '\\n' | grep nvidia.com/gpu.deploy   # the operator schedules operands by these labels; check taints too", node.name)),
            ),
            Some(p) if p.ready => out.push(Finding::ok("operand-pods", n, format!("{} is ready", p.pod))),
            Some(p) => {
                let mut f = Finding::fail("operand-pods", n, format!("{} is not ready ({}{})", p.pod, p.phase, if p.restarts > 0 { format!(", {} restarts", p.restarts) } else { String::new() }))
                    .fix(format!("kubectl -n {} describe pod {}; kubectl -n {} logs {} --all-containers", op.namespace, p.pod, op.namespace, p.pod));
                if let Some(problem) = &p.problem {
                    f = f.evidence(problem.clone());
                }
                out.push(f);
            }
        }
    }
    out
}

/// `default-runtime`: RKE2's `default-runtime: nvidia` without an operator
/// to install the runtime it names.
fn default_runtime_without_operator(view: &ClusterView, node: &NodeFacts) -> Option<Finding> {
    (node.args.default_runtime.as_deref() == Some("nvidia") && view.operator.is_none()).then(|| {
        Finding::warn("default-runtime", Some(&node.name), "RKE2 default-runtime is nvidia but no GPU Operator is installed: if no nvidia runtime binary exists on the node, RKE2 fails with `default runtime nvidia was not found`")
            .fix(format!("kubectl gpu check-runtime --deep --node {}", node.name))
    })
}
