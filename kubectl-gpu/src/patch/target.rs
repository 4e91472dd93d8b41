//! [`PatchTarget`]: what to patch on one node (paths, capabilities from the
//! version matrix, the unit to restart), from a cluster node's facts or
//! from offline options.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::matrix::{self, NodePaths, Rke2Feature};
use crate::patch::plan::{
    self, Capabilities, GPU_RKE2_CONFIG_NAME, NodeState, PatchOptions, Plan, PlanInput,
    TEMPLATE_DROP_IN_NAME,
};
use crate::patch::{DROP_IN_NAME, GENERIC_CONFIG};
use crate::version::{Distribution, KubeletVersion, Triple};

/// What to patch on one host and how to restart it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PatchTarget {
    /// Node name (offline: the config file).
    pub node: String,
    pub distribution: Distribution,
    #[serde(skip)]
    pub paths: NodePaths,
    #[serde(skip)]
    pub caps: Capabilities,
    /// systemd unit to restart: rke2-server/rke2-agent (k3s/k3s-agent), or
    /// `containerd` in generic mode.
    pub unit: String,
    /// Generic containerd (not RKE2): the config file to patch.
    pub generic_config: Option<String>,
    /// Notes on how the capabilities were decided (offline defaults).
    pub notes: Vec<String>,
}

/// The planner's capabilities for an RKE2/K3s version and containerd. With
/// no RKE2 version known, every RKE2 feature is assumed.
pub fn capabilities(kubelet: Option<&KubeletVersion>, containerd: Triple) -> Capabilities {
    Capabilities {
        default_runtime_flag: kubelet
            .is_none_or(|k| matrix::has(k, Rke2Feature::DefaultRuntimeFlag)),
        base_templates: kubelet.is_none_or(|k| matrix::has(k, Rke2Feature::BaseTemplate)),
        containerd,
    }
}

impl PatchTarget {
    /// A target from its parts: the planner's capabilities for `kubelet`
    /// (RKE2/K3s; `None`: every RKE2 feature) and `containerd`; generic
    /// containerd restarts `containerd` and patches [`GENERIC_CONFIG`].
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        node: &str,
        distribution: Distribution,
        paths: NodePaths,
        kubelet: Option<&KubeletVersion>,
        containerd: Triple,
        generic: bool,
        unit: &str,
        notes: Vec<String>,
    ) -> Self {
        let mut caps = capabilities(kubelet, containerd);
        let (unit, generic_config) = if generic {
            caps.default_runtime_flag = false;
            ("containerd".to_owned(), Some(GENERIC_CONFIG.to_owned()))
        } else {
            (unit.to_owned(), None)
        };
        Self {
            node: node.to_owned(),
            distribution,
            paths,
            caps,
            unit,
            generic_config,
            notes,
        }
    }

    /// The target for an RKE2 or K3s node, or a generic containerd node when
    /// `generic` is set (refused otherwise).
    pub fn for_node(
        facts: &crate::facts::NodeFacts,
        data_dir: Option<&str>,
        generic: bool,
    ) -> Result<Self> {
        let containerd = facts.containerd().ok_or_else(|| Error::NotContainerd {
            node: facts.name.clone(),
            runtime: facts.runtime.raw().to_owned(),
        })?;
        if !facts.is_rke2_like() && !generic {
            return Err(Error::NotRke2Node {
                node: facts.name.clone(),
                distribution: facts.distribution.to_string(),
                kubelet: facts.kubelet_raw.clone(),
            });
        }
        let data_dir = data_dir.or(facts.args.data_dir.as_deref());
        let paths = NodePaths::new(facts.distribution, data_dir);
        let kubelet = facts.kubelet.as_ref().filter(|_| facts.is_rke2_like());
        let mut notes = Vec::new();
        if facts.is_rke2_like() && kubelet.is_none() {
            notes.push(format!(
                "kubelet version {:?} not understood: assuming current RKE2 features",
                facts.kubelet_raw
            ));
        }
        Ok(Self::new(
            &facts.name,
            facts.distribution,
            paths,
            kubelet,
            containerd,
            generic,
            facts.role.unit(facts.distribution),
            notes,
        ))
    }

    /// The config file the planner reads as "generated".
    pub fn config_path(&self) -> &str {
        self.generic_config
            .as_deref()
            .unwrap_or(&self.paths.generated_config)
    }

    /// The RKE2 (or K3s) config dir, `/etc/rancher/<program>`.
    fn etc_dir(&self) -> &str {
        self.paths
            .config_yaml
            .strip_suffix("/config.yaml")
            .unwrap_or("/etc/rancher/rke2")
    }

    /// Planner paths are RKE2's; map them to K3s's `/etc/rancher/k3s`.
    fn map_path(&self, p: &str) -> String {
        match p.strip_prefix("/etc/rancher/rke2") {
            Some(rest) if self.etc_dir() != "/etc/rancher/rke2" => {
                format!("{}{rest}", self.etc_dir())
            }
            _ => p.to_owned(),
        }
    }

    /// Every file `patch-containerd` may write, for `--rollback`.
    pub fn managed_files(&self) -> Vec<String> {
        if let Some(cfg) = &self.generic_config {
            let dir = cfg
                .rsplit_once('/')
                .map(|(d, _)| d)
                .unwrap_or("/etc/containerd");
            return vec![cfg.clone(), format!("{dir}/conf.d/{DROP_IN_NAME}")];
        }
        vec![
            format!("{}/{DROP_IN_NAME}", self.paths.drop_in_v3),
            format!("{}/{DROP_IN_NAME}", self.paths.drop_in_v2),
            format!("{}/{TEMPLATE_DROP_IN_NAME}", self.paths.drop_in_v3),
            format!("{}/{TEMPLATE_DROP_IN_NAME}", self.paths.drop_in_v2),
            format!("{}/{GPU_RKE2_CONFIG_NAME}", self.paths.config_yaml_d),
            self.paths.template_v3.clone(),
            self.paths.template_v2.clone(),
        ]
    }

    /// The planner input for a state and options.
    pub fn plan_input(&self, state: NodeState, options: PatchOptions) -> PlanInput {
        let mut options = options;
        if let Some(c) = &self.generic_config {
            options.generic_containerd = true;
            options.config_path = Some(c.clone());
        }
        PlanInput {
            state,
            caps: self.caps,
            data_dir: self.paths.data_dir.clone(),
            options,
        }
    }

    /// Plan ([`crate::patch::plan::plan`]), with paths mapped for K3s and the capability
    /// notes added.
    pub fn plan(&self, input: &PlanInput) -> Result<Plan> {
        let mut p = plan::plan(input)?;
        for c in &mut p.changes {
            c.path = self.map_path(&c.path);
        }
        let mut reasons = self.notes.clone();
        reasons.append(&mut p.reasons);
        p.reasons = reasons;
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_follow_the_matrix() {
        let old = KubeletVersion::parse("v1.26.7+rke2r1");
        let c = capabilities(old.as_ref(), Triple::new(1, 7, 0));
        assert!(!c.default_runtime_flag && !c.base_templates);
        let new = KubeletVersion::parse("v1.33.10+rke2r1");
        let c = capabilities(new.as_ref(), Triple::new(2, 2, 0));
        assert!(c.default_runtime_flag && c.base_templates);
        assert!(capabilities(None, Triple::new(2, 0, 0)).base_templates);
    }
}
