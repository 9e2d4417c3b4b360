//! podflow-exporter, the probe: the building blocks behind the `podflow-exporter` binary.
//!
//! * [`parse`]: captured frame -> flow-relevant packet fields (pure, allocation-free).
//! * [`community_id`]: the `community-id` subcommand, a Community ID listing of a capture file.
//! * [`conntrack`]: Service NAT learned from the kernel's conntrack table (`--conntrack`).

pub mod capture;
pub mod community_id;
pub mod conntrack;
pub mod export;
pub mod flow;
pub mod metrics;
pub mod parse;
pub mod probe;
