//! A JSON object writer for flat dotted field names.
//!
//! Fields arrive as dotted names (`source.nat.ip`) in table order; the writer opens and closes the nested
//! objects they imply, so `source.ip` then `source.nat.ip` then `network.type` becomes
//! `{"source":{"ip":..,"nat":{"ip":..}},"network":{"type":..}}`. It relies on the table keeping every
//! object's fields contiguous (checked by a test in `fields`), and on names needing no escaping.
//!
//! The names are known when the collector is compiled, so their nesting is worked out then, into a
//! [`Layout`] (a `const fn`): each name's object and its key as written (`"ip":`), each object's parent,
//! depth and opening (`"nat":{`). Writing a member is a comparison of object numbers and a copy of its
//! key.
//!
//! A document is written through a [`Cursor`]: a buffer and a position in it. Every write is a bounds check and stores, with no length or capacity of a `Vec` to
//! load and update through a pointer on every octet; a document that does not fit is written again
//! with more room. Keys and numbers are stored where they go rather than assembled elsewhere and
//! copied: a copy reading octets just stored one by one waits for those stores to land.
//!
//! Nothing here allocates.

use std::fmt;
use std::net::IpAddr;

/// Last millisecond of year 9999: later dates have no four-digit year, and Elasticsearch's default date
/// format would reject them.
pub(crate) const MAX_DATE_MS: u64 = 253_402_300_799_999;

/// A document being written: a buffer and a position in it. Every octet before the position has been
/// written, so the buffer may hold anything to start with (zeros, or the previous document).
pub(crate) struct Cursor<'a> {
    buf: &'a mut [u8],
    at: usize,
    /// A write did not fit: the document is incomplete and must be written again with more room.
    overflow: bool,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `buf`.
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Cursor {
            buf,
            at: 0,
            overflow: false,
        }
    }

    /// Octets written so far.
    pub(crate) fn position(&self) -> usize {
        self.at
    }

    /// Octets written, or `None` when some did not fit.
    pub(crate) fn finish(&self) -> Option<usize> {
        (!self.overflow).then_some(self.at)
    }

    /// Writes one octet.
    #[inline(always)]
    pub(crate) fn byte(&mut self, b: u8) {
        match self.buf.get_mut(self.at) {
            Some(slot) => {
                *slot = b;
                self.at += 1;
            }
            None => self.overflow = true,
        }
    }

    /// Writes `s`.
    #[inline(always)]
    pub(crate) fn bytes(&mut self, s: &[u8]) {
        match self.buf.get_mut(self.at..self.at + s.len()) {
            Some(d) => {
                d.copy_from_slice(s);
                self.at += s.len();
            }
            None => self.overflow = true,
        }
    }

    /// Writes the first `len` octets of `s` by copying all `N` (a copy of fixed size is a few stores,
    /// where one of a size known only at run time is a call to `memcpy`); what is past `len` is
    /// overwritten by the next write.
    #[inline(always)]
    pub(crate) fn padded<const N: usize>(&mut self, s: &[u8; N], len: usize) {
        let len = len.min(N);
        match self.buf.get_mut(self.at..self.at + N) {
            Some(d) => {
                d.copy_from_slice(s);
                self.at += len;
            }
            // Near the end of the buffer the exact length may still fit.
            None => self.bytes(s.get(..len).unwrap_or(s)),
        }
    }

    /// The next `n` octets of the buffer, to store into before [`Cursor::advance`]; `None` (and the
    /// document marked incomplete) when they do not fit.
    #[inline(always)]
    fn room(&mut self, n: usize) -> Option<&mut [u8]> {
        let room = self.buf.get_mut(self.at..self.at + n);
        self.overflow |= room.is_none();
        room
    }

    #[inline(always)]
    fn advance(&mut self, n: usize) {
        self.at += n;
    }
}

impl fmt::Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.bytes(s.as_bytes());
        Ok(())
    }
}

/// Longest key or object opening, quotes, colon, brace and a leading comma included (a longer name fails
/// the build).
const PIECE: usize = 32;

/// Longest move between two objects: closing braces, a comma and openings.
const MOVE: usize = 64;

/// Most objects a layout can have (a layout with more fails the build).
const MAX_OBJECTS: usize = 48;

