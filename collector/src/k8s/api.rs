//! The API provider: watches of Pods, Services, EndpointSlices, Nodes, ReplicaSets and Jobs keep an
//! [`Index`] current.
//!
//! A thin shell around kube-runtime's `watcher`, which lists, then watches from the list's
//! resourceVersion with bookmarks, resumes an ended watch where it left off, and lists again when the
//! API server answers that the version expired (410 Gone). Each full list is bracketed by
//! [`Event::ListStart`] and [`Event::ListDone`], so objects deleted while no watch was looking end
//! when the relist completes. ReplicaSets and Jobs are watched as metadata only: attribution reads
//! nothing but their owner. Errors are retried with kube-runtime's backoff (0.8 s doubling to 30 s).
//! What the watches did is counted per kind ([`KindStats`]) and handed, once per batch of events, to
//! [`ApiSettings::observer`] (the collector renders it as `podflow_collector_kubernetes_*` metrics).
//!
//! The collector needs `get`, `list` and `watch` on pods, services, nodes,
//! endpointslices.discovery.k8s.io, replicasets.apps and jobs.batch, cluster-wide.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use futures::stream::{self, BoxStream, StreamExt};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, PartialObjectMeta};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher::{self, metadata_watcher, watcher};
use kube::runtime::{WatchStreamExt, watcher::Event as WatchEvent};
use kube::{Client, Config};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::index::{Event, Index, IndexSettings, IndexStats};
use super::objects::{self, Invalid, Object, ObjectKind};
use super::provider::{Answer, MetadataProvider, ProviderStatus, Query, SharedIndex};

/// The time events are stamped with, Unix milliseconds.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    })
}

/// What the watches of one kind did since the provider started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindStats {
    /// Objects received in full lists (the first and every relist).
    pub listed: u64,
    /// Objects added or changed, received from the watch.
    pub applied: u64,
    /// Objects deleted, received from the watch.
    pub deleted: u64,
    /// Full lists completed, the first included.
    pub lists: u64,
    /// Full lists begun after the first (after a 410 Gone, or a watch that could not resume).
    pub relists: u64,
    /// Watches the API server ended with 410 Gone: the resourceVersion they resumed from was compacted
    /// away, so the kind is listed again.
    pub expired: u64,
    /// Other errors listing or watching (retried with backoff).
    pub errors: u64,
    /// Objects that could not be used.
    pub bad: u64,
}

/// What the watches did, per kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KubernetesStats {
    /// Every kind has been listed completely once.
    pub synced: bool,
    /// The counters of each kind.
    pub kinds: BTreeMap<ObjectKind, KindStats>,
    /// What the index holds after the batch.
    pub index: IndexStats,
}

/// Called with the watches' counters after every batch of events the index applied.
pub type Observer = Arc<dyn Fn(&KubernetesStats) + Send + Sync>;

/// How the API provider runs.
#[derive(Clone)]
pub struct ApiSettings {
    /// The index's bounds.
    pub index: IndexSettings,
    /// The time events are seen at.
    pub clock: Clock,
    /// Told what the watches did, once per batch.
    pub observer: Option<Observer>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings {
            index: IndexSettings::default(),
            clock: system_clock(),
            observer: None,
        }
    }
}

/// The API could not be reached or configured.
#[derive(Debug)]
pub struct ApiError(Box<dyn std::error::Error + Send + Sync>);

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

fn api_error(e: impl std::error::Error + Send + Sync + 'static) -> ApiError {
    ApiError(Box::new(e))
}

/// A client for the cluster: from `kubeconfig` when given, else as kubectl would find it (the
/// KUBECONFIG variable or ~/.kube/config), else the pod's service account in the cluster.
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, ApiError> {
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path).map_err(api_error)?;
            Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(api_error)?
        }
        None => Config::infer().await.map_err(api_error)?,
    };
    Client::try_from(config).map_err(api_error)
}

#[derive(Default)]
struct Counters {
    relists: AtomicU64,
    errors: AtomicU64,
    bad: AtomicU64,
    /// One bit per kind whose first list completed.
    listed: AtomicU8,
}

const ALL_LISTED: u8 = (1 << ObjectKind::ALL.len()) - 1;

