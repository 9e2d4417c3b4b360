//! Random flows, hostile strings included, always encode to one line of valid JSON with no repeated key,
//! whose every leaf is a field of the table holding a value of the table's type; and the encoder by
//! shapes writes exactly what the field-by-field encoder writes, across flows of many shapes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use podflow_collector::model::{
    Counters, EndpointKind, EnrichedFlow, FlowRecord, InlineStr, K8sEndpoint, NatEndpoint, Observer, Protocol,
};
use std::cell::RefCell;

use podflow_collector::sinks::ecs::{Context, Encoder, encode, encode_into};
use proptest::prelude::*;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// Strings as Kubernetes and exporters should send them, and as they might not.
fn text() -> BoxedStrategy<Arc<str>> {
    prop_oneof![
        "[a-z0-9.-]{0,20}",
        "[a-z0-9./_-]{1,30}",
        any::<String>(),
        "[\"\\\\\u{0}-\u{1f}\u{7f}\u{2028}é😀.]{0,12}",
    ]
    .prop_map(|s| Arc::from(s.as_str()))
    .boxed()
}

fn opt_text() -> impl Strategy<Value = Option<Arc<str>>> {
    proptest::option::of(text())
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u8; 16]>().prop_map(IpAddr::from)
    ]
}

fn inline() -> impl Strategy<Value = Option<InlineStr>> {
    proptest::option::of("[\\PC\"\\\\\u{0}-\u{1f}]{0,15}".prop_map(|s| InlineStr::new(&s).unwrap()))
}

fn counters() -> impl Strategy<Value = Counters> {
    (any::<u64>(), any::<u64>()).prop_map(|(octets, packets)| Counters { octets, packets })
}

fn nat() -> impl Strategy<Value = Option<NatEndpoint>> {
    proptest::option::of(
        (proptest::option::of(ip()), proptest::option::of(any::<u16>()))
            .prop_map(|(ip, port)| NatEndpoint { ip, port }),
    )
}

fn time() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), 1_600_000_000_000u64..1_900_000_000_000, any::<u64>()]
}

fn endpoint() -> BoxedStrategy<Option<Arc<K8sEndpoint>>> {
    let kind = prop_oneof![
        Just(EndpointKind::Pod),
        Just(EndpointKind::HostNetworkPod),
        Just(EndpointKind::Service),
        Just(EndpointKind::Node)
    ];
    // Keys from a tiny alphabet collide once dots become underscores ("a.b" and "a_b").
    let key = prop_oneof![text(), "[a._]{0,3}".prop_map(|s| Arc::from(s.as_str()))];
    let labels = proptest::collection::vec((key, text()), 0..6);
    proptest::option::of(
        (
            kind,
            text(),
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
            labels,
        )
            .prop_map(
                |(
                    kind,
                    namespace,
                    pod_name,
                    pod_uid,
                    workload_kind,
                    workload_name,
                    service_name,
                    node_name,
                    labels,
                )| {
                    Arc::new(K8sEndpoint {
                        kind,
                        namespace,
                        pod_name,
                        pod_uid,
                        workload_kind,
                        workload_name,
                        service_name,
                        node_name,
                        labels: labels.into(),
                        encoded: Default::default(),
                        edge: Default::default(),
                    })
                },
            ),
    )
    .boxed()
}

fn record() -> BoxedStrategy<FlowRecord> {
    let protocol = prop_oneof![
        Just(Protocol::Ipfix),
        Just(Protocol::NetflowV9),
        Just(Protocol::NetflowV5)
    ];
    let addressing = (
        ip(),
        any::<u16>(),
        any::<u32>(),
        protocol,
        any::<u32>(),
        ip(),
        ip(),
        any::<u16>(),
        any::<u16>(),
    )
        .boxed();
    let proto = prop_oneof![Just(6u8), Just(17u8), Just(1u8), Just(58u8), any::<u8>()];
    let traffic = (
        proto,
        proptest::option::of(any::<u16>()),
        counters(),
        proptest::option::of(counters()),
        any::<u16>(),
        any::<u16>(),
        time(),
        time(),
        proptest::option::of(any::<u8>()),
        proptest::option::of(prop_oneof![Just(1u8), Just(2u8), any::<u8>()]),
    )
        .boxed();
    let extra = (
        nat(),
        nat(),
        proptest::option::of(any::<u8>()),
        inline(),
        inline(),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
        (opt_text(), opt_text(), opt_text()),
    )
        .boxed();
    (addressing, traffic, extra)
        .prop_map(
            |(
                (exp_ip, exp_port, observation_domain, protocol, export_time, src, dst, sport, dport),
                (
                    proto,
                    icmp_type_code,
                    forward,
                    reverse,
                    tcp_flags,
                    reverse_tcp_flags,
                    start_ms,
                    end_ms,
                    end_reason,
                    biflow_direction,
                ),
                (
                    post_nat_src,
                    post_nat_dst,
                    nat_event,
                    community_id,
                    post_nat_community_id,
                    conntrack_id,
                    conntrack_mark,
                    (pod_name, pod_namespace, node_name),
                ),
            )| FlowRecord {
                exporter: SocketAddr::new(exp_ip, exp_port),
                observation_domain,
                protocol,
                export_time,
                sequence: 0,
                position: 0,
                src,
                dst,
                sport,
                dport,
                proto,
                icmp_type_code,
                forward,
                reverse,
                tcp_flags,
                reverse_tcp_flags,
                start_ms,
                end_ms,
                end_reason,
                biflow_direction,
                post_nat_src,
                post_nat_dst,
                nat_event,
                community_id,
                post_nat_community_id,
                conntrack_id,
                conntrack_mark,
                observer: Observer {
                    pod_name,
                    pod_namespace,
                    node_name,
                },
            },
        )
        .boxed()
}