/// Text held in an array of fixed size, so it is written with a copy of that size (see
/// [`Cursor::padded`]): keys, object openings, moves between objects.
#[derive(Clone, Copy, Debug)]
struct Piece<const S: usize> {
    bytes: [u8; S],
    len: usize,
}

impl<const S: usize> Piece<S> {
    const EMPTY: Piece<S> = Piece {
        bytes: [0; S],
        len: 0,
    };

    const fn push(mut self, b: u8) -> Self {
        assert!(self.len < S, "a field name is too long for the JSON writer");
        self.bytes[self.len] = b;
        self.len += 1;
        self
    }

    const fn extend(mut self, s: &[u8], from: usize, to: usize) -> Self {
        let mut i = from;
        while i < to {
            self = self.push(s[i]);
            i += 1;
        }
        self
    }

    /// `head` `"` `name[from..to]` `"` `tail`.
    const fn quoted(head: &[u8], name: &[u8], from: usize, to: usize, tail: &[u8]) -> Self {
        Self::EMPTY
            .extend(head, 0, head.len())
            .push(b'"')
            .extend(name, from, to)
            .push(b'"')
            .extend(tail, 0, tail.len())
    }

    const fn same(&self, other: &Self) -> bool {
        if self.len != other.len {
            return false;
        }
        let mut i = 0;
        while i < self.len {
            if self.bytes[i] != other.bytes[i] {
                return false;
            }
            i += 1;
        }
        true
    }

    #[inline(always)]
    fn put(&self, out: &mut Cursor<'_>) {
        out.padded(&self.bytes, self.len);
    }
}

/// An object of the layout: its parent (0 is the top level, its own parent), depth and opening.
#[derive(Clone, Copy, Debug)]
struct Object {
    parent: usize,
    depth: usize,
    /// `"segment":{`
    open: Piece<PIECE>,
}

/// A name of the layout.
#[derive(Clone, Copy, Debug)]
struct Name {
    /// The object it is a member of.
    object: usize,
    /// `"leaf":`, for the first member of its object.
    key: Piece<PIECE>,
    /// `,"leaf":`, for the others.
    next: Piece<PIECE>,
}

/// The nesting of `N` dotted names, worked out at compile time.
#[derive(Clone, Debug)]
pub(crate) struct Layout<const N: usize> {
    names: [Name; N],
    /// Objects; 0 is the top-level object.
    objects: [Object; MAX_OBJECTS],
    /// `moves[a][b]`: from inside object `a`, after a member, to inside object `b` before its first
    /// member: the closing braces, a comma and the openings (`}},"network":{`).
    moves: [[Piece<MOVE>; MAX_OBJECTS]; MAX_OBJECTS],
}

impl<const N: usize> Layout<N> {
    /// The layout of `names` (`N` of them), which are then written by their index in the list.
    pub(crate) const fn new(names: &[&str]) -> Layout<N> {
        assert!(names.len() == N, "a layout is made of exactly N names");
        let top = Object {
            parent: 0,
            depth: 0,
            open: Piece::EMPTY,
        };
        let none = Name {
            object: 0,
            key: Piece::EMPTY,
            next: Piece::EMPTY,
        };
        let mut layout = Layout {
            names: [none; N],
            objects: [top; MAX_OBJECTS],
            moves: [[Piece::EMPTY; MAX_OBJECTS]; MAX_OBJECTS],
        };
        let mut count = 1;
        let mut i = 0;
        while i < N {
            let name = names[i].as_bytes();
            let (mut object, mut depth, mut from, mut j) = (0, 0, 0, 0);
            while j < name.len() {
                if name[j] == b'.' {
                    // The segment name[from..j] names an object inside `object`: found, or made.
                    depth += 1;
                    let open = Piece::quoted(b"", name, from, j, b":{");
                    let mut found = 0;
                    let mut o = 1;
                    while o < count {
                        let x = &layout.objects[o];
                        if x.parent == object && x.open.same(&open) {
                            found = o;
                        }
                        o += 1;
                    }
                    if found == 0 {
                        assert!(count < MAX_OBJECTS, "too many objects for the JSON writer");
                        layout.objects[count] = Object {
                            parent: object,
                            depth,
                            open,
                        };
                        found = count;
                        count += 1;
                    }
                    object = found;
                    from = j + 1;
                }
                j += 1;
            }
            layout.names[i] = Name {
                object,
                key: Piece::quoted(b"", name, from, name.len(), b":"),
                next: Piece::quoted(b",", name, from, name.len(), b":"),
            };
            i += 1;
        }
        let mut a = 0;
        while a < count {
            let mut b = 0;
            while b < count {
                layout.moves[a][b] = layout.make_move(a, b);
                b += 1;
            }
            a += 1;
        }
        layout
    }

