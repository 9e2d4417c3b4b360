//! The attribution index: which Kubernetes object held an address at a given time.
//!
//! Pure: providers feed it [`Event`]s with the time they saw them, lookups name the time they ask
//! about, and nothing in here reads a clock or does I/O.
//!
//! Per address the index keeps a few spans `[from, to)`, each with the object that held the address
//! and the [`K8sEndpoint`] to answer with (built once per object version and shared by every answer):
//! * a pod holds its IPs from when it got them (see [`PodInfo::start_ms`]) until it finished (phase
//!   Succeeded or Failed: its last container's finishedAt) or was deleted (the delete event's time,
//!   or its deletionTimestamp if earlier). A completed pod that is still listed keeps its past span but
//!   never holds its address after it finished, so the pod that holds the address now is the answer.
//! * a Service holds its ClusterIPs (all families) from creation until deletion;
//! * a node holds its InternalIP and ExternalIP addresses from creation until deletion.
//! * a hostNetwork pod's address is its node's: lookups by address answer with the node (a node
//!   inferred from the pod when the node object is not known). Only a lookup by address *and* port
//!   that matches a port the pod declares answers with the pod, as [`EndpointKind::HostNetworkPod`],
//!   since a node address carries many pods' traffic and a port is the only thing that tells them apart.
//!
//! When spans overlap, a pod IP or ClusterIP wins over a node address, and among equals the span that
//! began last wins: an address goes to a new pod only after the previous holder released it.
//!
//! Workloads come from owner references: Pod -> ReplicaSet -> Deployment, Pod -> Job -> CronJob,
//! Pod -> StatefulSet or DaemonSet (or any other controller) directly; a pod without a controller, or a
//! static pod (owned by its Node), is its own workload of kind `Pod`. A pod's Service comes from the
//! EndpointSlices that list it (the alphabetically first Service when several select it).
//!
//! Memory is bounded by the live objects plus the spans that ended within the retention window:
//! [`Index::prune`] drops older spans, and runs by itself as events arrive.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use super::objects::{Meta, NodeInfo, Object, ObjectKind, OwnerInfo, PodInfo, ServiceInfo, SliceInfo};
use super::provider::{Answer, Query};
use super::spans::{Holder, OPEN, Rank, Timeline};
use crate::model::{EndpointKind, K8sEndpoint};

/// How the index bounds itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexSettings {
    /// How long spans are kept after they ended, milliseconds; `None` keeps them all (a static
    /// inventory, whose size is that of its files).
    pub retention_ms: Option<u64>,
    /// Labels copied into an endpoint, at most (the first by key).
    pub max_labels: usize,
}

impl Default for IndexSettings {
    /// One hour of history (flows are attributed at their start, and exporters report long flows late),
    /// sixteen labels.
    fn default() -> Self {
        IndexSettings {
            retention_ms: Some(3_600_000),
            max_labels: 16,
        }
    }
}

/// What a provider saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// An object was listed, added or changed.
    Upsert(Object),
    /// An object was deleted; this is its last state.
    Delete(Object),
    /// A full list of one kind begins: objects of that kind not upserted again before the matching
    /// [`Event::ListDone`] are gone (they were deleted while the watch was not looking).
    ListStart(ObjectKind),
    /// The full list of one kind is complete.
    ListDone(ObjectKind),
}

/// Sizes of the index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndexStats {
    /// Pods known.
    pub pods: usize,
    /// Services known.
    pub services: usize,
    /// Nodes known.
    pub nodes: usize,
    /// EndpointSlices known.
    pub endpoint_slices: usize,
    /// ReplicaSets and Jobs known.
    pub owners: usize,
    /// Address spans held, past ones included.
    pub address_spans: usize,
    /// Address-and-port spans of hostNetwork pods.
    pub port_spans: usize,
}

/// Shared strings: namespaces, names and labels repeat across objects and versions.
#[derive(Default)]
struct Names {
    set: HashSet<Arc<str>>,
}

impl Names {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.set.get(s) {
            return Arc::clone(a);
        }
        let a: Arc<str> = Arc::from(s);
        self.set.insert(Arc::clone(&a));
        a
    }

    fn labels(&mut self, labels: &[(String, String)], max: usize) -> Arc<[(Arc<str>, Arc<str>)]> {
        labels
            .iter()
            .take(max)
            .map(|(k, v)| (self.get(k), self.get(v)))
            .collect()
    }

    /// Forgets strings nothing else holds.
    fn prune(&mut self) {
        self.set.retain(|a| Arc::strong_count(a) > 1);
    }
}

struct PodRec {
    info: PodInfo,
    endpoint: Arc<K8sEndpoint>,
}

struct AddressRec<I> {
    info: I,
    endpoint: Arc<K8sEndpoint>,
}

