//! How GPU pods reach their GPU with the computed values: CDI, the NRI
//! plugin, or `runtimeClassName: nvidia`, and the hint that tells the user;
//! and the refusal of an `operator.runtimeClass` RKE2/K3s never render.

use super::{Ctx, Out, PodGpuAccess, refuse};
use crate::Result;
use crate::matrix::{self, GpuInjection, RKE2_NVIDIA_RUNTIMES};

/// Refuses (unless `--force`) an `operator.runtimeClass` other than the
/// runtimes RKE2/K3s render ([`RKE2_NVIDIA_RUNTIMES`]): the toolkit would
/// register it in `/etc/containerd`, which RKE2 ignores, and the operator
/// runs its own operands with that runtime class. NRI mode sets no runtime
/// class on the operands and configures no runtime, so it is not refused there.
pub(super) fn unrendered_runtime_class(ctx: &Ctx<'_>, out: &mut Out<'_>) -> Result<()> {
    if ctx.generic || ctx.nri_mode() {
        return Ok(());
    }
    let Some(rc) = ctx.effective("operator.runtimeClass") else {
        return Ok(());
    };
    let Some(name) = rc.value.as_str().filter(|n| !n.is_empty()) else {
        return Ok(());
    };
    if RKE2_NVIDIA_RUNTIMES.contains(&name) {
        return Ok(());
    }
    let known = RKE2_NVIDIA_RUNTIMES.join(", ");
    let why = format!(
        "operator.runtimeClass={name} (from {}): RKE2/K3s render only the runtimes {known} into their containerd config; the toolkit would register {name} in /etc/containerd, which RKE2 ignores, and the operator runs its own operands and the RuntimeClass {name} on it, so they fail with `no runtime for \"{name}\" is configured` ({}; {})",
        rc.origin,
        matrix::RKE2_NVIDIA_RUNTIMES_SOURCE,
        matrix::OPERANDS_RUNTIME_CLASS_SOURCE
    );
    if !ctx.opts.force {
        return Err(refuse(format!(
            "{why}. Use one of {known} (e.g. --set operator.runtimeClass=nvidia), or pass --force (--rke2gpu-force on upgrade) to go on anyway"
        )));
    }
    out.warnings
        .push(format!("--force: {why}; use one of {known} instead"));
    Ok(())
}

/// Decides the pod access mode and adds its hint.
pub(super) fn pod_access(ctx: &Ctx<'_>, cdi_effective: bool, out: &mut Out<'_>) -> PodGpuAccess {
    let pod_access = if ctx.opts.nri {
        PodGpuAccess::Nri
    } else if !ctx.targets.is_empty()
        && ctx.targets.iter().all(|t| {
            matrix::gpu_injection(ctx.version, Some(cdi_effective), Some(t.containerd))
                == GpuInjection::Cdi
        })
    {
        PodGpuAccess::Cdi
    } else {
        PodGpuAccess::RuntimeClass
    };
    match pod_access {
        PodGpuAccess::RuntimeClass => {
            let why = ctx
                .fixes
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
    pod_access
}
