//! The Elasticsearch (and OpenSearch) sink: every flow as an ECS document, `_bulk` `create`d into the
//! data stream `logs-podflow.flows-<namespace>`.
//!
//! * [`config`]: flags and settings.
//! * [`id`]: the deterministic `_id` of a record's document (pure).
//! * [`bulk`]: bulk bodies, built in place by the encoder (pure).
//! * [`response`]: what a bulk answer says of each document (pure).
//! * [`template`]: the component and index templates, from the ECS field table (pure).
//! * [`spool`]: the disk spool of what could not be delivered yet.
//! * [`metrics`]: the sink's Prometheus metrics.
//! * [`client`]: the nodes, round robin, over the `elasticsearch` crate's transport.
//! * [`deliver`]: one bulk request until it is delivered, retried or left for the spool.
//! * [`dead_letter`]: the file of documents refused for good.
//! * [`service`]: the sink's own thread, the only one doing its I/O.
//! * [`sink`]: the enrich thread's end, [`ElasticsearchSink`].

pub mod bulk;
pub mod client;
pub mod config;
pub mod dead_letter;
pub mod deliver;
pub mod id;
pub mod metrics;
pub mod response;
pub mod service;
pub mod sink;
pub mod spool;
pub mod template;

pub use config::{Config, ElasticsearchArgs};
pub use sink::ElasticsearchSink;
