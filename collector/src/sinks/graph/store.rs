//! The graph's windowed store: per client -> server pair, the traffic of the last hour in time buckets,
//! in bounded memory. Pure: the caller passes the time (Unix milliseconds) to every call.
//!
//! Each edge holds two rings of buckets: 30 buckets of 10 seconds (the last 5 minutes, for the `1m` and
//! `5m` windows) and 60 buckets of one minute (the last hour, for `15m` and `1h`). A window adds up the
//! bucket `now` falls in and the ones before it, so it covers between one bucket less than its length
//! and its length; rates divide by the window's nominal length. Traffic is put in the bucket of the
//! time it reached the store (the batch's flush), not of the flow's start: a record is exported when its
//! flow ends, and the graph shows what arrived in the window.
//!
//! An edge costs 2.4 KiB of resident memory, measured with every bucket written
//! (`cargo run --release -p podflow-collector --example graph_memory`: 2,444 bytes per edge at 20,000
//! edges, 2,409 at 100,000), so the default maximum of 20,000 edges is 47 MiB.
//!
//! At most `max_edges` edges are held; an edge first seen while the store is full is counted in
//! [`GraphStore::dropped_edges`] and not kept. Edges with no traffic in the last hour are evicted when
//! the first batch of a new minute arrives (an edge can only go stale when the minute changes).

use foldhash::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use smallvec::SmallVec;

use super::query::Window;
use crate::sinks::edges::{EdgeConsumer, EdgeCounts, EdgeKey, Endpoint};

/// Width of the fine buckets, in milliseconds.
pub const FINE_MS: u64 = 10_000;
/// Fine buckets per edge: 5 minutes.
pub const FINE_BUCKETS: usize = 30;
/// Width of the coarse buckets, in milliseconds.
pub const COARSE_MS: u64 = 60_000;
/// Coarse buckets per edge: 1 hour, the longest window.
pub const COARSE_BUCKETS: usize = 60;
/// Edges held at most, by default.
pub const DEFAULT_MAX_EDGES: usize = 20_000;
/// Services and protocols named per edge at most (the rest are only counted in the traffic).
const MAX_NAMES: usize = 4;

/// Traffic of one bucket. Packets of both directions together: the graph shows them only as a total.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Client to server octets.
    pub request_bytes: u64,
    /// Server to client octets.
    pub response_bytes: u64,
    /// Connections (saturating).
    pub connections: u32,
    /// Packets both ways (saturating).
    pub packets: u32,
}

impl Traffic {
    fn add(&mut self, o: &Traffic) {
        self.request_bytes = self.request_bytes.saturating_add(o.request_bytes);
        self.response_bytes = self.response_bytes.saturating_add(o.response_bytes);
        self.connections = self.connections.saturating_add(o.connections);
        self.packets = self.packets.saturating_add(o.packets);
    }

    /// Octets both ways.
    pub fn bytes(&self) -> u64 {
        self.request_bytes.saturating_add(self.response_bytes)
    }

    fn from_counts(c: &EdgeCounts) -> Traffic {
        let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        Traffic {
            request_bytes: c.request_bytes,
            response_bytes: c.response_bytes,
            connections: clamp(c.connections),
            packets: clamp(c.request_packets.saturating_add(c.response_packets)),
        }
    }
}

/// A ring of `N` buckets of `width` milliseconds; `last` is the newest bucket's number (time / width).
/// Buckets between `last` and a later time are empty, and cleared when that time is written.
#[derive(Clone, Debug)]
struct Ring<const N: usize> {
    last: u64,
    buckets: [Traffic; N],
}

impl<const N: usize> Ring<N> {
    fn new(epoch: u64) -> Self {
        Ring {
            last: epoch,
            buckets: [Traffic::default(); N],
        }
    }

