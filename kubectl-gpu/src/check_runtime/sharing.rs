//! Rules over how a GPU node shares or partitions its GPUs: `mig-state`
//! (the MIG manager's progress and what the device plugin advertises after
//! it, [`crate::mig::MigView`]) and `gpu-sharing` (time-slicing and MPS as
//! GFD labels them against what the device plugin advertises,
//! [`crate::sharing::SharingView`]).

use super::Finding;
use crate::facts::{ClusterView, NodeFacts};
use crate::mig::MigView;
use crate::operator::MIG_MANAGER_APP;
use crate::sharing::SharingView;

/// `gpu-sharing`: a shared node advertises GPUs × replicas; a selected
/// config that GFD did not load, MPS under the mixed MIG strategy (the
/// device plugin refuses it) and MPS on GPUs that are not MPS capable are
/// named.
pub fn gpu_sharing(view: &ClusterView, node: &NodeFacts) -> Vec<Finding> {
    let Some(s) = SharingView::of(node) else {
        return Vec::new();
    };
    let n = Some(node.name.as_str());
    let ns = view
        .operator
        .as_ref()
        .map_or("gpu-operator", |o| o.namespace.as_str());
    let restart = format!(
        "kubectl -n {ns} rollout restart daemonset/nvidia-device-plugin-daemonset   # the operator does not watch the sharing ConfigMap"
    );
    let mut evidence = vec![format!(
        "GFD: sharing-strategy={}, replicas={}, gpu.count={}",
        s.strategy.as_deref().unwrap_or("(unset)"),
        s.replicas.map_or("(unset)".into(), |r| r.to_string()),
        s.gpus.map_or("(unset)".into(), |g| g.to_string())
    )];
    if let Some(c) = &s.config {
        evidence.push(format!("{}={c}", crate::labels::DEVICE_PLUGIN_CONFIG));
    }
    let mps = s.strategy_name() == "mps";
    let f = if mps && node.gpu.mig_strategy.as_deref() == Some("mixed") {
        Finding::fail("gpu-sharing", n, "MPS is configured on a node with the mixed MIG strategy, which the device plugin refuses (`--mig-strategy=mixed is not supported with MPS`)")
            .evidence("source: NVIDIA/k8s-device-plugin cmd/nvidia-device-plugin/main.go validateFlags (v0.15.0 and later)")
            .fix("use time-slicing on this node, or the single MIG strategy / no MIG, in its device plugin config")
    } else if s.not_multiplied() {
        Finding::warn(
            "gpu-sharing",
            n,
            format!(
                "GFD reports {} with {} replicas of {} GPU(s), but the node advertises {} {} instead of {}: the device plugin has not applied the sharing config",
                s.strategy_name(),
                s.replicas.unwrap_or(0),
                s.gpus.unwrap_or(0),
                s.advertised.map_or("no".into(), |a| a.to_string()),
                s.resource,
                s.expected().unwrap_or(0)
            ),
        )
        .fix(restart)
    } else if s.config.is_some() && s.replicas == Some(0) {
        Finding::warn(
            "gpu-sharing",
            n,
            format!(
                "the node selects device plugin config {}, but GFD loaded none (replicas 0)",
                s.config.as_deref().unwrap_or_default()
            ),
        )
        .fix(format!("the key must exist in the chart's devicePlugin.config ConfigMap (else the config-manager container exits): kubectl -n {ns} get configmap -o yaml | grep -n '{}:'; then {restart}", s.config.as_deref().unwrap_or_default()))
    } else if mps && s.mps_capable == Some(false) {
        Finding::warn("gpu-sharing", n, "MPS is configured but GFD reports the GPUs not MPS capable (MIG-enabled GPUs cannot run MPS): pods get no MPS share")
            .fix("disable MIG on this node (nvidia.com/mig.config=all-disabled) or use time-slicing")
    } else if s.shared() {
        Finding::ok("gpu-sharing", n, s.summary())
    } else {
        Finding::ok(
            "gpu-sharing",
            n,
            format!("GPUs not shared ({})", s.summary()),
        )
    };
    vec![evidence.into_iter().fold(f, |f: Finding, e| f.evidence(e))]
}

