//! Peers as exporters: other flow meters read one generated pcap (`podflow_e2e::pcapgen`) and export
//! what they count to `podflow-collector` over loopback; the collector's NDJSON documents must add up to
//! the totals each peer reports and to the generator's own, every difference explained:
//! - softflowd 1.1 (`-r`), as NetFlow v5, NetFlow v9 and IPFIX ([`softflowd`]);
//! - pmacct 1.7's `pmacctd` reading the file (`pcap_savefile`) with its nfprobe plugin, as NetFlow v9 and
//!   IPFIX ([`pmacct`]);
//! - `podflow-exporter --pcap`, IPFIX biflows and `--uniflow` records: exact flow by flow, and every
//!   document's `network.community_id` equal to the Community ID of its generated flow.
//!
//! Each run starts a collector, runs the peer until it exits after the end of the file (each flushes every
//! flow then), polls the collector's `/metrics` (bounded) until `podflow_collector_records_total` of the
//! exporter reaches what the peer exported, stops the collector with SIGTERM (it drains, flushes and
//! exits 0) and parses every NDJSON line. Every run also requires of `/metrics`: no decode error, no
//! template miss, nothing missing by sequence numbers (softflowd's IPFIX included, whose numbering
//! differs: see [`softflowd_ipfix`]), nothing dropped.
//!
//! Documents are checked against the generated flows: each is matched by its 5-tuple (either direction)
//! to a flow, its `network.packets`/`network.bytes` must be the sum of its `source.*` and `destination.*`
//! counters, and its Community ID that of the flow, which the test computes with
//! `proto_ipfix::community_id` (ICMP flows as echo request and reply).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, anyhow, bail, ensure};
use podflow_e2e::binaries;
use podflow_e2e::collector::{Collector, Metrics, Stopped};
use podflow_e2e::expect::Mismatches;
use podflow_e2e::pcapgen::{self, Config, FlowTruth, Summary};
use podflow_e2e::peer::{self, PeerProcess};
use proto_ipfix::community_id::CommunityId;
use serde_json::Value;

struct Generated {
    dir: tempfile::TempDir,
    pcap: PathBuf,
    summary: Summary,
    truth: Vec<FlowTruth>,
    /// Ethernet padding of IPv4 and of IPv6 frames, read back from the file.
    padding: [u64; 2],
    /// (server, client) of the flows whose response came as IPv4 fragments.
    fragment_pairs: HashSet<(IpAddr, IpAddr)>,
}

fn generate() -> anyhow::Result<Generated> {
    let dir = tempfile::tempdir()?;
    let pcap = dir.path().join("flows.pcap");
    let mut truth = Vec::new();
    let summary = pcapgen::generate_file(&Config::mixed(), &pcap, Some(&mut truth))?;
    let padding = padding_by_family(&pcap)?;
    // The file must hold what the explanations below are about.
    assert!(summary.later_fragments > 0 && summary.by_family[1].flows > 0 && summary.by_kind[2].flows > 0);
    assert!(
        padding[0] > 0,
        "no padded frame: the octet checks would not tell padding from IP octets"
    );
    assert_eq!(padding[0] + padding[1], summary.padding_octets);
    let fragment_pairs = truth
        .iter()
        .filter(|t| t.later_fragments > 0)
        .map(|t| (t.server, t.client))
        .collect();
    Ok(Generated {
        dir,
        pcap,
        summary,
        truth,
        padding,
        fragment_pairs,
    })
}

