//! The writer's messages, decoded back with proto-ipfix.

use std::net::{IpAddr, SocketAddr};

use proto_ipfix::ie::{DEFAULT_PODFLOW_PEN as PEN, REVERSE_PEN, podflow};
use proto_ipfix::{DataRecord, Decoder, Visitor};

use super::*;
use crate::flow::{EndReason, FlowTable, TableConfig};
use crate::parse::{Fragment, PacketInfo};

fn pkt(src: &str, sport: u16, dst: &str, dport: u16, proto: u8, len: u32, flags: u8) -> PacketInfo {
    PacketInfo {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        proto,
        sport,
        dport,
        ip_len: len,
        tcp_flags: flags,
        fragment: Fragment::Whole,
    }
}

/// A TCP flow (client 10.0.0.9 -> 10.0.0.1:443), an IPv6 UDP flow and an ICMP echo, flushed.
fn sample_flows() -> Vec<Expired> {
    let mut t = FlowTable::new(TableConfig::default());
    let mut out = Vec::new();
    let mut push = |e| out.push(e);
    t.packet(
        &pkt("10.0.0.9", 40000, "10.0.0.1", 443, 6, 60, 0x02),
        1_700_000_000_000,
        &mut push,
    );
    t.packet(
        &pkt("10.0.0.1", 443, "10.0.0.9", 40000, 6, 60, 0x12),
        1_700_000_000_001,
        &mut push,
    );
    t.packet(
        &pkt("10.0.0.9", 40000, "10.0.0.1", 443, 6, 500, 0x18),
        1_700_000_000_002,
        &mut push,
    );
    t.packet(
        &pkt("fd00::2", 5353, "fd00::1", 53, 17, 80, 0),
        1_700_000_000_003,
        &mut push,
    );
    t.packet(
        &pkt("fd00::1", 53, "fd00::2", 5353, 17, 200, 0),
        1_700_000_000_004,
        &mut push,
    );
    t.packet(
        &pkt("10.0.0.5", 8, "10.0.0.6", 0, 1, 84, 0),
        1_700_000_000_005,
        &mut push,
    );
    t.flush(EndReason::ForcedEnd, &mut push);
    out
}

#[derive(Default)]
struct Rows(Vec<Vec<(u16, u32, Vec<u8>)>>);

impl Visitor for Rows {
    fn record(&mut self, r: &DataRecord<'_>) {
        self.0.push(
            r.fields()
                .map(|f| (f.spec.id, f.spec.pen, f.value.to_vec()))
                .collect(),
        );
    }
}

fn value(row: &[(u16, u32, Vec<u8>)], id: u16, pen: u32) -> Option<&[u8]> {
    row.iter()
        .find(|(i, p, _)| *i == id && *p == pen)
        .map(|(_, _, v)| v.as_slice())
}

fn uint(row: &[(u16, u32, Vec<u8>)], id: u16, pen: u32) -> u64 {
    value(row, id, pen)
        .unwrap()
        .iter()
        .fold(0u64, |a, b| a << 8 | u64::from(*b))
}

fn decode_all(messages: &[Vec<u8>]) -> Rows {
    let mut d = Decoder::default();
    let mut rows = Rows::default();
    let from = SocketAddr::from(([127, 0, 0, 1], 9));
    for m in messages {
        let s = d.decode(from, m, 0, &mut rows);
        assert_eq!(s.first_error, None);
        assert_eq!(s.missing_template_sets, 0);
    }
    rows
}

