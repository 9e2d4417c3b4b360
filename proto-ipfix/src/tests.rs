//! Encoder and decoder together: golden bytes, template rules across messages, malformed input.

use std::net::{Ipv4Addr, SocketAddr};

use crate::cache::{Limits, TemplateCache, TemplatePolicy};
use crate::decode::{DecodeErrorKind, Decoder, Visitor};
use crate::encode::{EncodeError, Encoder};
use crate::ie::{FieldSpec, VARIABLE_LENGTH};
use crate::record::DataRecord;
use crate::template::Template;
use crate::{InsertOutcome, SessionKey, wire};

const PEN: u32 = 32473;

/// Template 256 and one record, as podflow writes them.
static GOLDEN: [u8; 64] = [
    // header: version 10, length 64, export time 1_700_000_000, sequence 7, domain 42
    0x00, 0x0a, 0x00, 0x40, 0x65, 0x53, 0xf1, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x2a,
    // template set, length 28: template 256, 4 fields
    0x00, 0x02, 0x00, 0x1c, 0x01, 0x00, 0x00, 0x04, //
    0x00, 0x08, 0x00, 0x04, // sourceIPv4Address
    0x00, 0x0c, 0x00, 0x04, // destinationIPv4Address
    0x00, 0x01, 0x00, 0x04, // octetDeltaCount, reduced to 4 octets
    0x80, 0x01, 0xff, 0xff, 0x00, 0x00, 0x7e, 0xd9, // communityId, variable length, PEN 32473
    // data set 256, length 20
    0x01, 0x00, 0x00, 0x14, //
    0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x03, b'1', b':', b'x',
];

fn template() -> Template {
    Template::new(
        256,
        vec![
            FieldSpec::iana(8, 4),
            FieldSpec::iana(12, 4),
            FieldSpec::iana(1, 4),
            FieldSpec::enterprise(1, VARIABLE_LENGTH, PEN),
        ],
    )
    .unwrap()
}

fn exporter() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 7], 50000))
}

/// Collects decoded records as (template id, src, octets, community id).
#[derive(Default)]
struct Collect {
    rows: Vec<(u16, Ipv4Addr, u64, String)>,
    missing: Vec<(SessionKey, u16, Vec<u8>)>,
    templates: Vec<InsertOutcome>,
}

impl Visitor for Collect {
    fn record(&mut self, r: &DataRecord<'_>) {
        let src = r
            .get(8, 0)
            .and_then(|f| f.ipv4())
            .unwrap_or(Ipv4Addr::UNSPECIFIED);
        let octets = r.get(1, 0).and_then(|f| f.u64()).unwrap_or(0);
        let cid = r.get(1, PEN).and_then(|f| f.str()).unwrap_or("").to_string();
        self.rows.push((r.template().id(), src, octets, cid));
    }
    fn template(&mut self, _: &SessionKey, _: &Template, outcome: InsertOutcome) {
        self.templates.push(outcome);
    }
    fn missing_template(&mut self, key: &SessionKey, _: &wire::HeaderRepr, set_id: u16, body: &[u8]) {
        self.missing.push((*key, set_id, body.to_vec()));
    }
}

#[test]
fn encoder_writes_golden_bytes() {
    let mut enc = Encoder::new(42, 1400).unwrap();
    enc.add_template(template());
    enc.skip_records(7);
    let mut buf = Vec::new();
    let mut msg = enc.message(1_700_000_000, &mut buf);
    msg.add_templates().unwrap();
    let mut r = msg.record(256).unwrap();
    r.ipv4(Ipv4Addr::new(10, 0, 0, 1))
        .ipv4(Ipv4Addr::new(10, 0, 0, 2))
        .uint(65536)
        .str("1:x");
    r.commit().unwrap();
    assert_eq!(msg.finish(), 1);
    assert_eq!(buf, GOLDEN);
    assert_eq!(enc.sequence(), 8);
}

#[test]
fn decoder_reads_golden_bytes() {
    let mut dec = Decoder::default();
    let mut v = Collect::default();
    let sum = dec.decode(exporter(), &GOLDEN, 0, &mut v);
    assert_eq!(sum.first_error, None);
    assert_eq!(
        (
            sum.records,
            sum.templates,
            sum.header.sequence,
            sum.header.observation_domain
        ),
        (1, 1, 7, 42)
    );
    assert_eq!(
        v.rows,
        vec![(256, Ipv4Addr::new(10, 0, 0, 1), 65536, "1:x".to_string())]
    );
    assert_eq!(v.templates, vec![InsertOutcome::New]);
}

