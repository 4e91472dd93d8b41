//! The report of `patch-containerd` ([`PatchReport`], per node
//! [`NodeReport`]) and its table rendering (details and summary); `-o
//! json|yaml` serializes it.

use serde::Serialize;

use crate::error::{EXIT_FAILED, Error};
use crate::patch::plan::{FileChange, Plan};
use crate::render;

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileReport {
    pub path: String,
    /// `create`, `modify` or `remove`.
    pub action: &'static str,
    /// Unified diff.
    pub diff: String,
}

impl FileReport {
    pub fn of(c: &FileChange) -> Self {
        Self {
            path: c.path.clone(),
            action: match (&c.old, &c.new) {
                (None, _) => "create",
                (Some(_), Some(_)) => "modify",
                (Some(_), None) => "remove",
            },
            diff: c.diff(),
        }
    }
}

/// Outcome of one node (or one offline config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Nothing to change and nothing to restart.
    Unchanged,
    /// Dry run: these changes would be made.
    Planned,
    /// Written (and restarted) and confirmed in the re-read config.
    Confirmed,
    /// Written and restarted, but the re-read config does not show it.
    Unconfirmed,
    /// Rolled back (and restarted).
    RolledBack,
    /// Offline: files written to --out-dir.
    Written,
    /// `--for-rke2 --apply`: files staged (read back as written) for the
    /// upgrade; they take effect at its first start.
    Staged,
    /// Refused (bad input, unsupported method) or failed; nothing changed
    /// unless `files` says otherwise.
    Failed,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Unchanged => "unchanged",
            Outcome::Planned => "planned",
            Outcome::Confirmed => "confirmed",
            Outcome::Unconfirmed => "unconfirmed",
            Outcome::RolledBack => "rolled-back",
            Outcome::Written => "written",
            Outcome::Staged => "staged",
            Outcome::Failed => "failed",
        }
    }
    /// Whether this outcome makes the command exit 1.
    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Unconfirmed | Outcome::Failed)
    }
}

/// The restart that was asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RestartReport {
    pub unit: String,
    /// How it ran on the host (`nsenter`, `chroot`), if known.
    pub mode: Option<String>,
    /// What the restart script said (`scheduled: ...` / `queued: ...`).
    pub detail: String,
    /// Containerd PIDs before and after, when they could be seen.
    pub containerd_before: Option<String>,
    pub containerd_after: Option<String>,
    /// The node was seen Ready after the restart.
    pub node_ready: Option<bool>,
}

/// Per-node report (table and -o json|yaml).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeReport {
    pub node: String,
    pub outcome: Outcome,
    pub method: Option<String>,
    /// Why this method, one reason a line.
    pub reasons: Vec<String>,
    pub files: Vec<FileReport>,
    pub backups: Vec<String>,
    /// `rke2-agent`, ... when a restart is (or was) needed.
    pub restart_unit: Option<String>,
    pub restart: Option<RestartReport>,
    pub confirmed: Option<bool>,
    pub evidence: Vec<String>,
    pub problems: Vec<String>,
    pub error: Option<String>,
}

impl NodeReport {
    pub fn new(node: &str) -> Self {
        Self {
            node: node.to_owned(),
            outcome: Outcome::Unchanged,
            method: None,
            reasons: Vec::new(),
            files: Vec::new(),
            backups: Vec::new(),
            restart_unit: None,
            restart: None,
            confirmed: None,
            evidence: Vec::new(),
            problems: Vec::new(),
            error: None,
        }
    }

    /// A failed node with the error's message.
    pub fn failed(node: &str, err: &Error) -> Self {
        let mut r = Self::new(node);
        r.outcome = Outcome::Failed;
        r.error = Some(err.to_string());
        r
    }

    /// Fill method, reasons, files and restart from a plan.
    pub fn with_plan(mut self, plan: &Plan, unit: &str) -> Self {
        self.method = plan.method.map(|m| m.to_string());
        self.reasons = plan.reasons.clone();
        self.files = plan.changes.iter().map(FileReport::of).collect();
        self.restart_unit = plan.restart.map(|_| unit.to_owned());
        self.outcome = if plan.changes.is_empty() && plan.restart.is_none() {
            Outcome::Unchanged
        } else {
            Outcome::Planned
        };
        self
    }

    /// The whole diff of this node.
    pub fn diff(&self) -> String {
        self.files.iter().map(|f| f.diff.as_str()).collect()
    }
}

/// What the command returns, in either mode; `-o json|yaml` serializes the
/// mode's own shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum PatchReport {
    Cluster(ClusterReport),
    Offline(Box<OfflineReport>),
}

/// How much of a cluster report the table shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shown {
    /// Details and summary.
    #[default]
    Full,
    /// The summary only: the details were shown before the interactive yes.
    SummaryAfterYes,
    /// The interactive question was answered no.
    Declined,
}

/// Cluster mode's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterReport {
    pub server: Option<String>,
    pub dry_run: bool,
    pub rollback: bool,
    pub nodes: Vec<NodeReport>,
    #[serde(skip)]
    pub shown: Shown,
}

/// One resulting file of an offline plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfflineFile {
    pub path: String,
    pub content: Option<String>,
}

