//! The two decoders under test, each turning every record into a [`Flow`] and folding it.
//!
//! Both read every field value into the typed flow the way a collector does: walk the record's fields and
//! dispatch on the Information Element. proto-ipfix hands out field views through a [`Visitor`];
//! netflow_parser returns owned packets whose records are vectors of `(IPFixField, FieldValue)` pairs,
//! read here through its lazy `iter_packets` API, the fastest it documents.

use std::net::{IpAddr, SocketAddr};

use netflow_parser::variable_versions::field_value::DurationValue;
use netflow_parser::variable_versions::ipfix::FlowSetBody;
use netflow_parser::variable_versions::ipfix::lookup::{
    IANAIPFixField, IPFixField, ReverseInformationElement,
};
use netflow_parser::{FieldValue, NetflowPacket, NetflowParser};
use proto_ipfix::ie::{DEFAULT_PODFLOW_PEN, REVERSE_PEN, podflow};
use proto_ipfix::{DataRecord, Decoder, Visitor};

use crate::flow::Flow;
use crate::workload::{FOLD_SEED, Workload};

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
    fn add(&mut self, f: &Flow<'_>) {
        self.records += 1;
        self.checksum = self.checksum.wrapping_add(f.fold(FOLD_SEED));
    }
}

/// proto-ipfix: one [`Decoder`] for all exporters, templates scoped by exporter and domain.
pub struct Proto {
    decoder: Decoder,
}

struct Sink {
    tally: Tally,
}

impl Visitor for Sink {
    #[inline]
    fn record(&mut self, r: &DataRecord<'_>) {
        let mut f = Flow::default();
        proto_flow(r, &mut f);
        self.tally.add(&f);
    }
}

/// Reads one proto-ipfix record into a flow.
///
/// Here and in [`peer_flow`], the flow is filled through a reference from a function that is not inlined:
/// inlined, the compiler keeps all the flow's fields in registers through the field loop and spills the
/// loop's own state instead, which slows both decoders alike.
#[inline(never)]
fn proto_flow<'a>(r: &DataRecord<'a>, f: &mut Flow<'a>) {
    for field in r.fields() {
        let s = field.spec;
        match (s.pen, s.id) {
            (0, 8) => f.src = field.ipv4().map_or(f.src, IpAddr::V4),
            (0, 12) => f.dst = field.ipv4().map_or(f.dst, IpAddr::V4),
            (0, 27) => f.src = field.ipv6().map_or(f.src, IpAddr::V6),
            (0, 28) => f.dst = field.ipv6().map_or(f.dst, IpAddr::V6),
            (0, 7) => f.src_port = field.u64().unwrap_or(0) as u16,
            (0, 11) => f.dst_port = field.u64().unwrap_or(0) as u16,
            (0, 4) => f.protocol = field.u64().unwrap_or(0) as u8,
            (0, 6) => f.tcp_flags = field.u64().unwrap_or(0) as u16,
            (0, 1) => f.octets = field.u64().unwrap_or(0),
            (0, 2) => f.packets = field.u64().unwrap_or(0),
            (REVERSE_PEN, 1) => f.rev_octets = field.u64().unwrap_or(0),
            (REVERSE_PEN, 2) => f.rev_packets = field.u64().unwrap_or(0),
            (0, 152) => f.start_ms = field.u64().unwrap_or(0),
            (0, 153) => f.end_ms = field.u64().unwrap_or(0),
            (0, 136) => f.end_reason = field.u64().unwrap_or(0) as u8,
            (DEFAULT_PODFLOW_PEN, podflow::COMMUNITY_ID) => f.community_id = field.str().unwrap_or(""),
            _ => {}
        }
    }
}

impl Proto {
    /// A decoder with the UDP template policy, as the collector runs it.
    pub fn new() -> Self {
        Proto {
            decoder: Decoder::default(),
        }
    }

    /// Decodes every datagram once.
    #[inline(never)]
    pub fn proto_ipfix_pass(&mut self, w: &Workload) -> Tally {
        let mut sink = Sink {
            tally: Tally::default(),
        };
        for d in &w.datagrams {
            let sum = self
                .decoder
                .decode(w.exporters[d.exporter], &d.bytes, d.now_ms, &mut sink);
            if sum.errors > 0 || sum.missing_template_sets > 0 {
                sink.tally.failed_messages += 1;
            }
        }
        sink.tally
    }
}

/// netflow_parser: one `NetflowParser` (default configuration) per exporter, as its README advises for
/// several routers; this spares it the per-message source lookup of its scoped parsers.
pub struct Peer {
    parsers: Vec<NetflowParser>,
}

