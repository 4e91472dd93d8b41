//! Which nvidia runtime binary the plan uses, and whether RKE2 detects it
//! by itself (k3s `pkg/agent/containerd/runtimes.go`, `exec.LookPath` over
//! [`crate::matrix::RUNTIME_SEARCH_PATH`]).

use super::*;

/// The order in which RKE2 finds runtime binaries (the matrix owns it).
pub(super) const SEARCH_ORDER: &[&str] = crate::matrix::RUNTIME_SEARCH_PATH;

/// The binary RKE2 looks for to render one of its nvidia runtimes itself
/// (k3s `runtimes.go`): `nvidia`, `nvidia-experimental`, `nvidia-cdi`.
pub fn standard_runtime_binary(runtime_name: &str) -> Option<&'static str> {
    match runtime_name {
        "nvidia" => Some("nvidia-container-runtime"),
        "nvidia-experimental" => Some("nvidia-container-runtime-experimental"),
        "nvidia-cdi" => Some("nvidia-container-runtime.cdi"),
        _ => None,
    }
}

pub(super) struct Binary {
    pub(super) path: String,
    pub(super) exists: bool,
    pub(super) reason: String,
}

pub(super) fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// The first existing binary with this file name, in RKE2's search order.
pub(super) fn find_binary(state: &NodeState, file: &str) -> Option<String> {
    SEARCH_ORDER
        .iter()
        .map(|d| format!("{d}/{file}"))
        .find(|p| state.runtime_binaries.contains(p))
        .or_else(|| {
            state
                .runtime_binaries
                .iter()
                .find(|p| basename(p) == file)
                .cloned()
        })
}

/// The binary RKE2 will find for a standard runtime name, if any: only in
/// the dirs RKE2 searches (the toolkit dir, /opt/kwasm/bin, the service's
/// PATH), never a binary elsewhere that merely has the right file name.
pub(super) fn rke2_detects(name: &str, state: &NodeState) -> Option<String> {
    let file = standard_runtime_binary(name)?;
    SEARCH_ORDER
        .iter()
        .map(|d| format!("{d}/{file}"))
        .find(|p| state.runtime_binaries.contains(p))
}

pub(super) fn resolve_binary(o: &PatchOptions, state: &NodeState) -> Result<Binary> {
    if let Some(p) = &o.binary_path {
        if !p.starts_with('/') || p.chars().any(char::is_control) {
            return Err(Error::InvalidOption {
                option: "binary path".into(),
                reason: format!("`{p}` must be an absolute path without control characters"),
            });
        }
        let exists = state.runtime_binaries.contains(p);
        return Ok(Binary {
            path: p.clone(),
            exists,
            reason: format!(
                "runtime binary {p} (given){}",
                if exists {
                    ""
                } else {
                    "; it does not exist on the node yet"
                }
            ),
        });
    }
    let file = standard_runtime_binary(&o.runtime_name).unwrap_or("nvidia-container-runtime");
    Ok(match find_binary(state, file) {
        Some(p) => Binary {
            reason: format!(
                "runtime binary {p} (found on the node; the toolkit dir {TOOLKIT_DIR} takes precedence, as in RKE2)"
            ),
            path: p,
            exists: true,
        },
        None => Binary {
            path: format!("{TOOLKIT_DIR}/{file}"),
            exists: false,
            reason: format!(
                "no {file} on the node yet: using the GPU Operator toolkit path {TOOLKIT_DIR}/{file}"
            ),
        },
    })
}
