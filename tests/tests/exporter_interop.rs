//! What podflow-exporter sends reads correctly in other programs: tshark, nfdump (nfcapd) and
//! python3-ipfix, for biflow (RFC 5103) and `--uniflow` records.
//!
//! Input: the Community ID pcaps bundled with the exporter (TCP, UDP, SCTP, RSVP, ICMP, ICMPv6 and IPv6
//! flows, plus ARP), merged into one capture and read with `podflow-exporter --pcap`, which sends to
//! nfcapd and to a UDP socket of the test. tshark, reading the input capture, is the oracle: packets and
//! IP octets per direction, and its own Community ID of every packet. Checked:
//! - tshark decodes every exported message with no expert info or malformed mark; each record carries
//!   podflow's communityId (PEN 32473, element 1), equal to proto-ipfix's Community ID of the record's
//!   flow, and the set of exported IDs is the set tshark computes over the input;
//! - `--uniflow`: one record per direction that carried packets, each with exactly the packets and
//!   octets tshark counts, in proto-ipfix's decoding and in nfdump;
//! - biflow: forward and reverse counters equal the two uniflow directions, in proto-ipfix's decoding,
//!   in tshark (reverse elements), in nfdump (`out_packets`/`out_bytes`) and in python3-ipfix
//!   (`reverseOctetDeltaCount`, ...).
//!
//! nfdump 1.7.1 shows the destination port of the SCTP flow as 0, where proto-ipfix, tshark and
//! python3-ipfix read 7: it appears to store the ICMP type/code element (sent as 0 for non-ICMP flows)
//! in the destination port of protocols other than TCP and UDP. The test expects that rendering, so a
//! fixed nfdump shows up as a failure to update here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;

use podflow_e2e::binaries::podflow_exporter;
use podflow_e2e::expect::Mismatches;
use podflow_e2e::exported::{self, ExportedFlow, Receiver};
use podflow_e2e::nfcapd::{self, Nfcapd};
use podflow_e2e::pcap::write_pcap;
use podflow_e2e::pdml::{parse_pdml, tshark_pdml};
use podflow_e2e::peer::{self, PEER_TIMEOUT, PeerProcess};
use serde_json::Value;

/// A direction of traffic: source, destination, protocol, and ports (ICMP: type and code).
type DirKey = (IpAddr, IpAddr, u8, u16, u16);

/// UDP port of the exported messages in the pcap handed to tshark.
const PCAP_PORT: u16 = 4739;

fn is_icmp(proto: u8) -> bool {
    proto == 1 || proto == 58
}

/// The bundled pcaps, merged into one file in time order (each covers its own span of time).
fn merged_pcap(dir: &Path) -> anyhow::Result<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../exporter/tests/data/community-id/pcaps");
    let mut files: Vec<(u32, Vec<u8>)> = Vec::new();
    for entry in std::fs::read_dir(&src)? {
        let bytes = std::fs::read(entry?.path())?;
        // Classic little-endian microsecond pcap, Ethernet: the format all the bundled files have.
        assert_eq!(bytes[..4], 0xa1b2_c3d4u32.to_le_bytes(), "not a LE pcap");
        assert_eq!(bytes[20..24], 1u32.to_le_bytes(), "not Ethernet");
        let first_ts = u32::from_le_bytes(bytes[24..28].try_into()?);
        files.push((first_ts, bytes));
    }
    files.sort();
    assert!(files.len() >= 8, "bundled pcaps missing from {src:?}");
    let mut out = files[0].1[..24].to_vec();
    for (_, bytes) in &files {
        out.extend_from_slice(&bytes[24..]);
    }
    let path = dir.join("merged.pcap");
    std::fs::write(&path, out)?;
    Ok(path)
}

/// One packet of the input, as tshark dissects it (IP packets only).
#[derive(Debug)]
struct InputPacket {
    key: DirKey,
    ip_len: u64,
    community_id: String,
}