    const fn make_move(&self, from: usize, to: usize) -> Piece<MOVE> {
        let o = &self.objects;
        let mut m = Piece::EMPTY;
        // Up to the deepest common ancestor, closing what is left.
        let (mut a, mut b) = (from, to);
        while o[a].depth > o[b].depth {
            m = m.push(b'}');
            a = o[a].parent;
        }
        while o[b].depth > o[a].depth {
            b = o[b].parent;
        }
        while a != b {
            m = m.push(b'}');
            a = o[a].parent;
            b = o[b].parent;
        }
        // A member was written before: a comma, then the openings down to `to`, outermost first.
        m = m.push(b',');
        let mut path = [0usize; MAX_OBJECTS];
        let mut n = 0;
        let mut x = to;
        while x != a {
            path[n] = x;
            n += 1;
            x = o[x].parent;
        }
        while n > 0 {
            n -= 1;
            let open = &o[path[n]].open;
            m = m.extend(&open.bytes, 0, open.len);
        }
        m
    }
}

/// Writes one JSON object whose members are the names of a [`Layout`], given by index.
pub(crate) struct ObjectWriter<'a, 'c> {
    out: &'a mut Cursor<'c>,
    names: &'a [Name],
    objects: &'a [Object],
    moves: &'a [[Piece<MOVE>; MAX_OBJECTS]],
    /// The innermost open object.
    open: usize,
    /// No member written yet in the innermost open object.
    first: bool,
}

impl<'a, 'c> ObjectWriter<'a, 'c> {
    /// Opens the top-level object.
    pub(crate) fn begin<const N: usize>(out: &'a mut Cursor<'c>, layout: &'a Layout<N>) -> Self {
        out.byte(b'{');
        ObjectWriter {
            out,
            names: &layout.names,
            objects: &layout.objects,
            moves: &layout.moves,
            open: 0,
            first: true,
        }
    }

    /// Starts the member `name` (an index into the layout's names): closes the objects the previous
    /// member opened and this one does not share, opens the ones it needs, and writes the leaf key. The
    /// value must follow.
    #[inline(always)]
    pub(crate) fn key(&mut self, name: usize) {
        let Some(n) = self.names.get(name) else {
            return;
        };
        if n.object == self.open {
            // A sibling of the previous member, or the first of its object.
            if self.first { &n.key } else { &n.next }.put(self.out);
        } else if let (false, Some(m)) = (
            self.first,
            self.moves.get(self.open).and_then(|row| row.get(n.object)),
        ) {
            // Into another object, after a member: one precomputed move, then the key.
            m.put(self.out);
            n.key.put(self.out);
            self.open = n.object;
        } else {
            // The first member of the document inside an object.
            self.reopen(n.object);
            if self.first { &n.key } else { &n.next }.put(self.out);
        }
        self.first = false;
    }

    /// The object `name` (an index into the layout's names) is a member of.
    pub(crate) fn object_of(&self, name: usize) -> usize {
        self.names.get(name).map_or(0, |n| n.object)
    }

    /// Writes `members`, JSON text of whole members (`"a":1,"b":{"c":2}`, every object it opens
    /// closed), into `object`, which is opened as [`ObjectWriter::key`] opens a member's object:
    /// members formatted once and copied into many documents. Nothing when `members` is empty.
    pub(crate) fn members(&mut self, object: usize, members: &[u8]) {
        if !members.is_empty() {
            self.enter(object);
            self.out.bytes(members);
        }
    }

    /// Moves into `object` for members written next as whole text, as [`ObjectWriter::members`] does
    /// before its text: the opening of the object when it is not open, or a comma after an earlier
    /// member. The text must follow, and must not be empty.
    pub(crate) fn enter(&mut self, object: usize) {
        if object == self.open {
            if !self.first {
                self.out.byte(b',');
            }
        } else if let (false, Some(m)) = (
            self.first,
            self.moves.get(self.open).and_then(|row| row.get(object)),
        ) {
            m.put(self.out);
            self.open = object;
        } else {
            self.reopen(object);
            if !self.first {
                self.out.byte(b',');
            }
        }
        self.first = false;
    }

