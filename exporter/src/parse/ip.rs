//! Network and transport layer: addresses, lengths and fragmentation from etherparse's IP slices,
//! ports and flags from the transport header.
//!
//! The transport fields are read at fixed offsets rather than through etherparse's transport slices
//! because those are skipped for every fragmented payload (first fragments do carry the ports), require
//! the complete TCP header including options (a short snap length often cuts them), and do not cover SCTP.
//! The fields needed sit in the first 14 bytes of every supported header, at the same place in each.

use core::net::IpAddr;

use etherparse::err::Layer;
use etherparse::err::packet::SliceError;
use etherparse::{Ipv6ExtensionSlice, LaxNetSlice, LaxSlicedPacket};

use super::{Fragment, PacketInfo, Skip};

const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const PROTO_ICMPV6: u8 = 58;
const PROTO_SCTP: u8 = 132;

/// Length of the fixed IPv6 header.
const IPV6_HEADER_LEN: u32 = 40;
/// Offset of the flags byte in the TCP header.
const TCP_FLAGS_OFFSET: usize = 13;

/// Builds the [`PacketInfo`] from a sliced frame, or says why there is none.
pub(super) fn packet_info(sliced: &LaxSlicedPacket<'_>) -> Result<PacketInfo, Skip> {
    let net = match &sliced.net {
        Some(net @ (LaxNetSlice::Ipv4(_) | LaxNetSlice::Ipv6(_))) => net,
        Some(LaxNetSlice::Arp(_)) => return Err(Skip::NotIp),
        None => {
            return Err(match &sliced.stop_err {
                // A cut ARP packet is still not IP.
                Some((_, Layer::Arp)) | None => Skip::NotIp,
                Some((err, _)) => classify(err),
            });
        }
    };
    // A stop below IP means the payload start is unknown (e.g. a cut extension header); a stop in the
    // transport layer does not matter, the transport fields are read independently below.
    match &sliced.stop_err {
        Some((err, layer)) if !is_transport_layer(*layer) => return Err(classify(err)),
        _ => {}
    }

    let (src, dst, ip_len, fragment, payload) = match net {
        LaxNetSlice::Ipv4(v4) => {
            let h = v4.header();
            let payload = v4.payload();
            let header_len = h.slice().len() + v4.extensions().auth.map_or(0, |a| a.slice().len());
            // A total length below the header's own is bogus (TSO frames report 0): count what was captured.
            let ip_len = if usize::from(h.total_len()) >= h.slice().len() {
                u32::from(h.total_len())
            } else {
                len_u32(header_len + payload.payload.len())
            };
            let fragment = fragment_state(
                u32::from(h.identification()),
                h.fragments_offset().byte_offset(),
                h.more_fragments(),
            );
            (
                IpAddr::from(h.source()),
                IpAddr::from(h.destination()),
                ip_len,
                fragment,
                payload,
            )
        }
        LaxNetSlice::Ipv6(v6) => {
            let h = v6.header();
            let payload = v6.payload();
            // Payload length 0 means a jumbogram (or a TSO frame): count what was captured.
            let ip_len = match h.payload_length() {
                0 => IPV6_HEADER_LEN + len_u32(v6.extensions().slice().len() + payload.payload.len()),
                n => IPV6_HEADER_LEN + u32::from(n),
            };
            let fragment = v6
                .extensions()
                .clone()
                .into_iter()
                .find_map(|ext| match ext {
                    Ipv6ExtensionSlice::Fragment(f) => Some(fragment_state(
                        f.identification(),
                        f.fragment_offset().byte_offset(),
                        f.more_fragments(),
                    )),
                    _ => None,
                })
                .unwrap_or(Fragment::Whole);
            (
                IpAddr::from(h.source()),
                IpAddr::from(h.destination()),
                ip_len,
                fragment,
                payload,
            )
        }
        LaxNetSlice::Arp(_) => return Err(Skip::NotIp),
    };

    let proto = payload.ip_number.0;
    let (sport, dport, tcp_flags) = match fragment {
        Fragment::Later { .. } => (0, 0, 0),
        Fragment::Whole | Fragment::First { .. } => transport_fields(proto, payload.payload)?,
    };
    Ok(PacketInfo {
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

/// Ports (ICMP: type and code) and TCP flags from the start of the IP payload.
pub(super) fn transport_fields(proto: u8, data: &[u8]) -> Result<(u16, u16, u8), Skip> {
    match proto {
        PROTO_TCP | PROTO_UDP | PROTO_SCTP => match data {
            // TCP, UDP and SCTP all start with source port, destination port.
            [s0, s1, d0, d1, rest @ ..] => {
                let flags = match proto {
                    PROTO_TCP => rest.get(TCP_FLAGS_OFFSET - 4).copied().unwrap_or(0),
                    _ => 0,
                };
                Ok((
                    u16::from_be_bytes([*s0, *s1]),
                    u16::from_be_bytes([*d0, *d1]),
                    flags,
                ))
            }
            _ => Err(Skip::Truncated),
        },
        PROTO_ICMP | PROTO_ICMPV6 => match data {
            [icmp_type, code, ..] => Ok((u16::from(*icmp_type), u16::from(*code), 0)),
            _ => Err(Skip::Truncated),
        },
        _ => Ok((0, 0, 0)),
    }
}

pub(super) fn fragment_state(id: u32, offset: u16, more_fragments: bool) -> Fragment {
    match (offset, more_fragments) {
        (0, false) => Fragment::Whole,
        (0, true) => Fragment::First { id },
        (offset, _) => Fragment::Later { id, offset },
    }
}

fn is_transport_layer(layer: Layer) -> bool {
    matches!(
        layer,
        Layer::TcpHeader
            | Layer::UdpHeader
            | Layer::UdpPayload
            | Layer::Icmpv4
            | Layer::Icmpv4Timestamp
            | Layer::Icmpv4TimestampReply
            | Layer::Icmpv6
            | Layer::Igmp
    )
}

fn classify(err: &SliceError) -> Skip {
    match err {
        SliceError::Len(_) => Skip::Truncated,
        SliceError::Ip(etherparse::err::ip::HeaderError::UnsupportedIpVersion { .. }) => Skip::NotIp,
        _ => Skip::Malformed,
    }
}

/// Lengths here come from a captured frame, which libpcap caps far below 4 GiB.
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}
