//! podflow-collector: the building blocks behind the `podflow-collector` binary.
//!
//! The life of a flow in the collector, one module per step:
//! * [`receive`]: UDP sockets (SO_REUSEPORT groups), batches of datagrams, kernel drop counters.
//! * [`decode`]: IPFIX, NetFlow v9 and v5 datagrams to [`model::FlowRecord`]s, with template state per
//!   exporter and observation domain, data held until its template comes, and loss from sequence numbers.
//! * [`model`]: the one flow model every decoder produces and every sink reads.
//! * [`enrich`]: NAT join, Kubernetes attribution at the flow's time, duplicate observers.
//! * [`k8s`]: who held an address when: the time-aware index, the API watch and the static inventory.
//! * [`sinks`]: ECS documents (one field table, a pure encoder, the index template) and NDJSON.
//! * [`pipeline`]: the threads and bounded queues that run the stages, with [`pool`]s of their batches;
//!   [`metrics`]: self metrics.
//! * [`inspect`]: the `decode` subcommand, IPFIX messages and files to JSON lines.
//! * [`webhook`]: the `webhook` subcommand, sidecar injection by a mutating admission webhook.

pub mod decode;
pub mod enrich;
pub mod inspect;
pub mod k8s;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod pool;
pub mod receive;
pub mod sinks;
pub mod webhook;
