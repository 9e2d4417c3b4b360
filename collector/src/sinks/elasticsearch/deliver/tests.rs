//! What the sink makes of recorded `_bulk` answers of Elasticsearch 8.17 (`testdata/`, see its
//! `SOURCES.md`): which documents are delivered, which are sent again, which go to the dead-letter file.

use bytes::Bytes;
use prometheus::{IntCounterVec, Registry};
use serde_json::{Value, json};

use super::*;
use crate::sinks::elasticsearch::bulk::Builder;
use crate::sinks::elasticsearch::dead_letter::DeadLetter;
use crate::sinks::elasticsearch::id::ID_LEN;

const CREATED: &str = include_str!("../testdata/bulk-elasticsearch-8.17-created.json");
const MIXED: &str = include_str!("../testdata/bulk-elasticsearch-8.17-mixed.json");
const REQUEST_ERROR: &str = include_str!("../testdata/bulk-elasticsearch-8.17-request-error.json");

/// The `_id`s of the recorded answers' items, in order (the mixed answer has all six).
const IDS: [&str; 6] = [
    "AAECAwQFBgcICQoLDA0O",
    "EBESExQVFhcYGRobHB0e",
    "ICEiIyQlJicoKSorLC0u",
    "MDEyMzQ1Njc4OTo7PD0-",
    "QEFCQ0RFRkdISUpLTE1O",
    "UFFSU1RVVldYWVpbXF1e",
];

/// The first `n` documents of [`IDS`], document `i` being `{"n":i}`.
fn docs(n: usize) -> Docs {
    let mut b = Builder::default();
    for (i, id) in IDS.iter().take(n).enumerate() {
        let id: [u8; ID_LEN] = id.as_bytes().try_into().unwrap_or_else(|_| panic!("{id}"));
        b.push(&id, |out| {
            out.extend_from_slice(format!("{{\"n\":{i}}}").as_bytes())
        });
    }
    b.finish()
}

fn metrics() -> SinkMetrics {
    SinkMetrics::register(&Registry::new()).unwrap_or_else(|e| panic!("{e}"))
}

fn ok(body: &str) -> Reply {
    Reply {
        status: 200,
        body: Bytes::copy_from_slice(body.as_bytes()),
    }
}

fn counted(v: &IntCounterVec, label: &str) -> u64 {
    v.with_label_values(&[label]).get()
}

#[test]
fn a_mixed_answer_delivers_retries_and_dead_letters_each_document_by_its_item() {
    let (m, sent) = (metrics(), docs(6));
    let mut out = Delivery::default();
    let again = settle(&ok(MIXED), &sent, &m, &mut out).unwrap_or_default();

    // The two 201s are indexed; the 409 was delivered by an earlier copy.
    assert_eq!(
        (
            counted(&m.documents, "indexed"),
            counted(&m.documents, "conflict")
        ),
        (2, 1)
    );
    // The 429 and the 503 go again, alone and in order.
    assert_eq!((again.len(), again.id(0), again.id(1)), (2, IDS[2], IDS[4]));
    assert_eq!(again.source(1), b"{\"n\":4}");
    assert_eq!((counted(&m.retries, "429"), counted(&m.retries, "503")), (1, 1));
    // The 400 is refused for good: its document as it was sent, with the server's error.
    let [r] = &out.rejected[..] else {
        panic!("{:?}", out.rejected)
    };
    assert_eq!(
        (r.id.as_str(), r.status, r.kind.as_str()),
        (IDS[3], 400, "document_parsing_exception")
    );
    assert_eq!(&r.source[..], b"{\"n\":3}");
    assert!(r.reason.contains("[source.port]"), "{}", r.reason);
    assert!(out.notes.is_empty() && out.leftover.is_none() && !out.down);

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("dead-letter.ndjson");
    let mut dead = DeadLetter::new(Some(path.clone()), "logs-podflow.flows-default".into());
    dead.write(&out.rejected, &m);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let [line] = &lines[..] else { panic!("{text}") };
    assert_eq!(
        (&line["_id"], &line["_index"], &line["status"]),
        (&json!(IDS[3]), &json!("logs-podflow.flows-default"), &json!(400))
    );
    assert_eq!(line["error"]["type"], "document_parsing_exception");
    assert_eq!(line["document"], json!({"n": 3}));
    assert_eq!(counted(&m.dead_letter, "document_parsing_exception"), 1);
}

#[test]
fn an_all_created_answer_delivers_all_and_a_request_error_sends_all_again() {
    let (m, sent) = (metrics(), docs(3));
    let mut out = Delivery::default();
    assert!(settle(&ok(CREATED), &sent, &m, &mut out).is_none());
    assert_eq!(counted(&m.documents, "indexed"), 3);
    assert!(out.rejected.is_empty() && out.notes.is_empty());

    // Elasticsearch sends a whole-request error with its own status (429 here), which `deliver`
    // retries without reading the body; the same body behind a 200 (a proxy) is no bulk answer, and
    // every document goes again.
    let (m, mut out) = (metrics(), Delivery::default());
    let again = settle(&ok(REQUEST_ERROR), &sent, &m, &mut out).unwrap_or_default();
    assert_eq!(again, sent);
    assert_eq!(counted(&m.retries, "bad_answer"), 3);
    assert_eq!(counted(&m.documents, "indexed"), 0);
    assert!(out.rejected.is_empty());
    assert!(
        out.notes.iter().any(|n| n.contains("unreadable bulk answer")),
        "{:?}",
        out.notes
    );
}
