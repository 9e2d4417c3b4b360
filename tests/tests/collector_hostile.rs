//! podflow-collector fed broken and hostile datagrams before good ones, over loopback from one exporter
//! socket: it must not stop, must decode every good record after them, must count every broken part by
//! reason in `/metrics`, and must say so in its log: one line per exporter (not one per datagram), whose
//! counts add up to the metrics.

use std::collections::BTreeMap;
use std::net::UdpSocket;

use anyhow::{Context, ensure};
use podflow_e2e::collector::Collector;
use podflow_e2e::flows::{EXPORT_TIME, OBSERVATION_DOMAIN, encode_messages, sample_flows};

/// An IPFIX message header (RFC 7011 3.1) for `body`, claiming `length` octets in all.
fn header(length: u16, sequence: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(16);
    h.extend_from_slice(&10u16.to_be_bytes());
    h.extend_from_slice(&length.to_be_bytes());
    h.extend_from_slice(&EXPORT_TIME.to_be_bytes());
    h.extend_from_slice(&sequence.to_be_bytes());
    h.extend_from_slice(&OBSERVATION_DOMAIN.to_be_bytes());
    h
}

/// Datagrams that each break something different: a stub, a length beyond the datagram, a version
/// nobody speaks, a set shorter than its own header, and a template that claims more fields than it
/// has. None carries data records, so the good messages' sequence numbers stay right.
fn hostile() -> Vec<Vec<u8>> {
    let mut out = vec![vec![0, 10, 0]];
    out.push(header(1000, 0));
    let mut v7 = header(16, 0);
    v7[1] = 7;
    out.push(v7);
    let mut short_set = header(16 + 4, 0);
    short_set.extend_from_slice(&[0, 2, 0, 1]);
    out.push(short_set);
    let mut template = header(16 + 8, 0);
    // Set 2 (templates) of 8 octets: template 300 with 400 fields, none of them there.
    template.extend_from_slice(&[0, 2, 0, 8, 0x01, 0x2c, 0x01, 0x90]);
    out.push(template);
    out
}

/// The collector's report lines (about an exporter, or about datagrams that admitted none), and their
/// `reason count` pairs added up.
fn logged_errors(log: &str) -> anyhow::Result<(Vec<&str>, BTreeMap<String, u64>)> {
    let mut lines = Vec::new();
    let mut by_reason = BTreeMap::new();
    for line in log.lines().filter(|l| {
        l.starts_with("podflow-collector: warning: exporter ")
            || l.starts_with("podflow-collector: warning: exporters beyond")
    }) {
        lines.push(line);
        let Some(list) = line.split(" decode errors (").nth(1) else {
            continue;
        };
        let list = list.split(')').next().context("unclosed reason list")?;
        for pair in list.split(", ") {
            let (reason, n) = pair.rsplit_once(' ').with_context(|| format!("pair {pair:?}"))?;
            *by_reason.entry(reason.to_string()).or_default() += n.parse::<u64>()?;
        }
    }
    Ok((lines, by_reason))
}

#[test]
fn broken_datagrams_are_counted_and_logged_and_good_ones_still_decode() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let mut collector = Collector::start("hostile", work.path(), 1)?;
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.connect(collector.listen)?;
    let exporter = socket.local_addr()?.to_string();
    let bad = hostile();
    // Each broken datagram a hundred times: the log must still say it once, not per datagram.
    for _ in 0..100 {
        for d in &bad {
            socket.send(d)?;
        }
    }
    let flows = sample_flows();
    for m in encode_messages(&flows)? {
        socket.send(&m)?;
    }
    let labels = "exporter=\"127.0.0.1\",protocol=\"ipfix\"";
    let metrics = collector.wait_records(labels, flows.len() as u64)?;
    let stopped = collector.stop()?;

    ensure!(
        stopped.docs.len() == flows.len(),
        "{} documents for {} good records",
        stopped.docs.len(),
        flows.len()
    );
    let mut counted = BTreeMap::new();
    for (name, labels, n) in &metrics.samples {
        if name == "podflow_collector_decode_errors_total" && *n > 0 {
            let reason = labels.trim_start_matches("reason=\"").trim_end_matches('"');
            counted.insert(reason.to_string(), *n);
        }
    }
    let total: u64 = counted.values().sum();
    ensure!(
        total == bad.len() as u64 * 100,
        "{total} decode errors counted for {} broken datagrams: {counted:?}",
        bad.len() * 100
    );
    ensure!(
        counted.len() >= 3,
        "broken in five ways, counted under {counted:?}"
    );
    let (lines, logged) = logged_errors(&stopped.log)?;
    let own = lines
        .iter()
        .filter(|l| l.contains(&format!(" exporter {exporter} (")))
        .count();
    // A first line, and at the end what its gate held back after it; and the same for datagrams that
    // admitted no exporter state (a stub before the exporter spoke a known version).
    ensure!(
        (1..=2).contains(&own) && lines.len() <= 4,
        "{own} report lines for {exporter}, {} in all, for {} broken datagrams:\n{}",
        lines.len(),
        bad.len() * 100,
        stopped.log
    );
    // Every error the metrics counted is in the log, under the same reason.
    ensure!(
        logged == counted,
        "log says {logged:?}, metrics {counted:?}:\n{}",
        stopped.log
    );
    Ok(())
}
