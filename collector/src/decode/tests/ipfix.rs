//! IPFIX through the decoder.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use proto_ipfix::ie::{DEFAULT_PODFLOW_PEN as PEN, podflow};
use proto_ipfix::{FieldSpec, Template, VARIABLE_LENGTH};

use super::*;

#[test]
fn data_before_its_template_is_held_then_replayed() {
    let mut d = Decoder::default();
    let mut enc = encoder(7, vec![flow_template(256)]);
    let tpl = templates_msg(&mut enc, 1_700_000_000);
    let data = flows_msg(&mut enc, 256, 3, 1_700_000_001);

    assert!(feed(&mut d, ex(1), &data, 0).is_empty());
    let c = stats(&d, key(ex(1), 7));
    assert_eq!((c.template_misses, c.held_sets, c.records), (1, 1, 0));
    assert_eq!(d.held_sets(), 1);

    let flows = feed(&mut d, ex(1), &tpl, 2_000);
    assert_eq!(flows.len(), 3, "replayed with the template");
    assert_eq!(flows[2].sport, 1002);
    assert_eq!(
        flows[0].export_time, 1_700_000_001,
        "the held set's own export time"
    );
    let c = stats(&d, key(ex(1), 7));
    assert_eq!((c.replayed_sets, c.records, c.expired_sets), (1, 3, 0));
    assert_eq!(d.held_sets(), 0);
    // The same data again decodes directly.
    assert_eq!(
        feed(&mut d, ex(1), &flows_msg(&mut enc, 256, 1, 0), 2_100).len(),
        1
    );
}

#[test]
fn a_set_before_its_template_in_the_same_message_is_replayed_after_it() {
    // Data set first, template set second, in one message.
    let t = flow_template(300);
    let mut enc = encoder(1, vec![t.clone()]);
    let data = flows_msg(&mut enc, 300, 2, 5);
    let tpl = templates_msg(&mut enc, 5);
    let mut msg = data[..16].to_vec();
    msg.extend_from_slice(&data[16..]);
    msg.extend_from_slice(&tpl[16..]);
    let len = u16::try_from(msg.len()).unwrap();
    msg[2..4].copy_from_slice(&len.to_be_bytes());
    let mut d = Decoder::default();
    assert_eq!(feed(&mut d, ex(1), &msg, 0).len(), 2);
    let c = stats(&d, key(ex(1), 1));
    assert_eq!((c.template_misses, c.held_sets, c.replayed_sets), (1, 1, 1));
}

#[test]
fn a_replaced_template_is_read_with_its_new_plan() {
    let mut d = Decoder::default();
    let mut enc = encoder(1, vec![flow_template(256)]);
    feed(&mut d, ex(1), &templates_msg(&mut enc, 0), 0);
    let before = feed(&mut d, ex(1), &flows_msg(&mut enc, 256, 1, 0), 0);
    assert_eq!((before[0].sport, before[0].forward.octets), (1000, 1500));

    // Same ID and the same number of fields, other elements and lengths: the old plan would read the
    // destination address as the source and the port from the wrong octets.
    let replaced = Template::new(
        256,
        vec![
            FieldSpec::iana(12, 4),
            FieldSpec::iana(8, 4),
            FieldSpec::iana(11, 2),
            FieldSpec::iana(7, 2),
            FieldSpec::iana(4, 1),
            FieldSpec::iana(2, 4),
            FieldSpec::iana(1, 4),
        ],
    )
    .unwrap();
    let mut enc2 = encoder(1, vec![replaced]);
    let mut buf = Vec::new();
    let mut m = enc2.message(0, &mut buf);
    m.add_templates().unwrap();
    let mut r = m.record(256).unwrap();
    r.ipv4(Ipv4Addr::new(10, 0, 0, 9))
        .ipv4(Ipv4Addr::new(10, 0, 0, 8))
        .uint(53)
        .uint(5353)
        .uint(17)
        .uint(4)
        .uint(400);
    r.commit().unwrap();
    m.finish();
    let after = feed(&mut d, ex(1), &buf, 10);
    assert_eq!(after.len(), 1);
    let f = &after[0];
    assert_eq!(f.src, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 8)));
    assert_eq!((f.sport, f.dport, f.proto), (5353, 53, 17));
    assert_eq!((f.forward.octets, f.forward.packets), (400, 4));
    assert_eq!(d.templates(), 1, "replaced, not added");
}

