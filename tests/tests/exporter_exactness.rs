//! Exactness: a flow exporter reading a generated pcap file (`podflow_e2e::pcapgen`) must report every
//! generated flow once, and exactly the packets and IP octets in the file.
//!
//! Each test generates a file of a few thousand interleaved flows (TCP closed by FIN or RST, UDP with
//! unanswered queries and IPv4-fragmented responses, ICMP and ICMPv6 echo, IPv4 and IPv6), runs the
//! exporter on it into `nfcapd`, and reads what nfcapd stored with `nfdump -o json`:
//! - `podflow-exporter --pcap`, biflows (default): one record per generated flow, each matched to its flow
//!   by 5-tuple with the initiator's and responder's packets and octets in `in_*`/`out_*`;
//! - `podflow-exporter --pcap --uniflow`: one record per direction that has packets, each matched to its
//!   flow and direction;
//! - `softflowd -r` (NetFlow v9), as a reference meter: the same packet total; its octets are the IP
//!   octets plus the Ethernet padding of short frames, and its record count differs from the flow count
//!   (both explained at [`softflowd_totals_and_record_count`]).
//!
//! Completion is signalled, not waited for: the exporter exits when it has read the file and exported
//! everything, then a marker datagram sent to nfcapd comes back through its repeater (`-R`) once nfcapd
//! has read everything before it (see `podflow_e2e::nfcapd`). nfcapd's closing statistics must show no
//! sequence error, so no export datagram was lost on the way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use podflow_e2e::binaries;
use podflow_e2e::expect::Mismatches;
use podflow_e2e::nfcapd::{self, Nfcapd};
use podflow_e2e::pcapgen::{self, Config, FlowTruth, Summary};
use podflow_e2e::peer::{self, PeerProcess};
use serde_json::Value;

/// Observation domain of the marker datagrams; no exporter under test uses it.
const MARKER_DOMAIN: u32 = 0x6d61_726b;
/// Observation domain podflow-exporter is told to use.
const OBSERVATION_DOMAIN: u32 = 4_242;

struct Generated {
    dir: tempfile::TempDir,
    pcap: PathBuf,
    summary: Summary,
    truth: Vec<FlowTruth>,
}

fn generate() -> anyhow::Result<Generated> {
    let dir = tempfile::tempdir()?;
    let pcap = dir.path().join("flows.pcap");
    let mut truth = Vec::new();
    let summary = pcapgen::generate_file(&Config::mixed(), &pcap, Some(&mut truth))?;
    // The file must hold every case the exactness claims cover.
    assert!(summary.tcp_rst > 0 && summary.unanswered > 0 && summary.later_fragments > 0);
    assert!(summary.by_family[1].flows > 0 && summary.by_kind[2].flows > 0);
    Ok(Generated {
        dir,
        pcap,
        summary,
        truth,
    })
}

/// Runs the exporter `producer(port)` to completion into a fresh nfcapd; returns nfdump's records, or
/// `None` when nfdump is missing and allowed to be.
fn collect(
    name: &str,
    work: &Path,
    producer: impl FnOnce(u16) -> Command,
) -> anyhow::Result<Option<Vec<Value>>> {
    let Some(nfcapd_bin) = peer::require("nfcapd", "nfdump")? else {
        return Ok(None);
    };
    let Some(nfdump) = peer::require("nfdump", "nfdump")? else {
        return Ok(None);
    };
    let flow_dir = work.join(format!("{name}-flows"));
    std::fs::create_dir(&flow_dir)?;
    let collector = Nfcapd::start(&nfcapd_bin, &flow_dir, work)?;
    let drain = collector.drain()?;
    let run = PeerProcess::spawn(name, &mut producer(collector.port), work)?.wait_exit()?;
    if !run.status.success() {
        bail!("{name} failed:\n{}", peer::describe(&run));
    }
    let repeated = collector.sync(drain, MARKER_DOMAIN)?;
    let (out, flow_dir) = collector.stop()?;
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    if nfcapd::sequence_errors(&log) != Some(0) {
        bail!("nfcapd saw export datagrams missing (sequence errors):\n{log}");
    }
    eprintln!("{name}: nfcapd read {repeated} datagrams (markers included)");
    Ok(Some(nfcapd::dump_json(&nfdump, &flow_dir)?))
}

/// A record as nfdump prints it.
#[derive(Debug)]
struct Record {
    proto: u8,
    src: IpAddr,
    src_port: u16,
    dst: IpAddr,
    dst_port: u16,
    packets: [u64; 2],
    bytes: [u64; 2],
}

