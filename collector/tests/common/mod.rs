//! Sample flows and document checks shared by the ECS and NDJSON tests.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use podflow_collector::model::{
    Counters, EndpointKind, EnrichedFlow, FlowRecord, InlineStr, K8sEndpoint, NatEndpoint, Observer, Protocol,
};
use podflow_collector::sinks::ecs::fields::{FIELDS, Field, Shape, Type};
use podflow_collector::sinks::ecs::{Context, encode};
use proto_ipfix::community_id::CommunityId;
use serde_json::Value;

/// 2024-05-01T12:00:00.000Z
pub const T0: u64 = 1_714_564_800_000;

pub fn ctx() -> Context<'static> {
    Context {
        created_ms: T0 + 5_000,
        cluster_name: Some("prod-eu"),
        data_stream_namespace: None,
        kubernetes: true,
        exporter_names: None,
    }
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn arc(s: &str) -> Arc<str> {
    Arc::from(s)
}

/// A record with everything optional left out.
pub fn record(src: &str, sport: u16, dst: &str, dport: u16, proto: u8) -> FlowRecord {
    FlowRecord {
        exporter: SocketAddr::new(ip("10.0.0.11"), 40001),
        observation_domain: 7,
        protocol: Protocol::Ipfix,
        export_time: (T0 / 1000 + 2) as u32,
        sequence: 0,
        position: 0,
        src: ip(src),
        dst: ip(dst),
        sport,
        dport,
        proto,
        icmp_type_code: None,
        forward: Counters {
            octets: 1200,
            packets: 10,
        },
        reverse: None,
        tcp_flags: 0,
        reverse_tcp_flags: 0,
        start_ms: T0 - 1500,
        end_ms: T0,
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
    }
}

pub fn pod(
    ns: &str,
    name: &str,
    workload: (&str, &str),
    node: &str,
    labels: &[(&str, &str)],
) -> Arc<K8sEndpoint> {
    Arc::new(K8sEndpoint {
        kind: EndpointKind::Pod,
        namespace: arc(ns),
        pod_name: Some(arc(name)),
        pod_uid: Some(arc(&format!("uid-{name}"))),
        workload_kind: Some(arc(workload.0)),
        workload_name: Some(arc(workload.1)),
        service_name: None,
        node_name: Some(arc(node)),
        labels: labels.iter().map(|(k, v)| (arc(k), arc(v))).collect(),
        encoded: Default::default(),
        edge: Default::default(),
    })
}

pub fn service(ns: &str, name: &str) -> Arc<K8sEndpoint> {
    Arc::new(K8sEndpoint {
        kind: EndpointKind::Service,
        namespace: arc(ns),
        pod_name: None,
        pod_uid: None,
        workload_kind: None,
        workload_name: None,
        service_name: Some(arc(name)),
        node_name: None,
        labels: Arc::from(vec![(arc("app.kubernetes.io/name"), arc(name))]),
        encoded: Default::default(),
        edge: Default::default(),
    })
}

/// The Community ID of the record's tuple (ICMP: type and code in the port slots), as the collector
/// computes it.
pub fn community_id(r: &FlowRecord) -> InlineStr {
    let (sport, dport) = match r.icmp_type_code {
        Some(tc) => (tc >> 8, tc & 0xff),
        None => (r.sport, r.dport),
    };
    let digest = CommunityId::default()
        .hash(r.src, r.dst, r.proto, sport, dport)
        .unwrap();
    InlineStr::new(digest.base64().as_str()).unwrap()
}

pub fn enriched(record: FlowRecord) -> EnrichedFlow {
    EnrichedFlow {
        community_id: community_id(&record),
        record,
        source: None,
        destination: None,
        backend: None,
        backend_addr: None,
        duplicate: false,
    }
}

/// A TCP biflow seen by a sidecar: frontend pod -> Service ClusterIP, DNATed to a backend pod, the
/// source SNATed too, ended by FIN.
pub fn tcp_biflow_nat() -> EnrichedFlow {
    let mut r = record("10.244.1.5", 43512, "10.96.0.20", 80, 6);
    r.reverse = Some(Counters {
        octets: 52_000,
        packets: 40,
    });
    r.tcp_flags = 0x1b;
    r.reverse_tcp_flags = 0x1b;
    r.end_reason = Some(3);
    r.biflow_direction = Some(1);
    r.post_nat_src = Some(NatEndpoint {
        ip: Some(ip("10.244.1.1")),
        port: Some(61000),
    });
    r.post_nat_dst = Some(NatEndpoint {
        ip: Some(ip("10.244.2.9")),
        port: Some(8080),
    });
    r.community_id = Some(community_id(&r));
    let mut translated = r.clone();
    (translated.src, translated.sport) = (ip("10.244.1.1"), 61000);
    (translated.dst, translated.dport) = (ip("10.244.2.9"), 8080);
    r.post_nat_community_id = Some(community_id(&translated));
    r.conntrack_id = Some(123_456);
    r.conntrack_mark = Some(0);
    r.observer = Observer {
        pod_name: Some(arc("frontend-7d9f-abcde")),
        pod_namespace: Some(arc("shop")),
        node_name: Some(arc("node-a")),
    };
    let mut f = enriched(r);
    f.source = Some(pod(
        "shop",
        "frontend-7d9f-abcde",
        ("Deployment", "frontend"),
        "node-a",
        &[("app.kubernetes.io/name", "frontend"), ("tier", "web")],
    ));
    f.destination = Some(service("shop", "catalog"));
    // The backend as the enricher hands it on: the pod, with the Service it served.
    let backend = pod(
        "shop",
        "catalog-0",
        ("StatefulSet", "catalog"),
        "node-b",
        &[("app.kubernetes.io/name", "catalog"), ("shard", "0")],
    );
    f.backend = Some(Arc::new(K8sEndpoint {
        service_name: Some(arc("catalog")),
        ..(*backend).clone()
    }));
    f.backend_addr = Some((ip("10.244.2.9"), 8080));
    f
}

