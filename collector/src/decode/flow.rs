//! From template fields to [`FlowRecord`]s: the extraction plan, computed once per template, and the
//! accumulator that a record's values fill before it becomes a flow.
//!
//! IPFIX and NetFlow v9 share this: v9 field types are IANA element numbers (RFC 3954 section 8 and RFC
//! 5102 agree on 1..=127, and v9 exporters use the IPFIX numbers above that), so a v9 field is planned as an
//! IANA element. Values arrive as the octets of the field, whatever the protocol.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proto_ipfix::ie::{REVERSE_PEN, podflow};

use super::state::Interner;
use crate::model::{Counters, FlowRecord, InlineStr, NatEndpoint, Observer, Protocol};

/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET_S: u64 = 2_208_988_800;

/// Where a field's value goes in a flow record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Slot {
    Skip,
    SrcV4,
    DstV4,
    SrcV6,
    DstV6,
    SrcPort,
    DstPort,
    Proto,
    IcmpTypeCode,
    IcmpType,
    IcmpCode,
    OctetsDelta,
    OctetsTotal,
    PacketsDelta,
    PacketsTotal,
    InitiatorOctets,
    ResponderOctets,
    InitiatorPackets,
    ResponderPackets,
    RevOctetsDelta,
    RevOctetsTotal,
    RevPacketsDelta,
    RevPacketsTotal,
    TcpFlags,
    RevTcpFlags,
    StartSeconds,
    EndSeconds,
    StartMillis,
    EndMillis,
    StartNtp,
    EndNtp,
    StartUptime,
    EndUptime,
    SystemInit,
    StartDeltaMicros,
    EndDeltaMicros,
    DurationMillis,
    ObservationMillis,
    EndReason,
    BiflowDirection,
    NatSrcV4,
    NatDstV4,
    NatSrcV6,
    NatDstV6,
    NatSrcPort,
    NatDstPort,
    NatEvent,
    CommunityId,
    PostNatCommunityId,
    ConntrackId,
    ConntrackMark,
    PodName,
    PodNamespace,
    NodeName,
}

/// The slot of element `id` of enterprise `pen` (0 for IANA and for every NetFlow v9 field type).
pub(crate) fn slot_for(pen: u32, id: u16, podflow_pen: u32) -> Slot {
    match pen {
        0 => iana_slot(id),
        REVERSE_PEN => match id {
            1 => Slot::RevOctetsDelta,
            85 => Slot::RevOctetsTotal,
            2 => Slot::RevPacketsDelta,
            86 => Slot::RevPacketsTotal,
            6 => Slot::RevTcpFlags,
            _ => Slot::Skip,
        },
        p if p == podflow_pen => match id {
            podflow::COMMUNITY_ID => Slot::CommunityId,
            podflow::POST_NAT_COMMUNITY_ID => Slot::PostNatCommunityId,
            podflow::CONNTRACK_ID => Slot::ConntrackId,
            podflow::CONNTRACK_MARK => Slot::ConntrackMark,
            podflow::OBSERVER_POD_NAME => Slot::PodName,
            podflow::OBSERVER_POD_NAMESPACE => Slot::PodNamespace,
            podflow::OBSERVER_NODE_NAME => Slot::NodeName,
            _ => Slot::Skip,
        },
        _ => Slot::Skip,
    }
}

fn iana_slot(id: u16) -> Slot {
    match id {
        8 => Slot::SrcV4,
        12 => Slot::DstV4,
        27 => Slot::SrcV6,
        28 => Slot::DstV6,
        7 => Slot::SrcPort,
        11 => Slot::DstPort,
        4 => Slot::Proto,
        32 | 139 => Slot::IcmpTypeCode,
        176 | 178 => Slot::IcmpType,
        177 | 179 => Slot::IcmpCode,
        1 => Slot::OctetsDelta,
        85 => Slot::OctetsTotal,
        2 => Slot::PacketsDelta,
        86 => Slot::PacketsTotal,
        // Firewalls (Cisco ASA NSEL among them) count per direction of the connection instead.
        231 => Slot::InitiatorOctets,
        232 => Slot::ResponderOctets,
        298 => Slot::InitiatorPackets,
        299 => Slot::ResponderPackets,
        6 => Slot::TcpFlags,
        150 => Slot::StartSeconds,
        151 => Slot::EndSeconds,
        152 => Slot::StartMillis,
        153 => Slot::EndMillis,
        154 | 156 => Slot::StartNtp,
        155 | 157 => Slot::EndNtp,
        22 => Slot::StartUptime,
        21 => Slot::EndUptime,
        160 => Slot::SystemInit,
        158 => Slot::StartDeltaMicros,
        159 => Slot::EndDeltaMicros,
        161 => Slot::DurationMillis,
        323 => Slot::ObservationMillis,
        136 => Slot::EndReason,
        239 => Slot::BiflowDirection,
        225 => Slot::NatSrcV4,
        226 => Slot::NatDstV4,
        281 => Slot::NatSrcV6,
        282 => Slot::NatDstV6,
        227 => Slot::NatSrcPort,
        228 => Slot::NatDstPort,
        230 => Slot::NatEvent,
        _ => Slot::Skip,
    }
}

