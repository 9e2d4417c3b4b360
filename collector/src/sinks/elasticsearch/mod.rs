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

pub mod bulk;
pub mod config;
pub mod id;
pub mod metrics;
pub mod response;
pub mod spool;
pub mod template;
