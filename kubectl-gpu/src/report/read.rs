//! What the report reads beyond [`Snapshot::read`]: every pod that can hold
//! a GPU, in one paginated list with a field selector that leaves terminal
//! pods on the server, each page reduced to its GPU pods as it arrives (so
//! memory stays proportional to GPU pods, not to all pods).

use super::pods::{GpuPod, PodLite, jiff_now::Now};
use crate::client::Kube;
use crate::snapshot::{PAGE, Unreadable};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, LogParams};

/// Leaves Succeeded and Failed pods on the server.
pub const NON_TERMINAL: &str = "status.phase!=Succeeded,status.phase!=Failed";

/// GPU pods read from the cluster.
#[derive(Debug, Clone, Default)]
pub struct PodsRead {
    pub pods: Vec<GpuPod>,
    /// Pods listed (GPU or not).
    pub scanned: usize,
    /// List calls made.
    pub calls: usize,
}

/// The scope of a pod list.
fn pods_api<K>(kube: &Kube, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(kube.client.clone(), ns),
        None => Api::all(kube.client.clone()),
    }
}

/// Lists the non-terminal pods (of a namespace, or all) page by page and
/// keeps those requesting GPU resources.
pub async fn gpu_pods(
    kube: &Kube,
    namespace: Option<&str>,
    now: Now,
) -> Result<PodsRead, kube::Error> {
    let api: Api<PodLite> = pods_api(kube, namespace);
    let mut out = PodsRead::default();
    let mut lp = ListParams::default().fields(NON_TERMINAL).limit(PAGE);
    loop {
        let page = api.list(&lp).await?;
        out.calls += 1;
        out.scanned += page.items.len();
        out.pods
            .extend(page.items.iter().filter_map(|p| GpuPod::from_lite(p, now)));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp.continue_token = Some(token),
            None => break,
        }
    }
    out.pods
        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(out)
}

/// Like [`gpu_pods`] but records an unreadable entry instead of failing.
pub async fn gpu_pods_or_note(
    kube: &Kube,
    namespace: Option<&str>,
    now: Now,
    unreadable: &mut Vec<Unreadable>,
) -> Option<PodsRead> {
    match gpu_pods(kube, namespace, now).await {
        Ok(p) => Some(p),
        Err(e) => {
            unreadable.push(Unreadable::new(
                match namespace {
                    Some(ns) => format!("pods in namespace {ns}"),
                    None => "pods (all namespaces)".into(),
                },
                &e,
            ));
            None
        }
    }
}

/// Full Pod objects of the GPU pods (for the support bundle).
pub async fn full_gpu_pods(kube: &Kube) -> Result<Vec<Pod>, kube::Error> {
    let api: Api<Pod> = Api::all(kube.client.clone());
    let mut out = Vec::new();
    let mut lp = ListParams::default().fields(NON_TERMINAL).limit(PAGE);
    loop {
        let page = api.list(&lp).await?;
        out.extend(
            page.items
                .into_iter()
                .filter(|p| PodLite::from_pod(p).is_some_and(|l| !l.gpu_requests().is_empty())),
        );
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp.continue_token = Some(token),
            None => break,
        }
    }
    Ok(out)
}

/// Events of a namespace (core/v1), paginated.
pub async fn events(kube: &Kube, namespace: &str) -> Result<Vec<Event>, kube::Error> {
    let api: Api<Event> = Api::namespaced(kube.client.clone(), namespace);
    crate::snapshot::list_all(&api, &ListParams::default()).await
}

/// A container log, the last `cap` bytes at most (cut at a line start).
/// Returns the text and whether it was cut.
pub async fn log_tail(
    kube: &Kube,
    namespace: &str,
    pod: &str,
    container: &str,
    previous: bool,
    cap: usize,
) -> Result<(String, bool), kube::Error> {
    let api: Api<Pod> = Api::namespaced(kube.client.clone(), namespace);
    let lp = LogParams {
        container: Some(container.to_string()),
        previous,
        // Enough lines for the cap; the apiserver returns the last N lines.
        tail_lines: Some(50_000),
        ..LogParams::default()
    };
    let text = api.logs(pod, &lp).await?;
    Ok(tail_capped(text, cap))
}

/// The last `cap` bytes of a text, starting at a line boundary.
pub fn tail_capped(text: String, cap: usize) -> (String, bool) {
    if text.len() <= cap {
        return (text, false);
    }
    let mut start = text.len() - cap;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let cut = &text[start..];
    let cut = match cut.find('\n') {
        Some(i) if i + 1 < cut.len() => &cut[i + 1..],
        _ => cut,
    };
    (cut.to_string(), true)
}
