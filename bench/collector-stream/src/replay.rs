//! Sends a recorded stream to one collector over loopback UDP at a steady rate, as many times over as
//! asked. Every exporter sends from its own loopback address (127.0.1.N), so collectors tell them apart
//! as they would real probes. Each repetition moves the sequence numbers on by the records the exporter
//! sent before and the export times by the recording's span, so the stream reads as one long run with
//! nothing lost (and templates refreshed at every repetition, as the recording starts with them).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

use crate::stream::Datagram;

/// The loopback address exporter `index` of a recording sends from (127.0.1.1 onwards).
pub fn exporter_ip(index: u32) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 1, (index % 250 + 1) as u8)
}

/// How to replay.
pub struct ReplayConfig {
    /// The collector.
    pub to: SocketAddr,
    /// Datagrams per second.
    pub rate: f64,
    /// Times the recording is sent.
    pub loops: u32,
}

/// Replays `stream` and returns a JSON report: what was sent, how long it took, and how far behind its
/// schedule the sender fell at worst.
pub fn replay(stream: &[Datagram], cfg: &ReplayConfig) -> anyhow::Result<serde_json::Value> {
    let exporters = stream.iter().map(|d| d.exporter as usize + 1).max().unwrap_or(0);
    let mut sockets = Vec::with_capacity(exporters);
    for e in 0..exporters {
        let ip = exporter_ip(e as u32);
        let s = UdpSocket::bind((ip, 0)).with_context(|| format!("binding {ip}"))?;
        s.connect(cfg.to)
            .with_context(|| format!("connecting to {}", cfg.to))?;
        sockets.push(s);
    }
    let mut per_loop = vec![0u32; exporters];
    let (mut first, mut last) = (u32::MAX, 0u32);
    for d in stream {
        per_loop[d.exporter as usize] = per_loop[d.exporter as usize].wrapping_add(d.records);
        let t = export_time(&d.bytes);
        first = first.min(t);
        last = last.max(t);
    }
    let span = last.saturating_sub(first).saturating_add(1);
    let mut buf = vec![0u8; 65_536];
    let (mut sent, mut records, mut octets, mut errors) = (0u64, 0u64, 0u64, 0u64);
    let mut max_lag = Duration::ZERO;
    let interval = 1.0 / cfg.rate.max(1.0);
    let start = Instant::now();
    for lap in 0..cfg.loops {
        for d in stream {
            let due = start + Duration::from_secs_f64(sent as f64 * interval);
            let now = Instant::now();
            if due > now {
                let ahead = due - now;
                if ahead > Duration::from_micros(100) {
                    std::thread::sleep(ahead);
                } else {
                    while Instant::now() < due {
                        std::hint::spin_loop();
                    }
                }
            } else {
                max_lag = max_lag.max(now - due);
            }
            let msg = &mut buf[..d.bytes.len()];
            msg.copy_from_slice(&d.bytes);
            let seq = u32::from_be_bytes([msg[8], msg[9], msg[10], msg[11]])
                .wrapping_add(per_loop[d.exporter as usize].wrapping_mul(lap));
            msg[8..12].copy_from_slice(&seq.to_be_bytes());
            let t = export_time(msg).wrapping_add(span.wrapping_mul(lap));
            msg[4..8].copy_from_slice(&t.to_be_bytes());
            match sockets[d.exporter as usize].send(msg) {
                Ok(_) => {
                    records += u64::from(d.records);
                    octets += msg.len() as u64;
                }
                Err(_) => errors += 1,
            }
            sent += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(json!({
        "datagrams": sent,
        "records": records,
        "octets": octets,
        "send_errors": errors,
        "seconds": secs,
        "datagrams_per_second": sent as f64 / secs.max(1e-9),
        "max_lag_ms": max_lag.as_secs_f64() * 1000.0,
    }))
}

fn export_time(msg: &[u8]) -> u32 {
    u32::from_be_bytes([msg[4], msg[5], msg[6], msg[7]])
}
