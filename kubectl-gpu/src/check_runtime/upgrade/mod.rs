//! The upgrade preflight (`check-runtime --upgrade-to-rke2 V
//! --upgrade-to-chart V`): what an RKE2/K3s or GPU Operator upgrade will do
//! to each GPU node, as findings with the pre-upgrade action, and the safe
//! order. Pure: the snapshot's facts, what `--deep` read, the Helm release's
//! user values and the matrix; nothing here reads the cluster.
//!
//! Node rules (`--upgrade-to-rke2`): the release step, the containerd jump
//! ([`matrix::shipped_containerd`]), RKE2 features the target lacks that the
//! node has (a backport the next line's early patches do not carry), the
//! user template RKE2 will render from, the `imports` line and the drop-ins
//! it will load, drop-in versions against the new root, NRI and the
//! toolkit's support for the new containerd. Cluster rules
//! (`--upgrade-to-chart`): known defects, removed values the user sets,
//! default changes and the CRD step. With `--deep`, [`predict`] renders the
//! `config.toml` the target will generate on each node and load-checks it.

use serde::Serialize;

mod predict;
pub use predict::PredictedConfig;

use super::Finding;
use super::host::{DeepRead, drop_in_files, rke2_config};
use crate::containerd::model::ContainerdConfig;
use crate::containerd::template::{TemplateAnalysis, TemplateKind, template_in_use};
use crate::facts::NodeFacts;
use crate::matrix::{self, Rke2Feature, ShippedContainerd};
use crate::node::probe::ProbeResult;
use crate::operator::OperatorFacts;
use crate::version::{Distribution, KubeletVersion, Triple};

/// What the user plans to upgrade to.
#[derive(Debug, Clone, Default)]
pub struct UpgradeTarget {
    pub rke2: Option<KubeletVersion>,
    pub chart: Option<Triple>,
}

impl UpgradeTarget {
    pub fn is_empty(&self) -> bool {
        self.rke2.is_none() && self.chart.is_none()
    }
}

/// The plan part of the report: the targets and the safe order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UpgradePlan {
    pub rke2: Option<String>,
    pub chart: Option<String>,
    /// Some finding says the upgrade as planned would break GPU pods.
    pub breaks_gpu_pods: bool,
    /// prepare → upgrade → verify, as commands or one-line steps.
    pub order: Vec<String>,
    /// `--deep`: the `config.toml` the target will generate per node.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub predicted: Vec<PredictedConfig>,
}

/// The findings of the preflight and, with `--deep`, the predicted configs.
#[derive(Debug, Clone, Default)]
pub struct Preflight {
    pub findings: Vec<Finding>,
    pub predicted: Vec<PredictedConfig>,
}

/// The user values of the operator's Helm release that matter here.
#[derive(Debug, Clone, Default)]
pub struct UserValues(pub serde_json::Value);

impl UserValues {
    fn get(&self, dotted: &str) -> Option<&serde_json::Value> {
        let ptr = format!("/{}", dotted.replace('.', "/"));
        self.0.pointer(&ptr)
    }
}

/// Every upgrade finding for the nodes given (GPU nodes and named nodes).
pub fn findings<'a>(
    nodes: impl IntoIterator<Item = &'a NodeFacts>,
    operator: Option<&OperatorFacts>,
    values: Option<&UserValues>,
    deep: Option<&DeepRead>,
    target: &UpgradeTarget,
) -> Preflight {
    let mut out = Preflight::default();
    if let Some(chart) = target.chart {
        out.findings.extend(chart_rules(operator, values, chart));
    }
    if let Some(rke2) = &target.rke2 {
        for node in nodes {
            let probe = deep
                .and_then(|d| d.nodes.get(&node.name))
                .and_then(|r| r.as_ref().ok());
            node_rules(&mut out, node, operator, target.chart, probe, rke2);
        }
    }
    out
}

