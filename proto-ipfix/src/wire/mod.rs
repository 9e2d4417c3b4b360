//! Checked, zero-copy views of IPFIX wire structures (RFC 7011 section 3).
//!
//! Every view is built with a `new_checked` constructor that validates the lengths it relies on. After that,
//! no accessor can panic: all reads are within the bounds that were checked. Owned forms (`*Repr`) have
//! `parse` / `emit` / `buffer_len` for the encoder.

mod header;
mod set;

pub use header::{HeaderRepr, Message};
pub use set::{Set, SetIter};

/// IPFIX version number carried in the message header.
pub const VERSION: u16 = 10;
/// Length of the message header (RFC 7011 section 3.1).
pub const HEADER_LEN: usize = 16;
/// Length of a set header (RFC 7011 section 3.3.2).
pub const SET_HEADER_LEN: usize = 4;
/// Set ID of a Template Set.
pub const TEMPLATE_SET_ID: u16 = 2;
/// Set ID of an Options Template Set.
pub const OPTIONS_TEMPLATE_SET_ID: u16 = 3;
/// Smallest Set ID of a Data Set (and smallest Template ID).
pub const MIN_DATA_SET_ID: u16 = 256;

/// Why a wire structure could not be read.
///
/// `Incomplete` means the bytes end before a length says they should; `Malformed` means the bytes contradict
/// the protocol. Both carry the offset from the start of the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The buffer ends before the structure does.
    #[error("incomplete at offset {offset}: need {needed} octets, have {available}")]
    Incomplete {
        /// Offset of the structure from the start of the message.
        offset: usize,
        /// Octets the structure needs.
        needed: usize,
        /// Octets available.
        available: usize,
    },
    /// The version field is not 10.
    #[error("version {0} is not IPFIX (10)")]
    BadVersion(u16),
    /// A length field is smaller than its own header or larger than its container.
    #[error("bad length {length} at offset {offset}")]
    BadLength {
        /// Offset of the length field's structure.
        offset: usize,
        /// The length found.
        length: usize,
    },
    /// A Set ID that RFC 7011 reserves (0, 1, 4..=255).
    #[error("reserved set id {set_id} at offset {offset}")]
    ReservedSetId {
        /// Offset of the set.
        offset: usize,
        /// The set ID found.
        set_id: u16,
    },
}

impl WireError {
    /// Offset from the start of the message where the problem was found.
    pub fn offset(&self) -> usize {
        match *self {
            WireError::Incomplete { offset, .. }
            | WireError::BadLength { offset, .. }
            | WireError::ReservedSetId { offset, .. } => offset,
            WireError::BadVersion(_) => 0,
        }
    }

    /// True when more bytes could make the input valid (a truncated datagram or file).
    pub fn is_incomplete(&self) -> bool {
        matches!(self, WireError::Incomplete { .. })
    }
}

/// Reads a big-endian u16 at `at`; callers have checked the bounds.
#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Reads a big-endian u32 at `at`; callers have checked the bounds.
#[inline]
pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Splits a byte stream of concatenated messages (the RFC 5655 file form) into messages.
///
/// Yields each message's bytes as delimited by its header's length field; stops with an error at the first
/// header that cannot be read, and yields nothing more after it.
pub fn split_messages(stream: &[u8]) -> impl Iterator<Item = Result<&[u8], WireError>> {
    let mut rest = stream;
    let mut offset = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || rest.is_empty() {
            return None;
        }
        let item = Message::new_checked_prefix(rest).map_err(|e| shift(e, offset));
        match item {
            Ok(len) => {
                let (msg, tail) = rest.split_at(len);
                rest = tail;
                offset += len;
                Some(Ok(msg))
            }
            Err(e) => {
                failed = true;
                Some(Err(e))
            }
        }
    })
}

/// Moves an error's offset by `by` octets (for errors found in a sub-slice).
pub(crate) fn shift(e: WireError, by: usize) -> WireError {
    match e {
        WireError::Incomplete {
            offset,
            needed,
            available,
        } => WireError::Incomplete {
            offset: offset + by,
            needed,
            available,
        },
        WireError::BadLength { offset, length } => WireError::BadLength {
            offset: offset + by,
            length,
        },
        WireError::ReservedSetId { offset, set_id } => WireError::ReservedSetId {
            offset: offset + by,
            set_id,
        },
        other => other,
    }
}
