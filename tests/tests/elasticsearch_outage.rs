//! Outages of the Elasticsearch sink's server, against a real OpenSearch 2.19 node:
//! 1. the node is SIGKILLed in the middle of a stream and started again on its data: every record
//!    becomes exactly one document (what was in flight when it died and is sent again is a 409);
//! 2. during a second outage the collector itself is stopped (SIGTERM: it spools what it holds and
//!    exits 0) and a new collector is started on the same spool: it replays the spool once the node is
//!    back, and again every record is exactly one document.
//!
//! The test is the exporter (`podflow_e2e::ipfix_stream`), paced by the collector's own counters, so
//! the collector decodes exactly what is sent.

use std::net::UdpSocket;
use std::time::Duration;

use anyhow::ensure;
use podflow_e2e::elasticsearch::{STREAM, count, metric, sink_lines, start_collector, wait_metrics};
use podflow_e2e::ipfix_stream;
use podflow_e2e::opensearch::OpenSearch;
use podflow_e2e::peer::wait_until;

/// Records before the first outage, during it, and during the second.
const BEFORE: u64 = 60_000;
const DURING: u64 = 60_000;
const SECOND: u64 = 40_000;

#[test]
fn node_killed_mid_stream_and_collector_restarted_during_an_outage() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let node_dir = work.path().join("node");
    std::fs::create_dir_all(&node_dir)?;
    let mut node = OpenSearch::start(&node_dir, &[])?;
    let collector = start_collector("outage", work.path(), &node.url(), &[])?;
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    let mut enc = ipfix_stream::encoder()?;
    let to = collector.listen;

    // 1. SIGKILL in the middle of the stream.
    let mut sent = ipfix_stream::send(&socket, to, collector.metrics, (0, BEFORE / 2), 0, &mut enc)?;
    node.kill()?;
    sent += ipfix_stream::send(
        &socket,
        to,
        collector.metrics,
        (sent, BEFORE / 2 + DURING),
        sent,
        &mut enc,
    )?;
    let m = wait_metrics(
        &collector,
        "the spool to hold the outage",
        Duration::from_secs(30),
        |m| metric(m, "podflow_collector_spool_octets", "") > 0,
    )?;
    assert_eq!(
        metric(&m, "podflow_collector_elasticsearch_node_up", ""),
        0,
        "{}",
        sink_lines(&m)
    );
    node.restart()?;
    wait_until("every record in OpenSearch", Duration::from_secs(120), || {
        Ok(count(&node, STREAM)? >= sent)
    })?;
    let m = wait_metrics(&collector, "the spool replayed", Duration::from_secs(60), |m| {
        metric(m, "podflow_collector_spool_octets", "") == 0
    })?;
    assert_eq!(count(&node, STREAM)?, sent, "{}", sink_lines(&m));
    assert_eq!(
        metric(&m, "podflow_collector_elasticsearch_dropped_total", ""),
        0,
        "{}",
        sink_lines(&m)
    );
    assert!(
        metric(&m, "podflow_collector_elasticsearch_retries_total", "transport") > 0,
        "{}",
        sink_lines(&m)
    );

    // 2. A second outage, during which the collector is stopped and another one started.
    node.kill()?;
    sent += ipfix_stream::send(&socket, to, collector.metrics, (sent, SECOND), sent, &mut enc)?;
    let stopped = collector.stop()?;
    ensure!(stopped.log.contains("no node answers"), "{}", stopped.log);
    ensure!(
        stopped.log.contains("spool segments, replayed at the next start"),
        "{}",
        stopped.log
    );
    let spooled: u64 = std::fs::read_dir(work.path().join("spool"))?
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
        .count() as u64;
    assert!(spooled > 0, "nothing spooled at exit:\n{}", stopped.log);

    let restarted = start_collector("restarted", work.path(), &node.url(), &[])?;
    node.restart()?;
    wait_until(
        "the restarted collector's replay",
        Duration::from_secs(120),
        || Ok(count(&node, STREAM)? >= sent),
    )?;
    let m = wait_metrics(&restarted, "the spool replayed", Duration::from_secs(60), |m| {
        metric(m, "podflow_collector_spool_octets", "") == 0
    })?;
    assert_eq!(count(&node, STREAM)?, sent, "{}", sink_lines(&m));
    assert_eq!(metric(&m, "podflow_collector_elasticsearch_dropped_total", ""), 0);
    let log = restarted.stop()?.log;
    ensure!(log.contains("documents in") && log.contains("to replay"), "{log}");
    assert_eq!(count(&node, STREAM)?, sent);
    node.stop()?;
    Ok(())
}