/// The safe order for the findings of [`findings`].
pub fn plan(target: &UpgradeTarget, preflight: &Preflight) -> UpgradePlan {
    let upgrade: Vec<&Finding> = preflight
        .findings
        .iter()
        .filter(|f| f.id.starts_with("upgrade-"))
        .collect();
    let breaks = upgrade.iter().any(|f| f.status == super::Status::Fail);
    let mut order = Vec::new();
    for f in upgrade
        .iter()
        .filter(|f| f.status >= super::Status::Warn && f.fix.is_some())
    {
        let step = format!(
            "prepare{}: {}",
            f.node
                .as_deref()
                .map(|n| format!(" {n}"))
                .unwrap_or_default(),
            f.fix.as_deref().unwrap_or_default()
        );
        if !order.contains(&step) {
            order.push(step);
        }
    }
    if let Some(c) = target.chart {
        order.push(format!(
            "upgrade the chart: helm rke2gpu upgrade --version v{c}   # computed values, user overrides kept"
        ));
    }
    if let Some(r) = &target.rke2 {
        order.push(format!(
            "upgrade RKE2 node by node to {r} (drain each GPU node first: kubectl drain NODE --ignore-daemonsets --delete-emptydir-data)"
        ));
    }
    order.push("kubectl gpu check-runtime --deep   # after each node".into());
    order.push("kubectl gpu verify".into());
    UpgradePlan {
        rke2: target.rke2.as_ref().map(|r| r.raw.clone()),
        chart: target.chart.map(|c| format!("v{c}")),
        breaks_gpu_pods: breaks,
        order,
        predicted: preflight.predicted.clone(),
    }
}

fn chart_rules(
    operator: Option<&OperatorFacts>,
    values: Option<&UserValues>,
    target: Triple,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let current = operator.and_then(|o| o.chart_version);
    let from = current.map_or("not installed".to_string(), |c| format!("v{c}"));
    let new_row = matrix::chart_row(target);
    let step = if !matrix::chart_is_known(target) {
        Finding::warn(
            "upgrade-chart",
            None,
            format!("chart {from} → v{target}: v{target} is newer than the charts this tool knows (up to v{})", matrix::NEWEST_KNOWN_CHART),
        )
        .evidence("what follows is judged on the newest known chart's row")
        .fix("read the target's release notes before upgrading; update kubectl-gpu")
    } else if current.is_some_and(|c| c > target) {
        Finding::warn(
            "upgrade-chart",
            None,
            format!("chart {from} → v{target} is a downgrade: the CRDs stay at the newer version and Helm does not roll them back"),
        )
        .fix(format!("helm rollback the release instead, or uninstall and install v{target}"))
    } else {
        Finding::ok(
            "upgrade-chart",
            None,
            format!("chart {from} → v{target} ({})", new_row.label),
        )
    };
    out.push(step.evidence(format!("source: {}", new_row.source)));
    for d in matrix::chart_defects(target) {
        let f = match d.severity {
            matrix::Severity::Fail => Finding::fail(
                "upgrade-chart-defect",
                None,
                format!("v{target} is a known-bad target: {}", d.summary),
            ),
            _ => Finding::warn(
                "upgrade-chart-defect",
                None,
                format!("v{target}: {}", d.summary),
            ),
        };
        out.push(
            f.evidence(format!(
                "{} (v{} – v{}); source: {}",
                d.id, d.from, d.to, d.source
            ))
            .fix(d.fix),
        );
    }
    let old_row = current.map(matrix::chart_row);
    if let Some(v) = values {
        if v.get("operator.defaultRuntime").is_some() && !new_row.has_default_runtime_value {
            out.push(
                Finding::warn(
                    "upgrade-chart-values",
                    None,
                    format!("the release sets operator.defaultRuntime, which v{target} no longer has: Helm passes it and the chart ignores it"),
                )
                .evidence(format!("user value operator.defaultRuntime = {}", v.get("operator.defaultRuntime").map(|x| x.to_string()).unwrap_or_default()))
                .fix("drop operator.defaultRuntime from your values (helm rke2gpu upgrade computes what RKE2 needs)"),
            );
        }
        if v.get("operator.upgradeCRD") == Some(&serde_json::Value::Bool(false)) {
            out.push(crd_step_missing(
                target,
                "the release sets operator.upgradeCRD=false",
            ));
        }
    }
    if target < matrix::UPGRADE_CRD_HOOK_DEFAULT_SINCE {
        out.push(crd_step_missing(
            target,
            &format!(
                "v{target} predates the pre-upgrade CRD hook (default from v{})",
                matrix::UPGRADE_CRD_HOOK_DEFAULT_SINCE
            ),
        ));
    } else if !out.iter().any(|f| f.id == "upgrade-chart-crds") {
        out.push(
            Finding::ok(
                "upgrade-chart-crds",
                None,
                format!("v{target}'s pre-upgrade hook applies its CRDs (operator.upgradeCRD)"),
            )
            .evidence(format!("source: {}", matrix::UPGRADE_CRD_HOOK_SOURCE))
            .evidence("GitOps tools that skip Helm hooks (helm upgrade --no-hooks) skip it too"),
        );
    }
    if let Some(old) = old_row {
        let user_cdi = values.and_then(|v| v.get("cdi.enabled"));
        if old.cdi_default != new_row.cdi_default && user_cdi.is_none() {
            out.push(
                Finding::warn(
                    "upgrade-chart-defaults",
                    None,
                    format!(
                        "cdi.enabled changes default {} → {} and the release does not set it: GPU pods get devices through {} after the upgrade",
                        old.cdi_default, new_row.cdi_default,
                        if new_row.cdi_default { "CDI" } else { "the legacy runtime hook" }
                    ),
                )
                .evidence(format!("source: {}", new_row.source))
                .fix(format!("decide before upgrading: --set cdi.enabled={} keeps today's behaviour", old.cdi_default)),
            );
        }
        if new_row.has_nri && !old.has_nri {
            out.push(
                Finding::ok(
                    "upgrade-chart-defaults",
                    None,
                    format!("v{target} adds the NRI plugin (cdi.nriPluginEnabled, off by default)"),
                )
                .evidence(format!("source: {}", matrix::NRI_SOURCE)),
            );
        }
    }
    out
}

