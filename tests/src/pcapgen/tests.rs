//! The generator's summary and per-flow truth against what an independent reader finds in the file.

use std::collections::HashMap;

use super::*;

/// One endpoint of a flow: address octets (IPv4 in the first 4) and port (0 for ICMP).
type Endpoint = ([u8; 16], u16);
/// A flow key independent of direction: protocol and the two endpoints in ascending order.
type Key = (u8, Endpoint, Endpoint);

#[derive(Default, Debug)]
struct ReadFlow {
    packets: u64,
    octets: u64,
    /// Packets by sending endpoint.
    senders: HashMap<Endpoint, u64>,
    first_us: u64,
    last_us: u64,
    max_gap_us: u64,
}

#[derive(Default, Debug)]
struct ReadBack {
    packets: u64,
    octets: u64,
    flows: HashMap<Key, ReadFlow>,
    frames_cut: u64,
    padding: u64,
}

fn u16be(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Reads a pcap file of Ethernet frames carrying IPv4 or IPv6, keying packets as a flow meter does:
/// ports from the transport header, later IPv4 fragments joined to their first fragment by
/// (source, destination, protocol, identification).
fn read_back(file: &[u8]) -> ReadBack {
    assert_eq!(&file[..4], &0xa1b2_c3d4u32.to_le_bytes());
    let snaplen = u32::from_le_bytes(file[16..20].try_into().unwrap()) as usize;
    assert_eq!(
        u32::from_le_bytes(file[20..24].try_into().unwrap()),
        1,
        "Ethernet"
    );
    let mut out = ReadBack::default();
    let mut fragments: HashMap<([u8; 16], [u8; 16], u16), Key> = HashMap::new();
    let mut at = 24;
    let mut last_ts = 0;
    while at < file.len() {
        let rec = &file[at..at + 16];
        let ts = u64::from(u32::from_le_bytes(rec[0..4].try_into().unwrap())) * 1_000_000
            + u64::from(u32::from_le_bytes(rec[4..8].try_into().unwrap()));
        let cap = u32::from_le_bytes(rec[8..12].try_into().unwrap()) as usize;
        let orig = u32::from_le_bytes(rec[12..16].try_into().unwrap()) as usize;
        assert!(ts >= last_ts, "time goes back at offset {at}");
        last_ts = ts;
        assert_eq!(cap, orig.min(snaplen));
        out.frames_cut += u64::from(cap < orig);
        let f = &file[at + 16..at + 16 + cap];
        at += 16 + cap;
        let (mut src, mut dst) = ([0u8; 16], [0u8; 16]);
        let (proto, ip_len, l4, later_fragment_of) = match u16be(f, 12) {
            0x0800 => {
                let ip = &f[14..];
                assert_eq!(ip[0], 0x45);
                src[..4].copy_from_slice(&ip[12..16]);
                dst[..4].copy_from_slice(&ip[16..20]);
                let frag = u16be(ip, 6);
                let later = (frag & 0x1fff != 0).then(|| (src, dst, u16be(ip, 4)));
                (ip[9], usize::from(u16be(ip, 2)), &ip[20..], later)
            }
            0x86dd => {
                let ip = &f[14..];
                src.copy_from_slice(&ip[8..24]);
                dst.copy_from_slice(&ip[24..40]);
                (ip[6], 40 + usize::from(u16be(ip, 4)), &ip[40..], None)
            }
            other => panic!("ethertype {other:#x}"),
        };
        // The frame holds the IP packet, plus padding only up to Ethernet's 60-octet minimum.
        assert!(
            orig == 14 + ip_len || (orig == 60 && 14 + ip_len < 60),
            "frame {orig}, IP {ip_len}"
        );
        out.padding += (orig - 14 - ip_len) as u64;
        let key = match later_fragment_of {
            Some(fk) => *fragments
                .get(&fk)
                .expect("a later fragment follows its first fragment"),
            None => {
                let (sp, dp) = match proto {
                    6 | 17 => (u16be(l4, 0), u16be(l4, 2)),
                    _ => (0, 0),
                };
                let (a, b) = ((src, sp), (dst, dp));
                let key = (proto, a.min(b), a.max(b));
                if proto == 17 && u16be(&f[14..], 6) & 0x2000 != 0 {
                    fragments.insert((src, dst, u16be(&f[14..], 4)), key);
                }
                key
            }
        };
        let sender = if later_fragment_of.is_some() {
            if key.1.0 == src { key.1 } else { key.2 }
        } else {
            (
                src,
                if proto == 6 || proto == 17 {
                    u16be(l4, 0)
                } else {
                    0
                },
            )
        };
        out.packets += 1;
        out.octets += ip_len as u64;
        let flow = out.flows.entry(key).or_insert_with(|| ReadFlow {
            first_us: ts,
            last_us: ts,
            ..Default::default()
        });
        flow.packets += 1;
        flow.octets += ip_len as u64;
        *flow.senders.entry(sender).or_default() += 1;
        flow.max_gap_us = flow.max_gap_us.max(ts - flow.last_us);
        flow.last_us = ts;
    }
    out
}

fn endpoint(a: IpAddr, port: u16) -> Endpoint {
    let mut o = [0u8; 16];
    match a {
        IpAddr::V4(v) => o[..4].copy_from_slice(&v.octets()),
        IpAddr::V6(v) => o = v.octets(),
    }
    (o, port)
}

fn small() -> Config {
    Config {
        tcp: 600,
        udp: 300,
        icmp: 80,
        fragmented: 12,
        ..Config::default()
    }
}

fn run(cfg: &Config) -> (Summary, Vec<FlowTruth>, Vec<u8>) {
    let mut truth = Vec::new();
    let mut file = Vec::new();
    let s = generate(cfg, &mut file, Some(&mut truth)).unwrap();
    (s, truth, file)
}

/// Checks the file against the summary and the per-flow truth; returns what was read.
fn check(cfg: &Config) -> (Summary, ReadBack) {
    let (s, truth, file) = run(cfg);
    assert_eq!(s.file_bytes, file.len() as u64);
    let r = read_back(&file);
    assert_eq!(r.packets, s.total.packets);
    assert_eq!(r.octets, s.total.octets);
    assert_eq!(r.padding, s.padding_octets);
    assert_eq!(s.total.flows, cfg.tcp + cfg.udp + cfg.icmp);
    // One key per generated flow: no two flows merge, no flow splits.
    assert_eq!(r.flows.len() as u64, s.total.flows);
    assert_eq!(truth.len() as u64, s.total.flows);
    let directions: u64 = r.flows.values().map(|f| f.senders.len() as u64).sum();
    assert_eq!(directions, s.total.directions);
    for t in &truth {
        let (a, b) = (
            endpoint(t.client, t.client_port),
            endpoint(t.server, t.server_port),
        );
        let f = &r.flows[&(t.proto, a.min(b), a.max(b))];
        assert_eq!(f.packets, t.packets[0] + t.packets[1], "{t:?}");
        assert_eq!(f.octets, t.octets[0] + t.octets[1], "{t:?}");
        assert_eq!(f.senders.get(&a).copied().unwrap_or(0), t.packets[0], "{t:?}");
        assert_eq!((f.first_us, f.last_us), (t.first_us, t.last_us));
        assert!(f.max_gap_us <= script::MAX_GAP_US, "{t:?} gap {}", f.max_gap_us);
        assert!(f.last_us - f.first_us < 30_000_000, "{t:?} lasts too long");
    }
    assert_eq!(
        truth.iter().map(|t| t.later_fragments).sum::<u64>(),
        s.later_fragments
    );
    let kinds: u64 = s.by_kind.iter().map(|c| c.packets).sum();
    let families: u64 = s.by_family.iter().map(|c| c.octets).sum();
    assert_eq!(kinds, s.total.packets);
    assert_eq!(families, s.total.octets);
    assert_eq!(s.by_kind[0].flows, cfg.tcp);
    assert_eq!(s.by_kind[1].flows, cfg.udp);
    assert_eq!(s.by_kind[2].flows, cfg.icmp);
    assert_eq!(s.fragmented_flows, cfg.fragmented);
    (s, r)
}

#[test]
fn summary_matches_the_file() {
    let (s, r) = check(&small());
    assert_eq!(r.frames_cut, 0);
    // Every kind of traffic the file promises is there.
    assert!(s.by_family[0].flows > 0 && s.by_family[1].flows > 0, "{s:?}");
    assert!(s.tcp_rst > 0 && s.unanswered > 0, "{s:?}");
    assert!(s.later_fragments >= s.fragmented_flows, "{s:?}");
    assert!(s.padding_octets > 0, "{s:?}");
    assert!(s.max_concurrent > 10, "flows do not interleave: {s:?}");
}

#[test]
fn summary_matches_with_short_snaplen_and_extreme_shares() {
    let (_, r) = check(&Config {
        snaplen: 96,
        v6_percent: 100,
        seed: 9,
        ..small()
    });
    assert!(r.frames_cut > 0);
    // All-IPv6 still carries the IPv4 fragments asked for.
    let (s, _) = check(&Config {
        v6_percent: 100,
        seed: 10,
        ..small()
    });
    assert_eq!(s.by_family[0].flows, 12);
    let (s, _) = check(&Config {
        v6_percent: 0,
        tcp_segments: (1, 1),
        echoes: (3, 3),
        seed: 11,
        ..small()
    });
    assert_eq!(s.by_family[1].flows, 0);
}

#[test]
fn all_concurrent_opens_every_flow_before_any_second_packet() {
    // Two packets at least in every flow (an unanswered echo flow sends two requests), so no flow is
    // over with its first packet.
    let cfg = Config {
        echoes: (2, 4),
        all_concurrent: true,
        ..small()
    };
    let (s, _) = check(&cfg);
    assert_eq!(s.max_concurrent, s.total.flows);
    let (_, truth, _) = run(&cfg);
    let mut starts: Vec<u64> = truth.iter().map(|t| t.first_us).collect();
    starts.sort_unstable();
    let expected: Vec<u64> = (0..s.total.flows).map(|k| s.first_us + k).collect();
    assert_eq!(starts, expected, "one flow starts per microsecond");
    let last_start = s.first_us + s.total.flows - 1;
    assert!(truth.iter().all(|t| t.last_us > last_start));
    // Without the option the same flows overlap far less.
    let (s, _) = check(&small());
    assert!(s.max_concurrent < s.total.flows / 2, "{s:?}");
}

#[test]
fn same_seed_same_file_other_seed_other_file() {
    let cfg = small();
    let (s1, _, f1) = run(&cfg);
    let (s2, _, f2) = run(&cfg);
    assert!(f1 == f2, "same seed gave different files");
    assert_eq!(s1.total, s2.total);
    let (_, _, f3) = run(&Config { seed: 2, ..cfg });
    assert!(f1 != f3);
}

#[test]
fn every_flow_kind_has_its_shape() {
    let (_, truth, _) = run(&small());
    for t in &truth {
        let n = t.packets[0] + t.packets[1];
        match t.proto {
            // Refused: SYN + RST; otherwise at least handshake, one data segment and a RST.
            6 => assert!(n == 2 || n >= 5, "{t:?}"),
            17 => assert!(
                t.packets[0] >= 1 && n >= 2 - u64::from(t.packets[1] == 0),
                "{t:?}"
            ),
            1 | 58 => assert!(t.packets[0] >= 1 && t.packets[1] <= t.packets[0], "{t:?}"),
            p => panic!("protocol {p}"),
        }
    }
}

#[test]
fn fewer_clients_share_out_the_flows_with_every_key_unique() {
    let cfg = Config {
        clients: 7,
        v6_percent: 0,
        ..small()
    };
    // check() holds every flow to its own key.
    check(&cfg);
    let (_, truth, _) = run(&cfg);
    let mut per_client: HashMap<IpAddr, u64> = HashMap::new();
    for t in truth.iter().filter(|t| t.proto != 1) {
        *per_client.entry(t.client).or_default() += 1;
    }
    let mut clients: Vec<IpAddr> = per_client.keys().copied().collect();
    clients.sort();
    let expected: Vec<IpAddr> = (0..7u8).map(|c| IpAddr::from([10, 1, c, 2])).collect();
    assert_eq!(clients, expected);
    // Round robin: 900 TCP and UDP flows over 7 clients, 128 or 129 each.
    assert!(
        per_client.values().all(|n| (128..=129).contains(n)),
        "{per_client:?}"
    );
}

#[test]
fn bad_configs_are_refused() {
    for cfg in [
        Config {
            fragmented: 10,
            udp: 5,
            ..Config::default()
        },
        Config {
            tcp_segments: (0, 3),
            ..Config::default()
        },
        Config {
            v6_percent: 101,
            ..Config::default()
        },
        Config {
            snaplen: 20,
            ..Config::default()
        },
        Config {
            clients: 0,
            ..Config::default()
        },
        Config {
            clients: MAX_CLIENTS + 1,
            ..Config::default()
        },
        Config {
            // One client has PORTS ports.
            tcp: PORTS + 1,
            udp: 0,
            clients: 1,
            ..Config::default()
        },
    ] {
        assert!(generate(&cfg, Vec::new(), None).is_err(), "{cfg:?}");
    }
}
