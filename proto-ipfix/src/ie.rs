//! The one table of Information Elements.
//!
//! IANA elements are generated at build time from the IANA registry (`data/ipfix.xml`); RFC 5103 reverse
//! elements are IANA elements under [`REVERSE_PEN`]; podflow's own elements live under a configurable
//! Private Enterprise Number (default [`DEFAULT_PODFLOW_PEN`]). Everything that names, types or looks up an
//! element derives from these tables.

use core::cmp::Ordering;
use core::fmt::{self, Write as _};

/// The "IPFIX Reverse Information Element Private Enterprise" number of RFC 5103 section 6.1.
pub const REVERSE_PEN: u32 = 29305;

/// podflow's Private Enterprise Number until a registered one is configured.
pub const DEFAULT_PODFLOW_PEN: u32 = 32473;

/// Field length that marks a variable-length field in a template (RFC 7011 section 7).
pub const VARIABLE_LENGTH: u16 = 65535;

/// A field specifier as carried in a template record (RFC 7011 section 3.2).
///
/// `pen == 0` means an IANA element (enterprise bit clear); any other value is the enterprise number that
/// followed the specifier on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldSpec {
    /// Information Element identifier, without the enterprise bit (0..=32767).
    pub id: u16,
    /// Field length in octets, or [`VARIABLE_LENGTH`].
    pub length: u16,
    /// Private Enterprise Number, 0 for IANA elements.
    pub pen: u32,
}

impl FieldSpec {
    /// An IANA element of the given length.
    pub const fn iana(id: u16, length: u16) -> Self {
        FieldSpec { id, length, pen: 0 }
    }

    /// An RFC 5103 reverse element: the IANA element `id` under [`REVERSE_PEN`].
    pub const fn reverse(id: u16, length: u16) -> Self {
        FieldSpec {
            id,
            length,
            pen: REVERSE_PEN,
        }
    }

    /// An enterprise-specific element.
    pub const fn enterprise(id: u16, length: u16, pen: u32) -> Self {
        FieldSpec { id, length, pen }
    }

    /// True when the enterprise bit is set on the wire.
    pub const fn is_enterprise(&self) -> bool {
        self.pen != 0
    }

    /// True for variable-length fields.
    pub const fn is_variable(&self) -> bool {
        self.length == VARIABLE_LENGTH
    }

    /// Octets this specifier takes in a template record: 4, or 8 with an enterprise number.
    pub const fn wire_len(&self) -> usize {
        if self.is_enterprise() { 8 } else { 4 }
    }
}

/// Abstract data types of RFC 7012 section 3.1 and RFC 6313.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DataType {
    /// Opaque octets.
    OctetArray,
    /// Unsigned 8-bit integer.
    Unsigned8,
    /// Unsigned 16-bit integer.
    Unsigned16,
    /// Unsigned 32-bit integer.
    Unsigned32,
    /// Unsigned 64-bit integer.
    Unsigned64,
    /// Signed 8-bit integer.
    Signed8,
    /// Signed 16-bit integer.
    Signed16,
    /// Signed 32-bit integer.
    Signed32,
    /// Signed 64-bit integer.
    Signed64,
    /// IEEE 754 single precision.
    Float32,
    /// IEEE 754 double precision.
    Float64,
    /// 1 = true, 2 = false.
    Boolean,
    /// Six-octet MAC address.
    MacAddress,
    /// UTF-8 string.
    String,
    /// Seconds since the Unix epoch.
    DateTimeSeconds,
    /// Milliseconds since the Unix epoch.
    DateTimeMilliseconds,
    /// NTP-format timestamp, microsecond resolution.
    DateTimeMicroseconds,
    /// NTP-format timestamp, nanosecond resolution.
    DateTimeNanoseconds,
    /// IPv4 address.
    Ipv4Address,
    /// IPv6 address.
    Ipv6Address,
    /// RFC 6313 basicList.
    BasicList,
    /// RFC 6313 subTemplateList.
    SubTemplateList,
    /// RFC 6313 subTemplateMultiList.
    SubTemplateMultiList,
    /// Not in the registry (unknown enterprise element); treat as octets.
    Unknown,
}

impl DataType {
    /// True for the structured types of RFC 6313, which podflow skips rather than interprets.
    pub const fn is_list(&self) -> bool {
        matches!(
            self,
            DataType::BasicList | DataType::SubTemplateList | DataType::SubTemplateMultiList
        )
    }