/// Ethernet padding (frame length less the Ethernet header and the IP packet) by family, from the file:
/// the generator's summary gives only the total. An IPv6 frame is never padded (40 octets of IPv6 header
/// and 8 of ICMPv6 or UDP already make 62), so all of it is IPv4's.
fn padding_by_family(pcap: &Path) -> anyhow::Result<[u64; 2]> {
    let b = std::fs::read(pcap)?;
    ensure!(
        b.get(..4) == Some(&0xa1b2_c3d4u32.to_le_bytes()[..]),
        "not a classic pcap"
    );
    let le32 = |at: usize| {
        b.get(at..at + 4)
            .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]) as usize)
    };
    let mut out = [0u64; 2];
    let mut at = 24;
    while at < b.len() {
        let (cap, orig) = le32(at + 8)
            .zip(le32(at + 12))
            .context("truncated record header")?;
        let f = b.get(at + 16..at + 16 + cap).context("truncated frame")?;
        at += 16 + cap;
        let be16 = |i: usize| {
            f.get(i..i + 2)
                .map(|x| usize::from(u16::from_be_bytes([x[0], x[1]])))
        };
        let (family, ip_len) = match be16(12) {
            Some(0x0800) => (0, be16(16).context("short IPv4 frame")?),
            Some(0x86dd) => (1, 40 + be16(18).context("short IPv6 frame")?),
            other => bail!("frame of ethertype {other:?}"),
        };
        out[family] += orig
            .checked_sub(14 + ip_len)
            .context("frame shorter than its IP packet")? as u64;
    }
    Ok(out)
}

/// What a run must show in the collector's counters.
struct Expect {
    /// Protocol label of the exporter's counters: `netflow_v5`, `netflow_v9` or `ipfix`.
    protocol: &'static str,
    /// Records the peer exported.
    records: u64,
    /// Datagrams the peer sent, when it says.
    datagrams: Option<u64>,
}

/// Runs `producer(port)` to completion into a fresh collector (`expect` reads the peer's output), checks
/// the collector's counters, and returns what the stopped collector left and its last `/metrics`.
fn collect(
    g: &Generated,
    name: &str,
    producer: impl FnOnce(u16) -> anyhow::Result<Command>,
    expect: impl FnOnce(&Output) -> anyhow::Result<Expect>,
) -> anyhow::Result<(Stopped, Metrics)> {
    let work = g.dir.path();
    let mut collector = Collector::start(name, work, 2)?;
    let peer = PeerProcess::spawn(name, &mut producer(collector.port())?, work)?.wait_exit()?;
    ensure!(peer.status.success(), "{name} failed:\n{}", peer::describe(&peer));
    let e = expect(&peer).with_context(|| format!("{name}:\n{}", peer::describe(&peer)))?;
    let labels = format!("exporter=\"127.0.0.1\",protocol=\"{}\"", e.protocol);
    let metrics = collector.wait_records(&labels, e.records)?;
    let stopped = collector.stop()?;
    let mut m = Mismatches::new();
    // Every record the collector counted is the peer's, and reached the NDJSON file.
    m.check(
        "records_total of the exporter",
        metrics.get("podflow_collector_records_total", &labels),
        Some(e.records),
    );
    m.check(
        "records_total, all exporters",
        metrics.sum("podflow_collector_records_total"),
        e.records,
    );
    if let Some(d) = e.datagrams {
        m.check(
            "datagrams_total",
            metrics.get("podflow_collector_datagrams_total", &labels),
            Some(d),
        );
    }
    m.check("records decoded (closing line)", stopped.records, e.records);
    m.check("documents written (closing line)", stopped.documents, e.records);
    m.check("NDJSON lines", stopped.docs.len() as u64, e.records);
    let nothing = [
        "podflow_collector_decode_errors_total",
        "podflow_collector_template_misses_total",
        "podflow_collector_lost_datagrams_total",
        "podflow_collector_dropped_datagrams_total",
        "podflow_collector_dropped_records_total",
        "podflow_collector_sink_failures_total",
        "podflow_collector_lost_records_total",
    ];
    for name in nothing {
        for sample in metrics.nonzero(name) {
            m.fail(format!("want 0: {sample}"));
        }
    }
    m.finish(&format!("{name} into podflow-collector"))
        .map_err(|e| anyhow!("{e:#}\ncollector log:\n{}", stopped.log))?;
    Ok((stopped, metrics))
}