/// How to turn the records of one template into flows, computed when the template is defined.
#[derive(Debug)]
pub(crate) struct Plan {
    /// For fixed-length records: (offset, length, slot) of the fields that map to a slot, so a record is
    /// read without walking the fields it does not need.
    pub fixed: Option<Box<[(u16, u16, Slot)]>>,
    /// The slot of every field in template order, for records that must be walked.
    pub slots: Box<[Slot]>,
    /// The template is an options template: its records describe the exporter, not flows.
    pub options: bool,
    /// Fields of the template, for state accounting.
    pub fields: usize,
}

impl Plan {
    /// Plans a template from its fields as (enterprise number, element id, length in the template).
    pub fn new(fields: impl Iterator<Item = (u32, u16, u16)>, options: bool, podflow_pen: u32) -> Plan {
        let mut slots = Vec::new();
        let mut fixed = Vec::new();
        let mut at: usize = 0;
        let mut fixed_ok = true;
        for (pen, id, length) in fields {
            let slot = slot_for(pen, id, podflow_pen);
            slots.push(slot);
            if length == proto_ipfix::VARIABLE_LENGTH {
                fixed_ok = false;
                continue;
            }
            if slot != Slot::Skip {
                match u16::try_from(at) {
                    Ok(off) => fixed.push((off, length, slot)),
                    Err(_) => fixed_ok = false,
                }
            }
            at += usize::from(length);
        }
        Plan {
            fixed: fixed_ok.then(|| fixed.into_boxed_slice()),
            fields: slots.len(),
            slots: slots.into_boxed_slice(),
            options,
        }
    }
}

/// The header facts that place a record in time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    /// Export time from the header, Unix milliseconds.
    pub export_ms: u64,
    /// NetFlow v9 and v5: the header's sysUpTime (milliseconds since the exporter booted), which dates
    /// uptime timestamps against the export time.
    pub sys_uptime: Option<u32>,
    /// IPFIX: when the exporter booted (systemInitTimeMilliseconds), if an options record said.
    pub system_init_ms: Option<u64>,
}

/// The values of one record, as its fields are read.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Acc {
    src4: Option<Ipv4Addr>,
    dst4: Option<Ipv4Addr>,
    src6: Option<Ipv6Addr>,
    dst6: Option<Ipv6Addr>,
    sport: u16,
    dport: u16,
    proto: u8,
    icmp_type_code: Option<u16>,
    icmp_type: Option<u8>,
    icmp_code: Option<u8>,
    octets_delta: Option<u64>,
    octets_total: Option<u64>,
    packets_delta: Option<u64>,
    packets_total: Option<u64>,
    initiator_octets: Option<u64>,
    responder_octets: Option<u64>,
    initiator_packets: Option<u64>,
    responder_packets: Option<u64>,
    rev_octets_delta: Option<u64>,
    rev_octets_total: Option<u64>,
    rev_packets_delta: Option<u64>,
    rev_packets_total: Option<u64>,
    tcp_flags: u16,
    rev_tcp_flags: u16,
    start_abs: Option<u64>,
    end_abs: Option<u64>,
    start_uptime: Option<u32>,
    end_uptime: Option<u32>,
    /// systemInitTimeMilliseconds, in a data record or an options record.
    pub system_init: Option<u64>,
    start_delta_us: Option<u64>,
    end_delta_us: Option<u64>,
    duration_ms: Option<u64>,
    observation_ms: Option<u64>,
    end_reason: Option<u8>,
    biflow_direction: Option<u8>,
    nat_src: Option<IpAddr>,
    nat_dst: Option<IpAddr>,
    nat_sport: Option<u16>,
    nat_dport: Option<u16>,
    nat_event: Option<u8>,
    community_id: Option<InlineStr>,
    post_nat_community_id: Option<InlineStr>,
    conntrack_id: Option<u32>,
    conntrack_mark: Option<u32>,
}

