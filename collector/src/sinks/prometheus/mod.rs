//! Flow metrics: the edges of each batch ([`super::edges`]) added to Prometheus counters in the
//! collector's registry.
//!
//! - `podflow_connections_total`, `podflow_connection_bytes_total{direction}` and
//!   `podflow_connection_packets_total{direction}` (`request` client to server, `response` back), labelled
//!   `src_namespace, src_workload, src_kind, dst_namespace, dst_workload, dst_kind, dst_service,
//!   protocol`;
//! - with `--compat-netflow-metrics`, `netflow_connection_count` and `netflow_connection_bytes` (both
//!   directions) labelled `srchost, srcnamespace, dsthost, dstnamespace` (workloads), as the NetFlow
//!   exporter whose dashboards read them names them.
//!
//! An edge's series are removed when it has not been counted for the TTL (`--metrics-series-ttl`): a
//! workload that is gone stops being exported, and Prometheus marks its series stale. At most
//! `--metrics-max-series` edges are held (each is five series, seven with the compatibility metrics);
//! what a new edge past that would have counted is left out, its updates counted in
//! `podflow_collector_flow_series_refused_total`. Consumed once per batch on the enrich thread: each edge
//! costs a hash lookup and a few atomic additions, whatever the number of records behind it.

use foldhash::HashMap;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use super::edges::{EdgeConsumer, EdgeCounts, EdgeKey};

/// Flow metric settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowMetricsConfig {
    /// An edge not counted for this long loses its series, milliseconds.
    pub ttl_ms: u64,
    /// Edges held at most.
    pub max_series: usize,
    /// Also `netflow_connection_count` and `netflow_connection_bytes`.
    pub compat_netflow: bool,
}

impl Default for FlowMetricsConfig {
    fn default() -> Self {
        FlowMetricsConfig {
            ttl_ms: 600_000,
            max_series: 10_000,
            compat_netflow: false,
        }
    }
}

/// The flow metrics' label names, in order.
pub const LABELS: [&str; 8] = [
    "src_namespace",
    "src_workload",
    "src_kind",
    "dst_namespace",
    "dst_workload",
    "dst_kind",
    "dst_service",
    "protocol",
];

/// The compatibility metrics' label names.
pub const COMPAT_LABELS: [&str; 4] = ["srchost", "srcnamespace", "dsthost", "dstnamespace"];

struct Series {
    last_ms: u64,
    connections: IntCounter,
    request_bytes: IntCounter,
    response_bytes: IntCounter,
    request_packets: IntCounter,
    response_packets: IntCounter,
}

impl Series {
    fn add(&mut self, now_ms: u64, c: &EdgeCounts) {
        self.last_ms = now_ms;
        self.connections.inc_by(c.connections);
        self.request_bytes.inc_by(c.request_bytes);
        self.response_bytes.inc_by(c.response_bytes);
        self.request_packets.inc_by(c.request_packets);
        self.response_packets.inc_by(c.response_packets);
    }
}

struct CompatSeries {
    last_ms: u64,
    count: IntCounter,
    bytes: IntCounter,
}

struct Compat {
    count: IntCounterVec,
    bytes: IntCounterVec,
    series: HashMap<[std::sync::Arc<str>; 4], CompatSeries>,
}

/// The Prometheus consumer of edges.
pub struct FlowMetrics {
    cfg: FlowMetricsConfig,
    connections: IntCounterVec,
    bytes: IntCounterVec,
    packets: IntCounterVec,
    compat: Option<Compat>,
    series: HashMap<EdgeKey, Series>,
    refused: IntCounter,
    expired: IntCounter,
    held: IntGauge,
    next_sweep_ms: u64,
}

fn labels(k: &EdgeKey) -> [&str; 8] {
    [
        &k.client.namespace,
        &k.client.workload,
        &k.client.kind,
        &k.server.namespace,
        &k.server.workload,
        &k.server.kind,
        &k.dst_service,
        &k.protocol,
    ]
}

fn with_direction<'a>(k: &'a EdgeKey, direction: &'a str) -> [&'a str; 9] {
    let l = labels(k);
    [l[0], l[1], l[2], l[3], l[4], l[5], l[6], l[7], direction]
}