/// A UDP uniflow (NetFlow v9) from a pod to a resolver outside the cluster, on active timeout.
pub fn udp_uniflow_external() -> EnrichedFlow {
    let mut r = record("10.244.1.7", 5353, "8.8.8.8", 53, 17);
    r.protocol = Protocol::NetflowV9;
    r.forward = Counters {
        octets: 74,
        packets: 1,
    };
    r.end_reason = Some(2);
    let mut f = enriched(r);
    f.source = Some(pod("dns-test", "dig-1", ("Job", "dig"), "node-a", &[]));
    f
}

/// ICMPv6 echo between two addresses outside the cluster, the responder reported as the source
/// (biflowDirection 2): three requests, one reply.
pub fn icmp6_external() -> EnrichedFlow {
    let mut r = record("2001:db8::2", 0, "2001:db8::1", 0, 58);
    r.icmp_type_code = Some(129 << 8);
    r.forward = Counters {
        octets: 104,
        packets: 1,
    };
    r.reverse = Some(Counters {
        octets: 312,
        packets: 3,
    });
    r.biflow_direction = Some(2);
    r.end_reason = Some(1);
    enriched(r)
}

pub fn encode_value(flow: &EnrichedFlow, ctx: &Context<'_>) -> Value {
    let mut buf = Vec::new();
    encode(flow, ctx, &mut buf);
    let text = std::str::from_utf8(&buf).expect("documents are UTF-8");
    assert!(!text.contains('\n'), "a document is one line: {text}");
    serde_json::from_str(text).unwrap_or_else(|e| panic!("invalid JSON ({e}): {text}"))
}

/// The document's leaves as (dotted name, value); a labels object counts as one leaf.
pub fn leaves(doc: &Value) -> Vec<(String, &Value)> {
    fn walk<'v>(prefix: &str, v: &'v Value, out: &mut Vec<(String, &'v Value)>) {
        match v {
            Value::Object(map) if prefix.is_empty() || field_named(prefix).is_none() => {
                for (k, child) in map {
                    let name = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&name, child, out);
                }
            }
            _ => out.push((prefix.to_owned(), v)),
        }
    }
    let mut out = Vec::new();
    walk("", doc, &mut out);
    out
}

pub fn field_named(name: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.name == name)
}

/// Checks every leaf of `doc` is a field of the table holding a value of the table's type.
pub fn check_types(doc: &Value) {
    assert!(doc.is_object());
    for (name, value) in leaves(doc) {
        let field = field_named(&name).unwrap_or_else(|| panic!("{name} is not in the field table"));
        match (field.shape, value) {
            (Shape::Many, Value::Array(items)) => {
                assert!(!items.is_empty(), "{name}: empty array");
                for item in items {
                    check_value(field, item);
                }
            }
            (Shape::Many, other) => panic!("{name}: expected an array, got {other}"),
            (Shape::One, v) => check_value(field, v),
        }
    }
}

fn check_value(field: &Field, v: &Value) {
    let name = field.name;
    match field.ty {
        Type::Keyword | Type::ConstantKeyword => assert!(v.is_string(), "{name}: {v} is not a string"),
        Type::Long => assert!(v.as_i64().is_some(), "{name}: {v} is not a long"),
        Type::Boolean => assert!(v.is_boolean(), "{name}: {v} is not a boolean"),
        Type::Ip => {
            let s = v
                .as_str()
                .unwrap_or_else(|| panic!("{name}: {v} is not a string"));
            assert!(s.parse::<IpAddr>().is_ok(), "{name}: {s} is not an address");
        }
        Type::Date => {
            let s = v
                .as_str()
                .unwrap_or_else(|| panic!("{name}: {v} is not a string"));
            assert!(
                is_rfc3339_millis(s),
                "{name}: {s} is not RFC 3339 UTC with milliseconds"
            );
        }
        Type::Object => {
            let map = v
                .as_object()
                .unwrap_or_else(|| panic!("{name}: {v} is not an object"));
            for (k, item) in map {
                assert!(!k.trim().is_empty() && !k.contains('.'), "{name}: key {k:?}");
                assert!(item.is_string(), "{name}.{k}: {item} is not a keyword");
            }
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` with fields in range.
pub fn is_rfc3339_millis(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        b.get(r.clone())?
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| s[r].parse().ok())?
    };
    b.len() == 24
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[23] == b'Z'
        && digits(0..4).is_some()
        && digits(5..7).is_some_and(|m| (1..=12).contains(&m))
        && digits(8..10).is_some_and(|d| (1..=31).contains(&d))
        && digits(11..13).is_some_and(|h| h < 24)
        && digits(14..16).is_some_and(|m| m < 60)
        && digits(17..19).is_some_and(|s| s < 60)
        && digits(20..23).is_some()
}
