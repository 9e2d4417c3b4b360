//! The one table of every field the ECS encoder can write.
//!
//! Each row names a field, its Elasticsearch type, whether it is standard ECS (and must exist in ECS
//! [`ECS_VERSION`] with that type) or podflow's own, whether it holds an array, and what it means.
//! Everything else derives from this table: the encoder writes fields in table order (one `match` arm per
//! [`Key`], so a row without an encoder arm does not compile), the index template maps every row with its
//! type, and the tests check the standard rows against ECS's `ecs_flat.yml` and every document against the
//! types. To add a field: add a row here, then the encoder arm the compiler asks for.
//!
//! Rows sharing a dotted prefix are contiguous, so the encoder can write nested JSON objects in one pass
//! (a test checks it).
//!
//! Custom fields live under `source.kubernetes.*`, `destination.kubernetes.*` (ECS has no per-endpoint
//! Kubernetes fields) and `podflow.*`.
//!
//! Kubernetes labels (`*.kubernetes.labels`) are an object of keywords whose keys are the label keys with
//! every `.` replaced by `_` and `/` kept, as Elastic's `add_kubernetes_metadata` does by default
//! (`labels.dedot`): `app.kubernetes.io/name` is written `source.kubernetes.labels.app_kubernetes_io/name`,
//! so queries read like those on Elastic's own `kubernetes.labels.*`. Without it, Elasticsearch would split
//! `app.kubernetes.io/name` into nested objects `app` -> `kubernetes` -> `io/name`.

/// The ECS release the documents follow (`ecs.version`).
pub const ECS_VERSION: &str = "9.4.0";

/// An Elasticsearch field type, as ECS names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    /// `date`: written as RFC 3339 UTC with milliseconds, `2024-05-01T12:00:00.123Z`.
    Date,
    /// `keyword`: a string.
    Keyword,
    /// `constant_keyword`: a string with one value per index (the data stream fields).
    ConstantKeyword,
    /// `long`: a signed 64-bit integer.
    Long,
    /// `ip`: an IPv4 or IPv6 address as text.
    Ip,
    /// `boolean`.
    Boolean,
    /// `object` whose members are keywords (Kubernetes labels, with keys of their own).
    Object,
}

impl Type {
    /// The type's name in ECS and in Elasticsearch mappings.
    pub fn as_str(self) -> &'static str {
        match self {
            Type::Date => "date",
            Type::Keyword => "keyword",
            Type::ConstantKeyword => "constant_keyword",
            Type::Long => "long",
            Type::Ip => "ip",
            Type::Boolean => "boolean",
            Type::Object => "object",
        }
    }
}

/// Where a field is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A standard ECS field: it exists in ECS [`ECS_VERSION`] with the same type.
    Std,
    /// podflow's own field: not in ECS.
    Custom,
}

/// How many values a field holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shape {
    /// One value.
    One,
    /// A JSON array of values (ECS `normalize: array`).
    Many,
}

/// One row of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// What the encoder matches on.
    pub key: Key,
    /// The dotted field name.
    pub name: &'static str,
    /// Its type.
    pub ty: Type,
    /// Standard ECS or podflow's own.
    pub origin: Origin,
    /// One value or an array.
    pub shape: Shape,
    /// What it holds, for operators.
    pub doc: &'static str,
}

/// What [`for_each_key`] calls.
pub(crate) trait EachKey {
    /// Called once per row, in table order.
    fn field(&mut self, key: Key);
}

