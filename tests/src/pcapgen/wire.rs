//! Frames on the wire: Ethernet / IPv4 or IPv6 / TCP, UDP, ICMP or a later IPv4 fragment, written into a
//! reusable header buffer, and the pcap file they go into.
//!
//! Payloads are all zeros: they add nothing to an Internet checksum, so every checksum (IPv4 header,
//! TCP, UDP, ICMP, ICMPv6) is correct while only the headers are summed, and the payload is written
//! straight from a static zero buffer without being copied into the frame.

use std::io::Write;

/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Largest IP packet written (a 1500-octet Ethernet MTU).
pub const MTU: usize = 1500;
/// Ethernet header length (no VLAN tag).
pub const ETH_LEN: usize = 14;
/// Minimum Ethernet frame length without the FCS: shorter frames received from the wire are padded.
pub const ETH_MIN_FRAME: usize = 60;
/// IPv4 header length (no options).
pub const IPV4_LEN: usize = 20;
/// IPv6 fixed header length (no extension headers).
pub const IPV6_LEN: usize = 40;
/// TCP header of a SYN or SYN-ACK: MSS, SACK permitted, timestamps, NOP, window scale.
pub const TCP_SYN_LEN: usize = 40;
/// TCP header of other segments: NOP, NOP, timestamps.
pub const TCP_LEN: usize = 32;
/// TCP header of a reset, which carries no options.
pub const TCP_RST_LEN: usize = 20;
/// UDP header length.
pub const UDP_LEN: usize = 8;
/// ICMP / ICMPv6 echo header length.
pub const ICMP_ECHO_LEN: usize = 8;

/// Longest header stack written: Ethernet + IPv6 + TCP with SYN options.
const MAX_HEADERS: usize = ETH_LEN + IPV6_LEN + TCP_SYN_LEN;
/// Zeros for payloads and Ethernet padding.
static ZEROS: [u8; MTU + ETH_MIN_FRAME] = [0; MTU + ETH_MIN_FRAME];

/// MAC of the client-side host (locally administered).
const CLIENT_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x00, 0x01];
/// MAC of the gateway towards the servers (locally administered).
const GATEWAY_MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x00, 0x00, 0xfe];

/// TCP flag bits.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
}

/// The transport part of a packet.
#[derive(Clone, Copy, Debug)]
pub enum L4 {
    /// A TCP segment.
    Tcp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// Sequence number.
        seq: u32,
        /// Acknowledgement number.
        ack: u32,
        /// Flag bits ([`tcp_flags`]).
        flags: u8,
        /// Timestamp option value (ms clock of the sender).
        ts_val: u32,
    },
    /// A UDP datagram (or the first fragment of one); `len` is the UDP length field (header + payload of
    /// the whole datagram).
    Udp {
        /// Source port.
        sport: u16,
        /// Destination port.
        dport: u16,
        /// UDP length field.
        len: u16,
    },
    /// An ICMP (IPv4) or ICMPv6 echo request or reply.
    Echo {
        /// True for a request, false for a reply.
        request: bool,
        /// Identifier.
        id: u16,
        /// Sequence number.
        seq: u16,
    },
    /// A later IPv4 fragment: payload only, no transport header.
    Fragment,
}

/// Everything needed to write one packet.
#[derive(Clone, Copy, Debug)]
pub struct Packet {
    /// IPv6 rather than IPv4.
    pub v6: bool,
    /// Source address (IPv4 in the first 4 octets).
    pub src: [u8; 16],
    /// Destination address (IPv4 in the first 4 octets).
    pub dst: [u8; 16],
    /// Sent by the client (its frames are captured as sent, unpadded) or received from the server side.
    pub from_client: bool,
    /// IPv4 identification.
    pub ip_id: u16,
    /// IPv6 flow label (20 bits).
    pub flow_label: u32,
    /// IPv4 fragment offset in 8-octet units, and the more-fragments flag.
    pub frag: Option<(u16, bool)>,
    /// TTL / hop limit.
    pub ttl: u8,
    /// Transport header.
    pub l4: L4,
    /// Payload octets after the transport header (all zeros).
    pub payload: usize,
}

impl Packet {
    /// The IP protocol number.
    pub fn proto(&self) -> u8 {
        match self.l4 {
            L4::Tcp { .. } => 6,
            L4::Udp { .. } | L4::Fragment => 17,
            L4::Echo { .. } if self.v6 => 58,
            L4::Echo { .. } => 1,
        }
    }

