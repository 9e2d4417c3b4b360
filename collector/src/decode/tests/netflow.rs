//! NetFlow v9 and v5 through the decoder.

use std::net::{IpAddr, Ipv4Addr};

use super::v9::{FIELDS, flowset, packet, record, template};
use super::*;
use crate::model::Protocol;

const UNIX: u32 = 1_700_000_000;

#[test]
fn v9_data_before_its_template_is_held_then_replayed() {
    let mut d = Decoder::default();
    let data = packet(
        1,
        5,
        100_000,
        UNIX,
        &[flowset(260, &record([10, 0, 0, 1], 1234, 999, 90_000, 99_000))],
    );
    assert!(feed(&mut d, ex(1), &data, 0).is_empty());
    let c = stats(&d, key(ex(1), 5));
    assert_eq!((c.template_misses, c.held_sets), (1, 1));
    // The template comes in a later packet with a later uptime; the held records keep their own header.
    let flows = feed(
        &mut d,
        ex(1),
        &packet(2, 5, 130_000, UNIX + 30, &[template(260, FIELDS)]),
        1_000,
    );
    assert_eq!(flows.len(), 1);
    let f = &flows[0];
    assert_eq!(f.protocol, Protocol::NetflowV9);
    assert_eq!(f.observation_domain, 5);
    assert_eq!(f.src, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!((f.sport, f.dport, f.proto, f.forward.octets), (1234, 443, 6, 999));
    let unix_ms = u64::from(UNIX) * 1000;
    assert_eq!((f.start_ms, f.end_ms), (unix_ms - 10_000, unix_ms - 1_000));
    assert_eq!(f.export_time, UNIX);
    assert_eq!(stats(&d, key(ex(1), 5)).replayed_sets, 1);
}

#[test]
fn v9_uptime_timestamps_cross_the_counter_wrap() {
    let mut d = Decoder::default();
    // The exporter's uptime wrapped 2 s ago; the flow started 5 s ago, before the wrap.
    let first = u32::MAX - 2_999;
    let dg = packet(
        1,
        0,
        2_000,
        UNIX,
        &[
            template(256, FIELDS),
            flowset(256, &record([10, 0, 0, 1], 1, 1, first, 1_500)),
        ],
    );
    let f = feed(&mut d, ex(1), &dg, 0).remove(0);
    let unix_ms = u64::from(UNIX) * 1000;
    assert_eq!((f.start_ms, f.end_ms), (unix_ms - 5_000, unix_ms - 500));
}

#[test]
fn v9_sequence_counts_lost_datagrams_per_source_id() {
    let mut d = Decoder::default();
    let tpl = template(256, FIELDS);
    let data = flowset(256, &record([10, 0, 0, 1], 1, 1, 0, 0));
    for (seq, source) in [(10, 1), (11, 1), (15, 1), (16, 1), (7, 2), (8, 2)] {
        let flows = feed(
            &mut d,
            ex(1),
            &packet(seq, source, 0, UNIX, &[tpl.clone(), data.clone()]),
            0,
        );
        let place: Vec<(u32, u32)> = flows.iter().map(|f| (f.sequence, f.position)).collect();
        assert_eq!(place, [(seq, 0)], "v9 records carry their packet's sequence");
    }
    // Each packet carried two records: v9 counts packets, so 12..=14 are three lost datagrams.
    assert_eq!(stats(&d, key(ex(1), 1)).lost_datagrams, 3);
    assert_eq!(stats(&d, key(ex(1), 2)).lost_datagrams, 0);
    assert_eq!(total(&d).lost_records, 0);
}

#[test]
fn v9_replaced_templates_and_lifetime() {
    let mut d = Decoder::new(DecoderConfig {
        template_lifetime_ms: 60_000,
        ..config()
    });
    let rec = record([10, 0, 0, 1], 1000, 50, 0, 0);
    let first = feed(
        &mut d,
        ex(1),
        &packet(1, 0, 0, UNIX, &[template(256, FIELDS), flowset(256, &rec)]),
        0,
    );
    assert_eq!((first[0].sport, first[0].dport), (1000, 443));
    // The same ID now has the ports the other way round and the addresses swapped.
    let swapped: Vec<(u16, u16)> = [(12, 4), (8, 4), (11, 2), (7, 2)]
        .into_iter()
        .chain(FIELDS[4..].iter().copied())
        .collect();
    let f = feed(
        &mut d,
        ex(1),
        &packet(2, 0, 0, UNIX, &[template(256, &swapped), flowset(256, &rec)]),
        10_000,
    )
    .remove(0);
    assert_eq!((f.sport, f.dport), (443, 1000));
    assert_eq!(f.dst, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(d.templates(), 1);
    // Refreshes keep it alive; without one it is gone after the lifetime.
    feed(
        &mut d,
        ex(1),
        &packet(3, 0, 0, UNIX, &[template(256, &swapped)]),
        50_000,
    );
    assert_eq!(
        feed(
            &mut d,
            ex(1),
            &packet(4, 0, 0, UNIX, &[flowset(256, &rec)]),
            110_000
        )
        .len(),
        1
    );
    assert!(
        feed(
            &mut d,
            ex(1),
            &packet(5, 0, 0, UNIX, &[flowset(256, &rec)]),
            110_001
        )
        .is_empty()
    );
    let c = stats(&d, key(ex(1), 0));
    assert_eq!((c.templates, c.template_misses), (3, 1));
}

#[test]
fn v9_options_records_are_counted_and_padding_is_not_an_error() {
    let mut d = Decoder::default();
    // Options template 300: scope System (1, 4 octets), option TOTAL_FLOWS_EXP (42, 4 octets).
    let mut body = Vec::new();
    for v in [300u16, 4, 4, 1, 4, 42, 4] {
        body.extend_from_slice(&v.to_be_bytes());
    }
    let opts = flowset(1, &body);
    let data = flowset(300, &[0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 10]);
    let mut dg = packet(1, 0, 0, UNIX, &[opts, data]);
    dg.extend_from_slice(&[0; 40]);
    assert!(feed(&mut d, ex(1), &dg, 0).is_empty());
    let c = stats(&d, key(ex(1), 0));
    assert_eq!((c.options_records, c.templates, c.errors.total()), (2, 1, 0));
}

#[test]
fn v9_malformed_packets_are_counted_with_their_reason() {
    let cases: &[(&str, Vec<u8>)] = &[
        ("truncated", vec![0, 9, 0, 1, 0, 0, 0, 0]),
        ("bad_length", packet(1, 0, 0, UNIX, &[vec![1, 0, 0, 2, 9, 9]])),
        ("truncated", packet(1, 0, 0, UNIX, &[vec![1, 0, 0, 200, 9, 9]])),
        ("bad_template", packet(1, 0, 0, UNIX, &[template(12, FIELDS)])),
        (
            "unsupported_template",
            packet(1, 0, 0, UNIX, &[template(256, &[(8, 4), (236, 65535)])]),
        ),
        ("unsupported_version", vec![0, 7, 0, 1]),
        ("truncated", vec![9]),
    ];
    for (i, (reason, dg)) in cases.iter().enumerate() {
        let mut d = Decoder::default();
        let got = d.decode(ex(1), dg, 0, &mut |_| panic!("no flow expected"));
        assert_eq!(got.errors, 1, "case {i}");
        assert_eq!(
            total(&d).errors.get(reason),
            1,
            "case {i}: {:?}",
            total(&d).errors
        );
    }
}

/// A v5 packet of `n` flows from 10.5.0.<i>.
fn v5(sequence: u32, engine: (u8, u8), n: u8) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&5u16.to_be_bytes());
    p.extend_from_slice(&u16::from(n).to_be_bytes());
    p.extend_from_slice(&60_000u32.to_be_bytes()); // sysUpTime
    p.extend_from_slice(&UNIX.to_be_bytes());
    p.extend_from_slice(&250_000_000u32.to_be_bytes()); // + 250 ms
    p.extend_from_slice(&sequence.to_be_bytes());
    p.extend_from_slice(&[engine.0, engine.1, 0, 0]);
    for i in 0..n {
        p.extend_from_slice(&[10, 5, 0, i, 10, 6, 0, 1, 0, 0, 0, 0]);
        p.extend_from_slice(&[0, 1, 0, 2]); // input, output
        p.extend_from_slice(&7u32.to_be_bytes()); // packets
        p.extend_from_slice(&700u32.to_be_bytes()); // octets
        p.extend_from_slice(&50_000u32.to_be_bytes()); // first
        p.extend_from_slice(&59_000u32.to_be_bytes()); // last
        p.extend_from_slice(&[0x1f, 0x90, 0x00, 0x50, 0, 0x12, if i == 0 { 1 } else { 6 }, 0]);
        p.extend_from_slice(&[0; 8]);
    }
    p
}

