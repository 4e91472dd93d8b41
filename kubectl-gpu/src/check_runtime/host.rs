//! Host-file rules (`check-runtime --deep`): what the node's files say about
//! the nvidia runtime, read through a read-only node-agent pod — RKE2's
//! generated `config.toml` and user templates, drop-ins, the RKE2 config,
//! toolkit binaries, the kernel driver, nouveau, Secure Boot, and the stray
//! files a misconfigured toolkit leaves.
//!
//! The read ([`read_nodes`], [`probe_node`]) is the only I/O; [`rules`] and
//! [`findings`] are pure.
//!
//! Over 800 lines as one concept: every `--deep` rule reads the same
//! `ProbeResult` of one node, and the rules are listed in one table here;
//! splitting by rule would scatter the one probe request they share.

use super::finding::{Finding, Status};
use crate::client::Kube;
use crate::containerd::model::ContainerdConfig;
use crate::containerd::redeclared;
use crate::containerd::template::{TemplateAnalysis, TemplateKind, config_head, template_in_use};
use crate::error::Result;
use crate::facts::NodeFacts;
use crate::matrix::{self, NodePaths};
use crate::node::agent::{AgentOptions, Agents};
use crate::node::probe::{ProbeRequest, ProbeResult};
use crate::operator::OperatorFacts;
use crate::patch::plan::{TEMPLATE_DROP_IN_NAME, imported_drop_in_dir};
use crate::version::Triple;
use futures::StreamExt;
use std::collections::BTreeMap;

/// EFI variable holding the Secure Boot state (5th byte: 1 = enabled).
pub const SECURE_BOOT_VAR: &str =
    "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c";
pub const HOST_CONTAINERD_DROPIN: &str = "/etc/containerd/conf.d/99-nvidia.toml";
pub const DRIVER_VERSION_FILE: &str = "/proc/driver/nvidia/version";
pub const MODULES_FILE: &str = "/proc/modules";

/// RKE2's own configuration as merged from `config.yaml` and `config.yaml.d/*.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Rke2Config {
    pub data_dir: Option<String>,
    pub default_runtime: Option<String>,
    pub profile: Option<String>,
    /// Which files were read, in order.
    pub files: Vec<String>,
}

impl Rke2Config {
    /// Merges config files in RKE2's order (`config.yaml`, then the drop-ins sorted by name).
    pub fn from_files<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut out = Rke2Config::default();
        for (path, text) in files {
            out.files.push(path.to_string());
            let Ok(value) = serde_saphyr::from_str::<serde_json::Value>(text) else {
                continue;
            };
            let get = |k: &str| value.get(k).and_then(|v| v.as_str()).map(str::to_string);
            if let Some(v) = get("data-dir") {
                out.data_dir = Some(v);
            }
            if let Some(v) = get("default-runtime") {
                out.default_runtime = Some(v);
            }
            if let Some(v) = get("profile") {
                out.profile = Some(v);
            }
        }
        out
    }
}

/// The host paths `--deep` reads for a node, given its data dir.
pub fn first_probe(paths: &NodePaths) -> ProbeRequest {
    ProbeRequest {
        files: vec![
            paths.config_yaml.clone(),
            paths.generated_config.clone(),
            paths.template_v3.clone(),
            paths.template_v2.clone(),
            DRIVER_VERSION_FILE.into(),
            MODULES_FILE.into(),
            HOST_CONTAINERD_DROPIN.into(),
        ],
        dirs: vec![
            paths.config_yaml_d.clone(),
            paths.drop_in_v3.clone(),
            paths.drop_in_v2.clone(),
            matrix::TOOLKIT_DIR.into(),
        ],
        binary: vec![SECURE_BOOT_VAR.into()],
        exists: vec![
            matrix::HOST_RUNTIME.into(),
            HOST_CONTAINERD_DROPIN.into(),
            matrix::TOOLKIT_RUNTIME.into(),
        ],
    }
}

/// The second read: files inside the listed dirs, binaries the config names.
pub fn second_probe(paths: &NodePaths, first: &ProbeResult) -> ProbeRequest {
    let mut req = ProbeRequest::default();
    for dir in [&paths.config_yaml_d, &paths.drop_in_v3, &paths.drop_in_v2] {
        for name in first.dir(dir).unwrap_or_default() {
            req.files.push(format!("{dir}/{name}"));
        }
    }
    if let Some(cfg) = first
        .file(&paths.generated_config)
        .and_then(|t| ContainerdConfig::parse(&paths.generated_config, t).ok())
    {
        req.exists
            .extend(cfg.runtimes().into_iter().filter_map(|r| r.binary_name));
    }
    req
}

/// The third read, only where drop-ins name runtimes: whether the binaries
/// they point at exist (the second read named only the generated config's,
/// since the drop-ins' text arrives with it).
pub fn drop_in_binaries_probe(paths: &NodePaths, probe: &ProbeResult) -> ProbeRequest {
    let mut req = ProbeRequest::default();
    for dir in [&paths.drop_in_v3, &paths.drop_in_v2] {
        for (path, text) in drop_in_files(dir, probe) {
            let Ok(cfg) = ContainerdConfig::parse(&path, text) else {
                continue;
            };
            for bin in cfg.runtimes().into_iter().filter_map(|r| r.binary_name) {
                if !probe.exists.contains_key(&bin) && !req.exists.contains(&bin) {
                    req.exists.push(bin);
                }
            }
        }
    }
    req
}

