//! The NDJSON sink: every flow as an ECS document, one JSON object per line, to a file or stdout.
//!
//! `--ndjson PATH` appends to PATH (created if missing: a restarted collector must not erase what it
//! wrote before); `--ndjson -` writes to standard output.
//!
//! The pure part, [`encode_batch`], appends lines to a buffer. [`NdjsonSink`] holds that buffer and is the
//! only code that touches the file: it writes once the buffer passes [`FLUSH_AT`] octets, when asked to
//! [`flush`](NdjsonSink::flush), and when [`finish`](NdjsonSink::finish)ed at shutdown. Failures (disk
//! full, closed pipe, ...) come back as [`Error`]s, never panics, and lose nothing at first: the
//! unwritten bytes stay buffered and the next flush retries them from where the write stopped, so a line
//! is never cut in two. Only when the backlog passes [`MAX_PENDING`] octets does the sink drop whole
//! buffered documents, and it counts them ([`NdjsonSink::dropped_documents`]).

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::ecs::{Context, encode, encode_into};
use crate::model::EnrichedFlow;

/// Buffered octets that trigger a write.
pub const FLUSH_AT: usize = 64 * 1024;

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
#[derive(clap::Args, Clone, Debug, Default)]
pub struct NdjsonArgs {
    /// Write every flow as an ECS document, one JSON object per line, to PATH (appended to), or to
    /// standard output with `-`.
    #[arg(long = "ndjson", value_name = "PATH")]
    pub ndjson: Option<PathBuf>,
}

impl NdjsonArgs {
    /// The target, if the sink is enabled.
    pub fn target(&self) -> Option<Target> {
        self.ndjson.as_deref().map(Target::from_arg)
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

/// Writes ECS documents as NDJSON.
pub struct NdjsonSink {
    target: Target,
    out: Box<dyn Write + Send>,
    pending: Vec<u8>,
    /// Whole lines in `pending`: counted as they are encoded, so a write that takes everything needs no
    /// scan of the buffer.
    pending_docs: u64,
    /// Where [`NdjsonSink::write_one`] encodes a document before appending it: reused as it is, with
    /// no clearing or zeroing per document.
    scratch: Vec<u8>,
    written: u64,
    dropped: u64,
}

impl fmt::Debug for NdjsonSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NdjsonSink")
            .field("target", &self.target)
            .field("pending", &self.pending.len())
            .field("written", &self.written)
            .field("dropped", &self.dropped)
            .finish()
    }
}

impl NdjsonSink {
    /// Opens `target`: a file is created if missing and appended to.
    pub fn open(target: Target) -> Result<Self, Error> {
        let out: Box<dyn Write + Send> = match &target {
            Target::Stdout => Box::new(io::stdout()),
            Target::File(path) => Box::new(OpenOptions::new().create(true).append(true).open(path).map_err(
                |source| Error::Open {
                    path: path.clone(),
                    source,
                },
            )?),
        };
        Ok(Self::with_writer(target, out))
    }

    /// A sink over any writer; `target` names it in errors.
    pub fn with_writer(target: Target, out: Box<dyn Write + Send>) -> Self {
        NdjsonSink {
            target,
            out,
            pending: Vec::with_capacity(FLUSH_AT * 2),
            pending_docs: 0,
            scratch: vec![0; 8192],
            written: 0,
            dropped: 0,
        }
    }

    /// Buffers the documents of `flows`, and writes them out once the buffer passes [`FLUSH_AT`].
    pub fn write(&mut self, flows: &[EnrichedFlow], ctx: &Context<'_>) -> Result<(), Error> {
        encode_batch(flows, ctx, &mut self.pending);
        self.pending_docs += flows.len() as u64;
        if self.pending.len() >= FLUSH_AT {
            self.flush()
        } else {
            Ok(())
        }
    }

    /// Buffers the document of one flow, and writes the buffer out once it passes [`FLUSH_AT`]: for a
    /// caller that enriches and writes one flow at a time, with no batch of flows to collect.
    pub fn write_one(&mut self, flow: &EnrichedFlow, ctx: &Context<'_>) -> Result<(), Error> {
        loop {
            if let Some(n) = encode_into(flow, ctx, &mut self.scratch) {
                self.pending.extend_from_slice(&self.scratch[..n]);
                break;
            }
            let more = self.scratch.len() * 2;
            self.scratch.resize(more, 0);
        }
        self.pending.push(b'\n');
        self.pending_docs += 1;
        if self.pending.len() >= FLUSH_AT {
            self.flush()
        } else {
            Ok(())
        }
    }

    /// Writes every buffered document out and flushes the writer.
    pub fn flush(&mut self) -> Result<(), Error> {
        let mut done = 0;
        let result = loop {
            if done == self.pending.len() {
                break self.out.flush();
            }
            match self.out.write(&self.pending[done..]) {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        // Only a write cut short (an error) needs the lines counted.
        let lines = if done == self.pending.len() {
            self.pending_docs
        } else {
            count_lines(&self.pending[..done])
        };
        self.written += lines;
        self.pending_docs -= lines;
        self.pending.drain(..done);
        match result {
            Ok(()) => Ok(()),
            Err(source) => {
                self.shed_backlog();
                Err(Error::Write {
                    target: self.target.clone(),
                    source,
                })
            }
        }
    }

    /// Flushes at shutdown.
    pub fn finish(mut self) -> Result<(), Error> {
        self.flush()
    }

    /// Documents written out so far (complete lines).
    pub fn written_documents(&self) -> u64 {
        self.written
    }

    /// Documents dropped because writes kept failing and the backlog passed [`MAX_PENDING`].
    pub fn dropped_documents(&self) -> u64 {
        self.dropped
    }

    /// Octets buffered, not yet written.
    pub fn pending_bytes(&self) -> usize {
        self.pending.len()
    }

    /// Drops whole documents once the backlog is too large, keeping the rest of a line the failed write
    /// had begun, so what reaches the file stays one document per line.
    fn shed_backlog(&mut self) {
        if self.pending.len() <= MAX_PENDING {
            return;
        }
        // pending ends with '\n' (only whole lines are ever added), so a newline exists.
        let keep = self.pending.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
        let dropped = count_lines(&self.pending[keep..]);
        self.dropped += dropped;
        self.pending_docs -= dropped;
        self.pending.truncate(keep);
    }
}

impl Drop for NdjsonSink {
    /// A sink dropped without [`finish`](NdjsonSink::finish) still tries to write what it buffered, as
    /// `BufWriter` does; errors then have no one to go to.
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            let _ = self.flush();
        }
    }
}

fn count_lines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}
