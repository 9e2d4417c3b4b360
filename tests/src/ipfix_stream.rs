//! A stream of IPFIX flow records as many as a test wants, sent over UDP at the pace a collector
//! takes them: the test plays the exporter when it needs more records than a pcap would make quickly
//! (hundreds of thousands for the Elasticsearch sink's outage tests).
//!
//! Record `i` is a TCP flow 10.x.y.z:(1024 + i % 60000) -> 10.200.0.1:80 with `i + 1` octets, so every
//! record differs from every other. Pacing: the sender sends a burst, then polls the collector's
//! `podflow_collector_records_total` (bounded) until it has decoded the burst, so the socket's receive
//! buffer never overflows and the collector decodes exactly what was sent.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use anyhow::Context;
use proto_ipfix::{Encoder, FieldSpec, Template};

use crate::collector::scrape;
use crate::peer::wait_until;

/// The template: addresses, ports, protocol, counters, times.
fn template() -> anyhow::Result<Template> {
    let f = |id, len| FieldSpec::iana(id, len);
    Template::new(
        300,
        vec![
            f(8, 4),
            f(12, 4),
            f(7, 2),
            f(11, 2),
            f(4, 1),
            f(1, 8),
            f(2, 8),
            f(152, 8),
            f(153, 8),
        ],
    )
    .context("template")
}

/// Sends records `first..first + n` of the stream from `socket` to `to`, in bursts of `burst` messages,
/// waiting after each burst until the collector whose `/metrics` is at `metrics` has decoded
/// `base + sent` records (`base`: what it had decoded from this exporter before). Returns the records
/// sent.
pub fn send(
    socket: &UdpSocket,
    to: SocketAddr,
    metrics: SocketAddr,
    (first, n): (u64, u64),
    base: u64,
    encoder: &mut Encoder,
) -> anyhow::Result<u64> {
    const BURST: u64 = 64;
    let labels = "exporter=\"127.0.0.1\",protocol=\"ipfix\"";
    let mut sent = 0u64;
    let mut messages = 0u64;
    let mut buf = Vec::with_capacity(1500);
    while sent < n {
        buf.clear();
        let export_time = 1_700_000_000 + ((first + sent) / 1000) as u32;
        let mut m = encoder.message(export_time, &mut buf);
        if messages.is_multiple_of(100) {
            m.add_templates().context("templates")?;
        }
        while sent < n {
            let i = first + sent;
            let Ok(mut r) = m.record(300) else { break };
            let start = 1_700_000_000_000 + i;
            r.ipv4(Ipv4Addr::from(0x0a00_0000 | (i as u32 & 0x00ff_ffff)))
                .ipv4(Ipv4Addr::new(10, 200, 0, 1))
                .uint(1024 + i % 60_000)
                .uint(80)
                .uint(6)
                .uint(i + 1)
                .uint(1 + i % 7)
                .uint(start)
                .uint(start + 5);
            if r.commit().is_err() {
                break;
            }
            sent += 1;
        }
        m.finish();
        socket.send_to(&buf, to).context("sending")?;
        messages += 1;
        if messages.is_multiple_of(BURST) || sent == n {
            let want = base + sent;
            wait_until(
                "the collector to decode the burst",
                Duration::from_secs(60),
                || {
                    let got = scrape(metrics)?
                        .get("podflow_collector_records_total", labels)
                        .unwrap_or(0);
                    Ok(got >= want)
                },
            )?;
        }
    }
    Ok(sent)
}

/// The encoder of a stream (observation domain 1, 1400-octet messages).
pub fn encoder() -> anyhow::Result<Encoder> {
    let mut e = Encoder::new(1, 1400).context("encoder")?;
    e.add_template(template()?);
    Ok(e)
}

/// Records `0..n` of the stream from a new exporter socket to the collector `c`, paced by its count
/// (the whole stream a test needs when it plays one exporter once). Returns the records sent.
pub fn send_all(c: &crate::collector::Collector, n: u64) -> anyhow::Result<u64> {
    let socket = UdpSocket::bind("127.0.0.1:0").context("binding the exporter's socket")?;
    send(&socket, c.listen, c.metrics, (0, n), 0, &mut encoder()?)
}
