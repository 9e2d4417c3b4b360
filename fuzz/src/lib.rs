//! Shared pieces of podflow's IPFIX fuzz targets.
//!
//! [`Walker`] is the visitor every decoding target uses: it reads every field of every record through every
//! value accessor, and checks what the decoder promises about records and templates, so a broken promise
//! panics (which libFuzzer reports as a crash) instead of passing silently.

pub mod netflow;

use std::collections::HashMap;
use std::net::SocketAddr;

use proto_ipfix::ie::Registry;
use proto_ipfix::template::{TemplateRecord, TemplateRecords};
use proto_ipfix::wire::HeaderRepr;
use proto_ipfix::{DataRecord, Field, InsertOutcome, Limits, SessionKey, Summary, Template, Visitor};

/// The simulated exporter of the decoding targets.
pub const EXPORTER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1)), 4739);

/// Data sets held back for want of their template are kept up to this many, as a collector would.
pub const MAX_HELD_SETS: usize = 16;

/// A data set whose template was unknown when it arrived.
#[derive(Clone, Debug)]
pub struct HeldSet {
    /// The session it arrived in.
    pub key: SessionKey,
    /// Its set ID (the template it needs).
    pub set_id: u16,
    /// Its body, without the set header.
    pub body: Vec<u8>,
}

/// A visitor that touches everything and checks the decoder's promises as it goes.
#[derive(Default)]
pub struct Walker {
    /// Data records seen.
    pub records: u32,
    /// Template callbacks seen.
    pub templates: u32,
    /// Data sets handed back for want of a template.
    pub held: Vec<HeldSet>,
    /// The last template defined per (session, ID), to check the insert outcomes against.
    last: HashMap<(SessionKey, u16), Template>,
    /// Folds every value read, so the reads cannot be optimised away.
    pub checksum: u64,
}

impl Walker {
    fn fold(&mut self, v: u64) {
        self.checksum = self.checksum.rotate_left(5) ^ v;
    }

    fn field(&mut self, f: &Field<'_>) {
        let mut acc = f.value.len() as u64;
        acc ^= f.u64().unwrap_or(1);
        acc ^= f.i64().map_or(2, |v| v as u64);
        acc ^= f.f64().map_or(3, f64::to_bits);
        acc ^= f.bool().map_or(4, u64::from);
        acc ^= f.ipv4().map_or(5, |a| u64::from(u32::from(a)));
        acc ^= f.ipv6().map_or(6, |a| u128::from(a) as u64);
        acc ^= f.mac().map_or(7, |m| u64::from(m[0]));
        acc ^= f.str().map_or(8, |s| s.len() as u64);
        // Reduced-size integers: whatever fits in 8 octets reads back as the same number both ways.
        if let (Some(u), Some(i)) = (f.u64(), f.i64()) {
            let n = f.value.len();
            assert!((1..=8).contains(&n), "integer read from {n} octets");
            let mask = if n == 8 { u64::MAX } else { (1u64 << (8 * n)) - 1 };
            assert_eq!(i as u64 & mask, u, "i64 and u64 disagree on {:?}", f.value);
        }
        self.fold(acc);
    }

    /// Reads the registry entry of a field and checks that its name resolves back to the same field.
    fn element(&mut self, spec: &proto_ipfix::FieldSpec) {
        let reg = Registry::default();
        let Some(e) = reg.lookup_spec(spec) else { return };
        let name = e.to_string();
        let _ = (e.data_type().is_list(), e.data_type().allows_reduced_size());
        let back = reg.spec(&name, spec.length);
        assert_eq!(
            back,
            Some(*spec),
            "{spec:?} is named {name}, which resolves to {back:?}"
        );
        self.fold(name.len() as u64);
    }
}