/// `mig-state`: a MIG change that failed or cannot progress fails; one in
/// progress warns (its operands are paused); after it, a mixed-strategy
/// node whose advertised MIG resources differ from GFD's counts warns (the
/// device plugin has not restarted onto the new layout).
pub fn mig_state(view: &ClusterView, node: &NodeFacts) -> Vec<Finding> {
    let Some(m) = MigView::of(node) else {
        return Vec::new();
    };
    let n = Some(node.name.as_str());
    let name = &node.name;
    let ns = view
        .operator
        .as_ref()
        .map_or("gpu-operator", |o| o.namespace.as_str());
    let config = m.config.as_deref().unwrap_or("(none)");
    let manager = view.operator.as_ref().and_then(|o| {
        o.operands_on(name)
            .find(|p| p.app == MIG_MANAGER_APP)
            .cloned()
    });
    let logs = format!(
        "kubectl -n {ns} logs -l app={MIG_MANAGER_APP} --field-selector spec.nodeName={name} --tail 50"
    );
    let mut evidence = vec![format!("MIG {}", m.summary())];
    if !m.paused.is_empty() {
        evidence.push(format!(
            "paused for the MIG change: {}",
            m.paused.join(", ")
        ));
    }
    let f = match m.state.as_deref() {
        Some("failed") => Finding::fail(
            "mig-state",
            n,
            format!("the MIG manager failed to apply nvidia.com/mig.config={config}"),
        )
        .fix(format!("{logs}; then label a layout this GPU supports: kubectl label node {name} nvidia.com/mig.config=all-disabled --overwrite (or another profile of the mig-parted config)")),
        Some(s @ ("pending" | "rebooting")) => match &manager {
            Some(p) if p.ready => Finding::warn(
                "mig-state",
                n,
                format!("the MIG manager is applying nvidia.com/mig.config={config} (state {s}): GPU operands are paused until it reports success"),
            )
            .fix(format!("wait, or follow it: {logs} -f")),
            Some(p) => Finding::fail(
                "mig-state",
                n,
                format!("nvidia.com/mig.config={config} is {s}, and the MIG manager pod {} is not ready ({}): the change cannot finish", p.pod, p.phase),
            )
            .fix(format!("kubectl -n {ns} describe pod {}; {logs}", p.pod)),
            None => Finding::fail(
                "mig-state",
                n,
                format!("nvidia.com/mig.config={config} is {s}, but no MIG manager pod runs on this node: nothing will apply it"),
            )
            .fix(format!("enable the MIG manager (chart value migManager.enabled=true) and check its deploy label: kubectl get node {name} -L nvidia.com/gpu.deploy.mig-manager")),
        },
        _ => {
            let missing = m.unadvertised();
            if missing.is_empty() {
                Finding::ok(
                    "mig-state",
                    n,
                    if m.enabled() {
                        format!("MIG {} applied", m.summary())
                    } else {
                        format!("MIG off ({})", m.summary())
                    },
                )
            } else {
                let what: Vec<String> = missing
                    .iter()
                    .map(|(p, want, have)| format!("mig-{p}: {want} by GFD, {have} advertised"))
                    .collect();
                Finding::warn(
                    "mig-state",
                    n,
                    format!("the MIG layout is applied but the device plugin advertises another: {}", what.join(", ")),
                )
                .fix(format!("kubectl -n {ns} delete pod -l app=nvidia-device-plugin-daemonset --field-selector spec.nodeName={name}   # the device plugin re-reads the MIG devices at start"))
            }
        }
    };
    vec![evidence.into_iter().fold(f, |f: Finding, e| f.evidence(e))]
}
