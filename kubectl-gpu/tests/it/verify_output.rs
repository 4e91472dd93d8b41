//! The verify log: composed from the real captures in
//! `tests/fixtures/nvidia-smi/h200-580-container/` (nvidia-smi inside a
//! container on an H200 host, driver 580.159.04; see its README.md) and
//! `tests/fixtures/nvidia-smi/h200-580/version.txt` (same host), wrapped in
//! the markers the verify script prints, plus the failure texts of the
//! public issues named at each test.

use rke2gpu::nvidia_smi::{QUERY_GPU_ARG, SmiFailure};
use rke2gpu::verify::output::{SectionName, split_marked_log};
use rke2gpu::verify::{parse_smi_log, parse_vectoradd_log, verify_script};

use crate::support::verify::{fixture, h200_log as success_log, section};

const UUID: &str = "GPU-5ede5d59-c949-3aca-4b28-11bd00045ab5";

#[test]
fn script_prints_the_markers_and_commands() {
    let s = verify_script();
    assert!(s.contains("nvidia-smi -L"));
    assert!(s.contains(&format!("nvidia-smi {QUERY_GPU_ARG} --format=csv,noheader")));
    assert!(s.contains("nvidia-smi --version"));
    assert!(s.contains("### kubectl-gpu begin $name"));
    assert!(s.contains("### kubectl-gpu end $name rc=$rc"));
    assert!(s.contains("exit \"$rc_first\""));
    // POSIX sh only: no bash-isms.
    for bashism in ["[[", "local ", "function ", "pipefail", "$'"] {
        assert!(!s.contains(bashism), "{bashism}");
    }
}

#[test]
fn success_from_real_captures() {
    let r = parse_smi_log(&success_log());
    assert!(r.succeeded(), "{r:?}");
    assert_eq!(r.exit_code, Some(0));
    assert!(!r.truncated);
    assert_eq!(r.gpus.len(), 1);
    let g = &r.gpus[0];
    assert_eq!(g.name, "NVIDIA H200");
    assert_eq!(g.uuid.as_deref(), Some(UUID));
    assert_eq!(g.memory_total_mib, Some(143771));
    assert_eq!(g.compute_cap.as_deref(), Some("9.0"));
    assert_eq!(g.pci_bus_id.as_deref(), Some("00000000:00:06.0"));
    assert_eq!(r.driver_version(), Some("580.159.04"));
    let v = r.version.as_ref().expect("version");
    assert_eq!(v.cuda_version.as_deref(), Some("13.0"));
    assert!(r.failures.is_empty());
}

#[test]
fn real_script_output_from_dash_without_nvidia_smi() {
    // What the script prints under dash when the runtime injected nothing
    // (run by hand with PATH lacking nvidia-smi): rc 127 everywhere.
    let not_found = "sh: 7: nvidia-smi: not found";
    let log = section("list", not_found, 127)
        + &section("query", not_found, 127)
        + &section("version", not_found, 127);
    let r = parse_smi_log(&log);
    assert!(!r.succeeded());
    assert_eq!(r.exit_code, Some(127));
    assert!(r.gpus.is_empty());
    assert_eq!(r.failures.len(), 3);
    assert!(matches!(
        r.primary_failure(),
        Some(SmiFailure::NotFound { .. })
    ));
}

#[test]
fn container_without_device_nodes() {
    // h200-580-container/no-device-nodes.txt: `nvidia-smi -L` exit 255
    let body = fixture("nvidia-smi/h200-580-container/no-device-nodes.txt");
    let log = section("list", &body, 255)
        + &section("query", &body, 255)
        + &section("version", &body, 255);
    let r = parse_smi_log(&log);
    assert_eq!(r.exit_code, Some(255));
    assert_eq!(
        r.primary_failure(),
        Some(&SmiFailure::NvmlUnknownError {
            line: "Failed to initialize NVML: Unknown Error".into()
        })
    );
    assert_eq!(r.failures[0].section, Some(SectionName::List));
}