    /// Closes every open object, the top-level one included.
    pub(crate) fn end(self) {
        let depth = self.depth(self.open);
        for _ in 0..depth + 1 {
            self.out.byte(b'}');
        }
    }

    /// The buffer, to write a value.
    pub(crate) fn out(&mut self) -> &mut Cursor<'c> {
        self.out
    }

    /// Moves from the open object to `target`, through their deepest common ancestor.
    fn reopen(&mut self, target: usize) {
        let (mut from, mut to) = (self.open, target);
        while self.depth(from) > self.depth(to) {
            self.close();
            from = self.parent(from);
        }
        while self.depth(to) > self.depth(from) {
            to = self.parent(to);
        }
        while from != to {
            self.close();
            from = self.parent(from);
            to = self.parent(to);
        }
        self.open_down(target, from);
        self.open = target;
    }

    /// Opens `object` and the objects above it, below `ancestor` (already open), outermost first.
    fn open_down(&mut self, object: usize, ancestor: usize) {
        if object == ancestor || object == 0 {
            return;
        }
        self.open_down(self.parent(object), ancestor);
        if !self.first {
            self.out.byte(b',');
        }
        if let Some(o) = self.objects.get(object) {
            o.open.put(self.out);
        }
        self.first = true;
    }

    fn close(&mut self) {
        self.out.byte(b'}');
        self.first = false;
    }

    fn depth(&self, object: usize) -> usize {
        self.objects.get(object).map_or(0, |o| o.depth)
    }

    fn parent(&self, object: usize) -> usize {
        self.objects.get(object).map_or(0, |o| o.parent)
    }
}

/// Writes `s` as a JSON string, quotes included.
pub(crate) fn string(out: &mut Cursor<'_>, s: &str) {
    out.byte(b'"');
    escape(out, s, false);
    out.byte(b'"');
}

/// True when `b` must be escaped in a JSON string.
#[inline(always)]
const fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// True when `s` can be written as it is between quotes: every octet is tested without stopping early,
/// a loop the compiler vectorizes.
#[inline(always)]
pub(crate) fn plain(s: &[u8]) -> bool {
    !s.iter().fold(false, |any, &b| any | needs_escape(b))
}

/// Writes the body of a JSON string for `s`; with `dedot`, every `.` becomes `_` (label keys).
pub(crate) fn escape(out: &mut Cursor<'_>, s: &str, dedot: bool) {
    let bytes = s.as_bytes();
    // Names, addresses and IDs never need escaping: copied whole.
    if plain(bytes) && !(dedot && bytes.contains(&b'.')) {
        out.bytes(bytes);
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'.' if dedot => b"_",
            0..=0x1f => {
                out.bytes(&bytes[start..i]);
                out.bytes(b"\\u00");
                out.byte(HEX[usize::from(b >> 4)]);
                out.byte(HEX[usize::from(b & 0xf)]);
                start = i + 1;
                continue;
            }
            // Multi-byte UTF-8 sequences pass through: JSON text is UTF-8, and a &str is valid UTF-8.
            _ => continue,
        };
        out.bytes(&bytes[start..i]);
        out.bytes(esc);
        start = i + 1;
    }
    out.bytes(&bytes[start..]);
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// "00" to "99": two digits per division.
const PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// "0." to "255.": the text of each octet of an IPv4 address and the dot after it (padded to four
/// octets), and its length with the dot.
const OCTETS: [([u8; 4], usize); 256] = {
    let mut t = [([0u8; 4], 0usize); 256];
    let mut i = 0;
    while i < 256 {
        let (mut text, mut len) = ([0u8; 4], 0);
        if i >= 100 {
            text[len] = b'0' + (i / 100) as u8;
            len += 1;
        }
        if i >= 10 {
            text[len] = b'0' + (i / 10 % 10) as u8;
            len += 1;
        }
        text[len] = b'0' + (i % 10) as u8;
        text[len + 1] = b'.';
        t[i] = (text, len + 2);
        i += 1;
    }
    t
};

