//! Frames are built byte by byte so each test shows exactly which header field it exercises.

use super::*;
use std::net::{Ipv4Addr, Ipv6Addr};

const ETH_IPV4: [u8; 2] = [0x08, 0x00];
const ETH_IPV6: [u8; 2] = [0x86, 0xdd];
const SRC4: [u8; 4] = [192, 168, 0, 1];
const DST4: [u8; 4] = [10, 0, 0, 2];

fn tcp_header(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut h = vec![0u8; 20];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[12] = 5 << 4;
    h[13] = flags;
    h
}

fn ports_header(sport: u16, dport: u16, len: usize) -> Vec<u8> {
    let mut h = vec![0u8; len];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h
}

/// IPv4 header (no options) + payload; `frag` is the raw flags/fragment-offset word.
fn ipv4(proto: u8, frag: u16, payload: &[u8]) -> Vec<u8> {
    let total = 20 + payload.len();
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&u16::try_from(total).unwrap().to_be_bytes());
    p.extend_from_slice(&[0x12, 0x34]);
    p.extend_from_slice(&frag.to_be_bytes());
    p.extend_from_slice(&[64, proto, 0, 0]);
    p.extend_from_slice(&SRC4);
    p.extend_from_slice(&DST4);
    p.extend_from_slice(payload);
    p
}

/// IPv6 header + `rest` (extension headers and payload), `next` the first next-header value.
fn ipv6(next: u8, rest: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&u16::try_from(rest.len()).unwrap().to_be_bytes());
    p.extend_from_slice(&[next, 64]);
    p.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
    p.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
    p.extend_from_slice(rest);
    p
}

fn ethernet(tags: &[[u8; 2]], ether_type: [u8; 2], payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
    for tpid in tags {
        f.extend_from_slice(tpid);
        f.extend_from_slice(&[0x00, 0x64]); // VLAN 100
    }
    f.extend_from_slice(&ether_type);
    f.extend_from_slice(payload);
    f
}

#[test]
fn ethernet_ipv4_tcp() {
    let ip = ipv4(6, 0, &tcp_header(34855, 80, 0x12));
    let info = parse(LinkType::Ethernet, &ethernet(&[], ETH_IPV4, &ip)).unwrap();
    assert_eq!(
        info,
        PacketInfo {
            src: Ipv4Addr::from(SRC4).into(),
            dst: Ipv4Addr::from(DST4).into(),
            proto: 6,
            sport: 34855,
            dport: 80,
            ip_len: 40,
            tcp_flags: 0x12,
            fragment: Fragment::Whole,
        }
    );
    assert!(!info.is_fragment());
}

#[test]
fn ethernet_padding_is_not_counted() {
    // Short frames are padded to 60 bytes on the wire; the IP length field is what counts.
    let ip = ipv4(17, 0, &ports_header(53, 5353, 8));
    let mut frame = ethernet(&[], ETH_IPV4, &ip);
    frame.resize(60, 0);
    assert_eq!(parse(LinkType::Ethernet, &frame).unwrap().ip_len, 28);
}

#[test]
fn vlan_and_qinq() {
    let ip = ipv4(17, 0, &ports_header(1, 2, 8));
    for tags in [
        &[[0x81, 0x00]][..],
        &[[0x88, 0xa8], [0x81, 0x00]],
        &[[0x91, 0x00], [0x81, 0x00]],
    ] {
        let info = parse(LinkType::Ethernet, &ethernet(tags, ETH_IPV4, &ip)).unwrap();
        assert_eq!((info.proto, info.sport, info.dport), (17, 1, 2), "{tags:?}");
    }
}

#[test]
fn linux_cooked_v1_and_v2() {
    let ip = ipv4(6, 0, &tcp_header(1000, 22, 0x10));
    // ARPHRD_LOOPBACK (772): etherparse's own SLL parser refuses it, ours must not.
    let mut sll = vec![0, 0, 0x03, 0x04, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0];
    sll.extend_from_slice(&ETH_IPV4);
    sll.extend_from_slice(&ip);
    assert_eq!(parse(LinkType::LinuxSll, &sll).unwrap().dport, 22);

    let mut sll2 = ETH_IPV4.to_vec();
    sll2.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0]);
    sll2.extend_from_slice(&ip);
    assert_eq!(parse(LinkType::LinuxSll2, &sll2).unwrap().sport, 1000);

    assert_eq!(parse(LinkType::LinuxSll, &sll[..15]), Err(Skip::Truncated));
    assert_eq!(parse(LinkType::LinuxSll2, &sll2[..19]), Err(Skip::Truncated));
}

