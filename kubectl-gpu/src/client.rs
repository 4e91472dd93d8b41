//! Builds a Kubernetes client from the command-line options the way kubectl
//! does: `--kubeconfig`, else every path in `KUBECONFIG` merged, else
//! `~/.kube/config`, else the in-cluster service account; then
//! `--context`/`--cluster`/`--user`.

use crate::cli::KubeOpts;
use crate::error::{Error, Result};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// A connected client plus what the user should see in messages.
#[derive(Clone)]
pub struct Kube {
    pub client: kube::Client,
    /// The API server URL, for error messages.
    pub server: String,
    /// The namespace of the context (or `default`).
    pub default_namespace: String,
}

impl std::fmt::Debug for Kube {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kube")
            .field("server", &self.server)
            .finish()
    }
}

/// The kubeconfig paths kubectl would read, in order.
pub fn kubeconfig_paths(opts: &KubeOpts) -> Vec<String> {
    if let Some(path) = &opts.kubeconfig {
        return vec![path.clone()];
    }
    if let Some(list) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        return std::env::split_paths(&list)
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| p.display().to_string())
            .collect();
    }
    match std::env::var_os("HOME") {
        Some(home) => vec![format!("{}/.kube/config", home.to_string_lossy())],
        None => Vec::new(),
    }
}

/// Reads and merges the kubeconfig files (the first file wins for each
/// entry, as in kubectl). Missing files in a KUBECONFIG list are skipped.
pub fn load_kubeconfig(opts: &KubeOpts) -> Result<Option<Kubeconfig>> {
    let paths = kubeconfig_paths(opts);
    let explicit = opts.kubeconfig.is_some();
    let mut merged: Option<Kubeconfig> = None;
    for path in &paths {
        if !std::path::Path::new(path).exists() {
            if explicit {
                return Err(Error::BadKubeconfig {
                    path: path.clone(),
                    message: "file does not exist".into(),
                });
            }
            continue;
        }
        let config = Kubeconfig::read_from(path).map_err(|e| Error::BadKubeconfig {
            path: path.clone(),
            message: e.to_string(),
        })?;
        merged = Some(match merged {
            None => config,
            Some(m) => m.merge(config).map_err(|e| Error::BadKubeconfig {
                path: path.clone(),
                message: e.to_string(),
            })?,
        });
    }
    Ok(merged)
}

/// Connects, without contacting the server yet.
pub async fn connect(opts: &KubeOpts) -> Result<Kube> {
    let options = KubeConfigOptions {
        context: opts.context.clone(),
        cluster: opts.cluster.clone(),
        user: opts.user.clone(),
    };
    let config = match load_kubeconfig(opts)? {
        Some(kubeconfig) => {
            if let Some(ctx) = &opts.context
                && !kubeconfig.contexts.iter().any(|c| &c.name == ctx)
            {
                let available = kubeconfig
                    .contexts
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(Error::UnknownContext {
                    context: ctx.clone(),
                    available: if available.is_empty() {
                        "none".into()
                    } else {
                        format!("available: {available}")
                    },
                });
            }
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| Error::BadKubeconfig {
                    path: kubeconfig_paths(opts).join(":"),
                    message: e.to_string(),
                })?
        }
        None => kube::Config::incluster().map_err(|_| Error::NoKubeconfig {
            tried: {
                let mut tried = kubeconfig_paths(opts);
                tried.push("in-cluster service account".into());
                tried.join(", ")
            },
        })?,
    };
    let server = config.cluster_url.to_string();
    let default_namespace = config.default_namespace.clone();
    let client = kube::Client::try_from(config).map_err(|e| Error::BadKubeconfig {
        path: kubeconfig_paths(opts).join(":"),
        message: e.to_string(),
    })?;
    Ok(Kube {
        client,
        server,
        default_namespace,
    })
}

impl Kube {
    /// Maps a kube error into ours, with the action and this server.
    pub fn err(&self, action: &str) -> impl FnOnce(kube::Error) -> Error + '_ {
        let action = action.to_string();
        move |e| Error::from_kube(e, &action, &self.server)
    }
}

/// How long one page of a list may take before the server counts as unreachable.
pub const LIST_PAGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Lists every object `params` selects, following continue tokens (set
/// `params.limit` for the page size); `action` (`list nodes`) names the call
/// in errors. Each page must arrive within [`LIST_PAGE_TIMEOUT`].
pub async fn list_all<K>(
    kube: &Kube,
    api: &kube::Api<K>,
    mut params: kube::api::ListParams,
    action: &str,
) -> Result<Vec<K>>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut items = Vec::new();
    loop {
        let page = tokio::time::timeout(LIST_PAGE_TIMEOUT, api.list(&params))
            .await
            .map_err(|_| Error::Unreachable {
                server: kube.server.clone(),
                message: format!(
                    "timed out after {}s trying to {action}",
                    LIST_PAGE_TIMEOUT.as_secs()
                ),
            })?
            .map_err(kube.err(action))?;
        items.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params.continue_token = Some(token),
            None => break,
        }
    }
    Ok(items)
}
