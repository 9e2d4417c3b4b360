//! Edges: who talks to whom, as the flow metrics and the node graph count it.
//!
//! The enrich thread adds each enriched, non-duplicate flow to an [`EdgeBatch`] (a local map: no lock per
//! record) and hands the batch's edges once per batch to every [`EdgeConsumer`] (the Prometheus counters,
//! the graph's windowed store).

use std::collections::HashMap;
use std::sync::Arc;

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

/// The edges of one batch, summed per key.
#[derive(Debug, Default)]
pub struct EdgeBatch {
    sums: HashMap<EdgeKey, EdgeCounts>,
    out: Vec<(EdgeKey, EdgeCounts)>,
}

impl EdgeBatch {
    /// Adds `counts` to edge `key`.
    pub fn add(&mut self, key: EdgeKey, counts: &EdgeCounts) {
        self.sums.entry(key).or_default().add(counts);
    }

    /// Hands the batch's edges to every consumer and empties the batch.
    pub fn flush(&mut self, now_ms: u64, consumers: &mut [Box<dyn EdgeConsumer>]) {
        if self.sums.is_empty() {
            return;
        }
        self.out.clear();
        self.out.extend(self.sums.drain());
        for c in consumers.iter_mut() {
            c.consume(now_ms, &self.out);
        }
    }
}