#[test]
fn podflow_elements_are_read_and_observer_names_shared() {
    let t = Template::new(
        400,
        vec![
            FieldSpec::iana(8, 4),
            FieldSpec::iana(12, 4),
            FieldSpec::iana(4, 1),
            FieldSpec::reverse(1, 8),
            FieldSpec::reverse(2, 8),
            FieldSpec::iana(152, 8),
            FieldSpec::iana(153, 8),
            FieldSpec::iana(136, 1),
            FieldSpec::iana(239, 1),
            FieldSpec::enterprise(podflow::COMMUNITY_ID, VARIABLE_LENGTH, PEN),
            FieldSpec::enterprise(podflow::CONNTRACK_ID, 4, PEN),
            FieldSpec::enterprise(podflow::CONNTRACK_MARK, 4, PEN),
            FieldSpec::enterprise(podflow::OBSERVER_POD_NAME, VARIABLE_LENGTH, PEN),
            FieldSpec::enterprise(podflow::OBSERVER_POD_NAMESPACE, VARIABLE_LENGTH, PEN),
            FieldSpec::enterprise(podflow::OBSERVER_NODE_NAME, VARIABLE_LENGTH, PEN),
        ],
    )
    .unwrap();
    let mut enc = encoder(3, vec![t]);
    let mut buf = Vec::new();
    let mut m = enc.message(1_700_000_000, &mut buf);
    m.add_templates().unwrap();
    for i in 0..2u64 {
        let mut r = m.record(400).unwrap();
        r.ipv4(Ipv4Addr::new(10, 1, 0, 1))
            .ipv4(Ipv4Addr::new(10, 1, 0, 2))
            .uint(1)
            .uint(100 + i)
            .uint(2)
            .uint(1_700_000_000_000)
            .uint(1_700_000_000_250)
            .uint(3)
            .uint(1)
            .str("1:LQU9qZlK+B5F3KDmev6m5PMibrg=")
            .uint(77)
            .uint(0x10)
            .str("web-0")
            .str("shop")
            .str("node-a");
        r.commit().unwrap();
    }
    m.finish();
    let mut d = Decoder::default();
    let flows = feed(&mut d, ex(2), &buf, 0);
    assert_eq!(flows.len(), 2);
    let f = &flows[0];
    assert_eq!(f.proto, 1);
    assert_eq!(
        f.icmp_type_code,
        Some(0),
        "ICMP without ICMP elements: the destination port"
    );
    assert_eq!(f.reverse.map(|c| (c.octets, c.packets)), Some((100, 2)));
    assert_eq!((f.start_ms, f.end_ms), (1_700_000_000_000, 1_700_000_000_250));
    assert_eq!((f.end_reason, f.biflow_direction), (Some(3), Some(1)));
    assert_eq!(
        f.community_id.map(|c| c.to_string()).as_deref(),
        Some("1:LQU9qZlK+B5F3KDmev6m5PMibrg=")
    );
    assert_eq!((f.conntrack_id, f.conntrack_mark), (Some(77), Some(0x10)));
    assert_eq!(f.observer.pod_name.as_deref(), Some("web-0"));
    assert_eq!(f.observer.pod_namespace.as_deref(), Some("shop"));
    assert_eq!(f.observer.node_name.as_deref(), Some("node-a"));
    let (a, b) = (&flows[0].observer, &flows[1].observer);
    assert!(Arc::ptr_eq(
        a.pod_name.as_ref().unwrap(),
        b.pod_name.as_ref().unwrap()
    ));
    assert!(Arc::ptr_eq(
        a.node_name.as_ref().unwrap(),
        b.node_name.as_ref().unwrap()
    ));
    // Another enterprise number is not podflow's.
    let mut other = Decoder::new(DecoderConfig {
        podflow_pen: 1,
        ..config()
    });
    let f = feed(&mut other, ex(2), &buf, 0).remove(0);
    assert_eq!(
        (f.community_id, f.conntrack_id, f.observer.pod_name),
        (None, None, None)
    );
}

