//! The NDJSON sink: every flow as an ECS document, one JSON object per line, to a file or stdout.
//!
//! `--ndjson PATH` appends to PATH (created if missing: a restarted collector must not erase what it
//! wrote before); `--ndjson -` writes to standard output.
//!
//! The pure part, [`encode_batch`], appends lines to a buffer. [`NdjsonSink`] encodes each document
//! straight into its own buffer (no copy of a document from elsewhere) and is the
//! only code that touches the file: it writes once the buffer passes [`FLUSH_AT`] octets, when asked to
//! [`flush`](NdjsonSink::flush), and when [`finish`](NdjsonSink::finish)ed at shutdown. Failures (disk
//! full, closed pipe, ...) come back as [`Error`]s, never panics, and lose nothing at first: the
//! unwritten bytes stay buffered and the next flush retries them from where the write stopped, so a line
//! is never cut in two. Only when the backlog passes [`MAX_PENDING`] octets does the sink drop whole
//! buffered documents, and it counts them ([`NdjsonSink::dropped_documents`]).
//!
//! Writes that the buffer filling up triggers end on a multiple of [`FLUSH_AT`] in the file, so the page
//! cache gets whole, aligned runs of pages (about 15% less system time per octet than unaligned writes
//! of the same size); the few octets past the boundary wait for the next write. By default those writes
//! bypass the page cache ([`DirectFile`], `--ndjson-io direct`); written through it
//! (`--ndjson-io cached`, or where the file system has no direct I/O), a file's recent output only
//! stays in the page cache ([`CacheWindow`], `--ndjson-cache-mib`).

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::cache_window::{CacheWindow, DEFAULT_KEEP};
use super::direct::{AlignedBuf, DirectFile};
use super::ecs::{Context, Encoder, encode};

/// Room kept free past [`FLUSH_AT`] so that a document usually fits before a write; a larger one grows
/// the buffer.
const ROOM: usize = 64 * 1024;
use crate::model::EnrichedFlow;

/// Buffered octets that trigger a write: large enough that the cost of a write call is small next to the
/// cost of its octets. Direct writes of 1 MiB took 40% less system time than of 256 KiB for the same
/// 8.4 GB (bench/COLLECTOR.md).
pub const FLUSH_AT: usize = 1024 * 1024;

/// Buffered octets beyond which, after a failed write, buffered documents are dropped.
pub const MAX_PENDING: usize = 16 * 1024 * 1024;

/// Appends one line per flow to `buf`: its ECS document and `\n`. A document holds no raw newline
/// (JSON strings escape them), so lines and documents correspond one to one.
pub fn encode_batch(flows: &[EnrichedFlow], ctx: &Context<'_>, buf: &mut Vec<u8>) {
    for flow in flows {
        encode(flow, ctx, buf);
        buf.push(b'\n');
    }
}

/// Where the documents go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Standard output (`-`).
    Stdout,
    /// A file, appended to.
    File(PathBuf),
}

