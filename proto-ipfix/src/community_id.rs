//! Community ID v1 flow hashing.
//!
//! Implements version 1 of the [Community ID spec](https://github.com/corelight/community-id-spec)
//! exactly as the reference implementation
//! [pycommunityid](https://github.com/corelight/pycommunityid) does, so that podflow's flow IDs join
//! with those of Zeek, Suricata, Wireshark, Elastic and friends.
//!
//! # Contract
//!
//! * Input: a 16-bit seed, source and destination address of the same family, the IP protocol number and
//!   the two ports. For ICMP (1) and ICMPv6 (58) pass the message **type as `sport` and the code as
//!   `dport`**; the ICMP type mapping of the spec (request/reply pairs hash alike, everything else is
//!   one-way) is applied here, not by the caller.
//! * Ports are only hashed for TCP (6), UDP (17), SCTP (132), ICMP (1) and ICMPv6 (58); for every other
//!   protocol the given ports are ignored (see [`uses_ports`]).
//! * Direction is removed by ordering the endpoints: addresses compare as network-byte-order byte
//!   strings, ports only break ties between equal addresses. One-way ICMP messages are never swapped.
//! * The result is the 20-byte SHA-1 [`Digest`]; [`Digest::base64`] renders the canonical `1:<base64>`
//!   string and [`Digest::hex`] the `1:<hex>` debug variant, both without heap allocation.
//!
//! Nothing here allocates or does I/O.
//!
//! ```
//! use proto_ipfix::community_id::CommunityId;
//! use std::net::Ipv4Addr;
//!
//! let id = CommunityId::default()
//!     .hash(Ipv4Addr::new(10, 0, 0, 1).into(), Ipv4Addr::new(10, 0, 0, 2).into(), 6, 10, 20)
//!     .unwrap();
//! assert_eq!(&*id.base64(), "1:9j2Dzwrw7T9E+IZi4b4IVT66HBI=");
//! ```

use core::fmt;
use core::net::IpAddr;
use core::ops::Deref;

use base64::Engine as _;
use sha1::{Digest as _, Sha1};

/// IP protocol number of ICMP.
const PROTO_ICMP: u8 = 1;
/// IP protocol number of TCP.
const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
const PROTO_UDP: u8 = 17;
/// IP protocol number of ICMPv6.
const PROTO_ICMPV6: u8 = 58;
/// IP protocol number of SCTP.
const PROTO_SCTP: u8 = 132;

/// Whether the Community ID of protocol `proto` includes ports (for ICMP/ICMPv6: type and code).
///
/// True for TCP, UDP, SCTP, ICMP and ICMPv6, the protocols the spec defines as port-enabled.
pub const fn uses_ports(proto: u8) -> bool {
    matches!(
        proto,
        PROTO_ICMP | PROTO_TCP | PROTO_UDP | PROTO_ICMPV6 | PROTO_SCTP
    )
}

/// The request/reply counterpart of an ICMP message type, if the type has one.
///
/// Mirrors pycommunityid's `icmp.py` / `icmp6.py` (which mirror Zeek): only paired types form a two-way
/// flow; every other type is a one-way message.
const fn icmp_counterpart(proto: u8, icmp_type: u8) -> Option<u8> {
    let counterpart = match (proto, icmp_type) {
        // echo, timestamp, info, router solicitation/advertisement, address mask
        (PROTO_ICMP, 8) => 0,
        (PROTO_ICMP, 0) => 8,
        (PROTO_ICMP, 13) => 14,
        (PROTO_ICMP, 14) => 13,
        (PROTO_ICMP, 15) => 16,
        (PROTO_ICMP, 16) => 15,
        (PROTO_ICMP, 10) => 9,
        (PROTO_ICMP, 9) => 10,
        (PROTO_ICMP, 17) => 18,
        (PROTO_ICMP, 18) => 17,
        // echo, MLD, router and neighbor discovery, node information, home agent address discovery
        (PROTO_ICMPV6, 128) => 129,
        (PROTO_ICMPV6, 129) => 128,
        (PROTO_ICMPV6, 130) => 131,
        (PROTO_ICMPV6, 131) => 130,
        (PROTO_ICMPV6, 133) => 134,
        (PROTO_ICMPV6, 134) => 133,
        (PROTO_ICMPV6, 135) => 136,
        (PROTO_ICMPV6, 136) => 135,
        (PROTO_ICMPV6, 139) => 140,
        (PROTO_ICMPV6, 140) => 139,
        (PROTO_ICMPV6, 144) => 145,
        (PROTO_ICMPV6, 145) => 144,
        _ => return None,
    };
    Some(counterpart)
}