/// A document's flow fields.
#[derive(Debug)]
struct Doc {
    proto: u8,
    src: (IpAddr, u16),
    dst: (IpAddr, u16),
    /// Packets and octets sent by the source, and by the destination (biflow documents only).
    forward: [u64; 2],
    reverse: Option<[u64; 2]>,
    network: [u64; 2],
    community_id: String,
    version: u64,
}

fn doc(v: &Value) -> anyhow::Result<Doc> {
    let num = |path: &str| v.pointer(path).and_then(Value::as_u64);
    let need = |path: &str| num(path).with_context(|| format!("no {path} in {v}"));
    let ip = |path: &str| -> anyhow::Result<IpAddr> {
        let s = v.pointer(path).and_then(Value::as_str);
        Ok(s.with_context(|| format!("no {path} in {v}"))?.parse()?)
    };
    let proto = v.pointer("/network/iana_number").and_then(Value::as_str);
    let reverse = match (num("/destination/packets"), num("/destination/bytes")) {
        (Some(p), Some(b)) => Some([p, b]),
        (None, None) => None,
        _ => bail!("destination has packets or bytes alone: {v}"),
    };
    Ok(Doc {
        proto: proto
            .with_context(|| format!("no network.iana_number in {v}"))?
            .parse()?,
        // ICMP documents have no ports; the generated ICMP flows have port 0.
        src: (ip("/source/ip")?, num("/source/port").unwrap_or(0) as u16),
        dst: (
            ip("/destination/ip")?,
            num("/destination/port").unwrap_or(0) as u16,
        ),
        forward: [need("/source/packets")?, need("/source/bytes")?],
        reverse,
        network: [need("/network/packets")?, need("/network/bytes")?],
        community_id: v
            .pointer("/network/community_id")
            .and_then(Value::as_str)
            .with_context(|| format!("no network.community_id in {v}"))?
            .to_string(),
        version: need("/podflow/exporter/version")?,
    })
}

/// How documents must relate to the generated flows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PerFlow {
    /// One biflow document per flow, the initiator's and responder's counters exact.
    Biflow,
    /// One document per direction with packets, its counters exact.
    Uniflow,
    /// Documents of one direction each; only totals are compared (see softflowd).
    Totals,
}

struct Want {
    version: u64,
    packets: u64,
    octets: u64,
    per_flow: PerFlow,
    /// Documents of softflowd's later-fragment flows, which match no generated 5-tuple.
    fragment_documents: u64,
}

fn community_id(src: (IpAddr, u16), dst: (IpAddr, u16), proto: u8) -> String {
    CommunityId::default()
        .hash(src.0, dst.0, proto, src.1, dst.1)
        .map(|d| d.base64().to_string())
        .unwrap_or_default()
}

/// The Community ID of a generated flow; ICMP flows are echo requests (type 8, ICMPv6 128, code 0) and
/// their replies, which the Community ID hashes alike.
fn flow_community_id(t: &FlowTruth) -> String {
    let (sport, dport) = match t.proto {
        1 => (8, 0),
        58 => (128, 0),
        _ => (t.client_port, t.server_port),
    };
    community_id((t.client, sport), (t.server, dport), t.proto)
}

type Key = (u8, (IpAddr, u16), (IpAddr, u16));

fn key(proto: u8, a: (IpAddr, u16), b: (IpAddr, u16)) -> Key {
    (proto, a.min(b), a.max(b))
}

