//! The one table of Information Elements.
//!
//! IANA elements are generated at build time from the IANA registry (`data/ipfix.xml`); RFC 5103 reverse
//! elements are IANA elements under [`REVERSE_PEN`]; podflow's own elements live under a configurable
//! Private Enterprise Number (default [`DEFAULT_PODFLOW_PEN`]). Everything that names, types or looks up an
//! element derives from these tables.

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
