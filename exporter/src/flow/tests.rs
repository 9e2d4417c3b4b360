//! Flow table behaviour on a fake clock.

use std::net::IpAddr;

use super::*;
use crate::parse::{Fragment, PacketInfo};

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;

fn pkt(src: &str, sport: u16, dst: &str, dport: u16, proto: u8, len: u32, flags: u8) -> PacketInfo {
    PacketInfo {
        src: src.parse::<IpAddr>().unwrap(),
        dst: dst.parse::<IpAddr>().unwrap(),
        proto,
        sport,
        dport,
        ip_len: len,
        tcp_flags: flags,
        fragment: Fragment::Whole,
    }
}

fn table(cfg: TableConfig) -> (FlowTable, Vec<Expired>) {
    (FlowTable::new(cfg), Vec::new())
}

#[test]
fn tcp_connection_is_one_biflow_ending_after_linger() {
    let (mut t, mut out) = table(TableConfig::default());
    // client 10.0.0.9:40000 (the larger address) opens to 10.0.0.1:80
    let c = ("10.0.0.9", 40000);
    let s = ("10.0.0.1", 80);
    t.packet(&pkt(c.0, c.1, s.0, s.1, 6, 60, SYN), 1000, &mut |e| out.push(e));
    t.packet(&pkt(s.0, s.1, c.0, c.1, 6, 60, SYN | ACK), 1001, &mut |e| {
        out.push(e)
    });
    t.packet(&pkt(c.0, c.1, s.0, s.1, 6, 52, ACK), 1002, &mut |e| out.push(e));
    t.packet(&pkt(c.0, c.1, s.0, s.1, 6, 152, ACK), 1003, &mut |e| out.push(e));
    t.packet(&pkt(s.0, s.1, c.0, c.1, 6, 1052, ACK | FIN), 1004, &mut |e| {
        out.push(e)
    });
    t.packet(&pkt(c.0, c.1, s.0, s.1, 6, 52, ACK | FIN), 1005, &mut |e| {
        out.push(e)
    });
    t.packet(&pkt(s.0, s.1, c.0, c.1, 6, 52, ACK), 1006, &mut |e| out.push(e));
    assert_eq!(t.len(), 1);
    t.expire(2000, &mut |e| out.push(e));
    assert!(out.is_empty(), "still lingering");
    t.expire(3006, &mut |e| out.push(e));
    assert_eq!(out.len(), 1);
    let e = out[0];
    assert_eq!(e.reason, EndReason::EndOfFlow);
    assert_eq!(e.initiator(), Side::HiLo, "the client holds the larger address");
    let fwd = e.oriented(e.initiator());
    let rev = e.oriented(e.initiator().flip());
    assert_eq!(
        (fwd.src.to_string(), fwd.sport, fwd.dport),
        ("10.0.0.9".into(), 40000, 80)
    );
    assert_eq!((fwd.dir.packets, fwd.dir.octets), (4, 60 + 52 + 152 + 52));
    assert_eq!((rev.dir.packets, rev.dir.octets), (3, 60 + 1052 + 52));
    assert_eq!(fwd.dir.tcp_flags, SYN | ACK | FIN);
    assert_eq!((e.flow.start_ms, e.flow.end_ms), (1000, 1006));
    assert!(t.is_empty());
}

#[test]
fn syn_ack_first_still_names_the_client() {
    let (mut t, mut out) = table(TableConfig::default());
    t.packet(
        &pkt("10.0.0.1", 80, "10.0.0.2", 5555, 6, 60, SYN | ACK),
        0,
        &mut |e| out.push(e),
    );
    t.flush(EndReason::ForcedEnd, &mut |e| out.push(e));
    let e = out[0];
    assert_eq!(e.oriented(e.initiator()).src.to_string(), "10.0.0.2");
    assert_eq!(e.reason, EndReason::ForcedEnd);
}

#[test]
fn idle_and_active_timeouts() {
    let cfg = TableConfig {
        idle_timeout_ms: 10_000,
        active_timeout_ms: 30_000,
        ..TableConfig::default()
    };
    let (mut t, mut out) = table(cfg);
    // a UDP flow with a packet every 5 s for 70 s
    for i in 0..=14u64 {
        t.packet(
            &pkt("192.0.2.1", 5000, "192.0.2.2", 53, 17, 100, 0),
            i * 5000,
            &mut |e| out.push(e),
        );
    }
    t.expire(70_000 + 10_000, &mut |e| out.push(e));
    let reasons: Vec<_> = out.iter().map(|e| e.reason).collect();
    assert_eq!(
        reasons,
        vec![
            EndReason::ActiveTimeout,
            EndReason::ActiveTimeout,
            EndReason::IdleTimeout
        ]
    );
    let total: u64 = out.iter().map(|e| e.flow.packets()).sum();
    assert_eq!(total, 15, "delta records add up to every packet");
    assert!(
        out[1].flow.start_ms > out[0].flow.end_ms,
        "a delta record starts after the previous one"
    );
}

