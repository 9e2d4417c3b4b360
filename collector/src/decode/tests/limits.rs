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
    // ex(2) holds nothing but sequence numbers: forgotten (counted) to admit ex(3).
    feed(&mut d, ex(3), &tpl, 5_000);
    let gone = StatsKey {
        exporter: ex(2),
        observation_domain: None,
    };
    assert_eq!(stats(&d, gone).errors.get("evicted"), 1);
    assert_eq!(stats(&d, key(ex(3), 1)).templates, 1);
    // ex(1) and ex(3) hold templates: ex(4) is refused.
    feed(&mut d, ex(4), &tpl, 5_000);
    // Junk from unknown exporters takes no state either.
    feed(&mut d, ex(5), b"GET / HTTP/1.1", 5_000);
    let o = stats(&d, StatsKey::OVERFLOW);
    assert_eq!((o.datagrams, o.limit_hits), (2, 1));
    assert_eq!(o.errors.get("unsupported_version"), 1);
    assert_eq!(d.exporters(), 2);
    // Past a template lifetime with nothing refreshed, ex(3) has left (ex(1) refreshed): ex(4) comes in.
    feed(&mut d, ex(1), &tpl, 9_000);
    d.expire(15_001);
    assert_eq!(d.exporters(), 1);
    feed(&mut d, ex(4), &tpl, 15_001);
    assert_eq!(stats(&d, key(ex(4), 1)).templates, 1);
}

#[test]
fn a_flood_of_template_holders_makes_room_for_a_new_exporter() {
    // 1,000 fields in all: 8 exporters of 120 fields (15 templates of 8) pass seven eighths.
    let mut d = Decoder::new(DecoderConfig {
        limits: DecodeLimits {
            max_exporters: 64,
            max_templates_per_exporter: 20,
            max_template_fields_per_exporter: 200,
            ..tight().limits
        },
        ..config()
    });
    // One exporter that decodes data all along, with 4 templates of 8 fields.
    let busy = ex(1);
    let busy_templates: Vec<Template> = (256..260).map(|id| wide_template(id, 8)).collect();
    let mut busy_enc = encoder(1, busy_templates);
    feed(&mut d, busy, &templates_msg(&mut busy_enc, 0), 0);
    let mut flows_enc = encoder(1, vec![flow_template(300)]);
    feed(&mut d, busy, &templates_msg(&mut flows_enc, 0), 0);
    let mut now = 0;
    for host in 10..30u8 {
        for id in 256..271u16 {
            let mut e = encoder(1, vec![wide_template(id, 8)]);
            feed(&mut d, ex(host), &templates_msg(&mut e, 0), now);
        }
        now += 1_000;
        assert_eq!(
            feed(&mut d, busy, &flows_msg(&mut flows_enc, 300, 2, 0), now).len(),
            2
        );
    }
    assert!(d.budget.template_fields <= 1_000, "{}", d.budget.template_fields);
    let evicted: u64 = d.stats().iter().map(|(_, c)| c.errors.get("evicted")).sum();
    assert!(evicted > 0);
    assert_eq!(stats(&d, key(busy, 1)).errors.total(), 0);
    assert!(d.exporters.contains_key(&busy), "the busy exporter was evicted");
    // A new exporter's template still finds room and decodes.
    let mut new = encoder(1, vec![flow_template(256)]);
    feed(&mut d, ex(99), &templates_msg(&mut new, 0), now);
    assert_eq!(
        feed(&mut d, ex(99), &flows_msg(&mut new, 256, 3, 0), now).len(),
        3
    );
    assert_eq!(
        d.budget.template_fields,
        d.exporters.values().map(|e| e.template_fields).sum::<usize>()
    );
}