    /// True for types that may be sent in fewer octets (RFC 7011 section 6.2).
    pub const fn allows_reduced_size(&self) -> bool {
        matches!(
            self,
            DataType::Unsigned8
                | DataType::Unsigned16
                | DataType::Unsigned32
                | DataType::Unsigned64
                | DataType::Signed8
                | DataType::Signed16
                | DataType::Signed32
                | DataType::Signed64
                | DataType::Float64
        )
    }
}

/// One Information Element: its identity, name and abstract data type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InfoElement {
    /// Element identifier (0..=32767), without the enterprise bit.
    pub id: u16,
    /// Private Enterprise Number: 0 for IANA elements, and also 0 in [`PODFLOW_IES`], where it stands for
    /// podflow's configured PEN (see [`Registry`]).
    pub pen: u32,
    /// Element name as in the registry: lowerCamelCase, with rare exceptions such as `VRFname`.
    pub name: &'static str,
    /// Abstract data type.
    pub data_type: DataType,
    /// Data type semantics (RFC 7012 section 3.2) as named in the registry, e.g. `deltaCounter`; empty when
    /// the registry gives none.
    pub semantics: &'static str,
}

// Generated by build.rs from data/ipfix.xml: `IANA_IES`, `IANA_INDEX` and `IANA_BY_NAME`.
include!(concat!(env!("OUT_DIR"), "/iana_ies.rs"));

/// The IANA element with this id, if the registry assigns one.
///
/// Constant time and allocation-free.
pub fn iana(id: u16) -> Option<&'static InfoElement> {
    let pos = (*IANA_INDEX.get(usize::from(id))?)?;
    IANA_IES.get(usize::from(pos))
}

/// The IANA element with this exact (case-sensitive) name, e.g. `octetDeltaCount`.
pub fn iana_by_name(name: &str) -> Option<&'static InfoElement> {
    iana_by_key(|candidate| candidate.cmp(name))
}

/// Binary search of the IANA elements by name; `cmp` orders a candidate name against the wanted one.
fn iana_by_key(cmp: impl Fn(&str) -> Ordering) -> Option<&'static InfoElement> {
    let found = IANA_BY_NAME.binary_search_by(|&pos| match IANA_IES.get(usize::from(pos)) {
        Some(ie) => cmp(ie.name),
        None => Ordering::Less,
    });
    IANA_IES.get(usize::from(*IANA_BY_NAME.get(found.ok()?)?))
}

/// Ids of podflow's enterprise-specific elements, under podflow's configured PEN (see [`PODFLOW_IES`]).
pub mod podflow {
    /// `communityId`: Community ID flow hash of the flow as seen before NAT.
    pub const COMMUNITY_ID: u16 = 1;
    /// `postNatCommunityId`: Community ID flow hash of the flow after NAT.
    pub const POST_NAT_COMMUNITY_ID: u16 = 2;
    /// `conntrackId`: Linux conntrack entry id.
    pub const CONNTRACK_ID: u16 = 3;
    /// `conntrackMark`: Linux conntrack mark.
    pub const CONNTRACK_MARK: u16 = 4;
    /// `observerPodName`: name of the pod whose traffic was observed.
    pub const OBSERVER_POD_NAME: u16 = 5;
    /// `observerPodNamespace`: namespace of that pod.
    pub const OBSERVER_POD_NAMESPACE: u16 = 6;
    /// `observerNodeName`: Kubernetes node the observing probe runs on.
    pub const OBSERVER_NODE_NAME: u16 = 7;
}

