//! The fast path: the frames almost all traffic is made of, read at fixed offsets without etherparse.
//!
//! Slicing with etherparse builds a `LaxSlicedPacket` of several hundred octets per frame (every link
//! extension, IP extension and transport slice it might hold), and moving it around cost more than the
//! flow table's whole work per packet. This path handles Ethernet II with at most one VLAN tag, Linux
//! cooked captures and raw IP, carrying IPv4 (any header length, no AH) or IPv6 without extension headers
//! (TCP, UDP, ICMPv6 or SCTP next), with length fields that make sense. For those it returns exactly
//! what the full parser returns (a test compares both on many generated and damaged frames); for
//! anything else it returns `None` and the full parser decides, errors included.

use core::net::IpAddr;

use super::ip::{fragment_state, transport_fields};
use super::{Fragment, LinkType, PacketInfo};

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERNET_LEN: usize = 14;
const VLAN_TAG_LEN: usize = 4;
const PROTO_AH: u8 = 51;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// The packet info of `frame`, or `None` to let the full parser handle it.
#[inline]
pub(super) fn parse(link: LinkType, frame: &[u8]) -> Option<PacketInfo> {
    match link {
        LinkType::Ethernet => {
            let mut ether_type = be16(frame, 12)?;
            let mut at = ETHERNET_LEN;
            if ether_type == ETHERTYPE_VLAN {
                ether_type = be16(frame, at + 2)?;
                at += VLAN_TAG_LEN;
            }
            network(ether_type, frame.get(at..)?)
        }
        LinkType::LinuxSll => network(be16(frame, 14)?, frame.get(16..)?),
        LinkType::LinuxSll2 => network(be16(frame, 0)?, frame.get(20..)?),
        LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => match frame.first()? >> 4 {
            4 => ipv4(frame),
            6 => ipv6(frame),
            _ => None,
        },
    }
}

fn network(ether_type: u16, ip: &[u8]) -> Option<PacketInfo> {
    match ether_type {
        ETHERTYPE_IPV4 => ipv4(ip),
        ETHERTYPE_IPV6 => ipv6(ip),
        _ => None,
    }
}

fn ipv4(ip: &[u8]) -> Option<PacketInfo> {
    let first = *ip.first()?;
    let header_len = usize::from(first & 0x0f) * 4;
    let total_len = be16(ip, 2)?;
    let proto = *ip.get(9)?;
    // A short header, a total length below the header's (TSO frames), an authentication header: the
    // full parser's business. (The version is checked too: a raw-IP caller already did, an Ethernet
    // caller only saw the EtherType.)
    if first >> 4 != 4 || header_len < 20 || ip.len() < header_len || usize::from(total_len) < header_len {
        return None;
    }
    if proto == PROTO_AH {
        return None;
    }
    let flags_offset = be16(ip, 6)?;
    let fragment = fragment_state(
        u32::from(be16(ip, 4)?),
        (flags_offset & 0x1fff) << 3,
        flags_offset & 0x2000 != 0,
    );
    // The payload ends at the total length, or where the capture was cut.
    let payload = ip.get(header_len..ip.len().min(usize::from(total_len)))?;
    let src: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
    let dst: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
    finish(
        IpAddr::from(src),
        IpAddr::from(dst),
        proto,
        u32::from(total_len),
        fragment,
        payload,
    )
}

fn ipv6(ip: &[u8]) -> Option<PacketInfo> {
    const HEADER_LEN: usize = 40;
    let payload_len = be16(ip, 4)?;
    let next = *ip.get(6)?;
    // Extension headers (fragments among them) and jumbograms (payload length 0) go the long way.
    if ip.first()? >> 4 != 6 || payload_len == 0 || !matches!(next, 6 | 17 | 58 | 132) {
        return None;
    }
    let end = ip.len().min(HEADER_LEN + usize::from(payload_len));
    let payload = ip.get(HEADER_LEN..end)?;
    let src: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
    let dst: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
    let ip_len = HEADER_LEN as u32 + u32::from(payload_len);
    finish(
        IpAddr::from(src),
        IpAddr::from(dst),
        next,
        ip_len,
        Fragment::Whole,
        payload,
    )
}

fn finish(
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    ip_len: u32,
    fragment: Fragment,
    payload: &[u8],
) -> Option<PacketInfo> {
    let (sport, dport, tcp_flags) = match fragment {
        Fragment::Later { .. } => (0, 0, 0),
        // A transport header cut short: the full parser reports it.
        Fragment::Whole | Fragment::First { .. } => transport_fields(proto, payload).ok()?,
    };
    Some(PacketInfo {
        src,
        dst,
        proto,
        sport,
        dport,
        ip_len,
        tcp_flags,
        fragment,
    })
}
