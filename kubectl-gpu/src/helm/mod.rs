//! Everything Helm: reading the GPU Operator chart ([`chart`]), computing the
//! values RKE2/K3s needs ([`values`], fed by [`cluster`] from Node objects),
//! decoding Helm's release Secrets ([`release`]) to find what is installed,
//! and `helm rke2gpu`'s commands ([`plugin`]): the Helm command lines
//! ([`invocation`]), the `--output helmchart` manifest ([`helmchart`]) and
//! the uninstall notes ([`uninstall`]), and what an upgrade shows and
//! applies first: the chart's CRDs against the cluster's ([`crds`]) and the
//! values diffs ([`upgrade`]); the images a release will pull
//! ([`images`]). Pure functions over texts and
//! objects, except [`plugin`], which runs `helm` and talks to the cluster.

pub mod chart;
pub mod cluster;
pub mod crds;
pub mod helmchart;
pub mod images;
pub mod invocation;
pub mod mirror;
pub mod plugin;
pub mod release;
pub mod uninstall;
pub mod upgrade;
pub mod values;

pub use chart::{Chart, ChartMeta, ChartSource, ChartTexts};
pub use release::{HelmRelease, decode_release, latest_release};
pub use values::{
    ClusterInputs, ComputedValue, ComputedValues, NodeInput, PodGpuAccess, ValuesOptions,
    compute_values, user_set_conflicts,
};
