//! containerd configuration on RKE2 nodes: a model of the config, analysis of
//! user templates, and the pure planner behind `kubectl gpu patch-containerd`
//! (which file to write, with what, and why), its diff, the post-restart
//! confirmation and rollback. No I/O: callers read the node through
//! [`crate::host`] and apply [`Plan::changes`] themselves.
//!
//! The rules follow the reference's §5.4: never edit the generated
//! `config.toml`; prefer (a) a drop-in in the imported `config-v3.toml.d`
//! dir, then (b) RKE2's `default-runtime`, then (c) a `{{ template "base" . }}`
//! template that never redeclares tables the base renders.

pub mod confirm;
pub mod model;
pub mod plan;
pub mod rollback;
pub mod template;

pub use confirm::{Confirmation, Expectation, effective_config};
pub use model::{ContainerdConfig, ContainerdVersion, RUNC_V2, RuntimeEntry, cri_runtime_plugin};
pub use plan::{
    Capabilities, FileChange, Method, NodeState, PatchOptions, Plan, PlanInput, Restart, Rke2Paths,
    imported_drop_in_dir, plan, standard_runtime_binary,
};
pub use rollback::{Rollback, plan_rollback};
pub use template::{TemplateAnalysis, TemplateKind};
