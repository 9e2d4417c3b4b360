//! The encoder allocates nothing per document once its buffer has grown and each Kubernetes endpoint has
//! been written once (its `kubernetes` object is formatted then and kept): the only test in this
//! binary, so no other test thread allocates while the counting allocator watches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::alloc::System;

use podflow_collector::sinks::ecs::encode;
use podflow_collector::sinks::ndjson::encode_batch;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[test]
fn encoding_into_a_reused_buffer_does_not_allocate() {
    let flows = vec![
        common::tcp_biflow_nat(),
        common::udp_uniflow_external(),
        common::icmp6_external(),
    ];
    let ctx = common::ctx();
    let mut buf = Vec::with_capacity(64 * 1024);
    // Sanity: the counter sees allocations at all.
    let region = Region::new(GLOBAL);
    let v: Vec<u8> = Vec::with_capacity(10);
    drop(v);
    assert!(region.change().allocations >= 1);

    // The first document of each endpoint formats its `kubernetes` object, once.
    let region = Region::new(GLOBAL);
    encode_batch(&flows, &ctx, &mut buf);
    let first = region.change().allocations;
    // Three endpoints (source and destination of the first flow, source of the second), two each: the
    // formatting buffer and the text kept.
    assert!(
        (1..=6).contains(&first),
        "at most two allocations per endpoint: {first}"
    );

    let region = Region::new(GLOBAL);
    for flow in &flows {
        buf.clear();
        encode(flow, &ctx, &mut buf);
    }
    buf.clear();
    encode_batch(&flows, &ctx, &mut buf);
    let change = region.change();
    assert_eq!((change.allocations, change.reallocations), (0, 0), "{change:?}");
    assert!(buf.len() > 3000, "documents were written");
}
