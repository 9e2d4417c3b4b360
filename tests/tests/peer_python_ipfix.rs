//! python3-ipfix reads the IPFIX file form (RFC 5655) of what proto-ipfix writes.
//!
//! The sample messages are written back to back into a file, which `scripts/read_ipfix.py` reads with
//! python3-ipfix (IANA and RFC 5103 models, plus podflow's elements from `scripts/podflow.iespec`) and
//! prints as JSON. Every record must carry exactly the template's elements, by their registered names
//! (reverse ones as `reverseOctetDeltaCount` etc., podflow's as `communityId` etc.), with the encoded
//! values.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use podflow_e2e::expect::{Mismatches, hex};
use podflow_e2e::flows::{self, SampleFlow};
use podflow_e2e::peer;
use proto_ipfix::ie::{DEFAULT_PODFLOW_PEN, DataType, PODFLOW_IES};
use serde_json::{Value, json};

const PYTHON: &str = "/usr/bin/python3";

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(name)
}

/// Writes the sample messages as an IPFIX file and returns what python3-ipfix read from it, reading
/// enterprise elements from `spec_file`; `None` when the peer is missing and that is allowed.
fn read_with_python(spec_file: &Path) -> anyhow::Result<Option<Vec<Value>>> {
    let Some(python) = peer::require_python_module(PYTHON, "ipfix", "python3-ipfix")? else {
        return Ok(None);
    };
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("flows.ipfix");
    let messages = flows::encode_messages(&flows::sample_flows())?;
    std::fs::write(&file, flows::ipfix_file(&messages))?;
    let out = peer::run(
        Command::new(python)
            .arg(script("read_ipfix.py"))
            .arg(spec_file)
            .arg(&file),
    )?;
    Ok(Some(serde_json::from_str(&out)?))
}

/// Every element of a sample flow's record, by python3-ipfix's name, as the script prints it.
fn expected(f: &SampleFlow) -> Vec<(&'static str, Value)> {
    let v6 = f.is_v6();
    let pick = |v4: &'static str, v6name: &'static str| if v6 { v6name } else { v4 };
    vec![
        (
            pick("sourceIPv4Address", "sourceIPv6Address"),
            json!(f.src.to_string()),
        ),
        (
            pick("destinationIPv4Address", "destinationIPv6Address"),
            json!(f.dst.to_string()),
        ),
        ("sourceTransportPort", json!(f.src_port)),
        ("destinationTransportPort", json!(f.dst_port)),
        ("protocolIdentifier", json!(f.protocol)),
        ("octetDeltaCount", json!(f.octets)),
        ("packetDeltaCount", json!(f.packets)),
        ("reverseOctetDeltaCount", json!(f.reverse_octets)),
        ("reversePacketDeltaCount", json!(f.reverse_packets)),
        ("flowStartMilliseconds", json!(f.start_ms)),
        ("flowEndMilliseconds", json!(f.end_ms)),
        ("flowEndReason", json!(f.end_reason)),
        ("tcpControlBits", json!(f.tcp_flags)),
        ("reverseTcpControlBits", json!(f.reverse_tcp_flags)),
        ("biflowDirection", json!(f.biflow_direction)),
        (
            pick("postNATSourceIPv4Address", "postNATSourceIPv6Address"),
            json!(f.post_nat_src.to_string()),
        ),
        (
            pick("postNATDestinationIPv4Address", "postNATDestinationIPv6Address"),
            json!(f.post_nat_dst.to_string()),
        ),
        ("postNAPTSourceTransportPort", json!(f.post_nat_src_port)),
        ("postNAPTDestinationTransportPort", json!(f.post_nat_dst_port)),
        ("communityId", json!(f.community_id)),
        ("postNatCommunityId", json!(f.post_nat_community_id)),
        ("conntrackId", json!(f.conntrack_id)),
        ("conntrackMark", json!(f.conntrack_mark)),
        ("observerPodName", json!(f.pod_name)),
        ("observerPodNamespace", json!(f.pod_namespace)),
        ("observerNodeName", json!(f.node_name)),
        // IPv4 flows go in the first message, IPv6 flows in the second.
        ("_message", json!(usize::from(v6))),
    ]
}

