//! What the node graph's store holds per edge, measured with a counting allocator: the only test in this
//! binary, so no other test thread allocates while it counts. The numbers it prints are the ones the
//! README gives (`cargo test -p podflow-collector --test graph_memory -- --nocapture`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::System;
use std::sync::Arc;

use podflow_collector::sinks::edges::{EdgeCounts, EdgeKey, Endpoint};
use podflow_collector::sinks::graph::query::Window;
use podflow_collector::sinks::graph::store::{COARSE_MS, GraphStore};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes per edge the README promises at most, the table's spare room included.
const PROMISED_BYTES_PER_EDGE: usize = 2_600;

#[test]
fn an_edge_costs_a_bounded_number_of_bytes() {
    // 400 workloads in 20 namespaces; their names are shared with the enrich thread's batches (`Arc`),
    // so the store pays for a reference to each, not for the text.
    let endpoints: Vec<Endpoint> = (0..400)
        .map(|i| Endpoint {
            namespace: Arc::from(format!("namespace-{}", i % 20)),
            workload: Arc::from(format!("workload-{i}")),
            kind: Arc::from("Deployment"),
        })
        .collect();
    let (service, protocol): (Arc<str>, Arc<str>) = (Arc::from("api"), Arc::from("tcp"));
    let keys = |n: usize| -> Vec<(EdgeKey, EdgeCounts)> {
        (0..n)
            .map(|i| {
                let key = EdgeKey {
                    client: endpoints[i % 400].clone(),
                    server: endpoints[(i / 400 + 1 + i % 400) % 400].clone(),
                    dst_service: service.clone(),
                    protocol: protocol.clone(),
                };
                let counts = EdgeCounts {
                    connections: 1,
                    request_bytes: 100,
                    response_bytes: 1000,
                    request_packets: 2,
                    response_packets: 3,
                };
                (key, counts)
            })
            .collect()
    };
    let now = 1000 * COARSE_MS;
    for n in [1_000, 12_000, 20_000] {
        let batch = keys(n);
        let region = Region::new(GLOBAL);
        let mut store = GraphStore::new(n);
        store.add(now, batch.iter().map(|(k, c)| (k, c)));
        let stats = region.change();
        assert_eq!(store.len(), n);
        let held = stats.bytes_allocated - stats.bytes_deallocated;
        let per_edge = held / n;
        println!("graph store: {n} edges hold {held} bytes of heap, {per_edge} bytes per edge");
        assert!(
            per_edge <= PROMISED_BYTES_PER_EDGE,
            "{per_edge} bytes per edge, more than the {PROMISED_BYTES_PER_EDGE} the README promises"
        );
        // A full store takes no more edges, so no more memory.
        let more = keys(n + 500);
        let region = Region::new(GLOBAL);
        store.add(now, more[n..].iter().map(|(k, c)| (k, c)));
        let grew = region.change();
        assert_eq!((store.len(), store.dropped_edges()), (n, 500));
        assert_eq!(grew.bytes_allocated, grew.bytes_deallocated, "{grew:?}");
        assert_eq!(store.query(now, Window::M1, |_| true).len(), n);
    }
}