impl Target {
    /// The target a `--ndjson` argument names: `-` is standard output.
    pub fn from_arg(path: &Path) -> Target {
        if path == Path::new("-") {
            Target::Stdout
        } else {
            Target::File(path.to_owned())
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Stdout => f.write_str("standard output"),
            Target::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The command-line options of the sink, for the collector's CLI to flatten in.
#[derive(clap::Args, Clone, Debug)]
pub struct NdjsonArgs {
    /// Write every flow as an ECS document, one JSON object per line, to PATH (appended to), or to
    /// standard output with `-`.
    #[arg(long = "ndjson", value_name = "PATH")]
    pub ndjson: Option<PathBuf>,
    /// Keep about the last MIB MiB written to the --ndjson file in the page cache, where a log shipper
    /// tailing the file reads them; older output is written back and dropped from memory, so a fast
    /// stream does not fill the node's memory (or the container's limit) with dirty pages. 0 leaves
    /// caching to the kernel.
    #[arg(long = "ndjson-cache-mib", value_name = "MIB", default_value_t = DEFAULT_KEEP >> 20)]
    pub cache_mib: u64,
    /// How the --ndjson file is written. `direct`: whole blocks go from the collector's buffer to the
    /// disk (O_DIRECT), the cheapest way in CPU and memory; a shipper tailing the file reads it from
    /// disk. `cached`: through the page cache, keeping the last --ndjson-cache-mib there for such a
    /// shipper. Where the file system has no direct I/O, `direct` falls back to `cached` (logged).
    #[arg(long = "ndjson-io", value_name = "MODE", value_enum, default_value_t = Io::default())]
    pub io: Io,
}

/// How a file sink writes (`--ndjson-io`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Io {
    /// Aligned blocks with direct I/O, the rest through the page cache.
    #[default]
    Direct,
    /// Everything through the page cache, within the cache window.
    Cached,
}

impl Default for NdjsonArgs {
    fn default() -> Self {
        NdjsonArgs {
            ndjson: None,
            cache_mib: DEFAULT_KEEP >> 20,
            io: Io::default(),
        }
    }
}

impl NdjsonArgs {
    /// The target, if the sink is enabled.
    pub fn target(&self) -> Option<Target> {
        self.ndjson.as_deref().map(Target::from_arg)
    }

    /// Opens the sink, if one is configured.
    pub fn open(&self) -> Result<Option<NdjsonSink>, Error> {
        let keep = self.cache_mib.saturating_mul(1 << 20);
        self.target()
            .map(|t| NdjsonSink::open_with(t, keep, self.io))
            .transpose()
    }
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be opened or created.
    #[error("cannot open {path} for NDJSON output: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Writing or flushing failed; the unwritten documents stay buffered for the next flush.
    #[error("cannot write NDJSON to {target}: {source}")]
    Write {
        /// Where to.
        target: Target,
        /// Why (`ErrorKind::StorageFull` for a full disk, `BrokenPipe` for a closed stdout, ...).
        #[source]
        source: io::Error,
    },
}

/// What a sink did, at shutdown ([`NdjsonSink::finish`]).
#[derive(Debug)]
pub struct Finished {
    /// Documents written (complete lines).
    pub written: u64,
    /// Documents dropped while writes failed and the backlog was past [`MAX_PENDING`].
    pub dropped: u64,
    /// Documents the last flush could not write.
    pub unwritten: u64,
    /// Why the last flush failed.
    pub error: Option<Error>,
}

impl Finished {
    /// `Ok` when the last flush wrote everything.
    pub fn result(self) -> Result<Self, Error> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self),
        }
    }
}

/// Writes ECS documents as NDJSON.
pub struct NdjsonSink {
    target: Target,
    out: Box<dyn Write + Send>,
    /// Documents are encoded in place at `buf[filled..]`: `buf` is zeroed once, when it grows, and
    /// otherwise written over as it is (whatever lies past `filled` is stale). Block-aligned in memory,
    /// for direct writes.
    buf: AlignedBuf,
    /// Octets of whole lines in `buf`, not yet written.
    filled: usize,
    /// Whole lines in `buf[..filled]`: counted as they are encoded, so a write that takes everything
    /// needs no scan of the buffer.
    pending_docs: u64,
    /// The encoder, which keeps the text of each document shape it meets.
    encoder: Encoder,
    written: u64,
    dropped: u64,
    /// Octets written to the target (for a file, from its length when opened): where `buf` starts.
    offset: u64,
    /// A file's page-cache window; `None` for standard output, when disabled, or after it failed.
    window: Option<CacheWindow>,
    /// The file opened for direct I/O; `None` for standard output, `--ndjson-io cached`, a file system
    /// without direct I/O, or after a direct write was refused.
    direct: Option<DirectFile>,
    /// Octets written with direct I/O.
    direct_octets: u64,
    /// After a failed write, the buffer's fill at which a full buffer is written again: one more
    /// [`FLUSH_AT`] later, so a failing disk costs a system call per MiB of documents rather than one
    /// per document. 0 while writes succeed.
    retry_at: usize,
}

impl fmt::Debug for NdjsonSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NdjsonSink")
            .field("target", &self.target)
            .field("pending", &self.filled)
            .field("written", &self.written)
            .field("dropped", &self.dropped)
            .finish()
    }
}

impl NdjsonSink {
    /// Opens `target` with the defaults of the command line: a file is created if missing and appended
    /// to, with direct I/O where the file system has it.
    pub fn open(target: Target) -> Result<Self, Error> {
        Self::open_with(target, DEFAULT_KEEP, Io::default())
    }

    /// Opens `target` like [`NdjsonSink::open`], but writing a file through the page cache
    /// (`--ndjson-io cached`) and keeping about its last `keep` octets there (0: all, as the kernel
    /// decides).
    pub fn open_keeping(target: Target, keep: u64) -> Result<Self, Error> {
        Self::open_with(target, keep, Io::Cached)
    }

