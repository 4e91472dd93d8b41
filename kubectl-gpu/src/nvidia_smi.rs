//! Parsers for `nvidia-smi` output, machine-readable forms first.
//!
//! Prefer [`parse_list`] (`nvidia-smi -L`) and [`parse_query_csv`]
//! (`--query-gpu=… --format=csv[,noheader]`); [`parse_version`] reads
//! `nvidia-smi --version`. [`parse_table`] scrapes the default table only for
//! what the machine-readable forms may lack (header versions, MIG mode), in
//! both the narrow R525-and-earlier and the wide R535+ layouts.
//!
//! Every parser returns either typed data or a [`SmiFailure`]: the
//! classification of the error texts nvidia-smi (or the shell) prints when
//! the driver, NVML or the binary itself is not usable in the container.
//! All functions are pure and tolerate noise lines (kubectl's `Defaulted
//! container …`, interleaved stderr, CRLF line ends).

use serde::Serialize;

/// The `--query-gpu` fields the verify pod asks for, in order.
pub const QUERY_FIELDS: [&str; 7] = [
    "index",
    "name",
    "uuid",
    "driver_version",
    "memory.total",
    "compute_cap",
    "pci.bus_id",
];

/// The `--query-gpu` argument matching [`QUERY_FIELDS`].
pub const QUERY_GPU_ARG: &str =
    "--query-gpu=index,name,uuid,driver_version,memory.total,compute_cap,pci.bus_id";

/// One MIG device as listed by `nvidia-smi -L` under its parent GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigDevice {
    /// The `Device N` number (per parent GPU).
    pub index: u32,
    /// The profile, e.g. `1g.10gb`, `3g.71gb` or `1c.3g.71gb`.
    pub profile: String,
    /// `MIG-<uuid>` (R470+ canonical) or `MIG-GPU-<uuid>/<gi>/<ci>` (older).
    pub uuid: String,
}

/// One GPU as seen by nvidia-smi. Fields missing from the source form (for
/// example everything except name and UUID in `-L`) are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gpu {
    pub index: u32,
    pub name: String,
    pub uuid: Option<String>,
    pub driver_version: Option<String>,
    pub memory_total_mib: Option<u64>,
    pub compute_cap: Option<String>,
    pub pci_bus_id: Option<String>,
    pub mig_devices: Vec<MigDevice>,
}

impl Gpu {
    fn named(index: u32, name: String) -> Self {
        Gpu {
            index,
            name,
            uuid: None,
            driver_version: None,
            memory_total_mib: None,
            compute_cap: None,
            pci_bus_id: None,
            mig_devices: Vec::new(),
        }
    }
}

/// `nvidia-smi --version`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SmiVersion {
    pub nvidia_smi_version: Option<String>,
    pub nvml_version: Option<String>,
    pub driver_version: Option<String>,
    pub cuda_version: Option<String>,
}

/// Which column layout the default table used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TableLayout {
    /// 79 columns: R525 and earlier.
    Narrow,
    /// 87 or 89 columns: R530 (transitional) and R535+.
    Wide,
}

/// One GPU row block of the default table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableGpu {
    pub index: u32,
    /// As printed; nvidia-smi truncates long names with `...` in the narrow layout.
    pub name: String,
    pub pci_bus_id: Option<String>,
    pub memory_total_mib: Option<u64>,
    /// `Enabled`, `Disabled` or `N/A` (the `MIG M.` cell).
    pub mig_mode: Option<String>,
}

/// One row of the table's `MIG devices:` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableMigDevice {
    pub gpu_index: u32,
    pub gpu_instance_id: u32,
    pub compute_instance_id: u32,
    pub mig_device_index: u32,
    pub memory_total_mib: Option<u64>,
}

/// The default `nvidia-smi` table, reduced to what a fallback needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SmiTable {
    pub layout: TableLayout,
    pub nvidia_smi_version: Option<String>,
    pub driver_version: Option<String>,
    /// `None` when the table prints `CUDA Version: N/A`.
    pub cuda_version: Option<String>,
    pub gpus: Vec<TableGpu>,
    pub mig_devices: Vec<TableMigDevice>,
}

