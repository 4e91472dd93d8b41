//! The real-GPU proof (docs/real-gpu.md, tests/gpu/): what `verify`'s parser,
//! checks and diagnosis make of logs captured on an H200 host, where the
//! container ran through containerd's CRI with the `nvidia` runtime that
//! `rke2gpu::patch::plan` added to an RKE2 v3 config.
//!
//! The tests read committed fixtures only (tests/fixtures/real-gpu/); CI never
//! runs on a GPU host. `stage_device_inputs` (ignored) is how tests/gpu/stage
//! writes the device run's inputs from the library: the planned drop-in and the
//! verify script.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use rke2gpu::nvidia_smi::{Gpu, SmiFailure, classify_failure, parse_query_csv};
use rke2gpu::patch::plan::{Capabilities, Method, NodeState, PatchOptions, PlanInput, plan};
use rke2gpu::verify::checks::{CheckId, CheckStatus, GpuRequest, NodeGpuFacts, run_checks};
use rke2gpu::verify::diagnosis::{DiagnosisKind, diagnose_smi_failure};
use rke2gpu::verify::output::{SectionName, parse_smi_log, verify_script};
use rke2gpu::version::Triple;

/// Where the device run maps RKE2's data dir (see the base config's .source).
const DATA_DIR: &str = "/tmp/gpu/rke2";
/// The nvidia-container-runtime built by tests/gpu/build, as unpacked there.
const RUNTIME_BINARY: &str = "/tmp/gpu/bin/nvidia-container-runtime";
const NODE: &str = "h200-host";

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/real-gpu")
}

