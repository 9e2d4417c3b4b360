//! The static inventory provider over hand-written `kubectl get ... -o yaml|json` output in
//! tests/data/inventory (see the story at the top of cluster.yaml).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::IpAddr;
use std::path::PathBuf;

use k8s_openapi::chrono::DateTime;
use podflow_collector::enrich::Enricher;
use podflow_collector::k8s::inventory::{self, Inventory, InventoryReport};
use podflow_collector::k8s::{IndexSettings, MetadataProvider, Query};
use podflow_collector::model::{EndpointKind, K8sEndpoint};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Unix milliseconds of an RFC 3339 time.
fn t(s: &str) -> u64 {
    u64::try_from(DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis()).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const NOW: &str = "2024-05-01T10:40:00Z";

fn settings() -> IndexSettings {
    IndexSettings {
        retention_ms: None,
        max_labels: 16,
    }
}

fn whole() -> Inventory {
    Inventory::load(&[data("inventory")], settings(), t(NOW)).unwrap()
}

fn at(inv: &Inventory, addr: &str, time: &str) -> Option<std::sync::Arc<K8sEndpoint>> {
    inv.lookup(ip(addr), t(time))
}

fn workload(e: &K8sEndpoint) -> (&str, &str) {
    (
        e.workload_kind.as_deref().unwrap(),
        e.workload_name.as_deref().unwrap(),
    )
}

#[test]
fn a_directory_is_read_whole_and_bad_objects_are_counted_not_fatal() {
    let inv = whole();
    let report = inv.report();
    assert_eq!(report.files, 3);
    assert_eq!(
        report.objects, 17,
        "11 in cluster.yaml, 5 in services.json, 1 in extra.yaml"
    );
    assert_eq!(report.ignored, 2, "the Deployment and the ConfigMap");
    assert_eq!(report.bad, 2, "{:?}", report.problems);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("extra.yaml: document 3 item 1 (broken)")),
        "{:?}",
        report.problems
    );
    assert!(
        report.problems.iter().any(|p| p.contains("(kindless): no kind")),
        "{:?}",
        report.problems
    );
    let status = inv.status();
    assert!(status.synced);
    assert_eq!(status.bad_objects, 2);
    assert_eq!(
        (status.index.pods, status.index.services, status.index.nodes),
        (8, 3, 2)
    );
    assert_eq!((status.index.endpoint_slices, status.index.owners), (2, 2));
    // The single-document pod of extra.yaml is there.
    assert_eq!(
        at(&inv, "10.244.1.42", NOW).unwrap().pod_name.as_deref(),
        Some("debug-shell")
    );
}

#[test]
fn deployment_pods_name_their_deployment_service_node_and_labels() {
    let inv = whole();
    for (addr, pod, node) in [
        ("10.244.1.5", "web-6d4cf56db6-7xk2p", "node-a"),
        ("10.244.2.6", "web-6d4cf56db6-q9z8w", "node-b"),
    ] {
        let e = at(&inv, addr, NOW).unwrap();
        assert_eq!(e.kind, EndpointKind::Pod);
        assert_eq!(&*e.namespace, "shop");
        assert_eq!(e.pod_name.as_deref(), Some(pod));
        assert_eq!(workload(&e), ("Deployment", "web"));
        assert_eq!(e.service_name.as_deref(), Some("web"));
        assert_eq!(e.node_name.as_deref(), Some(node));
        let labels: Vec<(&str, &str)> = e.labels.iter().map(|(k, v)| (&**k, &**v)).collect();
        assert_eq!(
            labels,
            [("app.kubernetes.io/name", "web")],
            "pod-template-hash is left out"
        );
    }
    // The pod got its address when its sandbox was ready (09:00:03), not at creation.
    assert!(at(&inv, "10.244.1.5", "2024-05-01T09:00:02Z").is_none());
    assert!(at(&inv, "10.244.1.5", "2024-05-01T09:00:03Z").is_some());
    assert_eq!(
        at(&inv, "10.244.1.5", NOW).unwrap().pod_uid.as_deref(),
        Some("5f0e1a2b-0000-4000-8000-000000000001")
    );
}

