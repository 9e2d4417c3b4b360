//! Encode, decode, compare: what the encoder writes, the decoder must read back exactly.
//!
//! From the input, `arbitrary` draws an observation domain, a maximum message size, a set alignment, a
//! starting sequence number, templates (any field IDs, lengths, enterprise numbers; some options
//! templates) and records with values of the right size for their fields. The encoder writes the templates,
//! then the records, starting a new message whenever one is full. Each message is decoded at once; the
//! templates, the records' field values, the headers and the sequence numbers must come back as written.
//! Any difference panics: that is the oracle. Some records are written wrong on purpose, and must be
//! refused without leaving a trace in the message.
#![no_main]

use std::net::{Ipv4Addr, Ipv6Addr};

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use proto_ipfix::ie::FieldSpec;
use proto_ipfix::{
    DataRecord, Decoder, EncodeError, Encoder, InsertOutcome, SessionKey, Template, VARIABLE_LENGTH, Visitor,
};
use proto_ipfix_fuzz::EXPORTER;

/// What the decoder handed over.
#[derive(Default)]
struct Collect {
    records: Vec<(u16, Vec<Vec<u8>>)>,
    templates: Vec<Template>,
}

impl Visitor for Collect {
    fn record(&mut self, r: &DataRecord<'_>) {
        let values = r.fields().map(|f| f.value.to_vec()).collect();
        self.records.push((r.template().id(), values));
    }

    fn template(&mut self, _: &SessionKey, t: &Template, _: InsertOutcome) {
        self.templates.push(t.clone());
    }
}

/// One value as the encoder is asked to write it.
#[derive(Debug)]
enum Value {
    Uint(u64),
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
    Str(String),
    Bytes(Vec<u8>),
}

impl Value {
    /// The octets the decoder must return for it.
    fn octets(&self, length: u16) -> Vec<u8> {
        match self {
            Value::Uint(v) => v.to_be_bytes()[8 - usize::from(length)..].to_vec(),
            Value::Ipv4(a) => a.octets().to_vec(),
            Value::Ipv6(a) => a.octets().to_vec(),
            Value::Str(s) => s.as_bytes().to_vec(),
            Value::Bytes(b) => b.clone(),
        }
    }
}

fn field(u: &mut Unstructured<'_>) -> Result<FieldSpec> {
    let id = u.arbitrary()?;
    let length = match u.int_in_range(0..=9)? {
        0..=3 => u.int_in_range(0..=8)?,
        4 => 16,
        5..=7 => VARIABLE_LENGTH,
        _ => u.arbitrary()?,
    };
    let pen = match u.int_in_range(0..=3)? {
        0 | 1 => 0,
        2 => proto_ipfix::REVERSE_PEN,
        _ => u.arbitrary()?,
    };
    Ok(FieldSpec::enterprise(id, length, pen))
}

fn template(u: &mut Unstructured<'_>) -> Result<Option<Template>> {
    let id = u.int_in_range(250..=300)?;
    let n = u.int_in_range(1..=12)?;
    let fields = (0..n).map(|_| field(u)).collect::<Result<Vec<_>>>()?;
    let t = if u.ratio(1, 4)? {
        let scope = u.int_in_range(0..=n)?;
        Template::new_options(id, scope, fields)
    } else {
        Template::new(id, fields)
    };
    Ok(t.ok())
}

fn value(u: &mut Unstructured<'_>, spec: &FieldSpec) -> Result<Value> {
    Ok(match spec.length {
        VARIABLE_LENGTH if u.ratio(1, 2)? => Value::Str(u.arbitrary()?),
        VARIABLE_LENGTH => {
            // Mostly short values, sometimes long enough for the 3-octet length form.
            let n = if u.ratio(1, 4)? {
                u.int_in_range(250..=600)?
            } else {
                u.int_in_range(0..=20)?
            };
            Value::Bytes(u.bytes(n)?.to_vec())
        }
        4 if u.ratio(1, 2)? => Value::Ipv4(Ipv4Addr::from(u.arbitrary::<u32>()?)),
        16 if u.ratio(1, 2)? => Value::Ipv6(Ipv6Addr::from(u.arbitrary::<u128>()?)),
        len @ 1..=8 if u.ratio(1, 2)? => {
            let v: u64 = u.arbitrary()?;
            Value::Uint(if len == 8 { v } else { v & ((1 << (8 * len)) - 1) })
        }
        len => Value::Bytes(u.bytes(usize::from(len))?.to_vec()),
    })
}

fn write(r: &mut proto_ipfix::RecordWriter<'_, '_>, v: &Value) {
    match v {
        Value::Uint(n) => r.uint(*n),
        Value::Ipv4(a) => r.ipv4(*a),
        Value::Ipv6(a) => r.ipv6(*a),
        Value::Str(s) => r.str(s),
        Value::Bytes(b) => r.bytes(b),
    };
}

/// The encoder and decoder side by side, with what each message must decode to.
struct Run {
    enc: Encoder,
    dec: Decoder,
    got: Collect,
    want_records: Vec<(u16, Vec<Vec<u8>>)>,
    export_time: u32,
    buf: Vec<u8>,
}

