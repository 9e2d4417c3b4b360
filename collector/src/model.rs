//! The collector's one flow model: what any exporter said about a flow (IPFIX, NetFlow v9 or v5), and what
//! the collector learned about its endpoints. Decoders produce [`FlowRecord`]s; enrichment wraps them in
//! [`EnrichedFlow`]; every sink reads only these types.
//!
//! Strings that repeat across records (Kubernetes names, observer names) are shared `Arc<str>`; the
//! Community ID is held inline, so a record costs no heap allocation of its own.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

use arrayvec::ArrayString;

/// A short string held inline (Community IDs are 30 characters: `1:` and 28 of base64). Read back
/// without checking its UTF-8 again: every document and duplicate lookup reads it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct InlineStr(ArrayString<47>);

impl InlineStr {
    /// The empty string.
    pub const EMPTY: InlineStr = InlineStr(ArrayString::new_const());

    /// Copies `s` if it fits in 47 octets.
    pub fn new(s: &str) -> Option<Self> {
        ArrayString::from(s).ok().map(InlineStr)
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for InlineStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for InlineStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The protocol an exporter spoke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// NetFlow v5.
    NetflowV5,
    /// NetFlow v9.
    NetflowV9,
    /// IPFIX.
    Ipfix,
}

impl Protocol {
    /// Version number as in the message header.
    pub fn version(self) -> u16 {
        match self {
            Protocol::NetflowV5 => 5,
            Protocol::NetflowV9 => 9,
            Protocol::Ipfix => 10,
        }
    }

    /// The protocol as metrics label it and logs name it (`unknown` when no datagram said).
    pub fn label(protocol: Option<Protocol>) -> &'static str {
        match protocol {
            Some(Protocol::Ipfix) => "ipfix",
            Some(Protocol::NetflowV9) => "netflow_v9",
            Some(Protocol::NetflowV5) => "netflow_v5",
            None => "unknown",
        }
    }
}

/// Octets and packets of one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Octets (of IP packets, for podflow's exporter; other exporters say what they count).
    pub octets: u64,
    /// Packets.
    pub packets: u64,
}

/// An address and port after NAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NatEndpoint {
    /// Translated address, if the exporter sent one.
    pub ip: Option<IpAddr>,
    /// Translated port, if the exporter sent one.
    pub port: Option<u16>,
}

/// podflow's observer fields: who captured the flow (sidecars), from the exporter's enterprise elements.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Observer {
    /// Pod the probe runs in.
    pub pod_name: Option<Arc<str>>,
    /// Its namespace.
    pub pod_namespace: Option<Arc<str>>,
    /// Node the probe runs on.
    pub node_name: Option<Arc<str>>,
}

/// One flow record as an exporter reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    /// Exporter address and source port.
    pub exporter: SocketAddr,
    /// Observation Domain ID (IPFIX) or Source ID (v9); engine type/id for v5.
    pub observation_domain: u32,
    /// The protocol the exporter spoke.
    pub protocol: Protocol,
    /// Export time from the message header, seconds since the Unix epoch.
    pub export_time: u32,
    /// Sequence number from the message header (IPFIX: data records before this message; NetFlow v9:
    /// export packets; v5: flows). With the exporter, the domain, the export time and
    /// [`position`](Self::position) it identifies the record: the Elasticsearch sink derives its
    /// document `_id` from them, so the same datagrams make the same documents.
    pub sequence: u32,
    /// Place of the record among the data records its message yielded, from 0 (records of sets held for
    /// their template and decoded with a later message continue that message's count).
    pub position: u32,
    /// Source address (the initiator when `biflow_direction` is 1).
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port (0 when the protocol has none).
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// IP protocol number.
    pub proto: u8,
    /// ICMP type * 256 + code, for ICMP and ICMPv6.
    pub icmp_type_code: Option<u16>,
    /// Source to destination.
    pub forward: Counters,
    /// Destination to source (RFC 5103 reverse counters), for biflow records.
    pub reverse: Option<Counters>,
    /// TCP flags, source to destination.
    pub tcp_flags: u16,
    /// TCP flags, destination to source (biflows).
    pub reverse_tcp_flags: u16,
    /// First packet, Unix milliseconds.
    pub start_ms: u64,
    /// Last packet, Unix milliseconds.
    pub end_ms: u64,
    /// IPFIX flowEndReason.
    pub end_reason: Option<u8>,
    /// IPFIX biflowDirection: 1 the source initiated, 2 the destination did.
    pub biflow_direction: Option<u8>,
    /// Source after NAT (postNATSource*, postNAPTSourceTransportPort).
    pub post_nat_src: Option<NatEndpoint>,
    /// Destination after NAT (postNATDestination*, postNAPTDestinationTransportPort).
    pub post_nat_dst: Option<NatEndpoint>,
    /// natEvent, for NAT event records.
    pub nat_event: Option<u8>,
    /// Community ID the exporter computed (podflow's communityId element).
    pub community_id: Option<InlineStr>,
    /// Community ID over the translated tuple (podflow's postNatCommunityId element).
    pub post_nat_community_id: Option<InlineStr>,
    /// Linux conntrack id.
    pub conntrack_id: Option<u32>,
    /// Linux conntrack mark.
    pub conntrack_mark: Option<u32>,
    /// Who observed the flow.
    pub observer: Observer,
}

