//! The ECS encoder: one [`EnrichedFlow`] to one JSON document, appended to a caller's buffer.
//!
//! Pure: no I/O, no clock (the document's `event.created` comes in through [`Context`]), no allocation
//! beyond the buffer's own growth, so a sink that reuses its buffer encodes with no allocation at all.
//! Fields are written in the order of [`FIELDS`], one `match` arm per [`Key`]; a field whose value is
//! unknown is left out rather than written as `null`.
//!
//! Choices the table's docs do not spell out:
//! * `client.*`/`server.*` are written only when the record says who initiated (`biflowDirection` 1: the
//!   source, 2: the destination); they repeat that endpoint's address, port, counters and NAT.
//! * `network.direction` follows ECS's perimeter-based values with the cluster as the perimeter: from the
//!   initiator (else the source) to the responder, `internal` when both endpoints belong to the cluster,
//!   `inbound` when only the responder does, `outbound` when only the initiator does, `external` when
//!   neither does. ECS's `ingress`/`egress` are for a single host's point of view, which a cluster-wide
//!   collector does not have. Without a Kubernetes view ([`Context::kubernetes`] false) it is `unknown`.
//! * `destination.kubernetes.*` of a Service connection whose backend is known names the backend's pod,
//!   workload, node and labels, with `service.name` the Service's (the backend as it served it).
//! * `*.nat.*` are written only when the translation changes the address or port; a Service's backend
//!   learned by the NAT join stands in for missing post-NAT destination fields.
//! * Ports are written only for protocols that have them; ICMP type and code go to `podflow.icmp.*`.

use std::cell::Cell;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;
use std::thread::LocalKey;

use super::fields::{ECS_VERSION, EachKey, Key, NAMES, for_each_key};
use super::json::{self, Cursor, DateText, IpText, Layout, MAX_DATE_MS, ObjectWriter, Word};
use crate::model::{Counters, EnrichedFlow, FlowRecord, K8sEndpoint, NatEndpoint};

/// What the encoder needs besides the flow.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// `event.created`: when the document is written, Unix milliseconds (the caller reads the clock).
    pub created_ms: u64,
    /// `orchestrator.cluster.name`, when configured.
    pub cluster_name: Option<&'a str>,
    /// The data stream namespace when documents go to `logs-podflow.flows-<namespace>`: adds the
    /// `data_stream.*` fields, which must then match the stream's name.
    pub data_stream_namespace: Option<&'a str>,
    /// Endpoints were attributed against a Kubernetes view, so an endpoint without an identity is
    /// outside the cluster. When false, `network.direction` is `unknown`.
    pub kubernetes: bool,
    /// Host names the collector knows for exporter addresses, used for `observer.hostname` when the
    /// record does not name its node.
    pub exporter_names: Option<&'a dyn ExporterNames>,
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("created_ms", &self.created_ms)
            .field("cluster_name", &self.cluster_name)
            .field("data_stream_namespace", &self.data_stream_namespace)
            .field("kubernetes", &self.kubernetes)
            .field("exporter_names", &self.exporter_names.is_some())
            .finish()
    }
}

/// Host names of exporters, by address (for example the node whose InternalIP sends the datagrams).
pub trait ExporterNames {
    /// The host name of the exporter at `exporter`, if known.
    fn hostname(&self, exporter: IpAddr) -> Option<&str>;
}

impl<S: BuildHasher> ExporterNames for HashMap<IpAddr, Arc<str>, S> {
    fn hostname(&self, exporter: IpAddr) -> Option<&str> {
        self.get(&exporter).map(|s| &**s)
    }
}

/// `data_stream.dataset` and `event.dataset`.
pub const DATASET: &str = "podflow.flows";

/// The nesting of [`FIELDS`], worked out at compile time.
pub(super) static LAYOUT: Layout<{ NAMES.len() }> = Layout::new(NAMES);

/// A `&'static Word`: `word!("tcp")` is the JSON string `"tcp"`, `word!(raw "[1]")` the text as it is;
/// made, and checked to need no escaping, at compile time.
macro_rules! word {
    (raw $s:expr) => {{
        const W: Word = Word::raw($s);
        &W
    }};
    ($s:expr) => {{
        const W: Word = Word::quoted($s);
        &W
    }};
}

