//! Conntrack learning on synthetic ctnetlink messages, built with netlink-packet-netfilter's emit path
//! exactly as the kernel lays them out, then decoded back.

use std::collections::VecDeque;
use std::net::IpAddr;

use netlink_packet_core::{
    DefaultNla, NLM_F_CREATE, NLM_F_EXCL, NLM_F_MULTIPART, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_netfilter::conntrack::{
    ConntrackAttribute, ConntrackMessage, IPTuple, ProtoTuple, Protocol, Status, Tuple as CtTuple,
};
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily};

use super::*;
use crate::parse::Fragment;

pub(crate) const CLIENT: &str = "198.18.1.2";
pub(crate) const VIP: &str = "198.19.0.10";
pub(crate) const BACKEND: &str = "198.18.2.2";

pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(crate) fn tuple(src: &str, sport: u16, dst: &str, dport: u16, proto: u8) -> Tuple {
    Tuple {
        src: ip(src),
        dst: ip(dst),
        sport,
        dport,
        proto,
    }
}

/// A Service connection: client:40000 -> ClusterIP:80, DNATed to backend:8080.
pub(crate) fn dnat(sport: u16, id: u32) -> Connection {
    Connection {
        id,
        orig: tuple(CLIENT, sport, VIP, 80, 6),
        reply: tuple(BACKEND, 8080, CLIENT, sport, 6),
        status: IPS_DST_NAT | 0x8,
        mark: 0x4000,
    }
}

/// A masqueraded connection: client -> external:443, the source rewritten to the node's address.
fn snat(sport: u16, id: u32) -> Connection {
    Connection {
        id,
        orig: tuple(CLIENT, sport, "198.18.4.2", 443, 6),
        reply: tuple("198.18.4.2", 443, "198.18.4.1", 61000, 6),
        status: IPS_SRC_NAT,
        mark: 0,
    }
}

fn ct_tuple(t: &Tuple) -> Vec<CtTuple> {
    vec![
        CtTuple::Ip(vec![
            IPTuple::SourceAddress(t.src),
            IPTuple::DestinationAddress(t.dst),
        ]),
        CtTuple::Proto(vec![
            ProtoTuple::Protocol(Protocol::from(t.proto)),
            ProtoTuple::SourcePort(t.sport),
            ProtoTuple::DestinationPort(t.dport),
        ]),
    ]
}

/// One ctnetlink message about `c`, as the kernel sends it for `kind`.
pub(crate) fn message(kind: EventKind, c: &Connection) -> Vec<u8> {
    let attrs = vec![
        ConntrackAttribute::CtaTupleOrig(ct_tuple(&c.orig)),
        ConntrackAttribute::CtaTupleReply(ct_tuple(&c.reply)),
        ConntrackAttribute::CtaStatus(Status::from_bits_retain(c.status)),
        ConntrackAttribute::CtaMark(c.mark),
        ConntrackAttribute::Other(DefaultNla::new(12, c.id.to_be_bytes().to_vec())),
    ];
    let (inner, flags) = match kind {
        EventKind::New => (ConntrackMessage::New(attrs), NLM_F_CREATE | NLM_F_EXCL),
        EventKind::Update => (ConntrackMessage::New(attrs), 0),
        EventKind::Dump => (ConntrackMessage::New(attrs), NLM_F_MULTIPART),
        EventKind::Destroy => (ConntrackMessage::Delete(attrs), 0),
    };
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    let family = if c.orig.src.is_ipv4() {
        NetfilterProtoFamily::IPv4
    } else {
        NetfilterProtoFamily::IPv6
    };
    let mut msg = NetlinkMessage::new(
        header,
        NetlinkPayload::from(NetfilterMessage::new(NetfilterHeader::new(family, 0, 0), inner)),
    );
    msg.finalize();
    let mut buf = vec![0; msg.buffer_len()];
    msg.serialize(&mut buf);
    buf
}

/// A bare netlink message of `ty` with `payload`.
pub(crate) fn control(ty: u16, payload: &[u8]) -> Vec<u8> {
    let len = 16 + payload.len() as u32;
    let mut m = len.to_ne_bytes().to_vec();
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(&[0; 10]);
    m.extend_from_slice(payload);
    m
}

pub(crate) fn done() -> Vec<u8> {
    control(3, &0i32.to_ne_bytes())
}

