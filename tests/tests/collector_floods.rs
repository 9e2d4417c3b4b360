//! podflow-collector under floods, each from real sockets over loopback, with a good exporter after
//! it: the log stays within its budget of lines a minute over all exporters together, memory within
//! the decoder's stated limits, and the good exporter is decoded whole.
//!
//! - Templates: 2,000 exporters each define 600 templates of 16 fields (1.2 million templates, 19
//!   million fields). The limits (`DecodeLimits`): 512 templates and 8,192 fields an exporter, 2 Mi
//!   fields in all (about 40 MB of templates and plans); what is beyond them is refused and counted
//!   (`decode_errors_total{reason="state_limit"}`). The collector's RSS may grow by at most 160 MiB.
//! - Malformed datagrams: 200,000 broken datagrams of five kinds from one exporter, each counted by
//!   reason; RSS may grow by at most 32 MiB (a broken datagram leaves no state).

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use anyhow::ensure;
use podflow_e2e::collector::Collector;
use podflow_e2e::flows::{EXPORT_TIME, OBSERVATION_DOMAIN, encode_messages, sample_flows};
use podflow_e2e::peer::wait_until;

const LOOPBACK_IPFIX: &str = "exporter=\"127.0.0.1\",protocol=\"ipfix\"";

/// The 16 fields of every flooding template: (IE, length).
const FIELDS: [(u16, u16); 16] = [
    (8, 4),
    (12, 4),
    (7, 2),
    (11, 2),
    (4, 1),
    (6, 1),
    (5, 1),
    (1, 8),
    (2, 8),
    (152, 8),
    (153, 8),
    (10, 4),
    (14, 4),
    (16, 4),
    (17, 4),
    (9, 1),
];

/// An IPFIX message of one template set defining templates `ids`.
fn templates(ids: std::ops::Range<u16>, sequence: u32) -> Vec<u8> {
    let record = 4 + 4 * FIELDS.len();
    let set = 4 + record * ids.len();
    let len = 16 + set;
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&10u16.to_be_bytes());
    m.extend_from_slice(&(len as u16).to_be_bytes());
    m.extend_from_slice(&EXPORT_TIME.to_be_bytes());
    m.extend_from_slice(&sequence.to_be_bytes());
    m.extend_from_slice(&OBSERVATION_DOMAIN.to_be_bytes());
    m.extend_from_slice(&2u16.to_be_bytes());
    m.extend_from_slice(&(set as u16).to_be_bytes());
    for id in ids {
        m.extend_from_slice(&id.to_be_bytes());
        m.extend_from_slice(&(FIELDS.len() as u16).to_be_bytes());
        for (ie, l) in FIELDS {
            m.extend_from_slice(&ie.to_be_bytes());
            m.extend_from_slice(&l.to_be_bytes());
        }
    }
    m
}

/// Broken datagrams of five kinds (none carries data records).
fn malformed(i: u32) -> Vec<u8> {
    let header = |length: u16| {
        let mut h = Vec::with_capacity(32);
        h.extend_from_slice(&10u16.to_be_bytes());
        h.extend_from_slice(&length.to_be_bytes());
        h.extend_from_slice(&EXPORT_TIME.to_be_bytes());
        h.extend_from_slice(&0u32.to_be_bytes());
        h.extend_from_slice(&OBSERVATION_DOMAIN.to_be_bytes());
        h
    };
    match i % 5 {
        0 => vec![0, 10, 0],
        1 => header(1000),
        2 => {
            let mut v = header(16);
            v[1] = 7;
            v
        }
        3 => {
            let mut m = header(20);
            m.extend_from_slice(&[0, 2, 0, 1]);
            m
        }
        _ => {
            let mut m = header(24);
            m.extend_from_slice(&[0, 2, 0, 8, 0x01, 0x2c, 0x01, 0x90]);
            m
        }
    }
}

/// Waits (bounded) until the collector has counted `n` datagrams in all.
fn wait_datagrams(c: &Collector, n: u64) -> anyhow::Result<()> {
    wait_until(
        "the collector to count the datagrams",
        Duration::from_secs(120),
        || Ok(c.scrape()?.sum("podflow_collector_datagrams_total") >= n),
    )
}

