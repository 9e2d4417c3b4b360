//! The message encoder: MTU-bounded IPFIX messages with templates first and data records after.
//!
//! An [`Encoder`] holds the templates of one Observation Domain and the stream's sequence number, which
//! counts data records (RFC 7011 section 3.1), not messages. A [`MessageWriter`] fills one message in a
//! caller's buffer; each data record is written field by field through a [`RecordWriter`] that checks every
//! value against the template and rolls the record back if it does not fit or does not match. The export
//! time comes from the caller: nothing here reads a clock.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::ie::VARIABLE_LENGTH;
use crate::template::Template;
use crate::wire::{HEADER_LEN, HeaderRepr, OPTIONS_TEMPLATE_SET_ID, TEMPLATE_SET_ID};

/// Why a message or record could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The record or template does not fit in what is left of the message: finish it and start another.
    #[error("message full")]
    MessageFull,
    /// No template with this ID was added to the encoder.
    #[error("unknown template {0}")]
    UnknownTemplate(u16),
    /// A value's size does not match its field.
    #[error("field {index}: value of {got} octets for a field of {expected}")]
    FieldMismatch {
        /// Field index in the template.
        index: usize,
        /// Octets the field takes.
        expected: u16,
        /// Octets the value has.
        got: usize,
    },
    /// An integer does not fit in its (reduced-size) field.
    #[error("field {0}: value too large for the field")]
    ValueTooLarge(usize),
    /// More values than the template has fields.
    #[error("more values than the template's {0} fields")]
    TooManyValues(usize),
    /// The record was committed before every field had a value.
    #[error("record has {written} of {expected} fields")]
    MissingValues {
        /// Values written.
        written: usize,
        /// Fields in the template.
        expected: usize,
    },
    /// The maximum message size cannot hold even one set.
    #[error("maximum message size {0} is outside 32..=65535")]
    BadMessageSize(usize),
}

/// Encodes the messages of one Observation Domain.
#[derive(Clone, Debug)]
pub struct Encoder {
    observation_domain: u32,
    sequence: u32,
    max_message_size: usize,
    set_alignment: usize,
    templates: Vec<Template>,
}

impl Encoder {
    /// An encoder whose messages never exceed `max_message_size` octets (the path MTU less IP and UDP
    /// headers; RFC 7011 section 10.3.3).
    pub fn new(observation_domain: u32, max_message_size: usize) -> Result<Self, EncodeError> {
        if !(32..=usize::from(u16::MAX)).contains(&max_message_size) {
            return Err(EncodeError::BadMessageSize(max_message_size));
        }
        Ok(Encoder {
            observation_domain,
            sequence: 0,
            max_message_size,
            set_alignment: 1,
            templates: Vec::new(),
        })
    }

    /// Pads every set to a multiple of `alignment` octets with zeros (RFC 7011 section 3.3.1); 1 = none.
    pub fn with_set_alignment(mut self, alignment: u8) -> Self {
        self.set_alignment = usize::from(alignment.max(1));
        self
    }

    /// Adds a template, replacing any with the same ID.
    pub fn add_template(&mut self, template: Template) {
        match self.templates.iter_mut().find(|t| t.id() == template.id()) {
            Some(t) => *t = template,
            None => self.templates.push(template),
        }
    }

    /// The template with this ID.
    pub fn template(&self, id: u16) -> Option<&Template> {
        self.templates.iter().find(|t| t.id() == id)
    }

    /// The templates, in the order they were added.
    pub fn templates(&self) -> &[Template] {
        &self.templates
    }

    /// The sequence number the next message will carry.
    pub fn sequence(&self) -> u32 {
        self.sequence
    }

    /// Counts data records that were dropped before export, so the sequence numbers reflect the loss
    /// (RFC 7011 section 10.2.2).
    pub fn skip_records(&mut self, n: u32) {
        self.sequence = self.sequence.wrapping_add(n);
    }

    /// The Observation Domain ID.
    pub fn observation_domain(&self) -> u32 {
        self.observation_domain
    }

    /// The maximum message size.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Starts a message in `buf` (cleared first).
    pub fn message<'a>(&'a mut self, export_time: u32, buf: &'a mut Vec<u8>) -> MessageWriter<'a> {
        buf.clear();
        buf.resize(HEADER_LEN, 0);
        let st = State {
            buf,
            max: self.max_message_size,
            align: self.set_alignment,
            open_set: None,
            records: 0,
            templates: 0,
        };
        MessageWriter {
            enc: self,
            st,
            export_time,
        }
    }
}

