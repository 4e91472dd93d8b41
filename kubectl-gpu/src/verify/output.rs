//! The verify container's script and the parsing of its log.
//!
//! The script ([`verify_script`]) runs `nvidia-smi -L`, the CSV query and
//! `nvidia-smi --version`, each between `### kubectl-gpu begin NAME` and
//! `### kubectl-gpu end NAME rc=N` markers, and exits with the first
//! non-zero rc of the list and query commands so the pod fails when
//! nvidia-smi fails. [`parse_smi_log`] reads that log back, tolerating a
//! truncated log (pod killed mid-way), stray stderr lines and a log without
//! any marker (the image's entrypoint failed, or another command ran).
//! [`parse_vectoradd_log`] reads the CUDA `vectorAdd` sample's log.

use serde::Serialize;

use crate::nvidia_smi::{
    Gpu, QUERY_GPU_ARG, SmiFailure, SmiTable, SmiVersion, TableGpu, classify_failure,
    merge_list_and_query, parse_list, parse_query_csv, parse_table, parse_version,
};

/// Every marker line starts with this.
pub const MARKER_PREFIX: &str = "### kubectl-gpu ";

/// The three commands of the verify script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SectionName {
    /// `nvidia-smi -L`
    List,
    /// `nvidia-smi --query-gpu=… --format=csv,noheader`
    Query,
    /// `nvidia-smi --version`
    Version,
}

impl SectionName {
    pub const ALL: [SectionName; 3] = [SectionName::List, SectionName::Query, SectionName::Version];

    pub fn as_str(self) -> &'static str {
        match self {
            SectionName::List => "list",
            SectionName::Query => "query",
            SectionName::Version => "version",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        SectionName::ALL.into_iter().find(|n| n.as_str() == s)
    }

    /// The command the script runs for this section.
    pub fn command(self) -> String {
        match self {
            SectionName::List => "nvidia-smi -L".to_string(),
            SectionName::Query => format!("nvidia-smi {QUERY_GPU_ARG} --format=csv,noheader"),
            SectionName::Version => "nvidia-smi --version".to_string(),
        }
    }

    /// Whether a non-zero rc of this section fails the pod. `--version`
    /// does not: older drivers do not know the flag, and it adds no GPU
    /// facts that `-L` and the query lack.
    pub fn is_fatal(self) -> bool {
        !matches!(self, SectionName::Version)
    }
}

/// The POSIX sh script the verify container runs (`sh -c SCRIPT`).
pub fn verify_script() -> String {
    let mut s = String::from(
        "# kubectl-gpu verify: run nvidia-smi three ways between markers.\n\
         # nvidia-smi comes from the host driver, injected by the NVIDIA runtime.\n\
         rc_first=0\n\
         section() {\n\
         \x20 name=\"$1\"; fatal=\"$2\"; shift 2\n\
         \x20 echo \"### kubectl-gpu begin $name\"\n\
         \x20 \"$@\" 2>&1\n\
         \x20 rc=$?\n\
         \x20 echo \"### kubectl-gpu end $name rc=$rc\"\n\
         \x20 if [ \"$fatal\" = 1 ] && [ \"$rc_first\" -eq 0 ] && [ \"$rc\" -ne 0 ]; then rc_first=$rc; fi\n\
         }\n",
    );
    for name in SectionName::ALL {
        s.push_str(&format!(
            "section {} {} {}\n",
            name.as_str(),
            u8::from(name.is_fatal()),
            name.command()
        ));
    }
    s.push_str("exit \"$rc_first\"\n");
    s
}

/// One marked section of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Section {
    pub name: SectionName,
    pub lines: Vec<String>,
    /// From the end marker; `None` when the end marker is missing.
    pub rc: Option<i32>,
    /// Whether the end marker was seen.
    pub ended: bool,
}

impl Section {
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// The log split at its markers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MarkedLog {
    pub sections: Vec<Section>,
    /// Lines outside any section (entrypoint errors, stray stderr).
    pub outside: Vec<String>,
    pub markers_found: bool,
}

impl MarkedLog {
    /// The last section of that name.
    pub fn section(&self, name: SectionName) -> Option<&Section> {
        self.sections.iter().rev().find(|s| s.name == name)
    }
}

enum Marker {
    Begin(SectionName),
    End(SectionName, Option<i32>),
}

/// Finds a marker anywhere in the line (stderr may have been written into
/// the same line before it). Returns the text before the marker, and the marker.
fn find_marker(line: &str) -> Option<(&str, Marker)> {
    let pos = line.find(MARKER_PREFIX)?;
    let before = &line[..pos];
    let mut words = line[pos + MARKER_PREFIX.len()..].split_whitespace();
    let verb = words.next()?;
    let name = SectionName::parse(words.next()?)?;
    match verb {
        "begin" => Some((before, Marker::Begin(name))),
        "end" => {
            let rc = words
                .find_map(|w| w.strip_prefix("rc="))
                .and_then(|v| v.parse().ok());
            Some((before, Marker::End(name, rc)))
        }
        _ => None,
    }
}