/// The RKE2 config from a probe.
pub fn rke2_config(paths: &NodePaths, probe: &ProbeResult) -> Rke2Config {
    let mut files: Vec<(&str, &str)> = Vec::new();
    if let Some(t) = probe.file(&paths.config_yaml) {
        files.push((paths.config_yaml.as_str(), t));
    }
    let mut names: Vec<&String> = probe
        .dir(&paths.config_yaml_d)
        .unwrap_or_default()
        .iter()
        .collect();
    names.sort();
    let owned: Vec<(String, &str)> = names
        .iter()
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
        .filter_map(|n| {
            let path = format!("{}/{n}", paths.config_yaml_d);
            probe.file(&path).map(|t| (path, t))
        })
        .collect();
    files.extend(owned.iter().map(|(p, t)| (p.as_str(), *t)));
    Rke2Config::from_files(files)
}

/// What every host rule of one node reads.
struct Host<'a> {
    node: &'a NodeFacts,
    operator: Option<&'a OperatorFacts>,
    paths: &'a NodePaths,
    probe: &'a ProbeResult,
    rke2: Rke2Config,
    /// The systemd unit running RKE2/K3s.
    unit: &'static str,
    toolkit_runtime: bool,
    host_runtime: bool,
}

impl Host<'_> {
    fn n(&self) -> Option<&str> {
        Some(self.node.name.as_str())
    }
}

/// Every host rule for one node, one function per rule (in output order).
pub fn rules(
    node: &NodeFacts,
    operator: Option<&OperatorFacts>,
    paths: &NodePaths,
    probe: &ProbeResult,
) -> Vec<Finding> {
    let h = Host {
        node,
        operator,
        paths,
        probe,
        rke2: rke2_config(paths, probe),
        unit: node.role.unit(node.distribution),
        toolkit_runtime: probe.exists(matrix::TOOLKIT_RUNTIME),
        host_runtime: probe.exists(matrix::HOST_RUNTIME),
    };
    let tables = template_tables(&h);
    let mut out = generated_config(&h, tables.as_ref());
    out.extend(static_templates(&h));
    out.extend(tables);
    out.extend(template_schema(&h));
    out.extend(rke2_default_runtime(&h));
    out.extend(rke2_profile(&h));
    out.extend(data_dir(&h));
    out.push(driver(&h));
    out.extend(nouveau(&h));
    out.extend(secure_boot(&h));
    out.extend(host_containerd_dropin(&h));
    out.extend(leftover_toolkit_without_operator(&h));
    out
}

/// `generated-config`: RKE2's generated config exists and parses; then the
/// rules over its content. A config that redeclares a table the node's
/// containerd merges (containerd 1.7's go-toml v1; `tables`, the
/// `template-tables` finding, is a warning then) does not parse as TOML but
/// loads: a warning, and the content rules are skipped.
fn generated_config(h: &Host, tables: Option<&Finding>) -> Vec<Finding> {
    let (n, unit, paths) = (h.n(), h.unit, h.paths);
    let Some(text) = h.probe.file(&paths.generated_config) else {
        return vec![
            Finding::fail(
                "generated-config",
                n,
                format!(
                    "no generated containerd config at {}",
                    paths.generated_config
                ),
            )
            .fix(format!(
                "is {unit} running, and is data-dir right? RKE2 config says data-dir: {}",
                h.rke2.data_dir.as_deref().unwrap_or(matrix::RKE2_DATA_DIR)
            )),
        ];
    };
    let cfg = match ContainerdConfig::parse(&paths.generated_config, text) {
        Ok(cfg) => cfg,
        Err(e) if tables.is_some_and(|t| t.status == Status::Warn) => {
            return vec![
                Finding::warn("generated-config", n, format!("the generated config is not valid TOML, which this node's containerd accepts (it merges the tables template-tables names): {e}"))
                    .evidence("the runtime checks over its content are skipped until the template is fixed")
                    .fix(format!("fix the template as template-tables says, then systemctl restart {unit} and run check-runtime --deep again")),
            ];
        }
        Err(e) => {
            return vec![
                Finding::fail("generated-config", n, format!("the generated config does not parse: {e}"))
                    .fix(format!("a user template renders invalid TOML: check {} and {}, then systemctl restart {unit}", paths.template_v3, paths.template_v2)),
            ];
        }
    };
    let mut out = vec![Finding::ok(
        "generated-config",
        n,
        format!(
            "{} is version {} with runtimes [{}]",
            paths.generated_config,
            cfg.version(),
            cfg.runtimes()
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )];
    // What containerd loads: with an `imports` line, the drop-ins merged in
    // (containerd >= 2.0); `patch-containerd` writes its runtime there.
    let loaded = loaded_config(h, &cfg, text);
    out.extend(nvidia_runtime(h, loaded.as_ref().unwrap_or(&cfg)));
    out.extend(default_runtime_name(h, loaded.as_ref().unwrap_or(&cfg)));
    out.extend(drop_in_versions(h, &cfg));
    out
}

/// The generated config merged with the drop-ins it imports, as containerd
/// 2.0 and later loads it (`None`: no imports, containerd 1.x, no drop-in
/// read, or a drop-in that does not merge; `drop-in-version` reports that).
fn loaded_config(h: &Host, cfg: &ContainerdConfig, text: &str) -> Option<ContainerdConfig> {
    if h.node
        .containerd()
        .is_some_and(|c| !matrix::containerd_merges_drop_ins(c))
    {
        return None;
    }
    // The dir patch-containerd plans against (the same rule picks it).
    let dir = crate::patch::plan::imported_drop_in_dir(cfg, false)?;
    let drop_ins: std::collections::BTreeMap<String, String> = drop_in_files(&dir, h.probe)
        .into_iter()
        .map(|(p, t)| (p, t.to_string()))
        .collect();
    if drop_ins.is_empty() {
        return None;
    }
    crate::containerd::merge::effective_config(&h.paths.generated_config, text, &drop_ins).ok()
}

/// The files a probe read in a drop-in dir, with their text, sorted by name.
pub fn drop_in_files<'a>(dir: &str, probe: &'a ProbeResult) -> Vec<(String, &'a str)> {
    let mut names: Vec<&String> = probe.dir(dir).unwrap_or_default().iter().collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|n| {
            let path = format!("{dir}/{n}");
            probe.file(&path).map(|t| (path, t))
        })
        .collect()
}

