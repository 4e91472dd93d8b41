//! The plugin's Kubernetes I/O: a client from `KUBECONFIG` (several paths
//! merged) and `HELM_KUBECONTEXT`, the node list (paginated), and labelling
//! the operator namespace PSA-privileged on CIS clusters.

use crate::Failure;
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use std::time::Duration;

/// Where to connect.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub context: Option<String>,
    pub kubeconfig: Option<String>,
}

/// A connected client and the server it talks to (for messages).
pub struct Connected {
    pub client: Client,
    pub server: String,
}

/// Builds a client. Kubeconfig problems are exit code 2.
pub async fn connect(target: &Target) -> Result<Connected, Failure> {
    let opts = KubeConfigOptions {
        context: target.context.clone(),
        ..Default::default()
    };
    let mut config = match (&target.kubeconfig, &target.context) {
        (Some(path), _) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| Failure::cluster(format!("reading kubeconfig {path}: {e}")))?;
            Config::from_custom_kubeconfig(kc, &opts).await
        }
        (None, Some(_)) => Config::from_kubeconfig(&opts).await,
        (None, None) => Config::from_kubeconfig(&opts).await.or_else(|e| {
            // No kubeconfig at all: in-cluster, else report the kubeconfig error.
            Config::incluster().map_err(|_| e)
        }),
    }
    .map_err(|e| {
        Failure::cluster(format!(
            "cannot load a kubeconfig (KUBECONFIG={}, context {}): {e}",
            std::env::var("KUBECONFIG").unwrap_or_else(|_| "~/.kube/config".into()),
            target.context.as_deref().unwrap_or("current")
        ))
    })?;
    config.connect_timeout = Some(Duration::from_secs(10));
    config.read_timeout = Some(Duration::from_secs(30));
    let server = config.cluster_url.to_string();
    let client = Client::try_from(config)
        .map_err(|e| Failure::cluster(format!("Kubernetes client for {server}: {e}")))?;
    Ok(Connected { client, server })
}

/// Lists every node, 500 at a time.
pub async fn list_nodes(c: &Connected) -> Result<Vec<Node>, Failure> {
    let api: Api<Node> = Api::all(c.client.clone());
    let mut params = ListParams::default().limit(500);
    let mut nodes = Vec::new();
    loop {
        let page = tokio::time::timeout(Duration::from_secs(60), api.list(&params))
            .await
            .map_err(|_| {
                Failure::cluster(format!(
                    "timed out listing nodes on the Kubernetes API server {}",
                    c.server
                ))
            })?
            .map_err(|e| {
                Failure::cluster(format!(
                    "cannot list nodes on the Kubernetes API server {}: {e}; check KUBECONFIG / --kube-context and that the cluster is up",
                    c.server
                ))
            })?;
        nodes.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    Ok(nodes)
}

/// Creates the namespace with `pod-security.kubernetes.io/enforce=privileged`,
/// or adds the label to an existing one.
pub async fn ensure_privileged_namespace(c: &Connected, name: &str) -> Result<(), Failure> {
    let label = rke2gpu::labels::PSA_ENFORCE;
    let value = rke2gpu::matrix::PSA_PRIVILEGED;
    let api: Api<Namespace> = Api::all(c.client.clone());
    let ctx = |what: &str, e: kube::Error| {
        Failure::cluster(format!(
            "{what} namespace {name} with {label}={value} on {}: {e}; label it by hand: kubectl label ns {name} {label}={value}",
            c.server
        ))
    };
    let existing = api.get_opt(name).await.map_err(|e| ctx("reading", e))?;
    if existing.is_some() {
        let patch = serde_json::json!({"metadata": {"labels": {label: value}}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| ctx("labelling", e))?;
    } else {
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {label: value}}
        }))
        .map_err(|e| Failure::refused(format!("building namespace {name}: {e}")))?;
        api.create(&PostParams::default(), &ns)
            .await
            .map_err(|e| ctx("creating", e))?;
    }
    Ok(())
}