/// Splits a verify log into its marked sections.
pub fn split_marked_log(log: &str) -> MarkedLog {
    let mut out = MarkedLog::default();
    let mut open: Option<Section> = None;
    for raw in log.lines() {
        let line = raw.trim_end_matches('\r');
        let (text, marker) = match find_marker(line) {
            Some((before, m)) => (before, Some(m)),
            None => (line, None),
        };
        if !text.trim().is_empty() || marker.is_none() {
            match open.as_mut() {
                Some(s) => s.lines.push(text.to_string()),
                None => out.outside.push(text.to_string()),
            }
        }
        match marker {
            None => {}
            Some(Marker::Begin(name)) => {
                out.markers_found = true;
                if let Some(prev) = open.take() {
                    out.sections.push(prev);
                }
                open = Some(Section {
                    name,
                    lines: Vec::new(),
                    rc: None,
                    ended: false,
                });
            }
            Some(Marker::End(name, rc)) => {
                out.markers_found = true;
                match open.take() {
                    Some(mut s) if s.name == name => {
                        s.rc = rc;
                        s.ended = true;
                        out.sections.push(s);
                    }
                    other => {
                        // An end without its begin: keep what we have and
                        // record the rc on an empty section.
                        if let Some(prev) = other {
                            out.sections.push(prev);
                        }
                        out.sections.push(Section {
                            name,
                            lines: Vec::new(),
                            rc,
                            ended: true,
                        });
                    }
                }
            }
        }
    }
    if let Some(s) = open.take() {
        out.sections.push(s);
    }
    // Drop trailing blank lines kept only for layout.
    while out.outside.last().is_some_and(|l| l.trim().is_empty()) {
        out.outside.pop();
    }
    out
}

/// A failure seen in one section (or in the unmarked log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SectionFailure {
    /// `None` for a log without markers.
    pub section: Option<SectionName>,
    pub rc: Option<i32>,
    pub failure: SmiFailure,
}

/// What the nvidia-smi verify pod's log says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SmiResult {
    /// `-L` merged with the query (details by UUID).
    pub gpus: Vec<Gpu>,
    pub version: Option<SmiVersion>,
    /// Only for unmarked logs that hold the default table.
    pub table: Option<SmiTable>,
    pub failures: Vec<SectionFailure>,
    /// The first non-zero rc of the fatal sections, `Some(0)` when all
    /// fatal sections ended with 0, `None` when unknown.
    pub exit_code: Option<i32>,
    pub markers_found: bool,
    /// A section began without ending, or expected sections are missing.
    pub truncated: bool,
    pub missing_sections: Vec<SectionName>,
    /// Lines outside any section.
    pub outside: Vec<String>,
}

impl SmiResult {
    /// The script ran to the end, both fatal commands returned 0 and at
    /// least one GPU was listed.
    pub fn succeeded(&self) -> bool {
        self.markers_found && !self.truncated && self.exit_code == Some(0) && !self.gpus.is_empty()
    }

    /// The first failure seen, if any.
    pub fn primary_failure(&self) -> Option<&SmiFailure> {
        self.failures.first().map(|f| &f.failure)
    }

    /// The driver version the pod saw: `--version`, else the query, else the table.
    pub fn driver_version(&self) -> Option<&str> {
        self.version
            .as_ref()
            .and_then(|v| v.driver_version.as_deref())
            .or_else(|| self.gpus.iter().find_map(|g| g.driver_version.as_deref()))
            .or_else(|| {
                self.table
                    .as_ref()
                    .and_then(|t| t.driver_version.as_deref())
            })
    }
}

