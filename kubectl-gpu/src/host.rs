//! The host-access seam: everything the tool does to a node's files and
//! commands goes through [`Host`].
//!
//! Paths are absolute *host* paths (`/var/lib/rancher/rke2/...`), whatever
//! the implementation: [`LocalRoot`] maps them under a local directory that
//! stands for the host root (offline mode, tests); a pod-exec implementation
//! maps them under the node-agent pod's host mount. Implementations must keep
//! the contract of each method, in particular the atomicity of
//! [`Host::write_atomic`] and the naming of [`Host::backup`].

use std::fmt;
use std::future::Future;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

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

/// A local directory standing for the host root (`/`).
///
/// Used by offline mode and tests. Host paths are joined under the root;
/// `..` components are refused. Symlinks inside the root are followed as the
/// OS does, so the root must not contain links pointing outside it if that
/// matters. Commands are refused unless enabled with
/// [`LocalRoot::with_commands`], in which case they run on *this* machine
/// (not chrooted).
#[derive(Debug, Clone)]
pub struct LocalRoot {
    root: PathBuf,
    commands: bool,
}

impl LocalRoot {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            commands: false,
        }
    }

    /// Allow [`Host::run`] to execute commands locally.
    pub fn with_commands(mut self, allow: bool) -> Self {
        self.commands = allow;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The local path standing for a host path.
    pub fn resolve(&self, host_path: &str) -> Result<PathBuf> {
        let bad = |reason: &str| Error::HostPath {
            path: host_path.to_owned(),
            reason: reason.to_owned(),
        };
        let p = Path::new(host_path);
        if !p.is_absolute() {
            return Err(bad("host paths must be absolute"));
        }
        let mut out = self.root.clone();
        for c in p.components() {
            match c {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(part) => out.push(part),
                Component::ParentDir => return Err(bad("`..` is not allowed")),
                Component::Prefix(_) => return Err(bad("unsupported path prefix")),
            }
        }
        Ok(out)
    }
}

fn io_err<'a>(op: &'static str, path: &'a str) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::HostIo {
        op,
        path: path.to_owned(),
        source,
    }
}

