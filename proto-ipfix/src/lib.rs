//! Sans-IO IPFIX codec for podflow.
//!
//! This crate contains no networking code and reads no clock: bytes and the caller's notion of "now" go in,
//! values or bytes come out. The probe and the collector wrap it in thin I/O shells.
//!
//! - [`wire`]: checked, zero-copy views of the message header and sets (RFC 7011 section 3).
//! - [`Template`]: an owned template with its record layout precomputed.
//! - [`TemplateCache`]: template state per exporter and observation domain, with the rules of RFC 7011
//!   section 8 for UDP and for files or streams.
//! - [`Decoder`]: walks a message and hands data records to a [`Visitor`] as field views, allocating nothing
//!   per record; malformed parts are reported with offset and reason, and what decoded before them stays.
//! - [`Encoder`]: builds MTU-bounded messages whose sequence numbers count data records.
//! - [`ie`]: the one table of Information Elements (IANA, RFC 5103 reverse, podflow enterprise).
//! - [`community_id`]: Community ID v1 flow hashing.
#![warn(missing_docs)]

pub mod cache;
pub mod community_id;
pub mod decode;
pub mod encode;
pub mod ie;
pub mod record;
pub mod template;
pub mod wire;

#[cfg(test)]
mod tests;

pub use cache::{InsertOutcome, Limits, SequenceCheck, SessionKey, TemplateCache, TemplatePolicy};
pub use decode::{DecodeError, DecodeErrorKind, Decoder, Summary, Visitor};
pub use encode::{EncodeError, Encoder, MessageWriter, RecordWriter};
pub use ie::{DataType, FieldSpec, REVERSE_PEN, VARIABLE_LENGTH};
pub use record::{DataRecord, Field};
pub use template::{Location, Template, TemplateError};
pub use wire::{HeaderRepr as IpfixHeader, WireError};