fn crd_step_missing(target: Triple, why: &str) -> Finding {
    Finding::warn(
        "upgrade-chart-crds",
        None,
        format!("{why}: helm upgrade leaves the ClusterPolicy CRD at the old version, and the API server prunes fields the new operator sets (operands go missing while the operator reports ready)"),
    )
    .evidence(format!("source: {}", matrix::UPGRADE_CRD_HOOK_SOURCE))
    .fix(format!("helm show crds nvidia/gpu-operator --version v{target} | kubectl apply --server-side --force-conflicts -f -"))
}

/// What a node has and will have.
struct Step<'a> {
    node: &'a NodeFacts,
    from: &'a KubeletVersion,
    to: &'a KubeletVersion,
    containerd_now: Option<Triple>,
    containerd_then: ShippedContainerd,
}

impl Step<'_> {
    fn n(&self) -> Option<&str> {
        Some(self.node.name.as_str())
    }
    fn then(&self) -> Option<Triple> {
        self.containerd_then.pin().map(|p| p.containerd)
    }
}

fn node_rules(
    out: &mut Preflight,
    node: &NodeFacts,
    operator: Option<&OperatorFacts>,
    chart: Option<Triple>,
    probe: Option<&(matrix::NodePaths, ProbeResult)>,
    to: &KubeletVersion,
) {
    let (findings, predicted) = node_findings(node, operator, chart, probe, to);
    out.findings.extend(findings);
    out.predicted.extend(predicted);
}

