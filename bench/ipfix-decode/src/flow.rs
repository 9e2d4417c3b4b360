//! The typed flow both decoders fill, and the checksum that keeps their work observable.
//!
//! Each decoder reads every field of every record into a [`Flow`], as a collector would before
//! aggregating or exporting it, then folds the flow into a running checksum. Both sides fold the same
//! values in the same order, so equal checksums show that both decoded the same flows.

use std::net::{IpAddr, Ipv4Addr};

/// One decoded biflow record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow<'a> {
    /// sourceIPv4Address or sourceIPv6Address.
    pub src: IpAddr,
    /// destinationIPv4Address or destinationIPv6Address.
    pub dst: IpAddr,
    /// sourceTransportPort.
    pub src_port: u16,
    /// destinationTransportPort.
    pub dst_port: u16,
    /// protocolIdentifier.
    pub protocol: u8,
    /// tcpControlBits.
    pub tcp_flags: u16,
    /// octetDeltaCount.
    pub octets: u64,
    /// packetDeltaCount.
    pub packets: u64,
    /// reverse octetDeltaCount (RFC 5103).
    pub rev_octets: u64,
    /// reverse packetDeltaCount (RFC 5103).
    pub rev_packets: u64,
    /// flowStartMilliseconds.
    pub start_ms: u64,
    /// flowEndMilliseconds.
    pub end_ms: u64,
    /// flowEndReason.
    pub end_reason: u8,
    /// podflow communityId, borrowed from the message.
    pub community_id: &'a str,
}

impl Default for Flow<'_> {
    fn default() -> Self {
        Flow {
            src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            src_port: 0,
            dst_port: 0,
            protocol: 0,
            tcp_flags: 0,
            octets: 0,
            packets: 0,
            rev_octets: 0,
            rev_packets: 0,
            start_ms: 0,
            end_ms: 0,
            end_reason: 0,
            community_id: "",
        }
    }
}

/// Mixes one value into the checksum (an FxHash-style multiply-rotate: cheap, order-sensitive).
#[inline(always)]
fn mix(h: u64, v: u64) -> u64 {
    (h.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95)
}

#[inline(always)]
fn addr(h: u64, a: IpAddr) -> u64 {
    match a {
        IpAddr::V4(a) => mix(h, u64::from(a.to_bits())),
        IpAddr::V6(a) => {
            let b = a.to_bits();
            mix(mix(h, b as u64), (b >> 64) as u64)
        }
    }
}

/// Reads the first 8 octets of `s` as a number, or folds all of a shorter `s`.
#[inline(always)]
fn word(s: &[u8]) -> u64 {
    match s.first_chunk::<8>() {
        Some(w) => u64::from_le_bytes(*w),
        None => s.iter().fold(0, |w, &b| w << 8 | u64::from(b)),
    }
}

impl Flow<'_> {
    /// Folds every value of the flow into `h`.
    #[inline]
    pub fn fold(&self, h: u64) -> u64 {
        let mut h = addr(h, self.src);
        h = addr(h, self.dst);
        h = mix(
            h,
            u64::from(self.src_port)
                | u64::from(self.dst_port) << 16
                | u64::from(self.protocol) << 32
                | u64::from(self.end_reason) << 40
                | u64::from(self.tcp_flags) << 48,
        );
        h = mix(h, self.octets);
        h = mix(h, self.packets);
        h = mix(h, self.rev_octets);
        h = mix(h, self.rev_packets);
        h = mix(h, self.start_ms);
        h = mix(h, self.end_ms);
        // The string's length and both ends: every octet was already checked as UTF-8 to get the &str.
        let s = self.community_id.as_bytes();
        let tail = &s[s.len().saturating_sub(8)..];
        mix(mix(mix(h, s.len() as u64), word(s)), word(tail))
    }
}
