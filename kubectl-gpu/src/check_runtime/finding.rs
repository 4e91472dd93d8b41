//! What a check-runtime rule returns: a [`Finding`] with its [`Status`],
//! the evidence it saw and the fix as a command or a one-line instruction,
//! and the [`Summary`] of a list of findings.

use serde::Serialize;

/// The outcome of one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Skipped,
    Warn,
    Fail,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Skipped => "skipped",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        }
    }
}

/// One finding: a rule applied to a node (or the cluster).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// Stable rule id, e.g. `runtimeclass-nvidia`.
    pub id: &'static str,
    /// The node it concerns; None for cluster-wide findings.
    pub node: Option<String>,
    pub status: Status,
    /// What was found, in one line.
    pub message: String,
    /// What was seen (label values, file lines, pod states).
    pub evidence: Vec<String>,
    /// The fix: a command or a one-line instruction. Empty when ok.
    pub fix: Option<String>,
    /// The known cause a text was classified as (`operand-texts`), e.g.
    /// `toolkit-config-template`; absent for other rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<&'static str>,
}

impl Finding {
    pub fn new(
        id: &'static str,
        node: Option<&str>,
        status: Status,
        message: impl Into<String>,
    ) -> Self {
        Finding {
            id,
            node: node.map(str::to_string),
            status,
            message: message.into(),
            evidence: Vec::new(),
            fix: None,
            cause: None,
        }
    }

    pub fn ok(id: &'static str, node: Option<&str>, message: impl Into<String>) -> Self {
        Self::new(id, node, Status::Ok, message)
    }

    pub fn warn(id: &'static str, node: Option<&str>, message: impl Into<String>) -> Self {
        Self::new(id, node, Status::Warn, message)
    }

    pub fn fail(id: &'static str, node: Option<&str>, message: impl Into<String>) -> Self {
        Self::new(id, node, Status::Fail, message)
    }

    pub fn skipped(id: &'static str, node: Option<&str>, reason: impl Into<String>) -> Self {
        Self::new(id, node, Status::Skipped, reason)
    }

    pub fn evidence(mut self, line: impl Into<String>) -> Self {
        self.evidence.push(line.into());
        self
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    pub fn cause(mut self, cause: &'static str) -> Self {
        self.cause = Some(cause);
        self
    }
}

/// Counts per status, for the summary line and the exit code.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub ok: usize,
    pub warn: usize,
    pub fail: usize,
    pub skipped: usize,
}

impl Summary {
    pub fn of(findings: &[Finding]) -> Self {
        let mut s = Summary::default();
        for f in findings {
            match f.status {
                Status::Ok => s.ok += 1,
                Status::Warn => s.warn += 1,
                Status::Fail => s.fail += 1,
                Status::Skipped => s.skipped += 1,
            }
        }
        s
    }
}