    /// Opens `target`, writing a file as `mode` says and keeping about the last `keep` octets written
    /// through the page cache there (0: all, as the kernel decides).
    pub fn open_with(target: Target, keep: u64, mode: Io) -> Result<Self, Error> {
        let path = match &target {
            Target::Stdout => return Ok(Self::with_writer(target, Box::new(io::stdout()))),
            Target::File(path) => path.clone(),
        };
        let open_error = |source| Error::Open {
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(open_error)?;
        let meta = file.metadata().map_err(open_error)?;
        // Only a regular file has a page cache to keep small (not a FIFO, not /dev/stdout).
        let window = if keep > 0 && meta.is_file() {
            file.try_clone()
                .ok()
                .map(|f| CacheWindow::new(f, meta.len(), keep))
        } else {
            None
        };
        let direct = match mode {
            Io::Direct if meta.is_file() => match DirectFile::open(&path) {
                Ok(d) => Some(d),
                Err(e) => {
                    tracing::info!(
                        "ndjson: no direct I/O for {} ({e}); writing through the page cache",
                        path.display()
                    );
                    None
                }
            },
            _ => None,
        };
        let mut sink = Self::with_writer(target, Box::new(file));
        sink.offset = meta.len();
        sink.window = window;
        sink.direct = direct;
        Ok(sink)
    }

    /// A sink over any writer; `target` names it in errors.
    pub fn with_writer(target: Target, out: Box<dyn Write + Send>) -> Self {
        NdjsonSink {
            target,
            out,
            buf: AlignedBuf::zeroed(FLUSH_AT + ROOM),
            filled: 0,
            pending_docs: 0,
            encoder: Encoder::new(),
            written: 0,
            dropped: 0,
            offset: 0,
            window: None,
            direct: None,
            direct_octets: 0,
            retry_at: 0,
        }
    }

    /// Buffers the documents of `flows`, and writes them out once the buffer passes [`FLUSH_AT`].
    pub fn write(&mut self, flows: &[EnrichedFlow], ctx: &Context<'_>) -> Result<(), Error> {
        for flow in flows {
            self.encode_one(flow, ctx);
        }
        self.flush_when_due()
    }

    /// Buffers the document of one flow, and writes the buffer out once it passes [`FLUSH_AT`]: for a
    /// caller that enriches and writes one flow at a time, with no batch of flows to collect.
    pub fn write_one(&mut self, flow: &EnrichedFlow, ctx: &Context<'_>) -> Result<(), Error> {
        self.encode_one(flow, ctx);
        self.flush_when_due()
    }

    /// Writes the buffer out when it holds [`FLUSH_AT`] octets or more, up to the last multiple of
    /// [`FLUSH_AT`] in the file.
    fn flush_when_due(&mut self) -> Result<(), Error> {
        if self.filled < FLUSH_AT.max(self.retry_at) {
            return Ok(());
        }
        let past = (self.offset + self.filled as u64) % FLUSH_AT as u64;
        // At least one octet: `filled` is at least FLUSH_AT and `past` less.
        self.write_out(self.filled - past as usize)
    }

    /// Encodes one document and its newline at the end of the buffer.
    fn encode_one(&mut self, flow: &EnrichedFlow, ctx: &Context<'_>) {
        loop {
            // One octet kept for the newline.
            let end = self.buf.len().saturating_sub(1);
            let encoder = &mut self.encoder;
            if let Some(n) = self
                .buf
                .get_mut(self.filled..end)
                .and_then(|room| encoder.encode_into(flow, ctx, room))
            {
                let at = self.filled + n;
                self.buf[at] = b'\n';
                self.filled = at + 1;
                break;
            }
            // Did not fit: more room, twice as much as the buffer had (a document larger than a
            // whole buffer, or a backlog kept after failed writes).
            let more = self.buf.len() * 2;
            self.buf.resize(more, self.filled);
        }
        self.pending_docs += 1;
    }

    /// Writes every buffered document out and flushes the writer.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.write_out(self.filled)
    }

