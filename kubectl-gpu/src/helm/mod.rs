//! Everything Helm: reading the GPU Operator chart ([`chart`]), computing the
//! values RKE2/K3s needs ([`values`], fed by [`cluster`] from Node objects),
//! and decoding Helm's release Secrets ([`release`]) to find what is
//! installed. Pure functions over texts and objects; the `helm-rke2gpu`
//! binary does the process and API I/O.

pub mod chart;
pub mod cluster;
pub mod release;
pub mod values;

pub use chart::{Chart, ChartMeta, ChartSource, ChartTexts};
pub use release::{HelmRelease, decode_release, latest_release};
pub use values::{
    ClusterInputs, ComputedValue, ComputedValues, NodeInput, PodGpuAccess, ValuesOptions,
    compute_values, user_set_conflicts,
};
