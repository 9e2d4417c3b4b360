//! Several messages of one exporter, so templates from earlier messages apply to later data.
//!
//! The input is cut into messages with `wire::split_messages`; whatever follows the first unreadable header
//! is decoded as one last message. Each message is decoded at its own export time by three decoders: UDP
//! with a one-minute template lifetime (templates expire between messages), stream (withdrawals are
//! honoured) and UDP with tiny state limits. After each message the data sets held back for want of a
//! template are replayed through `decode_set`, template lifetimes are swept, and the caches are checked
//! against their limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto_ipfix::{Decoder, Limits, TemplateCache, TemplatePolicy, wire};
use proto_ipfix_fuzz::{EXPORTER, Walker, check_summary};

/// Small enough that a fuzzer reaches every limit.
const TINY: Limits = Limits {
    max_sessions: 2,
    max_templates_per_session: 3,
    max_fields_per_template: 16,
};

/// Messages decoded per input, so one input cannot run for long.
const MAX_MESSAGES: usize = 64;

fuzz_target!(|data: &[u8]| {
    let mut messages = Vec::new();
    let mut at = 0;
    for item in wire::split_messages(data).take(MAX_MESSAGES) {
        match item {
            Ok(msg) => {
                at += msg.len();
                messages.push(msg);
            }
            Err(_) => break,
        }
    }
    if at < data.len() && messages.len() < MAX_MESSAGES {
        messages.push(&data[at..]);
    }

    let mut decoders = [
        (
            Decoder::new(TemplateCache::new(
                TemplatePolicy::Udp { lifetime_ms: 60_000 },
                Limits::default(),
            )),
            Limits::default(),
        ),
        (
            Decoder::new(TemplateCache::new(TemplatePolicy::Stream, Limits::default())),
            Limits::default(),
        ),
        (
            Decoder::new(TemplateCache::new(TemplatePolicy::default(), TINY)),
            TINY,
        ),
    ];
    for (dec, limits) in &mut decoders {
        let mut w = Walker::default();
        let mut now = 0u64;
        for (i, msg) in messages.iter().enumerate() {
            // The export time drives the clock; a bad header keeps the previous time. Even messages come
            // from a second port, a second session with the same domains.
            let mut exporter = EXPORTER;
            if i % 2 == 1 {
                exporter.set_port(exporter.port() + 1);
            }
            let before = w.records;
            let sum = dec.decode(exporter, msg, now, &mut w);
            check_summary(&sum, before, &w);
            if sum.header.length != 0 {
                now = u64::from(sum.header.export_time) * 1000;
            }
            replay(dec, &mut w, now);
            dec.cache_mut().expire(now);
            let cache = dec.cache();
            assert!(cache.sessions() <= limits.max_sessions);
            assert!(cache.templates() <= limits.max_sessions * limits.max_templates_per_session);
        }
    }
});

/// Feeds held data sets back whose template has arrived; keeps the others.
fn replay(dec: &mut Decoder, w: &mut Walker, now: u64) {
    let held = std::mem::take(&mut w.held);
    for h in held {
        let known = dec.cache().get(&h.key, h.set_id, now).is_some();
        let before = w.records;
        match dec.decode_set(&h.key, h.set_id, &h.body, now, w) {
            Some((n, _)) => {
                assert!(known);
                assert_eq!(n, w.records - before);
            }
            None => {
                assert!(!known);
                w.held.push(h);
            }
        }
    }
}
