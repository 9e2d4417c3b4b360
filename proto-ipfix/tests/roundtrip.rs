//! Property tests: whatever templates and records the encoder is given, the decoder gives them back, in
//! order, in messages no larger than asked; and damaged messages never make the decoder panic or invent
//! records.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use proptest::prelude::*;
use proto_ipfix::{
    DataRecord, Decoder, EncodeError, Encoder, FieldSpec, InsertOutcome, REVERSE_PEN, SessionKey, Template,
    VARIABLE_LENGTH, Visitor,
};

/// One field value and whether to write it as an integer (`RecordWriter::uint`) rather than as octets.
#[derive(Clone, Debug)]
struct Value {
    bytes: Vec<u8>,
    as_uint: bool,
}

/// A data record to encode: the index of its template and its values.
#[derive(Clone, Debug)]
struct Rec {
    template: usize,
    values: Vec<Value>,
}

#[derive(Clone, Debug)]
struct Case {
    templates: Vec<Template>,
    records: Vec<Rec>,
    max_message_size: usize,
    alignment: u8,
    domain: u32,
    export_time: u32,
}

fn field_spec() -> impl Strategy<Value = FieldSpec> {
    let pen = prop_oneof![Just(0u32), Just(REVERSE_PEN), 1u32..=u32::MAX];
    let length = prop_oneof![3 => 1u16..=16, 1 => Just(VARIABLE_LENGTH)];
    (1u16..=0x7fff, pen, length).prop_map(|(id, pen, length)| FieldSpec::enterprise(id, length, pen))
}

/// A template or options template (with 1 to all of its fields as scope).
fn template(id: u16) -> impl Strategy<Value = Template> {
    (
        prop::collection::vec(field_spec(), 1..=10),
        any::<bool>(),
        any::<prop::sample::Index>(),
    )
        .prop_map(move |(fields, options, scope)| {
            if options {
                let scope = u16::try_from(scope.index(fields.len()) + 1).unwrap();
                Template::new_options(id, scope, fields).unwrap()
            } else {
                Template::new(id, fields).unwrap()
            }
        })
}

fn value(spec: FieldSpec) -> BoxedStrategy<Value> {
    if spec.length == VARIABLE_LENGTH {
        // Short values, values around the 255-octet switch to the 3-octet length form, and anything up to 300.
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..=3),
            prop::collection::vec(any::<u8>(), 250..=300),
            prop::collection::vec(any::<u8>(), 0..300),
        ]
        .prop_map(|bytes| Value {
            bytes,
            as_uint: false,
        })
        .boxed()
    } else {
        let len = usize::from(spec.length);
        (prop::collection::vec(any::<u8>(), len), any::<bool>())
            .prop_map(move |(bytes, uint)| Value {
                bytes,
                as_uint: uint && len <= 8,
            })
            .boxed()
    }
}

fn record(templates: Vec<Template>) -> impl Strategy<Value = Rec> {
    (0..templates.len()).prop_flat_map(move |t| {
        let values: Vec<_> = templates[t].fields().iter().map(|&f| value(f)).collect();
        values.prop_map(move |values| Rec { template: t, values })
    })
}

fn case() -> impl Strategy<Value = Case> {
    prop::collection::btree_set(256u16..=u16::MAX, 1..=4)
        .prop_flat_map(|ids| ids.into_iter().map(template).collect::<Vec<_>>())
        .prop_flat_map(|templates| {
            let records = prop::collection::vec(record(templates.clone()), 0..=40);
            (
                Just(templates),
                records,
                64usize..=65535,
                1u8..=8,
                any::<u32>(),
                any::<u32>(),
            )
        })
        .prop_map(|(templates, records, max, alignment, domain, export_time)| {
            // The size must at least hold the templates, or the largest record, in a message of their own
            // (with set headers and any alignment padding): otherwise nothing could be encoded at all.
            let set = 4 + usize::from(alignment);
            let templates_len: usize = templates.iter().map(Template::buffer_len).sum::<usize>() + 2 * set;
            let largest = records
                .iter()
                .map(|r| encoded_len(&templates[r.template], r))
                .max();
            let needed = 16 + templates_len.max(largest.unwrap_or(0) + set);
            Case {
                max_message_size: max.max(needed).min(65535),
                templates,
                records,
                alignment,
                domain,
                export_time,
            }
        })
}

