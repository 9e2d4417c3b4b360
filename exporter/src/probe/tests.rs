//! The engine with conntrack, from packets to decoded IPFIX: one Service connection is one biflow with
//! its translation, untranslated flows keep the plain template, and NAT events are exported.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use proto_ipfix::ie::{DEFAULT_PODFLOW_PEN as PEN, REVERSE_PEN, podflow};
use proto_ipfix::{DataRecord, Decoder, Visitor};

use super::*;
use crate::conntrack::tests::{BACKEND, CLIENT, Fake, VIP, dnat, ip, message};
use crate::conntrack::{EventKind, TableLimits};
use crate::export::ExportConfig;
use crate::flow::TableConfig;
use crate::parse::Fragment;

/// A record's fields as (id, pen, value).
type Row = Vec<(u16, u32, Vec<u8>)>;

/// Data records as (template id, fields).
#[derive(Default)]
struct Rows(Vec<(u16, Row)>);

impl Visitor for Rows {
    fn record(&mut self, r: &DataRecord<'_>) {
        let fields = r
            .fields()
            .map(|f| (f.spec.id, f.spec.pen, f.value.to_vec()))
            .collect();
        self.0.push((r.template().id(), fields));
    }
}

fn get(row: &[(u16, u32, Vec<u8>)], id: u16, pen: u32) -> Option<&[u8]> {
    row.iter()
        .find(|(i, p, _)| *i == id && *p == pen)
        .map(|(_, _, v)| v.as_slice())
}

fn uint(row: &[(u16, u32, Vec<u8>)], id: u16, pen: u32) -> u64 {
    get(row, id, pen)
        .unwrap_or_else(|| panic!("no field {id}/{pen}"))
        .iter()
        .fold(0, |a, b| a << 8 | u64::from(*b))
}

fn pkt(src: &str, sport: u16, dst: &str, dport: u16, flags: u8) -> PacketInfo {
    PacketInfo {
        src: ip(src),
        dst: ip(dst),
        proto: 6,
        sport,
        dport,
        ip_len: 60,
        tcp_flags: flags,
        fragment: Fragment::Whole,
    }
}

/// Runs `packets` through an engine (with conntrack when `ct` is set) and decodes what it sent.
fn run(ct: Option<Option<Conntrack>>, packets: &[PacketInfo]) -> (Rows, Metrics) {
    run_with(false, ct, packets)
}

fn run_with(uniflow: bool, ct: Option<Option<Conntrack>>, packets: &[PacketInfo]) -> (Rows, Metrics) {
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let addr = rx.local_addr().unwrap().to_string();
    let nat = matches!(ct, Some(Some(_)));
    let writer = IpfixWriter::new(ExportConfig {
        nat,
        uniflow,
        ..ExportConfig::default()
    })
    .unwrap();
    let metrics = Metrics::default();
    let mut engine = Engine::new(
        FlowTable::new(TableConfig::default()),
        writer,
        Collectors::connect(&[addr]).unwrap(),
        metrics.clone(),
    );
    if let Some(ct) = ct {
        engine = engine.with_conntrack(ct);
    }
    let t0 = 1_700_000_000_000;
    engine.sync_conntrack(t0);
    for (i, p) in packets.iter().enumerate() {
        engine.packet(p, t0 + i as u64);
    }
    let totals = engine.finish(EndReason::ForcedEnd);
    let mut decoder = Decoder::default();
    let mut rows = Rows::default();
    let mut buf = vec![0; 65_535];
    let from = SocketAddr::from(([127, 0, 0, 1], 9));
    for _ in 0..totals.messages {
        let n = rx.recv(&mut buf).unwrap();
        let s = decoder.decode(from, &buf[..n], 0, &mut rows);
        assert_eq!((s.first_error, s.missing_template_sets), (None, 0));
    }
    (rows, metrics)
}

/// A Service connection's request and reply packets as a node probe captures them with
/// `--direction in`: client -> ClusterIP before DNAT, backend -> client before the reverse translation.
fn service_connection() -> Vec<PacketInfo> {
    vec![
        pkt(CLIENT, 40000, VIP, 80, 0x02),
        pkt(BACKEND, 8080, CLIENT, 40000, 0x12),
        pkt(CLIENT, 40000, VIP, 80, 0x10),
        pkt(BACKEND, 8080, CLIENT, 40000, 0x18),
        // A pod-to-pod flow nothing translated.
        pkt(CLIENT, 40001, BACKEND, 8080, 0x02),
    ]
}

fn conntrack() -> Conntrack {
    let fake = Fake {
        dump: vec![message(EventKind::Dump, &dnat(40000, 7))],
        ..Fake::default()
    };
    Conntrack::start(Box::new(fake), TableLimits::default(), 1_699_999_999_000).unwrap()
}