/// An unsigned integer of 1 to 8 octets (reduced-size encoding included).
#[inline(always)]
fn uint(v: &[u8]) -> Option<u64> {
    // The common sizes read directly; copying into a zeroed buffer first costs a store-forwarding stall.
    Some(match *v {
        [a] => u64::from(a),
        [a, b] => u64::from(u16::from_be_bytes([a, b])),
        [a, b, c, d] => u64::from(u32::from_be_bytes([a, b, c, d])),
        [a, b, c, d, e, f, g, h] => u64::from_be_bytes([a, b, c, d, e, f, g, h]),
        [_, _, _] | [_, _, _, _, _] | [_, _, _, _, _, _] | [_, _, _, _, _, _, _] => {
            v.iter().fold(0, |n, &b| n << 8 | u64::from(b))
        }
        _ => return None,
    })
}

#[inline]
fn narrow<T: TryFrom<u64>>(v: &[u8]) -> Option<T> {
    uint(v).and_then(|n| T::try_from(n).ok())
}

#[inline]
fn v4(v: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(v).ok().map(Ipv4Addr::from)
}

#[inline]
fn v6(v: &[u8]) -> Option<Ipv6Addr> {
    <[u8; 16]>::try_from(v).ok().map(Ipv6Addr::from)
}

/// An NTP timestamp (RFC 7011 dateTimeMicroseconds and dateTimeNanoseconds) in Unix milliseconds.
fn ntp_ms(v: &[u8]) -> Option<u64> {
    let n = u64::from_be_bytes(<[u8; 8]>::try_from(v).ok()?);
    let secs = (n >> 32).checked_sub(NTP_UNIX_OFFSET_S)?;
    Some(secs * 1000 + (((n & 0xffff_ffff) * 1000) >> 32))
}

fn inline_str(v: &[u8]) -> Option<InlineStr> {
    InlineStr::new(std::str::from_utf8(v).ok()?)
}

