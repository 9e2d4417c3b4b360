//! Bulk request bodies: documents as `_bulk` NDJSON, each a `create` action line with its `_id` and
//! the document's source line.
//!
//! [`Builder`] appends documents on the enrich thread; [`Docs`] is what it hands over: the body of a
//! `_bulk` request as it goes on the wire (and into the spool), with where each document ends, so the
//! answer's items can be matched to their documents by position and a request retried with only the
//! documents that must go again. A `Docs` is cheap to clone (the body is shared).
//!
//! Every line ends in `\n` and no document holds a raw newline (JSON strings escape them), so a body
//! is also a list of line pairs: [`Docs::from_body`] reads one back (from the spool), refusing
//! anything that is not pairs of action and source lines.

use bytes::Bytes;

use super::id::ID_LEN;

/// The action line before each document, around its `_id`.
const ACTION_HEAD: &[u8] = br#"{"create":{"_id":""#;
const ACTION_TAIL: &[u8] = b"\"}}\n";

/// Octets of a document's action line.
pub const ACTION_LEN: usize = ACTION_HEAD.len() + ID_LEN + ACTION_TAIL.len();

/// Documents in `_bulk` form.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Docs {
    body: Bytes,
    /// Where each document (action and source lines) ends in `body`.
    ends: Vec<u32>,
}

/// Why a body is not documents in `_bulk` form.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormError {
    /// An odd number of lines, or a body that does not end in a newline.
    #[error("not whole pairs of lines")]
    Unpaired,
    /// An action line that is not a `create` with an `_id`.
    #[error("line {0} is not a create action")]
    NotCreate(usize),
    /// Longer than 4 GiB.
    #[error("too long")]
    TooLong,
}

impl Docs {
    /// Documents.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Octets of the body.
    pub fn octets(&self) -> usize {
        self.body.len()
    }

    /// The `_bulk` body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Document `i`: its action line and its source line.
    pub fn item(&self, i: usize) -> &[u8] {
        let start = match i.checked_sub(1) {
            None => 0,
            Some(p) => self.ends.get(p).map_or(usize::MAX, |&e| e as usize),
        };
        let end = self.ends.get(i).map_or(start, |&e| e as usize);
        self.body.get(start..end).unwrap_or_default()
    }

    /// The `_id` of document `i`.
    pub fn id(&self, i: usize) -> &str {
        let item = self.item(i);
        let id = item
            .get(ACTION_HEAD.len()..ACTION_HEAD.len() + ID_LEN)
            .unwrap_or_default();
        std::str::from_utf8(id).unwrap_or_default()
    }

    /// The source line of document `i`, without its newline.
    pub fn source(&self, i: usize) -> &[u8] {
        let item = self.item(i);
        item.get(ACTION_LEN..item.len().saturating_sub(1))
            .unwrap_or_default()
    }

    /// The documents at `which` (in that order), as a body of their own.
    pub fn select(&self, which: &[usize]) -> Docs {
        let mut b = Builder::with_capacity(which.iter().map(|&i| self.item(i).len()).sum());
        for &i in which {
            b.push_item(self.item(i));
        }
        b.finish()
    }

    /// Reads a `_bulk` body of create actions back.
    pub fn from_body(body: Bytes) -> Result<Docs, FormError> {
        if body.len() > u32::MAX as usize {
            return Err(FormError::TooLong);
        }
        if !body.is_empty() && body.last() != Some(&b'\n') {
            return Err(FormError::Unpaired);
        }
        let mut ends = Vec::new();
        let mut line = 0;
        let mut at = 0;
        let mut newlines = memchr_iter(&body).collect::<Vec<_>>().into_iter();
        while at < body.len() {
            let (Some(a), Some(s)) = (newlines.next(), newlines.next()) else {
                return Err(FormError::Unpaired);
            };
            let action = &body[at..=a];
            if action.len() != ACTION_LEN
                || !action.starts_with(ACTION_HEAD)
                || !action.ends_with(ACTION_TAIL)
            {
                return Err(FormError::NotCreate(line));
            }
            line += 2;
            at = s + 1;
            ends.push(at as u32);
        }
        Ok(Docs { body, ends })
    }
}

fn memchr_iter(b: &[u8]) -> impl Iterator<Item = usize> + '_ {
    b.iter().enumerate().filter(|(_, c)| **c == b'\n').map(|(i, _)| i)
}

/// Appends documents to a body.
///
/// The buffer is zeroed once as it grows and written over in place (`filled` octets hold documents),
/// so the encoder can write a document straight into it.
#[derive(Debug, Default)]
pub struct Builder {
    buf: Vec<u8>,
    filled: usize,
    ends: Vec<u32>,
}

/// Room offered to the encoder for one document at first (a larger one gets twice as much, and so on).
const ROOM: usize = 16 * 1024;

impl Builder {
    /// A builder with room for `octets`.
    pub fn with_capacity(octets: usize) -> Self {
        Builder {
            buf: vec![0; octets],
            filled: 0,
            ends: Vec::new(),
        }
    }

    /// Makes `n` octets of room past what is filled.
    fn room(&mut self, n: usize) {
        let need = self.filled + n;
        if self.buf.len() < need {
            self.buf.resize(need.max(self.buf.len() * 2), 0);
        }
    }

    fn put(&mut self, bytes: &[u8]) {
        self.room(bytes.len());
        self.buf[self.filled..self.filled + bytes.len()].copy_from_slice(bytes);
        self.filled += bytes.len();
    }

