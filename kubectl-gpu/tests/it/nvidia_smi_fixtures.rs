//! Every real nvidia-smi output under `tests/fixtures` must parse (or be
//! classified), and each file's known facts must come out of the parser.
//!
//! Provenance of the fixtures (each has a `.source` beside it):
//! - `nvidia-smi/h200-580/*`: captured on an H200 host, driver 580.159.04,
//!   2026-11-29 (see `tests/fixtures/README.md`).
//! - `nvidia-smi/h200-580-container/*`: the same host, nvidia-smi inside a
//!   container with and without the device nodes (see its README.md).
//! - `real-world/nvidia-smi/*`: public projects' docs and test data; each
//!   expectation below names the `.source` it comes from.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use rke2gpu::nvidia_smi::{
    SmiFailure, TableLayout, classify_failure, merge_list_and_query, parse_list, parse_query_csv,
    parse_table, parse_version,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn read(rel: &str) -> String {
    let p = fixtures().join(rel);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// All nvidia-smi output files (not `.source`, not README).
fn all_smi_files() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for dir in [
        "nvidia-smi/h200-580",
        "nvidia-smi/h200-580-container",
        "real-world/nvidia-smi",
    ] {
        for entry in fs::read_dir(fixtures().join(dir)).expect("fixture dir") {
            let name = entry
                .expect("entry")
                .file_name()
                .into_string()
                .expect("utf8");
            if name.ends_with(".source") || name.eq_ignore_ascii_case("README.md") {
                continue;
            }
            out.insert(format!("{dir}/{name}"));
        }
    }
    out
}

struct TableFacts {
    file: &'static str,
    layout: TableLayout,
    driver: &'static str,
    cuda: Option<&'static str>,
    gpus: usize,
    name: &'static str,
    first_bus: &'static str,
    memory_mib: u64,
    mig_mode: &'static str,
    mig_gis: &'static [u32],
}

