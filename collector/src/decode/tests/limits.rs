//! State limits: what one exporter may hold, and what happens at the bounds.

use proto_ipfix::{FieldSpec, Template};

use super::super::{DecodeLimits, HoldLimits};
use super::*;

#[test]
fn held_sets_are_bounded_per_exporter_and_in_total() {
    let mut d = Decoder::new(DecoderConfig {
        hold: HoldLimits {
            hold_ms: 5_000,
            max_sets: 2,
            max_bytes: 200,
        },
        max_held_bytes: 300,
        ..config()
    });
    let mut enc = encoder(1, vec![flow_template(256)]);
    // 3 records of 29 octets: an 87-octet set.
    let data = flows_msg(&mut enc, 256, 3, 0);
    for _ in 0..3 {
        feed(&mut d, ex(1), &data, 0);
    }
    let c = stats(&d, key(ex(1), 1));
    assert_eq!(
        (c.held_sets, c.dropped_sets, c.limit_hits),
        (2, 1, 1),
        "two sets per exporter"
    );
    let big = flows_msg(&mut enc, 256, 8, 0);
    feed(&mut d, ex(2), &big, 0);
    feed(&mut d, ex(2), &big, 0);
    let c = stats(&d, key(ex(2), 1));
    assert_eq!(
        (c.held_sets, c.dropped_sets),
        (0, 2),
        "232 octets: over the exporter's 200"
    );
    feed(&mut d, ex(3), &data, 0);
    feed(&mut d, ex(3), &data, 0);
    let c = stats(&d, key(ex(3), 1));
    assert_eq!(
        (c.held_sets, c.dropped_sets),
        (1, 1),
        "over the 300 octets held in all"
    );
    assert_eq!(d.held_sets(), 3);
}

#[test]
fn held_sets_expire_and_are_not_replayed_after() {
    let mut d = Decoder::default();
    let hold_ms = d.config().hold.hold_ms;
    let mut enc = encoder(4, vec![flow_template(256)]);
    feed(&mut d, ex(1), &flows_msg(&mut enc, 256, 2, 0), 1_000);
    // Within the hold time nothing expires.
    d.expire(1_000 + hold_ms);
    assert_eq!(d.held_sets(), 1);
    // Another exporter's datagram moves the clock on; the sweep drops the old set.
    feed(&mut d, ex(2), &[0, 10], 1_001 + hold_ms);
    assert_eq!(d.held_sets(), 0);
    assert_eq!(stats(&d, key(ex(1), 4)).expired_sets, 1);
    assert!(feed(&mut d, ex(1), &templates_msg(&mut enc, 0), 1_002 + hold_ms).is_empty());
    assert_eq!(stats(&d, key(ex(1), 4)).replayed_sets, 0);
}

fn tight() -> DecoderConfig {
    DecoderConfig {
        limits: DecodeLimits {
            max_exporters: 8,
            max_domains_per_exporter: 4,
            max_templates_per_exporter: 20,
            max_fields_per_template: 64,
            max_template_fields_per_exporter: 200,
            max_template_fields: 1_000,
        },
        ..config()
    }
}

/// A template of `n` fields (enterprise elements that map to nothing, then the addresses).
fn wide_template(id: u16, n: u16) -> Template {
    let mut f: Vec<FieldSpec> = (0..n.saturating_sub(2))
        .map(|i| FieldSpec::enterprise(i + 1, 1, 9))
        .collect();
    f.push(FieldSpec::iana(8, 4));
    f.push(FieldSpec::iana(12, 4));
    Template::new(id, f).unwrap()
}