fn decode_all(buf: &[u8]) -> Vec<Decoded> {
    let mut out = Vec::new();
    decode::decode_datagram(buf, &mut |d| out.push(d));
    out
}

#[test]
fn messages_decode_to_their_connection_and_kind() {
    let c = dnat(40000, 7);
    for kind in [
        EventKind::New,
        EventKind::Update,
        EventKind::Destroy,
        EventKind::Dump,
    ] {
        assert_eq!(decode_all(&message(kind, &c)), [Decoded::Conn(kind, c)]);
    }
    let v6 = Connection {
        id: 9,
        orig: tuple("fd00::2", 5000, "fd00:96::10", 53, 17),
        reply: tuple("fd00::7", 53, "fd00::2", 5000, 17),
        status: IPS_DST_NAT,
        mark: 1,
    };
    assert_eq!(
        decode_all(&message(EventKind::New, &v6)),
        [Decoded::Conn(EventKind::New, v6)]
    );
}

#[test]
fn untranslated_connections_are_skipped_by_status() {
    let mut c = dnat(40000, 7);
    c.reply = c.orig.reversed();
    c.status = 0x8 | 0x4; // confirmed, assured: no NAT bit
    assert_eq!(
        decode_all(&message(EventKind::Update, &c)),
        [Decoded::Untranslated(EventKind::Update)]
    );
}

#[test]
fn a_datagram_holds_several_messages_and_control_messages() {
    let mut buf = message(EventKind::Dump, &dnat(1, 1));
    buf.extend(message(EventKind::Dump, &snat(2, 2)));
    buf.extend(done());
    let got = decode_all(&buf);
    assert_eq!(
        got,
        [
            Decoded::Conn(EventKind::Dump, dnat(1, 1)),
            Decoded::Conn(EventKind::Dump, snat(2, 2)),
            Decoded::Done
        ]
    );
    // EPERM in answer to a dump request, and an acknowledgement.
    assert_eq!(
        decode_all(&control(2, &(-1i32).to_ne_bytes())),
        [Decoded::Error(1)]
    );
    assert_eq!(decode_all(&control(2, &0i32.to_ne_bytes())), [Decoded::Other]);
}

#[test]
fn cut_and_corrupt_messages_are_malformed() {
    let full = message(EventKind::New, &dnat(40000, 7));
    for cut in [1, 15, 16, 20, full.len() - 1] {
        let got = decode_all(&full[..cut]);
        assert_eq!(got.last(), Some(&Decoded::Malformed), "cut at {cut}: {got:?}");
    }
    // An attribute length running past its message.
    let mut bad = full.clone();
    bad[20] = 0xff;
    bad[21] = 0x7f;
    assert_eq!(decode_all(&bad), [Decoded::Malformed]);
}

proptest::proptest! {
    /// Whatever the bytes, decoding returns (outside data never panics the probe).
    #[test]
    fn decoding_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
        let _ = decode_all(&bytes);
    }

    /// Flipping any byte of a real message never panics either.
    #[test]
    fn flipped_messages_never_panic(at in 0usize..200, value in proptest::num::u8::ANY) {
        let mut m = message(EventKind::New, &dnat(40000, 7));
        let i = at % m.len();
        m[i] = value;
        let _ = decode_all(&m);
    }
}

fn limits() -> TableLimits {
    TableLimits {
        max_entries: 8,
        grace_ms: 10_000,
    }
}

fn apply(t: &mut ConntrackTable, kind: EventKind, c: &Connection, now: u64) -> Vec<(NatEventKind, u32)> {
    let mut out = Vec::new();
    t.apply(kind, c, now, &mut |e| out.push((e.kind, e.conn.id)));
    out
}

#[test]
fn a_connection_is_created_once_and_deleted_once() {
    let mut t = ConntrackTable::new(limits());
    let c = dnat(40000, 7);
    assert_eq!(apply(&mut t, EventKind::New, &c, 0), [(NatEventKind::Create, 7)]);
    assert!(apply(&mut t, EventKind::Update, &c, 1).is_empty());
    assert!(apply(&mut t, EventKind::Dump, &c, 2).is_empty());
    assert_eq!(t.by_original(&c.orig), Some(&c));
    assert_eq!(t.by_reply(&c.reply), Some(&c));
    assert_eq!(
        apply(&mut t, EventKind::Destroy, &c, 3),
        [(NatEventKind::Delete, 7)]
    );
    assert!(apply(&mut t, EventKind::Destroy, &c, 4).is_empty());
    // Kept for the grace period, for flows that end after their connection.
    assert!(t.is_destroyed(&c.orig));
    t.expire(3 + 9_999);
    assert_eq!(t.len(), 1);
    t.expire(3 + 10_000);
    assert!(t.is_empty());
    assert_eq!(t.by_reply(&c.reply), None);
}

