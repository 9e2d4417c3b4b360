//! Edges: who talks to whom, as the flow metrics and the node graph count it.
//!
//! The enrich thread adds each enriched, non-duplicate flow to an [`EdgeBatch`] (a local map: no lock per
//! record) and hands the batch's edges once per batch to every [`EdgeConsumer`] (the Prometheus counters,
//! the graph's windowed store).
//!
//! What a flow counts ([`edge_of`], pure):
//! - client and server from the initiator: biflowDirection 2 makes the destination the client, anything
//!   else the source (so an exporter's uniflow reply record counts as an edge of its own, backwards);
//! - an endpoint is a workload ([`Endpoint`]): a pod's workload (a bare pod is its own, kind `Pod`), a
//!   node (namespace empty, kind `Node`), a Service whose backend is unknown (kind `Service`); an address
//!   without an owner is `external` (or its `--external-cidr` name) outside the cluster's ranges and
//!   `unknown` inside them ([`peers`]);
//! - a Service connection with a known backend counts under the backend's workload, `dst_service` the
//!   Service's name; any other flow has `dst_service` empty;
//! - request bytes and packets go client to server, response back;
//! - connections: one per record that starts one. For TCP, a record whose initiator sent a SYN (a record
//!   of an active timeout's continuation sent none), or a record with no TCP flags at all (exporters that
//!   send none); for other protocols, every record.
//!
//! Per record the batch only reads small numbers and hashes them: each endpoint keeps the number of
//! its workload (and a Service the number of its name) in its
//! [`EdgeSlots`](crate::model::EdgeSlots), given the first time the batch sees it, and the batch sums
//! per (client, server, Service, protocol) numbers. Names are written out once per edge and flush
//! ([`EdgeBatch::flush`]). The batch holds no endpoint, so what the index drops is freed.

pub mod peers;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use foldhash::HashMap;

use crate::model::{EndpointKind, EnrichedFlow, K8sEndpoint};
use peers::{Peers, Unowned, protocol_name};

/// A flow endpoint as the metrics label it: a workload in a namespace, `external` outside the cluster
/// (or the name of an `--external-cidr`), `unknown` for an in-cluster address with no owner at the
/// flow's time.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// Namespace (`external`, `unknown`).
    pub namespace: Arc<str>,
    /// Workload name.
    pub workload: Arc<str>,
    /// Workload kind (`Deployment`, ..., `external`, `unknown`).
    pub kind: Arc<str>,
}

/// What identifies an edge: client -> server through a Service, over a protocol.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EdgeKey {
    /// The initiator.
    pub client: Endpoint,
    /// The server (a Service's backend when known).
    pub server: Endpoint,
    /// Service name, or empty.
    pub dst_service: Arc<str>,
    /// Protocol name (`tcp`, `udp`, `icmp`, ..., else the number).
    pub protocol: Arc<str>,
}

/// What one batch adds to an edge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EdgeCounts {
    /// Connections.
    pub connections: u64,
    /// Client to server octets.
    pub request_bytes: u64,
    /// Server to client octets.
    pub response_bytes: u64,
    /// Client to server packets.
    pub request_packets: u64,
    /// Server to client packets.
    pub response_packets: u64,
}

impl EdgeCounts {
    /// Adds `o` to these counts.
    pub fn add(&mut self, o: &EdgeCounts) {
        self.connections += o.connections;
        self.request_bytes += o.request_bytes;
        self.response_bytes += o.response_bytes;
        self.request_packets += o.request_packets;
        self.response_packets += o.response_packets;
    }
}

/// Something that takes a batch's edges: called once per batch by the enrich thread.
pub trait EdgeConsumer: Send {
    /// Takes the edges of one batch; `now_ms` is the collector's clock (Unix milliseconds).
    fn consume(&mut self, now_ms: u64, edges: &[(EdgeKey, EdgeCounts)]);
}

