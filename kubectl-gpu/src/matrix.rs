//! The versioned knowledge: which RKE2 release has which containerd feature,
//! and which GPU Operator chart version needs which values and has which
//! known defects. Every row cites its source; checks, the patcher and the
//! Helm plugin ask these tables and hard-code no version themselves.
//!
//! The facts were read in rancher/rke2, k3s-io/k3s, NVIDIA/gpu-operator,
//! NVIDIA/nvidia-container-toolkit, containerd/containerd and rancher/rke2-docs
//! at the tags, commits, issues and PRs each row cites.
//!
//! Why one file of over 800 lines: this is the one place where versions may
//! appear (the `version_literals` test fails on a version anywhere else), so
//! a reviewer checks every boundary here, next to its source. It holds tables
//! and small lookups only; the blocks near the end serve one command each
//! (patch-containerd, helm, check-runtime, verify) and say so.

use crate::version::{Distribution, KubeletVersion, Triple};
use serde::Serialize;

/// How sure a row is: read in source, or inferred from neighbouring facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Confidence {
    Confirmed,
    Inferred,
}

/// The first release of one RKE2 line (`1.33`) that carries a feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LineRelease {
    pub kubernetes: Triple,
    /// `rke2rN`
    pub release: u64,
}

const fn lr(major: u64, minor: u64, patch: u64, release: u64) -> LineRelease {
    LineRelease {
        kubernetes: Triple::new(major, minor, patch),
        release,
    }
}

/// An RKE2 feature that was backported to several lines at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rke2Feature {
    /// `{{ template "base" . }}` in user templates (k3s PR #7991).
    BaseTemplate,
    /// The `default-runtime` agent flag / config key.
    DefaultRuntimeFlag,
    /// `imports = [".../config-v3.toml.d/*.toml"]` in the generated config (k3s PR #13680).
    DropInImports,
    /// `nvidia-cdi` runtime auto-detection (k3s PR #11065).
    NvidiaCdiDetection,
    /// The bundled `rke2-runtimeclasses` chart (`nvidia`, `nvidia-experimental`, `crun`).
    RuntimeClassesChart,
    /// containerd 2.x (config schema v3) shipped by default.
    Containerd2,
    /// containerd ≥ 2.1 (needed by the GPU Operator's NRI plugin).
    Containerd21,
    /// `profile: cis` exempts `compliance-operator-system` from PSA (was
    /// `cis-operator-system`; rancher/rke2 commit fd52255c6).
    PsaComplianceOperatorExemption,
}

/// One row of the RKE2 feature table.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureRow {
    pub feature: Rke2Feature,
    pub description: &'static str,
    /// First release per line that has it.
    pub first_releases: &'static [LineRelease],
    /// Every release of this line and later lines has it.
    pub all_lines_from: (u64, u64),
    pub confidence: Confidence,
    pub source: &'static str,
}

/// The RKE2 feature table.
pub const RKE2_FEATURES: &[FeatureRow] = &[
    FeatureRow {
        feature: Rke2Feature::BaseTemplate,
        description: "user templates may start with {{ template \"base\" . }}",
        first_releases: &[
            lr(1, 24, 17, 1),
            lr(1, 25, 13, 1),
            lr(1, 26, 8, 1),
            lr(1, 27, 5, 1),
            lr(1, 28, 1, 1),
        ],
        all_lines_from: (1, 29),
        confidence: Confidence::Inferred,
        source: "k3s PR #7991 (2023-07-31); v1.26.8 and v1.28.1 proven from k3s history, other lines inferred",
    },
    FeatureRow {
        feature: Rke2Feature::DefaultRuntimeFlag,
        description: "`default-runtime` in /etc/rancher/rke2/config.yaml renders default_runtime_name",
        first_releases: &[lr(1, 26, 12, 1), lr(1, 27, 9, 1), lr(1, 28, 5, 1)],
        all_lines_from: (1, 29),
        confidence: Confidence::Confirmed,
        source: "rancher/rke2 commits 542e848b6, 1559ff0e9, 71ac57d72 (Dec 2023)",
    },
    FeatureRow {
        feature: Rke2Feature::DropInImports,
        description: "generated config.toml imports <data-dir>/agent/etc/containerd/config-v3.toml.d/*.toml",
        first_releases: &[
            lr(1, 32, 13, 2),
            lr(1, 33, 10, 1),
            lr(1, 34, 6, 1),
            lr(1, 35, 3, 1),
        ],
        all_lines_from: (1, 36),
        confidence: Confidence::Inferred,
        source: "k3s PR #13680 (2026-02-25); v1.34.6+rke2r1 and v1.32.13+rke2r2 proven via k3s pins, v1.33.10/v1.35.3 inferred",
    },
    FeatureRow {
        feature: Rke2Feature::NvidiaCdiDetection,
        description: "RKE2 detects nvidia-container-runtime.cdi and renders an `nvidia-cdi` runtime",
        first_releases: &[
            lr(1, 28, 15, 1),
            lr(1, 29, 10, 1),
            lr(1, 30, 6, 1),
            lr(1, 31, 2, 1),
        ],
        all_lines_from: (1, 32),
        confidence: Confidence::Inferred,
        source: "k3s PR #11065 (2024-10-10), October 2024 releases; v1.29.10 proven",
    },
    FeatureRow {
        feature: Rke2Feature::RuntimeClassesChart,
        description: "RKE2 ships RuntimeClasses nvidia, nvidia-experimental and crun (rke2-runtimeclasses chart)",
        first_releases: &[
            lr(1, 29, 13, 1),
            lr(1, 30, 9, 1),
            lr(1, 31, 5, 1),
            lr(1, 32, 1, 1),
        ],
        all_lines_from: (1, 33),
        confidence: Confidence::Confirmed,
        source: "rancher/rke2 commit \"Add runtime classes hook and runtimes chart\" (2025-01-13)",
    },
    FeatureRow {
        feature: Rke2Feature::Containerd2,
        description: "RKE2 ships containerd 2.x and renders version = 3 from config-v3.toml.tmpl",
        first_releases: &[lr(1, 31, 6, 1), lr(1, 32, 2, 1)],
        all_lines_from: (1, 33),
        confidence: Confidence::Confirmed,
        source: "rke2-docs advanced.md version gate; rancher/hardened-containerd tags in rke2 Dockerfile (2025-02-21)",
    },
    FeatureRow {
        feature: Rke2Feature::Containerd21,
        description: "RKE2 ships containerd ≥ 2.1 (GPU Operator NRI plugin)",
        first_releases: &[
            lr(1, 31, 13, 1),
            lr(1, 32, 9, 1),
            lr(1, 33, 5, 1),
            lr(1, 34, 1, 1),
        ],
        all_lines_from: (1, 35),
        confidence: Confidence::Confirmed,
        source: "rke2-docs add-ons/gpu_operators.md NRI tab (September 2025 releases)",
    },
    FeatureRow {
        feature: Rke2Feature::PsaComplianceOperatorExemption,
        description: "profile: cis PSA exemptions are kube-system, compliance-operator-system, tigera-operator (before: cis-operator-system)",
        first_releases: &[
            lr(1, 32, 13, 2),
            lr(1, 33, 10, 1),
            lr(1, 34, 6, 1),
            lr(1, 35, 3, 1),
        ],
        all_lines_from: (1, 36),
        confidence: Confidence::Confirmed,
        source: "rancher/rke2 commit fd52255c6 (\"Update PSA namespace exceptions\", #9867, 2026-03-06) pkg/rke2/psa.go restrictedPSAConfig; first tag per line read from pkg/rke2/psa.go at the tags",
    },
];

impl FeatureRow {
    /// Whether an RKE2 (or K3s) release carries this feature. K3s shares the
    /// k3s code these features come from; its release suffix is not compared.
    pub fn present_in(&self, kubelet: &KubeletVersion) -> bool {
        let k = kubelet.kubernetes;
        if k.line() >= self.all_lines_from {
            return true;
        }
        self.first_releases.iter().any(|first| {
            if first.kubernetes.line() != k.line() {
                return false;
            }
            match kubelet.distribution {
                Distribution::Rke2 => {
                    kubelet.cmp_release(first.kubernetes, first.release) != std::cmp::Ordering::Less
                }
                _ => k >= first.kubernetes,
            }
        })
    }
}

/// Looks a feature row up.
pub fn feature(feature: Rke2Feature) -> &'static FeatureRow {
    // The table holds one row per variant; the fallback is never reached.
    RKE2_FEATURES
        .iter()
        .find(|row| row.feature == feature)
        .unwrap_or(&RKE2_FEATURES[0])
}

/// Whether an RKE2/K3s node version has a feature.
pub fn has(kubelet: &KubeletVersion, f: Rke2Feature) -> bool {
    feature(f).present_in(kubelet)
}

/// The containerd config schema a node renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigSchema {
    V1,
    V2,
    V3,
}

impl ConfigSchema {
    pub fn number(self) -> u8 {
        match self {
            ConfigSchema::V1 => 1,
            ConfigSchema::V2 => 2,
            ConfigSchema::V3 => 3,
        }
    }
}

/// One generation of RKE2's containerd setup: containerd line, config schema
/// and template files (k3s `pkg/agent/templates`, rancher/rke2 `Dockerfile`
/// hardened-containerd tags).
#[derive(Debug, Clone, Serialize)]
pub struct Rke2Row {
    pub id: &'static str,
    pub rke2: &'static str,
    pub containerd: &'static str,
    pub schema: ConfigSchema,
    /// The user template file RKE2 reads, in priority order.
    pub templates: &'static [&'static str],
    /// The drop-in dir the generated config imports, if any.
    pub drop_in_dir: Option<&'static str>,
    pub notes: &'static str,
    pub source: &'static str,
}

pub const RKE2_ROWS: &[Rke2Row] = &[
    Rke2Row {
        id: "containerd-1.6-v1",
        rke2: "≤ v1.24.7 (2021 – Oct 2022)",
        containerd: "1.4–1.6",
        schema: ConfigSchema::V1,
        templates: &["config.toml.tmpl"],
        drop_in_dir: None,
        notes: "historical: v1 syntax ([plugins.cri]); the 2021 recipe's static version = 2 template",
        source: "k3s templates_linux.go @debb50864 (2021-09-15); k3s commit 615605913 (2022-10-14)",
    },
    Rke2Row {
        id: "containerd-1.7-v2",
        rke2: "~v1.24.8 – v1.31.5, all of v1.30",
        containerd: "1.6–1.7",
        schema: ConfigSchema::V2,
        templates: &["config.toml.tmpl"],
        drop_in_dir: None,
        notes: "version = 2, plugins.\"io.containerd.grpc.v1.cri\"; nvidia auto-detected",
        source: "rancher/hardened-containerd tags in rke2 Dockerfile; rke2-docs advanced.md",
    },
    Rke2Row {
        id: "containerd-2.0-v3",
        rke2: "v1.31.6+ / v1.32.2+ through Feb 2026",
        containerd: "2.0–2.1",
        schema: ConfigSchema::V3,
        templates: &["config-v3.toml.tmpl", "config.toml.tmpl"],
        drop_in_dir: None,
        notes: "version = 3, plugins.'io.containerd.cri.v1.runtime'; config.toml.tmpl alone renders v2 (migrated)",
        source: "rke2-docs advanced.md version gate; k3s pkg/agent/templates",
    },
    Rke2Row {
        id: "containerd-2.2-v3-imports",
        rke2: "v1.32.13+rke2r2, v1.33.10+rke2r1, v1.34.6+rke2r1, v1.35.3+rke2r1 and later",
        containerd: "2.2",
        schema: ConfigSchema::V3,
        templates: &["config-v3.toml.tmpl", "config.toml.tmpl"],
        drop_in_dir: Some("config-v3.toml.d"),
        notes: "imports config-v3.toml.d/*.toml: drop-ins are the safest patch target",
        source: "k3s PR #13680; k3s pins in rancher/rke2",
    },
    Rke2Row {
        id: "containerd-2.3-v3-imports",
        rke2: "v1.36.2+rke2r1 (2.3.2), v1.36.3+rke2r1 (2.3.3), v1.36.4 (2.3.4) and later",
        containerd: "2.3 (native schema v4)",
        schema: ConfigSchema::V3,
        templates: &["config-v3.toml.tmpl", "config.toml.tmpl"],
        drop_in_dir: Some("config-v3.toml.d"),
        notes: "still rendered as version = 3; drop-ins must be version = 3 (not above the root): 2.3.0–2.3.4 refuse to start otherwise",
        source: "rancher/rke2 Dockerfile hardened-containerd tags (v1.36.2+rke2r1 v2.3.2-k3s2, v1.36.3+rke2r1 v2.3.3-k3s1, v1.36.4-rc1+rke2r1 v2.3.4-k3s1.36); containerd PR #12891 / #13939",
    },
];

