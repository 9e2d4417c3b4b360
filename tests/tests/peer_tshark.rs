//! Wireshark's cflow dissector (tshark) reads what proto-ipfix writes.
//!
//! The sample biflows are encoded with podflow's templates and fed to tshark twice: as a pcap file
//! holding the exact datagrams, and as real UDP datagrams captured live on the loopback interface. tshark's
//! PDML output is then compared field by field with what was encoded: the template records themselves,
//! addresses, ports, protocol, both directions' counters and TCP flags (tshark names RFC 5103 reverse
//! elements with the forward field and a "(Reverse Type N ...)" label), timestamps, NAT elements,
//! flowEndReason, biflowDirection, and podflow's enterprise elements, which tshark does not know and shows
//! as raw "Enterprise Private entry" bytes. Any expert warning or "Malformed" mark fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddrV4, UdpSocket};
use std::process::Command;

use anyhow::{Context, bail};
use podflow_e2e::expect::{Mismatches, UtcTime, hex};
use podflow_e2e::flows::{self, SampleFlow, V4_TEMPLATE_ID, V6_TEMPLATE_ID};
use podflow_e2e::pcap::write_pcap;
use podflow_e2e::pdml::{Decoded, PdmlField, parse_pdml, tshark_pdml};
use podflow_e2e::peer::{self, PEER_TIMEOUT, PeerProcess};

/// UDP port the pcap file's datagrams go to: not one tshark decodes as IPFIX by default, so the test
/// also shows the decode-as flag is what makes it dissect them.
const PCAP_PORT: u16 = 9555;

/// The `nth` field called `name`, or a recorded failure.
fn nth<'a>(
    m: &mut Mismatches,
    tag: &str,
    fields: &'a [PdmlField],
    name: &str,
    n: usize,
) -> Option<&'a PdmlField> {
    let found = fields.iter().filter(|f| f.name == name).nth(n);
    if found.is_none() {
        m.fail(format!("{tag}: no field {name} (occurrence {n})"));
    }
    found
}

/// Checks the `n`th `name` field's display value.
fn show(m: &mut Mismatches, tag: &str, fields: &[PdmlField], name: &str, n: usize, want: String) {
    if let Some(f) = nth(m, tag, fields, name, n) {
        m.check(format!("{tag} {name}[{n}]"), f.show.clone(), want);
    }
}

/// Checks a forward element and its RFC 5103 reverse twin, which tshark gives the same filter name and a
/// "(Reverse Type {id} {label})" suffix on the display line.
fn biflow(
    m: &mut Mismatches,
    tag: &str,
    fields: &[PdmlField],
    name: &str,
    rev: (u16, &str),
    want: [String; 2],
) {
    let [fwd, back] = want;
    let occurrences = fields.iter().filter(|f| f.name == name).count();
    m.check(format!("{tag} {name} occurrences"), occurrences, 2);
    if let Some(f) = nth(m, tag, fields, name, 0) {
        m.check(format!("{tag} {name} forward"), f.show.clone(), fwd);
        m.check(
            format!("{tag} {name} forward is not reverse"),
            f.showname.contains("Reverse"),
            false,
        );
    }
    if let Some(f) = nth(m, tag, fields, name, 1) {
        m.check(format!("{tag} {name} reverse"), f.show.clone(), back);
        let label = format!("(Reverse Type {} {})", rev.0, rev.1);
        m.check(
            format!("{tag} {name} reverse label"),
            f.showname.ends_with(&label),
            true,
        );
    }
}