    /// Transport header length.
    fn l4_len(&self) -> usize {
        match self.l4 {
            L4::Tcp { flags, .. } if flags & tcp_flags::SYN != 0 => TCP_SYN_LEN,
            L4::Tcp { flags, .. } if flags & tcp_flags::RST != 0 => TCP_RST_LEN,
            L4::Tcp { .. } => TCP_LEN,
            L4::Udp { .. } => UDP_LEN,
            L4::Echo { .. } => ICMP_ECHO_LEN,
            L4::Fragment => 0,
        }
    }

    /// The IP packet's length: IP header + transport header + payload.
    pub fn ip_len(&self) -> usize {
        let ip = if self.v6 { IPV6_LEN } else { IPV4_LEN };
        ip + self.l4_len() + self.payload
    }
}

/// One's-complement sum of big-endian 16-bit words (an odd trailing octet is padded with zero).
fn sum16(bytes: &[u8], mut acc: u32) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

/// Folds a one's-complement sum into the 16-bit checksum.
fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Writes Ethernet, IP and transport headers of `p` into a fixed buffer; the zero payload and padding
/// follow when the frame is written out.
pub struct FrameBuilder {
    buf: [u8; MAX_HEADERS],
}

impl Default for FrameBuilder {
    fn default() -> Self {
        FrameBuilder {
            buf: [0; MAX_HEADERS],
        }
    }
}

