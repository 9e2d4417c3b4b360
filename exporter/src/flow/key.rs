//! Flow keys in Community ID order.
//!
//! Both directions of a connection map to one key: the smaller endpoint (by address, then port when the
//! addresses are equal) is `lo`, as the Community ID orders them, and ICMP request/reply types share
//! their pair's key. A packet then travels either `lo -> hi` or `hi -> lo`.

use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proto_ipfix::community_id::{self, CommunityId, Digest};

use crate::parse::PacketInfo;

/// Direction of a packet relative to its flow key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// From the `lo` endpoint to the `hi` endpoint.
    LoHi = 0,
    /// From the `hi` endpoint to the `lo` endpoint.
    HiLo = 1,
}

impl Side {
    /// The other direction.
    pub fn flip(self) -> Side {
        match self {
            Side::LoHi => Side::HiLo,
            Side::HiLo => Side::LoHi,
        }
    }

    /// Index into per-direction arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A bidirectional flow key. IPv4 addresses occupy the first 4 octets of each address field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlowKey {
    lo: [u8; 16],
    hi: [u8; 16],
    /// `lo`'s port (ICMP: the type as mapped for ordering).
    pub lo_port: u16,
    /// `hi`'s port (ICMP: the counterpart type, or the code for one-way types).
    pub hi_port: u16,
    /// IP protocol number.
    pub proto: u8,
    v6: bool,
}

/// Hashes whole words rather than the derived field-by-field, octet-slice form: the key is hashed for
/// every packet.
impl Hash for FlowKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u128(u128::from_ne_bytes(self.lo));
        h.write_u128(u128::from_ne_bytes(self.hi));
        h.write_u64(
            u64::from(self.lo_port)
                | u64::from(self.hi_port) << 16
                | u64::from(self.proto) << 32
                | u64::from(self.v6) << 40,
        );
    }
}

/// The Community ID order of a packet's endpoints ([`community_id::order`]). Addresses are compared as
/// big-endian integers, which orders them as the octet-wise comparison does (IPv4 addresses are padded
/// with the same zeros on both sides) without a `memcmp` call per packet; ICMP, whose types are mapped,
/// takes the library function.
#[inline(always)]
fn order(src: &[u8; 16], dst: &[u8; 16], len: usize, p: &PacketInfo) -> community_id::Order {
    if p.proto == 1 || p.proto == 58 {
        return community_id::order(&src[..len], &dst[..len], p.proto, p.sport, p.dport);
    }
    let (s, d) = (u128::from_be_bytes(*src), u128::from_be_bytes(*dst));
    let ordered = s < d || (s == d && community_id::uses_ports(p.proto) && p.sport < p.dport);
    community_id::Order {
        sport: p.sport,
        dport: p.dport,
        swapped: !ordered,
        one_way: false,
    }
}

impl FlowKey {
    /// The key of a packet's flow and the packet's direction in it; `None` when the two addresses are of
    /// different families (no parsed packet has that).
    #[inline(always)]
    pub fn of(p: &PacketInfo) -> Option<(FlowKey, Side)> {
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        let (v6, len) = match (p.src, p.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                src[..4].copy_from_slice(&s.octets());
                dst[..4].copy_from_slice(&d.octets());
                (false, 4)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                src = s.octets();
                dst = d.octets();
                (true, 16)
            }
            _ => return None,
        };
        let o = order(&src, &dst, len, p);
        Some(if o.swapped {
            (
                FlowKey {
                    lo: dst,
                    hi: src,
                    lo_port: o.dport,
                    hi_port: o.sport,
                    proto: p.proto,
                    v6,
                },
                Side::HiLo,
            )
        } else {
            (
                FlowKey {
                    lo: src,
                    hi: dst,
                    lo_port: o.sport,
                    hi_port: o.dport,
                    proto: p.proto,
                    v6,
                },
                Side::LoHi,
            )
        })
    }

    /// True for an IPv6 flow.
    pub fn is_v6(&self) -> bool {
        self.v6
    }

    fn addr(&self, raw: &[u8; 16]) -> IpAddr {
        if self.v6 {
            IpAddr::V6(Ipv6Addr::from(*raw))
        } else {
            IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))
        }
    }

    /// The endpoint that sends in direction `side`: (address, port).
    pub fn sender(&self, side: Side) -> (IpAddr, u16) {
        match side {
            Side::LoHi => (self.addr(&self.lo), self.lo_port),
            Side::HiLo => (self.addr(&self.hi), self.hi_port),
        }
    }

    /// True for ICMP and ICMPv6, whose "ports" are message types.
    pub fn is_icmp(&self) -> bool {
        self.proto == 1 || self.proto == 58
    }

    /// Community ID of the flow, hashed with `from` as the source. Any direction gives the same ID for
    /// ports; ICMP keys hold mapped types, so ICMP flows pass the type and code `from` sent.
    pub fn community_id(&self, cid: &CommunityId, from: Side, icmp_type_code: Option<(u16, u16)>) -> Digest {
        let (mut src, mut dst, mut sport, mut dport) = (&self.lo, &self.hi, self.lo_port, self.hi_port);
        if from == Side::HiLo {
            (src, dst, sport, dport) = (&self.hi, &self.lo, self.hi_port, self.lo_port);
        }
        if let Some((t, c)) = icmp_type_code {
            (sport, dport) = (t, c);
        }
        if self.v6 {
            cid.hash_v6(*src, *dst, self.proto, sport, dport)
        } else {
            let (mut s4, mut d4) = ([0u8; 4], [0u8; 4]);
            s4.copy_from_slice(&src[..4]);
            d4.copy_from_slice(&dst[..4]);
            cid.hash_v4(s4, d4, self.proto, sport, dport)
        }
    }
}