/// Powers of ten that fit a `u64`.
const POW10: [u64; 20] = {
    let mut t = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// Number of decimal digits of `n`: from its bit length (log10 2 is about 1233/4096), corrected by one
/// comparison, with no division.
#[inline(always)]
fn digit_count(n: u64) -> usize {
    let n = n | 1;
    let guess = (((64 - n.leading_zeros()) * 1233) >> 12) as usize;
    // guess <= 19: 64 * 1233 >> 12 is 19.
    guess + usize::from(n >= POW10[guess.min(19)])
}

/// Stores the decimal digits of `n` at the start of `room` (20 octets hold any, the rest is room for
/// indexes the compiler need not check); returns how many.
#[inline(always)]
fn put_number(room: &mut [u8; 32], n: u64) -> usize {
    let len = digit_count(n);
    let (mut n, mut i) = (n, len);
    while i >= 2 {
        // n % 100 < 100: the index is within the table; i <= 20, so the masks change nothing.
        let p = (n % 100) as usize * 2;
        room[(i - 2) & 31] = PAIRS[p];
        room[(i - 1) & 31] = PAIRS[p + 1];
        n /= 100;
        i -= 2;
    }
    if i == 1 {
        // n < 10 here.
        room[0] = b'0' + n as u8;
    }
    len
}

/// Writes `n`'s decimal digits.
#[inline(always)]
fn digits(out: &mut Cursor<'_>, n: u64) {
    if let Some(room) = out.room(32).and_then(|r| <&mut [u8; 32]>::try_from(r).ok()) {
        let len = put_number(room, n);
        out.advance(len);
    }
}

/// Writes `n` as a JSON number that fits Elasticsearch's signed `long`: larger counts (only a broken or
/// hostile exporter sends them) are clamped to `i64::MAX` rather than get the document rejected.
pub(crate) fn long(out: &mut Cursor<'_>, n: u64) {
    digits(out, n.min(i64::MAX as u64));
}

/// Writes `n` as a JSON string of decimal digits (`network.iana_number` is a keyword).
pub(crate) fn decimal_string(out: &mut Cursor<'_>, n: u64) {
    out.byte(b'"');
    digits(out, n);
    out.byte(b'"');
}

/// An address as a JSON string, quotes included, formatted once to be written several times.
#[derive(Clone, Copy)]
pub(crate) struct IpText {
    bytes: [u8; 48],
    len: usize,
}

impl IpText {
    /// `ip` as text.
    pub(crate) fn new(ip: IpAddr) -> IpText {
        let mut bytes = [0u8; 48];
        let mut c = Cursor::new(&mut bytes);
        self::ip(&mut c, ip);
        // An IPv6 address is at most 45 characters: it always fits.
        let len = c.finish().unwrap_or(0);
        IpText { bytes, len }
    }

    /// Writes the text.
    #[inline(always)]
    pub(crate) fn put(&self, out: &mut Cursor<'_>) {
        out.padded(&self.bytes, self.len);
    }
}

/// A fixed piece of JSON text of the encoder's own (a quoted word such as `"tcp"`, or `["network"]`),
/// held padded for a fixed-size copy. Made at compile time, where a word that would need escaping
/// fails the build.
pub(crate) struct Word {
    bytes: [u8; 32],
    len: usize,
}

impl Word {
    /// The JSON string of `s`.
    pub(crate) const fn quoted(s: &str) -> Word {
        let s = s.as_bytes();
        assert!(s.len() + 2 <= 32, "word too long");
        let mut bytes = [0u8; 32];
        bytes[0] = b'"';
        let mut i = 0;
        while i < s.len() {
            assert!(!needs_escape(s[i]), "a word must need no escaping");
            bytes[1 + i] = s[i];
            i += 1;
        }
        bytes[1 + s.len()] = b'"';
        Word {
            bytes,
            len: s.len() + 2,
        }
    }

    /// `s` as it is: JSON text.
    pub(crate) const fn raw(s: &str) -> Word {
        let s = s.as_bytes();
        assert!(s.len() <= 32, "word too long");
        let mut bytes = [0u8; 32];
        let mut i = 0;
        while i < s.len() {
            bytes[i] = s[i];
            i += 1;
        }
        Word { bytes, len: s.len() }
    }

    /// Writes the text.
    #[inline(always)]
    pub(crate) fn put(&self, out: &mut Cursor<'_>) {
        out.padded(&self.bytes, self.len);
    }
}

/// A date as a JSON string (see [`date`]), formatted once to be written several times.
#[derive(Clone, Copy)]
pub(crate) struct DateText {
    bytes: [u8; 32],
}

impl DateText {
    /// `ms` as text.
    pub(crate) fn new(ms: u64) -> DateText {
        let mut bytes = [0u8; 32];
        // 26 octets: always fits.
        date(&mut Cursor::new(&mut bytes), ms);
        DateText { bytes }
    }

    /// Writes the text.
    #[inline(always)]
    pub(crate) fn put(&self, out: &mut Cursor<'_>) {
        out.padded(&self.bytes, 26);
    }
}

/// Writes an address as a JSON string.
pub(crate) fn ip(out: &mut Cursor<'_>, ip: IpAddr) {
    match ip {
        // The common case, without the formatting machinery: stored in place, at most 17 octets.
        IpAddr::V4(v4) => {
            if let Some(room) = out.room(20).and_then(|r| <&mut [u8; 20]>::try_from(r).ok()) {
                room[0] = b'"';
                let mut at = 1;
                for octet in v4.octets() {
                    // Each octet's text and a dot after it, four octets stored at once; the last dot
                    // is written over by the closing quote. at <= 1 + 4 * 4 here.
                    let (text, len) = OCTETS[usize::from(octet)];
                    room[at % 17..at % 17 + 4].copy_from_slice(&text);
                    at += len;
                }
                room[(at - 1) % 20] = b'"';
                out.advance(at);
            }
        }
        IpAddr::V6(v6) => {
            // The cursor's writes cannot fail; a lack of room is noted in it.
            let _ = fmt::Write::write_fmt(out, format_args!("\"{v6}\""));
        }
    }
}

/// Writes `ms` (Unix milliseconds) as a JSON string in RFC 3339 UTC with milliseconds,
/// `2024-05-01T12:00:00.123Z`. Callers check `ms <= MAX_DATE_MS` first; later values are clamped.
pub(crate) fn date(out: &mut Cursor<'_>, ms: u64) {
    let ms = ms.min(MAX_DATE_MS);
    let secs = ms / 1000;
    let sod = secs % 86_400;
    // The digits are stored into the template where they go.
    if let Some(b) = out.room(26) {
        b.copy_from_slice(b"\"0000-00-00T00:00:00.000Z\"");
        // A stream's dates fall on a few days: the calendar's arithmetic is done once per day.
        let day = DAY.with(|c| match c.get() {
            (days, text) if days == secs / 86_400 => text,
            _ => {
                let days = secs / 86_400;
                let (y, m, d) = civil_from_days(days);
                let mut text = *b"0000-00-00";
                put_pair(&mut text[0..2], y / 100);
                put_pair(&mut text[2..4], y % 100);
                put_pair(&mut text[5..7], m);
                put_pair(&mut text[8..10], d);
                c.set((days, text));
                text
            }
        });
        if let Some(d) = b.get_mut(1..11) {
            d.copy_from_slice(&day);
        }
        put_pair(&mut b[12..14], sod / 3600);
        put_pair(&mut b[15..17], sod / 60 % 60);
        put_pair(&mut b[18..20], sod % 60);
        put_pair(&mut b[21..23], ms % 1000 / 10);
        b[23] = b'0' + (ms % 10) as u8;
        out.advance(26);
    }
}

thread_local! {
    /// The last day [`date`] wrote (days since the epoch; none before the first date), as `YYYY-MM-DD`.
    static DAY: std::cell::Cell<(u64, [u8; 10])> = const { std::cell::Cell::new((u64::MAX, [0; 10])) };
}

/// Writes `n` (below 100) as two digits into `dst` (two octets).
#[inline(always)]
fn put_pair(dst: &mut [u8], n: u64) {
    // n % 100 < 100: the index is within the table.
    let p = (n % 100) as usize * 2;
    if let (Some(d), Some(s)) = (dst.get_mut(..2), PAIRS.get(p..p + 2)) {
        d.copy_from_slice(s);
    }
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests;
