//! Sets (RFC 7011 section 3.3).

use super::{MIN_DATA_SET_ID, OPTIONS_TEMPLATE_SET_ID, SET_HEADER_LEN, TEMPLATE_SET_ID, WireError, be16};

/// A checked view of one set: its ID and the octets after its 4-octet header, padding included.
#[derive(Clone, Copy, Debug)]
pub struct Set<'a> {
    id: u16,
    offset: usize,
    body: &'a [u8],
}

impl<'a> Set<'a> {
    /// Set ID: 2 templates, 3 options templates, 256 and above a data set for that template.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// Offset of the set header from the start of the message.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Octets after the set header, up to the set's length.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// True for a Template Set or an Options Template Set.
    pub fn is_template_set(&self) -> bool {
        self.id == TEMPLATE_SET_ID || self.id == OPTIONS_TEMPLATE_SET_ID
    }

    /// True for a Data Set.
    pub fn is_data_set(&self) -> bool {
        self.id >= MIN_DATA_SET_ID
    }
}

/// Iterates over the sets of a message. Yields an error and stops at the first set header that is
/// truncated or whose length is out of bounds; sets before it stay valid.
#[derive(Clone, Debug)]
pub struct SetIter<'a> {
    msg: &'a [u8],
    at: usize,
    done: bool,
}

impl<'a> SetIter<'a> {
    /// Iterates over the sets of `msg` starting at offset `at`.
    pub(crate) fn new(msg: &'a [u8], at: usize) -> Self {
        SetIter { msg, at, done: false }
    }
}

impl<'a> Iterator for SetIter<'a> {
    type Item = Result<Set<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.at >= self.msg.len() {
            return None;
        }
        let offset = self.at;
        let rest = self.msg.len() - offset;
        if rest < SET_HEADER_LEN {
            self.done = true;
            return Some(Err(WireError::Incomplete {
                offset,
                needed: SET_HEADER_LEN,
                available: rest,
            }));
        }
        let id = be16(self.msg, offset);
        let len = usize::from(be16(self.msg, offset + 2));
        if len < SET_HEADER_LEN {
            self.done = true;
            return Some(Err(WireError::BadLength { offset, length: len }));
        }
        if len > rest {
            self.done = true;
            return Some(Err(WireError::Incomplete {
                offset,
                needed: len,
                available: rest,
            }));
        }
        self.at += len;
        if id != TEMPLATE_SET_ID && id != OPTIONS_TEMPLATE_SET_ID && id < MIN_DATA_SET_ID {
            // The set is delimited, so the sets after it can still be read.
            return Some(Err(WireError::ReservedSetId { offset, set_id: id }));
        }
        Some(Ok(Set {
            id,
            offset,
            body: &self.msg[offset + SET_HEADER_LEN..offset + len],
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_sets_and_stops_at_bad_length() {
        // header-less message body: set 256 len 6, reserved set 5 len 4, set 2 len 99 (overruns)
        let msg = [1, 0, 0, 6, 0xaa, 0xbb, 0, 5, 0, 4, 0, 2, 0, 99];
        let mut it = SetIter::new(&msg, 0);
        let s = it.next().unwrap().unwrap();
        assert_eq!(
            (s.id(), s.body(), s.is_data_set()),
            (256, &[0xaa, 0xbb][..], true)
        );
        assert_eq!(
            it.next().unwrap().unwrap_err(),
            WireError::ReservedSetId { offset: 6, set_id: 5 }
        );
        assert!(it.next().unwrap().unwrap_err().is_incomplete());
        assert!(it.next().is_none());
    }

    #[test]
    fn zero_length_set_is_an_error_not_a_loop() {
        let msg = [0, 2, 0, 0];
        let mut it = SetIter::new(&msg, 0);
        assert_eq!(
            it.next().unwrap().unwrap_err(),
            WireError::BadLength { offset: 0, length: 0 }
        );
        assert!(it.next().is_none());
    }
}
