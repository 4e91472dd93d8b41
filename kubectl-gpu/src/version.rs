//! Version strings as Kubernetes, RKE2, K3s, containerd and the GPU Operator
//! chart print them, parsed into comparable values.
//!
//! - kubelet: `v1.31.5+rke2r1`, `v1.33.5+k3s1`, `v1.30.2`, `v1.29.4-eks-036c24b`
//! - container runtime: `containerd://2.1.5-k3s1`, `cri-o://1.30.1`, `docker://24.0.7`
//! - chart: `v25.3.4`, `25.10.1`, `v1.8.2`

use serde::Serialize;
use std::cmp::Ordering;
use std::fmt;

/// A `major.minor.patch` triple; ordering is numeric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Triple {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl Triple {
    pub const fn new(major: u64, minor: u64, patch: u64) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// Parses `1.31.5`, `v1.31.5`, `1.31` (patch 0), ignoring anything after the
    /// numeric part (`-k3s1`, `+rke2r1`, `-rc.1`).
    pub fn parse_loose(s: &str) -> Option<Self> {
        let s = s.trim().trim_start_matches('v');
        let numeric: String = s
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let mut parts = numeric.split('.').filter(|p| !p.is_empty());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().map(str::parse).transpose().ok()?.unwrap_or(0);
        let patch = parts.next().map(str::parse).transpose().ok()?.unwrap_or(0);
        Some(Self::new(major, minor, patch))
    }

    /// The `major.minor` line, e.g. `1.33`.
    pub fn line(&self) -> (u64, u64) {
        (self.major, self.minor)
    }
}

impl fmt::Display for Triple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Which Kubernetes distribution a kubelet version string names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Distribution {
    Rke2,
    K3s,
    /// Any other distribution (kubeadm, EKS, GKE, ...).
    Other,
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Distribution::Rke2 => "RKE2",
            Distribution::K3s => "K3s",
            Distribution::Other => "Kubernetes",
        })
    }
}

/// A kubelet version such as `v1.31.5+rke2r1`: the Kubernetes triple plus
/// the distribution and its release number (`r1` → 1, `k3s2` → 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KubeletVersion {
    pub raw: String,
    pub kubernetes: Triple,
    pub distribution: Distribution,
    /// RKE2 `rke2rN` / K3s `k3sN` release number; 0 for other distributions.
    pub release: u64,
}

impl KubeletVersion {
    pub fn parse(raw: &str) -> Option<Self> {
        let kubernetes = Triple::parse_loose(raw)?;
        let (distribution, release) = match raw.split_once('+') {
            Some((_, build)) if build.starts_with("rke2r") => {
                (Distribution::Rke2, build[5..].parse().unwrap_or(0))
            }
            Some((_, build)) if build.starts_with("k3s") => {
                (Distribution::K3s, build[3..].parse().unwrap_or(0))
            }
            _ => (Distribution::Other, 0),
        };
        Some(Self {
            raw: raw.to_string(),
            kubernetes,
            distribution,
            release,
        })
    }

    /// Compares against a distribution release like `v1.32.13+rke2r2`:
    /// Kubernetes triple first, then the release number.
    pub fn cmp_release(&self, triple: Triple, release: u64) -> Ordering {
        self.kubernetes
            .cmp(&triple)
            .then(self.release.cmp(&release))
    }
}

impl fmt::Display for KubeletVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// The container runtime a node reports in `status.nodeInfo.containerRuntimeVersion`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ContainerRuntime {
    Containerd { version: Triple, raw: String },
    CriO { raw: String },
    Docker { raw: String },
    Unknown { raw: String },
}

impl ContainerRuntime {
    pub fn parse(raw: &str) -> Self {
        let raw_owned = raw.to_string();
        match raw.split_once("://") {
            Some(("containerd", v)) => match Triple::parse_loose(v) {
                Some(version) => ContainerRuntime::Containerd {
                    version,
                    raw: raw_owned,
                },
                None => ContainerRuntime::Unknown { raw: raw_owned },
            },
            Some(("cri-o", _)) => ContainerRuntime::CriO { raw: raw_owned },
            Some(("docker", _)) => ContainerRuntime::Docker { raw: raw_owned },
            _ => ContainerRuntime::Unknown { raw: raw_owned },
        }
    }

    pub fn containerd(&self) -> Option<Triple> {
        match self {
            ContainerRuntime::Containerd { version, .. } => Some(*version),
            _ => None,
        }
    }

    pub fn raw(&self) -> &str {
        match self {
            ContainerRuntime::Containerd { raw, .. }
            | ContainerRuntime::CriO { raw }
            | ContainerRuntime::Docker { raw }
            | ContainerRuntime::Unknown { raw } => raw,
        }
    }
}

/// A GPU Operator chart version (`v25.3.4`); ordering is numeric.
pub type ChartVersion = Triple;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_versions_of_each_distribution() {
        let v = KubeletVersion::parse("v1.31.5+rke2r1").unwrap();
        assert_eq!(v.kubernetes, Triple::new(1, 31, 5));
        assert_eq!(v.distribution, Distribution::Rke2);
        assert_eq!(v.release, 1);
        let v = KubeletVersion::parse("v1.32.13+rke2r2").unwrap();
        assert_eq!(v.release, 2);
        assert_eq!(
            v.cmp_release(Triple::new(1, 32, 13), 1),
            std::cmp::Ordering::Greater
        );
        let v = KubeletVersion::parse("v1.33.5+k3s1").unwrap();
        assert_eq!(v.distribution, Distribution::K3s);
        let v = KubeletVersion::parse("v1.29.4-eks-036c24b").unwrap();
        assert_eq!(v.distribution, Distribution::Other);
        assert_eq!(v.kubernetes, Triple::new(1, 29, 4));
        assert!(KubeletVersion::parse("garbage").is_none());
    }

    #[test]
    fn container_runtimes() {
        assert_eq!(
            ContainerRuntime::parse("containerd://2.1.5-k3s1").containerd(),
            Some(Triple::new(2, 1, 5))
        );
        assert_eq!(
            ContainerRuntime::parse("containerd://1.7.23-k3s2").containerd(),
            Some(Triple::new(1, 7, 23))
        );
        assert!(matches!(
            ContainerRuntime::parse("cri-o://1.30.1"),
            ContainerRuntime::CriO { .. }
        ));
        assert!(matches!(
            ContainerRuntime::parse("docker://24.0.7"),
            ContainerRuntime::Docker { .. }
        ));
    }

    #[test]
    fn chart_versions_order_numerically() {
        let a = Triple::parse_loose("v25.3.4").unwrap();
        let b = Triple::parse_loose("25.10.1").unwrap();
        assert!(a < b);
        assert_eq!(Triple::parse_loose("v1.8"), Some(Triple::new(1, 8, 0)));
    }
}
