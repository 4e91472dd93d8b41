//! GPU isolation where pods reach their GPU through the `nvidia` runtime
//! (CDI off): the toolkit's `ACCEPT_NVIDIA_VISIBLE_DEVICES_*` envs and the
//! device plugin's `DEVICE_LIST_STRATEGY=volume-mounts`
//! ([`matrix::GPU_ISOLATION`]), on every chart whose toolkit reads them, not
//! only on 25.3.x. Never with CDI on (the operator's CDI device list
//! strategy would be replaced) or with the NRI plugin.

use super::{Ctx, Out};
use crate::matrix::{EnvVar, GPU_ISOLATION};
use serde_json::{Value, json};

fn entries(vars: &[EnvVar]) -> Vec<Value> {
    vars.iter()
        .map(|e| json!({"name": e.name, "value": e.value}))
        .collect()
}

/// Adds the isolation envs where CDI ends up off.
pub(super) fn gpu_isolation(ctx: &Ctx<'_>, cdi_effective: bool, out: &mut Out<'_>) {
    if ctx.generic || ctx.nri_mode() || cdi_effective {
        return;
    }
    let iso = &GPU_ISOLATION;
    if ctx.version < iso.from_chart {
        out.warnings.push(format!(
            "{}: its toolkit container does not read ACCEPT_NVIDIA_VISIBLE_DEVICES_* (from chart v{} on it does), so pods with runtimeClassName: nvidia can see every GPU by setting NVIDIA_VISIBLE_DEVICES; upgrade the chart",
            ctx.chart_desc, iso.from_chart
        ));
        return;
    }
    let why = ctx
        .fixes
        .iter()
        .find(|f| f.cdi_off)
        .map(|f| format!(" ({})", f.note))
        .unwrap_or_default();
    let reason = format!(
        "GPU isolation on {}{why}: pods reach their GPU through the nvidia runtime (CDI off), which by default also honours NVIDIA_VISIBLE_DEVICES from any unprivileged container (CUDA images set it to all); with these the runtime takes the device list only from the device plugin's volume mounts",
        ctx.chart_desc
    );
    let names: Vec<&str> = iso.toolkit_env.iter().map(|e| e.name).collect();
    out.extend_list(
        "toolkit.env",
        entries(iso.toolkit_env),
        &format!("; plus {} for {reason}", names.join(", ")),
        iso.source,
    );
    out.set(
        "devicePlugin.env",
        Value::Array(entries(iso.device_plugin_env)),
        reason,
        iso.source,
    );
}
