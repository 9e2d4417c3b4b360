//! What flows count as edges: sides, Services, unowned addresses, duplicates, and the batch's sums.

use std::sync::Arc;

use super::*;
use crate::enrich::tests::record;
use crate::model::{Counters, EndpointKind, InlineStr};

fn pod(ns: &str, name: &str, workload: Option<(&str, &str)>) -> Arc<K8sEndpoint> {
    Arc::new(K8sEndpoint {
        encoded: Default::default(),
        edge: Default::default(),
        kind: EndpointKind::Pod,
        namespace: ns.into(),
        pod_name: Some(name.into()),
        pod_uid: None,
        workload_kind: workload.map(|w| w.0.into()),
        workload_name: workload.map(|w| w.1.into()),
        service_name: None,
        node_name: Some("node-a".into()),
        labels: Arc::from(Vec::new()),
    })
}

fn service(ns: &str, name: &str) -> Arc<K8sEndpoint> {
    Arc::new(K8sEndpoint {
        encoded: Default::default(),
        edge: Default::default(),
        kind: EndpointKind::Service,
        namespace: ns.into(),
        pod_name: None,
        pod_uid: None,
        workload_kind: None,
        workload_name: None,
        service_name: Some(name.into()),
        node_name: None,
        labels: Arc::from(Vec::new()),
    })
}

fn flow(src: &str, dst: &str) -> EnrichedFlow {
    EnrichedFlow {
        record: record(src, 40000, dst, 80),
        community_id: InlineStr::EMPTY,
        source: None,
        destination: None,
        backend: None,
        backend_addr: None,
        duplicate: false,
    }
}

fn ep(ns: &str, workload: &str, kind: &str) -> Endpoint {
    Endpoint {
        namespace: ns.into(),
        workload: workload.into(),
        kind: kind.into(),
    }
}

#[test]
fn a_service_flow_counts_under_the_backend_workload_with_the_service() {
    let mut f = flow("10.244.1.5", "10.96.0.10");
    f.source = Some(pod("shop", "web-1", Some(("Deployment", "web"))));
    f.destination = Some(service("shop", "cart"));
    f.backend = Some(pod("shop", "cart-2", Some(("StatefulSet", "cart"))));
    f.backend_addr = Some(("10.244.2.7".parse().unwrap(), 8080));
    let (key, counts) = edge_of(&f, &Peers::default()).unwrap();
    assert_eq!(key.client, ep("shop", "web", "Deployment"));
    assert_eq!(key.server, ep("shop", "cart", "StatefulSet"));
    assert_eq!(&*key.dst_service, "cart");
    assert_eq!(&*key.protocol, "tcp");
    assert_eq!(
        counts,
        EdgeCounts {
            connections: 1,
            request_bytes: 1000,
            response_bytes: 5000,
            request_packets: 10,
            response_packets: 8,
        }
    );
    // Without a known backend the Service itself is the server.
    f.backend = None;
    let (key, _) = edge_of(&f, &Peers::default()).unwrap();
    assert_eq!(key.server, ep("shop", "cart", "Service"));
    assert_eq!(&*key.dst_service, "cart");
}

#[test]
fn unowned_addresses_are_external_named_or_unknown() {
    let peers = Peers {
        external: vec!["corp-db=10.50.0.0/16".parse().unwrap()],
        ..Peers::default()
    };
    let mut f = flow("10.244.9.9", "8.8.8.8");
    let (key, _) = edge_of(&f, &peers).unwrap();
    assert_eq!(key.client, ep("unknown", "unknown", "unknown"));
    assert_eq!(key.server, ep("external", "external", "external"));
    assert_eq!(&*key.dst_service, "");
    f.record.dst = "10.50.3.4".parse().unwrap();
    let (key, _) = edge_of(&f, &peers).unwrap();
    assert_eq!(key.server, ep("external", "corp-db", "external"));
    // A bare pod is its own workload.
    f.source = Some(pod("dev", "debug", None));
    let (key, _) = edge_of(&f, &peers).unwrap();
    assert_eq!(key.client, ep("dev", "debug", "Pod"));
}

