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

/// One permission: `verb` on `resource` (`/sub`resource) in `namespace`
/// (cluster scope when `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission<'a> {
    pub verb: &'a str,
    pub resource: &'a str,
    pub sub: Option<&'a str>,
    pub namespace: Option<&'a str>,
}

impl<'a> Permission<'a> {
    pub fn new(verb: &'a str, resource: &'a str, namespace: Option<&'a str>) -> Self {
        Permission {
            verb,
            resource,
            sub: None,
            namespace,
        }
    }

    pub fn subresource(mut self, sub: &'a str) -> Self {
        self.sub = Some(sub);
        self
    }

    fn forbidden(&self) -> Error {
        Error::Forbidden {
            verb: self.verb.to_string(),
            resource: match self.sub {
                Some(s) => format!("{}/{s}", self.resource),
                None => self.resource.to_string(),
            },
            namespace: self.namespace.map(str::to_string),
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
/// [`Error::Forbidden`].
pub async fn require(kube: &Kube, needed: &[Permission<'_>]) -> Result<()> {
    let answers = futures::future::join_all(needed.iter().map(|p| can_i(kube, p))).await;
    for (p, allowed) in needed.iter().zip(answers) {
        if !allowed? {
            return Err(p.forbidden());
        }
    }
    Ok(())
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
    let ns = Some(namespace);
    require(
        kube,
        &[
            Permission::new("create", "pods", ns),
            Permission::new("create", "pods", ns).subresource("exec"),
            Permission::new("delete", "pods", ns),
        ],
    )
    .await?;
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
    let mut needed = vec![
        Permission::new("create", "pods", ns),
        Permission::new("watch", "pods", ns),
        Permission::new("get", "pods", ns).subresource("log"),
    ];
    if create_ns {
        needed.push(Permission::new("create", "namespaces", None));
        if !keep {
            needed.push(Permission::new("delete", "namespaces", None));
        }
    } else if !keep {
        needed.push(Permission::new("delete", "pods", ns));
    }
    require(kube, &needed).await?;
    if !can_i(kube, &Permission::new("list", "events", ns)).await? {
        tracing::warn!(
            "cannot list events in namespace {namespace}: failed pods will be diagnosed from their status and log only"
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
    fn forbidden_names_the_subresource() {
        let p = Permission::new("create", "pods", Some("ns1")).subresource("exec");
        match p.forbidden() {
            Error::Forbidden {
                verb,
                resource,
                namespace,
            } => {
                assert_eq!(verb, "create");
                assert_eq!(resource, "pods/exec");
                assert_eq!(namespace.as_deref(), Some("ns1"));
            }
            e => panic!("{e:?}"),
        }
    }
}