/// `nvidia-runtime` (and `leftover-toolkit`): the generated config has an
/// nvidia runtime whose binary exists; skipped in NRI plugin mode.
fn nvidia_runtime(h: &Host, cfg: &ContainerdConfig) -> Vec<Finding> {
    let (n, unit, node) = (h.n(), h.unit, h.node);
    let (toolkit_runtime, host_runtime) = (h.toolkit_runtime, h.host_runtime);
    if h.operator.and_then(|o| o.nri_enabled) == Some(true) {
        if cfg.runtime("nvidia").is_none() && (toolkit_runtime || host_runtime) {
            // Toolkit ≥ 1.19 in NRI mode: no-op configurer, no SIGHUP.
            return vec![
                Finding::skipped("nvidia-runtime", n, format!("NRI plugin mode: GPU pods need no nvidia runtime, and RKE2 has not rendered one: in NRI mode the toolkit (≥ {}) configures no runtime and does not signal containerd, so RKE2 renders nvidia only at its next restart; pods with runtimeClassName: nvidia fail with `no runtime for \"nvidia\" is configured` until then", matrix::NRI_NOOP_CONFIGURER.version))
                    .evidence(format!("{}: {toolkit_runtime}, {}: {host_runtime}; source: {}", matrix::TOOLKIT_RUNTIME, matrix::HOST_RUNTIME, matrix::NRI_NOOP_CONFIGURER.source))
                    .fix(format!("only if pods use runtimeClassName: nvidia: systemctl restart {unit}")),
            ];
        }
        return vec![Finding::skipped(
            "nvidia-runtime",
            n,
            "NRI plugin mode: no nvidia runtime in containerd is expected",
        )];
    }
    let Some(rt) = cfg.runtime("nvidia") else {
        return vec![if toolkit_runtime || host_runtime {
            Finding::fail("nvidia-runtime", n, "an nvidia runtime binary exists but RKE2 has not rendered the nvidia runtime: RKE2 detects runtimes only when it starts")
                .evidence(format!("{}: {toolkit_runtime}, {}: {host_runtime}", matrix::TOOLKIT_RUNTIME, matrix::HOST_RUNTIME))
                .fix(format!("systemctl restart {unit}   # or: kubectl gpu patch-containerd --node {}", node.name))
        } else {
            Finding::fail("nvidia-runtime", n, "no nvidia runtime in the generated config and no nvidia-container-runtime on the node")
                .fix(format!("install the GPU Operator (its toolkit pod installs {}): helm rke2gpu install", matrix::TOOLKIT_DIR))
        }];
    };
    let mut out = Vec::new();
    let bin = rt.binary_name.clone().unwrap_or_default();
    if bin.is_empty() {
        out.push(
            Finding::fail(
                "nvidia-runtime",
                n,
                "runtime nvidia is rendered without options.BinaryName",
            )
            .fix(format!("kubectl gpu patch-containerd --node {}", node.name)),
        );
    } else if h.probe.exists(&bin) {
        out.push(Finding::ok(
            "nvidia-runtime",
            n,
            format!("runtime nvidia → {bin}"),
        ));
    } else {
        out.push(
            Finding::fail("nvidia-runtime", n, format!("runtime nvidia points at {bin}, which does not exist on the node"))
                .fix(format!("the toolkit was removed: reinstall it (operator toolkit pod) or restart {unit} so RKE2 re-detects the runtimes")),
        );
    }
    if h.operator.is_none() && bin.starts_with(matrix::TOOLKIT_DIR) && host_runtime {
        out.push(
            Finding::warn(
                "leftover-toolkit",
                n,
                format!(
                    "{} from an uninstalled GPU Operator shadows the host's {}",
                    matrix::TOOLKIT_DIR,
                    matrix::HOST_RUNTIME
                ),
            )
            .evidence("source: k3s#4391; RKE2 searches /usr/local/nvidia/toolkit first")
            .fix(format!(
                "rm -rf /usr/local/nvidia && systemctl restart {unit}"
            )),
        );
    }
    out
}