/// Room made for a document before writing it; one that needs more is written again with twice as much.
/// Documents without Kubernetes labels take about 1.3 KiB.
const ROOM: usize = 3072;

/// Appends the ECS document of `flow` to `out` (no newline).
pub fn encode(flow: &EnrichedFlow, ctx: &Context<'_>, out: &mut Vec<u8>) {
    let start = out.len();
    let mut room = ROOM;
    loop {
        out.resize(start + room, 0);
        if let Some(n) = encode_into(flow, ctx, &mut out[start..]) {
            out.truncate(start + n);
            return;
        }
        room *= 2;
    }
}

/// Writes the ECS document of `flow` at the start of `buf` and returns its length, or `None` when it
/// does not fit (what `buf` then holds is unspecified). Whatever `buf` held before is overwritten, so a
/// caller can reuse one buffer for every document without clearing it.
pub fn encode_into(flow: &EnrichedFlow, ctx: &Context<'_>, buf: &mut [u8]) -> Option<usize> {
    let doc = Doc::new(flow, ctx);
    let mut cursor = Cursor::new(buf);
    let mut each = Each {
        doc: &doc,
        w: ObjectWriter::begin(&mut cursor, &LAYOUT),
    };
    for_each_key(&mut each);
    each.w.end();
    cursor.finish()
}

/// Writes every field of a document in table order.
struct Each<'d, 'w, 'c> {
    doc: &'d Doc<'d>,
    w: ObjectWriter<'w, 'c>,
}

impl EachKey for Each<'_, '_, '_> {
    #[inline(always)]
    fn field(&mut self, key: Key) {
        self.doc.write(key, &mut self.w);
    }
}

thread_local! {
    /// The last `event.created` formatted, and its text.
    static CREATED: Cell<(u64, Option<DateText>)> = const { Cell::new((0, None)) };
    /// The last `podflow.exporter.timestamp` formatted, and its text.
    static EXPORTED: Cell<(u64, Option<DateText>)> = const { Cell::new((0, None)) };
}

/// The text of `ms`, formatted again only when it differs from the last one `cache` holds.
fn cached_date(cache: &'static LocalKey<Cell<(u64, Option<DateText>)>>, ms: u64) -> DateText {
    cache.with(|c| match c.get() {
        (last, Some(text)) if last == ms => text,
        _ => {
            let text = DateText::new(ms);
            c.set((ms, Some(text)));
            text
        }
    })
}

/// Which endpoint of the record.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Source,
    Destination,
}

/// One endpoint as the document shows it.
#[derive(Clone, Copy)]
struct Endpoint {
    ip: IpAddr,
    port: u16,
    sent: Option<Counters>,
    nat: Option<NatEndpoint>,
}

/// A flow with what the fields need worked out once.
pub(super) struct Doc<'a> {
    flow: &'a EnrichedFlow,
    r: &'a FlowRecord,
    ctx: &'a Context<'a>,
    timestamp_ms: u64,
    /// `@timestamp` as text, which `event.end` usually repeats.
    timestamp_text: DateText,
    start_ms: Option<u64>,
    end_ms: Option<u64>,
    initiator: Option<Side>,
    has_ports: bool,
    src_nat: Option<NatEndpoint>,
    dst_nat: Option<NatEndpoint>,
    /// The addresses as text: each is written several times (address, ip, client or server, related).
    src_text: IpText,
    dst_text: IpText,
}