impl Peer {
    /// One parser per exporter of `w`.
    pub fn new(exporters: &[SocketAddr]) -> Self {
        Peer {
            parsers: exporters.iter().map(|_| NetflowParser::default()).collect(),
        }
    }

    /// Decodes every datagram once.
    #[inline(never)]
    pub fn netflow_parser_pass(&mut self, w: &Workload) -> Tally {
        let mut tally = Tally::default();
        for d in &w.datagrams {
            let Some(parser) = self.parsers.get_mut(d.exporter) else {
                tally.failed_messages += 1;
                continue;
            };
            for packet in parser.iter_packets(&d.bytes) {
                let Ok(NetflowPacket::IPFix(msg)) = packet else {
                    tally.failed_messages += 1;
                    continue;
                };
                for set in &msg.flowsets {
                    match &set.body {
                        FlowSetBody::Data(data) => {
                            for record in &data.fields {
                                let mut f = Flow::default();
                                peer_flow(record, &mut f);
                                tally.add(&f);
                            }
                        }
                        FlowSetBody::NoTemplate(_) => tally.failed_messages += 1,
                        _ => {}
                    }
                }
            }
        }
        tally
    }
}

/// Reads one netflow_parser record into a flow.
#[inline(never)]
fn peer_flow<'a>(record: &'a [(IPFixField, FieldValue)], f: &mut Flow<'a>) {
    use IANAIPFixField as I;
    use ReverseInformationElement as R;
    for (k, v) in record {
        match (k, v) {
            (IPFixField::IANA(I::SourceIpv4address), FieldValue::Ip4Addr(a)) => f.src = IpAddr::V4(*a),
            (IPFixField::IANA(I::SourceIpv6address), FieldValue::Ip6Addr(a)) => f.src = IpAddr::V6(*a),
            (IPFixField::IANA(I::DestinationIpv4address), FieldValue::Ip4Addr(a)) => f.dst = IpAddr::V4(*a),
            (IPFixField::IANA(I::DestinationIpv6address), FieldValue::Ip6Addr(a)) => f.dst = IpAddr::V6(*a),
            (IPFixField::IANA(I::SourceTransportPort), FieldValue::DataNumber(n)) => {
                f.src_port = n.as_u16().unwrap_or(0)
            }
            (IPFixField::IANA(I::DestinationTransportPort), FieldValue::DataNumber(n)) => {
                f.dst_port = n.as_u16().unwrap_or(0)
            }
            (IPFixField::IANA(I::ProtocolIdentifier), FieldValue::ProtocolType(p)) => {
                f.protocol = u8::from(*p)
            }
            (IPFixField::IANA(I::TcpControlBits), FieldValue::TcpControlBits(b, _)) => {
                f.tcp_flags = u16::from(*b)
            }
            (IPFixField::IANA(I::OctetDeltaCount), FieldValue::DataNumber(n)) => {
                f.octets = n.as_u64().unwrap_or(0)
            }
            (IPFixField::IANA(I::PacketDeltaCount), FieldValue::DataNumber(n)) => {
                f.packets = n.as_u64().unwrap_or(0)
            }
            (IPFixField::ReverseInformationElement(R::ReverseOctetDeltaCount), FieldValue::DataNumber(n)) => {
                f.rev_octets = n.as_u64().unwrap_or(0)
            }
            (
                IPFixField::ReverseInformationElement(R::ReversePacketDeltaCount),
                FieldValue::DataNumber(n),
            ) => f.rev_packets = n.as_u64().unwrap_or(0),
            (IPFixField::IANA(I::FlowStartMilliseconds), FieldValue::Duration(d)) => f.start_ms = millis(d),
            (IPFixField::IANA(I::FlowEndMilliseconds), FieldValue::Duration(d)) => f.end_ms = millis(d),
            (IPFixField::IANA(I::FlowEndReason), FieldValue::FlowEndReason(r)) => f.end_reason = u8::from(*r),
            (
                IPFixField::Enterprise {
                    enterprise_number: DEFAULT_PODFLOW_PEN,
                    field_number: podflow::COMMUNITY_ID,
                },
                FieldValue::Vec(b),
            ) => f.community_id = std::str::from_utf8(b).unwrap_or(""),
            _ => {}
        }
    }
}

#[inline(always)]
fn millis(d: &DurationValue) -> u64 {
    match d {
        DurationValue::Millis { value, .. } => *value,
        _ => 0,
    }
}
