//! Overload, against a real OpenSearch 2.19 node whose write thread pool has one thread and a queue of
//! one (`thread_pool.write.size=1`, `thread_pool.write.queue_size=1`): with four bulk requests in
//! flight the node answers real 429s (`es_rejected_execution_exception`), per item or for the whole
//! request. Every document still arrives exactly once, and the retries are counted by reason.

use std::time::Duration;

use anyhow::Context;
use podflow_e2e::elasticsearch::{
    STREAM, count, delivered, metric, sink_lines, start_collector, wait_metrics,
};
use podflow_e2e::ipfix_stream;
use podflow_e2e::opensearch::OpenSearch;

/// Records of the stream.
const RECORDS: u64 = 150_000;

/// The write pool's rejections since the node started.
fn write_rejections(node: &OpenSearch) -> anyhow::Result<u64> {
    let stats = node.client().get("/_nodes/stats/thread_pool")?.ok_json()?;
    let nodes = stats["nodes"].as_object().context("no nodes in the stats")?;
    Ok(nodes
        .values()
        .filter_map(|n| n.pointer("/thread_pool/write/rejected").and_then(|r| r.as_u64()))
        .sum())
}

#[test]
fn a_node_answering_429s_gets_every_document_once() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let node_dir = work.path().join("node");
    std::fs::create_dir_all(&node_dir)?;
    let mut node = OpenSearch::start(
        &node_dir,
        &[
            ("thread_pool.write.size", "1"),
            ("thread_pool.write.queue_size", "1"),
        ],
    )?;
    let collector = start_collector(
        "overload",
        work.path(),
        &node.url(),
        &[
            "--elasticsearch-requests-in-flight",
            "4",
            "--elasticsearch-bulk-octets",
            "262144",
        ],
    )?;
    let sent = ipfix_stream::send_all(&collector, RECORDS)?;
    let m = wait_metrics(
        &collector,
        "every document delivered",
        Duration::from_secs(180),
        |m| delivered(m) >= sent && metric(m, "podflow_collector_spool_octets", "") == 0,
    )?;
    let rejected = write_rejections(&node)?;
    let retried = metric(
        &m,
        "podflow_collector_elasticsearch_retries_total",
        "reason=\"429\"",
    );
    println!("{sent} records, {rejected} write rejections, {retried} documents sent again after a 429");
    assert!(rejected > 0, "the node rejected no write:\n{}", sink_lines(&m));
    assert!(retried > 0, "no 429 retry counted:\n{}", sink_lines(&m));
    assert_eq!(count(&node, STREAM)?, sent, "{}", sink_lines(&m));
    assert_eq!(metric(&m, "podflow_collector_elasticsearch_dropped_total", ""), 0);
    assert_eq!(
        metric(&m, "podflow_collector_elasticsearch_dead_letter_total", ""),
        0
    );
    collector.stop()?;
    node.stop()?;
    Ok(())
}
