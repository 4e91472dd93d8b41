//! check-runtime's human-readable output: findings grouped by node (the
//! cluster-wide ones under `CLUSTER`), evidence and fixes of warnings and
//! failures (`-o wide`: evidence of every finding), and the summary line.

use super::{CheckReport, Finding, Status};
use crate::cli::OutputFormat;
use crate::error::Result;
use crate::render;

/// The report in an output format: the table for `table`/`wide`, else the
/// same [`CheckReport`] as JSON or YAML.
pub fn render(report: &CheckReport, format: OutputFormat, color: bool) -> Result<String> {
    if format.is_table() {
        Ok(table(report, format == OutputFormat::Wide, color))
    } else {
        render::structured(report, format)
    }
}

/// The findings table, one group per node, and the summary line.
pub fn table(report: &CheckReport, wide: bool, color: bool) -> String {
    let mut groups: Vec<(Option<String>, Vec<&Finding>)> = Vec::new();
    for f in &report.findings {
        match groups.last_mut() {
            Some((node, list)) if *node == f.node => list.push(f),
            _ => groups.push((f.node.clone(), vec![f])),
        }
    }
    let mut s = String::new();
    for (node, list) in groups {
        s.push_str(&format!(
            "{}\n",
            match &node {
                Some(n) => format!("NODE {n}"),
                None => "CLUSTER".to_string(),
            }
        ));
        let rows: Vec<Vec<String>> = list.iter().flat_map(|f| rows(f, wide, color)).collect();
        s.push_str(&render::table(&["  status", "check", "finding"], rows));
        s.push('\n');
    }
    let summary = &report.summary;
    s.push_str(&format!(
        "Summary: {} ok, {} warn, {} fail, {} skipped\n",
        summary.ok, summary.warn, summary.fail, summary.skipped
    ));
    if let Some(plan) = &report.upgrade {
        let targets: Vec<String> = [
            plan.rke2.as_ref().map(|r| format!("RKE2 {r}")),
            plan.chart.as_ref().map(|c| format!("chart {c}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        s.push_str(&format!(
            "\nUpgrade to {}: {}\n",
            targets.join(" and "),
            if plan.breaks_gpu_pods {
                render::paint(
                    "would break GPU pods as planned (see the upgrade-* failures)",
                    color,
                )
            } else {
                "no break predicted".to_string()
            }
        ));
        for (i, step) in plan.order.iter().enumerate() {
            s.push_str(&format!("  {}. {step}\n", i + 1));
        }
        for p in &plan.predicted {
            s.push_str(&format!(
                "\nPredicted {} on {} ({}):\n",
                p.path, p.node, p.basis
            ));
            if p.diff.is_empty() {
                s.push_str("  unchanged\n");
            } else {
                s.push_str(&p.diff);
            }
        }
    }
    s
}

/// One finding's rows: status, id and message; then what was seen and the
/// fix, one line each.
fn rows(f: &Finding, wide: bool, color: bool) -> Vec<Vec<String>> {
    let mut rows = vec![vec![
        format!("  {}", render::paint(f.status.label(), color)),
        f.id.to_string(),
        f.message.clone(),
    ]];
    if wide || f.status >= Status::Warn {
        for e in &f.evidence {
            rows.push(vec![String::new(), String::new(), format!("seen: {e}")]);
        }
    }
    if let Some(fix) = &f.fix
        && f.status >= Status::Warn
    {
        for (i, line) in fix.lines().enumerate() {
            rows.push(vec![
                String::new(),
                String::new(),
                if i == 0 {
                    format!("fix:  {line}")
                } else {
                    format!("      {line}")
                },
            ]);
        }
    }
    rows
}
