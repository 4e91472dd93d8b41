//! What `kubectl gpu verify` was asked to do: [`VerifyOptions`] and the
//! `--runtime-class` choice, with their defaults.

use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

use super::spec::{DEFAULT_RESOURCE_NAME, Workload};

/// Default `--timeout`.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 180;
/// Default `--parallel`.
pub const DEFAULT_PARALLEL: usize = 16;
/// `activeDeadlineSeconds` = timeout + this, so a killed client never leaves a pod running long.
pub const DEADLINE_MARGIN_SECONDS: u64 = 30;

/// `--runtime-class auto|none|NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeClassChoice {
    /// Decide per node from the operator version, CDI and containerd.
    #[default]
    Auto,
    /// Never set `runtimeClassName`.
    None,
    /// Always set this `runtimeClassName`.
    Named(String),
}

impl FromStr for RuntimeClassChoice {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        match s {
            "" => Err("empty RuntimeClass name (use auto, none or a name)".into()),
            "auto" => Ok(RuntimeClassChoice::Auto),
            "none" => Ok(RuntimeClassChoice::None),
            name if is_dns_subdomain(name) => Ok(RuntimeClassChoice::Named(name.to_string())),
            name => Err(format!("{name:?} is not a valid RuntimeClass name")),
        }
    }
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// Everything `verify` was asked to do.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// `--node` (repeatable); empty: every GPU node (or the selector's).
    pub nodes: Vec<String>,
    /// `-l`: a label selector on nodes.
    pub selector: Option<String>,
    /// `-n`: an existing namespace; `None`: create `kubectl-gpu-verify-<run>`.
    pub namespace: Option<String>,
    pub gpus: u32,
    pub resource: String,
    pub runtime_class: RuntimeClassChoice,
    pub image: Option<String>,
    pub workload: Workload,
    pub timeout: Duration,
    pub parallel: usize,
    pub keep: bool,
    pub tolerate_all_taints: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            nodes: Vec::new(),
            selector: None,
            namespace: None,
            gpus: 1,
            resource: DEFAULT_RESOURCE_NAME.to_string(),
            runtime_class: RuntimeClassChoice::Auto,
            image: None,
            workload: Workload::Smi,
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECONDS),
            parallel: DEFAULT_PARALLEL,
            keep: false,
            tolerate_all_taints: false,
        }
    }
}
