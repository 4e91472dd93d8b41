//! GPU sharing on a node (time-slicing, MPS), as GPU feature discovery
//! labels it and the device plugin advertises it. GFD writes
//! `nvidia.com/gpu.sharing-strategy` (`none`, `time-slicing`, `mps`;
//! k8s-device-plugin v0.15.0+ api/config/v1/sharing.go), `nvidia.com/gpu.replicas`
//! (the configured replicas; 1 with a config that does not share the
//! resource, 0 without a config: internal/lm/resource.go) and a `-SHARED`
//! product suffix unless `renameByDefault` renames the resource to
//! `nvidia.com/gpu.shared`. The device plugin then advertises GPUs ×
//! replicas on that resource. A node selects its config with the
//! `nvidia.com/device-plugin.config` label; the config-manager sidecar
//! follows that label, but not edits of the ConfigMap (the operator does not
//! watch it: `kubectl rollout restart` the device plugin). Pure: a view of
//! [`NodeFacts`], shown by `report`, judged by `check-runtime`
//! (`gpu-sharing`).

use serde::Serialize;

use crate::facts::NodeFacts;
use crate::labels;

/// The sharing view of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SharingView {
    /// `none`, `time-slicing`, `mps` (GFD); `None` without the label.
    pub strategy: Option<String>,
    pub replicas: Option<u64>,
    /// Physical GPUs (`nvidia.com/gpu.count`).
    pub gpus: Option<u64>,
    /// `nvidia.com/device-plugin.config`: the config the node selects.
    pub config: Option<String>,
    /// The resource carrying the replicas: `nvidia.com/gpu.shared` when
    /// renamed, else `nvidia.com/gpu`.
    pub resource: String,
    /// What the node advertises on [`SharingView::resource`].
    pub advertised: Option<i64>,
    /// `nvidia.com/mps.capable`.
    pub mps_capable: Option<bool>,
}

impl SharingView {
    /// `None` on a node without sharing labels or a selected config.
    pub fn of(node: &NodeFacts) -> Option<Self> {
        let l = &node.labels;
        let get = |k: &str| l.get(k).filter(|v| !v.is_empty()).cloned();
        let strategy = get(labels::GPU_SHARING_STRATEGY);
        let replicas = get(labels::GPU_REPLICAS).and_then(|v| v.parse().ok());
        let config = get(labels::DEVICE_PLUGIN_CONFIG);
        let shared = node
            .gpu
            .other_resources
            .get(labels::RESOURCE_GPU_SHARED)
            .copied();
        if strategy.is_none() && config.is_none() && shared.is_none() && replicas.unwrap_or(0) < 2 {
            return None;
        }
        let renamed = shared.is_some_and(|n| n > 0);
        Some(SharingView {
            strategy,
            replicas,
            gpus: node.gpu.count_label,
            config,
            resource: if renamed {
                labels::RESOURCE_GPU_SHARED
            } else {
                labels::RESOURCE_GPU
            }
            .to_owned(),
            advertised: if renamed { shared } else { node.gpu.capacity },
            mps_capable: get(labels::MPS_CAPABLE).map(|v| v == "true"),
        })
    }

    /// GPUs are shared: replicas of 2 or more (time-slicing or MPS).
    pub fn shared(&self) -> bool {
        self.replicas.unwrap_or(0) >= 2
    }

    /// The strategy, defaulting to time-slicing for a shared node whose GFD
    /// predates the `sharing-strategy` label.
    pub fn strategy_name(&self) -> &str {
        match self.strategy.as_deref() {
            Some(s) => s,
            None if self.shared() => "time-slicing",
            None => "none",
        }
    }

    /// GPUs × replicas: what the device plugin should advertise.
    pub fn expected(&self) -> Option<i64> {
        Some((self.gpus? * self.replicas?) as i64)
    }

    /// Shared, but the node does not advertise GPUs × replicas.
    pub fn not_multiplied(&self) -> bool {
        self.shared() && self.expected().is_some() && self.advertised != self.expected()
    }

    /// `time-slicing 4x1 = 4 nvidia.com/gpu` for tables.
    pub fn summary(&self) -> String {
        if !self.shared() {
            return match &self.config {
                Some(c) => format!("none (config {c})"),
                None => "none".into(),
            };
        }
        format!(
            "{} {}x{} = {} {}",
            self.strategy_name(),
            self.replicas.unwrap_or(0),
            self.gpus.map_or("?".into(), |g| g.to_string()),
            self.advertised.map_or("?".into(), |a| a.to_string()),
            self.resource
        )
    }
}