fn node_findings(
    node: &NodeFacts,
    operator: Option<&OperatorFacts>,
    chart: Option<Triple>,
    probe: Option<&(matrix::NodePaths, ProbeResult)>,
    to: &KubeletVersion,
) -> (Vec<Finding>, Option<PredictedConfig>) {
    let n = Some(node.name.as_str());
    let Some(from) = node.kubelet.as_ref() else {
        return (
            vec![Finding::skipped(
                "upgrade-release",
                n,
                format!(
                    "the node reports no parsable kubelet version ({})",
                    node.kubelet_raw
                ),
            )],
            None,
        );
    };
    if from.distribution != to.distribution || from.distribution == Distribution::Other {
        return (
            vec![
                Finding::fail(
                    "upgrade-release",
                    n,
                    format!(
                        "{} is a {} node; {to} is a {} release",
                        node.name, from.distribution, to.distribution
                    ),
                )
                .fix("name a release of the node's own distribution"),
            ],
            None,
        );
    }
    let s = Step {
        node,
        from,
        to,
        containerd_now: node.containerd(),
        containerd_then: matrix::shipped_containerd(to),
    };
    let mut out = vec![release_step(&s)];
    out.push(containerd_jump(&s));
    out.extend(features_lost(&s, probe));
    let mut predicted = None;
    if let Some((paths, probe)) = probe {
        let (f, p) = template_and_drop_ins(&s, paths, probe);
        out.extend(f);
        predicted = p;
    } else if s
        .then()
        .is_some_and(|c| s.containerd_now.is_none_or(|now| now.line() != c.line()))
    {
        out.push(
            Finding::skipped("upgrade-template", s.n(), "the user template and drop-ins the new containerd will load are on the node: run with --deep")
                .fix(format!("kubectl gpu check-runtime --deep --node {} --upgrade-to-rke2 {to}", node.name)),
        );
    }
    out.extend(runtime_support(&s, operator, chart));
    (out, predicted)
}

fn release_step(s: &Step) -> Finding {
    let (from, to) = (s.from, s.to);
    let (a, b) = (from.kubernetes, to.kubernetes);
    if from.cmp_release(b, to.release) == std::cmp::Ordering::Greater {
        return Finding::fail(
            "upgrade-release",
            s.n(),
            format!("{from} → {to} is a downgrade, which Kubernetes does not support"),
        )
        .evidence(format!("source: {}", matrix::MAX_MINOR_STEP_SOURCE))
        .fix("pick a release at or above the node's");
    }
    if from.cmp_release(b, to.release) == std::cmp::Ordering::Equal {
        return Finding::ok("upgrade-release", s.n(), format!("already at {to}"));
    }
    let minors = b.minor.saturating_sub(a.minor);
    if a.major == b.major && minors > matrix::MAX_MINOR_STEP {
        let next = format!("v{}.{}", a.major, a.minor + 1);
        return Finding::warn(
            "upgrade-release",
            s.n(),
            format!("{from} → {to} skips {} minor line(s): Kubernetes upgrades one minor version at a time", minors - 1),
        )
        .evidence(format!("source: {}", matrix::MAX_MINOR_STEP_SOURCE))
        .fix(format!("upgrade to the newest {next} release first, then run this preflight again"));
    }
    Finding::ok("upgrade-release", s.n(), format!("{from} → {to}"))
}

