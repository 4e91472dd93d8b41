//! Every config the planner produces, loaded by a REAL containerd.
//!
//! Inputs: RKE2-generated configs — the reconstructed v3 example
//! (tests/fixtures/rke2-containerd-config-example.toml), the configs the
//! test cluster renders from the real k3s templates
//! (tests/node-trees/*/var/lib/rancher/*/agent/etc/containerd/config.toml,
//! from the cluster branch; `RKE2GPU_PATCH_NODE_TREES` may point at another
//! checkout's tests/node-trees until it is merged) and real ones from public
//! issues (tests/fixtures/real-world/containerd/) — each also without its
//! nvidia runtimes (before the toolkit was installed) and without its
//! `imports` line (RKE2 before 2026), crossed with the options (runtime
//! name, --set-as-default, --method, binaries present or not, user
//! templates).
//!
//! For every plan that writes something, the config containerd will load
//! is built the way RKE2 would render it ([`rke2gpu::patch::preview_generated`]):
//! drop-in mode = the generated config (its `imports` pointed at a temp dir
//! holding the drop-ins, so containerd does the merge itself); template
//! mode = the new template with `{{ template "base" . }}` replaced by the
//! current generated config (an approximation: RKE2's base render *is* the
//! generated config when no template existed; for a replaced static
//! template a non-static generated config of the same schema stands in for
//! the base); default-runtime mode = the generated config with
//! `default_runtime_name` added, as RKE2 renders it.
//!
//! Then, with containerd 1.7.x for version 2 configs and 2.x for version 3:
//! `containerd --config F config dump` must succeed and show the runtime
//! and its BinaryName; and `containerd --config F --root --state --address`
//! (temp dirs) must boot, load the CRI plugin without error and log the
//! runtime with its BinaryName (and the default runtime) in its CRI config.
//! containerd is killed afterwards.
//!
//! Skipped, with the reason printed, when the containerd binaries are not in
//! `${RKE2GPU_TEST_CACHE:-$HOME/.cache/rke2gpu-test}/bin/containerd-v*/`
//! (tests/e2e/build-bins builds them; CI runs it first).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rke2gpu::containerd::ContainerdConfig;
use rke2gpu::patch;
use rke2gpu::patch::plan::{Capabilities, Method, NodeState, PatchOptions, PlanInput};
use rke2gpu::version::Triple;

const DD: &str = "/var/lib/rancher/rke2";
const TK: &str = "/usr/local/nvidia/toolkit";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub(crate) fn cache_bin_dir() -> PathBuf {
    match std::env::var_os("RKE2GPU_TEST_CACHE") {
        Some(c) => PathBuf::from(c).join("bin"),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/rke2gpu-test/bin"),
    }
}

/// The newest `containerd-v<major>.*` build in the cache (or `$env`).
pub(crate) fn containerd_bin(major: &str, env: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(env) {
        return Some(PathBuf::from(p));
    }
    let mut found: Vec<PathBuf> = fs::read_dir(cache_bin_dir())
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("containerd-v{major}."))
        })
        .map(|e| e.path().join("containerd"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop()
}

#[derive(Clone)]
struct Source {
    name: String,
    text: String,
    version: i64,
}

fn node_tree_dir() -> Option<PathBuf> {
    let d = std::env::var_os("RKE2GPU_PATCH_NODE_TREES")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("tests/node-trees"));
    d.is_dir().then_some(d)
}

fn sources() -> Vec<Source> {
    let mut out = Vec::new();
    let mut push = |name: String, text: String| {
        let version = ContainerdConfig::parse(&name, &text)
            .map(|c| c.version())
            .unwrap_or(0);
        if version >= 2 {
            out.push(Source {
                name,
                text,
                version,
            });
        }
    };
    let ex = repo().join("tests/fixtures/rke2-containerd-config-example.toml");
    if let Ok(t) = fs::read_to_string(&ex) {
        push("fixture rke2-containerd-config-example.toml".into(), t);
    }
    match node_tree_dir() {
        Some(d) => {
            let mut nodes: Vec<_> = fs::read_dir(&d)
                .map(|r| r.filter_map(|e| e.ok()).map(|e| e.path()).collect())
                .unwrap_or_default();
            nodes.sort();
            for n in nodes {
                // RKE2 trees only (K3s's etc path differs; the planner is RKE2's).
                let cfg = n.join("var/lib/rancher/rke2/agent/etc/containerd/config.toml");
                if let Ok(t) = fs::read_to_string(&cfg) {
                    push(
                        format!(
                            "node-tree {}",
                            n.file_name().unwrap_or_default().to_string_lossy()
                        ),
                        t,
                    );
                }
            }
        }
        None => println!(
            "note: {} is missing (cluster branch not merged yet; set RKE2GPU_PATCH_NODE_TREES): node-tree configs not tested",
            repo().join("tests/node-trees").display()
        ),
    }
    // A real v2 generated config from a public write-up (copied into a
    // static template, which RKE2 renders verbatim).
    let real = repo().join(
        "tests/fixtures/real-world/containerd/rke2-v2-config.toml.tmpl-static-copy-nvidia-default.toml",
    );
    if let Ok(t) = fs::read_to_string(&real) {
        push("real-world v2 static copy (as generated)".into(), t);
    }
    out
}

