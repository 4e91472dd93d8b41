//! The roles of `deploy/rbac.yaml` (their names, how each is bound) and
//! which one grants a permission we were refused, so that a forbidden read
//! or a refused preflight names the role to bind instead of a generic
//! "ask your admin". Pure: no I/O.
//!
//! A test (`kubectl-gpu/tests/it/rbac_roles.rs`) reads `deploy/rbac.yaml`
//! and checks that every permission a preflight asks for is granted by the
//! role it names, and that the read role holds no Secrets.

use serde::Serialize;

/// Where the roles are defined, relative to the repository.
pub const RBAC_FILE: &str = "deploy/rbac.yaml";

/// One role of `deploy/rbac.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// ClusterRole `kubectl-gpu-read`: every read of the read-only commands, no Secrets.
    Read,
    /// Role `kubectl-gpu-helm-release` in the operator's namespace: its Helm release Secrets.
    HelmRelease,
    /// ClusterRole `kubectl-gpu-node-agent`, bound in the node-agent namespace: create, exec, delete pods.
    NodeAgent,
    /// ClusterRole `kubectl-gpu-verify`: the verify namespace and its pods.
    Verify,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Read, Role::HelmRelease, Role::NodeAgent, Role::Verify];

    /// `metadata.name` in `deploy/rbac.yaml`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Read => "kubectl-gpu-read",
            Role::HelmRelease => "kubectl-gpu-helm-release",
            Role::NodeAgent => "kubectl-gpu-node-agent",
            Role::Verify => "kubectl-gpu-verify",
        }
    }

    /// `kind` in `deploy/rbac.yaml`.
    pub fn kind(self) -> &'static str {
        match self {
            Role::HelmRelease => "Role",
            Role::Read | Role::NodeAgent | Role::Verify => "ClusterRole",
        }
    }

    /// Where it is bound by default: the Helm release Role in the
    /// operator's default namespace, the node agent in its namespace; the
    /// others cluster-wide.
    pub fn default_binding(self) -> Binding {
        let namespace = match self {
            Role::HelmRelease => Some(crate::helm::invocation::DEFAULT_NAMESPACE),
            Role::NodeAgent => Some(crate::node::agent::DEFAULT_NAMESPACE),
            Role::Read | Role::Verify => None,
        };
        Binding {
            role: self,
            namespace: namespace.map(str::to_string),
        }
    }

    /// Bound in `namespace` (a RoleBinding), or cluster-wide when `None`
    /// (the read role is always bound cluster-wide).
    pub fn bound_in(self, namespace: Option<&str>) -> Binding {
        Binding {
            role: self,
            namespace: match self {
                Role::Read => None,
                _ => namespace.map(str::to_string),
            },
        }
    }
}

/// A role and where to bind it: a RoleBinding in `namespace`, or a
/// ClusterRoleBinding when `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Binding {
    pub role: Role,
    pub namespace: Option<String>,
}

impl Binding {
    /// The `kubectl create …binding` that grants it to `<you>`.
    pub fn command(&self) -> String {
        let name = self.role.name();
        let subject = "--user=<you>";
        let role_ref = match self.role.kind() {
            "Role" => format!("--role={name}"),
            _ => format!("--clusterrole={name}"),
        };
        match &self.namespace {
            Some(ns) => format!("kubectl -n {ns} create rolebinding {name} {role_ref} {subject}"),
            None => format!("kubectl create clusterrolebinding {name} {role_ref} {subject}"),
        }
    }

    /// One sentence: which role to bind, and how.
    pub fn advice(&self) -> String {
        let note = match self.role {
            Role::HelmRelease => {
                " (the Role's metadata.namespace must be the operator's namespace)"
            }
            _ => "",
        };
        format!(
            "bind the {} {} from {RBAC_FILE}{note}: {}",
            self.role.kind(),
            self.role.name(),
            self.command()
        )
    }
}

impl Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind(), self.name())
    }
}

/// The binding that grants a read we were refused in `namespace`: Secrets
/// come from the Helm release Role there, every other `get`/`list`/`watch`
/// from the read role. `None` for writes, whose role depends on the command
/// (its preflight names it).
pub fn binding_for_read(verb: &str, resource: &str, namespace: Option<&str>) -> Option<Binding> {
    let base = resource.split('.').next().unwrap_or(resource);
    match (verb, base) {
        ("get" | "list" | "watch", "secrets") => Some(match namespace {
            Some(ns) => Role::HelmRelease.bound_in(Some(ns)),
            None => Role::HelmRelease.default_binding(),
        }),
        ("get" | "list" | "watch", _) => Some(Role::Read.default_binding()),
        _ => None,
    }
}