/// podflow's enterprise-specific elements, indexed by `id - 1`.
///
/// For operators of other collectors: these elements arrive with the enterprise bit set and podflow's PEN
/// (by default [`DEFAULT_PODFLOW_PEN`], else the PEN the exporter was configured with); the `pen` field here
/// is 0 and stands for that configured PEN. Reverse (RFC 5103 biflow) variants use the same PEN with id
/// `0x4000 | id` (RFC 5103 section 6.2). A collector that does not know them can skip them by their template
/// length; strings are UTF-8 and normally sent variable-length ([`VARIABLE_LENGTH`]).
///
/// | id | name | type | content |
/// |---|---|---|---|
/// | 1 | `communityId` | string | Community ID v1 flow hash (`1:` + base64 SHA-1) of the flow's 5-tuple before NAT |
/// | 2 | `postNatCommunityId` | string | Community ID of the same flow's 5-tuple after NAT translation |
/// | 3 | `conntrackId` | unsigned32 | id of the Linux conntrack entry tracking the flow |
/// | 4 | `conntrackMark` | unsigned32 | conntrack mark (`ct mark`) of that entry |
/// | 5 | `observerPodName` | string | name of the Kubernetes pod the flow was observed at |
/// | 6 | `observerPodNamespace` | string | namespace of that pod |
/// | 7 | `observerNodeName` | string | name of the Kubernetes node running the observing probe |
pub static PODFLOW_IES: [InfoElement; 7] = [
    podflow_ie(podflow::COMMUNITY_ID, "communityId", DataType::String, "default"),
    podflow_ie(
        podflow::POST_NAT_COMMUNITY_ID,
        "postNatCommunityId",
        DataType::String,
        "default",
    ),
    podflow_ie(
        podflow::CONNTRACK_ID,
        "conntrackId",
        DataType::Unsigned32,
        "identifier",
    ),
    podflow_ie(
        podflow::CONNTRACK_MARK,
        "conntrackMark",
        DataType::Unsigned32,
        "identifier",
    ),
    podflow_ie(
        podflow::OBSERVER_POD_NAME,
        "observerPodName",
        DataType::String,
        "default",
    ),
    podflow_ie(
        podflow::OBSERVER_POD_NAMESPACE,
        "observerPodNamespace",
        DataType::String,
        "default",
    ),
    podflow_ie(
        podflow::OBSERVER_NODE_NAME,
        "observerNodeName",
        DataType::String,
        "default",
    ),
];

const fn podflow_ie(
    id: u16,
    name: &'static str,
    data_type: DataType,
    semantics: &'static str,
) -> InfoElement {
    InfoElement {
        id,
        pen: 0,
        name,
        data_type,
        semantics,
    }
}

/// Bit marking the reverse variant of an enterprise-specific element (RFC 5103 section 6.2).
const REVERSE_ENTERPRISE_BIT: u16 = 0x4000;

/// The podflow element with this id (without the reverse bit).
fn podflow_ie_by_id(id: u16) -> Option<&'static InfoElement> {
    let ie = PODFLOW_IES.get(usize::from(id).checked_sub(1)?)?;
    (ie.id == id).then_some(ie)
}

/// An element as resolved from a field specifier: the table entry and whether it is the RFC 5103 reverse
/// (biflow) variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Element {
    /// The table entry (IANA or podflow).
    pub info: &'static InfoElement,
    /// True for the reverse direction of a biflow (RFC 5103).
    pub reverse: bool,
}

impl Element {
    /// The element's abstract data type (the same in both directions).
    pub const fn data_type(&self) -> DataType {
        self.info.data_type
    }
}

impl fmt::Display for Element {
    /// The element name; for a reverse element `reverse` + the name with its first letter capitalised
    /// (RFC 5103 section 6.1), e.g. `reverseOctetDeltaCount`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.reverse {
            return f.write_str(self.info.name);
        }
        f.write_str("reverse")?;
        let mut chars = self.info.name.chars();
        if let Some(first) = chars.next() {
            for c in first.to_uppercase() {
                f.write_char(c)?;
            }
        }
        f.write_str(chars.as_str())
    }
}

/// Resolves field specifiers (PEN, id) to elements, and names to field specifiers.
///
/// Lookups are allocation-free. Resolution order: PEN 0 is IANA, [`REVERSE_PEN`] is the reverse of an IANA
/// element, and podflow's PEN is [`PODFLOW_IES`] (with id bit `0x4000` marking the reverse). A podflow PEN
/// of 0 or [`REVERSE_PEN`] is therefore shadowed and must not be configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Registry {
    podflow_pen: u32,
}

impl Default for Registry {
    /// A registry with podflow's elements under [`DEFAULT_PODFLOW_PEN`].
    fn default() -> Self {
        Registry::new(DEFAULT_PODFLOW_PEN)
    }
}

impl Registry {
    /// A registry with podflow's elements under `podflow_pen`.
    pub const fn new(podflow_pen: u32) -> Self {
        Registry { podflow_pen }
    }

    /// The PEN podflow's elements are resolved under.
    pub const fn podflow_pen(&self) -> u32 {
        self.podflow_pen
    }

    /// The element a field specifier with this PEN and id denotes, `None` when unknown.
    pub fn lookup(&self, pen: u32, id: u16) -> Option<Element> {
        match pen {
            0 => iana(id).map(|info| Element { info, reverse: false }),
            REVERSE_PEN => iana(id).map(|info| Element { info, reverse: true }),
            p if p == self.podflow_pen => {
                let reverse = id & REVERSE_ENTERPRISE_BIT != 0;
                podflow_ie_by_id(id & !REVERSE_ENTERPRISE_BIT).map(|info| Element { info, reverse })
            }
            _ => None,
        }
    }