/// Builds [`Key`] and [`FIELDS`] from one list, so they cannot disagree.
macro_rules! table {
    ($($key:ident: $name:literal, $ty:ident, $origin:ident, $shape:ident, $doc:literal;)*) => {
        /// Names one row of [`FIELDS`]; the encoder has one arm per variant.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Key {
            $(
                #[doc = concat!("`", $name, "`: ", $doc)]
                $key,
            )*
        }

        /// Every field the encoder can write, in the order it writes them.
        pub static FIELDS: &[Field] = &[
            $(Field {
                key: Key::$key,
                name: $name,
                ty: Type::$ty,
                origin: Origin::$origin,
                shape: Shape::$shape,
                doc: $doc,
            },)*
        ];

        /// Every field's name, in table order: what the JSON writer's layout is computed from when the
        /// collector is compiled.
        pub(crate) const NAMES: &[&str] = &[$($name,)*];

        /// Calls `f` with every key, in table order, one call per row written out: with a `field` that
        /// is `#[inline(always)]`, each call sees its key as a constant, so an encoder matching on it
        /// runs straight through its arms instead of jumping through a table for every field.
        #[inline(always)]
        pub(crate) fn for_each_key(f: &mut impl EachKey) {
            $(f.field(Key::$key);)*
        }

        /// Calls `f` with `key`, as a constant in each arm of one `match`: with a `field` that is
        /// `#[inline(always)]`, each arm is that key's code alone (the shape encoder's dispatch on the
        /// fields a document has, one jump per value).
        #[inline(always)]
        pub(crate) fn with_key(key: Key, f: &mut impl EachKey) {
            match key {
                $(Key::$key => f.field(Key::$key),)*
            }
        }
    };
}

