//! The GPU Operator's NRI plugin (`--nri`): `cdi.nriPluginEnabled=true`
//! instead of the toolkit env, only where the chart has the plugin and every
//! GPU node's containerd supports it, and never with the toolkit or CDI
//! turned off (the plugin runs in the toolkit container and injects CDI
//! devices).

use super::nodes::{Target, describe_all};
use super::{Ctx, Out, refuse, template_bool};
use crate::Result;
use crate::matrix::{self, NRI_SOURCE, Rke2Feature};
use crate::version::Distribution;
use serde_json::Value;

/// NRI mode (`--nri` or the user's `cdi.nriPluginEnabled=true`) with
/// `toolkit.enabled=false` or `cdi.enabled=false`, from the user's values or
/// the chart's defaults: refused, as the chart's own validation does.
fn needs_toolkit_and_cdi(ctx: &Ctx<'_>) -> Result<()> {
    if !ctx.nri_mode() {
        return Ok(());
    }
    let how = if ctx.opts.nri {
        "--nri"
    } else {
        "cdi.nriPluginEnabled=true"
    };
    for (key, what) in [
        (
            "toolkit.enabled",
            "the NRI plugin runs inside the toolkit container",
        ),
        ("cdi.enabled", "the NRI plugin injects CDI devices"),
    ] {
        if let Some(v) = ctx
            .effective(key)
            .filter(|v| template_bool(&v.value) == Some(false))
        {
            return Err(refuse(format!(
                "{how} with {key}=false (from {}): {what}, so no GPU would reach a pod; the chart refuses it too ({}). Drop {key}=false, or drop {how} and keep the toolkit env",
                v.origin,
                matrix::NRI_NEEDS_TOOLKIT_AND_CDI_SOURCE
            )));
        }
    }
    Ok(())
}

/// The systemd units that restart RKE2/K3s on the GPU nodes, for messages.
fn describe_units(ctx: &Ctx<'_>) -> String {
    let k3s = ctx
        .targets
        .iter()
        .any(|t| t.node.kubelet.distribution == Distribution::K3s);
    if k3s {
        "systemctl restart k3s / k3s-agent".into()
    } else {
        "systemctl restart rke2-agent, or rke2-server on servers".into()
    }
}

pub(super) fn nri(ctx: &Ctx<'_>, out: &mut Out<'_>) -> Result<()> {
    if ctx.opts.nri && !ctx.row.has_nri {
        return Err(refuse(format!(
            "--nri: {} has no NRI plugin (cdi.nriPluginEnabled arrived in chart v{})",
            ctx.chart_desc,
            matrix::first_chart_with(|r| r.has_nri)
        )));
    }
    needs_toolkit_and_cdi(ctx)?;
    if !ctx.opts.nri {
        return Ok(());
    }
    let bad: Vec<&Target<'_>> = ctx
        .targets
        .iter()
        .filter(|t| !matrix::nri_supported(ctx.version, Some(t.containerd)))
        .collect();
    if !bad.is_empty() {
        return Err(refuse(format!(
            "--nri needs containerd {} on every GPU node, but {} do not have it; upgrade RKE2 (containerd {} ships from {}) or drop --nri",
            matrix::NRI_CONTAINERD_TEXT,
            describe_all(&bad),
            matrix::NRI_CONTAINERD_RKE2,
            matrix::feature(Rke2Feature::Containerd21).line_versions(", ")
        )));
    }
    if ctx.targets.is_empty() {
        return Err(refuse(
            "--nri: no node to check containerd's NRI support on".into(),
        ));
    }
    out.set(
        "cdi.nriPluginEnabled",
        Value::Bool(true),
        format!(
            "--nri: every GPU node runs a containerd with NRI ({}); {}; no toolkit env is needed",
            ctx.nodes_desc, ctx.chart_desc
        ),
        NRI_SOURCE,
    );
    out.warnings.push(
        "NRI mode: NVIDIA calls the NRI plugin experimental (not GA, not recommended for production)".into(),
    );
    let units = describe_units(ctx);
    out.after_install.push(format!(
        "NRI mode: the toolkit (≥ {}) configures no runtime and does not signal containerd, so RKE2 renders its nvidia runtimes only at its next restart ({units}); GPU pods with a nvidia.com/gpu limit work now, pods with runtimeClassName: nvidia fail with `no runtime for \"nvidia\" is configured` until then (source: {})",
        matrix::NRI_NOOP_CONFIGURER.version,
        matrix::NRI_NOOP_CONFIGURER.source
    ));
    let mgmt = matrix::NRI_MANAGEMENT_NAMESPACES;
    out.hints.push(if ctx.version >= mgmt.version {
        format!(
            "NRI mode: management CDI devices (annotation nvidia.cdi.k8s.io/container.<name>: management.nvidia.com/gpu=all) reach only pods in the operator's namespace; to allow others add toolkit.env NRI_MANAGEMENT_CDI_DEVICE_NAMESPACES=<ns>,<ns> (source: {})",
            mgmt.source
        )
    } else {
        format!(
            "NRI mode: {} injects annotated CDI devices (nvidia.cdi.k8s.io/...) only into pods in the operator's namespace; chart v{} adds toolkit.env NRI_MANAGEMENT_CDI_DEVICE_NAMESPACES for others (source: {})",
            ctx.chart_desc, mgmt.version, mgmt.source
        )
    });
    Ok(())
}
