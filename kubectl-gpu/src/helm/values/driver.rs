//! The OS vendor's driver values (`--os`): on SLES 16, SUSE's precompiled
//! driver images ([`matrix::SLES16_DRIVER`], the rke2-docs v26.3.x tab). Set
//! with `--os sles16`, or with the default `--os auto` when every GPU node's
//! `osImage` is SLES 16; one cluster-wide driver image cannot fit mixed OSes,
//! so `auto` leaves a mixed cluster alone and says so.

use super::nodes::{Target, describe_all};
use super::{Ctx, NodeOs, Out, template_bool};
use crate::matrix::{self, OsDriverValues};
use serde_json::Value;

pub(super) fn os_driver(ctx: &Ctx<'_>, out: &mut Out<'_>) {
    if ctx.generic || ctx.opts.os == NodeOs::Other {
        return;
    }
    let d: &OsDriverValues = &matrix::SLES16_DRIVER;
    let (on, off): (Vec<&Target<'_>>, Vec<&Target<'_>>) = ctx
        .targets
        .iter()
        .partition(|t| d.matches(&t.node.os_image));
    let driver_off = ctx
        .effective("driver.enabled")
        .filter(|v| template_bool(&v.value) == Some(false));
    let explicit = ctx.opts.os == NodeOs::Sles16;
    let reason = if explicit {
        let mut r = format!("--os sles16: {} driver values", d.os);
        if !off.is_empty() {
            out.warnings.push(format!(
                "--os sles16: {} do not run {}, yet the driver image is cluster-wide: their driver container will pull SUSE's image",
                describe_all(&off),
                d.os
            ));
            r.push_str(" (asked for every GPU node)");
        }
        r
    } else {
        if on.is_empty() {
            return;
        }
        if let Some(v) = &driver_off {
            out.hints.push(format!(
                "GPU nodes run {} but driver.enabled=false (from {}): the operator installs no driver, so its SUSE driver values are not set",
                d.os, v.origin
            ));
            return;
        }
        if !off.is_empty() {
            out.warnings.push(format!(
                "{} run {} and {} do not: one cluster-wide driver image cannot fit both, so the {} driver values are not set (pass --os sles16 to set them anyway, or --os other to silence this)",
                describe_all(&on),
                d.os,
                describe_all(&off),
                d.os
            ));
            return;
        }
        if ctx.version < d.from_chart {
            out.hints.push(format!(
                "every GPU node runs {}: the rke2-docs driver values for it are for chart ≥ v{}; {} would need --os sles16",
                d.os, d.from_chart, ctx.chart_desc
            ));
            return;
        }
        format!(
            "every GPU node runs {} (osImage {}): {}",
            d.os,
            describe_all(&on),
            "the OS vendor's precompiled driver images"
        )
    };
    if explicit && ctx.version < d.from_chart {
        out.warnings.push(format!(
            "--os sles16: the rke2-docs {} driver values are given for chart ≥ v{}, not {}",
            d.os, d.from_chart, ctx.chart_desc
        ));
    }
    if let (true, Some(v)) = (explicit, &driver_off) {
        out.warnings.push(format!(
            "--os sles16 with driver.enabled=false (from {}): the driver values have no effect",
            v.origin
        ));
    }
    out.set(
        "driver.repository",
        Value::String(d.repository.into()),
        format!("{reason}; {}", ctx.chart_desc),
        d.source,
    );
    out.set(
        "driver.usePrecompiled",
        Value::Bool(d.use_precompiled),
        format!("{reason}: SUSE ships precompiled driver images per kernel"),
        d.source,
    );
    out.set(
        "driver.version",
        Value::String(d.version.into()),
        format!(
            "{reason}: driver branch {} as rke2-docs gives it; the right branch depends on your GPU architecture: override with --set driver.version=<branch>",
            d.version
        ),
        d.source,
    );
}