fn records(json: &[Value]) -> anyhow::Result<Vec<Record>> {
    let num = |r: &Value, k: &str| r.get(k).and_then(Value::as_u64).unwrap_or(0);
    let addr = |r: &Value, k: &str| -> anyhow::Result<IpAddr> {
        let text = [format!("{k}4_addr"), format!("{k}6_addr")]
            .iter()
            .find_map(|name| r.get(name).and_then(Value::as_str))
            .with_context(|| format!("record without {k} address: {r}"))?;
        Ok(text.parse()?)
    };
    json.iter()
        .filter(|r| r.get("type").and_then(Value::as_str) == Some("FLOW"))
        .map(|r| {
            let proto = num(r, "proto") as u8;
            // ICMP records carry type and code instead of ports; flows are matched without them.
            let icmp = proto == 1 || proto == 58;
            Ok(Record {
                proto,
                src: addr(r, "src")?,
                src_port: if icmp { 0 } else { num(r, "src_port") as u16 },
                dst: addr(r, "dst")?,
                dst_port: if icmp { 0 } else { num(r, "dst_port") as u16 },
                packets: [num(r, "in_packets"), num(r, "out_packets")],
                bytes: [num(r, "in_bytes"), num(r, "out_bytes")],
            })
        })
        .collect()
}

/// A flow key independent of direction.
type Key = (u8, (IpAddr, u16), (IpAddr, u16));

fn key(proto: u8, a: (IpAddr, u16), b: (IpAddr, u16)) -> Key {
    (proto, a.min(b), a.max(b))
}

fn truth_index(truth: &[FlowTruth]) -> HashMap<Key, &FlowTruth> {
    truth
        .iter()
        .map(|t| {
            (
                key(t.proto, (t.client, t.client_port), (t.server, t.server_port)),
                t,
            )
        })
        .collect()
}

/// Totals of packets and octets over all records, both directions.
fn totals(recs: &[Record]) -> (u64, u64) {
    let packets = recs.iter().map(|r| r.packets[0] + r.packets[1]).sum();
    let bytes = recs.iter().map(|r| r.bytes[0] + r.bytes[1]).sum();
    (packets, bytes)
}

fn podflow(g: &Generated, name: &str, extra: &[&str]) -> anyhow::Result<Option<Vec<Record>>> {
    let exporter = binaries::podflow_exporter()?;
    let json = collect(name, g.dir.path(), |port| {
        let mut cmd = Command::new(&exporter);
        cmd.arg("--pcap")
            .arg(&g.pcap)
            .args(["--collector", &format!("127.0.0.1:{port}")])
            .args(["--observation-domain-id", &OBSERVATION_DOMAIN.to_string()])
            .args(extra);
        cmd
    })?;
    json.map(|j| records(&j)).transpose()
}

/// Compares biflow records with the generated flows: one record per flow, with the initiator's and the
/// responder's counters on the right sides, whichever endpoint the exporter names as source.
fn check_biflows(g: &Generated, recs: &[Record]) -> anyhow::Result<usize> {
    let s = &g.summary;
    let mut m = Mismatches::new();
    m.check("records", recs.len() as u64, s.total.flows);
    m.check("packets", totals(recs).0, s.total.packets);
    m.check("octets", totals(recs).1, s.total.octets);
    let index = truth_index(&g.truth);
    let mut seen = HashSet::new();
    for r in recs {
        let k = key(r.proto, (r.src, r.src_port), (r.dst, r.dst_port));
        let Some(t) = index.get(&k) else {
            m.fail(format!("record of no generated flow: {r:?}"));
            continue;
        };
        if !seen.insert(k) {
            m.fail(format!("second record of one flow: {r:?}"));
        }
        let (p, b) = if (r.src, r.src_port) == (t.client, t.client_port) {
            (t.packets, t.octets)
        } else {
            ([t.packets[1], t.packets[0]], [t.octets[1], t.octets[0]])
        };
        m.check(format!("{r:?} packets"), r.packets, p);
        m.check(format!("{r:?} octets"), r.bytes, b);
    }
    m.finish("podflow biflows")
}

#[test]
fn podflow_biflows_are_exact() -> anyhow::Result<()> {
    let g = generate()?;
    let Some(recs) = podflow(&g, "podflow-biflow", &[])? else {
        return Ok(());
    };
    let checked = check_biflows(&g, &recs)?;
    assert!(checked > 2 * recs.len(), "only {checked} comparisons");
    let (packets, octets) = totals(&recs);
    eprintln!(
        "podflow biflows: {} records, {packets} packets, {octets} octets",
        recs.len()
    );
    Ok(())
}

/// The comparison can fail: with a one-second idle timeout the exporter splits the flows that pause
/// longer (ping intervals, DNS retries, think times), and the check reports the extra records.
#[test]
fn split_flows_are_detected() -> anyhow::Result<()> {
    let g = generate()?;
    let Some(recs) = podflow(&g, "podflow-split", &["--idle-timeout", "1"])? else {
        return Ok(());
    };
    let err = check_biflows(&g, &recs).expect_err("flows split by a 1 s idle timeout went unnoticed");
    let err = err.to_string();
    assert!(err.contains("second record of one flow"), "{err}");
    assert!(err.contains(&format!("records: got {}", recs.len())), "{err}");
    // Splitting moves packets between records but loses none.
    assert_eq!(totals(&recs), (g.summary.total.packets, g.summary.total.octets));
    Ok(())
}