/// Why nvidia-smi produced no usable output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SmiFailure {
    /// `NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver…`
    #[error("driver not loaded: {line}")]
    DriverNotLoaded { line: String },
    /// `Failed to initialize NVML: Driver/library version mismatch`, optionally
    /// followed by `NVML library version: x`.
    #[error("driver/library version mismatch: {line}")]
    VersionMismatch {
        line: String,
        nvml_library_version: Option<String>,
    },
    /// `Failed to initialize NVML: Unknown Error`: typically the device nodes
    /// or cgroup device rules are missing in the container.
    #[error("NVML unknown error: {line}")]
    NvmlUnknownError { line: String },
    /// Any other `Failed to initialize NVML: …` (e.g. `Insufficient Permissions`).
    #[error("NVML initialisation failed: {line}")]
    NvmlInitFailed { line: String, reason: String },
    /// `nvidia-smi: not found`, `executable file not found in $PATH`,
    /// `No such file or directory`: the runtime did not inject the driver.
    #[error("nvidia-smi not found: {line}")]
    NotFound { line: String },
    /// `No devices were found`.
    #[error("no devices found: {line}")]
    NoDevices { line: String },
    /// Nothing was printed at all.
    #[error("no output")]
    Empty,
    /// Output that is neither a result nor a known failure.
    #[error("unrecognised nvidia-smi output: {first_line}")]
    Unknown { first_line: String },
}

impl SmiFailure {
    /// The line that shows the failure (empty for [`SmiFailure::Empty`]).
    pub fn evidence(&self) -> &str {
        match self {
            SmiFailure::DriverNotLoaded { line }
            | SmiFailure::VersionMismatch { line, .. }
            | SmiFailure::NvmlUnknownError { line }
            | SmiFailure::NvmlInitFailed { line, .. }
            | SmiFailure::NotFound { line }
            | SmiFailure::NoDevices { line } => line,
            SmiFailure::Empty => "",
            SmiFailure::Unknown { first_line } => first_line,
        }
    }
}

fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(|l| l.trim_end_matches('\r'))
}

fn first_meaningful_line(text: &str) -> Option<&str> {
    lines(text).map(str::trim).find(|l| !l.is_empty())
}

/// Classifies a known failure text anywhere in `text`. Returns `None` when
/// no known failure pattern occurs (that is not proof of success).
pub fn classify_failure(text: &str) -> Option<SmiFailure> {
    let all: Vec<&str> = lines(text).map(str::trim).collect();
    for (i, line) in all.iter().enumerate() {
        let lower = line.to_ascii_lowercase();
        if lower.contains("couldn't communicate with the nvidia driver") {
            return Some(SmiFailure::DriverNotLoaded {
                line: (*line).to_string(),
            });
        }
        if lower.contains("driver/library version mismatch") {
            let nvml_library_version = all[i + 1..]
                .iter()
                .chain(all[..i].iter())
                .find_map(|l| l.strip_prefix("NVML library version:"))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty());
            return Some(SmiFailure::VersionMismatch {
                line: (*line).to_string(),
                nvml_library_version,
            });
        }
        if let Some(pos) = lower.find("failed to initialize nvml:") {
            let reason = line[pos + "failed to initialize nvml:".len()..]
                .trim()
                .to_string();
            if reason.eq_ignore_ascii_case("unknown error") {
                return Some(SmiFailure::NvmlUnknownError {
                    line: (*line).to_string(),
                });
            }
            return Some(SmiFailure::NvmlInitFailed {
                line: (*line).to_string(),
                reason,
            });
        }
        if lower.contains("no devices were found") {
            return Some(SmiFailure::NoDevices {
                line: (*line).to_string(),
            });
        }
        if lower.contains("nvidia-smi") && is_not_found_text(&lower) {
            return Some(SmiFailure::NotFound {
                line: (*line).to_string(),
            });
        }
    }
    None
}

/// `sh: 1: nvidia-smi: not found` (dash), `sh: nvidia-smi: not found`
/// (busybox), `nvidia-smi: command not found` (bash), the runtime's
/// `exec: "nvidia-smi": executable file not found in $PATH`, and
/// `…/nvidia-smi: No such file or directory`.
fn is_not_found_text(lower: &str) -> bool {
    lower.contains("nvidia-smi: not found")
        || lower.contains("nvidia-smi: command not found")
        || lower.contains("executable file not found in $path")
        || lower.contains("no such file or directory")
}

fn failure_or_unknown(text: &str) -> SmiFailure {
    if let Some(f) = classify_failure(text) {
        return f;
    }
    match first_meaningful_line(text) {
        None => SmiFailure::Empty,
        Some(l) => SmiFailure::Unknown {
            first_line: l.to_string(),
        },
    }
}