#[test]
fn messages_stay_under_the_limit_and_sequence_counts_records() {
    let mut enc = Encoder::new(1, 200).unwrap().with_set_alignment(4);
    enc.add_template(template());
    let mut dec = Decoder::default();
    let mut v = Collect::default();
    let mut buf = Vec::new();
    let (mut sent, mut messages) = (0u32, 0);
    while sent < 50 {
        let seq_before = enc.sequence();
        let mut msg = enc.message(1, &mut buf);
        if messages == 0 {
            msg.add_templates().unwrap();
        }
        loop {
            let mut r = msg.record(256).unwrap();
            r.ipv4(Ipv4Addr::from(sent))
                .ipv4(Ipv4Addr::LOCALHOST)
                .uint(u64::from(sent))
                .str("1:abc");
            match r.commit() {
                Ok(()) => sent += 1,
                Err(EncodeError::MessageFull) => break,
                Err(e) => panic!("{e}"),
            }
            if sent == 50 {
                break;
            }
        }
        let n = msg.finish();
        assert!(buf.len() <= 200, "message of {} octets", buf.len());
        assert_eq!(buf.len() % 4, 0, "sets padded to 4 octets");
        let sum = dec.decode(exporter(), &buf, 0, &mut v);
        assert_eq!(sum.first_error, None);
        assert_eq!(
            (sum.records, sum.header.sequence, sum.lost_records),
            (n, seq_before, 0)
        );
        messages += 1;
    }
    assert!(messages > 5);
    assert_eq!(v.rows.len(), 50);
    assert!(v.rows.iter().enumerate().all(|(i, r)| r.2 == i as u64));
}

#[test]
fn record_values_are_checked_against_the_template() {
    let mut enc = Encoder::new(1, 1400).unwrap();
    enc.add_template(template());
    let mut buf = Vec::new();
    let mut msg = enc.message(1, &mut buf);
    let mut r = msg.record(256).unwrap();
    r.ipv4(Ipv4Addr::LOCALHOST)
        .ipv4(Ipv4Addr::LOCALHOST)
        .uint(1 << 32);
    assert_eq!(r.commit(), Err(EncodeError::ValueTooLarge(2)));
    let mut r = msg.record(256).unwrap();
    r.ipv4(Ipv4Addr::LOCALHOST);
    assert_eq!(
        r.commit(),
        Err(EncodeError::MissingValues {
            written: 1,
            expected: 4
        })
    );
    let mut r = msg.record(256).unwrap();
    r.bytes(&[1, 2]);
    assert!(matches!(
        r.commit(),
        Err(EncodeError::FieldMismatch {
            index: 0,
            expected: 4,
            got: 2
        })
    ));
    assert!(matches!(msg.record(999), Err(EncodeError::UnknownTemplate(999))));
    assert!(msg.is_empty(), "failed records leave nothing behind");
    assert_eq!(msg.finish(), 0);
    assert_eq!(buf.len(), 16);
}

#[test]
fn data_before_template_is_handed_back_and_decodes_later() {
    let mut dec = Decoder::default();
    let mut v = Collect::default();
    // the data set alone, after a header
    let mut data_only = GOLDEN[..16].to_vec();
    data_only.extend_from_slice(&GOLDEN[44..]);
    data_only[3] = data_only.len() as u8;
    let sum = dec.decode(exporter(), &data_only, 0, &mut v);
    assert_eq!((sum.records, sum.missing_template_sets), (0, 1));
    let (key, set_id, body) = v.missing.pop().unwrap();
    assert_eq!(dec.decode_set(&key, set_id, &body, 0, &mut v), None);
    dec.decode(exporter(), &GOLDEN, 0, &mut v);
    assert_eq!(dec.decode_set(&key, set_id, &body, 0, &mut v), Some((1, None)));
    assert_eq!(v.rows.len(), 2);
}

#[test]
fn withdrawals_follow_the_transport() {
    // withdrawal of template 256 in a template set
    let mut withdraw = GOLDEN[..16].to_vec();
    withdraw.extend_from_slice(&[0x00, 0x02, 0x00, 0x08, 0x01, 0x00, 0x00, 0x00]);
    withdraw.extend_from_slice(&GOLDEN[44..]);
    withdraw[3] = withdraw.len() as u8;
    for (policy, records, withdrawn) in [(TemplatePolicy::default(), 1, 0), (TemplatePolicy::Stream, 0, 1)] {
        let mut dec = Decoder::new(TemplateCache::new(policy, Limits::default()));
        let mut v = Collect::default();
        dec.decode(exporter(), &GOLDEN, 0, &mut v);
        let sum = dec.decode(exporter(), &withdraw, 0, &mut v);
        assert_eq!(
            (sum.records, sum.withdrawn, sum.withdrawals_ignored),
            (records, withdrawn, 1 - withdrawn)
        );
    }
}