/// Facts read off each default-table fixture by hand.
const TABLES: &[TableFacts] = &[
    // captured H200 host, driver 580.159.04
    TableFacts {
        file: "nvidia-smi/h200-580/nvidia-smi.txt",
        layout: TableLayout::Wide,
        driver: "580.159.04",
        cuda: Some("13.0"),
        gpus: 1,
        name: "NVIDIA H200",
        first_bus: "00000000:00:06.0",
        memory_mib: 143771,
        mig_mode: "Disabled",
        mig_gis: &[],
    },
    // github.com/jear/nvidia-gpu-operator-sles15-sp3-driver tests/README.md @ a48d67d5 (CUDA Version: N/A)
    TableFacts {
        file: "real-world/nvidia-smi/r470-a100-pcie-40gb-kubectl-exec-mig-manager.txt",
        layout: TableLayout::Narrow,
        driver: "470.82.01",
        cuda: None,
        gpus: 1,
        name: "NVIDIA A100-PCI...",
        first_bus: "00000000:61:00.0",
        memory_mib: 40536,
        mig_mode: "Disabled",
        mig_gis: &[],
    },
    // github.com/router-gao/ai-demos '04 - NVIDIA monitoring in Prometheus and Grafana.md' @ a927732c
    TableFacts {
        file: "real-world/nvidia-smi/r470-t4-with-processes.txt",
        layout: TableLayout::Narrow,
        driver: "470.182.03",
        cuda: Some("11.4"),
        gpus: 1,
        name: "Tesla T4",
        first_bus: "00000000:03:00.0",
        memory_mib: 15109,
        mig_mode: "N/A",
        mig_gis: &[],
    },
    // github.com/leptonai/gpud .../nvidia-smi.525.125.06.out.0.valid @ 5098ae17
    TableFacts {
        file: "real-world/nvidia-smi/r525-geforce-fan-err.txt",
        layout: TableLayout::Narrow,
        driver: "525.125.06",
        cuda: Some("12.0"),
        gpus: 1,
        name: "NVIDIA GeForce ...",
        first_bus: "00000000:01:00.0",
        memory_mib: 23028,
        mig_mode: "N/A",
        mig_gis: &[],
    },
    // github.com/router-gao/ai-demos '01 - NVIDIA GPU on Kubernetes 101.md' @ a927732c
    // (transitional R530 layout, 87 columns: counted as wide)
    TableFacts {
        file: "real-world/nvidia-smi/r530-t4-narrow-table.txt",
        layout: TableLayout::Wide,
        driver: "530.41.03",
        cuda: Some("12.1"),
        gpus: 1,
        name: "Tesla T4",
        first_bus: "00000000:02:03.0",
        memory_mib: 15360,
        mig_mode: "N/A",
        mig_gis: &[],
    },
    // github.com/leptonai/gpud .../nvidia-smi.550.90.07.out.0.valid @ 5098ae17 (8x H100 HGX)
    TableFacts {
        file: "real-world/nvidia-smi/r550-8x-h100-80gb-hbm3.txt",
        layout: TableLayout::Wide,
        driver: "550.90.07",
        cuda: Some("12.4"),
        gpus: 8,
        name: "NVIDIA H100 80GB HBM3",
        first_bus: "00000000:19:00.0",
        memory_mib: 81559,
        mig_mode: "Disabled",
        mig_gis: &[],
    },
    // github.com/thamada/nvidia-smi gls/L4_smi.py @ c4c8a463
    TableFacts {
        file: "real-world/nvidia-smi/r550-l4.txt",
        layout: TableLayout::Wide,
        driver: "550.90.07",
        cuda: Some("12.4"),
        gpus: 1,
        name: "NVIDIA L4",
        first_bus: "00000000:01:00.0",
        memory_mib: 23034,
        mig_mode: "N/A",
        mig_gis: &[],
    },
    // github.com/thamada/nvidia-smi gls/A100SXMx4_smi.py @ c4c8a463
    TableFacts {
        file: "real-world/nvidia-smi/r555-4x-a100-sxm4-80gb.txt",
        layout: TableLayout::Wide,
        driver: "555.42.02",
        cuda: Some("12.5"),
        gpus: 4,
        name: "NVIDIA A100-SXM4-80GB",
        first_bus: "00000000:68:00.0",
        memory_mib: 81920,
        mig_mode: "Disabled",
        mig_gis: &[],
    },
    // github.com/thamada/nvidia-smi gls/RTX3090_smi.py @ c4c8a463
    TableFacts {
        file: "real-world/nvidia-smi/r560-2x-geforce-rtx-3090.txt",
        layout: TableLayout::Wide,
        driver: "560.35.03",
        cuda: Some("12.6"),
        gpus: 2,
        name: "NVIDIA GeForce RTX 3090",
        first_bus: "00000000:41:00.0",
        memory_mib: 24576,
        mig_mode: "N/A",
        mig_gis: &[],
    },
    // github.com/aws-samples/karpenter-blueprints blueprints/nvidia-gpu-workload/README.md @ a6ba5f7c
    TableFacts {
        file: "real-world/nvidia-smi/r570-t4-kubectl-logs-pod.txt",
        layout: TableLayout::Wide,
        driver: "570.133.20",
        cuda: Some("12.8"),
        gpus: 1,
        name: "Tesla T4",
        first_bus: "00000000:00:1E.0",
        memory_mib: 15360,
        mig_mode: "N/A",
        mig_gis: &[],
    },
    // github.com/utkuozdemir/nvidia_gpu_exporter internal/captures/...h200-mig__580.173.02.txt @ 3a1db3ab
    TableFacts {
        file: "real-world/nvidia-smi/r580-h200-mig-3g71gb.txt",
        layout: TableLayout::Wide,
        driver: "580.173.02",
        cuda: Some("13.0"),
        gpus: 1,
        name: "NVIDIA H200",
        first_bus: "00000000:83:00.0",
        memory_mib: 143771,
        mig_mode: "Enabled",
        mig_gis: &[2],
    },
    // github.com/aws-samples/karpenter-blueprints blueprints/nvidia-gpu-workload/README.md @ 48a21049
    TableFacts {
        file: "real-world/nvidia-smi/r580-t4-kubectl-logs-pod.txt",
        layout: TableLayout::Wide,
        driver: "580.105.08",
        cuda: Some("13.0"),
        gpus: 1,
        name: "Tesla T4",
        first_bus: "00000000:00:1E.0",
        memory_mib: 15360,
        mig_mode: "N/A",
        mig_gis: &[],
    },
    // github.com/utkuozdemir/nvidia_gpu_exporter internal/captures/...h100-mig__590.48.01.txt @ e656cd81
    TableFacts {
        file: "real-world/nvidia-smi/r590-h100-mig-enabled-with-processes.txt",
        layout: TableLayout::Wide,
        driver: "590.48.01",
        cuda: Some("13.1"),
        gpus: 1,
        name: "NVIDIA H100 80GB HBM3",
        first_bus: "00000000:00:09.0",
        memory_mib: 81559,
        mig_mode: "Enabled",
        mig_gis: &[2, 3, 9, 10],
    },
];

struct ListFacts {
    file: &'static str,
    name: &'static str,
    uuid: &'static str,
    mig_profiles: &'static [&'static str],
    first_mig_uuid: Option<&'static str>,
}