/// The edge one flow adds to, and what it adds; `None` for a duplicate (counted by its first observer).
pub fn edge_of(flow: &EnrichedFlow, peers: &Peers) -> Option<(EdgeKey, EdgeCounts)> {
    let (s, counts) = measure(flow)?;
    let names = Names::default();
    let side = |(k, ip): (Option<&Arc<K8sEndpoint>>, IpAddr)| match k {
        Some(k) => names.owned(k),
        None => names.unowned(peers.classify(ip), peers),
    };
    let key = EdgeKey {
        client: side(s.client),
        server: side(s.server),
        dst_service: service_name(s.service).unwrap_or_else(|| names.empty.clone()),
        protocol: protocol_name(flow.record.proto).into(),
    };
    Some((key, counts))
}

fn service_name(service: Option<&Arc<K8sEndpoint>>) -> Option<Arc<str>> {
    service.and_then(|s| s.service_name.clone())
}

/// The sides of a flow as an edge sees them: an owner, or the address of an endpoint without one.
struct Sides<'f> {
    client: (Option<&'f Arc<K8sEndpoint>>, IpAddr),
    server: (Option<&'f Arc<K8sEndpoint>>, IpAddr),
    service: Option<&'f Arc<K8sEndpoint>>,
}

/// TCP flags: SYN.
const SYN: u16 = 0x02;

/// The sides and counts of `flow`, `None` for a duplicate.
fn measure(flow: &EnrichedFlow) -> Option<(Sides<'_>, EdgeCounts)> {
    if flow.duplicate {
        return None;
    }
    let r = &flow.record;
    let service = flow
        .destination
        .as_ref()
        .filter(|d| d.kind == EndpointKind::Service);
    // The destination side as served: a Service's backend stands in for it when known.
    let dst = match (service, flow.backend.as_ref()) {
        (Some(_), Some(b)) => (Some(b), flow.backend_addr.map_or(r.dst, |(ip, _)| ip)),
        _ => (flow.destination.as_ref(), r.dst),
    };
    let src = (flow.source.as_ref(), r.src);
    let client_is_source = r.biflow_direction != Some(2);
    let (client, server) = if client_is_source { (src, dst) } else { (dst, src) };
    let reverse = r.reverse.unwrap_or_default();
    let (request, response, initiator_flags) = if client_is_source {
        (r.forward, reverse, r.tcp_flags)
    } else {
        (reverse, r.forward, r.reverse_tcp_flags)
    };
    let starts = r.proto != 6 || initiator_flags & SYN != 0 || (r.tcp_flags == 0 && r.reverse_tcp_flags == 0);
    let counts = EdgeCounts {
        connections: u64::from(starts),
        request_bytes: request.octets,
        response_bytes: response.octets,
        request_packets: request.packets,
        response_packets: response.packets,
    };
    Some((
        Sides {
            client,
            server,
            service,
        },
        counts,
    ))
}

/// The label values made once and shared.
#[derive(Debug)]
struct Names {
    empty: Arc<str>,
    external: Arc<str>,
    unknown: Arc<str>,
    service: Arc<str>,
    node: Arc<str>,
    pod: Arc<str>,
}

impl Default for Names {
    fn default() -> Self {
        Names {
            empty: "".into(),
            external: "external".into(),
            unknown: "unknown".into(),
            service: "Service".into(),
            node: "Node".into(),
            pod: "Pod".into(),
        }
    }
}

impl Names {
    fn unowned(&self, u: Unowned, peers: &Peers) -> Endpoint {
        match u {
            Unowned::Unknown => Endpoint {
                namespace: self.unknown.clone(),
                workload: self.unknown.clone(),
                kind: self.unknown.clone(),
            },
            Unowned::External(i) => Endpoint {
                namespace: self.external.clone(),
                workload: peers
                    .external_name(i)
                    .cloned()
                    .unwrap_or_else(|| self.external.clone()),
                kind: self.external.clone(),
            },
        }
    }

    fn owned(&self, k: &K8sEndpoint) -> Endpoint {
        let or_unknown = |s: Option<&Arc<str>>| s.cloned().unwrap_or_else(|| self.unknown.clone());
        match k.kind {
            EndpointKind::Service => Endpoint {
                namespace: k.namespace.clone(),
                workload: or_unknown(k.service_name.as_ref()),
                kind: self.service.clone(),
            },
            EndpointKind::Node => Endpoint {
                namespace: self.empty.clone(),
                workload: or_unknown(k.node_name.as_ref()),
                kind: self.node.clone(),
            },
            EndpointKind::Pod | EndpointKind::HostNetworkPod => Endpoint {
                namespace: k.namespace.clone(),
                workload: or_unknown(k.workload_name.as_ref().or(k.pod_name.as_ref())),
                kind: k.workload_kind.clone().unwrap_or_else(|| self.pod.clone()),
            },
        }
    }
}

/// Numbered names at most before the tables start again (right after a flush, so no sum refers to a
/// number that changes meaning): names of workloads that come and go (a CronJob's Jobs) are numbered
/// for good until then.
const MAX_NUMBERED: usize = 1 << 16;

/// How often the batch hands its sums to the consumers at most: a Prometheus scrape or a graph window
/// is seconds long, and every flush costs a lookup by names per edge, so record batches a few
/// milliseconds apart are summed together.
pub const FLUSH_EVERY_MS: u64 = 1_000;

/// Flows numbered before their counts are added to the sums at the latest ([`EdgeBatch::fold`]).
const MAX_PENDING: usize = 1024;

/// (client, server, Service, protocol) as numbers of the batch's tables.
type IdKey = (u32, u32, u32, u8);

/// Generations of every batch's tables: each reset takes the next, so a number an endpoint keeps
/// ([`EdgeSlots`](crate::model::EdgeSlots)) from another batch or from before a reset is never taken
/// for one of these tables.
static GENERATIONS: AtomicU64 = AtomicU64::new(0);

/// The edges of one batch (of record batches, up to [`FLUSH_EVERY_MS`] long), summed per key.
#[derive(Debug)]
pub struct EdgeBatch {
    peers: Peers,
    names: Names,
    /// Workloads (and unowned endpoints) by number; the first `1 + peers.external.len() + 1` are
    /// unknown, plain external and each named external range.
    endpoints: Vec<Endpoint>,
    numbers: HashMap<Endpoint, u32>,
    /// Service names by number; 0 is the empty name.
    services: Vec<Arc<str>>,
    service_numbers: HashMap<Arc<str>, u32>,
    /// This batch's tables' generation, shifted into the high half of a slot.
    generation: u64,
    protocols: Vec<Option<Arc<str>>>,
    sums: HashMap<IdKey, EdgeCounts>,
    /// Flows numbered but not yet added to `sums` (see [`EdgeBatch::fold`]).
    pending: Vec<(IdKey, EdgeCounts)>,
    out: Vec<(EdgeKey, EdgeCounts)>,
    last_flush_ms: u64,
}

impl Default for EdgeBatch {
    fn default() -> Self {
        EdgeBatch::new(Peers::default())
    }
}

impl EdgeBatch {
    /// An empty batch that places unowned addresses by `peers`.
    pub fn new(peers: Peers) -> Self {
        let mut b = EdgeBatch {
            peers,
            names: Names::default(),
            endpoints: Vec::new(),
            numbers: HashMap::default(),
            services: Vec::new(),
            service_numbers: HashMap::default(),
            generation: 0,
            protocols: vec![None; 256],
            sums: HashMap::default(),
            pending: Vec::with_capacity(MAX_PENDING),
            out: Vec::new(),
            last_flush_ms: 0,
        };
        b.reset_tables();
        b
    }

    fn reset_tables(&mut self) {
        self.generation = (GENERATIONS.fetch_add(1, Ordering::Relaxed) + 1) << 32;
        self.numbers.clear();
        self.endpoints.clear();
        let named = self.peers.external.len();
        self.endpoints
            .push(self.names.unowned(Unowned::Unknown, &self.peers));
        for i in 0..=named {
            let i = u16::try_from(i).unwrap_or(u16::MAX);
            self.endpoints
                .push(self.names.unowned(Unowned::External(i), &self.peers));
        }
        self.services.clear();
        self.service_numbers.clear();
        self.services.push(self.names.empty.clone());
    }

    /// The number `slot` holds for these tables, if it holds one.
    fn cached(&self, slot: &AtomicU64) -> Option<u32> {
        let v = slot.load(Ordering::Relaxed);
        (v & !u64::from(u32::MAX) == self.generation).then_some(v as u32)
    }

    fn number(&mut self, side: (Option<&Arc<K8sEndpoint>>, IpAddr)) -> u32 {
        let Some(k) = side.0 else {
            return match self.peers.classify(side.1) {
                Unowned::Unknown => 0,
                Unowned::External(i) => 1 + u32::from(i),
            };
        };
        if let Some(n) = self.cached(&k.edge.endpoint) {
            return n;
        }
        let e = self.names.owned(k);
        let next = u32::try_from(self.endpoints.len()).unwrap_or(u32::MAX);
        let n = *self.numbers.entry(e.clone()).or_insert(next);
        if n == next {
            self.endpoints.push(e);
        }
        k.edge
            .endpoint
            .store(self.generation | u64::from(n), Ordering::Relaxed);
        n
    }

    fn service_number(&mut self, service: Option<&Arc<K8sEndpoint>>) -> u32 {
        let Some(s) = service else { return 0 };
        if let Some(n) = self.cached(&s.edge.service) {
            return n;
        }
        let name = service_name(Some(s)).unwrap_or_else(|| self.names.empty.clone());
        let next = u32::try_from(self.services.len()).unwrap_or(u32::MAX);
        let n = *self.service_numbers.entry(name.clone()).or_insert(next);
        if n == next {
            self.services.push(name);
        }
        s.edge
            .service
            .store(self.generation | u64::from(n), Ordering::Relaxed);
        n
    }

    /// Adds `flow` (nothing for a duplicate).
    pub fn add_flow(&mut self, flow: &EnrichedFlow) {
        let Some((s, counts)) = measure(flow) else {
            return;
        };
        let key = (
            self.number(s.client),
            self.number(s.server),
            self.service_number(s.service),
            flow.record.proto,
        );
        self.pending.push((key, counts));
        if self.pending.len() >= MAX_PENDING {
            self.fold();
        }
    }

    /// Adds the pending flows' counts to the sums. Done for many flows at a time, in a loop that does
    /// nothing else, so the CPU looks up many of them at once: per flow, between encoding documents,
    /// each lookup of the sums (some thousands of edges, not all in cache) waited alone and cost more
    /// than numbering the flow's endpoints.
    fn fold(&mut self) {
        for (key, counts) in self.pending.drain(..) {
            self.sums.entry(key).or_default().add(&counts);
        }
    }

    /// At the end of a record batch: hands the sums to the consumers if [`FLUSH_EVERY_MS`] has passed
    /// since the last time (the enrich thread's once-a-second tick calls it too, so consumers see time
    /// pass when no flows come).
    pub fn flush_due(&mut self, now_ms: u64, consumers: &mut [Box<dyn EdgeConsumer>]) {
        if now_ms.saturating_sub(self.last_flush_ms) >= FLUSH_EVERY_MS {
            self.flush(now_ms, consumers);
        }
    }

    /// Hands the batch's edges to every consumer and empties the batch. Consumers are called even when
    /// the batch is empty, so they can expire what went quiet.
    pub fn flush(&mut self, now_ms: u64, consumers: &mut [Box<dyn EdgeConsumer>]) {
        self.last_flush_ms = now_ms;
        self.fold();
        self.out.clear();
        // Numbers stand for distinct names (endpoints and Services are numbered by name, protocols by
        // number), so each summed key is an edge of its own: no second map by names.
        for ((client, server, service, proto), counts) in self.sums.drain() {
            let protocol = self.protocols[usize::from(proto)]
                .get_or_insert_with(|| protocol_name(proto).into())
                .clone();
            let (Some(client), Some(server), Some(service)) = (
                self.endpoints.get(client as usize),
                self.endpoints.get(server as usize),
                self.services.get(service as usize),
            ) else {
                continue;
            };
            let key = EdgeKey {
                client: client.clone(),
                server: server.clone(),
                dst_service: service.clone(),
                protocol,
            };
            self.out.push((key, counts));
        }
        for c in consumers.iter_mut() {
            c.consume(now_ms, &self.out);
        }
        if self.endpoints.len() + self.services.len() > MAX_NUMBERED {
            self.reset_tables();
        }
    }
}

#[cfg(test)]
mod tests;