struct State<'a> {
    buf: &'a mut Vec<u8>,
    max: usize,
    align: usize,
    /// (set ID, offset of its header, its smallest record) of the set being filled.
    open_set: Option<(u16, usize, usize)>,
    records: u32,
    templates: u32,
}

impl State<'_> {
    /// Closes the open set: pads it if there is room and patches its length.
    ///
    /// Padding must be shorter than the set's smallest record (RFC 7011 section 3.3.1), or a decoder reads
    /// it as records; a set that would need more stays unpadded.
    fn close_set(&mut self) {
        let Some((_, start, min_record)) = self.open_set.take() else {
            return;
        };
        let pad = (self.align - (self.buf.len() - start) % self.align) % self.align;
        if pad < min_record && self.buf.len() + pad <= self.max {
            self.buf.resize(self.buf.len() + pad, 0);
        }
        let len = u16::try_from(self.buf.len() - start).unwrap_or(u16::MAX);
        self.buf[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
    }

    /// Makes `set_id`, whose records take at least `min_record` octets, the open set, closing the one
    /// before and writing a set header if it is not already open.
    fn open(&mut self, set_id: u16, min_record: usize) {
        if matches!(self.open_set, Some((id, _, _)) if id == set_id) {
            return;
        }
        self.close_set();
        self.open_set = Some((set_id, self.buf.len(), min_record));
        self.buf.extend_from_slice(&set_id.to_be_bytes());
        self.buf.extend_from_slice(&[0, 0]);
    }

    /// Where the message stands, to undo a write that opens a set and then fails.
    fn mark(&self) -> Mark {
        Mark {
            len: self.buf.len(),
            open_set: self.open_set,
        }
    }

    /// Undoes everything since `mark`: the write, the set header it opened, and the closing (padding) of
    /// the set that was open before, which is open again.
    fn rollback(&mut self, mark: Mark) {
        self.buf.truncate(mark.len);
        self.open_set = mark.open_set;
    }
}

/// A point to roll a message back to (see [`State::mark`]).
#[derive(Clone, Copy)]
struct Mark {
    len: usize,
    open_set: Option<(u16, usize, usize)>,
}

/// Fills one message. Call [`MessageWriter::finish`] to write the header and advance the sequence number.
pub struct MessageWriter<'a> {
    enc: &'a mut Encoder,
    st: State<'a>,
    export_time: u32,
}