/// Checks every document against the generated flows; returns the number of comparisons.
fn check_documents(g: &Generated, name: &str, stopped: &Stopped, want: &Want) -> anyhow::Result<usize> {
    let docs = stopped.docs.iter().map(doc).collect::<anyhow::Result<Vec<_>>>()?;
    let index: std::collections::HashMap<Key, &FlowTruth> = g
        .truth
        .iter()
        .map(|t| {
            (
                key(t.proto, (t.client, t.client_port), (t.server, t.server_port)),
                t,
            )
        })
        .collect();
    let mut m = Mismatches::new();
    let sum = |i: usize| docs.iter().map(|d| d.network[i]).sum::<u64>();
    m.check("packets (network.packets summed)", sum(0), want.packets);
    m.check("octets (network.bytes summed)", sum(1), want.octets);
    let (mut seen, mut fragment_docs) = (HashSet::new(), 0);
    for d in &docs {
        let rev = d.reverse.unwrap_or([0, 0]);
        m.check(
            format!("{d:?} network = source + destination"),
            d.network,
            [d.forward[0] + rev[0], d.forward[1] + rev[1]],
        );
        m.check(format!("{d:?} exporter version"), d.version, want.version);
        let Some(t) = index.get(&key(d.proto, d.src, d.dst)) else {
            // softflowd keys a later IPv4 fragment (no ports) apart: server to client, ports 0.
            if d.proto == 17 && d.src.1 == 0 && d.dst.1 == 0 && g.fragment_pairs.contains(&(d.src.0, d.dst.0))
            {
                fragment_docs += 1;
                m.check(
                    format!("{d:?} community_id"),
                    &d.community_id,
                    &community_id(d.src, d.dst, 17),
                );
            } else {
                m.fail(format!("document of no generated flow: {d:?}"));
            }
            continue;
        };
        m.check(
            format!("{d:?} community_id"),
            &d.community_id,
            &flow_community_id(t),
        );
        let side = usize::from(d.src != (t.client, t.client_port));
        let sent = |s: usize| [t.packets[s], t.octets[s]];
        match want.per_flow {
            PerFlow::Biflow => {
                if !seen.insert((t.client, t.client_port, t.proto, 0)) {
                    m.fail(format!("second document of one flow: {d:?}"));
                }
                m.check(format!("{d:?} source counters"), d.forward, sent(side));
                m.check(
                    format!("{d:?} destination counters"),
                    d.reverse,
                    Some(sent(1 - side)),
                );
            }
            PerFlow::Uniflow => {
                if !seen.insert((t.client, t.client_port, t.proto, side)) {
                    m.fail(format!("second document of one direction: {d:?}"));
                }
                m.check(format!("{d:?} source counters"), d.forward, sent(side));
                m.check(format!("{d:?} destination counters"), d.reverse, None);
            }
            PerFlow::Totals => m.check(format!("{d:?} destination counters"), d.reverse, None),
        }
    }
    m.check(
        "documents of later-fragment flows",
        fragment_docs,
        want.fragment_documents,
    );
    let checked = m.finish(&format!("{name} documents"))?;
    eprintln!(
        "{name}: {} documents, {} packets, {} octets",
        docs.len(),
        sum(0),
        sum(1)
    );
    Ok(checked)
}

/// What softflowd prints at exit with `-d`: packets processed, records and datagrams exported, and the
/// octets and packets of its per-protocol statistics, summed.
#[derive(Debug, PartialEq, Eq)]
struct SoftflowdReport {
    processed: u64,
    records: u64,
    datagrams: u64,
    octets: u64,
    packets: u64,
}

fn softflowd_report(stdout: &str) -> anyhow::Result<SoftflowdReport> {
    let field = |prefix: &str| -> anyhow::Result<&str> {
        let line = stdout.lines().find_map(|l| l.trim().strip_prefix(prefix));
        line.with_context(|| format!("no line starting {prefix:?}"))
    };
    let first = |s: &str| -> anyhow::Result<u64> {
        let word = s.split_whitespace().next().unwrap_or("");
        word.trim_start_matches('(')
            .parse()
            .with_context(|| format!("{word:?} in {s:?}"))
    };
    // "Flows exported: 4425 (7987 records) in 306 packets (0 failures)"
    let exported = field("Flows exported:")?;
    let (_, after) = exported.split_once('(').context("no record count")?;
    let (_, datagrams) = after.split_once(" in ").context("no datagram count")?;
    // "           tcp (6):       19269812        38073       0.35s       1.36s"
    let (mut octets, mut packets) = (0, 0);
    let stats = stdout
        .split("Per-protocol statistics:")
        .nth(1)
        .context("no per-protocol statistics")?;
    for line in stats.lines().skip(1).filter(|l| l.contains("):")) {
        let mut cols = line.split("):").nth(1).unwrap_or("").split_whitespace();
        octets += first(cols.next().unwrap_or(""))?;
        packets += first(cols.next().unwrap_or(""))?;
    }
    Ok(SoftflowdReport {
        processed: first(field("Packets processed:")?)?,
        records: first(after)?,
        datagrams: first(datagrams)?,
        octets,
        packets,
    })
}