/// Checks what holds for any template the decoder accepted: it emits a record that parses back to itself.
pub fn check_template(t: &Template) {
    let mut out = Vec::new();
    t.emit(&mut out);
    assert_eq!(out.len(), t.buffer_len(), "buffer_len of {t:?}");
    let max = Limits::default().max_fields_per_template.max(t.fields().len());
    let parsed: Vec<_> = TemplateRecords::new(&out, t.is_options(), max).collect();
    assert_eq!(parsed, vec![(0, Ok(TemplateRecord::Define(t.clone())))]);
    assert!(t.min_record_len() > 0);
    if let Some(len) = t.fixed_len() {
        assert_eq!(len, t.min_record_len());
    }
    assert!(t.id() >= 256 && usize::from(t.scope_count()) <= t.fields().len());
}

/// Checks a summary against what the walker saw of the same message.
pub fn check_summary(sum: &Summary, records_before: u32, w: &Walker) {
    assert_eq!(
        sum.records,
        w.records - records_before,
        "summary and visitor disagree on records"
    );
    assert_eq!(sum.errors == 0, sum.first_error.is_none(), "{sum:?}");
    if let Some(e) = sum.first_error {
        // Every error has a reason label and a message, and points inside the message.
        assert!(!e.reason().is_empty() && !e.to_string().is_empty());
        let _ = e.is_incomplete();
        if sum.header.length != 0 {
            assert!(e.offset <= usize::from(sum.header.length), "{e:?} past {sum:?}");
        }
    }
}

impl Visitor for Walker {
    fn begin(&mut self, key: &SessionKey, header: &HeaderRepr) {
        assert_eq!(key.observation_domain, header.observation_domain);
        assert!(usize::from(header.length) >= header.buffer_len());
    }

    fn record(&mut self, r: &DataRecord<'_>) {
        self.records += 1;
        let t = r.template();
        let bytes = r.as_bytes();
        assert!(bytes.len() >= t.min_record_len());
        if let Some(len) = t.fixed_len() {
            assert_eq!(bytes.len(), len);
        }
        let mut n = 0;
        let mut end = 0;
        for (i, f) in r.fields().enumerate() {
            assert_eq!(f.spec, t.fields()[i]);
            assert_eq!(r.field(i), Some(f), "indexed and walked field {i} differ");
            // The value lies inside the record, after the previous one.
            let start = f.value.as_ptr() as usize - bytes.as_ptr() as usize;
            assert!(start >= end && start + f.value.len() <= bytes.len());
            end = start + f.value.len();
            // get() finds the first field of that element (a template may repeat one).
            let first = t.position(f.spec.id, f.spec.pen);
            assert!(first.is_some_and(|p| p <= i), "position() misses {:?}", f.spec);
            assert_eq!(r.get(f.spec.id, f.spec.pen), first.and_then(|p| r.field(p)));
            self.field(&f);
            self.element(&f.spec);
            n += 1;
        }
        assert_eq!(n, t.fields().len(), "a delivered record lacks fields");
        assert_eq!(end, bytes.len(), "the fields do not cover the record");
        assert_eq!(r.field(n), None);
    }

    fn template(&mut self, key: &SessionKey, t: &Template, outcome: InsertOutcome) {
        self.templates += 1;
        check_template(t);
        let previous = self.last.insert((*key, t.id()), t.clone());
        match outcome {
            InsertOutcome::Refreshed => {
                assert_eq!(previous.as_ref(), Some(t), "refreshed a different template")
            }
            InsertOutcome::Replaced => {
                assert!(
                    previous.is_some_and(|p| p != *t),
                    "replaced without a different template before"
                )
            }
            InsertOutcome::New => {}
        }
    }

    fn missing_template(&mut self, key: &SessionKey, _: &HeaderRepr, set_id: u16, body: &[u8]) {
        assert!(set_id >= 256);
        if self.held.len() < MAX_HELD_SETS {
            self.held.push(HeldSet {
                key: *key,
                set_id,
                body: body.to_vec(),
            });
        }
    }
}