/// How Community ID orders a flow's endpoints: the (possibly ICMP-mapped) ports, and whether the
/// endpoints must be swapped to put the smaller one first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Order {
    /// Source "port": the port, or for ICMP/ICMPv6 the type.
    pub sport: u16,
    /// Destination "port": the port, or for ICMP/ICMPv6 the counterpart type (paired types) or the code.
    pub dport: u16,
    /// True when the canonical order is destination first.
    pub swapped: bool,
    /// True for unpaired ICMP types: a one-way flow, never swapped.
    pub one_way: bool,
}

/// The canonical endpoint order of Community ID v1 (the spec's step 1 and 2): ICMP types are mapped to
/// their counterparts, then the smaller address (ports only when the addresses are equal) comes first.
///
/// `saddr` and `daddr` are network-order addresses of the same length. A flow table that keys flows in
/// this order gives both directions of a connection one key, the same one the Community ID hashes.
pub fn order(saddr: &[u8], daddr: &[u8], proto: u8, sport: u16, dport: u16) -> Order {
    let (mut sport, mut dport, mut one_way) = (sport, dport, false);
    if proto == PROTO_ICMP || proto == PROTO_ICMPV6 {
        // ICMP type and code travel in 16-bit "port" slots; only the low byte of each is meaningful.
        let icmp_type = sport as u8;
        match icmp_counterpart(proto, icmp_type) {
            Some(counterpart) => dport = u16::from(counterpart),
            None => one_way = true,
        }
        sport = u16::from(icmp_type);
    }
    let ordered = one_way || saddr < daddr || (saddr == daddr && uses_ports(proto) && sport < dport);
    Order {
        sport,
        dport,
        swapped: !ordered,
        one_way,
    }
}

/// A Community ID v1 hasher: holds the seed, computes [`Digest`]s.
///
/// Cheap to copy; create one per configuration and reuse it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CommunityId {
    seed: u16,
}

impl CommunityId {
    /// A hasher with the given seed (the spec's default is 0, as with [`Default`]).
    pub const fn new(seed: u16) -> Self {
        CommunityId { seed }
    }

    /// The seed this hasher mixes into every ID.
    pub const fn seed(&self) -> u16 {
        self.seed
    }

    /// Community ID of a flow given as [`IpAddr`]s.
    ///
    /// For ICMP/ICMPv6 pass the type as `sport` and the code as `dport`. Returns `None` when the two
    /// addresses are of different families, a tuple no flow can have.
    pub fn hash(&self, saddr: IpAddr, daddr: IpAddr, proto: u8, sport: u16, dport: u16) -> Option<Digest> {
        match (saddr, daddr) {
            (IpAddr::V4(s), IpAddr::V4(d)) => Some(self.hash_v4(s.octets(), d.octets(), proto, sport, dport)),
            (IpAddr::V6(s), IpAddr::V6(d)) => Some(self.hash_v6(s.octets(), d.octets(), proto, sport, dport)),
            _ => None,
        }
    }

    /// Community ID of an IPv4 flow, addresses in network byte order.
    ///
    /// Same semantics as [`CommunityId::hash`]; the fast path for callers that hold raw header bytes.
    pub fn hash_v4(&self, saddr: [u8; 4], daddr: [u8; 4], proto: u8, sport: u16, dport: u16) -> Digest {
        self.hash_raw(&saddr, &daddr, proto, sport, dport)
    }

    /// Community ID of an IPv6 flow, addresses in network byte order.
    ///
    /// Same semantics as [`CommunityId::hash`]; the fast path for callers that hold raw header bytes.
    pub fn hash_v6(&self, saddr: [u8; 16], daddr: [u8; 16], proto: u8, sport: u16, dport: u16) -> Digest {
        self.hash_raw(&saddr, &daddr, proto, sport, dport)
    }