impl FrameBuilder {
    /// Builds the headers of `p`; returns their length. The frame is the headers, `p.payload` zeros and
    /// then [`padding`] zeros.
    pub fn build(&mut self, p: &Packet) -> usize {
        let b = &mut self.buf;
        let (src_mac, dst_mac) = if p.from_client {
            (CLIENT_MAC, GATEWAY_MAC)
        } else {
            (GATEWAY_MAC, CLIENT_MAC)
        };
        b[0..6].copy_from_slice(&dst_mac);
        b[6..12].copy_from_slice(&src_mac);
        let ip_len = p.ip_len();
        let l4_len = p.l4_len();
        let proto = p.proto();
        // Length the transport checksum's pseudo-header names: the whole datagram for UDP, whose first
        // fragment is all that carries its header.
        let upper_len = match p.l4 {
            L4::Udp { len, .. } => usize::from(len),
            _ => l4_len + p.payload,
        };
        let (ip_hdr, pseudo) = if p.v6 {
            b[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
            let ip = &mut b[ETH_LEN..ETH_LEN + IPV6_LEN];
            let first = (6u32 << 28) | (p.flow_label & 0x000f_ffff);
            ip[0..4].copy_from_slice(&first.to_be_bytes());
            ip[4..6].copy_from_slice(&((ip_len - IPV6_LEN) as u16).to_be_bytes());
            ip[6] = proto;
            ip[7] = p.ttl;
            ip[8..24].copy_from_slice(&p.src);
            ip[24..40].copy_from_slice(&p.dst);
            let mut acc = sum16(&p.src, 0);
            acc = sum16(&p.dst, acc);
            acc += upper_len as u32 + u32::from(proto);
            (IPV6_LEN, acc)
        } else {
            b[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
            let ip = &mut b[ETH_LEN..ETH_LEN + IPV4_LEN];
            ip[0] = 0x45;
            ip[1] = 0;
            ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
            ip[4..6].copy_from_slice(&p.ip_id.to_be_bytes());
            let frag_field = match p.frag {
                Some((offset, more)) => (offset & 0x1fff) | if more { 0x2000 } else { 0 },
                // TCP sets don't-fragment (path MTU discovery); unfragmented UDP and ICMP leave it clear.
                None if proto == 6 => 0x4000,
                None => 0,
            };
            ip[6..8].copy_from_slice(&frag_field.to_be_bytes());
            ip[8] = p.ttl;
            ip[9] = proto;
            ip[10..12].copy_from_slice(&[0, 0]);
            ip[12..16].copy_from_slice(&p.src[..4]);
            ip[16..20].copy_from_slice(&p.dst[..4]);
            let sum = fold(sum16(ip, 0));
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            let mut acc = sum16(&p.src[..4], 0);
            acc = sum16(&p.dst[..4], acc);
            acc += upper_len as u32 + u32::from(proto);
            (IPV4_LEN, acc)
        };
        let start = ETH_LEN + ip_hdr;
        let l4 = &mut b[start..start + l4_len];
        match p.l4 {
            L4::Tcp {
                sport,
                dport,
                seq,
                ack,
                flags,
                ts_val,
            } => {
                l4[0..2].copy_from_slice(&sport.to_be_bytes());
                l4[2..4].copy_from_slice(&dport.to_be_bytes());
                l4[4..8].copy_from_slice(&seq.to_be_bytes());
                let ack = if flags & tcp_flags::ACK != 0 { ack } else { 0 };
                l4[8..12].copy_from_slice(&ack.to_be_bytes());
                l4[12] = ((l4_len / 4) as u8) << 4;
                l4[13] = flags;
                let window: u16 = if flags & tcp_flags::RST != 0 { 0 } else { 64_240 };
                l4[14..16].copy_from_slice(&window.to_be_bytes());
                l4[16..20].copy_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
                let ts_ecr = if flags & tcp_flags::ACK != 0 {
                    ts_val.wrapping_sub(7)
                } else {
                    0
                };
                if l4_len == TCP_SYN_LEN {
                    // MSS 1460, SACK permitted, timestamps, NOP, window scale 7 (Linux's SYN layout).
                    l4[20..24].copy_from_slice(&[2, 4, 0x05, 0xb4]);
                    l4[24..26].copy_from_slice(&[4, 2]);
                    l4[26..28].copy_from_slice(&[8, 10]);
                    l4[28..32].copy_from_slice(&ts_val.to_be_bytes());
                    l4[32..36].copy_from_slice(&ts_ecr.to_be_bytes());
                    l4[36..40].copy_from_slice(&[1, 3, 3, 7]);
                } else if l4_len == TCP_LEN {
                    l4[20..24].copy_from_slice(&[1, 1, 8, 10]);
                    l4[24..28].copy_from_slice(&ts_val.to_be_bytes());
                    l4[28..32].copy_from_slice(&ts_ecr.to_be_bytes());
                }
                let sum = fold(sum16(l4, pseudo));
                l4[16..18].copy_from_slice(&sum.to_be_bytes());
            }
            L4::Udp { sport, dport, len } => {
                l4[0..2].copy_from_slice(&sport.to_be_bytes());
                l4[2..4].copy_from_slice(&dport.to_be_bytes());
                l4[4..6].copy_from_slice(&len.to_be_bytes());
                l4[6..8].copy_from_slice(&[0, 0]);
                let mut sum = fold(sum16(l4, pseudo));
                // A computed zero is sent as all ones: zero means "no checksum" (RFC 768).
                if sum == 0 {
                    sum = 0xffff;
                }
                l4[6..8].copy_from_slice(&sum.to_be_bytes());
            }
            L4::Echo { request, id, seq } => {
                l4[0] = match (p.v6, request) {
                    (false, true) => 8,
                    (false, false) => 0,
                    (true, true) => 128,
                    (true, false) => 129,
                };
                l4[1] = 0;
                l4[2..4].copy_from_slice(&[0, 0]);
                l4[4..6].copy_from_slice(&id.to_be_bytes());
                l4[6..8].copy_from_slice(&seq.to_be_bytes());
                // ICMPv6 covers a pseudo-header; ICMP for IPv4 covers only itself.
                let base = if p.v6 { pseudo } else { 0 };
                let sum = fold(sum16(l4, base));
                l4[2..4].copy_from_slice(&sum.to_be_bytes());
            }
            L4::Fragment => {}
        }
        start + l4_len
    }

    /// The headers built by the last [`build`](Self::build) call.
    pub fn headers(&self, len: usize) -> &[u8] {
        &self.buf[..len]
    }
}

/// Ethernet padding after a frame of `len` octets: frames received from the wire are at least 60 octets,
/// while frames the capturing host sends are captured before the NIC pads them.
pub fn padding(p: &Packet, len: usize) -> usize {
    if p.from_client {
        0
    } else {
        ETH_MIN_FRAME.saturating_sub(len)
    }
}

/// A classic little-endian pcap file with microsecond timestamps, written through `W` (use a buffered
/// writer: every frame is three small writes).
pub struct PcapWriter<W: Write> {
    out: W,
    snaplen: usize,
    /// Octets written so far, file header included.
    pub bytes: u64,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header: Ethernet link type, frames cut to `snaplen` octets.
    pub fn new(mut out: W, snaplen: u32) -> std::io::Result<Self> {
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone and sigfigs stay zero.
        h[16..20].copy_from_slice(&snaplen.to_le_bytes());
        h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter {
            out,
            snaplen: snaplen as usize,
            bytes: 24,
        })
    }

    /// Writes one frame: `headers`, then `zeros` zero octets (payload and padding), cut to the snap length.
    pub fn frame(&mut self, ts_us: u64, headers: &[u8], zeros: usize) -> std::io::Result<()> {
        let len = headers.len() + zeros;
        let cap = len.min(self.snaplen);
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
        rec[4..8].copy_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
        rec[8..12].copy_from_slice(&(cap as u32).to_le_bytes());
        rec[12..16].copy_from_slice(&(len as u32).to_le_bytes());
        self.out.write_all(&rec)?;
        let head = cap.min(headers.len());
        self.out.write_all(&headers[..head])?;
        self.out.write_all(&ZEROS[..cap - head])?;
        self.bytes += 16 + cap as u64;
        Ok(())
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: [u8; 4]) -> [u8; 16] {
        let mut o = [0u8; 16];
        o[..4].copy_from_slice(&a);
        o
    }

    fn packet(l4: L4, payload: usize, v6: bool) -> Packet {
        let (src, dst) = if v6 {
            let mut s = [0u8; 16];
            s[0] = 0x20;
            s[15] = 1;
            let mut d = s;
            d[15] = 2;
            (s, d)
        } else {
            (v4([10, 1, 0, 1]), v4([192, 0, 2, 1]))
        };
        Packet {
            v6,
            src,
            dst,
            from_client: true,
            ip_id: 7,
            flow_label: 0x12345,
            frag: None,
            ttl: 64,
            l4,
            payload,
        }
    }

    /// The transport checksum verifies: summing pseudo-header, header and (zero) payload gives 0xffff.
    fn l4_verifies(p: &Packet, frame: &[u8]) -> bool {
        let ip = if p.v6 { IPV6_LEN } else { IPV4_LEN };
        let l4 = &frame[ETH_LEN + ip..];
        let (src, dst) = if p.v6 {
            (&p.src[..], &p.dst[..])
        } else {
            (&p.src[..4], &p.dst[..4])
        };
        let len = match p.l4 {
            L4::Udp { len, .. } => usize::from(len),
            _ => l4.len() + p.payload,
        };
        let pseudo = if p.v6 || p.proto() != 1 {
            sum16(dst, sum16(src, 0)) + len as u32 + u32::from(p.proto())
        } else {
            0
        };
        fold(sum16(l4, pseudo)) == 0
    }

    #[test]
    fn checksums_verify() {
        let cases = [
            packet(
                L4::Tcp {
                    sport: 40000,
                    dport: 443,
                    seq: 1,
                    ack: 2,
                    flags: tcp_flags::SYN,
                    ts_val: 9,
                },
                0,
                false,
            ),
            packet(
                L4::Tcp {
                    sport: 40000,
                    dport: 443,
                    seq: 1,
                    ack: 2,
                    flags: tcp_flags::ACK | tcp_flags::PSH,
                    ts_val: 9,
                },
                999,
                true,
            ),
            packet(
                L4::Udp {
                    sport: 5353,
                    dport: 53,
                    len: 8 + 33,
                },
                33,
                true,
            ),
            packet(
                L4::Echo {
                    request: true,
                    id: 3,
                    seq: 4,
                },
                56,
                false,
            ),
            packet(
                L4::Echo {
                    request: false,
                    id: 3,
                    seq: 4,
                },
                56,
                true,
            ),
        ];
        let mut fb = FrameBuilder::default();
        for p in &cases {
            let n = fb.build(p);
            assert!(l4_verifies(p, fb.headers(n)), "{p:?}");
            if !p.v6 {
                assert_eq!(fold(sum16(&fb.headers(n)[ETH_LEN..ETH_LEN + IPV4_LEN], 0)), 0);
            }
            assert_eq!(n - ETH_LEN + p.payload, p.ip_len());
        }
    }

    #[test]
    fn ip_length_fields() {
        let mut fb = FrameBuilder::default();
        let p = packet(
            L4::Udp {
                sport: 1,
                dport: 53,
                len: 8 + 100,
            },
            100,
            true,
        );
        let n = fb.build(&p);
        let h = fb.headers(n);
        assert_eq!(u16::from_be_bytes([h[18], h[19]]), 108);
        let mut frag = packet(L4::Fragment, 800, false);
        frag.frag = Some((185, false));
        let n = fb.build(&frag);
        let h = fb.headers(n);
        assert_eq!(n, ETH_LEN + IPV4_LEN);
        assert_eq!(u16::from_be_bytes([h[16], h[17]]), 820);
        assert_eq!(u16::from_be_bytes([h[20], h[21]]), 185);
    }

    #[test]
    fn pcap_frames_are_cut_to_snaplen() {
        let mut w = PcapWriter::new(Vec::new(), 64).unwrap();
        w.frame(1_500_000, &[1; 54], 100).unwrap();
        let bytes = w.bytes;
        let out = w.finish().unwrap();
        assert_eq!(out.len() as u64, bytes);
        assert_eq!(out.len(), 24 + 16 + 64);
        let rec = &out[24..40];
        assert_eq!(u32::from_le_bytes(rec[0..4].try_into().unwrap()), 1);
        assert_eq!(u32::from_le_bytes(rec[4..8].try_into().unwrap()), 500_000);
        assert_eq!(u32::from_le_bytes(rec[8..12].try_into().unwrap()), 64);
        assert_eq!(u32::from_le_bytes(rec[12..16].try_into().unwrap()), 154);
    }
}
