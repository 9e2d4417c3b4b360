//! The recorded stream: what podflow-exporter's [`IpfixWriter`] sends for flows of the cluster, one
//! writer (one probe) per node, biflow templates, the node name as observer, messages of at most 1400
//! octets; and the file it is kept in.
//!
//! File: the magic `PFSTRM01`, then per datagram a 16-octet header (exporter index u32, data records
//! u32, length u32, reserved u32, little-endian) and the datagram itself.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use anyhow::{Context, bail};
use podflow_exporter::export::{ExportConfig, IpfixWriter, ObserverInfo};
use podflow_exporter::flow::{Direction, EndReason, Expired, Flow, FlowKey};
use podflow_exporter::parse::{Fragment, PacketInfo};
use serde_json::json;

use crate::cluster::Cluster;
use podflow_e2e::pcapgen::Rng;

const MAGIC: &[u8; 8] = b"PFSTRM01";

/// One datagram of the stream.
pub struct Datagram {
    /// Which exporter sent it (index into the exporters).
    pub exporter: u32,
    /// Data records it holds.
    pub records: u32,
    /// The IPFIX message.
    pub bytes: Vec<u8>,
}

/// What to record.
pub struct RecordConfig {
    /// Data records in all.
    pub records: u64,
    /// Exporters (node probes), each on its own node.
    pub exporters: usize,
    /// Seed of every choice.
    pub seed: u64,
    /// Unix milliseconds of the first export.
    pub start_ms: u64,
    /// Records per second of stream time (sets the flows' and headers' times; templates are refreshed
    /// every 30 s of it).
    pub stream_rate: u64,
    /// Workloads each workload talks to (its dependencies, chosen once by the seed), as in a real
    /// cluster's call graph; 0: any pod talks to any pod (every flow almost surely a new workload pair).
    pub peers: usize,
    /// Largest IPFIX message.
    pub max_message_size: usize,
}

/// Totals of a recorded stream, to check collectors' output against.
#[derive(Default)]
pub struct Totals {
    /// Data records.
    pub records: u64,
    /// Datagrams.
    pub datagrams: u64,
    /// Octets of all datagrams.
    pub octets: u64,
    /// Packets of the initiators (forward counters).
    pub packets: u64,
    /// Octets of the initiators.
    pub bytes: u64,
    /// Packets of the responders (RFC 5103 reverse counters).
    pub reverse_packets: u64,
    /// Records over IPv6.
    pub v6: u64,
    /// Records whose both ends are pods or Services of the cluster.
    pub internal: u64,
}

impl Totals {
    /// The totals as JSON.
    pub fn json(&self, exporters: usize) -> serde_json::Value {
        json!({
            "records": self.records,
            "datagrams": self.datagrams,
            "octets": self.octets,
            "packets": self.packets,
            "bytes": self.bytes,
            "reverse_packets": self.reverse_packets,
            "v6_records": self.v6,
            "internal_records": self.internal,
            "exporters": exporters,
        })
    }
}

