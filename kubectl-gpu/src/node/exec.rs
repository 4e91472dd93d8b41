//! [`Host`] over a node-agent pod's exec ([`AgentHost`]).
//!
//! Host paths map to `/host<path>` in the pod. Reads are byte-exact
//! (`base64` of the file, decoded here) and can be batched with
//! [`AgentHost::prefetch`] (one exec for everything [`crate::patch::gather`]
//! reads); writes embed the content, base64-encoded, in the exec command
//! line (configs are small; [`crate::patch::MAX_FILE_BYTES`]) and go
//! through a temp file in the same dir, `sync` and `mv`. Commands run on
//! the host via [`crate::patch::host_exec_script`].

use std::sync::Mutex;

use base64::Engine;

use crate::error::{Error, Result};
use crate::node::agent::Agents;
use crate::node::probe::{ProbeRequest, ProbeResult};
use crate::node::{BackupStamp, CommandOutput, Host, backup_path};
use crate::patch::{self, host_exec_script};
use crate::shell::quote;

/// A node's host through its node-agent pod.
pub struct AgentHost<'a> {
    agents: &'a Agents,
    node: String,
    pod: String,
    cache: Mutex<Option<ProbeResult>>,
}

fn check_path(path: &str) -> Result<String> {
    let bad = |reason: &str| Error::HostPath {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    if !path.starts_with('/') {
        return Err(bad("host paths must be absolute"));
    }
    if path.split('/').any(|c| c == "..") {
        return Err(bad("`..` is not allowed"));
    }
    if path.chars().any(|c| c.is_control()) {
        return Err(bad("control characters are not allowed"));
    }
    Ok(quote(&format!("/host{path}")))
}

impl<'a> AgentHost<'a> {
    pub fn new(agents: &'a Agents, node: &str, pod: &str) -> Self {
        Self {
            agents,
            node: node.to_owned(),
            pod: pod.to_owned(),
            cache: Mutex::new(None),
        }
    }

    pub fn pod(&self) -> &str {
        &self.pod
    }

    fn err(&self, what: &str, reason: impl Into<String>) -> Error {
        Error::AgentExec {
            node: self.node.clone(),
            pod: self.pod.clone(),
            what: what.to_owned(),
            reason: reason.into(),
        }
    }

    async fn sh(&self, what: &str, script: &str) -> Result<(i32, String, String)> {
        self.agents
            .exec(&self.pod, &["sh", "-c", script])
            .await
            .map_err(|e| self.err(what, e.to_string()))
    }

    fn invalidate(&self) {
        if let Ok(mut c) = self.cache.lock() {
            *c = None;
        }
    }

    fn cached<T>(&self, f: impl FnOnce(&ProbeResult) -> Option<T>) -> Option<T> {
        self.cache.lock().ok()?.as_ref().and_then(f)
    }

    /// Reads everything in `req` in one exec (and the files in its dirs in
    /// a second), so that later reads of those paths are served from memory
    /// until the next write.
    pub async fn prefetch(&self, req: &ProbeRequest) -> Result<()> {
        let mut first = self.agents.probe(&self.pod, req).await?;
        let mut second = ProbeRequest::default();
        for d in &req.dirs {
            for name in first.dir(d).unwrap_or_default() {
                if !patch::is_our_side_file(name) {
                    second.files.push(format!("{d}/{name}"));
                }
            }
        }
        if !second.files.is_empty() {
            first.merge(self.agents.probe(&self.pod, &second).await?);
        }
        if let Ok(mut c) = self.cache.lock() {
            *c = Some(first);
        }
        Ok(())
    }
}

impl Host for AgentHost<'_> {
    async fn read(&self, path: &str) -> Result<Option<Vec<u8>>> {
        if let Some(hit) = self.cached(|c| c.files.get(path).cloned()) {
            return Ok(hit.map(String::into_bytes));
        }
        let p = check_path(path)?;
        let script = format!(
            "if [ -f {p} ]; then base64 {p}; elif [ -e {p} ]; then echo 'not a regular file' >&2; exit 4; else exit 3; fi"
        );
        let (code, out, err) = self.sh(&format!("read {path}"), &script).await?;
        match code {
            0 => {
                let compact: String = out.split_whitespace().collect();
                base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .map(Some)
                    .map_err(|e| self.err(&format!("read {path}"), format!("bad base64: {e}")))
            }
            3 => Ok(None),
            _ => Err(self.err(&format!("read {path}"), err.trim())),
        }
    }

    async fn list_dir(&self, path: &str) -> Result<Option<Vec<String>>> {
        if let Some(hit) = self.cached(|c| c.dirs.get(path).cloned()) {
            return Ok(hit);
        }
        let p = check_path(path)?;
        let script = format!("if [ -d {p} ]; then ls -1a {p}; else exit 3; fi");
        let (code, out, err) = self.sh(&format!("list {path}"), &script).await?;
        match code {
            0 => {
                let mut names: Vec<String> = out
                    .lines()
                    .filter(|l| !l.is_empty() && *l != "." && *l != "..")
                    .map(str::to_owned)
                    .collect();
                names.sort();
                Ok(Some(names))
            }
            3 => Ok(None),
            _ => Err(self.err(&format!("list {path}"), err.trim())),
        }
    }

    async fn exists(&self, path: &str) -> Result<bool> {
        if let Some(hit) = self.cached(|c| {
            c.exists
                .get(path)
                .copied()
                .or_else(|| c.files.get(path).map(|f| f.is_some()))
                .filter(|e| *e)
                .or_else(|| c.exists.get(path).copied())
        }) {
            return Ok(hit);
        }
        let p = check_path(path)?;
        let (code, _, err) = self
            .sh(
                &format!("stat {path}"),
                &format!("if [ -e {p} ] || [ -L {p} ]; then exit 0; else exit 3; fi"),
            )
            .await?;
        match code {
            0 => Ok(true),
            3 => Ok(false),
            _ => Err(self.err(&format!("stat {path}"), err.trim())),
        }
    }

    async fn write_atomic(&self, path: &str, content: &[u8], mode: u32) -> Result<()> {
        self.invalidate();
        if content.len() > patch::MAX_FILE_BYTES {
            return Err(self.err(
                &format!("write {path}"),
                format!(
                    "{} bytes is more than the {} this tool writes through exec",
                    content.len(),
                    patch::MAX_FILE_BYTES
                ),
            ));
        }
        let p = check_path(path)?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(content);
        let script = format!(
            "set -e\nP={p}\nD=$(dirname \"$P\")\nT=\"$D/.$(basename \"$P\").kubectl-gpu-tmp-$$\"\ntrap 'rm -f \"$T\"' EXIT\nmkdir -p \"$D\"\nprintf '%s' '{b64}' | base64 -d > \"$T\"\nchmod {mode:o} \"$T\"\nsync\nmv -f \"$T\" \"$P\"\nsync\n"
        );
        let (code, _, err) = self.sh(&format!("write {path}"), &script).await?;
        if code == 0 {
            Ok(())
        } else {
            Err(Error::HostIo {
                op: "write",
                path: path.to_owned(),
                source: std::io::Error::other(format!(
                    "{} (exit {code}, in node-agent pod {} on {})",
                    err.trim(),
                    self.pod,
                    self.node
                )),
            })
        }
    }

    async fn backup(&self, path: &str, stamp: &BackupStamp) -> Result<String> {
        self.invalidate();
        let dest = backup_path(path, stamp);
        let p = check_path(path)?;
        let b = check_path(&dest)?;
        let script = format!(
            "P={p}; B={b}\n[ -f \"$P\" ] || {{ echo \"no such file\" >&2; exit 3; }}\nif [ -e \"$B\" ]; then cmp -s \"$P\" \"$B\" && exit 0; echo \"$B exists with other content\" >&2; exit 4; fi\nT=\"$B.kubectl-gpu-tmp-$$\"\ncp -p \"$P\" \"$T\" && sync && mv -f \"$T\" \"$B\" && sync\n"
        );
        let (code, _, err) = self.sh(&format!("back up {path}"), &script).await?;
        if code == 0 {
            Ok(dest)
        } else {
            Err(Error::HostIo {
                op: "back up",
                path: path.to_owned(),
                source: std::io::Error::other(format!("{} (exit {code})", err.trim())),
            })
        }
    }

    async fn remove(&self, path: &str) -> Result<bool> {
        self.invalidate();
        let p = check_path(path)?;
        let script =
            format!("if [ -e {p} ] || [ -L {p} ]; then rm -f {p} && sync && echo removed; fi");
        let (code, out, err) = self.sh(&format!("remove {path}"), &script).await?;
        if code == 0 {
            Ok(out.contains("removed"))
        } else {
            Err(Error::HostIo {
                op: "remove",
                path: path.to_owned(),
                source: std::io::Error::other(format!("{} (exit {code})", err.trim())),
            })
        }
    }

    async fn run(&self, argv: &[String]) -> Result<CommandOutput> {
        let mut full: Vec<&str> = vec!["sh", "-c", host_exec_script(), "sh"];
        full.extend(argv.iter().map(String::as_str));
        let (code, out, err) =
            self.agents
                .exec(&self.pod, &full)
                .await
                .map_err(|e| Error::HostCommand {
                    command: argv.join(" "),
                    reason: e.to_string(),
                })?;
        Ok(CommandOutput {
            exit: code,
            stdout: out.into_bytes(),
            stderr: err.into_bytes(),
        })
    }
}
