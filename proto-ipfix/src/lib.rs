//! Sans-IO IPFIX codec for podflow.
//!
//! This crate contains no networking code and reads no clock: bytes and the caller's notion of "now" go in,
//! values or bytes come out. The probe and the collector wrap it in thin I/O shells.
#![warn(missing_docs)]

pub mod community_id;
pub mod ie;

pub use ie::{DataType, FieldSpec, REVERSE_PEN};
