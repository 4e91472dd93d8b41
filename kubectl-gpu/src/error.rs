//! The library's error type: every variant names the object it concerns and
//! what the user can do next. Binaries wrap it with `anyhow` and map it to
//! exit codes in one place.

use thiserror::Error;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum Error {
    #[error("{0}")]
    Other(String),

    /// A Helm release Secret that could not be decoded.
    #[error(
        "Helm release secret {secret}: {reason}; check it with `kubectl get secret {secret} -o yaml` (type helm.sh/release.v1)"
    )]
    HelmRelease { secret: String, reason: String },

    /// A chart that could not be read (archive, directory or `helm show`).
    #[error("chart {chart}: {reason}")]
    ChartRead { chart: String, reason: String },

    /// A chart that is not NVIDIA's GPU Operator.
    #[error(
        "chart {chart} is `{name}`, not the NVIDIA GPU Operator (`gpu-operator`); pass the GPU Operator chart, e.g. nvidia/gpu-operator from https://helm.ngc.nvidia.com/nvidia"
    )]
    NotGpuOperatorChart { chart: String, name: String },

    /// A chart version with a known defect on RKE2 and no value that works around it.
    #[error(
        "GPU Operator chart {version} is known to fail on RKE2/K3s: {summary}; {fix} (or pass --force to install it anyway)"
    )]
    KnownBadChart {
        version: String,
        summary: String,
        fix: String,
    },

    /// No RKE2 or K3s node in the cluster.
    #[error(
        "no RKE2 or K3s node found (nodes: {nodes}); these values are for RKE2/K3s. Pass --allow-generic to compute only distribution-neutral values"
    )]
    NotRke2 { nodes: String },

    /// A requested combination of values that cannot work on these nodes or this chart.
    #[error("refused: {reason}")]
    ValuesRefused { reason: String },
}