#[test]
fn untranslated_connections_take_no_room() {
    let mut t = ConntrackTable::new(limits());
    let mut c = dnat(40000, 7);
    c.reply = c.orig.reversed();
    assert!(apply(&mut t, EventKind::New, &c, 0).is_empty());
    assert!(t.is_empty());
}

#[test]
fn a_reused_tuple_ends_the_old_connection() {
    let mut t = ConntrackTable::new(limits());
    apply(&mut t, EventKind::New, &dnat(40000, 7), 0);
    // Same tuple, another backend, another id: the destroy of the first was never seen.
    let mut again = dnat(40000, 8);
    again.reply.src = ip("198.18.3.2");
    assert_eq!(
        apply(&mut t, EventKind::New, &again, 5),
        [(NatEventKind::Delete, 7), (NatEventKind::Create, 8)]
    );
    assert_eq!(t.by_reply(&dnat(40000, 7).reply), None);
    assert_eq!(t.by_reply(&again.reply), Some(&again));
}

#[test]
fn a_full_table_makes_room_from_destroyed_connections_first() {
    let mut t = ConntrackTable::new(TableLimits {
        max_entries: 2,
        grace_ms: 60_000,
    });
    apply(&mut t, EventKind::New, &dnat(1, 1), 0);
    apply(&mut t, EventKind::New, &dnat(2, 2), 0);
    apply(&mut t, EventKind::Destroy, &dnat(1, 1), 1);
    assert_eq!(
        apply(&mut t, EventKind::New, &dnat(3, 3), 2),
        [(NatEventKind::Create, 3)]
    );
    assert_eq!(t.by_original(&dnat(1, 1).orig), None);
    // Now both are live: a third is refused and counted.
    assert!(apply(&mut t, EventKind::New, &dnat(4, 4), 3).is_empty());
    assert_eq!(t.stats().full, 1);
    assert_eq!(t.len(), 2);
}

#[test]
fn a_resync_deletes_connections_the_dump_no_longer_lists() {
    let mut t = ConntrackTable::new(limits());
    apply(&mut t, EventKind::New, &dnat(1, 1), 0);
    apply(&mut t, EventKind::New, &dnat(2, 2), 0);
    t.begin_resync();
    apply(&mut t, EventKind::Dump, &dnat(2, 2), 5);
    assert_eq!(
        apply(&mut t, EventKind::Dump, &snat(3, 3), 5),
        [(NatEventKind::Create, 3)]
    );
    let mut out = Vec::new();
    t.end_resync(true, 5, &mut |e| out.push((e.kind, e.conn.id)));
    assert_eq!(out, [(NatEventKind::Delete, 1)]);
    assert!(t.is_destroyed(&dnat(1, 1).orig));
    assert!(!t.is_destroyed(&dnat(2, 2).orig));
    // An event of 1 queued before the dump and read after it does not bring it back.
    assert!(apply(&mut t, EventKind::Update, &dnat(1, 1), 6).is_empty());
    assert!(t.is_destroyed(&dnat(1, 1).orig));
    // An incomplete dump proves nothing.
    t.begin_resync();
    t.end_resync(false, 6, &mut |_| panic!("no delete after an incomplete dump"));
}

fn packet(src: &str, sport: u16, dst: &str, dport: u16) -> PacketInfo {
    PacketInfo {
        src: ip(src),
        dst: ip(dst),
        proto: 6,
        sport,
        dport,
        ip_len: 60,
        tcp_flags: 0x12,
        fragment: Fragment::Whole,
    }
}

