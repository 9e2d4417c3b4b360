//! The message decoder: walks one IPFIX message and hands what it finds to a [`Visitor`].
//!
//! Data records reach the visitor as [`DataRecord`] views borrowing the message: nothing is allocated per
//! record. Template sets update the [`TemplateCache`] in message order, so a template and its data may share
//! a message (RFC 7011 section 8). A malformed set is reported with its offset and reason; the records
//! decoded before it have already been delivered, and sets after it are still decoded when their bounds
//! are known. Nothing here panics on any input.

use std::net::SocketAddr;

use crate::cache::{
    InsertOutcome, LimitError, Scope, SequenceCheck, SessionKey, TemplateCache, WithdrawOutcome,
};
use crate::record::{DataRecord, DataRecords};
use crate::template::{RawRecord, Template, TemplateError, TemplateRecords};
use crate::wire::{HeaderRepr, Message, OPTIONS_TEMPLATE_SET_ID, SET_HEADER_LEN, WireError};

/// Receives what the decoder finds, in message order.
pub trait Visitor {
    /// A message from `key` begins; its records follow.
    fn begin(&mut self, _key: &SessionKey, _header: &HeaderRepr) {}

    /// A data set of `template` begins; its records follow.
    ///
    /// A visitor that reads the same fields of every record can prepare here, once per set, what it needs
    /// per template (for instance the [`Template::locate`] of each field it reads).
    fn data_set(&mut self, _key: &SessionKey, _template: &Template) {}

    /// A data record (of a template or of an options template: see `record.template().is_options()`).
    fn record(&mut self, record: &DataRecord<'_>);

    /// A template was defined, refreshed or replaced.
    fn template(&mut self, _key: &SessionKey, _template: &Template, _outcome: InsertOutcome) {}

    /// A data set arrived whose template is unknown. Its body may be held and fed back later through
    /// [`Decoder::decode_set`] once the template arrives.
    fn missing_template(&mut self, _key: &SessionKey, _header: &HeaderRepr, _set_id: u16, _body: &[u8]) {}
}

/// Why part of a message could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The message header or a set header is truncated or inconsistent.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// A template record was refused.
    #[error("template: {0}")]
    Template(#[from] TemplateError),
    /// A data record's variable-length fields run past its set.
    #[error("data record overruns set {set_id}")]
    RecordOverrun {
        /// The data set's ID.
        set_id: u16,
    },
    /// A state limit refused a template.
    #[error(transparent)]
    Limit(#[from] LimitError),
}

/// A decode error with the offset, from the start of the message, where it was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("at offset {offset}: {kind}")]
pub struct DecodeError {
    /// Offset from the start of the message.
    pub offset: usize,
    /// What went wrong.
    pub kind: DecodeErrorKind,
}

impl DecodeError {
    /// True when the input was cut short rather than wrong.
    pub fn is_incomplete(&self) -> bool {
        matches!(self.kind, DecodeErrorKind::Wire(w) if w.is_incomplete())
    }

    /// A short stable name of the reason, for metric labels.
    pub fn reason(&self) -> &'static str {
        match self.kind {
            DecodeErrorKind::Wire(WireError::BadVersion(_)) => "bad_version",
            DecodeErrorKind::Wire(w) if w.is_incomplete() => "truncated",
            DecodeErrorKind::Wire(WireError::ReservedSetId { .. }) => "reserved_set_id",
            DecodeErrorKind::Wire(_) => "bad_length",
            DecodeErrorKind::Template(_) => "bad_template",
            DecodeErrorKind::RecordOverrun { .. } => "record_overrun",
            DecodeErrorKind::Limit(_) => "state_limit",
        }
    }
}

/// What one message held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// The message header (zero when the header itself was bad).
    pub header: HeaderRepr,
    /// Data records delivered to the visitor.
    pub records: u32,
    /// Template records defined, refreshed or replaced.
    pub templates: u32,
    /// Templates withdrawn (stream policy only).
    pub withdrawn: u32,
    /// Withdrawals ignored: over UDP (RFC 7011 section 8.4) or for unknown templates.
    pub withdrawals_ignored: u32,
    /// Data sets whose template was unknown.
    pub missing_template_sets: u32,
    /// Data records missing before this message, from the sequence number.
    pub lost_records: u32,
    /// Parts of the message that could not be decoded.
    pub errors: u32,
    /// The first of those errors.
    pub first_error: Option<DecodeError>,
}

impl Summary {
    fn fail(&mut self, offset: usize, kind: DecodeErrorKind) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(DecodeError { offset, kind });
        }
    }
}

/// Decodes IPFIX messages against a template cache.
#[derive(Default)]
pub struct Decoder {
    cache: TemplateCache,
}

impl Decoder {
    /// A decoder with its own template cache.
    pub fn new(cache: TemplateCache) -> Self {
        Decoder { cache }
    }

    /// The template cache.
    pub fn cache(&self) -> &TemplateCache {
        &self.cache
    }

    /// The template cache, for expiry sweeps.
    pub fn cache_mut(&mut self) -> &mut TemplateCache {
        &mut self.cache
    }

