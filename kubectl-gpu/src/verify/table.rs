//! The kubectl-style table of a [`VerifyReport`] (`-o wide` adds UUIDs,
//! bus ids, memory, MIG devices and the pod), with fix lines under failing
//! rows and a summary line. Pure.

use super::checks::CheckStatus;
use super::results::{NodeResult, VerifyReport};
use crate::nvidia_smi::Gpu;

/// `850ms`, `12s`, `2m05s`.
pub fn format_duration(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

fn or_dash(v: Option<&str>) -> String {
    v.filter(|s| !s.is_empty()).unwrap_or("-").to_string()
}

fn gpus_cell(n: &NodeResult) -> String {
    if n.gpus.is_empty() {
        return "-".into();
    }
    let migs: usize = n.gpus.iter().map(|g| g.mig_devices.len()).sum();
    if migs > 0 {
        format!("{} ({migs} MIG)", n.gpus.len())
    } else {
        n.gpus.len().to_string()
    }
}

fn join_gpus(n: &NodeResult, f: impl Fn(&Gpu) -> Option<String>) -> String {
    let v: Vec<String> = n.gpus.iter().filter_map(f).collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(",")
    }
}

/// The kubectl-style table (`-o wide` adds UUIDs, bus ids, memory, MIG
/// devices and the pod name), fix lines under failing rows, a summary.
pub fn render_table(report: &VerifyReport, wide: bool, color: bool) -> String {
    let mut headers = vec![
        "node", "result", "gpus", "product", "driver", "cuda", "duration",
    ];
    if wide {
        headers.extend(["uuids", "bus-ids", "memory", "mig-devices", "pod"]);
    }
    headers.push("detail");
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut extras: Vec<Vec<String>> = Vec::new();
    for n in &report.nodes {
        let product = n
            .gpus
            .first()
            .map(|g| g.name.replace(' ', "-"))
            .or_else(|| n.product.clone());
        let mut row = vec![
            n.node.clone(),
            crate::render::paint(n.result.label(), color),
            gpus_cell(n),
            or_dash(product.as_deref()),
            or_dash(n.driver_version.as_deref()),
            or_dash(n.cuda_version.as_deref()),
            format_duration(n.duration_ms),
        ];
        if wide {
            row.push(join_gpus(n, |g| g.uuid.clone()));
            row.push(join_gpus(n, |g| g.pci_bus_id.clone()));
            row.push(join_gpus(n, |g| {
                g.memory_total_mib.map(|m| format!("{m}MiB"))
            }));
            let migs: Vec<String> = n
                .gpus
                .iter()
                .flat_map(|g| g.mig_devices.iter().map(|m| m.profile.clone()))
                .collect();
            row.push(if migs.is_empty() {
                "-".into()
            } else {
                migs.join(",")
            });
            row.push(n.pod.clone());
        }
        row.push(n.detail());
        rows.push(row);
        extras.push(n.fix_lines());
    }
    // Fix lines go under their row, indented to the DETAIL column, outside
    // the table so that long fixes do not widen it.
    let table = crate::render::table(&headers, rows);
    let mut lines = table.lines();
    let mut s = String::new();
    let indent = lines
        .next()
        .map(|header| {
            s.push_str(header);
            s.push('\n');
            header.find("DETAIL").unwrap_or(0)
        })
        .unwrap_or(0);
    for (line, fixes) in lines.zip(extras) {
        s.push_str(line);
        s.push('\n');
        for f in fixes {
            s.push_str(&format!("{:indent$}  {f}\n", ""));
        }
    }
    for c in &report.cluster_checks {
        if c.status != CheckStatus::Pass && !matches!(c.status, CheckStatus::Skipped { .. }) {
            let word = if c.is_fail() { "FAIL" } else { "warn" };
            s.push_str(&format!(
                "\n{} uuid_unique: {}\n",
                crate::render::paint(word, color),
                c.message
            ));
            for e in &c.evidence {
                s.push_str(&format!("  seen: {e}\n"));
            }
        }
    }
    s.push_str(&format!(
        "\nSummary: {} passed, {} failed of {} GPU node(s); run {}",
        report.summary.passed, report.summary.failed, report.summary.total, report.run_id
    ));
    let cl = &report.cleanup;
    if cl.kept {
        s.push_str(&format!(
            ", kept in namespace {}\n  remove with: {}\n",
            report.namespace,
            cl.delete_command
                .as_deref()
                .unwrap_or("kubectl gpu cleanup")
        ));
    } else if let Some(ns) = &cl.deleted_namespace {
        s.push_str(&format!(", namespace {ns} removed\n"));
    } else {
        s.push_str(&format!(
            ", {} pod(s) removed from {}\n",
            cl.deleted_pods.len(),
            report.namespace
        ));
    }
    for e in &cl.errors {
        s.push_str(&format!("cleanup: {e}; run `kubectl gpu cleanup`\n"));
    }
    s
}