fn containerd_jump(s: &Step) -> Finding {
    let now = s
        .containerd_now
        .map_or("unknown".to_string(), |c| c.to_string());
    let Some(pin) = s.containerd_then.pin() else {
        return Finding::warn(
            "upgrade-containerd",
            s.n(),
            format!(
                "which containerd {} ships is not in the table (older than it reads)",
                s.to
            ),
        )
        .fix(format!(
            "read the containerd line in {}'s release notes",
            s.to
        ));
    };
    let then = pin.containerd;
    let mut f = match s.containerd_now {
        Some(c) if c.major < then.major => Finding::warn(
            "upgrade-containerd",
            s.n(),
            format!(
                "containerd {now} → {then}: config schema v{} → v{}, the user template becomes config-v3.toml.tmpl (config.toml.tmpl still read, on the v2 base), the toolkit must read v3 configs",
                matrix::schema_for_containerd(c).number(),
                matrix::schema_for_containerd(then).number()
            ),
        ),
        Some(c) if c > then => Finding::warn(
            "upgrade-containerd",
            s.n(),
            format!("containerd {now} → {then}: the target ships an older containerd than the node runs (a newer line's early patch behind this line's backport); settings and drop-ins written for {now} may not load"),
        )
        .fix(
            match matrix::first_release_shipping(s.to.distribution, s.to.kubernetes.line(), c) {
                Some(r) => format!("upgrade to {} or later instead (it ships containerd {}.{} or newer)", release_name(s.to.distribution, &r), c.major, c.minor),
                None => format!("no v{}.{} release in the table ships containerd {now} or newer yet: wait for one, or read the release notes", s.to.kubernetes.major, s.to.kubernetes.minor),
            },
        ),
        Some(c) if c.line() != then.line() => Finding::ok(
            "upgrade-containerd",
            s.n(),
            format!("containerd {now} → {then}"),
        ),
        _ => Finding::ok(
            "upgrade-containerd",
            s.n(),
            format!("containerd {now} → {then} (same line)"),
        ),
    };
    f = f.evidence(format!(
        "{} ships containerd {} (from {})",
        s.to,
        pin.full,
        release_name(s.to.distribution, &pin.first)
    ));
    if let ShippedContainerd::Beyond { newest_read, .. } = s.containerd_then {
        f = f.evidence(format!(
            "{} is past the newest release read on its line ({}): assumed unchanged",
            s.to,
            release_name(s.to.distribution, &newest_read)
        ));
    }
    f
}

fn release_name(d: Distribution, r: &matrix::LineRelease) -> String {
    match d {
        Distribution::K3s => format!("v{}+k3s{}", r.kubernetes, r.release),
        _ => format!("v{}+rke2r{}", r.kubernetes, r.release),
    }
}

/// RKE2 features the node's release has and the target lacks: backports
/// that the next line's early patches do not carry yet.
fn features_lost(s: &Step, probe: Option<&(matrix::NodePaths, ProbeResult)>) -> Vec<Finding> {
    let mut out = Vec::new();
    for row in matrix::RKE2_FEATURES {
        let (had, has) = (row.present_in(s.from), row.present_in(s.to));
        if had && !has {
            let first = row
                .first_releases
                .iter()
                .find(|r| r.kubernetes.line() == s.to.kubernetes.line())
                .map(|r| release_name(s.to.distribution, r))
                .unwrap_or_else(|| format!("v{}.{}", row.all_lines_from.0, row.all_lines_from.1));
            let breaks = row.feature == Rke2Feature::DropInImports
                && probe.is_some_and(|(paths, p)| nvidia_in_drop_in(paths, p));
            let msg = format!("{} has it, {} does not: {}", s.from, s.to, row.description);
            let f = if breaks {
                Finding::fail(
                    "upgrade-feature-lost",
                    s.n(),
                    format!(
                        "{msg}; the nvidia runtime lives in a drop-in, so GPU pods lose their runtime"
                    ),
                )
            } else {
                Finding::warn("upgrade-feature-lost", s.n(), msg)
            };
            out.push(
                f.evidence(format!("source: {}", row.source))
                    .fix(format!("upgrade to {first} or later instead")),
            );
        }
    }
    out
}

/// The `*.toml` drop-ins in `dir` (what containerd's imports glob loads).
fn drop_ins<'a>(dir: &str, probe: &'a ProbeResult) -> Vec<(String, &'a str)> {
    drop_in_files(dir, probe)
        .into_iter()
        .filter(|(p, _)| p.ends_with(".toml"))
        .collect()
}

fn nvidia_in_drop_in(paths: &matrix::NodePaths, probe: &ProbeResult) -> bool {
    [&paths.drop_in_v3, &paths.drop_in_v2].iter().any(|dir| {
        drop_ins(dir, probe).iter().any(|(p, t)| {
            ContainerdConfig::parse(p, t).is_ok_and(|c| c.runtime("nvidia").is_some())
        })
    })
}