/// Records the stream into `out` and returns its totals.
pub fn record(cluster: &Cluster, cfg: &RecordConfig, out: &Path) -> anyhow::Result<Totals> {
    let exporters = cfg.exporters.clamp(1, cluster.nodes.len());
    let mut writers = Vec::with_capacity(exporters);
    for node in &cluster.nodes[..exporters] {
        writers.push(IpfixWriter::new(ExportConfig {
            max_message_size: cfg.max_message_size,
            observer: ObserverInfo {
                node_name: Some(node.name.clone()),
                ..ObserverInfo::default()
            },
            ..ExportConfig::default()
        })?);
    }
    let file = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    w.write_all(MAGIC)?;
    let mut rng = Rng::new(cfg.seed);
    let deps = dependencies(cluster, cfg.peers, cfg.seed);
    let mut totals = Totals::default();
    // The exporter ends flows in batches; every probe exports one batch per step.
    const BATCH: u64 = 64;
    let step_ms = (BATCH * exporters as u64 * 1000).div_ceil(cfg.stream_rate.max(1));
    let mut now = cfg.start_ms;
    let mut flows = Vec::with_capacity(BATCH as usize);
    // Per exporter: (sequence, length) of the message waiting for the next one's sequence number,
    // which tells how many records it held.
    let mut last: Vec<Option<Vec<u8>>> = vec![None; exporters];
    let mut error = None;
    while totals.records < cfg.records {
        for (e, writer) in writers.iter_mut().enumerate() {
            let n = BATCH.min(cfg.records - totals.records);
            if n == 0 {
                break;
            }
            flows.clear();
            for _ in 0..n {
                flows.push(flow(cluster, &deps, e, now, &mut rng, &mut totals)?);
            }
            writer.write(&flows, now, &mut |msg: &[u8]| {
                if let Some(prev) = last[e].replace(msg.to_vec()) {
                    let records = sequence(msg).wrapping_sub(sequence(&prev));
                    if let Err(err) = put(&mut w, e as u32, records, &prev) {
                        error.get_or_insert(err);
                    }
                    totals.datagrams += 1;
                    totals.octets += prev.len() as u64;
                }
            });
            let stats = writer.stats();
            if stats.encode_errors > 0 {
                bail!(
                    "the exporter's writer failed to encode {} flows",
                    stats.encode_errors
                );
            }
        }
        now += step_ms;
    }
    for (e, msg) in last.iter().enumerate() {
        if let Some(msg) = msg {
            let records = (writers[e].stats().records as u32).wrapping_sub(sequence(msg));
            put(&mut w, e as u32, records, msg)?;
            totals.datagrams += 1;
            totals.octets += msg.len() as u64;
        }
    }
    if let Some(err) = error {
        return Err(err);
    }
    w.flush()?;
    Ok(totals)
}

fn sequence(msg: &[u8]) -> u32 {
    u32::from_be_bytes([msg[8], msg[9], msg[10], msg[11]])
}

fn put(w: &mut impl Write, exporter: u32, records: u32, msg: &[u8]) -> anyhow::Result<()> {
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&exporter.to_le_bytes());
    h[4..8].copy_from_slice(&records.to_le_bytes());
    h[8..12].copy_from_slice(&(msg.len() as u32).to_le_bytes());
    w.write_all(&h)?;
    w.write_all(msg)?;
    Ok(())
}

/// Reads a recorded stream.
pub fn load(path: &Path) -> anyhow::Result<Vec<Datagram>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)?;
    if &magic != MAGIC {
        bail!("{} is not a recorded stream", path.display());
    }
    let mut out = Vec::new();
    let mut h = [0u8; 16];
    loop {
        match r.read_exact(&mut h) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.into()),
        }
        let word = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let mut bytes = vec![0u8; word(8) as usize];
        r.read_exact(&mut bytes)?;
        out.push(Datagram {
            exporter: word(0),
            records: word(4),
            bytes,
        });
    }
    Ok(out)
}

/// Per workload, the workloads it talks to (`peers` of them, never itself when there are others); empty
/// lists when `peers` is 0.
fn dependencies(c: &Cluster, peers: usize, seed: u64) -> Vec<Vec<usize>> {
    let n = c.workloads.len();
    let peers = if n > 1 { peers } else { 0 };
    let mut rng = Rng::new(seed ^ 0xde95);
    (0..n)
        .map(|w| {
            (0..peers)
                .map(|_| {
                    let d = rng.range(0, n as u64 - 2) as usize;
                    if d >= w { d + 1 } else { d }
                })
                .collect()
        })
        .collect()
}