    /// The element a field specifier denotes (see [`Registry::lookup`]).
    pub fn lookup_spec(&self, spec: &FieldSpec) -> Option<Element> {
        self.lookup(spec.pen, spec.id)
    }

    /// A field specifier of the given length for an element name: an IANA name (`octetDeltaCount`), a
    /// reverse IANA name (`reverseOctetDeltaCount`, under [`REVERSE_PEN`]), a podflow name (`communityId`,
    /// under podflow's PEN) or a reverse podflow name (`reverseCommunityId`, id `0x4000 | id`). IANA names take
    /// precedence. `None` for unknown names.
    pub fn spec(&self, name: &str, length: u16) -> Option<FieldSpec> {
        if let Some(ie) = iana_by_name(name) {
            return Some(FieldSpec::iana(ie.id, length));
        }
        if let Some(ie) = podflow_by_name(|candidate| candidate.cmp(name)) {
            return Some(FieldSpec::enterprise(ie.id, length, self.podflow_pen));
        }
        // "reverse" + Name: the rest must start with an upper-case ASCII letter; it names the element with
        // that letter lower-cased, or as is for the few names that start upper-case (`reverseVRFname`).
        let rest = name
            .strip_prefix("reverse")
            .filter(|r| r.starts_with(|c: char| c.is_ascii_uppercase()))?;
        let decapitalised = |candidate: &str| cmp_decapitalised(candidate, rest);
        let as_is = |candidate: &str| candidate.cmp(rest);
        if let Some(ie) = iana_by_key(decapitalised).or_else(|| iana_by_key(as_is)) {
            return Some(FieldSpec::reverse(ie.id, length));
        }
        podflow_by_name(decapitalised)
            .or_else(|| podflow_by_name(as_is))
            .map(|ie| FieldSpec::enterprise(ie.id | REVERSE_ENTERPRISE_BIT, length, self.podflow_pen))
    }
}

/// The podflow element whose name `cmp` finds equal.
fn podflow_by_name(cmp: impl Fn(&str) -> Ordering) -> Option<&'static InfoElement> {
    PODFLOW_IES.iter().find(|ie| cmp(ie.name) == Ordering::Equal)
}