impl Acc {
    /// Stores one field's value octets in `slot`. Values of a size the slot cannot take are ignored.
    #[inline(always)]
    pub fn apply(&mut self, slot: Slot, v: &[u8], observer: &mut Observer, interner: &mut Interner) {
        match slot {
            Slot::Skip => {}
            Slot::SrcV4 => self.src4 = v4(v),
            Slot::DstV4 => self.dst4 = v4(v),
            Slot::SrcV6 => self.src6 = v6(v),
            Slot::DstV6 => self.dst6 = v6(v),
            Slot::SrcPort => self.sport = narrow(v).unwrap_or(0),
            Slot::DstPort => self.dport = narrow(v).unwrap_or(0),
            Slot::Proto => self.proto = narrow(v).unwrap_or(0),
            Slot::IcmpTypeCode => self.icmp_type_code = narrow(v),
            Slot::IcmpType => self.icmp_type = narrow(v),
            Slot::IcmpCode => self.icmp_code = narrow(v),
            Slot::OctetsDelta => self.octets_delta = uint(v),
            Slot::OctetsTotal => self.octets_total = uint(v),
            Slot::PacketsDelta => self.packets_delta = uint(v),
            Slot::PacketsTotal => self.packets_total = uint(v),
            Slot::InitiatorOctets => self.initiator_octets = uint(v),
            Slot::ResponderOctets => self.responder_octets = uint(v),
            Slot::InitiatorPackets => self.initiator_packets = uint(v),
            Slot::ResponderPackets => self.responder_packets = uint(v),
            Slot::RevOctetsDelta => self.rev_octets_delta = uint(v),
            Slot::RevOctetsTotal => self.rev_octets_total = uint(v),
            Slot::RevPacketsDelta => self.rev_packets_delta = uint(v),
            Slot::RevPacketsTotal => self.rev_packets_total = uint(v),
            Slot::TcpFlags => self.tcp_flags = narrow(v).unwrap_or(0),
            Slot::RevTcpFlags => self.rev_tcp_flags = narrow(v).unwrap_or(0),
            // Milliseconds win over the other absolute forms when an exporter sends several.
            Slot::StartSeconds => self.start_abs = self.start_abs.or(uint(v).map(|s| s.saturating_mul(1000))),
            Slot::EndSeconds => self.end_abs = self.end_abs.or(uint(v).map(|s| s.saturating_mul(1000))),
            Slot::StartMillis => self.start_abs = uint(v),
            Slot::EndMillis => self.end_abs = uint(v),
            Slot::StartNtp => self.start_abs = self.start_abs.or(ntp_ms(v)),
            Slot::EndNtp => self.end_abs = self.end_abs.or(ntp_ms(v)),
            Slot::StartUptime => self.start_uptime = narrow(v),
            Slot::EndUptime => self.end_uptime = narrow(v),
            Slot::SystemInit => self.system_init = uint(v),
            Slot::StartDeltaMicros => self.start_delta_us = uint(v),
            Slot::EndDeltaMicros => self.end_delta_us = uint(v),
            Slot::DurationMillis => self.duration_ms = uint(v),
            Slot::ObservationMillis => self.observation_ms = uint(v),
            Slot::EndReason => self.end_reason = narrow(v),
            Slot::BiflowDirection => self.biflow_direction = narrow(v),
            Slot::NatSrcV4 => self.nat_src = self.nat_src.or(v4(v).map(IpAddr::V4)),
            Slot::NatDstV4 => self.nat_dst = self.nat_dst.or(v4(v).map(IpAddr::V4)),
            Slot::NatSrcV6 => self.nat_src = self.nat_src.or(v6(v).map(IpAddr::V6)),
            Slot::NatDstV6 => self.nat_dst = self.nat_dst.or(v6(v).map(IpAddr::V6)),
            Slot::NatSrcPort => self.nat_sport = narrow(v),
            Slot::NatDstPort => self.nat_dport = narrow(v),
            Slot::NatEvent => self.nat_event = narrow(v),
            Slot::CommunityId => self.community_id = inline_str(v),
            Slot::PostNatCommunityId => self.post_nat_community_id = inline_str(v),
            Slot::ConntrackId => self.conntrack_id = narrow(v),
            Slot::ConntrackMark => self.conntrack_mark = narrow(v),
            Slot::PodName => observer.pod_name = interner.intern(v),
            Slot::PodNamespace => observer.pod_namespace = interner.intern(v),
            Slot::NodeName => observer.node_name = interner.intern(v),
        }
    }

    /// The flow's addresses: IPv4 unless only IPv6 is there or the IPv4 pair is unset (templates that
    /// carry both families fill the other with zeros).
    fn addresses(&self) -> Option<(IpAddr, IpAddr)> {
        let pair4 = self.src4.zip(self.dst4);
        let pair6 = self.src6.zip(self.dst6);
        match (pair4, pair6) {
            (Some((s, d)), Some(p6)) if s.is_unspecified() && d.is_unspecified() => {
                Some((IpAddr::V6(p6.0), IpAddr::V6(p6.1)))
            }
            (Some((s, d)), _) => Some((IpAddr::V4(s), IpAddr::V4(d))),
            (None, Some((s, d))) => Some((IpAddr::V6(s), IpAddr::V6(d))),
            (None, None) => None,
        }
    }

    /// First and last packet in Unix milliseconds.
    fn times(&self, clock: &Clock) -> (u64, u64) {
        let mut start = self.start_abs;
        let mut end = self.end_abs;
        if start.is_none() || end.is_none() {
            let (s, e) = self.uptime_times(clock);
            start = start.or(s);
            end = end.or(e);
        }
        let delta = |us: u64| clock.export_ms.saturating_sub(us / 1000);
        start = start.or(self.start_delta_us.map(delta));
        end = end.or(self.end_delta_us.map(delta));
        if let Some(d) = self.duration_ms {
            start = start.or(end.map(|e| e.saturating_sub(d)));
            end = end.or(start.map(|s| s.saturating_add(d)));
        }
        start = start.or(self.observation_ms);
        end = end.or(self.observation_ms);
        let start = start.or(end).unwrap_or(clock.export_ms);
        (start, end.unwrap_or(start))
    }