    /// Writes the first `upto` buffered octets out and flushes the writer; what follows them (the
    /// start of a document, when `upto` is a boundary in the file) stays buffered.
    fn write_out(&mut self, upto: usize) -> Result<(), Error> {
        let upto = upto.min(self.filled);
        let mut done = 0;
        let result = loop {
            if done == upto {
                break self.out.flush();
            }
            let data = &self.buf[done..upto];
            let at = self.offset + done as u64;
            let blocks = DirectFile::aligned_prefix(at, data);
            let written = match self.direct.as_mut() {
                Some(d) if blocks > 0 => {
                    match d.write(&data[..blocks]) {
                        Ok(n) => {
                            self.direct_octets += n as u64;
                            Ok(n)
                        }
                        Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                            // The file's end moved (another writer), or the file system changed its
                            // mind: the page cache from now on.
                            tracing::error!(
                                "ndjson: direct write to {} refused ({e}); writing through the page cache",
                                self.target
                            );
                            self.direct = None;
                            continue;
                        }
                        Err(e) => Err(e),
                    }
                }
                _ => self.out.write(data),
            };
            match written {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        // Whole lines written: counted over the shorter side (usually what stays, a document or less).
        let lines = if done == self.filled {
            self.pending_docs
        } else if done * 2 >= self.filled {
            self.pending_docs - count_lines(&self.buf[done..self.filled])
        } else {
            count_lines(&self.buf[..done])
        };
        self.written += lines;
        self.pending_docs -= lines;
        self.buf.copy_within(done..self.filled, 0);
        self.filled -= done;
        self.offset += done as u64;
        self.advance_window();
        match result {
            Ok(()) => {
                self.retry_at = 0;
                Ok(())
            }
            Err(source) => {
                self.shed_backlog();
                self.retry_at = self.filled + FLUSH_AT;
                Err(Error::Write {
                    target: self.target.clone(),
                    source,
                })
            }
        }
    }

    /// Moves the page-cache window to the end of what was written; a file system that refuses the
    /// advice turns it off, once, with a line to the log.
    fn advance_window(&mut self) {
        if let Some(Err(e)) = self.window.as_mut().map(|w| w.advance(self.offset)) {
            tracing::error!(
                "ndjson: cannot drop written output from the page cache of {} ({e}); leaving it to the kernel",
                self.target
            );
            self.window = None;
        }
    }

    /// Flushes at shutdown, and says what the sink did in all. Documents a failing target still
    /// refuses are given up and counted as unwritten.
    pub fn finish(mut self) -> Finished {
        let error = self.flush().err();
        let unwritten = self.pending_docs;
        // Given up: the drop that follows must not write them after they were counted.
        self.filled = 0;
        self.pending_docs = 0;
        Finished {
            written: self.written,
            dropped: self.dropped,
            unwritten,
            error,
        }
    }

    /// Documents written out so far (complete lines).
    pub fn written_documents(&self) -> u64 {
        self.written
    }

    /// Documents dropped because writes kept failing and the backlog passed [`MAX_PENDING`].
    pub fn dropped_documents(&self) -> u64 {
        self.dropped
    }

    /// How the sink writes, for the log: `direct I/O` or `page cache` (a file), `stream` (stdout).
    pub fn io_mode(&self) -> &'static str {
        match (&self.target, &self.direct) {
            (Target::Stdout, _) => "stream",
            (_, Some(_)) => "direct I/O",
            (_, None) => "page cache",
        }
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Octets written with direct I/O (the rest went through the page cache).
    pub fn direct_octets(&self) -> u64 {
        self.direct_octets
    }

    /// Octets buffered, not yet written.
    pub fn pending_bytes(&self) -> usize {
        self.filled
    }

    /// Drops whole documents once the backlog is too large, keeping the rest of a line the failed write
    /// had begun, so what reaches the file stays one document per line.
    fn shed_backlog(&mut self) {
        if self.filled <= MAX_PENDING {
            return;
        }
        // The buffer ends with '\n' (only whole lines are ever added), so a newline exists.
        let pending = &self.buf[..self.filled];
        let keep = pending.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
        let dropped = count_lines(&pending[keep..]);
        self.dropped += dropped;
        self.pending_docs -= dropped;
        self.filled = keep;
        // Back to the usual size once the backlog has gone.
        if self.buf.len() > FLUSH_AT + ROOM && self.filled <= FLUSH_AT {
            self.buf.resize(FLUSH_AT + ROOM, self.filled);
        }
    }
}

impl Drop for NdjsonSink {
    /// A sink dropped without [`finish`](NdjsonSink::finish) still tries to write what it buffered, as
    /// `BufWriter` does; errors then have no one to go to.
    fn drop(&mut self) {
        if self.filled > 0 {
            let _ = self.flush();
        }
    }
}

fn count_lines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}