#[test]
fn replies_fold_into_the_original_biflow() {
    let mut t = ConntrackTable::new(limits());
    apply(&mut t, EventKind::New, &dnat(40000, 7), 0);
    apply(&mut t, EventKind::New, &snat(40001, 8), 0);
    // DNAT: the backend's reply becomes ClusterIP -> client.
    let f = t.fold(&packet(BACKEND, 8080, CLIENT, 40000)).unwrap();
    assert_eq!((f.src, f.sport, f.dst, f.dport), (ip(VIP), 80, ip(CLIENT), 40000));
    assert_eq!((f.ip_len, f.tcp_flags), (60, 0x12));
    // SNAT: the server's reply to the masquerade address becomes server -> client.
    let f = t.fold(&packet("198.18.4.2", 443, "198.18.4.1", 61000)).unwrap();
    assert_eq!(
        (f.src, f.sport, f.dst, f.dport),
        (ip("198.18.4.2"), 443, ip(CLIENT), 40001)
    );
    // Requests (original tuple) and other traffic count as captured.
    assert_eq!(t.fold(&packet(CLIENT, 40000, VIP, 80)), None);
    assert_eq!(t.fold(&packet(BACKEND, 8080, CLIENT, 40002)), None);
}

/// A source with canned datagrams: events, an ENOBUFS after them when `overrun`, and a dump.
#[derive(Default)]
pub(crate) struct Fake {
    pub(crate) events: VecDeque<Vec<u8>>,
    pub(crate) overrun: bool,
    pub(crate) dump: Vec<Vec<u8>>,
    pub(crate) dumps: usize,
}

impl Source for Fake {
    fn poll(&mut self, datagram: &mut dyn FnMut(&[u8])) -> Poll {
        while let Some(d) = self.events.pop_front() {
            datagram(&d);
        }
        if std::mem::take(&mut self.overrun) {
            Poll::Overrun
        } else {
            Poll::Drained
        }
    }

    fn dump(&mut self, datagram: &mut dyn FnMut(&[u8]) -> io::Result<bool>) -> io::Result<()> {
        self.dumps += 1;
        for d in self.dump.iter().chain([&done()]) {
            if datagram(d)? {
                return Ok(());
            }
        }
        Err(io::Error::other("dump without NLMSG_DONE"))
    }
}

#[test]
fn the_startup_dump_covers_older_connections() {
    let fake = Fake {
        dump: vec![message(EventKind::Dump, &dnat(1, 1))],
        ..Fake::default()
    };
    let mut ct = Conntrack::start(Box::new(fake), limits(), 100).unwrap();
    let mut events = Vec::new();
    ct.take_events(&mut events);
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].kind, events[0].time_ms), (NatEventKind::Create, 100));
    assert_eq!((ct.stats().dumped, ct.stats().entries), (1, 1));
    assert!(ct.fold(&packet(BACKEND, 8080, CLIENT, 1), 100).is_some());
}

#[test]
fn a_failed_startup_dump_is_reported_by_its_errno() {
    struct Denied;
    impl Source for Denied {
        fn poll(&mut self, _: &mut dyn FnMut(&[u8])) -> Poll {
            Poll::Drained
        }
        fn dump(&mut self, datagram: &mut dyn FnMut(&[u8]) -> io::Result<bool>) -> io::Result<()> {
            datagram(&control(2, &(-1i32).to_ne_bytes())).map(|_| ())
        }
    }
    match Conntrack::start(Box::new(Denied), limits(), 0) {
        Err(OpenError::Permission { .. }) => {}
        Err(e) => panic!("EPERM classified as {e:?}"),
        Ok(_) => panic!("a denied dump started conntrack"),
    }
}

#[test]
fn lost_events_are_counted_and_resynchronised_by_a_dump() {
    let fake = Fake::default();
    let mut ct = Conntrack::start(Box::new(fake), limits(), 0).unwrap();
    // Replace the source's script: one event arrives, then the kernel reports ENOBUFS; the dump shows
    // a connection whose NEW event was lost.
    ct.source = Box::new(Fake {
        events: VecDeque::from([
            message(EventKind::New, &dnat(1, 1)),
            message(EventKind::Update, &{
                let mut u = dnat(9, 9);
                u.reply = u.orig.reversed();
                u.status = 0x8;
                u
            }),
        ]),
        overrun: true,
        dump: vec![message(EventKind::Dump, &dnat(2, 2))],
        dumps: 0,
    });
    ct.sync(50);
    let s = ct.stats();
    assert_eq!((s.overruns, s.resyncs, s.dump_errors), (1, 1, 0));
    assert_eq!((s.events[0], s.events[1], s.ignored), (1, 1, 1));
    // 1 was created by its event, then missing from the dump: deleted; 2 was learned from the dump.
    let mut events = Vec::new();
    ct.take_events(&mut events);
    let got: Vec<_> = events.iter().map(|e| (e.kind, e.conn.id)).collect();
    assert_eq!(
        got,
        [
            (NatEventKind::Create, 1),
            (NatEventKind::Create, 2),
            (NatEventKind::Delete, 1)
        ]
    );
    assert!(ct.fold(&packet(BACKEND, 8080, CLIENT, 2), 50).is_some());
    assert_eq!(s.entries, 2);
}

