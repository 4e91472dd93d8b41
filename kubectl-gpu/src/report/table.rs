//! The report's human-readable output: tables of the three views, kubectl
//! style (see [`crate::render::table`]), and [`render`], which picks the
//! table or the JSON/YAML document of a view.

use super::nodes::{NodeRow, ResourceCount, mig_summary, shared_summary};
use super::operator_view::OperatorView;
use super::pods::human_age;
use super::{GpuReport, PodsView, View};
use crate::cli::OutputFormat;
use crate::error::Result;
use crate::render::{paint, table};
use owo_colors::OwoColorize;

/// One view in an output format: its table (`table`/`wide`), else the
/// view's document ([`GpuReport::doc`]) as JSON or YAML.
pub fn render(report: &GpuReport, view: View, format: OutputFormat, color: bool) -> Result<String> {
    let wide = format == OutputFormat::Wide;
    Ok(match format {
        OutputFormat::Table | OutputFormat::Wide => match view {
            View::Nodes => nodes_table(report, wide, color),
            View::Pods => pods_table(report, wide),
            View::Operator => operator_text(report, wide, color),
        },
        format => crate::render::structured(&report.doc(view), format)?,
    })
}

fn opt(v: Option<i64>) -> String {
    v.map(|n| n.to_string()).unwrap_or_else(|| "-".into())
}

fn text(v: &Option<String>) -> String {
    v.clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "-".into())
}

fn status_cell(row: &NodeRow, color: bool) -> String {
    let ready = if row.ready { "Ready" } else { "NotReady" };
    let mut s = paint(ready, color);
    if row.cordoned {
        let c = ",SchedulingDisabled";
        s.push_str(&if color {
            c.yellow().to_string()
        } else {
            c.into()
        });
    }
    s
}

fn allocated_cell(c: &ResourceCount, known: bool) -> String {
    if !known {
        "?".into()
    } else if c.overcommitted() && c.allocated > 0 {
        format!("{}!", c.allocated)
    } else {
        c.allocated.to_string()
    }
}

fn operator_cell(row: &NodeRow, color: bool) -> String {
    let s = &row.operator.summary;
    if !color {
        return s.clone();
    }
    match row.operator.state.as_str() {
        "healthy" => s.green().to_string(),
        "unhealthy" => s.red().to_string(),
        _ => s.clone(),
    }
}