#[test]
fn the_initiator_is_the_client_and_continuations_are_no_new_connection() {
    let mut f = flow("10.244.2.7", "10.244.1.5");
    f.source = Some(pod("shop", "cart-2", Some(("StatefulSet", "cart"))));
    f.destination = Some(pod("shop", "web-1", Some(("Deployment", "web"))));
    f.record.biflow_direction = Some(2);
    let (key, counts) = edge_of(&f, &Peers::default()).unwrap();
    assert_eq!(key.client, ep("shop", "web", "Deployment"));
    assert_eq!(key.server, ep("shop", "cart", "StatefulSet"));
    assert_eq!((counts.request_bytes, counts.response_bytes), (5000, 1000));
    assert_eq!((counts.request_packets, counts.response_packets), (8, 10));
    // An active timeout's continuation: no SYN from the initiator.
    f.record.reverse_tcp_flags = 0x10;
    assert_eq!(edge_of(&f, &Peers::default()).unwrap().1.connections, 0);
    // UDP: every record is a connection; a uniflow record has no response.
    let mut u = flow("10.244.1.5", "10.244.1.6");
    u.record.proto = 17;
    u.record.tcp_flags = 0;
    u.record.reverse = None;
    let (key, counts) = edge_of(&u, &Peers::default()).unwrap();
    assert_eq!(&*key.protocol, "udp");
    assert_eq!((counts.connections, counts.response_bytes), (1, 0));
}

#[test]
fn duplicates_count_nothing() {
    let mut f = flow("10.244.1.5", "10.244.1.6");
    f.duplicate = true;
    assert_eq!(edge_of(&f, &Peers::default()), None);
    let mut batch = EdgeBatch::default();
    batch.add_flow(&f);
    let mut got = Got::default();
    batch.flush(1, &mut [Box::new(got.clone()) as Box<dyn EdgeConsumer>]);
    got.take();
    assert!(got.0.lock().unwrap().iter().all(|e| e.is_empty()));
}

/// The batches a consumer was given.
type Batches = Vec<Vec<(EdgeKey, EdgeCounts)>>;

/// A consumer that keeps what it was given.
#[derive(Clone, Default)]
struct Got(Arc<std::sync::Mutex<Batches>>);

impl Got {
    fn take(&mut self) -> Batches {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl EdgeConsumer for Got {
    fn consume(&mut self, _: u64, edges: &[(EdgeKey, EdgeCounts)]) {
        self.0.lock().unwrap().push(edges.to_vec());
    }
}

#[test]
fn a_batch_sums_pods_of_one_workload_into_one_edge_and_matches_edge_of() {
    let web = [
        pod("shop", "web-1", Some(("Deployment", "web"))),
        pod("shop", "web-2", Some(("Deployment", "web"))),
    ];
    let db = pod("shop", "db-0", Some(("StatefulSet", "db")));
    let mut flows = Vec::new();
    for (i, w) in web.iter().enumerate() {
        let mut f = flow("10.244.1.5", "10.244.3.3");
        f.source = Some(w.clone());
        f.destination = Some(db.clone());
        f.record.forward = Counters {
            octets: 100 * (i as u64 + 1),
            packets: 1,
        };
        flows.push(f);
    }
    let mut external = flow("10.244.1.5", "1.1.1.1");
    external.source = Some(web[0].clone());
    flows.push(external);
    let mut batch = EdgeBatch::default();
    let mut expected: std::collections::HashMap<EdgeKey, EdgeCounts> = Default::default();
    for f in &flows {
        batch.add_flow(f);
        let (k, c) = edge_of(f, &Peers::default()).unwrap();
        expected.entry(k).or_default().add(&c);
    }
    let mut got = Got::default();
    batch.flush(7, &mut [Box::new(got.clone()) as Box<dyn EdgeConsumer>]);
    let batches = got.take();
    assert_eq!(batches.len(), 1);
    let edges: std::collections::HashMap<_, _> = batches[0].iter().cloned().collect();
    assert_eq!(edges, expected);
    assert_eq!(edges.len(), 2, "{edges:?}");
    let to_db = edges.iter().find(|(k, _)| &*k.server.workload == "db").unwrap().1;
    assert_eq!((to_db.connections, to_db.request_bytes), (2, 300));
    // The batch is empty after a flush, and an empty flush still reaches the consumers.
    batch.flush(8, &mut [Box::new(got.clone()) as Box<dyn EdgeConsumer>]);
    assert_eq!(got.take(), vec![Vec::new()]);
}

#[test]
fn the_batch_holds_no_endpoint() {
    let web = pod("shop", "web-1", Some(("Deployment", "web")));
    let db = pod("shop", "db-0", Some(("StatefulSet", "db")));
    let (web_weak, db_weak) = (Arc::downgrade(&web), Arc::downgrade(&db));
    let mut f = flow("10.244.1.5", "10.244.3.3");
    f.source = Some(web);
    f.destination = Some(db.clone());
    let mut batch = EdgeBatch::default();
    batch.add_flow(&f);
    drop(f);
    let mut got = Got::default();
    let mut consumers = [Box::new(got.clone()) as Box<dyn EdgeConsumer>];
    batch.flush(1, &mut consumers);
    // web-1 is gone from everywhere: freed. db-0 is still held (as by the index).
    assert!(web_weak.upgrade().is_none());
    assert!(db_weak.upgrade().is_some());
    // A new pod of the same workload sums into the same edge as before.
    let mut f = flow("10.244.1.7", "10.244.3.3");
    f.source = Some(pod("shop", "web-2", Some(("Deployment", "web"))));
    f.destination = Some(db);
    batch.add_flow(&f);
    batch.flush(2, &mut consumers);
    let batches = got.take();
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].len(), 1);
    assert_eq!(batches[0][0].0, batches[1][0].0);
}