#[test]
fn options_records_are_counted_and_date_uptime_timestamps() {
    let opts = Template::new_options(500, 1, vec![FieldSpec::iana(144, 4), FieldSpec::iana(160, 8)]).unwrap();
    let flows_t = Template::new(
        501,
        vec![
            FieldSpec::iana(8, 4),
            FieldSpec::iana(12, 4),
            FieldSpec::iana(22, 4),
            FieldSpec::iana(21, 4),
        ],
    )
    .unwrap();
    let mut enc = encoder(9, vec![opts, flows_t]);
    let export = 1_700_000_100u32;
    let record = |enc: &mut proto_ipfix::Encoder| {
        let mut buf = Vec::new();
        let mut m = enc.message(export, &mut buf);
        m.add_templates().unwrap();
        let mut r = m.record(501).unwrap();
        r.ipv4(Ipv4Addr::new(10, 0, 0, 1))
            .ipv4(Ipv4Addr::new(10, 0, 0, 2))
            .uint(5_000)
            .uint(8_000);
        r.commit().unwrap();
        m.finish();
        buf
    };
    let mut d = Decoder::default();
    // Before the exporter said when it booted: the flow ends at export time and keeps its duration.
    let f = feed(&mut d, ex(3), &record(&mut enc), 0).remove(0);
    assert_eq!((f.start_ms, f.end_ms), (1_700_000_097_000, 1_700_000_100_000));

    let mut buf = Vec::new();
    let mut m = enc.message(export, &mut buf);
    let mut r = m.record(500).unwrap();
    r.uint(1).uint(1_699_999_000_000);
    r.commit().unwrap();
    m.finish();
    assert!(
        feed(&mut d, ex(3), &buf, 0).is_empty(),
        "options records are not flows"
    );
    assert_eq!(stats(&d, key(ex(3), 9)).options_records, 1);

    let f = feed(&mut d, ex(3), &record(&mut enc), 0).remove(0);
    assert_eq!((f.start_ms, f.end_ms), (1_699_999_005_000, 1_699_999_008_000));
}

#[test]
fn records_without_addresses_are_counted_not_produced() {
    let t = Template::new(256, vec![FieldSpec::iana(8, 4), FieldSpec::iana(1, 8)]).unwrap();
    let mut enc = encoder(1, vec![t]);
    let mut buf = Vec::new();
    let mut m = enc.message(0, &mut buf);
    m.add_templates().unwrap();
    let mut r = m.record(256).unwrap();
    r.ipv4(Ipv4Addr::new(10, 0, 0, 1)).uint(5);
    r.commit().unwrap();
    m.finish();
    let mut d = Decoder::default();
    assert!(feed(&mut d, ex(1), &buf, 0).is_empty());
    assert_eq!(stats(&d, key(ex(1), 1)).no_addresses, 1);
}