/// A permission the API server refused, and the role that grants it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Missing {
    pub verb: String,
    /// `secrets`, `pods/exec`, `clusterpolicies.nvidia.com`.
    pub resource: String,
    /// None: cluster scope (or every namespace).
    pub namespace: Option<String>,
    /// The role of `deploy/rbac.yaml` that grants it and where to bind it, when known.
    pub bind: Option<Binding>,
}

impl Missing {
    /// From the API server's 403 message (`secrets is forbidden: User "u"
    /// cannot list resource "secrets" in API group "" in the namespace
    /// "gpu-operator"`, k8s.io/apiserver endpoints/handlers/responsewriters
    /// `forbiddenMessage`), for a read.
    pub fn from_forbidden_message(message: &str) -> Option<Missing> {
        let (verb, resource, namespace) = crate::error::parse_forbidden(message)?;
        let bind = binding_for_read(&verb, &resource, namespace.as_deref());
        Some(Missing {
            verb,
            resource,
            namespace,
            bind,
        })
    }

    /// How to get it: the role and its binding command, or the README.
    pub fn advice(&self) -> String {
        advice(self.bind.as_ref())
    }
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot {} {}", self.verb, self.resource)?;
        match &self.namespace {
            Some(ns) => write!(f, " in namespace {ns}"),
            None => f.write_str(" at the cluster scope"),
        }
    }
}

/// The advice for a refused permission: the role to bind, or the README
/// when no single role of ours grants it.
pub fn advice(bind: Option<&Binding>) -> String {
    match bind {
        Some(b) => b.advice(),
        None => format!("see the RBAC section of the README and {RBAC_FILE}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_map_to_the_read_role_except_secrets() {
        let role = |verb, resource, ns| binding_for_read(verb, resource, ns).map(|b| b.role);
        assert_eq!(role("list", "nodes", None), Some(Role::Read));
        assert_eq!(
            role("list", "clusterpolicies.nvidia.com", None),
            Some(Role::Read)
        );
        assert_eq!(role("list", "pods", Some("gpu-operator")), Some(Role::Read));
        assert_eq!(
            binding_for_read("list", "secrets", Some("nvidia-gpu")),
            Some(Binding {
                role: Role::HelmRelease,
                namespace: Some("nvidia-gpu".into())
            })
        );
        assert_eq!(role("create", "pods", None), None);
    }

    #[test]
    fn parses_the_api_servers_message() {
        // The message a ServiceAccount bound to kubectl-gpu-read gets.
        let m = Missing::from_forbidden_message(
            r#"secrets is forbidden: User "system:serviceaccount:rbac:reader" cannot list resource "secrets" in API group "" in the namespace "gpu-operator""#,
        )
        .unwrap();
        assert_eq!(
            m.to_string(),
            "cannot list secrets in namespace gpu-operator"
        );
        assert_eq!(m.bind.as_ref().map(|b| b.role), Some(Role::HelmRelease));
        assert_eq!(
            m.advice(),
            "bind the Role kubectl-gpu-helm-release from deploy/rbac.yaml (the Role's metadata.namespace must be the operator's namespace): kubectl -n gpu-operator create rolebinding kubectl-gpu-helm-release --role=kubectl-gpu-helm-release --user=<you>"
        );
        let m = Missing::from_forbidden_message(
            r#"clusterpolicies.nvidia.com is forbidden: User "u" cannot list resource "clusterpolicies" in API group "nvidia.com" at the cluster scope"#,
        )
        .unwrap();
        assert_eq!(
            m.to_string(),
            "cannot list clusterpolicies.nvidia.com at the cluster scope"
        );
        assert_eq!(m.bind.as_ref().map(|b| b.role), Some(Role::Read));
    }

    #[test]
    fn bind_commands_name_the_namespace() {
        assert_eq!(
            Role::NodeAgent.default_binding().command(),
            "kubectl -n kube-system create rolebinding kubectl-gpu-node-agent --clusterrole=kubectl-gpu-node-agent --user=<you>"
        );
        assert_eq!(
            Role::Verify.bound_in(Some("gpu-tests")).command(),
            "kubectl -n gpu-tests create rolebinding kubectl-gpu-verify --clusterrole=kubectl-gpu-verify --user=<you>"
        );
        assert_eq!(
            Role::Verify.bound_in(None).command(),
            "kubectl create clusterrolebinding kubectl-gpu-verify --clusterrole=kubectl-gpu-verify --user=<you>"
        );
    }
}