#[test]
fn malformed_set_keeps_earlier_records_and_reports_offset() {
    let mut msg = GOLDEN.to_vec();
    // a second data record whose variable-length field claims 9 octets but has 3
    msg.extend_from_slice(&[10, 0, 0, 3, 10, 0, 0, 4, 0, 0, 0, 1, 9, b'a', b'b', b'c']);
    msg[47] += 16; // data set length
    msg[3] += 16; // message length
    let mut dec = Decoder::default();
    let mut v = Collect::default();
    let sum = dec.decode(exporter(), &msg, 0, &mut v);
    assert_eq!(sum.records, 1);
    let e = sum.first_error.unwrap();
    assert_eq!(e.offset, 64);
    assert_eq!(e.kind, DecodeErrorKind::RecordOverrun { set_id: 256 });
    assert_eq!(e.reason(), "record_overrun");
    // truncated datagram
    let sum = dec.decode(exporter(), &GOLDEN[..60], 0, &mut v);
    assert!(sum.first_error.unwrap().is_incomplete());
    assert_eq!(sum.records, 0);
}

#[test]
fn set_padding_is_never_as_long_as_a_record() {
    // Records of 2 octets in sets aligned to 8: 3 records make a 10-octet set, which would need 6 octets
    // of padding, room for 3 more records. The template set (12 octets) would need 4, as long as a
    // withdrawal record. Both sets must stay unpadded.
    let t = Template::new(256, vec![FieldSpec::iana(7, 2)]).unwrap();
    let mut enc = Encoder::new(1, 1400).unwrap().with_set_alignment(8);
    enc.add_template(t);
    let mut buf = Vec::new();
    let mut msg = enc.message(1, &mut buf);
    msg.add_templates().unwrap();
    for port in [80, 443, 8080] {
        let mut r = msg.record(256).unwrap();
        r.uint(port);
        r.commit().unwrap();
    }
    msg.finish();
    assert_eq!(buf.len(), 16 + 12 + 10);
    assert_eq!(&buf[16..20], &[0x00, 0x02, 0x00, 0x0c]);
    assert_eq!(
        &buf[28..],
        &[0x01, 0x00, 0x00, 0x0a, 0, 80, 0x01, 0xbb, 0x1f, 0x90]
    );
    let mut dec = Decoder::default();
    let s = dec.decode(exporter(), &buf, 0, &mut Collect::default());
    assert_eq!((s.records, s.errors), (3, 0));

    // Padding shorter than a record is still written: a 5-octet record aligned to 4 gets 3 octets.
    let t = Template::new(257, vec![FieldSpec::iana(8, 4), FieldSpec::iana(4, 1)]).unwrap();
    let mut enc = Encoder::new(1, 1400).unwrap().with_set_alignment(4);
    enc.add_template(t);
    let mut msg = enc.message(1, &mut buf);
    let mut r = msg.record(257).unwrap();
    r.ipv4(Ipv4Addr::LOCALHOST).uint(6);
    r.commit().unwrap();
    msg.finish();
    assert_eq!(&buf[16..], &[0x01, 0x01, 0x00, 0x0c, 127, 0, 0, 1, 6, 0, 0, 0]);
}

#[test]
fn set_padding_is_never_read_as_records() {
    // One-octet records and 4-octet alignment: 3 octets of padding would read as 3 more records, so
    // the set stays unpadded (RFC 7011 section 3.3.1). Found by the round_trip fuzz target.
    for (fields, value) in [
        (vec![FieldSpec::iana(4, 1)], &[6u8][..]),
        (vec![FieldSpec::iana(82, VARIABLE_LENGTH)], &[b'a'][..]),
    ] {
        let mut enc = Encoder::new(1, 1400).unwrap().with_set_alignment(4);
        enc.add_template(Template::new(256, fields).unwrap());
        let mut buf = Vec::new();
        let mut msg = enc.message(1, &mut buf);
        msg.add_templates().unwrap();
        let mut r = msg.record(256).unwrap();
        r.bytes(value);
        r.commit().unwrap();
        msg.finish();
        let mut v = Collect::default();
        let sum = Decoder::default().decode(exporter(), &buf, 0, &mut v);
        assert_eq!((sum.records, sum.first_error), (1, None), "{buf:02x?}");
    }
    // Records of 4 octets or more still get their sets padded.
    let mut enc = Encoder::new(1, 1400).unwrap().with_set_alignment(4);
    enc.add_template(Template::new(256, vec![FieldSpec::iana(8, 4), FieldSpec::iana(4, 1)]).unwrap());
    let mut buf = Vec::new();
    let mut msg = enc.message(1, &mut buf);
    let mut r = msg.record(256).unwrap();
    r.bytes(&[10, 0, 0, 1]).uint(6);
    r.commit().unwrap();
    msg.finish();
    assert_eq!(buf.len(), 16 + 4 + 8);
    let sum = Decoder::default().decode(exporter(), &buf, 0, &mut Collect::default());
    assert_eq!(sum.missing_template_sets, 1);
}

