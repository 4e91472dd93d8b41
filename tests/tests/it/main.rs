//! The one end-to-end test binary: a module per area, all against the local test cluster
//! (`tests/e2e/README.md`). Tests that change the cluster hold `cluster_harness::serial()`.
//! Run one area with `cargo test -p e2e-tests --test it verify_e2e::`.

mod check_runtime_e2e;
mod cluster_smoke;
mod first_run_e2e;
mod helm_e2e;
mod mig_e2e;
mod operand_texts_e2e;
mod patch_e2e;
mod rbac_e2e;
mod real_node_check_runtime;
mod real_node_down;
mod real_node_patch;
mod real_node_report;
mod real_node_support;
mod real_node_verify;
mod report_e2e;
mod upgrade_e2e;
mod verify_e2e;
