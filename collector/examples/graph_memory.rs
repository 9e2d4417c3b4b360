//! How much memory the node graph takes per edge: fills a store with distinct client -> server pairs
//! (names of realistic length, each workload's strings shared the way the enrich thread shares them)
//! and prints the resident-set growth per edge, read from /proc/self/statm.
//!
//! `cargo run --release -p podflow-collector --example graph_memory [EDGES]`

use std::sync::Arc;

use podflow_collector::sinks::edges::{EdgeCounts, EdgeKey, Endpoint};
use podflow_collector::sinks::graph::store::GraphStore;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    let edges: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    // Workloads as the inventory shares them: one Arc per name, many edges per workload.
    let workloads: Vec<Endpoint> = (0..edges / 10 + 1)
        .map(|i| Endpoint {
            namespace: Arc::from(format!("team-{:03}", i % 50)),
            workload: Arc::from(format!("checkout-service-{i:05}")),
            kind: Arc::from("Deployment"),
        })
        .collect();
    let tcp: Arc<str> = Arc::from("tcp");
    let service: Arc<str> = Arc::from("checkout");
    let keys: Vec<(EdgeKey, EdgeCounts)> = (0..edges)
        .map(|i| {
            let key = EdgeKey {
                client: workloads[i / 10].clone(),
                server: workloads[(i * 7 + 3) % workloads.len()].clone(),
                dst_service: service.clone(),
                protocol: tcp.clone(),
            };
            let counts = EdgeCounts {
                connections: 1,
                request_bytes: 100,
                response_bytes: 200,
                request_packets: 1,
                response_packets: 2,
            };
            (key, counts)
        })
        .collect();
    let mut store = GraphStore::new(edges);
    let before = rss_bytes();
    // Every edge written in every fine and coarse bucket: the most a store of this size holds.
    let t0 = 1_000 * 60_000u64;
    for minute in 0..60u64 {
        for tick in 0..6u64 {
            let now = t0 + minute * 60_000 + tick * 10_000;
            store.add(now, keys.iter().map(|(k, c)| (k, c)));
        }
    }
    let after = rss_bytes();
    let held = store.len().max(1) as u64;
    println!(
        "graph store: {} edges, resident set grew by {} KiB: {} bytes per edge",
        store.len(),
        (after.saturating_sub(before)) / 1024,
        after.saturating_sub(before) / held
    );
}
