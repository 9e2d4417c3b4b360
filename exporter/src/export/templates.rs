//! The exporter's templates: one per address family, biflow or uniflow, with the observer's strings
//! when the probe knows them; with conntrack, the same again with NAT fields for translated flows, and
//! the NAT event templates. This is the one place that says which fields a record holds and in what
//! order; the writer fills them in that order.

use proto_ipfix::ie::podflow;
use proto_ipfix::{FieldSpec, Template, TemplateError, VARIABLE_LENGTH};

/// Template IDs: biflow IPv4/IPv6, uniflow IPv4/IPv6.
const BIFLOW_V4: u16 = 256;
const BIFLOW_V6: u16 = 257;
const UNIFLOW_V4: u16 = 258;
const UNIFLOW_V6: u16 = 259;
/// The same with NAT fields, for flows of translated connections (conntrack).
const NAT_BIFLOW_V4: u16 = 260;
const NAT_BIFLOW_V6: u16 = 261;
const NAT_UNIFLOW_V4: u16 = 262;
const NAT_UNIFLOW_V6: u16 = 263;
/// NAT event records (natEvent 230), IPv4/IPv6.
const NAT_EVENT_V4: u16 = 264;
const NAT_EVENT_V6: u16 = 265;

/// The NAT fields of a flow record, after its communityId: post-NAT addresses (IPv4 225/226, IPv6
/// 281/282) and ports (227/228), then postNatCommunityId, conntrackId and conntrackMark.
fn nat_fields(f: &mut Vec<FieldSpec>, v6: bool, pen: u32) {
    let (src, dst, len) = if v6 { (281, 282, 16) } else { (225, 226, 4) };
    f.push(FieldSpec::iana(src, len)); // postNATSourceIPv4Address / postNATSourceIPv6Address
    f.push(FieldSpec::iana(dst, len)); // postNATDestinationIPv4Address / postNATDestinationIPv6Address
    f.push(FieldSpec::iana(227, 2)); // postNAPTSourceTransportPort
    f.push(FieldSpec::iana(228, 2)); // postNAPTDestinationTransportPort
    f.push(FieldSpec::enterprise(
        podflow::POST_NAT_COMMUNITY_ID,
        VARIABLE_LENGTH,
        pen,
    ));
    f.push(FieldSpec::enterprise(podflow::CONNTRACK_ID, 4, pen));
    f.push(FieldSpec::enterprise(podflow::CONNTRACK_MARK, 4, pen));
}

/// A NAT event record: natEvent, the original tuple, the post-NAT tuple, the time, the conntrack id
/// and mark, the Community IDs of both tuples (the original one matches what a sidecar in the client
/// pod exports, so a collector joins its flows to the backend), then the observer's strings.
fn nat_event_template(
    id: u16,
    v6: bool,
    pen: u32,
    observer: &ObserverInfo,
) -> Result<Template, TemplateError> {
    let (src, dst, len) = if v6 { (27, 28, 16) } else { (8, 12, 4) };
    let mut f = vec![
        FieldSpec::iana(230, 1),   // natEvent
        FieldSpec::iana(src, len), // sourceIPv4Address / sourceIPv6Address
        FieldSpec::iana(dst, len), // destinationIPv4Address / destinationIPv6Address
        FieldSpec::iana(7, 2),     // sourceTransportPort
        FieldSpec::iana(11, 2),    // destinationTransportPort
        FieldSpec::iana(4, 1),     // protocolIdentifier
    ];
    nat_fields(&mut f, v6, pen);
    f.push(FieldSpec::iana(323, 8)); // observationTimeMilliseconds
    f.push(FieldSpec::enterprise(podflow::COMMUNITY_ID, VARIABLE_LENGTH, pen));
    for (id, _) in observer.fields() {
        f.push(FieldSpec::enterprise(id, VARIABLE_LENGTH, pen));
    }
    Template::new(id, f)
}

/// Who observes the traffic, from the probe's environment (the downward API for sidecars).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObserverInfo {
    /// The pod the probe runs in.
    pub pod_name: Option<String>,
    /// That pod's namespace.
    pub pod_namespace: Option<String>,
    /// The node the probe runs on.
    pub node_name: Option<String>,
}

impl ObserverInfo {
    /// The (element id, value) pairs that are set, in template order.
    fn fields(&self) -> impl Iterator<Item = (u16, &str)> {
        [
            (podflow::OBSERVER_POD_NAME, &self.pod_name),
            (podflow::OBSERVER_POD_NAMESPACE, &self.pod_namespace),
            (podflow::OBSERVER_NODE_NAME, &self.node_name),
        ]
        .into_iter()
        .filter_map(|(id, v)| v.as_deref().map(|s| (id, s)))
    }