#[test]
fn rst_ends_and_a_new_syn_starts_a_new_flow() {
    let (mut t, mut out) = table(TableConfig::default());
    t.packet(&pkt("10.1.0.1", 1000, "10.1.0.2", 22, 6, 60, SYN), 0, &mut |e| {
        out.push(e)
    });
    t.packet(
        &pkt("10.1.0.2", 22, "10.1.0.1", 1000, 6, 40, RST | ACK),
        1,
        &mut |e| out.push(e),
    );
    t.packet(
        &pkt("10.1.0.1", 1000, "10.1.0.2", 22, 6, 60, SYN),
        100,
        &mut |e| out.push(e),
    );
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].reason, out[0].flow.packets()), (EndReason::EndOfFlow, 2));
    assert_eq!(t.len(), 1);
}

#[test]
fn icmp_echo_pairs_and_unpaired_types_are_one_way() {
    let (mut t, mut out) = table(TableConfig::default());
    // echo reply seen first (from the larger address), then the request: one flow, the requester initiates
    t.packet(&pkt("10.0.0.2", 0, "10.0.0.1", 0, 1, 84, 0), 0, &mut |e| {
        out.push(e)
    });
    t.packet(&pkt("10.0.0.1", 8, "10.0.0.2", 0, 1, 84, 0), 1, &mut |e| {
        out.push(e)
    });
    // destination unreachable (type 3 code 1) both ways: two one-way flows
    t.packet(&pkt("10.0.0.1", 3, "10.0.0.2", 1, 1, 56, 0), 2, &mut |e| {
        out.push(e)
    });
    t.packet(&pkt("10.0.0.2", 3, "10.0.0.1", 1, 1, 56, 0), 3, &mut |e| {
        out.push(e)
    });
    assert_eq!(t.len(), 3);
    t.flush(EndReason::ForcedEnd, &mut |e| out.push(e));
    let echo = out.iter().find(|e| e.flow.packets() == 2).unwrap();
    assert_eq!(echo.oriented(echo.initiator()).src.to_string(), "10.0.0.1");
    assert_eq!(echo.icmp_type_code(), 8 << 8);
    let unreachable: Vec<_> = out
        .iter()
        .filter(|e| e.icmp_type_code() == (3 << 8 | 1))
        .collect();
    assert_eq!(unreachable.len(), 2);
}

#[test]
fn community_id_matches_the_reference() {
    let (mut t, mut out) = table(TableConfig::default());
    // the spec's tcp.pcap flow: 128.232.110.120:34855 -> 66.35.250.204:80
    t.packet(
        &pkt("128.232.110.120", 34855, "66.35.250.204", 80, 6, 60, SYN),
        0,
        &mut |e| out.push(e),
    );
    // the icmp.pcap echo: 192.168.0.89 -> 192.168.0.1 type 8
    t.packet(&pkt("192.168.0.1", 0, "192.168.0.89", 0, 1, 84, 0), 0, &mut |e| {
        out.push(e)
    });
    t.packet(&pkt("192.168.0.89", 8, "192.168.0.1", 0, 1, 84, 0), 0, &mut |e| {
        out.push(e)
    });
    t.flush(EndReason::ForcedEnd, &mut |e| out.push(e));
    let cid = proto_ipfix::community_id::CommunityId::default();
    let ids: Vec<String> = out
        .iter()
        .map(|e| {
            let icmp = e
                .key
                .is_icmp()
                .then(|| (e.icmp_type_code() >> 8, e.icmp_type_code() & 0xff));
            e.key.community_id(&cid, e.initiator(), icmp).base64().to_string()
        })
        .collect();
    assert!(
        ids.contains(&"1:LQU9qZlK+B5F3KDmev6m5PMibrg=".to_string()),
        "{ids:?}"
    );
    assert!(
        ids.contains(&"1:X0snYXpgwiv9TZtqg64sgzUn6Dk=".to_string()),
        "{ids:?}"
    );
}

