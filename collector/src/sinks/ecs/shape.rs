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
use super::fields::{EachKey, FIELDS, Key, NAMES, for_each_key};
use super::json::{Cursor, ObjectWriter};
use crate::model::EnrichedFlow;

/// Shapes kept at most: past it, all are forgotten and made again as documents need them.
pub const MAX_SHAPES: usize = 1024;

// A shape is a bit per field.
const _: () = assert!(NAMES.len() <= 128, "a shape is a u128: at most 128 fields");

/// An ECS encoder that remembers the shapes of the documents it wrote. Writes exactly what
/// [`encode_into`](super::encode_into) writes (a property test holds them equal).
///
/// A document is written in one pass over the fields, each value straight after the shape's text before
/// it, with the shape guessed from a few facts of the flow (its protocol, which endpoints are
/// attributed, which optional parts it has: [`Doc::hint`]). The pass works out the document's real shape
/// as it goes; when the guess was wrong (two flows alike in those facts and different in some other
/// field), the document is written again with the real one, which is then the guess for such flows.
#[derive(Default)]
pub struct Encoder {
    /// Known shapes, by their bits, as indexes into `texts`.
    shapes: HashMap<u128, usize>,
    texts: Vec<Shape>,
    /// `(hint, index into texts)` of the last document of each hint, by the hint's hash.
    guesses: Vec<Option<(u64, usize)>>,
    /// Documents written again because their guessed shape was wrong.
    misses: u64,
}

/// Slots of the guess table (a power of two).
const GUESSES: usize = 256;

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("shapes", &self.shapes.len())
            .field("misses", &self.misses)
            .finish()
    }
}

/// The text of one shape, and where its values go in it.
struct Shape {
    /// The shape's bits.
    bits: u128,
    /// The text, followed by [`PAD`] zero octets so that any piece of it can be copied in a block of
    /// fixed size.
    text: Box<[u8]>,
    /// Length of the text without the padding.
    len: usize,
    /// `ends[i]`: where the text before the `i`th value (in table order) ends.
    ends: Box<[usize]>,
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

    /// Documents written twice because the shape guessed for them was not theirs.
    pub fn misses(&self) -> u64 {
        self.misses
    }

    /// Writes the ECS document of `flow` at the start of `buf` and returns its length, or `None` when it
    /// does not fit; as [`encode_into`](super::encode_into).
    pub fn encode_into(&mut self, flow: &EnrichedFlow, ctx: &Context<'_>, buf: &mut [u8]) -> Option<usize> {
        let doc = Doc::new(flow, ctx);
        let hint = doc.hint();
        // The hint's bits are few and clustered: a multiplication spreads them over the slot index.
        let slot = (hint.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as usize % GUESSES;
        if self.guesses.is_empty() {
            self.guesses = vec![None; GUESSES];
        }
        let guess = match self.guesses.get(slot) {
            Some(&Some((h, index))) if h == hint => self.texts.get(index),
            _ => None,
        };
        let bits = match guess {
            Some(shape) => match write(&doc, shape, buf) {
                Written::Done(n) => return n,
                Written::Other(bits) => {
                    self.misses += 1;
                    bits
                }
            },
            None => {
                let mut only = Bits { doc: &doc, bits: 0 };
                for_each_key(&mut only);
                only.bits
            }
        };
        if self.shapes.len() >= MAX_SHAPES && !self.shapes.contains_key(&bits) {
            self.shapes.clear();
            self.texts.clear();
            self.guesses.iter_mut().for_each(|g| *g = None);
        }
        let index = match self.shapes.entry(bits) {
            Entry::Occupied(e) => *e.get(),
            Entry::Vacant(e) => {
                self.texts.push(Shape::new(&doc, bits));
                *e.insert(self.texts.len() - 1)
            }
        };
        if let Some(g) = self.guesses.get_mut(slot) {
            *g = Some((hint, index));
        }
        match self.texts.get(index).map(|shape| write(&doc, shape, buf)) {
            Some(Written::Done(n)) => n,
            // The document's own shape always fits it: never reached.
            _ => None,
        }
    }
}

/// What [`write`] did.
enum Written {
    /// The document, or `None` when it did not fit the buffer.
    Done(Option<usize>),
    /// The document's shape is not the one it was written with: these are its bits.
    Other(u128),
}

/// Writes `doc` in `shape`, each value as it is worked out.
fn write(doc: &Doc<'_>, shape: &Shape, buf: &mut [u8]) -> Written {
    let mut w = Fused {
        doc,
        shape,
        out: Cursor::new(buf),
        bits: 0,
        values: 0,
        at: 0,
    };
    for_each_key(&mut w);
    if w.bits != shape.bits || w.values != shape.ends.len() {
        return Written::Other(w.bits);
    }
    shape.put(&mut w.out, w.at, shape.len);
    Written::Done(w.out.finish())
}

/// Writes each value after the shape's text before it, and notes which fields the document has.
struct Fused<'d, 'a, 's, 'b> {
    doc: &'d Doc<'a>,
    shape: &'s Shape,
    out: Cursor<'b>,
    bits: u128,
    /// Values met so far (fixed ones, which the shape's text holds, not counted).
    values: usize,
    /// Where the shape's text written so far ends.
    at: usize,
}

impl EachKey for Fused<'_, '_, '_, '_> {
    #[inline(always)]
    fn field(&mut self, key: Key) {
        let v = self.doc.value(key);
        if matches!(v, Val::Absent) {
            return;
        }
        self.bits |= 1 << key as usize;
        if matches!(v, Val::Fixed(_)) {
            return;
        }
        // Past the shape's last value the guess was wrong: the rest only counts.
        if let Some(&end) = self.shape.ends.get(self.values) {
            self.shape.put(&mut self.out, self.at, end);
            self.doc.put_inline(v, &mut self.out);
            self.at = end;
        }
        self.values += 1;
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
            let mut ends = Vec::new();
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
                        ends.push(w.out().position());
                    }
                    _ => {
                        w.key(name);
                        ends.push(w.out().position());
                    }
                }
            }
            w.end();
            if let Some(n) = out.finish() {
                let mut text = buf[..n].to_vec();
                text.resize(n + PAD, 0);
                return Shape {
                    bits: shape,
                    text: text.into(),
                    len: n,
                    ends: ends.into(),
                };
            }
            let more = buf.len() * 2;
            buf.resize(more, 0);
        }
    }
}
