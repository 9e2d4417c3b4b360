//! One bulk request until it is done: sent to a node, its answer read item by item, what the server
//! refused for now sent again after a backoff with jitter (`backon`), what it refused for good handed
//! back for the dead-letter file.
//!
//! A request ends delivered, or with documents left over for the spool: when no node answers
//! ([`Delivery::down`]), or when the nodes kept answering 429/5xx through every backoff.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::Bytes;
use elasticsearch::http::Method;

use super::bulk::Docs;
use super::client::{Nodes, Reply};
use super::metrics::SinkMetrics;
use super::response::{self, FILTER_PATH, Outcome};

/// A document the server refused for good.
#[derive(Debug)]
pub struct Rejected {
    /// Its `_id`.
    pub id: String,
    /// Its source.
    pub source: Bytes,
    /// The item's status.
    pub status: u16,
    /// The server's error type.
    pub kind: String,
    /// The server's explanation.
    pub reason: String,
}

/// How a request ended.
#[derive(Debug, Default)]
pub struct Delivery {
    /// Documents not delivered, for the spool.
    pub leftover: Option<Docs>,
    /// No node answered.
    pub down: bool,
    /// Documents refused for good.
    pub rejected: Vec<Rejected>,
    /// Log lines worth writing (a node going down, an unexpected answer).
    pub notes: Vec<String>,
}

/// What a delivery needs.
pub struct Target {
    /// The nodes.
    pub nodes: Arc<Nodes>,
    /// `/<data stream>/_bulk`.
    pub path: Arc<str>,
    /// Time one request may take.
    pub timeout: Duration,
    /// Shortest, longest backoff, and how many times.
    pub backoff: (Duration, Duration, usize),
    /// Metrics.
    pub metrics: SinkMetrics,
}

/// Delivers `docs`.
pub async fn deliver(t: Target, mut docs: Docs) -> Delivery {
    let mut out = Delivery::default();
    let mut backoff = ExponentialBuilder::default()
        .with_min_delay(t.backoff.0)
        .with_max_delay(t.backoff.1)
        .with_max_times(t.backoff.2)
        .with_jitter()
        .build();
    let query = [("filter_path", FILTER_PATH)];
    loop {
        let Some(node) = t.nodes.pick() else {
            out.down = true;
            out.leftover = Some(docs);
            return out;
        };
        t.metrics.in_flight.inc();
        let started = Instant::now();
        let sent = node
            .send(
                Method::Post,
                &t.path,
                &query,
                Some(docs.body().clone()),
                true,
                t.timeout,
            )
            .await;
        t.metrics.in_flight.dec();
        t.metrics.bulk_duration.observe(started.elapsed().as_secs_f64());
        let reply = match sent {
            Ok(r) => r,
            Err(e) => {
                if t.nodes.down(node) {
                    out.notes.push(format!("{} is down: {e}", node.label));
                }
                count(&t.metrics, "transport", docs.len());
                // Another node, at once, if one is up; otherwise the spool.
                continue;
            }
        };
        t.nodes.up(node);
        match reply.status {
            200 => match settle(&reply, &docs, &t.metrics, &mut out) {
                Some(again) => docs = again,
                None => return out,
            },
            429 | 500..=599 => count(&t.metrics, status_label(reply.status), docs.len()),
            status => {
                // The whole request refused for what it is (400: a body the server cannot read;
                // 401/403: credentials; 404: no data stream may be made): it will not go better by
                // sending it again now. Kept in the spool, and said.
                out.notes.push(format!(
                    "{} refused a bulk request with {status}: {}",
                    node.label,
                    String::from_utf8_lossy(&reply.body[..reply.body.len().min(300)])
                ));
                out.leftover = Some(docs);
                return out;
            }
        }
        match backoff.next() {
            Some(pause) => tokio::time::sleep(pause).await,
            None => {
                out.leftover = Some(docs);
                return out;
            }
        }
    }
}

/// Counts `n` documents sent again for `reason`.
fn count(m: &SinkMetrics, reason: &str, n: usize) {
    m.retries.with_label_values(&[reason]).inc_by(n as u64);
}

fn status_label(status: u16) -> &'static str {
    match status {
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        _ => "5xx",
    }
}

/// Reads a 200 answer: counts what was delivered, keeps what was refused for good, and returns what
/// is to be sent again, if anything.
fn settle(reply: &Reply, docs: &Docs, m: &SinkMetrics, out: &mut Delivery) -> Option<Docs> {
    let outcomes = match response::parse(&reply.body, docs.len()) {
        Ok(o) => o,
        Err(e) => {
            out.notes.push(format!("unreadable bulk answer, sent again: {e}"));
            count(m, "bad_answer", docs.len());
            return Some(docs.clone());
        }
    };
    let (mut indexed, mut conflicts) = (0u64, 0u64);
    let mut again = Vec::new();
    for (i, o) in outcomes.into_iter().enumerate() {
        match o {
            Outcome::Indexed => indexed += 1,
            Outcome::Conflict => conflicts += 1,
            Outcome::Retry(status) => {
                again.push(i);
                let reason = if status == 0 {
                    "missing"
                } else {
                    status_label(status)
                };
                count(m, reason, 1);
            }
            Outcome::Reject { status, kind, reason } => out.rejected.push(Rejected {
                id: docs.id(i).to_owned(),
                source: docs.body().slice_ref(docs.source(i)),
                status,
                kind,
                reason,
            }),
        }
    }
    m.documents.with_label_values(&["indexed"]).inc_by(indexed);
    m.documents.with_label_values(&["conflict"]).inc_by(conflicts);
    (!again.is_empty()).then(|| docs.select(&again))
}

#[cfg(test)]
mod tests;
