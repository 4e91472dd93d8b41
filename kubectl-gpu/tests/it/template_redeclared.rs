//! User templates that redeclare a table RKE2's base template renders, on the
//! captured fixture `tests/fixtures/containerd-toml-errors/cases.json` (see
//! its `.source`): each case's `config.toml` rendered by `render-config`
//! from the real k3s templates, and what real containerd 1.7.35 and 2.4.2
//! (and containerd's error handling over the go-toml releases of 2.0–2.3)
//! print when they load it.
//!
//! - the diagnosis ([`rke2gpu::containerd::redeclared::find`]) names the
//!   same row and words it exactly as containerd does, for every parser;
//! - the planner repairs what can be repaired (the overlapping keys into a
//!   drop-in where containerd 2.x merges them, the rest kept) and refuses
//!   the rest on containerd 1.7 with the template, line, table and
//!   containerd's line;
//! - check-runtime `--deep` fails the template with the same facts.
//!
//! Loading the repaired configs in real containerd is
//! `template_fix_real_containerd`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rke2gpu::check_runtime::finding::Status;
use rke2gpu::check_runtime::host;
use rke2gpu::containerd::model::item_at;
use rke2gpu::containerd::redeclared::{self, Inputs, Verdict, value_text};
use rke2gpu::containerd::{TemplateAnalysis, effective_config};
use rke2gpu::error::Error;
use rke2gpu::facts::NodeFacts;
use rke2gpu::matrix::NodePaths;
use rke2gpu::node::probe::ProbeResult;
use rke2gpu::patch::plan::{self, Capabilities, NodeState, PlanInput, TEMPLATE_DROP_IN_NAME};
use rke2gpu::version::{Distribution, Triple};
use serde_json::Value;

const CTD: &str = "/var/lib/rancher/rke2/agent/etc/containerd";
const CONFIG: &str = "/var/lib/rancher/rke2/agent/etc/containerd/config.toml";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub struct Case {
    pub name: String,
    pub node: String,
    pub template_file: String,
    pub template: String,
    pub config_toml: String,
    /// "containerd 2.4.2" / "go-toml v2.2.4" → (exit, error line).
    pub results: BTreeMap<String, (i64, Option<String>)>,
}

