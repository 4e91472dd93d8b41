//! Refusals: contradicting options, chart versions outside the matrix, and
//! charts with a known RKE2/K3s defect that no value works around
//! (`--force` goes on anyway).

use super::nodes::describe_all;
use super::{Ctx, Out, ValuesOptions, refuse};
use crate::matrix::{self, CHART_ROWS, NEWEST_KNOWN_CHART, Severity};
use crate::version::Triple;
use crate::{Error, Result};

/// The chart version to look rows up by, and a warning when it lies outside
/// the matrix.
pub(super) fn resolve_version(version: &str) -> (Triple, Option<String>) {
    let first = &CHART_ROWS[0];
    match Triple::parse_loose(version) {
        // NVIDIA/gpu-operator deployments/gpu-operator/Chart.yaml in git says
        // `version: v1.0.0-devel`; packaged releases carry the real version.
        Some(_) | None if version.contains("devel") => (
            NEWEST_KNOWN_CHART,
            Some(format!(
                "chart version {version} is a development build: using the newest known row (v{NEWEST_KNOWN_CHART})"
            )),
        ),
        None => (
            NEWEST_KNOWN_CHART,
            Some(format!(
                "chart version `{version}` does not parse: using the newest known row (v{NEWEST_KNOWN_CHART})"
            )),
        ),
        Some(v) if v < first.since => (
            v,
            Some(format!(
                "chart {version} is older than the oldest known row ({}): using that row; values may not fit",
                first.label
            )),
        ),
        Some(v) if !matrix::chart_is_known(v) => (
            v,
            Some(format!(
                "chart {version} is newer than the newest version checked (v{NEWEST_KNOWN_CHART}): using the row {}; check the release notes for RKE2 changes",
                matrix::chart_row(v).label
            )),
        ),
        Some(v) => (v, None),
    }
}

/// Options that contradict each other, whatever the cluster.
pub(super) fn check_options(opts: &ValuesOptions) -> Result<()> {
    if opts.nri && opts.legacy_2021 {
        return Err(refuse(
            "--nri and --legacy-2021 contradict each other: NRI leaves containerd's config alone, the 2021 values rewrite it".into(),
        ));
    }
    if opts.nri && opts.cdi == Some(false) {
        return Err(refuse(
            "--nri with --cdi false: the NRI plugin (cdi.nriPluginEnabled) injects CDI devices and needs cdi.enabled=true".into(),
        ));
    }
    Ok(())
}

/// Known chart defects on RKE2/K3s: worked around when the matrix has values
/// for it (and the chart has their keys), else refused unless `--force`.
pub(super) fn known_defects(ctx: &Ctx<'_>, out: &mut Out<'_>) -> Result<()> {
    if ctx.generic {
        return Ok(());
    }
    for d in matrix::chart_defects(ctx.version) {
        // A workaround counts only if the chart has the keys it sets.
        let fix = ctx.fixes.iter().find(|f| {
            f.fixes_defect == Some(d.id)
                && (f.toolkit_version.is_none() || ctx.chart.has_value("toolkit.version"))
        });
        match (d.severity, fix) {
            (Severity::Fail, Some(f)) => out
                .warnings
                .push(format!("{}; working around it: {}", d.summary, f.note)),
            (Severity::Fail, None) if !ctx.opts.force => {
                return Err(Error::KnownBadChart {
                    version: ctx.vs.to_string(),
                    summary: d.summary.to_string(),
                    fix: d.fix.to_string(),
                });
            }
            (Severity::Fail, None) => out.warnings.push(format!(
                "--force: installing a chart known to fail on RKE2: {}; {}",
                d.summary, d.fix
            )),
            (Severity::Warn, _) => out.warnings.push(format!("{}; {}", d.summary, d.fix)),
        }
    }
    Ok(())
}

/// A chart older than containerd 2.0 support on containerd 2.x nodes.
pub(super) fn old_chart_on_containerd2(ctx: &Ctx<'_>, out: &mut Out<'_>) {
    let new_containerd = ctx.new_containerd();
    if !ctx.generic && !ctx.row.supports_containerd2 && !new_containerd.is_empty() {
        out.warnings.push(format!(
            "{} predates containerd 2.0 support (chart v{}), and {} run containerd 2.x: prefer a newer chart",
            ctx.chart_desc,
            matrix::first_chart_with(|r| r.supports_containerd2),
            describe_all(&new_containerd)
        ));
    }
}
