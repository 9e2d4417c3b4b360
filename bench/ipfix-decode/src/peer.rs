//! netflow_parser 1.0.6, read the fastest way its README documents.
//!
//! One `NetflowParser` with the default configuration per exporter, as its README advises for several
//! routers (this spares it the per-message source lookup of its scoped parsers), fed through
//! `iter_packets`, which its README recommends over `parse_bytes` when the packets need not be collected.
//! Records come as vectors of `(IPFixField, FieldValue)` pairs; each is read into the typed flow by a
//! match on field and value, as a user of the library does.

use std::net::{IpAddr, SocketAddr};

use netflow_parser::variable_versions::field_value::DurationValue;
use netflow_parser::variable_versions::ipfix::FlowSetBody;
use netflow_parser::variable_versions::ipfix::lookup::{
    IANAIPFixField, IPFixField, ReverseInformationElement,
};
use netflow_parser::{FieldValue, NetflowPacket, NetflowParser};
use proto_ipfix::ie::{DEFAULT_PODFLOW_PEN, podflow};

use crate::flow::{Flow, Tally};
use crate::workload::Workload;

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
///
/// Not inlined, like [`crate::proto`]'s field-by-field reader, so the flow stays in memory and the field
/// loop's state in registers: inlined, this reader counted more instructions and ran no faster.
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
