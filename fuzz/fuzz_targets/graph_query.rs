//! Arbitrary bytes as the query string of `/api/graph/data` and `/api/graph/fields`: the node graph's
//! query parser. It accepts or refuses with a reason; it never panics, what it accepts is a namespace
//! name of the allowed characters and length and one of the windows, written out again it parses to
//! the same query, and a refusal's text stays short whatever the input's length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podflow_collector::sinks::graph::query::{MAX_NAMESPACE, MAX_QUERY, Window, parse};

fuzz_target!(|data: &[u8]| {
    // A query string reaches the handler as text (the HTTP server refuses what is not).
    let raw = String::from_utf8_lossy(data);
    match parse(Some(&raw)) {
        Ok(q) => {
            assert!(raw.len() <= MAX_QUERY);
            assert!(Window::ALL.contains(&q.window));
            let mut again = format!("window={}", q.window.name());
            if let Some(ns) = &q.namespace {
                assert!(!ns.is_empty() && ns.len() <= MAX_NAMESPACE, "{ns:?}");
                assert!(ns.chars().all(|c| c.is_ascii_alphanumeric() || "-._".contains(c)), "{ns:?}");
                again = format!("namespace={ns}&{again}");
            }
            assert_eq!(parse(Some(&again)), Ok(q));
        }
        Err(e) => {
            // Echoed input is cut to 64 characters, each at most 10 once escaped (`\u{10ffff}`): the
            // message stays short.
            let text = e.to_string();
            assert!(text.len() < 64 * 10 + 200, "{} octets: {text}", text.len());
        }
    }
});