pub fn cases() -> Vec<Case> {
    let p = repo().join("tests/fixtures/containerd-toml-errors/cases.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let v: Value = serde_json::from_str(&text).expect("cases.json");
    v.as_array()
        .expect("array")
        .iter()
        .map(|c| Case {
            name: c["name"].as_str().unwrap_or_default().into(),
            node: c["node"].as_str().unwrap_or_default().into(),
            template_file: c["template_file"].as_str().unwrap_or_default().into(),
            template: c["template"].as_str().unwrap_or_default().into(),
            config_toml: c["config_toml"].as_str().unwrap_or_default().into(),
            results: c["results"]
                .as_object()
                .expect("results")
                .iter()
                .map(|(k, r)| {
                    (
                        k.clone(),
                        (
                            r["exit"].as_i64().unwrap_or(-1),
                            r["error"].as_str().map(str::to_owned),
                        ),
                    )
                })
                .collect(),
        })
        .collect()
}

/// The containerd release a result stands for: the binary's own version,
/// or for a go-toml build the first containerd line that pins it
/// (containerd go.mod: v2.1.0–v2.2.x pin go-toml/v2 v2.2.4, v2.3.x v2.3.0).
fn containerd_of(result: &str) -> Triple {
    match result {
        "go-toml v2.2.4" => Triple::new(2, 2, 0),
        "go-toml v2.3.0" => Triple::new(2, 3, 0),
        r => Triple::parse_loose(r.trim_start_matches("containerd ")).expect("version"),
    }
}

/// The node's own containerd (the test cluster's profiles).
fn node_containerd(node: &str) -> Triple {
    match node {
        "gpu-a100-legacy-0" => Triple::new(1, 7, 27),
        _ => Triple::new(2, 2, 2),
    }
}

fn template_path(c: &Case) -> String {
    format!("{CTD}/{}", c.template_file)
}

/// The template line that redeclares: the header, or for a dotted key the
/// key's line (each case has one).
fn overlap_line(c: &Case) -> usize {
    match c.name.as_str() {
        "v3-custom-runtime-and-registry" => 10,
        n if n.contains("dotted") => 4,
        _ => 3,
    }
}

#[test]
fn the_diagnosis_words_each_case_as_real_containerd_does() {
    let all = cases();
    assert!(all.len() >= 10, "fixture has {} cases", all.len());
    let mut compared = 0;
    for c in &all {
        let a = TemplateAnalysis::analyze(&template_path(c), &c.template);
        let base = a.base_render(&c.config_toml).expect("a base template");
        assert!(
            base.is_current(),
            "{}: config.toml ends with the template's TOML",
            c.name
        );
        for (result, (exit, error)) in &c.results {
            let containerd = containerd_of(result);
            let o = redeclared::find(&Inputs {
                template: &a,
                base: &base,
                config_path: CONFIG,
                containerd,
            })
            .unwrap_or_else(|e| panic!("{}: {e}", c.name));
            assert!(
                !o.is_empty(),
                "{} ({result}): no overlap found; the newest parser refuses every case",
                c.name
            );
            let first_refused = o.iter().find_map(|o| match &o.verdict {
                Verdict::Refused(m) => Some(m.clone()),
                Verdict::Accepted(_) => None,
            });
            match exit {
                0 => assert_eq!(
                    first_refused, None,
                    "{} ({result}): containerd accepts it",
                    c.name
                ),
                _ => assert_eq!(
                    first_refused.as_ref(),
                    error.as_ref(),
                    "{} ({result}): our words for containerd's error",
                    c.name
                ),
            }
            compared += 1;
        }
    }
    assert!(compared >= 25, "{compared} results compared");
}

fn state_of(c: &Case) -> NodeState {
    let mut s = NodeState {
        generated_config: c.config_toml.clone(),
        ..NodeState::default()
    };
    if c.template_file.contains("v3") {
        s.template_v3 = Some(c.template.clone());
    } else {
        s.template_v2 = Some(c.template.clone());
    }
    // The node trees have the toolkit's runtimes (RKE2 renders them).
    for b in [
        "nvidia-container-runtime",
        "nvidia-container-runtime.cdi",
        "nvidia-container-runtime-experimental",
    ] {
        s.runtime_binaries
            .insert(format!("/usr/local/nvidia/toolkit/{b}"));
    }
    s
}

fn plan_case(c: &Case, containerd: Triple) -> rke2gpu::error::Result<plan::Plan> {
    plan::plan(&PlanInput::new(
        state_of(c),
        Capabilities {
            default_runtime_flag: true,
            base_templates: true,
            containerd,
        },
    ))
}

/// `path = value` of the effective config after a plan: the planner's render
/// merged with the drop-ins the plan leaves.
fn effective_after(c: &Case, p: &plan::Plan) -> rke2gpu::containerd::ContainerdConfig {
    let rendered = p.rendered.clone().expect("a repair renders config.toml");
    let mut drop_ins = BTreeMap::new();
    for ch in &p.changes {
        if let Some((dir, name)) = ch.path.rsplit_once('/')
            && dir.ends_with(".toml.d")
            && let Some(n) = &ch.new
        {
            drop_ins.insert(name.to_owned(), n.clone());
        }
    }
    effective_config(CONFIG, &rendered, &drop_ins)
        .unwrap_or_else(|e| panic!("{}: the repaired config must parse: {e}", c.name))
}

fn value_at(cfg: &rke2gpu::containerd::ContainerdConfig, path: &[&str]) -> Option<String> {
    item_at(cfg.root(), path)
        .and_then(|i| i.as_value())
        .map(value_text)
}

const V3RT: &str = "io.containerd.cri.v1.runtime";
const V3IMG: &str = "io.containerd.cri.v1.images";
const V2CRI: &str = "io.containerd.grpc.v1.cri";

#[test]
fn the_planner_repairs_what_containerd_2_merges_and_keeps_the_users_keys() {
    // (case, the user's key that must stay in effect, its value, where it goes)
    let want: &[(&str, &[&str], &str, &str)] = &[
        (
            "v3-images-double-quoted",
            &["plugins", V3IMG, "snapshotter"],
            "\"native\"",
            "drop-in",
        ),
        (
            "v3-runtime-table",
            &["plugins", V3RT, "device_ownership_from_security_context"],
            "true",
            "drop-in",
        ),
        (
            "v3-runc-options",
            &[
                "plugins",
                V3RT,
                "containerd",
                "runtimes",
                "runc",
                "options",
                "SystemdCgroup",
            ],
            "false",
            "drop-in",
        ),
        (
            "v3-custom-runtime-and-registry",
            &["plugins", V3IMG, "registry", "config_path"],
            "\"/etc/containerd/certs.d\"",
            "drop-in",
        ),
        (
            "v3-dotted-runc-options",
            &[
                "plugins",
                V3RT,
                "containerd",
                "runtimes",
                "runc",
                "options",
                "SystemdCgroup",
            ],
            "false",
            "drop-in",
        ),
        (
            "v3-dotted-new-runtime",
            &[
                "plugins",
                V3RT,
                "containerd",
                "runtimes",
                "crun",
                "runtime_type",
            ],
            "\"io.containerd.runc.v2\"",
            "template",
        ),
        (
            "v2-template-on-containerd2",
            &[
                "plugins",
                V2CRI,
                "containerd",
                "runtimes",
                "runc",
                "options",
                "SystemdCgroup",
            ],
            "false",
            "drop-in",
        ),
    ];
    let all = cases();
    for (name, path, value, goes) in want {
        let c = all
            .iter()
            .find(|c| c.name == *name)
            .unwrap_or_else(|| panic!("no case {name}"));
        // Before: our own parser refuses the generated config, as containerd does.
        assert!(
            rke2gpu::containerd::ContainerdConfig::parse(CONFIG, &c.config_toml).is_err()
                || name.contains("dotted-new"),
            "{name}: the broken config.toml parses"
        );
        let p = plan_case(c, node_containerd(&c.node)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let tmpl = p
            .changes
            .iter()
            .find(|ch| ch.path == template_path(c))
            .unwrap_or_else(|| panic!("{name}: the template is rewritten: {:#?}", p.changes));
        assert_eq!(tmpl.old.as_deref(), Some(c.template.as_str()), "{name}");
        let new = tmpl.new.clone().unwrap_or_default();
        assert!(
            new.starts_with("{{ template \"base\" . }}\n"),
            "{name}: the base line stays first:\n{new}"
        );
        let drop_dir = if c.template_file.contains("v3") {
            format!("{CTD}/config-v3.toml.d")
        } else {
            format!("{CTD}/config.toml.d")
        };
        let drop_in = p
            .changes
            .iter()
            .find(|ch| ch.path == format!("{drop_dir}/{TEMPLATE_DROP_IN_NAME}"));
        match *goes {
            "drop-in" => {
                let d = drop_in
                    .and_then(|d| d.new.clone())
                    .unwrap_or_else(|| panic!("{name}: a drop-in is written: {:#?}", p.changes));
                let version = if c.template_file.contains("v3") { 3 } else { 2 };
                assert!(
                    d.lines()
                        .any(|l| l.trim() == format!("version = {version}")),
                    "{name}: the drop-in has the root's version:\n{d}"
                );
                let dc = rke2gpu::containerd::ContainerdConfig::parse("d", &d).expect("drop-in");
                assert_eq!(value_at(&dc, path).as_deref(), Some(*value), "{name}:\n{d}");
            }
            _ => assert!(drop_in.is_none(), "{name}: nothing needs a drop-in"),
        }
        // The template's rest is kept: the rke2-docs custom runtime stays.
        if *name == "v3-custom-runtime-and-registry" {
            assert!(new.contains("runtimes.'custom'.options]"), "{new}");
            assert!(new.contains("/usr/bin/custom-container-runtime"), "{new}");
            assert!(!new.contains("config_path"), "{new}");
        }
        let eff = effective_after(c, &p);
        assert_eq!(value_at(&eff, path).as_deref(), Some(*value), "{name}");
        // The reasons name the template, the line, the table and containerd's words.
        let why = p.reasons.join("\n");
        assert!(
            why.contains(&format!("{} line {}:", template_path(c), overlap_line(c))),
            "{name}: {why}"
        );
        assert!(
            !why.contains("nothing to do"),
            "{name}: the repair is something to do: {why}"
        );
        assert!(why.contains("already renders"), "{name}: {why}");
        // The plan confirms the kept key after the restart.
        assert!(
            p.expectation.kept.iter().any(|k| k
                .path
                .iter()
                .map(String::as_str)
                .eq(path.iter().copied())),
            "{name}: {:?}",
            p.expectation.kept
        );
        let drop_ins: BTreeMap<String, String> = p
            .changes
            .iter()
            .filter(|ch| ch.path.starts_with(&drop_dir))
            .map(|ch| {
                (
                    ch.path.rsplit('/').next().unwrap_or_default().to_owned(),
                    ch.new.clone().unwrap_or_default(),
                )
            })
            .collect();
        let conf = p
            .expectation
            .confirm(p.rendered.as_deref().unwrap_or_default(), &drop_ins)
            .expect("confirm");
        assert!(conf.confirmed, "{name}: {:?}", conf.problems);
    }
}

#[test]
fn on_containerd_1_7_same_values_are_dropped_and_the_rest_refused_with_the_reason() {
    let all = cases();
    let get = |n: &str| all.iter().find(|c| c.name == n).expect("case");
    // Same value as the base: the table goes, nothing else changes.
    let c = get("v2-runc-options-same-value");
    let p = plan_case(c, node_containerd(&c.node)).expect("plan");
    let new = p.changes[0].new.clone().unwrap_or_default();
    assert!(!new.contains("runc.options"), "{new}");
    assert!(
        !p.changes
            .iter()
            .any(|ch| ch.path.ends_with(TEMPLATE_DROP_IN_NAME)),
        "containerd 1.7 gets no drop-in: {:#?}",
        p.changes
    );
    assert!(
        p.reasons
            .iter()
            .any(|r| r.contains("SystemdCgroup = true dropped")),
        "{:?}",
        p.reasons
    );
    rke2gpu::containerd::ContainerdConfig::parse(CONFIG, p.rendered.as_deref().unwrap_or(""))
        .expect("the repaired config parses");
    // Other values cannot move: refused, naming template, line, table and containerd's line.
    for (name, words) in [
        ("v2-cri-table", "(58, 2): duplicated tables"),
        (
            "v2-containerd-single-quoted-new-key",
            "containerd 1.7 merges the two",
        ),
        (
            "v2-containerd-single-quoted-same-key",
            "The following key was defined twice: plugins.io.containerd.grpc.v1.cri.containerd.snapshotter",
        ),
    ] {
        let c = get(name);
        let e = plan_case(c, node_containerd(&c.node)).expect_err(name);
        assert!(matches!(e, Error::InvalidContainerdConfig { .. }), "{e:?}");
        let m = e.to_string();
        for w in [
            &format!("{} line {}:", template_path(c), overlap_line(c)) as &str,
            "already renders",
            words,
            "replaces a whole plugin table",
        ] {
            assert!(m.contains(w), "{name}: `{w}` missing from: {m}");
        }
    }
}

#[test]
fn check_runtime_deep_names_the_template_line_table_and_containerds_words() {
    let paths = NodePaths::new(Distribution::Rke2, None);
    for c in cases() {
        let containerd = node_containerd(&c.node);
        let node = NodeFacts::from_node(
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": c.node, "labels": {"nvidia.com/gpu.present": "true"}},
                "status": {"nodeInfo": {
                    "kubeletVersion": if containerd.major == 1 { "v1.30.14+rke2r1" } else { "v1.33.10+rke2r1" },
                    "containerRuntimeVersion": format!("containerd://{containerd}-k3s1"),
                    "architecture": "amd64", "bootID": "", "kernelVersion": "", "kubeProxyVersion": "",
                    "machineID": "", "operatingSystem": "linux", "osImage": "", "systemUUID": ""
                }}
            }))
            .expect("node"),
        );
        let mut probe = ProbeResult::default();
        probe
            .files
            .insert(paths.generated_config.clone(), Some(c.config_toml.clone()));
        let t = if c.template_file.contains("v3") {
            &paths.template_v3
        } else {
            &paths.template_v2
        };
        probe.files.insert(t.clone(), Some(c.template.clone()));
        let f = host::rules(&node, None, &paths, &probe);
        let tt: Vec<_> = f.iter().filter(|f| f.id == "template-tables").collect();
        assert_eq!(tt.len(), 1, "{}: {f:#?}", c.name);
        let key = format!("containerd {containerd}");
        let refused_here =
            !c.name.contains("single-quoted-new-key") && !c.name.contains("dotted-new");
        assert_eq!(
            tt[0].status,
            if refused_here {
                Status::Fail
            } else {
                Status::Warn
            },
            "{}: {:#?} ({key})",
            c.name,
            tt[0]
        );
        // generated-config fails only where the node's containerd refuses
        // the rendered config; a config containerd 1.7 merges is a warning.
        let gc: Vec<_> = f.iter().filter(|f| f.id == "generated-config").collect();
        assert_eq!(
            gc.iter().any(|f| f.status == Status::Fail),
            refused_here,
            "{}: {gc:#?}",
            c.name
        );
        let m = &tt[0].message;
        assert!(
            m.contains(&format!("{t} line {}:", overlap_line(&c))),
            "{m}"
        );
        assert!(m.contains("already renders"), "{m}");
        let fix = tt[0].fix.clone().unwrap_or_default();
        assert!(
            fix.contains("patch-containerd") || fix.contains("remove"),
            "{fix}"
        );
    }
}