#[test]
fn later_fragments_join_their_first_fragment() {
    let (mut t, mut out) = table(TableConfig::default());
    let mut first = pkt("10.0.0.1", 5000, "10.0.0.2", 53, 17, 1500, 0);
    first.fragment = Fragment::First { id: 7 };
    let mut later = pkt("10.0.0.1", 0, "10.0.0.2", 0, 17, 600, 0);
    later.fragment = Fragment::Later { id: 7, offset: 1480 };
    let mut orphan = later;
    orphan.fragment = Fragment::Later { id: 8, offset: 1480 };
    t.packet(&first, 0, &mut |e| out.push(e));
    t.packet(&later, 1, &mut |e| out.push(e));
    t.packet(&orphan, 2, &mut |e| out.push(e));
    assert_eq!(t.stats().orphan_fragments, 1);
    t.flush(EndReason::ForcedEnd, &mut |e| out.push(e));
    let joined = out
        .iter()
        .find(|e| e.key.lo_port == 5000 || e.key.hi_port == 5000)
        .unwrap();
    assert_eq!(
        (
            joined.flow.packets(),
            joined.flow.dirs[0].octets + joined.flow.dirs[1].octets
        ),
        (2, 2100)
    );
    assert_eq!(out.len(), 2);
}

#[test]
fn full_table_evicts_least_recently_seen() {
    let cfg = TableConfig {
        max_flows: 128,
        ..TableConfig::default()
    };
    let (mut t, mut out) = table(cfg);
    for i in 0..200u16 {
        t.packet(
            &pkt("10.0.0.1", 1000 + i, "10.0.0.2", 53, 17, 100, 0),
            u64::from(i),
            &mut |e| out.push(e),
        );
    }
    assert!(t.len() <= 128);
    assert!(out.iter().all(|e| e.reason == EndReason::LackOfResources));
    assert_eq!(out.len() + t.len(), 200, "every flow is either held or exported");
    let newest_evicted = out.iter().map(|e| e.flow.end_ms).max().unwrap();
    assert!(
        newest_evicted < 200 - 64,
        "evicts the oldest, got {newest_evicted}"
    );
    t.flush(EndReason::ForcedEnd, &mut |e| out.push(e));
    assert_eq!(out.iter().map(|e| e.flow.packets()).sum::<u64>(), 200);
}

#[test]
fn unsolicited_advertisement_to_a_group_is_initiated_by_its_sender() {
    let (mut t, mut out) = table(TableConfig::default());
    // ICMPv6 router advertisement (134) to all-nodes
    t.packet(&pkt("fe80::1", 134, "ff02::1", 0, 58, 104, 0), 0, &mut |e| {
        out.push(e)
    });
    t.flush(EndReason::ForcedEnd, &mut |e| out.push(e));
    let e = out[0];
    assert_eq!(e.oriented(e.initiator()).src.to_string(), "fe80::1");
    assert_eq!(e.oriented(e.initiator()).dir.packets, 1);
}

/// Keys order endpoints exactly as the Community ID library does, for both families, equal addresses
/// (ports decide) and protocols with and without ports.
#[test]
fn key_order_matches_community_id_order() {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..20_000 {
        let v6 = i % 2 == 1;
        // Few distinct addresses and ports, so equal addresses and equal ports both occur often.
        let mut addr = || {
            let b = (next() % 3) as u8;
            let mut o = [0u8; 16];
            o[0] = 10;
            o[3 + 12 * usize::from(v6)] = b;
            if v6 {
                IpAddr::from(o)
            } else {
                IpAddr::from([o[0], o[1], o[2], o[3]])
            }
        };
        let (src, dst) = (addr(), addr());
        let proto = [6, 17, 132, 47, 1, 58][(next() % 6) as usize];
        let (sport, dport) = ((next() % 3) as u16, (next() % 3) as u16);
        let p = PacketInfo {
            src,
            dst,
            proto,
            sport,
            dport,
            ip_len: 40,
            tcp_flags: 0,
            fragment: Fragment::Whole,
        };
        let octets = |a: IpAddr| match a {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        let want = proto_ipfix::community_id::order(&octets(src), &octets(dst), proto, sport, dport);
        let (key, side) = FlowKey::of(&p).unwrap();
        assert_eq!(side == Side::HiLo, want.swapped, "{p:?}");
        let (lo, hi) = if want.swapped { (dst, src) } else { (src, dst) };
        let (lo_port, hi_port) = if want.swapped {
            (want.dport, want.sport)
        } else {
            (want.sport, want.dport)
        };
        assert_eq!(key.sender(Side::LoHi), (lo, lo_port), "{p:?}");
        assert_eq!(key.sender(Side::HiLo), (hi, hi_port), "{p:?}");
    }
}

#[test]
fn peak_flows_is_the_most_held_at_once() {
    let (mut t, mut out) = table(TableConfig::default());
    for port in 1..=3 {
        t.packet(&pkt("10.0.0.1", port, "10.0.0.2", 53, 17, 60, 0), 0, &mut |e| {
            out.push(e)
        });
    }
    // All three idle out, then one new flow: three is still the peak.
    t.packet(&pkt("10.0.0.1", 9, "10.0.0.2", 53, 17, 60, 0), 60_000, &mut |e| {
        out.push(e)
    });
    assert_eq!((out.len(), t.len()), (3, 1));
    assert_eq!(t.stats().peak_flows, 3);
}