/// Sends the sample flows from a new exporter and checks every record is decoded and written; then
/// checks the log's lines about exporters against the budget. Returns the stopped collector's log.
fn good_exporter_then_stop(mut c: Collector, started: Instant) -> anyhow::Result<String> {
    let good = UdpSocket::bind("127.0.0.1:0")?;
    good.connect(c.listen)?;
    let flows = sample_flows();
    for m in encode_messages(&flows)? {
        good.send(&m)?;
    }
    // The floods carry no data records: every record of this address is the good exporter's.
    c.wait_records(LOOPBACK_IPFIX, flows.len() as u64)?;
    let stopped = c.stop()?;
    ensure!(
        stopped.docs.len() == flows.len(),
        "{} documents for {} good records",
        stopped.docs.len(),
        flows.len()
    );
    let (reports, bound) = stopped.exporter_reports(started.elapsed());
    ensure!(
        reports <= bound,
        "{reports} report lines (at most {bound}):\n{}",
        stopped.log.lines().take(20).collect::<Vec<_>>().join("\n")
    );
    Ok(stopped.log)
}

#[test]
fn a_template_flood_is_bounded_and_a_good_exporter_still_decodes() -> anyhow::Result<()> {
    const EXPORTERS: usize = 2000;
    const TEMPLATES: u16 = 600;
    const PER_MESSAGE: u16 = 15;
    let work = tempfile::tempdir()?;
    let started = Instant::now();
    let c = Collector::start("template-flood", work.path(), 1)?;
    let before = c.rss_kib()?;
    let sockets: Vec<UdpSocket> = (0..EXPORTERS)
        .map(|_| UdpSocket::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let mut sent = 0u64;
    for first in (256..256 + TEMPLATES).step_by(PER_MESSAGE as usize) {
        let m = templates(first..first + PER_MESSAGE, 0);
        for s in &sockets {
            s.send_to(&m, c.listen)?;
        }
        sent += EXPORTERS as u64;
        // Paced by the collector's count, so its socket never overflows and every datagram is seen.
        wait_datagrams(&c, sent)?;
    }
    let m = c.scrape()?;
    let after = c.rss_kib()?;
    let refused = m
        .samples
        .iter()
        .filter(|(n, l, _)| n == "podflow_collector_decode_errors_total" && l.contains("state_limit"))
        .map(|s| s.2)
        .sum::<u64>();
    let evicted = m
        .samples
        .iter()
        .filter(|(n, l, _)| n == "podflow_collector_decode_errors_total" && l.contains("evicted"))
        .map(|s| s.2)
        .sum::<u64>();
    println!(
        "{sent} template datagrams from {EXPORTERS} exporters: {refused} refused at a limit, {evicted} exporters evicted; RSS {before} -> {after} KiB"
    );
    ensure!(refused > 0, "no template was refused at a limit");
    ensure!(
        after.saturating_sub(before) <= 160 * 1024,
        "RSS grew from {before} to {after} KiB"
    );
    good_exporter_then_stop(c, started)?;
    drop(sockets);
    Ok(())
}

#[test]
fn a_flood_of_malformed_datagrams_is_counted_and_a_good_exporter_still_decodes() -> anyhow::Result<()> {
    const DATAGRAMS: u32 = 200_000;
    let work = tempfile::tempdir()?;
    let started = Instant::now();
    let c = Collector::start("malformed-flood", work.path(), 1)?;
    let before = c.rss_kib()?;
    let bad = UdpSocket::bind("127.0.0.1:0")?;
    for i in 0..DATAGRAMS {
        bad.send_to(&malformed(i), c.listen)?;
        if (i + 1) % 2000 == 0 {
            wait_datagrams(&c, u64::from(i) + 1)?;
        }
    }
    wait_until("every broken datagram counted", Duration::from_secs(60), || {
        Ok(c.scrape()?.sum("podflow_collector_decode_errors_total") >= u64::from(DATAGRAMS))
    })?;
    let after = c.rss_kib()?;
    let m = c.scrape()?;
    println!(
        "{DATAGRAMS} broken datagrams: {} decode errors; RSS {before} -> {after} KiB",
        m.sum("podflow_collector_decode_errors_total")
    );
    ensure!(m.sum("podflow_collector_decode_errors_total") == u64::from(DATAGRAMS));
    ensure!(
        after.saturating_sub(before) <= 32 * 1024,
        "RSS grew from {before} to {after} KiB"
    );
    good_exporter_then_stop(c, started)?;
    Ok(())
}
