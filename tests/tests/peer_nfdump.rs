//! nfdump's collector (nfcapd) reads what proto-ipfix writes.
//!
//! nfcapd listens on a free loopback port; the sample biflows are sent to it over UDP; it is stopped with
//! SIGTERM so it flushes its file, and `nfdump` prints the flows as JSON and raw text. What nfdump 1.7
//! makes of podflow's records, checked here field by field:
//! - addresses (`src4_addr`/`dst4_addr`, `src6_addr`/`dst6_addr`), ports, `proto`, `first`/`last`;
//! - forward counters as `in_bytes`/`in_packets`, RFC 5103 reverse counters as `out_bytes`/`out_packets`;
//! - one `tcp_flags` per flow: the reverse element (29305/6) overwrites the forward one, so nfdump shows
//!   the reverse direction's flags;
//! - postNAT IPv4 addresses and NAPT ports in its translation extension (`src4_xlt_ip`, `dst4_xlt_ip`,
//!   `src_xlt_port`, `dst_xlt_port`); the IPv6 postNAT addresses (281/282) are not read by nfdump 1.7.1,
//!   only the ports;
//! - biflowDirection and flowEndReason only in raw output (`biFlow Dir`, `end reason`);
//! - podflow's enterprise elements are skipped by length, which the records after them prove.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::UdpSocket;
use std::process::Command;

use anyhow::Context;
use podflow_e2e::expect::{Mismatches, UtcTime};
use podflow_e2e::flows::{self, SampleFlow};
use podflow_e2e::nfcapd::Nfcapd;
use podflow_e2e::peer;
use proto_ipfix::IpfixHeader;
use serde_json::Value;

/// A message without sets that continues the sample stream after `records_sent` data records.
fn empty_message(records_sent: u32) -> Vec<u8> {
    let mut msg = vec![0u8; 16];
    let header = IpfixHeader {
        length: 16,
        export_time: flows::EXPORT_TIME,
        sequence: records_sent,
        observation_domain: flows::OBSERVATION_DOMAIN,
    };
    header.emit(&mut msg).expect("16 octets hold a header");
    msg
}

/// Sends the messages (holding `records_sent` data records) to a fresh nfcapd, stops it, and returns
/// nfdump's JSON and raw dumps of what it stored, and nfcapd's log.
fn collect(messages: &[Vec<u8>], records_sent: u32) -> anyhow::Result<Option<(Vec<Value>, String, String)>> {
    let Some(nfcapd) = peer::require("nfcapd", "nfdump")? else {
        return Ok(None);
    };
    let Some(nfdump) = peer::require("nfdump", "nfdump")? else {
        return Ok(None);
    };
    let dir = tempfile::tempdir()?;
    let flow_dir = dir.path().join("flows");
    std::fs::create_dir(&flow_dir)?;
    let c = Nfcapd::start(&nfcapd, &flow_dir, dir.path())?;

    // A header-only message follows the flows: once nfcapd has repeated it, it has finished with every
    // flow message (see podflow_e2e::nfcapd).
    let tx = UdpSocket::bind("127.0.0.1:0")?;
    let mut buf = vec![0u8; 65_535];
    let trailer = empty_message(records_sent);
    for m in messages.iter().chain([&trailer]) {
        tx.send_to(m, ("127.0.0.1", c.port))?;
        let n = c
            .repeats
            .recv(&mut buf)
            .context("nfcapd did not repeat a datagram it should have read")?;
        assert_eq!(&buf[..n], m.as_slice(), "nfcapd repeated something else");
    }
    let (out, flow_dir) = c.stop()?;
    let log = String::from_utf8_lossy(&out.stderr).into_owned();

    // nfdump prints times in local time: pin it to UTC. -R reads every file in the directory, in case
    // nfcapd rotated its file while the test ran.
    let dump = |format: &str| {
        peer::run(
            Command::new(&nfdump)
                .arg("-R")
                .arg(&flow_dir)
                .args(["-o", format])
                .env("TZ", "UTC"),
        )
    };
    let json_text = dump("json")?;
    let json: Vec<Value> = serde_json::from_str(&json_text)
        .with_context(|| format!("nfdump printed invalid JSON:\n{json_text}"))?;
    Ok(Some((json, dump("raw")?, log)))
}

/// nfdump's rendering of TCP flags: `CEUAPRSF`, a dot for each flag not set.
fn nfdump_flags(v: u16) -> String {
    "CEUAPRSF"
        .chars()
        .enumerate()
        .map(|(i, c)| if v & (0x80 >> i) != 0 { c } else { '.' })
        .collect()
}

/// The `key = value` lines of each "Flow Record:" block of `nfdump -o raw`.
fn raw_records(raw: &str) -> Vec<HashMap<String, String>> {
    raw.split("Flow Record:")
        .skip(1)
        .map(|block| {
            block
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect()
        })
        .collect()
}