/// `upgrade-template`, `upgrade-imports`, `upgrade-drop-in-version`: what
/// the target will render from this node's files, and load.
fn template_and_drop_ins(
    s: &Step,
    paths: &matrix::NodePaths,
    probe: &ProbeResult,
) -> (Vec<Finding>, Option<PredictedConfig>) {
    let mut out = Vec::new();
    let Some(then) = s.then() else {
        return (out, None);
    };
    let now_major = s.containerd_now.map_or(then.major, |c| c.major);
    let (v3, v2) = (
        probe.file(&paths.template_v3),
        probe.file(&paths.template_v2),
    );
    let path_of = |schema: i64| {
        if schema >= 3 {
            &paths.template_v3
        } else {
            &paths.template_v2
        }
    };
    let before = template_in_use(now_major, v3, v2).map(|(v, _)| path_of(v).clone());
    let after = template_in_use(then.major, v3, v2);
    let mut static_after = false;
    match after {
        None => out.push(Finding::ok(
            "upgrade-template",
            s.n(),
            "no user template: the target generates config.toml itself",
        )),
        Some((schema, text)) => {
            let path = path_of(schema).clone();
            let a = TemplateAnalysis::analyze(&path, text);
            let switch = before.as_deref() != Some(path.as_str());
            let mut f = match a.kind {
                TemplateKind::Static => {
                    static_after = true;
                    Finding::warn("upgrade-template", s.n(), format!("{path} is static: the target renders it verbatim, so none of its own changes (containerd {then}'s defaults, detected runtimes, the imports line) reach config.toml"))
                        .fix(format!("replace it with a base template before upgrading: kubectl gpu patch-containerd --node {} --replace-static-template", s.node.name))
                }
                TemplateKind::Base if then.major >= 2 && schema < 3 => Finding::warn(
                    "upgrade-template",
                    s.n(),
                    format!("containerd {then} renders {path} on the v2 base, which containerd migrates at every start; the v3 file config-v3.toml.tmpl would be read first"),
                )
                .fix(format!("before upgrading, write {} with {{{{ template \"base\" . }}}} and the v3 form of your additions", paths.template_v3)),
                TemplateKind::Base => Finding::ok("upgrade-template", s.n(), format!("{path} extends the base template: the target's defaults still render")),
                TemplateKind::Other => Finding::warn("upgrade-template", s.n(), format!("{path} uses Go template actions beyond the base template: check it against the target's template variables"))
                    .evidence(a.reason.clone()),
            };
            if switch {
                f = f.evidence(format!(
                    "RKE2 reads {} now, {path} after the upgrade",
                    before.as_deref().unwrap_or("no template")
                ));
            }
            out.push(f);
        }
    }
    // The imports line and the drop-ins it will load.
    let imports_then =
        matrix::has(s.to, Rke2Feature::DropInImports) && then.major >= 2 && !static_after;
    let imports_now = matrix::has(s.from, Rke2Feature::DropInImports) && now_major >= 2;
    let root = after.map_or(matrix::rendered_root_version(then), |(v, _)| v);
    let dir = if root >= 3 {
        &paths.drop_in_v3
    } else {
        &paths.drop_in_v2
    };
    let files = drop_ins(dir, probe);
    if imports_then && !imports_now {
        let f = if files.is_empty() {
            Finding::ok(
                "upgrade-imports",
                s.n(),
                format!("the target's config.toml imports {dir}/*.toml (empty now)"),
            )
        } else {
            Finding::warn("upgrade-imports", s.n(), format!("the target's config.toml imports {dir}/*.toml: {} file(s) there start to apply at the upgrade, merged into the generated config (containerd 2 merges tables)", files.len()))
                .fix(format!("review or move aside before upgrading: {}", files.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>().join(" ")))
        };
        out.push(files.iter().fold(f, |f, (p, _)| f.evidence(p.clone())));
    } else if !files.is_empty() && !imports_then {
        out.push(
            Finding::warn(
                "upgrade-imports",
                s.n(),
                format!(
                    "{} drop-in(s) in {dir} will not be loaded after the upgrade (no imports line)",
                    files.len()
                ),
            )
            .fix(
                "keep the settings in the template instead, or pick a target that imports drop-ins",
            ),
        );
    }
    if imports_then {
        for (p, t) in &files {
            let version = ContainerdConfig::parse(p, t)
                .ok()
                .and_then(|c| c.declared_version())
                .unwrap_or(1);
            if version > root {
                let f = if matrix::containerd_rejects_newer_drop_in(then) {
                    Finding::fail(
                        "upgrade-drop-in-version",
                        s.n(),
                        format!(
                            "{p} is version {version}, above the root's {root}: containerd {then} refuses to start"
                        ),
                    )
                } else {
                    Finding::warn(
                        "upgrade-drop-in-version",
                        s.n(),
                        format!(
                            "{p} is version {version}, above the root's {root}: containerd {then} loads it without migrating the root's settings"
                        ),
                    )
                };
                out.push(f.evidence(format!("source: {}", matrix::RKE2_REJECTING_NEWER_DROP_INS_SOURCE)).fix(format!("set `version = {root}` in {p} (and its tables to that schema) before upgrading")));
            }
        }
    }
    // default-runtime in the RKE2 config still renders.
    if let Some(rt) = rke2_config(paths, probe).default_runtime
        && !matrix::has(s.to, Rke2Feature::DefaultRuntimeFlag)
    {
        out.push(
            Finding::fail(
                "upgrade-default-runtime",
                s.n(),
                format!(
                    "the RKE2 config sets default-runtime: {rt}, which {} does not know",
                    s.to
                ),
            )
            .evidence(format!(
                "source: {}",
                matrix::feature(Rke2Feature::DefaultRuntimeFlag).source
            )),
        );
    }
    let predicted = predict::predict(&predict::PredictInputs {
        node: &s.node.name,
        paths,
        probe,
        now: s.containerd_now,
        then,
        imports_then,
        imports_now,
    })
    .and_then(|(p, f)| {
        out.push(f);
        p
    });
    (out, predicted)
}