/// Picks the RKE2 row for a node from its kubelet and containerd versions.
pub fn rke2_row(kubelet: &KubeletVersion, containerd: Option<Triple>) -> &'static Rke2Row {
    let imports = has(kubelet, Rke2Feature::DropInImports);
    let idx = match containerd {
        Some(c) if c.major >= 2 && c.minor >= 3 => 4,
        Some(c) if c.major >= 2 && imports => 3,
        Some(c) if c.major >= 2 => 2,
        Some(c) if c.major == 1 && c.minor <= 5 => 0,
        Some(_) => 1,
        None if has(kubelet, Rke2Feature::Containerd2) => {
            if imports {
                3
            } else {
                2
            }
        }
        None => 1,
    };
    &RKE2_ROWS[idx]
}

/// The config schema a containerd release renders by default on RKE2.
pub fn schema_for_containerd(containerd: Triple) -> ConfigSchema {
    if containerd.major >= 2 {
        ConfigSchema::V3
    } else if containerd.minor <= 5 {
        ConfigSchema::V1
    } else {
        ConfigSchema::V2
    }
}

mod containerd_pins;
pub use containerd_pins::{K3S_CONTAINERD, K3S_NEWEST_READ, RKE2_CONTAINERD, RKE2_NEWEST_READ};

/// The containerd a release line ships from `first` on (until the next pin
/// of the same line): see `matrix/containerd_pins.rs` for the sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ContainerdPin {
    pub first: LineRelease,
    pub containerd: Triple,
    /// As tagged, e.g. `2.0.2-k3s2`.
    pub full: &'static str,
}

/// What the pin tables say about one release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "known")]
pub enum ShippedContainerd {
    /// The release is within what the table read.
    Read { pin: ContainerdPin },
    /// Newer than the newest release read on its line (or its line is not
    /// in the table): the containerd of the newest pin before it, unconfirmed.
    Beyond {
        pin: ContainerdPin,
        newest_read: LineRelease,
    },
    /// Older than the table or not RKE2/K3s.
    Unknown,
}

impl ShippedContainerd {
    pub fn pin(&self) -> Option<&ContainerdPin> {
        match self {
            ShippedContainerd::Read { pin } | ShippedContainerd::Beyond { pin, .. } => Some(pin),
            ShippedContainerd::Unknown => None,
        }
    }
}

/// The containerd an RKE2 or K3s release ships (RKE2: rancher/rke2
/// `Dockerfile` at the tag; K3s: its release notes).
pub fn shipped_containerd(release: &KubeletVersion) -> ShippedContainerd {
    let (pins, newest) = match release.distribution {
        Distribution::Rke2 => (RKE2_CONTAINERD, RKE2_NEWEST_READ),
        Distribution::K3s => (K3S_CONTAINERD, K3S_NEWEST_READ),
        _ => return ShippedContainerd::Unknown,
    };
    let at_or_before = |p: &&ContainerdPin| {
        release.cmp_release(p.first.kubernetes, p.first.release) != std::cmp::Ordering::Less
    };
    let Some(pin) = pins.iter().rev().find(at_or_before).copied() else {
        return ShippedContainerd::Unknown;
    };
    let line = release.kubernetes.line();
    match newest.iter().find(|n| n.kubernetes.line() == line) {
        Some(n) if release.cmp_release(n.kubernetes, n.release) != std::cmp::Ordering::Greater => {
            ShippedContainerd::Read { pin }
        }
        Some(n) => ShippedContainerd::Beyond {
            pin,
            newest_read: *n,
        },
        None => {
            let newest_read = newest.last().copied().unwrap_or(pin.first);
            ShippedContainerd::Beyond { pin, newest_read }
        }
    }
}

/// The first release of `line` (of `distribution`) that ships containerd
/// `at_least` or newer, from the same tables as [`shipped_containerd`].
pub fn first_release_shipping(
    distribution: Distribution,
    line: (u64, u64),
    at_least: Triple,
) -> Option<LineRelease> {
    let pins = match distribution {
        Distribution::Rke2 => RKE2_CONTAINERD,
        Distribution::K3s => K3S_CONTAINERD,
        _ => return None,
    };
    pins.iter()
        .find(|p| p.first.kubernetes.line() == line && p.containerd >= at_least)
        .map(|p| p.first)
}

/// The newest RKE2 release the pin table read and the containerd it ships:
/// what `--help` examples show.
pub fn example_rke2_release() -> (String, Triple) {
    let r = RKE2_NEWEST_READ
        .last()
        .copied()
        .unwrap_or(RKE2_CONTAINERD[0].first);
    let release = format!("v{}+rke2r{}", r.kubernetes, r.release);
    let containerd = KubeletVersion::parse(&release)
        .and_then(|k| shipped_containerd(&k).pin().map(|p| p.containerd))
        .unwrap_or(RKE2_CONTAINERD[0].containerd);
    (release, containerd)
}

/// Paths on an RKE2 or K3s node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodePaths {
    pub data_dir: String,
    pub containerd_dir: String,
    pub generated_config: String,
    pub template_v3: String,
    pub template_v2: String,
    pub drop_in_v3: String,
    pub drop_in_v2: String,
    pub config_yaml: String,
    pub config_yaml_d: String,
    pub socket: &'static str,
}

/// RKE2's default data dir.
pub const RKE2_DATA_DIR: &str = "/var/lib/rancher/rke2";
/// K3s's default data dir.
pub const K3S_DATA_DIR: &str = "/var/lib/rancher/k3s";
/// The containerd socket of RKE2 and K3s, whatever the data dir
/// (k3s pkg/agent/config/config_linux.go).
pub const RKE2_CONTAINERD_SOCKET: &str = "/run/k3s/containerd/containerd.sock";

impl NodePaths {
    /// Paths for a distribution, following `data-dir` when set.
    pub fn new(distribution: Distribution, data_dir: Option<&str>) -> Self {
        let (default_dir, etc) = match distribution {
            Distribution::K3s => (K3S_DATA_DIR, "/etc/rancher/k3s"),
            _ => (RKE2_DATA_DIR, "/etc/rancher/rke2"),
        };
        let data_dir = data_dir
            .map(|d| d.trim_end_matches('/').to_string())
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| default_dir.to_string());
        let containerd_dir = format!("{data_dir}/agent/etc/containerd");
        Self {
            generated_config: format!("{containerd_dir}/config.toml"),
            template_v3: format!("{containerd_dir}/config-v3.toml.tmpl"),
            template_v2: format!("{containerd_dir}/config.toml.tmpl"),
            drop_in_v3: format!("{containerd_dir}/config-v3.toml.d"),
            drop_in_v2: format!("{containerd_dir}/config.toml.d"),
            config_yaml: format!("{etc}/config.yaml"),
            config_yaml_d: format!("{etc}/config.yaml.d"),
            containerd_dir,
            data_dir,
            socket: RKE2_CONTAINERD_SOCKET,
        }
    }
}

/// Where the operator's toolkit and the host package install the runtime
/// (k3s runtime detection order: the toolkit dir wins).
pub const TOOLKIT_RUNTIME: &str = "/usr/local/nvidia/toolkit/nvidia-container-runtime";
pub const HOST_RUNTIME: &str = "/usr/bin/nvidia-container-runtime";
pub const TOOLKIT_DIR: &str = "/usr/local/nvidia/toolkit";

/// Where RKE2/K3s look for runtime binaries when they start, in order:
/// `PATH = "/usr/local/nvidia/toolkit:/opt/kwasm/bin:" + $PATH` and
/// `exec.LookPath` (k3s commit e9cec46a2, "Runtimes refactor using
/// exec.LookPath", 2024-01-28; the service PATH is systemd's default).
pub const RUNTIME_SEARCH_PATH: &[&str] = &[
    TOOLKIT_DIR,
    "/opt/kwasm/bin",
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

// ---------------------------------------------------------------------------
// GPU Operator chart versions
// ---------------------------------------------------------------------------

/// How GPU pods get their GPU under a chart version's defaults on RKE2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuInjection {
    /// Pods need `runtimeClassName: nvidia` (or RKE2 `default-runtime: nvidia`).
    RuntimeClass,
    /// CDI through containerd's `enable_cdi`: no runtime class needed (containerd ≥ 2.0).
    Cdi,
}

/// One line of GPU Operator chart releases: versions from `since` up to the
/// next row's `since` (exclusive).
#[derive(Debug, Clone, Serialize)]
pub struct ChartRow {
    pub since: Triple,
    pub label: &'static str,
    /// The chart's default `toolkit.version`.
    pub toolkit_version: &'static str,
    /// `operator.defaultRuntime` exists (removed in 25.3.0).
    pub has_default_runtime_value: bool,
    /// `cdi.enabled` default.
    pub cdi_default: bool,
    /// `cdi.nriPluginEnabled` exists (26.3.0).
    pub has_nri: bool,
    /// Officially supports containerd 2.0 (25.3.0).
    pub supports_containerd2: bool,
    /// The toolkit can read a v3 containerd config (toolkit ≥ 1.17.4, chart ≥ 24.9.2).
    pub toolkit_reads_v3: bool,
    /// NVIDIA: "GPU Operator in CDI mode is not operational with RKE2" (25.3.x).
    pub cdi_broken_on_rke2: bool,
    /// With CDI the operator forces `NVIDIA_RUNTIME_SET_AS_DEFAULT=false` (25.10.0).
    pub forces_not_default_with_cdi: bool,
    pub source: &'static str,
}

const fn t(major: u64, minor: u64, patch: u64) -> Triple {
    Triple::new(major, minor, patch)
}

