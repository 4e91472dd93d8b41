//! The containerd config model: schema versions and the CRI plugin's tables
//! ([`model`]), the merge of imported drop-ins ([`merge`]), the analysis
//! of RKE2 user templates ([`template`]) and what such a template declares
//! again over its base, as containerd's parser sees it ([`redeclared`]). No I/O and no patch decisions:
//! `kubectl gpu patch-containerd` plans and applies in [`crate::patch`].

pub mod merge;
pub mod migrate;
pub mod model;
pub mod redeclared;
pub mod template;

pub use merge::effective_config;
pub use model::{ContainerdConfig, RUNC_V2, RuntimeEntry, cri_runtime_plugin};
pub use template::{TemplateAnalysis, TemplateKind};
