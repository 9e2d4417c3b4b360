//! podflow-collector: the building blocks behind the `podflow-collector` binary.
//!
//! The life of a flow in the collector, one module per step:
//! * [`model`]: the one flow model every decoder produces and every sink reads.
//! * [`inspect`]: the `decode` subcommand, IPFIX messages and files to JSON lines.

pub mod inspect;
pub mod k8s;
pub mod model;
