//! Host-file rules (`check-runtime --deep`): what the node's files say about
//! the nvidia runtime, read through a read-only node-agent pod — RKE2's
//! generated `config.toml` and user templates, drop-ins, the RKE2 config,
//! toolkit binaries, the kernel driver, nouveau, Secure Boot, and the stray
//! files a misconfigured toolkit leaves.

use super::Finding;
use super::api::ClusterView;
use crate::client::Kube;
use crate::containerd::model::ContainerdConfig;
use crate::error::Result;
use crate::facts::NodeFacts;
use crate::matrix::{self, NodePaths};
use crate::node::agent::{AgentOptions, Agents};
use crate::node::probe::{ProbeRequest, ProbeResult};
use crate::operator::OperatorFacts;
use futures::StreamExt;

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

/// Every host rule for one node.
pub fn rules(
    node: &NodeFacts,
    operator: Option<&OperatorFacts>,
    paths: &NodePaths,
    probe: &ProbeResult,
) -> Vec<Finding> {
    let n = Some(node.name.as_str());
    let mut out = Vec::new();
    let rke2 = rke2_config(paths, probe);
    let unit = node.role.unit(node.distribution);
    let nri = operator.and_then(|o| o.nri_enabled) == Some(true);
    let toolkit_runtime = probe.exists(matrix::TOOLKIT_RUNTIME);
    let host_runtime = probe.exists(matrix::HOST_RUNTIME);

    // The generated config and its nvidia runtime.
    let generated = probe.file(&paths.generated_config);
    let parsed = generated.map(|t| ContainerdConfig::parse(&paths.generated_config, t));
    match &parsed {
        None => out.push(
            Finding::fail("generated-config", n, format!("no generated containerd config at {}", paths.generated_config))
                .fix(format!("is {unit} running, and is data-dir right? RKE2 config says data-dir: {}", rke2.data_dir.as_deref().unwrap_or(matrix::RKE2_DATA_DIR))),
        ),
        Some(Err(e)) => out.push(
            Finding::fail("generated-config", n, format!("the generated config does not parse: {e}"))
                .fix(format!("a user template renders invalid TOML: check {} and {}, then systemctl restart {unit}", paths.template_v3, paths.template_v2)),
        ),
        Some(Ok(cfg)) => {
            out.push(Finding::ok(
                "generated-config",
                n,
                format!("{} is version {} with runtimes [{}]", paths.generated_config, cfg.version(), cfg.runtimes().iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ")),
            ));
            if nri {
                out.push(Finding::skipped("nvidia-runtime", n, "NRI plugin mode: no nvidia runtime in containerd is expected"));
            } else {
                match cfg.runtime("nvidia") {
                    Some(rt) => {
                        let bin = rt.binary_name.clone().unwrap_or_default();
                        if bin.is_empty() {
                            out.push(Finding::fail("nvidia-runtime", n, "runtime nvidia is rendered without options.BinaryName").fix(format!("kubectl gpu patch-containerd --node {}", node.name)));
                        } else if probe.exists(&bin) {
                            out.push(Finding::ok("nvidia-runtime", n, format!("runtime nvidia → {bin}")));
                        } else {
                            out.push(
                                Finding::fail("nvidia-runtime", n, format!("runtime nvidia points at {bin}, which does not exist on the node"))
                                    .fix(format!("the toolkit was removed: reinstall it (operator toolkit pod) or restart {unit} so RKE2 re-detects the runtimes")),
                            );
                        }
                        if operator.is_none() && bin.starts_with(matrix::TOOLKIT_DIR) && host_runtime {
                            out.push(
                                Finding::warn("leftover-toolkit", n, format!("{} from an uninstalled GPU Operator shadows the host's {}", matrix::TOOLKIT_DIR, matrix::HOST_RUNTIME))
                                    .evidence("source: k3s#4391; RKE2 searches /usr/local/nvidia/toolkit first")
                                    .fix(format!("rm -rf /usr/local/nvidia && systemctl restart {unit}")),
                            );
                        }
                    }
                    None if toolkit_runtime || host_runtime => out.push(
                        Finding::fail("nvidia-runtime", n, "an nvidia runtime binary exists but RKE2 has not rendered the nvidia runtime: RKE2 detects runtimes only when it starts")
                            .evidence(format!("{}: {toolkit_runtime}, {}: {host_runtime}", matrix::TOOLKIT_RUNTIME, matrix::HOST_RUNTIME))
                            .fix(format!("systemctl restart {unit}   # or: kubectl gpu patch-containerd --node {}", node.name)),
                    ),
                    None => out.push(
                        Finding::fail("nvidia-runtime", n, "no nvidia runtime in the generated config and no nvidia-container-runtime on the node")
                            .fix(format!("install the GPU Operator (its toolkit pod installs {}): helm rke2gpu install", matrix::TOOLKIT_DIR)),
                    ),
                }
            }
            if let Some(d) = &cfg.default_runtime_name() {
                out.push(Finding::ok("default-runtime", n, format!("default_runtime_name = {d}")));
            }
            // Drop-in versions must not exceed the root's.
            for dir in [&paths.drop_in_v3, &paths.drop_in_v2] {
                for name in probe.dir(dir).unwrap_or_default() {
                    let path = format!("{dir}/{name}");
                    let Some(text) = probe.file(&path) else { continue };
                    match ContainerdConfig::parse(&path, text) {
                        Ok(d) if d.version() > cfg.version() => out.push(
                            Finding::fail("drop-in-version", n, format!("{path} has version = {} above the root config's {}: containerd 2.3.0–2.3.4 refuse to start, others silently skip migration", d.version(), cfg.version()))
                                .fix(format!("set version = {} in {path}", cfg.version())),
                        ),
                        Ok(_) => {}
                        Err(e) => out.push(Finding::fail("drop-in-version", n, format!("{path} does not parse: {e}")).fix(format!("fix or remove {path}, then systemctl restart {unit}"))),
                    }
                }
            }
        }
    }

    // User templates.
    for tmpl in [&paths.template_v3, &paths.template_v2] {
        let Some(text) = probe.file(tmpl) else {
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
    if node.containerd().is_some_and(|c| c.major >= 2)
        && probe.file(&paths.template_v3).is_none()
        && probe.file(&paths.template_v2).is_some()
    {
        out.push(Finding::warn("template-schema", n, format!("containerd 2.x with only {}: RKE2 renders a version 2 config, which containerd migrates at every start", paths.template_v2))
            .fix(format!("move your additions into {} as a v3 base template", paths.template_v3)));
    }

    // RKE2's default-runtime flag before any runtime exists.
    if let Some(rt) = rke2.default_runtime.as_deref() {
        let exists = toolkit_runtime || host_runtime;
        if rt.starts_with("nvidia") && !exists {
            out.push(
                Finding::fail("default-runtime", n, format!("RKE2 default-runtime: {rt} is set but no nvidia-container-runtime exists: RKE2 fails with `default runtime {rt} was not found`"))
                    .evidence(format!("from {}", rke2.files.join(", ")))
                    .fix("remove default-runtime from the RKE2 config until the toolkit is installed, then restart RKE2"),
            );
        }
    }
    if rke2
        .profile
        .as_deref()
        .is_some_and(|p| p.starts_with("cis"))
    {
        out.push(Finding::ok("rke2-profile", n, "RKE2 profile cis: PSA restricted everywhere but kube-system; the operator namespace needs pod-security.kubernetes.io/enforce=privileged"));
    }
    if let Some(dd) = &rke2.data_dir
        && dd.trim_end_matches('/') != paths.data_dir
    {
        out.push(Finding::warn(
            "data-dir",
            n,
            format!(
                "RKE2 config sets data-dir {dd}, but files were read under {}",
                paths.data_dir
            ),
        ));
    }

    // Driver, nouveau, Secure Boot.
    let driver_enabled = operator.and_then(|o| o.driver_enabled);
    match probe.file(DRIVER_VERSION_FILE) {
        Some(text) => {
            let version = text
                .lines()
                .next()
                .and_then(|l| l.split_whitespace().find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()) && w.contains('.')))
                .unwrap_or("?")
                .to_string();
            let mut f = Finding::ok("driver", n, format!("NVIDIA kernel driver {version} loaded"));
            if let Some(label) = &node.gpu.driver_version
                && label != &version {
                    f = Finding::warn("driver", n, format!("kernel driver {version} differs from the node label {label}: an upgrade under running pods gives `Driver/library version mismatch`"))
                        .fix("reboot the node, or restart the operand pods after driver upgrades");
                }
            if driver_enabled == Some(true) && node.gpu.deploy_driver.as_deref() != Some("pre-installed") {
                f = Finding::warn("driver", n, format!("a host driver ({version}) is loaded while the operator's driver.enabled=true and the node is not labelled pre-installed"))
                    .evidence("source: reference section 6 row 10 (gpu-operator#511, #625)")
                    .fix("set driver.enabled=false (helm rke2gpu upgrade --set driver.enabled=false)");
            }
            out.push(f);
        }
        None if driver_enabled == Some(true) => out.push(Finding::ok("driver", n, "no driver loaded on the host; the operator's driver container installs it (driver.enabled=true)")),
        None => out.push(
            Finding::fail("driver", n, format!("no NVIDIA kernel driver loaded ({DRIVER_VERSION_FILE} missing) and the operator does not install one"))
                .fix("install the NVIDIA driver on the host, or set driver.enabled=true in the GPU Operator"),
        ),
    }
    if probe.file(MODULES_FILE).is_some_and(|m| {
        m.lines()
            .any(|l| l.split_whitespace().next() == Some("nouveau"))
    }) {
        out.push(
            Finding::fail("nouveau", n, "the nouveau kernel module is loaded: the NVIDIA driver cannot bind the GPU")
                .fix("printf 'blacklist nouveau\\noptions nouveau modeset=0\\n' > /etc/modprobe.d/blacklist-nouveau.conf && update-initramfs -u && reboot"),
        );
    }
    if let Some(Some(bytes)) = probe.binary.get(SECURE_BOOT_VAR)
        && bytes.last() == Some(&1)
        && driver_enabled == Some(true)
    {
        out.push(
                Finding::warn("secure-boot", n, "Secure Boot is on and the operator builds the driver: unsigned modules are rejected (`Key was rejected by service`)")
                    .fix("use a pre-installed signed driver (driver.enabled=false), signed precompiled driver images, or disable Secure Boot"),
            );
    }
    if node.is_rke2_like() && probe.exists(HOST_CONTAINERD_DROPIN) {
        out.push(
            Finding::warn("host-containerd-dropin", n, format!("{HOST_CONTAINERD_DROPIN} exists: the toolkit configured the host's containerd, which RKE2 does not use"))
                .fix(format!("set toolkit.env CONTAINERD_SOCKET={} (helm rke2gpu upgrade) and remove the file", matrix::RKE2_CONTAINERD_SOCKET)),
        );
    }
    if operator.is_none() && toolkit_runtime {
        out.push(
            Finding::warn("leftover-toolkit", n, format!("{} exists but no GPU Operator is installed: a stale runtime from an uninstalled operator", matrix::TOOLKIT_DIR))
                .fix(format!("rm -rf /usr/local/nvidia && systemctl restart {unit}")),
        );
    }
    out
}

/// Reads each node's files through a node-agent pod (bounded concurrency)
/// and applies [`rules`]. Removes every pod it created, on success and error.
pub async fn deep(
    kube: &Kube,
    view: &ClusterView,
    nodes: &[NodeFacts],
    opts: &AgentOptions,
) -> Result<Vec<Finding>> {
    if nodes.is_empty() {
        return Ok(vec![]);
    }
    crate::preflight::node_agent(kube, &opts.namespace).await?;
    let agents = Agents::new(kube, opts.clone());
    let operator = view.operator.as_ref();
    let results: Vec<Vec<Finding>> = futures::stream::iter(nodes)
        .map(|node| {
            let agents = &agents;
            async move {
                match probe_node(agents, node).await {
                    Ok((paths, probe)) => rules(node, operator, &paths, &probe),
                    Err(e) => vec![
                        Finding::fail("node-agent", Some(&node.name), e.to_string()).fix(format!(
                            "kubectl gpu cleanup; check the image ({}) can be pulled on the node",
                            opts.image
                        )),
                    ],
                }
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    agents.cleanup().await;
    Ok(results.into_iter().flatten().collect())
}

/// Reads a node's files the way `--deep` does: the first probe, again under
/// the RKE2 config's `data-dir` when it moves the paths, then the files
/// inside the listed dirs. Used by check-runtime and the support bundle.
pub async fn probe_node(agents: &Agents, node: &NodeFacts) -> Result<(NodePaths, ProbeResult)> {
    let pod = agents.start(&node.name).await?;
    let mut paths = NodePaths::new(node.distribution, node.args.data_dir.as_deref());
    let mut probe = agents.probe(&pod, &first_probe(&paths)).await?;
    // data-dir in the RKE2 config moves every path: read again there.
    if let Some(dd) = rke2_config(&paths, &probe).data_dir
        && dd.trim_end_matches('/') != paths.data_dir
    {
        paths = NodePaths::new(node.distribution, Some(&dd));
        probe.merge(agents.probe(&pod, &first_probe(&paths)).await?);
    }
    let second = second_probe(&paths, &probe);
    probe.merge(agents.probe(&pod, &second).await?);
    Ok((paths, probe))
}