    /// Times from sysUpTime-relative timestamps (flowStartSysUpTime, flowEndSysUpTime).
    fn uptime_times(&self, clock: &Clock) -> (Option<u64>, Option<u64>) {
        if self.start_uptime.is_none() && self.end_uptime.is_none() {
            return (None, None);
        }
        if let Some(uptime) = clock.sys_uptime {
            // v9 and v5: the header says what the uptime was at export time.
            let at = |t: u32| uptime_ms(clock.export_ms, uptime, t);
            return (self.start_uptime.map(at), self.end_uptime.map(at));
        }
        if let Some(init) = self.system_init.or(clock.system_init_ms) {
            let at = |t: u32| init.saturating_add(u64::from(t));
            return (self.start_uptime.map(at), self.end_uptime.map(at));
        }
        // IPFIX without the exporter's boot time: take the flow as ending at export time and keep its
        // duration.
        let end = clock.export_ms;
        let span = match (self.start_uptime, self.end_uptime) {
            (Some(s), Some(e)) => u64::from(e.saturating_sub(s)),
            _ => 0,
        };
        (Some(end.saturating_sub(span)), Some(end))
    }

    /// The flow record, or `None` when the record has no address pair.
    pub fn finish(
        &self,
        observer: Observer,
        exporter: SocketAddr,
        observation_domain: u32,
        protocol: Protocol,
        export_time: u32,
        clock: &Clock,
    ) -> Option<FlowRecord> {
        let (src, dst) = self.addresses()?;
        let (mut sport, mut dport) = (self.sport, self.dport);
        let icmp = matches!(self.proto, 1 | 58);
        // Templates often carry ICMP elements for every protocol, zero for the others.
        let icmp_type_code = icmp.then(|| match (self.icmp_type_code, self.icmp_type, self.icmp_code) {
            (Some(tc), _, _) => tc,
            (None, Some(t), c) => u16::from(t) << 8 | u16::from(c.unwrap_or(0)),
            // Exporters without ICMP elements put type * 256 + code in the destination port.
            (None, None, _) => dport,
        });
        if icmp {
            (sport, dport) = (0, 0);
        }
        let forward = Counters {
            octets: self
                .octets_delta
                .or(self.octets_total)
                .or(self.initiator_octets)
                .unwrap_or(0),
            packets: self
                .packets_delta
                .or(self.packets_total)
                .or(self.initiator_packets)
                .unwrap_or(0),
        };
        let rev_octets = self
            .rev_octets_delta
            .or(self.rev_octets_total)
            .or(self.responder_octets);
        let rev_packets = self
            .rev_packets_delta
            .or(self.rev_packets_total)
            .or(self.responder_packets);
        let reverse = (rev_octets.is_some() || rev_packets.is_some()).then(|| Counters {
            octets: rev_octets.unwrap_or(0),
            packets: rev_packets.unwrap_or(0),
        });
        let (start_ms, end_ms) = self.times(clock);
        let nat = |ip: Option<IpAddr>, port: Option<u16>| {
            (ip.is_some() || port.is_some()).then_some(NatEndpoint { ip, port })
        };
        Some(FlowRecord {
            exporter,
            observation_domain,
            protocol,
            export_time,
            // Set by the caller, which knows the message.
            sequence: 0,
            position: 0,
            src,
            dst,
            sport,
            dport,
            proto: self.proto,
            icmp_type_code,
            forward,
            reverse,
            tcp_flags: self.tcp_flags,
            reverse_tcp_flags: self.rev_tcp_flags,
            start_ms,
            end_ms,
            end_reason: self.end_reason,
            biflow_direction: self.biflow_direction,
            post_nat_src: nat(self.nat_src, self.nat_sport),
            post_nat_dst: nat(self.nat_dst, self.nat_dport),
            nat_event: self.nat_event,
            community_id: self.community_id,
            post_nat_community_id: self.post_nat_community_id,
            conntrack_id: self.conntrack_id,
            conntrack_mark: self.conntrack_mark,
            observer,
        })
    }
}

