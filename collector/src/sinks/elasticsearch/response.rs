//! What a `_bulk` answer says of each document (pure: bytes in, outcomes out).
//!
//! The answer's `items` are in the order of the request's actions, so item `i` is document `i`:
//! * 200/201: indexed.
//! * 409: a document with this `_id` exists: the request (or the spool holding it) was sent before and
//!   this copy is the second. Delivered.
//! * 429 (the write pool is full) and 5xx (a shard not available, a node leaving): sent again later.
//! * any other status (400 for mapping and parse errors): the server will never take the document as it
//!   is. It goes to the dead-letter file with the error's type (the reason it is counted by) and text.
//!
//! An answer whose `errors` is false has every item indexed, and is not read further. Items missing from
//! an answer (a proxy that cut it) are sent again; items beyond the request's documents are ignored. A
//! body that is not a bulk answer is an error, and the whole request is sent again.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;

/// The query string a bulk request asks for: only what [`parse`] reads comes back.
pub const FILTER_PATH: &str = "errors,items.*.status,items.*.error.type,items.*.error.reason";

/// What became of one document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Indexed now.
    Indexed,
    /// Already there (409): delivered before.
    Conflict,
    /// Refused for now (429, 5xx, or missing from the answer): to be sent again; the status, or 0 when
    /// the answer had no item for it.
    Retry(u16),
    /// Refused for good: the status and the server's error.
    Reject {
        /// HTTP status of the item (400 for mapping and parse errors).
        status: u16,
        /// The error's type (`mapper_parsing_exception`, `document_parsing_exception`, ...).
        kind: String,
        /// The server's explanation.
        reason: String,
    },
}

/// Why an answer could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Not JSON, or not a bulk answer's shape.
    #[error("not a bulk answer: {0}")]
    Shape(#[from] serde_json::Error),
}

#[derive(Deserialize)]
struct Head {
    errors: bool,
}

#[derive(Deserialize)]
struct Answer<'a> {
    #[serde(borrow, default)]
    items: Vec<BTreeMap<Cow<'a, str>, Item<'a>>>,
}

#[derive(Deserialize)]
struct Item<'a> {
    #[serde(default)]
    status: u16,
    #[serde(borrow, default)]
    error: Option<ItemError<'a>>,
}

#[derive(Deserialize)]
struct ItemError<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reason: Option<Cow<'a, str>>,
}

/// What the answer `body` to a request of `sent` documents says of each, in order; always `sent`
/// outcomes.
pub fn parse(body: &[u8], sent: usize) -> Result<Vec<Outcome>, ParseError> {
    let head: Head = serde_json::from_slice(body)?;
    if !head.errors {
        return Ok(vec![Outcome::Indexed; sent]);
    }
    let answer: Answer<'_> = serde_json::from_slice(body)?;
    let mut out: Vec<Outcome> = answer
        .items
        .iter()
        .take(sent)
        .map(|action| match action.values().next() {
            Some(item) => outcome(item),
            None => Outcome::Retry(0),
        })
        .collect();
    out.resize(sent, Outcome::Retry(0));
    Ok(out)
}

fn outcome(item: &Item<'_>) -> Outcome {
    match item.status {
        200..=299 => Outcome::Indexed,
        409 => Outcome::Conflict,
        429 | 500..=599 => Outcome::Retry(item.status),
        // An item without a status is not an answer about it.
        0 => Outcome::Retry(0),
        status => {
            let (kind, reason) = item
                .error
                .as_ref()
                .map_or((None, None), |e| (e.kind.as_deref(), e.reason.as_deref()));
            Outcome::Reject {
                status,
                kind: kind.unwrap_or("unknown").to_owned(),
                reason: reason.unwrap_or_default().to_owned(),
            }
        }
    }
}

/// A metric label for a rejected document's error type: the type as the server names it when it is
/// one of lower-case letters, digits and `_` (as every Elasticsearch and OpenSearch exception type is),
/// at most 64 characters; `other` otherwise, so a hostile answer cannot make series without bound.
pub fn reason_label(kind: &str) -> &str {
    let plain = !kind.is_empty()
        && kind.len() <= 64
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if plain { kind } else { "other" }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer of OpenSearch 2.19 to four creates (trimmed by [`FILTER_PATH`]).
    const MIXED: &str = r#"{"errors":true,"items":[
        {"create":{"status":201}},
        {"create":{"status":409,"error":{"type":"version_conflict_engine_exception","reason":"[x]: version conflict, document already exists (current version [1])"}}},
        {"create":{"status":429,"error":{"type":"rejected_execution_exception","reason":"rejected execution of coordinating operation"}}},
        {"create":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [source.port] of type [long] in document with id 'x'. Preview of field's value: 'http'"}}},
        {"create":{"status":503,"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"}}}
    ]}"#;

    #[test]
    fn each_item_has_its_outcome_in_order() {
        let got = parse(MIXED.as_bytes(), 5).unwrap_or_default();
        assert_eq!(
            got[..3],
            [Outcome::Indexed, Outcome::Conflict, Outcome::Retry(429)]
        );
        match &got[3] {
            Outcome::Reject { status, kind, reason } => {
                assert_eq!((*status, kind.as_str()), (400, "mapper_parsing_exception"));
                assert!(reason.contains("source.port"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(got[4], Outcome::Retry(503));
    }

    #[test]
    fn an_answer_without_errors_is_all_indexed_and_short_answers_retry_the_rest() {
        let ok = r#"{"took":3,"errors":false,"items":[{"create":{"status":201}}]}"#;
        assert_eq!(
            parse(ok.as_bytes(), 2).unwrap_or_default(),
            vec![Outcome::Indexed; 2]
        );
        let got = parse(MIXED.as_bytes(), 7).unwrap_or_default();
        assert_eq!(got.len(), 7);
        assert_eq!(got[5..], [Outcome::Retry(0), Outcome::Retry(0)]);
        assert_eq!(parse(MIXED.as_bytes(), 1).unwrap_or_default(), [Outcome::Indexed]);
        let odd = r#"{"errors":true,"items":[{},{"create":{}},{"create":{"status":404}}]}"#;
        let got = parse(odd.as_bytes(), 3).unwrap_or_default();
        assert_eq!(got[..2], [Outcome::Retry(0), Outcome::Retry(0)]);
        assert!(matches!(&got[2], Outcome::Reject { status: 404, kind, .. } if kind == "unknown"));
    }

    #[test]
    fn what_is_not_a_bulk_answer_is_an_error() {
        for body in [
            "",
            "[]",
            "{\"error\":{\"type\":\"x\"},\"status\":400}",
            "{\"errors\":true,\"items\":{}}",
            "\u{1}",
        ] {
            assert!(parse(body.as_bytes(), 1).is_err(), "{body:?}");
        }
    }

    #[test]
    fn reason_labels_are_plain_names_or_other() {
        assert_eq!(
            reason_label("mapper_parsing_exception"),
            "mapper_parsing_exception"
        );
        assert_eq!(reason_label("Bad\"Type"), "other");
        assert_eq!(reason_label(&"x".repeat(65)), "other");
        assert_eq!(reason_label(""), "other");
    }
}