/// The nodes table (`-o wide` adds MIG, SHARED, TAINTS, MATRIX).
pub fn nodes_table(report: &GpuReport, wide: bool, color: bool) -> String {
    let view = &report.nodes;
    let known = report.allocation_known;
    let mut headers = vec![
        "node",
        "status",
        "product",
        "gpus",
        "allocatable",
        "allocated",
        "free",
        "driver",
        "rke2/k3s",
        "containerd",
        "runtime",
        "operator",
    ];
    if wide {
        headers.extend(["mig", "mig-devices", "shared", "taints", "matrix"]);
    }
    let mut rows: Vec<Vec<String>> = view
        .nodes
        .iter()
        .map(|r| {
            let mut row = vec![
                r.name.clone(),
                status_cell(r, color),
                text(&r.product),
                opt(r.gpu.capacity),
                opt(r.gpu.allocatable),
                allocated_cell(&r.gpu, known),
                if known { opt(r.gpu.free) } else { "?".into() },
                text(&r.driver_version),
                if r.kubelet_version.is_empty() {
                    "-".into()
                } else {
                    r.kubelet_version.clone()
                },
                text(&r.containerd_version),
                r.runtime.summary.clone(),
                operator_cell(r, color),
            ];
            if wide {
                // The strategy, with the config and the MIG manager's state
                // where the node has them (`mixed all-balanced success`).
                row.push(match r.mig.as_ref().map(|m| m.summary()) {
                    Some(s) if !s.is_empty() => s,
                    _ => text(&r.mig_strategy),
                });
                row.push(mig_summary(r));
                row.push(shared_summary(r));
                row.push(if r.taints.is_empty() {
                    "<none>".into()
                } else {
                    r.taints.join(",")
                });
                row.push(text(&r.matrix_row));
            }
            row
        })
        .collect();
    if view.nodes.is_empty() {
        let mut s = String::from("No GPU nodes found");
        if view.non_gpu_nodes > 0 {
            s.push_str(&format!(
                " ({} nodes have no nvidia.com/gpu.present or NFD NVIDIA PCI label and no GPU resource)",
                view.non_gpu_nodes
            ));
        }
        s.push('\n');
        s.push_str(&footer(report));
        return s;
    }
    let t = &view.totals;
    let mut total = vec![
        format!("TOTAL ({} nodes)", t.nodes),
        format!("{} ready, {} cordoned", t.ready, t.cordoned),
        String::new(),
        opt(t.gpu.capacity),
        opt(t.gpu.allocatable),
        if known {
            t.gpu.allocated.to_string()
        } else {
            "?".into()
        },
        if known { opt(t.gpu.free) } else { "?".into() },
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
    ];
    if wide {
        total.push(String::new());
        let mig: Vec<String> = t
            .resources
            .iter()
            .filter(|(k, _)| k.starts_with(crate::labels::RESOURCE_MIG_PREFIX))
            .map(|(k, c)| {
                format!(
                    "{} {}/{}",
                    k.trim_start_matches(crate::labels::RESOURCE_MIG_PREFIX),
                    c.allocated,
                    c.allocatable.unwrap_or(0)
                )
            })
            .collect();
        total.push(if mig.is_empty() {
            "-".into()
        } else {
            mig.join(",")
        });
        total.push(match t.resources.get(crate::labels::RESOURCE_GPU_SHARED) {
            Some(c) => format!("{}/{}", c.allocated, c.allocatable.unwrap_or(0)),
            None => "-".into(),
        });
        total.push(String::new());
        total.push(String::new());
    }
    rows.push(total);
    let mut s = table(&headers, rows);
    if known && t.free_schedulable != t.gpu.free.unwrap_or(0) {
        s.push_str(&format!(
            "Free on Ready, uncordoned nodes: {} of {} nvidia.com/gpu.\n",
            t.free_schedulable,
            t.gpu.free.unwrap_or(0)
        ));
    }
    if !wide
        && view
            .nodes
            .iter()
            .any(|n| n.resources.keys().any(|k| k != crate::labels::RESOURCE_GPU))
    {
        s.push_str(
            "MIG devices and shared GPUs (nvidia.com/mig-*, nvidia.com/gpu.shared): see -o wide.\n",
        );
    }
    if view.non_gpu_nodes > 0 {
        s.push_str(&format!(
            "{} node(s) without GPUs not shown.\n",
            view.non_gpu_nodes
        ));
    }
    s.push_str(&footer(report));
    s
}

/// Problems and unreadable objects, after a table.
pub fn footer(report: &GpuReport) -> String {
    let mut s = String::new();
    if !report.problems.is_empty() {
        s.push_str("\nProblems:\n");
        for p in &report.problems {
            match &p.node {
                Some(n) => s.push_str(&format!("  {n}: {}\n", p.message)),
                None => s.push_str(&format!("  {}: {}\n", p.scope, p.message)),
            }
        }
    }
    if !report.allocation_known {
        s.push_str("\nALLOCATED and FREE are unknown (?): pods could not be listed.\n");
    }
    if !report.unreadable.is_empty() {
        s.push_str("\nCould not read (shown as unknown):\n");
        for u in &report.unreadable {
            s.push_str(&format!("  {u}\n"));
        }
    }
    s
}

/// The pods table.
pub fn pods_table(report: &GpuReport, wide: bool) -> String {
    let view: &PodsView = &report.pods;
    let all = view.namespace.is_none();
    let mut headers = Vec::new();
    if all {
        headers.push("namespace");
    }
    headers.extend(["name", "node", "resource", "count", "phase", "age"]);
    if wide {
        headers.push("counted");
    }
    let mut rows = Vec::new();
    for p in &view.pods {
        for (r, n) in &p.resources {
            let mut row = Vec::new();
            if all {
                row.push(p.namespace.clone());
            }
            let phase = if p.terminating {
                "Terminating".to_string()
            } else {
                p.phase.clone()
            };
            row.extend([
                p.name.clone(),
                p.node.clone().unwrap_or_else(|| "<none>".into()),
                r.clone(),
                n.to_string(),
                phase,
                p.age_seconds
                    .map(human_age)
                    .unwrap_or_else(|| "<unknown>".into()),
            ]);
            if wide {
                row.push(
                    if p.counted {
                        "yes"
                    } else if p.node.is_none() {
                        "no (unbound)"
                    } else {
                        "no (terminal)"
                    }
                    .to_string(),
                );
            }
            rows.push(row);
        }
    }
    let mut s = if rows.is_empty() {
        match &view.namespace {
            Some(ns) => format!("No GPU pods in namespace {ns}.\n"),
            None => "No GPU pods found.\n".to_string(),
        }
    } else {
        table(&headers, rows)
    };
    if view.other_namespaces > 0 {
        s.push_str(&format!(
            "{} GPU pod(s) in other namespaces; use -A to list them.\n",
            view.other_namespaces
        ));
    }
    if !report.allocation_known || !report.unreadable.is_empty() {
        s.push_str(&footer_unreadable(report));
    }
    s
}