/// Chart rows, oldest first.
pub const CHART_ROWS: &[ChartRow] = &[
    ChartRow {
        since: t(1, 8, 0),
        label: "v1.8.x",
        toolkit_version: "1.7.1-ubuntu18.04",
        has_default_runtime_value: true,
        cdi_default: false,
        has_nri: false,
        supports_containerd2: false,
        toolkit_reads_v3: false,
        cdi_broken_on_rke2: false,
        forces_not_default_with_cdi: false,
        source: "gpu-operator values.yaml @v1.8.2; operands in gpu-operator-resources",
    },
    ChartRow {
        since: t(1, 9, 0),
        label: "v1.9 – v24.6",
        toolkit_version: "v1.16.2-ubuntu20.04",
        has_default_runtime_value: true,
        cdi_default: false,
        has_nri: false,
        supports_containerd2: false,
        toolkit_reads_v3: false,
        cdi_broken_on_rke2: false,
        forces_not_default_with_cdi: false,
        source: "gpu-operator values.yaml @v1.9.0 … @v24.6.2; release-notes.rst 1.9.0, 22.9.0",
    },
    ChartRow {
        since: t(24, 9, 0),
        label: "v24.9.0/v24.9.1",
        toolkit_version: "v1.17.3-ubuntu20.04",
        has_default_runtime_value: true,
        cdi_default: false,
        has_nri: false,
        supports_containerd2: false,
        toolkit_reads_v3: false,
        cdi_broken_on_rke2: false,
        forces_not_default_with_cdi: false,
        source: "gpu-operator values.yaml @v24.9.0 (toolkit v1.17.0), @v24.9.1 (v1.17.3)",
    },
    ChartRow {
        since: t(24, 9, 2),
        label: "v24.9.2",
        toolkit_version: "v1.17.4-ubuntu20.04",
        has_default_runtime_value: true,
        cdi_default: false,
        has_nri: false,
        supports_containerd2: false,
        toolkit_reads_v3: true,
        cdi_broken_on_rke2: false,
        forces_not_default_with_cdi: false,
        source: "gpu-operator values.yaml @v24.9.2; toolkit 1.17.4 adds containerd v3 config",
    },
    ChartRow {
        since: t(25, 3, 0),
        label: "v25.3.x",
        toolkit_version: "v1.17.8-ubuntu20.04",
        has_default_runtime_value: false,
        cdi_default: false,
        has_nri: false,
        supports_containerd2: true,
        toolkit_reads_v3: true,
        cdi_broken_on_rke2: true,
        forces_not_default_with_cdi: false,
        source: "release-notes.rst 25.3.0 (containerd 2.0; operator.defaultRuntime removed), 25.3.1/25.3.2 known issues (CDI not operational with RKE2); rke2-docs gpu_operators.md tab v25.3.x",
    },
    ChartRow {
        since: t(25, 10, 0),
        label: "v25.10.x",
        toolkit_version: "v1.18.1",
        has_default_runtime_value: false,
        cdi_default: true,
        has_nri: false,
        supports_containerd2: true,
        toolkit_reads_v3: true,
        cdi_broken_on_rke2: false,
        forces_not_default_with_cdi: true,
        source: "release-notes.rst 25.10.0 (CDI default, drop-in files); rke2-docs gpu_operators.md tab v25.10.x",
    },
    ChartRow {
        since: t(26, 3, 0),
        label: "v26.3.x – v26.7.x",
        toolkit_version: "v1.20.0",
        has_default_runtime_value: false,
        cdi_default: true,
        has_nri: true,
        supports_containerd2: true,
        toolkit_reads_v3: true,
        cdi_broken_on_rke2: false,
        forces_not_default_with_cdi: true,
        source: "release-notes.rst 26.3.0 (NRI plugin, K3s, containerd 2.2); values.yaml @v26.7.0",
    },
];

/// The newest chart version these tables were checked against.
pub const NEWEST_KNOWN_CHART: Triple = t(26, 7, 0);

/// The row that applies to a chart version. Versions newer than the newest
/// known one use the last row; [`chart_is_known`] says whether that happened.
pub fn chart_row(version: Triple) -> &'static ChartRow {
    CHART_ROWS
        .iter()
        .rev()
        .find(|row| version >= row.since)
        .unwrap_or(&CHART_ROWS[0])
}

/// Whether a chart version lies inside the range these tables cover.
pub fn chart_is_known(version: Triple) -> bool {
    version >= CHART_ROWS[0].since && version.line() <= NEWEST_KNOWN_CHART.line()
}

/// How bad a known defect is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// GPU pods will not work until fixed.
    Fail,
    /// Works with care; the fix is recommended.
    Warn,
}

/// A known defect of a chart version range on RKE2/K3s.
#[derive(Debug, Clone, Serialize)]
pub struct ChartDefect {
    pub id: &'static str,
    pub from: Triple,
    /// Inclusive upper bound.
    pub to: Triple,
    pub severity: Severity,
    pub summary: &'static str,
    pub fix: &'static str,
    pub source: &'static str,
}

pub const CHART_DEFECTS: &[ChartDefect] = &[
    ChartDefect {
        id: "toolkit-1.17.0-containerd-not-on-path",
        from: t(24, 9, 0),
        to: t(24, 9, 0),
        severity: Severity::Fail,
        summary: "chart v24.9.0 ships toolkit v1.17.0, which fails to start on RKE2/K3s: it runs `containerd config dump` and containerd is not on the host PATH",
        fix: "upgrade the chart to ≥ v24.9.1, or set toolkit.version=v1.17.1-ubuntu20.04",
        source: "gpu-operator release-notes.rst 24.9.0 known limitation, 24.9.1 fix; gpu-operator#1109, #1099",
    },
    ChartDefect {
        id: "cdi-not-operational-on-rke2",
        from: t(25, 3, 0),
        to: t(25, 3, 999),
        severity: Severity::Warn,
        summary: "chart v25.3.x: \"GPU Operator in CDI mode is not operational with RKE2\"; cdi.enabled=true fails with `unresolvable CDI devices`",
        fix: "keep cdi.enabled=false on 25.3.x and use runtimeClassName: nvidia, or upgrade to ≥ v25.10 on containerd ≥ 2.0",
        source: "gpu-operator release-notes.rst 25.3.1/25.3.2 known issues; nvidia-container-toolkit#1239",
    },
    ChartDefect {
        id: "toolkit-env-after-runtime-transform",
        from: t(25, 3, 3),
        to: t(25, 3, 3),
        severity: Severity::Fail,
        summary: "chart v25.3.3 applies toolkit.env after the runtime transform: the toolkit's socket mount is built from the default /run/containerd and RUNTIME_SOCKET, which the toolkit reads before CONTAINERD_SOCKET, points there, so the RKE2/K3s socket value is ignored and the toolkit never configures RKE2's containerd",
        fix: "use chart v25.3.4 (the fix) instead: helm rke2gpu upgrade --version v25.3.4",
        source: "NVIDIA/gpu-operator#1694 (\"operator ignoring CONTAINERD_SOCKET … in v25.3.3 … works when reverting to v25.3.2\"); gpu-operator commit 825a4c38d (v25.3.3: toolkit.env applied after transformForRuntime), fixed by 8cf5fbead (v25.3.4); nvidia-container-toolkit v1.17.8 tools/container/runtime/runtime.go (RUNTIME_SOCKET read before CONTAINERD_SOCKET)",
    },
    ChartDefect {
        id: "toolkit-1.18.0-overwrites-imports",
        from: t(25, 10, 0),
        to: t(25, 10, 0),
        severity: Severity::Warn,
        summary: "chart v25.10.0 ships toolkit 1.18.0, which overwrites the `imports` field of the top-level containerd config",
        fix: "upgrade the chart to ≥ v25.10.1",
        source: "gpu-operator release-notes.rst 25.10.0 known issues",
    },
];

/// A known defect by its id.
pub fn chart_defect(id: &str) -> Option<&'static ChartDefect> {
    CHART_DEFECTS.iter().find(|d| d.id == id)
}

/// Known defects that apply to a chart version.
pub fn chart_defects(version: Triple) -> impl Iterator<Item = &'static ChartDefect> {
    CHART_DEFECTS
        .iter()
        .filter(move |d| version >= d.from && version <= d.to)
}

/// How GPU pods get their GPU with this chart's defaults on a node running
/// this containerd: CDI needs chart ≥ 25.10 with CDI enabled and containerd
/// ≥ 2.0 (`enable_cdi`); everything else needs the `nvidia` runtime class.
pub fn gpu_injection(
    chart: Triple,
    cdi_enabled: Option<bool>,
    containerd: Option<Triple>,
) -> GpuInjection {
    let row = chart_row(chart);
    let cdi = cdi_enabled.unwrap_or(row.cdi_default) && !row.cdi_broken_on_rke2;
    let containerd2 = containerd.is_some_and(|c| c.major >= 2);
    if cdi && chart >= t(25, 10, 0) && containerd2 {
        GpuInjection::Cdi
    } else {
        GpuInjection::RuntimeClass
    }
}

/// Whether the operator's NRI plugin mode is possible: chart ≥ 26.3 and
/// containerd 1.7.30+, 2.1.x or later (NVIDIA calls it experimental).
pub fn nri_supported(chart: Triple, containerd: Option<Triple>) -> bool {
    chart_row(chart).has_nri
        && containerd
            .is_some_and(|c| (c.major == 1 && c.minor == 7 && c.patch >= 30) || c >= t(2, 1, 0))
}

// ---------------------------------------------------------------------------
// Values `helm rke2gpu` sets, by chart version
// ---------------------------------------------------------------------------

/// An environment variable passed to an operand through the chart
/// (`toolkit.env`, `devicePlugin.env`). Values are always strings, booleans
/// included (`"false"`), as Kubernetes env values must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EnvVar {
    pub name: &'static str,
    pub value: &'static str,
}

/// The toolkit env every RKE2/K3s install gets: the socket only. The toolkit
/// then SIGHUPs the containerd that owns this socket, RKE2 restarts it and
/// re-renders its own config with the detected `nvidia` runtimes.
pub const RKE2_SOCKET_ENV: EnvVar = EnvVar {
    name: "CONTAINERD_SOCKET",
    value: RKE2_CONTAINERD_SOCKET,
};

/// Where [`RKE2_SOCKET_ENV`] comes from.
pub const RKE2_SOCKET_ENV_SOURCE: &str = "rke2-docs add-ons/gpu_operators.md (every tab: toolkit.env CONTAINERD_SOCKET=/run/k3s/containerd/containerd.sock only); k3s pkg/agent/config/config_linux.go (socket path)";

/// Values RKE2 needs on top of the socket for a range of chart versions.
#[derive(Debug, Clone, Serialize)]
pub struct Rke2ChartValues {
    pub from: Triple,
    /// Inclusive upper bound.
    pub to: Triple,
    /// Extra `toolkit.env` entries, after the socket.
    pub toolkit_env: &'static [EnvVar],
    /// `devicePlugin.env` entries.
    pub device_plugin_env: &'static [EnvVar],
    /// A `toolkit.version` to pin instead of the chart's default.
    pub toolkit_version: Option<&'static str>,
    /// The [`ChartDefect::id`] these values work around, if any.
    pub fixes_defect: Option<&'static str>,
    /// Force `cdi.enabled=false` (CDI is broken on RKE2 with this chart).
    pub cdi_off: bool,
    /// Pods need `runtimeClassName: nvidia` (or RKE2 `default-runtime: nvidia`).
    pub needs_runtime_class: bool,
    pub note: &'static str,
    pub source: &'static str,
}

/// Per-chart-version RKE2 values, oldest first.
pub const RKE2_CHART_VALUES: &[Rke2ChartValues] = &[
    Rke2ChartValues {
        from: t(24, 9, 0),
        to: t(24, 9, 0),
        toolkit_env: &[],
        device_plugin_env: &[],
        toolkit_version: Some("v1.17.1-ubuntu20.04"),
        fixes_defect: Some("toolkit-1.17.0-containerd-not-on-path"),
        cdi_off: false,
        needs_runtime_class: true,
        note: "chart v24.9.0's toolkit v1.17.0 fails on RKE2/K3s; NVIDIA's workaround pins toolkit v1.17.1",
        source: "gpu-operator release-notes.rst 24.9.0 known limitation (workaround --set toolkit.version=v1.17.1-ubuntu20.04), fixed in 24.9.1",
    },
    Rke2ChartValues {
        from: t(25, 3, 0),
        to: t(25, 3, 999),
        // The tab's two ACCEPT_* envs and DEVICE_LIST_STRATEGY are GPU_ISOLATION,
        // which applies wherever CDI ends up off, this line included.
        toolkit_env: &[],
        device_plugin_env: &[],
        toolkit_version: None,
        fixes_defect: None,
        cdi_off: true,
        needs_runtime_class: true,
        note: "chart v25.3.x on RKE2: CDI off, test pods need runtimeClassName: nvidia",
        source: "rke2-docs add-ons/gpu_operators.md tab v25.3.x (chart v25.3.4); gpu-operator release-notes.rst 25.3.1/25.3.2 known issues (CDI not operational with RKE2)",
    },
];