const LISTS: &[ListFacts] = &[
    // captured H200 host
    ListFacts {
        file: "nvidia-smi/h200-580/nvidia-smi-L.txt",
        name: "NVIDIA H200",
        uuid: "GPU-4421ad8f-e3e4-cef2-4db5-6e174abaa159",
        mig_profiles: &[],
        first_mig_uuid: None,
    },
    // the same host, inside a container (another host start, so another UUID)
    ListFacts {
        file: "nvidia-smi/h200-580-container/nvidia-smi-L.txt",
        name: "NVIDIA H200",
        uuid: "GPU-5ede5d59-c949-3aca-4b28-11bd00045ab5",
        mig_profiles: &[],
        first_mig_uuid: None,
    },
    // github.com/NVIDIA/cloud-native-docs gpu-operator/manifests/output/mig-nvidia-smi.txt @ 52dcb7b8
    ListFacts {
        file: "real-world/nvidia-smi/r550-h100-mig-list-L-7x1g10gb-single.txt",
        name: "NVIDIA H100 80GB HBM3",
        uuid: "GPU-b4895dbf-9350-2524-a89b-98161ddd9fe4",
        mig_profiles: &[
            "1g.10gb", "1g.10gb", "1g.10gb", "1g.10gb", "1g.10gb", "1g.10gb", "1g.10gb",
        ],
        first_mig_uuid: Some("MIG-3f6f389f-b0cc-5e5c-8e32-eaa8fd067902"),
    },
    // github.com/utkuozdemir/nvidia_gpu_exporter ...h200-mig__580.173.02.txt @ 3a1db3ab
    ListFacts {
        file: "real-world/nvidia-smi/r580-h200-mig-list-L.txt",
        name: "NVIDIA H200",
        uuid: "GPU-00000000-0000-0000-0000-000000000000",
        mig_profiles: &["3g.71gb"],
        first_mig_uuid: Some("MIG-f165f0ad-bde2-5b72-acdf-73bbf48eeb2c"),
    },
    // github.com/utkuozdemir/nvidia_gpu_exporter ...h100-mig__590.48.01.txt @ e656cd81
    ListFacts {
        file: "real-world/nvidia-smi/r590-h100-mig-list-L.txt",
        name: "NVIDIA H100 80GB HBM3",
        uuid: "GPU-00000000-0000-0000-0000-000000000000",
        mig_profiles: &["3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"],
        first_mig_uuid: Some("MIG-00000000-0000-0000-0000-000000000000"),
    },
    // github.com/utkuozdemir/nvidia_gpu_exporter ...h200-mig__590.48.01.txt @ e656cd81
    ListFacts {
        file: "real-world/nvidia-smi/r590-h200-mig-list-L-compute-instances.txt",
        name: "NVIDIA H200",
        uuid: "GPU-00000000-0000-0000-0000-000000000000",
        mig_profiles: &["1c.3g.71gb", "2c.3g.71gb", "2g.35gb", "1g.18gb", "1g.18gb"],
        first_mig_uuid: Some("MIG-00000000-0000-0000-0000-000000000000"),
    },
];

struct CsvFacts {
    file: &'static str,
    name: &'static str,
    uuid: &'static str,
    driver: &'static str,
    memory_mib: u64,
    compute: &'static str,
    bus: &'static str,
}

const CSVS: &[CsvFacts] = &[
    // captured H200 host, with header and extra fields
    CsvFacts {
        file: "nvidia-smi/h200-580/query-gpu.csv",
        name: "NVIDIA H200",
        uuid: "GPU-4421ad8f-e3e4-cef2-4db5-6e174abaa159",
        driver: "580.159.04",
        memory_mib: 143771,
        compute: "9.0",
        bus: "00000000:00:06.0",
    },
    // the same host, in a container, the verify pod's exact query (noheader)
    CsvFacts {
        file: "nvidia-smi/h200-580-container/query-gpu-noheader.csv",
        name: "NVIDIA H200",
        uuid: "GPU-5ede5d59-c949-3aca-4b28-11bd00045ab5",
        driver: "580.159.04",
        memory_mib: 143771,
        compute: "9.0",
        bus: "00000000:00:06.0",
    },
    // github.com/utkuozdemir/nvidia_gpu_exporter ...h100-mig__590.48.01.txt @ e656cd81 (every field)
    CsvFacts {
        file: "real-world/nvidia-smi/query-gpu-csv-all-fields-h100-mig-r590.csv",
        name: "NVIDIA H100 80GB HBM3",
        uuid: "GPU-00000000-0000-0000-0000-000000000000",
        driver: "590.48.01",
        memory_mib: 81559,
        compute: "9.0",
        bus: "00000000:00:09.0",
    },
];

