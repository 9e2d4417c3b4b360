//! Data records as zero-copy field views (RFC 7011 sections 3.4.3, 6 and 7).
//!
//! A [`DataRecord`] borrows its template and its octets; walking it allocates nothing. Values are read on
//! demand from a [`Field`], honouring reduced-size encoding (section 6.2): integers are sized by the
//! template's field length, not by the element's abstract type.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::ie::{FieldSpec, VARIABLE_LENGTH};
use crate::template::{Location, Place, Template};

/// One field of a data record: its specifier and its value octets (without any variable-length prefix).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field<'a> {
    /// The field's specifier from the template.
    pub spec: FieldSpec,
    /// The value octets.
    pub value: &'a [u8],
}

impl<'a> Field<'a> {
    /// Unsigned integer of 1 to 8 octets (reduced-size encoding included).
    #[inline]
    pub fn u64(&self) -> Option<u64> {
        // The common widths get a single load and byte swap each; copying a value of variable width into
        // a buffer would call memmove for every field.
        Some(match *self.value {
            [a] => u64::from(a),
            [a, b] => u64::from(u16::from_be_bytes([a, b])),
            [a, b, c, d] => u64::from(u32::from_be_bytes([a, b, c, d])),
            [a, b, c, d, e, f, g, h] => u64::from_be_bytes([a, b, c, d, e, f, g, h]),
            [] => return None,
            ref v if v.len() > 8 => return None,
            ref v => v.iter().fold(0, |n, &b| n << 8 | u64::from(b)),
        })
    }

    /// Signed integer of 1 to 8 octets, sign-extended from its encoded size.
    pub fn i64(&self) -> Option<i64> {
        let n = self.value.len();
        let raw = self.u64()?;
        let shift = 64 - 8 * n as u32;
        // Shift the sign bit to the top, then back with an arithmetic shift.
        Some(((raw << shift) as i64) >> shift)
    }

    /// float32 or float64 (a float64 may be sent reduced to 4 octets).
    pub fn f64(&self) -> Option<f64> {
        match self.value.len() {
            4 => Some(f64::from(f32::from_be_bytes(self.value.try_into().ok()?))),
            8 => Some(f64::from_be_bytes(self.value.try_into().ok()?)),
            _ => None,
        }
    }

    /// Boolean: 1 true, 2 false (RFC 7011 section 6.1.5).
    pub fn bool(&self) -> Option<bool> {
        match self.value {
            [1] => Some(true),
            [2] => Some(false),
            _ => None,
        }
    }

    /// IPv4 address (exactly 4 octets: addresses are never reduced).
    #[inline]
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        let a: [u8; 4] = self.value.try_into().ok()?;
        Some(Ipv4Addr::from(a))
    }

    /// IPv6 address (exactly 16 octets).
    #[inline]
    pub fn ipv6(&self) -> Option<Ipv6Addr> {
        let a: [u8; 16] = self.value.try_into().ok()?;
        Some(Ipv6Addr::from(a))
    }

    /// MAC address (exactly 6 octets).
    pub fn mac(&self) -> Option<[u8; 6]> {
        self.value.try_into().ok()
    }

    /// UTF-8 string; `None` for ill-formed UTF-8 (RFC 7011 section 6.1.6).
    pub fn str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.value).ok()
    }
}

/// One data record of a data set, checked against its template.
#[derive(Clone, Copy, Debug)]
pub struct DataRecord<'a> {
    template: &'a Template,
    bytes: &'a [u8],
}