/// GPU isolation for pods that reach their GPU through the `nvidia` runtime
/// (CDI off: every chart before v25.10, and v25.10+ wherever `cdi.enabled`
/// is computed or set false). The runtime then honours `NVIDIA_VISIBLE_DEVICES`
/// from any unprivileged container by default (CUDA images set it to `all`),
/// so a pod with `runtimeClassName: nvidia` sees every GPU whatever it was
/// allocated. These envs make the runtime take the device list only from the
/// device plugin's volume mounts. With CDI on they must not be set: the
/// operator's `DEVICE_LIST_STRATEGY` is then `cdi-annotations,cdi-cri` (or
/// `envvar,cdi-annotations` before v25.10), and `devicePlugin.env` is applied
/// after it.
#[derive(Debug, Clone, Serialize)]
pub struct GpuIsolation {
    /// Extra `toolkit.env` entries.
    pub toolkit_env: &'static [EnvVar],
    /// `devicePlugin.env` entries.
    pub device_plugin_env: &'static [EnvVar],
    /// The first chart whose toolkit container reads the toolkit envs: v22.9.0
    /// ships toolkit v1.11.0 (values.yaml @v22.9.0); v1.11.x charts ship v1.10.0.
    pub from_chart: Triple,
    pub source: &'static str,
}

/// See [`GpuIsolation`].
pub const GPU_ISOLATION: GpuIsolation = GpuIsolation {
    toolkit_env: &[
        EnvVar {
            name: "ACCEPT_NVIDIA_VISIBLE_DEVICES_ENVVAR_WHEN_UNPRIVILEGED",
            value: "false",
        },
        EnvVar {
            name: "ACCEPT_NVIDIA_VISIBLE_DEVICES_AS_VOLUME_MOUNTS",
            value: "true",
        },
    ],
    device_plugin_env: &[EnvVar {
        name: "DEVICE_LIST_STRATEGY",
        value: "volume-mounts",
    }],
    from_chart: t(22, 9, 0),
    source: "nvidia-container-toolkit v1.11.0 … v1.20.0 toolkit installer flags accept-nvidia-visible-devices-envvar-when-unprivileged (default true) and accept-nvidia-visible-devices-as-volume-mounts read from ACCEPT_NVIDIA_VISIBLE_DEVICES_* (commit 90518e0c, absent in v1.10.0), internal/config/image/cuda_image.go VisibleDevices (volume mounts first, the env only if privileged or accepted); k8s-device-plugin v0.9.0 … v0.20.0 DEVICE_LIST_STRATEGY=volume-mounts (/var/run/nvidia-container-devices); gpu-operator assets/state-device-plugin (DEVICE_LIST_STRATEGY=envvar unless cdi.enabled), object_controls.go TransformDevicePlugin (devicePlugin.env applied last); rke2-docs add-ons/gpu_operators.md tab v25.3.x",
};

/// The per-version RKE2 values that apply to a chart version.
pub fn rke2_chart_values(version: Triple) -> impl Iterator<Item = &'static Rke2ChartValues> {
    RKE2_CHART_VALUES
        .iter()
        .filter(move |r| version >= r.from && version <= r.to)
}

/// The `CONTAINERD_RUNTIME_CLASS` and `CONTAINERD_SET_AS_DEFAULT` values of
/// the 2021-era recipe; `CONTAINERD_CONFIG` is the node's `config.toml.tmpl`
/// ([`NodePaths::template_v2`]) and `CONTAINERD_SOCKET` the RKE2 socket.
/// They make the toolkit write a static template that freezes RKE2's config
/// (gpu-operator#992, #623): only behind an explicit opt-in.
pub const LEGACY_2021_TOOLKIT_ENV: &[EnvVar] = &[
    EnvVar {
        name: "CONTAINERD_RUNTIME_CLASS",
        value: "nvidia",
    },
    EnvVar {
        name: "CONTAINERD_SET_AS_DEFAULT",
        value: "true",
    },
];

/// Where the 2021-era values come from.
pub const LEGACY_2021_SOURCE: &str = "NVIDIA cloud-native-docs getting-started.rst before commit ff98a125 (Jan 2023 – Sep 2024; config.toml.tmpl); The New Stack article (Nov 2021); gpu-operator#473";

/// The 2021-era `operator.defaultRuntime` value (chart ≤ v24.9.2 only:
/// [`ChartRow::has_default_runtime_value`]).
pub const LEGACY_2021_DEFAULT_RUNTIME: &str = "containerd";

/// The nvidia runtime names RKE2/K3s render into their generated containerd
/// config, from the runtime binaries they detect (k3s
/// `pkg/agent/containerd/runtimes.go`: `nvidia`, `nvidia-experimental`,
/// `nvidia-cdi`). A GPU Operator `operator.runtimeClass` with another name
/// makes the toolkit register that runtime in `/etc/containerd`, which RKE2
/// ignores, so pods of that RuntimeClass fail with `no runtime for "NAME"`.
pub const RKE2_NVIDIA_RUNTIMES: &[&str] = &["nvidia", "nvidia-experimental", "nvidia-cdi"];

/// Where [`RKE2_NVIDIA_RUNTIMES`] comes from.
pub const RKE2_NVIDIA_RUNTIMES_SOURCE: &str = "k3s pkg/agent/containerd/runtimes.go (findNvidiaContainerRuntimes: nvidia, nvidia-experimental, nvidia-cdi)";

/// Why a custom `operator.runtimeClass` breaks the operator itself: its
/// operands run with `runtimeClassName` set to it (except in NRI mode).
pub const OPERANDS_RUNTIME_CLASS_SOURCE: &str = "gpu-operator v26.7.0 controllers/object_controls.go (setRuntimeClassName: operands run with runtimeClassName = operator.runtimeClass unless the NRI plugin is enabled; transformForRuntime sets CONTAINERD_RUNTIME_CLASS to it)";

/// Driver values for an OS whose vendor ships precompiled driver images.
#[derive(Debug, Clone, Serialize)]
pub struct OsDriverValues {
    /// How messages name the OS (`SLES 16`).
    pub os: &'static str,
    /// `status.nodeInfo.osImage` (os-release `PRETTY_NAME`) starts with this …
    pub os_image_prefix: &'static str,
    /// … and its last word (the version) starts with this.
    pub os_version_prefix: &'static str,
    pub repository: &'static str,
    pub use_precompiled: bool,
    /// The driver branch the docs name; it depends on the GPU architecture.
    pub version: &'static str,
    /// The first chart line the docs give these values for.
    pub from_chart: Triple,
    pub source: &'static str,
}

/// The rke2-docs v26.3.x tab's block for SLES 16.0 (`driver.repository`,
/// `usePrecompiled`, `version`).
pub const SLES16_DRIVER: OsDriverValues = OsDriverValues {
    os: "SLES 16",
    os_image_prefix: "SUSE Linux Enterprise Server",
    os_version_prefix: "16",
    repository: "registry.suse.com/third-party/nvidia",
    use_precompiled: true,
    version: "595",
    from_chart: t(26, 3, 0),
    source: "rke2-docs add-ons/gpu_operators.md tab v26.3.x (commit a57214c2, 2026-05-21: \"in SLES 16.0, you can use the following manifest\": driver.repository registry.suse.com/third-party/nvidia, usePrecompiled: true, version: 595 \"depends on the nvidia driver that works with your GPU architecture\"); SLES 16.0 os-release PRETTY_NAME \"SUSE Linux Enterprise Server 16.0\" (kubelet osImage)",
};

impl OsDriverValues {
    /// Whether a node's `osImage` is this OS.
    pub fn matches(&self, os_image: &str) -> bool {
        os_image.starts_with(self.os_image_prefix)
            && os_image.split_whitespace().last().is_some_and(|v| {
                v == self.os_version_prefix
                    || v.starts_with(&format!("{}.", self.os_version_prefix))
            })
    }
}

/// The Pod Security Admission level the GPU Operator's namespace needs on
/// RKE2 with `profile: cis` (which enforces `restricted` cluster-wide).
pub const PSA_PRIVILEGED: &str = "privileged";

/// Where [`PSA_PRIVILEGED`] comes from.
pub const PSA_CIS_SOURCE: &str = "rancher/rke2 pkg/rke2/psa.go restrictedPSAConfig (profile: cis enforces restricted except kube-system, compliance-operator-system, tigera-operator; cis-operator-system before commit fd52255c6)";

/// The namespaces RKE2's `profile: cis` exempts from PSA `restricted`
/// ([`PSA_CIS_SOURCE`]) on a release: `compliance-operator-system` from the
/// releases of [`Rke2Feature::PsaComplianceOperatorExemption`] on,
/// `cis-operator-system` before (and when the release is unknown, both).
pub fn cis_psa_exempt_namespaces(kubelet: Option<&KubeletVersion>) -> Vec<&'static str> {
    let (new, old) = ("compliance-operator-system", "cis-operator-system");
    let middle: &[&'static str] = match kubelet {
        Some(k) if has(k, Rke2Feature::PsaComplianceOperatorExemption) => &[new],
        Some(_) => &[old],
        None => &[new, old],
    };
    let mut out = vec!["kube-system"];
    out.extend_from_slice(middle);
    out.push("tigera-operator");
    out
}

/// The NRI plugin's status: NVIDIA calls it experimental.
pub const NRI_SOURCE: &str = "gpu-operator release-notes.rst 26.3.0 (NRI plugin; containerd v1.7.30+, 2.1.x, 2.2.x), commit 5745476d (\"not yet GA, and not recommended for production use\"); rke2-docs gpu_operators.md tab v26.3.x with NRI";

/// Why NRI mode needs the toolkit and CDI: the chart's own validations, and
/// where the plugin runs.
pub const NRI_NEEDS_TOOLKIT_AND_CDI_SOURCE: &str = "gpu-operator v26.7.0 deployments/gpu-operator/templates/validations.yaml (\"the NRI Plugin cannot be enabled when the Container Toolkit is disabled\", commit 9a1ff56bc; \"... when CDI is disabled\" since v26.3.0); object_controls.go transformToolkitCtrForCDI (ENABLE_NRI_PLUGIN on the toolkit container)";

// ---------------------------------------------------------------------------
// patch-containerd: containerd schema support, the containerd assumed
// offline, and the release lists the planner's messages name
// ---------------------------------------------------------------------------

impl FeatureRow {
    /// The first release of each line, as RKE2 names them, joined by `sep`:
    /// `v1.32.13+rke2r2, v1.33.10+rke2r1` (for messages).
    pub fn release_names(&self, sep: &str) -> String {
        self.first_releases
            .iter()
            .map(|r| format!("v{}+rke2r{}", r.kubernetes, r.release))
            .collect::<Vec<_>>()
            .join(sep)
    }

    /// The first Kubernetes version of each line, joined by `sep`:
    /// `v1.26.12/v1.27.9/v1.28.5` (for messages).
    pub fn line_versions(&self, sep: &str) -> String {
        self.first_releases
            .iter()
            .map(|r| format!("v{}", r.kubernetes))
            .collect::<Vec<_>>()
            .join(sep)
    }
}

/// Whether a containerd release loads a config of this schema `version`:
/// 1.x reads v1 and v2; 2.0 removed v1 and added v3; 2.3 added v4 and still
/// reads v2/v3 (containerd RELEASES.md, "Daemon configuration"; containerd
/// v2.0.0 release notes; containerd v2.3.0 `version = 4`).
pub fn containerd_loads_schema(containerd: Triple, version: i64) -> bool {
    match containerd.major {
        0 | 1 => matches!(version, 1 | 2),
        2 if containerd.minor < 3 => matches!(version, 2 | 3),
        _ => matches!(version, 2..=4),
    }
}

/// Whether imported drop-ins merge plugin tables (containerd v2.0.0 and
/// later, containerd PR #9982) instead of replacing them (1.7 and earlier).
pub fn containerd_merges_drop_ins(containerd: Triple) -> bool {
    containerd.major >= 2
}

/// The containerd assumed for a node whose version is not known (offline
/// `patch-containerd` without `--containerd-version`): the oldest release
/// that renders a config of this schema on RKE2 (`containerd-2.0-v3` for
/// version 3, `containerd-1.7-v2` otherwise; see [`RKE2_ROWS`]).
pub fn assumed_containerd(schema_version: i64) -> Triple {
    if schema_version >= 3 {
        ASSUMED_CONTAINERD_2
    } else {
        ASSUMED_CONTAINERD_1
    }
}

