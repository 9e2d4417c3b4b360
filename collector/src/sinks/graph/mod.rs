//! The node graph: who talks to whom over the last minutes, for Grafana's Node Graph API and the
//! service-map page.
//!
//! * [`store`]: per client -> server pair, traffic in time buckets over the last hour, bounded in edges;
//!   [`SharedGraph`] is the store as the enrich thread feeds it (an
//!   [`EdgeConsumer`](crate::sinks::edges::EdgeConsumer), one lock per batch) and the handlers read it.
//! * [`query`]: the API's query string (namespace, window), a pure parser.
//! * [`api`]: the Node Graph API's JSON, made from a window's edges.
//! * [`http`]: the routes ([`router`]) the collector's HTTP server merges into its own.
//! * [`web`]: the service-map page's files, compiled into the binary.

pub mod api;
pub mod http;
pub mod query;
pub mod store;
pub mod web;

pub use http::router;
pub use store::SharedGraph;
