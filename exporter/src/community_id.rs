//! `podflow-exporter community-id`: the Community ID of every packet in a capture file.
//!
//! The output replicates pycommunityid's `community-id-pcap` script byte for byte, so the two can be
//! compared with `diff`: one line per packet,
//!
//! ```text
//! <secs.micros> | <community id> | <saddr> <daddr> <proto> [<sport> <dport>]
//! <secs.micros> | <not IP> |
//! ```
//!
//! Ports are printed for the protocols the Community ID hashes them for; for ICMP/ICMPv6 they are the raw
//! message type and code. Frames without a usable IP packet print `<reason>` instead of an ID; for
//! non-IP frames that is the reference's `<not IP>` (with its trailing space).

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use proto_ipfix::community_id::{CommunityId, Digest, uses_ports};

use crate::parse::{self, LinkType, PacketInfo, Skip};

/// How the digest is rendered after the `1:` version prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Padded standard base64: the canonical Community ID that other tools produce.
    Base64,
    /// Lowercase hex SHA-1: the reference tools' `--no-base64` debugging output.
    Hex,
}

/// Failure to produce the listing. Per-packet problems are not errors: they are reported in the output.
///
/// The underlying cause is the [`std::error::Error::source`], not part of the message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened.
    #[error("cannot open {}", path.display())]
    Open {
        /// The capture file.
        path: PathBuf,
        /// Why the operating system refused.
        source: io::Error,
    },
    /// libpcap could not read the file: not a pcap/pcapng file, or truncated in the middle of a record.
    #[error("cannot read {} as a capture file", path.display())]
    Pcap {
        /// The capture file.
        path: PathBuf,
        /// libpcap's explanation.
        source: pcap::Error,
    },
    /// The capture's link layer is not one [`parse`] understands.
    #[error("{}: unsupported link type {dlt} ({name}); supported: {}", path.display(), supported_link_types())]
    UnsupportedLinkType {
        /// The capture file.
        path: PathBuf,
        /// The pcap link-type number.
        dlt: i32,
        /// libpcap's name for it, if it has one.
        name: String,
    },
    /// Writing the output failed (for a closed pipe, the caller may want to stop quietly).
    #[error("cannot write output")]
    Write(#[from] io::Error),
}