fn check_json(m: &mut Mismatches, f: &SampleFlow, r: &Value) {
    let tag = format!("flow {}:{}", f.src, f.src_port);
    let field = |name: &str| r.get(name).cloned().unwrap_or(Value::Null);
    let mut num = |name: &str, want: u64| m.check(format!("{tag} {name}"), field(name), Value::from(want));
    num("src_port", f.src_port.into());
    num("dst_port", f.dst_port.into());
    num("proto", f.protocol.into());
    num("in_bytes", f.octets);
    num("in_packets", f.packets);
    num("out_bytes", f.reverse_octets);
    num("out_packets", f.reverse_packets);
    let mut text =
        |name: &str, want: String| m.check(format!("{tag} {name}"), field(name), Value::from(want));
    let (src, dst) = if f.is_v6() {
        ("src6_addr", "dst6_addr")
    } else {
        ("src4_addr", "dst4_addr")
    };
    text(src, f.src.to_string());
    text(dst, f.dst.to_string());
    text("first", UtcTime::from_millis(f.start_ms).iso_millis());
    text("last", UtcTime::from_millis(f.end_ms).iso_millis());
    text("tcp_flags", nfdump_flags(f.reverse_tcp_flags));
    text("ip4_router", "127.0.0.1".into());
    // nfdump prints the translated ports as strings.
    text("src_xlt_port", f.post_nat_src_port.to_string());
    text("dst_xlt_port", f.post_nat_dst_port.to_string());
    if f.is_v6() {
        for name in ["src6_xlt_ip", "dst6_xlt_ip"] {
            m.check(
                format!("{tag} {name} (nfdump 1.7.1 does not read IEs 281/282; if it now does, check them)"),
                field(name),
                Value::Null,
            );
        }
    } else {
        text("src4_xlt_ip", f.post_nat_src.to_string());
        text("dst4_xlt_ip", f.post_nat_dst.to_string());
    }
}

fn check_raw(m: &mut Mismatches, f: &SampleFlow, r: &HashMap<String, String>) {
    let tag = format!("flow {}:{} raw", f.src, f.src_port);
    let direction = match f.biflow_direction {
        1 => "initiator",
        2 => "reverseInitiator",
        3 => "perimeter",
        _ => "arbitrary",
    };
    let reason = match f.end_reason {
        1 => "idle timeout",
        2 => "active timeout",
        3 => "end of Flow detected",
        _ => "?",
    };
    let want = [
        ("biFlow Dir", format!("{:#04x} {direction}", f.biflow_direction)),
        ("end reason", format!("{:#04x} {reason}", f.end_reason)),
        (
            "tcp flags",
            format!(
                "{:#04x} {}",
                f.reverse_tcp_flags,
                nfdump_flags(f.reverse_tcp_flags)
            ),
        ),
        (
            "first",
            format!(
                "{} [{}]",
                f.start_ms,
                UtcTime::from_millis(f.start_ms).iso_millis().replace('T', " ")
            ),
        ),
    ];
    for (key, want) in want {
        m.check(format!("{tag} {key}"), r.get(key).cloned(), Some(want));
    }
}

/// Finds each sample flow among nfdump's records and compares them field by field.
fn check_all(json: &[Value], raw: &str, samples: &[SampleFlow]) -> anyhow::Result<usize> {
    let raw = raw_records(raw);
    let mut m = Mismatches::new();
    m.check("JSON records", json.len(), samples.len());
    m.check("raw records", raw.len(), samples.len());
    for f in samples {
        // Records are found by source address and port, so their order does not matter.
        let src_key = if f.is_v6() { "src6_addr" } else { "src4_addr" };
        let src = Value::from(f.src.to_string());
        let port = Value::from(f.src_port);
        let found: Vec<_> = json
            .iter()
            .filter(|r| r.get(src_key) == Some(&src) && r.get("src_port") == Some(&port))
            .collect();
        match found.as_slice() {
            [r] => check_json(&mut m, f, r),
            other => m.fail(format!(
                "flow {}:{}: {} JSON records match",
                f.src,
                f.src_port,
                other.len()
            )),
        }
        let (addr, port) = (f.src.to_string(), f.src_port.to_string());
        let raw_found: Vec<_> = raw
            .iter()
            .filter(|r| r.get("src addr") == Some(&addr) && r.get("src port") == Some(&port))
            .collect();
        match raw_found.as_slice() {
            [r] => check_raw(&mut m, f, r),
            other => m.fail(format!(
                "flow {}:{}: {} raw records match",
                f.src,
                f.src_port,
                other.len()
            )),
        }
    }
    m.finish("nfdump")
}

#[test]
fn nfdump_reads_biflows_field_by_field() -> anyhow::Result<()> {
    let samples = flows::sample_flows();
    let messages = flows::encode_messages(&samples)?;
    let Some((json, raw, log)) = collect(&messages, 3)? else {
        return Ok(());
    };
    // nfcapd's closing statistics count the flows it stored.
    let stats = format!("Flows: {}, ", samples.len());
    assert!(
        log.contains(&stats),
        "nfcapd did not store {} flows:\n{log}",
        samples.len()
    );
    let checked = check_all(&json, &raw, &samples)?;
    assert!(checked > 20 * samples.len(), "only {checked} comparisons made");
    Ok(())
}

/// The checks above must be able to fail: a flow nfdump never saw is reported missing.
#[test]
fn nfdump_missing_flow_is_detected() -> anyhow::Result<()> {
    let samples = flows::sample_flows();
    let messages = flows::encode_messages(&samples)?;
    // Only the first message: the IPv6 flow is never sent.
    let Some((json, raw, _log)) = collect(&messages[..1], 2)? else {
        return Ok(());
    };
    let err = check_all(&json, &raw, &samples).unwrap_err().to_string();
    assert!(
        err.contains("2001:db8:1::17:50123: 0 JSON records match"),
        "{err}"
    );
    assert!(err.contains("JSON records: got 2, want 3"), "{err}");
    Ok(())
}

#[test]
fn nfdump_flag_rendering() {
    assert_eq!(nfdump_flags(0x1a), "...AP.S.");
    assert_eq!(nfdump_flags(0x00), "........");
    assert_eq!(nfdump_flags(0xff), "CEUAPRSF");
}