/// `default-runtime` (ok): the generated config's `default_runtime_name`.
fn default_runtime_name(h: &Host, cfg: &ContainerdConfig) -> Option<Finding> {
    cfg.default_runtime_name().map(|d| {
        Finding::ok(
            "default-runtime",
            h.n(),
            format!("default_runtime_name = {d}"),
        )
    })
}

/// `drop-in-version`: drop-in versions must not exceed the root's
/// (containerd PR #12891, NVIDIA/aicr#1688).
fn drop_in_versions(h: &Host, cfg: &ContainerdConfig) -> Vec<Finding> {
    let (n, unit) = (h.n(), h.unit);
    let mut out = Vec::new();
    for dir in [&h.paths.drop_in_v3, &h.paths.drop_in_v2] {
        for name in h.probe.dir(dir).unwrap_or_default() {
            let path = format!("{dir}/{name}");
            let Some(text) = h.probe.file(&path) else {
                continue;
            };
            match ContainerdConfig::parse(&path, text) {
                Ok(d) if d.version() > cfg.version() => {
                    let consequence = match h.node.containerd() {
                        Some(c) if matrix::containerd_rejects_newer_drop_in(c) => format!(
                            "this node's containerd {c} refuses to start with it (as every containerd {} does: {})",
                            matrix::DROP_IN_VERSION_REJECTED_BY,
                            matrix::RKE2_REJECTING_NEWER_DROP_INS
                        ),
                        _ => format!(
                            "containerd {} ({}) refuse to start, others silently skip migration",
                            matrix::DROP_IN_VERSION_REJECTED_BY,
                            matrix::RKE2_REJECTING_NEWER_DROP_INS
                        ),
                    };
                    out.push(
                        Finding::fail(
                            "drop-in-version",
                            n,
                            format!(
                                "{path} has version = {} above the root config's {}: {consequence}",
                                d.version(),
                                cfg.version()
                            ),
                        )
                        .evidence(format!(
                            "source: {}",
                            matrix::RKE2_REJECTING_NEWER_DROP_INS_SOURCE
                        ))
                        .fix(format!("set version = {} in {path}", cfg.version())),
                    );
                }
                Ok(_) => {}
                Err(e) => out.push(
                    Finding::fail("drop-in-version", n, format!("{path} does not parse: {e}")).fix(
                        format!("fix or remove {path}, then systemctl restart {unit}"),
                    ),
                ),
            }
        }
    }
    out
}

/// `static-template`: user templates extend RKE2's base template instead
/// of freezing a static config.
fn static_templates(h: &Host) -> Vec<Finding> {
    let (n, unit, node) = (h.n(), h.unit, h.node);
    let mut out = Vec::new();
    for tmpl in [&h.paths.template_v3, &h.paths.template_v2] {
        let Some(text) = h.probe.file(tmpl) else {
            continue;
        };
        if !text.contains("{{") {
            out.push(
                Finding::fail("static-template", n, format!("{tmpl} is a static file (no Go template actions): RKE2 renders it verbatim, freezing registries, pause image, cgroup settings and the config layout"))
                    .evidence("the 2021 recipe and CONTAINERD_CONFIG=...config.toml.tmpl write this (gpu-operator#992, #623)")
                    .fix(format!("kubectl gpu patch-containerd --node {} --replace-static-template", node.name)),
            );
        } else if text.contains("template \"base\"") {
            out.push(Finding::ok(
                "static-template",
                n,
                format!("{tmpl} extends RKE2's base template"),
            ));
        } else {
            out.push(
                Finding::warn("static-template", n, format!("{tmpl} is a full custom Go template: RKE2 defaults added in later releases will not reach this node"))
                    .fix(format!("rewrite it as {{{{ template \"base\" . }}}} plus your tables (rke2-docs advanced.md), then systemctl restart {unit}")),
            );
        }
    }
    out
}