impl<'a> DataRecord<'a> {
    /// The record's template.
    pub fn template(&self) -> &'a Template {
        self.template
    }

    /// The record's octets.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The fields in template order.
    pub fn fields(&self) -> Fields<'a> {
        Fields {
            specs: self.template.fields().iter(),
            bytes: self.bytes,
            at: 0,
        }
    }

    /// Field number `index` of the template.
    pub fn field(&self, index: usize) -> Option<Field<'a>> {
        match self.template.static_offset(index) {
            Some(at) => self.read(*self.template.fields().get(index)?, at),
            None => self.fields().nth(index),
        }
    }

    /// The field at `location`, found with [`Template::locate`] in this record's template.
    #[inline]
    pub fn at(&self, location: &Location) -> Option<Field<'a>> {
        // A fixed-length field at a fixed offset, the common case, takes one bounds check, and a short
        // variable-length one at a fixed offset two; the others stay out of line so that this inlines
        // into the caller's code.
        match location.place() {
            Place::Fixed { start, len } | Place::Uint { start, len, .. } => {
                // Computed in usize, the end cannot precede the start: one bounds check.
                let start = usize::from(start);
                Some(Field {
                    spec: location.spec(),
                    value: self.bytes.get(start..start + usize::from(len))?,
                })
            }
            // A variable-length value in the short form (under 255 octets) right after its length
            // octet at a fixed offset: the first variable-length field, often the only one.
            Place::Prefixed { at } => {
                let at = usize::from(at);
                match *self.bytes.get(at)? {
                    255 => self.at_slow(location),
                    len => Some(Field {
                        spec: location.spec(),
                        value: self.bytes.get(at + 1..at + 1 + usize::from(len))?,
                    }),
                }
            }
            Place::Walk => self.at_slow(location),
        }
    }

    /// The unsigned integer at `location`, found with [`Template::locate`] in this record's template:
    /// the same value as `self.at(location)?.u64()`.
    ///
    /// A field of 1 to 8 octets at a fixed offset, the common case, is read with one bounds check, one
    /// load, a shift and a mask worked out by [`Template::locate`], with no test of its width. Reading the
    /// same fields of many records, prefer this to [`Field::u64`].
    #[inline]
    pub fn u64_at(&self, location: &Location) -> Option<u64> {
        match location.place() {
            Place::Uint {
                window, shift, mask, ..
            } => {
                let window = usize::from(window);
                // An 8-octet slice: the conversion to an array cannot fail, and compiles to nothing.
                let word: [u8; 8] = self.bytes.get(window..window + 8)?.try_into().ok()?;
                Some((u64::from_be_bytes(word) >> shift) & mask)
            }
            _ => self.u64_slow(location),
        }
    }

    /// The value at `location`, found with [`Template::locate`] in this record's template, when it is
    /// exactly `N` octets long (4 for an IPv4 address, 6 for a MAC address, 16 for an IPv6 address):
    /// the same as `self.at(location)?.value.try_into().ok()`.
    ///
    /// A fixed-length field at a fixed offset, the common case, is checked for its length once, from
    /// the template, and copied with one bounds check, as a value of known size.
    #[inline]
    pub fn array_at<const N: usize>(&self, location: &Location) -> Option<[u8; N]> {
        match location.place() {
            Place::Fixed { start, len } | Place::Uint { start, len, .. } => {
                if usize::from(len) != N {
                    return None;
                }
                let start = usize::from(start);
                // An N-octet slice: the conversion to an array cannot fail, and compiles to nothing.
                self.bytes.get(start..start + N)?.try_into().ok()
            }
            _ => self.array_slow(location),
        }
    }

    /// [`DataRecord::array_at`] for a field after a variable-length one, or variable-length itself.
    #[inline(never)]
    fn array_slow<const N: usize>(&self, location: &Location) -> Option<[u8; N]> {
        self.at(location)?.value.try_into().ok()
    }

    /// [`DataRecord::u64_at`] for a field without an integer window; out of line so that the common
    /// case inlines into the caller's code.
    #[inline(never)]
    fn u64_slow(&self, location: &Location) -> Option<u64> {
        self.at(location)?.u64()
    }

    /// [`DataRecord::at`] for a variable-length field, or one after a variable-length field.
    #[inline(never)]
    fn at_slow(&self, location: &Location) -> Option<Field<'a>> {
        match location.place() {
            Place::Walk => self.fields().nth(location.index()),
            _ => self.read(location.spec(), location.offset()?),
        }
    }

    /// The field of specifier `spec` whose value (or length prefix) starts at `at`.
    #[inline]
    fn read(&self, spec: FieldSpec, at: usize) -> Option<Field<'a>> {
        let (start, len) = if spec.length == VARIABLE_LENGTH {
            variable_extent(self.bytes, at)?
        } else {
            (at, usize::from(spec.length))
        };
        let value = self.bytes.get(start..start + len)?;
        Some(Field { spec, value })
    }

    /// The first field with this element ID and enterprise number (0 for IANA).
    pub fn get(&self, id: u16, pen: u32) -> Option<Field<'a>> {
        self.field(self.template.position(id, pen)?)
    }
}

/// Iterator over the fields of a [`DataRecord`].
#[derive(Clone, Debug)]
pub struct Fields<'a> {
    specs: std::slice::Iter<'a, FieldSpec>,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Fields<'a> {
    type Item = Field<'a>;

    #[inline]
    fn next(&mut self) -> Option<Field<'a>> {
        let spec = *self.specs.next()?;
        let (start, len) = if spec.length == VARIABLE_LENGTH {
            variable_extent(self.bytes, self.at)?
        } else {
            (self.at, usize::from(spec.length))
        };
        let value = self.bytes.get(start..start + len)?;
        self.at = start + len;
        Some(Field { spec, value })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.specs.size_hint()
    }
}

