//! Templates and options templates (RFC 7011 section 3.4), with their record layout precomputed.
//!
//! A [`Template`] is owned and immutable. Building one checks everything the record decoder relies on, so
//! walking a data record against it only needs bounds checks on the record's own bytes.

use crate::ie::{FieldSpec, VARIABLE_LENGTH};
use crate::wire::{HEADER_LEN, MIN_DATA_SET_ID, OPTIONS_TEMPLATE_SET_ID, SET_HEADER_LEN, TEMPLATE_SET_ID};

/// Largest record that fits in one message after the message and set headers.
const MAX_RECORD_LEN: usize = u16::MAX as usize - HEADER_LEN - SET_HEADER_LEN;

/// Largest Information Element ID: the top bit of the 16 on the wire is the enterprise bit.
const MAX_FIELD_ID: u16 = 0x7fff;

/// Why a template record was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The template record ends before its field specifiers do.
    #[error("template record truncated")]
    Truncated,
    /// Template IDs start at 256 (RFC 7011 section 3.4.1).
    #[error("template id {0} is below 256")]
    BadTemplateId(u16),
    /// Options templates need at least one scope field (RFC 7011 section 3.4.2.2).
    #[error("options template with scope field count 0")]
    ZeroScopeCount,
    /// More scope fields than fields.
    #[error("scope field count {scope} exceeds field count {fields}")]
    ScopeCountExceedsFields {
        /// Scope field count.
        scope: u16,
        /// Field count.
        fields: u16,
    },
    /// A field's Information Element ID does not fit in the 15 bits beside the enterprise bit (RFC 7011
    /// section 3.2): written out, it would read back as another element.
    #[error("information element id {0} is above 32767")]
    BadFieldId(u16),
    /// Every field has length 0, so records could not be told apart.
    #[error("template describes zero-length records")]
    ZeroLengthRecord,
    /// Fixed fields add up to more than a message can carry.
    #[error("record length {0} cannot fit in a message")]
    RecordTooLong(usize),
    /// More fields than the configured limit.
    #[error("{count} fields exceed the limit of {limit}")]
    TooManyFields {
        /// Fields in the template.
        count: usize,
        /// The configured limit.
        limit: usize,
    },
}

/// How records of a template are laid out.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Layout {
    /// Every field has a fixed length: records are `len` octets.
    Fixed { len: usize },
    /// At least one variable-length field: records are at least `min_len` octets. A record's length is
    /// found from its length prefixes alone: `fixed_runs[i]` octets of fixed-length fields come before
    /// the i-th variable-length field and `tail` octets after the last one.
    Variable {
        min_len: usize,
        fixed_runs: Box<[u16]>,
        tail: usize,
    },
}

/// An IPFIX template or options template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    id: u16,
    scope_count: u16,
    fields: Box<[FieldSpec]>,
    /// Offsets of the fields whose position no variable-length value can move: every field of a
    /// fixed layout, or the fields up to and including the first variable-length one.
    offsets: Box<[u16]>,
    layout: Layout,
}

/// Where a field lies in the records of one template; see [`Template::locate`].
///
/// Meaningful only for records of the template it was found in: applied to another template's records
/// it reads the wrong octets (never out of bounds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    spec: FieldSpec,
    // Fits: a template has at most 65535 fields.
    index: u16,
    place: Place,
}

/// Where a field's value starts, worked out once so that reading it takes a single bounds check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// A fixed-length value at a fixed offset: `len` octets from `start` in every record.
    Fixed { start: u16, len: u16 },
    /// A fixed-length value of 1 to 8 octets at a fixed offset, inside an 8-octet window that lies
    /// within every record of the template: `len` octets from `start`, and the window from `window`.
    /// Read as an unsigned integer, the window is loaded as one big-endian word, shifted right by
    /// `shift` bits to drop the octets after the value, and masked with `mask` to drop those before it:
    /// one load, a shift and an and, whatever the width, where [`crate::Field::u64`] tests the width
    /// at every record.
    Uint {
        start: u16,
        len: u16,
        window: u16,
        shift: u8,
        mask: u64,
    },
    /// A variable-length value whose length prefix is at a fixed offset.
    Prefixed { at: u16 },
    /// After a variable-length value: found by walking the record.
    Walk,
}

impl Location {
    /// The field's index in the template.
    #[inline]
    pub fn index(&self) -> usize {
        usize::from(self.index)
    }

    /// The field's specifier.
    #[inline]
    pub fn spec(&self) -> FieldSpec {
        self.spec
    }