/// The node's files after a plan is written (config.toml untouched: RKE2
/// has not restarted yet).
fn written(c: &Case, mut s: NodeState, p: &plan::Plan) -> NodeState {
    for ch in &p.changes {
        if ch.path == template_path(c) {
            if c.template_file.contains("v3") {
                s.template_v3 = ch.new.clone();
            } else {
                s.template_v2 = ch.new.clone();
            }
        } else if let Some((_, name)) = ch.path.rsplit_once(".toml.d/") {
            match &ch.new {
                Some(n) => s.drop_ins.insert(name.to_owned(), n.clone()),
                None => s.drop_ins.remove(name),
            };
        } else {
            panic!("{}: unexpected change {}", c.name, ch.path);
        }
    }
    s
}

#[test]
fn after_the_repair_a_second_run_only_restarts_and_after_the_restart_it_is_a_no_op() {
    for c in cases() {
        let containerd = node_containerd(&c.node);
        let caps = Capabilities {
            default_runtime_flag: true,
            base_templates: true,
            containerd,
        };
        let Ok(p) = plan_case(&c, containerd) else {
            continue; // refused on containerd 1.7: tested above
        };
        // Written, not restarted: config.toml is still the broken render.
        let s = written(&c, state_of(&c), &p);
        let again = plan::plan(&PlanInput::new(s.clone(), caps))
            .unwrap_or_else(|e| panic!("{}: second run: {e}", c.name));
        assert!(again.changes.is_empty(), "{}: {:#?}", c.name, again.changes);
        // A broken config.toml still needs the restart; one our parser (and
        // this containerd) accepts is planned on as it is.
        if rke2gpu::containerd::ContainerdConfig::parse(CONFIG, &c.config_toml).is_err() {
            assert!(
                again.restart.is_some(),
                "{}: the restart is still needed",
                c.name
            );
            assert!(
                again.reasons.iter().any(|r| r.contains("rendered before")),
                "{}: {:?}",
                c.name,
                again.reasons
            );
        }
        // RKE2 restarts and renders the repaired template.
        let mut s = s;
        s.generated_config = p.rendered.clone().unwrap_or_default();
        let third = plan::plan(&PlanInput::new(s, caps))
            .unwrap_or_else(|e| panic!("{}: after the restart: {e}", c.name));
        assert!(third.changes.is_empty(), "{}: {:#?}", c.name, third.changes);
        assert!(third.restart.is_none(), "{}: {:?}", c.name, third.reasons);
    }
}