#[test]
fn statefulset_and_daemonset_pods_name_their_controller() {
    let inv = whole();
    let db = at(&inv, "10.244.1.9", NOW).unwrap();
    assert_eq!(workload(&db), ("StatefulSet", "db"));
    assert_eq!(db.service_name.as_deref(), Some("db"));
    let labels: Vec<&str> = db.labels.iter().map(|(k, _)| &**k).collect();
    assert_eq!(
        labels,
        ["app.kubernetes.io/name"],
        "per-revision and pod-name labels are left out"
    );
    let fluent = at(&inv, "10.244.2.3", NOW).unwrap();
    assert_eq!(workload(&fluent), ("DaemonSet", "fluent-bit"));
    assert_eq!(&*fluent.namespace, "logging");
    assert_eq!(fluent.service_name, None);
}

#[test]
fn a_completed_cronjob_pod_owns_its_address_only_while_it_ran() {
    let inv = whole();
    let job = at(&inv, "10.244.2.8", "2024-05-01T10:30:20Z").unwrap();
    assert_eq!(job.pod_name.as_deref(), Some("report-28578150-5hx7t"));
    assert_eq!(workload(&job), ("CronJob", "report"));
    // Finished at 10:30:41 (whole seconds): the pod's span ends with that second.
    assert!(at(&inv, "10.244.2.8", "2024-05-01T10:30:41.999Z").is_some());
    assert!(at(&inv, "10.244.2.8", "2024-05-01T10:30:42Z").is_none());
    assert!(at(&inv, "10.244.2.8", "2024-05-01T10:33:00Z").is_none());
    let now = at(&inv, "10.244.2.8", NOW).unwrap();
    assert_eq!(now.pod_name.as_deref(), Some("cache-0"));
    assert_eq!(workload(&now), ("StatefulSet", "cache"));
    assert_eq!(
        at(&inv, "10.244.2.8", "2024-05-01T10:35:12Z")
            .unwrap()
            .pod_name
            .as_deref(),
        Some("cache-0")
    );
}

#[test]
fn flows_to_a_port_a_host_network_pod_declares_are_that_pods() {
    let inv = whole();
    let mut e = Enricher::default();
    let flow = |src, sport, dst, dport, proto, direction| {
        let mut r = common::record(src, sport, dst, dport, proto);
        r.start_ms = t(NOW);
        r.biflow_direction = direction;
        r
    };
    let kind = |e: &Option<std::sync::Arc<K8sEndpoint>>| e.as_ref().map(|e| (e.kind, e.pod_name.clone()));
    let exporter = Some((EndpointKind::HostNetworkPod, Some("node-exporter-4xv9q".into())));
    let node = Some((EndpointKind::Node, None));

    // A scrape of node-b's node exporter: the server side is the pod, the client its own pod.
    let scrape = e
        .enrich(flow("10.244.2.8", 41000, "172.18.0.3", 9100, 6, None), &inv)
        .unwrap();
    assert_eq!(kind(&scrape.destination), exporter);
    assert_eq!(kind(&scrape.source).map(|k| k.0), Some(EndpointKind::Pod));
    // The same connection seen from the other end, the initiator named by biflowDirection.
    let reply = e
        .enrich(flow("172.18.0.3", 9100, "10.244.2.8", 41000, 6, Some(2)), &inv)
        .unwrap();
    assert_eq!(kind(&reply.source), exporter);
    // The initiator is never narrowed by its port: a connection from the node's address is the node's.
    let out = e
        .enrich(flow("172.18.0.3", 9100, "10.244.2.8", 8080, 6, Some(1)), &inv)
        .unwrap();
    assert_eq!(kind(&out.source), node);
    // Another port, or another protocol on the declared port: the node.
    let ssh = e
        .enrich(flow("10.244.2.8", 41001, "172.18.0.3", 22, 6, None), &inv)
        .unwrap();
    assert_eq!(kind(&ssh.destination), node);
    let udp = e
        .enrich(flow("10.244.2.8", 41002, "172.18.0.3", 9100, 17, None), &inv)
        .unwrap();
    assert_eq!(kind(&udp.destination), node);
}

