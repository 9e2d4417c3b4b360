//! Golden ECS documents: sample flows encoded, parsed back, and compared leaf by leaf with what an
//! operator should see in Kibana; plus the cases the goldens do not reach.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use common::*;
use podflow_collector::model::{Counters, NatEndpoint};
use podflow_collector::sinks::ecs::{Context, encode};
use serde_json::Value;

/// The document as `name = value` lines, sorted by name.
fn flat(doc: &Value) -> String {
    let mut lines: Vec<String> = leaves(doc)
        .into_iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect();
    lines.sort();
    lines.join("\n")
}

fn assert_golden(flow: &podflow_collector::model::EnrichedFlow, expected: &str) {
    let doc = encode_value(flow, &ctx());
    check_types(&doc);
    let got = flat(&doc);
    assert_eq!(got, expected.trim(), "\n--- got ---\n{got}\n");
}

#[test]
fn tcp_biflow_through_a_service_with_nat_and_pods_on_both_sides() {
    assert_golden(
        &tcp_biflow_nat(),
        r#"
@timestamp = "2024-05-01T12:00:00.000Z"
client.address = "10.244.1.5"
client.bytes = 1200
client.ip = "10.244.1.5"
client.nat.ip = "10.244.1.1"
client.nat.port = 61000
client.packets = 10
client.port = 43512
destination.address = "10.96.0.20"
destination.bytes = 52000
destination.ip = "10.96.0.20"
destination.kubernetes.labels = {"app_kubernetes_io/name":"catalog","shard":"0"}
destination.kubernetes.namespace = "shop"
destination.kubernetes.node.name = "node-b"
destination.kubernetes.pod.name = "catalog-0"
destination.kubernetes.pod.uid = "uid-catalog-0"
destination.kubernetes.service.name = "catalog"
destination.kubernetes.workload.kind = "StatefulSet"
destination.kubernetes.workload.name = "catalog"
destination.nat.ip = "10.244.2.9"
destination.nat.port = 8080
destination.packets = 40
destination.port = 80
ecs.version = "9.4.0"
event.action = "network_flow"
event.category = ["network"]
event.created = "2024-05-01T12:00:05.000Z"
event.dataset = "podflow.flows"
event.duration = 1500000000
event.end = "2024-05-01T12:00:00.000Z"
event.kind = "event"
event.module = "podflow"
event.start = "2024-05-01T11:59:58.500Z"
event.type = ["connection","end"]
network.bytes = 53200
network.community_id = "1:mBb15ddRqmF0lj5NA0mZB2CEWYk="
network.direction = "internal"
network.iana_number = "6"
network.packets = 50
network.transport = "tcp"
network.type = "ipv4"
observer.hostname = "node-a"
observer.ip = ["10.0.0.11"]
observer.type = "sensor"
orchestrator.cluster.name = "prod-eu"
orchestrator.type = "kubernetes"
podflow.backend.ip = "10.244.2.9"
podflow.backend.kubernetes.namespace = "shop"
podflow.backend.kubernetes.node.name = "node-b"
podflow.backend.kubernetes.pod.name = "catalog-0"
podflow.backend.kubernetes.pod.uid = "uid-catalog-0"
podflow.backend.kubernetes.workload.kind = "StatefulSet"
podflow.backend.kubernetes.workload.name = "catalog"
podflow.backend.port = 8080
podflow.conntrack.id = 123456
podflow.conntrack.mark = 0
podflow.duplicate = false
podflow.end_reason = "end_of_flow"
podflow.exporter.observation_domain_id = 7
podflow.exporter.port = 40001
podflow.exporter.timestamp = "2024-05-01T12:00:02.000Z"
podflow.exporter.version = 10
podflow.observer.node.name = "node-a"
podflow.observer.pod.name = "frontend-7d9f-abcde"
podflow.observer.pod.namespace = "shop"
podflow.post_nat_community_id = "1:PMSfs+hfALrvj0OOJz6Qnnga8Vs="
podflow.tcp.flags = 27
podflow.tcp.reverse_flags = 27
related.ip = ["10.244.1.5","10.96.0.20","10.244.1.1","10.244.2.9"]
server.address = "10.96.0.20"
server.bytes = 52000
server.ip = "10.96.0.20"
server.nat.ip = "10.244.2.9"
server.nat.port = 8080
server.packets = 40
server.port = 80
source.address = "10.244.1.5"
source.bytes = 1200
source.ip = "10.244.1.5"
source.kubernetes.labels = {"app_kubernetes_io/name":"frontend","tier":"web"}
source.kubernetes.namespace = "shop"
source.kubernetes.node.name = "node-a"
source.kubernetes.pod.name = "frontend-7d9f-abcde"
source.kubernetes.pod.uid = "uid-frontend-7d9f-abcde"
source.kubernetes.workload.kind = "Deployment"
source.kubernetes.workload.name = "frontend"
source.nat.ip = "10.244.1.1"
source.nat.port = 61000
source.packets = 10
source.port = 43512
"#,
    );
}