/// softflowd 1.1 reading the file, exporting `version` (5, 9 or 10).
///
/// Octets: softflowd counts a packet as the frame's length less the Ethernet header (`phdr->len -
/// skiplen`), so short frames count their Ethernet padding: its octets are the IP octets plus the padding.
///
/// Records: one per direction with packets (it tracks flows both ways but exports them as two records),
/// plus one per (server, client) pair that sent a fragmented response: it keys later IPv4 fragments, which
/// carry no ports, with ports 0, apart from their first fragment's flow. ICMP requests and replies are two
/// flows (the type is in its key) of one direction each, so still one record per direction.
///
/// NetFlow v5 carries IPv4 only; without `-6` softflowd ignores IPv6 packets as non-IP, so its v5 totals
/// are the generator's IPv4 ones (and all the padding: IPv6 frames are never padded).
fn softflowd(version: u8) -> anyhow::Result<()> {
    let Some(softflowd) = peer::require("softflowd", "softflowd")? else {
        return Ok(());
    };
    let g = generate()?;
    let s = &g.summary;
    let name = format!("softflowd-v{version}");
    let work = g.dir.path().to_path_buf();
    let mut report = None;
    let (stopped, _) = collect(
        &g,
        &name,
        |port| {
            let mut cmd = Command::new(&softflowd);
            cmd.arg("-r")
                .arg(&g.pcap)
                .args([
                    "-n",
                    &format!("127.0.0.1:{port}"),
                    "-v",
                    &version.to_string(),
                    "-d",
                ])
                // Its pid file defaults to /var/run: keep it in the test's directory.
                .arg("-p")
                .arg(work.join(format!("{name}.pid")))
                // No control socket: with one, softflowd 1.1 can block in accept() after the end of the
                // file instead of exiting.
                .args(["-c", "none"]);
            Ok(cmd)
        },
        |out| {
            let r = softflowd_report(&String::from_utf8_lossy(&out.stdout))?;
            let e = Expect {
                protocol: match version {
                    5 => "netflow_v5",
                    9 => "netflow_v9",
                    _ => "ipfix",
                },
                records: r.records,
                datagrams: Some(r.datagrams),
            };
            report = Some(r);
            Ok(e)
        },
    )?;
    let r = report.context("no softflowd report")?;
    let counts = if version == 5 { s.by_family[0] } else { s.total };
    let padding = g.padding[0] + if version == 5 { 0 } else { g.padding[1] };
    let want = Want {
        version: u64::from(version),
        packets: counts.packets,
        octets: counts.octets + padding,
        per_flow: PerFlow::Totals,
        fragment_documents: g.fragment_pairs.len() as u64,
    };
    // What softflowd says it did, against the generator.
    let mut m = Mismatches::new();
    m.check("packets processed", r.processed, counts.packets);
    m.check("packets (per-protocol statistics)", r.packets, want.packets);
    m.check(
        "octets (per-protocol statistics: IP octets + Ethernet padding)",
        r.octets,
        want.octets,
    );
    m.check(
        "records (directions + fragment flows)",
        r.records,
        counts.directions + want.fragment_documents,
    );
    m.finish(&format!("{name}'s own report"))?;
    check_documents(&g, &name, &stopped, &want)?;
    eprintln!(
        "{name}: reported {r:?}; generated {} packets, {} IP octets + {padding} of padding, {} directions",
        counts.packets, counts.octets, counts.directions
    );
    Ok(())
}