/// `upgrade-nri` and `upgrade-toolkit-containerd`: the operator's mode on
/// the new containerd.
fn runtime_support(
    s: &Step,
    operator: Option<&OperatorFacts>,
    chart: Option<Triple>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let (Some(op), Some(then)) = (operator, s.then()) else {
        return out;
    };
    let Some(chart) = chart.or(op.chart_version) else {
        return out;
    };
    if op.nri_enabled == Some(true) && !matrix::nri_supported(chart, Some(then)) {
        out.push(
            Finding::fail("upgrade-nri", s.n(), format!("the NRI plugin is enabled and chart v{chart} does not support it on containerd {then}"))
                .evidence(format!("source: {}", matrix::NRI_SOURCE))
                .fix("turn the NRI plugin off first: --set cdi.nriPluginEnabled=false"),
        );
    }
    let row = matrix::chart_row(chart);
    if op.toolkit_enabled != Some(false) && op.nri_enabled != Some(true) && then.major >= 2 {
        if !row.toolkit_reads_v3 {
            out.push(
                Finding::fail("upgrade-toolkit-containerd", s.n(), format!("chart v{chart}'s toolkit cannot read containerd {then}'s version 3 config: the toolkit pod fails and GPU pods lose the runtime"))
                    .evidence(format!("source: {}", row.source))
                    .fix("upgrade the chart first (helm rke2gpu upgrade), then RKE2"),
            );
        } else if !row.supports_containerd2 {
            out.push(
                Finding::warn("upgrade-toolkit-containerd", s.n(), format!("chart v{chart} reads v3 configs but NVIDIA supports containerd 2 only from a later chart"))
                    .evidence(format!("source: {}", row.source))
                    .fix("upgrade the chart first (helm rke2gpu upgrade), then RKE2"),
            );
        }
    }
    out
}
