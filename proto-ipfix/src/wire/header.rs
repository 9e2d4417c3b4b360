//! The message header (RFC 7011 section 3.1).

use super::{HEADER_LEN, SetIter, VERSION, WireError, be16, be32};

mod field {
    pub const VERSION: usize = 0;
    pub const LENGTH: usize = 2;
    pub const EXPORT_TIME: usize = 4;
    pub const SEQUENCE: usize = 8;
    pub const DOMAIN: usize = 12;
}

/// A checked view of one IPFIX message: a valid header and exactly `length` octets.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    bytes: &'a [u8],
}

impl<'a> Message<'a> {
    /// Checks the header and that the buffer holds the whole message; trailing bytes beyond the header's
    /// length are ignored (a datagram carries one message, RFC 7011 section 10.3.4).
    pub fn new_checked(buf: &'a [u8]) -> Result<Self, WireError> {
        let len = Self::new_checked_prefix(buf)?;
        Ok(Message { bytes: &buf[..len] })
    }

    /// Validates the header at the start of `buf` and returns the message length.
    pub(crate) fn new_checked_prefix(buf: &[u8]) -> Result<usize, WireError> {
        if buf.len() < HEADER_LEN {
            return Err(WireError::Incomplete {
                offset: 0,
                needed: HEADER_LEN,
                available: buf.len(),
            });
        }
        let version = be16(buf, field::VERSION);
        if version != VERSION {
            return Err(WireError::BadVersion(version));
        }
        let len = usize::from(be16(buf, field::LENGTH));
        if len < HEADER_LEN {
            return Err(WireError::BadLength {
                offset: 0,
                length: len,
            });
        }
        if len > buf.len() {
            return Err(WireError::Incomplete {
                offset: 0,
                needed: len,
                available: buf.len(),
            });
        }
        Ok(len)
    }

    /// The message's bytes, header included.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The owned header.
    pub fn header(&self) -> HeaderRepr {
        HeaderRepr {
            length: be16(self.bytes, field::LENGTH),
            export_time: be32(self.bytes, field::EXPORT_TIME),
            sequence: be32(self.bytes, field::SEQUENCE),
            observation_domain: be32(self.bytes, field::DOMAIN),
        }
    }

    /// The sets that follow the header.
    pub fn sets(&self) -> SetIter<'a> {
        SetIter::new(self.bytes, HEADER_LEN)
    }
}

/// The message header as values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeaderRepr {
    /// Total message length, header included.
    pub length: u16,
    /// Seconds since the Unix epoch when the message left the exporter.
    pub export_time: u32,
    /// Data records sent in this stream before this message, modulo 2^32.
    pub sequence: u32,
    /// Observation Domain ID.
    pub observation_domain: u32,
}

impl HeaderRepr {
    /// Octets the header takes on the wire.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header into the first 16 octets of `out`.
    ///
    /// Returns `None` when `out` is shorter than the header.
    pub fn emit(&self, out: &mut [u8]) -> Option<()> {
        let out = out.get_mut(..HEADER_LEN)?;
        out[field::VERSION..field::VERSION + 2].copy_from_slice(&VERSION.to_be_bytes());
        out[field::LENGTH..field::LENGTH + 2].copy_from_slice(&self.length.to_be_bytes());
        out[field::EXPORT_TIME..field::EXPORT_TIME + 4].copy_from_slice(&self.export_time.to_be_bytes());
        out[field::SEQUENCE..field::SEQUENCE + 4].copy_from_slice(&self.sequence.to_be_bytes());
        out[field::DOMAIN..field::DOMAIN + 4].copy_from_slice(&self.observation_domain.to_be_bytes());
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static HEADER: [u8; 16] = [
        0x00, 0x0a, 0x00, 0x10, 0x5f, 0x5e, 0x10, 0x00, 0x00, 0x00, 0x00, 0x2a, 0x00, 0x00, 0x00, 0x06,
    ];

    #[test]
    fn parses_and_emits_header() {
        let m = Message::new_checked(&HEADER).unwrap();
        let h = m.header();
        assert_eq!(
            h,
            HeaderRepr {
                length: 16,
                export_time: 0x5f5e1000,
                sequence: 42,
                observation_domain: 6
            }
        );
        let mut out = [0u8; 16];
        h.emit(&mut out).unwrap();
        assert_eq!(out, HEADER);
        assert_eq!(m.sets().count(), 0);
    }

    #[test]
    fn rejects_bad_headers() {
        assert!(Message::new_checked(&HEADER[..15]).unwrap_err().is_incomplete());
        let mut v9 = HEADER;
        v9[1] = 9;
        assert_eq!(Message::new_checked(&v9).unwrap_err(), WireError::BadVersion(9));
        let mut short = HEADER;
        short[3] = 8;
        assert_eq!(
            Message::new_checked(&short).unwrap_err(),
            WireError::BadLength { offset: 0, length: 8 }
        );
        let mut long = HEADER;
        long[3] = 20;
        assert!(Message::new_checked(&long).unwrap_err().is_incomplete());
    }
}
