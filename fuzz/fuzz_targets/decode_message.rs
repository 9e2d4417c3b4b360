//! Arbitrary bytes as one IPFIX message, then as an RFC 5655 file of concatenated messages.
//!
//! The same bytes go to a decoder with the UDP template policy and to one with the stream policy (which
//! honours withdrawals), then `wire::split_messages` cuts them into messages for the stream decoder. The
//! visitor reads every field of every record through every accessor and checks the decoder's promises
//! (see `proto_ipfix_fuzz::Walker`). Nothing may panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto_ipfix::{Decoder, Limits, TemplateCache, TemplatePolicy, wire};
use proto_ipfix_fuzz::{EXPORTER, Walker, check_summary};

fuzz_target!(|data: &[u8]| {
    let mut udp = Decoder::default();
    let mut w = Walker::default();
    let sum = udp.decode(EXPORTER, data, 0, &mut w);
    check_summary(&sum, 0, &w);

    let mut stream = Decoder::new(TemplateCache::new(TemplatePolicy::Stream, Limits::default()));
    let mut w = Walker::default();
    let sum = stream.decode(EXPORTER, data, 0, &mut w);
    check_summary(&sum, 0, &w);

    // As a file: the messages must tile a prefix of the input, and only the last item may be an error.
    let mut stream = Decoder::new(TemplateCache::new(TemplatePolicy::Stream, Limits::default()));
    let mut w = Walker::default();
    let mut at = 0;
    for item in wire::split_messages(data) {
        match item {
            Ok(msg) => {
                assert_eq!(
                    msg.as_ptr() as usize - data.as_ptr() as usize,
                    at,
                    "messages do not tile the file"
                );
                at += msg.len();
                let before = w.records;
                let sum = stream.decode(EXPORTER, msg, 0, &mut w);
                assert_eq!(usize::from(sum.header.length), msg.len());
                check_summary(&sum, before, &w);
            }
            Err(e) => {
                // A bad version carries no offset (it is always at the start of its message); the caller
                // knows where that message starts from the ones yielded before it.
                if !matches!(e, wire::WireError::BadVersion(_)) {
                    assert_eq!(e.offset(), at, "file error {e:?} not at the message boundary");
                }
                assert!(at < data.len());
            }
        }
    }
});
