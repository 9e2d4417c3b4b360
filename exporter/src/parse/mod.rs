//! Captured frame -> the fields a flow record needs.
//!
//! [`parse`] is a pure, allocation-free function: it takes the link type of the capture and one frame as
//! libpcap delivered it (possibly cut short by the snap length) and returns a [`PacketInfo`] or the reason
//! the frame carries no usable IP packet ([`Skip`]). It never panics, whatever the bytes.
//!
//! Common frames (Ethernet with at most one VLAN tag, cooked or raw IP; IPv4, or IPv6 without extension
//! headers) are read at fixed offsets (`fast.rs`). Everything else (QinQ tags, the IPv6 extension header
//! chain, AH, odd lengths, errors) is sliced with `etherparse`'s lax API, which tolerates snap-length
//! truncation. Either way the transport fields are read at fixed offsets (see `ip.rs` for why).

mod fast;
mod ip;
mod link;

use core::net::IpAddr;

/// The link-layer framing of a capture, from the pcap/pcapng link type (`LINKTYPE_*`) number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// `LINKTYPE_ETHERNET` (1): Ethernet II, optionally with VLAN/QinQ tags.
    Ethernet,
    /// `LINKTYPE_LINUX_SLL` (113): Linux "cooked" capture v1, e.g. `tcpdump -i any`.
    LinuxSll,
    /// `LINKTYPE_LINUX_SLL2` (276): Linux "cooked" capture v2.
    LinuxSll2,
    /// `LINKTYPE_RAW` (101, and the platform `DLT_RAW` values 12 and 14): a bare IPv4 or IPv6 packet.
    RawIp,
    /// `LINKTYPE_IPV4` (228): a bare IPv4 packet.
    Ipv4,
    /// `LINKTYPE_IPV6` (229): a bare IPv6 packet.
    Ipv6,
}

impl LinkType {
    /// Every supported link type, for listing in messages.
    pub const ALL: [LinkType; 6] = [
        LinkType::Ethernet,
        LinkType::LinuxSll,
        LinkType::LinuxSll2,
        LinkType::RawIp,
        LinkType::Ipv4,
        LinkType::Ipv6,
    ];

    /// The link type for a pcap link-type number, or `None` if this parser does not support it.
    pub const fn from_dlt(dlt: i32) -> Option<LinkType> {
        Some(match dlt {
            1 => LinkType::Ethernet,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            // libpcap writes 101 to files, but captures and old files on some BSDs report DLT_RAW as 12 or 14.
            101 | 12 | 14 => LinkType::RawIp,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            _ => return None,
        })
    }

    /// The canonical pcap link-type number.
    pub const fn dlt(self) -> i32 {
        match self {
            LinkType::Ethernet => 1,
            LinkType::LinuxSll => 113,
            LinkType::LinuxSll2 => 276,
            LinkType::RawIp => 101,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
        }
    }

    /// The libpcap name of the link type (as `tcpdump -L` prints it).
    pub const fn name(self) -> &'static str {
        match self {
            LinkType::Ethernet => "EN10MB",
            LinkType::LinuxSll => "LINUX_SLL",
            LinkType::LinuxSll2 => "LINUX_SLL2",
            LinkType::RawIp => "RAW",
            LinkType::Ipv4 => "IPV4",
            LinkType::Ipv6 => "IPV6",
        }
    }
}

/// Where a packet stands in IP fragmentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fragment {
    /// A complete, unfragmented packet (including IPv6 "atomic" fragments).
    Whole,
    /// The first fragment (offset 0, more to come): it carries the transport header, so ports are set.
    First {
        /// IPv4 identification or IPv6 fragment identification.
        id: u32,
    },
    /// A later fragment: no transport header, so `sport`, `dport` and `tcp_flags` are 0.
    Later {
        /// IPv4 identification or IPv6 fragment identification.
        id: u32,
        /// Offset of this fragment's data in the original payload, in bytes.
        offset: u16,
    },
}

/// The flow-relevant fields of one IP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PacketInfo {
    /// Source address of the (outermost) IP header.
    pub src: IpAddr,
    /// Destination address of the (outermost) IP header.
    pub dst: IpAddr,
    /// Upper-layer protocol number: for IPv6 the header after any extension headers; for IPv4 with an
    /// authentication header (AH), the protocol AH protects.
    pub proto: u8,
    /// TCP/UDP/SCTP source port, or ICMP/ICMPv6 type; 0 for other protocols and later fragments.
    pub sport: u16,
    /// TCP/UDP/SCTP destination port, or ICMP/ICMPv6 code; 0 for other protocols and later fragments.
    pub dport: u16,
    /// Octets of the IP packet as sent (header plus payload), from the IP header's length field, so it is
    /// right even when the capture was cut by the snap length. Falls back to the captured length when the
    /// header gives none (IPv6 jumbograms, TSO frames with a zero length field).
    pub ip_len: u32,
    /// TCP flags byte (CWR..FIN), 0 for other protocols, later fragments or headers cut before the flags.
    pub tcp_flags: u8,
    /// Fragmentation state; later fragments carry no ports.
    pub fragment: Fragment,
}

impl PacketInfo {
    /// True if this packet is any fragment of a larger IP packet (first or later).
    pub const fn is_fragment(&self) -> bool {
        !matches!(self.fragment, Fragment::Whole)
    }
}

/// Why a frame yielded no [`PacketInfo`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Skip {
    /// Not an IP packet: ARP, another EtherType, an encrypted MACsec frame, an unknown IP version...
    #[error("not IP")]
    NotIp,
    /// The frame ends before the headers needed (link, IP, extension or transport header).
    #[error("truncated")]
    Truncated,
    /// A header is invalid (e.g. an IPv4 header length below 20 bytes, a misplaced IPv6 hop-by-hop header).
    #[error("malformed")]
    Malformed,
}

/// Extracts the [`PacketInfo`] of one captured frame.
#[inline]
pub fn parse(link: LinkType, frame: &[u8]) -> Result<PacketInfo, Skip> {
    match fast::parse(link, frame) {
        Some(info) => Ok(info),
        None => parse_full(link, frame),
    }
}

/// The full parser: every link layer, tag, extension header and error the fast path leaves to it.
#[inline(never)]
fn parse_full(link: LinkType, frame: &[u8]) -> Result<PacketInfo, Skip> {
    let sliced = link::slice(link, frame)?;
    ip::packet_info(&sliced)
}

#[cfg(test)]
mod tests;