async fn blocking<T: Send + 'static>(
    op: &'static str,
    path: &str,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(io_err(op, path)),
        Err(join) => Err(Error::HostIo {
            op,
            path: path.to_owned(),
            source: std::io::Error::other(join.to_string()),
        }),
    }
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Temp file in the same dir, fsync, rename, fsync the dir.
fn write_atomic_blocking(target: &Path, content: &[u8], mode: u32) -> std::io::Result<()> {
    let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name");
    let dir = target.parent().ok_or_else(invalid)?;
    let name = target.file_name().ok_or_else(invalid)?.to_string_lossy();
    std::fs::create_dir_all(dir)?;
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!(
        ".{name}.kubectl-gpu-tmp-{}-{n}",
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have narrowed `mode`: set it exactly.
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(content)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, target)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn not_found_as_none<T>(r: std::io::Result<T>) -> std::io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl Host for LocalRoot {
    async fn read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        let p = self.resolve(path)?;
        blocking("read", path, move || not_found_as_none(std::fs::read(p))).await
    }

    async fn list_dir(&self, path: &str) -> Result<Option<Vec<String>>> {
        let p = self.resolve(path)?;
        blocking("list", path, move || {
            let Some(rd) = not_found_as_none(std::fs::read_dir(p))? else {
                return Ok(None);
            };
            let mut names = Vec::new();
            for e in rd {
                names.push(e?.file_name().to_string_lossy().into_owned());
            }
            names.sort();
            Ok(Some(names))
        })
        .await
    }

    async fn exists(&self, path: &str) -> Result<bool> {
        let p = self.resolve(path)?;
        blocking("stat", path, move || {
            Ok(not_found_as_none(std::fs::symlink_metadata(p))?.is_some())
        })
        .await
    }

    async fn write_atomic(&self, path: &str, content: &[u8], mode: u32) -> Result<()> {
        let p = self.resolve(path)?;
        let content = content.to_vec();
        blocking("write", path, move || {
            write_atomic_blocking(&p, &content, mode)
        })
        .await
    }

    async fn backup(&self, path: &str, stamp: &BackupStamp) -> Result<String> {
        let src = self.resolve(path)?;
        let dest_host = backup_path(path, stamp);
        let dest = self.resolve(&dest_host)?;
        blocking("back up", path, move || {
            let content = std::fs::read(&src)?;
            let mode = std::fs::metadata(&src)?.permissions().mode() & 0o7777;
            if let Some(existing) = not_found_as_none(std::fs::read(&dest))? {
                if existing == content {
                    return Ok(());
                }
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!("{} exists with other content", dest.display()),
                ));
            }
            write_atomic_blocking(&dest, &content, mode)
        })
        .await?;
        Ok(dest_host)
    }

    async fn remove(&self, path: &str) -> Result<bool> {
        let p = self.resolve(path)?;
        blocking("remove", path, move || {
            Ok(not_found_as_none(std::fs::remove_file(p))?.is_some())
        })
        .await
    }

    async fn run(&self, argv: &[String]) -> Result<CommandOutput> {
        let command = argv.join(" ");
        let Some((prog, args)) = argv.split_first() else {
            return Err(Error::HostCommand {
                command,
                reason: "empty command line".into(),
            });
        };
        if !self.commands {
            return Err(Error::HostCommand {
                command,
                reason: format!(
                    "commands are disabled for the local root {} (offline mode)",
                    self.root.display()
                ),
            });
        }
        let out = tokio::process::Command::new(prog)
            .args(args)
            .output()
            .await
            .map_err(|e| Error::HostCommand {
                command: command.clone(),
                reason: e.to_string(),
            })?;
        Ok(CommandOutput {
            exit: out.status.code().unwrap_or(-1),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
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

    #[test]
    fn resolve_refuses_relative_and_dotdot() {
        let r = LocalRoot::new("/tmp/x");
        assert!(matches!(r.resolve("etc/x"), Err(Error::HostPath { .. })));
        assert!(matches!(
            r.resolve("/etc/../x"),
            Err(Error::HostPath { .. })
        ));
        assert_eq!(
            r.resolve("/etc/./x").ok(),
            Some(PathBuf::from("/tmp/x/etc/x"))
        );
    }

    #[tokio::test]
    async fn local_root_roundtrip() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|e| Error::Other(e.to_string()))?;
        let h = LocalRoot::new(tmp.path());
        let p = "/var/lib/rancher/rke2/agent/etc/containerd/config-v3.toml.tmpl";
        assert_eq!(h.read(p).await?, None);
        assert!(!h.exists(p).await?);
        h.write_atomic(p, b"old\n", 0o600).await?;
        assert_eq!(h.read(p).await?.as_deref(), Some(&b"old\n"[..]));
        let mode = std::fs::metadata(h.resolve(p)?)
            .map_err(|e| Error::Other(e.to_string()))?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let st = BackupStamp::from_unix(1_787_998_500);
        let b = h.backup(p, &st).await?;
        assert_eq!(b, format!("{p}.bak-kubectl-gpu-20260829T101500Z"));
        // Same content again: fine and idempotent.
        assert_eq!(h.backup(p, &st).await?, b);
        h.write_atomic(p, b"new\n", 0o644).await?;
        assert!(
            h.backup(p, &st).await.is_err(),
            "other content under the same name"
        );
        assert_eq!(h.read(&b).await?.as_deref(), Some(&b"old\n"[..]));
        let names = h
            .list_dir("/var/lib/rancher/rke2/agent/etc/containerd")
            .await?
            .unwrap_or_default();
        assert_eq!(
            names,
            vec![
                "config-v3.toml.tmpl".to_owned(),
                "config-v3.toml.tmpl.bak-kubectl-gpu-20260829T101500Z".to_owned()
            ]
        );
        assert!(h.remove(&b).await?);
        assert!(!h.remove(&b).await?);
        assert!(matches!(
            h.run(&["true".to_owned()]).await,
            Err(Error::HostCommand { .. })
        ));
        let h = h.with_commands(true);
        let out = h
            .run(&["sh".into(), "-c".into(), "echo hi; exit 3".into()])
            .await?;
        assert_eq!((out.exit, out.stdout.as_slice()), (3, &b"hi\n"[..]));
        Ok(())
    }
}
