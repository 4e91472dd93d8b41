//! `rke2gpu`: the domain library behind `kubectl gpu` and `helm rke2gpu`.
//!
//! Data flows one way: command-line options → a Kubernetes client → one
//! [`snapshot`] of the cluster (the only read I/O) → pure analysis
//! ([`facts`], [`matrix`], [`check_runtime`], [`containerd`], [`verify`], [`report`],
//! [`helm`]) → findings, plans and reports → [`render`]. Writes happen at the
//! edge, through [`host`] (node files) and [`agent`] (node-agent pods).

pub mod agent;
pub mod build_info;
pub mod check_runtime;
pub mod cli;
pub mod client;
pub mod containerd;
pub mod error;
pub mod facts;
pub mod helm;
pub mod labels;
pub mod matrix;
pub mod node;
pub mod nvidia_smi;
pub mod operator;
pub mod patch;
pub mod render;
pub mod report;
pub mod snapshot;
pub mod verify;
pub mod version;

pub use error::{Error, Result};