/// Parses the nvidia-smi verify pod's log.
pub fn parse_smi_log(log: &str) -> SmiResult {
    let marked = split_marked_log(log);
    let mut result = SmiResult {
        gpus: Vec::new(),
        version: None,
        table: None,
        failures: Vec::new(),
        exit_code: None,
        markers_found: marked.markers_found,
        truncated: false,
        missing_sections: Vec::new(),
        outside: marked.outside.clone(),
    };
    if !marked.markers_found {
        parse_unmarked(log, &mut result);
        return result;
    }

    let mut list_gpus = Vec::new();
    let mut query_gpus = Vec::new();
    for name in SectionName::ALL {
        let Some(section) = marked.section(name) else {
            result.missing_sections.push(name);
            continue;
        };
        if !section.ended {
            result.truncated = true;
        }
        let text = section.text();
        let failure = match name {
            SectionName::List => parse_list(&text).map(|g| list_gpus = g).err(),
            SectionName::Query => parse_query_csv(&text).map(|g| query_gpus = g).err(),
            SectionName::Version => parse_version(&text).map(|v| result.version = Some(v)).err(),
        };
        // A known failure text wins over "parsed but rc != 0".
        let failure = failure.or_else(|| match section.rc {
            Some(rc) if rc != 0 => Some(classify_failure(&text).unwrap_or(SmiFailure::Unknown {
                first_line: format!("{} exited with rc={rc}", name.command()),
            })),
            _ => None,
        });
        if let Some(failure) = failure {
            result.failures.push(SectionFailure {
                section: Some(name),
                rc: section.rc,
                failure,
            });
        }
    }
    if !result.missing_sections.is_empty() {
        result.truncated = true;
    }
    result.gpus = merge_list_and_query(&list_gpus, &query_gpus);

    let fatal_rcs: Vec<Option<i32>> = SectionName::ALL
        .into_iter()
        .filter(|n| n.is_fatal())
        .map(|n| marked.section(n).and_then(|s| s.rc))
        .collect();
    result.exit_code = fatal_rcs
        .iter()
        .flatten()
        .copied()
        .find(|rc| *rc != 0)
        .or_else(|| fatal_rcs.iter().all(Option::is_some).then_some(0));
    // A failure printed outside the sections (entrypoint) is evidence too.
    if result.failures.is_empty()
        && result.gpus.is_empty()
        && let Some(f) = classify_failure(&marked.outside.join("\n"))
    {
        result.failures.push(SectionFailure {
            section: None,
            rc: None,
            failure: f,
        });
    }
    result
}

fn parse_unmarked(log: &str, result: &mut SmiResult) {
    result.truncated = false;
    if let Ok(gpus) = parse_list(log) {
        result.gpus = gpus;
    }
    if let Ok(table) = parse_table(log) {
        // A plain `nvidia-smi` (the image's own command): count the table's GPUs.
        if result.gpus.is_empty() {
            result.gpus = table
                .gpus
                .iter()
                .map(|t| gpu_from_table(t, &table))
                .collect();
        }
        result.table = Some(table);
    }
    if result.gpus.is_empty() && result.table.is_none() {
        let failure = parse_list(log).err().unwrap_or(SmiFailure::Empty);
        result.failures.push(SectionFailure {
            section: None,
            rc: None,
            failure,
        });
    }
}

/// A [`Gpu`] from a table row: no UUID, the name possibly truncated.
fn gpu_from_table(t: &TableGpu, table: &SmiTable) -> Gpu {
    Gpu {
        index: t.index,
        name: t.name.clone(),
        uuid: None,
        driver_version: table.driver_version.clone(),
        memory_total_mib: t.memory_total_mib,
        compute_cap: None,
        pci_bus_id: t.pci_bus_id.clone(),
        mig_devices: Vec::new(),
    }
}

/// What the CUDA `vectorAdd` sample printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VectorAddResult {
    /// A `Test PASSED` line was printed.
    pub passed: bool,
    /// From `[Vector addition of N elements]`.
    pub elements: Option<u64>,
    /// The first failure line (`Failed to …`, `Test FAILED`, `Result verification failed …`).
    pub failure_line: Option<String>,
    /// The CUDA error string from `(error code …)`, e.g.
    /// `CUDA driver version is insufficient for CUDA runtime version`.
    pub cuda_error: Option<String>,
    /// An nvidia-smi style failure (e.g. the shell's `not found`) if one occurs.
    pub smi_failure: Option<SmiFailure>,
}

/// Parses the log of `nvcr.io/nvidia/k8s/cuda-sample:vectoradd-*`. Expected
/// output (NVIDIA GPU Operator getting-started docs): `[Vector addition of 50000 elements]` … `Test PASSED` / `Done`.
pub fn parse_vectoradd_log(log: &str) -> VectorAddResult {
    let mut r = VectorAddResult {
        passed: false,
        elements: None,
        failure_line: None,
        cuda_error: None,
        smi_failure: classify_failure(log),
    };
    for line in log.lines().map(|l| l.trim_end_matches('\r').trim()) {
        if line.contains("Test PASSED") {
            r.passed = true;
        }
        if let Some(rest) = line.strip_prefix("[Vector addition of ")
            && let Some(n) = rest.split_whitespace().next()
        {
            r.elements = n.parse().ok();
        }
        let is_failure = line.starts_with("Failed to")
            || line.contains("Test FAILED")
            || line.starts_with("Result verification failed");
        if is_failure && r.failure_line.is_none() {
            r.failure_line = Some(line.to_string());
        }
        if r.cuda_error.is_none()
            && let Some(p) = line.find("(error code ")
        {
            let rest = &line[p + "(error code ".len()..];
            let end = rest.rfind(')').unwrap_or(rest.len());
            r.cuda_error = Some(rest[..end].trim().to_string());
        }
    }
    if r.failure_line.is_some() {
        r.passed = false;
    }
    r
}