#[test]
fn softflowd_netflow_v5() -> anyhow::Result<()> {
    softflowd(5)
}

#[test]
fn softflowd_netflow_v9() -> anyhow::Result<()> {
    softflowd(9)
}

/// softflowd 1.1's IPFIX sequence numbers do not follow RFC 7011: the header carries the data records
/// sent *including* the message's own (its NetFlow v9 sequence numbers count datagrams as RFC 3954
/// asks). A collector expecting each message's number to be the previous one plus that message's
/// records would count a loss whenever two messages hold different numbers of records; podflow's
/// decoder recognises this numbering, so [`collect`] holds `lost_records_total` to 0 here as for every
/// other peer (it was 2,201 before it did).
#[test]
fn softflowd_ipfix() -> anyhow::Result<()> {
    softflowd(10)
}

/// pmacct 1.7's `pmacctd` reading the file with its nfprobe plugin, exporting `version` (9 or 10).
///
/// pmacct prints no totals, so what it must have sent comes from the generator, and it is exact: octets
/// are IP octets (pmacctd takes a packet's length from its IP header, so Ethernet padding never counts),
/// and records are one per direction with packets (nfprobe, derived from softflowd, exports the two
/// directions of a flow as two records; pmacctd's fragment table gives later IPv4 fragments the ports of
/// their first fragment, so they count in their flow rather than apart as in softflowd).
fn pmacct(version: u8) -> anyhow::Result<()> {
    let Some(pmacctd) = peer::require("pmacctd", "pmacct")? else {
        return Ok(());
    };
    let g = generate()?;
    let s = &g.summary;
    let name = format!("pmacct-nfprobe-v{version}");
    let config = g.dir.path().join(format!("{name}.conf"));
    let (stopped, _) = collect(
        &g,
        &name,
        |port| {
            std::fs::write(
                &config,
                format!(
                    "daemonize: false\npcap_savefile: {}\nplugins: nfprobe\nnfprobe_receiver: \
                     127.0.0.1:{port}\nnfprobe_version: {version}\n",
                    g.pcap.display()
                ),
            )?;
            let mut cmd = Command::new(&pmacctd);
            cmd.arg("-f").arg(&config);
            Ok(cmd)
        },
        |out| {
            // pmacctd's core hands packets to the plugin through a ring buffer it never waits on; an
            // overrun loses packets and is logged, and would show as missing records below.
            let log = String::from_utf8_lossy(&out.stderr);
            ensure!(!log.contains("Missing data"), "pmacctd's plugin queue overran");
            Ok(Expect {
                protocol: if version == 9 { "netflow_v9" } else { "ipfix" },
                records: s.total.directions,
                datagrams: None,
            })
        },
    )?;
    let want = Want {
        version: u64::from(version),
        packets: s.total.packets,
        octets: s.total.octets,
        per_flow: PerFlow::Uniflow,
        fragment_documents: 0,
    };
    check_documents(&g, &name, &stopped, &want)?;
    Ok(())
}

#[test]
fn pmacct_nfprobe_netflow_v9() -> anyhow::Result<()> {
    pmacct(9)
}

#[test]
fn pmacct_nfprobe_ipfix() -> anyhow::Result<()> {
    pmacct(10)
}