fn check_flow(m: &mut Mismatches, f: &SampleFlow, fields: &[PdmlField]) {
    let tag = format!("flow {}:{}", f.src, f.src_port);
    let tag = tag.as_str();
    let (src, dst, nat_src, nat_dst) = if f.is_v6() {
        (
            "cflow.srcaddrv6",
            "cflow.dstaddrv6",
            "cflow.post_nat_source_ipv6_address",
            "cflow.post_nat_destination_ipv6_address",
        )
    } else {
        (
            "cflow.srcaddr",
            "cflow.dstaddr",
            "cflow.post_natsource_ipv4_address",
            "cflow.post_natdestination_ipv4_address",
        )
    };
    show(m, tag, fields, src, 0, f.src.to_string());
    show(m, tag, fields, dst, 0, f.dst.to_string());
    show(m, tag, fields, "cflow.srcport", 0, f.src_port.to_string());
    show(m, tag, fields, "cflow.dstport", 0, f.dst_port.to_string());
    show(m, tag, fields, "cflow.protocol", 0, f.protocol.to_string());
    let counts = |a: u64, b: u64| [a.to_string(), b.to_string()];
    biflow(
        m,
        tag,
        fields,
        "cflow.octets",
        (1, "BYTES"),
        counts(f.octets, f.reverse_octets),
    );
    biflow(
        m,
        tag,
        fields,
        "cflow.packets",
        (2, "PKTS"),
        counts(f.packets, f.reverse_packets),
    );
    let flags = |v: u16| format!("{v:#06x}");
    let tcp = [flags(f.tcp_flags), flags(f.reverse_tcp_flags)];
    biflow(m, tag, fields, "cflow.tcpflags", (6, "TCP_FLAGS"), tcp);
    for (name, ms) in [("cflow.abstimestart", f.start_ms), ("cflow.abstimeend", f.end_ms)] {
        if let Some(t) = nth(m, tag, fields, name, 0) {
            m.check(
                format!("{tag} {name}"),
                t.show.clone(),
                UtcTime::from_millis(ms).wireshark(),
            );
            m.check(
                format!("{tag} {name} raw"),
                t.value.clone(),
                hex(&ms.to_be_bytes()),
            );
        }
    }
    show(
        m,
        tag,
        fields,
        "cflow.flow_end_reason",
        0,
        f.end_reason.to_string(),
    );
    show(
        m,
        tag,
        fields,
        "cflow.biflow_direction",
        0,
        f.biflow_direction.to_string(),
    );
    show(m, tag, fields, nat_src, 0, f.post_nat_src.to_string());
    show(m, tag, fields, nat_dst, 0, f.post_nat_dst.to_string());
    let nat_sport = f.post_nat_src_port.to_string();
    show(
        m,
        tag,
        fields,
        "cflow.post_naptsource_transport_port",
        0,
        nat_sport,
    );
    let nat_dport = f.post_nat_dst_port.to_string();
    show(
        m,
        tag,
        fields,
        "cflow.post_naptdestination_transport_port",
        0,
        nat_dport,
    );

    // podflow's elements are unknown to tshark: it shows each as "Enterprise Private entry: (<PEN's
    // name>) Type <id>: Value (hex bytes)" with the raw value (the string's bytes, without the
    // variable-length prefix).
    let enterprise: [(u16, Vec<u8>); 7] = [
        (1, f.community_id.as_bytes().to_vec()),
        (2, f.post_nat_community_id.as_bytes().to_vec()),
        (3, f.conntrack_id.to_be_bytes().to_vec()),
        (4, f.conntrack_mark.to_be_bytes().to_vec()),
        (5, f.pod_name.as_bytes().to_vec()),
        (6, f.pod_namespace.as_bytes().to_vec()),
        (7, f.node_name.as_bytes().to_vec()),
    ];
    let entries = fields
        .iter()
        .filter(|x| x.name == "cflow.enterprise_private_entry")
        .count();
    m.check(format!("{tag} enterprise entries"), entries, enterprise.len());
    for (i, (id, bytes)) in enterprise.iter().enumerate() {
        if let Some(e) = nth(m, tag, fields, "cflow.enterprise_private_entry", i) {
            m.check(
                format!("{tag} enterprise {id} value"),
                e.value.clone(),
                hex(bytes),
            );
            let type_label = format!(" Type {id}: ");
            m.check(
                format!("{tag} enterprise {id} type"),
                e.showname.contains(&type_label),
                true,
            );
        }
    }
}

/// Checks every template record and data record tshark decoded against the encoded ones.
fn check_decoded(d: &Decoded, samples: &[SampleFlow], packets: usize) -> anyhow::Result<usize> {
    if !d.problems.is_empty() {
        bail!("tshark flagged problems:\n  {}", d.problems.join("\n  "));
    }
    let mut m = Mismatches::new();
    m.check("packets dissected as IPFIX", d.ipfix_packets, packets);
    let [v4, v6] = [false, true].map(flows::flow_fields);
    let want_templates = [(V4_TEMPLATE_ID, v4), (V6_TEMPLATE_ID, v6)].map(|(id, specs)| {
        (
            id,
            specs.iter().map(|s| (s.id, s.length, s.pen)).collect::<Vec<_>>(),
        )
    });
    m.check("template records", d.templates.clone(), want_templates.to_vec());
    m.check("data records", d.flows.len(), samples.len());
    for f in samples {
        // Records are found by their source address and port, so order does not matter.
        let (addr_field, addr) = if f.is_v6() {
            ("cflow.srcaddrv6", f.src.to_string())
        } else {
            ("cflow.srcaddr", f.src.to_string())
        };
        let matches: Vec<_> = d
            .flows
            .iter()
            .filter(|fields| {
                let has = |name: &str, v: &str| fields.iter().any(|x| x.name == name && x.show == v);
                has(addr_field, &addr) && has("cflow.srcport", &f.src_port.to_string())
            })
            .collect();
        match matches.as_slice() {
            [fields] => check_flow(&mut m, f, fields),
            other => m.fail(format!(
                "flow {}:{}: {} records match",
                f.src,
                f.src_port,
                other.len()
            )),
        }
    }
    m.finish("tshark")
}