impl FlowMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(cfg: FlowMetricsConfig, registry: &Registry) -> Result<Self, prometheus::Error> {
        let mut directed = LABELS.to_vec();
        directed.push("direction");
        let connections = IntCounterVec::new(
            Opts::new(
                "podflow_connections_total",
                "Connections from client workload to server workload (a Service's backend, dst_service the Service), counted once however many observers reported them.",
            ),
            &LABELS,
        )?;
        let bytes = IntCounterVec::new(
            Opts::new(
                "podflow_connection_bytes_total",
                "Octets of IP packets between client and server workloads, direction request (client to server) or response.",
            ),
            &directed,
        )?;
        let packets = IntCounterVec::new(
            Opts::new(
                "podflow_connection_packets_total",
                "Packets between client and server workloads, direction request (client to server) or response.",
            ),
            &directed,
        )?;
        let refused = IntCounter::new(
            "podflow_collector_flow_series_refused_total",
            "Edge updates (one per edge and batch) left out of the flow metrics because --metrics-max-series edges were held.",
        )?;
        let expired = IntCounter::new(
            "podflow_collector_flow_series_expired_total",
            "Edges whose flow metric series were removed after --metrics-series-ttl without traffic.",
        )?;
        let held = IntGauge::new(
            "podflow_collector_flow_series",
            "Edges (client, server, Service, protocol) the flow metrics hold series for.",
        )?;
        for c in [&connections, &bytes, &packets] {
            registry.register(Box::new(c.clone()))?;
        }
        registry.register(Box::new(refused.clone()))?;
        registry.register(Box::new(expired.clone()))?;
        registry.register(Box::new(held.clone()))?;
        let compat = if cfg.compat_netflow {
            let count = IntCounterVec::new(
                Opts::new(
                    "netflow_connection_count",
                    "Connections between workloads (compatible with the NetFlow exporter's metric).",
                ),
                &COMPAT_LABELS,
            )?;
            let bytes = IntCounterVec::new(
                Opts::new(
                    "netflow_connection_bytes",
                    "Octets between workloads, both directions (compatible with the NetFlow exporter's metric).",
                ),
                &COMPAT_LABELS,
            )?;
            registry.register(Box::new(count.clone()))?;
            registry.register(Box::new(bytes.clone()))?;
            Some(Compat {
                count,
                bytes,
                series: HashMap::default(),
            })
        } else {
            None
        };
        Ok(FlowMetrics {
            cfg,
            connections,
            bytes,
            packets,
            compat,
            series: HashMap::default(),
            refused,
            expired,
            held,
            next_sweep_ms: 0,
        })
    }

    fn add(&mut self, now_ms: u64, key: &EdgeKey, c: &EdgeCounts) {
        // One lookup by the edge's names for a series already held (the common case), a second only
        // to insert a new one.
        if let Some(s) = self.series.get_mut(key) {
            s.add(now_ms, c);
        } else {
            if self.series.len() >= self.cfg.max_series {
                self.refused.inc();
                return;
            }
            let l = labels(key);
            let series = Series {
                last_ms: now_ms,
                connections: self.connections.with_label_values(&l),
                request_bytes: self.bytes.with_label_values(&with_direction(key, "request")),
                response_bytes: self.bytes.with_label_values(&with_direction(key, "response")),
                request_packets: self.packets.with_label_values(&with_direction(key, "request")),
                response_packets: self.packets.with_label_values(&with_direction(key, "response")),
            };
            self.series.entry(key.clone()).or_insert(series).add(now_ms, c);
        }
        if let Some(compat) = self.compat.as_mut() {
            let k = [
                key.client.workload.clone(),
                key.client.namespace.clone(),
                key.server.workload.clone(),
                key.server.namespace.clone(),
            ];
            let s = compat.series.entry(k).or_insert_with_key(|k| {
                let l = [&*k[0], &*k[1], &*k[2], &*k[3]];
                CompatSeries {
                    last_ms: now_ms,
                    count: compat.count.with_label_values(&l),
                    bytes: compat.bytes.with_label_values(&l),
                }
            });
            s.last_ms = now_ms;
            s.count.inc_by(c.connections);
            s.bytes.inc_by(c.request_bytes + c.response_bytes);
        }
    }

    /// Removes the series of edges quiet for the TTL.
    fn sweep(&mut self, now_ms: u64) {
        let cutoff = now_ms.saturating_sub(self.cfg.ttl_ms);
        let (connections, bytes, packets) = (&self.connections, &self.bytes, &self.packets);
        let mut gone = 0;
        self.series.retain(|k, s| {
            if s.last_ms > cutoff {
                return true;
            }
            let _ = connections.remove_label_values(&labels(k));
            for d in ["request", "response"] {
                let _ = bytes.remove_label_values(&with_direction(k, d));
                let _ = packets.remove_label_values(&with_direction(k, d));
            }
            gone += 1;
            false
        });
        self.expired.inc_by(gone);
        if let Some(compat) = self.compat.as_mut() {
            let (count, bytes) = (&compat.count, &compat.bytes);
            compat.series.retain(|k, s| {
                if s.last_ms > cutoff {
                    return true;
                }
                let l = [&*k[0], &*k[1], &*k[2], &*k[3]];
                let _ = count.remove_label_values(&l);
                let _ = bytes.remove_label_values(&l);
                false
            });
        }
    }
}

impl EdgeConsumer for FlowMetrics {
    fn consume(&mut self, now_ms: u64, edges: &[(EdgeKey, EdgeCounts)]) {
        for (k, c) in edges {
            self.add(now_ms, k, c);
        }
        if now_ms >= self.next_sweep_ms {
            self.sweep(now_ms);
            // Often enough that a series outlives its TTL by a small part of it.
            self.next_sweep_ms = now_ms + (self.cfg.ttl_ms / 10).clamp(100, 10_000);
        }
        self.held
            .set(i64::try_from(self.series.len()).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests;
