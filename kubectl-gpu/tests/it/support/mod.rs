//! Shared test support for the `it` binary: report-side cluster builders (GPU nodes, pods,
//! operator objects) in [`report`] and verify-pod log fixtures in [`verify`].

pub mod report;
pub mod verify;
