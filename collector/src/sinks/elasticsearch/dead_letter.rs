//! The dead-letter file: documents the server refused for good (mapping and parse errors), one JSON
//! object per line with the server's answer and the document as it was sent:
//!
//! ```json
//! {"@timestamp":"2026-01-01T00:00:00.000Z","_id":"...","_index":"logs-podflow.flows-default","status":400,
//!  "error":{"type":"document_parsing_exception","reason":"..."},"document":{...}}
//! ```
//! Fix the mapping (or the pipeline), then send the `document`s again with `_bulk` `create` and their
//! `_id`s. Without a file each refusal is logged (at a rate); either way it is counted in
//! `podflow_collector_elasticsearch_dead_letter_total{reason}`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

use serde_json::Value;

use super::deliver::Rejected;
use super::metrics::SinkMetrics;
use super::response::reason_label;
use crate::pipeline::now_ms;
use crate::sinks::ecs::date_json;
use podflow_telemetry::Throttle;

/// The dead-letter file.
pub struct DeadLetter {
    path: Option<PathBuf>,
    file: Option<File>,
    index: String,
    logs: Throttle,
}

impl DeadLetter {
    /// Writes to `path` (appended to, created when first needed), for documents of data stream
    /// `index`.
    pub fn new(path: Option<PathBuf>, index: String) -> Self {
        DeadLetter {
            path,
            file: None,
            index,
            logs: Throttle::default(),
        }
    }

    /// Writes `rejected` and counts them.
    pub fn write(&mut self, rejected: &[Rejected], m: &SinkMetrics) {
        let mut text = Vec::new();
        let at = date_json(now_ms());
        for r in rejected {
            m.dead_letter.with_label_values(&[reason_label(&r.kind)]).inc();
            let error = serde_json::json!({ "type": r.kind, "reason": r.reason });
            let id = Value::from(r.id.as_str());
            let index = Value::from(self.index.as_str());
            let _ = write!(
                text,
                "{{\"@timestamp\":{at},\"_id\":{id},\"_index\":{index},\"status\":{},\"error\":{error},\"document\":",
                r.status
            );
            // The source as sent is one JSON object; anything else is kept as a string.
            if serde_json::from_slice::<serde::de::IgnoredAny>(&r.source).is_ok() {
                text.extend_from_slice(&r.source);
            } else {
                text.extend_from_slice(
                    Value::from(String::from_utf8_lossy(&r.source))
                        .to_string()
                        .as_bytes(),
                );
            }
            text.extend_from_slice(b"}\n");
        }
        let Some(path) = &self.path else {
            if let Some(n) = self.logs.hit(rejected.len() as u64) {
                let first = &rejected[0];
                tracing::warn!(
                    "elasticsearch: {n} documents refused ({} {}: {}); set --elasticsearch-dead-letter to keep them",
                    first.status,
                    first.kind,
                    first.reason
                );
            }
            return;
        };
        if self.file.is_none() {
            match OpenOptions::new().create(true).append(true).open(path) {
                Ok(f) => self.file = Some(f),
                Err(e) => {
                    m.drop_docs("dead_letter_error", rejected.len() as u64);
                    if self.logs.hit(1).is_some() {
                        tracing::warn!("elasticsearch: dead letter {}: {e}", path.display());
                    }
                    return;
                }
            }
        }
        if let Some(f) = &mut self.file
            && let Err(e) = f.write_all(&text).and_then(|()| f.sync_data())
        {
            m.drop_docs("dead_letter_error", rejected.len() as u64);
            self.file = None;
            if self.logs.hit(1).is_some() {
                tracing::warn!("elasticsearch: dead letter {}: {e}", path.display());
            }
        }
    }
}