/// Where the value of a variable-length field starting at `at` lies: `(value start, value length)`, or
/// `None` when the bytes end inside its length prefix. The prefix is one octet, or 255 and two octets
/// (RFC 7011 section 7).
#[inline]
fn variable_extent(b: &[u8], at: usize) -> Option<(usize, usize)> {
    match *b.get(at)? {
        255 => {
            let l = b.get(at + 1..at + 3)?;
            Some((at + 3, usize::from(u16::from_be_bytes([l[0], l[1]]))))
        }
        l => Some((at + 1, usize::from(l))),
    }
}

/// Length of the record at the start of `b`, or `None` when it runs past the end of `b`.
///
/// Only the length prefixes are read: the template knows how many fixed octets lie between them, so the
/// cost grows with the variable-length fields, not with all fields.
#[inline]
fn record_len(template: &Template, b: &[u8]) -> Option<usize> {
    let end = match template.variable_runs() {
        None => template.min_record_len(),
        // One variable-length field, the common case (a name, a Community ID): no loop.
        Some((&[run], tail)) => {
            let (start, len) = variable_extent(b, usize::from(run))?;
            start + len + tail
        }
        Some((fixed_runs, tail)) => {
            let mut end = 0;
            for &run in fixed_runs {
                let (start, len) = variable_extent(b, end + usize::from(run))?;
                end = start + len;
            }
            end + tail
        }
    };
    (end <= b.len()).then_some(end)
}

/// A data record that overran its set: the offset of the record within the set body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordOverrun {
    /// Offset of the bad record from the start of the set body.
    pub offset: usize,
}

/// Iterates over the data records of a data set body.
///
/// Stops at padding (fewer octets left than the smallest record, RFC 7011 section 3.3.1). A variable-length
/// record whose lengths run past the set yields one error and ends the iteration.
#[derive(Clone, Debug)]
pub struct DataRecords<'a> {
    template: &'a Template,
    /// The set body, for the offsets of errors.
    body: &'a [u8],
    /// The records not yet read: the rest of the body.
    rest: &'a [u8],
}

impl<'a> DataRecords<'a> {
    /// Iterates over `body` (a data set without its header) with `template`.
    pub fn new(template: &'a Template, body: &'a [u8]) -> Self {
        DataRecords {
            template,
            body,
            rest: body,
        }
    }
}