/// Files that are neither table, list nor CSV, with what they must yield.
const OTHERS: &[&str] = &[
    "nvidia-smi/h200-580/version.txt",
    "nvidia-smi/h200-580/nvidia-smi-q.txt",
    "nvidia-smi/h200-580-container/no-device-nodes.txt",
];

#[test]
fn every_fixture_has_expectations() {
    let mut covered: BTreeSet<String> = BTreeSet::new();
    covered.extend(TABLES.iter().map(|t| t.file.to_string()));
    covered.extend(LISTS.iter().map(|t| t.file.to_string()));
    covered.extend(CSVS.iter().map(|t| t.file.to_string()));
    covered.extend(OTHERS.iter().map(|t| (*t).to_string()));
    let all = all_smi_files();
    let missing: Vec<_> = all.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "fixtures without expectations: {missing:?}"
    );
    let stale: Vec<_> = covered.difference(&all).collect();
    assert!(stale.is_empty(), "expectations without fixtures: {stale:?}");
}

#[test]
fn tables_parse_with_known_facts() {
    for t in TABLES {
        let table = parse_table(&read(t.file)).unwrap_or_else(|e| panic!("{}: {e}", t.file));
        assert_eq!(table.layout, t.layout, "{}", t.file);
        assert_eq!(
            table.driver_version.as_deref(),
            Some(t.driver),
            "{}",
            t.file
        );
        assert_eq!(
            table.nvidia_smi_version.as_deref(),
            Some(t.driver),
            "{}",
            t.file
        );
        assert_eq!(table.cuda_version.as_deref(), t.cuda, "{}", t.file);
        assert_eq!(table.gpus.len(), t.gpus, "{}", t.file);
        for (i, g) in table.gpus.iter().enumerate() {
            assert_eq!(g.index as usize, i, "{}", t.file);
            assert_eq!(g.name, t.name, "{}", t.file);
            assert_eq!(g.memory_total_mib, Some(t.memory_mib), "{}", t.file);
            assert_eq!(g.mig_mode.as_deref(), Some(t.mig_mode), "{}", t.file);
        }
        assert_eq!(
            table.gpus[0].pci_bus_id.as_deref(),
            Some(t.first_bus),
            "{}",
            t.file
        );
        let gis: Vec<u32> = table
            .mig_devices
            .iter()
            .map(|m| m.gpu_instance_id)
            .collect();
        assert_eq!(gis, t.mig_gis, "{}", t.file);
    }
}

#[test]
fn eight_h100_bus_ids_in_order() {
    // github.com/leptonai/gpud .../nvidia-smi.550.90.07.out.0.valid @ 5098ae17
    let t = parse_table(&read("real-world/nvidia-smi/r550-8x-h100-80gb-hbm3.txt")).expect("table");
    let buses: Vec<&str> = t
        .gpus
        .iter()
        .filter_map(|g| g.pci_bus_id.as_deref())
        .collect();
    assert_eq!(
        buses,
        [
            "00000000:19:00.0",
            "00000000:3B:00.0",
            "00000000:4C:00.0",
            "00000000:5D:00.0",
            "00000000:9B:00.0",
            "00000000:BB:00.0",
            "00000000:CB:00.0",
            "00000000:DB:00.0"
        ]
    );
}

#[test]
fn mig_table_memory_per_instance() {
    // github.com/utkuozdemir/nvidia_gpu_exporter ...h100-mig__590.48.01.txt @ e656cd81:
    // 3g.40gb (40448MiB), 2g.20gb (20096MiB), 1g.10gb x2 (9984MiB)
    let t = parse_table(&read(
        "real-world/nvidia-smi/r590-h100-mig-enabled-with-processes.txt",
    ))
    .expect("table");
    let mem: Vec<Option<u64>> = t.mig_devices.iter().map(|m| m.memory_total_mib).collect();
    assert_eq!(mem, [Some(40448), Some(20096), Some(9984), Some(9984)]);
    let devs: Vec<u32> = t.mig_devices.iter().map(|m| m.mig_device_index).collect();
    assert_eq!(devs, [0, 1, 2, 3]);
}

