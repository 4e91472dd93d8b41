//! `kubectl gpu verify`, the pure parts: the verify pod's spec
//! ([`spec`]), the script it runs and the parsing of its log ([`output`]),
//! the checks of that output against the node's labels ([`checks`]), and
//! the diagnosis of a pod that did not succeed ([`diagnosis`]). Creating,
//! waiting for and deleting the pods is the caller's I/O.

pub mod checks;
pub mod diagnosis;
pub mod output;
pub mod run;
pub mod spec;

pub use checks::{
    Check, CheckId, CheckStatus, GpuRequest, NodeGpuFacts, PodGpus, check_unique_uuids,
    check_vectoradd, run_checks,
};
pub use diagnosis::{Diagnosis, DiagnosisInput, DiagnosisKind, diagnose, diagnose_smi_failure};
pub use output::{SmiResult, VectorAddResult, parse_smi_log, parse_vectoradd_log, verify_script};
pub use spec::{VerifySpecInput, Workload, build_verify_pod};
