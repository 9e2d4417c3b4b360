//! The disk spool: documents the sink could not deliver yet (no node answers, the nodes answer 429 or
//! 503, the hand-over from the enrich thread is full), kept in order until a node takes them.
//!
//! Layout: a directory of segment files `<number>.seg`, numbered in the order they were made, each an
//! 8-octet magic and then records. A record is one [`Docs`] body: its length, its number of documents,
//! a CRC-32 of both and the body, then the body (`_bulk` NDJSON, as it goes on the wire). Records are
//! appended to the newest segment; a segment is sealed (fsynced, closed) when it passes the segment size
//! or is taken for replay, and the open one is fsynced at least once a second by the sink
//! ([`Spool::sync_handle`], outside any lock). A power loss can thus lose up to a second of spooled
//! documents; a killed process loses nothing the kernel has.
//!
//! Replay takes the oldest segment whole ([`Spool::take`]), checking every record's checksum: a record
//! that fails (a torn write, a bad disk) and the rest of its segment are counted as corrupt and skipped,
//! never sent half-read. A taken segment is deleted once its documents are delivered
//! ([`Spool::release`]); a collector stopped before that replays it again at its next start, and the
//! documents' deterministic `_id`s make the copies already indexed 409 conflicts.
//!
//! Bound: `--spool-max-mib` octets of segments. When a record does not fit, `drop-newest` drops it,
//! `drop-oldest` deletes the oldest segments not being replayed until it fits; either way the dropped
//! documents are counted by the caller. That is the only way the sink loses a document.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::bulk::Docs;

/// The first octets of every segment.
const MAGIC: &[u8; 8] = b"PFSPOOL1";

/// Octets of a record's header: length, documents, CRC-32.
const HEADER: usize = 12;

/// Default size at which a segment is sealed.
pub const SEGMENT_OCTETS: u64 = 16 << 20;

/// What to drop when the spool is full (`--spool-full`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Full {
    /// Drop what arrives (the spool keeps the start of an outage).
    #[default]
    DropNewest,
    /// Delete the oldest segments to make room (the spool keeps the end of an outage).
    DropOldest,
}

/// Spool settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// The directory of segments (created if missing).
    pub dir: PathBuf,
    /// Octets of segments at most.
    pub max_octets: u64,
    /// What to drop when full.
    pub full: Full,
    /// Size at which a segment is sealed.
    pub segment_octets: u64,
}

#[derive(Debug)]
struct Segment {
    id: u64,
    octets: u64,
    docs: u64,
    taken: bool,
}

/// What [`Spool::open`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Found {
    /// Segments to replay.
    pub segments: usize,
    /// Documents in them.
    pub docs: u64,
    /// Octets cut from segments that ended in a partial record (a write the process did not finish).
    pub truncated: u64,
}

/// What became of an append, in documents.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Appended {
    /// Stored.
    pub stored: u64,
    /// Dropped to keep the bound: the new ones (`drop-newest`) or older ones (`drop-oldest`).
    pub dropped: u64,
}

/// A segment taken for replay.
#[derive(Debug)]
pub struct Taken {
    /// Its number, to [`release`](Spool::release) it.
    pub id: u64,
    /// Its records, in order.
    pub batches: Vec<Docs>,
    /// Documents lost to a failed checksum or an unreadable record.
    pub corrupt: u64,
}

/// The spool.
#[derive(Debug)]
pub struct Spool {
    cfg: Config,
    segments: VecDeque<Segment>,
    /// The newest segment, open for appending.
    active: Option<File>,
    octets: u64,
    next_id: u64,
}

