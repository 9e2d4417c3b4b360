//! Netlink datagrams from ctnetlink -> [`Connection`]s (pure; outside data: never panics).
//!
//! A datagram holds one or more netlink messages. Each conntrack message is first scanned in place for
//! its status attribute: a connection the kernel did not translate (neither `IPS_SRC_NAT` nor
//! `IPS_DST_NAT`) is reported as [`Decoded::Untranslated`] without allocating, which is most of them on
//! a busy node. Translated ones are parsed with `netlink-packet-netfilter`.

use netlink_packet_core::{
    NLM_F_CREATE, NLM_F_MULTIPART, NetlinkBuffer, NetlinkMessage, NetlinkPayload, Nla, NlasIterator,
};
use netlink_packet_netfilter::conntrack::{ConntrackAttribute, ConntrackMessage, IPTuple, ProtoTuple};
use netlink_packet_netfilter::{NetfilterMessage, NetfilterMessageInner};

use super::{Connection, IPS_DST_NAT, IPS_SRC_NAT, Tuple};

/// `NFNL_SUBSYS_CTNETLINK`: the conntrack subsystem's messages.
const SUBSYS_CTNETLINK: u16 = 1;
/// `IPCTNL_MSG_CT_NEW`: a new or updated connection, and every entry of a dump.
const MSG_CT_NEW: u16 = 0;
/// `IPCTNL_MSG_CT_DELETE`: a destroyed connection.
const MSG_CT_DELETE: u16 = 2;
/// `NLMSG_ERROR`: an error (or acknowledgement) in answer to a request.
const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: the end of a dump.
const NLMSG_DONE: u16 = 3;
/// Length of `nfgenmsg`, which precedes a netfilter message's attributes.
const NFGENMSG_LEN: usize = 4;
/// `CTA_STATUS`, `CTA_ID`: top-level attributes.
const CTA_STATUS: u16 = 3;
const CTA_ID: u16 = 12;

/// What a conntrack message reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A new connection (`NFNLGRP_CONNTRACK_NEW`).
    New = 0,
    /// A connection changed state, mark or status (`NFNLGRP_CONNTRACK_UPDATE`).
    Update = 1,
    /// A connection ended (`NFNLGRP_CONNTRACK_DESTROY`).
    Destroy = 2,
    /// A connection listed by a dump.
    Dump = 3,
}

impl EventKind {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            EventKind::New => "new",
            EventKind::Update => "update",
            EventKind::Destroy => "destroy",
            EventKind::Dump => "dump",
        }
    }
}

/// One netlink message, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A connection whose status says it was translated (the table checks the tuples too).
    Conn(EventKind, Connection),
    /// A connection the kernel did not translate, skipped without parsing.
    Untranslated(EventKind),
    /// The end of a dump.
    Done,
    /// An error answering a request (a positive errno: EPERM without CAP_NET_ADMIN, ...).
    Error(i32),
    /// A message that could not be decoded (or a datagram cut short).
    Malformed,
    /// Anything else: acknowledgements, no-ops, other subsystems.
    Other,
}

/// Decodes every message of one datagram, in order.
pub fn decode_datagram(mut buf: &[u8], out: &mut impl FnMut(Decoded)) {
    while !buf.is_empty() {
        let Ok(nl) = NetlinkBuffer::new_checked(buf) else {
            out(Decoded::Malformed);
            return;
        };
        let len = nl.length() as usize;
        out(decode_message(&buf[..len]));
        // Messages are aligned to 4 octets.
        let next = (len + 3) & !3;
        buf = buf.get(next..).unwrap_or_default();
    }
}