fn supported_link_types() -> String {
    LinkType::ALL
        .iter()
        .map(|l| format!("{} ({})", l.name(), l.dlt()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes one line per packet of the capture at `path` to `out`; returns the number of packets.
pub fn run(path: &Path, hasher: CommunityId, encoding: Encoding, out: &mut impl Write) -> Result<u64, Error> {
    // Opened first for a plain OS error message; libpcap's own is less clear for missing files.
    std::fs::File::open(path).map_err(|source| Error::Open {
        path: path.to_owned(),
        source,
    })?;
    let pcap_err = |source| Error::Pcap {
        path: path.to_owned(),
        source,
    };
    let mut capture = pcap::Capture::from_file(path).map_err(pcap_err)?;
    let dlt = capture.get_datalink();
    let link = LinkType::from_dlt(dlt.0).ok_or_else(|| Error::UnsupportedLinkType {
        path: path.to_owned(),
        dlt: dlt.0,
        name: dlt.get_name().unwrap_or_else(|_| "unknown".to_owned()),
    })?;

    let mut packets = 0;
    loop {
        let packet = match capture.next_packet() {
            Ok(packet) => packet,
            Err(pcap::Error::NoMorePackets) => break,
            Err(source) => return Err(pcap_err(source)),
        };
        // time_t and suseconds_t are i32 on some targets and i64 on others.
        #[allow(clippy::useless_conversion)]
        let ts = Timestamp::new(
            i64::from(packet.header.ts.tv_sec),
            i64::from(packet.header.ts.tv_usec),
        );
        write_line(out, hasher, encoding, ts, &parse::parse(link, packet.data))?;
        packets += 1;
    }
    out.flush()?;
    Ok(packets)
}

/// Writes the output line for one packet.
pub fn write_line(
    out: &mut impl Write,
    hasher: CommunityId,
    encoding: Encoding,
    ts: Timestamp,
    parsed: &Result<PacketInfo, Skip>,
) -> io::Result<()> {
    let info = match parsed {
        Ok(info) => info,
        Err(skip) => return writeln!(out, "{ts} | <{skip}> | "),
    };
    let Some(digest) = hasher.hash(info.src, info.dst, info.proto, info.sport, info.dport) else {
        // parse() takes both addresses from one IP header, so this is unreachable in practice.
        return writeln!(out, "{ts} | <mixed address families> | ");
    };
    write!(
        out,
        "{ts} | {} | {} {} {}",
        render(&digest, encoding),
        info.src,
        info.dst,
        info.proto
    )?;
    if uses_ports(info.proto) {
        write!(out, " {} {}", info.sport, info.dport)?;
    }
    writeln!(out)
}

fn render(digest: &Digest, encoding: Encoding) -> proto_ipfix::community_id::IdString {
    match encoding {
        Encoding::Base64 => digest.base64(),
        Encoding::Hex => digest.hex(),
    }
}

/// A capture timestamp, displayed like Python's `'%10.6f' % seconds` (the reference's format).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamp {
    micros: i128,
}

impl Timestamp {
    /// A timestamp from libpcap's seconds and microseconds.
    pub fn new(secs: i64, micros: i64) -> Self {
        Timestamp {
            micros: i128::from(secs) * 1_000_000 + i128::from(micros),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.micros < 0 { "-" } else { "" };
        let abs = self.micros.unsigned_abs();
        let (whole, frac) = (abs / 1_000_000, abs % 1_000_000);
        // "%10.6f" right-aligns to 10 characters; only timestamps before 1970-01-01T00:16:40 are that short.
        let len = sign.len() + decimal_digits(whole) + 7;
        for _ in len..10 {
            f.write_str(" ")?;
        }
        write!(f, "{sign}{whole}.{frac:06}")
    }
}

fn decimal_digits(mut n: u128) -> usize {
    let mut digits = 1;
    while n >= 10 {
        n /= 10;
        digits += 1;
    }
    digits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::Fragment;
    use std::net::Ipv4Addr;

    fn line(parsed: Result<PacketInfo, Skip>, encoding: Encoding) -> String {
        let mut out = Vec::new();
        write_line(
            &mut out,
            CommunityId::default(),
            encoding,
            Timestamp::new(1500000000, 830079),
            &parsed,
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    fn info(proto: u8, sport: u16, dport: u16) -> PacketInfo {
        PacketInfo {
            src: Ipv4Addr::new(10, 0, 0, 1).into(),
            dst: Ipv4Addr::new(10, 0, 0, 2).into(),
            proto,
            sport,
            dport,
            ip_len: 40,
            tcp_flags: 0,
            fragment: Fragment::Whole,
        }
    }

    #[test]
    fn timestamp_matches_python_percent_10_6f() {
        assert_eq!(Timestamp::new(1500000080, 28).to_string(), "1500000080.000028");
        assert_eq!(Timestamp::new(0, 5).to_string(), "  0.000005");
        assert_eq!(Timestamp::new(123, 0).to_string(), "123.000000");
        assert_eq!(Timestamp::new(-1, 500_000).to_string(), " -0.500000");
    }

    #[test]
    fn lines_match_reference_format() {
        assert_eq!(
            line(Err(Skip::NotIp), Encoding::Base64),
            "1500000000.830079 | <not IP> | \n"
        );
        assert_eq!(
            line(Ok(info(6, 10, 20)), Encoding::Base64),
            "1500000000.830079 | 1:9j2Dzwrw7T9E+IZi4b4IVT66HBI= | 10.0.0.1 10.0.0.2 6 10 20\n"
        );
        assert_eq!(
            line(Ok(info(6, 10, 20)), Encoding::Hex),
            "1500000000.830079 | 1:f63d83cf0af0ed3f44f88662e1be08553eba1c12 | 10.0.0.1 10.0.0.2 6 10 20\n"
        );
        assert!(line(Ok(info(47, 0, 0)), Encoding::Base64).ends_with(" | 10.0.0.1 10.0.0.2 47\n"));
        assert!(line(Err(Skip::Truncated), Encoding::Base64).ends_with(" | <truncated> | \n"));
    }

    #[test]
    fn unsupported_link_type_message_lists_supported_ones() {
        let e = Error::UnsupportedLinkType {
            path: "x.pcap".into(),
            dlt: 105,
            name: "IEEE802_11".into(),
        };
        let msg = e.to_string();
        assert!(msg.starts_with("x.pcap: unsupported link type 105 (IEEE802_11); supported: EN10MB (1),"));
        assert!(msg.contains("LINUX_SLL2 (276)"));
    }
}