#[test]
fn a_refused_record_leaves_the_message_as_it_was() {
    // A record of another template closes (and pads) the open set before it is refused; the rollback
    // must reopen that set unpadded. Found by the round_trip fuzz target.
    let mut enc = Encoder::new(1, 1400).unwrap().with_set_alignment(4);
    enc.add_template(Template::new(256, vec![FieldSpec::iana(8, 4), FieldSpec::iana(4, 1)]).unwrap());
    enc.add_template(Template::new(257, vec![FieldSpec::iana(7, 2)]).unwrap());
    let mut buf = Vec::new();
    let mut msg = enc.message(1, &mut buf);
    msg.add_templates().unwrap();
    let mut r = msg.record(256).unwrap();
    r.bytes(&[10, 0, 0, 1]).uint(6);
    r.commit().unwrap();
    let before = msg.len();
    let mut r = msg.record(257).unwrap();
    r.uint(80).uint(443);
    assert_eq!(r.commit(), Err(EncodeError::TooManyValues(1)));
    assert_eq!(msg.len(), before, "the refused record left octets behind");
    let mut r = msg.record(256).unwrap();
    r.bytes(&[10, 0, 0, 2]).uint(17);
    r.commit().unwrap();
    assert_eq!(msg.len(), before + 5, "the second record continues the open set");
    msg.finish();
    let mut v = Collect::default();
    let sum = Decoder::default().decode(exporter(), &buf, 0, &mut v);
    assert_eq!((sum.records, sum.first_error), (2, None));
}

/// Locates its fields when each data set begins and reads every record at those locations.
#[derive(Default)]
struct Located {
    events: Vec<String>,
    locations: Vec<Option<crate::Location>>,
}

impl Visitor for Located {
    fn data_set(&mut self, _: &SessionKey, t: &Template) {
        self.events.push(format!("set {}", t.id()));
        self.locations = [(8, 0), (1, 0), (1, PEN), (7, 0)]
            .iter()
            .map(|&(id, pen)| t.locate(id, pen))
            .collect();
    }
    fn record(&mut self, r: &DataRecord<'_>) {
        let read: Vec<Option<&[u8]>> = self
            .locations
            .iter()
            .map(|l| l.as_ref().and_then(|l| r.at(l)).map(|f| f.value))
            .collect();
        let got: Vec<Option<&[u8]>> = [(8, 0), (1, 0), (1, PEN), (7, 0)]
            .iter()
            .map(|&(id, pen)| r.get(id, pen).map(|f| f.value))
            .collect();
        assert_eq!(read, got, "a located read equals a search of the record");
        let cid = read[2].map(|v| String::from_utf8_lossy(v).into_owned());
        self.events.push(format!("record {}", cid.unwrap_or_default()));
    }
}

#[test]
fn data_sets_announce_their_template_and_located_reads_match() {
    // Template 257 puts a fixed field after the variable-length one, so it is read by walking.
    let after_var = Template::new(
        257,
        vec![
            FieldSpec::enterprise(1, VARIABLE_LENGTH, PEN),
            FieldSpec::iana(8, 4),
            FieldSpec::iana(7, 2),
        ],
    )
    .unwrap();
    let mut enc = Encoder::new(1, 1400).unwrap();
    enc.add_template(template());
    enc.add_template(after_var);
    let mut buf = Vec::new();
    let mut m = enc.message(0, &mut buf);
    m.add_templates().unwrap();
    for (tid, cid) in [
        (256, "1:a"),
        (256, "1:bb"),
        (257, &"x".repeat(300)[..]),
        (256, "1:c"),
    ] {
        let mut r = m.record(tid).unwrap();
        if tid == 256 {
            r.ipv4(Ipv4Addr::new(10, 0, 0, 1))
                .ipv4(Ipv4Addr::new(10, 0, 0, 2))
                .uint(5)
                .str(cid);
        } else {
            r.str(cid).ipv4(Ipv4Addr::new(10, 0, 0, 3)).uint(443);
        }
        r.commit().unwrap();
    }
    m.finish();
    let mut v = Located::default();
    let sum = Decoder::default().decode(exporter(), &buf, 0, &mut v);
    assert_eq!((sum.records, sum.errors), (4, 0));
    let long = format!("record {}", "x".repeat(300));
    assert_eq!(
        v.events,
        [
            "set 256",
            "record 1:a",
            "record 1:bb",
            "set 257",
            &long,
            "set 256",
            "record 1:c"
        ]
    );
}