#[test]
fn numbers_an_endpoint_keeps_from_another_batch_are_not_taken_for_this_ones() {
    let (web, db, api) = (
        pod("shop", "web-1", Some(("Deployment", "web"))),
        pod("shop", "db-0", Some(("StatefulSet", "db"))),
        pod("shop", "api-1", Some(("Deployment", "api"))),
    );
    let between = |a: &Arc<K8sEndpoint>, b: &Arc<K8sEndpoint>| {
        let mut f = flow("10.244.1.5", "10.244.3.3");
        f.source = Some(a.clone());
        f.destination = Some(b.clone());
        f
    };
    // Batch one numbers api first, batch two web first: the slots each leaves behind disagree.
    let mut one = EdgeBatch::default();
    one.add_flow(&between(&api, &db));
    let mut two = EdgeBatch::default();
    two.add_flow(&between(&web, &db));
    one.add_flow(&between(&web, &api));
    two.add_flow(&between(&api, &web));
    let mut got = Got::default();
    let mut consumers = [Box::new(got.clone()) as Box<dyn EdgeConsumer>];
    one.flush(1, &mut consumers);
    two.flush(1, &mut consumers);
    let mut names: Vec<Vec<(String, String)>> = got
        .take()
        .into_iter()
        .map(|b| {
            let mut e: Vec<_> = b
                .iter()
                .map(|(k, _)| (k.client.workload.to_string(), k.server.workload.to_string()))
                .collect();
            e.sort();
            e
        })
        .collect();
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(names.remove(0), vec![pair("api", "db"), pair("web", "api")]);
    assert_eq!(names.remove(0), vec![pair("api", "web"), pair("web", "db")]);
}

#[test]
fn flows_past_the_pending_bound_are_all_summed() {
    let web = pod("shop", "web-1", Some(("Deployment", "web")));
    let db = pod("shop", "db-0", Some(("StatefulSet", "db")));
    let mut f = flow("10.244.1.5", "10.244.3.3");
    f.source = Some(web);
    f.destination = Some(db);
    let mut batch = EdgeBatch::default();
    // Two and a half times the pending bound: two folds on the way, the rest at the flush.
    let n = MAX_PENDING * 5 / 2;
    for _ in 0..n {
        batch.add_flow(&f);
    }
    let (_, one) = edge_of(&f, &Peers::default()).unwrap();
    let mut got = Got::default();
    batch.flush(1, &mut [Box::new(got.clone()) as Box<dyn EdgeConsumer>]);
    let batches = got.take();
    assert_eq!(batches[0].len(), 1);
    let c = batches[0][0].1;
    assert_eq!(
        (c.connections, c.request_bytes),
        (one.connections * n as u64, one.request_bytes * n as u64)
    );
}