/// Orders `candidate` against `key` with the first byte of `key` lower-cased (ASCII), without allocating.
fn cmp_decapitalised(candidate: &str, key: &str) -> Ordering {
    let key = key
        .bytes()
        .enumerate()
        .map(|(i, b)| if i == 0 { b.to_ascii_lowercase() } else { b });
    candidate.bytes().cmp(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = include_str!("../data/ipfix.xml");

    fn check(id: u16, name: &str, data_type: DataType) {
        let ie = iana(id).unwrap_or_else(|| panic!("IANA element {id} missing"));
        assert_eq!((ie.id, ie.pen, ie.name, ie.data_type), (id, 0, name, data_type));
        assert_eq!(iana_by_name(name), Some(ie));
    }

    #[test]
    fn known_iana_elements() {
        check(1, "octetDeltaCount", DataType::Unsigned64);
        check(2, "packetDeltaCount", DataType::Unsigned64);
        check(4, "protocolIdentifier", DataType::Unsigned8);
        check(7, "sourceTransportPort", DataType::Unsigned16);
        check(8, "sourceIPv4Address", DataType::Ipv4Address);
        check(12, "destinationIPv4Address", DataType::Ipv4Address);
        check(27, "sourceIPv6Address", DataType::Ipv6Address);
        check(28, "destinationIPv6Address", DataType::Ipv6Address);
        check(56, "sourceMacAddress", DataType::MacAddress);
        check(150, "flowStartSeconds", DataType::DateTimeSeconds);
        check(152, "flowStartMilliseconds", DataType::DateTimeMilliseconds);
        check(156, "flowStartNanoseconds", DataType::DateTimeNanoseconds);
        check(225, "postNATSourceIPv4Address", DataType::Ipv4Address);
        check(226, "postNATDestinationIPv4Address", DataType::Ipv4Address);
        check(227, "postNAPTSourceTransportPort", DataType::Unsigned16);
        check(228, "postNAPTDestinationTransportPort", DataType::Unsigned16);
        check(230, "natEvent", DataType::Unsigned8);
        check(239, "biflowDirection", DataType::Unsigned8);
        check(281, "postNATSourceIPv6Address", DataType::Ipv6Address);
        check(282, "postNATDestinationIPv6Address", DataType::Ipv6Address);
        check(291, "basicList", DataType::BasicList);
        check(292, "subTemplateList", DataType::SubTemplateList);
        check(293, "subTemplateMultiList", DataType::SubTemplateMultiList);
        assert_eq!(iana(1).map(|ie| ie.semantics), Some("deltaCounter"));
    }

    #[test]
    fn odd_registry_rows() {
        // Names with trailing whitespace in the registry are trimmed.
        check(288, "p2pTechnology", DataType::String);
        // A few names start upper-case.
        check(236, "VRFname", DataType::String);
        check(295, "IPSecSPI", DataType::Unsigned32);
        // Deprecated elements are kept.
        check(3, "deltaFlowCount", DataType::Unsigned64);
        // unsigned256 is not a known abstract type.
        assert!(IANA_IES.iter().any(|ie| ie.data_type == DataType::Unknown));
        // Reserved, NetFlow v9 placeholder, unnamed deprecated rows, ranges, out of range.
        for id in [0, 65, 97, 105, 127, 416, 419, 534, 32767, 32768, u16::MAX] {
            assert_eq!(iana(id), None, "id {id}");
        }
        for name in [
            "",
            "Reserved",
            "Unassigned",
            "OctetDeltaCount",
            "octetdeltacount",
            "octetDeltaCount ",
        ] {
            assert_eq!(iana_by_name(name), None, "name {name:?}");
        }
    }

    /// The `<record>`s of the IE registry, as (elementId, name) text, by plain string scanning.
    fn scanned_records() -> Vec<(&'static str, &'static str)> {
        let start = XML.find(r#"<registry id="ipfix-information-elements">"#).unwrap();
        let section = &XML[start + 1..];
        let section = &section[..section.find("<registry").unwrap()];
        let between = |s: &'static str, open: &str, close: &str| -> &'static str {
            s.find(open).map_or("", |i| {
                let s = &s[i + open.len()..];
                &s[..s.find(close).unwrap()]
            })
        };
        section
            .split("<record")
            .skip(1)
            .map(|r| {
                (
                    between(r, "<elementId>", "</elementId>").trim(),
                    between(r, "<name>", "</name>").trim(),
                )
            })
            .collect()
    }

    #[test]
    fn table_covers_every_integer_element_id() {
        let records = scanned_records();
        let integer = |id: &str| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit());
        let int_records: Vec<_> = records.iter().filter(|(id, _)| integer(id)).collect();
        // Integer-id rows that are placeholders, not elements: "Reserved", NetFlow v9 placeholders and the
        // unnamed deprecated duplicates (<name/>).
        let placeholders: Vec<u16> = int_records
            .iter()
            .filter(|(_, name)| name.is_empty() || name.contains(' ') || *name == "Reserved")
            .map(|(id, _)| id.parse().unwrap())
            .collect();
        assert_eq!(placeholders, [0, 97, 416, 419]);
        assert!(
            records.len() > int_records.len(),
            "range rows are present and skipped"
        );
        assert_eq!(IANA_IES.len(), int_records.len() - placeholders.len());
        for (id, name) in int_records {
            let id: u16 = id.parse().unwrap();
            if !placeholders.contains(&id) {
                assert_eq!(iana(id).map(|ie| ie.name), Some(*name), "id {id}");
            }
        }
        assert!(IANA_IES.windows(2).all(|w| w[0].id < w[1].id), "sorted by id");
        assert!(
            IANA_IES
                .iter()
                .all(|ie| ie.pen == 0 && iana_by_name(ie.name) == Some(ie))
        );
    }

    #[test]
    fn reverse_elements() {
        let reg = Registry::default();
        let el = reg.lookup(REVERSE_PEN, 1).unwrap();
        assert!(el.reverse);
        assert_eq!(el.info, iana(1).unwrap());
        assert_eq!(el.data_type(), DataType::Unsigned64);
        assert_eq!(el.to_string(), "reverseOctetDeltaCount");
        assert_eq!(
            reg.lookup(REVERSE_PEN, 8).unwrap().to_string(),
            "reverseSourceIPv4Address"
        );
        assert_eq!(reg.lookup(0, 1).unwrap().to_string(), "octetDeltaCount");
        assert!(!reg.lookup(0, 1).unwrap().reverse);
        assert_eq!(
            reg.spec("reverseOctetDeltaCount", 8),
            Some(FieldSpec::reverse(1, 8))
        );
        assert_eq!(reg.spec("reverseoctetDeltaCount", 8), None);
        assert_eq!(reg.spec("reverse", 8), None);
        assert_eq!(
            reg.lookup(REVERSE_PEN, 236).unwrap().to_string(),
            "reverseVRFname"
        );
        assert_eq!(
            reg.spec("reverseVRFname", 65535),
            Some(FieldSpec::reverse(236, 65535))
        );
    }

    #[test]
    fn podflow_elements_under_custom_pen() {
        let reg = Registry::new(4242);
        assert_eq!(reg.podflow_pen(), 4242);
        let el = reg.lookup(4242, podflow::COMMUNITY_ID).unwrap();
        assert_eq!(
            (el.info.name, el.data_type(), el.reverse),
            ("communityId", DataType::String, false)
        );
        let el = reg.lookup(4242, 0x4000 | podflow::CONNTRACK_MARK).unwrap();
        assert_eq!(
            (el.to_string(), el.data_type()),
            ("reverseConntrackMark".to_owned(), DataType::Unsigned32)
        );
        // Not under the default PEN, nor under IANA ids, when a custom PEN is configured.
        assert_eq!(reg.lookup(DEFAULT_PODFLOW_PEN, podflow::COMMUNITY_ID), None);
        assert_eq!(
            Registry::default()
                .lookup(DEFAULT_PODFLOW_PEN, 1)
                .unwrap()
                .info
                .name,
            "communityId"
        );
        assert_eq!(
            reg.spec("observerNodeName", VARIABLE_LENGTH),
            Some(FieldSpec::enterprise(7, 65535, 4242))
        );
        assert_eq!(
            reg.spec("reverseCommunityId", 65535),
            Some(FieldSpec::enterprise(0x4001, 65535, 4242))
        );
        let expected = [
            (podflow::COMMUNITY_ID, "communityId", DataType::String),
            (
                podflow::POST_NAT_COMMUNITY_ID,
                "postNatCommunityId",
                DataType::String,
            ),
            (podflow::CONNTRACK_ID, "conntrackId", DataType::Unsigned32),
            (podflow::CONNTRACK_MARK, "conntrackMark", DataType::Unsigned32),
            (podflow::OBSERVER_POD_NAME, "observerPodName", DataType::String),
            (
                podflow::OBSERVER_POD_NAMESPACE,
                "observerPodNamespace",
                DataType::String,
            ),
            (podflow::OBSERVER_NODE_NAME, "observerNodeName", DataType::String),
        ];
        for (ie, (id, name, data_type)) in PODFLOW_IES.iter().zip(expected) {
            assert_eq!((ie.id, ie.pen, ie.name, ie.data_type), (id, 0, name, data_type));
            assert_eq!(
                iana_by_name(name),
                None,
                "{name} must not shadow or be shadowed by IANA"
            );
        }
    }

    #[test]
    fn name_spec_round_trips() {
        let reg = Registry::new(4242);
        for pen in [0, REVERSE_PEN, 4242] {
            for id in 0..=u16::MAX {
                let Some(el) = reg.lookup(pen, id) else { continue };
                let name = el.to_string();
                let spec = reg.spec(&name, 4).unwrap_or_else(|| panic!("no spec for {name}"));
                assert_eq!(spec, FieldSpec::enterprise(id, 4, pen), "{name}");
                assert_eq!(reg.lookup_spec(&spec), Some(el));
            }
        }
        assert_eq!(
            reg.spec("flowStartMilliseconds", 8),
            Some(FieldSpec::iana(152, 8))
        );
    }

    #[test]
    fn unknown_ids_and_names() {
        let reg = Registry::default();
        assert_eq!(reg.lookup(0, 0), None);
        assert_eq!(reg.lookup(0, 30000), None);
        assert_eq!(reg.lookup(REVERSE_PEN, 534), None);
        assert_eq!(reg.lookup(DEFAULT_PODFLOW_PEN, 0), None);
        assert_eq!(reg.lookup(DEFAULT_PODFLOW_PEN, 8), None);
        assert_eq!(reg.lookup(DEFAULT_PODFLOW_PEN, 0x4000), None);
        assert_eq!(reg.lookup(9, 1), None);
        assert_eq!(reg.spec("noSuchElement", 4), None);
        assert_eq!(reg.spec("reverseNoSuchElement", 4), None);
        assert_eq!(reg.spec("", 4), None);
    }
}