fn path_of(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

impl Spool {
    /// Opens the spool in `cfg.dir`, reading what a previous run left.
    pub fn open(cfg: Config) -> io::Result<(Spool, Found)> {
        fs::create_dir_all(&cfg.dir)?;
        let mut ids: Vec<u64> = fs::read_dir(&cfg.dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name();
                let name = name.to_str()?;
                name.strip_suffix(".seg")?.parse().ok()
            })
            .collect();
        ids.sort_unstable();
        let mut found = Found::default();
        let mut segments = VecDeque::new();
        for id in ids {
            let (octets, docs, cut) = scan(&path_of(&cfg.dir, id))?;
            found.truncated += cut;
            if docs == 0 {
                fs::remove_file(path_of(&cfg.dir, id))?;
                continue;
            }
            found.segments += 1;
            found.docs += docs;
            segments.push_back(Segment {
                id,
                octets,
                docs,
                taken: false,
            });
        }
        let octets = segments.iter().map(|s| s.octets).sum();
        let next_id = segments.back().map_or(0, |s| s.id + 1);
        Ok((
            Spool {
                cfg,
                segments,
                active: None,
                octets,
                next_id,
            },
            found,
        ))
    }

    /// Octets held.
    pub fn octets(&self) -> u64 {
        self.octets
    }

    /// Segments held (taken ones included).
    pub fn segments(&self) -> usize {
        self.segments.len()
    }

    /// Documents held (taken ones included).
    pub fn docs(&self) -> u64 {
        self.segments.iter().map(|s| s.docs).sum()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// True when a segment waits to be taken.
    pub fn has_untaken(&self) -> bool {
        self.segments.iter().any(|s| !s.taken)
    }

    /// Appends `docs` as one record, within the bound.
    pub fn append(&mut self, docs: &Docs) -> io::Result<Appended> {
        let n = docs.len() as u64;
        if n == 0 {
            return Ok(Appended::default());
        }
        let size = (HEADER + docs.octets()) as u64;
        let mut out = Appended::default();
        if self.octets + size + MAGIC.len() as u64 > self.cfg.max_octets {
            if self.cfg.full == Full::DropOldest {
                while self.octets + size + MAGIC.len() as u64 > self.cfg.max_octets {
                    let Some(i) = self.segments.iter().position(|s| !s.taken) else {
                        break;
                    };
                    if i + 1 == self.segments.len() && self.active.is_some() {
                        self.active = None;
                    }
                    if let Some(s) = self.segments.remove(i) {
                        self.octets -= s.octets;
                        out.dropped += s.docs;
                        fs::remove_file(path_of(&self.cfg.dir, s.id))?;
                    }
                }
            }
            if self.octets + size + MAGIC.len() as u64 > self.cfg.max_octets {
                out.dropped += n;
                return Ok(out);
            }
        }
        let room = self
            .segments
            .back()
            .filter(|_| self.active.is_some())
            .map(|s| s.octets);
        if room.is_none_or(|o| o + size > self.cfg.segment_octets) {
            self.seal()?;
            let id = self.next_id;
            let mut f = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(path_of(&self.cfg.dir, id))?;
            f.write_all(MAGIC)?;
            self.next_id += 1;
            self.active = Some(f);
            self.segments.push_back(Segment {
                id,
                octets: MAGIC.len() as u64,
                docs: 0,
                taken: false,
            });
            self.octets += MAGIC.len() as u64;
        }
        let (Some(f), Some(seg)) = (self.active.as_mut(), self.segments.back_mut()) else {
            return Err(io::Error::other("no open segment"));
        };
        let count = u32::try_from(n).map_err(|_| io::Error::other("record too large"))?;
        let len = u32::try_from(docs.octets()).map_err(|_| io::Error::other("record too large"))?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(&count.to_le_bytes());
        crc.update(docs.body());
        let mut head = [0u8; HEADER];
        head[0..4].copy_from_slice(&len.to_le_bytes());
        head[4..8].copy_from_slice(&count.to_le_bytes());
        head[8..12].copy_from_slice(&crc.finalize().to_le_bytes());
        let written = f.write_all(&head).and_then(|()| f.write_all(docs.body()));
        if let Err(e) = written {
            // Cut what part of the record went out, so the segment ends on a whole record.
            let _ = f.set_len(seg.octets);
            return Err(e);
        }
        seg.octets += size;
        seg.docs += n;
        self.octets += size;
        out.stored = n;
        Ok(out)
    }

    /// Seals the open segment: fsynced and closed.
    fn seal(&mut self) -> io::Result<()> {
        if let Some(f) = self.active.take() {
            f.sync_data()?;
            // The directory too, so the segment's name survives a power loss.
            File::open(&self.cfg.dir)?.sync_all()?;
        }
        Ok(())
    }

    /// A handle of the open segment, to fsync it without holding the spool.
    pub fn sync_handle(&self) -> Option<File> {
        self.active.as_ref().and_then(|f| f.try_clone().ok())
    }

    /// Takes the oldest segment not taken yet, sealing it if it is the open one.
    pub fn take(&mut self) -> io::Result<Option<Taken>> {
        let Some(i) = self.segments.iter().position(|s| !s.taken) else {
            return Ok(None);
        };
        if i + 1 == self.segments.len() {
            self.seal()?;
        }
        let Some(seg) = self.segments.get_mut(i) else {
            return Ok(None);
        };
        seg.taken = true;
        let bytes = fs::read(path_of(&self.cfg.dir, seg.id))?;
        let (batches, corrupt) = read_records(Bytes::from(bytes), seg.docs);
        Ok(Some(Taken {
            id: seg.id,
            batches,
            corrupt,
        }))
    }

    /// Deletes taken segment `id`: its documents are delivered (or spooled again elsewhere).
    pub fn release(&mut self, id: u64) -> io::Result<()> {
        if let Some(i) = self.segments.iter().position(|s| s.id == id && s.taken) {
            if let Some(s) = self.segments.remove(i) {
                self.octets -= s.octets;
            }
            fs::remove_file(path_of(&self.cfg.dir, id))?;
        }
        Ok(())
    }

    /// Puts taken segment `id` back (not delivered): the next [`take`](Self::take) or the next start
    /// replays it.
    pub fn untake(&mut self, id: u64) {
        if let Some(s) = self.segments.iter_mut().find(|s| s.id == id) {
            s.taken = false;
        }
    }

    /// Seals the open segment (at shutdown).
    pub fn close(&mut self) -> io::Result<()> {
        self.seal()
    }
}

/// The records of a segment's bytes, and how many of its `docs` documents could not be read.
fn read_records(bytes: Bytes, docs: u64) -> (Vec<Docs>, u64) {
    let mut out = Vec::new();
    let mut read = 0u64;
    if bytes.get(..MAGIC.len()) != Some(&MAGIC[..]) {
        return (out, docs);
    }
    let mut at = MAGIC.len();
    while let Some(head) = bytes.get(at..at + HEADER) {
        let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
        let (len, count, crc) = (word(0) as usize, word(4), word(8));
        let Some(body) = bytes.get(at + HEADER..at + HEADER + len) else {
            break;
        };
        let mut h = crc32fast::Hasher::new();
        h.update(&count.to_le_bytes());
        h.update(body);
        if h.finalize() != crc {
            break;
        }
        match Docs::from_body(bytes.slice(at + HEADER..at + HEADER + len)) {
            Ok(d) if d.len() as u64 == u64::from(count) => {
                read += d.len() as u64;
                out.push(d);
            }
            _ => break,
        }
        at += HEADER + len;
    }
    (out, docs.saturating_sub(read))
}

/// Octets and documents of the segment at `path`, cutting a partial record at its end (returned:
/// octets cut). A file without the magic is left with no documents.
fn scan(path: &Path) -> io::Result<(u64, u64, u64)> {
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    let total = f.metadata()?.len();
    let mut magic = [0u8; 8];
    if total < MAGIC.len() as u64 || f.read_exact(&mut magic).is_err() || &magic != MAGIC {
        return Ok((total, 0, 0));
    }
    let mut at = MAGIC.len() as u64;
    let mut docs = 0u64;
    let mut head = [0u8; HEADER];
    while at + HEADER as u64 <= total {
        f.seek(SeekFrom::Start(at))?;
        f.read_exact(&mut head)?;
        let len = u64::from(u32::from_le_bytes([head[0], head[1], head[2], head[3]]));
        let count = u64::from(u32::from_le_bytes([head[4], head[5], head[6], head[7]]));
        if at + HEADER as u64 + len > total {
            break;
        }
        at += HEADER as u64 + len;
        docs += count;
    }
    if at < total {
        f.set_len(at)?;
        f.sync_data()?;
    }
    Ok((at, docs, total - at))
}

#[cfg(test)]
mod tests;
