//! The NAT fields of translated flows and the NAT event records, in the order `templates.rs` gives.

use std::net::IpAddr;

use proto_ipfix::RecordWriter;
use proto_ipfix::community_id::CommunityId;

use super::templates::ObserverInfo;
use crate::conntrack::{Connection, NatEvent, Tuple};

fn addr(r: &mut RecordWriter<'_, '_>, a: IpAddr) {
    match a {
        IpAddr::V4(a) => r.ipv4(a),
        IpAddr::V6(a) => r.ipv6(a),
    };
}

/// The Community ID of a tuple, or an empty string for one that mixes families (never decoded).
fn community_id(cid: &CommunityId, t: &Tuple) -> String {
    cid.hash(t.src, t.dst, t.proto, t.sport, t.dport)
        .map(|d| d.base64().to_string())
        .unwrap_or_default()
}

/// Post-NAT addresses and ports of a record from (`src`, `sport`) to (`dst`, `dport`) of translated
/// connection `c`, then postNatCommunityId, conntrackId and conntrackMark. Each endpoint is replaced by
/// what the kernel made of it, so a record of the reply direction (a `--uniflow` record, or a biflow
/// whose initiator was guessed) names the backend as its post-NAT source.
pub fn flow_fields(
    r: &mut RecordWriter<'_, '_>,
    c: &Connection,
    (src, sport): (IpAddr, u16),
    (dst, dport): (IpAddr, u16),
    cid: &CommunityId,
) {
    let (post_src, post_sport) = c.translate(src, sport).unwrap_or((src, sport));
    let (post_dst, post_dport) = c.translate(dst, dport).unwrap_or((dst, dport));
    addr(r, post_src);
    addr(r, post_dst);
    r.uint(u64::from(post_sport)).uint(u64::from(post_dport));
    r.str(&community_id(cid, &c.post_nat()));
    r.uint(u64::from(c.id)).uint(u64::from(c.mark));
}

/// One NAT event record.
pub fn event_record(r: &mut RecordWriter<'_, '_>, e: &NatEvent, cid: &CommunityId, observer: &ObserverInfo) {
    let c = &e.conn;
    r.uint(e.kind as u64);
    addr(r, c.orig.src);
    addr(r, c.orig.dst);
    r.uint(u64::from(c.orig.sport))
        .uint(u64::from(c.orig.dport))
        .uint(u64::from(c.orig.proto));
    flow_fields(r, c, (c.orig.src, c.orig.sport), (c.orig.dst, c.orig.dport), cid);
    r.uint(e.time_ms);
    r.str(&community_id(cid, &c.orig));
    for s in observer.values() {
        r.str(s);
    }
}