#[test]
fn locations_know_which_fields_sit_at_fixed_offsets() {
    let t = template();
    let at = |id, pen| t.locate(id, pen).map(|l| (l.index(), l.offset()));
    assert_eq!(at(8, 0), Some((0, Some(0))));
    assert_eq!(at(1, 0), Some((2, Some(8))));
    // The first variable-length field still starts at a fixed offset: its length prefix does.
    assert_eq!(at(1, PEN), Some((3, Some(12))));
    assert_eq!(at(2, 0), None);
    let after_var = Template::new(
        300,
        vec![FieldSpec::iana(82, VARIABLE_LENGTH), FieldSpec::iana(7, 2)],
    )
    .unwrap();
    assert_eq!(after_var.locate(7, 0).map(|l| l.offset()), Some(None));
    // A location of another template reads whatever lies there, never past the record.
    let short = [0x0a, 0x00];
    let t2 = Template::new(301, vec![FieldSpec::iana(7, 2)]).unwrap();
    let rec = crate::record::DataRecords::new(&t2, &short)
        .next()
        .unwrap()
        .unwrap();
    let far = t.locate(1, PEN).unwrap();
    assert_eq!(rec.at(&far), None);
    assert_eq!(rec.at(&t.locate(8, 0).unwrap()), None);
}

#[test]
fn template_refreshes_are_told_from_changes() {
    let mut dec = Decoder::default();
    let mut v = Collect::default();
    dec.decode(exporter(), &GOLDEN, 0, &mut v);
    dec.decode(exporter(), &GOLDEN, 1, &mut v);
    // The same template under another enterprise number, then the same again; then an options
    // template, and the same fields with a different scope count.
    let other_pen = Template::new(
        256,
        vec![
            FieldSpec::iana(8, 4),
            FieldSpec::iana(12, 4),
            FieldSpec::iana(1, 4),
            FieldSpec::enterprise(1, VARIABLE_LENGTH, PEN + 1),
        ],
    )
    .unwrap();
    let opts =
        |scope| Template::new_options(300, scope, vec![FieldSpec::iana(149, 4), FieldSpec::iana(41, 8)]);
    for t in [
        other_pen.clone(),
        other_pen,
        opts(1).unwrap(),
        opts(1).unwrap(),
        opts(2).unwrap(),
    ] {
        let mut enc = Encoder::new(42, 1400).unwrap();
        enc.add_template(t);
        let mut buf = Vec::new();
        let mut m = enc.message(0, &mut buf);
        m.add_templates().unwrap();
        m.finish();
        let sum = dec.decode(exporter(), &buf, 2, &mut v);
        assert_eq!((sum.templates, sum.errors), (1, 0));
    }
    use InsertOutcome::{New, Refreshed, Replaced};
    assert_eq!(
        v.templates,
        [New, Refreshed, Replaced, Refreshed, New, Refreshed, Replaced]
    );
    assert_eq!(dec.cache().templates(), 2);
    // Records of the replaced template 256 carry the community ID under the new enterprise number.
    let mut enc = Encoder::new(42, 1400).unwrap();
    enc.add_template(
        Template::new(
            256,
            vec![
                FieldSpec::iana(8, 4),
                FieldSpec::iana(12, 4),
                FieldSpec::iana(1, 4),
                FieldSpec::enterprise(1, VARIABLE_LENGTH, PEN + 1),
            ],
        )
        .unwrap(),
    );
    let mut buf = Vec::new();
    let mut m = enc.message(0, &mut buf);
    let mut r = m.record(256).unwrap();
    r.ipv4(Ipv4Addr::new(10, 0, 0, 9))
        .ipv4(Ipv4Addr::new(10, 0, 0, 2))
        .uint(3)
        .str("1:y");
    r.commit().unwrap();
    m.finish();
    assert_eq!(dec.decode(exporter(), &buf, 3, &mut v).records, 1);
    let last = v.rows.last().unwrap();
    assert_eq!((last.1, last.3.as_str()), (Ipv4Addr::new(10, 0, 0, 9), ""));
}
