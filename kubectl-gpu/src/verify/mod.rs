//! `kubectl gpu verify`: one pod per GPU node proves it gets its GPU.
//!
//! Pure parts: the options ([`options`]), the runtime class per node
//! ([`runtime_class`]), node selection ([`targets`]), the verify pod's spec
//! ([`spec`]), the script it runs and the parsing of its log ([`output`]),
//! the checks of that output against the node's labels ([`checks`]), the
//! diagnosis of a pod that did not succeed ([`diagnosis`]), the results
//! ([`results`]), the table ([`table`]) and progress text ([`progress`]).
//! I/O: one node's pod ([`node_run`]) and the run ([`run`]).

pub mod checks;
pub mod diagnosis;
pub mod node_run;
pub mod options;
pub mod output;
pub mod progress;
pub mod results;
pub mod run;
pub mod runtime_class;
pub mod spec;
pub mod table;
pub mod targets;

pub use checks::{
    Check, CheckId, CheckStatus, GpuRequest, NodeGpuFacts, PodGpus, check_unique_uuids,
    check_vectoradd, run_checks,
};
pub use diagnosis::{
    Diagnosis, DiagnosisInput, DiagnosisKind, diagnose, diagnose_smi_failure,
    diagnose_smi_failure_in,
};
pub use options::{RuntimeClassChoice, VerifyOptions};
pub use output::{SmiResult, VectorAddResult, parse_smi_log, parse_vectoradd_log, verify_script};
pub use progress::{NoProgress, Progress};
pub use results::{NodeResult, Outcome, VerifyReport};
pub use spec::{VerifySpecInput, Workload, build_verify_pod};