/// The Unix time of sysUpTime `t`, given that the exporter's uptime was `uptime` at `export_ms`.
///
/// The difference is taken as signed so that the 49-day wrap of the uptime counter is crossed. A
/// timestamp after the export (exporters with a broken clock) is taken as the export time: flows are
/// exported after they happen.
pub(crate) fn uptime_ms(export_ms: u64, uptime: u32, t: u32) -> u64 {
    let back = u64::try_from(uptime.wrapping_sub(t) as i32).unwrap_or(0);
    export_ms.saturating_sub(back)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_read_fixed_records_by_offset_and_walk_variable_ones() {
        // (enterprise, element, length): octetDeltaCount, podflow's conntrackMark under enterprise 9,
        // sourceIPv4Address, sourceTransportPort, and an element of another enterprise.
        let fields = [(0, 1, 8), (9, 4, 4), (0, 8, 4), (0, 7, 2), (5, 1, 3)];
        let fixed = Plan::new(fields.into_iter(), false, 9);
        let mapped = [
            (0, 8, Slot::OctetsDelta),
            (8, 4, Slot::ConntrackMark),
            (12, 4, Slot::SrcV4),
            (16, 2, Slot::SrcPort),
        ];
        assert_eq!(fixed.fixed.as_deref(), Some(&mapped[..]));
        assert_eq!(
            (fixed.slots[4], fixed.fields, fixed.options),
            (Slot::Skip, 5, false)
        );
        let var = Plan::new([(0, 82, 65535), (0, 8, 4)].into_iter(), true, 9);
        assert!(var.fixed.is_none());
        assert_eq!(&*var.slots, &[Slot::Skip, Slot::SrcV4]);
        assert!(var.options);
    }

    #[test]
    fn times_convert_from_every_form() {
        // 2024-01-01T00:00:00Z as an NTP timestamp, and half a second.
        let secs = 1_704_067_200u64 + NTP_UNIX_OFFSET_S;
        let ntp = (secs << 32 | 0x8000_0000).to_be_bytes();
        assert_eq!(ntp_ms(&ntp), Some(1_704_067_200_500));
        assert_eq!(ntp_ms(&[0; 8]), None, "before 1970");
        // Uptime 10 s at export; a timestamp at 4 s is 6 s before export; one just after export is taken
        // as the export time; one from before the counter wrapped is still in the past.
        assert_eq!(uptime_ms(100_000, 10_000, 4_000), 94_000);
        assert_eq!(uptime_ms(100_000, 10_000, 10_250), 100_000);
        assert_eq!(uptime_ms(100_000, 1_000, u32::MAX - 999), 98_000);
    }

    #[test]
    fn ipv4_zeros_give_way_to_ipv6_and_icmp_fields_apply_only_to_icmp() {
        let mut acc = Acc::default();
        let mut obs = Observer::default();
        let mut i = Interner::default();
        acc.apply(Slot::SrcV4, &[0; 4], &mut obs, &mut i);
        acc.apply(Slot::DstV4, &[0; 4], &mut obs, &mut i);
        let mut six = [0u8; 16];
        six[0] = 0xfd;
        acc.apply(Slot::SrcV6, &six, &mut obs, &mut i);
        acc.apply(Slot::DstV6, &six, &mut obs, &mut i);
        acc.apply(Slot::Proto, &[17], &mut obs, &mut i);
        acc.apply(Slot::IcmpTypeCode, &[3, 1], &mut obs, &mut i);
        acc.apply(Slot::SrcPort, &[0, 53], &mut obs, &mut i);
        let clock = Clock {
            export_ms: 5_000,
            sys_uptime: None,
            system_init_ms: None,
        };
        let exporter = SocketAddr::from(([192, 0, 2, 1], 1));
        let f = acc
            .finish(obs.clone(), exporter, 0, Protocol::Ipfix, 5, &clock)
            .unwrap();
        assert!(f.src.is_ipv6());
        assert_eq!((f.icmp_type_code, f.sport), (None, 53));
        assert_eq!(
            (f.start_ms, f.end_ms),
            (5_000, 5_000),
            "no time fields: export time"
        );
        acc.apply(Slot::Proto, &[58], &mut obs, &mut i);
        let f = acc.finish(obs, exporter, 0, Protocol::Ipfix, 5, &clock).unwrap();
        assert_eq!((f.icmp_type_code, f.sport), (Some(0x0301), 0));
    }
}