/// `template-tables`: a base template must not declare again a table (or a
/// key) that RKE2's base template renders: containerd then refuses the
/// generated config.toml (`toml: table … already exists`, `duplicated
/// tables`), which RKE2 regenerates from the template at every start
/// ([`crate::containerd::redeclared`]).
fn template_tables(h: &Host) -> Option<Finding> {
    let (n, unit, paths) = (h.n(), h.unit, h.paths);
    let containerd = h.node.containerd()?;
    let v3 = h.probe.file(&paths.template_v3);
    let v2 = h.probe.file(&paths.template_v2);
    let (version, text) = template_in_use(containerd.major, v3, v2)?;
    let path = if version >= 3 {
        &paths.template_v3
    } else {
        &paths.template_v2
    };
    let a = TemplateAnalysis::analyze(path, text);
    if a.kind != TemplateKind::Base {
        return None;
    }
    if let Err(e) = a.appended_document() {
        return Some(
            Finding::fail("template-tables", n, e.to_string())
                .fix(format!("fix the TOML after `{{{{ template \"base\" . }}}}` in {path}, then systemctl restart {unit}")),
        );
    }
    let Some(base) = a.base_render_for(h.probe.file(&paths.generated_config)?, version) else {
        return Some(
            Finding::warn("template-tables", n, format!("{} was rendered from another schema's base than the version {version} base {path} extends: what the template redeclares shows only once {unit} renders it", paths.generated_config))
                .fix(format!("systemctl restart {unit}, then kubectl gpu check-runtime --deep --node {}", h.node.name)),
        );
    };
    let head = config_head(&paths.generated_config, &base.text)?;
    let overlaps = match redeclared::find(&redeclared::Inputs {
        template: &a,
        base: &base,
        config_path: &paths.generated_config,
        containerd,
    }) {
        Ok(o) => o,
        Err(e) => {
            return Some(Finding::warn(
                "template-tables",
                n,
                format!("cannot tell what {path} adds to the base template: {e}"),
            ));
        }
    };
    let Some(first) = overlaps.first() else {
        return Some(Finding::ok(
            "template-tables",
            n,
            format!("{path} declares no table that the base template renders"),
        ));
    };
    let refused = overlaps.iter().any(|o| o.verdict.refused());
    let mut message = first.describe(path, containerd);
    if overlaps.len() > 1 {
        message.push_str(&format!(" (and {} more)", overlaps.len() - 1));
    }
    let mut f = if refused {
        Finding::fail("template-tables", n, message)
    } else {
        Finding::warn("template-tables", n, message)
    };
    for o in overlaps.iter().skip(1) {
        f = f.evidence(o.describe(path, containerd));
    }
    if !base.is_current() {
        f = f.evidence(format!(
            "{} was rendered before {path} last changed (the base is read from the tables k3s' base templates declare in it): the next start of {unit} renders the template as it is now",
            paths.generated_config
        ));
    }
    let tables: Vec<String> = overlaps.iter().map(|o| o.written.clone()).collect();
    let node = &h.node.name;
    let fix = match imported_drop_in_dir(&head, false)
        .filter(|_| matrix::containerd_merges_drop_ins(containerd))
    {
        Some(dir) => format!(
            "kubectl gpu patch-containerd --node {node}   # moves {} into {dir}/{TEMPLATE_DROP_IN_NAME} (containerd {}.{} merges drop-ins over the base) and keeps the rest of {path}; --apply writes with a backup, restarts {unit} and confirms",
            tables.join(", "),
            containerd.major,
            containerd.minor
        ),
        None => format!(
            "remove {} from {path} (containerd {}.{} cannot take them from a drop-in: it replaces whole plugin tables, or the config imports none), then systemctl restart {unit}; kubectl gpu patch-containerd --node {node} drops those the base renders with the same value",
            tables.join(", "),
            containerd.major,
            containerd.minor
        ),
    };
    Some(f.fix(fix))
}

/// `template-schema`: containerd 2.x with only a v2 template.
fn template_schema(h: &Host) -> Option<Finding> {
    let paths = h.paths;
    (h.node.containerd().is_some_and(|c| c.major >= 2)
        && h.probe.file(&paths.template_v3).is_none()
        && h.probe.file(&paths.template_v2).is_some())
    .then(|| {
        Finding::warn("template-schema", h.n(), format!("containerd 2.x with only {}: RKE2 renders a version 2 config, which containerd migrates at every start", paths.template_v2))
            .fix(format!("move your additions into {} as a v3 base template", paths.template_v3))
    })
}

/// `default-runtime`: RKE2's `default-runtime` flag before any runtime
/// exists (k3s pkg/agent/containerd/config_linux.go: `default runtime %s
/// was not found`).
fn rke2_default_runtime(h: &Host) -> Option<Finding> {
    let rt = h.rke2.default_runtime.as_deref()?;
    let exists = h.toolkit_runtime || h.host_runtime;
    (rt.starts_with("nvidia") && !exists).then(|| {
        Finding::fail("default-runtime", h.n(), format!("RKE2 default-runtime: {rt} is set but no nvidia-container-runtime exists: RKE2 fails with `default runtime {rt} was not found`"))
            .evidence(format!("from {}", h.rke2.files.join(", ")))
            .fix("remove default-runtime from the RKE2 config until the toolkit is installed, then restart RKE2")
    })
}

/// `rke2-profile`: the CIS profile and its PSA exemptions ([`matrix::cis_psa_exempt_namespaces`]).
fn rke2_profile(h: &Host) -> Option<Finding> {
    h.rke2
        .profile
        .as_deref()
        .is_some_and(|p| p.starts_with("cis"))
        .then(|| {
            let exempt = matrix::cis_psa_exempt_namespaces(h.node.kubelet.as_ref());
            Finding::ok("rke2-profile", h.n(), format!("RKE2 profile cis: PSA restricted everywhere but {}; the operator namespace needs pod-security.kubernetes.io/enforce=privileged", exempt.join(", ")))
        })
}

