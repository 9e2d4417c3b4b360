//! The collector's decoder against every capture of `testdata/captures`: NetFlow v5, v9 and IPFIX from
//! many vendors, each vendor fed from its own exporter address with its template files first (as
//! `testdata/captures/SOURCES.md` says). Every file gives exactly the flow records other decoders find in
//! it, field values of several vendors are checked, and malformed input is counted, never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod captures_common;
use captures_common as common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use common::{Expect, VENDORS, captures, datagrams, exporter, feed_vendor, flows_of, read, vendor};
use podflow_collector::decode::{Decoder, StatsKey};
use podflow_collector::model::{NatEndpoint, Protocol};
#[test]
fn every_capture_decodes_to_the_expected_flows() {
    // One decoder for all: vendors are kept apart by their exporter addresses alone.
    let mut d = Decoder::default();
    let mut per_protocol = BTreeMap::<&str, (u64, u64)>::new();
    for (i, (vendor, files)) in VENDORS.iter().enumerate() {
        for ((name, expect), (_, flows, c)) in files.iter().zip(feed_vendor(&mut d, i)) {
            let got = Expect {
                flows: flows.len() as u64,
                options: c.options_records,
                no_addresses: c.no_addresses,
                misses: c.template_misses,
                error: c.errors.iter().next().map(|(r, _)| r),
            };
            assert_eq!(got, *expect, "{vendor}/{name}: {c:?}");
            assert_eq!(c.records, got.flows);
            assert!(c.errors.total() <= 1, "{name}");
            assert!(flows.iter().all(|f| f.exporter == exporter(i)));
            let protocol = match read(name)[1] {
                5 => "v5",
                9 => "v9",
                _ => "ipfix",
            };
            let e = per_protocol.entry(protocol).or_default();
            e.0 += got.flows;
            e.1 += got.options;
        }
    }
    assert_eq!(
        per_protocol,
        BTreeMap::from([("ipfix", (117, 3)), ("v5", (89, 0)), ("v9", (252, 39))])
    );
}