    /// The offset of the field (of its length prefix, when variable-length) in every record, when no
    /// variable-length value comes before it.
    pub fn offset(&self) -> Option<usize> {
        match self.place {
            Place::Fixed { start, .. } | Place::Uint { start, .. } | Place::Prefixed { at: start } => {
                Some(usize::from(start))
            }
            Place::Walk => None,
        }
    }

    #[inline]
    pub(crate) fn place(&self) -> Place {
        self.place
    }
}

impl Template {
    /// A template for data records.
    pub fn new(id: u16, fields: Vec<FieldSpec>) -> Result<Self, TemplateError> {
        Self::build(id, 0, fields)
    }

    /// An options template whose first `scope_count` fields are its scope.
    pub fn new_options(id: u16, scope_count: u16, fields: Vec<FieldSpec>) -> Result<Self, TemplateError> {
        if scope_count == 0 {
            return Err(TemplateError::ZeroScopeCount);
        }
        Self::build(id, scope_count, fields)
    }

    fn build(id: u16, scope_count: u16, fields: Vec<FieldSpec>) -> Result<Self, TemplateError> {
        if id < MIN_DATA_SET_ID {
            return Err(TemplateError::BadTemplateId(id));
        }
        if usize::from(scope_count) > fields.len() {
            let n = u16::try_from(fields.len()).unwrap_or(u16::MAX);
            return Err(TemplateError::ScopeCountExceedsFields {
                scope: scope_count,
                fields: n,
            });
        }
        let mut fixed = 0usize;
        let mut varlen = 0usize;
        for f in &fields {
            if f.id > MAX_FIELD_ID {
                return Err(TemplateError::BadFieldId(f.id));
            }
            if f.length == VARIABLE_LENGTH {
                varlen += 1;
            } else {
                fixed += usize::from(f.length);
            }
        }
        // A variable-length field takes at least its one length octet.
        let min_len = fixed + varlen;
        if min_len == 0 {
            return Err(TemplateError::ZeroLengthRecord);
        }
        if min_len > MAX_RECORD_LEN {
            return Err(TemplateError::RecordTooLong(min_len));
        }
        let mut offsets = Vec::with_capacity(fields.len());
        let mut at = 0u16;
        for f in &fields {
            offsets.push(at);
            if f.length == VARIABLE_LENGTH {
                break;
            }
            // Cannot overflow: the fixed lengths add up to at most MAX_RECORD_LEN.
            at = at.saturating_add(f.length);
        }
        let layout = if varlen == 0 {
            Layout::Fixed { len: fixed }
        } else {
            let mut fixed_runs = Vec::with_capacity(varlen);
            let mut run = 0u16;
            for f in &fields {
                if f.length == VARIABLE_LENGTH {
                    fixed_runs.push(run);
                    run = 0;
                } else {
                    // Cannot overflow: the fixed lengths add up to at most MAX_RECORD_LEN.
                    run = run.saturating_add(f.length);
                }
            }
            Layout::Variable {
                min_len,
                fixed_runs: fixed_runs.into_boxed_slice(),
                tail: usize::from(run),
            }
        };
        Ok(Template {
            id,
            scope_count,
            fields: fields.into_boxed_slice(),
            offsets: offsets.into_boxed_slice(),
            layout,
        })
    }

    /// Template ID, equal to the Set ID of its data sets.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The field specifiers in record order.
    pub fn fields(&self) -> &[FieldSpec] {
        &self.fields
    }

    /// Number of scope fields; 0 for a non-options template.
    pub fn scope_count(&self) -> u16 {
        self.scope_count
    }

    /// True for an options template.
    pub fn is_options(&self) -> bool {
        self.scope_count > 0
    }

    /// Record length when every field is fixed-length.
    pub fn fixed_len(&self) -> Option<usize> {
        match self.layout {
            Layout::Fixed { len, .. } => Some(len),
            Layout::Variable { .. } => None,
        }
    }

    /// Smallest possible record length.
    pub fn min_record_len(&self) -> usize {
        match self.layout {
            Layout::Fixed { len, .. } => len,
            Layout::Variable { min_len, .. } => min_len,
        }
    }

    /// For a template with variable-length fields: the octets of fixed-length fields before each of them,
    /// and after the last.
    #[inline]
    pub(crate) fn variable_runs(&self) -> Option<(&[u16], usize)> {
        match &self.layout {
            Layout::Fixed { .. } => None,
            Layout::Variable { fixed_runs, tail, .. } => Some((fixed_runs, *tail)),
        }
    }

    /// Offset of field `index` in every record, when no variable-length value comes before it.
    #[inline]
    pub(crate) fn static_offset(&self, index: usize) -> Option<usize> {
        self.offsets.get(index).map(|&o| usize::from(o))
    }