/// `data-dir`: the RKE2 config's data-dir is where the files were read.
fn data_dir(h: &Host) -> Option<Finding> {
    let dd = h.rke2.data_dir.as_ref()?;
    (dd.trim_end_matches('/') != h.paths.data_dir).then(|| {
        Finding::warn(
            "data-dir",
            h.n(),
            format!(
                "RKE2 config sets data-dir {dd}, but files were read under {}",
                h.paths.data_dir
            ),
        )
    })
}

/// `driver`: a kernel driver is loaded, matches the node label, and does
/// not compete with the operator's driver container.
fn driver(h: &Host) -> Finding {
    let (n, node) = (h.n(), h.node);
    let driver_enabled = h.operator.and_then(|o| o.driver_enabled);
    let Some(text) = h.probe.file(DRIVER_VERSION_FILE) else {
        return if driver_enabled == Some(true) {
            Finding::ok(
                "driver",
                n,
                "no driver loaded on the host; the operator's driver container installs it (driver.enabled=true)",
            )
        } else {
            Finding::fail("driver", n, format!("no NVIDIA kernel driver loaded ({DRIVER_VERSION_FILE} missing) and the operator does not install one"))
                .fix("install the NVIDIA driver on the host, or set driver.enabled=true in the GPU Operator")
        };
    };
    let version = text
        .lines()
        .next()
        .and_then(|l| {
            l.split_whitespace()
                .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()) && w.contains('.'))
        })
        .unwrap_or("?")
        .to_string();
    let mut f = Finding::ok(
        "driver",
        n,
        format!("NVIDIA kernel driver {version} loaded"),
    );
    if let Some(label) = &node.gpu.driver_version
        && label != &version
    {
        f = Finding::warn("driver", n, format!("kernel driver {version} differs from the node label {label}: an upgrade under running pods gives `Driver/library version mismatch`"))
            .fix("reboot the node, or restart the operand pods after driver upgrades");
    }
    if driver_enabled == Some(true) && node.gpu.deploy_driver.as_deref() != Some("pre-installed") {
        f = Finding::warn("driver", n, format!("a host driver ({version}) is loaded while the operator's driver.enabled=true and the node is not labelled pre-installed"))
            .evidence("source: gpu-operator#511, #625 (libnvidia-ml.so.1 load failure when host driver and driver container disagree)")
            .fix("set driver.enabled=false (helm rke2gpu upgrade --set driver.enabled=false)");
    }
    f
}

/// `nouveau`: the nouveau module blocks the NVIDIA driver (NVIDIA
/// gpu-operator troubleshooting.rst).
fn nouveau(h: &Host) -> Option<Finding> {
    h.probe
        .file(MODULES_FILE)
        .is_some_and(|m| {
            m.lines()
                .any(|l| l.split_whitespace().next() == Some("nouveau"))
        })
        .then(|| {
            Finding::fail("nouveau", h.n(), "the nouveau kernel module is loaded: the NVIDIA driver cannot bind the GPU")
                .fix("printf 'blacklist nouveau\\noptions nouveau modeset=0\\n' > /etc/modprobe.d/blacklist-nouveau.conf && update-initramfs -u && reboot")
        })
}

/// `secure-boot`: Secure Boot with an operator-built (unsigned) driver
/// (gpu-operator#266, #1142, #1726).
fn secure_boot(h: &Host) -> Option<Finding> {
    let on = matches!(h.probe.binary.get(SECURE_BOOT_VAR), Some(Some(bytes)) if bytes.last() == Some(&1));
    (on && h.operator.and_then(|o| o.driver_enabled) == Some(true)).then(|| {
        Finding::warn("secure-boot", h.n(), "Secure Boot is on and the operator builds the driver: unsigned modules are rejected (`Key was rejected by service`)")
            .fix("use a pre-installed signed driver (driver.enabled=false), signed precompiled driver images, or disable Secure Boot")
    })
}