/// One flow of exporter `e`'s node, ended at about `now`; with dependencies, its server is one of the
/// client's workload's.
fn flow(
    c: &Cluster,
    deps: &[Vec<usize>],
    e: usize,
    now: u64,
    rng: &mut Rng,
    t: &mut Totals,
) -> anyhow::Result<Expired> {
    let local = &c.pods_on[e];
    let client = &c.pods[local[rng.range(0, local.len() as u64 - 1) as usize]];
    let mine = deps.get(client.workload).filter(|d| !d.is_empty());
    // The workload the client talks to: one of its dependencies, or any.
    let server_workload = |rng: &mut Rng, from: u64| match mine {
        Some(d) => d[rng.range(0, d.len() as u64 - 1) as usize],
        None => rng.range(from, c.workloads.len() as u64 - 1) as usize,
    };
    let pick = |rng: &mut Rng| {
        let w = mine.map(|_| &c.workloads[server_workload(rng, 0)]);
        match w.filter(|w| !w.pods.is_empty()) {
            Some(w) => &c.pods[w.pods[rng.range(0, w.pods.len() as u64 - 1) as usize]],
            None => &c.pods[rng.range(0, c.pods.len() as u64 - 1) as usize],
        }
    };
    let ephemeral = |rng: &mut Rng| rng.range(32_768, 60_999) as u16;
    let roll = rng.range(0, 99);
    let (src, dst, proto, sport, dport, internal) = match roll {
        // Pod to pod, to a Deployment's port.
        0..=54 => {
            let server = pick(rng);
            let w = &c.workloads[server.workload];
            (
                IpAddr::V4(client.ip4),
                IpAddr::V4(server.ip4),
                w.proto,
                ephemeral(rng),
                w.port,
                true,
            )
        }
        // Pod to a Service's ClusterIP, as a probe on the client's side sees it before NAT.
        55..=69 => {
            let w = &c.workloads[server_workload(rng, 1)];
            (
                IpAddr::V4(client.ip4),
                IpAddr::V4(w.cluster_ip),
                w.proto,
                ephemeral(rng),
                w.port,
                true,
            )
        }
        // DNS lookups to the cluster DNS pods.
        70..=84 => {
            let dns = &c.workloads[0];
            let server = &c.pods[dns.pods[rng.range(0, dns.pods.len() as u64 - 1) as usize]];
            (
                IpAddr::V4(client.ip4),
                IpAddr::V4(server.ip4),
                17,
                ephemeral(rng),
                53,
                true,
            )
        }
        // To the Internet.
        85..=92 => {
            let ext = Ipv4Addr::from(rng.range(0x0100_0000, 0xdfff_ffff) as u32);
            let (proto, port) = if rng.chance(80) { (6, 443) } else { (17, 443) };
            (
                IpAddr::V4(client.ip4),
                IpAddr::V4(ext),
                proto,
                ephemeral(rng),
                port,
                false,
            )
        }
        // Pod to pod over IPv6.
        93..=96 => {
            let server = pick(rng);
            let w = &c.workloads[server.workload];
            (
                IpAddr::V6(client.ip6),
                IpAddr::V6(server.ip6),
                w.proto,
                ephemeral(rng),
                w.port,
                true,
            )
        }
        // Pings between pods.
        _ => {
            let server = pick(rng);
            (IpAddr::V4(client.ip4), IpAddr::V4(server.ip4), 1, 8, 0, true)
        }
    };
    let info = PacketInfo {
        src,
        dst,
        proto,
        sport,
        dport,
        ip_len: 0,
        tcp_flags: 0,
        fragment: Fragment::Whole,
    };
    let (key, client_side) = FlowKey::of(&info).context("addresses of two families")?;
    let tcp = proto == 6;
    let fwd_packets = if proto == 17 && dport == 53 {
        1
    } else {
        rng.count(8)
    };
    let rev_packets = if rng.chance(3) {
        0
    } else {
        fwd_packets + rng.range(0, fwd_packets)
    };
    let size = |rng: &mut Rng, p: u64| p * rng.range(52, 1500);
    let mut dirs = [Direction::default(); 2];
    dirs[client_side.index()] = Direction {
        octets: size(rng, fwd_packets),
        packets: fwd_packets,
        tcp_flags: if tcp { 0x1b } else { 0 },
    };
    dirs[client_side.flip().index()] = Direction {
        octets: size(rng, rev_packets),
        packets: rev_packets,
        tcp_flags: if tcp && rev_packets > 0 { 0x1b } else { 0 },
    };
    t.records += 1;
    t.packets += fwd_packets;
    t.bytes += dirs[client_side.index()].octets;
    t.reverse_packets += rev_packets;
    t.v6 += u64::from(src.is_ipv6());
    t.internal += u64::from(internal);
    let end_ms = now.saturating_sub(rng.range(0, 2_000));
    let start_ms = end_ms.saturating_sub(rng.range(0, 30_000));
    let reason = match (tcp, rng.range(0, 9)) {
        (_, 0) => EndReason::ActiveTimeout,
        (true, _) => EndReason::EndOfFlow,
        (false, _) => EndReason::IdleTimeout,
    };
    Ok(Expired {
        key,
        flow: Flow {
            start_ms,
            end_ms,
            dirs,
            icmp_type_code: if proto == 1 { 8 << 8 } else { 0 },
            initiator: Some(client_side),
            initiator_sure: true,
            fin: [tcp; 2],
            rst: false,
        },
        reason,
    })
}