#[test]
fn udp_uniflow_to_the_outside() {
    assert_golden(
        &udp_uniflow_external(),
        r#"
@timestamp = "2024-05-01T12:00:00.000Z"
destination.address = "8.8.8.8"
destination.ip = "8.8.8.8"
destination.port = 53
ecs.version = "9.4.0"
event.action = "network_flow"
event.category = ["network"]
event.created = "2024-05-01T12:00:05.000Z"
event.dataset = "podflow.flows"
event.duration = 1500000000
event.end = "2024-05-01T12:00:00.000Z"
event.kind = "event"
event.module = "podflow"
event.start = "2024-05-01T11:59:58.500Z"
event.type = ["connection"]
network.bytes = 74
network.community_id = "1:K8rUGSgCxUXinN7h+NItJpj2bBE="
network.direction = "outbound"
network.iana_number = "17"
network.packets = 1
network.transport = "udp"
network.type = "ipv4"
observer.ip = ["10.0.0.11"]
observer.type = "sensor"
orchestrator.cluster.name = "prod-eu"
orchestrator.type = "kubernetes"
podflow.duplicate = false
podflow.end_reason = "active_timeout"
podflow.exporter.observation_domain_id = 7
podflow.exporter.port = 40001
podflow.exporter.timestamp = "2024-05-01T12:00:02.000Z"
podflow.exporter.version = 9
related.ip = ["10.244.1.7","8.8.8.8"]
source.address = "10.244.1.7"
source.bytes = 74
source.ip = "10.244.1.7"
source.kubernetes.namespace = "dns-test"
source.kubernetes.node.name = "node-a"
source.kubernetes.pod.name = "dig-1"
source.kubernetes.pod.uid = "uid-dig-1"
source.kubernetes.workload.kind = "Job"
source.kubernetes.workload.name = "dig"
source.packets = 1
source.port = 5353
"#,
    );
}

#[test]
fn icmp6_biflow_initiated_by_the_destination() {
    assert_golden(
        &icmp6_external(),
        r#"
@timestamp = "2024-05-01T12:00:00.000Z"
client.address = "2001:db8::1"
client.bytes = 312
client.ip = "2001:db8::1"
client.packets = 3
destination.address = "2001:db8::1"
destination.bytes = 312
destination.ip = "2001:db8::1"
destination.packets = 3
ecs.version = "9.4.0"
event.action = "network_flow"
event.category = ["network"]
event.created = "2024-05-01T12:00:05.000Z"
event.dataset = "podflow.flows"
event.duration = 1500000000
event.end = "2024-05-01T12:00:00.000Z"
event.kind = "event"
event.module = "podflow"
event.start = "2024-05-01T11:59:58.500Z"
event.type = ["connection","end"]
network.bytes = 416
network.community_id = "1:u2vMS3HiWth2lIMKHB1fjELshpQ="
network.direction = "external"
network.iana_number = "58"
network.packets = 4
network.transport = "ipv6-icmp"
network.type = "ipv6"
observer.ip = ["10.0.0.11"]
observer.type = "sensor"
orchestrator.cluster.name = "prod-eu"
orchestrator.type = "kubernetes"
podflow.duplicate = false
podflow.end_reason = "idle_timeout"
podflow.exporter.observation_domain_id = 7
podflow.exporter.port = 40001
podflow.exporter.timestamp = "2024-05-01T12:00:02.000Z"
podflow.exporter.version = 10
podflow.icmp.code = 0
podflow.icmp.type = 129
related.ip = ["2001:db8::2","2001:db8::1"]
server.address = "2001:db8::2"
server.bytes = 104
server.ip = "2001:db8::2"
server.packets = 1
source.address = "2001:db8::2"
source.bytes = 104
source.ip = "2001:db8::2"
source.packets = 1
"#,
    );
}