#[test]
fn a_service_connection_is_one_biflow_with_its_translation() {
    let (rows, metrics) = run(Some(Some(conntrack())), &service_connection());
    let flows: Vec<_> = rows.0.iter().filter(|(_, r)| get(r, 230, 0).is_none()).collect();
    assert_eq!(flows.len(), 2, "the backend's replies made no flow of their own");
    let (template, svc) = flows
        .iter()
        .find(|(_, r)| get(r, 11, 0) == Some(&[0, 80]))
        .unwrap();
    assert_eq!(*template, 260);
    assert_eq!(get(svc, 8, 0).unwrap(), [198, 18, 1, 2]);
    assert_eq!(get(svc, 12, 0).unwrap(), [198, 19, 0, 10]);
    assert_eq!((uint(svc, 2, 0), uint(svc, 2, REVERSE_PEN)), (2, 2));
    assert_eq!(get(svc, 225, 0).unwrap(), [198, 18, 1, 2]);
    assert_eq!(get(svc, 226, 0).unwrap(), [198, 18, 2, 2]);
    assert_eq!((uint(svc, 227, 0), uint(svc, 228, 0)), (40000, 8080));
    assert_eq!(
        (
            uint(svc, podflow::CONNTRACK_ID, PEN),
            uint(svc, podflow::CONNTRACK_MARK, PEN)
        ),
        (7, 0x4000)
    );
    let post = proto_ipfix::community_id::CommunityId::default()
        .hash(ip(CLIENT), ip(BACKEND), 6, 40000, 8080)
        .unwrap()
        .base64();
    assert_eq!(
        get(svc, podflow::POST_NAT_COMMUNITY_ID, PEN).unwrap(),
        post.as_bytes()
    );
    // The untranslated flow keeps the plain template: no zero-filled NAT fields.
    let (template, plain) = flows
        .iter()
        .find(|(_, r)| get(r, 11, 0) == Some(&[0x1f, 0x90]))
        .unwrap();
    assert_eq!((*template, get(plain, 225, 0)), (256, None));
    // The connection learned from the startup dump is one NAT create event with both tuples.
    let events: Vec<_> = rows.0.iter().filter(|(_, r)| get(r, 230, 0).is_some()).collect();
    assert_eq!(events.len(), 1);
    let (template, ev) = events[0];
    assert_eq!((*template, uint(ev, 230, 0)), (264, 4));
    assert_eq!(
        (uint(ev, 7, 0), uint(ev, 11, 0), uint(ev, 228, 0)),
        (40000, 80, 8080)
    );
    assert_eq!(get(ev, 226, 0).unwrap(), [198, 18, 2, 2]);
    assert_eq!(uint(ev, 323, 0), 1_699_999_999_000);
    let c = metrics.lock().conntrack.clone().unwrap();
    assert!(c.up);
    assert_eq!((c.folded_packets, c.flows), (2, [1, 1, 0]));
    assert_eq!(c.stats.nat_events, [1, 0]);
}

#[test]
fn without_conntrack_the_replies_are_their_own_flow_and_flows_count_as_unresolved() {
    let (rows, metrics) = run(Some(None), &service_connection());
    assert_eq!(rows.0.len(), 3);
    assert!(rows.0.iter().all(|(t, r)| *t == 256 && get(r, 225, 0).is_none()));
    let c = metrics.lock().conntrack.clone().unwrap();
    assert!(!c.up);
    assert_eq!(c.flows, [0, 0, 3]);
    // A probe without --conntrack reports no conntrack metrics at all.
    let (_, metrics) = run(None, &service_connection());
    assert!(metrics.lock().conntrack.is_none());
}

#[test]
fn a_connection_seen_from_its_middle_is_oriented_by_conntrack() {
    // No SYN: the backend's ACK happens to reach the engine first, so the flow table guesses the
    // ClusterIP side opened the flow; conntrack knows the client did.
    let packets = [
        pkt(BACKEND, 8080, CLIENT, 40000, 0x10),
        pkt(CLIENT, 40000, VIP, 80, 0x18),
    ];
    let (rows, _) = run(Some(Some(conntrack())), &packets);
    let (_, svc) = rows.0.iter().find(|(t, _)| *t == 260).unwrap();
    assert_eq!(get(svc, 8, 0).unwrap(), [198, 18, 1, 2]);
    assert_eq!((uint(svc, 7, 0), uint(svc, 11, 0)), (40000, 80));
    assert_eq!((uint(svc, 227, 0), uint(svc, 228, 0)), (40000, 8080));
    // Without conntrack the guess stands.
    let (rows, _) = run(None, &packets);
    assert_eq!(get(&rows.0[0].1, 8, 0).unwrap(), [198, 18, 2, 2]);
}

#[test]
fn uniflow_records_translate_each_endpoint() {
    let (rows, _) = run_with(true, Some(Some(conntrack())), &service_connection()[..4]);
    let nat: Vec<_> = rows.0.iter().filter(|(t, _)| *t == 262).collect();
    assert_eq!(nat.len(), 2, "one record per direction");
    let reply = nat.iter().find(|(_, r)| uint(r, 7, 0) == 80).unwrap();
    // ClusterIP:80 -> client as observed; the backend -> client after translation.
    assert_eq!(get(&reply.1, 225, 0).unwrap(), [198, 18, 2, 2]);
    assert_eq!(get(&reply.1, 226, 0).unwrap(), [198, 18, 1, 2]);
    assert_eq!((uint(&reply.1, 227, 0), uint(&reply.1, 228, 0)), (8080, 40000));
}