#[test]
fn before_rke2_restarts_the_tool_predicts_what_containerd_will_print() {
    // config.toml as the node tree has it: rendered before the template was
    // written. The base is told from it by the tables k3s' templates declare.
    for c in cases() {
        let tree_cfg = repo()
            .join("tests/node-trees")
            .join(&c.node)
            .join(CONFIG.trim_start_matches('/'));
        let generated = std::fs::read_to_string(&tree_cfg).expect("node tree config.toml");
        let a = TemplateAnalysis::analyze(&template_path(&c), &c.template);
        let version = if c.template_file.contains("v3") { 3 } else { 2 };
        let Some(base) = a.base_render_for(&generated, version) else {
            // The v3 config.toml says nothing about the v2 base a new
            // config.toml.tmpl extends.
            assert_eq!(c.name, "v2-template-on-containerd2");
            continue;
        };
        assert!(!base.is_current(), "{}", c.name);
        for (result, (exit, error)) in &c.results {
            let o = redeclared::find(&Inputs {
                template: &a,
                base: &base,
                config_path: CONFIG,
                containerd: containerd_of(result),
            })
            .unwrap_or_else(|e| panic!("{}: {e}", c.name));
            let first = o.iter().find_map(|o| match &o.verdict {
                Verdict::Refused(m) => Some(m.clone()),
                Verdict::Accepted(_) => None,
            });
            assert_eq!(
                first,
                if *exit == 0 { None } else { error.clone() },
                "{} ({result})",
                c.name
            );
        }
        // And the repair planned then equals the one planned after the restart.
        let mut before = state_of(&c);
        before.generated_config = generated;
        let containerd = node_containerd(&c.node);
        let caps = Capabilities {
            default_runtime_flag: true,
            base_templates: true,
            containerd,
        };
        let now = plan::plan(&PlanInput::new(before, caps)).map(|p| (p.changes, p.rendered));
        let later = plan_case(&c, containerd).map(|p| (p.changes, p.rendered));
        match (now, later) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{}", c.name),
            (Err(a), Err(b)) => {
                let note = format!(
                    "; {CONFIG} was rendered before {} last changed: the base render is read from the tables k3s' base templates declare in it",
                    template_path(&c)
                );
                assert_eq!(
                    a.to_string().replace(&note, ""),
                    b.to_string(),
                    "{}",
                    c.name
                )
            }
            (a, b) => panic!("{}: before {a:?}, after {b:?}", c.name),
        }
    }
}
