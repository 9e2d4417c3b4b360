//! NetFlow v9 with state across messages: templates in one datagram, data in later ones.
//!
//! The input is a series of datagrams, each a 2-octet big-endian length and that many octets (the last
//! takes what is left); every datagram is given version 9. They come from two source ports of one exporter
//! at a clock that steps by the octet after the length (in seconds, so held sets and templates expire), to a
//! collector decoder with default limits and one with tiny ones. What must hold: no panic, the records
//! reported per datagram are the records handed out, and the state stays within the tiny limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto_ipfix_fuzz::netflow::{decode_series, tiny_config};

fuzz_target!(|data: &[u8]| {
    decode_series(data, 9, podflow_collector::decode::DecoderConfig::default());
    decode_series(data, 9, tiny_config());
});