impl<'a> MessageWriter<'a> {
    /// Adds every template of the encoder: templates in a Template Set, then options templates in an
    /// Options Template Set. Fails with [`EncodeError::MessageFull`] and writes nothing if they do not all
    /// fit.
    pub fn add_templates(&mut self) -> Result<(), EncodeError> {
        let mark = (self.st.buf.len(), self.st.open_set, self.st.templates);
        for set_id in [TEMPLATE_SET_ID, OPTIONS_TEMPLATE_SET_ID] {
            for t in self.enc.templates.iter().filter(|t| t.set_id() == set_id) {
                if let Err(e) = write_template(&mut self.st, t) {
                    self.st.buf.truncate(mark.0);
                    (self.st.open_set, self.st.templates) = (mark.1, mark.2);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Adds one template record.
    pub fn add_template(&mut self, id: u16) -> Result<(), EncodeError> {
        let t = self
            .enc
            .templates
            .iter()
            .find(|t| t.id() == id)
            .ok_or(EncodeError::UnknownTemplate(id))?;
        write_template(&mut self.st, t)
    }

    /// Starts a data record of template `template_id`.
    pub fn record(&mut self, template_id: u16) -> Result<RecordWriter<'_, 'a>, EncodeError> {
        let template = self
            .enc
            .templates
            .iter()
            .find(|t| t.id() == template_id)
            .ok_or(EncodeError::UnknownTemplate(template_id))?;
        let mark = self.st.mark();
        self.st.open(template_id, template.min_record_len());
        Ok(RecordWriter {
            st: &mut self.st,
            template,
            mark,
            index: 0,
            error: None,
            done: false,
        })
    }

    /// Data records in the message so far.
    pub fn records(&self) -> u32 {
        self.st.records
    }

    /// Template records in the message so far.
    pub fn template_records(&self) -> u32 {
        self.st.templates
    }

    /// Octets in the message so far.
    pub fn len(&self) -> usize {
        self.st.buf.len()
    }

    /// True when the message holds no set.
    pub fn is_empty(&self) -> bool {
        self.st.buf.len() <= HEADER_LEN
    }

    /// Closes the last set, writes the header and advances the encoder's sequence number by the data
    /// records written. The message is the whole buffer; returns its data record count.
    pub fn finish(mut self) -> u32 {
        self.st.close_set();
        let header = HeaderRepr {
            length: u16::try_from(self.st.buf.len()).unwrap_or(u16::MAX),
            export_time: self.export_time,
            sequence: self.enc.sequence,
            observation_domain: self.enc.observation_domain,
        };
        // The buffer starts with HEADER_LEN reserved octets, so emit cannot fail.
        let _ = header.emit(&mut self.st.buf[..]);
        self.enc.sequence = self.enc.sequence.wrapping_add(self.st.records);
        self.st.records
    }
}

fn write_template(st: &mut State<'_>, t: &Template) -> Result<(), EncodeError> {
    // The shortest template set record is a 4-octet withdrawal.
    let mark = st.mark();
    st.open(t.set_id(), 4);
    if st.buf.len() + t.buffer_len() > st.max {
        st.rollback(mark);
        return Err(EncodeError::MessageFull);
    }
    t.emit(st.buf);
    st.templates += 1;
    Ok(())
}

/// Writes one data record field by field, in template order.
///
/// Value methods chain; the first mismatch is kept and returned by [`RecordWriter::commit`]. A record
/// dropped without a successful commit is removed from the message.
pub struct RecordWriter<'m, 'a> {
    st: &'m mut State<'a>,
    template: &'m Template,
    mark: Mark,
    index: usize,
    error: Option<EncodeError>,
    done: bool,
}

impl RecordWriter<'_, '_> {
    /// The length of the next field, or records an error.
    fn next_len(&mut self) -> Option<u16> {
        if self.error.is_some() {
            return None;
        }
        match self.template.fields().get(self.index) {
            Some(f) => Some(f.length),
            None => {
                self.error = Some(EncodeError::TooManyValues(self.template.fields().len()));
                None
            }
        }
    }

    /// An unsigned integer, written in the field's length (reduced-size encoding when shorter than 8).
    pub fn uint(&mut self, v: u64) -> &mut Self {
        let Some(len) = self.next_len() else { return self };
        let len = usize::from(len);
        if len == 0 || len > 8 {
            self.error = Some(EncodeError::FieldMismatch {
                index: self.index,
                expected: len as u16,
                got: 8,
            });
        } else if len < 8 && v >> (8 * len) != 0 {
            self.error = Some(EncodeError::ValueTooLarge(self.index));
        } else {
            self.st.buf.extend_from_slice(&v.to_be_bytes()[8 - len..]);
            self.index += 1;
        }
        self
    }

    /// An IPv4 address.
    pub fn ipv4(&mut self, a: Ipv4Addr) -> &mut Self {
        self.bytes(&a.octets())
    }

    /// An IPv6 address.
    pub fn ipv6(&mut self, a: Ipv6Addr) -> &mut Self {
        self.bytes(&a.octets())
    }

    /// A string (UTF-8), for a fixed or variable-length field.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.bytes(s.as_bytes())
    }

    /// Octets: exactly the field's length, or any length up to 65535 for a variable-length field, written
    /// with a 1-octet length prefix below 255 and the 3-octet form otherwise (RFC 7011 section 7).
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        let Some(len) = self.next_len() else { return self };
        if len == VARIABLE_LENGTH {
            match u16::try_from(v.len()) {
                Ok(n) if n < 255 => self.st.buf.push(n as u8),
                Ok(n) => {
                    self.st.buf.push(255);
                    self.st.buf.extend_from_slice(&n.to_be_bytes());
                }
                Err(_) => {
                    self.error = Some(EncodeError::ValueTooLarge(self.index));
                    return self;
                }
            }
        } else if usize::from(len) != v.len() {
            self.error = Some(EncodeError::FieldMismatch {
                index: self.index,
                expected: len,
                got: v.len(),
            });
            return self;
        }
        self.st.buf.extend_from_slice(v);
        self.index += 1;
        self
    }

    /// Keeps the record in the message, or removes it and says why.
    pub fn commit(mut self) -> Result<(), EncodeError> {
        let expected = self.template.fields().len();
        let outcome = match self.error {
            Some(e) => Err(e),
            None if self.index < expected => Err(EncodeError::MissingValues {
                written: self.index,
                expected,
            }),
            None if self.st.buf.len() > self.st.max => Err(EncodeError::MessageFull),
            None => Ok(()),
        };
        if outcome.is_ok() {
            self.st.records += 1;
            self.done = true;
        }
        outcome
    }
}

impl Drop for RecordWriter<'_, '_> {
    fn drop(&mut self) {
        if !self.done {
            self.st.rollback(self.mark);
        }
    }
}