#[test]
fn every_dat_file_is_in_the_table() {
    let mut on_disk: Vec<String> = std::fs::read_dir(captures().join("logstash-codec-netflow"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".dat"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = VENDORS
        .iter()
        .flat_map(|(_, files)| files.iter().map(|(n, _)| n.to_string()))
        .collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

#[test]
fn held_sets_that_never_get_a_template_expire() {
    let mut d = Decoder::default();
    let i = VENDORS.iter().position(|(v, _)| *v == "ipt_netflow").unwrap();
    feed_vendor(&mut d, i);
    assert_eq!(d.held_sets(), 6);
    let hold_ms = d.config().hold.hold_ms;
    d.expire(hold_ms + 1);
    assert_eq!(d.held_sets(), 0);
    assert_eq!(d.stats().total().expired_sets, 6);
}

#[test]
fn cesnet_file_decodes_with_sequence_numbers_intact() {
    let bytes = std::fs::read(captures().join("cesnet-ipfixcol2/example_flows.ipfix")).unwrap();
    let from = SocketAddr::from(([198, 51, 100, 6], 4739));
    let mut d = Decoder::default();
    let mut flows = 0u64;
    for msg in datagrams(&bytes) {
        d.decode(from, msg, 0, &mut |_| flows += 1);
    }
    let c = d
        .stats()
        .get(&StatsKey {
            exporter: from,
            observation_domain: Some(6),
        })
        .cloned()
        .unwrap();
    // proto-ipfix's tests/captures.rs: 3979 data records in 68 messages, all of templates 256..=261 (flow
    // templates with addresses); none lost (the exporter restarts its count at message 3, which is not
    // loss).
    assert_eq!((c.datagrams, c.templates), (68, 8));
    assert_eq!(
        (flows, c.records, c.options_records, c.no_addresses),
        (3979, 3979, 0, 0)
    );
    assert_eq!((c.lost_records, c.errors.total(), c.template_misses), (0, 0, 0));
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn nat(ip: IpAddr, port: Option<u16>) -> Option<NatEndpoint> {
    Some(NatEndpoint { ip: Some(ip), port })
}

/// Values below were read off tshark's dissection of the same datagrams.
#[test]
fn field_values_of_several_vendors() {
    // MikroTik IPFIX: postNATSource/DestinationIPv4Address; sysUpTime timestamps without the exporter's
    // boot time end at export time.
    let f = &flows_of("mikrotik", "ipfix_test_mikrotik_data258.dat")[0];
    assert_eq!((f.protocol, f.export_time), (Protocol::Ipfix, 1_500_481_088));
    assert_eq!(
        (f.src, f.dst, f.sport, f.dport, f.proto),
        (v4(10, 10, 8, 197), v4(192, 168, 128, 17), 123, 123, 17)
    );
    assert_eq!((f.forward.octets, f.forward.packets), (152, 2));
    assert_eq!(
        f.post_nat_src,
        Some(NatEndpoint {
            ip: Some(v4(192, 168, 230, 216)),
            port: None
        })
    );
    assert_eq!(
        f.post_nat_dst,
        Some(NatEndpoint {
            ip: Some(v4(192, 168, 128, 17)),
            port: None
        })
    );
    assert_eq!((f.start_ms, f.end_ms), (1_500_481_088_000, 1_500_481_088_000));

    // YAF: RFC 5103 reverse counters, flowStart/EndMilliseconds, flowEndReason.
    let f = &flows_of("yaf", "ipfix_test_yaf_data45841.dat")[0];
    assert_eq!(
        (f.src, f.dst, f.sport, f.dport, f.proto),
        (v4(172, 16, 32, 201), v4(172, 16, 32, 100), 46086, 53, 17)
    );
    assert_eq!((f.forward.octets, f.forward.packets), (132, 2));
    assert_eq!(f.reverse.map(|r| (r.octets, r.packets)), Some((200, 2)));
    assert_eq!(
        (f.start_ms, f.end_ms, f.end_reason),
        (1_482_670_715_818, 1_482_670_715_819, Some(1))
    );

    // Cisco ASA (NSEL): initiator/responder octets, NAT addresses and ports, event time as the end.
    let f = &flows_of("cisco_asa_2", "netflow9_test_cisco_asa_2_data.dat")[0];
    assert_eq!((f.protocol, f.observation_domain), (Protocol::NetflowV9, 0));
    assert_eq!(
        (f.src, f.dst, f.sport, f.dport, f.proto),
        (v4(192, 168, 0, 2), v4(192, 168, 0, 17), 61775, 80, 6)
    );
    assert_eq!((f.forward.octets, f.reverse.map(|r| r.octets)), (81, Some(763)));
    assert_eq!(f.post_nat_src, nat(v4(192, 168, 0, 2), Some(61775)));
    assert_eq!(f.post_nat_dst, nat(v4(192, 168, 0, 17), Some(80)));
    assert_eq!((f.start_ms, f.end_ms), (1_469_109_032_955, 1_469_109_033_015));
    assert_eq!(f.icmp_type_code, None, "ICMP fields of a TCP flow are ignored");

    // FortiOS 5.4.2: NAT fields; times from sysUpTime 2432.100 s at export 1526000051.
    let f = &flows_of(
        "fortios_542",
        "netflow9_test_fortigate_fortios_542_appid_data258_262.dat",
    )[0];
    assert_eq!(
        (f.src, f.dst, f.sport, f.dport),
        (v4(192, 168, 100, 151), v4(182, 50, 136, 239), 45380, 80)
    );
    assert_eq!(
        (f.forward.octets, f.forward.packets, f.end_reason),
        (748, 6, Some(3))
    );
    assert_eq!(f.post_nat_src, nat(v4(10, 0, 0, 250), Some(45380)));
    assert_eq!(f.post_nat_dst, nat(v4(0, 0, 0, 0), Some(0)));
    assert_eq!((f.start_ms, f.end_ms), (1_526_000_049_580, 1_526_000_049_990));

    // Cisco ASR 1001-X: flowStart/EndMilliseconds in v9.
    let f = &flows_of("cisco_asr1001x", "netflow9_cisco_asr1001x_tpl259.dat")[0];
    assert_eq!(
        (f.src, f.dst, f.sport, f.dport),
        (v4(10, 111, 111, 242), v4(10, 12, 100, 13), 52444, 53218)
    );
    assert_eq!(
        (f.forward.octets, f.forward.packets, f.observation_domain),
        (965, 7, 512)
    );
    assert_eq!((f.start_ms, f.end_ms), (1_507_580_540_637, 1_507_580_540_731));

    // softflowd: an ICMPv6 flow (router advertisements, type 134), its type and code in the destination
    // port.
    let f = &flows_of("softflowd", "netflow9_test_softflowd_tpl_data.dat")[6];
    assert_eq!(
        (f.src, f.dst),
        (
            "fe80::20c:29ff:fe83:3b6e".parse().unwrap(),
            "ff02::1".parse().unwrap()
        )
    );
    assert_eq!(
        (f.proto, f.icmp_type_code, f.sport, f.dport),
        (58, Some(134 << 8), 0, 0)
    );
    assert_eq!((f.forward.octets, f.forward.packets), (672, 7));

    // NetFlow v5: the first record starts at sysUpTime 0xffffffff, 1 ms before the uptime counter's
    // wrap, while the header's uptime is 3381 ms: 3382 ms before the export time (1430591888.280 s).
    let f = &flows_of("v5", "netflow5.dat")[0];
    assert_eq!(
        (f.protocol, f.src, f.dst, f.sport, f.dport),
        (Protocol::NetflowV5, v4(10, 0, 2, 2), v4(10, 0, 2, 15), 54435, 22)
    );
    assert_eq!((f.forward.octets, f.forward.packets, f.tcp_flags), (230, 5, 0x10));
    assert_eq!((f.start_ms, f.end_ms), (1_430_591_884_898, 1_430_591_887_476));
}

#[test]
fn sequence_numbers_of_consecutive_captures_show_no_loss() {
    // netflow5.dat's 12 packets follow on from each other (v5 counts flows).
    let (_, flows, c) = vendor("v5").remove(0);
    assert_eq!((flows.len(), c.datagrams, c.lost_records), (30, 12, 0));
}

/// Palo Alto's NAT templates (261: 257's fields and postNAT addresses and ports after firewallEvent) have
/// no data in the captures: one record of 261 is made from the real record of 257 with NAT values added.
#[test]
fn palo_alto_nat_template_is_read() {
    let tpl = read("netflow9_test_paloalto_panos_tpl.dat");
    let data = read("netflow9_test_paloalto_panos_data.dat");
    assert_eq!(
        &data[20..24],
        &[1, 1, 0, 159],
        "first flowset: template 257, 159 octets"
    );
    let rec257 = &data[24..24 + 155];
    let mut rec = rec257[..55].to_vec();
    rec.extend_from_slice(&[203, 0, 113, 5, 23, 35, 171, 27, 0x9c, 0x40, 0, 80]);
    rec.extend_from_slice(&rec257[55..]);
    let mut dg = data[..20].to_vec();
    dg.extend_from_slice(&261u16.to_be_bytes());
    dg.extend_from_slice(&u16::try_from(rec.len() + 4).unwrap().to_be_bytes());
    dg.extend_from_slice(&rec);

    let mut d = Decoder::default();
    let from = exporter(200);
    d.decode(from, &tpl, 0, &mut |_| {});
    let mut flows = Vec::new();
    d.decode(from, &dg, 0, &mut |f| flows.push(f));
    let f = &flows[0];
    assert_eq!(
        (f.src, f.dst, f.sport, f.dport),
        (v4(23, 35, 171, 27), v4(10, 32, 91, 205), 80, 49519)
    );
    assert_eq!((f.forward.octets, f.forward.packets), (70, 1));
    assert_eq!(f.post_nat_src, nat(v4(203, 0, 113, 5), Some(40000)));
    assert_eq!(f.post_nat_dst, nat(v4(23, 35, 171, 27), Some(80)));
    assert_eq!((f.start_ms, f.end_ms), (1_510_583_971_000, 1_510_583_971_000));
}

/// Every capture cut short at many points and with bytes flipped, fed after the vendor's templates:
/// counted, never a panic, and the state stays within its limits.
#[test]
fn damaged_captures_never_panic() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for (i, (_, files)) in VENDORS.iter().enumerate() {
        let mut d = Decoder::default();
        feed_vendor(&mut d, i);
        for (name, _) in files.iter() {
            let bytes = read(name);
            let step = (bytes.len() / 97).max(1);
            for cut in (0..bytes.len()).step_by(step) {
                let got = d.decode(exporter(i), &bytes[..cut], 1, &mut |_| {});
                if cut < 4 {
                    assert_eq!(got.errors, 1, "{name} cut at {cut}");
                }
            }
            for _ in 0..200 {
                let mut b = bytes.clone();
                for _ in 0..(next() % 4 + 1) {
                    let at = (next() as usize) % b.len();
                    b[at] = next() as u8;
                }
                d.decode(exporter(i), &b, 2, &mut |_| {});
            }
        }
        let limits = d.config();
        assert!(
            d.templates() <= limits.limits.max_templates_per_exporter
                && d.held_sets() <= limits.hold.max_sets,
            "vendor {i}"
        );
    }
}
