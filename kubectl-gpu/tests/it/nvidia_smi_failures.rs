//! nvidia-smi failure texts and older `-L` forms, quoted from nvidia-smi
//! itself and from public issues cited per test.

use rke2gpu::nvidia_smi::{
    SmiFailure, classify_failure, parse_list, parse_query_csv, parse_query_csv_with_fields,
    parse_table, parse_version,
};

#[test]
fn driver_not_loaded() {
    // nvidia-smi's message when it cannot reach the kernel driver
    let text = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. \
                Make sure that the latest NVIDIA driver is installed and running.\n\n";
    let f = parse_list(text).expect_err("no GPUs");
    assert!(matches!(f, SmiFailure::DriverNotLoaded { .. }), "{f:?}");
    assert!(f.evidence().starts_with("NVIDIA-SMI has failed"));
    // the table parser must not mistake the NVIDIA-SMI prefix for a header
    assert!(matches!(
        parse_table(text),
        Err(SmiFailure::DriverNotLoaded { .. })
    ));
}

#[test]
fn version_mismatch_with_library_version() {
    // NVIDIA/k8s-device-plugin#1431: nvidia-smi output on the node
    let text = "Failed to initialize NVML: Driver/library version mismatch\nNVML library version: 570.195\n";
    assert_eq!(
        classify_failure(text),
        Some(SmiFailure::VersionMismatch {
            line: "Failed to initialize NVML: Driver/library version mismatch".into(),
            nvml_library_version: Some("570.195".into()),
        })
    );
}

#[test]
fn version_mismatch_without_library_version() {
    // NVIDIA/nvidia-docker#1168
    let text = "Failed to initialize NVML: Driver/library version mismatch";
    assert_eq!(
        parse_version(text),
        Err(SmiFailure::VersionMismatch {
            line: text.into(),
            nvml_library_version: None,
        })
    );
}

#[test]
fn nvml_unknown_error_after_vendor_noise() {
    // 4paradigm/k8s-vgpu-scheduler#25: warnings precede the NVML failure
    let text = "[4pdvGPU Warn(38:140500277225280:hook.c:396)]: can't find function nvmlDeviceGetMemoryInfo_v2 in libnvidia-ml.so.1\n\
                [4pdvGPU Warn(38:140500277225280:hook.c:339)]: NVML error at line 339: 1\n\
                Failed to initialize NVML: Unknown Error\n";
    assert!(matches!(
        parse_list(text),
        Err(SmiFailure::NvmlUnknownError { .. })
    ));
}

