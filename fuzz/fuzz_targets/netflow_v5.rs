//! NetFlow v5: a series of datagrams (framed as for `netflow_v9`), each given version 5, from two source
//! ports of one exporter: no panic, records reported are the records handed out, sequence tracking and
//! engine limits hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto_ipfix_fuzz::netflow::{decode_series, tiny_config};

fuzz_target!(|data: &[u8]| {
    decode_series(data, 5, podflow_collector::decode::DecoderConfig::default());
    decode_series(data, 5, tiny_config());
});
