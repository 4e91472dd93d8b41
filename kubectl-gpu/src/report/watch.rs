//! `--watch`: watchers (list + watch, resumed on errors) on nodes, on
//! non-terminal pods and on the operator's pods keep in-memory stores; every
//! burst of events is debounced into one re-render. No polling.
//! [`Frames`] turns each report into what to print, or nothing when
//! nothing shown changed.

use super::pods::{GpuPod, PodLite, jiff_now::Now};
use super::read::{NON_TERMINAL, PodsRead};
use super::{GpuReport, View};
use crate::cli::OutputFormat;
use crate::client::Kube;
use crate::error::{Error, Result};
use crate::snapshot::{PAGE, Snapshot};
use futures::{Stream, StreamExt as _};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use std::pin::Pin;
use std::time::Duration;

/// Default quiet time before a re-render.
pub const DEBOUNCE: Duration = Duration::from_millis(500);

type Changes = Pin<Box<dyn Stream<Item = std::result::Result<(), watcher::Error>> + Send>>;

fn changes<K>(api: Api<K>, config: watcher::Config, writer: reflector::store::Writer<K>) -> Changes
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    reflector::reflector(writer, watcher(api, config).default_backoff())
        .map(|r| r.map(|_| ()))
        .boxed()
}

/// Builds a report from the stores and the rest of the first snapshot.
fn report_from(
    base: &Snapshot,
    nodes: &Store<Node>,
    pods: &Store<PodLite>,
    operands: Option<&Store<Pod>>,
    namespace: Option<&str>,
) -> GpuReport {
    let mut snap = base.clone();
    let mut node_list: Vec<Node> = nodes.state().iter().map(|n| (**n).clone()).collect();
    node_list.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    snap.nodes = node_list;
    if let (Some(ops), Some(store)) = (snap.operator.as_mut(), operands) {
        let mut list: Vec<Pod> = store.state().iter().map(|p| (**p).clone()).collect();
        list.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        ops.pods = list;
    }
    let now = Now::system();
    let state = pods.state();
    let mut gpu: Vec<GpuPod> = state
        .iter()
        .filter_map(|p| GpuPod::from_lite(p, now))
        .collect();
    gpu.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let read = PodsRead {
        pods: gpu,
        scanned: state.len(),
        calls: 0,
    };
    GpuReport::build(&snap, Some(&read), namespace, now)
}

/// Watches until interrupted, calling `render` once the stores are filled
/// and again after every debounced burst of changes.
pub async fn run(
    kube: &Kube,
    base: Snapshot,
    namespace: Option<String>,
    debounce: Duration,
    mut render: impl FnMut(&GpuReport) -> Result<()>,
) -> Result<()> {
    let client = kube.client.clone();
    let (node_store, node_writer) = reflector::store::<Node>();
    let (pod_store, pod_writer) = reflector::store::<PodLite>();
    let mut streams: Vec<Changes> = vec![
        changes(
            Api::<Node>::all(client.clone()),
            watcher::Config::default().page_size(PAGE),
            node_writer,
        ),
        changes(
            Api::<PodLite>::all(client.clone()),
            watcher::Config::default()
                .fields(NON_TERMINAL)
                .page_size(PAGE),
            pod_writer,
        ),
    ];
    let operand_store = match &base.operator {
        Some(ops) => {
            let (store, writer) = reflector::store::<Pod>();
            streams.push(changes(
                Api::<Pod>::namespaced(client.clone(), &ops.namespace),
                watcher::Config::default().page_size(PAGE),
                writer,
            ));
            Some(store)
        }
        None => None,
    };
    let mut events = futures::stream::select_all(streams);
    let mut ready = false;
    loop {
        // Wait for a change, then for quiet.
        match events.next().await {
            None => {
                return Err(Error::Watch {
                    what: "nodes and pods".into(),
                    reason: "the watch streams ended".into(),
                });
            }
            Some(Err(e)) => {
                tracing::warn!("watch: {e}");
                continue;
            }
            Some(Ok(())) => {}
        }
        loop {
            match tokio::time::timeout(debounce, events.next()).await {
                Ok(Some(Err(e))) => tracing::warn!("watch: {e}"),
                Ok(Some(Ok(()))) => {}
                Ok(None) | Err(_) => break,
            }
        }
        if !ready {
            let stores_ready = node_store.wait_until_ready();
            let pods_ready = pod_store.wait_until_ready();
            if tokio::time::timeout(Duration::from_millis(1), async {
                let _ = stores_ready.await;
                let _ = pods_ready.await;
                if let Some(s) = &operand_store {
                    let _ = s.wait_until_ready().await;
                }
            })
            .await
            .is_err()
            {
                continue;
            }
            ready = true;
        }
        let report = report_from(
            &base,
            &node_store,
            &pod_store,
            operand_store.as_ref(),
            namespace.as_deref(),
        );
        render(&report)?;
    }
}

/// What `--watch` prints for each report: the full view again (JSON: one
/// document per line; YAML: `---`-separated; tables: the screen cleared on
/// a terminal), only when something shown changed.
#[derive(Debug, Clone)]
pub struct Frames {
    view: View,
    format: OutputFormat,
    color: bool,
    /// stdout is a terminal: clear the screen before each table.
    tty: bool,
    first: bool,
    last: String,
}

impl Frames {
    pub fn new(view: View, format: OutputFormat, color: bool, tty: bool) -> Self {
        Frames {
            view,
            format,
            color,
            tty,
            first: true,
            last: String::new(),
        }
    }

    /// The text to print for this report; None when only heartbeats,
    /// ages or `generated_at` changed since the last one.
    pub fn next(&mut self, r: &GpuReport) -> Result<Option<String>> {
        let (view, format) = (self.view, self.format);
        let body = match format {
            OutputFormat::Json | OutputFormat::Yaml => {
                let mut v =
                    serde_json::to_value(r.doc(view)).map_err(|e| Error::Other(e.to_string()))?;
                if let Some(o) = v.as_object_mut() {
                    o.remove("generated_at");
                }
                strip_ages(&mut v);
                v.to_string()
            }
            _ => super::table::render(r, view, format, self.color)?,
        };
        if body == self.last {
            return Ok(None);
        }
        self.last = body;
        let text = match format {
            OutputFormat::Json => {
                let mut s = serde_json::to_string(&r.doc(view))
                    .map_err(|e| Error::Other(format!("cannot render JSON: {e}")))?;
                s.push('\n');
                s
            }
            OutputFormat::Yaml => {
                format!("---\n{}", crate::render::structured(&r.doc(view), format)?)
            }
            _ => {
                let body = super::table::render(r, view, format, self.color)?;
                if self.tty {
                    format!(
                        "\x1b[2J\x1b[H{}  (watching; Ctrl-C to stop)\n\n{body}",
                        r.generated_at
                    )
                } else if self.first {
                    body
                } else {
                    format!("\n{body}")
                }
            }
        };
        self.first = false;
        Ok(Some(text))
    }
}

/// Ages tick every second; they are not a change worth a re-render.
fn strip_ages(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.remove("age_seconds");
            m.values_mut().for_each(strip_ages);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_ages),
        _ => {}
    }
}