/// The record of `f`, found by source address and port.
fn find<'a>(m: &mut Mismatches, records: &'a [Value], f: &SampleFlow) -> Option<&'a Value> {
    let key = if f.is_v6() {
        "sourceIPv6Address"
    } else {
        "sourceIPv4Address"
    };
    let found: Vec<_> = records
        .iter()
        .filter(|r| r[key] == json!(f.src.to_string()) && r["sourceTransportPort"] == json!(f.src_port))
        .collect();
    match found.as_slice() {
        [r] => Some(r),
        other => {
            m.fail(format!(
                "flow {}:{}: {} records match",
                f.src,
                f.src_port,
                other.len()
            ));
            None
        }
    }
}

#[test]
fn python_ipfix_reads_file_field_by_field() -> anyhow::Result<()> {
    let Some(records) = read_with_python(&script("podflow.iespec"))? else {
        return Ok(());
    };
    let samples = flows::sample_flows();
    let mut m = Mismatches::new();
    m.check("records", records.len(), samples.len());
    for f in &samples {
        let Some(r) = find(&mut m, &records, f) else {
            continue;
        };
        let tag = format!("flow {}:{}", f.src, f.src_port);
        let want = expected(f);
        // Exactly the template's elements: an element python3-ipfix could not name would show up as
        // `_ipfix_<pen>_<id>`, a misread length as a missing or extra element.
        let got_names: BTreeSet<&str> = r
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k.as_str())
            .collect();
        let want_names: BTreeSet<&str> = want.iter().map(|(k, _)| *k).collect();
        m.check(format!("{tag} element names"), got_names, want_names);
        for (name, value) in want {
            m.check(format!("{tag} {name}"), r[name].clone(), value);
        }
    }
    let checked = m.finish("python3-ipfix")?;
    assert!(checked > 25 * samples.len(), "only {checked} comparisons made");
    Ok(())
}

/// Without podflow's spec file python3-ipfix cannot name podflow's elements: it shows them as
/// `_ipfix_32473_<id>` with their raw octets. This is what the name check above would catch, and it
/// shows the values are intact either way.
#[test]
fn python_ipfix_without_podflow_spec_shows_raw_enterprise_elements() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let empty_spec = dir.path().join("none.iespec");
    std::fs::write(&empty_spec, "")?;
    let Some(records) = read_with_python(&empty_spec)? else {
        return Ok(());
    };
    let samples = flows::sample_flows();
    let mut m = Mismatches::new();
    for f in &samples {
        let Some(r) = find(&mut m, &records, f) else {
            continue;
        };
        let tag = format!("flow {}:{}", f.src, f.src_port);
        m.check(format!("{tag} communityId by name"), r.get("communityId"), None);
        let raw = |id: u16| r[format!("_ipfix_{DEFAULT_PODFLOW_PEN}_{id}")].clone();
        m.check(
            format!("{tag} raw 1"),
            raw(1),
            json!(hex(f.community_id.as_bytes())),
        );
        m.check(
            format!("{tag} raw 3"),
            raw(3),
            json!(hex(&f.conntrack_id.to_be_bytes())),
        );
        m.check(format!("{tag} raw 7"), raw(7), json!(hex(f.node_name.as_bytes())));
    }
    m.finish("python3-ipfix")?;
    Ok(())
}

/// `scripts/podflow.iespec`, which operators can load into python3-ipfix, lists exactly proto-ipfix's
/// podflow elements.
#[test]
fn podflow_iespec_matches_the_ie_table() {
    let text = std::fs::read_to_string(script("podflow.iespec")).unwrap();
    let got: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let want: Vec<String> = PODFLOW_IES
        .iter()
        .map(|ie| {
            let (ty, len) = match ie.data_type {
                DataType::String => ("string", 65535),
                DataType::Unsigned32 => ("unsigned32", 4),
                other => panic!("no iespec type for {other:?}"),
            };
            format!("{}({DEFAULT_PODFLOW_PEN}/{})<{ty}>[{len}]", ie.name, ie.id)
        })
        .collect();
    assert_eq!(got, want);
}
