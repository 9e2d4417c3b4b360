//! Unit tests of the decoder: datagrams built here, state and counters checked.

mod ipfix;
mod limits;
mod netflow;

use std::net::{Ipv4Addr, SocketAddr};

use proto_ipfix::{Encoder, FieldSpec, Template};

use super::{DecodeStats, Decoder, DecoderConfig, StatsKey};
use crate::model::FlowRecord;

/// Exporter `n` (a host of TEST-NET-1, port 4739).
fn ex(n: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, n], 4739))
}

fn key(exporter: SocketAddr, domain: u32) -> StatsKey {
    StatsKey {
        exporter,
        observation_domain: Some(domain),
    }
}

/// Decodes one datagram and returns its flows.
fn feed(d: &mut Decoder, from: SocketAddr, dg: &[u8], now_ms: u64) -> Vec<FlowRecord> {
    let mut flows = Vec::new();
    let got = d.decode(from, dg, now_ms, &mut |f| flows.push(f));
    assert_eq!(got.records as usize, flows.len());
    flows
}

fn stats(d: &Decoder, k: StatsKey) -> super::ExporterStats {
    d.stats().get(&k).cloned().unwrap_or_default()
}

fn total(d: &Decoder) -> super::ExporterStats {
    DecodeStats::total(d.stats())
}

/// A plain IPFIX flow template: addresses, ports, protocol, octets, packets.
fn flow_template(id: u16) -> Template {
    Template::new(
        id,
        vec![
            FieldSpec::iana(8, 4),
            FieldSpec::iana(12, 4),
            FieldSpec::iana(7, 2),
            FieldSpec::iana(11, 2),
            FieldSpec::iana(4, 1),
            FieldSpec::iana(1, 8),
            FieldSpec::iana(2, 8),
        ],
    )
    .unwrap()
}

/// An IPFIX message with the encoder's templates and nothing else.
fn templates_msg(enc: &mut Encoder, export_time: u32) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut m = enc.message(export_time, &mut buf);
    m.add_templates().unwrap();
    m.finish();
    buf
}

/// An IPFIX message with `n` records of [`flow_template`] `id`, record `i` from 10.0.0.1:(1000 + i).
fn flows_msg(enc: &mut Encoder, id: u16, n: u16, export_time: u32) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut m = enc.message(export_time, &mut buf);
    for i in 0..n {
        let mut r = m.record(id).unwrap();
        r.ipv4(Ipv4Addr::new(10, 0, 0, 1))
            .ipv4(Ipv4Addr::new(10, 0, 0, 2))
            .uint(u64::from(1000 + i))
            .uint(80)
            .uint(6)
            .uint(1500)
            .uint(3);
        r.commit().unwrap();
    }
    m.finish();
    buf
}

fn encoder(domain: u32, templates: Vec<Template>) -> Encoder {
    let mut enc = Encoder::new(domain, 1400).unwrap();
    for t in templates {
        enc.add_template(t);
    }
    enc
}

fn config() -> DecoderConfig {
    DecoderConfig::default()
}

/// NetFlow v9 packets built by hand (RFC 3954 section 5).
mod v9 {
    /// A header: count 0 (unused by decoders), sysUpTime, export seconds, sequence, Source ID.
    pub fn packet(
        sequence: u32,
        source_id: u32,
        sys_uptime: u32,
        unix_secs: u32,
        flowsets: &[Vec<u8>],
    ) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&9u16.to_be_bytes());
        p.extend_from_slice(&0u16.to_be_bytes());
        p.extend_from_slice(&sys_uptime.to_be_bytes());
        p.extend_from_slice(&unix_secs.to_be_bytes());
        p.extend_from_slice(&sequence.to_be_bytes());
        p.extend_from_slice(&source_id.to_be_bytes());
        for f in flowsets {
            p.extend_from_slice(f);
        }
        p
    }

    pub fn flowset(id: u16, body: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&id.to_be_bytes());
        f.extend_from_slice(&u16::try_from(body.len() + 4).unwrap().to_be_bytes());
        f.extend_from_slice(body);
        f
    }

    /// A template flowset with one template of (type, length) fields.
    pub fn template(id: u16, fields: &[(u16, u16)]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&id.to_be_bytes());
        b.extend_from_slice(&u16::try_from(fields.len()).unwrap().to_be_bytes());
        for (t, l) in fields {
            b.extend_from_slice(&t.to_be_bytes());
            b.extend_from_slice(&l.to_be_bytes());
        }
        flowset(0, &b)
    }

    /// The fields of [`record`]: addresses, ports, protocol, octets, packets, first and last switched.
    pub const FIELDS: &[(u16, u16)] = &[
        (8, 4),
        (12, 4),
        (7, 2),
        (11, 2),
        (4, 1),
        (1, 4),
        (2, 4),
        (22, 4),
        (21, 4),
    ];

    /// A record of [`FIELDS`].
    pub fn record(src: [u8; 4], sport: u16, octets: u32, first: u32, last: u32) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(&src);
        r.extend_from_slice(&[10, 9, 9, 9]);
        r.extend_from_slice(&sport.to_be_bytes());
        r.extend_from_slice(&443u16.to_be_bytes());
        r.push(6);
        r.extend_from_slice(&octets.to_be_bytes());
        r.extend_from_slice(&2u32.to_be_bytes());
        r.extend_from_slice(&first.to_be_bytes());
        r.extend_from_slice(&last.to_be_bytes());
        r
    }
}