    /// Decodes one message received from `exporter` at `now` (caller's clock, milliseconds).
    pub fn decode<V: Visitor>(&mut self, exporter: SocketAddr, msg: &[u8], now: u64, v: &mut V) -> Summary {
        let mut sum = Summary::default();
        let message = match Message::new_checked(msg) {
            Ok(m) => m,
            Err(e) => {
                sum.fail(e.offset(), e.into());
                return sum;
            }
        };
        let header = message.header();
        sum.header = header;
        let key = SessionKey {
            exporter,
            observation_domain: header.observation_domain,
        };
        v.begin(&key, &header);
        let max_fields = self.cache.limits().max_fields_per_template;
        // One session lookup serves every set of the message and the sequence check. When the session
        // limit refuses a new session, its templates are refused and its data sets have no template.
        let mut scope = self.cache.scope(&key);
        // Records are countable only when every data set's template is known and every set is whole.
        let mut countable = true;
        for set in message.sets() {
            let set = match set {
                Ok(s) => s,
                Err(e) => {
                    countable = false;
                    sum.fail(e.offset(), e.into());
                    continue;
                }
            };
            if set.is_template_set() {
                let at = (set.id(), set.offset());
                template_set(&mut scope, &key, at, set.body(), now, max_fields, v, &mut sum);
            } else if let Some(template) = scope.as_ref().ok().and_then(|s| s.get(set.id(), now)) {
                let before = sum.errors;
                let at = (set.id(), set.offset());
                sum.records += data_set(&key, template, at, set.body(), v, &mut sum);
                countable &= sum.errors == before;
            } else {
                countable = false;
                sum.missing_template_sets += 1;
                v.missing_template(&key, &header, set.id(), set.body());
            }
        }
        if let Ok(scope) = &mut scope {
            let counted = countable.then_some(sum.records);
            if let SequenceCheck::Lost(n) = scope.track_sequence(header.sequence, counted) {
                sum.lost_records = n;
            }
        }
        sum
    }

    /// Decodes a data set held back for want of its template (see [`Visitor::missing_template`]).
    ///
    /// Returns the records delivered; `None` when the template is still unknown.
    pub fn decode_set<V: Visitor>(
        &mut self,
        key: &SessionKey,
        set_id: u16,
        body: &[u8],
        now: u64,
        v: &mut V,
    ) -> Option<(u32, Option<DecodeError>)> {
        let template = self.cache.get(key, set_id, now)?;
        let mut sum = Summary::default();
        let n = data_set(key, template, (set_id, 0), body, v, &mut sum);
        Some((n, sum.first_error))
    }
}

/// Hands the records of one data set, whose ID and offset are `at`, to the visitor; returns how many.
fn data_set<V: Visitor>(
    key: &SessionKey,
    template: &Template,
    (set_id, offset): (u16, usize),
    body: &[u8],
    v: &mut V,
    sum: &mut Summary,
) -> u32 {
    v.data_set(key, template);
    let mut n = 0;
    for r in DataRecords::new(template, body) {
        match r {
            Ok(record) => {
                n += 1;
                v.record(&record);
            }
            Err(e) => {
                sum.fail(
                    offset + SET_HEADER_LEN + e.offset,
                    DecodeErrorKind::RecordOverrun { set_id },
                );
            }
        }
    }
    n
}

/// Applies the records of one template set, whose ID and offset are `at`, to the message's session.
#[allow(clippy::too_many_arguments)]
fn template_set<V: Visitor>(
    scope: &mut Result<Scope<'_>, LimitError>,
    key: &SessionKey,
    (set_id, offset): (u16, usize),
    body: &[u8],
    now: u64,
    max_fields: usize,
    v: &mut V,
    sum: &mut Summary,
) {
    let options = set_id == OPTIONS_TEMPLATE_SET_ID;
    let mut records = TemplateRecords::new(body, options, max_fields);
    while let Some((at, r)) = records.next_raw() {
        let at = offset + SET_HEADER_LEN + at;
        match r {
            Ok(RawRecord::Define(raw)) => {
                let id = raw.id();
                // Over UDP most template records refresh the template in use: those are recognised on
                // the wire, without building a template to compare and drop.
                if let Ok(s) = scope
                    && s.refresh(&raw, now)
                {
                    sum.templates += 1;
                    if let Some(t) = s.get(id, now) {
                        v.template(key, t, InsertOutcome::Refreshed);
                    }
                    continue;
                }
                let t = match raw.build() {
                    Ok(t) => t,
                    Err(e) => {
                        // As TemplateRecords does, stop at a refused template.
                        sum.fail(at, e.into());
                        break;
                    }
                };
                let scope = match scope {
                    Ok(s) => s,
                    Err(e) => {
                        sum.fail(at, (*e).into());
                        continue;
                    }
                };
                match scope.insert(t, now) {
                    Ok(outcome) => {
                        sum.templates += 1;
                        if let Some(t) = scope.get(id, now) {
                            v.template(key, t, outcome);
                        }
                    }
                    Err(e) => sum.fail(at, e.into()),
                }
            }
            Ok(RawRecord::Withdraw(id)) => match scope.as_mut().map(|s| s.withdraw(id)) {
                Ok(WithdrawOutcome::Withdrawn(n)) => sum.withdrawn += n as u32,
                _ => sum.withdrawals_ignored += 1,
            },
            Err(e) => sum.fail(at, e.into()),
        }
    }
}
