//! Node access: the [`Host`] seam through which everything the tool does
//! to a node's files and commands goes, the backup naming ([`BackupStamp`],
//! [`backup_path`]), and the two implementations: [`local::LocalRoot`] (a
//! local directory standing for the host root: offline mode, tests) and
//! [`exec::AgentHost`] (a node-agent pod's exec); the node-agent pod itself
//! ([`agent`]: spec, lifecycle) and the read of many host files in one exec
//! ([`probe`]).
//!
//! Paths are absolute *host* paths (`/var/lib/rancher/rke2/...`), whatever
//! the implementation. Implementations must keep the contract of each
//! method, in particular the atomicity of [`Host::write_atomic`] and the
//! naming of [`Host::backup`].

pub mod agent;
pub mod exec;
pub mod local;
pub mod probe;

pub use local::LocalRoot;

use std::fmt;
use std::future::Future;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::Result;

/// Infix between a file name and its backup timestamp:
/// `config.toml.tmpl.bak-kubectl-gpu-20260829T101500Z`.
pub const BACKUP_INFIX: &str = ".bak-kubectl-gpu-";

/// What a command run on the host returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Exit status; `-1` when the process was killed by a signal.
    pub exit: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl CommandOutput {
    /// Whether the command exited with status 0.
    pub fn success(&self) -> bool {
        self.exit == 0
    }
}

/// A node's files and commands.
///
/// All paths are absolute host paths. Errors are I/O failures; "not there"
/// is not an error for the read-side methods (`None` / `false`).
pub trait Host: Sync {
    /// The file's bytes, or `None` if it does not exist.
    fn read(&self, path: &str) -> impl Future<Output = Result<Option<Vec<u8>>>> + Send;

    /// Entry names (not paths) of a directory, sorted; `None` if it does not exist.
    fn list_dir(&self, path: &str) -> impl Future<Output = Result<Option<Vec<String>>>> + Send;

    /// Whether the path exists (file, directory, or anything else).
    fn exists(&self, path: &str) -> impl Future<Output = Result<bool>> + Send;

    /// Replace `path` with `content` so that a crash at any point leaves either
    /// the old or the new content: write a temporary file in the same
    /// directory, set `mode`, fsync it, rename it over `path`, fsync the
    /// directory. Missing parent directories are created (mode 0755).
    fn write_atomic(
        &self,
        path: &str,
        content: &[u8],
        mode: u32,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Copy `path` next to itself as `<path>.bak-kubectl-gpu-<stamp>` (see
    /// [`backup_path`]), keeping its mode, atomically; returns the backup's
    /// host path. Fails if `path` does not exist, or if a backup with that
    /// name already exists with different content.
    fn backup(
        &self,
        path: &str,
        stamp: &BackupStamp,
    ) -> impl Future<Output = Result<String>> + Send;

    /// Remove a file; `false` if it did not exist.
    fn remove(&self, path: &str) -> impl Future<Output = Result<bool>> + Send;

    /// Run `argv` on the host (no shell) and collect its output.
    fn run(&self, argv: &[String]) -> impl Future<Output = Result<CommandOutput>> + Send;
}

/// A UTC timestamp in the backup-name format `YYYYmmddTHHMMSSZ`.
///
/// Fixed width, so the string order is the time order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackupStamp(String);

impl BackupStamp {
    /// The current time.
    pub fn now() -> Self {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Self::from_unix(secs)
    }

    /// From seconds since the Unix epoch.
    pub fn from_unix(secs: u64) -> Self {
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        Self(format!(
            "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
            rem / 3600,
            (rem % 3600) / 60,
            rem % 60
        ))
    }

    /// Parse `YYYYmmddTHHMMSSZ`; `None` if malformed.
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
            return None;
        }
        let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
        if !(digits(0..8) && digits(9..15)) {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> u32 {
            b[r].iter().fold(0, |acc, c| acc * 10 + u32::from(c - b'0'))
        };
        let (mo, d, h, mi, se) = (num(4..6), num(6..8), num(9..11), num(11..13), num(13..15));
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
            return None;
        }
        Some(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BackupStamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The backup path of `path` for `stamp`: `<path>.bak-kubectl-gpu-<stamp>`.
pub fn backup_path(path: &str, stamp: &BackupStamp) -> String {
    format!("{path}{BACKUP_INFIX}{stamp}")
}

/// If `candidate` (a path or a bare file name) is a backup of `path`, its stamp.
pub fn parse_backup_path(path: &str, candidate: &str) -> Option<BackupStamp> {
    let file = path.rsplit('/').next().unwrap_or(path);
    let cand_file = candidate.rsplit('/').next().unwrap_or(candidate);
    if candidate.contains('/') {
        // A full path must be in the same directory as `path`.
        let dir = |p: &str| p.rsplit_once('/').map(|(d, _)| d.to_owned());
        if dir(path) != dir(candidate) {
            return None;
        }
    }
    let rest = cand_file.strip_prefix(file)?.strip_prefix(BACKUP_INFIX)?;
    BackupStamp::parse(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_formats_known_instants() {
        assert_eq!(BackupStamp::from_unix(0).as_str(), "19700101T000000Z");
        // 2026-08-29T10:15:00Z = 1787998500 (date -u -d @1787998500).
        assert_eq!(
            BackupStamp::from_unix(1_787_998_500).as_str(),
            "20260829T101500Z"
        );
        // Leap day 2024-02-29T23:59:59Z = 1709251199.
        assert_eq!(
            BackupStamp::from_unix(1_709_251_199).as_str(),
            "20240229T235959Z"
        );
    }

    #[test]
    fn stamp_parse_roundtrip_and_rejects() {
        let s = BackupStamp::from_unix(1_787_998_500);
        assert_eq!(BackupStamp::parse(s.as_str()), Some(s));
        for bad in [
            "",
            "20260829T101500",
            "20261329T101500Z",
            "2026082xT101500Z",
        ] {
            assert_eq!(BackupStamp::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn backup_names() {
        let st = BackupStamp::from_unix(0);
        let p = "/etc/a/config.toml.tmpl";
        let b = backup_path(p, &st);
        assert_eq!(
            b,
            "/etc/a/config.toml.tmpl.bak-kubectl-gpu-19700101T000000Z"
        );
        assert_eq!(parse_backup_path(p, &b), Some(st.clone()));
        assert_eq!(
            parse_backup_path(p, "config.toml.tmpl.bak-kubectl-gpu-19700101T000000Z"),
            Some(st)
        );
        assert_eq!(
            parse_backup_path(
                p,
                "/other/config.toml.tmpl.bak-kubectl-gpu-19700101T000000Z"
            ),
            None
        );
        assert_eq!(
            parse_backup_path(p, "config.toml.bak-kubectl-gpu-19700101T000000Z"),
            None
        );
    }
}