fn flow() -> impl Strategy<Value = EnrichedFlow> {
    (
        record(),
        "[\\PC]{0,11}",
        endpoint(),
        endpoint(),
        endpoint(),
        proptest::option::of((ip(), any::<u16>())),
        any::<bool>(),
    )
        .prop_map(
            |(record, cid, source, destination, backend, backend_addr, duplicate)| EnrichedFlow {
                record,
                community_id: InlineStr::new(&cid).unwrap(),
                source,
                destination,
                backend,
                backend_addr,
                duplicate,
            },
        )
}

/// Parses JSON and fails on a repeated key in any object (serde_json::Value keeps the last silently;
/// Elasticsearch rejects the document).
struct NoDuplicateKeys;

impl<'de> de::Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDuplicateKeys)
    }
}

impl<'de> Visitor<'de> for NoDuplicateKeys {
    type Value = NoDuplicateKeys;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!("repeated key {key:?}")));
            }
            map.next_value::<NoDuplicateKeys>()?;
        }
        Ok(NoDuplicateKeys)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<NoDuplicateKeys>()?.is_some() {}
        Ok(NoDuplicateKeys)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_flow_encodes_to_a_valid_document(
        flow in flow(),
        cluster in proptest::option::of("[\\PC\"\\\\\u{0}-\u{1f}]{0,10}"),
        namespace in proptest::option::of("[a-z0-9]{1,10}"),
        kubernetes in any::<bool>(),
        created_ms in time(),
    ) {
        let ctx = Context {
            created_ms,
            cluster_name: cluster.as_deref(),
            data_stream_namespace: namespace.as_deref(),
            kubernetes,
            exporter_names: None,
        };
        let mut buf = Vec::new();
        encode(&flow, &ctx, &mut buf);
        let text = std::str::from_utf8(&buf).unwrap();
        prop_assert!(!text.contains('\n'));
        serde_json::from_str::<NoDuplicateKeys>(text).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
        let doc: serde_json::Value = serde_json::from_str(text).unwrap();
        common::check_types(&doc);
        // Always present, whatever the flow.
        for path in ["/@timestamp", "/event/created", "/network/community_id", "/source/ip", "/destination/ip"] {
            prop_assert!(doc.pointer(path).is_some(), "{path} missing: {text}");
        }
        prop_assert_eq!(doc["network"]["community_id"].as_str(), Some(flow.community_id.as_str()));
        // Reusing a cleared buffer gives the same bytes.
        let first = buf.clone();
        buf.clear();
        encode(&flow, &ctx, &mut buf);
        prop_assert_eq!(first, buf);
    }

    #[test]
    fn the_encoder_by_shapes_writes_what_the_field_by_field_encoder_writes(
        flows in proptest::collection::vec(flow(), 1..8),
        kubernetes in any::<bool>(),
        created_ms in time(),
    ) {
        let ctx = Context {
            created_ms,
            cluster_name: Some("prod"),
            data_stream_namespace: None,
            kubernetes,
            exporter_names: None,
        };
        // One encoder for every case: shapes made from earlier flows serve later ones.
        thread_local!(static SHAPED: RefCell<Encoder> = RefCell::new(Encoder::new()));
        let mut want = vec![0u8; 1 << 16];
        let mut got = vec![0xAAu8; 1 << 16];
        for flow in &flows {
            let n = encode_into(flow, &ctx, &mut want).unwrap();
            let m = SHAPED.with(|e| e.borrow_mut().encode_into(flow, &ctx, &mut got)).unwrap();
            prop_assert_eq!(
                std::str::from_utf8(&got[..m]).unwrap(),
                std::str::from_utf8(&want[..n]).unwrap()
            );
        }
        // Too small a buffer is reported, as by the field-by-field encoder.
        let short = SHAPED.with(|e| e.borrow_mut().encode_into(&flows[0], &ctx, &mut got[..40]));
        prop_assert!(short.is_none());
        prop_assert!(SHAPED.with(|e| e.borrow().shapes()) > 0);
    }
}
