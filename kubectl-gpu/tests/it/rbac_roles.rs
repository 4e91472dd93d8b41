//! `deploy/rbac.yaml` against the code: the four roles `rbac::Role` names
//! exist with the kind it says, the read role holds no Secrets and no write,
//! and every permission a preflight asks for (node agent, verify, cleanup)
//! is granted by the very role its error tells the user to bind. The rules
//! are evaluated the way the RBAC authorizer matches a PolicyRule (verb,
//! API group, resource or `resource/subresource`, `*` wildcards).
//! End to end, with real ServiceAccount tokens: `tests/tests/it/rbac_e2e.rs`.

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::rbac::v1::PolicyRule;
use rke2gpu::node::agent::{AgentOptions, DEFAULT_IMAGE, DEFAULT_NAMESPACE, agent_pod};
use rke2gpu::objects::{self, Component};
use rke2gpu::preflight::{self, Permission};
use rke2gpu::rbac::Role;
use serde_json::Value;
use std::time::Duration;

/// (kind, name, namespace, rules) of every document in deploy/rbac.yaml.
fn roles() -> Vec<(String, String, Option<String>, Vec<PolicyRule>)> {
    let text = std::fs::read_to_string(format!(
        "{}/../{}",
        env!("CARGO_MANIFEST_DIR"),
        rke2gpu::rbac::RBAC_FILE
    ))
    .unwrap();
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap()
        .into_iter()
        .filter(|d| !d.is_null())
        .map(|d| {
            let rules: Vec<PolicyRule> = serde_json::from_value(d["rules"].clone()).unwrap();
            (
                d["kind"].as_str().unwrap().to_string(),
                d["metadata"]["name"].as_str().unwrap().to_string(),
                d["metadata"]["namespace"].as_str().map(str::to_string),
                rules,
            )
        })
        .collect()
}

fn rules_of(role: Role) -> Vec<PolicyRule> {
    let all = roles();
    let (kind, _, _, rules) = all
        .into_iter()
        .find(|(_, name, _, _)| name == role.name())
        .unwrap_or_else(|| panic!("{} is not in deploy/rbac.yaml", role.name()));
    assert_eq!(kind, role.kind(), "{}", role.name());
    rules
}

/// Whether one of `rules` allows `verb` on `group`/`resource` (with its
/// subresource), as rbac/v1 PolicyRule matching does.
fn allows(rules: &[PolicyRule], verb: &str, group: &str, resource: &str) -> bool {
    let has = |list: &[String], want: &str| list.iter().any(|x| x == want || x == "*");
    rules.iter().any(|r| {
        has(&r.verbs, verb)
            && has(r.api_groups.as_deref().unwrap_or_default(), group)
            && has(r.resources.as_deref().unwrap_or_default(), resource)
    })
}

fn assert_granted(p: &Permission<'_>) {
    let rules = rules_of(p.role);
    assert!(
        allows(&rules, p.verb, "", &p.resource_path()),
        "{} does not grant {} {}: {rules:#?}",
        p.role.name(),
        p.verb,
        p.resource_path()
    );
}

#[test]
fn the_file_holds_exactly_the_roles_the_code_names() {
    let names: Vec<String> = roles().into_iter().map(|(_, n, _, _)| n).collect();
    let expected: Vec<&str> = Role::ALL.iter().map(|r| r.name()).collect();
    assert_eq!(names, expected);
    for r in Role::ALL {
        rules_of(r);
    }
}

#[test]
fn the_read_role_reads_and_holds_no_secrets() {
    let rules = rules_of(Role::Read);
    for r in &rules {
        assert!(
            !r.resources
                .iter()
                .flatten()
                .any(|x| x == "secrets" || x == "*"),
            "{r:?}"
        );
        assert!(
            r.verbs
                .iter()
                .all(|v| matches!(v.as_str(), "get" | "list" | "watch")),
            "{r:?}"
        );
    }
    // What the snapshot, report, verify's targets and cleanup --dry-run list.
    for (verb, group, resource) in [
        ("list", "", "nodes"),
        ("watch", "", "nodes"),
        ("list", "", "pods"),
        ("watch", "", "pods"),
        ("get", "", "namespaces"),
        ("list", "", "namespaces"),
        ("list", "", "events"),
        ("get", "", "pods/log"),
        ("list", "node.k8s.io", "runtimeclasses"),
        ("list", "apps", "deployments"),
        ("list", "apps", "daemonsets"),
        ("list", "nvidia.com", "clusterpolicies"),
    ] {
        assert!(
            allows(&rules, verb, group, resource),
            "kubectl-gpu-read lacks {verb} {resource}"
        );
    }
}

#[test]
fn the_helm_release_role_lists_secrets_in_the_operator_namespace() {
    let (_, _, ns, rules) = roles()
        .into_iter()
        .find(|(_, n, _, _)| n == Role::HelmRelease.name())
        .unwrap();
    assert_eq!(ns, Role::HelmRelease.default_binding().namespace);
    assert!(allows(&rules, "list", "", "secrets"));
    assert!(!allows(&rules, "create", "", "secrets"));
}

#[test]
fn node_agent_preflight_is_what_its_role_grants() {
    let needed = preflight::node_agent_permissions(DEFAULT_NAMESPACE);
    // kube's exec is a WebSocket GET: `get` and (Kubernetes 1.35+) `create`.
    assert!(
        needed
            .iter()
            .any(|p| p.verb == "get" && p.resource_path() == "pods/exec")
    );
    assert!(
        needed
            .iter()
            .any(|p| p.verb == "create" && p.resource_path() == "pods/exec")
    );
    for p in &needed {
        assert_eq!(p.role, Role::NodeAgent);
        assert_granted(p);
    }
    // It grants nothing of verify's.
    assert!(!allows(
        &rules_of(Role::NodeAgent),
        "create",
        "",
        "namespaces"
    ));
}

#[test]
fn verify_preflight_is_what_its_role_grants() {
    for (create_ns, keep) in [(true, false), (true, true), (false, false), (false, true)] {
        for p in preflight::verify_permissions("kubectl-gpu-verify-1a2b3c4d", create_ns, keep) {
            assert_eq!(p.role, Role::Verify);
            assert_granted(&p);
        }
    }
    assert!(!allows(&rules_of(Role::Verify), "create", "", "pods/exec"));
}

#[test]
fn cleanup_deletes_are_what_the_roles_grant() {
    let run = "1a2b3c4d";
    let opts = AgentOptions {
        namespace: DEFAULT_NAMESPACE.into(),
        image: DEFAULT_IMAGE.into(),
        timeout: Duration::from_secs(60),
        privileged: false,
    };
    let agent = agent_pod("gpu-1", run, &opts).unwrap();
    let ns = objects::verify_namespace(run);
    let ns_name = ns.metadata.name.clone().unwrap();
    let verify_pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": objects::pod_name(Component::Verify, "gpu-1", run), "namespace": ns_name,
                     "labels": objects::our_labels(Component::Verify, run)}
    }))
    .unwrap();
    let pods = [agent, verify_pod];
    let namespaces: [Namespace; 1] = [ns];
    let needed = rke2gpu::cleanup::delete_permissions(&pods, &namespaces);
    let roles: Vec<(Role, Option<&str>, bool)> = needed
        .iter()
        .map(|p| (p.role, p.namespace, p.cluster_wide))
        .collect();
    assert_eq!(
        roles,
        [
            (Role::NodeAgent, Some(DEFAULT_NAMESPACE), false),
            (Role::Verify, Some(ns_name.as_str()), true),
            (Role::Verify, None, false),
        ]
    );
    for p in &needed {
        assert_granted(p);
    }
}
