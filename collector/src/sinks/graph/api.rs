//! The Node Graph API's JSON (the contract of Grafana's Node Graph API data source and Node Graph panel):
//! the field lists of `/api/graph/fields` and the nodes and edges of `/api/graph/data`, made from a
//! window's edge totals. Pure.
//!
//! * A node per endpoint: a workload, an external endpoint, an in-cluster address with no owner
//!   (`unknown`), or a Service whose backend was not known. Its id is `namespace/kind/workload`; title
//!   the workload, subtitle the namespace. mainStat is its bytes per second (sent and received),
//!   secondaryStat its connections per second (as client and as server), over the edges shown.
//! * `arc__sent` and `arc__received` are the shares of its bytes it sent (requests as a client,
//!   responses as a server) and received; they add up to 1 (halves for a node that moved no bytes).
//! * `detail__kind`, `detail__namespace`, `detail__nodes` (the Kubernetes nodes its pods ran on, comma
//!   separated, when known; else empty).
//! * An edge per client -> server pair (id `client->server`): mainStat bytes per second both ways,
//!   secondaryStat connections per second, and the window's totals, Services and protocols as details.
//!
//! Rates divide the window's traffic by the window's length; bytes per second are rounded to 0.01,
//! connections per second to 0.0001.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use super::query::Window;
use super::store::{EdgeTotals, Traffic};
use crate::sinks::edges::Endpoint;

/// The `/api/graph/fields` answer: every field of the nodes and edges frames, in frame order.
pub fn fields() -> Value {
    let f = |name: &str, ty: &str| json!({"field_name": name, "type": ty});
    let named =
        |name: &str, ty: &str, display: &str| json!({"field_name": name, "type": ty, "displayName": display});
    json!({
        "nodes_fields": [
            f("id", "string"),
            f("title", "string"),
            f("subTitle", "string"),
            named("mainStat", "number", "bytes/s"),
            named("secondaryStat", "number", "connections/s"),
            json!({"field_name": "arc__sent", "type": "number", "color": "#3b82f6", "displayName": "Sent"}),
            json!({"field_name": "arc__received", "type": "number", "color": "#f59e0b", "displayName": "Received"}),
            named("detail__kind", "string", "Kind"),
            named("detail__namespace", "string", "Namespace"),
            named("detail__nodes", "string", "Nodes"),
            named("detail__bytes_sent", "number", "Bytes sent"),
            named("detail__bytes_received", "number", "Bytes received"),
            named("detail__connections", "number", "Connections"),
        ],
        "edges_fields": [
            f("id", "string"),
            f("source", "string"),
            f("target", "string"),
            named("mainStat", "number", "bytes/s"),
            named("secondaryStat", "number", "connections/s"),
            named("detail__request_bytes", "number", "Request bytes"),
            named("detail__response_bytes", "number", "Response bytes"),
            named("detail__connections", "number", "Connections"),
            named("detail__packets", "number", "Packets"),
            named("detail__services", "string", "Services"),
            named("detail__protocols", "string", "Protocols"),
        ],
    })
}

/// A node's id.
pub fn node_id(e: &Endpoint) -> String {
    format!("{}/{}/{}", e.namespace, e.kind, e.workload)
}

/// What a node adds up over its edges.
#[derive(Default)]
struct NodeTotals {
    sent: u64,
    received: u64,
    connections: u64,
}

/// The `/api/graph/data` answer for a window's edges. `nodes_of` names the Kubernetes nodes an
/// endpoint's pods ran on (empty when unknown).
pub fn data(edges: &[EdgeTotals], window: Window, nodes_of: impl Fn(&Endpoint) -> Vec<Arc<str>>) -> Value {
    let secs = window.seconds() as f64;
    let bytes_rate = |b: u64| (b as f64 / secs * 100.0).round() / 100.0;
    let conn_rate = |c: u64| (c as f64 / secs * 10_000.0).round() / 10_000.0;
    let mut nodes: BTreeMap<&Endpoint, NodeTotals> = BTreeMap::new();
    let mut edge_rows = Vec::with_capacity(edges.len());
    for e in edges {
        let Traffic {
            request_bytes,
            response_bytes,
            connections,
            packets,
        } = e.traffic;
        let client = nodes.entry(&e.pair.client).or_default();
        client.sent += request_bytes;
        client.received += response_bytes;
        client.connections += u64::from(connections);
        let server = nodes.entry(&e.pair.server).or_default();
        server.sent += response_bytes;
        server.received += request_bytes;
        // A workload talking to itself holds the connection once.
        if e.pair.client != e.pair.server {
            server.connections += u64::from(connections);
        }
        let (source, target) = (node_id(&e.pair.client), node_id(&e.pair.server));
        edge_rows.push(json!({
            "id": format!("{source}->{target}"),
            "source": source,
            "target": target,
            "mainStat": bytes_rate(e.traffic.bytes()),
            "secondaryStat": conn_rate(u64::from(connections)),
            "detail__request_bytes": request_bytes,
            "detail__response_bytes": response_bytes,
            "detail__connections": connections,
            "detail__packets": packets,
            "detail__services": join(&e.services),
            "detail__protocols": join(&e.protocols),
        }));
    }
    let node_rows: Vec<Value> = nodes
        .iter()
        .map(|(ep, t)| {
            let total = t.sent.saturating_add(t.received);
            let sent = if total == 0 {
                0.5
            } else {
                t.sent as f64 / total as f64
            };
            json!({
                "id": node_id(ep),
                "title": &*ep.workload,
                "subTitle": &*ep.namespace,
                "mainStat": bytes_rate(total),
                "secondaryStat": conn_rate(t.connections),
                "arc__sent": sent,
                "arc__received": 1.0 - sent,
                "detail__kind": &*ep.kind,
                "detail__namespace": &*ep.namespace,
                "detail__nodes": join(&nodes_of(ep)),
                "detail__bytes_sent": t.sent,
                "detail__bytes_received": t.received,
                "detail__connections": t.connections,
            })
        })
        .collect();
    json!({"nodes": node_rows, "edges": edge_rows})
}

fn join(names: &[Arc<str>]) -> String {
    let v: Vec<&str> = names.iter().map(|s| &**s).collect();
    v.join(",")
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;
