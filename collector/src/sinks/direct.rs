//! Direct I/O for the NDJSON file: whole aligned blocks go from the sink's buffer to the disk without a
//! copy in the page cache.
//!
//! A buffered write of a collector's output costs more system time than anything else it does per
//! document: the copy into the page cache, ext4's per-page bookkeeping (buffer heads, delayed
//! allocation), starting writeback and dropping the pages again (bench/COLLECTOR.md). With `O_DIRECT`
//! the kernel pins the buffer's pages and hands them to the disk: on the development VM, writing
//! 8.4 GB in 1 MiB direct writes took 1.0 s of system time against 2.8 to 3.8 s buffered through the
//! page-cache window. Nothing of the output stays in memory, so a log shipper tailing the file reads it
//! back from the disk.
//!
//! Direct writes need the file offset, the length and the buffer's address to be multiples of the
//! block size ([`ALIGN`]). The sink's buffer starts on such an address ([`AlignedBuf`]) and its writes
//! end on multiples of its flush size in the file, so every write but the first after opening (which
//! brings the file to a boundary) and the partial line of a timed flush qualifies; those few go through
//! the page cache as before. The kernel keeps the two kinds coherent.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::ops::{Deref, DerefMut};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The alignment of direct writes: file offset, length and buffer address. A page is a multiple of
/// every block size Linux file systems use.
pub const ALIGN: usize = 4096;

/// A byte buffer whose first octet lies on an [`ALIGN`] boundary in memory (over-allocated by a block
/// and used from the first boundary inside: no `unsafe` needed).
#[derive(Debug)]
pub struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// `len` zeroed octets.
    pub fn zeroed(len: usize) -> Self {
        let raw = vec![0u8; len + ALIGN];
        let start = raw.as_ptr().align_offset(ALIGN).min(ALIGN);
        AlignedBuf { raw, start, len }
    }

    /// Grows or shrinks the buffer to `len` octets, keeping the first `keep` (new ones are zeroed),
    /// and gives memory back when it shrinks.
    pub fn resize(&mut self, len: usize, keep: usize) {
        let keep = keep.min(self.len).min(len);
        let mut next = AlignedBuf::zeroed(len);
        next[..keep].copy_from_slice(&self[..keep]);
        *self = next;
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + self.len]
    }
}

/// A second descriptor of the output file, opened for appending with `O_DIRECT`.
#[derive(Debug)]
pub struct DirectFile {
    file: File,
}

impl DirectFile {
    /// Opens `path` (which exists) for direct appends; fails where the file system has no direct I/O.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .append(true)
            .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
            .open(path)?;
        Ok(DirectFile { file })
    }

    /// How much of `data`, to be written at file offset `offset`, can go directly: whole blocks, when
    /// the offset and the data's address are block-aligned; else nothing.
    pub fn aligned_prefix(offset: u64, data: &[u8]) -> usize {
        if !offset.is_multiple_of(ALIGN as u64) || data.as_ptr().align_offset(ALIGN) != 0 {
            return 0;
        }
        data.len() / ALIGN * ALIGN
    }

    /// Appends `data` (aligned, as [`DirectFile::aligned_prefix`] allows) and returns how much was
    /// written. The kernel refuses (`InvalidInput`) when the file's end is not where the sink thinks
    /// it is, for example when another process appended to it.
    pub fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.file.write(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_starts_on_a_block_and_keeps_its_contents_when_resized() {
        let mut b = AlignedBuf::zeroed(10_000);
        assert_eq!(b.as_ptr().align_offset(ALIGN), 0);
        assert_eq!(b.len(), 10_000);
        b[..5].copy_from_slice(b"hello");
        b.resize(50_000, 5);
        assert_eq!(b.as_ptr().align_offset(ALIGN), 0);
        assert_eq!((&b[..5], b.len()), (&b"hello"[..], 50_000));
        assert!(b[5..].iter().all(|&x| x == 0));
        b.resize(3, 100);
        assert_eq!(&b[..], b"hel");
    }

    #[test]
    fn only_whole_blocks_at_aligned_offsets_go_directly() {
        let b = AlignedBuf::zeroed(3 * ALIGN + 100);
        assert_eq!(DirectFile::aligned_prefix(0, &b), 3 * ALIGN);
        assert_eq!(DirectFile::aligned_prefix(8192, &b[..ALIGN]), ALIGN);
        assert_eq!(DirectFile::aligned_prefix(8192, &b[..ALIGN - 1]), 0);
        assert_eq!(DirectFile::aligned_prefix(100, &b), 0, "unaligned file offset");
        assert_eq!(DirectFile::aligned_prefix(0, &b[1..]), 0, "unaligned address");
    }
}