#[test]
fn node_addresses_and_host_network_pods() {
    let inv = whole();
    for addr in ["172.18.0.3", "203.0.113.7"] {
        let e = at(&inv, addr, NOW).unwrap();
        assert_eq!(
            (e.kind, e.node_name.as_deref()),
            (EndpointKind::Node, Some("node-b")),
            "{addr}"
        );
        assert!(
            e.labels
                .iter()
                .any(|(k, v)| &**k == "topology.kubernetes.io/zone" && &**v == "zone-2")
        );
    }
    let q = Query::new(ip("172.18.0.3"), t(NOW)).with_port(6, 9100);
    let exporter = inv.resolve(&q).unwrap();
    assert_eq!(exporter.kind, EndpointKind::HostNetworkPod);
    assert_eq!(exporter.pod_name.as_deref(), Some("node-exporter-4xv9q"));
    assert_eq!(workload(&exporter), ("DaemonSet", "node-exporter"));
    assert_eq!(inv.resolve(&q.with_port(6, 22)).unwrap().kind, EndpointKind::Node);
    assert_eq!(
        at(&inv, "172.18.0.2", NOW).unwrap().node_name.as_deref(),
        Some("node-a")
    );
}

#[test]
fn cluster_ips_answer_with_their_service() {
    let inv = whole();
    for addr in ["10.96.12.34", "fd00:10:96::1234"] {
        let e = at(&inv, addr, NOW).unwrap();
        assert_eq!(
            (e.kind, e.service_name.as_deref(), &*e.namespace),
            (EndpointKind::Service, Some("web"), "shop")
        );
    }
    let dns = at(&inv, "10.96.0.10", NOW).unwrap();
    assert_eq!(
        (dns.service_name.as_deref(), &*dns.namespace),
        (Some("kube-dns"), "kube-system")
    );
    assert_eq!(
        inv.status().index.address_spans,
        8 + 3 + 3,
        "pods (not the host-network one), nodes, ClusterIPs + 1 inferred node"
    );
}

#[test]
fn one_file_alone_is_an_inventory_too() {
    let inv = Inventory::load(&[data("inventory/cluster.yaml")], settings(), t(NOW)).unwrap();
    assert_eq!(
        inv.report(),
        &InventoryReport {
            files: 1,
            objects: 11,
            ..InventoryReport::default()
        }
    );
    let web = at(&inv, "10.244.1.5", NOW).unwrap();
    assert_eq!(workload(&web), ("Deployment", "web"));
    assert_eq!(web.service_name, None, "no EndpointSlices in this file");
    assert!(at(&inv, "10.96.12.34", NOW).is_none());
}

#[test]
fn a_path_that_cannot_be_read_is_an_error() {
    let missing = data("inventory/no-such-file.yaml");
    let err = Inventory::load(&[missing], settings(), t(NOW)).err().unwrap();
    assert!(err.to_string().contains("no-such-file.yaml"), "{err}");
}

#[test]
fn syntax_errors_are_counted_and_what_came_before_is_kept() {
    let mut report = InventoryReport::default();
    let yaml = "apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n---\nkind: [unclosed\n";
    let objects = inventory::parse(yaml, false, "broken.yaml", &mut report);
    assert_eq!(objects.len(), 1);
    assert_eq!(report.bad, 1);
    assert!(
        report.problems[0].starts_with("broken.yaml: YAML"),
        "{:?}",
        report.problems
    );

    let mut report = InventoryReport::default();
    let json = r#"{"kind":"Node","apiVersion":"v1","metadata":{"name":"n1"}} {"kind":"Node","metadata":{"name":"n2"}} {"#;
    let objects = inventory::parse(json, true, "stream.json", &mut report);
    assert_eq!((objects.len(), report.bad), (2, 1));

    let mut report = InventoryReport::default();
    let wrong_version = r#"{"kind":"Pod","apiVersion":"v2","metadata":{"name":"p"}}"#;
    assert!(inventory::parse(wrong_version, true, "v2.json", &mut report).is_empty());
    assert_eq!(report.bad, 1);
}

#[test]
fn bytes_that_are_not_text_or_not_objects_are_one_problem_each() {
    let mut report = InventoryReport::default();
    let objects = inventory::parse_bytes(b"\xff\xfe{kind: Pod}", None, "bin", &mut report);
    assert!(objects.is_empty());
    assert_eq!(
        (report.bad, report.problems.as_slice()),
        (1, &["bin: not UTF-8 text".to_string()][..])
    );
    // With no format given, text starting with `{` is read as JSON.
    let mut report = InventoryReport::default();
    let found = inventory::parse_bytes(b"{\"kind\": 7", None, "j", &mut report);
    assert!(found.is_empty());
    assert_eq!(report.bad, 1, "{report:?}");
    assert!(report.problems[0].starts_with("j: JSON"), "{report:?}");
}
