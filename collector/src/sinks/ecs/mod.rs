//! Flows as Elastic Common Schema documents: one document per flow record (a biflow record is one
//! document), for Elasticsearch's `logs-podflow.flows-<namespace>` data streams and for NDJSON files.
//!
//! * [`fields`]: the one table of every field a document can hold; everything below derives from it.
//! * [`encoder`]: the pure encoder, [`EnrichedFlow`](crate::model::EnrichedFlow) to JSON bytes.
//! * [`shape`]: the same documents by shape: the text between values worked out once per shape.
//! * [`template`]: the composable index template that maps every field of the table.

pub mod encoder;
pub mod fields;
mod json;
pub mod shape;
pub mod template;

pub use encoder::{Context, ExporterNames, encode, encode_into};
pub use fields::{ECS_VERSION, FIELDS, Field, Key};
pub use shape::Encoder;
pub use template::index_template;

/// `ms` (Unix milliseconds) as documents write dates: a JSON string with its quotes,
/// `"2024-05-01T12:00:00.123Z"`.
pub fn date_json(ms: u64) -> String {
    let mut b = [0u8; 32];
    let mut c = json::Cursor::new(&mut b);
    json::date(&mut c, ms);
    let n = c.finish().unwrap_or(0);
    String::from_utf8_lossy(&b[..n]).into_owned()
}