// ---------------------------------------------------------------------------
// helm (`helm::values`, `helm rke2gpu`): facts the values computation and
// its messages cite
// ---------------------------------------------------------------------------

/// The containerd assumed for an RKE2/K3s node that reports none, by the
/// generation its release ships: [`Rke2Feature::Containerd21`] → 2.1.0,
/// [`Rke2Feature::Containerd2`] → 2.0.0, else 1.7.0 (rancher/rke2
/// `Dockerfile` `rancher/hardened-containerd` tags: v1.30.x/≤ v1.31.5 ship
/// 1.7.x, v1.31.6/v1.32.2 ship 2.0.2, v1.31.13/v1.32.9/v1.33.5/v1.34.1 ship
/// 2.1.4).
pub const ASSUMED_CONTAINERD_21: Triple = t(2, 1, 0);
/// See [`ASSUMED_CONTAINERD_21`].
pub const ASSUMED_CONTAINERD_2: Triple = t(2, 0, 0);
/// See [`ASSUMED_CONTAINERD_21`].
pub const ASSUMED_CONTAINERD_1: Triple = t(1, 7, 0);

/// The containerd versions the NRI plugin accepts, as [`nri_supported`]
/// checks them (gpu-operator release-notes.rst 26.3.0).
pub const NRI_CONTAINERD_TEXT: &str = "1.7.30+ or ≥ 2.1";
/// The containerd line RKE2 ships with NRI support ([`Rke2Feature::Containerd21`]).
pub const NRI_CONTAINERD_RKE2: &str = "2.1";

/// Why `CONTAINERD_CONFIG=…config.toml.tmpl` freezes RKE2's config: nodes
/// that do not come back after a reboot, registries that stop working.
pub const LEGACY_2021_FREEZE_SOURCE: &str = "gpu-operator#992, #623";

/// Why `cdi.enabled=false` on CDI-by-default charts (≥ v25.10.0) when a GPU
/// node runs containerd 1.7: CDI there needs `enable_cdi`, on by default only
/// from containerd 2.0.
pub const CDI_OFF_ON_CONTAINERD1_SOURCE: &str = "containerd docs/cri/config.md (enable_cdi, default on from 2.0); rke2-docs add-ons/gpu_operators.md tab v25.10.x (containerd 2.x); GPU Operator ≥ 25.10 on containerd 1.7: cdi.enabled=false";

/// The first chart version whose row has a property (`has_nri`,
/// `supports_containerd2`, …), for messages; the first row when none has it.
pub fn first_chart_with(has: impl Fn(&ChartRow) -> bool) -> Triple {
    CHART_ROWS
        .iter()
        .find(|r| has(r))
        .unwrap_or(&CHART_ROWS[0])
        .since
}

// ---------------------------------------------------------------------------
// check-runtime (area: check)
// ---------------------------------------------------------------------------

/// The chart check-runtime recommends upgrading to: the version of
/// rke2-docs add-ons/gpu_operators.md tab v25.10.x (`version: v25.10.1`).
pub const UPGRADE_CHART: &str = "v25.10.1";

/// The first chart whose operator always points the toolkit at the host
/// drop-in `/etc/containerd/conf.d/99-nvidia.toml` (`RUNTIME_DROP_IN_CONFIG`
/// and `RUNTIME_DROP_IN_CONFIG_HOST_PATH`, whatever `CONTAINERD_SOCKET`
/// says): on RKE2 the file exists on every correctly configured node and
/// means nothing, since RKE2's containerd never reads `/etc/containerd`.
pub const HOST_DROP_IN_CHART: VersionFact = VersionFact {
    version: t(25, 10, 0),
    source: "gpu-operator v25.10.0 … v26.7.0 controllers/object_controls.go (DefaultContainerdDropInConfigFile = \"/etc/containerd/conf.d/99-nvidia.toml\"; getRuntimeConfigFiles and transformRuntimeConfigAndSocketMounts set RUNTIME_DROP_IN_CONFIG and RUNTIME_DROP_IN_CONFIG_HOST_PATH); absent at v25.3.4",
};

/// The first toolkit that writes that drop-in (and only adds `imports` to
/// the top-level config); 1.17.x edits the top-level config only.
pub const HOST_DROP_IN_TOOLKIT: VersionFact = VersionFact {
    version: t(1, 18, 0),
    source: "nvidia-container-toolkit v1.18.0 cmd/nvidia-ctk-installer/container/container.go (DropInConfig) and runtime/containerd/containerd.go (DefaultDropInConfig); v1.17.8 tools/container has no drop-in",
};

/// The first toolkit whose installer runs a no-op runtime configurer in NRI
/// plugin mode: it neither edits containerd's config nor signals containerd,
/// so RKE2 renders its `nvidia` runtimes only at its next restart. Every
/// chart with the NRI plugin ([`ChartRow::has_nri`], v26.3.0 ships toolkit
/// v1.19.0) has it; chart v26.7.0 no longer even mounts the containerd
/// config and socket in that mode.
pub const NRI_NOOP_CONFIGURER: VersionFact = VersionFact {
    version: t(1, 19, 0),
    source: "nvidia-container-toolkit v1.19.0 cmd/nvidia-ctk-installer/container/runtime/runtime.go (NewConfigurer returns noopRuntimeConfigurer when NRI is enabled: no Setup, no containerd signal); gpu-operator v26.7.0 controllers/object_controls.go transformForRuntime (NRI mode: only the NRI socket is mounted)",
};

/// The first chart whose toolkit (v1.20.0) lets the NRI plugin inject
/// management CDI devices into namespaces other than the operator's
/// (`NRI_MANAGEMENT_CDI_DEVICE_NAMESPACES`); toolkit v1.19.x (chart v26.3.x)
/// injects annotated CDI devices only in the operator's namespace.
pub const NRI_MANAGEMENT_NAMESPACES: VersionFact = VersionFact {
    version: t(26, 7, 0),
    source: "nvidia-container-toolkit v1.20.0 cmd/nvidia-ctk-installer/main.go (--nri-management-cdi-device-namespaces, env NRI_MANAGEMENT_CDI_DEVICE_NAMESPACES; commit e950019a) and container/runtime/nri/plugin.go parseCDIDevices; v1.19.0 plugin.go skips pods outside the toolkit's namespace; gpu-operator values.yaml @v26.7.0 toolkit v1.20.0",
};

/// The first chart with `hostPaths.kubeletRootDir` (commented out in
/// values.yaml, default `/var/lib/kubelet`; used for dcgm-exporter's
/// pod-resources mount). RKE2 and K3s keep the kubelet's default root dir,
/// so no value is needed on them.
pub const KUBELET_ROOT_DIR_CHART: VersionFact = VersionFact {
    version: t(26, 7, 0),
    source: "gpu-operator v26.7.0 deployments/gpu-operator/values.yaml (hostPaths.kubeletRootDir), templates/clusterpolicy.yaml, controllers/object_controls.go TransformDCGMExporter (pod-gpu-resources → <kubeletRootDir>/pod-resources); absent at v26.3.3",
};

/// The containerd releases that refuse a drop-in whose `version` is above
/// the root config's. Source: containerd PR #12891 (added), reverted by
/// containerd PR #13939; NVIDIA/aicr#1688.
pub const DROP_IN_VERSION_REJECTED_BY: &str = "2.3.0–2.3.4";

/// Whether a containerd release refuses a drop-in above the root's version
/// ([`DROP_IN_VERSION_REJECTED_BY`]).
pub fn containerd_rejects_newer_drop_in(containerd: Triple) -> bool {
    containerd >= t(2, 3, 0) && containerd <= t(2, 3, 4)
}

/// The RKE2 releases that ship such a containerd: every v1.36 release from
/// v1.36.2 (v1.36.0/v1.36.1 ship 2.2.3), as messages name them.
pub const RKE2_REJECTING_NEWER_DROP_INS: &str =
    "RKE2 v1.36.2+rke2r1 (containerd 2.3.2), v1.36.3+rke2r1 (2.3.3), v1.36.4 (2.3.4)";

/// Where [`RKE2_REJECTING_NEWER_DROP_INS`] comes from.
pub const RKE2_REJECTING_NEWER_DROP_INS_SOURCE: &str = "rancher/rke2 Dockerfile hardened-containerd tags: v1.36.1+rke2r2 v2.2.3-k3s1, v1.36.2+rke2r1 v2.3.2-k3s2, v1.36.3+rke2r1 v2.3.3-k3s1, v1.36.4-rc1+rke2r1 and master (2026-08-19) v2.3.4-k3s1.36; containerd PR #12891 (the rule), reverted by #13939 (2026-08-11, after 2.3.4)";

// ---------------------------------------------------------------------------
// sharing area: what `helm rke2gpu values --time-slicing/--mps` writes
// ---------------------------------------------------------------------------

/// The first chart whose device plugin has MPS sharing (device plugin
/// v0.15.0, chart v24.3.0; the operator's state-mps-control-daemon appears
/// at the same tag).
pub const MPS_SINCE_CHART: Triple = t(24, 3, 0);

/// From this chart (device plugin v0.20.0) MPS honours an explicit
/// `failRequestsGreaterThanOne: false`; before it the device plugin forces
/// true for MPS.
pub const MPS_FAIL_REQUESTS_OPTIONAL_SINCE_CHART: Triple = t(26, 7, 0);

/// The device plugin refuses fewer replicas.
pub const SHARING_MIN_REPLICAS: u32 = 2;

/// Where the sharing facts come from.
pub const SHARING_SOURCE: &str = "NVIDIA/k8s-device-plugin api/config/v1 (sharing.go: timeSlicing since v0.12, mps since v0.15.0; replicas.go: \"number of replicas must be >= 2\"; config.go: MPS failRequestsGreaterThanOne forced true v0.15.0-v0.19.3, optional from v0.20.0); cmd/nvidia-device-plugin/main.go validateFlags: \"--mig-strategy=mixed is not supported with MPS\"; NVIDIA/gpu-operator values.yaml devicePlugin.config {create,name,default,data} and devicePlugin.version at v24.3.0 (v0.15.0) ... v26.7.0 (v0.20.0); cmd/config-manager follows the nvidia.com/device-plugin.config node label, not ConfigMap edits (cloud-native-docs gpu-sharing.rst: rollout restart after editing)";

// ---------------------------------------------------------------------------
// images area: what `helm rke2gpu images` lists
// ---------------------------------------------------------------------------

/// Chart operands deployed only with `sandboxWorkloads.enabled` (VM and
/// confidential workloads), whatever their own `enabled` says.
pub const SANDBOX_OPERANDS: &[&str] = &[
    "vgpuManager",
    "vgpuDeviceManager",
    "vfioManager",
    "sandboxDevicePlugin",
    "kataSandboxDevicePlugin",
    "kataManager",
    "ccManager",
];

/// Chart images with no `enabled` key that are always deployed; their
/// version defaults to the chart's appVersion.
pub const ALWAYS_ON_OPERANDS: &[&str] = &["operator", "validator"];

/// Where the image facts come from.
pub const IMAGES_SOURCE: &str = "NVIDIA/gpu-operator@v26.7.0: deployments/gpu-operator/values.yaml (sandboxWorkloads.enabled false; vgpu/vfio/sandbox/kata/cc operands under it), internal/image/image.go ImagePath (repo/image:version, @sha256 digests), controllers/object_controls.go resolveDriverTag (<version>-<os>, precompiled <version>-<kernel>-<os>), controllers/state_manager.go (os tag = NFD system-os_release ID + VERSION_ID, major only for rhel/rocky/ol; the first GPU node only)";

