//! podflow-collector fed one broken datagram from each of thousands of exporters (distinct source ports
//! of loopback, so each is an exporter of its own): every error is counted, the log stays within its
//! budget of lines a minute over all exporters together (the rest counted in
//! `podflow_collector_log_suppressed_total`), and a good exporter after them is still decoded whole.

use std::net::UdpSocket;
use std::time::Instant;

use anyhow::ensure;
use podflow_e2e::collector::{Collector, EXPORTER_LINES_PER_MINUTE};
use podflow_e2e::flows::{EXPORT_TIME, OBSERVATION_DOMAIN, encode_messages, sample_flows};
use podflow_e2e::peer::{self, PEER_TIMEOUT};

/// Exporters that each send one broken datagram.
const JUNK_EXPORTERS: usize = 5000;

/// An IPFIX message whose only set is shorter than a set header: a decode error, under its exporter.
fn broken() -> Vec<u8> {
    let mut m = Vec::with_capacity(20);
    m.extend_from_slice(&10u16.to_be_bytes());
    m.extend_from_slice(&20u16.to_be_bytes());
    m.extend_from_slice(&EXPORT_TIME.to_be_bytes());
    m.extend_from_slice(&0u32.to_be_bytes());
    m.extend_from_slice(&OBSERVATION_DOMAIN.to_be_bytes());
    m.extend_from_slice(&[0, 2, 0, 1]);
    m
}

#[test]
fn thousands_of_broken_exporters_cost_a_bounded_log_and_a_good_one_still_decodes() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let started = Instant::now();
    let mut collector = Collector::start("flood", work.path(), 1)?;
    let junk = broken();
    // Held open until the end, so every exporter keeps its own port.
    let mut sockets = Vec::with_capacity(JUNK_EXPORTERS);
    for _ in 0..JUNK_EXPORTERS {
        let s = UdpSocket::bind("127.0.0.1:0")?;
        s.send_to(&junk, collector.listen)?;
        sockets.push(s);
    }
    let good = UdpSocket::bind("127.0.0.1:0")?;
    good.connect(collector.listen)?;
    let flows = sample_flows();
    for m in encode_messages(&flows)? {
        good.send(&m)?;
    }
    // Every broken datagram counted, and the lines past the budget counted too.
    let n = JUNK_EXPORTERS as u64;
    let mut last = String::new();
    peer::wait_until(
        "the collector to count every broken datagram",
        PEER_TIMEOUT,
        || {
            let m = collector.scrape()?;
            last = m.text.clone();
            let errors = m.sum("podflow_collector_decode_errors_total");
            let left_out = m.sum("podflow_collector_log_suppressed_total");
            Ok(errors >= n && left_out >= n - 2 * EXPORTER_LINES_PER_MINUTE)
        },
    )
    .map_err(|e| anyhow::anyhow!("{e:#}; last /metrics:\n{last}"))?;
    let labels = "exporter=\"127.0.0.1\",protocol=\"ipfix\"";
    collector.wait_records(labels, flows.len() as u64)?;
    let stopped = collector.stop()?;
    ensure!(
        stopped.docs.len() == flows.len(),
        "{} documents for {} good records",
        stopped.docs.len(),
        flows.len()
    );
    let (reports, bound) = stopped.exporter_reports(started.elapsed());
    ensure!(
        (1..=bound).contains(&reports),
        "{reports} report lines for {n} broken exporters (at most {bound}):\n{}",
        stopped.log.lines().take(20).collect::<Vec<_>>().join("\n")
    );
    ensure!(
        stopped.log.contains("lines about exporters left out of the log"),
        "the log does not say it left lines out:\n{}",
        stopped.log.lines().rev().take(10).collect::<Vec<_>>().join("\n")
    );
    drop(sockets);
    Ok(())
}