/// Drops every table whose header names an nvidia runtime.
fn strip_nvidia(text: &str) -> String {
    let mut out = String::new();
    let mut skip = false;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        if t.starts_with('[') {
            skip = t.contains("runtimes.") && t.contains("nvidia");
        }
        if !skip && !t.starts_with("default_runtime_name") {
            out.push_str(line);
        }
    }
    out
}

/// The generated config as RKE2 renders it on its next start for these
/// binaries: its nvidia runtimes dropped, then the detected ones rendered
/// (k3s `findContainerRuntimes`: toolkit dir first, then PATH; the
/// template ranges over runtimes in name order).
fn rerender(text: &str, binaries: &BTreeSet<String>, version: i64) -> String {
    let mut s = strip_nvidia(text);
    let systemd = ContainerdConfig::parse("g", text)
        .ok()
        .and_then(|c| c.runtime("runc"))
        .and_then(|r| r.systemd_cgroup)
        .unwrap_or(false);
    for (name, file) in [
        ("nvidia", "nvidia-container-runtime"),
        ("nvidia-cdi", "nvidia-container-runtime.cdi"),
        (
            "nvidia-experimental",
            "nvidia-container-runtime-experimental",
        ),
    ] {
        let Some(bin) = patch::RUNTIME_DIRS
            .iter()
            .map(|d| format!("{d}/{file}"))
            .find(|p| binaries.contains(p))
        else {
            continue;
        };
        let t = if version >= 3 {
            format!("plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.'{name}'")
        } else {
            format!("plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.\"{name}\"")
        };
        if !s.ends_with('\n') {
            s.push('\n');
        }
        s.push_str(&format!(
            "\n[{t}]\n  runtime_type = \"io.containerd.runc.v2\"\n\n[{t}.options]\n  BinaryName = \"{bin}\"\n  SystemdCgroup = {systemd}\n"
        ));
    }
    s
}

fn strip_imports(text: &str) -> String {
    text.split_inclusive('\n')
        .filter(|l| !l.starts_with("imports"))
        .collect()
}

#[derive(Clone)]
struct Case {
    label: String,
    state: NodeState,
    caps: Capabilities,
    options: PatchOptions,
    /// Base render to use for a replaced static template.
    static_base: Option<String>,
    version: i64,
}

fn bins(rendered: &ContainerdConfig) -> BTreeSet<String> {
    rendered
        .runtimes()
        .into_iter()
        .filter_map(|r| r.binary_name)
        .filter(|b| b.contains("nvidia"))
        .collect()
}