#[derive(Clone, PartialEq, Eq)]
struct SliceRec {
    namespace: Arc<str>,
    service: Option<Arc<str>>,
    pods: Vec<Arc<str>>,
}

#[derive(PartialEq, Eq)]
struct OwnerRec {
    kind: ObjectKind,
    /// The Deployment or CronJob above, as (kind, name).
    controller: Option<(Arc<str>, Arc<str>)>,
}

type PodName = (Arc<str>, Arc<str>);

/// The time-aware attribution index.
pub struct Index {
    settings: IndexSettings,
    names: Names,
    addresses: Timeline<IpAddr>,
    ports: Timeline<(IpAddr, u8, u16)>,
    pods: HashMap<Arc<str>, PodRec>,
    pods_by_name: HashMap<PodName, Vec<Arc<str>>>,
    pods_by_owner: HashMap<Arc<str>, Vec<Arc<str>>>,
    services: HashMap<Arc<str>, AddressRec<ServiceInfo>>,
    nodes: HashMap<Arc<str>, AddressRec<NodeInfo>>,
    slices: HashMap<Arc<str>, SliceRec>,
    pod_services: HashMap<PodName, Vec<Arc<str>>>,
    owners: HashMap<Arc<str>, OwnerRec>,
    listing: HashMap<ObjectKind, HashSet<Arc<str>>>,
    last_prune: u64,
}

impl Default for Index {
    fn default() -> Self {
        Index::new(IndexSettings::default())
    }
}

/// IPv4-mapped IPv6 addresses are the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// When a deleted object stopped holding its addresses: when its deletion was seen, or the end of
/// its graceful deletion if that came first.
fn deletion_end(meta: &Meta, seen: u64) -> u64 {
    meta.deleted_ms.map_or(seen, |d| d.min(seen))
}

