//! `--rollback`: restore a file from its newest
//! `<file>.bak-kubectl-gpu-<stamp>` backup byte for byte, or remove a file
//! the tool created (one with no backup): pure per-file planning
//! ([`plan_rollback`]), then over a [`Host`] ([`plan_rollbacks`],
//! [`apply_rollbacks`]).

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::node::{BACKUP_INFIX, BackupStamp, Host, parse_backup_path};
use crate::patch::apply::{Applied, parent};
use crate::patch::gather::read_text;
use crate::patch::plan::{FILE_MODE, FileChange};
use crate::patch::{CREATED_INFIX, WRITTEN_BY};

/// What rolling one file back does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollback {
    /// The change to apply; `None` when the file is already as it should be.
    pub change: Option<FileChange>,
    /// The backup restored from, if any.
    pub restored_from: Option<String>,
    pub reason: String,
}

/// Plan the rollback of `path`, given its current content (`None`: absent)
/// and candidate backups (path or file name → content). Names that are not
/// backups of `path` are ignored. The newest backup (by its timestamp) is
/// restored exactly; with no backup the file is one we created, so it is
/// removed.
pub fn plan_rollback(
    path: &str,
    current: Option<&str>,
    backups: &BTreeMap<String, String>,
) -> Rollback {
    let newest: Option<(BackupStamp, &String, &String)> = backups
        .iter()
        .filter_map(|(name, content)| Some((parse_backup_path(path, name)?, name, content)))
        .max_by(|a, b| a.0.cmp(&b.0));
    match (newest, current) {
        (Some((stamp, name, content)), cur) => {
            let restored_from = Some(name.clone());
            if cur == Some(content.as_str()) {
                Rollback {
                    change: None,
                    restored_from,
                    reason: format!("{path} already equals its newest backup ({stamp})"),
                }
            } else {
                Rollback {
                    change: Some(FileChange {
                        path: path.to_owned(),
                        old: cur.map(str::to_owned),
                        new: Some(content.clone()),
                        mode: FILE_MODE,
                    }),
                    restored_from,
                    reason: format!("restore {path} from its newest backup {name} ({stamp})"),
                }
            }
        }
        (None, Some(cur)) => Rollback {
            change: Some(FileChange {
                path: path.to_owned(),
                old: Some(cur.to_owned()),
                new: None,
                mode: FILE_MODE,
            }),
            restored_from: None,
            reason: format!("{path} has no backup, so kubectl-gpu created it: remove it"),
        },
        (None, None) => Rollback {
            change: None,
            restored_from: None,
            reason: format!("{path} does not exist and has no backup: nothing to roll back"),
        },
    }
}

/// One file's rollback, with the created-marker to remove afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRollback {
    pub path: String,
    pub rollback: Rollback,
    /// Created-markers of this file (removed once the file is removed).
    pub markers: Vec<String>,
}

/// Plans the rollback of every file in `files`: a file with backups is
/// restored from its newest backup unless a newer created-marker says this
/// tool created it (then it is removed); a file with no backup is removed
/// only if this tool created it (created-marker, or the
/// `Written by kubectl-gpu` header); any other file is left alone.
pub async fn plan_rollbacks<H: Host>(host: &H, files: &[String]) -> Result<Vec<FileRollback>> {
    let mut out = Vec::new();
    for path in files {
        let dir = parent(path);
        let file = path.rsplit('/').next().unwrap_or(path);
        let names = host.list_dir(dir).await?.unwrap_or_default();
        let mut backups = BTreeMap::new();
        let mut markers = Vec::new();
        let mut newest_marker: Option<BackupStamp> = None;
        for n in &names {
            if parse_backup_path(path, n).is_some() {
                if let Some(t) = read_text(host, &format!("{dir}/{n}")).await? {
                    backups.insert(n.clone(), t);
                }
            } else if let Some(s) = n
                .strip_prefix(file)
                .and_then(|r| r.strip_prefix(CREATED_INFIX))
                .and_then(BackupStamp::parse)
            {
                markers.push(format!("{dir}/{n}"));
                if newest_marker.as_ref().is_none_or(|m| s > *m) {
                    newest_marker = Some(s);
                }
            }
        }
        let current = read_text(host, path).await?;
        let newest_backup = backups
            .keys()
            .filter_map(|n| parse_backup_path(path, n))
            .max();
        let created_last = match (&newest_marker, &newest_backup) {
            (Some(m), Some(b)) => m > b,
            (Some(_), None) => true,
            _ => false,
        };
        let ours = current
            .as_deref()
            .is_some_and(|t| t.lines().take(3).any(|l| l.contains(WRITTEN_BY)));
        let rollback = if created_last || (backups.is_empty() && ours) {
            plan_rollback(path, current.as_deref(), &BTreeMap::new())
        } else if backups.is_empty() {
            Rollback {
                change: None,
                restored_from: None,
                reason: match current {
                    Some(_) => format!(
                        "{path} has no kubectl-gpu backup and was not created by kubectl-gpu: left alone"
                    ),
                    None => {
                        format!("{path} does not exist and has no backup: nothing to roll back")
                    }
                },
            }
        } else {
            plan_rollback(path, current.as_deref(), &backups)
        };
        out.push(FileRollback {
            path: path.clone(),
            rollback,
            markers: if created_last || backups.is_empty() {
                markers
            } else {
                Vec::new()
            },
        });
    }
    Ok(out)
}

/// Applies planned rollbacks (through [`apply_changes`], so a restored file
/// replaced again gets a backup too), then removes the created-markers of
/// removed files.
pub async fn apply_rollbacks<H: Host>(
    host: &H,
    rollbacks: &[FileRollback],
    stamp: &BackupStamp,
) -> Result<Applied> {
    let changes: Vec<FileChange> = rollbacks
        .iter()
        .filter_map(|r| r.rollback.change.clone())
        .collect();
    // Restoring must not leave a new backup of our own content behind; apply
    // without backups: write/remove directly after the same checks.
    for c in &changes {
        if read_text(host, &c.path).await? != c.old {
            return Err(Error::ChangedSinceRead {
                path: c.path.clone(),
            });
        }
    }
    let mut applied = Applied::default();
    for c in &changes {
        match &c.new {
            Some(n) => {
                host.write_atomic(&c.path, n.as_bytes(), c.mode).await?;
                applied.written.push(c.path.clone());
            }
            None => {
                host.remove(&c.path).await?;
                applied.removed.push(c.path.clone());
            }
        }
    }
    for r in rollbacks {
        let removed = r.rollback.change.as_ref().is_some_and(|c| c.new.is_none());
        let absent = r.rollback.change.is_none() && read_text(host, &r.path).await?.is_none();
        if removed || absent {
            for m in &r.markers {
                host.remove(m).await?;
            }
        }
    }
    let _ = stamp;
    Ok(applied)
}

/// Whether `name` is one of this tool's backups or markers (for listings).
pub fn is_our_side_file(name: &str) -> bool {
    name.contains(BACKUP_INFIX) || name.contains(CREATED_INFIX)
}
