//! Checks made before we create anything: SelfSubjectAccessReviews for
//! every permission a command needs, the namespace's existence, and Pod
//! Security admission (the namespace's `pod-security.kubernetes.io/enforce`
//! label for the node-agent pod, a server-side dry run for the verify pod).
//! Used by the node agent ([`node_agent`]) and `verify` ([`verify`]).

use std::collections::BTreeMap;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, PostParams};

use crate::client::Kube;
use crate::error::{Error, Result};
use crate::labels;
use crate::rbac::Role;

/// One permission: `verb` on `resource` (`/sub`resource) in `namespace`
/// (cluster scope when `None`), and the role of `deploy/rbac.yaml` that
/// grants it, bound in `namespace` unless `cluster_wide`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission<'a> {
    pub verb: &'a str,
    pub resource: &'a str,
    pub sub: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub role: Role,
    /// The role must be bound cluster-wide (a namespace we create has no
    /// RoleBinding yet).
    pub cluster_wide: bool,
}

impl<'a> Permission<'a> {
    pub fn new(role: Role, verb: &'a str, resource: &'a str, namespace: Option<&'a str>) -> Self {
        Permission {
            verb,
            resource,
            sub: None,
            namespace,
            role,
            cluster_wide: false,
        }
    }

    pub fn subresource(mut self, sub: &'a str) -> Self {
        self.sub = Some(sub);
        self
    }

    /// Granted only by a cluster-wide binding of its role.
    pub fn bound_cluster_wide(mut self) -> Self {
        self.cluster_wide = true;
        self
    }

    /// `pods/exec`, `namespaces`.
    pub fn resource_path(&self) -> String {
        match self.sub {
            Some(s) => format!("{}/{s}", self.resource),
            None => self.resource.to_string(),
        }
    }

    /// The error that names this permission and the binding of its role.
    fn forbidden(&self) -> Error {
        let bind_in = if self.cluster_wide {
            None
        } else {
            self.namespace
        };
        Error::Forbidden {
            verb: self.verb.to_string(),
            resource: self.resource_path(),
            namespace: self.namespace.map(str::to_string),
            bind: Some(self.role.bound_in(bind_in)),
        }
    }
}

/// Asks the API server (SelfSubjectAccessReview) whether we hold `p`.
pub async fn can_i(kube: &Kube, p: &Permission<'_>) -> Result<bool> {
    let ssar: Api<SelfSubjectAccessReview> = Api::all(kube.client.clone());
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: p.namespace.map(str::to_string),
                verb: Some(p.verb.to_string()),
                resource: Some(p.resource.to_string()),
                subresource: p.sub.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = ssar
        .create(&PostParams::default(), &review)
        .await
        .map_err(kube.err("create selfsubjectaccessreviews"))?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

/// Asks for all of `needed` at once; the first one (in order) we lack is
/// [`Error::Forbidden`], naming its role and how to bind it.
pub async fn require(kube: &Kube, needed: &[Permission<'_>]) -> Result<()> {
    let answers = futures::future::join_all(needed.iter().map(|p| can_i(kube, p))).await;
    for (p, allowed) in needed.iter().zip(answers) {
        if !allowed? {
            return Err(p.forbidden());
        }
    }
    Ok(())
}

/// What node-agent pods need in `namespace`: create, watch (until
/// running), exec (`get` for the WebSocket upgrade kube's exec uses, and
/// `create`, which Kubernetes 1.35+ also asks of it:
/// AuthorizePodWebsocketUpgradeCreatePermission, kubernetes/kubernetes#134577)
/// and delete pods.
pub fn node_agent_permissions(namespace: &str) -> Vec<Permission<'_>> {
    let ns = Some(namespace);
    let r = Role::NodeAgent;
    vec![
        Permission::new(r, "create", "pods", ns),
        Permission::new(r, "watch", "pods", ns),
        Permission::new(r, "get", "pods", ns).subresource("exec"),
        Permission::new(r, "create", "pods", ns).subresource("exec"),
        Permission::new(r, "delete", "pods", ns),
    ]
}

/// What verify needs: pods it creates, watches, reads the log of and
/// deletes in `namespace`; with `create_ns` also the namespace itself
/// (created, its pods deleted at once, deleted). `keep`: nothing deleted.
pub fn verify_permissions(namespace: &str, create_ns: bool, keep: bool) -> Vec<Permission<'_>> {
    let ns = Some(namespace);
    // In a namespace of our own only a cluster-wide binding can grant it.
    let p = |verb, resource| {
        let p = Permission::new(Role::Verify, verb, resource, ns);
        if create_ns { p.bound_cluster_wide() } else { p }
    };
    let mut needed = vec![
        p("create", "pods"),
        p("watch", "pods"),
        p("get", "pods").subresource("log"),
    ];
    if create_ns {
        needed.push(Permission::new(Role::Verify, "create", "namespaces", None));
        if !keep {
            needed.push(p("deletecollection", "pods"));
            needed.push(Permission::new(Role::Verify, "delete", "namespaces", None));
        }
    } else if !keep {
        needed.push(p("delete", "pods"));
    }
    needed
}

/// The labels of an existing namespace; a missing one is a usage error
/// ending in `hint`.
async fn namespace_labels(
    kube: &Kube,
    namespace: &str,
    hint: &str,
) -> Result<BTreeMap<String, String>> {
    let ns_api: Api<Namespace> = Api::all(kube.client.clone());
    match ns_api.get(namespace).await {
        Ok(ns) => Ok(ns.metadata.labels.unwrap_or_default()),
        Err(kube::Error::Api(s)) if s.code == 404 => Err(Error::Usage(format!(
            "namespace {namespace} does not exist; {hint}"
        ))),
        Err(e) => Err(Error::from_kube(
            e,
            &format!("get namespace {namespace}"),
            &kube.server,
        )),
    }
}

