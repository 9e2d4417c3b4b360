//! Link layer: strip the capture's framing and hand the rest to etherparse.

use etherparse::err::ip::{HeaderError, LaxHeaderSliceError};
use etherparse::{EtherType, LaxSlicedPacket};

use super::{LinkType, Skip};

/// Length of a Linux cooked capture v1 header; the protocol (an EtherType for IP) is its last two bytes.
const SLL_LEN: usize = 16;
/// Length of a Linux cooked capture v2 header; the protocol is its first two bytes.
const SLL2_LEN: usize = 20;

/// Slices `frame` from the link layer down as far as etherparse goes (link, VLAN tags, IP, IPv6
/// extension headers). Errors only when there is no network layer to look at.
pub(super) fn slice(link: LinkType, frame: &[u8]) -> Result<LaxSlicedPacket<'_>, Skip> {
    match link {
        LinkType::Ethernet => LaxSlicedPacket::from_ethernet(frame).map_err(|_| Skip::Truncated),
        // The cooked headers are read by hand: etherparse's SLL parser rejects ARPHRD types it does not
        // know (loopback, tun/none, tunnels), yet those captures still carry an EtherType and IP.
        LinkType::LinuxSll => {
            let (header, payload) = frame.split_at_checked(SLL_LEN).ok_or(Skip::Truncated)?;
            let proto = u16::from_be_bytes([header[14], header[15]]);
            Ok(LaxSlicedPacket::from_ether_type(EtherType(proto), payload))
        }
        LinkType::LinuxSll2 => {
            let (header, payload) = frame.split_at_checked(SLL2_LEN).ok_or(Skip::Truncated)?;
            let proto = u16::from_be_bytes([header[0], header[1]]);
            Ok(LaxSlicedPacket::from_ether_type(EtherType(proto), payload))
        }
        LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => {
            LaxSlicedPacket::from_ip(frame).map_err(|e| match e {
                LaxHeaderSliceError::Len(_) => Skip::Truncated,
                LaxHeaderSliceError::Content(HeaderError::UnsupportedIpVersion { .. }) => Skip::NotIp,
                LaxHeaderSliceError::Content(HeaderError::Ipv4HeaderLengthSmallerThanHeader { .. }) => {
                    Skip::Malformed
                }
            })
        }
    }
}
