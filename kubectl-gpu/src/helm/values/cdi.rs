//! `cdi.enabled`: the user's `--cdi` (refused where it cannot work, unless
//! `--force`), else off where NVIDIA says CDI is broken on RKE2 or where a
//! GPU node runs containerd 1.x under a CDI-by-default chart.

use super::nodes::describe_all;
use super::{Ctx, Out, refuse};
use crate::Result;
use crate::matrix::{self, Rke2Feature};
use serde_json::Value;
use std::fmt::Write as _;

/// Sets `cdi.enabled` where needed and returns whether CDI ends up on.
pub(super) fn cdi_enabled(ctx: &Ctx<'_>, out: &mut Out<'_>) -> Result<bool> {
    let (opts, row, chart_desc) = (ctx.opts, ctx.row, &ctx.chart_desc);
    let old_containerd = ctx.old_containerd();
    let new_containerd = ctx.new_containerd();
    let cdi_off_fix = ctx.fixes.iter().find(|f| f.cdi_off);
    let mut cdi_effective = row.cdi_default;
    match opts.cdi {
        Some(true) => {
            if let Some(f) = cdi_off_fix {
                if !opts.force {
                    return Err(refuse(format!(
                        "--cdi true: {chart_desc}: {}; keep CDI off or pass --force (--rke2gpu-force on upgrade)",
                        f.note
                    )));
                }
                out.warnings.push(format!(
                    "--force: enabling CDI on {chart_desc}, which NVIDIA says is not operational with RKE2"
                ));
            }
            if !ctx.generic && row.cdi_default && !old_containerd.is_empty() && !opts.nri {
                if !opts.force {
                    return Err(refuse(format!(
                        "--cdi true: CDI needs containerd ≥ 2.0 (enable_cdi), but {} run containerd 1.x; upgrade RKE2 to ≥ {} or drop --cdi",
                        describe_all(&old_containerd),
                        matrix::feature(Rke2Feature::Containerd2).line_versions("/")
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
            } else if !ctx.generic && row.cdi_default && !old_containerd.is_empty() && !opts.nri {
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
                    &format!("{}; {}", row.source, matrix::CDI_OFF_ON_CONTAINERD1_SOURCE),
                );
                cdi_effective = false;
            }
        }
    }
    Ok(cdi_effective)
}