    fn add(&mut self, epoch: u64, t: &Traffic) {
        if epoch > self.last {
            let gap = epoch - self.last;
            if gap >= N as u64 {
                self.buckets = [Traffic::default(); N];
            } else {
                for e in self.last + 1..=epoch {
                    self.buckets[(e % N as u64) as usize] = Traffic::default();
                }
            }
            self.last = epoch;
        } else if self.last - epoch >= N as u64 {
            // Older than the ring: a clock that stepped back a long way. Nothing to add it to.
            return;
        }
        self.buckets[(epoch % N as u64) as usize].add(t);
    }

    /// The traffic of the `n` buckets ending with bucket `epoch` (`n` at most `N`).
    fn sum(&self, epoch: u64, n: usize) -> Traffic {
        let mut total = Traffic::default();
        let first = (epoch + 1).saturating_sub(n.min(N) as u64);
        for e in first..=epoch {
            if e <= self.last && self.last - e < N as u64 {
                total.add(&self.buckets[(e % N as u64) as usize]);
            }
        }
        total
    }
}

/// A client -> server pair: the graph's edge.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pair {
    /// The initiator.
    pub client: Endpoint,
    /// The server.
    pub server: Endpoint,
}

/// What the store keeps of one edge (boxed: the map's spare slots then cost a pointer, not a bucket set).
#[derive(Clone, Debug)]
struct Edge {
    fine: Ring<FINE_BUCKETS>,
    coarse: Ring<COARSE_BUCKETS>,
    services: SmallVec<[Arc<str>; 1]>,
    protocols: SmallVec<[Arc<str>; 2]>,
}

/// One edge's traffic in a window, as a query reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeTotals {
    /// The pair.
    pub pair: Pair,
    /// Traffic in the window.
    pub traffic: Traffic,
    /// Services the connections went through (sorted; at most four).
    pub services: Vec<Arc<str>>,
    /// Protocols seen (sorted; at most four).
    pub protocols: Vec<Arc<str>>,
}

/// The windowed store of edge aggregates.
#[derive(Debug)]
pub struct GraphStore {
    edges: HashMap<Pair, Box<Edge>>,
    max_edges: usize,
    dropped_edges: u64,
    /// The coarse bucket of the last eviction sweep.
    swept: u64,
}

impl GraphStore {
    /// An empty store that holds at most `max_edges` edges.
    pub fn new(max_edges: usize) -> Self {
        GraphStore {
            edges: HashMap::default(),
            max_edges,
            dropped_edges: 0,
            swept: 0,
        }
    }

    /// Edges held at most.
    pub fn max_edges(&self) -> usize {
        self.max_edges
    }

    /// Edges held.
    pub fn len(&self) -> usize {
        self.edges.len()
    }

