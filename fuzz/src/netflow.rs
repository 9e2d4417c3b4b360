//! Shared driver of the NetFlow targets: cuts the input into datagrams and decodes them with the
//! collector's decoder, checking what every datagram reports.

use std::net::SocketAddr;

use podflow_collector::decode::{DecodeLimits, Decoder, DecoderConfig, HoldLimits};

/// Datagrams decoded per input, so one input cannot run for long.
const MAX_DATAGRAMS: usize = 64;

/// A configuration small enough that the fuzzer reaches every limit.
pub fn tiny_config() -> DecoderConfig {
    DecoderConfig {
        template_lifetime_ms: 60_000,
        limits: DecodeLimits {
            max_exporters: 2,
            max_domains_per_exporter: 2,
            max_templates_per_exporter: 3,
            max_fields_per_template: 16,
            max_template_fields_per_exporter: 24,
            max_template_fields: 24,
        },
        hold: HoldLimits {
            hold_ms: 2_000,
            max_sets: 2,
            max_bytes: 512,
        },
        max_held_bytes: 512,
        ..DecoderConfig::default()
    }
}

/// The datagrams of an input: each a 2-octet length and that many octets, after a clock step octet.
pub fn datagrams(data: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    let mut rest = data;
    while out.len() < MAX_DATAGRAMS && rest.len() >= 3 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        let step = rest[2];
        rest = &rest[3..];
        let take = len.min(rest.len());
        out.push((step, &rest[..take]));
        rest = &rest[take..];
    }
    out
}

/// Decodes the datagrams of `data` as NetFlow `version` with `cfg`.
pub fn decode_series(data: &[u8], version: u16, cfg: DecoderConfig) {
    let ports: [SocketAddr; 2] = [
        SocketAddr::from(([192, 0, 2, 1], 2055)),
        SocketAddr::from(([192, 0, 2, 1], 2056)),
    ];
    let mut dec = Decoder::new(cfg);
    let mut now = 1_000_000u64;
    let mut buf = Vec::new();
    for (i, (step, datagram)) in datagrams(data).into_iter().enumerate() {
        now += u64::from(step) * 1000;
        buf.clear();
        buf.extend_from_slice(datagram);
        if buf.len() >= 2 {
            buf[..2].copy_from_slice(&version.to_be_bytes());
        }
        let mut handed = 0u32;
        let got = dec.decode(ports[i % 2], &buf, now, &mut |_| handed += 1);
        assert_eq!(got.records, handed, "records reported vs handed out");
        assert!(dec.exporters() <= cfg.limits.max_exporters);
        assert!(dec.templates() <= cfg.limits.max_templates_per_exporter * cfg.limits.max_exporters);
        assert!(dec.held_sets() <= cfg.hold.max_sets * cfg.limits.max_exporters);
    }
    dec.expire(now + 3_600_000);
    assert_eq!(dec.held_sets(), 0);
}