#[test]
fn v5_flows_sequence_and_malformed_packets() {
    let mut d = Decoder::default();
    let flows = feed(&mut d, ex(1), &v5(100, (1, 2), 3), 0);
    assert_eq!(flows.len(), 3);
    let f = &flows[1];
    assert_eq!((f.protocol, f.observation_domain), (Protocol::NetflowV5, 0x0102));
    assert_eq!((f.sport, f.dport, f.proto, f.tcp_flags), (8080, 80, 6, 0x12));
    assert_eq!((f.forward.octets, f.forward.packets), (700, 7));
    let place: Vec<(u32, u32)> = flows.iter().map(|f| (f.sequence, f.position)).collect();
    assert_eq!(place, [(100, 0), (100, 1), (100, 2)]);
    let export_ms = u64::from(UNIX) * 1000 + 250;
    assert_eq!((f.start_ms, f.end_ms), (export_ms - 10_000, export_ms - 1_000));
    // ICMP: type and code from the destination port, no ports.
    assert_eq!(
        (flows[0].proto, flows[0].icmp_type_code, flows[0].dport),
        (1, Some(80), 0)
    );

    // v5 counts flows: after 103 and its 2 flows 105 was expected, so 110 means 5 flows lost.
    feed(&mut d, ex(1), &v5(103, (1, 2), 2), 0);
    feed(&mut d, ex(1), &v5(110, (1, 2), 1), 0);
    feed(&mut d, ex(1), &v5(0, (9, 9), 1), 0);
    assert_eq!(stats(&d, key(ex(1), 0x0102)).lost_records, 5);
    assert_eq!(stats(&d, key(ex(1), 0x0909)).lost_records, 0);

    let mut bad_count = v5(0, (0, 0), 1);
    bad_count[2..4].copy_from_slice(&31u16.to_be_bytes());
    let mut short = v5(0, (0, 0), 2);
    short.truncate(24 + 48 + 10);
    for (reason, dg) in [
        ("bad_count", bad_count),
        ("truncated", short),
        ("truncated", vec![0, 5, 0, 1]),
    ] {
        let mut d = Decoder::default();
        assert!(feed(&mut d, ex(1), &dg, 0).is_empty());
        assert_eq!(total(&d).errors.get(reason), 1, "{reason}");
    }
}