#[test]
fn bytes_follow_the_table_order_and_nest_objects() {
    let mut buf = Vec::new();
    encode(&icmp6_external(), &ctx(), &mut buf);
    assert_eq!(
        String::from_utf8(buf).unwrap(),
        r#"{"@timestamp":"2024-05-01T12:00:00.000Z","ecs":{"version":"9.4.0"},"event":{"kind":"event","category":["network"],"type":["connection","end"],"action":"network_flow","dataset":"podflow.flows","module":"podflow","start":"2024-05-01T11:59:58.500Z","end":"2024-05-01T12:00:00.000Z","duration":1500000000,"created":"2024-05-01T12:00:05.000Z"},"source":{"address":"2001:db8::2","ip":"2001:db8::2","bytes":104,"packets":1},"destination":{"address":"2001:db8::1","ip":"2001:db8::1","bytes":312,"packets":3},"client":{"address":"2001:db8::1","ip":"2001:db8::1","bytes":312,"packets":3},"server":{"address":"2001:db8::2","ip":"2001:db8::2","bytes":104,"packets":1},"network":{"transport":"ipv6-icmp","iana_number":"58","type":"ipv6","bytes":416,"packets":4,"community_id":"1:u2vMS3HiWth2lIMKHB1fjELshpQ=","direction":"external"},"related":{"ip":["2001:db8::2","2001:db8::1"]},"observer":{"ip":["10.0.0.11"],"type":"sensor"},"orchestrator":{"type":"kubernetes","cluster":{"name":"prod-eu"}},"podflow":{"end_reason":"idle_timeout","icmp":{"type":129,"code":0},"duplicate":false,"exporter":{"port":40001,"observation_domain_id":7,"version":10,"timestamp":"2024-05-01T12:00:02.000Z"}}}"#
    );
}

#[test]
fn appends_to_the_buffer() {
    let mut buf = b"prefix".to_vec();
    encode(&udp_uniflow_external(), &ctx(), &mut buf);
    assert!(buf.starts_with(b"prefix{\"@timestamp\""));
    assert!(buf.ends_with(b"}}}"));
}

#[test]
fn hostile_strings_are_escaped() {
    let hostile = "a\"b\\c\nd\re\tf\u{0}g\u{1f}h\u{7f}é😀\u{2028}</x>";
    let mut flow = tcp_biflow_nat();
    let mut src = (**flow.source.as_ref().unwrap()).clone();
    src.pod_name = Some(Arc::from(hostile));
    src.labels = Arc::from(vec![
        (Arc::from(hostile), Arc::from(hostile)),
        (Arc::from("k8s.io/x\"y"), Arc::from("v")),
    ]);
    flow.source = Some(Arc::new(src));
    flow.record.observer.node_name = Some(Arc::from(hostile));
    let names: HashMap<IpAddr, Arc<str>> = HashMap::new();
    let cluster = format!("{hostile}cluster");
    let ctx = Context {
        cluster_name: Some(&cluster),
        exporter_names: Some(&names),
        ..ctx()
    };
    let doc = encode_value(&flow, &ctx);
    check_types(&doc);
    assert_eq!(doc["source"]["kubernetes"]["pod"]["name"], hostile);
    assert_eq!(doc["observer"]["hostname"], hostile);
    assert_eq!(doc["orchestrator"]["cluster"]["name"], cluster.as_str());
    let labels = doc["source"]["kubernetes"]["labels"].as_object().unwrap();
    assert_eq!(labels[&hostile.replace('.', "_")], hostile);
    assert_eq!(labels["k8s_io/x\"y"], "v");
}

