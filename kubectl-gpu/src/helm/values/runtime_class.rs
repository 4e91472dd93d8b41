//! How GPU pods reach their GPU with the computed values: CDI, the NRI
//! plugin, or `runtimeClassName: nvidia`, and the hint that tells the user.

use super::{Ctx, Out, PodGpuAccess};
use crate::matrix::{self, GpuInjection};

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