#[test]
fn raw_ip_link_types() {
    let v4 = ipv4(1, 0, &[8, 0, 0, 0, 0, 0, 0, 0]);
    let v6 = ipv6(58, &[128, 0, 0, 0, 0, 0, 0, 0]);
    for dlt in [101, 12, 14, 228, 229] {
        let link = LinkType::from_dlt(dlt).unwrap();
        assert_eq!(parse(link, &v4).unwrap().sport, 8);
        assert_eq!(parse(link, &v6).unwrap().sport, 128);
    }
    assert_eq!(parse(LinkType::RawIp, &[0x50; 40]), Err(Skip::NotIp));
}

#[test]
fn link_type_numbers_round_trip() {
    for link in LinkType::ALL {
        assert_eq!(LinkType::from_dlt(link.dlt()), Some(link));
    }
    assert_eq!(LinkType::from_dlt(105), None);
}

#[test]
fn icmp_type_and_code() {
    let ip = ipv4(1, 0, &[3, 3, 0, 0, 0, 0, 0, 0]);
    let info = parse(LinkType::RawIp, &ip).unwrap();
    assert_eq!((info.proto, info.sport, info.dport), (1, 3, 3));
}

#[test]
fn sctp_ports() {
    let ip = ipv4(132, 0, &ports_header(7, 80, 12));
    let info = parse(LinkType::RawIp, &ip).unwrap();
    assert_eq!(
        (info.proto, info.sport, info.dport, info.tcp_flags),
        (132, 7, 80, 0)
    );
}

#[test]
fn portless_protocol() {
    let ip = ipv4(47, 0, &[0; 8]);
    let info = parse(LinkType::RawIp, &ip).unwrap();
    assert_eq!((info.proto, info.sport, info.dport), (47, 0, 0));
}

#[test]
fn ipv6_extension_headers_are_skipped() {
    // hop-by-hop -> routing -> destination options -> UDP
    let mut rest = vec![43, 0, 1, 4, 0, 0, 0, 0]; // hop-by-hop, next = routing
    rest.extend_from_slice(&[60, 0, 0, 0, 0, 0, 0, 0]); // routing, next = dest options
    rest.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]); // dest options, next = UDP
    rest.extend_from_slice(&ports_header(546, 547, 8));
    let info = parse(LinkType::Ethernet, &ethernet(&[], ETH_IPV6, &ipv6(0, &rest))).unwrap();
    assert_eq!((info.proto, info.sport, info.dport), (17, 546, 547));
    assert_eq!(info.ip_len, 40 + 32);
    assert_eq!(info.src, "2001:db8::1".parse::<IpAddr>().unwrap());
}

#[test]
fn ipv6_fragments() {
    let frag = |offset_words: u16, more: bool, payload: &[u8]| {
        let mut rest = vec![6, 0];
        rest.extend_from_slice(&((offset_words << 3) | u16::from(more)).to_be_bytes());
        rest.extend_from_slice(&0xdead_beef_u32.to_be_bytes());
        rest.extend_from_slice(payload);
        ipv6(44, &rest)
    };
    let first = parse(LinkType::RawIp, &frag(0, true, &tcp_header(1, 2, 0x02))).unwrap();
    assert_eq!((first.proto, first.sport, first.dport), (6, 1, 2));
    assert_eq!(first.fragment, Fragment::First { id: 0xdead_beef });
    let later = parse(LinkType::RawIp, &frag(10, false, &[0xff; 16])).unwrap();
    assert_eq!(
        (later.proto, later.sport, later.dport, later.tcp_flags),
        (6, 0, 0, 0)
    );
    assert_eq!(
        later.fragment,
        Fragment::Later {
            id: 0xdead_beef,
            offset: 80
        }
    );
    assert!(later.is_fragment());
    // An "atomic" fragment (offset 0, no more fragments) is a whole packet.
    let atomic = parse(LinkType::RawIp, &frag(0, false, &tcp_header(1, 2, 0))).unwrap();
    assert_eq!(atomic.fragment, Fragment::Whole);
}

