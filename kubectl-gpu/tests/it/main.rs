//! The one integration-test binary of `kubectl-gpu`: one module per former test file, shared
//! builders and fixture helpers in [`support`]. Run one area with `cargo test -p kubectl-gpu --test it NAME::`.

mod checks_rules;
mod containerd_plan;
mod containerd_proptest;
mod containerd_toolkit_golden;
mod host_crash;
mod mig_rules;
mod nvidia_smi_failures;
mod nvidia_smi_fixtures;
mod operand_texts;
mod operator_chart_version;
mod patch_cycle;
mod patch_offline_equals_cluster;
mod patch_real_containerd;
mod rbac_roles;
mod real_gpu_cluster;
mod real_gpu_output;
mod report_alloc;
mod report_bundle;
mod report_render;
mod sharing_rules;
mod support;
mod template_fix_real_containerd;
mod template_redeclared;
mod upgrade_preflight;
mod upgrade_real_containerd;
mod verify_checks;
mod verify_diagnosis;
mod verify_output;
mod verify_run_pure;
mod verify_spec;
mod version_literals;