/// Parses one `GPU N: NAME (UUID: GPU-…)` line.
fn parse_list_gpu_line(line: &str) -> Option<Gpu> {
    let rest = line.trim().strip_prefix("GPU ")?;
    let (idx, rest) = rest.split_once(':')?;
    let index: u32 = idx.trim().parse().ok()?;
    let rest = rest.trim();
    let open = rest.rfind("(UUID:")?;
    let name = rest[..open].trim();
    let uuid = rest[open + "(UUID:".len()..]
        .trim()
        .trim_end_matches(')')
        .trim();
    if name.is_empty() || uuid.is_empty() {
        return None;
    }
    let mut gpu = Gpu::named(index, name.to_string());
    gpu.uuid = Some(uuid.to_string());
    Some(gpu)
}

/// Parses one `MIG PROFILE Device N: (UUID: MIG-…)` line.
fn parse_list_mig_line(line: &str) -> Option<MigDevice> {
    let rest = line.trim().strip_prefix("MIG ")?;
    let rest = rest.trim_start();
    let (profile, rest) = rest.split_once(char::is_whitespace)?;
    let rest = rest.trim_start().strip_prefix("Device")?;
    let (idx, rest) = rest.split_once(':')?;
    let index: u32 = idx.trim().parse().ok()?;
    let open = rest.find("(UUID:")?;
    let uuid = rest[open + "(UUID:".len()..]
        .trim()
        .trim_end_matches(')')
        .trim();
    if uuid.is_empty() {
        return None;
    }
    Some(MigDevice {
        index,
        profile: profile.to_string(),
        uuid: uuid.to_string(),
    })
}

/// Parses `nvidia-smi -L`. MIG lines attach to the GPU line above them.
/// Other lines are ignored; without any GPU line the output is classified.
pub fn parse_list(text: &str) -> Result<Vec<Gpu>, SmiFailure> {
    let mut gpus: Vec<Gpu> = Vec::new();
    for line in lines(text) {
        if let Some(gpu) = parse_list_gpu_line(line) {
            gpus.push(gpu);
        } else if let Some(mig) = parse_list_mig_line(line)
            && let Some(parent) = gpus.last_mut()
        {
            parent.mig_devices.push(mig);
        }
    }
    if gpus.is_empty() {
        Err(failure_or_unknown(text))
    } else {
        Ok(gpus)
    }
}

/// A `--query-gpu` value, `None` for `[N/A]`, `[Not Supported]`,
/// `[Requested functionality has been deprecated]`, `N/A` or empty.
fn csv_value(raw: &str) -> Option<String> {
    let v = raw.trim();
    if v.is_empty() || v == "N/A" || (v.starts_with('[') && v.ends_with(']')) {
        None
    } else {
        Some(v.to_string())
    }
}

/// `143771 MiB` or `143771` (with `nounits`) → 143771.
fn parse_mib(raw: &str) -> Option<u64> {
    let v = csv_value(raw)?;
    let v = v.trim_end_matches("MiB").trim();
    v.parse().ok()
}

/// A header cell without its unit: `memory.total [MiB]` → `memory.total`.
fn header_field(cell: &str) -> String {
    let c = cell.trim();
    let c = match c.find(" [") {
        Some(p) => &c[..p],
        None => c,
    };
    c.to_ascii_lowercase()
}

fn is_header_line(cells: &[&str]) -> bool {
    cells.iter().any(|c| {
        matches!(
            header_field(c).as_str(),
            "index" | "name" | "uuid" | "gpu_uuid" | "driver_version" | "pci.bus_id"
        )
    })
}

/// Parses `--query-gpu` CSV output. With a header line, columns are matched
/// by name (any field list works; unknown fields are ignored). Without one,
/// the columns are taken to be [`QUERY_FIELDS`].
pub fn parse_query_csv(text: &str) -> Result<Vec<Gpu>, SmiFailure> {
    parse_query_csv_with_fields(text, &QUERY_FIELDS)
}