impl FlowRecord {
    /// Octets of both directions.
    pub fn octets(&self) -> u64 {
        self.forward.octets + self.reverse.map_or(0, |r| r.octets)
    }

    /// Packets of both directions.
    pub fn packets(&self) -> u64 {
        self.forward.packets + self.reverse.map_or(0, |r| r.packets)
    }

    /// True for a NAT event record (natEvent present) rather than a flow.
    pub fn is_nat_event(&self) -> bool {
        self.nat_event.is_some()
    }
}

/// What kind of Kubernetes object holds an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndpointKind {
    /// A pod on the pod network.
    Pod,
    /// A pod on the host network (shares its node's address).
    HostNetworkPod,
    /// A Service's ClusterIP.
    Service,
    /// A node's own address.
    Node,
}

/// The Kubernetes identity of a flow endpoint at the flow's time.
///
/// Laid out in declaration order, the sinks' text first: in an `Arc`, the reference count that every
/// attribution increments and the pointer to the text every document copies then share a cache line
/// (often the only two lines of the endpoint a flow touches besides the text itself).
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct K8sEndpoint {
    /// This endpoint as a sink writes it, made by the sink on first use: every flow of every answer
    /// about this object version shares the `Arc`, so each endpoint is formatted (and its strings
    /// escaped) once rather than once per flow. Not part of the value (ignored by `==`).
    pub encoded: Encoded,
    /// The numbers the flow metrics' edge batch gave this endpoint (a cache, ignored by `==`).
    pub edge: EdgeSlots,
    /// What holds the address.
    pub kind: EndpointKind,
    /// Namespace (empty for nodes).
    pub namespace: Arc<str>,
    /// Pod name.
    pub pod_name: Option<Arc<str>>,
    /// Pod UID.
    pub pod_uid: Option<Arc<str>>,
    /// Workload kind: Deployment, StatefulSet, DaemonSet, Job, CronJob, ReplicaSet, Pod (bare pods).
    pub workload_kind: Option<Arc<str>>,
    /// Workload name.
    pub workload_name: Option<Arc<str>>,
    /// Service name (for ClusterIPs, and for pods selected by a Service).
    pub service_name: Option<Arc<str>>,
    /// Node name.
    pub node_name: Option<Arc<str>>,
    /// Labels of the pod (or Service, node).
    pub labels: Arc<[(Arc<str>, Arc<str>)]>,
}

/// Text a sink made of a value once, to copy into every document that holds the value. A cache, so
/// two values compare equal whatever their caches hold.
#[derive(Clone, Default)]
pub struct Encoded(OnceLock<Box<[u8]>>);

impl Encoded {
    /// The text, made by `make` the first time.
    pub fn get_or_init(&self, make: impl FnOnce() -> Vec<u8>) -> &[u8] {
        self.0.get_or_init(|| make().into_boxed_slice())
    }
}

impl PartialEq for Encoded {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Encoded {}

impl fmt::Debug for Encoded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.get() {
            Some(text) => write!(f, "Encoded({} octets)", text.len()),
            None => f.write_str("Encoded(not yet)"),
        }
    }
}

/// Where the enrich thread's edge batch ([`crate::sinks::edges::EdgeBatch`]) keeps the numbers it
/// gave an endpoint: its workload's and, for a Service, its name's, each tagged with the generation of
/// the batch's tables (a generation is never 0, so 0 is "none yet"). Reading them is one load from a
/// line the flow has already touched, where a map by the endpoint's address was a lookup per side and
/// record. A cache: two endpoints compare equal whatever it holds, and a clone starts empty.
#[derive(Default)]
pub struct EdgeSlots {
    /// `generation << 32 | number` of the endpoint's workload.
    pub endpoint: AtomicU64,
    /// `generation << 32 | number` of the Service name.
    pub service: AtomicU64,
}

impl Clone for EdgeSlots {
    fn clone(&self) -> Self {
        EdgeSlots::default()
    }
}

impl PartialEq for EdgeSlots {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for EdgeSlots {}

impl fmt::Debug for EdgeSlots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EdgeSlots")
    }
}

/// A flow record with what the collector knows about it.
#[derive(Clone, Debug, PartialEq)]
pub struct EnrichedFlow {
    /// The record as received.
    pub record: FlowRecord,
    /// Community ID of the record's tuple: the exporter's, or computed by the collector.
    pub community_id: InlineStr,
    /// The source endpoint's Kubernetes identity, if it is in the cluster.
    pub source: Option<Arc<K8sEndpoint>>,
    /// The destination endpoint's identity (for a Service ClusterIP: the Service).
    pub destination: Option<Arc<K8sEndpoint>>,
    /// The backend that served a connection to a Service (from NAT fields or NAT events), attributed
    /// at the flow's start; its `service_name` is the Service's (the destination's) when it served one.
    pub backend: Option<Arc<K8sEndpoint>>,
    /// The backend's address and port after NAT, when known.
    pub backend_addr: Option<(IpAddr, u16)>,
    /// The same connection was already reported by another observer: counters count it once.
    pub duplicate: bool,
}
