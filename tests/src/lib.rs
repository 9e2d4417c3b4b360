//! Helpers shared by podflow's end-to-end tests (peer programs, temporary directories, UDP plumbing).
//!
//! - [`flows`]: podflow's flow templates and a few sample biflows with distinctive values, encoded with
//!   proto-ipfix exactly as the probe exports them.
//! - [`expect`]: field-by-field comparison that reports every mismatch, and calendar formatting of times.
//! - [`pcap`]: a minimal pcap writer, so a peer dissector can read the exact datagrams from a file.
//! - [`peer`]: finding peer programs, waiting (bounded) for them to listen, and stopping them.
//! - [`bins`]: podflow's own programs, built with the running test's profile.
//! - [`netns`]: network namespaces joined by veth pairs, for live capture tests (root only).
//! - [`nfcapd`]: nfdump's collector started, stopped without losing a datagram, and read back.
//! - [`pdml`]: tshark's PDML dissection of IPFIX captures, parsed.
//! - [`exported`]: a UDP socket standing in for a collector of podflow-exporter, decoding what it gets.

pub mod bins;
pub mod expect;
pub mod exported;
pub mod flows;
pub mod netns;
pub mod nfcapd;
pub mod pcap;
pub mod pdml;
pub mod peer;
