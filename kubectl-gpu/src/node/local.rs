//! [`LocalRoot`]: a local directory standing for a node's host root
//! (offline mode, a node tree like `tests/node-trees/gpu-h200-0`, tests).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::node::{BackupStamp, CommandOutput, Host, backup_path};

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
    use crate::node::{BackupStamp, Host};
    use std::os::unix::fs::PermissionsExt;

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