impl<'a> Doc<'a> {
    pub(super) fn new(flow: &'a EnrichedFlow, ctx: &'a Context<'a>) -> Self {
        let r = &flow.record;
        let start_ms = date(r.start_ms);
        let end_ms = date(r.end_ms);
        let export_ms = date(u64::from(r.export_time) * 1000);
        let timestamp_ms = end_ms.or(export_ms).unwrap_or(ctx.created_ms.min(MAX_DATE_MS));
        let initiator = match r.biflow_direction {
            Some(1) => Some(Side::Source),
            Some(2) => Some(Side::Destination),
            _ => None,
        };
        let dst_nat = translated(r.post_nat_dst, r.dst, r.dport).or_else(|| {
            let (ip, port) = flow.backend_addr?;
            translated(
                Some(NatEndpoint {
                    ip: Some(ip),
                    port: Some(port),
                }),
                r.dst,
                r.dport,
            )
        });
        Doc {
            flow,
            r,
            ctx,
            timestamp_ms,
            timestamp_text: DateText::new(timestamp_ms),
            start_ms,
            end_ms,
            initiator,
            has_ports: matches!(r.proto, 6 | 17 | 33 | 132 | 136),
            src_nat: translated(r.post_nat_src, r.src, r.sport),
            dst_nat,
            src_text: IpText::new(r.src),
            dst_text: IpText::new(r.dst),
        }
    }

    fn endpoint(&self, side: Side) -> Endpoint {
        match side {
            Side::Source => Endpoint {
                ip: self.r.src,
                port: self.r.sport,
                sent: Some(self.r.forward),
                nat: self.src_nat,
            },
            Side::Destination => Endpoint {
                ip: self.r.dst,
                port: self.r.dport,
                sent: self.r.reverse,
                nat: self.dst_nat,
            },
        }
    }

    fn client(&self) -> Option<Endpoint> {
        self.initiator.map(|s| self.endpoint(s))
    }

    fn server(&self) -> Option<Endpoint> {
        self.initiator.map(|s| match s {
            Side::Source => self.endpoint(Side::Destination),
            Side::Destination => self.endpoint(Side::Source),
        })
    }