    /// Index of the first field with this element ID and enterprise number.
    pub fn position(&self, id: u16, pen: u32) -> Option<usize> {
        self.fields.iter().position(|f| f.id == id && f.pen == pen)
    }

    /// Where the first field with this element ID and enterprise number lies in this template's records.
    ///
    /// Finding a field once per template and reading it from each record with [`DataRecord::at`] spares
    /// the per-record search of [`DataRecord::get`] or a walk of all fields: a field that no
    /// variable-length value precedes is read at its fixed offset. For an integer of 1 to 8 octets, the
    /// location also holds how to read it as one 8-octet word, which [`DataRecord::u64_at`] uses.
    ///
    /// [`DataRecord::at`]: crate::DataRecord::at
    /// [`DataRecord::u64_at`]: crate::DataRecord::u64_at
    /// [`DataRecord::get`]: crate::DataRecord::get
    pub fn locate(&self, id: u16, pen: u32) -> Option<Location> {
        let index = self.position(id, pen)?;
        let spec = self.fields[index];
        let place = match self.offsets.get(index) {
            None => Place::Walk,
            Some(&at) if spec.length == VARIABLE_LENGTH => Place::Prefixed { at },
            Some(&start) => self.fixed_place(start, spec.length),
        };
        Some(Location {
            spec,
            index: u16::try_from(index).ok()?,
            place,
        })
    }

    /// The place of a fixed-length field of `len` octets at offset `start`: with an integer window when
    /// the value is 1 to 8 octets and 8 octets around it lie within every record.
    ///
    /// Every record is at least [`Template::min_record_len`] octets, so the window may start at the value
    /// when 8 octets from there fit in that, or end with the value when 8 octets fit before its end. The
    /// octets of the window outside the value may belong to other fields, even variable-length ones:
    /// the shifts drop them.
    fn fixed_place(&self, start: u16, len: u16) -> Place {
        const WORD: u16 = 8;
        let end = start.saturating_add(len);
        let window = if len == 0 || len > WORD {
            None
        } else if usize::from(start) + usize::from(WORD) <= self.min_record_len() {
            Some(start)
        } else {
            end.checked_sub(WORD)
        };
        let Some(window) = window else {
            return Place::Fixed { start, len };
        };
        // The octets of the window after the value, in bits: at most 7 octets, so the shift is at most
        // 56 and fits in u8 (the window starts at or before the value and ends at or after its end).
        let after = (window + WORD - end) as u8 * 8;
        Place::Uint {
            start,
            len,
            window,
            shift: after,
            mask: u64::MAX >> (64 - 8 * u32::from(len)),
        }
    }

    /// Set ID of the template set this template travels in.
    pub fn set_id(&self) -> u16 {
        if self.is_options() {
            OPTIONS_TEMPLATE_SET_ID
        } else {
            TEMPLATE_SET_ID
        }
    }

    /// Octets this template record takes on the wire.
    pub fn buffer_len(&self) -> usize {
        let head = if self.is_options() { 6 } else { 4 };
        head + self.fields.iter().map(FieldSpec::wire_len).sum::<usize>()
    }

    /// Appends the template record (not its set header) to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.to_be_bytes());
        // Field count fits: templates are built from at most MAX_RECORD_LEN fields of length >= 1 or
        // parsed from a u16 count.
        let count = u16::try_from(self.fields.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&count.to_be_bytes());
        if self.is_options() {
            out.extend_from_slice(&self.scope_count.to_be_bytes());
        }
        for f in self.fields.iter() {
            if f.is_enterprise() {
                out.extend_from_slice(&(f.id | 0x8000).to_be_bytes());
                out.extend_from_slice(&f.length.to_be_bytes());
                out.extend_from_slice(&f.pen.to_be_bytes());
            } else {
                out.extend_from_slice(&(f.id & 0x7fff).to_be_bytes());
                out.extend_from_slice(&f.length.to_be_bytes());
            }
        }
    }
}

/// One record of a template set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateRecord {
    /// A template definition.
    Define(Template),
    /// A withdrawal (field count 0) of one template ID, or of all templates (ID 2) or all options
    /// templates (ID 3) of the domain (RFC 7011 section 8.1).
    Withdraw(u16),
}

/// Iterates over the records of a Template Set or Options Template Set body.
///
/// Yields `(offset within the body, record)`. Stops at padding: fewer than 4 octets, or only zero octets,
/// left. An error ends the iteration, since the next record's start is unknown after it.
pub struct TemplateRecords<'a> {
    body: &'a [u8],
    at: usize,
    options: bool,
    max_fields: usize,
    done: bool,
}

