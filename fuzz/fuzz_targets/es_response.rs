//! Arbitrary bytes as what an Elasticsearch or OpenSearch node answers: the body of a `_bulk` answer,
//! of `GET /` (which says the server's flavour and version) and of `GET _component_template/..` or
//! `GET _index_template/..`. Each parser reads it or refuses it; none panics. A bulk answer read says
//! one outcome per document sent, the same for a document whatever the number sent; a retry is for a
//! status worth another try, a refusal for any other, and its metric label is the server's error type
//! or `other`, short either way. A `GET /` answer read is JSON, and its flavour picks the label mapping.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podflow_collector::sinks::ecs::template::Labels;
use podflow_collector::sinks::elasticsearch::response::{Outcome, parse, reason_label};
use podflow_collector::sinks::elasticsearch::template::{Decision, Flavor, Server, VERSION, decide};

/// Documents in the largest request tried; smaller ones must get a prefix of its outcomes.
const SENT: usize = 40;

fuzz_target!(|data: &[u8]| {
    match parse(data, SENT) {
        Ok(all) => {
            assert_eq!(all.len(), SENT);
            for sent in [0, 1, 7] {
                let fewer = parse(data, sent).expect("an answer read once reads again");
                assert_eq!(fewer[..], all[..sent]);
            }
            for o in &all {
                match o {
                    Outcome::Indexed | Outcome::Conflict => {}
                    Outcome::Retry(s) => assert!(matches!(s, 0 | 429 | 500..=599), "{o:?}"),
                    Outcome::Reject { status, kind, .. } => {
                        assert!(!matches!(status, 0 | 200..=299 | 409 | 429 | 500..=599), "{o:?}");
                        let label = reason_label(kind);
                        assert!(label == kind || label == "other", "{label}");
                        assert!(!label.is_empty() && label.len() <= 64, "{label}");
                    }
                }
            }
        }
        Err(_) => assert!(parse(data, 1).is_err()),
    }

    if let Ok(server) = Server::from_root(data) {
        assert!(serde_json::from_slice::<serde_json::Value>(data).is_ok());
        let labels = match server.flavor {
            Flavor::Elasticsearch => Labels::Flattened,
            Flavor::OpenSearch => Labels::FlatObject,
        };
        assert_eq!(server.labels(), labels);
    }

    match decide(Some(data)) {
        Ok(Decision::Newer(n)) => assert!(n > VERSION),
        Ok(Decision::Put(Some(n))) => assert!(n < VERSION),
        Ok(Decision::Put(None) | Decision::Keep) | Err(_) => {}
    }
});