#[test]
fn other_nvml_init_failure_keeps_reason() {
    let text = "Failed to initialize NVML: Insufficient Permissions";
    match classify_failure(text) {
        Some(SmiFailure::NvmlInitFailed { reason, .. }) => {
            assert_eq!(reason, "Insufficient Permissions");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn not_found_variants() {
    for text in [
        // dash (ubuntu images' /bin/sh)
        "sh: 1: nvidia-smi: not found",
        // busybox sh
        "sh: nvidia-smi: not found",
        // bash
        "bash: nvidia-smi: command not found",
        // runc via containerd, NVIDIA/nvidia-docker#1668
        "failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"nvidia-smi\": executable file not found in $PATH: unknown",
        // canonical/docker-snap#184
        "exec: \"/var/lib/snapd/hostfs/usr/bin/nvidia-smi\": stat /var/lib/snapd/hostfs/usr/bin/nvidia-smi: no such file or directory: unknown",
    ] {
        assert!(
            matches!(classify_failure(text), Some(SmiFailure::NotFound { .. })),
            "{text}"
        );
    }
}

#[test]
fn libnvidia_ml_missing_is_not_smi_not_found() {
    // NVIDIA/libnvidia-container#231: a runtime error, not a missing nvidia-smi
    let text = "nvidia-container-cli: initialization error: load library failed: libnvidia-ml.so.1: cannot open shared object file: no such file or directory";
    assert_eq!(classify_failure(text), None);
    assert!(matches!(parse_list(text), Err(SmiFailure::Unknown { .. })));
}

#[test]
fn no_devices() {
    assert!(matches!(
        parse_list("No devices were found\n"),
        Err(SmiFailure::NoDevices { .. })
    ));
}

#[test]
fn empty_and_garbage() {
    assert_eq!(parse_list(""), Err(SmiFailure::Empty));
    assert_eq!(parse_list("\n  \r\n"), Err(SmiFailure::Empty));
    assert_eq!(
        parse_query_csv("hello world\n"),
        Err(SmiFailure::Unknown {
            first_line: "hello world".into()
        })
    );
}

#[test]
fn legacy_mig_uuid_form() {
    // NVIDIA GPU Operator MIG docs (2021, driver R450/R460, in the driver container):
    // MIG UUIDs in the old `MIG-GPU-<uuid>/<gi>/<ci>` form, single space before `Device`.
    let text = "GPU 0: A100-SXM4-40GB (UUID: GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f)\n\
      \x20 MIG 1g.5gb Device 0: (UUID: MIG-GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f/7/0)\n\
      \x20 MIG 1g.5gb Device 1: (UUID: MIG-GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f/8/0)\n\
      \x20 MIG 1g.5gb Device 2: (UUID: MIG-GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f/9/0)\n\
      \x20 MIG 1g.5gb Device 3: (UUID: MIG-GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f/11/0)\n";
    let gpus = parse_list(text).expect("list");
    assert_eq!(gpus.len(), 1);
    assert_eq!(gpus[0].name, "A100-SXM4-40GB");
    assert_eq!(gpus[0].mig_devices.len(), 4);
    assert_eq!(
        gpus[0].mig_devices[3].uuid,
        "MIG-GPU-5c89852c-d268-c3f3-1b07-005d5ae1dc3f/11/0"
    );
    assert!(gpus[0].mig_devices.iter().all(|m| m.profile == "1g.5gb"));
}

#[test]
fn mig_on_first_gpu_only() {
    // influxdata/telegraf#5812: MIG lines belong to the GPU above them only
    let text = "GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-513536b6-7d19-9063-b049-1e69664bb298)\n\
      \x20 MIG 1g.20gb     Device  0: (UUID: MIG-ce861fb0-a248-58ce-a9a8-f9adbc22a66a)\n\
      \x20 MIG 1g.20gb     Device  1: (UUID: MIG-a45882f0-9215-5733-a0c1-49286ab31cb5)\n\
      \x20 MIG 1g.20gb     Device  2: (UUID: MIG-f00d722c-f4e1-52c9-aa31-750441ae1bfe)\n\
      \x20 MIG 1g.20gb     Device  3: (UUID: MIG-930574a9-d43a-5d2b-95da-3e68384c8d6b)\n\
      GPU 1: NVIDIA A100-SXM4-80GB (UUID: GPU-d8594bd4-0fc3-8595-e355-7c98138f3b95)\n\
      GPU 2: NVIDIA A100-SXM4-80GB (UUID: GPU-5e375e7e-b41f-155b-dcdc-534524c356fc)\n\
      GPU 3: NVIDIA A100-SXM4-80GB (UUID: GPU-69ec2344-ebac-b028-f88f-452abb3d7f11)\n";
    let gpus = parse_list(text).expect("list");
    let counts: Vec<usize> = gpus.iter().map(|g| g.mig_devices.len()).collect();
    assert_eq!(counts, [4, 0, 0, 0]);
    assert_eq!(
        gpus[3].uuid.as_deref(),
        Some("GPU-69ec2344-ebac-b028-f88f-452abb3d7f11")
    );
}

#[test]
fn list_tolerates_kubectl_noise_and_crlf() {
    let text = "Defaulted container \"nvidia-mig-manager\" out of: nvidia-mig-manager\r\n\
                GPU 0: Tesla T4 (UUID: GPU-e78e68c0-4e6a-737e-f9cc-4223fe50aead)\r\n";
    // UUID from NVIDIA/nvidia-container-toolkit#1239 (`nvidia-smi -L` on an RKE2 node)
    let gpus = parse_list(text).expect("list");
    assert_eq!(gpus.len(), 1);
    assert_eq!(gpus[0].name, "Tesla T4");
    assert_eq!(
        gpus[0].uuid.as_deref(),
        Some("GPU-e78e68c0-4e6a-737e-f9cc-4223fe50aead")
    );
}

#[test]
fn csv_na_values_and_nounits() {
    let text = "index, name, uuid, driver_version, memory.total [MiB], compute_cap, pci.bus_id\n\
                0, NVIDIA A16-4Q, GPU-1b2c, 550.90.07, [N/A], [Not Supported], 00000000:02:00.0\n\
                1, NVIDIA A16-4Q, GPU-3d4e, 550.90.07, 4096, 8.6, 00000000:03:00.0\n";
    let gpus = parse_query_csv(text).expect("csv");
    assert_eq!(gpus.len(), 2);
    assert_eq!(gpus[0].memory_total_mib, None);
    assert_eq!(gpus[0].compute_cap, None);
    assert_eq!(gpus[1].memory_total_mib, Some(4096));
    assert_eq!(gpus[1].compute_cap.as_deref(), Some("8.6"));
}

#[test]
fn csv_other_field_order_by_header() {
    let text = "uuid, name, index\nGPU-aaa, Tesla T4, 3\n";
    let gpus = parse_query_csv(text).expect("csv");
    assert_eq!(gpus[0].index, 3);
    assert_eq!(gpus[0].uuid.as_deref(), Some("GPU-aaa"));
    assert_eq!(gpus[0].driver_version, None);
}

#[test]
fn csv_noheader_custom_fields() {
    let text = "Tesla T4, GPU-aaa\n";
    let gpus = parse_query_csv_with_fields(text, &["name", "uuid"]).expect("csv");
    assert_eq!(gpus[0].name, "Tesla T4");
    assert_eq!(gpus[0].uuid.as_deref(), Some("GPU-aaa"));
}

#[test]
fn csv_noheader_skips_interleaved_stderr() {
    let text = "0, NVIDIA H200, GPU-5ede5d59-c949-3aca-4b28-11bd00045ab5, 580.159.04, 143771 MiB, 9.0, 00000000:00:06.0\n\
                WARNING: something, somewhere\n";
    let gpus = parse_query_csv(text).expect("csv");
    assert_eq!(gpus.len(), 1);
}

#[test]
fn narrow_table_header_r525() {
    // R525 and earlier narrow header (NVIDIA container-toolkit output/nvidia-smi.txt has it for 535.86.10)
    let text = "+-----------------------------------------------------------------------------+\n\
                | NVIDIA-SMI 525.78.01    Driver Version: 525.78.01    CUDA Version: 12.0     |\n";
    let t = parse_table(text).expect("table");
    assert_eq!(t.driver_version.as_deref(), Some("525.78.01"));
    assert_eq!(t.cuda_version.as_deref(), Some("12.0"));
    assert_eq!(t.layout, rke2gpu::nvidia_smi::TableLayout::Narrow);
    assert!(t.gpus.is_empty());
}
