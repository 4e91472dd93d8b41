//! `rke2gpu`: the domain library behind `kubectl gpu` and `helm rke2gpu`.
//!
//! Data flows one way: command-line options → a Kubernetes client → one
//! [`snapshot`] of the cluster (the only read I/O) → pure analysis
//! ([`facts`], [`matrix`], [`check_runtime`], [`containerd`], [`verify`], [`report`],
//! [`helm`]) → findings, plans and reports → [`render`]. Writes happen at the
//! edge, through [`node`] (the `Host` seam over node files, node-agent pods)
//! and [`objects`] (what we create in the cluster). `ARCHITECTURE.md` has the
//! module map.

pub mod build_info;
pub mod check_runtime;
pub mod cleanup;
pub mod cli;
pub mod client;
pub mod containerd;
pub mod error;
pub mod facts;
pub mod helm;
pub mod labels;
pub mod matrix;
pub mod mig;
pub mod node;
pub mod nvidia_smi;
pub mod objects;
pub mod operator;
pub mod patch;
pub mod preflight;
pub mod rbac;
pub mod render;
pub mod report;
pub mod sharing;
pub mod shell;
pub mod snapshot;
pub mod verify;
pub mod version;

pub use error::{Error, Result};