#[test]
fn biflow_records_carry_both_directions() {
    let mut w = IpfixWriter::new(ExportConfig::default()).unwrap();
    let mut messages = Vec::new();
    w.write(&sample_flows(), 1_700_000_001_000, &mut |m| {
        messages.push(m.to_vec())
    });
    assert_eq!(messages.len(), 1);
    let rows = decode_all(&messages).0;
    assert_eq!(rows.len(), 3);
    let tcp = rows.iter().find(|r| uint(r, 4, 0) == 6).unwrap();
    assert_eq!(
        value(tcp, 8, 0).unwrap(),
        &[10, 0, 0, 9],
        "the initiator is the source"
    );
    assert_eq!((uint(tcp, 7, 0), uint(tcp, 11, 0)), (40000, 443));
    assert_eq!((uint(tcp, 1, 0), uint(tcp, 2, 0)), (560, 2));
    assert_eq!((uint(tcp, 1, REVERSE_PEN), uint(tcp, 2, REVERSE_PEN)), (60, 1));
    assert_eq!((uint(tcp, 6, 0), uint(tcp, 6, REVERSE_PEN)), (0x1a, 0x12));
    assert_eq!(
        (uint(tcp, 152, 0), uint(tcp, 153, 0)),
        (1_700_000_000_000, 1_700_000_000_002)
    );
    assert_eq!((uint(tcp, 136, 0), uint(tcp, 239, 0)), (4, 1));
    let cid = std::str::from_utf8(value(tcp, podflow::COMMUNITY_ID, PEN).unwrap()).unwrap();
    let expect = proto_ipfix::community_id::CommunityId::default()
        .hash(
            "10.0.0.9".parse().unwrap(),
            "10.0.0.1".parse().unwrap(),
            6,
            40000,
            443,
        )
        .unwrap()
        .base64();
    assert_eq!(cid, &*expect);
    let udp6 = rows.iter().find(|r| uint(r, 4, 0) == 17).unwrap();
    assert_eq!(
        value(udp6, 27, 0).unwrap(),
        "fd00::2".parse::<std::net::Ipv6Addr>().unwrap().octets()
    );
    assert_eq!(
        value(udp6, 28, 0).unwrap(),
        "fd00::1".parse::<std::net::Ipv6Addr>().unwrap().octets()
    );
    let icmp = rows.iter().find(|r| uint(r, 4, 0) == 1).unwrap();
    assert_eq!(
        (uint(icmp, 32, 0), uint(icmp, 7, 0), uint(icmp, 11, 0)),
        (8 << 8, 0, 0)
    );
}

#[test]
fn uniflow_writes_one_record_per_direction_with_packets() {
    let cfg = ExportConfig {
        uniflow: true,
        ..ExportConfig::default()
    };
    let mut w = IpfixWriter::new(cfg).unwrap();
    let mut messages = Vec::new();
    w.write(&sample_flows(), 0, &mut |m| messages.push(m.to_vec()));
    let rows = decode_all(&messages).0;
    // tcp both ways, udp both ways, icmp one way
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| value(r, 1, REVERSE_PEN).is_none()));
    let back = rows
        .iter()
        .find(|r| uint(r, 4, 0) == 6 && uint(r, 7, 0) == 443)
        .unwrap();
    assert_eq!((uint(back, 1, 0), uint(back, 2, 0)), (60, 1));
    let total: u64 = rows.iter().map(|r| uint(r, 2, 0)).sum();
    assert_eq!(total, 6);
}

#[test]
fn messages_respect_the_size_and_templates_are_refreshed() {
    let cfg = ExportConfig {
        max_message_size: 512,
        template_refresh_ms: 10_000,
        ..ExportConfig::default()
    };
    let mut w = IpfixWriter::new(cfg).unwrap();
    let mut flows = Vec::new();
    for _ in 0..20 {
        flows.extend(sample_flows());
    }
    let mut messages = Vec::new();
    w.write(&flows, 0, &mut |m| messages.push(m.to_vec()));
    assert!(messages.len() > 3);
    assert!(messages.iter().all(|m| m.len() <= 512));
    assert_eq!(decode_all(&messages).0.len(), 60);
    let has_templates = |m: &[u8]| m[16..18] == [0, 2];
    assert!(has_templates(&messages[0]));
    assert!(!messages[1..].iter().any(|m| has_templates(m)));
    // nothing to send and templates not yet due: no message
    let mut later = Vec::new();
    w.write(&[], 5_000, &mut |m| later.push(m.to_vec()));
    assert!(later.is_empty());
    // refresh due: a template-only message goes out
    w.write(&[], 10_000, &mut |m| later.push(m.to_vec()));
    assert_eq!(later.len(), 1);
    assert!(has_templates(&later[0]));
    assert_eq!(w.stats().records, 60);
}