/// Whether the namespace's PodSecurity `enforce` level rejects a
/// hostPath (`privileged`-level) pod: the usage error that says how to fix it.
pub fn node_agent_psa_refusal(namespace: &str, labels: &BTreeMap<String, String>) -> Option<Error> {
    let level = labels.get(labels::PSA_ENFORCE)?;
    (level != "privileged").then(|| {
        Error::Usage(format!(
            "namespace {namespace} enforces PodSecurity {level:?}, which rejects the node-agent pod (hostPath /); use -n kube-system or label the namespace: kubectl label ns {namespace} {}=privileged",
            labels::PSA_ENFORCE
        ))
    })
}

/// Before node-agent pods: we may create, exec into and delete pods in the
/// namespace, and its PodSecurity level admits a hostPath pod. Says exactly
/// what is missing.
pub async fn node_agent(kube: &Kube, namespace: &str) -> Result<()> {
    require(kube, &node_agent_permissions(namespace)).await?;
    let labels = namespace_labels(kube, namespace, "pick another with -n").await?;
    match node_agent_psa_refusal(namespace, &labels) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Before verify pods: everything `verify` needs to be allowed, and the
/// namespace given with `-n` exists. Listing events is optional (diagnosis
/// degrades without it).
pub async fn verify(kube: &Kube, namespace: &str, create_ns: bool, keep: bool) -> Result<()> {
    let ns = Some(namespace);
    require(kube, &verify_permissions(namespace, create_ns, keep)).await?;
    if !can_i(kube, &Permission::new(Role::Verify, "list", "events", ns)).await? {
        let bind = Role::Verify.bound_in(if create_ns { None } else { ns });
        tracing::warn!(
            "cannot list events in namespace {namespace}: failed pods will be diagnosed from their status and log only; {}",
            bind.advice()
        );
    }
    if !create_ns {
        namespace_labels(
            kube,
            namespace,
            "create it or leave out -n to let verify create a temporary one",
        )
        .await?;
    }
    Ok(())
}

/// Pod Security admission does not depend on the node: one server-side dry
/// run of `pod` answers for every pod like it. `Some(message)` when the
/// namespace's PodSecurity level rejects it.
pub async fn pod_security_rejection(kube: &Kube, namespace: &str, pod: &Pod) -> Option<String> {
    let api: Api<Pod> = Api::namespaced(kube.client.clone(), namespace);
    let pp = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    match api.create(&pp, pod).await {
        Err(kube::Error::Api(s)) if s.message.contains("violates PodSecurity") => Some(s.message),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_agent_needs_privileged_or_no_psa_label() {
        let none = BTreeMap::new();
        assert!(node_agent_psa_refusal("kube-system", &none).is_none());
        let privileged = BTreeMap::from([(labels::PSA_ENFORCE.to_string(), "privileged".into())]);
        assert!(node_agent_psa_refusal("kube-system", &privileged).is_none());
        let restricted = BTreeMap::from([(labels::PSA_ENFORCE.to_string(), "restricted".into())]);
        let e = node_agent_psa_refusal("apps", &restricted).map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                "namespace apps enforces PodSecurity \"restricted\", which rejects the node-agent pod (hostPath /); use -n kube-system or label the namespace: kubectl label ns apps pod-security.kubernetes.io/enforce=privileged"
            )
        );
    }

    #[test]
    fn forbidden_names_the_subresource_and_the_role() {
        let p = Permission::new(Role::NodeAgent, "create", "pods", Some("ns1")).subresource("exec");
        let e = p.forbidden();
        assert_eq!(
            e.to_string(),
            "forbidden: cannot create pods/exec in namespace ns1; bind the ClusterRole kubectl-gpu-node-agent from deploy/rbac.yaml: kubectl -n ns1 create rolebinding kubectl-gpu-node-agent --clusterrole=kubectl-gpu-node-agent --user=<you>"
        );
        match e {
            Error::Forbidden {
                verb,
                resource,
                namespace,
                bind,
            } => {
                assert_eq!(verb, "create");
                assert_eq!(resource, "pods/exec");
                assert_eq!(namespace.as_deref(), Some("ns1"));
                assert_eq!(bind, Some(Role::NodeAgent.bound_in(Some("ns1"))));
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn a_verify_namespace_of_our_own_binds_cluster_wide() {
        let needed = verify_permissions("kubectl-gpu-verify-1a2b", true, false);
        let e = needed[0].forbidden().to_string();
        assert!(
            e.starts_with("forbidden: cannot create pods in namespace kubectl-gpu-verify-1a2b; bind the ClusterRole kubectl-gpu-verify from deploy/rbac.yaml: kubectl create clusterrolebinding kubectl-gpu-verify"),
            "{e}"
        );
        assert!(
            needed
                .iter()
                .any(|p| p.verb == "deletecollection" && p.resource == "pods")
        );
        let in_ns = verify_permissions("gpu-tests", false, false);
        assert!(in_ns.iter().all(|p| p.namespace == Some("gpu-tests")));
        let e = in_ns[0].forbidden().to_string();
        assert!(
            e.contains("kubectl -n gpu-tests create rolebinding kubectl-gpu-verify"),
            "{e}"
        );
    }
}