fn footer_unreadable(report: &GpuReport) -> String {
    let mut s = String::new();
    if !report.unreadable.is_empty() {
        s.push_str("\nCould not read:\n");
        for u in &report.unreadable {
            s.push_str(&format!("  {u}\n"));
        }
    }
    s
}

fn yes_no(b: Option<bool>) -> String {
    match b {
        Some(true) => "true".into(),
        Some(false) => "false".into(),
        None => "-".into(),
    }
}

/// The operator view as text: a header, the DaemonSets, operands per node,
/// validator results and version warnings.
pub fn operator_text(report: &GpuReport, wide: bool, color: bool) -> String {
    let op = &report.operator;
    if !op.installed {
        return format!(
            "{}{}",
            operator_not_installed(op),
            footer_unreadable(report)
        );
    }
    let mut s = operator_header(op, color);
    s.push_str(&operand_daemonsets(op, wide));
    s.push_str(&operands_by_node(op, color));
    s.push_str(&validators(op, wide));
    s.push_str(&known_issues(op, color));
    s.push_str(&operator_problems(op));
    s.push_str(&footer_unreadable(report));
    s
}

/// The operator view when no GPU Operator is installed.
fn operator_not_installed(op: &OperatorView) -> String {
    let mut s = String::new();
    s.push_str("GPU Operator: not installed");
    match op.crd_present {
        Some(true) => s.push_str(" (the ClusterPolicy CRD exists)"),
        Some(false) => s.push_str(" (no ClusterPolicy CRD)"),
        None => s.push_str(" (the ClusterPolicy CRD could not be read)"),
    }
    s.push('\n');
    if let Some(cp) = &op.cluster_policy {
        s.push_str(&format!(
            "ClusterPolicy: {cp} ({})\n",
            text(&op.cluster_policy_state)
        ));
    }
    s.push_str("Install it with: helm rke2gpu install\n");
    s
}

/// Namespace, chart, release, operator image, ClusterPolicy state, settings.
fn operator_header(op: &OperatorView, color: bool) -> String {
    let mut s = String::new();
    let kv = |k: &str, v: String| format!("{k:<16}{v}\n");
    s.push_str(&kv("Namespace:", text(&op.namespace)));
    s.push_str(&kv(
        "Chart:",
        format!(
            "{}{}",
            text(&op.chart_version),
            op.chart_version_source
                .as_ref()
                .map(|v| format!(" ({v})"))
                .unwrap_or_default()
        ),
    ));
    s.push_str(&kv("Release:", text(&op.release)));
    s.push_str(&kv("App version:", text(&op.app_version)));
    s.push_str(&kv(
        "Operator:",
        format!(
            "{}{}",
            text(&op.operator_image),
            op.operator_ready
                .as_ref()
                .map(|r| format!(" ({r} ready)"))
                .unwrap_or_default()
        ),
    ));
    let state = text(&op.cluster_policy_state);
    let state = if state == "ready" {
        paint("ready", color)
    } else if color && state != "-" {
        state.red().to_string()
    } else {
        state
    };
    s.push_str(&kv(
        "ClusterPolicy:",
        format!(
            "{} {state}{}",
            text(&op.cluster_policy),
            op.cluster_policy_message
                .as_ref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ),
    ));
    s.push_str(&kv(
        "Settings:",
        format!(
            "cdi.enabled={} driver.enabled={} toolkit.version={}",
            yes_no(op.cdi_enabled),
            yes_no(op.driver_enabled),
            text(&op.toolkit_version)
        ),
    ));
    if let Some(e) = &op.release_error {
        s.push_str(&kv("Release error:", e.clone()));
    }
    s.push('\n');
    s
}