    fn k8s(&self, side: Side) -> Option<&'a K8sEndpoint> {
        match side {
            Side::Source => self.flow.source.as_deref(),
            // A Service connection with a known backend names the backend (pod, workload, node,
            // labels) and the Service it was reached through.
            Side::Destination => self.flow.backend.as_deref().or(self.flow.destination.as_deref()),
        }
    }

    fn direction(&self) -> &'static Word {
        if !self.ctx.kubernetes {
            return word!("unknown");
        }
        let src_in = self.flow.source.is_some();
        let dst_in = self.flow.destination.is_some();
        let (client_in, server_in) = if self.initiator == Some(Side::Destination) {
            (dst_in, src_in)
        } else {
            (src_in, dst_in)
        };
        match (client_in, server_in) {
            (true, true) => word!("internal"),
            (false, true) => word!("inbound"),
            (true, false) => word!("outbound"),
            (false, false) => word!("external"),
        }
    }

    /// Every address of the flow, each once, in a fixed order.
    fn related_ips(&self) -> ([Option<IpAddr>; 5], usize) {
        let mut ips = [None; 5];
        let mut n = 0;
        let candidates = [
            Some(self.r.src),
            Some(self.r.dst),
            self.src_nat.and_then(|e| e.ip),
            self.dst_nat.and_then(|e| e.ip),
            self.flow.backend_addr.map(|(ip, _)| ip),
        ];
        for ip in candidates.into_iter().flatten() {
            if !ips[..n].contains(&Some(ip)) {
                ips[n] = Some(ip);
                n += 1;
            }
        }
        (ips, n)
    }

    fn observer_hostname(&self) -> Option<&'a str> {
        nonempty(self.r.observer.node_name.as_deref())
            .or_else(|| self.ctx.exporter_names?.hostname(self.r.exporter.ip()))
    }

    /// The value of field `key` for this flow ([`Val::Absent`] when it has none). Inlined into
    /// [`for_each_key`]'s unrolled calls, where `key` is a constant and the match reduces to its arm.
    /// A field that is always the same word when present says so with [`Val::Fixed`], always with
    /// the same word: documents of one shape share its text.
    #[inline(always)]
    pub(super) fn value(&self, key: Key) -> Val<'a> {
        let r = self.r;
        match key {
            Key::Timestamp => Val::Timestamp,
            Key::EcsVersion => Val::Fixed(word!(ECS_VERSION)),
            Key::DataStreamType => opt_str(self.ctx.data_stream_namespace.map(|_| "logs")),
            Key::DataStreamDataset => opt_str(self.ctx.data_stream_namespace.map(|_| DATASET)),
            Key::DataStreamNamespace => opt_str(self.ctx.data_stream_namespace),
            Key::EventKind => Val::Fixed(word!("event")),
            Key::EventCategory => Val::Fixed(word!(raw "[\"network\"]")),
            Key::EventType => {
                // Active timeout (2) reports a flow that goes on; every other end reason ends it.
                let ended = r.end_reason.is_some_and(|reason| reason != 2);
                let types = if ended {
                    word!(raw "[\"connection\",\"end\"]")
                } else {
                    word!(raw "[\"connection\"]")
                };
                Val::Word(types)
            }
            Key::EventAction => Val::Fixed(word!("network_flow")),
            Key::EventDataset => Val::Fixed(word!(DATASET)),
            Key::EventModule => Val::Fixed(word!("podflow")),
            Key::EventStart => self.start_ms.map_or(Val::Absent, Val::Date),
            Key::EventEnd if self.end_ms == Some(self.timestamp_ms) => Val::Timestamp,
            Key::EventEnd => self.end_ms.map_or(Val::Absent, Val::Date),
            Key::EventDuration => {
                let ns = match (self.start_ms, self.end_ms) {
                    (Some(s), Some(e)) if e >= s => Some((e - s).saturating_mul(1_000_000)),
                    _ => None,
                };
                opt_long(ns)
            }
            Key::EventCreated => Val::Created,

            Key::SourceAddress | Key::DestinationAddress | Key::ClientAddress | Key::ServerAddress => {
                opt_ip(self.address(key))
            }
            Key::SourceIp => opt_ip(Some(r.src)),
            Key::SourcePort => self.port(Some(self.endpoint(Side::Source))),
            Key::SourceBytes => opt_long(Some(r.forward.octets)),
            Key::SourcePackets => opt_long(Some(r.forward.packets)),
            Key::SourceNatIp => opt_ip(self.src_nat.and_then(|n| n.ip)),
            Key::SourceNatPort => opt_long(self.src_nat.and_then(|n| n.port).map(u64::from)),
            Key::DestinationIp => opt_ip(Some(r.dst)),
            Key::DestinationPort => self.port(Some(self.endpoint(Side::Destination))),
            Key::DestinationBytes => opt_long(r.reverse.map(|c| c.octets)),
            Key::DestinationPackets => opt_long(r.reverse.map(|c| c.packets)),
            Key::DestinationNatIp => opt_ip(self.dst_nat.and_then(|n| n.ip)),
            Key::DestinationNatPort => opt_long(self.dst_nat.and_then(|n| n.port).map(u64::from)),

            // An endpoint's `kubernetes` object is formatted once per endpoint and copied (see
            // `k8s_object`): written at its first field, the others are in it.
            Key::SourceK8sNamespace => k8s_object(self.k8s(Side::Source)),
            Key::SourceK8sPodName
            | Key::SourceK8sPodUid
            | Key::SourceK8sWorkloadKind
            | Key::SourceK8sWorkloadName
            | Key::SourceK8sServiceName
            | Key::SourceK8sNodeName
            | Key::SourceK8sLabels => Val::Absent,
            Key::DestinationK8sNamespace => k8s_object(self.k8s(Side::Destination)),
            Key::DestinationK8sPodName
            | Key::DestinationK8sPodUid
            | Key::DestinationK8sWorkloadKind
            | Key::DestinationK8sWorkloadName
            | Key::DestinationK8sServiceName
            | Key::DestinationK8sNodeName
            | Key::DestinationK8sLabels => Val::Absent,

            Key::ClientIp => opt_ip(self.client().map(|e| e.ip)),
            Key::ClientPort => self.port(self.client()),
            Key::ClientBytes => opt_long(self.client().and_then(|e| e.sent).map(|c| c.octets)),
            Key::ClientPackets => opt_long(self.client().and_then(|e| e.sent).map(|c| c.packets)),
            Key::ClientNatIp => opt_ip(self.client().and_then(|e| e.nat?.ip)),
            Key::ClientNatPort => opt_long(self.client().and_then(|e| e.nat?.port).map(u64::from)),
            Key::ServerIp => opt_ip(self.server().map(|e| e.ip)),
            Key::ServerPort => self.port(self.server()),
            Key::ServerBytes => opt_long(self.server().and_then(|e| e.sent).map(|c| c.octets)),
            Key::ServerPackets => opt_long(self.server().and_then(|e| e.sent).map(|c| c.packets)),
            Key::ServerNatIp => opt_ip(self.server().and_then(|e| e.nat?.ip)),
            Key::ServerNatPort => opt_long(self.server().and_then(|e| e.nat?.port).map(u64::from)),

            Key::NetworkTransport => opt_word(transport(r.proto)),
            Key::NetworkIanaNumber => Val::DecimalString(u64::from(r.proto)),
            Key::NetworkType => opt_word(Some(if r.src.is_ipv4() {
                word!("ipv4")
            } else {
                word!("ipv6")
            })),
            Key::NetworkBytes => opt_long(Some(saturating_total(r, |c| c.octets))),
            Key::NetworkPackets => opt_long(Some(saturating_total(r, |c| c.packets))),
            Key::NetworkCommunityId => opt_str(Some(self.flow.community_id.as_str())),
            Key::NetworkDirection => opt_word(Some(self.direction())),
            Key::RelatedIp => Val::Related,
            Key::ObserverHostname => opt_str(self.observer_hostname()),
            // ECS makes observer.ip an array (an observer may have several addresses).
            Key::ObserverIp => Val::IpArray(r.exporter.ip()),
            Key::ObserverType => Val::Fixed(word!("sensor")),
            Key::OrchestratorType => Val::Fixed(word!("kubernetes")),
            Key::OrchestratorClusterName => opt_str(nonempty(self.ctx.cluster_name)),

            Key::PodflowEndReason => match r.end_reason {
                Some(reason) => end_reason(reason).map_or(Val::DecimalString(u64::from(reason)), Val::Word),
                None => Val::Absent,
            },
            Key::PodflowTcpFlags => opt_long((r.proto == 6).then_some(u64::from(r.tcp_flags))),
            Key::PodflowTcpReverseFlags => {
                opt_long((r.proto == 6 && r.reverse.is_some()).then_some(u64::from(r.reverse_tcp_flags)))
            }
            Key::PodflowIcmpType => opt_long(r.icmp_type_code.map(|tc| u64::from(tc >> 8))),
            Key::PodflowIcmpCode => opt_long(r.icmp_type_code.map(|tc| u64::from(tc & 0xff))),
            Key::PodflowNatEvent => opt_long(r.nat_event.map(u64::from)),
            Key::PodflowPostNatCommunityId => opt_str(r.post_nat_community_id.as_ref().map(|c| c.as_str())),
            Key::PodflowConntrackId => opt_long(r.conntrack_id.map(u64::from)),
            Key::PodflowConntrackMark => opt_long(r.conntrack_mark.map(u64::from)),
            Key::PodflowObserverPodName => opt_str(nonempty(r.observer.pod_name.as_deref())),
            Key::PodflowObserverPodNamespace => opt_str(nonempty(r.observer.pod_namespace.as_deref())),
            Key::PodflowObserverNodeName => opt_str(nonempty(r.observer.node_name.as_deref())),
            Key::PodflowBackendIp => opt_ip(self.flow.backend_addr.map(|(ip, _)| ip)),
            Key::PodflowBackendPort => opt_long(self.flow.backend_addr.map(|(_, port)| u64::from(port))),
            Key::PodflowBackendK8sNamespace => k8s_str(self.flow.backend.as_deref(), |k| Some(&k.namespace)),
            Key::PodflowBackendK8sPodName => k8s_str(self.flow.backend.as_deref(), |k| k.pod_name.as_ref()),
            Key::PodflowBackendK8sPodUid => k8s_str(self.flow.backend.as_deref(), |k| k.pod_uid.as_ref()),
            Key::PodflowBackendK8sWorkloadKind => {
                k8s_str(self.flow.backend.as_deref(), |k| k.workload_kind.as_ref())
            }
            Key::PodflowBackendK8sWorkloadName => {
                k8s_str(self.flow.backend.as_deref(), |k| k.workload_name.as_ref())
            }
            Key::PodflowBackendK8sNodeName => k8s_str(self.flow.backend.as_deref(), |k| k.node_name.as_ref()),
            Key::PodflowDuplicate => {
                let v = if self.flow.duplicate {
                    word!(raw "true")
                } else {
                    word!(raw "false")
                };
                opt_word(Some(v))
            }
            Key::PodflowExporterPort => opt_long(Some(u64::from(r.exporter.port()))),
            Key::PodflowExporterObservationDomainId => opt_long(Some(u64::from(r.observation_domain))),
            Key::PodflowExporterVersion => opt_long(Some(u64::from(r.protocol.version()))),
            // The same for all the records of a message.
            Key::PodflowExporterTimestamp => {
                date(u64::from(r.export_time) * 1000).map_or(Val::Absent, Val::Exported)
            }
        }
    }

    fn address(&self, key: Key) -> Option<IpAddr> {
        match key {
            Key::SourceAddress => Some(self.r.src),
            Key::DestinationAddress => Some(self.r.dst),
            Key::ClientAddress => self.client().map(|e| e.ip),
            _ => self.server().map(|e| e.ip),
        }
    }

    /// Writes an address, from its text when it is the source's or the destination's.
    #[inline(always)]
    fn put_ip(&self, out: &mut Cursor<'_>, ip: IpAddr) {
        if ip == self.r.src {
            self.src_text.put(out);
        } else if ip == self.r.dst {
            self.dst_text.put(out);
        } else {
            json::ip(out, ip);
        }
    }

    fn port(&self, e: Option<Endpoint>) -> Val<'a> {
        opt_long(e.filter(|_| self.has_ports).map(|e| u64::from(e.port)))
    }

    /// Writes field `key` with `w`, if the flow has a value for it.
    #[inline(always)]
    fn write(&self, key: Key, w: &mut ObjectWriter<'_, '_>) {
        // The field's index in FIELDS, which is its index in LAYOUT.
        let name = key as usize;
        match self.value(key) {
            Val::Absent => {}
            Val::Members(text) => {
                let object = w.object_of(name);
                w.members(object, text);
            }
            v => {
                w.key(name);
                self.put(v, w.out());
            }
        }
    }

    /// Writes a value (not [`Val::Absent`], and [`Val::Members`] after its object is entered).
    fn put(&self, v: Val<'_>, out: &mut Cursor<'_>) {
        self.put_inline(v, out);
    }

    /// [`Doc::put`], inlined where the shape encoder writes a field whose kind of value is known.
    #[inline(always)]
    pub(super) fn put_inline(&self, v: Val<'_>, out: &mut Cursor<'_>) {
        match v {
            Val::Absent => {}
            Val::Fixed(word) | Val::Word(word) => word.put(out),
            Val::Long(n) => json::long(out, n),
            Val::DecimalString(n) => json::decimal_string(out, n),
            Val::Str(text) => json::string(out, text),
            Val::Ip(ip) => self.put_ip(out, ip),
            Val::IpArray(ip) => {
                out.byte(b'[');
                json::ip(out, ip);
                out.byte(b']');
            }
            Val::Date(ms) => json::date(out, ms),
            Val::Timestamp => self.timestamp_text.put(out),
            // The same for a whole batch of documents.
            Val::Created => cached_date(&CREATED, self.ctx.created_ms.min(MAX_DATE_MS)).put(out),
            Val::Exported(ms) => cached_date(&EXPORTED, ms).put(out),
            Val::Members(text) => out.bytes(text),
            // Most flows: no translation, two addresses.
            Val::Related
                if self.src_nat.is_none()
                    && self.dst_nat.is_none()
                    && self.flow.backend_addr.is_none()
                    && self.r.src != self.r.dst =>
            {
                out.byte(b'[');
                self.src_text.put(out);
                out.byte(b',');
                self.dst_text.put(out);
                out.byte(b']');
            }
            Val::Related => {
                let (ips, n) = self.related_ips();
                out.byte(b'[');
                for (i, ip) in ips[..n].iter().flatten().enumerate() {
                    if i > 0 {
                        out.byte(b',');
                    }
                    self.put_ip(out, *ip);
                }
                out.byte(b']');
            }
        }
    }
}