    /// Shared body of the per-family entry points; `saddr` and `daddr` have the same length (4 or 16).
    fn hash_raw(&self, saddr: &[u8], daddr: &[u8], proto: u8, sport: u16, dport: u16) -> Digest {
        let with_ports = uses_ports(proto);
        let o = order(saddr, daddr, proto, sport, dport);
        let (a, b, pa, pb) = if o.swapped {
            (daddr, saddr, o.dport, o.sport)
        } else {
            (saddr, daddr, o.sport, o.dport)
        };

        // Largest input: seed 2 + two IPv6 addresses 32 + proto/pad 2 + ports 4.
        let mut input = [0u8; 40];
        let mut len = 0;
        let mut put = |bytes: &[u8]| {
            input[len..len + bytes.len()].copy_from_slice(bytes);
            len += bytes.len();
        };
        put(&self.seed.to_be_bytes());
        put(a);
        put(b);
        put(&[proto, 0]);
        if with_ports {
            put(&pa.to_be_bytes());
            put(&pb.to_be_bytes());
        }
        Digest(Sha1::digest(&input[..len]).into())
    }
}

/// The 20-byte SHA-1 digest of a Community ID v1 computation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 20]);

impl Digest {
    /// The raw digest bytes.
    pub const fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// The canonical Community ID string: `1:` followed by the padded standard base64 of the digest.
    pub fn base64(&self) -> IdString {
        let mut out = IdString::new();
        let n = base64::engine::general_purpose::STANDARD
            .encode_slice(self.0, &mut out.buf[2..])
            .unwrap_or(0);
        out.len = 2 + n as u8;
        out
    }

    /// The debug variant of the ID (the reference tools' `--no-base64`): `1:` followed by lowercase hex.
    pub fn hex(&self) -> IdString {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = IdString::new();
        for (i, byte) in self.0.iter().enumerate() {
            out.buf[2 + 2 * i] = HEX[usize::from(byte >> 4)];
            out.buf[3 + 2 * i] = HEX[usize::from(byte & 0x0f)];
        }
        out.len = 2 + 40;
        out
    }
}

/// A rendered Community ID (`1:...`) held on the stack.
///
/// Dereferences to `str`; convert with `.to_string()` when an owned `String` is needed.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdString {
    /// `1:` plus 40 hex digits is the longest rendering (base64 needs 28).
    buf: [u8; 42],
    len: u8,
}

impl IdString {
    /// An ID string holding only the version prefix, to be completed by a renderer.
    const fn new() -> Self {
        let mut buf = [0u8; 42];
        buf[0] = b'1';
        buf[1] = b':';
        IdString { buf, len: 2 }
    }

    /// The ID as a string slice.
    pub fn as_str(&self) -> &str {
        // Renderers only write ASCII, so this never takes the fallback branch.
        core::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }
}

impl Deref for IdString {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for IdString {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for IdString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl fmt::Debug for IdString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq<str> for IdString {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for IdString {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn v4(s: &str) -> IpAddr {
        IpAddr::V4(s.parse::<Ipv4Addr>().unwrap())
    }

    fn v6(s: &str) -> IpAddr {
        IpAddr::V6(s.parse::<Ipv6Addr>().unwrap())
    }

    #[test]
    fn spec_example_tcp() {
        let d = CommunityId::default()
            .hash(v4("10.0.0.1"), v4("10.0.0.2"), 6, 10, 20)
            .unwrap();
        assert_eq!(d.base64(), "1:9j2Dzwrw7T9E+IZi4b4IVT66HBI=");
        assert_eq!(d.hex(), "1:f63d83cf0af0ed3f44f88662e1be08553eba1c12");
        let seeded = CommunityId::new(1)
            .hash(v4("10.0.0.1"), v4("10.0.0.2"), 6, 10, 20)
            .unwrap();
        assert_eq!(seeded.base64(), "1:aSbYoTmUEbwKW6ul+IhVXBP5DN4=");
    }