#[test]
fn podflow_uniflows_are_exact() -> anyhow::Result<()> {
    let g = generate()?;
    let Some(recs) = podflow(&g, "podflow-uniflow", &["--uniflow"])? else {
        return Ok(());
    };
    let s = &g.summary;
    let mut m = Mismatches::new();
    // One record per direction with packets; a direction without packets (an unanswered query) has none.
    m.check("records", recs.len() as u64, s.total.directions);
    m.check("packets", totals(&recs).0, s.total.packets);
    m.check("octets", totals(&recs).1, s.total.octets);
    let index = truth_index(&g.truth);
    let mut seen = HashSet::new();
    for r in &recs {
        let k = key(r.proto, (r.src, r.src_port), (r.dst, r.dst_port));
        let Some(t) = index.get(&k) else {
            m.fail(format!("record of no generated flow: {r:?}"));
            continue;
        };
        let side = usize::from((r.src, r.src_port) != (t.client, t.client_port));
        if !seen.insert((k, side)) {
            m.fail(format!("second record of one direction: {r:?}"));
        }
        m.check(format!("{r:?} packets"), r.packets, [t.packets[side], 0]);
        m.check(format!("{r:?} octets"), r.bytes, [t.octets[side], 0]);
    }
    let checked = m.finish("podflow uniflows")?;
    assert!(checked > recs.len(), "only {checked} comparisons");
    eprintln!(
        "podflow uniflows: {} records, {} packets, {} octets",
        recs.len(),
        totals(&recs).0,
        totals(&recs).1
    );
    Ok(())
}

/// softflowd 1.1 on the same file, exporting NetFlow v9.
///
/// Packets: the same total.
///
/// Octets: softflowd counts each packet's length as the frame's length less the Ethernet header
/// (`phdr->len - skiplen` in its pcap callback), so a frame shorter than Ethernet's 60-octet minimum,
/// received padded, counts its padding too. IP octets (IPFIX octetDeltaCount, RFC 7012: IP header and
/// payload) exclude it; the generator pads frames from the server side as a NIC receives them (a RST is
/// 54 octets before padding), so softflowd's total is the IP octets plus exactly that padding.
///
/// Records: softflowd tracks a flow in both directions but NetFlow v9 has no biflows, so it exports one
/// record per direction with packets, like `--uniflow`. Two more differences, both deterministic:
/// - ICMP: the type is part of its key, so echo requests (type 8/128) and replies (0/129) are two flows of
///   one direction each: still one record per direction;
/// - later IPv4 fragments carry no ports; softflowd keys them with ports 0, apart from their first
///   fragment's flow, so each (server, client) pair that sent a fragmented response adds a record.
///
/// Its own timeouts (minutes to hours) and table size (8192 flows) never split a flow of this file.
#[test]
fn softflowd_totals_and_record_count() -> anyhow::Result<()> {
    let Some(softflowd) = peer::require("softflowd", "softflowd")? else {
        return Ok(());
    };
    let g = generate()?;
    let work = g.dir.path();
    let json = collect("softflowd", work, |port| {
        let mut cmd = Command::new(&softflowd);
        cmd.arg("-r")
            .arg(&g.pcap)
            .args(["-n", &format!("127.0.0.1:{port}"), "-v", "9", "-d"])
            // Its pid file defaults to /var/run: keep it in the test's directory.
            .arg("-p")
            .arg(work.join("softflowd.pid"))
            // No control socket: with one, softflowd 1.1 can block in accept() on it after the end of
            // the file instead of exiting.
            .args(["-c", "none"]);
        cmd
    })?;
    let Some(json) = json else {
        return Ok(());
    };
    let recs = records(&json)?;
    let s = &g.summary;
    let fragment_pairs: HashSet<_> = g
        .truth
        .iter()
        .filter(|t| t.later_fragments > 0)
        .map(|t| (t.server, t.client))
        .collect();
    let (packets, octets) = totals(&recs);
    let mut m = Mismatches::new();
    m.check("packets", packets, s.total.packets);
    m.check(
        "octets (IP octets + Ethernet padding)",
        octets,
        s.total.octets + s.padding_octets,
    );
    m.check(
        "records (directions + fragment flows)",
        recs.len() as u64,
        s.total.directions + fragment_pairs.len() as u64,
    );
    m.finish("softflowd")?;
    assert!(
        s.padding_octets > 0,
        "the file has no padded frame: the octet check shows nothing"
    );
    eprintln!(
        "softflowd: {} records, {packets} packets, {octets} octets; generated {} flows, {} directions, {} \
         packets, {} IP octets + {} octets of Ethernet padding",
        recs.len(),
        s.total.flows,
        s.total.directions,
        s.total.packets,
        s.total.octets,
        s.padding_octets
    );
    Ok(())
}

/// The binary the podflow tests run is found (and built when needed) from this crate's tests.
#[test]
fn podflow_exporter_binary_is_built_and_runs() -> anyhow::Result<()> {
    let exporter = binaries::podflow_exporter()?;
    let help = peer::run(Command::new(&exporter).arg("--help"))?;
    assert!(help.contains("Usage"), "{help}");
    Ok(())
}