/// The OS part of a driver image tag from an os-release `ID` and
/// `VERSION_ID` (the NFD labels the operator reads): `ubuntu24.04`,
/// `rhel9` (major only for rhel, rocky, ol).
pub fn driver_os_tag(id: &str, version_id: &str) -> String {
    let id = id.to_ascii_lowercase();
    let v = if matches!(id.as_str(), "rhel" | "rocky" | "ol") {
        version_id.split('.').next().unwrap_or(version_id)
    } else {
        version_id
    };
    format!("{id}{v}")
}

/// `driver_os_tag` from a node's `osImage` when NFD has not labelled it yet
/// (before the chart, which brings NFD, is installed).
pub fn driver_os_tag_from_os_image(os_image: &str) -> Option<String> {
    let lower = os_image.to_ascii_lowercase();
    let id = [
        ("ubuntu", "ubuntu"),
        ("red hat enterprise linux", "rhel"),
        ("rocky linux", "rocky"),
        ("oracle linux", "ol"),
        ("suse linux enterprise server", "sles"),
        ("debian", "debian"),
    ]
    .iter()
    .find(|(p, _)| lower.starts_with(p))
    .map(|(_, id)| *id)?;
    let version: String = lower
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))?
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    // Ubuntu's VERSION_ID is major.minor (`24.04.1 LTS` → `24.04`).
    let version = if id == "ubuntu" {
        version.split('.').take(2).collect::<Vec<_>>().join(".")
    } else {
        version
    };
    Some(driver_os_tag(id, &version))
}

// ---------------------------------------------------------------------------
// upgrade area: what `check-runtime --upgrade-to-rke2/--upgrade-to-chart` asks
// ---------------------------------------------------------------------------

/// Kubernetes upgrades one minor version at a time (kube-apiserver and
/// kube-controller-manager must not skip minor versions); RKE2 follows it.
pub const MAX_MINOR_STEP: u64 = 1;

/// Where [`MAX_MINOR_STEP`] comes from.
pub const MAX_MINOR_STEP_SOURCE: &str = "kubernetes.io/releases/version-skew-policy (\"upgrading ... from 1.n to 1.n+1\"; minor versions are not skipped); rke2-docs upgrades/manual_upgrade.md";

/// The chart's pre-upgrade hook applies the target's CRDs (`manage-crds
/// apply` in the operator image) when `operator.upgradeCRD` is true: the
/// default from this chart on (false before).
pub const UPGRADE_CRD_HOOK_DEFAULT_SINCE: Triple = t(24, 9, 0);

/// Where [`UPGRADE_CRD_HOOK_DEFAULT_SINCE`] comes from.
pub const UPGRADE_CRD_HOOK_SOURCE: &str = "gpu-operator values.yaml operator.upgradeCRD (false at v24.6.2, true from v24.9.0); templates/upgrade_crd.yaml (helm.sh/hook: pre-upgrade, /usr/bin/manage-crds apply); helm.sh/docs chart_best_practices/custom_resource_definitions (helm upgrade never upgrades crds/)";

/// The root config version RKE2 renders for a containerd (2.3 still
/// renders `version = 3`; see [`RKE2_ROWS`]).
pub fn rendered_root_version(containerd: Triple) -> i64 {
    i64::from(schema_for_containerd(containerd).number())
}

// ---------------------------------------------------------------------------
// verify area: the versions `kubectl gpu verify`'s diagnoses name
// ---------------------------------------------------------------------------

/// A version boundary a diagnosis names, with its source.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct VersionFact {
    pub version: Triple,
    pub source: &'static str,
}

impl VersionFact {
    /// `major.minor`, as the messages write a release line (`25.10`).
    pub fn line_text(&self) -> String {
        format!("{}.{}", self.version.major, self.version.minor)
    }
}

/// The first chart line with CDI on by default (`cdi.enabled=true`), with
/// which GPU pods get their GPU through CDI (no `runtimeClassName`) on RKE2;
/// [`gpu_injection`] applies it. From it on, CDI pods on containerd 1.x need
/// containerd's `enable_cdi`.
pub const CDI_CHART: VersionFact = VersionFact {
    version: t(25, 10, 0),
    source: "gpu-operator release-notes.rst 25.10.0 (CDI on by default); rke2-docs add-ons/gpu_operators.md tab v25.10.x (\"workloads don't need to pass the runtimeClassName: nvidia anymore\")",
};

/// The containerd release CDI injection needs (`enable_cdi`).
pub const CDI_CONTAINERD: VersionFact = VersionFact {
    version: t(2, 0, 0),
    source: "rke2-docs add-ons/gpu_operators.md tab v25.10.x (\"It requires containerd 2.0\")",
};

/// The first chart that creates the `/dev/char` symlinks whose absence
/// makes NVML fail with `Unknown Error` after a systemd daemon-reload.
pub const DEV_CHAR_SYMLINKS_CHART: VersionFact = VersionFact {
    version: t(22, 9, 2),
    source: "gpu-operator#430 (missing /dev/char symlinks; fixed in 22.9.2)",
};

/// The chart lines on which CDI mode is not operational on RKE2
/// ([`ChartRow::cdi_broken_on_rke2`]), as messages write them: `25.3.x`.
pub fn cdi_broken_on_rke2_lines() -> String {
    CHART_ROWS
        .iter()
        .filter(|r| r.cdi_broken_on_rke2)
        .map(|r| r.label.trim_start_matches('v'))
        .collect::<Vec<_>>()
        .join("/")
}

/// The last chart line before [`CDI_CHART`], the newest that needs
/// `runtimeClassName: nvidia` on RKE2: `25.3`.
pub fn last_runtime_class_line() -> String {
    CHART_ROWS
        .iter()
        .rev()
        .find(|r| r.since < CDI_CHART.version)
        .map(|r| format!("{}.{}", r.since.major, r.since.minor))
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// containerd's TOML parser (area: user templates, `containerd::redeclared`):
// how each containerd line treats a table or key its config declares twice,
// and the words it fails with
// ---------------------------------------------------------------------------

/// How a parser treats a dotted key (`a.b.c = 1`) whose leading part names a
/// table a `[header]` made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DottedIntoTable {
    /// It adds to the table; only a key that exists already fails (go-toml v1).
    Merge,
    /// It adds to a table that a header made only implicitly (as the parent
    /// of another header); one declared by its own header fails (go-toml
    /// v2.2–v2.3: `cannot redefine table … that has already been explicitly
    /// defined`).
    MergeIfImplicit,
    /// It fails for any such table (go-toml v2.4: `key … is already defined`).
    Refuse,
}

/// The TOML parser of a containerd line, as it meets a table or key that a
/// config declares twice (the generated `config.toml` of a user template
/// that redeclares what its base renders).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TomlParserRow {
    /// First containerd release of the row.
    pub since: Triple,
    /// The Go module containerd parses its config with.
    pub parser: &'static str,
    /// A `[header]` is declared twice only when its text is the same as an
    /// earlier header's (go-toml v1 compares the text between the brackets):
    /// `[a."b"]` after `[a.'b']` adds to the table, failing only on a key
    /// defined twice. Otherwise (go-toml v2) any header naming a table that
    /// a header already declared fails.
    pub same_text_only: bool,
    pub dotted_into_table: DottedIntoTable,
    /// containerd's error line for a table declared twice: `{path}` is the
    /// config file, `{row}`/`{col}` the position of the header's key (not
    /// every parser reports one), `{name}` its last key part.
    pub table_error: &'static str,
    /// … for a key defined twice: `{name}` is the whole dotted key path
    /// (go-toml v1) or the key part that exists already (v2).
    pub key_error: &'static str,
    /// … (go-toml v2.2–v2.3) for a dotted key into a table its own header declared.
    pub redefine_error: &'static str,
    pub source: &'static str,
}

/// containerd's config parsers, oldest first. The error lines of containerd
/// 1.7.35 and 2.4.2 are captured from the real binaries in
/// `tests/fixtures/containerd-toml-errors/`.
pub const CONTAINERD_TOML_PARSERS: &[TomlParserRow] = &[
    TomlParserRow {
        since: t(1, 0, 0),
        parser: "github.com/pelletier/go-toml v1",
        same_text_only: true,
        dotted_into_table: DottedIntoTable::Merge,
        table_error: "containerd: failed to load TOML: {path}: ({row}, {col}): duplicated tables",
        key_error: "containerd: failed to load TOML: {path}: ({row}, {col}): The following key was defined twice: {name}",
        redefine_error: "",
        source: "containerd go.mod @v1.6.0 (go-toml v1.9.3), @v1.7.0 (v1.9.5); services/server/config/config.go LoadConfig (`failed to load TOML: %s: %w`); go-toml v1.9.5 parser.go parseGroup (seenTableKeys: header text, `duplicated tables`), parseAssign (`The following key was defined twice: %s`)",
    },
    TomlParserRow {
        since: t(2, 0, 0),
        parser: "github.com/pelletier/go-toml/v2 v2.2–v2.3",
        same_text_only: false,
        dotted_into_table: DottedIntoTable::MergeIfImplicit,
        table_error: "containerd: failed to unmarshal TOML: toml: table {name} already exists",
        key_error: "containerd: failed to unmarshal TOML: toml: key {name} is already defined",
        redefine_error: "containerd: failed to unmarshal TOML: toml: cannot redefine table {name} that has already been explicitly defined",
        source: "containerd go.mod @v2.0.0–v2.0.11 (go-toml/v2 v2.2.3), @v2.1.0–v2.2.7 (v2.2.4), @v2.3.0–v2.3.4 (v2.3.0); cmd/containerd/server/config/config.go loadConfigFile (`failed to unmarshal TOML at row %d column %d: %w`); go-toml v2.2.4 internal/tracker/seen.go checkTable, checkKeyValue; unmarshaler.go returns the tracker's error without a position, so containerd prints no row",
    },
    TomlParserRow {
        since: t(2, 4, 0),
        parser: "github.com/pelletier/go-toml/v2 v2.4",
        same_text_only: false,
        dotted_into_table: DottedIntoTable::Refuse,
        table_error: "containerd: failed to unmarshal TOML at row {row} column {col}: toml: table {name} already exists",
        key_error: "containerd: failed to unmarshal TOML at row {row} column {col}: toml: key {name} is already defined",
        redefine_error: "",
        source: "containerd commit f407302ba (2026-06-22, go-toml/v2 2.3.1 → 2.4.1, first in v2.4.0-beta.0), go.mod @v2.4.2 (v2.4.3); go-toml v2.4.3 internal/tracker/seen.go CheckTable, CheckKeyValue, unmarshaler.go wrapSeenError (go-toml#668: the error carries the key's position)",
    },
];

/// The runtime names k3s detects and renders into the base template's
/// `runtimes` (k3s pkg/agent/containerd/runtimes.go: findCRunContainerRuntime,
/// findNvidiaContainerRuntimes (nvidia-cdi from k3s PR #11065),
/// findWasiRuntimes).
pub const K3S_DETECTED_RUNTIMES: &[&str] = &[
    "crun",
    "nvidia",
    "nvidia-experimental",
    "nvidia-cdi",
    "lunatic",
    "slight",
    "spin",
    "wws",
    "wasmedge",
    "wasmer",
    "wasmtime",
];

/// Stands for one of [`K3S_DETECTED_RUNTIMES`] in [`K3S_BASE_TABLES`].
pub const DETECTED_RUNTIME: &str = "{runtime}";