impl<'a> TemplateRecords<'a> {
    /// Iterates over a template set body; `options` for set ID 3.
    pub fn new(body: &'a [u8], options: bool, max_fields: usize) -> Self {
        TemplateRecords {
            body,
            at: 0,
            options,
            max_fields,
            done: false,
        }
    }

    /// Reads the next record's extent and header without building a template from it.
    fn read_raw(&mut self) -> Result<RawRecord<'a>, TemplateError> {
        let b = &self.body[self.at..];
        let id = u16::from_be_bytes([b[0], b[1]]);
        let count = u16::from_be_bytes([b[2], b[3]]);
        if count == 0 {
            self.at += 4;
            return Ok(RawRecord::Withdraw(id));
        }
        let mut p = 4;
        let scope = if self.options {
            let s = b.get(4..6).ok_or(TemplateError::Truncated)?;
            p = 6;
            u16::from_be_bytes([s[0], s[1]])
        } else {
            0
        };
        if usize::from(count) > self.max_fields {
            return Err(TemplateError::TooManyFields {
                count: usize::from(count),
                limit: self.max_fields,
            });
        }
        let start = p;
        for _ in 0..count {
            let s = b.get(p..p + 4).ok_or(TemplateError::Truncated)?;
            // An enterprise-specific field carries its enterprise number in 4 more octets.
            p += if s[0] & 0x80 != 0 { 8 } else { 4 };
        }
        let specs = b.get(start..p).ok_or(TemplateError::Truncated)?;
        self.at += p;
        Ok(RawRecord::Define(RawTemplate {
            id,
            scope,
            count,
            options: self.options,
            specs,
        }))
    }

    /// The next record as it is on the wire, with its offset in the set body; see [`Iterator::next`].
    pub(crate) fn next_raw(&mut self) -> Option<(usize, Result<RawRecord<'a>, TemplateError>)> {
        let rest = self.body.get(self.at..)?;
        if self.done || rest.len() < 4 || rest.iter().all(|&b| b == 0) {
            return None;
        }
        let at = self.at;
        let r = self.read_raw();
        if r.is_err() {
            self.done = true;
        }
        Some((at, r))
    }
}

/// A template record read for its extent and header only.
pub(crate) enum RawRecord<'a> {
    /// A definition.
    Define(RawTemplate<'a>),
    /// A withdrawal of this template ID.
    Withdraw(u16),
}

/// A template definition as it is on the wire, its field specifiers known to be complete.
pub(crate) struct RawTemplate<'a> {
    id: u16,
    scope: u16,
    count: u16,
    options: bool,
    specs: &'a [u8],
}

impl RawTemplate<'_> {
    /// The template ID.
    pub(crate) fn id(&self) -> u16 {
        self.id
    }

    /// The field specifiers.
    fn specs(&self) -> impl Iterator<Item = FieldSpec> + '_ {
        let mut p = 0;
        std::iter::from_fn(move || {
            let s = self.specs.get(p..p + 4)?;
            let raw = u16::from_be_bytes([s[0], s[1]]);
            let length = u16::from_be_bytes([s[2], s[3]]);
            p += 4;
            let pen = if raw & 0x8000 != 0 {
                let e = self.specs.get(p..p + 4)?;
                p += 4;
                u32::from_be_bytes([e[0], e[1], e[2], e[3]])
            } else {
                0
            };
            Some(FieldSpec {
                id: raw & 0x7fff,
                length,
                pen,
            })
        })
    }

    /// True when `t` is the template this record defines: a refresh needs no new template.
    pub(crate) fn defines(&self, t: &Template) -> bool {
        t.id == self.id
            && t.scope_count == self.scope
            && t.is_options() == self.options
            && t.fields.len() == usize::from(self.count)
            && self.specs().eq(t.fields.iter().copied())
    }

    /// Builds the template, checking it.
    pub(crate) fn build(&self) -> Result<Template, TemplateError> {
        let fields = self.specs().collect();
        if self.options {
            Template::new_options(self.id, self.scope, fields)
        } else {
            Template::new(self.id, fields)
        }
    }
}