    fn end_item(&mut self) {
        self.ends.push(self.filled as u32);
    }

    /// Appends a document: its action line with `id`, then the source `write` appends (one JSON
    /// object, no newline).
    pub fn push(&mut self, id: &[u8; ID_LEN], write: impl FnOnce(&mut Vec<u8>)) {
        let mut source = Vec::new();
        write(&mut source);
        self.put(ACTION_HEAD);
        self.put(id);
        self.put(ACTION_TAIL);
        self.put(&source);
        self.put(b"\n");
        self.end_item();
    }

    /// Appends a document whose source `encode` writes at the start of the room it is given,
    /// returning its length, or `None` when it needs more room (it is then called again with more).
    pub fn push_encoded(&mut self, id: &[u8; ID_LEN], mut encode: impl FnMut(&mut [u8]) -> Option<usize>) {
        let start = self.filled;
        self.put(ACTION_HEAD);
        self.put(id);
        self.put(ACTION_TAIL);
        let mut room = ROOM;
        loop {
            self.room(room + 1);
            let end = self.buf.len() - 1;
            if let Some(n) = encode(&mut self.buf[self.filled..end]) {
                self.filled += n;
                self.put(b"\n");
                self.end_item();
                return;
            }
            room = room.saturating_mul(2);
            if room > u32::MAX as usize {
                // Nothing is that large; leave the body as it was.
                self.filled = start;
                return;
            }
        }
    }

    /// Appends a whole item (action and source lines) of another body.
    pub fn push_item(&mut self, item: &[u8]) {
        self.put(item);
        self.end_item();
    }

    /// Appends every document of `docs`.
    pub fn extend(&mut self, docs: &Docs) {
        let base = self.filled as u32;
        self.put(&docs.body);
        self.ends.extend(docs.ends.iter().map(|e| e + base));
    }

    /// Documents so far.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Octets so far.
    pub fn octets(&self) -> usize {
        self.filled
    }

    /// The documents, leaving the builder empty with room for `octets`.
    pub fn take(&mut self, octets: usize) -> Docs {
        std::mem::replace(self, Builder::with_capacity(octets)).finish()
    }

    /// The documents.
    pub fn finish(mut self) -> Docs {
        self.buf.truncate(self.filled);
        Docs {
            body: Bytes::from(self.buf),
            ends: self.ends,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(n: usize) -> Docs {
        let mut b = Builder::default();
        for i in 0..n {
            let id = [b'a' + i as u8; ID_LEN];
            b.push(&id, |out| {
                out.extend_from_slice(format!("{{\"n\":{i}}}").as_bytes())
            });
        }
        b.finish()
    }

    #[test]
    fn a_body_is_create_lines_and_sources_that_read_back() {
        let d = docs(3);
        let text = std::str::from_utf8(d.body()).unwrap_or_default();
        assert_eq!(
            text,
            concat!(
                "{\"create\":{\"_id\":\"aaaaaaaaaaaaaaaaaaaa\"}}\n{\"n\":0}\n",
                "{\"create\":{\"_id\":\"bbbbbbbbbbbbbbbbbbbb\"}}\n{\"n\":1}\n",
                "{\"create\":{\"_id\":\"cccccccccccccccccccc\"}}\n{\"n\":2}\n",
            )
        );
        assert_eq!(
            (d.len(), d.id(1), d.source(2)),
            (3, "bbbbbbbbbbbbbbbbbbbb", &b"{\"n\":2}"[..])
        );
        for line in text.lines().step_by(2) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
            assert!(v["create"]["_id"].is_string(), "{line}");
        }
        assert_eq!(Docs::from_body(d.body().clone()), Ok(d.clone()));
        let picked = d.select(&[2, 0]);
        assert_eq!((picked.len(), picked.id(0), picked.id(1)), (2, d.id(2), d.id(0)));
        let mut b = Builder::default();
        b.push_encoded(&[b'z'; ID_LEN], |room| {
            let doc = b"{\"n\":9}";
            room.get_mut(..doc.len()).map(|r| {
                r.copy_from_slice(doc);
                doc.len()
            })
        });
        b.extend(&picked);
        b.extend(&d);
        let both = b.finish();
        assert_eq!((both.len(), both.source(4)), (6, &b"{\"n\":1}"[..]));
        assert_eq!(
            (both.id(0), both.source(0)),
            ("zzzzzzzzzzzzzzzzzzzz", &b"{\"n\":9}"[..])
        );
        assert_eq!(Docs::from_body(both.body().clone()), Ok(both.clone()));
    }

    #[test]
    fn bodies_that_are_not_pairs_of_create_lines_are_refused() {
        let d = docs(2);
        let body = d.body();
        assert_eq!(
            Docs::from_body(body.slice(..body.len() - 1)),
            Err(FormError::Unpaired)
        );
        let first = d.item(0).len();
        assert_eq!(
            Docs::from_body(body.slice(first..first + ACTION_LEN)),
            Err(FormError::Unpaired)
        );
        assert_eq!(
            Docs::from_body(Bytes::from_static(b"{\"index\":{}}\n{}\n")),
            Err(FormError::NotCreate(0))
        );
        assert_eq!(Docs::from_body(Bytes::new()).map(|d| d.len()), Ok(0));
        // Out-of-range positions read as empty, never panic.
        assert_eq!((d.item(9), d.source(9), d.id(9)), (&b""[..], &b""[..], ""));
    }
}
