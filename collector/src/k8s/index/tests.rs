//! The index against a fake clock: every time below is a Unix millisecond the test chooses.

use std::net::IpAddr;
use std::sync::Arc;

use super::*;
use crate::k8s::objects::{
    Meta, NodeInfo, Object, ObjectKind, OwnerInfo, OwnerRef, PodInfo, ServiceInfo, SliceInfo,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn meta(ns: &str, name: &str, uid: &str, created: u64) -> Meta {
    Meta {
        uid: uid.into(),
        namespace: ns.into(),
        name: name.into(),
        labels: vec![("app".into(), name.into())],
        created_ms: Some(created),
        deleted_ms: None,
        controller: None,
    }
}

fn owned(mut m: Meta, kind: &str, name: &str, uid: &str) -> Meta {
    m.controller = Some(OwnerRef {
        kind: kind.into(),
        name: name.into(),
        uid: uid.into(),
    });
    m
}

fn pod(name: &str, addr: &str, start: u64) -> PodInfo {
    PodInfo {
        meta: meta("shop", name, &format!("uid-{name}"), start),
        node_name: Some("node-a".into()),
        host_network: false,
        ips: vec![ip(addr)],
        start_ms: Some(start),
        terminal: false,
        finished_ms: None,
        template_hash: None,
        host_ports: Vec::new(),
    }
}

fn completed(mut p: PodInfo, finished: u64) -> PodInfo {
    p.terminal = true;
    p.finished_ms = Some(finished);
    p
}

fn node(name: &str, addrs: &[&str]) -> NodeInfo {
    NodeInfo {
        meta: meta("", name, &format!("uid-{name}"), 100),
        ips: addrs.iter().map(|a| ip(a)).collect(),
    }
}

fn slice(name: &str, service: &str, pods: &[&str]) -> SliceInfo {
    SliceInfo {
        meta: meta("shop", name, &format!("uid-{name}"), 100),
        service: Some(service.into()),
        pods: pods.iter().map(|p| p.to_string()).collect(),
    }
}

fn owner(kind: ObjectKind, m: Meta) -> Object {
    Object::Owner(OwnerInfo { kind, meta: m })
}

fn up(index: &mut Index, o: impl Into<Object>, at: u64) {
    index.apply(Event::Upsert(o.into()), at);
}

impl From<PodInfo> for Object {
    fn from(p: PodInfo) -> Object {
        Object::Pod(p)
    }
}

impl From<NodeInfo> for Object {
    fn from(n: NodeInfo) -> Object {
        Object::Node(n)
    }
}

impl From<SliceInfo> for Object {
    fn from(s: SliceInfo) -> Object {
        Object::EndpointSlice(s)
    }
}

fn pod_name(index: &Index, addr: &str, at: u64) -> Option<String> {
    index
        .lookup(ip(addr), at)
        .and_then(|e| e.pod_name.as_deref().map(str::to_owned))
}

fn workload(index: &Index, addr: &str, at: u64) -> (String, String) {
    let e = index.lookup(ip(addr), at).unwrap();
    (
        e.workload_kind.as_deref().unwrap().to_owned(),
        e.workload_name.as_deref().unwrap().to_owned(),
    )
}

fn no_retention() -> Index {
    Index::new(IndexSettings {
        retention_ms: None,
        max_labels: 16,
    })
}

#[test]
fn an_address_reused_over_time_answers_with_its_holder_at_that_time() {
    let mut index = no_retention();
    up(&mut index, pod("web-1", "10.244.1.7", 1_000), 1_000);
    index.apply(Event::Delete(pod("web-1", "10.244.1.7", 1_000).into()), 5_000);
    up(&mut index, pod("api-1", "10.244.1.7", 6_000), 6_000);

    assert_eq!(pod_name(&index, "10.244.1.7", 999), None);
    assert_eq!(pod_name(&index, "10.244.1.7", 1_000).as_deref(), Some("web-1"));
    assert_eq!(pod_name(&index, "10.244.1.7", 4_999).as_deref(), Some("web-1"));
    assert_eq!(pod_name(&index, "10.244.1.7", 5_500), None);
    assert_eq!(pod_name(&index, "10.244.1.7", 6_000).as_deref(), Some("api-1"));
    assert_eq!(
        pod_name(&index, "10.244.1.7", u64::MAX - 1).as_deref(),
        Some("api-1")
    );
}

#[test]
fn a_completed_job_pod_still_listed_never_owns_the_address_after_it_finished() {
    let mut index = no_retention();
    up(
        &mut index,
        completed(pod("report-28930", "10.244.2.9", 1_000), 4_000),
        9_000,
    );
    // Nobody holds the address after the job finished...
    assert_eq!(
        pod_name(&index, "10.244.2.9", 3_999).as_deref(),
        Some("report-28930")
    );
    assert_eq!(pod_name(&index, "10.244.2.9", 8_000), None);
    // ...and a pod that got it since is the answer, before and after the completed pod is listed again.
    up(&mut index, pod("cart-0", "10.244.2.9", 6_000), 9_500);
    up(
        &mut index,
        completed(pod("report-28930", "10.244.2.9", 1_000), 4_000),
        9_600,
    );
    assert_eq!(pod_name(&index, "10.244.2.9", 10_000).as_deref(), Some("cart-0"));
    assert_eq!(
        pod_name(&index, "10.244.2.9", 2_000).as_deref(),
        Some("report-28930")
    );
}

#[test]
fn a_completed_pod_with_no_known_end_holds_nothing() {
    let mut index = no_retention();
    let mut p = pod("evicted", "10.244.3.3", 1_000);
    p.terminal = true;
    up(&mut index, p, 2_000);
    assert_eq!(pod_name(&index, "10.244.3.3", 1_500), None);
    assert_eq!(index.stats().address_spans, 0);
}

#[test]
fn a_newer_pod_wins_over_an_older_one_whose_end_was_not_seen() {
    let mut index = no_retention();
    up(&mut index, pod("old", "10.244.1.8", 1_000), 1_000);
    up(&mut index, pod("new", "10.244.1.8", 5_000), 5_000);
    assert_eq!(pod_name(&index, "10.244.1.8", 4_000).as_deref(), Some("old"));
    assert_eq!(pod_name(&index, "10.244.1.8", 5_000).as_deref(), Some("new"));
}

#[test]
fn deletion_ends_at_the_deletion_timestamp_when_the_event_comes_later() {
    let mut index = no_retention();
    let mut p = pod("web-2", "10.244.1.9", 1_000);
    up(&mut index, p.clone(), 1_000);
    p.meta.deleted_ms = Some(3_000);
    index.apply(Event::Delete(p.into()), 7_000);
    assert_eq!(pod_name(&index, "10.244.1.9", 2_999).as_deref(), Some("web-2"));
    assert_eq!(pod_name(&index, "10.244.1.9", 3_000), None);
    assert_eq!(index.stats().pods, 0);
}

#[test]
fn a_terminating_pod_keeps_its_address_until_it_is_gone() {
    let mut index = no_retention();
    let mut p = pod("web-3", "10.244.1.10", 1_000);
    p.meta.deleted_ms = Some(30_000);
    up(&mut index, p.clone(), 2_000);
    assert_eq!(pod_name(&index, "10.244.1.10", 20_000).as_deref(), Some("web-3"));
    index.apply(Event::Delete(p.into()), 4_000);
    assert_eq!(pod_name(&index, "10.244.1.10", 4_000), None);
}

#[test]
fn workloads_follow_owner_references() {
    let mut index = no_retention();
    up(
        &mut index,
        owner(
            ObjectKind::ReplicaSet,
            owned(meta("shop", "web-7d9f", "rs-1", 1), "Deployment", "web", "d-1"),
        ),
        1,
    );
    up(
        &mut index,
        owner(
            ObjectKind::Job,
            owned(
                meta("shop", "report-28930", "job-1", 1),
                "CronJob",
                "report",
                "cj-1",
            ),
        ),
        1,
    );
    up(
        &mut index,
        owner(ObjectKind::Job, meta("shop", "migrate", "job-2", 1)),
        1,
    );
    let cases = [
        (
            "10.0.0.1",
            Some(("ReplicaSet", "web-7d9f", "rs-1")),
            ("Deployment", "web"),
        ),
        (
            "10.0.0.2",
            Some(("Job", "report-28930", "job-1")),
            ("CronJob", "report"),
        ),
        ("10.0.0.3", Some(("Job", "migrate", "job-2")), ("Job", "migrate")),
        (
            "10.0.0.4",
            Some(("StatefulSet", "db", "ss-1")),
            ("StatefulSet", "db"),
        ),
        (
            "10.0.0.5",
            Some(("DaemonSet", "agent", "ds-1")),
            ("DaemonSet", "agent"),
        ),
        ("10.0.0.6", Some(("Node", "node-a", "n-1")), ("Pod", "p6")),
        ("10.0.0.7", None, ("Pod", "p7")),
        (
            "10.0.0.8",
            Some(("ReplicaSet", "lone", "rs-unknown")),
            ("ReplicaSet", "lone"),
        ),
    ];
    for (i, (addr, controller, _)) in cases.iter().enumerate() {
        let mut p = pod(&format!("p{}", i + 1), addr, 10);
        p.meta.controller = controller.map(|(k, n, u)| OwnerRef {
            kind: k.into(),
            name: n.into(),
            uid: u.into(),
        });
        up(&mut index, p, 10);
    }
    for (addr, _, (kind, name)) in cases {
        assert_eq!(
            workload(&index, addr, 20),
            (kind.to_owned(), name.to_owned()),
            "{addr}"
        );
    }
}

#[test]
fn an_owner_seen_after_its_pods_updates_them() {
    let mut index = no_retention();
    let mut p = pod("web-7d9f-abcde", "10.0.1.1", 10);
    p.meta.controller = Some(OwnerRef {
        kind: "ReplicaSet".into(),
        name: "web-7d9f".into(),
        uid: "rs-1".into(),
    });
    p.template_hash = Some("7d9f".into());
    up(&mut index, p, 10);
    // Until the ReplicaSet is known, its name and the pod's template hash name the Deployment.
    assert_eq!(
        workload(&index, "10.0.1.1", 20),
        ("Deployment".into(), "web".into())
    );
    up(
        &mut index,
        owner(
            ObjectKind::ReplicaSet,
            owned(meta("shop", "web-7d9f", "rs-1", 1), "Rollout", "web-r", "r-1"),
        ),
        30,
    );
    assert_eq!(
        workload(&index, "10.0.1.1", 40),
        ("Rollout".into(), "web-r".into())
    );

    let mut j = pod("nightly-1-xyz", "10.0.1.2", 10);
    j.meta.controller = Some(OwnerRef {
        kind: "Job".into(),
        name: "nightly-1".into(),
        uid: "job-9".into(),
    });
    up(&mut index, j, 10);
    assert_eq!(
        workload(&index, "10.0.1.2", 20),
        ("Job".into(), "nightly-1".into())
    );
    up(
        &mut index,
        owner(
            ObjectKind::Job,
            owned(meta("shop", "nightly-1", "job-9", 1), "CronJob", "nightly", "cj"),
        ),
        30,
    );
    assert_eq!(
        workload(&index, "10.0.1.2", 40),
        ("CronJob".into(), "nightly".into())
    );
}

#[test]
fn cluster_ips_of_both_families_answer_with_the_service() {
    let mut index = no_retention();
    let svc = ServiceInfo {
        meta: meta("shop", "cart", "svc-1", 500),
        cluster_ips: vec![ip("10.96.0.10"), ip("fd00:10:96::a")],
    };
    up(&mut index, Object::Service(svc.clone()), 600);
    for addr in ["10.96.0.10", "fd00:10:96::a"] {
        let e = index.lookup(ip(addr), 1_000).unwrap();
        assert_eq!(e.kind, EndpointKind::Service);
        assert_eq!(e.service_name.as_deref(), Some("cart"));
        assert_eq!(&*e.namespace, "shop");
        assert!(e.pod_name.is_none());
    }
    assert!(
        index.lookup(ip("10.96.0.10"), 499).is_none(),
        "before the Service existed"
    );
    index.apply(Event::Delete(Object::Service(svc)), 2_000);
    assert!(index.lookup(ip("10.96.0.10"), 1_999).is_some());
    assert!(index.lookup(ip("10.96.0.10"), 2_000).is_none());
}

#[test]
fn node_addresses_answer_with_the_node_and_follow_changes() {
    let mut index = no_retention();
    up(
        &mut index,
        node("node-a", &["192.168.1.10", "203.0.113.10"]),
        1_000,
    );
    let e = index.lookup(ip("203.0.113.10"), 1_500).unwrap();
    assert_eq!(
        (e.kind, e.node_name.as_deref(), &*e.namespace),
        (EndpointKind::Node, Some("node-a"), "")
    );
    up(&mut index, node("node-a", &["192.168.1.10"]), 2_000);
    assert!(index.lookup(ip("203.0.113.10"), 1_999).is_some());
    assert!(index.lookup(ip("203.0.113.10"), 2_000).is_none());
    assert!(index.lookup(ip("192.168.1.10"), 2_000).is_some());
}

#[test]
fn a_host_network_pod_is_its_node_unless_a_declared_port_matches() {
    let mut index = no_retention();
    let mut p = pod("node-exporter-x", "192.168.1.11", 1_000);
    p.host_network = true;
    p.node_name = Some("node-b".into());
    p.host_ports = vec![(6, 9100)];
    p.meta.controller = Some(OwnerRef {
        kind: "DaemonSet".into(),
        name: "node-exporter".into(),
        uid: "ds".into(),
    });
    up(&mut index, p, 1_000);

    // Without the node object, the node is inferred from the pod.
    let e = index.lookup(ip("192.168.1.11"), 2_000).unwrap();
    assert_eq!(
        (e.kind, e.node_name.as_deref()),
        (EndpointKind::Node, Some("node-b"))
    );
    let e = index.lookup_port(ip("192.168.1.11"), 6, 9100, 2_000).unwrap();
    assert_eq!(e.kind, EndpointKind::HostNetworkPod);
    assert_eq!(e.pod_name.as_deref(), Some("node-exporter-x"));
    assert_eq!(e.workload_name.as_deref(), Some("node-exporter"));
    let other_port = index
        .resolve(&Query::new(ip("192.168.1.11"), 2_000).with_port(17, 9100))
        .unwrap();
    assert_eq!(other_port.kind, EndpointKind::Node);

    // With it, the node object (and its labels) answers.
    up(&mut index, node("node-b", &["192.168.1.11"]), 3_000);
    let e = index.lookup(ip("192.168.1.11"), 3_000).unwrap();
    assert_eq!(e.kind, EndpointKind::Node);
    assert_eq!(e.labels.len(), 1);
}

#[test]
fn endpoint_slices_name_the_service_of_a_pod() {
    let mut index = no_retention();
    // A slice may arrive before the pods it lists.
    up(&mut index, slice("cart-abc", "cart", &["cart-0"]), 10);
    up(&mut index, pod("cart-0", "10.244.5.1", 10), 10);
    let first = index.lookup(ip("10.244.5.1"), 20).unwrap();
    assert_eq!(first.service_name.as_deref(), Some("cart"));
    // A second Service selecting the pod: the first name alphabetically, whatever the order.
    up(&mut index, slice("basket-xyz", "basket", &["cart-0"]), 30);
    assert_eq!(
        index
            .lookup(ip("10.244.5.1"), 40)
            .unwrap()
            .service_name
            .as_deref(),
        Some("basket")
    );
    index.apply(
        Event::Delete(slice("basket-xyz", "basket", &["cart-0"]).into()),
        50,
    );
    index.apply(Event::Delete(slice("cart-abc", "cart", &["cart-0"]).into()), 50);
    let last = index.lookup(ip("10.244.5.1"), 60).unwrap();
    assert_eq!(last.service_name, None);
    assert!(!Arc::ptr_eq(&first, &last));
}

#[test]
fn answers_are_shared_until_the_object_changes() {
    let mut index = no_retention();
    up(&mut index, pod("web-1", "10.244.1.7", 1_000), 1_000);
    let a = index.lookup(ip("10.244.1.7"), 2_000).unwrap();
    up(&mut index, pod("web-1", "10.244.1.7", 1_000), 1_500);
    let b = index.lookup(ip("10.244.1.7"), 2_000).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    let mut relabelled = pod("web-1", "10.244.1.7", 1_000);
    relabelled.meta.labels.push(("tier".into(), "front".into()));
    up(&mut index, relabelled, 1_600);
    let c = index.lookup(ip("10.244.1.7"), 2_000).unwrap();
    assert!(!Arc::ptr_eq(&a, &c));
    assert_eq!(c.labels.len(), 2);
}

#[test]
fn labels_are_bounded() {
    let mut index = Index::new(IndexSettings {
        retention_ms: None,
        max_labels: 2,
    });
    let mut p = pod("web-1", "10.244.1.7", 1_000);
    p.meta.labels = (0..10).map(|i| (format!("k{i}"), "v".to_owned())).collect();
    up(&mut index, p, 1_000);
    let e = index.lookup(ip("10.244.1.7"), 1_000).unwrap();
    assert_eq!(
        e.labels.iter().map(|(k, _)| &**k).collect::<Vec<_>>(),
        ["k0", "k1"]
    );
}

#[test]
fn spans_past_the_retention_window_are_pruned() {
    let mut index = Index::new(IndexSettings {
        retention_ms: Some(60_000),
        max_labels: 16,
    });
    up(&mut index, pod("web-1", "10.244.1.7", 1_000), 1_000);
    index.apply(Event::Delete(pod("web-1", "10.244.1.7", 1_000).into()), 10_000);
    up(&mut index, pod("db-0", "10.244.1.8", 1_000), 10_000);
    index.prune(69_999);
    assert_eq!(
        pod_name(&index, "10.244.1.7", 5_000).as_deref(),
        Some("web-1"),
        "within the window"
    );
    // Events drive pruning by themselves once time has moved on.
    up(&mut index, node("node-a", &["192.168.1.10"]), 200_000);
    assert_eq!(pod_name(&index, "10.244.1.7", 5_000), None);
    assert_eq!(
        pod_name(&index, "10.244.1.8", 200_000).as_deref(),
        Some("db-0"),
        "open spans stay"
    );
    assert_eq!(index.stats().address_spans, 2);
}

#[test]
fn a_relist_deletes_what_it_no_longer_lists() {
    let mut index = no_retention();
    up(&mut index, pod("a", "10.244.1.1", 1_000), 1_000);
    up(&mut index, pod("b", "10.244.1.2", 1_000), 1_000);
    up(&mut index, node("node-a", &["192.168.1.10"]), 1_000);
    index.apply(Event::ListStart(ObjectKind::Pod), 5_000);
    up(&mut index, pod("b", "10.244.1.2", 1_000), 5_000);
    up(&mut index, pod("c", "10.244.1.3", 4_000), 5_000);
    index.apply(Event::ListDone(ObjectKind::Pod), 6_000);
    assert_eq!(pod_name(&index, "10.244.1.1", 5_999).as_deref(), Some("a"));
    assert_eq!(pod_name(&index, "10.244.1.1", 6_000), None);
    assert_eq!(pod_name(&index, "10.244.1.2", 6_000).as_deref(), Some("b"));
    assert_eq!(pod_name(&index, "10.244.1.3", 6_000).as_deref(), Some("c"));
    assert_eq!(index.stats().pods, 2);
    assert!(
        index.lookup(ip("192.168.1.10"), 6_000).is_some(),
        "other kinds are untouched"
    );
}

#[test]
fn ipv4_mapped_addresses_are_their_ipv4_address() {
    let mut index = no_retention();
    up(&mut index, pod("web-1", "10.244.1.7", 1_000), 1_000);
    assert_eq!(
        pod_name(&index, "::ffff:10.244.1.7", 2_000).as_deref(),
        Some("web-1")
    );
}