/// `podflow-exporter --pcap` into the collector: one document per flow (biflow) or per direction with
/// packets (`--uniflow`), every counter exact, and the Community ID the exporter computed equal to the
/// test's.
fn podflow(uniflow: bool) -> anyhow::Result<()> {
    let exporter = binaries::podflow_exporter()?;
    let g = generate()?;
    let s = &g.summary;
    let name = if uniflow {
        "podflow-uniflow"
    } else {
        "podflow-biflow"
    };
    let records = if uniflow {
        s.total.directions
    } else {
        s.total.flows
    };
    let (stopped, _) = collect(
        &g,
        name,
        |port| {
            let mut cmd = Command::new(&exporter);
            cmd.arg("--pcap")
                .arg(&g.pcap)
                .args(["--collector", &format!("127.0.0.1:{port}")]);
            if uniflow {
                cmd.arg("--uniflow");
            }
            Ok(cmd)
        },
        |out| {
            let summary = podflow_e2e::exported::exporter_summary(&String::from_utf8_lossy(&out.stderr))?;
            let (sent, messages) = (summary.records, summary.messages);
            ensure!(sent == records, "exported {sent} records, generated {records}");
            Ok(Expect {
                protocol: "ipfix",
                records,
                datagrams: Some(messages),
            })
        },
    )?;
    let want = Want {
        version: 10,
        packets: s.total.packets,
        octets: s.total.octets,
        per_flow: if uniflow {
            PerFlow::Uniflow
        } else {
            PerFlow::Biflow
        },
        fragment_documents: 0,
    };
    let checked = check_documents(&g, name, &stopped, &want)?;
    assert!(checked > 3 * stopped.docs.len(), "only {checked} comparisons");
    Ok(())
}

#[test]
fn podflow_exporter_biflows() -> anyhow::Result<()> {
    podflow(false)
}

#[test]
fn podflow_exporter_uniflows() -> anyhow::Result<()> {
    podflow(true)
}

/// The document checks can fail: a document whose counters or Community ID differ from its flow's, or
/// that belongs to no generated flow, is reported.
#[test]
fn document_checks_detect_wrong_counters_and_ids() -> anyhow::Result<()> {
    let g = generate()?;
    let t = g.truth.iter().find(|t| t.proto == 6).unwrap();
    let json = |cid: &str, packets: u64, port: u16| {
        serde_json::json!({
            "source": {"ip": t.client.to_string(), "port": port, "packets": packets, "bytes": t.octets[0]},
            "destination": {"ip": t.server.to_string(), "port": t.server_port},
            "network": {"iana_number": "6", "packets": packets, "bytes": t.octets[0], "community_id": cid},
            "podflow": {"exporter": {"version": 10}},
        })
    };
    let right = flow_community_id(t);
    let stopped = |docs| Stopped {
        records: 1,
        documents: 1,
        docs,
        log: String::new(),
    };
    let want = Want {
        version: 10,
        packets: t.packets[0],
        octets: t.octets[0],
        per_flow: PerFlow::Uniflow,
        fragment_documents: 0,
    };
    check_documents(
        &g,
        "right",
        &stopped(vec![json(&right, t.packets[0], t.client_port)]),
        &want,
    )?;
    for (what, doc) in [
        (
            "community_id",
            json("1:AAAAAAAAAAAAAAAAAAAAAAAAAAA=", t.packets[0], t.client_port),
        ),
        ("source counters", json(&right, t.packets[0] + 1, t.client_port)),
        (
            "document of no generated flow",
            json(&right, t.packets[0], t.client_port ^ 1),
        ),
    ] {
        let err = check_documents(&g, what, &stopped(vec![doc]), &want)
            .expect_err(what)
            .to_string();
        assert!(err.contains(what), "{err}");
    }
    Ok(())
}

#[test]
fn softflowd_report_is_parsed() -> anyhow::Result<()> {
    let out = "Number of active flows: 0\nPackets processed: 42955\nFragments: 96\n\
               Flows exported: 4425 (7987 records) in 306 packets (0 failures)\n\n\
               Per-protocol statistics:     Octets      Packets   Avg Life    Max Life\n\
               \x20          icmp (1):         110880         1320       0.95s       2.85s\n\
               \x20           tcp (6):       19269812        38073       0.35s       1.36s\n";
    let r = softflowd_report(out)?;
    assert_eq!(
        r,
        SoftflowdReport {
            processed: 42955,
            records: 7987,
            datagrams: 306,
            octets: 19_380_692,
            packets: 39_393,
        }
    );
    assert!(softflowd_report("Packets processed: 1\n").is_err());
    Ok(())
}