#[test]
fn each_failure_text_is_classified() {
    type Case = (&'static str, i32, fn(&SmiFailure) -> bool);
    let cases: [Case; 4] = [
        // nvidia-smi's message when it cannot reach the kernel driver
        (
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.",
            9,
            |f| matches!(f, SmiFailure::DriverNotLoaded { .. }),
        ),
        // k8s-device-plugin#1431
        (
            "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 570.195",
            18,
            |f| matches!(f, SmiFailure::VersionMismatch { nvml_library_version: Some(v), .. } if v == "570.195"),
        ),
        ("No devices were found", 6, |f| {
            matches!(f, SmiFailure::NoDevices { .. })
        }),
        ("Failed to initialize NVML: Unknown Error", 255, |f| {
            matches!(f, SmiFailure::NvmlUnknownError { .. })
        }),
    ];
    for (text, rc, ok) in cases {
        let log =
            section("list", text, rc) + &section("query", text, rc) + &section("version", text, rc);
        let r = parse_smi_log(&log);
        assert_eq!(r.exit_code, Some(rc), "{text}");
        let f = r.primary_failure().expect("failure");
        assert!(ok(f), "{text}: {f:?}");
        assert!(!r.succeeded());
    }
}

#[test]
fn truncated_inside_the_list_section() {
    let log = "### kubectl-gpu begin list\nGPU 0: NVIDIA H200 (UUID: GPU-5ede5d59-c949-3aca-4b28-11bd00045ab5)\n";
    let r = parse_smi_log(log);
    assert!(r.truncated);
    assert_eq!(r.exit_code, None);
    assert_eq!(
        r.missing_sections,
        [SectionName::Query, SectionName::Version]
    );
    // What was printed still counts as evidence.
    assert_eq!(r.gpus.len(), 1);
    assert!(!r.succeeded());
}

#[test]
fn truncated_after_the_query_section() {
    let full = success_log();
    let cut = full
        .find("### kubectl-gpu begin version")
        .expect("version marker");
    let r = parse_smi_log(&full[..cut]);
    assert!(r.truncated);
    assert_eq!(r.missing_sections, [SectionName::Version]);
    // Both fatal sections ended with 0: the exit code is known.
    assert_eq!(r.exit_code, Some(0));
    assert_eq!(r.gpus[0].memory_total_mib, Some(143771));
    assert!(!r.succeeded());
}

#[test]
fn stderr_interleaved_and_glued_to_markers() {
    let log = format!(
        "### kubectl-gpu begin list\n\
         {}\n\
         WARNING: infoROM is corrupted at gpu 0000:00:06.0### kubectl-gpu end list rc=0\n\
         ### kubectl-gpu begin query\n\
         {}\n\
         ### kubectl-gpu end query rc=0\r\n\
         ### kubectl-gpu begin version\n{}### kubectl-gpu end version rc=0\n",
        fixture("nvidia-smi/h200-580-container/nvidia-smi-L.txt").trim_end(),
        fixture("nvidia-smi/h200-580-container/query-gpu-noheader.csv").trim_end(),
        fixture("nvidia-smi/h200-580/version.txt"),
    );
    let marked = split_marked_log(&log);
    assert_eq!(marked.sections.len(), 3);
    assert!(marked.sections.iter().all(|s| s.ended));
    let list = marked.section(SectionName::List).expect("list");
    assert_eq!(
        list.lines.last().map(String::as_str),
        Some("WARNING: infoROM is corrupted at gpu 0000:00:06.0")
    );
    let r = parse_smi_log(&log);
    assert!(r.succeeded(), "{r:?}");
    assert_eq!(r.gpus[0].uuid.as_deref(), Some(UUID));
}

#[test]
fn version_failure_does_not_fail_the_run() {
    // Older drivers reject `--version`; the script does not count its rc.
    let log = section(
        "list",
        &fixture("nvidia-smi/h200-580-container/nvidia-smi-L.txt"),
        0,
    ) + &section(
        "query",
        &fixture("nvidia-smi/h200-580-container/query-gpu-noheader.csv"),
        0,
    ) + &section(
        "version",
        "Invalid combination of input arguments. Please run 'nvidia-smi -h' for help.",
        1,
    );
    let r = parse_smi_log(&log);
    assert_eq!(r.exit_code, Some(0));
    assert!(r.succeeded());
    assert_eq!(r.failures.len(), 1);
    assert_eq!(r.failures[0].section, Some(SectionName::Version));
    // The query still carries the driver version.
    assert_eq!(r.driver_version(), Some("580.159.04"));
}

#[test]
fn log_without_markers_entrypoint_failed() {
    let r = parse_smi_log("exec /usr/local/bin/entrypoint.sh: exec format error\n");
    assert!(!r.markers_found);
    assert!(!r.succeeded());
    assert!(matches!(
        r.primary_failure(),
        Some(SmiFailure::Unknown { first_line }) if first_line.contains("exec format error")
    ));
}

#[test]
fn log_without_markers_plain_nvidia_smi_table() {
    // github.com/aws-samples/karpenter-blueprints README @ a6ba5f7c: `kubectl logs pod/nvidia-smi`
    let r = parse_smi_log(&fixture(
        "real-world/nvidia-smi/r570-t4-kubectl-logs-pod.txt",
    ));
    assert!(!r.markers_found);
    assert_eq!(r.gpus.len(), 1);
    assert_eq!(r.gpus[0].name, "Tesla T4");
    assert_eq!(r.driver_version(), Some("570.133.20"));
    assert!(!r.succeeded(), "only the marked script can succeed");
}

#[test]
fn log_without_markers_not_found() {
    let r = parse_smi_log("sh: 1: nvidia-smi: not found\n");
    assert!(matches!(
        r.primary_failure(),
        Some(SmiFailure::NotFound { .. })
    ));
}

#[test]
fn empty_log() {
    let r = parse_smi_log("");
    assert_eq!(r.primary_failure(), Some(&SmiFailure::Empty));
}

#[test]
fn vectoradd_expected_log_passes() {
    // the sample's expected log (NVIDIA GPU Operator getting-started docs)
    let log = "[Vector addition of 50000 elements]\n\
               Copy input data from the host memory to the CUDA device\n\
               CUDA kernel launch with 196 blocks of 256 threads\n\
               Copy output data from the CUDA device to the host memory\n\
               Test PASSED\n\
               Done\n";
    let r = parse_vectoradd_log(log);
    assert!(r.passed);
    assert_eq!(r.elements, Some(50000));
    assert_eq!(r.failure_line, None);
}

#[test]
fn vectoradd_cuda_error() {
    // cuda-samples vectorAdd.cu: fprintf(stderr, "Failed to allocate device vector A (error code %s)!\n", …)
    let log = "[Vector addition of 50000 elements]\n\
               Failed to allocate device vector A (error code CUDA driver version is insufficient for CUDA runtime version)!\n";
    let r = parse_vectoradd_log(log);
    assert!(!r.passed);
    assert_eq!(
        r.cuda_error.as_deref(),
        Some("CUDA driver version is insufficient for CUDA runtime version")
    );
    assert!(
        r.failure_line
            .as_deref()
            .is_some_and(|l| l.starts_with("Failed to allocate"))
    );
}

#[test]
fn vectoradd_truncated_log_does_not_pass() {
    let r = parse_vectoradd_log(
        "[Vector addition of 50000 elements]\nCopy input data from the host memory to the CUDA device\n",
    );
    assert!(!r.passed);
    assert_eq!(r.failure_line, None);
}