#[test]
fn later_fragments_follow_their_folded_first_fragment() {
    let fake = Fake {
        dump: vec![message(EventKind::Dump, &{
            let mut u = dnat(5353, 1);
            u.orig.proto = 17;
            u.reply.proto = 17;
            u.orig.dport = 53;
            u.reply.sport = 53;
            u
        })],
        ..Fake::default()
    };
    let mut ct = Conntrack::start(Box::new(fake), limits(), 0).unwrap();
    let first = PacketInfo {
        proto: 17,
        fragment: Fragment::First { id: 77 },
        ..packet(BACKEND, 53, CLIENT, 5353)
    };
    let f = ct.fold(&first, 1).unwrap();
    assert_eq!((f.src, f.sport), (ip(VIP), 53));
    let later = PacketInfo {
        sport: 0,
        dport: 0,
        fragment: Fragment::Later { id: 77, offset: 1480 },
        ..first
    };
    let l = ct.fold(&later, 2).unwrap();
    assert_eq!((l.src, l.dst, l.sport), (ip(VIP), ip(CLIENT), 0));
    // Another datagram's fragment is left alone.
    let other = PacketInfo {
        fragment: Fragment::Later { id: 78, offset: 1480 },
        ..later
    };
    assert_eq!(ct.fold(&other, 3), None);
}

#[test]
fn connections_older_than_the_probe_are_swept_when_they_end() {
    // The kernel sends no event for a connection that began before anyone listened: only dumps know it.
    let fake = Fake {
        dump: vec![message(EventKind::Dump, &dnat(1, 1))],
        ..Fake::default()
    };
    let mut ct = Conntrack::start(Box::new(fake), limits(), 0)
        .unwrap()
        .with_sweep_interval(1_000);
    ct.sync(999);
    assert_eq!(ct.stats().sweeps, 0);
    // It ended: the next dump no longer lists it. Meanwhile another connection was heard of.
    ct.source = Box::new(Fake {
        events: VecDeque::from([message(EventKind::New, &dnat(2, 2))]),
        ..Fake::default()
    });
    ct.sync(1_000);
    assert_eq!(ct.stats().sweeps, 1);
    let mut events = Vec::new();
    ct.take_events(&mut events);
    let mut got: Vec<_> = events.iter().map(|e| (e.kind, e.conn.id)).collect();
    // The sweep's dump is complete and lists neither: 2 was heard of, yet absent, so it ended too.
    got[2..].sort_by_key(|&(_, id)| id);
    assert_eq!(
        got,
        [
            (NatEventKind::Create, 1),
            (NatEventKind::Create, 2),
            (NatEventKind::Delete, 1),
            (NatEventKind::Delete, 2)
        ]
    );
    // Nothing silent is left: no more sweeps.
    ct.sync(5_000);
    assert_eq!(ct.stats().sweeps, 1);
}

#[test]
fn open_errors_say_what_is_missing() {
    let c = |errno: i32| OpenError::classify("x")(io::Error::from_raw_os_error(errno));
    assert!(matches!(c(1), OpenError::Permission { .. })); // EPERM
    assert!(matches!(c(93), OpenError::Unsupported { .. })); // EPROTONOSUPPORT
    assert!(matches!(c(22), OpenError::Unsupported { .. })); // EINVAL: no ctnetlink subsystem
    assert!(matches!(c(12), OpenError::Io { .. })); // ENOMEM
    assert!(c(1).to_string().contains("CAP_NET_ADMIN"));
    assert!(c(93).to_string().contains("nf_conntrack_netlink"));
}
