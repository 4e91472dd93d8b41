//! Rollback planning: restore a file from its newest
//! `<file>.bak-kubectl-gpu-<stamp>` backup byte for byte, or remove a file
//! the tool created (one with no backup).

use std::collections::BTreeMap;

use crate::containerd::plan::{FILE_MODE, FileChange};
use crate::host::{BackupStamp, parse_backup_path};

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
