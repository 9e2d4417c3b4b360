//! A minimal pcap writer: UDP datagrams framed as Ethernet / IPv4 / UDP, so a dissector reads exactly the
//! bytes the encoder produced without capturing live traffic.

use std::net::SocketAddrV4;

/// Source MAC of the written frames (locally administered).
const SRC_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
/// Destination MAC of the written frames (locally administered).
const DST_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];
/// LINKTYPE_ETHERNET.
const LINKTYPE_ETHERNET: u32 = 1;
const ETHERTYPE_IPV4: u16 = 0x0800;
const IPV4_HEADER_LEN: usize = 20;
const UDP_HEADER_LEN: usize = 8;

/// A classic (microsecond) little-endian pcap file holding one frame per datagram, sent from `src` to
/// `dst`, stamped `ts_secs` plus one microsecond per frame so their order is kept. Datagrams larger than
/// an IPv4 packet can carry are refused.
pub fn write_pcap(
    datagrams: &[Vec<u8>],
    src: SocketAddrV4,
    dst: SocketAddrV4,
    ts_secs: u32,
) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes()); // thiszone
    out.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    out.extend_from_slice(&65535u32.to_le_bytes()); // snaplen
    out.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    for (i, payload) in datagrams.iter().enumerate() {
        let frame = frame(payload, src, dst, u16::try_from(i).unwrap_or(u16::MAX))?;
        let len = u32::try_from(frame.len())?;
        out.extend_from_slice(&ts_secs.to_le_bytes());
        out.extend_from_slice(&u32::try_from(i)?.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&frame);
    }
    Ok(out)
}

/// One Ethernet frame carrying `payload` in UDP over IPv4.
fn frame(payload: &[u8], src: SocketAddrV4, dst: SocketAddrV4, ip_id: u16) -> anyhow::Result<Vec<u8>> {
    let udp_len = u16::try_from(UDP_HEADER_LEN + payload.len())?;
    let ip_len = u16::try_from(IPV4_HEADER_LEN + usize::from(udp_len))?;
    let mut f = Vec::with_capacity(14 + usize::from(ip_len));
    f.extend_from_slice(&DST_MAC);
    f.extend_from_slice(&SRC_MAC);
    f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());

    let mut ip = [0u8; IPV4_HEADER_LEN];
    ip[0] = 0x45; // version 4, 5 words
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[4..6].copy_from_slice(&ip_id.to_be_bytes());
    ip[6] = 0x40; // don't fragment
    ip[8] = 64; // TTL
    ip[9] = 17; // UDP
    ip[12..16].copy_from_slice(&src.ip().octets());
    ip[16..20].copy_from_slice(&dst.ip().octets());
    let sum = checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);

    f.extend_from_slice(&src.port().to_be_bytes());
    f.extend_from_slice(&dst.port().to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    // A zero UDP checksum means "none" over IPv4 (RFC 768), which dissectors accept without a warning.
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    Ok(f)
}

/// The Internet checksum (RFC 1071) of a header whose checksum field is zero.
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_checksum_verifies() {
        let src: SocketAddrV4 = "127.0.0.1:40000".parse().unwrap();
        let dst: SocketAddrV4 = "127.0.0.1:4739".parse().unwrap();
        let f = frame(b"hello", src, dst, 7).unwrap();
        let ip = &f[14..34];
        // Summing a header including its checksum gives 0xffff, i.e. checksum() of it is 0.
        assert_eq!(checksum(ip), 0);
        assert_eq!(u16::from_be_bytes([f[38], f[39]]), 13);
    }

    #[test]
    fn file_has_one_record_per_datagram() {
        let src: SocketAddrV4 = "127.0.0.1:40000".parse().unwrap();
        let dst: SocketAddrV4 = "127.0.0.1:4739".parse().unwrap();
        let p = write_pcap(&[vec![1; 10], vec![2; 20]], src, dst, 5).unwrap();
        assert_eq!(p.len(), 24 + 2 * 16 + (42 + 10) + (42 + 20));
    }
}