/// One field's value in one document.
#[derive(Clone, Copy)]
pub(super) enum Val<'a> {
    /// No value: the field is left out.
    Absent,
    /// The field's only value, the same in every document that has the field.
    Fixed(&'static Word),
    /// One of the encoder's words.
    Word(&'static Word),
    /// A JSON number.
    Long(u64),
    /// Decimal digits as a JSON string.
    DecimalString(u64),
    /// A string, escaped as it is written.
    Str(&'a str),
    /// An address.
    Ip(IpAddr),
    /// An array of one address.
    IpArray(IpAddr),
    /// A date (Unix milliseconds).
    Date(u64),
    /// `@timestamp`'s text.
    Timestamp,
    /// `event.created` (from the context).
    Created,
    /// The export time (Unix milliseconds), as text kept from the previous record of the message.
    Exported(u64),
    /// Whole members of the field's object, formatted once: the object's other fields are in it.
    Members(&'a [u8]),
    /// `related.ip`.
    Related,
}

fn opt_long<'a>(v: Option<u64>) -> Val<'a> {
    v.map_or(Val::Absent, Val::Long)
}

fn opt_str(v: Option<&str>) -> Val<'_> {
    v.map_or(Val::Absent, Val::Str)
}

fn opt_ip<'a>(v: Option<IpAddr>) -> Val<'a> {
    v.map_or(Val::Absent, Val::Ip)
}

fn opt_word<'a>(v: Option<&'static Word>) -> Val<'a> {
    v.map_or(Val::Absent, Val::Word)
}