/// Offline mode's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfflineReport {
    pub report: NodeReport,
    /// The resulting files (host path and new content; `null`: removed).
    pub files: Vec<OfflineFile>,
    /// The generated config as RKE2 should render it after a restart (approximation).
    pub rendered_config: Option<String>,
    /// Files written under --out-dir.
    pub written: Vec<String>,
}

impl PatchReport {
    /// The node reports.
    pub fn nodes(&self) -> &[NodeReport] {
        match self {
            PatchReport::Cluster(c) => &c.nodes,
            PatchReport::Offline(o) => std::slice::from_ref(&o.report),
        }
    }

    /// 1 when a node failed, was refused or is unconfirmed, else 0.
    pub fn exit_code(&self) -> u8 {
        if self.nodes().iter().any(|r| r.outcome.is_failure()) {
            EXIT_FAILED
        } else {
            0
        }
    }

    /// The table output.
    pub fn render_table(&self, color: bool) -> String {
        match self {
            PatchReport::Cluster(c) => match c.shown {
                Shown::Full => {
                    let mut s = render_details(&c.nodes, color);
                    s.push_str(&render_summary(&c.nodes, color, !c.dry_run, c.rollback));
                    s
                }
                Shown::SummaryAfterYes => render_summary(&c.nodes, color, true, c.rollback),
                Shown::Declined => "Nothing was written.\n".into(),
            },
            PatchReport::Offline(o) => render_offline(o, color),
        }
    }
}

/// Per node: outcome, method, reasons, error, pending restart and diff.
pub fn render_details(reports: &[NodeReport], color: bool) -> String {
    let mut s = String::new();
    for r in reports {
        s.push_str(&format!(
            "NODE {}: {}{}\n",
            r.node,
            render::paint(r.outcome.label(), color),
            r.method
                .as_deref()
                .map(|m| format!(", method {m}"))
                .unwrap_or_default()
        ));
        for why in &r.reasons {
            s.push_str(&format!("  why:   {why}\n"));
        }
        if let Some(e) = &r.error {
            s.push_str(&format!("  error: {e}\n"));
        }
        if r.outcome == Outcome::Unchanged && r.error.is_none() {
            s.push_str("  nothing to change\n");
        }
        if let Some(u) = &r.restart_unit
            && r.restart.is_none()
        {
            s.push_str(&format!(
                "  restart: systemctl restart {u} (after --apply)\n"
            ));
        }
        let diff = r.diff();
        if !diff.is_empty() {
            s.push('\n');
            s.push_str(&diff);
            if !diff.ends_with('\n') {
                s.push('\n');
            }
        }
        s.push('\n');
    }
    s
}

/// The summary table, the problems and what to do next.
pub fn render_summary(
    reports: &[NodeReport],
    color: bool,
    applied: bool,
    rollback: bool,
) -> String {
    let rows = reports.iter().map(|r| {
        vec![
            r.node.clone(),
            r.method.clone().unwrap_or_else(|| "-".into()),
            render::paint(r.outcome.label(), color),
            if r.files.is_empty() {
                "-".into()
            } else {
                r.files
                    .iter()
                    .map(|f| format!("{} {}", f.action, f.path))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            if r.backups.is_empty() {
                "-".into()
            } else {
                r.backups.join(", ")
            },
            match (&r.restart, &r.restart_unit) {
                (Some(x), _) => format!(
                    "{}{}",
                    x.unit,
                    match x.node_ready {
                        Some(true) => " (Ready)",
                        Some(false) => " (not Ready)",
                        None => "",
                    }
                ),
                (None, Some(u)) if !applied => format!("{u} (pending)"),
                _ => "-".into(),
            },
            match r.confirmed {
                Some(true) => "yes".into(),
                Some(false) => "NO".into(),
                None => "-".into(),
            },
        ]
    });
    let mut s = render::table(
        &[
            "node",
            "method",
            "result",
            "files",
            "backups",
            "restart",
            "confirmed",
        ],
        rows,
    );
    for r in reports {
        for p in &r.problems {
            s.push_str(&format!("{}: {p}\n", r.node));
        }
    }
    let pending = reports.iter().any(|r| r.outcome == Outcome::Planned);
    if !applied && pending {
        s.push_str(&format!(
            "\nDry run: nothing was written. Run again with --apply to {}.\n",
            if rollback {
                "restore these files and restart"
            } else {
                "write these files (each replaced file is backed up next to it), restart and confirm"
            }
        ));
    } else if reports.iter().all(|r| r.outcome == Outcome::Unchanged) {
        s.push_str("\nNothing to do: every node already has the runtime as intended.\n");
    }
    s
}

/// Offline: the details, then each resulting file or what was written.
fn render_offline(o: &OfflineReport, color: bool) -> String {
    let mut s = render_details(std::slice::from_ref(&o.report), color);
    if o.written.is_empty() {
        for f in &o.files {
            match &f.content {
                Some(c) => s.push_str(&format!("# ---- resulting {} ----\n{c}\n", f.path)),
                None => s.push_str(&format!("# ---- {} is removed ----\n", f.path)),
            }
        }
    } else {
        s.push_str("Wrote:\n");
        for w in &o.written {
            s.push_str(&format!("  {w}\n"));
        }
    }
    s
}
