//! Enrichment end to end on hand-made records.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::*;
use crate::model::{Counters, EndpointKind, NatEndpoint, Observer, Protocol};

/// A TCP record src:sport -> dst:dport from a node probe at 192.0.2.1.
pub(crate) fn record(src: &str, sport: u16, dst: &str, dport: u16) -> FlowRecord {
    FlowRecord {
        exporter: SocketAddr::from(([192, 0, 2, 1], 4739)),
        observation_domain: 1,
        protocol: Protocol::Ipfix,
        export_time: 1_700_000_000,
        sequence: 0,
        position: 0,
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        sport,
        dport,
        proto: 6,
        icmp_type_code: None,
        forward: Counters {
            octets: 1000,
            packets: 10,
        },
        reverse: Some(Counters {
            octets: 5000,
            packets: 8,
        }),
        tcp_flags: 0x1b,
        reverse_tcp_flags: 0x1b,
        start_ms: 1_700_000_000_000,
        end_ms: 1_700_000_000_500,
        end_reason: Some(3),
        biflow_direction: Some(1),
        post_nat_src: None,
        post_nat_dst: None,
        nat_event: None,
        community_id: None,
        post_nat_community_id: None,
        conntrack_id: None,
        conntrack_mark: None,
        observer: Observer::default(),
    }
}

/// A fixed address book, valid at any time.
struct Book(HashMap<IpAddr, Arc<K8sEndpoint>>);

impl Attributor for Book {
    fn attribute(&self, q: &Query) -> Option<Arc<K8sEndpoint>> {
        self.0.get(&q.ip).cloned()
    }
}

fn pod(ns: &str, name: &str, workload: &str) -> Arc<K8sEndpoint> {
    Arc::new(K8sEndpoint {
        kind: EndpointKind::Pod,
        namespace: ns.into(),
        pod_name: Some(name.into()),
        pod_uid: None,
        workload_kind: Some("Deployment".into()),
        workload_name: Some(workload.into()),
        service_name: None,
        node_name: Some("node-a".into()),
        labels: Arc::from(Vec::new()),
        encoded: Default::default(),
        edge: Default::default(),
    })
}

fn book() -> Book {
    let svc = Arc::new(K8sEndpoint {
        kind: EndpointKind::Service,
        namespace: "shop".into(),
        pod_name: None,
        pod_uid: None,
        workload_kind: None,
        workload_name: None,
        service_name: Some("cart".into()),
        node_name: None,
        labels: Arc::from(Vec::new()),
        encoded: Default::default(),
        edge: Default::default(),
    });
    Book(HashMap::from([
        ("10.0.1.5".parse().unwrap(), pod("shop", "web-1", "web")),
        ("10.0.2.7".parse().unwrap(), pod("shop", "cart-2", "cart")),
        ("10.96.0.10".parse().unwrap(), svc),
    ]))
}

#[test]
fn community_id_is_computed_when_the_exporter_sent_none() {
    let mut e = Enricher::default();
    let f = e
        .enrich(record("128.232.110.120", 34855, "66.35.250.204", 80), &NoMetadata)
        .unwrap();
    assert_eq!(f.community_id.as_str(), "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");
    assert_eq!(e.stats().computed_community_ids, 1);
    assert_eq!(e.stats().misses, 2);
}

#[test]
fn node_probe_record_names_service_and_backend() {
    let mut e = Enricher::default();
    let mut r = record("10.0.1.5", 40000, "10.96.0.10", 80);
    r.post_nat_dst = Some(NatEndpoint {
        ip: Some("10.0.2.7".parse().unwrap()),
        port: Some(8080),
    });
    let k8s = book();
    let f = e.enrich(r, &k8s).unwrap();
    assert_eq!(f.source.unwrap().pod_name.as_deref(), Some("web-1"));
    assert_eq!(f.destination.unwrap().service_name.as_deref(), Some("cart"));
    let backend = f.backend.unwrap();
    assert_eq!(backend.pod_name.as_deref(), Some("cart-2"));
    // The backend as it served the Service: its own pod, workload and node, and the Service's name.
    assert_eq!(backend.service_name.as_deref(), Some("cart"));
    assert_eq!(backend.workload_name.as_deref(), Some("cart"));
    assert_eq!(backend.node_name.as_deref(), Some("node-a"));
    assert_eq!(f.backend_addr, Some(("10.0.2.7".parse().unwrap(), 8080)));
    assert!(!f.duplicate);
    // A second flow through the same pair shares the same endpoint (and its encoded text).
    let mut again = record("10.0.1.5", 40001, "10.96.0.10", 80);
    again.post_nat_dst = f.record.post_nat_dst;
    let g = e.enrich(again, &k8s).unwrap();
    assert!(Arc::ptr_eq(&backend, g.backend.as_ref().unwrap()));
}