/// Octets a record takes on the wire.
fn encoded_len(t: &Template, r: &Rec) -> usize {
    t.fields()
        .iter()
        .zip(&r.values)
        .map(|(f, v)| match (f.length, v.bytes.len()) {
            (VARIABLE_LENGTH, n) if n < 255 => 1 + n,
            (VARIABLE_LENGTH, n) => 3 + n,
            (_, n) => n,
        })
        .sum()
}

/// Encodes the case: templates in the first message, then as many records per message as fit.
fn encode(case: &Case) -> (Vec<Vec<u8>>, Vec<u32>) {
    let mut enc = Encoder::new(case.domain, case.max_message_size)
        .unwrap()
        .with_set_alignment(case.alignment);
    for t in &case.templates {
        enc.add_template(t.clone());
    }
    let mut messages = Vec::new();
    let mut per_message = Vec::new();
    let mut next = 0;
    while next < case.records.len() || messages.is_empty() {
        let mut buf = Vec::new();
        let mut m = enc.message(case.export_time, &mut buf);
        if messages.is_empty() {
            m.add_templates().unwrap();
        }
        while let Some(r) = case.records.get(next) {
            let t = &case.templates[r.template];
            let mut w = m.record(t.id()).unwrap();
            for v in &r.values {
                if v.as_uint {
                    let mut b = [0u8; 8];
                    b[8 - v.bytes.len()..].copy_from_slice(&v.bytes);
                    w.uint(u64::from_be_bytes(b));
                } else {
                    w.bytes(&v.bytes);
                }
            }
            match w.commit() {
                Ok(()) => next += 1,
                Err(EncodeError::MessageFull) => break,
                Err(e) => panic!("record {next}: {e}"),
            }
        }
        let n = m.finish();
        assert!(n > 0 || messages.is_empty(), "no progress at record {next}");
        messages.push(buf);
        per_message.push(n);
    }
    (messages, per_message)
}

#[derive(Default)]
struct Collect {
    records: Vec<(u16, Vec<Vec<u8>>)>,
    templates: Vec<Template>,
    outcomes: Vec<InsertOutcome>,
}

impl Visitor for Collect {
    fn record(&mut self, r: &DataRecord<'_>) {
        let values = r.fields().map(|f| f.value.to_vec()).collect();
        self.records.push((r.template().id(), values));
    }
    fn template(&mut self, _: &SessionKey, t: &Template, outcome: InsertOutcome) {
        self.outcomes.push(outcome);
        self.templates.push(t.clone());
    }
}

fn exporter() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], 4739))
}