impl<'a> Iterator for DataRecords<'a> {
    type Item = Result<DataRecord<'a>, RecordOverrun>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.len() < self.template.min_record_len() {
            return None;
        }
        // Splitting the rest of the body takes no second bounds check: record_len checked the length.
        match record_len(self.template, self.rest).and_then(|len| self.rest.split_at_checked(len)) {
            Some((bytes, rest)) => {
                self.rest = rest;
                Some(Ok(DataRecord {
                    template: self.template,
                    bytes,
                }))
            }
            None => {
                let offset = self.body.len() - self.rest.len();
                self.rest = &[];
                Some(Err(RecordOverrun { offset }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_reduced_size_and_signed_values() {
        let spec = FieldSpec::iana(1, 2);
        assert_eq!(
            Field {
                spec,
                value: &[0x01, 0x02]
            }
            .u64(),
            Some(258)
        );
        assert_eq!(
            Field {
                spec,
                value: &[0xff, 0xfe]
            }
            .i64(),
            Some(-2)
        );
        assert_eq!(Field { spec, value: &[0x7f] }.i64(), Some(127));
        assert_eq!(Field { spec, value: &[] }.u64(), None);
        assert_eq!(Field { spec, value: &[0; 9] }.u64(), None);
        // Every width from 1 to 8 octets, fast paths and the general one alike.
        let octets = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08];
        for n in 1..=8 {
            let want = 0x0102_0304_0506_0708u64 >> (8 * (8 - n));
            assert_eq!(
                Field {
                    spec,
                    value: &octets[..n]
                }
                .u64(),
                Some(want),
                "{n} octets"
            );
        }
        assert_eq!(
            Field {
                spec,
                value: &[0xff; 8]
            }
            .u64(),
            Some(u64::MAX)
        );
        assert_eq!(
            Field {
                spec,
                value: &[0xff; 3]
            }
            .i64(),
            Some(-1)
        );
        assert_eq!(Field { spec, value: &[1] }.bool(), Some(true));
        assert_eq!(
            Field {
                spec,
                value: &[0x3f, 0x80, 0, 0]
            }
            .f64(),
            Some(1.0)
        );
        assert_eq!(
            Field {
                spec,
                value: &[10, 0, 0, 1]
            }
            .ipv4(),
            Some(Ipv4Addr::new(10, 0, 0, 1))
        );
        assert_eq!(
            Field {
                spec,
                value: &[10, 0, 0]
            }
            .ipv4(),
            None
        );
        assert_eq!(Field { spec, value: &[0xff] }.str(), None);
    }

    #[test]
    fn walks_variable_length_records_in_both_forms() {
        let t = Template::new(
            256,
            vec![FieldSpec::iana(4, 1), FieldSpec::iana(82, VARIABLE_LENGTH)],
        )
        .unwrap();
        // rec1: proto 6, "ab" short form; rec2: proto 17, "xyz" long form; rec3: proto 1, empty; then 1 pad
        let body = [6, 2, b'a', b'b', 17, 255, 0, 3, b'x', b'y', b'z', 1, 0, 0];
        let recs: Vec<_> = DataRecords::new(&t, &body).map(|r| r.unwrap()).collect();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].get(82, 0).unwrap().str(), Some("ab"));
        assert_eq!(recs[1].field(1).unwrap().value, b"xyz");
        assert_eq!(recs[1].field(0).unwrap().u64(), Some(17));
        assert_eq!(recs[2].get(82, 0).unwrap().value, b"");
        assert_eq!(recs[2].fields().count(), 2);
    }

    /// The record length from the length prefixes alone, against walking every field, on many bodies.
    #[test]
    fn record_length_matches_a_walk_of_every_field() {
        let t = Template::new(
            256,
            vec![
                FieldSpec::iana(4, 1),
                FieldSpec::iana(82, VARIABLE_LENGTH),
                FieldSpec::iana(7, 2),
                FieldSpec::iana(11, 2),
                FieldSpec::iana(83, VARIABLE_LENGTH),
                FieldSpec::iana(84, VARIABLE_LENGTH),
                FieldSpec::iana(1, 4),
            ],
        )
        .unwrap();
        assert_eq!(t.variable_runs(), Some((&[1u16, 4, 0][..], 4)));
        // One variable-length field, whose length takes its own path.
        let one = Template::new(
            257,
            vec![
                FieldSpec::iana(4, 1),
                FieldSpec::iana(7, 2),
                FieldSpec::iana(82, VARIABLE_LENGTH),
                FieldSpec::iana(1, 4),
            ],
        )
        .unwrap();
        assert_eq!(one.variable_runs(), Some((&[3u16][..], 4)));
        let walk = |t: &Template, b: &[u8], at: usize| -> Option<usize> {
            let mut end = at;
            for spec in t.fields() {
                let (start, len) = match spec.length {
                    VARIABLE_LENGTH => variable_extent(b, end)?,
                    n => (end, usize::from(n)),
                };
                end = start + len;
            }
            (end <= b.len()).then_some(end - at)
        };
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut outcomes = [[0usize; 2]; 2];
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 40) as usize;
            // Small octets make short length prefixes likely, and 255 the long form now and then.
            let body: Vec<u8> = (0..len)
                .map(|i| match (seed >> (i % 56)) & 15 {
                    15 => 255,
                    0 => 0,
                    n => n as u8 % 6,
                })
                .collect();
            for at in 0..=len {
                for (k, t) in [&t, &one].into_iter().enumerate() {
                    let want = walk(t, &body, at);
                    assert_eq!(record_len(t, &body[at..]), want, "{body:?} at {at}");
                    outcomes[k][usize::from(want.is_some())] += 1;
                }
            }
        }
        assert!(
            outcomes.iter().flatten().all(|&n| n > 10_000),
            "both outcomes tried: {outcomes:?}"
        );
        // Long-form prefix in the middle field, then a record whose first prefix runs past the set.
        let mut body = vec![6, 1, b'a', 0, 80, 1, 187, 255, 0, 2, b'x', b'y', 0, 0, 0, 0, 9];
        body.extend_from_slice(&[17, 200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let got: Vec<_> = DataRecords::new(&t, &body).collect();
        assert_eq!(got.len(), 2);
        let rec = got[0].unwrap();
        assert_eq!(rec.as_bytes().len(), 17);
        let values: Vec<&[u8]> = rec.fields().map(|f| f.value).collect();
        assert_eq!(
            values,
            [&[6][..], b"a", &[0, 80], &[1, 187], b"xy", b"", &[0, 0, 0, 9]]
        );
        assert_eq!(got[1].unwrap_err(), RecordOverrun { offset: 17 });
    }

    /// Every way of reading a field at a location gives what walking the record gives, on random
    /// templates (every integer width, longer and empty fields, variable-length ones in both forms,
    /// records shorter than 8 octets) and random records of them.
    #[test]
    fn located_reads_match_the_walk_of_every_field() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let lengths = [1, 2, 3, 4, 5, 6, 7, 8, 0, 16, VARIABLE_LENGTH];
        // How many integer reads took each path: the windowed one and the general one.
        let mut paths = [0usize; 2];
        let mut long_forms = 0;
        for _ in 0..3_000 {
            let n = 1 + next() % 6;
            let fields: Vec<FieldSpec> = (0..n)
                .map(|i| FieldSpec::iana(i as u16 + 1, lengths[(next() % 11) as usize]))
                .collect();
            let Ok(t) = Template::new(256, fields) else {
                continue;
            };
            let locations: Vec<Location> = t.fields().iter().map(|f| t.locate(f.id, 0).unwrap()).collect();
            for _ in 0..4 {
                let mut body = Vec::new();
                for f in t.fields() {
                    let len = match f.length {
                        VARIABLE_LENGTH => {
                            let len = (next() % 12) as usize;
                            if next() % 4 == 0 {
                                long_forms += 1;
                                body.extend_from_slice(&[255, 0, len as u8]);
                            } else {
                                body.push(len as u8);
                            }
                            len
                        }
                        n => usize::from(n),
                    };
                    body.extend((0..len).map(|_| next() as u8));
                }
                let r = DataRecords::new(&t, &body).next().unwrap().unwrap();
                assert_eq!(r.as_bytes().len(), body.len());
                for (i, l) in locations.iter().enumerate() {
                    let walked = r.fields().nth(i).unwrap();
                    assert_eq!(r.at(l), Some(walked), "{t:?} {body:?} field {i}");
                    assert_eq!(r.field(i), Some(walked));
                    assert_eq!(r.u64_at(l), walked.u64(), "{t:?} {body:?} field {i}");
                    assert_eq!(r.array_at::<4>(l), walked.value.try_into().ok());
                    assert_eq!(r.array_at::<8>(l), walked.value.try_into().ok());
                    paths[usize::from(!matches!(l.place(), Place::Uint { .. }))] += 1;
                }
            }
        }
        assert!(paths.iter().all(|&n| n > 1_000), "both paths tried: {paths:?}");
        assert!(long_forms > 100);
    }

    /// A location applied to a record of another template reads whatever lies there, never past the
    /// record and without panicking.
    #[test]
    fn a_location_of_another_template_stays_in_the_record() {
        let long = Template::new(256, vec![FieldSpec::iana(1, 8), FieldSpec::iana(2, 4)]).unwrap();
        let short = Template::new(257, vec![FieldSpec::iana(2, 4)]).unwrap();
        let body = [1, 2, 3, 4];
        let r = DataRecords::new(&short, &body).next().unwrap().unwrap();
        for f in long.fields() {
            let l = long.locate(f.id, 0).unwrap();
            assert!(matches!(l.place(), Place::Uint { .. }));
            assert_eq!(r.u64_at(&l), None);
            assert_eq!(r.at(&l), None);
            assert_eq!(r.array_at::<8>(&l), None);
        }
    }

    #[test]
    fn overrun_is_reported_once_with_offset() {
        let t = Template::new(
            256,
            vec![FieldSpec::iana(4, 1), FieldSpec::iana(82, VARIABLE_LENGTH)],
        )
        .unwrap();
        let body = [6, 1, b'a', 17, 9, b'x'];
        let got: Vec<_> = DataRecords::new(&t, &body).collect();
        assert_eq!(got.len(), 2);
        assert!(got[0].is_ok());
        assert_eq!(got[1].unwrap_err(), RecordOverrun { offset: 3 });
    }

    #[test]
    fn fixed_records_stop_at_padding() {
        let t = Template::new(256, vec![FieldSpec::iana(8, 4), FieldSpec::iana(7, 2)]).unwrap();
        let body = [10, 0, 0, 1, 0, 80, 10, 0, 0, 2, 1, 187, 0, 0, 0];
        let recs: Vec<_> = DataRecords::new(&t, &body).map(|r| r.unwrap()).collect();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[1].get(7, 0).unwrap().u64(), Some(443));
        assert_eq!(recs[1].field(0).unwrap().ipv4(), Some(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(recs[1].field(2), None);
    }
}