/// Like [`parse_query_csv`], with the field order for header-less output.
pub fn parse_query_csv_with_fields(text: &str, fields: &[&str]) -> Result<Vec<Gpu>, SmiFailure> {
    let mut header: Option<Vec<String>> = None;
    let mut gpus = Vec::new();
    for line in lines(text) {
        if line.trim().is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').collect();
        if header.is_none() && is_header_line(&cells) {
            header = Some(cells.iter().map(|c| header_field(c)).collect());
            continue;
        }
        let names: Vec<String> = match &header {
            Some(h) => h.clone(),
            None => fields.iter().map(|f| f.to_ascii_lowercase()).collect(),
        };
        // A data row has the header's number of cells (or at least the
        // fields we need); anything shorter is noise (stderr, messages).
        if cells.len() < 2 || cells.len() < names.len().min(3) {
            continue;
        }
        if header.is_none() && cells.len() != names.len() {
            continue;
        }
        let get = |field: &str| -> Option<&str> {
            names
                .iter()
                .position(|n| n == field)
                .and_then(|p| cells.get(p).copied())
        };
        let Some(name) = get("name").and_then(csv_value) else {
            continue;
        };
        let index = get("index")
            .and_then(csv_value)
            .and_then(|v| v.parse().ok())
            .unwrap_or(u32::try_from(gpus.len()).unwrap_or(u32::MAX));
        let mut gpu = Gpu::named(index, name);
        gpu.uuid = get("uuid").or_else(|| get("gpu_uuid")).and_then(csv_value);
        gpu.driver_version = get("driver_version").and_then(csv_value);
        gpu.memory_total_mib = get("memory.total").and_then(parse_mib);
        gpu.compute_cap = get("compute_cap").and_then(csv_value);
        gpu.pci_bus_id = get("pci.bus_id").and_then(csv_value);
        gpus.push(gpu);
    }
    if gpus.is_empty() {
        Err(failure_or_unknown(text))
    } else {
        Ok(gpus)
    }
}

/// Parses `nvidia-smi --version`.
pub fn parse_version(text: &str) -> Result<SmiVersion, SmiFailure> {
    let mut v = SmiVersion::default();
    for line in lines(text) {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        let slot = match key.trim().to_ascii_lowercase().as_str() {
            "nvidia-smi version" => &mut v.nvidia_smi_version,
            "nvml version" => &mut v.nvml_version,
            "driver version" => &mut v.driver_version,
            "cuda version" => &mut v.cuda_version,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(value.to_string());
        }
    }
    if v.driver_version.is_none() && v.nvidia_smi_version.is_none() {
        Err(failure_or_unknown(text))
    } else {
        Ok(v)
    }
}

/// The value after `label` on a table header line, up to the next run of
/// two spaces or `|`.
fn header_value<'a>(line: &'a str, label: &str) -> Option<&'a str> {
    let pos = line.find(label)?;
    let rest = line[pos + label.len()..].trim_start();
    let end = rest.find(|c: char| c.is_whitespace() || c == '|')?;
    let v = &rest[..end];
    if v.is_empty() { None } else { Some(v) }
}

/// `00000000:00:06.0`-like bus id inside a cell.
fn find_bus_id(cell: &str) -> Option<String> {
    cell.split_whitespace()
        .find(|tok| {
            let parts: Vec<&str> = tok.split(':').collect();
            parts.len() == 3
                && parts[2].contains('.')
                && parts
                    .iter()
                    .all(|p| p.chars().all(|c| c.is_ascii_hexdigit() || c == '.'))
        })
        .map(str::to_string)
}

/// `0MiB / 143771MiB` → 143771.
fn find_total_mib(cell: &str) -> Option<u64> {
    let (_, total) = cell.split_once('/')?;
    let total = total.trim();
    let digits = total.strip_suffix("MiB")?.trim();
    digits.parse().ok()
}

/// The cells between `|` bars (without the empty outer pieces).
fn table_cells(line: &str) -> Option<Vec<&str>> {
    let t = line.trim();
    if !t.starts_with('|') {
        return None;
    }
    let inner = t.trim_start_matches('|').trim_end_matches('|');
    Some(inner.split('|').collect())
}

/// `   0  NVIDIA H200                    On  ` → (0, "NVIDIA H200").
fn parse_gpu_name_cell(cell: &str) -> Option<(u32, String)> {
    let t = cell.trim();
    let (idx, rest) = t.split_once(char::is_whitespace)?;
    let index: u32 = idx.parse().ok()?;
    let rest = rest.trim();
    let name = rest
        .strip_suffix("On")
        .or_else(|| rest.strip_suffix("Off"))?
        .trim();
    if name.is_empty() {
        return None;
    }
    Some((index, name.to_string()))
}

