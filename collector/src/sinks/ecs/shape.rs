//! Documents by shape: the text between a document's values, worked out once per shape.
//!
//! Which fields a document has, its shape, decides all of its text but the values: the keys, the
//! objects opened and closed between them, and the fields that only ever have one value
//! (`ecs.version`, `event.kind`, ...). [`Encoder`] works that text out the first time it meets a shape,
//! with the same [`ObjectWriter`] the field-by-field [`encode_into`](super::encode_into) writes with,
//! and keeps it. A document of a known shape is then its values with the shape's text copied between
//! them: a few dozen copies and values instead of a step per field of the table. A stream of flows has
//! few shapes (IPv4 or IPv6, TCP or not, attributed or not, translated or not): tens, not thousands.

use std::collections::hash_map::Entry;

use foldhash::HashMap;

use super::encoder::{Context, Doc, LAYOUT, Val};
use super::fields::{EachKey, FIELDS, Key, NAMES, for_each_key, with_key};
use super::json::{Cursor, ObjectWriter};
use crate::model::EnrichedFlow;

/// Shapes kept at most: past it, all are forgotten and made again as documents need them.
pub const MAX_SHAPES: usize = 1024;

// A shape is a bit per field.
const _: () = assert!(NAMES.len() <= 128, "a shape is a u128: at most 128 fields");

/// An ECS encoder that remembers the shapes of the documents it wrote. Writes exactly what
/// [`encode_into`](super::encode_into) writes (a property test holds them equal).
///
/// A document is written in two passes: the first works out its shape (which fields it has: a bit per
/// field, the text of each absent field's arm reduced to a test), the second walks the shape's values
/// only, each written straight after the shape's text before it. Absent fields cost the first pass a
/// test each and the second nothing; present ones cost a copy and one jump to their value's code.
#[derive(Default)]
pub struct Encoder {
    /// Known shapes, by their bits, as indexes into `texts`.
    shapes: HashMap<u128, usize>,
    texts: Vec<Shape>,
    /// The bits and index of the last document's shape: runs of flows of one kind are common.
    last: Option<(u128, usize)>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("shapes", &self.shapes.len())
            .finish()
    }
}

/// The text of one shape, and where its values go in it.
struct Shape {
    /// The text, followed by [`PAD`] zero octets so that any piece of it can be copied in a block of
    /// fixed size.
    text: Box<[u8]>,
    /// Length of the text without the padding.
    len: usize,
    /// The shape's values in table order: each field, and where the text before its value ends.
    values: Box<[(usize, Key)]>,
}

/// Zero octets after a shape's text.
const PAD: usize = 64;

impl Shape {
    /// Writes the text from `from` to `to`. Most pieces between two values are short (`,"port":`): they
    /// are copied as one block of 32 or 64 octets, a few stores, where a copy of a length known only at
    /// run time is a call to `memcpy` (a few dozen of them per document).
    #[inline(always)]
    fn put(&self, out: &mut Cursor<'_>, from: usize, to: usize) {
        let len = to.saturating_sub(from);
        let block = |n: usize| self.text.get(from..from + n);
        if len <= 32
            && let Some(b) = block(32).and_then(|b| <&[u8; 32]>::try_from(b).ok())
        {
            out.padded(b, len);
        } else if len <= 64
            && let Some(b) = block(64).and_then(|b| <&[u8; 64]>::try_from(b).ok())
        {
            out.padded(b, len);
        } else {
            out.bytes(self.text.get(from..to).unwrap_or_default());
        }
    }
}

impl Encoder {
    /// An encoder that knows no shape yet.
    pub fn new() -> Self {
        Encoder::default()
    }

    /// Shapes known.
    pub fn shapes(&self) -> usize {
        self.shapes.len()
    }

    /// Writes the ECS document of `flow` at the start of `buf` and returns its length, or `None` when it
    /// does not fit; as [`encode_into`](super::encode_into).
    pub fn encode_into(&mut self, flow: &EnrichedFlow, ctx: &Context<'_>, buf: &mut [u8]) -> Option<usize> {
        let doc = Doc::new(flow, ctx);
        let mut only = Bits { doc: &doc, bits: 0 };
        for_each_key(&mut only);
        let bits = only.bits;
        let index = match self.last {
            Some((last, index)) if last == bits => index,
            _ => self.shape_of(&doc, bits),
        };
        self.texts.get(index).and_then(|shape| write(&doc, shape, buf))
    }

    /// The index of shape `bits` (`doc`'s), made from `doc` the first time it is met.
    fn shape_of(&mut self, doc: &Doc<'_>, bits: u128) -> usize {
        if self.shapes.len() >= MAX_SHAPES && !self.shapes.contains_key(&bits) {
            self.shapes.clear();
            self.texts.clear();
        }
        let index = match self.shapes.entry(bits) {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(e) => {
                self.texts.push(Shape::new(doc, bits));
                *e.insert(self.texts.len() - 1)
            }
        };
        self.last = Some((bits, index));
        index
    }
}

/// Writes `doc` in `shape`, its own: the shape's text with each value after the piece before it.
fn write(doc: &Doc<'_>, shape: &Shape, buf: &mut [u8]) -> Option<usize> {
    let mut out = Cursor::new(buf);
    let mut at = 0;
    for &(end, key) in shape.values.iter() {
        shape.put(&mut out, at, end);
        with_key(key, &mut Value { doc, out: &mut out });
        at = end;
    }
    shape.put(&mut out, at, shape.len);
    out.finish()
}

/// Writes the value of the field it is called with.
struct Value<'d, 'a, 'o, 'b> {
    doc: &'d Doc<'a>,
    out: &'o mut Cursor<'b>,
}

impl EachKey for Value<'_, '_, '_, '_> {
    #[inline(always)]
    fn field(&mut self, key: Key) {
        self.doc.put_inline(self.doc.value(key), self.out);
    }
}

/// Works out a document's shape without writing it.
struct Bits<'d, 'a> {
    doc: &'d Doc<'a>,
    bits: u128,
}

impl EachKey for Bits<'_, '_> {
    #[inline(always)]
    fn field(&mut self, key: Key) {
        if !matches!(self.doc.value(key), Val::Absent) {
            self.bits |= 1 << key as usize;
        }
    }
}

impl Shape {
    /// The shape `shape` of `doc`: its text, written as the field-by-field encoder writes it, with
    /// each value but the fixed ones left out and its place noted.
    fn new(doc: &Doc<'_>, shape: u128) -> Shape {
        let mut buf = vec![0u8; 8192];
        loop {
            let mut out = Cursor::new(&mut buf);
            let mut values = Vec::new();
            let mut w = ObjectWriter::begin(&mut out, &LAYOUT);
            for (name, field) in FIELDS.iter().enumerate() {
                if shape & (1 << name) == 0 {
                    continue;
                }
                match doc.value(field.key) {
                    Val::Absent => {}
                    Val::Fixed(word) => {
                        w.key(name);
                        word.put(w.out());
                    }
                    Val::Members(_) => {
                        let object = w.object_of(name);
                        w.enter(object);
                        values.push((w.out().position(), field.key));
                    }
                    _ => {
                        w.key(name);
                        values.push((w.out().position(), field.key));
                    }
                }
            }
            w.end();
            if let Some(n) = out.finish() {
                let mut text = buf[..n].to_vec();
                text.resize(n + PAD, 0);
                return Shape {
                    text: text.into(),
                    len: n,
                    values: values.into(),
                };
            }
            let more = buf.len() * 2;
            buf.resize(more, 0);
        }
    }
}