#[test]
fn a_hostile_exporter_hits_its_limits_while_another_keeps_decoding() {
    let mut d = Decoder::new(tight());
    let good = ex(1);
    let bad = ex(66);
    let mut good_enc = encoder(1, vec![flow_template(256)]);
    feed(&mut d, good, &templates_msg(&mut good_enc, 0), 0);
    let mut good_flows = 0;
    for round in 0..60u16 {
        // 60 templates of 8 fields: the 21st is one template too many.
        let mut e = encoder(1, vec![wide_template(256 + round, 8)]);
        feed(&mut d, bad, &templates_msg(&mut e, 0), 0);
        // A template of 1000 fields, over the per-template limit, in IPFIX and in v9.
        let mut huge = proto_ipfix::Encoder::new(1, 16_000).unwrap();
        huge.add_template(wide_template(400, 1000));
        let mut buf = Vec::new();
        let mut m = huge.message(0, &mut buf);
        m.add_templates().unwrap();
        m.finish();
        feed(&mut d, bad, &buf, 0);
        let fields: Vec<(u16, u16)> = (0..1000).map(|i| (i + 1, 1)).collect();
        feed(
            &mut d,
            bad,
            &v9::packet(u32::from(round), 1, 0, 0, &[v9::template(300, &fields)]),
            0,
        );
        // Domains beyond the fourth are refused.
        let mut other = encoder(100 + u32::from(round), vec![flow_template(256)]);
        feed(&mut d, bad, &templates_msg(&mut other, 0), 0);

        good_flows += feed(&mut d, good, &flows_msg(&mut good_enc, 256, 5, 0), 0).len();
    }
    assert_eq!(good_flows, 300);
    assert_eq!(stats(&d, key(good, 1)).errors.total(), 0);
    assert_eq!(stats(&d, key(good, 1)).lost_records, 0);

    let bad_state = &d.exporters[&bad];
    assert!(bad_state.templates <= 20, "{}", bad_state.templates);
    assert!(bad_state.template_fields <= 200, "{}", bad_state.template_fields);
    assert!(bad_state.domains.len() <= 4);
    let all = d
        .stats()
        .iter()
        .filter(|(k, _)| k.exporter == bad)
        .fold(0, |n, (_, c)| n + c.limit_hits);
    // Domains (IPFIX 1, v9 1, IPFIX 100 and 101) and templates (the four domains' first ones and 16 more)
    // fill up by round 17: then 42 small templates, 60 huge IPFIX and 60 huge v9 templates, and 58
    // domains are refused.
    assert_eq!(all, 42 + 60 + 60 + 58);
    let refused_domains = stats(
        &d,
        StatsKey {
            exporter: bad,
            observation_domain: None,
        },
    );
    assert_eq!(refused_domains.errors.get("state_limit"), 58);
    assert!(d.budget.template_fields <= 1_000);
}

#[test]
fn the_total_template_state_is_bounded_across_exporters() {
    let mut d = Decoder::new(tight());
    for host in 10..18u8 {
        for id in 256..286u16 {
            let mut e = encoder(1, vec![wide_template(id, 8)]);
            feed(&mut d, ex(host), &templates_msg(&mut e, 0), 0);
        }
    }
    assert!(d.budget.template_fields <= 1_000, "{}", d.budget.template_fields);
    assert_eq!(
        d.budget.template_fields,
        d.exporters.values().map(|e| e.template_fields).sum::<usize>()
    );
    assert!(total(&d).limit_hits > 0);
}

#[test]
fn exporters_beyond_the_limit_are_counted_together() {
    let mut d = Decoder::new(DecoderConfig {
        limits: DecodeLimits {
            max_exporters: 2,
            ..DecodeLimits::default()
        },
        template_lifetime_ms: 10_000,
        ..config()
    });
    let mut enc = encoder(1, vec![flow_template(256)]);
    let tpl = templates_msg(&mut enc, 0);
    feed(&mut d, ex(1), &tpl, 0);
    feed(&mut d, ex(2), &[0, 5, 0], 0);
    feed(&mut d, ex(1), &tpl, 5_000);
    feed(&mut d, ex(3), &tpl, 0);
    feed(&mut d, ex(4), &tpl, 0);
    // Junk from unknown exporters takes no state either.
    feed(&mut d, ex(5), b"GET / HTTP/1.1", 0);
    let o = stats(&d, StatsKey::OVERFLOW);
    assert_eq!((o.datagrams, o.limit_hits), (3, 2));
    assert_eq!(o.errors.get("unsupported_version"), 1);
    assert_eq!(d.exporters(), 2);
    // ex(2) left nothing: idle for a template lifetime, it makes room; ex(1)'s refreshed template keeps it.
    d.expire(10_001);
    assert_eq!(d.exporters(), 1);
    feed(&mut d, ex(3), &tpl, 10_001);
    assert_eq!(stats(&d, key(ex(3), 1)).templates, 1);
}