/// `host-containerd-dropin`: `/etc/containerd/conf.d/99-nvidia.toml`, which
/// RKE2's containerd never reads. From chart v25.10 with toolkit ≥ 1.18 the
/// operator writes it on every node ([`matrix::HOST_DROP_IN_CHART`]), so its
/// presence alone is no finding worth a warning there. It is one where it
/// means something: an older chart or toolkit (something configured the
/// host's containerd), no operator (a leftover), or content that conflicts
/// with RKE2's config (RKE2's config imports it, it sets a default runtime
/// RKE2 never applies, or it registers runtime names RKE2 does not render).
fn host_containerd_dropin(h: &Host) -> Option<Finding> {
    let path = HOST_CONTAINERD_DROPIN;
    let present = h.probe.exists(path) || h.probe.file(path).is_some();
    if !h.node.is_rke2_like() || !present {
        return None;
    }
    let n = h.n();
    let generated = h
        .probe
        .file(&h.paths.generated_config)
        .and_then(|t| ContainerdConfig::parse(&h.paths.generated_config, t).ok());
    if let Some(imported) = generated
        .as_ref()
        .and_then(|g| g.imports().into_iter().find(|i| glob_matches(i, path)))
    {
        let replaces = h
            .node
            .containerd()
            .is_none_or(|c| !matrix::containerd_merges_drop_ins(c));
        let status = if replaces { Status::Fail } else { Status::Warn };
        return Some(
            Finding::new("host-containerd-dropin", n, status, format!("RKE2's generated config imports {imported}, so its containerd loads {path}, the toolkit's drop-in for a host containerd: its CRI plugin subtree {} RKE2's own settings", if replaces { "replaces (containerd 1.x does not merge imported plugin tables)" } else { "overrides" }))
                .evidence(format!("imports in {}", h.paths.generated_config))
                .fix(format!("remove the import of {imported} from the RKE2 config template ({} or {}), then systemctl restart {}", h.paths.template_v3, h.paths.template_v2, h.unit)),
        );
    }
    let content = h
        .probe
        .file(path)
        .and_then(|t| ContainerdConfig::parse(path, t).ok());
    if let Some(d) = &content {
        if let Some(default) = d.default_runtime_name() {
            return Some(
                Finding::warn("host-containerd-dropin", n, format!("{path} makes {default} containerd's default runtime, but RKE2's containerd does not read it: on RKE2 the default stays {}", generated.as_ref().and_then(ContainerdConfig::default_runtime_name).unwrap_or_else(|| "runc".into())))
                    .evidence("the toolkit writes default_runtime_name when CONTAINERD_SET_AS_DEFAULT / NVIDIA_RUNTIME_SET_AS_DEFAULT is true")
                    .fix(format!("for a default nvidia runtime on RKE2: default-runtime: nvidia in the RKE2 config, or kubectl gpu patch-containerd --node {} --method default-runtime", h.node.name)),
            );
        }
        let foreign: Vec<String> = d
            .runtimes()
            .into_iter()
            .map(|r| r.name)
            .filter(|name| {
                let base = name
                    .strip_suffix("-cdi")
                    .or_else(|| name.strip_suffix("-legacy"))
                    .unwrap_or(name);
                !matrix::RKE2_NVIDIA_RUNTIMES.contains(&base)
            })
            .collect();
        if !foreign.is_empty() {
            return Some(
                Finding::warn("host-containerd-dropin", n, format!("{path} registers runtime(s) {} that RKE2 never renders (it renders only {}): pods of that RuntimeClass fail with `no runtime ... is configured`", foreign.join(", "), matrix::RKE2_NVIDIA_RUNTIMES.join(", ")))
                    .evidence(format!("source: {}", matrix::RKE2_NVIDIA_RUNTIMES_SOURCE))
                    .fix("helm rke2gpu upgrade --set operator.runtimeClass=nvidia"),
            );
        }
    }
    let why_expected = expected_host_dropin(h.operator);
    Some(match why_expected {
        Ok(why) => Finding::ok(
            "host-containerd-dropin",
            n,
            format!("{path} exists: {why}; RKE2's containerd does not read it"),
        ),
        Err(why) => Finding::warn("host-containerd-dropin", n, format!("{path} exists, but {why}: something configured the host's containerd, which RKE2 does not use"))
            .evidence(format!("source: {}", matrix::HOST_DROP_IN_CHART.source))
            .fix(format!("make sure toolkit.env has CONTAINERD_SOCKET={} (helm rke2gpu upgrade), then remove the file if no host containerd uses it", matrix::RKE2_CONTAINERD_SOCKET)),
    })
}

/// Why the operator's toolkit wrote the host drop-in (`Ok`), or why it
/// should not have (`Err`).
fn expected_host_dropin(op: Option<&OperatorFacts>) -> std::result::Result<String, String> {
    let (chart, toolkit) = (matrix::HOST_DROP_IN_CHART, matrix::HOST_DROP_IN_TOOLKIT);
    let Some(op) = op else {
        return Err(
            "no GPU Operator is installed (left over from an uninstalled operator, or a host `nvidia-ctk runtime configure`)".into(),
        );
    };
    if op.toolkit_enabled == Some(false) {
        return Err("the operator's toolkit is disabled (toolkit.enabled=false)".into());
    }
    if op.nri_enabled == Some(true) {
        return Ok(format!(
            "left from before NRI plugin mode (toolkit ≥ {} configures no runtime in that mode and removes nothing)",
            matrix::NRI_NOOP_CONFIGURER.version
        ));
    }
    match op.chart_version {
        Some(v) if v < chart.version => {
            return Err(format!(
                "chart {v} does not point the toolkit at it (from v{} on the operator always does)",
                chart.version
            ));
        }
        None => {
            return Ok(format!(
                "the chart version is unknown; charts from v{} on write it on every node",
                chart.version
            ));
        }
        Some(_) => {}
    }
    match op.toolkit_version.as_deref().and_then(Triple::parse_loose) {
        Some(tv) if tv < toolkit.version => Err(format!(
            "toolkit {tv} writes no drop-in (toolkit ≥ {} does)",
            toolkit.version
        )),
        _ => Ok(format!(
            "the GPU Operator (chart ≥ v{}, toolkit ≥ {}) writes it on every node",
            chart.version, toolkit.version
        )),
    }
}