#[test]
fn sequence_loss_is_counted_per_exporter_and_domain() {
    let mut d = Decoder::default();
    let mut a1 = encoder(1, vec![flow_template(256)]);
    let mut a2 = encoder(2, vec![flow_template(256)]);
    let mut b1 = encoder(1, vec![flow_template(256)]);
    for (from, enc) in [(ex(1), &mut a1), (ex(1), &mut a2), (ex(2), &mut b1)] {
        feed(&mut d, from, &templates_msg(enc, 0), 0);
        feed(&mut d, from, &flows_msg(enc, 256, 4, 0), 0);
    }
    a1.skip_records(5);
    b1.skip_records(2);
    for (from, enc) in [(ex(1), &mut a1), (ex(1), &mut a2), (ex(2), &mut b1)] {
        feed(&mut d, from, &flows_msg(enc, 256, 1, 0), 0);
    }
    assert_eq!(stats(&d, key(ex(1), 1)).lost_records, 5);
    assert_eq!(stats(&d, key(ex(1), 2)).lost_records, 0);
    assert_eq!(stats(&d, key(ex(2), 1)).lost_records, 2);
    // Same address, another source port: another exporter.
    let other_port = SocketAddr::new(ex(1).ip(), 50_000);
    let mut c = encoder(1, vec![flow_template(256)]);
    c.skip_records(1000);
    feed(&mut d, other_port, &templates_msg(&mut c, 0), 0);
    assert_eq!(
        stats(&d, key(other_port, 1)).lost_records,
        0,
        "first message of a session"
    );
}

#[test]
fn templates_expire_after_their_lifetime_unless_refreshed() {
    let mut d = Decoder::new(DecoderConfig {
        template_lifetime_ms: 60_000,
        ..config()
    });
    let mut enc = encoder(1, vec![flow_template(256)]);
    feed(&mut d, ex(1), &templates_msg(&mut enc, 0), 0);
    assert_eq!(
        feed(&mut d, ex(1), &flows_msg(&mut enc, 256, 1, 0), 59_000).len(),
        1
    );
    feed(&mut d, ex(1), &templates_msg(&mut enc, 0), 59_000);
    assert_eq!(
        feed(&mut d, ex(1), &flows_msg(&mut enc, 256, 1, 0), 110_000).len(),
        1,
        "refreshed"
    );
    assert!(feed(&mut d, ex(1), &flows_msg(&mut enc, 256, 1, 0), 119_001).is_empty());
    assert_eq!(stats(&d, key(ex(1), 1)).template_misses, 1);
    d.expire(150_000);
    assert_eq!((d.templates(), d.exporters(), d.held_sets()), (0, 1, 0));
    assert_eq!(d.budget.template_fields, 0);
    d.expire(400_000);
    assert_eq!(d.exporters(), 0, "idle and empty");
}

#[test]
fn take_stats_starts_a_new_batch() {
    let mut d = Decoder::default();
    let mut enc = encoder(1, vec![flow_template(256)]);
    feed(&mut d, ex(1), &templates_msg(&mut enc, 0), 0);
    feed(&mut d, ex(1), &flows_msg(&mut enc, 256, 2, 0), 0);
    let batch = d.take_stats();
    let c = batch.get(&key(ex(1), 1)).unwrap();
    assert_eq!((c.datagrams, c.records, c.templates), (2, 2, 1));
    assert_eq!(c.protocol, Some(crate::model::Protocol::Ipfix));
    assert_eq!(d.stats().total(), super::super::ExporterStats::default());
    feed(&mut d, ex(1), &flows_msg(&mut enc, 256, 1, 0), 0);
    assert_eq!(stats(&d, key(ex(1), 1)).records, 1);
}

#[test]
fn records_carry_their_message_sequence_number_and_place() {
    let mut d = Decoder::default();
    let mut enc = encoder(7, vec![flow_template(256)]);
    let tpl = templates_msg(&mut enc, 1_700_000_000);
    assert!(feed(&mut d, ex(1), &tpl, 0).is_empty());
    let first = feed(&mut d, ex(1), &flows_msg(&mut enc, 256, 3, 1_700_000_001), 0);
    let second = feed(&mut d, ex(1), &flows_msg(&mut enc, 256, 2, 1_700_000_001), 0);
    let ids = |rs: &[FlowRecord]| rs.iter().map(|r| (r.sequence, r.position)).collect::<Vec<_>>();
    // The sequence number counts the data records sent before the message.
    assert_eq!(ids(&first), [(0, 0), (0, 1), (0, 2)]);
    assert_eq!(ids(&second), [(3, 0), (3, 1)]);
}