/// tshark's reading of the input: every IP packet's direction, IP length and Community ID.
fn oracle(tshark: &Path, pcap: &Path, home: &Path) -> anyhow::Result<Vec<InputPacket>> {
    let fields = [
        "ip.src",
        "ip.dst",
        "ipv6.src",
        "ipv6.dst",
        "ip.proto",
        "ipv6.nxt",
        "ip.len",
        "ipv6.plen",
        "tcp.srcport",
        "tcp.dstport",
        "udp.srcport",
        "udp.dstport",
        "sctp.srcport",
        "sctp.dstport",
        "icmp.type",
        "icmp.code",
        "icmpv6.type",
        "icmpv6.code",
        "communityid",
    ];
    let mut cmd = Command::new(tshark);
    cmd.arg("-r")
        .arg(pcap)
        .args(["--enable-protocol", "communityid", "-n", "-T", "fields"])
        // First occurrence: an ICMP error quotes the IP header of the packet it answers.
        .args(["-E", "separator=,", "-E", "occurrence=f"])
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let text = peer::run(&mut cmd)?;
    let mut out = Vec::new();
    for line in text.lines() {
        let c: Vec<&str> = line.split(',').collect();
        assert_eq!(c.len(), fields.len(), "{line}");
        let n = |i: usize| -> u64 { c[i].parse().unwrap_or(0) };
        let (src, dst, proto, ip_len) = if !c[0].is_empty() {
            (c[0].parse()?, c[1].parse()?, n(4) as u8, n(6))
        } else if !c[2].is_empty() {
            (c[2].parse()?, c[3].parse()?, n(5) as u8, n(7) + 40)
        } else {
            continue; // ARP
        };
        let (a, b) = match proto {
            6 => (n(8), n(9)),
            17 => (n(10), n(11)),
            132 => (n(12), n(13)),
            1 => (n(14), n(15)),
            58 => (n(16), n(17)),
            _ => (0, 0),
        };
        out.push(InputPacket {
            key: (src, dst, proto, a as u16, b as u16),
            ip_len,
            community_id: c[18].to_string(),
        });
    }
    Ok(out)
}

/// The direction a record describes (its source's side).
fn record_key(f: &ExportedFlow) -> DirKey {
    let (a, b) = if is_icmp(f.proto) {
        (f.icmp_type_code >> 8, f.icmp_type_code & 0xff)
    } else {
        (f.sport, f.dport)
    };
    (f.src.unwrap(), f.dst.unwrap(), f.proto, a, b)
}

/// What one exporter run sent, and what nfdump stored of it.
struct Run {
    messages: Vec<Vec<u8>>,
    flows: Vec<ExportedFlow>,
    nfdump: Vec<Value>,
}

/// Reads `pcap` with podflow-exporter (`--uniflow` when asked) into nfcapd and a decoding socket.
fn export(
    pcap: &Path,
    uniflow: bool,
    nfcapd_bin: &Path,
    nfdump_bin: &Path,
    dir: &Path,
) -> anyhow::Result<Run> {
    let tag = if uniflow { "uniflow" } else { "biflow" };
    let flow_dir = dir.join(format!("flows-{tag}"));
    std::fs::create_dir(&flow_dir)?;
    let nfcapd = Nfcapd::start(nfcapd_bin, &flow_dir, dir)?;
    let drain = nfcapd.drain()?;
    let mut rx = Receiver::new(UdpSocket::bind("127.0.0.1:0")?)?;
    let mut cmd = Command::new(podflow_exporter()?);
    cmd.arg("--pcap")
        .arg(pcap)
        .args(["--collector", &rx.local_addr()?.to_string()])
        .args(["--collector", &format!("127.0.0.1:{}", nfcapd.port)])
        // One record per flow: no timeout splits a flow of the bundled captures.
        .args(["--idle-timeout", "3600", "--active-timeout", "3600"]);
    if uniflow {
        cmd.arg("--uniflow");
    }
    let out = PeerProcess::spawn(&format!("exporter-{tag}"), &mut cmd, dir)?.wait_exit()?;
    assert!(out.status.success(), "{}", peer::describe(&out));
    let messages = exported::summary_messages(&String::from_utf8_lossy(&out.stderr))?;
    rx.wait_messages(messages, PEER_TIMEOUT)?;
    rx.drain()?;
    assert_eq!(
        rx.messages.len(),
        messages,
        "messages received vs the exporter's count"
    );
    // Once nfcapd repeats a marker sent after the exporter exited, it has stored every message. (The
    // marker's observation domain is not the exporter's, so the exporter's sequence has no gap.)
    let repeated = nfcapd.sync(drain, 0xffff)?;
    assert!(repeated > messages as u64, "nfcapd repeated {repeated} datagrams");
    let (out, flow_dir) = nfcapd.stop()?;
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(nfcapd::sequence_errors(&log), Some(0), "{log}");
    Ok(Run {
        messages: rx.messages,
        flows: rx.flows,
        nfdump: nfcapd::dump_json(nfdump_bin, &flow_dir)?,
    })
}

