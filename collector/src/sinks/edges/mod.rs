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
//! Per record the batch only hashes pointers (the endpoints' `Arc`s) and small numbers; names are looked
//! up once per batch and edge, at [`EdgeBatch::flush`].

pub mod peers;

use std::net::IpAddr;
use std::sync::Arc;

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
    let (raw, counts) = RawEdge::of(flow, peers)?;
    let mut names = Names::default();
    Some((raw.resolve(peers, &mut names), counts))
}

/// One side of a flow before names are looked up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Peer {
    /// An owner, by the address of its `Arc`.
    Owned(usize),
    /// No owner.
    Unowned(Unowned),
}

/// What identifies an edge within a batch: pointers and numbers only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct RawKey {
    client: Peer,
    server: Peer,
    /// The Service's `Arc`, or 0.
    service: usize,
    proto: u8,
}

/// A batch's edge before names are looked up: the `Arc`s its key points to (which keeps them alive, so
/// no other object takes their address while the batch holds the key) and its sums.
#[derive(Debug)]
struct RawEdge {
    client: Option<Arc<K8sEndpoint>>,
    server: Option<Arc<K8sEndpoint>>,
    service: Option<Arc<K8sEndpoint>>,
    client_unowned: Unowned,
    server_unowned: Unowned,
    proto: u8,
    counts: EdgeCounts,
}

/// The sides of a flow as the key sees them.
struct Sides<'f> {
    client: (Option<&'f Arc<K8sEndpoint>>, IpAddr),
    server: (Option<&'f Arc<K8sEndpoint>>, IpAddr),
    service: Option<&'f Arc<K8sEndpoint>>,
    client_is_source: bool,
}

fn sides(flow: &EnrichedFlow) -> Sides<'_> {
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
    Sides {
        client,
        server,
        service,
        client_is_source,
    }
}

fn peer(side: (Option<&Arc<K8sEndpoint>>, IpAddr), peers: &Peers) -> (Peer, Unowned) {
    match side.0 {
        Some(k) => (Peer::Owned(Arc::as_ptr(k) as usize), Unowned::Unknown),
        None => {
            let u = peers.classify(side.1);
            (Peer::Unowned(u), u)
        }
    }
}

/// TCP flags: SYN.
const SYN: u16 = 0x02;

impl RawEdge {
    /// The key and counts of `flow` (no name looked up, no `Arc` cloned).
    fn key_of(flow: &EnrichedFlow, peers: &Peers) -> Option<(RawKey, Unowned, Unowned, EdgeCounts)> {
        if flow.duplicate {
            return None;
        }
        let r = &flow.record;
        let s = sides(flow);
        let (client, client_unowned) = peer(s.client, peers);
        let (server, server_unowned) = peer(s.server, peers);
        let reverse = r.reverse.unwrap_or_default();
        let (request, response) = if s.client_is_source {
            (r.forward, reverse)
        } else {
            (reverse, r.forward)
        };
        let initiator_flags = if s.client_is_source {
            r.tcp_flags
        } else {
            r.reverse_tcp_flags
        };
        let starts =
            r.proto != 6 || initiator_flags & SYN != 0 || (r.tcp_flags == 0 && r.reverse_tcp_flags == 0);
        let counts = EdgeCounts {
            connections: u64::from(starts),
            request_bytes: request.octets,
            response_bytes: response.octets,
            request_packets: request.packets,
            response_packets: response.packets,
        };
        let key = RawKey {
            client,
            server,
            service: s.service.map_or(0, |k| Arc::as_ptr(k) as usize),
            proto: r.proto,
        };
        Some((key, client_unowned, server_unowned, counts))
    }

    fn of(flow: &EnrichedFlow, peers: &Peers) -> Option<(RawEdge, EdgeCounts)> {
        let (key, client_unowned, server_unowned, counts) = Self::key_of(flow, peers)?;
        let s = sides(flow);
        Some((
            RawEdge {
                client: s.client.0.cloned(),
                server: s.server.0.cloned(),
                service: s.service.cloned(),
                client_unowned,
                server_unowned,
                proto: key.proto,
                counts,
            },
            counts,
        ))
    }

    fn resolve(&self, peers: &Peers, names: &mut Names) -> EdgeKey {
        EdgeKey {
            client: names.endpoint(self.client.as_deref(), self.client_unowned, peers),
            server: names.endpoint(self.server.as_deref(), self.server_unowned, peers),
            dst_service: self
                .service
                .as_ref()
                .and_then(|s| s.service_name.clone())
                .unwrap_or_else(|| names.empty.clone()),
            protocol: names.protocol(self.proto),
        }
    }
}

/// The label values the batch makes once and shares.
#[derive(Debug)]
struct Names {
    empty: Arc<str>,
    external: Arc<str>,
    unknown: Arc<str>,
    service: Arc<str>,
    node: Arc<str>,
    pod: Arc<str>,
    protocols: Vec<Option<Arc<str>>>,
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
            protocols: vec![None; 256],
        }
    }
}

impl Names {
    fn protocol(&mut self, proto: u8) -> Arc<str> {
        self.protocols[usize::from(proto)]
            .get_or_insert_with(|| protocol_name(proto).into())
            .clone()
    }

    fn endpoint(&self, k: Option<&K8sEndpoint>, unowned: Unowned, peers: &Peers) -> Endpoint {
        let Some(k) = k else {
            return match unowned {
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
            };
        };
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

/// The edges of one batch, summed per key.
#[derive(Debug, Default)]
pub struct EdgeBatch {
    peers: Peers,
    raw: HashMap<RawKey, RawEdge>,
    sums: std::collections::HashMap<EdgeKey, EdgeCounts>,
    out: Vec<(EdgeKey, EdgeCounts)>,
    names: Names,
}

impl EdgeBatch {
    /// An empty batch that places unowned addresses by `peers`.
    pub fn new(peers: Peers) -> Self {
        EdgeBatch {
            peers,
            ..EdgeBatch::default()
        }
    }

    /// Adds `flow` (nothing for a duplicate): a hash of pointers and numbers, the `Arc`s cloned only
    /// for the batch's first flow of an edge.
    pub fn add_flow(&mut self, flow: &EnrichedFlow) {
        let Some((key, client_unowned, server_unowned, counts)) = RawEdge::key_of(flow, &self.peers) else {
            return;
        };
        match self.raw.entry(key) {
            std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().counts.add(&counts),
            std::collections::hash_map::Entry::Vacant(e) => {
                let s = sides(flow);
                e.insert(RawEdge {
                    client: s.client.0.cloned(),
                    server: s.server.0.cloned(),
                    service: s.service.cloned(),
                    client_unowned,
                    server_unowned,
                    proto: key.proto,
                    counts,
                });
            }
        }
    }

    /// Adds `counts` to edge `key`.
    pub fn add(&mut self, key: EdgeKey, counts: &EdgeCounts) {
        self.sums.entry(key).or_default().add(counts);
    }

    /// Hands the batch's edges to every consumer and empties the batch. Consumers are called even when
    /// the batch is empty (once a second, from the enrich thread's tick), so they can expire what went
    /// quiet.
    pub fn flush(&mut self, now_ms: u64, consumers: &mut [Box<dyn EdgeConsumer>]) {
        for (_, raw) in self.raw.drain() {
            let key = raw.resolve(&self.peers, &mut self.names);
            self.sums.entry(key).or_default().add(&raw.counts);
        }
        self.out.clear();
        self.out.extend(self.sums.drain());
        for c in consumers.iter_mut() {
            c.consume(now_ms, &self.out);
        }
    }
}

#[cfg(test)]
mod tests;