/// Every table k3s' base templates can declare, as key paths with `/`
/// between keys (`*`: any one key, e.g. a registry host from
/// registries.yaml; [`DETECTED_RUNTIME`]: a detected runtime), for both
/// schemas. Which of them a node's base renders depends on its options
/// (snapshotter, pause image, CNI dirs, registries, user namespaces) and the
/// runtimes it found; the node's config.toml shows that, and this list
/// serves only to tell the base's tables from an older user template's in a
/// config.toml rendered before the template changed. Source: k3s
/// pkg/agent/templates/templates.go @469d009fb2 (ContainerdConfigTemplate,
/// ContainerdConfigTemplateV3; older releases render a subset).
pub const K3S_BASE_TABLES: &[&str] = &[
    "grpc",
    "plugins/io.containerd.internal.v1.opt",
    "plugins/io.containerd.grpc.v1.cri",
    "plugins/io.containerd.grpc.v1.cri/containerd",
    "plugins/io.containerd.grpc.v1.cri/cni",
    "plugins/io.containerd.grpc.v1.cri/containerd/runtimes/runc",
    "plugins/io.containerd.grpc.v1.cri/containerd/runtimes/runc/options",
    "plugins/io.containerd.grpc.v1.cri/containerd/runtimes/runhcs-wcow-process",
    "plugins/io.containerd.grpc.v1.cri/containerd/runtimes/{runtime}",
    "plugins/io.containerd.grpc.v1.cri/containerd/runtimes/{runtime}/options",
    "plugins/io.containerd.grpc.v1.cri/registry",
    "plugins/io.containerd.grpc.v1.cri/registry/configs/*/auth",
    "plugins/io.containerd.cri.v1.runtime",
    "plugins/io.containerd.cri.v1.runtime/cni",
    "plugins/io.containerd.cri.v1.runtime/containerd",
    "plugins/io.containerd.cri.v1.runtime/containerd/runtimes/runc",
    "plugins/io.containerd.cri.v1.runtime/containerd/runtimes/runc/options",
    "plugins/io.containerd.cri.v1.runtime/containerd/runtimes/runhcs-wcow-process",
    "plugins/io.containerd.cri.v1.runtime/containerd/runtimes/{runtime}",
    "plugins/io.containerd.cri.v1.runtime/containerd/runtimes/{runtime}/options",
    "plugins/io.containerd.cri.v1.images",
    "plugins/io.containerd.cri.v1.images/pinned_images",
    "plugins/io.containerd.cri.v1.images/registry",
    "plugins/io.containerd.cri.v1.images/registry/configs/*/auth",
    "plugins/io.containerd.service.v1.tasks-service",
    "plugins/io.containerd.snapshotter.v1.stargz",
    "plugins/io.containerd.snapshotter.v1.stargz/cri_keychain",
    "plugins/io.containerd.snapshotter.v1.stargz/registry",
    "plugins/io.containerd.snapshotter.v1.stargz/registry/configs/*/auth",
    "plugins/io.containerd.snapshotter.v1.nix",
    "plugins/io.containerd.snapshotter.v1.nix/image_service",
    "plugins/io.containerd.transfer.v1.local/unpack_config",
    "plugins/io.containerd.nri.v1.nri",
];

/// Whether a table is one k3s' base templates can declare ([`K3S_BASE_TABLES`]).
pub fn k3s_base_table(path: &[String]) -> bool {
    K3S_BASE_TABLES.iter().any(|p| {
        p.split('/').count() == path.len()
            && p.split('/').zip(path).all(|(want, got)| match want {
                "*" => true,
                DETECTED_RUNTIME => K3S_DETECTED_RUNTIMES.contains(&got.as_str()),
                w => w == got,
            })
    })
}

/// The parser row of a containerd release.
pub fn containerd_toml_parser(containerd: Triple) -> &'static TomlParserRow {
    CONTAINERD_TOML_PARSERS
        .iter()
        .rev()
        .find(|r| r.since <= containerd)
        .unwrap_or(&CONTAINERD_TOML_PARSERS[0])
}

#[cfg(test)]
mod images_tests {
    use super::*;

    #[test]
    fn driver_os_tags() {
        assert_eq!(driver_os_tag("ubuntu", "24.04"), "ubuntu24.04");
        assert_eq!(driver_os_tag("rhel", "9.4"), "rhel9");
        assert_eq!(driver_os_tag("rocky", "9.6"), "rocky9");
        for (image, tag) in [
            ("Ubuntu 24.04.1 LTS", Some("ubuntu24.04")),
            ("Ubuntu 22.04.5 LTS", Some("ubuntu22.04")),
            ("Red Hat Enterprise Linux 9.4 (Plow)", Some("rhel9")),
            ("Rocky Linux 9.6 (Blue Onyx)", Some("rocky9")),
            ("Debian GNU/Linux 12 (bookworm)", Some("debian12")),
            ("SUSE Linux Enterprise Server 16.0", Some("sles16.0")),
            ("Talos (v1.9)", None),
        ] {
            assert_eq!(
                driver_os_tag_from_os_image(image).as_deref(),
                tag,
                "{image}"
            );
        }
    }
}

#[cfg(test)]
mod toml_parser_tests {
    use super::*;

