//! The toolkit container's env (`toolkit.env`): the RKE2 containerd socket,
//! or the 2021-era `CONTAINERD_CONFIG` recipe on `--legacy-2021`, plus the
//! per-chart-version envs; and the per-version `toolkit.version` pin and
//! `devicePlugin.env` from the matrix.

use super::nodes::describe_all;
use super::{Ctx, Out};
use crate::matrix::{
    self, EnvVar, LEGACY_2021_DEFAULT_RUNTIME, LEGACY_2021_SOURCE, LEGACY_2021_TOOLKIT_ENV,
    NodePaths, RKE2_SOCKET_ENV, RKE2_SOCKET_ENV_SOURCE,
};
use crate::version::Distribution;
use serde_json::{Value, json};
use std::fmt::Write as _;

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

/// `toolkit.env` (and `operator.defaultRuntime` on `--legacy-2021`); none on
/// generic clusters or with `--nri`.
pub(super) fn toolkit_env(ctx: &Ctx<'_>, out: &mut Out<'_>) {
    if ctx.generic || ctx.opts.nri {
        return;
    }
    let chart_desc = &ctx.chart_desc;
    let (mut env, mut reason, mut source) = if ctx.opts.legacy_2021 {
        legacy_2021_env(ctx, out)
    } else {
        (
            vec![(RKE2_SOCKET_ENV.name.into(), RKE2_SOCKET_ENV.value.into())],
            format!(
                "RKE2/K3s nodes {}: containerd listens on {}; the toolkit only needs the socket to signal it, and RKE2 re-renders its own config with the nvidia runtimes",
                ctx.nodes_desc, RKE2_SOCKET_ENV.value
            ),
            RKE2_SOCKET_ENV_SOURCE.to_string(),
        )
    };
    for f in ctx.fixes.iter().filter(|f| !f.toolkit_env.is_empty()) {
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

    if ctx.opts.legacy_2021 {
        if ctx.chart.has_value("operator.defaultRuntime") {
            out.set(
                "operator.defaultRuntime",
                Value::String(LEGACY_2021_DEFAULT_RUNTIME.into()),
                format!("--legacy-2021: the 2021 recipe sets the default runtime; {chart_desc} still has the key"),
                LEGACY_2021_SOURCE,
            );
        } else {
            out.hints.push(format!(
                "--legacy-2021: {chart_desc} has no operator.defaultRuntime (removed in v{}): not set",
                matrix::first_chart_with(|r| !r.has_default_runtime_value)
            ));
        }
    }
}

/// The 2021–2024 NVIDIA recipe: env, reason and source, with its warnings.
fn legacy_2021_env(ctx: &Ctx<'_>, out: &mut Out<'_>) -> (Vec<(String, String)>, String, String) {
    let dist = ctx
        .targets
        .first()
        .map(|t| t.node.kubelet.distribution)
        .unwrap_or(Distribution::Rke2);
    let paths = NodePaths::new(dist, ctx.cluster.data_dir.as_deref());
    let mut env = vec![
        ("CONTAINERD_CONFIG".into(), paths.template_v2.clone()),
        (RKE2_SOCKET_ENV.name.into(), RKE2_SOCKET_ENV.value.into()),
    ];
    env.extend(owned(LEGACY_2021_TOOLKIT_ENV));
    let reason = format!(
        "--legacy-2021: the NVIDIA docs' RKE2 values of 2021–2024, CONTAINERD_CONFIG at {} (data dir {})",
        paths.template_v2, paths.data_dir
    );
    out.warnings.push(format!(
        "--legacy-2021: CONTAINERD_CONFIG={} makes the toolkit write a STATIC containerd config into RKE2's template; RKE2 then renders it verbatim on every restart, freezing registry config, pause image and cgroup settings, and nodes may not come back after a reboot ({}). Prefer the default socket-only values",
        paths.template_v2,
        matrix::LEGACY_2021_FREEZE_SOURCE
    ));
    let new_containerd = ctx.new_containerd();
    if !new_containerd.is_empty() {
        out.warnings.push(format!(
            "--legacy-2021 on containerd 2.x ({}): the static version = 2 template also loses RKE2's version = 3 layout",
            describe_all(&new_containerd)
        ));
    }
    (env, reason, LEGACY_2021_SOURCE.to_string())
}

/// `toolkit.version` and `devicePlugin.env` from the matrix rows for this
/// chart version.
pub(super) fn per_version_extras(ctx: &Ctx<'_>, out: &mut Out<'_>) {
    let chart_desc = &ctx.chart_desc;
    for f in &ctx.fixes {
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
}