impl Run {
    /// Decodes the finished message in `buf` and checks it.
    fn check(&mut self, sequence: u32, records: u32) {
        let max = self.enc.max_message_size();
        assert!(
            self.buf.len() <= max,
            "message of {} octets over {max}",
            self.buf.len()
        );
        let sum = self.dec.decode(EXPORTER, &self.buf, 0, &mut self.got);
        assert_eq!(sum.first_error, None, "{:02x?}", self.buf);
        assert_eq!(usize::from(sum.header.length), self.buf.len());
        assert_eq!(sum.header.sequence, sequence);
        assert_eq!(sum.header.export_time, self.export_time);
        assert_eq!(sum.header.observation_domain, self.enc.observation_domain());
        assert_eq!(
            (sum.records, sum.lost_records, sum.missing_template_sets),
            (records, 0, 0)
        );
        assert_eq!(
            self.got.records, self.want_records,
            "records differ in {:02x?}",
            self.buf
        );
    }
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let max = u.int_in_range(32..=u16::MAX)?;
    let max = if u.ratio(3, 4)? {
        usize::from(max % 1500).max(32)
    } else {
        usize::from(max)
    };
    let Ok(enc) = Encoder::new(u.arbitrary()?, max) else {
        panic!("size {max} refused")
    };
    let mut enc = enc.with_set_alignment(u.int_in_range(0..=8)?);
    enc.skip_records(u.arbitrary()?);
    for _ in 0..u.int_in_range(1..=6)? {
        if let Some(t) = template(u)? {
            enc.add_template(t);
        }
    }
    let mut run = Run {
        export_time: u.arbitrary()?,
        enc,
        dec: Decoder::default(),
        got: Collect::default(),
        want_records: Vec::new(),
        buf: Vec::new(),
    };

    // Templates first, as many per message as fit; one that fits in no message is not used.
    let mut usable = Vec::new();
    let mut pending: Vec<u16> = run.enc.templates().iter().map(Template::id).collect();
    let all_templates = pending.len();
    while !pending.is_empty() {
        let sequence = run.enc.sequence();
        let mut msg = run.enc.message(run.export_time, &mut run.buf);
        // add_templates() writes every template, so only while none has been sent.
        let none_sent = pending.len() == all_templates;
        if none_sent && u.ratio(1, 2)? && msg.add_templates().is_ok() {
            usable.append(&mut pending);
        } else {
            assert!(msg.is_empty(), "a failed add_templates left bytes behind");
            while let Some(&id) = pending.first() {
                match msg.add_template(id) {
                    Ok(()) => usable.push(pending.remove(0)),
                    Err(EncodeError::MessageFull) if msg.template_records() == 0 => drop(pending.remove(0)),
                    Err(EncodeError::MessageFull) => break,
                    Err(e) => panic!("template {id}: {e}"),
                }
            }
        }
        let n = msg.finish();
        assert_eq!(n, 0);
        run.check(sequence, 0);
    }
    let sent: Vec<Template> = run
        .enc
        .templates()
        .iter()
        .filter(|t| usable.contains(&t.id()))
        .cloned()
        .collect();
    let mut got = run.got.templates.clone();
    got.sort_by_key(Template::id);
    let mut want = sent.clone();
    want.sort_by_key(Template::id);
    assert_eq!(got, want, "templates differ");
    if sent.is_empty() {
        return Ok(());
    }

    // Then records, a new message whenever one is full.
    let mut records = Vec::new();
    for _ in 0..u.int_in_range(0..=40)? {
        let t = u.choose(&sent)?;
        let values = t
            .fields()
            .iter()
            .map(|f| value(u, f))
            .collect::<Result<Vec<_>>>()?;
        let wrong = u.ratio(1, 16)?;
        records.push((t.id(), values, wrong));
    }
    let mut next = 0;
    while next < records.len() {
        let sequence = run.enc.sequence();
        let mut want = Vec::new();
        let mut msg = run.enc.message(run.export_time, &mut run.buf);
        while let Some((id, values, wrong)) = records.get(next) {
            let before = msg.len();
            let mut r = match msg.record(*id) {
                Ok(r) => r,
                Err(e) => panic!("record of template {id}: {e}"),
            };
            for v in values {
                write(&mut r, v);
            }
            if *wrong {
                // One value too many: refused, and the message is as it was.
                r.bytes(&[]);
                assert!(matches!(r.commit(), Err(EncodeError::TooManyValues(_))));
                assert_eq!(msg.len(), before);
                next += 1;
                continue;
            }
            match r.commit() {
                Ok(()) => {
                    let t = sent.iter().find(|t| t.id() == *id);
                    let lengths = t.iter().flat_map(|t| t.fields().iter().map(|f| f.length));
                    want.push((
                        *id,
                        values.iter().zip(lengths).map(|(v, l)| v.octets(l)).collect(),
                    ));
                    next += 1;
                }
                Err(EncodeError::MessageFull) if msg.records() == 0 => {
                    // Too big for any message: dropped.
                    assert_eq!(msg.len(), before);
                    next += 1;
                }
                Err(EncodeError::MessageFull) => {
                    assert_eq!(msg.len(), before);
                    break;
                }
                Err(e) => panic!("record of template {id}: {e}"),
            }
        }
        let n = msg.finish();
        assert_eq!(n as usize, want.len());
        run.want_records.append(&mut want);
        run.check(sequence, n);
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