    /// The values that are set, in template order.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.fields().map(|(_, s)| s)
    }
}

/// The templates of one exporter configuration.
#[derive(Clone, Debug)]
pub struct TemplateSet {
    v4: Template,
    v6: Template,
    nat: Option<NatTemplates>,
}

/// The templates of translated flows and NAT events.
#[derive(Clone, Debug)]
struct NatTemplates {
    flow: [Template; 2],
    event: [Template; 2],
}

impl TemplateSet {
    /// Builds the IPv4 and IPv6 templates, and with `nat` those of translated flows and NAT events.
    pub fn new(uniflow: bool, pen: u32, observer: &ObserverInfo, nat: bool) -> Result<Self, TemplateError> {
        let build = |v6: bool, with_nat: bool| {
            // source/destination address ids: IPv4 8/12, IPv6 27/28
            let (src, dst, len, icmp) = if v6 { (27, 28, 16, 139) } else { (8, 12, 4, 32) };
            let mut f = vec![
                FieldSpec::iana(src, len), // sourceIPv4Address / sourceIPv6Address
                FieldSpec::iana(dst, len), // destinationIPv4Address / destinationIPv6Address
                FieldSpec::iana(7, 2),     // sourceTransportPort
                FieldSpec::iana(11, 2),    // destinationTransportPort
                FieldSpec::iana(4, 1),     // protocolIdentifier
                FieldSpec::iana(icmp, 2),  // icmpTypeCodeIPv4 / icmpTypeCodeIPv6
                FieldSpec::iana(1, 8),     // octetDeltaCount
                FieldSpec::iana(2, 8),     // packetDeltaCount
            ];
            if !uniflow {
                f.push(FieldSpec::reverse(1, 8)); // reverseOctetDeltaCount
                f.push(FieldSpec::reverse(2, 8)); // reversePacketDeltaCount
            }
            f.push(FieldSpec::iana(152, 8)); // flowStartMilliseconds
            f.push(FieldSpec::iana(153, 8)); // flowEndMilliseconds
            f.push(FieldSpec::iana(136, 1)); // flowEndReason
            if !uniflow {
                f.push(FieldSpec::reverse(6, 2)); // reverseTcpControlBits, before the forward one (nfdump)
            }
            f.push(FieldSpec::iana(6, 2)); // tcpControlBits
            if !uniflow {
                f.push(FieldSpec::iana(239, 1)); // biflowDirection
            }
            f.push(FieldSpec::enterprise(podflow::COMMUNITY_ID, VARIABLE_LENGTH, pen));
            if with_nat {
                nat_fields(&mut f, v6, pen);
            }
            for (id, _) in observer.fields() {
                f.push(FieldSpec::enterprise(id, VARIABLE_LENGTH, pen));
            }
            let id = match (with_nat, uniflow, v6) {
                (false, false, false) => BIFLOW_V4,
                (false, false, true) => BIFLOW_V6,
                (false, true, false) => UNIFLOW_V4,
                (false, true, true) => UNIFLOW_V6,
                (true, false, false) => NAT_BIFLOW_V4,
                (true, false, true) => NAT_BIFLOW_V6,
                (true, true, false) => NAT_UNIFLOW_V4,
                (true, true, true) => NAT_UNIFLOW_V6,
            };
            Template::new(id, f)
        };
        let nat = if nat {
            Some(NatTemplates {
                flow: [build(false, true)?, build(true, true)?],
                event: [
                    nat_event_template(NAT_EVENT_V4, false, pen, observer)?,
                    nat_event_template(NAT_EVENT_V6, true, pen, observer)?,
                ],
            })
        } else {
            None
        };
        Ok(TemplateSet {
            v4: build(false, false)?,
            v6: build(true, false)?,
            nat,
        })
    }

    /// The template ID for a family.
    pub fn id(&self, v6: bool) -> u16 {
        if v6 { self.v6.id() } else { self.v4.id() }
    }

    /// The template ID of translated flows of a family, when the set has NAT templates.
    pub fn nat_flow_id(&self, v6: bool) -> Option<u16> {
        self.nat.as_ref().map(|n| n.flow[usize::from(v6)].id())
    }

    /// The template ID of NAT events of a family, when the set has NAT templates.
    pub fn nat_event_id(&self, v6: bool) -> Option<u16> {
        self.nat.as_ref().map(|n| n.event[usize::from(v6)].id())
    }

    /// Every template.
    pub fn all(&self) -> Vec<Template> {
        let mut all = vec![self.v4.clone(), self.v6.clone()];
        if let Some(n) = &self.nat {
            all.extend(n.flow.iter().cloned());
            all.extend(n.event.iter().cloned());
        }
        all
    }
}