fn bit(kind: ObjectKind) -> u8 {
    1 << ObjectKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

/// Watches the API and answers from what they told.
pub struct ApiProvider {
    index: SharedIndex,
    counters: Arc<Counters>,
    updates: watch::Receiver<u64>,
    task: JoinHandle<()>,
}

impl ApiProvider {
    /// Starts the watches on the current Tokio runtime; they run until the provider is dropped.
    pub fn spawn(client: Client, settings: ApiSettings) -> Result<ApiProvider, ApiError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(api_error)?;
        let index = SharedIndex::new(Index::new(settings.index));
        let counters = Arc::new(Counters::default());
        let (tx, updates) = watch::channel(0);
        let task = runtime.spawn(run(
            streams(client),
            index.clone(),
            Arc::clone(&counters),
            settings.clock,
            settings.observer,
            tx,
        ));
        Ok(ApiProvider {
            index,
            counters,
            updates,
            task,
        })
    }

    /// Counts batches of events applied: wait on it to see the index change.
    pub fn updates(&self) -> watch::Receiver<u64> {
        self.updates.clone()
    }

    /// The index the watches keep.
    pub fn index(&self) -> &SharedIndex {
        &self.index
    }

    /// Every kind has been listed completely once.
    pub fn synced(&self) -> bool {
        self.counters.listed.load(Ordering::Relaxed) == ALL_LISTED
    }
}

impl Drop for ApiProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MetadataProvider for ApiProvider {
    fn resolve(&self, query: &Query) -> Answer {
        self.index.read().resolve(query)
    }

    fn status(&self) -> ProviderStatus {
        ProviderStatus {
            synced: self.synced(),
            index: self.index.read().stats(),
            bad_objects: self.counters.bad.load(Ordering::Relaxed),
            relists: self.counters.relists.load(Ordering::Relaxed),
            errors: self.counters.errors.load(Ordering::Relaxed),
        }
    }
}

/// What one watch said, in the index's terms.
enum Step {
    Start,
    /// An object from a full list (`listed`) or from the watch.
    Upsert {
        listed: bool,
        object: Object,
    },
    Delete(Object),
    Done,
    Bad(Invalid),
    Error(watcher::Error),
}

type Steps = BoxStream<'static, (ObjectKind, Step)>;

fn steps<T, S>(kind: ObjectKind, watch: S, convert: fn(&T) -> Result<Object, Invalid>) -> Steps
where
    S: futures::Stream<Item = Result<WatchEvent<T>, watcher::Error>> + Send + 'static,
    T: Send + 'static,
{
    watch
        .map(move |item| {
            let step = match item {
                Ok(WatchEvent::Init) => Step::Start,
                Ok(WatchEvent::InitApply(o)) => {
                    convert(&o).map_or_else(Step::Bad, |object| Step::Upsert { listed: true, object })
                }
                Ok(WatchEvent::Apply(o)) => convert(&o).map_or_else(Step::Bad, |object| Step::Upsert {
                    listed: false,
                    object,
                }),
                Ok(WatchEvent::Delete(o)) => convert(&o).map_or_else(Step::Bad, Step::Delete),
                Ok(WatchEvent::InitDone) => Step::Done,
                Err(e) => Step::Error(e),
            };
            (kind, step)
        })
        .boxed()
}

fn streams(client: Client) -> Vec<Steps> {
    let config = watcher::Config::default();
    let pods = watcher(Api::<Pod>::all(client.clone()), config.clone()).default_backoff();
    let services = watcher(Api::<Service>::all(client.clone()), config.clone()).default_backoff();
    let slices = watcher(Api::<EndpointSlice>::all(client.clone()), config.clone()).default_backoff();
    let nodes = watcher(Api::<Node>::all(client.clone()), config.clone()).default_backoff();
    let replicasets =
        metadata_watcher(Api::<ReplicaSet>::all(client.clone()), config.clone()).default_backoff();
    let jobs = metadata_watcher(Api::<Job>::all(client), config).default_backoff();
    vec![
        steps(ObjectKind::Pod, pods, |p: &Pod| objects::pod(p).map(Object::Pod)),
        steps(ObjectKind::Service, services, |s: &Service| {
            objects::service(s).map(Object::Service)
        }),
        steps(ObjectKind::EndpointSlice, slices, |s: &EndpointSlice| {
            objects::endpoint_slice(s).map(Object::EndpointSlice)
        }),
        steps(ObjectKind::Node, nodes, |n: &Node| {
            objects::node(n).map(Object::Node)
        }),
        steps(
            ObjectKind::ReplicaSet,
            replicasets,
            |m: &PartialObjectMeta<ReplicaSet>| {
                objects::owner(ObjectKind::ReplicaSet, &m.metadata).map(Object::Owner)
            },
        ),
        steps(ObjectKind::Job, jobs, |m: &PartialObjectMeta<Job>| {
            objects::owner(ObjectKind::Job, &m.metadata).map(Object::Owner)
        }),
    ]
}

/// Bad objects reported on stderr, at most; the rest are only counted.
const MAX_BAD_REPORTS: u64 = 10;