    #[test]
    fn parser_rows_by_containerd_line() {
        assert!(containerd_toml_parser(t(1, 7, 35)).same_text_only);
        assert_eq!(
            containerd_toml_parser(t(2, 2, 2)).dotted_into_table,
            DottedIntoTable::MergeIfImplicit
        );
        assert_eq!(
            containerd_toml_parser(t(2, 3, 4)).dotted_into_table,
            DottedIntoTable::MergeIfImplicit
        );
        assert_eq!(
            containerd_toml_parser(t(2, 4, 2)).dotted_into_table,
            DottedIntoTable::Refuse
        );
        let base = |p: &str| k3s_base_table(&p.split('/').map(str::to_owned).collect::<Vec<_>>());
        assert!(base(
            "plugins/io.containerd.cri.v1.runtime/containerd/runtimes/nvidia-cdi/options"
        ));
        assert!(!base(
            "plugins/io.containerd.cri.v1.runtime/containerd/runtimes/custom"
        ));
        assert!(base(
            "plugins/io.containerd.grpc.v1.cri/registry/configs/registry.example.com/auth"
        ));
        for r in CONTAINERD_TOML_PARSERS {
            assert!(!r.source.is_empty());
            assert!(r.table_error.starts_with("containerd: ") && r.key_error.contains("{name}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> KubeletVersion {
        KubeletVersion::parse(s).unwrap()
    }

    fn shipped(s: &str) -> String {
        match shipped_containerd(&k(s)) {
            ShippedContainerd::Read { pin } => pin.full.to_string(),
            ShippedContainerd::Beyond { pin, .. } => format!("{} (beyond)", pin.full),
            ShippedContainerd::Unknown => "unknown".into(),
        }
    }

    /// The containerd at the RKE2 and K3s boundaries the upgrade preflight
    /// names (values as rancher/rke2's Dockerfile and k3s's release notes
    /// give them at those tags).
    #[test]
    fn shipped_containerd_at_the_boundaries() {
        for (release, want) in [
            ("v1.31.5+rke2r1", "1.7.23-k3s2"),
            ("v1.31.6+rke2r1", "2.0.2-k3s2"),
            ("v1.32.1+rke2r1", "1.7.23-k3s2"),
            ("v1.32.2+rke2r1", "2.0.2-k3s2"),
            ("v1.33.9+rke2r1", "2.1.5-k3s1"),
            ("v1.33.10+rke2r3", "2.2.2-k3s1"),
            ("v1.35.7+rke2r1", "2.2.6-k3s1"),
            ("v1.36.1+rke2r2", "2.2.3-k3s1"),
            ("v1.36.2+rke2r1", "2.3.2-k3s2"),
            ("v1.36.3+rke2r1", "2.3.3-k3s1"),
            ("v1.36.4+rke2r1", "2.3.3-k3s1 (beyond)"),
            ("v1.37.2+rke2r1", "2.3.3-k3s1 (beyond)"),
            ("v1.27.9+rke2r1", "unknown"),
            ("v1.31.5+k3s1", "1.7.23-k3s2"),
            ("v1.31.6+k3s1", "2.0.2-k3s2"),
            ("v1.36.2+k3s1", "2.3.2-k3s2"),
            ("v1.37.1+k3s1", "2.3.4-k3s1"),
            ("v1.33.9", "unknown"),
        ] {
            assert_eq!(shipped(release), want, "{release}");
        }
    }

    /// Two tables from different sources agree: the feature rows' first
    /// containerd-2 and containerd-2.1 releases (rke2-docs) against the pins
    /// read from the Dockerfile at every tag.
    #[test]
    fn pins_agree_with_the_feature_rows() {
        for p in RKE2_CONTAINERD {
            let rel = KubeletVersion {
                raw: String::new(),
                kubernetes: p.first.kubernetes,
                distribution: Distribution::Rke2,
                release: p.first.release,
            };
            assert_eq!(
                has(&rel, Rke2Feature::Containerd2),
                p.containerd.major >= 2,
                "{p:?}"
            );
            assert_eq!(
                has(&rel, Rke2Feature::Containerd21),
                p.containerd >= t(2, 1, 0),
                "{p:?}"
            );
        }
    }

    /// Each boundary a row names, checked on both sides.
    #[test]
    fn feature_boundaries_match_the_reference() {
        use Rke2Feature::*;
        let cases = [
            // (version, feature, expected) — reference: Corrections and precisions
            ("v1.34.6+rke2r1", DropInImports, true),
            ("v1.34.5+rke2r1", DropInImports, false),
            ("v1.32.13+rke2r2", DropInImports, true),
            ("v1.32.13+rke2r1", DropInImports, false),
            ("v1.33.10+rke2r1", DropInImports, true),
            ("v1.33.9+rke2r1", DropInImports, false),
            ("v1.35.3+rke2r1", DropInImports, true),
            ("v1.36.0+rke2r1", DropInImports, true),
            ("v1.31.14+rke2r1", DropInImports, false),
            ("v1.30.14+rke2r1", DropInImports, false),
            // default-runtime: v1.26.12/v1.27.9/v1.28.5 (section 4.4)
            ("v1.26.12+rke2r1", DefaultRuntimeFlag, true),
            ("v1.26.11+rke2r1", DefaultRuntimeFlag, false),
            ("v1.27.9+rke2r1", DefaultRuntimeFlag, true),
            ("v1.28.4+rke2r1", DefaultRuntimeFlag, false),
            ("v1.28.5+rke2r1", DefaultRuntimeFlag, true),
            ("v1.29.0+rke2r1", DefaultRuntimeFlag, true),
            ("v1.25.16+rke2r1", DefaultRuntimeFlag, false),
            // base template: v1.24.17, v1.25.13, v1.26.8, v1.27.5, v1.28.1
            ("v1.24.17+rke2r1", BaseTemplate, true),
            ("v1.24.16+rke2r1", BaseTemplate, false),
            ("v1.28.1+rke2r1", BaseTemplate, true),
            ("v1.28.0+rke2r1", BaseTemplate, false),
            ("v1.23.17+rke2r1", BaseTemplate, false),
            // containerd 2: v1.31.6 / v1.32.2; never on v1.30
            ("v1.31.6+rke2r1", Containerd2, true),
            ("v1.31.5+rke2r1", Containerd2, false),
            ("v1.32.1+rke2r1", Containerd2, false),
            ("v1.32.2+rke2r1", Containerd2, true),
            ("v1.30.14+rke2r1", Containerd2, false),
            // runtime classes chart: v1.29.13, v1.30.9, v1.31.5, v1.32.1, v1.33.0
            ("v1.29.13+rke2r1", RuntimeClassesChart, true),
            ("v1.30.8+rke2r1", RuntimeClassesChart, false),
            ("v1.33.0+rke2r1", RuntimeClassesChart, true),
            // nvidia-cdi detection: October 2024
            ("v1.29.10+rke2r1", NvidiaCdiDetection, true),
            ("v1.29.9+rke2r1", NvidiaCdiDetection, false),
            // containerd 2.1 for NRI: v1.31.13, v1.32.9, v1.33.5, v1.34.1
            ("v1.33.5+rke2r1", Containerd21, true),
            ("v1.33.4+rke2r1", Containerd21, false),
            // PSA compliance-operator-system (rke2 fd52255c6): read from pkg/rke2/psa.go at the tags
            ("v1.32.13+rke2r2", PsaComplianceOperatorExemption, true),
            ("v1.32.13+rke2r1", PsaComplianceOperatorExemption, false),
            ("v1.33.10+rke2r1", PsaComplianceOperatorExemption, true),
            ("v1.33.9+rke2r1", PsaComplianceOperatorExemption, false),
            ("v1.35.2+rke2r1", PsaComplianceOperatorExemption, false),
            ("v1.36.0+rke2r1", PsaComplianceOperatorExemption, true),
            ("v1.31.14+rke2r1", PsaComplianceOperatorExemption, false),
        ];
        for (v, f, want) in cases {
            assert_eq!(has(&k(v), f), want, "{v} {f:?}");
        }
    }

    #[test]
    fn every_feature_has_one_row_with_a_source() {
        use Rke2Feature::*;
        for f in [
            BaseTemplate,
            DefaultRuntimeFlag,
            DropInImports,
            NvidiaCdiDetection,
            RuntimeClassesChart,
            Containerd2,
            Containerd21,
            PsaComplianceOperatorExemption,
        ] {
            let rows: Vec<_> = RKE2_FEATURES.iter().filter(|r| r.feature == f).collect();
            assert_eq!(rows.len(), 1, "{f:?}");
            assert!(!rows[0].source.is_empty());
        }
        for row in CHART_ROWS {
            assert!(!row.source.is_empty(), "{}", row.label);
        }
        for row in RKE2_ROWS {
            assert!(!row.source.is_empty(), "{}", row.id);
        }
    }

    #[test]
    fn rke2_rows_by_version() {
        // section 2.4: v1.30.14 → 1.7.27 (v2); v1.31.6 → 2.0.2 (v3); v1.33.10 → 2.2.2 (imports); v1.36.3 → 2.3.3
        let row = rke2_row(&k("v1.30.14+rke2r1"), Some(t(1, 7, 27)));
        assert_eq!((row.schema, row.drop_in_dir), (ConfigSchema::V2, None));
        let row = rke2_row(&k("v1.31.6+rke2r1"), Some(t(2, 0, 2)));
        assert_eq!((row.schema, row.drop_in_dir), (ConfigSchema::V3, None));
        let row = rke2_row(&k("v1.33.10+rke2r1"), Some(t(2, 2, 2)));
        assert_eq!(row.drop_in_dir, Some("config-v3.toml.d"));
        let row = rke2_row(&k("v1.36.3+rke2r1"), Some(t(2, 3, 3)));
        assert_eq!(row.id, "containerd-2.3-v3-imports");
        assert_eq!(row.schema, ConfigSchema::V3);
        let row = rke2_row(&k("v1.21.5+rke2r2"), Some(t(1, 4, 11)));
        assert_eq!(row.schema, ConfigSchema::V1);
    }

    #[test]
    fn chart_rows_and_defects() {
        // section 3.1: operator.defaultRuntime removed in 25.3.0; CDI default from 25.10; NRI from 26.3
        assert!(chart_row(t(24, 9, 2)).has_default_runtime_value);
        assert!(!chart_row(t(25, 3, 0)).has_default_runtime_value);
        assert!(!chart_row(t(25, 3, 4)).cdi_default);
        assert!(chart_row(t(25, 10, 1)).cdi_default);
        assert!(!chart_row(t(25, 10, 1)).has_nri);
        assert!(chart_row(t(26, 3, 0)).has_nri);
        assert!(chart_row(t(26, 7, 0)).has_nri);
        assert!(!chart_row(t(24, 9, 1)).toolkit_reads_v3);
        assert!(chart_row(t(24, 9, 2)).toolkit_reads_v3);
        // 24.9.0 is known-bad on RKE2; 24.9.1 is the fix
        assert_eq!(chart_defects(t(24, 9, 0)).count(), 1);
        assert_eq!(chart_defects(t(24, 9, 1)).count(), 0);
        assert!(chart_defects(t(25, 3, 4)).any(|d| d.id == "cdi-not-operational-on-rke2"));
        assert_eq!(chart_defects(t(26, 7, 0)).count(), 0);
        assert!(chart_is_known(t(26, 7, 0)));
        assert!(!chart_is_known(t(27, 1, 0)));
        assert_eq!(
            chart_row(t(27, 1, 0)).label,
            CHART_ROWS.last().unwrap().label
        );
    }

    #[test]
    fn injection_and_nri() {
        // 25.3.x needs runtimeClassName even with CDI asked (CDI broken on RKE2)
        assert_eq!(
            gpu_injection(t(25, 3, 4), None, Some(t(2, 1, 5))),
            GpuInjection::RuntimeClass
        );
        assert_eq!(
            gpu_injection(t(25, 3, 4), Some(true), Some(t(2, 1, 5))),
            GpuInjection::RuntimeClass
        );
        // 25.10 CDI needs containerd 2.x
        assert_eq!(
            gpu_injection(t(25, 10, 1), None, Some(t(2, 0, 2))),
            GpuInjection::Cdi
        );
        assert_eq!(
            gpu_injection(t(25, 10, 1), None, Some(t(1, 7, 27))),
            GpuInjection::RuntimeClass
        );
        assert_eq!(
            gpu_injection(t(26, 7, 0), Some(false), Some(t(2, 2, 2))),
            GpuInjection::RuntimeClass
        );
        // NRI: ≥ 26.3 and containerd 1.7.30+ or ≥ 2.1
        assert!(nri_supported(t(26, 3, 0), Some(t(2, 1, 4))));
        assert!(!nri_supported(t(26, 3, 0), Some(t(2, 0, 4))));
        assert!(nri_supported(t(26, 3, 0), Some(t(1, 7, 30))));
        assert!(!nri_supported(t(25, 10, 1), Some(t(2, 2, 2))));
    }

    #[test]
    fn host_drop_in_and_nri_toolkit_boundaries() {
        // gpu-operator v25.10.0 object_controls.go: the drop-in from this chart on; v25.3.x ships toolkit 1.17.x
        assert!(chart_row(t(25, 3, 4)).since < HOST_DROP_IN_CHART.version);
        assert_eq!(chart_row(HOST_DROP_IN_CHART.version).label, "v25.10.x");
        let toolkit = |c| Triple::parse_loose(chart_row(c).toolkit_version).unwrap();
        assert!(toolkit(t(25, 3, 4)) < HOST_DROP_IN_TOOLKIT.version);
        assert!(toolkit(t(25, 10, 1)) >= HOST_DROP_IN_TOOLKIT.version);
        // NRI arrived with chart 26.3.0, which ships toolkit v1.19.0: the no-op configurer always applies
        assert!(first_chart_with(|r| r.has_nri) == t(26, 3, 0));
        assert_eq!(NRI_NOOP_CONFIGURER.version, t(1, 19, 0));
    }

    #[test]
    fn drop_in_version_rule_on_rke2_1_36() {
        // rancher/rke2 Dockerfile: v1.36.1+rke2r2 → 2.2.3, v1.36.2 → 2.3.2, v1.36.3 → 2.3.3, v1.36.4-rc1 → 2.3.4
        assert!(!containerd_rejects_newer_drop_in(t(2, 2, 3)));
        for c in [t(2, 3, 2), t(2, 3, 3), t(2, 3, 4)] {
            assert!(containerd_rejects_newer_drop_in(c), "{c}");
            assert_eq!(
                rke2_row(&k("v1.36.3+rke2r1"), Some(c)).id,
                "containerd-2.3-v3-imports"
            );
        }
        assert!(!containerd_rejects_newer_drop_in(t(2, 3, 5)));
    }

    #[test]
    fn sles16_from_the_os_image() {
        assert!(SLES16_DRIVER.matches("SUSE Linux Enterprise Server 16.0"));
        assert!(SLES16_DRIVER.matches("SUSE Linux Enterprise Server for SAP Applications 16.0"));
        assert!(!SLES16_DRIVER.matches("SUSE Linux Enterprise Server 15 SP7"));
        assert!(!SLES16_DRIVER.matches("SUSE Linux Enterprise Server 160"));
        assert!(!SLES16_DRIVER.matches("Ubuntu 24.04.1 LTS"));
        assert!(chart_row(SLES16_DRIVER.from_chart).has_nri);
        assert_eq!(KUBELET_ROOT_DIR_CHART.version, NEWEST_KNOWN_CHART);
    }

    #[test]
    fn cis_psa_exemptions_by_release() {
        assert_eq!(
            cis_psa_exempt_namespaces(Some(&k("v1.34.6+rke2r1"))),
            [
                "kube-system",
                "compliance-operator-system",
                "tigera-operator"
            ]
        );
        assert_eq!(
            cis_psa_exempt_namespaces(Some(&k("v1.34.5+rke2r1"))),
            ["kube-system", "cis-operator-system", "tigera-operator"]
        );
        assert_eq!(cis_psa_exempt_namespaces(None).len(), 4);
    }

    #[test]
    fn paths_follow_data_dir() {
        let p = NodePaths::new(Distribution::Rke2, None);
        assert_eq!(
            p.generated_config,
            "/var/lib/rancher/rke2/agent/etc/containerd/config.toml"
        );
        assert_eq!(p.socket, "/run/k3s/containerd/containerd.sock");
        let p = NodePaths::new(Distribution::Rke2, Some("/data/rke2/"));
        assert_eq!(
            p.template_v3,
            "/data/rke2/agent/etc/containerd/config-v3.toml.tmpl"
        );
        assert_eq!(p.socket, "/run/k3s/containerd/containerd.sock");
        let p = NodePaths::new(Distribution::K3s, None);
        assert_eq!(p.config_yaml, "/etc/rancher/k3s/config.yaml");
    }

    #[test]
    fn rke2_chart_values_by_version() {
        // release-notes.rst 24.9.0 known limitation: pin toolkit v1.17.1 on 24.9.0 only
        let v: Vec<_> = rke2_chart_values(t(24, 9, 0)).collect();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].toolkit_version, Some("v1.17.1-ubuntu20.04"));
        assert!(chart_defects(t(24, 9, 0)).any(|d| Some(d.id) == v[0].fixes_defect));
        assert_eq!(rke2_chart_values(t(24, 9, 1)).count(), 0);
        // rke2-docs tab v25.3.x: CDI off; its two ACCEPT_* toolkit envs and DEVICE_LIST_STRATEGY are GPU_ISOLATION
        for c in [t(25, 3, 0), t(25, 3, 4)] {
            let v: Vec<_> = rke2_chart_values(c).collect();
            assert_eq!(v.len(), 1);
            assert!(v[0].cdi_off && v[0].toolkit_env.is_empty());
        }
        assert_eq!(GPU_ISOLATION.toolkit_env.len(), 2);
        assert_eq!(GPU_ISOLATION.toolkit_env[0].value, "false");
        assert_eq!(GPU_ISOLATION.device_plugin_env[0].value, "volume-mounts");
        // values.yaml @v22.9.0 ships toolkit v1.11.0, the first whose container reads the ACCEPT_* envs
        assert_eq!(GPU_ISOLATION.from_chart, t(22, 9, 0));
        assert_eq!(rke2_chart_values(t(25, 10, 1)).count(), 0);
        assert_eq!(rke2_chart_values(t(24, 9, 2)).count(), 0);
        assert_eq!(RKE2_SOCKET_ENV.value, "/run/k3s/containerd/containerd.sock");
        for row in RKE2_CHART_VALUES {
            assert!(!row.source.is_empty());
        }
    }
}

#[cfg(test)]
mod verify_tests {
    use super::*;

    #[test]
    fn diagnosis_versions_render_as_before() {
        assert_eq!(cdi_broken_on_rke2_lines(), "25.3.x");
        assert_eq!(last_runtime_class_line(), "25.3");
        assert_eq!(CDI_CHART.line_text(), "25.10");
        assert_eq!(CDI_CONTAINERD.line_text(), "2.0");
        assert_eq!(DEV_CHAR_SYMLINKS_CHART.version.to_string(), "22.9.2");
        assert!(
            gpu_injection(CDI_CHART.version, Some(true), Some(CDI_CONTAINERD.version))
                == GpuInjection::Cdi
        );
        for f in [CDI_CHART, CDI_CONTAINERD, DEV_CHAR_SYMLINKS_CHART] {
            assert!(!f.source.is_empty());
        }
    }
}