table! {
    Timestamp: "@timestamp", Date, Std, One, "The flow's end (its last packet); else the export time; else event.created.";
    EcsVersion: "ecs.version", Keyword, Std, One, "ECS release the document follows.";
    DataStreamType: "data_stream.type", ConstantKeyword, Std, One, "`logs`, when written to a data stream.";
    DataStreamDataset: "data_stream.dataset", ConstantKeyword, Std, One, "`podflow.flows`, when written to a data stream.";
    DataStreamNamespace: "data_stream.namespace", ConstantKeyword, Std, One, "The data stream's namespace, when written to one.";
    EventKind: "event.kind", Keyword, Std, One, "Always `event`.";
    EventCategory: "event.category", Keyword, Std, Many, "Always `[network]`.";
    EventType: "event.type", Keyword, Std, Many, "`[connection]`, plus `end` when the flow ended (any end reason but active timeout).";
    EventAction: "event.action", Keyword, Std, One, "Always `network_flow`.";
    EventDataset: "event.dataset", Keyword, Std, One, "Always `podflow.flows`.";
    EventModule: "event.module", Keyword, Std, One, "Always `podflow`.";
    EventStart: "event.start", Date, Std, One, "The flow's first packet.";
    EventEnd: "event.end", Date, Std, One, "The flow's last packet.";
    EventDuration: "event.duration", Long, Std, One, "event.end minus event.start, in nanoseconds.";
    EventCreated: "event.created", Date, Std, One, "When the collector wrote the document.";
    SourceAddress: "source.address", Keyword, Std, One, "The source address as text (same as source.ip).";
    SourceIp: "source.ip", Ip, Std, One, "Source address (of the first packet, or the initiator for podflow's biflows).";
    SourcePort: "source.port", Long, Std, One, "Source port (TCP, UDP, SCTP, DCCP, UDP-Lite only).";
    SourceBytes: "source.bytes", Long, Std, One, "Octets sent by the source (IP packets, header included).";
    SourcePackets: "source.packets", Long, Std, One, "Packets sent by the source.";
    SourceNatIp: "source.nat.ip", Ip, Std, One, "Source address after NAT (SNAT, masquerade), when translated.";
    SourceNatPort: "source.nat.port", Long, Std, One, "Source port after NAT, when translated.";
    SourceK8sNamespace: "source.kubernetes.namespace", Keyword, Custom, One, "Namespace of the source's pod or Service.";
    SourceK8sPodName: "source.kubernetes.pod.name", Keyword, Custom, One, "Name of the source's pod.";
    SourceK8sPodUid: "source.kubernetes.pod.uid", Keyword, Custom, One, "UID of the source's pod.";
    SourceK8sWorkloadKind: "source.kubernetes.workload.kind", Keyword, Custom, One, "Kind of the pod's owning workload (Deployment, StatefulSet, DaemonSet, Job, CronJob, ReplicaSet, Pod).";
    SourceK8sWorkloadName: "source.kubernetes.workload.name", Keyword, Custom, One, "Name of the owning workload.";
    SourceK8sServiceName: "source.kubernetes.service.name", Keyword, Custom, One, "Service of the address (a ClusterIP) or selecting the pod.";
    SourceK8sNodeName: "source.kubernetes.node.name", Keyword, Custom, One, "Node of the pod, or the node owning the address.";
    SourceK8sLabels: "source.kubernetes.labels", Object, Custom, One, "Labels of the pod (or Service, node); keys with `.` written as `_`.";
    DestinationAddress: "destination.address", Keyword, Std, One, "The destination address as text (same as destination.ip).";
    DestinationIp: "destination.ip", Ip, Std, One, "Destination address.";
    DestinationPort: "destination.port", Long, Std, One, "Destination port (TCP, UDP, SCTP, DCCP, UDP-Lite only).";
    DestinationBytes: "destination.bytes", Long, Std, One, "Octets sent by the destination (biflow records only).";
    DestinationPackets: "destination.packets", Long, Std, One, "Packets sent by the destination (biflow records only).";
    DestinationNatIp: "destination.nat.ip", Ip, Std, One, "Destination address after NAT (DNAT: a Service's backend pod), when translated.";
    DestinationNatPort: "destination.nat.port", Long, Std, One, "Destination port after NAT, when translated.";
    DestinationK8sNamespace: "destination.kubernetes.namespace", Keyword, Custom, One, "Namespace of the destination's pod or Service.";
    DestinationK8sPodName: "destination.kubernetes.pod.name", Keyword, Custom, One, "Name of the destination's pod.";
    DestinationK8sPodUid: "destination.kubernetes.pod.uid", Keyword, Custom, One, "UID of the destination's pod.";
    DestinationK8sWorkloadKind: "destination.kubernetes.workload.kind", Keyword, Custom, One, "Kind of the pod's owning workload.";
    DestinationK8sWorkloadName: "destination.kubernetes.workload.name", Keyword, Custom, One, "Name of the owning workload.";
    DestinationK8sServiceName: "destination.kubernetes.service.name", Keyword, Custom, One, "Service of the address (a ClusterIP) or selecting the pod.";
    DestinationK8sNodeName: "destination.kubernetes.node.name", Keyword, Custom, One, "Node of the pod, or the node owning the address.";
    DestinationK8sLabels: "destination.kubernetes.labels", Object, Custom, One, "Labels of the pod (or Service, node); keys with `.` written as `_`.";
    ClientAddress: "client.address", Keyword, Std, One, "The initiator's address as text, when the initiator is known.";
    ClientIp: "client.ip", Ip, Std, One, "The initiator's address.";
    ClientPort: "client.port", Long, Std, One, "The initiator's port.";
    ClientBytes: "client.bytes", Long, Std, One, "Octets sent by the initiator.";
    ClientPackets: "client.packets", Long, Std, One, "Packets sent by the initiator.";
    ClientNatIp: "client.nat.ip", Ip, Std, One, "The initiator's address after NAT.";
    ClientNatPort: "client.nat.port", Long, Std, One, "The initiator's port after NAT.";
    ServerAddress: "server.address", Keyword, Std, One, "The responder's address as text, when the initiator is known.";
    ServerIp: "server.ip", Ip, Std, One, "The responder's address.";
    ServerPort: "server.port", Long, Std, One, "The responder's port.";
    ServerBytes: "server.bytes", Long, Std, One, "Octets sent by the responder.";
    ServerPackets: "server.packets", Long, Std, One, "Packets sent by the responder.";
    ServerNatIp: "server.nat.ip", Ip, Std, One, "The responder's address after NAT.";
    ServerNatPort: "server.nat.port", Long, Std, One, "The responder's port after NAT.";
    NetworkTransport: "network.transport", Keyword, Std, One, "IANA keyword of the IP protocol, lowercase (tcp, udp, icmp, ipv6-icmp, sctp, ...).";
    NetworkIanaNumber: "network.iana_number", Keyword, Std, One, "IP protocol number, as text.";
    NetworkType: "network.type", Keyword, Std, One, "`ipv4` or `ipv6`.";
    NetworkBytes: "network.bytes", Long, Std, One, "Octets of both directions.";
    NetworkPackets: "network.packets", Long, Std, One, "Packets of both directions.";
    NetworkCommunityId: "network.community_id", Keyword, Std, One, "Community ID v1 of the flow: the exporter's, else computed by the collector.";
    NetworkDirection: "network.direction", Keyword, Std, One, "Relative to the cluster: internal, inbound, outbound, external; unknown without a Kubernetes view.";
    RelatedIp: "related.ip", Ip, Std, Many, "Every address of the flow: endpoints, their NAT translations, the backend.";
    ObserverHostname: "observer.hostname", Keyword, Std, One, "The exporter's host: the probe's node, else the name the collector knows for the exporter address.";
    ObserverIp: "observer.ip", Ip, Std, Many, "The exporter's address (source of its datagrams).";
    ObserverType: "observer.type", Keyword, Std, One, "Always `sensor`: a passive flow meter.";
    OrchestratorType: "orchestrator.type", Keyword, Std, One, "Always `kubernetes`.";
    OrchestratorClusterName: "orchestrator.cluster.name", Keyword, Std, One, "The cluster's name, when configured.";
    PodflowEndReason: "podflow.end_reason", Keyword, Custom, One, "IPFIX flowEndReason: idle_timeout, active_timeout, end_of_flow, forced_end, lack_of_resources (else the number).";
    PodflowTcpFlags: "podflow.tcp.flags", Long, Custom, One, "TCP flags seen from the source (tcpControlBits), OR-ed over the flow.";
    PodflowTcpReverseFlags: "podflow.tcp.reverse_flags", Long, Custom, One, "TCP flags seen from the destination.";
    PodflowIcmpType: "podflow.icmp.type", Long, Custom, One, "ICMP or ICMPv6 type.";
    PodflowIcmpCode: "podflow.icmp.code", Long, Custom, One, "ICMP or ICMPv6 code.";
    PodflowNatEvent: "podflow.nat_event", Long, Custom, One, "IPFIX natEvent, for NAT event records.";
    PodflowPostNatCommunityId: "podflow.post_nat_community_id", Keyword, Custom, One, "Community ID over the translated tuple: the same for every observer of one connection.";
    PodflowConntrackId: "podflow.conntrack.id", Long, Custom, One, "Linux conntrack id of the connection.";
    PodflowConntrackMark: "podflow.conntrack.mark", Long, Custom, One, "Linux conntrack mark.";
    PodflowObserverPodName: "podflow.observer.pod.name", Keyword, Custom, One, "Pod the probe runs in.";
    PodflowObserverPodNamespace: "podflow.observer.pod.namespace", Keyword, Custom, One, "Namespace of the probe's pod.";
    PodflowObserverNodeName: "podflow.observer.node.name", Keyword, Custom, One, "Node the probe runs on.";
    PodflowBackendIp: "podflow.backend.ip", Ip, Custom, One, "Address of the backend that served a connection to a Service.";
    PodflowBackendPort: "podflow.backend.port", Long, Custom, One, "Port of that backend.";
    PodflowBackendK8sNamespace: "podflow.backend.kubernetes.namespace", Keyword, Custom, One, "Namespace of the backend pod.";
    PodflowBackendK8sPodName: "podflow.backend.kubernetes.pod.name", Keyword, Custom, One, "Name of the backend pod.";
    PodflowBackendK8sPodUid: "podflow.backend.kubernetes.pod.uid", Keyword, Custom, One, "UID of the backend pod.";
    PodflowBackendK8sWorkloadKind: "podflow.backend.kubernetes.workload.kind", Keyword, Custom, One, "Kind of the backend's workload.";
    PodflowBackendK8sWorkloadName: "podflow.backend.kubernetes.workload.name", Keyword, Custom, One, "Name of the backend's workload.";
    PodflowBackendK8sNodeName: "podflow.backend.kubernetes.node.name", Keyword, Custom, One, "Node of the backend pod.";
    PodflowDuplicate: "podflow.duplicate", Boolean, Custom, One, "True when another observer already reported this connection (count it once).";
    PodflowExporterPort: "podflow.exporter.port", Long, Custom, One, "UDP source port of the exporter's datagrams.";
    PodflowExporterObservationDomainId: "podflow.exporter.observation_domain_id", Long, Custom, One, "IPFIX Observation Domain ID (NetFlow v9 Source ID; v5 engine type and id).";
    PodflowExporterVersion: "podflow.exporter.version", Long, Custom, One, "Protocol version the exporter spoke: 5, 9 or 10 (IPFIX).";
    PodflowExporterTimestamp: "podflow.exporter.timestamp", Date, Custom, One, "Export time from the message header.";
}

