//! Applying a plan's file changes to a [`Host`]: checks first, a backup of
//! every replaced file, then atomic writes, undone on failure.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::node::{BackupStamp, Host};
use crate::patch::gather::read_text;
use crate::patch::plan::FileChange;
use crate::patch::{CREATED_INFIX, MAX_FILE_BYTES};

/// What [`apply_changes`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// Files written (created or replaced).
    pub written: Vec<String>,
    /// Files removed.
    pub removed: Vec<String>,
    /// Backups made, one per replaced or removed file.
    pub backups: Vec<String>,
}

pub(crate) fn parent(path: &str) -> &str {
    match path.rsplit_once('/') {
        Some(("", _)) => "/",
        Some((d, _)) => d,
        None => "/",
    }
}

/// `<path>.kubectl-gpu-created-<stamp>`.
pub fn created_marker(path: &str, stamp: &BackupStamp) -> String {
    format!("{path}{CREATED_INFIX}{stamp}")
}

/// Applies file changes: checks that every file still has the content the
/// plan saw and that every target dir is writable (before anything is
/// written), backs up every file it replaces or removes
/// (`<file>.bak-kubectl-gpu-<stamp>`), then writes each file by temp file
/// and atomic rename. A file it creates gets an empty created-marker beside
/// it. If a write fails, the files already written are restored (best
/// effort) and the error is returned.
pub async fn apply_changes<H: Host>(
    host: &H,
    changes: &[FileChange],
    stamp: &BackupStamp,
) -> Result<Applied> {
    for c in changes {
        let now = read_text(host, &c.path).await?;
        if now != c.old {
            return Err(Error::ChangedSinceRead {
                path: c.path.clone(),
            });
        }
        if let Some(n) = &c.new
            && n.len() > MAX_FILE_BYTES
        {
            return Err(Error::InvalidOption {
                option: "file size".into(),
                reason: format!(
                    "{} would be {} bytes, more than the {MAX_FILE_BYTES} this tool writes",
                    c.path,
                    n.len()
                ),
            });
        }
    }
    let mut dirs: Vec<&str> = changes.iter().map(|c| parent(&c.path)).collect();
    dirs.sort();
    dirs.dedup();
    for d in dirs {
        let probe = format!("{d}/.kubectl-gpu-write-test-{stamp}");
        if let Err(e) = host.write_atomic(&probe, b"", 0o600).await {
            return Err(Error::NotWritable {
                dir: d.to_owned(),
                reason: e.to_string(),
            });
        }
        let _ = host.remove(&probe).await;
    }
    let mut applied = Applied::default();
    for c in changes {
        if c.old.is_some() {
            applied.backups.push(host.backup(&c.path, stamp).await?);
        }
    }
    let mut done: Vec<&FileChange> = Vec::new();
    for c in changes {
        let r = match &c.new {
            Some(n) => {
                let r = host.write_atomic(&c.path, n.as_bytes(), c.mode).await;
                if r.is_ok() && c.old.is_none() {
                    host.write_atomic(&created_marker(&c.path, stamp), b"", 0o600)
                        .await
                } else {
                    r
                }
            }
            None => host.remove(&c.path).await.map(|_| ()),
        };
        if let Err(e) = r {
            for d in done.iter().rev() {
                let _ = match &d.old {
                    Some(o) => host.write_atomic(&d.path, o.as_bytes(), d.mode).await,
                    None => host.remove(&d.path).await.map(|_| ()),
                };
                if d.old.is_none() {
                    let _ = host.remove(&created_marker(&d.path, stamp)).await;
                }
            }
            return Err(e);
        }
        done.push(c);
        match c.new {
            Some(_) => applied.written.push(c.path.clone()),
            None => applied.removed.push(c.path.clone()),
        }
    }
    Ok(applied)
}