#[test]
fn ipv4_fragments() {
    let first = parse(LinkType::RawIp, &ipv4(17, 0x2000, &ports_header(5, 6, 16))).unwrap();
    assert_eq!((first.sport, first.dport), (5, 6));
    assert_eq!(first.fragment, Fragment::First { id: 0x1234 });
    // Later fragment: its first bytes are payload, not ports.
    let later = parse(LinkType::RawIp, &ipv4(17, 185, &[0xaa; 16])).unwrap();
    assert_eq!((later.proto, later.sport, later.dport), (17, 0, 0));
    assert_eq!(
        later.fragment,
        Fragment::Later {
            id: 0x1234,
            offset: 185 * 8
        }
    );
}

#[test]
fn snaplen_truncation_keeps_wire_length() {
    let ip = ipv4(6, 0, &[tcp_header(443, 50000, 0x18), vec![0; 1400]].concat());
    let frame = ethernet(&[], ETH_IPV4, &ip);
    let info = parse(LinkType::Ethernet, &frame[..14 + 20 + 14]).unwrap();
    assert_eq!((info.sport, info.tcp_flags, info.ip_len), (443, 0x18, 1440));
    // Ports present but the flags byte cut: still a packet, flags unknown (0).
    let info = parse(LinkType::Ethernet, &frame[..14 + 20 + 4]).unwrap();
    assert_eq!((info.dport, info.tcp_flags), (50000, 0));
    assert_eq!(
        parse(LinkType::Ethernet, &frame[..14 + 20 + 3]),
        Err(Skip::Truncated)
    );
}

#[test]
fn zero_total_length_falls_back_to_captured_length() {
    let mut ip = ipv4(17, 0, &ports_header(1, 2, 8));
    ip[2..4].copy_from_slice(&[0, 0]); // as seen on TSO/GSO captures
    assert_eq!(parse(LinkType::RawIp, &ip).unwrap().ip_len, 28);
}

#[test]
fn not_ip_frames() {
    let mut arp_request = vec![0, 1, 8, 0, 6, 4, 0, 1];
    arp_request.extend_from_slice(&[0; 20]);
    let arp = ethernet(&[], [0x08, 0x06], &arp_request);
    assert_eq!(parse(LinkType::Ethernet, &arp), Err(Skip::NotIp));
    assert_eq!(
        parse(LinkType::Ethernet, &arp[..arp.len() - 10]),
        Err(Skip::NotIp)
    );
    let lldp = ethernet(&[], [0x88, 0xcc], &[0; 32]);
    assert_eq!(parse(LinkType::Ethernet, &lldp), Err(Skip::NotIp));
}