async fn run(
    streams: Vec<Steps>,
    index: SharedIndex,
    counters: Arc<Counters>,
    clock: Clock,
    observer: Option<Observer>,
    tx: watch::Sender<u64>,
) {
    // Events that arrived together are applied under one lock: an initial list does not make
    // lookups wait once per object.
    let mut merged = stream::select_all(streams).ready_chunks(256);
    let mut stats = KubernetesStats {
        synced: false,
        kinds: ObjectKind::ALL
            .iter()
            .map(|k| (*k, KindStats::default()))
            .collect(),
        index: IndexStats::default(),
    };
    let mut started = 0u8;
    while let Some(batch) = merged.next().await {
        let at = clock();
        let mut events = Vec::with_capacity(batch.len());
        let mut relisted = Vec::new();
        for (kind, step) in batch {
            let kind_stats = stats.kinds.entry(kind).or_default();
            match step {
                Step::Start => {
                    if started & bit(kind) != 0 {
                        counters.relists.fetch_add(1, Ordering::Relaxed);
                        kind_stats.relists += 1;
                    }
                    started |= bit(kind);
                    events.push(Event::ListStart(kind));
                }
                Step::Upsert { listed, object } => {
                    if listed {
                        kind_stats.listed += 1;
                    } else {
                        kind_stats.applied += 1;
                    }
                    events.push(Event::Upsert(object));
                }
                Step::Delete(o) => {
                    kind_stats.deleted += 1;
                    events.push(Event::Delete(o));
                }
                Step::Done => {
                    counters.listed.fetch_or(bit(kind), Ordering::Relaxed);
                    if kind_stats.lists > 0 {
                        relisted.push(kind);
                    }
                    kind_stats.lists += 1;
                    events.push(Event::ListDone(kind));
                }
                Step::Bad(e) => {
                    kind_stats.bad += 1;
                    if counters.bad.fetch_add(1, Ordering::Relaxed) < MAX_BAD_REPORTS {
                        tracing::error!("skipping a {kind}: {e}");
                    }
                }
                Step::Error(e) => {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    if is_gone(&e) {
                        // Routine after etcd compacted the version the watch resumed from: the watcher
                        // lists again. Said once per occurrence, which the backoff keeps rare.
                        kind_stats.expired += 1;
                        tracing::warn!("the watch of {kind}s expired (410 Gone): listing them again");
                    } else {
                        kind_stats.errors += 1;
                        tracing::error!("watching {kind}s: {e} (retrying)");
                    }
                }
            }
        }
        index.apply_all(events.into_iter().map(|e| (e, at)));
        for kind in relisted {
            match held(&index, kind) {
                Some(n) => tracing::info!("listed {kind}s again: {n} known"),
                None => tracing::info!("listed {kind}s again"),
            }
        }
        stats.synced = counters.listed.load(Ordering::Relaxed) == ALL_LISTED;
        stats.index = index.read().stats();
        if let Some(observer) = &observer {
            observer(&stats);
        }
        tx.send_modify(|n| *n += 1);
    }
}

/// The number of objects of `kind` the index holds (ReplicaSets and Jobs are counted together: none).
fn held(index: &SharedIndex, kind: ObjectKind) -> Option<usize> {
    let stats = index.read().stats();
    match kind {
        ObjectKind::Pod => Some(stats.pods),
        ObjectKind::Service => Some(stats.services),
        ObjectKind::EndpointSlice => Some(stats.endpoint_slices),
        ObjectKind::Node => Some(stats.nodes),
        ObjectKind::ReplicaSet | ObjectKind::Job => None,
    }
}

/// Whether the API server answered 410 Gone: the resourceVersion asked for is no longer there. It comes
/// as an ERROR event in a watch's stream, or as the status of the watch request itself.
fn is_gone(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::WatchError(status) => status.code == 410,
        watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status))
        | watcher::Error::InitialListFailed(kube::Error::Api(status)) => status.code == 410,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, reason: &str) -> kube::core::ErrorResponse {
        serde_json::from_value(serde_json::json!({
            "status": "Failure", "message": "too old resource version: 12 (238)", "reason": reason, "code": code
        }))
        .unwrap()
    }

    #[test]
    fn a_410_is_an_expired_watch_however_the_api_server_sends_it() {
        // As an ERROR event in the watch stream ...
        assert!(is_gone(&watcher::Error::WatchError(status(410, "Expired"))));
        // ... or as the status of the watch request itself.
        assert!(is_gone(&watcher::Error::WatchStartFailed(kube::Error::Api(
            status(410, "Gone")
        ))));
        assert!(!is_gone(&watcher::Error::WatchError(status(
            500,
            "InternalError"
        ))));
        assert!(!is_gone(&watcher::Error::InitialListFailed(kube::Error::Api(
            status(403, "Forbidden")
        ))));
        assert!(!is_gone(&watcher::Error::NoResourceVersion));
    }
}