impl Iterator for TemplateRecords<'_> {
    type Item = (usize, Result<TemplateRecord, TemplateError>);

    fn next(&mut self) -> Option<Self::Item> {
        let (at, r) = self.next_raw()?;
        let r = r.and_then(|r| match r {
            RawRecord::Define(t) => t.build().map(TemplateRecord::Define),
            RawRecord::Withdraw(id) => Ok(TemplateRecord::Withdraw(id)),
        });
        if r.is_err() {
            self.done = true;
        }
        Some((at, r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ie::REVERSE_PEN;

    fn sample() -> Template {
        Template::new(
            300,
            vec![
                FieldSpec::iana(8, 4),
                FieldSpec::iana(1, 8),
                FieldSpec::reverse(1, 8),
                FieldSpec::enterprise(1, VARIABLE_LENGTH, 32473),
            ],
        )
        .unwrap()
    }

    #[test]
    fn emit_then_parse_round_trips() {
        let t = sample();
        let mut out = Vec::new();
        t.emit(&mut out);
        assert_eq!(out.len(), t.buffer_len());
        assert_eq!(&out[..4], &[0x01, 0x2c, 0x00, 0x04]);
        // reverse octetDeltaCount: E bit set, id 1, length 8, PEN 29305
        assert_eq!(&out[12..20], &[0x80, 0x01, 0x00, 0x08, 0x00, 0x00, 0x72, 0x79]);
        let parsed: Vec<_> = TemplateRecords::new(&out, false, 64).collect();
        assert_eq!(parsed, vec![(0, Ok(TemplateRecord::Define(t.clone())))]);
        assert_eq!(t.min_record_len(), 4 + 8 + 8 + 1);
        assert_eq!(t.fixed_len(), None);
        assert_eq!(t.variable_runs(), Some((&[20u16][..], 0)));
        assert_eq!(t.position(1, REVERSE_PEN), Some(2));
    }

    #[test]
    fn options_template_and_withdrawals() {
        let t = Template::new_options(257, 1, vec![FieldSpec::iana(149, 4), FieldSpec::iana(41, 8)]).unwrap();
        let mut body = Vec::new();
        t.emit(&mut body);
        body.extend_from_slice(&[0x01, 0x01, 0x00, 0x00]); // withdraw 257
        body.extend_from_slice(&[0, 0, 0]); // padding
        let got: Vec<_> = TemplateRecords::new(&body, true, 64)
            .map(|(_, r)| r.unwrap())
            .collect();
        assert_eq!(
            got,
            vec![TemplateRecord::Define(t.clone()), TemplateRecord::Withdraw(257)]
        );
        assert_eq!(t.fixed_len(), Some(12));
        assert_eq!(t.static_offset(1), Some(4));
        assert_eq!(t.set_id(), 3);
    }

    #[test]
    fn refuses_bad_templates() {
        assert_eq!(
            Template::new(255, vec![FieldSpec::iana(1, 4)]),
            Err(TemplateError::BadTemplateId(255))
        );
        assert_eq!(
            Template::new(256, vec![FieldSpec::iana(1, 0)]),
            Err(TemplateError::ZeroLengthRecord)
        );
        assert_eq!(
            Template::new_options(256, 0, vec![FieldSpec::iana(1, 4)]),
            Err(TemplateError::ZeroScopeCount)
        );
        assert!(matches!(
            Template::new_options(256, 2, vec![FieldSpec::iana(1, 4)]),
            Err(TemplateError::ScopeCountExceedsFields { .. })
        ));
        let huge = vec![FieldSpec::iana(1, 60000), FieldSpec::iana(2, 60000)];
        assert!(matches!(
            Template::new(256, huge),
            Err(TemplateError::RecordTooLong(_))
        ));
        // the 16th bit of an element ID is the enterprise bit: such an ID would be written as another
        assert_eq!(
            Template::new(
                256,
                vec![FieldSpec::enterprise(0xe0ff, VARIABLE_LENGTH, REVERSE_PEN)]
            ),
            Err(TemplateError::BadFieldId(0xe0ff))
        );
        assert_eq!(
            Template::new(256, vec![FieldSpec::iana(0x8001, 4)]),
            Err(TemplateError::BadFieldId(0x8001))
        );
        assert!(Template::new(256, vec![FieldSpec::iana(0x7fff, 4)]).is_ok());
        // truncated: says 2 fields, carries one
        let body = [0x01, 0x00, 0x00, 0x02, 0x00, 0x08, 0x00, 0x04];
        let got: Vec<_> = TemplateRecords::new(&body, false, 64).collect();
        assert_eq!(got, vec![(0, Err(TemplateError::Truncated))]);
        let body = [0x01, 0x00, 0x00, 0x05, 0x00, 0x08, 0x00, 0x04];
        let got: Vec<_> = TemplateRecords::new(&body, false, 4).collect();
        assert_eq!(
            got,
            vec![(0, Err(TemplateError::TooManyFields { count: 5, limit: 4 }))]
        );
    }
}