#[test]
fn sidecars_on_both_sides_are_one_connection() {
    let mut e = Enricher::default();
    let k8s = book();
    // the node probe's NAT event for the connection (original tuple client -> ClusterIP)
    let mut ev = record("10.0.1.5", 40000, "10.96.0.10", 80);
    ev.nat_event = Some(4);
    ev.post_nat_dst = Some(NatEndpoint {
        ip: Some("10.0.2.7".parse().unwrap()),
        port: Some(8080),
    });
    ev.start_ms -= 5;
    assert!(e.enrich(ev, &k8s).is_none());
    // the client's sidecar saw it before translation
    let mut client = record("10.0.1.5", 40000, "10.96.0.10", 80);
    client.exporter = SocketAddr::from(([10, 0, 1, 5], 50000));
    client.observer.pod_name = Some("web-1".into());
    let c = e.enrich(client, &k8s).unwrap();
    assert_eq!(c.backend.as_ref().unwrap().pod_name.as_deref(), Some("cart-2"));
    assert!(!c.duplicate);
    // the server's sidecar saw it after translation: same connection, second observer
    let mut server = record("10.0.1.5", 40000, "10.0.2.7", 8080);
    server.exporter = SocketAddr::from(([10, 0, 2, 7], 50000));
    server.observer.pod_name = Some("cart-2".into());
    let s = e.enrich(server, &k8s).unwrap();
    assert!(s.duplicate);
    assert_eq!(e.stats().duplicates, 1);
    assert_eq!(e.nat_stats().from_events, 1);
}

#[test]
fn attribution_uses_the_flow_start_time() {
    struct AtTime;
    impl Attributor for AtTime {
        fn attribute(&self, q: &Query) -> Option<Arc<K8sEndpoint>> {
            (q.at_ms == 1_700_000_000_000).then(|| pod("a", "held-then", "w"))
        }
    }
    let mut e = Enricher::default();
    let f = e.enrich(record("10.0.1.5", 1, "10.0.2.7", 2), &AtTime).unwrap();
    assert_eq!(f.source.unwrap().pod_name.as_deref(), Some("held-then"));
}

#[test]
fn connections_a_full_duplicate_table_forgets_are_counted() {
    // One bucket of four connections, and a window longer than the test.
    let mut e = Enricher::new(
        NatConfig::default(),
        DedupConfig {
            window_ms: 60_000,
            max_entries: 4,
        },
    );
    for port in 0..10 {
        e.enrich(record("10.0.0.1", 40_000 + port, "10.0.0.2", 80), &NoMetadata);
    }
    assert_eq!(e.stats().untracked, 6, "ten connections, room for four");
    assert_eq!(e.stats().flows, 10);
}

#[test]
fn served_backends_are_let_go_once_the_index_drops_them() {
    let mut served = super::served::Served::default();
    let svc = Arc::new(K8sEndpoint {
        kind: EndpointKind::Service,
        service_name: Some("cart".into()),
        ..(*pod("shop", "", "")).clone()
    });
    let (kept, dropped) = (pod("shop", "cart-1", "cart"), pod("shop", "cart-2", "cart"));
    let weak = Arc::downgrade(&dropped);
    let a = served.get(kept.clone(), Some(&svc));
    assert_eq!(a.service_name.as_deref(), Some("cart"));
    assert_eq!(a.pod_name.as_deref(), Some("cart-1"));
    drop(served.get(dropped, Some(&svc)));
    served.expire();
    // cart-2 was held by nothing but the cache: freed. cart-1 still served from the same Arc.
    assert!(weak.upgrade().is_none());
    assert!(Arc::ptr_eq(&a, &served.get(kept, Some(&svc))));
}
