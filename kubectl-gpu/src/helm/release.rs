//! Placeholder until the Helm release decoder lands.

use k8s_openapi::api::core::v1::Secret;

pub struct HelmRelease {
    pub name: String,
    pub chart_version: String,
    pub revision: u64,
}

pub fn latest_gpu_operator_release(_secrets: &[Secret]) -> Option<HelmRelease> {
    None
}