/// A NAT endpoint that changes the address or the port, else `None`.
fn translated(nat: Option<NatEndpoint>, ip: IpAddr, port: u16) -> Option<NatEndpoint> {
    let n = nat?;
    let changed = n.ip.is_some_and(|a| a != ip) || n.port.is_some_and(|p| p != port);
    changed.then_some(n)
}

/// A known time that Elasticsearch can hold: 0 means the exporter did not say.
fn date(ms: u64) -> Option<u64> {
    (ms != 0 && ms <= MAX_DATE_MS).then_some(ms)
}

fn nonempty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

fn saturating_total(r: &FlowRecord, get: impl Fn(&Counters) -> u64) -> u64 {
    get(&r.forward).saturating_add(r.reverse.as_ref().map_or(0, get))
}

fn k8s_str<'k>(k: Option<&'k K8sEndpoint>, get: impl Fn(&K8sEndpoint) -> Option<&Arc<str>>) -> Val<'k> {
    opt_str(nonempty(k.and_then(get).map(|s| &**s)))
}

/// The members of an endpoint's `kubernetes` object, as the table names them below
/// `source.kubernetes.` and `destination.kubernetes.` (a test checks both).
const K8S_NAMES: [&str; 8] = [
    "namespace",
    "pod.name",
    "pod.uid",
    "workload.kind",
    "workload.name",
    "service.name",
    "node.name",
    "labels",
];

