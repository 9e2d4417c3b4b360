//! The typed flow both decoders fill, and the checksum that keeps their work observable.
//!
//! Each decoder reads every field of every record into a [`Flow`], as a collector would before
//! aggregating or exporting it, then folds the flow into a running checksum. Both sides fold the same
//! values in the same order, so equal checksums show that both decoded the same flows.

use std::net::{IpAddr, Ipv4Addr};

use crate::workload::FOLD_SEED;

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

/// Mixes a word into the checksum (an FxHash-style multiply-rotate).
#[inline(always)]
fn mix(h: u64, v: u64) -> u64 {
    (h.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95)
}

/// An address as two words.
#[inline(always)]
fn words(a: IpAddr) -> (u64, u64) {
    match a {
        IpAddr::V4(a) => (u64::from(a.to_bits()), 0),
        IpAddr::V6(a) => {
            let b = a.to_bits();
            (b as u64, (b >> 64) as u64)
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
    ///
    /// The values are combined by XOR at distinct rotations, which any single wrong value changes, then
    /// mixed once: the checksum only has to keep every value observable and tell decoders apart, and a
    /// heavier hash would add the same cost to each side of the comparison, blurring the ratio.
    #[inline]
    pub fn fold(&self, h: u64) -> u64 {
        let (s0, s1) = words(self.src);
        let (d0, d1) = words(self.dst);
        let small = u64::from(self.src_port)
            | u64::from(self.dst_port) << 16
            | u64::from(self.protocol) << 32
            | u64::from(self.end_reason) << 40
            | u64::from(self.tcp_flags) << 48;
        // The string's length and both ends: every octet was already checked as UTF-8 to get the &str.
        let s = self.community_id.as_bytes();
        let tail = &s[s.len().saturating_sub(8)..];
        let x = s0
            ^ s1.rotate_left(5)
            ^ d0.rotate_left(10)
            ^ d1.rotate_left(15)
            ^ small.rotate_left(20)
            ^ self.octets.rotate_left(25)
            ^ self.packets.rotate_left(30)
            ^ self.rev_octets.rotate_left(35)
            ^ self.rev_packets.rotate_left(40)
            ^ self.start_ms.rotate_left(45)
            ^ self.end_ms.rotate_left(50)
            ^ (s.len() as u64).rotate_left(55)
            ^ word(s).rotate_left(60)
            ^ word(tail).rotate_left(3);
        mix(h, x)
    }
}

/// What one pass over the workload yielded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Records decoded.
    pub records: u64,
    /// Sum of the records' folds.
    pub checksum: u64,
    /// Messages with a decode error or a data set without its template.
    pub failed_messages: u64,
}

impl Tally {
    /// Counts a flow and folds it in.
    #[inline]
    pub fn add(&mut self, f: &Flow<'_>) {
        self.records += 1;
        self.checksum = self.checksum.wrapping_add(f.fold(FOLD_SEED));
    }
}
