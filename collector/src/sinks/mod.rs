//! Sinks: where enriched flows go. One folder (or file) per sink; each keeps its pure encoding apart from
//! the I/O that ships the bytes.
//!
//! * [`ecs`]: the ECS document of a flow (field table, encoder, Elasticsearch index template).
//! * [`ndjson`]: ECS documents, one per line, to a file or stdout (`--ndjson PATH`).
//! * [`elasticsearch`]: ECS documents into Elasticsearch or OpenSearch data streams (`--elasticsearch URL`).
//! * [`edges`]: who talks to whom, summed per batch for the flow metrics and the node graph.
//! * [`graph`]: windowed edge aggregates, the Node Graph API and the service-map page.
//! * [`prometheus`]: the flow metrics, counters of edges in the collector's registry.
//! * [`cache_window`]: keeps a file sink's output from filling the page cache.
//! * [`direct`]: direct I/O for a file sink's aligned writes.

pub mod cache_window;
pub mod direct;
pub mod ecs;
pub mod edges;
pub mod elasticsearch;
pub mod graph;
pub mod ndjson;
pub mod prometheus;