#[test]
fn truncated_and_malformed() {
    assert_eq!(parse(LinkType::Ethernet, &[0; 10]), Err(Skip::Truncated));
    assert_eq!(
        parse(LinkType::Ethernet, &ethernet(&[], ETH_IPV4, &[0x45, 0, 0])),
        Err(Skip::Truncated)
    );
    let mut bad_ihl = ipv4(6, 0, &tcp_header(1, 2, 0));
    bad_ihl[0] = 0x44;
    assert_eq!(parse(LinkType::RawIp, &bad_ihl), Err(Skip::Malformed));
    // Cut inside an IPv6 extension header: the transport header cannot be located.
    let cut_ext = ipv6(60, &[17, 1, 0, 0]);
    assert_eq!(parse(LinkType::RawIp, &cut_ext), Err(Skip::Truncated));
    // Hop-by-hop anywhere but first is invalid.
    let misplaced = ipv6(60, &[0, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(parse(LinkType::RawIp, &misplaced), Err(Skip::Malformed));
}

#[test]
fn never_panics_on_prefixes_or_garbage() {
    let mut frames = vec![
        ethernet(
            &[[0x81, 0x00], [0x81, 0x00]],
            ETH_IPV4,
            &ipv4(6, 0, &tcp_header(1, 2, 3)),
        ),
        ethernet(&[], ETH_IPV6, &ipv6(0, &[58, 0, 1, 4, 0, 0, 0, 0, 128, 0, 0, 0])),
    ];
    // Deterministic pseudo-random garbage, with plausible starts to get past the first checks.
    let mut x: u32 = 0x1234_5678;
    for i in 0..2000 {
        let len = i % 120;
        let mut f: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        if len > 20 {
            f[12..14].copy_from_slice(if i % 2 == 0 { &ETH_IPV4 } else { &ETH_IPV6 });
            f[14] = if i % 2 == 0 { 0x45 } else { 0x60 };
        }
        frames.push(f);
    }
    for frame in &frames {
        for end in 0..=frame.len() {
            for link in LinkType::ALL {
                let _ = parse(link, &frame[..end]);
            }
        }
    }
}

/// The fast path returns exactly what the full parser returns, for every frame it accepts: valid frames
/// of every shape, every prefix of them (snap-length cuts) and copies with damaged header octets.
#[test]
fn fast_path_agrees_with_the_full_parser() {
    let mut v4_options = ipv4(17, 0, &ports_header(53, 4000, 8));
    v4_options.splice(20..20, [1u8; 8]); // two NOP-filled option words
    v4_options[0] = 0x47;
    let v4_options_len = u16::try_from(v4_options.len()).unwrap();
    v4_options[2..4].copy_from_slice(&v4_options_len.to_be_bytes());
    let ips = vec![
        ipv4(6, 0, &tcp_header(40000, 443, 0x12)),
        ipv4(17, 0, &ports_header(53, 4000, 8)),
        ipv4(1, 0, &[8, 0, 0, 0, 0, 1, 0, 1]),
        ipv4(132, 0, &ports_header(9, 10, 12)),
        ipv4(47, 0, &[0; 8]),
        ipv4(17, 0x2000, &ports_header(53, 4000, 16)), // first fragment
        ipv4(17, 0x0010, &[0; 16]),                    // later fragment
        ipv4(
            51,
            0,
            &[6, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
        ),
        v4_options,
        ipv6(6, &tcp_header(40000, 443, 0x18)),
        ipv6(17, &ports_header(123, 123, 8)),
        ipv6(58, &[128, 0, 0, 0, 0, 1, 0, 1]),
        ipv6(132, &ports_header(9, 10, 12)),
        ipv6(59, &[]),
        ipv6(0, &[58, 0, 1, 4, 0, 0, 0, 0, 128, 0, 0, 0]),
        ipv6(44, &[17, 0, 0, 1, 0, 0, 0, 7, 0, 53, 0, 54, 0, 8, 0, 0]),
    ];
    let mut frames = Vec::new();
    for ip in &ips {
        let ether_type = if ip[0] >> 4 == 4 { ETH_IPV4 } else { ETH_IPV6 };
        frames.push((LinkType::Ethernet, ethernet(&[], ether_type, ip)));
        frames.push((LinkType::Ethernet, ethernet(&[[0x81, 0x00]], ether_type, ip)));
        frames.push((
            LinkType::Ethernet,
            ethernet(&[[0x88, 0xa8], [0x81, 0x00]], ether_type, ip),
        ));
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&ether_type);
        sll.extend_from_slice(ip);
        frames.push((LinkType::LinuxSll, sll));
        let mut sll2 = ether_type.to_vec();
        sll2.extend_from_slice(&[0; 18]);
        sll2.extend_from_slice(ip);
        frames.push((LinkType::LinuxSll2, sll2));
        frames.push((LinkType::RawIp, ip.clone()));
    }
    let mut fast_hits = 0;
    let mut check = |link: LinkType, frame: &[u8]| {
        if let Some(info) = fast::parse(link, frame) {
            fast_hits += 1;
            assert_eq!(Ok(info), parse_full(link, frame), "{link:?} {frame:02x?}");
        }
    };
    let mut x: u32 = 0x9e37_79b9;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    for (link, frame) in &frames {
        for end in 0..=frame.len() {
            check(*link, &frame[..end]);
        }
        // Damage one or two header octets (lengths, versions, protocols, flags), keep the rest.
        for _ in 0..400 {
            let mut f = frame.clone();
            for _ in 0..1 + next() % 2 {
                let at = next() as usize % f.len().min(80);
                f[at] = match next() % 4 {
                    0 => 0,
                    1 => 0xff,
                    _ => next() as u8,
                };
            }
            check(*link, &f);
        }
    }
    // The comparison is not vacuous: the fast path took most frames.
    assert!(fast_hits > 10_000, "fast path taken {fast_hits} times");
}
