//! Helm: the release secret format, GPU Operator charts, and values computed
//! for this cluster and chart version.

pub mod release;