/// The direction an nfdump record describes, as [`DirKey`].
fn nfdump_key(r: &Value) -> DirKey {
    let addr = |v4: &str, v6: &str| -> IpAddr {
        r.get(v4)
            .or_else(|| r.get(v6))
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("nfdump record without address: {r}"))
    };
    let n = |k: &str| r.get(k).and_then(Value::as_u64).unwrap_or(0);
    let proto = n("proto") as u8;
    let (a, b) = if is_icmp(proto) {
        (n("icmp_type"), n("icmp_code"))
    } else {
        (n("src_port"), n("dst_port"))
    };
    (
        addr("src4_addr", "src6_addr"),
        addr("dst4_addr", "dst6_addr"),
        proto,
        a as u16,
        b as u16,
    )
}

/// `key` as nfdump 1.7.1 renders it: see the module documentation about non-TCP/UDP ports.
fn as_nfdump_renders(key: DirKey) -> DirKey {
    let (src, dst, proto, a, _) = key;
    match proto {
        1 | 6 | 17 | 58 => key,
        _ => (src, dst, proto, a, 0),
    }
}

struct Peers {
    tshark: PathBuf,
    nfcapd: PathBuf,
    nfdump: PathBuf,
    python: PathBuf,
}

fn peers() -> anyhow::Result<Option<Peers>> {
    let (Some(tshark), Some(nfcapd), Some(nfdump), Some(python)) = (
        peer::require("tshark", "tshark")?,
        peer::require("nfcapd", "nfdump")?,
        peer::require("nfdump", "nfdump")?,
        peer::require_python_module("/usr/bin/python3", "ipfix", "python3-ipfix")?,
    ) else {
        return Ok(None);
    };
    Ok(Some(Peers {
        tshark,
        nfcapd,
        nfdump,
        python,
    }))
}

/// A data record as tshark shows it: communityId, then the displayed packet and octet counts (forward,
/// and reverse for biflows).
type TsharkRecord = (String, Vec<String>, Vec<String>);

/// tshark decodes `messages` cleanly; returns, per data record, its communityId and its
/// (packets, octets) forward and, for biflows, reverse.
fn tshark_records(
    tshark: &Path,
    messages: &[Vec<u8>],
    dir: &Path,
    name: &str,
) -> anyhow::Result<Vec<TsharkRecord>> {
    let src = SocketAddrV4::new([127, 0, 0, 1].into(), 40_000);
    let dst = SocketAddrV4::new([127, 0, 0, 1].into(), PCAP_PORT);
    let capture = dir.join(format!("{name}.pcap"));
    std::fs::write(&capture, write_pcap(messages, src, dst, 1_700_000_000)?)?;
    let decoded = parse_pdml(&tshark_pdml(tshark, &capture, PCAP_PORT, dir)?)?;
    assert!(
        decoded.problems.is_empty(),
        "tshark flagged the {name} messages: {:?}",
        decoded.problems
    );
    assert_eq!(
        decoded.ipfix_packets,
        messages.len(),
        "{name} messages tshark dissected"
    );
    // Both templates (IPv4 and IPv6) declare communityId as PEN 32473, element 1, variable length.
    // Refreshes (every 10 s of capture time) repeat them unchanged.
    let with_id: std::collections::BTreeSet<_> = decoded
        .templates
        .iter()
        .filter(|(_, specs)| specs.contains(&(1, 65535, 32473)))
        .collect();
    assert_eq!(with_id.len(), 2, "{name} templates: {:?}", decoded.templates);
    let mut out = Vec::new();
    for fields in &decoded.flows {
        let values = |n: &str| -> Vec<String> {
            fields
                .iter()
                .filter(|f| f.name == n)
                .map(|f| f.show.clone())
                .collect()
        };
        // podflow's elements show as "Enterprise Private entry: (<PEN's name>) Type <id>: Value (hex)".
        let ids: Vec<_> = fields
            .iter()
            .filter(|f| f.name == "cflow.enterprise_private_entry" && f.showname.contains(" Type 1: "))
            .collect();
        assert_eq!(
            ids.len(),
            1,
            "{name}: communityId entries in a record: {fields:#?}"
        );
        // 32473 is IANA's "Example Enterprise Number for Documentation Use", by which name tshark shows it.
        assert!(
            ids[0]
                .showname
                .contains("(Example Enterprise Number for Documentation Use)"),
            "{}",
            ids[0].showname
        );
        let community_id = String::from_utf8(
            (0..ids[0].value.len() / 2)
                .map(|i| u8::from_str_radix(&ids[0].value[2 * i..2 * i + 2], 16).unwrap())
                .collect(),
        )?;
        out.push((community_id, values("cflow.packets"), values("cflow.octets")));
    }
    Ok(out)
}