    /// True when no edge is held.
    pub fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }

    /// Edge deltas refused since the start because the store was full (one per delta, not per edge).
    pub fn dropped_edges(&self) -> u64 {
        self.dropped_edges
    }

    /// Adds one batch's edge deltas, at time `now_ms`.
    pub fn add<'a>(&mut self, now_ms: u64, deltas: impl IntoIterator<Item = (&'a EdgeKey, &'a EdgeCounts)>) {
        let (fine, coarse) = (now_ms / FINE_MS, now_ms / COARSE_MS);
        if coarse > self.swept {
            self.evict(now_ms);
        }
        for (key, counts) in deltas {
            let t = Traffic::from_counts(counts);
            let pair = Pair {
                client: key.client.clone(),
                server: key.server.clone(),
            };
            // Edges only go stale when the minute changes, and the store swept then: a full store stays
            // full until the next minute.
            if self.edges.len() >= self.max_edges && !self.edges.contains_key(&pair) {
                self.dropped_edges += 1;
                continue;
            }
            let edge = self.edges.entry(pair).or_insert_with(|| {
                Box::new(Edge {
                    fine: Ring::new(fine),
                    coarse: Ring::new(coarse),
                    services: SmallVec::new(),
                    protocols: SmallVec::new(),
                })
            });
            edge.fine.add(fine, &t);
            edge.coarse.add(coarse, &t);
            remember(&mut edge.services, &key.dst_service);
            remember(&mut edge.protocols, &key.protocol);
        }
    }

    /// Removes the edges with no traffic in the last hour before `now_ms`.
    pub fn evict(&mut self, now_ms: u64) {
        let coarse = now_ms / COARSE_MS;
        self.swept = coarse;
        self.edges
            .retain(|_, e| e.coarse.last + COARSE_BUCKETS as u64 > coarse);
        // Give back the table's memory once it is mostly empty.
        if self.edges.capacity() > 64 && self.edges.len() < self.edges.capacity() / 4 {
            self.edges.shrink_to_fit();
        }
    }

    /// Every edge with traffic in `window` before `now_ms`, for which `keep` holds.
    pub fn query(&self, now_ms: u64, window: Window, mut keep: impl FnMut(&Pair) -> bool) -> Vec<EdgeTotals> {
        let mut out = Vec::new();
        for (pair, e) in &self.edges {
            if !keep(pair) {
                continue;
            }
            let traffic = match window {
                Window::M1 => e.fine.sum(now_ms / FINE_MS, 6),
                Window::M5 => e.fine.sum(now_ms / FINE_MS, FINE_BUCKETS),
                Window::M15 => e.coarse.sum(now_ms / COARSE_MS, 15),
                Window::H1 => e.coarse.sum(now_ms / COARSE_MS, COARSE_BUCKETS),
            };
            if traffic == Traffic::default() {
                continue;
            }
            let mut services: Vec<_> = e.services.iter().filter(|s| !s.is_empty()).cloned().collect();
            services.sort();
            let mut protocols = e.protocols.to_vec();
            protocols.sort();
            out.push(EdgeTotals {
                pair: pair.clone(),
                traffic,
                services,
                protocols,
            });
        }
        out.sort_by(|a, b| a.pair.cmp(&b.pair));
        out
    }
}

impl Default for GraphStore {
    fn default() -> Self {
        GraphStore::new(DEFAULT_MAX_EDGES)
    }
}

/// The store shared by the enrich thread (an [`EdgeConsumer`]: one lock per batch, never per record)
/// and the HTTP handlers (one lock per query). Cloning shares the store.
#[derive(Clone, Debug)]
pub struct SharedGraph {
    store: Arc<Mutex<GraphStore>>,
    /// Refused edge deltas already logged, and when the last line was written.
    logged: (u64, Option<std::time::Instant>),
}

impl SharedGraph {
    /// An empty shared store of at most `max_edges` edges.
    pub fn new(max_edges: usize) -> Self {
        SharedGraph {
            store: Arc::new(Mutex::new(GraphStore::new(max_edges))),
            logged: (0, None),
        }
    }

    /// The store, locked. A thread that panicked while holding it left it consistent (every change
    /// is a bucket add or a map insert), so a poisoned lock is taken as it is.
    pub fn lock(&self) -> MutexGuard<'_, GraphStore> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl EdgeConsumer for SharedGraph {
    fn consume(&mut self, now_ms: u64, edges: &[(EdgeKey, EdgeCounts)]) {
        let dropped = {
            let mut store = self.lock();
            store.add(now_ms, edges.iter().map(|(k, c)| (k, c)));
            store.dropped_edges()
        };
        // A full store refuses new edges until old ones age out: say so once a minute at most.
        let (seen, last) = self.logged;
        let due = last.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(60));
        if dropped > seen && due {
            tracing::warn!(
                "graph: {} edge updates refused since the last report: the store holds its maximum of {} edges (--graph-max-edges)",
                dropped - seen,
                self.lock().max_edges()
            );
            self.logged = (dropped, Some(std::time::Instant::now()));
        }
    }
}

/// Adds `name` to a short list of names if it is new and there is room.
fn remember<const N: usize>(names: &mut SmallVec<[Arc<str>; N]>, name: &Arc<str>) {
    if names.len() < MAX_NAMES && !names.iter().any(|n| n == name) {
        names.push(name.clone());
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