/// Decodes one netlink message (header and payload, `msg.len()` as its length field says).
pub fn decode_message(msg: &[u8]) -> Decoded {
    let Ok(nl) = NetlinkBuffer::new_checked(msg) else {
        return Decoded::Malformed;
    };
    let (ty, flags, payload) = (nl.message_type(), nl.flags(), nl.payload());
    match ty {
        NLMSG_DONE => return Decoded::Done,
        NLMSG_ERROR => {
            return match payload.get(..4) {
                Some(code) => {
                    let code = i32::from_ne_bytes([code[0], code[1], code[2], code[3]]);
                    if code == 0 {
                        Decoded::Other // an acknowledgement
                    } else {
                        Decoded::Error(code.saturating_neg())
                    }
                }
                None => Decoded::Malformed,
            };
        }
        _ => {}
    }
    if ty >> 8 != SUBSYS_CTNETLINK {
        return Decoded::Other;
    }
    let kind = match ty & 0xff {
        MSG_CT_NEW if flags & NLM_F_CREATE != 0 => EventKind::New,
        MSG_CT_NEW if flags & NLM_F_MULTIPART != 0 => EventKind::Dump,
        MSG_CT_NEW => EventKind::Update,
        MSG_CT_DELETE => EventKind::Destroy,
        _ => return Decoded::Other,
    };
    let Some(attrs) = payload.get(NFGENMSG_LEN..) else {
        return Decoded::Malformed;
    };
    match scan_status(attrs) {
        Err(()) => return Decoded::Malformed,
        Ok(Some(status)) if status & (IPS_SRC_NAT | IPS_DST_NAT) == 0 => {
            return Decoded::Untranslated(kind);
        }
        // Translated, or no status at all: parse, and let the tuples tell.
        Ok(_) => {}
    }
    match parse_connection(msg) {
        Some(conn) => Decoded::Conn(kind, conn),
        None => Decoded::Malformed,
    }
}

/// The value of `CTA_STATUS` among top-level attributes, read in place.
fn scan_status(attrs: &[u8]) -> Result<Option<u32>, ()> {
    for nla in NlasIterator::new(attrs) {
        let nla = nla.map_err(|_| ())?;
        if nla.kind() == CTA_STATUS {
            return Ok(Some(be_u32(nla.value()).ok_or(())?));
        }
    }
    Ok(None)
}

fn be_u32(v: &[u8]) -> Option<u32> {
    let b: [u8; 4] = v.get(..4)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

/// The connection in a full conntrack message; `None` when a tuple is incomplete or mixes families.
fn parse_connection(msg: &[u8]) -> Option<Connection> {
    let parsed = NetlinkMessage::<NetfilterMessage>::deserialize(msg).ok()?;
    let NetlinkPayload::InnerMessage(nf) = parsed.payload else {
        return None;
    };
    let attrs = match nf.inner {
        NetfilterMessageInner::Conntrack(ConntrackMessage::New(a) | ConntrackMessage::Delete(a)) => a,
        _ => return None,
    };
    let (mut orig, mut reply, mut status, mut mark, mut id) = (None, None, 0, 0, 0);
    for a in &attrs {
        match a {
            ConntrackAttribute::CtaTupleOrig(t) => orig = tuple(t),
            ConntrackAttribute::CtaTupleReply(t) => reply = tuple(t),
            ConntrackAttribute::CtaStatus(s) => status = s.bits(),
            ConntrackAttribute::CtaMark(m) => mark = *m,
            // netlink-packet-netfilter 0.4 leaves CTA_ID (a big-endian u32) unparsed.
            ConntrackAttribute::Other(nla) if nla.kind() == CTA_ID => {
                let mut v = [0u8; 4];
                if nla.value_len() != 4 {
                    return None;
                }
                nla.emit_value(&mut v);
                id = u32::from_be_bytes(v);
            }
            _ => {}
        }
    }
    Some(Connection {
        id,
        orig: orig?,
        reply: reply?,
        status,
        mark,
    })
}

/// A tuple from `CTA_TUPLE_ORIG` / `CTA_TUPLE_REPLY`. Ports are 0 for protocols without them.
fn tuple(t: &[netlink_packet_netfilter::conntrack::Tuple]) -> Option<Tuple> {
    use netlink_packet_netfilter::conntrack::Tuple as T;
    let (mut src, mut dst, mut proto, mut sport, mut dport) = (None, None, None, 0, 0);
    for part in t {
        match part {
            T::Ip(ips) => {
                for ip in ips {
                    match ip {
                        IPTuple::SourceAddress(a) => src = Some(*a),
                        IPTuple::DestinationAddress(a) => dst = Some(*a),
                        _ => {}
                    }
                }
            }
            T::Proto(ps) => {
                for p in ps {
                    match p {
                        ProtoTuple::Protocol(n) => proto = Some(u8::from(*n)),
                        ProtoTuple::SourcePort(n) => sport = *n,
                        ProtoTuple::DestinationPort(n) => dport = *n,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let (src, dst) = (src?, dst?);
    if src.is_ipv4() != dst.is_ipv4() {
        return None;
    }
    Some(Tuple {
        src,
        dst,
        sport,
        dport,
        proto: proto?,
    })
}
