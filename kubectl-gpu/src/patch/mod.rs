//! `kubectl gpu patch-containerd`: add the NVIDIA runtime to a node's
//! containerd the way RKE2 supports, generic over the node seam
//! ([`crate::node::Host`]):
//!
//! [`gather`] (a [`plan::NodeState`] from any host) → [`plan`] (the pure
//! planner, one module per method) → [`apply`] (backups, atomic writes) →
//! [`restart`] and [`confirm`] (cluster mode) → [`rollback`].
//!
//! Two entry points return the same [`report::PatchReport`], which
//! [`report`] renders: [`cluster::run`] (nodes through node-agent pods) and
//! [`offline::run`] (a node's filesystem tree, or config files staged into
//! one, read through [`crate::node::LocalRoot`] by the same [`gather`]).

pub mod apply;
pub mod cluster;
pub mod confirm;
pub mod gather;
pub mod offline;
pub mod plan;
pub mod preview;
pub mod report;
pub mod restart;
pub mod rollback;
pub mod target;

pub use apply::{Applied, apply_changes, created_marker};
pub use cluster::{ClusterRequest, run};
pub use gather::{gather, gather_paths};
pub use preview::{drop_ins_after, flatten, preview_generated};
pub use report::{FileReport, NodeReport, Outcome, PatchReport, RestartReport};
pub use restart::{host_exec_script, restart_script};
pub use rollback::{FileRollback, apply_rollbacks, is_our_side_file, plan_rollbacks};
pub use target::{PatchTarget, capabilities};

use crate::matrix;
use plan::{RKE2_CONFIG, RKE2_CONFIG_D};

/// The drop-in file name the planner writes (in the imported dir).
pub const DROP_IN_NAME: &str = plan::DROP_IN_NAME;
/// Marker in every file this tool writes from scratch (drop-in, RKE2 config).
pub const WRITTEN_BY: &str = "Written by kubectl-gpu";
/// Infix of the empty marker left next to a file this tool created
/// (`<file>.kubectl-gpu-created-<stamp>`), so that `--rollback` removes that
/// file (it has no backup) and never a user's file.
pub const CREATED_INFIX: &str = ".kubectl-gpu-created-";
/// Largest file content written through a node-agent pod (configs are small).
pub const MAX_FILE_BYTES: usize = 64 * 1024;

/// Generic containerd's own config and drop-in (the toolkit's defaults).
pub const GENERIC_CONFIG: &str = plan::GENERIC_CONFIG;

/// Nvidia runtime binary names RKE2 detects (k3s `pkg/agent/containerd/runtimes.go`).
pub const RUNTIME_BINARIES: &[&str] = &[
    "nvidia-container-runtime",
    "nvidia-container-runtime-experimental",
    "nvidia-container-runtime.cdi",
];
/// Where RKE2 looks for them, in order (see [`matrix::RUNTIME_SEARCH_PATH`]).
pub const RUNTIME_DIRS: &[&str] = matrix::RUNTIME_SEARCH_PATH;

/// The planner's RKE2 config paths (for documentation and messages).
pub const RKE2_CONFIG_FILES: (&str, &str) = (RKE2_CONFIG, RKE2_CONFIG_D);

use crate::error::Result;
use crate::node::Host;
use plan::{NodeState, PatchOptions, Plan};

/// Gathers a node's state over any host and plans it: the one code path
/// cluster mode (over [`crate::node::exec::AgentHost`]) and offline mode
/// (over [`crate::node::LocalRoot`]) share.
pub async fn plan_on<H: Host>(
    host: &H,
    target: &PatchTarget,
    options: &PatchOptions,
) -> Result<(NodeState, Plan)> {
    let state = gather(host, target, options.binary_path.as_deref()).await?;
    let input = target.plan_input(state, options.clone());
    let plan = target.plan(&input)?;
    Ok((input.state, plan))
}