#[test]
fn observer_strings_follow_the_community_id() {
    let observer = ObserverInfo {
        pod_name: Some("web-7d4b9".into()),
        pod_namespace: Some("shop".into()),
        node_name: Some("node-a".into()),
    };
    let cfg = ExportConfig {
        observer,
        ..ExportConfig::default()
    };
    let mut w = IpfixWriter::new(cfg).unwrap();
    let mut messages = Vec::new();
    w.write(&sample_flows(), 0, &mut |m| messages.push(m.to_vec()));
    let rows = decode_all(&messages).0;
    for r in &rows {
        assert_eq!(value(r, podflow::OBSERVER_POD_NAME, PEN).unwrap(), b"web-7d4b9");
        assert_eq!(value(r, podflow::OBSERVER_POD_NAMESPACE, PEN).unwrap(), b"shop");
        assert_eq!(value(r, podflow::OBSERVER_NODE_NAME, PEN).unwrap(), b"node-a");
    }
    let addr: IpAddr = "10.0.0.9".parse().unwrap();
    assert!(rows.iter().any(|r| value(r, 8, 0)
        == Some(&match addr {
            IpAddr::V4(a) => a.octets(),
            IpAddr::V6(_) => unreachable!(),
        })));
}

#[test]
fn too_small_messages_are_a_config_error() {
    let cfg = ExportConfig {
        max_message_size: 100,
        ..ExportConfig::default()
    };
    assert!(matches!(
        IpfixWriter::new(cfg),
        Err(ConfigError::TemplatesTooLarge { .. })
    ));
}

#[test]
fn nat_templates_are_announced_only_with_conntrack() {
    let plain = TemplateSet::new(false, PEN, &ObserverInfo::default(), false).unwrap();
    assert_eq!(plain.all().len(), 2);
    assert_eq!(plain.nat_flow_id(false), None);
    let nat = TemplateSet::new(false, PEN, &ObserverInfo::default(), true).unwrap();
    let ids: Vec<u16> = nat.all().iter().map(|t| t.id()).collect();
    assert_eq!(ids, [256, 257, 260, 261, 264, 265]);
    let fields = |id: u16| -> Vec<(u16, u16, u32)> {
        let t = nat.all().into_iter().find(|t| t.id() == id).unwrap();
        t.fields().iter().map(|f| (f.id, f.length, f.pen)).collect()
    };
    let v6 = fields(261);
    for f in [
        (281, 16, 0),
        (282, 16, 0),
        (227, 2, 0),
        (228, 2, 0),
        (3, 4, PEN),
        (4, 4, PEN),
    ] {
        assert!(v6.contains(&f), "{f:?} missing from {v6:?}");
    }
    let event = fields(264);
    assert_eq!(event[0], (230, 1, 0));
    assert!(event.contains(&(323, 8, 0)) && event.contains(&(225, 4, 0)));
    // With a 512-octet maximum the six templates take two messages; records follow, decodable.
    let cfg = ExportConfig {
        nat: true,
        max_message_size: 512,
        ..ExportConfig::default()
    };
    let mut w = IpfixWriter::new(cfg).unwrap();
    let mut messages = Vec::new();
    w.write(&sample_flows(), 0, &mut |m| messages.push(m.to_vec()));
    assert!(messages.iter().all(|m| m.len() <= 512));
    let has_templates = |m: &[u8]| m[16..18] == [0, 2];
    assert!(has_templates(&messages[0]) && has_templates(&messages[1]));
    assert_eq!(decode_all(&messages).0.len(), 3);
    assert_eq!(w.stats().encode_errors, 0);
}