/// Parses the default `nvidia-smi` table (fallback only).
pub fn parse_table(text: &str) -> Result<SmiTable, SmiFailure> {
    let all: Vec<&str> = lines(text).collect();
    let Some(header_at) = all
        .iter()
        .position(|l| l.contains("NVIDIA-SMI") && l.contains("Driver Version"))
    else {
        return Err(failure_or_unknown(text));
    };
    let header = all[header_at];
    let width = header.trim().chars().count();
    let layout = if width < 85 {
        TableLayout::Narrow
    } else {
        TableLayout::Wide
    };
    let cuda_version = header_value(header, "CUDA Version:")
        .filter(|v| *v != "N/A")
        .map(str::to_string);
    let mut table = SmiTable {
        layout,
        nvidia_smi_version: header_value(header, "NVIDIA-SMI").map(str::to_string),
        driver_version: header_value(header, "Driver Version:").map(str::to_string),
        cuda_version,
        gpus: Vec::new(),
        mig_devices: Vec::new(),
    };
    let mut in_mig = false;
    let mut i = header_at + 1;
    while i < all.len() {
        let line = all[i];
        if line.contains("MIG devices:") {
            in_mig = true;
        } else if line.contains("Processes:") {
            in_mig = false;
        }
        let Some(cells) = table_cells(line) else {
            i += 1;
            continue;
        };
        if in_mig {
            if let Some(dev) = parse_mig_row(&cells) {
                table.mig_devices.push(dev);
            }
            i += 1;
            continue;
        }
        if cells.len() >= 3
            && let Some((index, name)) = parse_gpu_name_cell(cells[0])
            && let Some(bus) = find_bus_id(cells[1])
        {
            let second = all.get(i + 1).and_then(|l| table_cells(l));
            let third = all.get(i + 2).and_then(|l| table_cells(l));
            let memory_total_mib = second
                .as_ref()
                .and_then(|c| c.get(1))
                .and_then(|c| find_total_mib(c));
            let mig_mode = third
                .as_ref()
                .and_then(|c| c.last())
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty());
            table.gpus.push(TableGpu {
                index,
                name,
                pci_bus_id: Some(bus),
                memory_total_mib,
                mig_mode,
            });
            i += 3;
            continue;
        }
        i += 1;
    }
    Ok(table)
}

/// `|  0    2   0   0  |   44MiB / 71424MiB  | …` in the `MIG devices:` section.
fn parse_mig_row(cells: &[&str]) -> Option<TableMigDevice> {
    let ids: Vec<u32> = cells
        .first()?
        .split_whitespace()
        .map(|t| t.parse().ok())
        .collect::<Option<Vec<u32>>>()?;
    if ids.len() != 4 {
        return None;
    }
    Some(TableMigDevice {
        gpu_index: ids[0],
        gpu_instance_id: ids[1],
        compute_instance_id: ids[2],
        mig_device_index: ids[3],
        memory_total_mib: cells.get(1).and_then(|c| find_total_mib(c)),
    })
}

/// Fills the details of `-L` GPUs from `--query-gpu` rows, matched by UUID
/// (then by index when a side has no UUID). Query rows with no `-L`
/// counterpart are appended. MIG devices come from `-L` only.
pub fn merge_list_and_query(list: &[Gpu], query: &[Gpu]) -> Vec<Gpu> {
    let mut out: Vec<Gpu> = list.to_vec();
    for q in query {
        let pos = out
            .iter()
            .position(|g| g.uuid.is_some() && g.uuid == q.uuid)
            .or_else(|| {
                out.iter()
                    .position(|g| g.index == q.index && (g.uuid.is_none() || q.uuid.is_none()))
            });
        match pos {
            Some(p) => {
                let g = &mut out[p];
                if g.uuid.is_none() {
                    g.uuid.clone_from(&q.uuid);
                }
                if g.driver_version.is_none() {
                    g.driver_version.clone_from(&q.driver_version);
                }
                if g.memory_total_mib.is_none() {
                    g.memory_total_mib = q.memory_total_mib;
                }
                if g.compute_cap.is_none() {
                    g.compute_cap.clone_from(&q.compute_cap);
                }
                if g.pci_bus_id.is_none() {
                    g.pci_bus_id.clone_from(&q.pci_bus_id);
                }
            }
            None => out.push(q.clone()),
        }
    }
    out
}