    #[test]
    fn direction_does_not_matter() {
        let c = CommunityId::default();
        let a = c.hash(v4("128.232.110.120"), v4("66.35.250.204"), 6, 34855, 80);
        let b = c.hash(v4("66.35.250.204"), v4("128.232.110.120"), 6, 80, 34855);
        assert_eq!(a, b);
        assert_eq!(a.unwrap().base64(), "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
    }

    #[test]
    fn ports_only_break_address_ties() {
        // pycommunityid issue #3: 10.0.0.1 < 10.0.0.2, so the larger source port must not flip the tuple.
        let d = CommunityId::default()
            .hash(v4("10.0.0.1"), v4("10.0.0.2"), 6, 10, 11569)
            .unwrap();
        assert_eq!(d.base64(), "1:SXBGMX1lBOwhhoDrZynfROxnhnM=");
    }

    #[test]
    fn equal_addresses_order_by_port() {
        let c = CommunityId::default();
        let a = c.hash(v4("10.0.0.1"), v4("10.0.0.1"), 6, 80, 1234).unwrap();
        let b = c.hash(v4("10.0.0.1"), v4("10.0.0.1"), 6, 1234, 80).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.base64(), "1:WaobEo3Uyp/JjlL9QX3lvrl1Oag=");
    }

    #[test]
    fn icmp_pairs_and_one_way() {
        let c = CommunityId::default();
        let req = c.hash(v4("192.168.0.89"), v4("192.168.0.1"), 1, 8, 0).unwrap();
        let rep = c.hash(v4("192.168.0.1"), v4("192.168.0.89"), 1, 0, 0).unwrap();
        assert_eq!(req, rep);
        assert_eq!(req.base64(), "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=");
        // Unpaired type: one-way, so the two directions differ and saddr > daddr is not swapped.
        let te1 = c.hash(
            v6("3ffe:507:0:1:260:97ff:fe07:69ea"),
            v6("3ffe:507:0:1:200:86ff:fe05:80da"),
            58,
            3,
            0,
        );
        let te2 = c.hash(
            v6("3ffe:507:0:1:200:86ff:fe05:80da"),
            v6("3ffe:507:0:1:260:97ff:fe07:69ea"),
            58,
            3,
            0,
        );
        assert_eq!(te1.unwrap().base64(), "1:NdobDX8PQNJbAyfkWxhtL2Pqp5w=");
        assert_ne!(te1, te2);
    }

    #[test]
    fn portless_protocols_ignore_ports() {
        let c = CommunityId::default();
        let a = c.hash(v4("10.1.24.4"), v4("10.1.12.1"), 46, 0, 0).unwrap();
        let b = c.hash(v4("10.1.12.1"), v4("10.1.24.4"), 46, 1, 2).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.base64(), "1:/nQI4Rh/TtY3mf0R2gJFBkVlgS4=");
    }

    #[test]
    fn mixed_families_have_no_id() {
        assert!(
            CommunityId::default()
                .hash(v4("10.0.0.1"), v6("::1"), 6, 1, 2)
                .is_none()
        );
    }

    #[test]
    fn raw_entry_points_match_ipaddr_entry_point() {
        let c = CommunityId::new(7);
        assert_eq!(
            c.hash_v4([1, 2, 3, 4], [5, 6, 7, 8], 17, 1122, 3344),
            c.hash(v4("1.2.3.4"), v4("5.6.7.8"), 17, 1122, 3344).unwrap()
        );
        let s = "fe80::1".parse::<Ipv6Addr>().unwrap();
        let d = "fe80::2".parse::<Ipv6Addr>().unwrap();
        assert_eq!(
            c.hash_v6(s.octets(), d.octets(), 58, 128, 0),
            c.hash(IpAddr::V6(s), IpAddr::V6(d), 58, 128, 0).unwrap()
        );
    }

    #[test]
    fn id_string_formatting() {
        let d = Digest([0xab; 20]);
        assert_eq!(d.hex().len(), 42);
        assert_eq!(d.base64().len(), 30);
        assert_eq!(format!("{:>32}", d.base64()), format!("  {}", &*d.base64()));
        assert_eq!(format!("{:?}", d.base64()), format!("{:?}", d.base64().as_str()));
        assert!(uses_ports(132) && !uses_ports(47));
    }
}