#[test]
fn lists_parse_with_known_facts() {
    for l in LISTS {
        let gpus = parse_list(&read(l.file)).unwrap_or_else(|e| panic!("{}: {e}", l.file));
        assert_eq!(gpus.len(), 1, "{}", l.file);
        let g = &gpus[0];
        assert_eq!(g.index, 0);
        assert_eq!(g.name, l.name, "{}", l.file);
        assert_eq!(g.uuid.as_deref(), Some(l.uuid), "{}", l.file);
        let profiles: Vec<&str> = g.mig_devices.iter().map(|m| m.profile.as_str()).collect();
        assert_eq!(profiles, l.mig_profiles, "{}", l.file);
        let idx: Vec<u32> = g.mig_devices.iter().map(|m| m.index).collect();
        let want: Vec<u32> = (0..u32::try_from(l.mig_profiles.len()).expect("small")).collect();
        assert_eq!(idx, want, "{}", l.file);
        assert_eq!(
            g.mig_devices.first().map(|m| m.uuid.as_str()),
            l.first_mig_uuid,
            "{}",
            l.file
        );
    }
}

#[test]
fn csvs_parse_with_known_facts() {
    for c in CSVS {
        let gpus = parse_query_csv(&read(c.file)).unwrap_or_else(|e| panic!("{}: {e}", c.file));
        assert_eq!(gpus.len(), 1, "{}", c.file);
        let g = &gpus[0];
        assert_eq!(g.index, 0, "{}", c.file);
        assert_eq!(g.name, c.name, "{}", c.file);
        assert_eq!(g.uuid.as_deref(), Some(c.uuid), "{}", c.file);
        assert_eq!(g.driver_version.as_deref(), Some(c.driver), "{}", c.file);
        assert_eq!(g.memory_total_mib, Some(c.memory_mib), "{}", c.file);
        assert_eq!(g.compute_cap.as_deref(), Some(c.compute), "{}", c.file);
        assert_eq!(g.pci_bus_id.as_deref(), Some(c.bus), "{}", c.file);
    }
}

#[test]
fn version_file() {
    let v = parse_version(&read("nvidia-smi/h200-580/version.txt")).expect("version");
    assert_eq!(v.nvidia_smi_version.as_deref(), Some("580.159.04"));
    assert_eq!(v.nvml_version.as_deref(), Some("580.159"));
    assert_eq!(v.driver_version.as_deref(), Some("580.159.04"));
    assert_eq!(v.cuda_version.as_deref(), Some("13.0"));
}

#[test]
fn query_q_header_gives_driver_and_cuda() {
    // `nvidia-smi -q` shares the `Key : value` shape of `--version` for its header.
    let v = parse_version(&read("nvidia-smi/h200-580/nvidia-smi-q.txt")).expect("-q");
    assert_eq!(v.driver_version.as_deref(), Some("580.159.04"));
    assert_eq!(v.cuda_version.as_deref(), Some("13.0"));
}

#[test]
fn container_without_device_nodes_is_nvml_unknown_error() {
    // h200-580-container/README.md: `nvidia-smi -L` without the device nodes, exit 255.
    let text = read("nvidia-smi/h200-580-container/no-device-nodes.txt");
    let want = SmiFailure::NvmlUnknownError {
        line: "Failed to initialize NVML: Unknown Error".into(),
    };
    assert_eq!(classify_failure(&text), Some(want.clone()));
    assert_eq!(parse_list(&text), Err(want.clone()));
    assert_eq!(parse_query_csv(&text), Err(want.clone()));
    assert_eq!(parse_version(&text), Err(want));
}

#[test]
fn list_and_query_merge_by_uuid() {
    let list = parse_list(&read("nvidia-smi/h200-580-container/nvidia-smi-L.txt")).expect("list");
    let query = parse_query_csv(&read(
        "nvidia-smi/h200-580-container/query-gpu-noheader.csv",
    ))
    .expect("q");
    let merged = merge_list_and_query(&list, &query);
    assert_eq!(merged.len(), 1);
    assert_eq!(merged[0].memory_total_mib, Some(143771));
    assert_eq!(merged[0].pci_bus_id.as_deref(), Some("00000000:00:06.0"));
    assert_eq!(merged[0].driver_version.as_deref(), Some("580.159.04"));
}

#[test]
fn table_and_list_agree_on_gpu_count_for_mig_fixtures() {
    // Same capture (nvidia_gpu_exporter ...h100-mig__590.48.01.txt @ e656cd81), two forms.
    let table = parse_table(&read(
        "real-world/nvidia-smi/r590-h100-mig-enabled-with-processes.txt",
    ))
    .expect("table");
    let list = parse_list(&read("real-world/nvidia-smi/r590-h100-mig-list-L.txt")).expect("list");
    assert_eq!(table.gpus.len(), list.len());
    assert_eq!(table.mig_devices.len(), list[0].mig_devices.len());
}
