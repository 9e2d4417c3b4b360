//! Helpers shared by podflow's end-to-end tests (peer programs, temporary directories, UDP plumbing).
//!
//! - [`flows`]: podflow's flow templates and a few sample biflows with distinctive values, encoded with
//!   proto-ipfix exactly as the probe exports them.
//! - [`expect`]: field-by-field comparison that reports every mismatch, and calendar formatting of times.
//! - [`pcap`]: a minimal pcap writer, so a peer dissector can read the exact datagrams from a file.
//! - [`peer`]: finding peer programs, waiting (bounded) for them to listen, and stopping them.

pub mod expect;
pub mod flows;
pub mod pcap;
pub mod peer;