fn cases() -> Vec<Case> {
    let srcs = sources();
    let v2_base = srcs
        .iter()
        .find(|s| s.version == 2 && s.name.starts_with("node-tree"))
        .map(|s| s.text.clone());
    let base_tmpl = fs::read_to_string(repo().join(
        "tests/fixtures/real-world/containerd/rke2-docs-config-v3.toml.tmpl-base-template.toml",
    ))
    .ok();
    let mut out = Vec::new();
    for s in &srcs {
        let c = match s.version {
            2 => Triple::new(1, 7, 0),
            _ => Triple::new(2, 2, 0),
        };
        let caps = Capabilities {
            default_runtime_flag: true,
            base_templates: true,
            containerd: c,
        };
        let is_static = s.name.contains("static copy");
        let mut variants: Vec<(String, String, Option<String>, Option<String>)> = Vec::new();
        // (label, generated, template_v3, template_v2)
        if is_static {
            variants.push((
                "static template".into(),
                s.text.clone(),
                None,
                Some(s.text.clone()),
            ));
        } else {
            variants.push(("as rendered".into(), s.text.clone(), None, None));
            variants.push(("no nvidia yet".into(), strip_nvidia(&s.text), None, None));
            if s.text.contains("imports") {
                variants.push(("no imports".into(), strip_imports(&s.text), None, None));
                variants.push((
                    "no imports, no nvidia".into(),
                    strip_nvidia(&strip_imports(&s.text)),
                    None,
                    None,
                ));
            }
            if s.version >= 3
                && let Some(t) = &base_tmpl
            {
                // The generated config of a node with the rke2-docs base
                // template: base render + its appended TOML.
                let appended = t.split_once('\n').map(|x| x.1).unwrap_or("");
                let g = strip_imports(&s.text) + "\n" + appended;
                variants.push(("rke2-docs base template".into(), g, Some(t.clone()), None));
            }
        }
        for (vlabel, generated, t3, t2) in variants {
            let Ok(rendered) = ContainerdConfig::parse("g", &generated) else {
                continue;
            };
            for binset in ["rendered", "none", "host package"] {
                let runtime_binaries = match binset {
                    "rendered" => bins(&rendered),
                    "none" => BTreeSet::new(),
                    _ => BTreeSet::from(["/usr/bin/nvidia-container-runtime".to_owned()]),
                };
                let state = NodeState {
                    generated_config: generated.clone(),
                    template_v3: t3.clone(),
                    template_v2: t2.clone(),
                    runtime_binaries,
                    ..NodeState::default()
                };
                for name in ["nvidia", "nvidia-cdi", "gpu"] {
                    for default in [false, true] {
                        for method in [
                            None,
                            Some(Method::DropIn),
                            Some(Method::DefaultRuntime),
                            Some(Method::Template),
                        ] {
                            for binary_path in
                                [None, Some(format!("{TK}/nvidia-container-runtime"))]
                            {
                                if binary_path.is_some() && name == "nvidia" {
                                    continue;
                                }
                                let options = PatchOptions {
                                    runtime_name: name.into(),
                                    set_as_default: default,
                                    binary_path: binary_path.clone(),
                                    method,
                                    replace_static_template: is_static,
                                    ..PatchOptions::default()
                                };
                                out.push(Case {
                                    label: format!(
                                        "{} [{vlabel}; binaries {binset}] runtime {name}{}{}{}",
                                        s.name,
                                        if default { " --set-as-default" } else { "" },
                                        method
                                            .map(|m| format!(" --method {m}"))
                                            .unwrap_or_default(),
                                        binary_path
                                            .as_deref()
                                            .map(|b| format!(" --binary-path {b}"))
                                            .unwrap_or_default(),
                                    ),
                                    state: state.clone(),
                                    caps,
                                    options,
                                    static_base: if is_static { v2_base.clone() } else { None },
                                    version: s.version,
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

/// What containerd is given: the config text, and drop-ins to place.
struct Load {
    config: String,
    drop_ins: BTreeMap<String, String>,
    runtime: String,
    binary: String,
    default: bool,
    version: i64,
}

fn build_load(c: &Case) -> Result<Option<(Load, String)>, String> {
    let input = PlanInput {
        state: c.state.clone(),
        caps: c.caps,
        data_dir: DD.into(),
        options: c.options.clone(),
    };
    let p = match rke2gpu::patch::plan::plan(&input) {
        Ok(p) => p,
        Err(_) => return Ok(None), // refusals are tested elsewhere
    };
    if p.changes.is_empty() {
        return Ok(None);
    }
    let method = p.method.map(|m| m.to_string()).unwrap_or_default();
    // RKE2 re-detects the runtime binaries when it restarts.
    let mut restarted = c.state.clone();
    restarted.generated_config = rerender(
        &c.state.generated_config,
        &c.state.runtime_binaries,
        c.version,
    );
    let mut config = patch::preview_generated(&p, &restarted)
        .map_err(|e| format!("preview: {e}"))?
        .ok_or("no preview")?;
    if let (Some(base), Some(Method::Template)) = (&c.static_base, p.method) {
        // Replaced static template: RKE2 renders the real base there.
        let new = p.changes[0].new.clone().unwrap_or_default();
        let base = rerender(base, &c.state.runtime_binaries, c.version);
        config = new.replacen("{{ template \"base\" . }}", &base, 1);
    }
    let drop_ins = patch::drop_ins_after(&p, &c.state);
    let e = &p.expectation;
    // The plan's own confirmation must hold on what we hand to containerd.
    let conf = e
        .confirm(&config, &drop_ins)
        .map_err(|err| format!("{method}: confirm: {err}"))?;
    if !conf.confirmed {
        return Err(format!("{method}: not confirmed: {:?}", conf.problems));
    }
    Ok(Some((
        Load {
            config,
            drop_ins,
            runtime: e.runtime_name.clone(),
            binary: e.binary_name.clone(),
            default: e.set_as_default,
            version: c.version,
        },
        method,
    )))
}

/// Moves every host path of the config into `dir` (root, state, opt,
/// imports), and lets the CRI stream server pick a free port.
fn relocate(text: &str, dir: &Path) -> String {
    let d = dir.display();
    text.replace(
        &format!("{DD}/agent/etc/containerd/config-v3.toml.d"),
        &format!("{d}/drop-ins"),
    )
    .replace(
        &format!("{DD}/agent/etc/containerd/config.toml.d"),
        &format!("{d}/drop-ins"),
    )
    .replace(&format!("{DD}/agent/containerd"), &format!("{d}/root"))
    .replace("/run/k3s/containerd", &format!("{d}/state"))
    .replace(
        &format!("{DD}/agent/etc/containerd/certs.d"),
        &format!("{d}/certs.d"),
    )
    .replace("\"10010\"", "\"0\"")
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The error lines of a containerd log.
fn errors(log: &str) -> String {
    log.lines()
        .filter(|l| {
            l.contains("level=fatal")
                || l.contains("level=error")
                || l.contains("failed to load plugin")
        })
        .filter(|l| !l.contains("failed to load cni"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn unescape(s: &str) -> String {
    s.replace("\\\"", "\"").replace("\\\\", "\\")
}

/// `config dump`, then boot; `Err` says what failed.
fn check_with_containerd(bin: &Path, l: &Load, boot: bool) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let dir = tmp.path();
    fs::create_dir_all(dir.join("drop-ins")).map_err(|e| e.to_string())?;
    for (n, t) in &l.drop_ins {
        fs::write(dir.join("drop-ins").join(n), t).map_err(|e| e.to_string())?;
    }
    let cfg = dir.join("config.toml");
    // NRI's socket too (containerd 2.x enables NRI; several run at once here).
    let text = format!(
        "{}\n[plugins.\"io.containerd.nri.v1.nri\"]\n  socket_path = \"{}\"\n",
        relocate(&l.config, dir),
        dir.join("nri.sock").display()
    );
    fs::write(&cfg, text).map_err(|e| e.to_string())?;
    let out = Command::new(bin)
        .arg("--config")
        .arg(&cfg)
        .args(["config", "dump"])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "config dump failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let dump = String::from_utf8_lossy(&out.stdout);
    let header_ok = dump.lines().any(|line| {
        let t = line.trim();
        t.starts_with("[plugins.")
            && t.contains(".containerd.runtimes.")
            && (t.ends_with(&format!(".{}]", l.runtime))
                || t.ends_with(&format!(".'{}']", l.runtime))
                || t.ends_with(&format!(".\"{}\"]", l.runtime)))
    });
    let bin_ok = dump.contains(&format!("BinaryName = '{}'", l.binary))
        || dump.contains(&format!("BinaryName = \"{}\"", l.binary));
    if !header_ok || !bin_ok {
        return Err(format!(
            "config dump lacks runtime {} / BinaryName {}",
            l.runtime, l.binary
        ));
    }
    if l.default
        && !(dump.contains(&format!("default_runtime_name = '{}'", l.runtime))
            || dump.contains(&format!("default_runtime_name = \"{}\"", l.runtime)))
    {
        return Err(format!(
            "config dump lacks default_runtime_name {}",
            l.runtime
        ));
    }
    if !boot {
        return Ok(());
    }
    let err_path = dir.join("containerd.err");
    let child = Command::new(bin)
        .arg("--config")
        .arg(&cfg)
        .arg("--root")
        .arg(dir.join("root"))
        .arg("--state")
        .arg(dir.join("state"))
        .arg("--address")
        .arg(dir.join("containerd.sock"))
        .stdout(Stdio::null())
        .stderr(fs::File::create(&err_path).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| e.to_string())?;
    let mut child = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut log = String::new();
    let mut booted = false;
    while Instant::now() < deadline {
        log = fs::read_to_string(&err_path).unwrap_or_default();
        if log.contains("containerd successfully booted") {
            booted = true;
            break;
        }
        if let Ok(Some(st)) = child.0.try_wait() {
            return Err(format!("containerd exited ({st}):\n{}", errors(&log)));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(child);
    if !booted {
        return Err(format!("containerd did not boot in 30 s:\n{log}"));
    }
    if log.contains("level=fatal")
        || log
            .lines()
            .any(|line| line.contains("failed to load plugin") && line.contains("cri"))
    {
        return Err(format!("CRI plugin failed to load:\n{}", errors(&log)));
    }
    if l.version >= 3 {
        let line = log
            .lines()
            .find(|line| line.contains("msg=\"starting cri plugin\""))
            .ok_or("no `starting cri plugin` line")?;
        let raw = line
            .split_once("config=\"")
            .map(|x| x.1)
            .and_then(|r| r.rsplit_once('"'))
            .map(|x| unescape(x.0))
            .ok_or("no config= in the cri line")?;
        let v: serde_json::Value =
            serde_json::from_str(&raw).map_err(|e| format!("cri config json: {e}: {raw}"))?;
        let rt = &v["containerd"]["runtimes"][&l.runtime];
        if rt["runtimeType"] != "io.containerd.runc.v2"
            || rt["options"]["BinaryName"] != l.binary.as_str()
        {
            return Err(format!(
                "CRI config lacks {} with {}: {rt}",
                l.runtime, l.binary
            ));
        }
        if l.default && v["containerd"]["defaultRuntimeName"] != l.runtime.as_str() {
            return Err(format!(
                "CRI default runtime is {}, not {}",
                v["containerd"]["defaultRuntimeName"], l.runtime
            ));
        }
    } else {
        let line = log
            .lines()
            .find(|line| line.contains("Start cri plugin with config"))
            .ok_or("no `Start cri plugin` line")?;
        let want = format!("{}:{{Type:io.containerd.runc.v2 ", l.runtime);
        let at = line
            .find(&format!(" {want}"))
            .or_else(|| line.find(&format!("[{want}")))
            .ok_or_else(|| format!("CRI config lacks runtime {}", l.runtime))?;
        let rest = &line[at..];
        let opts = rest
            .split_once("Options:map[")
            .map(|x| x.1)
            .and_then(|r| r.split_once(']'))
            .map(|x| x.0)
            .unwrap_or("");
        if !opts.contains(&format!("BinaryName:{}", l.binary)) {
            return Err(format!("CRI runtime {} options are [{opts}]", l.runtime));
        }
        if l.default && !line.contains(&format!("DefaultRuntimeName:{} ", l.runtime)) {
            return Err(format!("CRI default runtime is not {}", l.runtime));
        }
    }
    Ok(())
}

#[test]
fn every_planned_config_loads_in_real_containerd() {
    let c17 = containerd_bin("1", "CONTAINERD17_BIN");
    let c2 = containerd_bin("2", "CONTAINERD2_BIN");
    if c17.is_none() || c2.is_none() {
        println!(
            "SKIP every_planned_config_loads_in_real_containerd: containerd 1.7.x and 2.x are not built in {} (found 1.x: {:?}, 2.x: {:?}); run tests/e2e/build-bins",
            cache_bin_dir().display(),
            c17,
            c2
        );
        return;
    }
    let (c17, c2) = (c17.unwrap_or_default(), c2.unwrap_or_default());
    let all = cases();
    assert!(!all.is_empty(), "no input configs found");
    let mut failures = Vec::new();
    let mut loads = Vec::new();
    let mut booted: BTreeSet<String> = BTreeSet::new();
    let mut per_method: BTreeMap<String, usize> = BTreeMap::new();
    let mut sources_seen = BTreeSet::new();
    for c in &all {
        sources_seen.insert(c.label.split(" [").next().unwrap_or("").to_owned());
        let (l, method) = match build_load(c) {
            Ok(Some(x)) => x,
            Ok(None) => continue,
            Err(e) => {
                failures.push(format!("{}: {e}", c.label));
                continue;
            }
        };
        *per_method.entry(method.clone()).or_default() += 1;
        let bin = if l.version >= 3 {
            c2.clone()
        } else {
            c17.clone()
        };
        // Boot each distinct effective config once; dump all.
        let key = format!("{}\u{0}{:?}\u{0}{}", l.config, l.drop_ins, bin.display());
        let boot = booted.insert(key);
        loads.push((c.label.clone(), method, l, bin, boot));
    }
    let results: Vec<String> = std::thread::scope(|scope| {
        let chunks: Vec<_> = loads.chunks(loads.len().div_ceil(8).max(1)).collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .filter_map(|(label, method, l, bin, boot)| {
                            check_with_containerd(bin, l, *boot)
                                .err()
                                .map(|e| format!("{label} ({method}, {}): {e}", bin.display()))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec!["checker thread panicked".into()])
            })
            .collect()
    });
    failures.extend(results);
    let loads = loads.len();
    println!(
        "real containerd: {} cases from {} sources, {loads} plans with changes ({per_method:?}), {} distinct configs booted; containerd {} and {}",
        all.len(),
        sources_seen.len(),
        booted.len(),
        c17.display(),
        c2.display()
    );
    assert!(loads > 0, "no plan produced changes");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