fn fixture(name: &str) -> String {
    let p = fixture_dir().join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The planner's input for the device run: the RKE2 v3 config of a node
/// without the toolkit, RKE2 v1.33.10+rke2r1 capabilities, containerd 2.2.2,
/// and the built runtime as the binary. Planned offline, as
/// `patch-containerd --config-file` does: no runtime binary is known to exist
/// (were `RUNTIME_BINARY` listed in `runtime_binaries`, the planner would take
/// it as one RKE2 detects by itself, whatever its directory, and write nothing;
/// `patch-containerd --binary-path` without `--set-as-default` does just that,
/// see docs/real-gpu.md).
fn device_plan_input() -> PlanInput {
    let state = NodeState {
        generated_config: fixture("rke2-config-v3-no-toolkit.toml"),
        runtime_binaries: BTreeSet::new(),
        ..NodeState::default()
    };
    let caps = Capabilities {
        default_runtime_flag: true,
        base_templates: true,
        containerd: Triple::new(2, 2, 2),
    };
    let mut input = PlanInput::new(state, caps);
    input.data_dir = DATA_DIR.to_string();
    input.options = PatchOptions {
        binary_path: Some(RUNTIME_BINARY.to_string()),
        ..PatchOptions::default()
    };
    input
}

/// Writes the device run's inputs under `$GPU_STAGE_DIR`: each planned file
/// at its absolute path below `files/`, `plan.txt` (method, reasons, diff),
/// and `verify.sh` (the verify container's script).
#[test]
#[ignore = "writes the device inputs; run by tests/gpu/stage"]
fn stage_device_inputs() {
    let dir = PathBuf::from(std::env::var("GPU_STAGE_DIR").expect("GPU_STAGE_DIR"));
    let p = plan(&device_plan_input()).expect("plan");
    let mut txt = format!(
        "method: {}\nrestart: {:?}\n",
        p.method.map(|m| m.to_string()).unwrap_or_default(),
        p.restart
    );
    for r in &p.reasons {
        txt.push_str(&format!("reason: {r}\n"));
    }
    txt.push('\n');
    txt.push_str(&p.diff());
    for c in &p.changes {
        let dest = dir.join("files").join(c.path.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        match &c.new {
            Some(text) => std::fs::write(&dest, text).unwrap(),
            None => panic!("the plan removes {}", c.path),
        }
    }
    std::fs::write(dir.join("plan.txt"), txt).unwrap();
    std::fs::write(dir.join("verify.sh"), verify_script()).unwrap();
}

/// The plan used on the device is the drop-in next to the imported dir, and
/// the committed copy of what ran there is what the library plans today.
#[test]
fn device_plan_is_a_drop_in_with_the_built_runtime() {
    let p = plan(&device_plan_input()).expect("plan");
    assert_eq!(p.method, Some(Method::DropIn));
    assert_eq!(p.changes.len(), 1, "{:?}", p.changes);
    let c = &p.changes[0];
    assert_eq!(
        c.path,
        "/tmp/gpu/rke2/agent/etc/containerd/config-v3.toml.d/99-nvidia.toml"
    );
    let text = c.new.as_deref().unwrap();
    assert!(text.contains(RUNTIME_BINARY), "{text}");
    assert_eq!(
        text,
        fixture("99-nvidia.toml"),
        "re-run tests/gpu/stage and the device run"
    );
    // The drop-in merged with the root config confirms the nvidia runtime.
    let drop_ins = BTreeMap::from([("99-nvidia.toml".to_string(), text.to_string())]);
    let conf = p
        .expectation
        .confirm(&fixture("rke2-config-v3-no-toolkit.toml"), &drop_ins)
        .expect("confirm");
    assert!(conf.confirmed, "{:?}", conf.problems);
}

/// The verify script that ran on the device is the library's.
#[test]
fn captured_script_is_verify_script() {
    assert_eq!(fixture("verify.sh"), verify_script());
}

/// The host's GPU, from its own nvidia-smi on the same run (host-query.csv).
fn host_gpu() -> Gpu {
    let gpus = parse_query_csv(&fixture("host-query.csv")).expect("host query");
    assert_eq!(gpus.len(), 1, "{gpus:?}");
    gpus.into_iter().next().unwrap()
}

/// The H200 node as GPU Feature Discovery labels it: product NVIDIA-H200,
/// one GPU, and the driver version split as GFD does (from the host's NVML).
fn h200_facts(driver: &str) -> NodeGpuFacts {
    let mut parts = driver.splitn(3, '.');
    let mut labels: BTreeMap<String, String> = [
        ("nvidia.com/gpu.product", "NVIDIA-H200"),
        ("nvidia.com/gpu.count", "1"),
        ("nvidia.com/gpu.present", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for key in ["major", "minor", "revision"] {
        if let Some(p) = parts.next() {
            labels.insert(
                format!("nvidia.com/cuda.driver-version.{key}"),
                p.to_string(),
            );
        }
    }
    NodeGpuFacts::from_labels(NODE, &labels)
}

fn one_gpu() -> GpuRequest {
    GpuRequest {
        resource_name: "nvidia.com/gpu".to_string(),
        count: 1,
        runtime_class: None,
    }
}

fn source_mentions(name: &str, what: &[&str]) {
    let src = fixture(&format!("{name}.source"));
    for w in what {
        assert!(src.contains(w), "{name}.source lacks {w:?}:\n{src}");
    }
}

/// One H200, its UUID, driver 580.x, its memory, as the host saw it; verify's checks pass.
fn assert_one_h200(name: &str) {
    source_mentions(
        name,
        &[
            "date",
            "host",
            "containerd",
            "nvidia-container-toolkit",
            "command",
        ],
    );
    let log = fixture(name);
    let smi = parse_smi_log(&log);
    assert!(smi.succeeded(), "{smi:#?}");
    assert_eq!(smi.exit_code, Some(0));
    assert!(smi.failures.is_empty(), "{:?}", smi.failures);
    assert_eq!(smi.gpus.len(), 1, "{:?}", smi.gpus);
    let g = &smi.gpus[0];
    assert_eq!(g.index, 0);
    assert_eq!(g.name, "NVIDIA H200");
    let uuid = g.uuid.as_deref().expect("uuid");
    assert!(uuid.starts_with("GPU-") && uuid.len() == 40, "{uuid}");
    // The same UUID in -L and the query.
    assert_eq!(log.matches(uuid).count(), 2, "{log}");
    let drv = smi.driver_version().expect("driver version");
    assert!(drv.starts_with("580."), "{drv}");
    assert_eq!(g.driver_version.as_deref(), Some(drv));
    // H200: 141 GB HBM3e; nvidia-smi reports 143771 MiB.
    let mem = g.memory_total_mib.expect("memory.total");
    assert!((140_000..=145_000).contains(&mem), "{mem} MiB");
    let v = smi.version.as_ref().expect("--version section");
    assert_eq!(v.driver_version.as_deref(), Some(drv));

    // What the pod saw is the host's GPU.
    let host = host_gpu();
    assert_eq!(host.uuid.as_deref(), Some(uuid));
    assert_eq!(host.driver_version.as_deref(), Some(drv));
    assert_eq!(host.memory_total_mib, Some(mem));

    let checks = run_checks(&h200_facts(drv), &one_gpu(), &smi);
    for c in &checks {
        println!("{:?} {:?}: {}", c.id, c.status, c.message);
        match c.id {
            CheckId::GpuVisible | CheckId::GpuCount | CheckId::DriverVersion | CheckId::Product => {
                assert_eq!(c.status, CheckStatus::Pass, "{c:#?}")
            }
            _ => assert!(!c.is_fail(), "{c:#?}"),
        }
    }
    // Labels from another driver: the same log fails the driver check.
    let stale = run_checks(&h200_facts("570.195.03"), &one_gpu(), &smi);
    let d = stale
        .iter()
        .find(|c| c.id == CheckId::DriverVersion)
        .unwrap();
    assert_eq!(d.status, CheckStatus::Fail, "{d:#?}");
}

/// The `nvidia` runtime handler (the library's plan, no default runtime).
#[test]
fn nvidia_runtime_log_shows_one_h200() {
    assert_one_h200("nvidia-runtime.log");
}

/// No runtime handler, after containerd restarted with the drop-in that
/// `kubectl-gpu patch-containerd --set-as-default` wrote in offline mode.
#[test]
fn default_runtime_from_the_cli_log_shows_one_h200() {
    assert_one_h200("cli-default-runtime.log");
}

/// The CLI's drop-in that ran is the library's plan with `set_as_default`.
#[test]
fn cli_drop_in_is_the_library_plan_with_default() {
    let mut input = device_plan_input();
    // Offline, the CLI takes the runtime binary to exist where --binary-path says.
    input
        .state
        .runtime_binaries
        .insert(RUNTIME_BINARY.to_string());
    input.options.set_as_default = true;
    input.options.method = Some(Method::DropIn);
    let p = plan(&input).expect("plan");
    assert_eq!(p.changes.len(), 1, "{:?}", p.changes);
    let text = p.changes[0].new.as_deref().unwrap();
    assert!(text.contains("default_runtime_name = \"nvidia\""), "{text}");
    assert_eq!(text, fixture("99-nvidia-cli-default.toml"));
    assert!(fixture("cli-plan.txt").contains("written, method drop-in"));
}

/// The same container under plain runc: nvidia-smi is not there, and verify
/// says the runtime did not inject the driver.
#[test]
fn runc_log_fails_to_find_the_gpu() {
    let name = "runc.log";
    source_mentions(name, &["date", "host", "containerd", "command"]);
    let log = fixture(name);
    let smi = parse_smi_log(&log);
    assert!(!smi.succeeded());
    assert!(smi.gpus.is_empty());
    assert_ne!(smi.exit_code, Some(0));
    let f = smi.primary_failure().expect("a failure");
    assert!(matches!(f, SmiFailure::NotFound { .. }), "{f:?}");
    assert_eq!(
        classify_failure(&log).as_ref().map(std::mem::discriminant),
        Some(std::mem::discriminant(f))
    );
    let list = smi
        .failures
        .iter()
        .find(|s| s.section == Some(SectionName::List));
    assert!(list.is_some(), "{:?}", smi.failures);

    let d = diagnose_smi_failure(f, NODE);
    println!("{d:#?}");
    assert_eq!(d.kind, DiagnosisKind::NvidiaSmiNotFound, "{d:#?}");
    assert!(d.evidence.contains("nvidia-smi"), "{d:#?}");

    let checks = run_checks(
        &h200_facts(&host_gpu().driver_version.unwrap()),
        &one_gpu(),
        &smi,
    );
    let visible = checks.iter().find(|c| c.id == CheckId::GpuVisible).unwrap();
    assert_eq!(visible.status, CheckStatus::Fail, "{visible:#?}");
}

/// Plain runc with the driver directory bind-mounted but no device nodes:
/// NVML's "Unknown Error", which verify names as missing devices.
#[test]
fn runc_with_driver_mount_log_is_nvml_unknown_error() {
    let name = "runc-driver-mounted.log";
    if !fixture_dir().join(name).exists() {
        return; // optional capture
    }
    source_mentions(name, &["date", "host", "command"]);
    let smi = parse_smi_log(&fixture(name));
    assert!(!smi.succeeded());
    let f = smi.primary_failure().expect("a failure");
    assert!(matches!(f, SmiFailure::NvmlUnknownError { .. }), "{f:?}");
    let d = diagnose_smi_failure(f, NODE);
    println!("{d:#?}");
    assert_eq!(d.kind, DiagnosisKind::NvmlUnknownError, "{d:#?}");
}