#[test]
fn peers_read_exported_uniflows_and_biflows() -> anyhow::Result<()> {
    let Some(p) = peers()? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let pcap = merged_pcap(dir.path())?;
    let input = oracle(&p.tshark, &pcap, dir.path())?;
    let mut wire: BTreeMap<DirKey, (u64, u64)> = BTreeMap::new();
    for pkt in &input {
        let e = wire.entry(pkt.key).or_default();
        *e = (e.0 + 1, e.1 + pkt.ip_len);
    }
    let wire_ids: BTreeSet<&str> = input.iter().map(|p| p.community_id.as_str()).collect();

    let uni = export(&pcap, true, &p.nfcapd, &p.nfdump, dir.path())?;
    let bi = export(&pcap, false, &p.nfcapd, &p.nfdump, dir.path())?;
    let mut m = Mismatches::new();

    // Uniflow: one record per direction with packets, exactly the wire's counts.
    let uni_dirs: BTreeMap<DirKey, (u64, u64)> = uni
        .flows
        .iter()
        .map(|f| (record_key(f), (f.packets, f.octets)))
        .collect();
    m.check(
        "uniflow records are distinct directions",
        uni_dirs.len(),
        uni.flows.len(),
    );
    m.check("uniflow directions vs the wire", &uni_dirs, &wire);
    m.check(
        "uniflow records without reverse counters",
        uni.flows.iter().filter(|f| f.reverse_octets.is_some()).count(),
        0,
    );

    // nfdump stores the uniflow records as they are.
    let nf_uni: BTreeMap<DirKey, (u64, u64)> = uni
        .nfdump
        .iter()
        .map(|r| {
            (
                nfdump_key(r),
                (r["in_packets"].as_u64().unwrap(), r["in_bytes"].as_u64().unwrap()),
            )
        })
        .collect();
    m.check("nfdump uniflow records", uni.nfdump.len(), uni.flows.len());
    let want: BTreeMap<DirKey, (u64, u64)> = wire.iter().map(|(k, v)| (as_nfdump_renders(*k), *v)).collect();
    m.check("nfdump uniflow directions vs the wire", &nf_uni, &want);

    // Biflow: each record's forward and reverse counters are its two uniflow directions (one uniflow
    // record per biflow, plus one per biflow whose responder sent packets).
    m.check(
        "biflow records",
        bi.flows.len(),
        uni.flows.len() - bi.flows.iter().filter(|f| f.reverse_packets > Some(0)).count(),
    );
    for f in &bi.flows {
        let tag = format!("biflow {:?}", record_key(f));
        let id = &f.community_id;
        m.check(format!("{tag} communityId"), id, &f.expected_community_id());
        let side = |src: Option<IpAddr>| {
            uni.flows
                .iter()
                .find(|u| &u.community_id == id && u.src == src)
                .map(|u| (u.packets, u.octets))
                .unwrap_or((0, 0))
        };
        m.check(format!("{tag} forward"), (f.packets, f.octets), side(f.src));
        m.check(
            format!("{tag} reverse"),
            (f.reverse_packets.unwrap(), f.reverse_octets.unwrap()),
            side(f.dst),
        );
    }
    let bi_ids: BTreeSet<&str> = bi
        .flows
        .iter()
        .filter_map(|f| f.community_id.as_deref())
        .collect();
    m.check("communityIds vs tshark's over the input", &bi_ids, &wire_ids);

    // nfdump reads RFC 5103 reverse counters as out_packets/out_bytes.
    m.check("nfdump biflow records", bi.nfdump.len(), bi.flows.len());
    let counters =
        |r: &Value| ["in_packets", "in_bytes", "out_packets", "out_bytes"].map(|k| r[k].as_u64().unwrap());
    let nf_bi: BTreeMap<DirKey, [u64; 4]> = bi.nfdump.iter().map(|r| (nfdump_key(r), counters(r))).collect();
    let want_bi: BTreeMap<DirKey, [u64; 4]> = bi
        .flows
        .iter()
        .map(|f| {
            let c = [
                f.packets,
                f.octets,
                f.reverse_packets.unwrap(),
                f.reverse_octets.unwrap(),
            ];
            (as_nfdump_renders(record_key(f)), c)
        })
        .collect();
    m.check("nfdump biflow counters", &nf_bi, &want_bi);

    // tshark: clean decoding, podflow's communityId in every record, reverse elements in biflows.
    for (name, run) in [("uniflow", &uni), ("biflow", &bi)] {
        let records = tshark_records(&p.tshark, &run.messages, dir.path(), name)?;
        m.check(format!("tshark {name} records"), records.len(), run.flows.len());
        for ((id, packets, octets), f) in records.iter().zip(&run.flows) {
            let tag = format!("tshark {name} {:?}", record_key(f));
            m.check(format!("{tag} communityId"), Some(id), f.community_id.as_ref());
            let mut want_packets = vec![f.packets.to_string()];
            let mut want_octets = vec![f.octets.to_string()];
            if let (Some(rp), Some(ro)) = (f.reverse_packets, f.reverse_octets) {
                want_packets.push(rp.to_string());
                want_octets.push(ro.to_string());
            }
            m.check(format!("{tag} packets"), packets, &want_packets);
            m.check(format!("{tag} octets"), octets, &want_octets);
        }
    }

    // python3-ipfix, reading the biflow messages as an IPFIX file, names the reverse counters.
    let file = dir.path().join("biflow.ipfix");
    std::fs::write(&file, bi.messages.concat())?;
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    let out = peer::run(
        Command::new(&p.python)
            .arg(scripts.join("read_ipfix.py"))
            .arg(scripts.join("podflow.iespec"))
            .arg(&file),
    )?;
    let py: Vec<Value> = serde_json::from_str(&out)?;
    m.check("python3-ipfix biflow records", py.len(), bi.flows.len());
    for f in &bi.flows {
        let id = f.community_id.clone().unwrap_or_default();
        let found: Vec<&Value> = py.iter().filter(|r| r["communityId"] == id.as_str()).collect();
        let [r] = found.as_slice() else {
            m.fail(format!(
                "python3-ipfix: {} records with communityId {id}",
                found.len()
            ));
            continue;
        };
        let got = [
            "packetDeltaCount",
            "octetDeltaCount",
            "reversePacketDeltaCount",
            "reverseOctetDeltaCount",
        ]
        .map(|k| r[k].as_u64());
        let want = [
            Some(f.packets),
            Some(f.octets),
            f.reverse_packets,
            f.reverse_octets,
        ];
        m.check(format!("python3-ipfix {id} counters"), got, want);
        let src = r.get("sourceIPv4Address").or_else(|| r.get("sourceIPv6Address"));
        m.check(
            format!("python3-ipfix {id} source"),
            src.and_then(Value::as_str),
            Some(f.src.unwrap().to_string().as_str()),
        );
    }

    eprintln!(
        "{} input IP packets in {} directions; uniflow: {} records in {} messages; biflow: {} records in {} \
         messages; communityIds: {}",
        input.len(),
        wire.len(),
        uni.flows.len(),
        uni.messages.len(),
        bi.flows.len(),
        bi.messages.len(),
        bi_ids.len(),
    );
    let checked = m.finish("peers")?;
    assert!(checked > 4 * bi.flows.len(), "only {checked} comparisons made");
    Ok(())
}