/// Whether a containerd `imports` entry (a path with at most one `*`) names `path`.
fn glob_matches(pattern: &str, path: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == path,
        Some((prefix, suffix)) => {
            path.len() >= prefix.len() + suffix.len()
                && path.starts_with(prefix)
                && path.ends_with(suffix)
                && !path[prefix.len()..path.len() - suffix.len()].contains('/')
        }
    }
}

/// `leftover-toolkit`: the operator's toolkit dir without an operator
/// (k3s#4391).
fn leftover_toolkit_without_operator(h: &Host) -> Option<Finding> {
    (h.operator.is_none() && h.toolkit_runtime).then(|| {
        Finding::warn("leftover-toolkit", h.n(), format!("{} exists but no GPU Operator is installed: a stale runtime from an uninstalled operator", matrix::TOOLKIT_DIR))
            .fix(format!("rm -rf /usr/local/nvidia && systemctl restart {}", h.unit))
    })
}

/// What `--deep` read on one node: its paths and files, or why not.
pub type NodeRead = std::result::Result<(NodePaths, ProbeResult), String>;

/// What `--deep` read on every node it visited, by node name, and the
/// node-agent image it used (named in the fix of a node that failed).
#[derive(Debug, Clone, Default)]
pub struct DeepRead {
    pub image: String,
    pub nodes: BTreeMap<String, NodeRead>,
}

impl DeepRead {
    /// Every node marked unreadable for one reason (e.g. the agent
    /// namespace preflight failed).
    pub fn failed(image: &str, nodes: &[NodeFacts], reason: &str) -> Self {
        DeepRead {
            image: image.to_string(),
            nodes: nodes
                .iter()
                .map(|n| (n.name.clone(), Err(reason.to_string())))
                .collect(),
        }
    }
}

/// The host findings of one node: its [`rules`], or a `node-agent` failure
/// when its files could not be read.
pub fn findings(
    node: &NodeFacts,
    operator: Option<&OperatorFacts>,
    read: &NodeRead,
    image: &str,
) -> Vec<Finding> {
    match read {
        Ok((paths, probe)) => rules(node, operator, paths, probe),
        Err(e) => vec![
            Finding::fail("node-agent", Some(&node.name), e.clone()).fix(format!(
                "kubectl gpu cleanup; check the image ({image}) can be pulled on the node"
            )),
        ],
    }
}

/// Reads each node's files through a node-agent pod (bounded concurrency).
/// Removes every pod it created, on success and error. Fails only when the
/// node-agent namespace cannot be used; a node that cannot be read is an
/// `Err` entry of the result.
pub async fn read_nodes(kube: &Kube, nodes: &[NodeFacts], opts: &AgentOptions) -> Result<DeepRead> {
    let mut out = DeepRead {
        image: opts.image.clone(),
        nodes: BTreeMap::new(),
    };
    if nodes.is_empty() {
        return Ok(out);
    }
    crate::preflight::node_agent(kube, &opts.namespace).await?;
    let agents = Agents::new(kube, opts.clone());
    let results: Vec<(String, NodeRead)> = futures::stream::iter(nodes)
        .map(|node| {
            let agents = &agents;
            async move {
                let read = probe_node(agents, node).await.map_err(|e| e.to_string());
                (node.name.clone(), read)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    agents.cleanup().await;
    out.nodes = results.into_iter().collect();
    Ok(out)
}

/// Reads a node's files the way `--deep` does. Used by check-runtime and the
/// support bundle.
pub async fn probe_node(agents: &Agents, node: &NodeFacts) -> Result<(NodePaths, ProbeResult)> {
    let pod = agents.start(&node.name).await?;
    probe_sequence(node, async |req: &ProbeRequest| {
        agents.probe(&pod, req).await
    })
    .await
}

/// The reads of one node, each asked of `read` (the node agent, or a file
/// tree in tests): the first probe, again under the RKE2 config's `data-dir`
/// when it moves the paths, then the files inside the listed dirs, then
/// (where drop-ins name runtimes) whether their binaries exist.
pub async fn probe_sequence<E>(
    node: &NodeFacts,
    mut read: impl AsyncFnMut(&ProbeRequest) -> std::result::Result<ProbeResult, E>,
) -> std::result::Result<(NodePaths, ProbeResult), E> {
    let mut paths = NodePaths::new(node.distribution, node.args.data_dir.as_deref());
    let mut probe = read(&first_probe(&paths)).await?;
    // data-dir in the RKE2 config moves every path: read again there.
    if let Some(dd) = rke2_config(&paths, &probe).data_dir
        && dd.trim_end_matches('/') != paths.data_dir
    {
        paths = NodePaths::new(node.distribution, Some(&dd));
        probe.merge(read(&first_probe(&paths)).await?);
    }
    let second = second_probe(&paths, &probe);
    probe.merge(read(&second).await?);
    let third = drop_in_binaries_probe(&paths, &probe);
    if !third.exists.is_empty() {
        probe.merge(read(&third).await?);
    }
    Ok((paths, probe))
}
