//! Shared by the verify tests: fixtures and verify logs composed from the
//! real H200 captures in `tests/fixtures/nvidia-smi/` (driver 580.159.04; see
//! `h200-580-container/README.md`), wrapped in the verify script's markers.

use std::fs;
use std::path::Path;

pub fn fixture(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(rel);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// One marked section as the verify script prints it.
pub fn section(name: &str, body: &str, rc: i32) -> String {
    format!(
        "### kubectl-gpu begin {name}\n{}\n### kubectl-gpu end {name} rc={rc}\n",
        body.trim_end()
    )
}

/// A successful verify log of one H200 inside a container.
pub fn h200_log() -> String {
    section(
        "list",
        &fixture("nvidia-smi/h200-580-container/nvidia-smi-L.txt"),
        0,
    ) + &section(
        "query",
        &fixture("nvidia-smi/h200-580-container/query-gpu-noheader.csv"),
        0,
    ) + &section("version", &fixture("nvidia-smi/h200-580/version.txt"), 0)
}