impl Index {
    /// An empty index.
    pub fn new(settings: IndexSettings) -> Self {
        Index {
            settings,
            names: Names::default(),
            addresses: Timeline::new(),
            ports: Timeline::new(),
            pods: HashMap::new(),
            pods_by_name: HashMap::new(),
            pods_by_owner: HashMap::new(),
            services: HashMap::new(),
            nodes: HashMap::new(),
            slices: HashMap::new(),
            pod_services: HashMap::new(),
            owners: HashMap::new(),
            listing: HashMap::new(),
            last_prune: 0,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &IndexSettings {
        &self.settings
    }

    /// The object that held `ip` at `at_ms` (Unix milliseconds).
    pub fn lookup(&self, ip: IpAddr, at_ms: u64) -> Option<Arc<K8sEndpoint>> {
        self.addresses.get(&canonical(ip), at_ms).cloned()
    }

    /// Like [`Index::lookup`], but a port a hostNetwork pod declares on that address (IP protocol
    /// number and port) names that pod rather than its node.
    pub fn lookup_port(&self, ip: IpAddr, proto: u8, port: u16, at_ms: u64) -> Option<Arc<K8sEndpoint>> {
        let ip = canonical(ip);
        let by_address = self.addresses.get(&ip, at_ms);
        // Only a node's address is shared by hostNetwork pods: a pod IP or ClusterIP answers alone,
        // with no second lookup.
        match by_address {
            Some(e) if e.kind != EndpointKind::Node => Some(e),
            _ => self.ports.get(&(ip, proto, port), at_ms).or(by_address),
        }
        .cloned()
    }

    /// Answers a [`Query`]: by address and port when it names one.
    pub fn resolve(&self, query: &Query) -> Answer {
        match query.port {
            Some((proto, port)) => self.lookup_port(query.ip, proto, port, query.at_ms),
            None => self.lookup(query.ip, query.at_ms),
        }
    }

    /// Sizes.
    pub fn stats(&self) -> IndexStats {
        IndexStats {
            pods: self.pods.len(),
            services: self.services.len(),
            nodes: self.nodes.len(),
            endpoint_slices: self.slices.len(),
            owners: self.owners.len(),
            address_spans: self.addresses.len(),
            port_spans: self.ports.len(),
        }
    }

    /// Applies what a provider saw at `at_ms`.
    pub fn apply(&mut self, event: Event, at_ms: u64) {
        match event {
            Event::Upsert(object) => {
                let uid = self.names.get(&object.meta().uid);
                if let Some(seen) = self.listing.get_mut(&object.kind()) {
                    seen.insert(Arc::clone(&uid));
                }
                match object {
                    Object::Pod(p) => self.upsert_pod(uid, p, at_ms),
                    Object::Service(s) => self.upsert_service(uid, s, at_ms),
                    Object::Node(n) => self.upsert_node(uid, n, at_ms),
                    Object::EndpointSlice(s) => self.upsert_slice(uid, s),
                    Object::Owner(o) => self.upsert_owner(uid, o),
                }
            }
            Event::Delete(object) => {
                let uid = self.names.get(&object.meta().uid);
                self.delete(object.kind(), &uid, Some(object), at_ms);
            }
            Event::ListStart(kind) => {
                self.listing.insert(kind, HashSet::new());
            }
            Event::ListDone(kind) => self.finish_list(kind, at_ms),
        }
        if let Some(retention) = self.settings.retention_ms {
            // Often enough that little outlives the window, rarely enough to cost nothing per event.
            if at_ms >= self.last_prune.saturating_add((retention / 8).max(1000)) {
                self.prune(at_ms);
            }
        }
    }

    /// Drops spans that ended more than the retention window before `now_ms`, and strings nothing
    /// holds any more.
    pub fn prune(&mut self, now_ms: u64) {
        self.last_prune = now_ms;
        let Some(retention) = self.settings.retention_ms else {
            return;
        };
        let before = now_ms.saturating_sub(retention);
        self.addresses.prune(before);
        self.ports.prune(before);
        self.names.prune();
    }

    fn finish_list(&mut self, kind: ObjectKind, at: u64) {
        let Some(seen) = self.listing.remove(&kind) else {
            return;
        };
        let known: Vec<Arc<str>> = match kind {
            ObjectKind::Pod => self.pods.keys().cloned().collect(),
            ObjectKind::Service => self.services.keys().cloned().collect(),
            ObjectKind::Node => self.nodes.keys().cloned().collect(),
            ObjectKind::EndpointSlice => self.slices.keys().cloned().collect(),
            ObjectKind::ReplicaSet | ObjectKind::Job => self
                .owners
                .iter()
                .filter(|(_, o)| o.kind == kind)
                .map(|(k, _)| Arc::clone(k))
                .collect(),
        };
        for uid in known.iter().filter(|u| !seen.contains(*u)) {
            self.delete(kind, uid, None, at);
        }
    }

    fn delete(&mut self, kind: ObjectKind, uid: &Arc<str>, last: Option<Object>, at: u64) {
        match kind {
            ObjectKind::Pod => {
                let last = match last {
                    Some(Object::Pod(p)) => Some(p),
                    _ => None,
                };
                self.delete_pod(uid, last, at);
            }
            ObjectKind::Service => {
                let Some(rec) = self.services.remove(uid) else {
                    return;
                };
                let end = deletion_end(&rec.info.meta, at);
                let holder = Holder::Service(Arc::clone(uid));
                for ip in &rec.info.cluster_ips {
                    self.addresses.close(*ip, &holder, end);
                }
            }
            ObjectKind::Node => {
                let Some(rec) = self.nodes.remove(uid) else { return };
                let end = deletion_end(&rec.info.meta, at);
                let holder = Holder::Node(Arc::clone(uid));
                for ip in &rec.info.ips {
                    self.addresses.close(*ip, &holder, end);
                }
            }
            ObjectKind::EndpointSlice => {
                if let Some(old) = self.slices.remove(uid) {
                    let mut touched = Vec::new();
                    self.unlink_slice(&old, &mut touched);
                    self.refresh_pods_named(touched);
                }
            }
            ObjectKind::ReplicaSet | ObjectKind::Job => {
                // Pods keep the workload they were attributed to: an owner deleted before its pods
                // (orphaning, or cascading deletion in progress) does not make them anonymous.
                self.owners.remove(uid);
            }
        }
    }

    fn node_endpoint(&mut self, name: &str, labels: &[(String, String)]) -> K8sEndpoint {
        K8sEndpoint {
            kind: EndpointKind::Node,
            namespace: self.names.get(""),
            pod_name: None,
            pod_uid: None,
            workload_kind: None,
            workload_name: None,
            service_name: None,
            node_name: Some(self.names.get(name)),
            labels: self.names.labels(labels, self.settings.max_labels),
            encoded: Default::default(),
            edge: Default::default(),
        }
    }

    /// Moves a Service's or node's spans to its current addresses.
    #[allow(clippy::too_many_arguments)] // one call per kind; a struct would only rename them
    fn hold_addresses(
        &mut self,
        holder: &Holder,
        old: &[IpAddr],
        new: &[IpAddr],
        span: (u64, u64),
        rank: Rank,
        endpoint: &Arc<K8sEndpoint>,
        at: u64,
    ) {
        for ip in old.iter().filter(|ip| !new.contains(ip)) {
            self.addresses.close(*ip, holder, at);
        }
        for ip in new {
            self.addresses.hold(*ip, holder, span, rank, endpoint);
        }
    }

    fn upsert_service(&mut self, uid: Arc<str>, info: ServiceInfo, at: u64) {
        let prev = self.services.remove(&uid);
        if let Some(prev) = prev.as_ref().filter(|p| p.info == info) {
            let endpoint = Arc::clone(&prev.endpoint);
            self.services.insert(uid, AddressRec { info, endpoint });
            return;
        }
        let endpoint = K8sEndpoint {
            kind: EndpointKind::Service,
            namespace: self.names.get(&info.meta.namespace),
            pod_name: None,
            pod_uid: None,
            workload_kind: None,
            workload_name: None,
            service_name: Some(self.names.get(&info.meta.name)),
            node_name: None,
            labels: self.names.labels(&info.meta.labels, self.settings.max_labels),
            encoded: Default::default(),
            edge: Default::default(),
        };
        let endpoint = share(endpoint, prev.as_ref().map(|p| &p.endpoint));
        let old = prev.map(|p| p.info.cluster_ips).unwrap_or_default();
        let span = (info.meta.created_ms.unwrap_or(0), OPEN);
        let holder = Holder::Service(Arc::clone(&uid));
        self.hold_addresses(
            &holder,
            &old,
            &info.cluster_ips,
            span,
            Rank::Exclusive,
            &endpoint,
            at,
        );
        self.services.insert(uid, AddressRec { info, endpoint });
    }

    fn upsert_node(&mut self, uid: Arc<str>, info: NodeInfo, at: u64) {
        let prev = self.nodes.remove(&uid);
        if let Some(prev) = prev.as_ref().filter(|p| p.info == info) {
            let endpoint = Arc::clone(&prev.endpoint);
            self.nodes.insert(uid, AddressRec { info, endpoint });
            return;
        }
        let endpoint = self.node_endpoint(&info.meta.name, &info.meta.labels);
        let endpoint = share(endpoint, prev.as_ref().map(|p| &p.endpoint));
        let old = prev.map(|p| p.info.ips).unwrap_or_default();
        let span = (info.meta.created_ms.unwrap_or(0), OPEN);
        let holder = Holder::Node(Arc::clone(&uid));
        self.hold_addresses(&holder, &old, &info.ips, span, Rank::Node, &endpoint, at);
        self.nodes.insert(uid, AddressRec { info, endpoint });
    }

    fn upsert_slice(&mut self, uid: Arc<str>, info: SliceInfo) {
        let rec = SliceRec {
            namespace: self.names.get(&info.meta.namespace),
            service: info.service.as_deref().map(|s| self.names.get(s)),
            pods: info.pods.iter().map(|p| self.names.get(p)).collect(),
        };
        let old = self.slices.insert(uid, rec.clone());
        if old.as_ref() == Some(&rec) {
            return;
        }
        let mut touched = Vec::new();
        if let Some(old) = old {
            self.unlink_slice(&old, &mut touched);
        }
        if let Some(service) = &rec.service {
            for pod in &rec.pods {
                let name = (Arc::clone(&rec.namespace), Arc::clone(pod));
                self.pod_services
                    .entry(name.clone())
                    .or_default()
                    .push(Arc::clone(service));
                touched.push(name);
            }
        }
        self.refresh_pods_named(touched);
    }

    fn unlink_slice(&mut self, old: &SliceRec, touched: &mut Vec<PodName>) {
        let Some(service) = &old.service else { return };
        for pod in &old.pods {
            let name = (Arc::clone(&old.namespace), Arc::clone(pod));
            remove_from(&mut self.pod_services, &name, service);
            touched.push(name);
        }
    }

    fn upsert_owner(&mut self, uid: Arc<str>, info: OwnerInfo) {
        let controller = info
            .meta
            .controller
            .as_ref()
            .map(|c| (self.names.get(&c.kind), self.names.get(&c.name)));
        let rec = OwnerRec {
            kind: info.kind,
            controller,
        };
        if self.owners.get(&uid) == Some(&rec) {
            return;
        }
        self.owners.insert(Arc::clone(&uid), rec);
        let pods = self.pods_by_owner.get(&uid).cloned().unwrap_or_default();
        for pod in &pods {
            self.refresh_pod(pod);
        }
    }
}

/// The previous version of an endpoint when it equals the new one, so answers keep sharing it.
fn share(endpoint: K8sEndpoint, prev: Option<&Arc<K8sEndpoint>>) -> Arc<K8sEndpoint> {
    match prev {
        Some(p) if **p == endpoint => Arc::clone(p),
        _ => Arc::new(endpoint),
    }
}

/// Removes one `value` from the list under `key`, and the key with its last value.
fn remove_from<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Vec<Arc<str>>>, key: &K, value: &Arc<str>) {
    if let Some(list) = map.get_mut(key) {
        if let Some(i) = list.iter().position(|v| v == value) {
            list.swap_remove(i);
        }
        if list.is_empty() {
            map.remove(key);
        }
    }
}

mod pods;
#[cfg(test)]
mod tests;
