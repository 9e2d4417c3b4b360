//! The exporter's templates: one per address family, biflow or uniflow, with the observer's strings
//! when the probe knows them.

use proto_ipfix::ie::podflow;
use proto_ipfix::{FieldSpec, Template, TemplateError, VARIABLE_LENGTH};

/// Template IDs: biflow IPv4/IPv6, uniflow IPv4/IPv6.
const BIFLOW_V4: u16 = 256;
const BIFLOW_V6: u16 = 257;
const UNIFLOW_V4: u16 = 258;
const UNIFLOW_V6: u16 = 259;

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
}

impl TemplateSet {
    /// Builds the IPv4 and IPv6 templates.
    pub fn new(uniflow: bool, pen: u32, observer: &ObserverInfo) -> Result<Self, TemplateError> {
        let build = |v6: bool| {
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
            for (id, _) in observer.fields() {
                f.push(FieldSpec::enterprise(id, VARIABLE_LENGTH, pen));
            }
            let id = match (uniflow, v6) {
                (false, false) => BIFLOW_V4,
                (false, true) => BIFLOW_V6,
                (true, false) => UNIFLOW_V4,
                (true, true) => UNIFLOW_V6,
            };
            Template::new(id, f)
        };
        Ok(TemplateSet {
            v4: build(false)?,
            v6: build(true)?,
        })
    }

    /// The template ID for a family.
    pub fn id(&self, v6: bool) -> u16 {
        if v6 { self.v6.id() } else { self.v4.id() }
    }

    /// Both templates.
    pub fn all(&self) -> [Template; 2] {
        [self.v4.clone(), self.v6.clone()]
    }
}