fn expected_records(case: &Case) -> Vec<(u16, Vec<Vec<u8>>)> {
    case.records
        .iter()
        .map(|r| {
            let values = r.values.iter().map(|v| v.bytes.clone()).collect();
            (case.templates[r.template].id(), values)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn encoded_records_decode_identically(case in case()) {
        let (messages, per_message) = encode(&case);
        let mut decoder = Decoder::default();
        let mut got = Collect::default();
        let mut before = 0u32;
        for (i, (msg, &n)) in messages.iter().zip(&per_message).enumerate() {
            prop_assert!(msg.len() <= case.max_message_size, "message {i}: {} octets", msg.len());
            let s = decoder.decode(exporter(), msg, 0, &mut got);
            prop_assert_eq!(s.first_error, None, "message {}", i);
            prop_assert_eq!((s.errors, s.missing_template_sets, s.lost_records), (0, 0, 0));
            prop_assert_eq!(s.records, n);
            // The sequence number counts the data records of the earlier messages (RFC 7011 section 3.1).
            prop_assert_eq!(s.header.sequence, before);
            prop_assert_eq!(s.header.observation_domain, case.domain);
            prop_assert_eq!(s.header.export_time, case.export_time);
            prop_assert_eq!(usize::from(s.header.length), msg.len());
            let templates = if i == 0 { case.templates.len() as u32 } else { 0 };
            prop_assert_eq!(s.templates, templates);
            before += n;
        }
        // Templates travel in a Template Set and then an Options Template Set, so compare them by ID.
        let mut sent = case.templates.clone();
        sent.sort_by_key(Template::id);
        got.templates.sort_by_key(Template::id);
        prop_assert_eq!(&got.templates, &sent);
        prop_assert!(got.outcomes.iter().all(|&o| o == InsertOutcome::New));
        prop_assert_eq!(got.records, expected_records(&case));
    }

    /// Flipped octets may turn a message into anything, including more, shorter records (a template's
    /// field length or a variable-length prefix made smaller), so the bound here is what the bytes allow:
    /// every record lies inside its message's sets, and the decoder never panics.
    #[test]
    fn flipped_messages_never_panic_or_overrun(
        case in case(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), 1u8..=255), 1..=8),
    ) {
        let (mut messages, _) = encode(&case);
        for (m, at, x) in flips {
            let n = messages.len();
            let msg = &mut messages[m.index(n)];
            let at = at.index(msg.len());
            msg[at] ^= x;
        }
        let mut decoder = Decoder::default();
        for msg in &messages {
            let mut got = Collect::default();
            let s = decoder.decode(exporter(), msg, 0, &mut got);
            prop_assert_eq!(s.records as usize, got.records.len());
            if got.records.is_empty() {
                continue;
            }
            // Records sit after the 16-octet header and a set header, within the length the header gives
            // (octets past it are ignored), and each takes at least one octet.
            let len = usize::from(s.header.length);
            prop_assert!(len <= msg.len());
            let octets: usize = got.records.iter().flat_map(|r| &r.1).map(Vec::len).sum();
            prop_assert!(octets + 20 <= len, "{} value octets in {} octets", octets, len);
            prop_assert!(got.records.len() + 20 <= len);
        }
    }

    /// A message cut short (a datagram truncated, with or without its length field following) yields no
    /// record that was not encoded: only a prefix of its own records, and an error saying it was cut.
    #[test]
    fn truncated_messages_yield_a_prefix_of_their_records(
        case in case(),
        which in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
        patch_length in any::<bool>(),
    ) {
        let (messages, per_message) = encode(&case);
        let expected = expected_records(&case);
        let mut decoder = Decoder::default();
        let target = which.index(messages.len());
        let mut offset = 0;
        for (i, msg) in messages.iter().enumerate() {
            let mut got = Collect::default();
            if i != target {
                decoder.decode(exporter(), msg, 0, &mut got);
                offset += per_message[i] as usize;
                continue;
            }
            let mut cut_msg = msg[..cut.index(msg.len())].to_vec();
            if patch_length && cut_msg.len() >= 4 {
                let len = u16::try_from(cut_msg.len()).unwrap();
                cut_msg[2..4].copy_from_slice(&len.to_be_bytes());
            }
            let s = decoder.decode(exporter(), &cut_msg, 0, &mut got);
            let own = &expected[offset..offset + per_message[i] as usize];
            prop_assert!(got.records.len() <= own.len());
            prop_assert_eq!(&got.records[..], &own[..got.records.len()]);
            if !patch_length {
                // The header still claims the whole message: nothing of it can be trusted.
                prop_assert_eq!(s.first_error.map(|e| e.reason()), Some("truncated"));
                prop_assert!(got.records.is_empty());
            }
            if let Some(e) = s.first_error {
                prop_assert!(["truncated", "bad_length"].contains(&e.reason()), "{}", e);
            }
            break;
        }
    }
}