/// The nesting of [`K8S_NAMES`].
static K8S_LAYOUT: Layout<{ K8S_NAMES.len() }> = Layout::new(&K8S_NAMES);

/// An endpoint's `kubernetes` object: its members are formatted the first time the endpoint is written
/// and kept with it ([`K8sEndpoint::encoded`]), so every later document copies them, escaping nothing
/// again.
fn k8s_object(k: Option<&K8sEndpoint>) -> Val<'_> {
    let text = k.map(|k| k.encoded.get_or_init(|| k8s_members(k)));
    // An endpoint with no names at all has no object.
    text.filter(|t| !t.is_empty()).map_or(Val::Absent, Val::Members)
}

/// The members of `k`'s `kubernetes` object (the object's own braces left out), written field by
/// field as the document would write them.
fn k8s_members(k: &K8sEndpoint) -> Vec<u8> {
    let mut buf = vec![0u8; 512];
    loop {
        let mut cursor = Cursor::new(&mut buf);
        let mut w = ObjectWriter::begin(&mut cursor, &K8S_LAYOUT);
        let strings = [
            Some(&k.namespace),
            k.pod_name.as_ref(),
            k.pod_uid.as_ref(),
            k.workload_kind.as_ref(),
            k.workload_name.as_ref(),
            k.service_name.as_ref(),
            k.node_name.as_ref(),
        ];
        for (name, s) in strings.into_iter().enumerate() {
            if let Some(s) = nonempty(s.map(|s| &**s)) {
                w.key(name);
                json::string(w.out(), s);
            }
        }
        labels_field(&mut w, 7, Some(k));
        w.end();
        if let Some(n) = cursor.finish() {
            return buf.get(1..n.saturating_sub(1)).unwrap_or_default().to_vec();
        }
        let more = buf.len() * 2;
        buf.resize(more, 0);
    }
}