#[test]
fn tshark_decodes_pcap_field_by_field() -> anyhow::Result<()> {
    let Some(tshark) = peer::require("tshark", "tshark")? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let samples = flows::sample_flows();
    let messages = flows::encode_messages(&samples)?;
    let src = SocketAddrV4::new([127, 0, 0, 1].into(), 40_000);
    let dst = SocketAddrV4::new([127, 0, 0, 1].into(), PCAP_PORT);
    let capture = dir.path().join("flows.pcap");
    std::fs::write(&capture, write_pcap(&messages, src, dst, flows::EXPORT_TIME)?)?;

    let decoded = parse_pdml(&tshark_pdml(&tshark, &capture, PCAP_PORT, dir.path())?)?;
    let checked = check_decoded(&decoded, &samples, messages.len())?;
    // Over 40 comparisons per flow: a floor that catches a check that silently compared nothing.
    assert!(checked > 40 * samples.len(), "only {checked} comparisons made");
    Ok(())
}

#[test]
fn tshark_decodes_live_udp_capture() -> anyhow::Result<()> {
    let Some(tshark) = peer::require("tshark", "tshark")? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let samples = flows::sample_flows();
    let messages = flows::encode_messages(&samples)?;

    // A bound receiver keeps the port ours and the datagrams from bouncing with ICMP port unreachable.
    let rx = UdpSocket::bind("127.0.0.1:0")?;
    rx.set_read_timeout(Some(PEER_TIMEOUT))?;
    let tx = UdpSocket::bind("127.0.0.1:0")?;
    let (port, tx_port) = (rx.local_addr()?.port(), tx.local_addr()?.port());
    let capture = dir.path().join("live.pcapng");
    let filter = format!("udp and src port {tx_port} and dst port {port}");
    let mut capturing = PeerProcess::spawn(
        "tshark-capture",
        Command::new(&tshark)
            .args(["-i", "lo", "-f", &filter, "-c", &messages.len().to_string(), "-w"])
            .arg(&capture)
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path()),
        dir.path(),
    )?;
    // tshark logs "Capture started." once dumpcap has the interface open with its filter applied: from
    // then on, every matching packet is captured.
    peer::wait_until("tshark to start capturing on lo", PEER_TIMEOUT, || {
        capturing.check_running()?;
        Ok(capturing.stderr_so_far()?.contains("Capture started"))
    })?;

    let mut buf = vec![0u8; 65_535];
    for m in &messages {
        tx.send_to(m, rx.local_addr()?)?;
        let n = rx.recv(&mut buf).context("receiving our own datagram")?;
        assert_eq!(&buf[..n], m.as_slice(), "loopback altered a datagram");
    }
    // tshark exits by itself after capturing as many packets as were sent.
    let out = capturing.wait_exit()?;
    assert!(
        out.status.success(),
        "tshark capture failed:\n{}",
        peer::describe(&out)
    );

    let decoded = parse_pdml(&tshark_pdml(&tshark, &capture, port, dir.path())?)?;
    let checked = check_decoded(&decoded, &samples, messages.len())?;
    assert!(checked > 40 * samples.len(), "only {checked} comparisons made");
    Ok(())
}

/// The problem check above must be able to fail: data whose template tshark never saw is flagged.
#[test]
fn tshark_problems_are_detected() -> anyhow::Result<()> {
    let Some(tshark) = peer::require("tshark", "tshark")? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let samples = flows::sample_flows();
    let messages = flows::encode_messages(&samples)?;
    let src = SocketAddrV4::new([127, 0, 0, 1].into(), 40_000);
    let dst = SocketAddrV4::new([127, 0, 0, 1].into(), PCAP_PORT);
    let capture = dir.path().join("no-template.pcap");
    // Only the second message: IPv6 data whose template was in the first.
    std::fs::write(
        &capture,
        write_pcap(&messages[1..], src, dst, flows::EXPORT_TIME)?,
    )?;

    let decoded = parse_pdml(&tshark_pdml(&tshark, &capture, PCAP_PORT, dir.path())?)?;
    assert!(
        decoded.problems.iter().any(|p| p.contains("no template")),
        "tshark did not flag data without a template: {:?}",
        decoded.problems
    );
    let err = check_decoded(&decoded, &samples, 1).unwrap_err().to_string();
    assert!(err.contains("tshark flagged problems"), "{err}");
    Ok(())
}
