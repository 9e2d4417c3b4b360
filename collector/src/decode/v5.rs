//! NetFlow v5: a fixed header and up to 30 fixed records, parsed by netflow_parser.

use std::net::IpAddr;

use netflow_parser::static_versions::v5::V5;

use super::Ctx;
use super::flow::uptime_ms;
use super::state::Sequence;
use crate::model::{Counters, FlowRecord, Observer, Protocol};

const HEADER_LEN: usize = 24;
const RECORD_LEN: usize = 48;
/// The most records a v5 packet carries (Cisco's format description).
const MAX_RECORDS: usize = 30;

/// Decodes one v5 export packet.
pub(crate) fn decode<F: FnMut(FlowRecord)>(ctx: &mut Ctx<'_, F>, dg: &[u8]) {
    // Checked here rather than read from netflow_parser's error, so the reason is precise.
    let Some(count) = dg
        .get(2..4)
        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    else {
        ctx.refuse(Some(Protocol::NetflowV5), None, "truncated");
        return;
    };
    if dg.len() < HEADER_LEN {
        ctx.refuse(Some(Protocol::NetflowV5), None, "truncated");
        return;
    }
    if count == 0 || count > MAX_RECORDS {
        ctx.refuse(Some(Protocol::NetflowV5), None, "bad_count");
        return;
    }
    if dg.len() < HEADER_LEN + count * RECORD_LEN {
        ctx.refuse(Some(Protocol::NetflowV5), None, "truncated");
        return;
    }
    // netflow_parser's v5 reader starts after the version field.
    let Ok((_, v5)) = V5::parse_direct(&dg[2..]) else {
        ctx.refuse(Some(Protocol::NetflowV5), None, "truncated");
        return;
    };
    let h = v5.header;
    let domain = u32::from(h.engine_type) << 8 | u32::from(h.engine_id);
    let Some(di) = ctx.domain(Protocol::NetflowV5, domain) else {
        return;
    };
    let seen = ctx.state.domains.get_mut(di).map(|d| {
        let n = u32::try_from(v5.flowsets.len()).unwrap_or(u32::MAX);
        d.sequence.check(h.flow_sequence, n)
    });
    // v5 has no millisecond export time of its own: seconds plus the residual nanoseconds.
    let export_ms = u64::from(h.unix_secs) * 1000 + u64::from(h.unix_nsecs / 1_000_000);
    let at = |t: u32| uptime_ms(export_ms, h.sys_up_time, t);
    let mut records = 0u64;
    for r in &v5.flowsets {
        let icmp = r.protocol_number == 1;
        let rec = FlowRecord {
            exporter: ctx.exporter,
            observation_domain: domain,
            protocol: Protocol::NetflowV5,
            export_time: h.unix_secs,
            sequence: h.flow_sequence,
            position: u32::try_from(records).unwrap_or(u32::MAX),
            src: IpAddr::V4(r.src_addr),
            dst: IpAddr::V4(r.dst_addr),
            // ICMP type * 256 + code travels in the destination port.
            sport: if icmp { 0 } else { r.src_port },
            dport: if icmp { 0 } else { r.dst_port },
            proto: r.protocol_number,
            icmp_type_code: icmp.then_some(r.dst_port),
            forward: Counters {
                octets: u64::from(r.d_octets),
                packets: u64::from(r.d_pkts),
            },
            reverse: None,
            tcp_flags: u16::from(r.tcp_flags),
            reverse_tcp_flags: 0,
            start_ms: at(r.first),
            end_ms: at(r.last),
            end_reason: None,
            biflow_direction: None,
            post_nat_src: None,
            post_nat_dst: None,
            nat_event: None,
            community_id: None,
            post_nat_community_id: None,
            conntrack_id: None,
            conntrack_mark: None,
            observer: Observer::default(),
        };
        records += 1;
        (ctx.out)(rec);
    }
    let c = ctx.counters(Protocol::NetflowV5, domain);
    c.records += records;
    if let Some(Sequence::Lost(n)) = seen {
        c.lost_records += u64::from(n);
    }
    ctx.decoded.records += u32::try_from(records).unwrap_or(u32::MAX);
}