/// Writes the labels object: keys with `.` as `_`. Keys Elasticsearch would reject are left out: blank
/// ones, and ones that repeat an earlier key once dedotted (a document with a repeated key fails).
fn labels_field(w: &mut ObjectWriter<'_, '_>, name: usize, k: Option<&K8sEndpoint>) {
    let Some(labels) = k.map(|k| &*k.labels).filter(|l| !l.is_empty()) else {
        return;
    };
    w.key(name);
    let out = w.out();
    out.byte(b'{');
    let mut first = true;
    for (i, (key, value)) in labels.iter().enumerate() {
        if key.trim().is_empty() || labels[..i].iter().any(|(earlier, _)| same_dedotted(earlier, key)) {
            continue;
        }
        if !first {
            out.byte(b',');
        }
        first = false;
        out.byte(b'"');
        json::escape(out, key, true);
        out.bytes(b"\":");
        json::string(out, value);
    }
    out.byte(b'}');
}

fn same_dedotted(a: &str, b: &str) -> bool {
    let dedot = |c: u8| if c == b'.' { b'_' } else { c };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| dedot(x) == dedot(y))
}

/// IANA protocol keyword, lowercase, for the protocols flows commonly carry.
fn transport(proto: u8) -> Option<&'static Word> {
    Some(match proto {
        0 => word!("hopopt"),
        1 => word!("icmp"),
        2 => word!("igmp"),
        4 => word!("ipv4"),
        6 => word!("tcp"),
        17 => word!("udp"),
        33 => word!("dccp"),
        41 => word!("ipv6"),
        46 => word!("rsvp"),
        47 => word!("gre"),
        50 => word!("esp"),
        51 => word!("ah"),
        58 => word!("ipv6-icmp"),
        88 => word!("eigrp"),
        89 => word!("ospfigp"),
        94 => word!("ipip"),
        103 => word!("pim"),
        112 => word!("vrrp"),
        115 => word!("l2tp"),
        132 => word!("sctp"),
        136 => word!("udplite"),
        _ => return None,
    })
}

/// IPFIX flowEndReason (RFC 7011 / IANA IE 136) as a name.
fn end_reason(reason: u8) -> Option<&'static Word> {
    Some(match reason {
        1 => word!("idle_timeout"),
        2 => word!("active_timeout"),
        3 => word!("end_of_flow"),
        4 => word!("forced_end"),
        5 => word!("lack_of_resources"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_members_are_the_tables_names() {
        for (first, last, prefix) in [
            (
                Key::SourceK8sNamespace,
                Key::SourceK8sLabels,
                "source.kubernetes.",
            ),
            (
                Key::DestinationK8sNamespace,
                Key::DestinationK8sLabels,
                "destination.kubernetes.",
            ),
        ] {
            let names: Vec<&str> = NAMES[first as usize..=last as usize]
                .iter()
                .map(|n| n.strip_prefix(prefix).unwrap_or(n))
                .collect();
            assert_eq!(names, K8S_NAMES);
        }
    }

    #[test]
    fn words_are_written_as_json_strings() {
        let mut buf = vec![0u8; 64];
        for (word, text) in [
            (transport(58), "\"ipv6-icmp\""),
            (end_reason(5), "\"lack_of_resources\""),
            (Some(word!(raw "[\"connection\"]")), "[\"connection\"]"),
        ] {
            let mut c = Cursor::new(&mut buf);
            word.unwrap().put(&mut c);
            let n = c.finish().unwrap();
            assert_eq!(&buf[..n], text.as_bytes());
        }
        assert!(transport(255).is_none() && end_reason(0).is_none());
    }
}