/// The operand DaemonSets table.
fn operand_daemonsets(op: &OperatorView, wide: bool) -> String {
    let mut s = String::new();
    let mut ds_headers = vec![
        "daemonset",
        "desired",
        "current",
        "ready",
        "up-to-date",
        "available",
    ];
    if wide {
        ds_headers.extend(["misscheduled", "node-selector"]);
    }
    let ds_rows: Vec<Vec<String>> = op
        .daemonsets
        .iter()
        .map(|d| {
            let mut r = vec![
                d.name.clone(),
                d.desired.to_string(),
                d.current.to_string(),
                d.ready.to_string(),
                d.updated.to_string(),
                d.available.to_string(),
            ];
            if wide {
                r.push(d.misscheduled.to_string());
                r.push(if d.node_selector.is_empty() {
                    "<none>".into()
                } else {
                    d.node_selector.join(",")
                });
            }
            r
        })
        .collect();
    if ds_rows.is_empty() {
        s.push_str("No operand DaemonSets.\n");
    } else {
        s.push_str(&table(&ds_headers, ds_rows));
    }
    s
}

/// Operands per node: one column per operand app.
fn operands_by_node(op: &OperatorView, color: bool) -> String {
    let mut s = String::new();
    let mut apps: Vec<&str> = op
        .daemonsets
        .iter()
        .map(|d| d.app.as_str())
        .chain(
            op.operands
                .values()
                .flat_map(|m| m.keys().map(String::as_str)),
        )
        .collect();
    apps.sort_unstable();
    apps.dedup();
    if !op.operands.is_empty() {
        let short: Vec<String> = apps
            .iter()
            .map(|a| {
                let a = a.strip_prefix("nvidia-").unwrap_or(a);
                a.strip_suffix("-daemonset").unwrap_or(a).to_string()
            })
            .collect();
        let mut headers: Vec<&str> = vec!["node"];
        headers.extend(short.iter().map(String::as_str));
        let rows: Vec<Vec<String>> = op
            .operands
            .iter()
            .map(|(node, by_app)| {
                let mut r = vec![node.clone()];
                for app in &apps {
                    r.push(match by_app.get(*app) {
                        None => "-".into(),
                        Some(p) => {
                            let state = match &p.problem {
                                Some(pr) => {
                                    pr.split(": ").nth(2).unwrap_or(pr.as_str()).to_string()
                                }
                                None if p.phase == "Running" && !p.ready => "NotReady".into(),
                                None => p.phase.clone(),
                            };
                            let state = if p.restarts > 0 {
                                format!("{state} ({}x)", p.restarts)
                            } else {
                                state
                            };
                            if color
                                && (p.problem.is_some() || !(p.ready || p.phase == "Succeeded"))
                            {
                                state.red().to_string()
                            } else {
                                state
                            }
                        }
                    });
                }
                r
            })
            .collect();
        s.push('\n');
        s.push_str(&table(&headers, rows));
    }
    s
}

/// The validator's steps per node.
fn validators(op: &OperatorView, wide: bool) -> String {
    let mut s = String::new();
    if !op.validators.is_empty() {
        s.push_str("\nValidator:\n");
        let rows: Vec<Vec<String>> = op
            .validators
            .iter()
            .map(|v| {
                let steps: Vec<String> = v
                    .steps
                    .iter()
                    .map(|st| {
                        let name = st.name.trim_end_matches("-validation");
                        match &st.detail {
                            Some(d) if wide || st.result == "failed" => {
                                format!("{name}={} ({d})", st.result)
                            }
                            _ => format!("{name}={}", st.result),
                        }
                    })
                    .collect();
                vec![
                    format!("  {}", v.node),
                    v.phase.clone(),
                    if steps.is_empty() {
                        "-".into()
                    } else {
                        steps.join(" ")
                    },
                ]
            })
            .collect();
        s.push_str(&table(&["  node", "phase", "validations"], rows));
    }
    s
}

/// The matrix's known issues of the installed chart.
fn known_issues(op: &OperatorView, color: bool) -> String {
    let mut s = String::new();
    if !op.warnings.is_empty() {
        s.push_str("\nKnown issues of this version:\n");
        for w in &op.warnings {
            let sev = if w.severity == "fail" { "FAIL" } else { "warn" };
            s.push_str(&format!(
                "  {} {}: {}\n       fix: {}\n",
                paint(sev, color),
                w.id,
                w.summary,
                w.fix
            ));
        }
    }
    s
}

/// The operator problems found.
fn operator_problems(op: &OperatorView) -> String {
    let mut s = String::new();
    if !op.problems.is_empty() {
        s.push_str("\nProblems:\n");
        for p in &op.problems {
            s.push_str(&format!("  {p}\n"));
        }
    }
    s
}
