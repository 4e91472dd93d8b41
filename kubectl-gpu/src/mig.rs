//! MIG on a node, as the GPU Operator's MIG manager and GPU feature
//! discovery label it and the device plugin advertises it: the strategy
//! (`nvidia.com/mig.strategy`: `single` advertises MIG devices as
//! `nvidia.com/gpu`, `mixed` as `nvidia.com/mig-<profile>`), the config the
//! node asks for (`nvidia.com/mig.config`) against the state the MIG manager
//! reports (`nvidia.com/mig.config.state`: `pending`, `rebooting`,
//! `success`, `failed`), the operands it pauses while it repartitions
//! (`nvidia.com/gpu.deploy.<operand>=paused-for-mig-change`), and the MIG
//! devices GFD counts (`nvidia.com/mig-<profile>.count`) against what the
//! node advertises. Pure: a view of [`NodeFacts`]; `report` shows it and
//! `check-runtime` judges it (`mig-state`).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::facts::NodeFacts;
use crate::labels;

/// The value the MIG manager gives operand deploy labels while it works.
pub const PAUSED_FOR_MIG_CHANGE: &str = "paused-for-mig-change";

/// One MIG profile on a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MigProfile {
    /// `nvidia.com/mig-<profile>.count` (GFD).
    pub labelled: Option<u64>,
    /// `nvidia.com/mig-<profile>` allocatable (mixed strategy).
    pub advertised: Option<i64>,
}

/// The MIG view of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MigView {
    pub capable: Option<bool>,
    pub strategy: Option<String>,
    /// `nvidia.com/mig.config`: the layout asked for (`all-1g.10gb`, …).
    pub config: Option<String>,
    /// `nvidia.com/mig.config.state`.
    pub state: Option<String>,
    /// By profile (`1g.10gb`).
    pub profiles: BTreeMap<String, MigProfile>,
    /// Operands paused for the MIG change (`device-plugin`, `dcgm`, …).
    pub paused: Vec<String>,
}

impl MigView {
    /// `None` on a node without any MIG label or resource.
    pub fn of(node: &NodeFacts) -> Option<Self> {
        let l = &node.labels;
        let get = |k: &str| l.get(k).filter(|v| !v.is_empty()).cloned();
        let mut v = MigView {
            capable: node.gpu.mig_capable,
            strategy: get(labels::MIG_STRATEGY),
            config: get(labels::MIG_CONFIG),
            state: get(labels::MIG_CONFIG_STATE),
            ..Default::default()
        };
        for (k, val) in l {
            if let Some(rest) = k.strip_prefix(labels::RESOURCE_MIG_PREFIX)
                && let Some(profile) = rest.strip_suffix(".count")
            {
                v.profiles.entry(profile.to_owned()).or_default().labelled = val.parse().ok();
            }
            if let Some(op) = k.strip_prefix(labels::DEPLOY_PREFIX)
                && val == PAUSED_FOR_MIG_CHANGE
            {
                v.paused.push(op.to_owned());
            }
        }
        for (r, n) in &node.gpu.other_resources {
            if let Some(profile) = r.strip_prefix(labels::RESOURCE_MIG_PREFIX) {
                v.profiles.entry(profile.to_owned()).or_default().advertised = Some(*n);
            }
        }
        let any = v.capable == Some(true)
            || v.strategy.is_some()
            || v.config.is_some()
            || v.state.is_some()
            || !v.profiles.is_empty()
            || !v.paused.is_empty();
        any.then_some(v)
    }

    /// MIG is in use: a config other than `all-disabled`, or MIG devices.
    pub fn enabled(&self) -> bool {
        self.config.as_deref().is_some_and(|c| c != "all-disabled")
            || self.profiles.values().any(|p| p.labelled.unwrap_or(0) > 0)
    }

    /// Profiles whose GFD count and advertised resource differ (mixed
    /// strategy): the device plugin has not picked up the new layout.
    pub fn unadvertised(&self) -> Vec<(String, u64, i64)> {
        if self.strategy.as_deref() != Some("mixed") {
            return Vec::new();
        }
        self.profiles
            .iter()
            .filter_map(|(name, p)| {
                let want = p.labelled?;
                let have = p.advertised.unwrap_or(0);
                (want as i64 != have).then(|| (name.clone(), want, have))
            })
            .collect()
    }

    /// What the MIG column shows: `mixed all-balanced success`.
    pub fn summary(&self) -> String {
        [
            self.strategy.as_deref(),
            self.config.as_deref(),
            self.state.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ")
    }
}