/// The row of `key`.
pub fn field(key: Key) -> &'static Field {
    // FIELDS lists the variants in declaration order, so the discriminant is the index.
    &FIELDS[key as usize]
}

/// The row named `name`, if any.
pub fn by_name(name: &str) -> Option<&'static Field> {
    FIELDS.iter().find(|f| f.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn keys_index_their_rows() {
        for (i, f) in FIELDS.iter().enumerate() {
            assert_eq!(f.key as usize, i, "{}", f.name);
            assert_eq!(field(f.key).name, f.name);
        }
        struct Keys(Vec<Key>);
        impl EachKey for Keys {
            fn field(&mut self, key: Key) {
                self.0.push(key);
            }
        }
        let mut keys = Keys(Vec::new());
        for_each_key(&mut keys);
        let keys = keys.0;
        assert_eq!(keys, FIELDS.iter().map(|f| f.key).collect::<Vec<_>>());
        assert_eq!(NAMES, FIELDS.iter().map(|f| f.name).collect::<Vec<_>>());
    }

    #[test]
    fn names_are_unique_and_plain() {
        let mut seen = HashSet::new();
        for f in FIELDS {
            assert!(seen.insert(f.name), "{} twice", f.name);
            // The encoder writes names without escaping them.
            assert!(
                f.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.@".contains(&b)),
                "{}",
                f.name
            );
            assert!(!f.name.starts_with('.') && !f.name.ends_with('.') && !f.name.contains(".."));
            assert!(!f.doc.is_empty());
        }
    }

    #[test]
    fn objects_are_contiguous_and_leaves_are_not_objects() {
        // Every proper prefix ("source", "source.nat") names an object whose rows must follow one
        // another, or the encoder would open the same object twice.
        let mut closed: HashSet<String> = HashSet::new();
        let mut open: Vec<String> = Vec::new();
        for f in FIELDS {
            let parents: Vec<String> = prefixes(f.name);
            while let Some(top) = open.last() {
                if parents.contains(top) {
                    break;
                }
                closed.insert(open.pop().unwrap_or_default());
            }
            for p in parents {
                assert!(!closed.contains(&p), "{} reopens {p}", f.name);
                assert!(by_name(&p).is_none(), "{p} is both a field and an object");
                if !open.contains(&p) {
                    open.push(p);
                }
            }
        }
    }

    fn prefixes(name: &str) -> Vec<String> {
        name.match_indices('.')
            .map(|(i, _)| name[..i].to_owned())
            .collect()
    }
}