#[test]
fn label_keys_are_dedotted_without_collisions_or_empty_keys() {
    let mut flow = udp_uniflow_external();
    let mut src = (**flow.source.as_ref().unwrap()).clone();
    src.labels = Arc::from(vec![
        (Arc::from("app.kubernetes.io/name"), Arc::from("first")),
        (Arc::from("app_kubernetes_io/name"), Arc::from("second")),
        (Arc::from(""), Arc::from("empty")),
        (Arc::from("team"), Arc::from("net")),
    ]);
    flow.source = Some(Arc::new(src));
    let mut buf = Vec::new();
    encode(&flow, &ctx(), &mut buf);
    let text = String::from_utf8(buf).unwrap();
    // serde_json keeps the last of repeated keys; Elasticsearch rejects them: check the text itself.
    assert!(
        text.contains(r#""labels":{"app_kubernetes_io/name":"first","team":"net"}"#),
        "{text}"
    );
}

#[test]
fn direction_is_relative_to_the_cluster_from_the_initiator() {
    let pod_a = pod("a", "a-1", ("Deployment", "a"), "n", &[]);
    let cases = [
        (true, true, Some(1), "internal"),
        (true, false, Some(1), "outbound"),
        (false, true, Some(1), "inbound"),
        (false, false, Some(1), "external"),
        // The destination initiated: a pod answering an outside client is inbound traffic.
        (true, false, Some(2), "inbound"),
        (false, true, Some(2), "outbound"),
        // Initiator unknown: source to destination.
        (false, true, None, "inbound"),
    ];
    for (src_in, dst_in, biflow, want) in cases {
        let mut flow = udp_uniflow_external();
        flow.record.biflow_direction = biflow;
        flow.source = src_in.then(|| pod_a.clone());
        flow.destination = dst_in.then(|| pod_a.clone());
        let doc = encode_value(&flow, &ctx());
        assert_eq!(doc["network"]["direction"], want, "{src_in} {dst_in} {biflow:?}");
        let doc = encode_value(
            &flow,
            &Context {
                kubernetes: false,
                ..ctx()
            },
        );
        assert_eq!(doc["network"]["direction"], "unknown");
    }
}

#[test]
fn data_stream_fields_follow_the_namespace() {
    let doc = encode_value(
        &udp_uniflow_external(),
        &Context {
            data_stream_namespace: Some("prod"),
            ..ctx()
        },
    );
    check_types(&doc);
    assert_eq!(
        doc["data_stream"],
        serde_json::json!({"type": "logs", "dataset": "podflow.flows", "namespace": "prod"})
    );
    let doc = encode_value(&udp_uniflow_external(), &ctx());
    assert!(doc.get("data_stream").is_none());
}

#[test]
fn observer_hostname_falls_back_to_the_exporter_names() {
    let names: HashMap<IpAddr, Arc<str>> = HashMap::from([(ip("10.0.0.11"), Arc::from("node-x"))]);
    let ctx = Context {
        exporter_names: Some(&names),
        ..ctx()
    };
    let doc = encode_value(&udp_uniflow_external(), &ctx);
    assert_eq!(doc["observer"]["hostname"], "node-x");
    // The record's own node name wins.
    let doc = encode_value(&tcp_biflow_nat(), &ctx);
    assert_eq!(doc["observer"]["hostname"], "node-a");
}

#[test]
fn unknown_and_out_of_range_times_are_left_out() {
    let mut flow = udp_uniflow_external();
    flow.record.start_ms = 0;
    flow.record.end_ms = u64::MAX;
    let doc = encode_value(&flow, &ctx());
    check_types(&doc);
    // @timestamp falls back to the export time.
    assert_eq!(doc["@timestamp"], "2024-05-01T12:00:02.000Z");
    for f in ["start", "end", "duration"] {
        assert!(doc["event"].get(f).is_none(), "event.{f}");
    }
    flow.record.export_time = 0;
    let doc = encode_value(&flow, &ctx());
    assert_eq!(doc["@timestamp"], doc["event"]["created"]);
    assert!(doc["podflow"]["exporter"].get("timestamp").is_none());
    // A flow that ends before it starts has no duration.
    let mut flow = udp_uniflow_external();
    flow.record.start_ms = flow.record.end_ms + 1;
    assert!(encode_value(&flow, &ctx())["event"].get("duration").is_none());
}

#[test]
fn counters_beyond_a_long_are_clamped() {
    let mut flow = tcp_biflow_nat();
    flow.record.forward = Counters {
        octets: u64::MAX,
        packets: u64::MAX - 1,
    };
    let doc = encode_value(&flow, &ctx());
    check_types(&doc);
    assert_eq!(doc["source"]["bytes"], i64::MAX);
    assert_eq!(doc["network"]["bytes"], i64::MAX);
}

#[test]
fn nat_fields_only_when_something_was_translated() {
    let mut flow = udp_uniflow_external();
    let r = &mut flow.record;
    r.post_nat_src = Some(NatEndpoint {
        ip: Some(r.src),
        port: Some(r.sport),
    });
    r.post_nat_dst = Some(NatEndpoint {
        ip: Some(r.dst),
        port: None,
    });
    let doc = encode_value(&flow, &ctx());
    assert!(doc["source"].get("nat").is_none());
    assert!(doc["destination"].get("nat").is_none());
    // A port change alone is a translation.
    flow.record.post_nat_src = Some(NatEndpoint {
        ip: None,
        port: Some(1),
    });
    let doc = encode_value(&flow, &ctx());
    assert_eq!(doc["source"]["nat"], serde_json::json!({"port": 1}));
    // The NAT join's backend stands in for missing post-NAT destination fields.
    flow.backend_addr = Some((ip("10.244.3.3"), 5353));
    let doc = encode_value(&flow, &ctx());
    assert_eq!(
        doc["destination"]["nat"],
        serde_json::json!({"ip": "10.244.3.3", "port": 5353})
    );
    assert_eq!(
        doc["podflow"]["backend"],
        serde_json::json!({"ip": "10.244.3.3", "port": 5353})
    );
}

#[test]
fn event_type_end_for_every_reason_but_active_timeout() {
    for (reason, want) in [
        (None, serde_json::json!(["connection"])),
        (Some(1), serde_json::json!(["connection", "end"])),
        (Some(2), serde_json::json!(["connection"])),
        (Some(3), serde_json::json!(["connection", "end"])),
        (Some(4), serde_json::json!(["connection", "end"])),
        (Some(5), serde_json::json!(["connection", "end"])),
        (Some(200), serde_json::json!(["connection", "end"])),
    ] {
        let mut flow = udp_uniflow_external();
        flow.record.end_reason = reason;
        let doc = encode_value(&flow, &ctx());
        assert_eq!(doc["event"]["type"], want, "{reason:?}");
    }
    let mut flow = udp_uniflow_external();
    flow.record.end_reason = Some(200);
    assert_eq!(encode_value(&flow, &ctx())["podflow"]["end_reason"], "200");
}

#[test]
fn duplicates_and_unknown_protocols() {
    let mut flow = udp_uniflow_external();
    flow.duplicate = true;
    flow.record.proto = 253;
    let doc = encode_value(&flow, &ctx());
    check_types(&doc);
    assert_eq!(doc["podflow"]["duplicate"], true);
    assert_eq!(doc["network"]["iana_number"], "253");
    assert!(doc["network"].get("transport").is_none());
    // Protocols without ports have none in the document.
    assert!(doc["source"].get("port").is_none());
}

/// Flows alike in most of what decides a document's shape, but with different fields (the observer's
/// namespace; an end before the start, which leaves out `event.duration`): each document is written with
/// its own shape, byte for byte what the field-by-field encoder writes, however they alternate.
#[test]
fn flows_that_differ_in_one_field_each_get_their_own_shape() {
    use podflow_collector::sinks::ecs::{Encoder, encode_into};
    let plain = tcp_biflow_nat();
    let mut other = tcp_biflow_nat();
    other.record.observer.pod_namespace = None;
    let mut third = tcp_biflow_nat();
    third.record.end_ms = third.record.start_ms - 1;
    let ctx = ctx();
    let mut encoder = Encoder::new();
    let (mut want, mut got) = (vec![0u8; 1 << 14], vec![0u8; 1 << 14]);
    for flow in [&plain, &other, &plain, &third, &other, &third, &third] {
        let n = encode_into(flow, &ctx, &mut want).unwrap();
        let m = encoder.encode_into(flow, &ctx, &mut got).unwrap();
        assert_eq!(
            std::str::from_utf8(&got[..m]).unwrap(),
            std::str::from_utf8(&want[..n]).unwrap()
        );
    }
    assert_eq!(encoder.shapes(), 3);
}
