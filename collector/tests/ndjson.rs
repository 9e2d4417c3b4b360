//! The NDJSON sink: one document per line, appended, buffered until flushed, and write failures reported
//! without cutting a line or losing documents until the backlog limit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use clap::Parser;
use podflow_collector::model::EnrichedFlow;
use podflow_collector::sinks::direct::DirectFile;
use podflow_collector::sinks::ndjson::{
    Error, FLUSH_AT, Io, MAX_PENDING, NdjsonArgs, NdjsonSink, Target, encode_batch,
};

fn flows() -> Vec<EnrichedFlow> {
    vec![
        common::tcp_biflow_nat(),
        common::udp_uniflow_external(),
        common::icmp6_external(),
    ]
}

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ndjson");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    path
}

/// Checks `bytes` is whole lines of ECS documents; returns how many.
fn documents(bytes: &[u8]) -> usize {
    let text = std::str::from_utf8(bytes).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "ends mid-line");
    let mut n = 0;
    for line in text.lines() {
        let doc: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {n} is not JSON ({e}): {line}"));
        common::check_types(&doc);
        n += 1;
    }
    n
}

#[test]
fn a_batch_is_one_line_per_flow() {
    let mut buf = Vec::new();
    encode_batch(&flows(), &common::ctx(), &mut buf);
    assert_eq!(documents(&buf), 3);
    encode_batch(&[], &common::ctx(), &mut buf);
    assert_eq!(documents(&buf), 3);
}

#[test]
fn writes_a_file_and_appends_after_a_restart() {
    let path = tmp("append.ndjson");
    let mut sink = NdjsonSink::open(Target::File(path.clone())).unwrap();
    sink.write(&flows(), &common::ctx()).unwrap();
    // Below FLUSH_AT nothing is written until a flush.
    assert!(sink.pending_bytes() > 0);
    assert_eq!(std::fs::read(&path).unwrap().len(), 0);
    sink.flush().unwrap();
    assert_eq!(sink.written_documents(), 3);
    assert_eq!(documents(&std::fs::read(&path).unwrap()), 3);
    sink.write(&flows()[..1], &common::ctx()).unwrap();
    sink.finish().result().unwrap();
    assert_eq!(documents(&std::fs::read(&path).unwrap()), 4);

    let mut sink = NdjsonSink::open(Target::File(path.clone())).unwrap();
    sink.write(&flows(), &common::ctx()).unwrap();
    drop(sink); // dropping still writes what was buffered
    assert_eq!(documents(&std::fs::read(&path).unwrap()), 7);
}

#[test]
fn writes_once_the_buffer_passes_its_threshold_up_to_a_boundary_in_the_file() {
    let path = tmp("threshold.ndjson");
    // A file that already holds a document: boundaries count from the file's start, not the sink's.
    let mut before = Vec::new();
    encode_batch(&flows()[..1], &common::ctx(), &mut before);
    std::fs::write(&path, &before).unwrap();
    let mut sink = NdjsonSink::open(Target::File(path.clone())).unwrap();
    let batch: Vec<EnrichedFlow> = (0..64).map(|_| common::tcp_biflow_nat()).collect();
    let mut writes = 0;
    while std::fs::metadata(&path).unwrap().len() == before.len() as u64 {
        sink.write(&batch, &common::ctx()).unwrap();
        writes += 1;
        assert!(writes * 64 * 1000 < FLUSH_AT * 4, "never wrote");
    }
    let len = std::fs::metadata(&path).unwrap().len();
    assert_eq!(len % FLUSH_AT as u64, 0, "the write ends on a boundary");
    assert!(sink.pending_bytes() > 0, "the rest of the last document waits");
    assert!(sink.pending_bytes() < 64 * 2400, "{}", sink.pending_bytes());
    // Documents count as written once whole in the file.
    let whole = std::fs::read(&path)
        .unwrap()
        .iter()
        .filter(|&&b| b == b'\n')
        .count() as u64;
    assert_eq!(sink.written_documents() + 1, whole);
    sink.finish().result().unwrap();
    assert_eq!(documents(&std::fs::read(&path).unwrap()), writes * 64 + 1);
}

#[test]
fn the_page_cache_window_leaves_the_output_whole() {
    // Enough output for the window to start writeback and drop ranges several times over.
    let path = tmp("window.ndjson");
    let mut sink = NdjsonSink::open_keeping(Target::File(path.clone()), 1 << 20).unwrap();
    let batch: Vec<EnrichedFlow> = (0..1000).map(|_| common::tcp_biflow_nat()).collect();
    let mut expected = Vec::new();
    encode_batch(&batch, &common::ctx(), &mut expected);
    let rounds = (40 << 20) / expected.len() + 1;
    for _ in 0..rounds {
        sink.write(&batch, &common::ctx()).unwrap();
    }
    sink.finish().result().unwrap();
    let written = std::fs::read(&path).unwrap();
    assert_eq!(written.len(), expected.len() * rounds);
    assert!(written.chunks(expected.len()).all(|c| c == expected.as_slice()));
}

/// Whether the file system of the tests' scratch directory has direct I/O (ext4 and xfs do; some
/// overlay and network file systems do not).
fn has_direct_io() -> bool {
    let probe = tmp("probe.ndjson");
    std::fs::write(&probe, b"").unwrap();
    let ok = DirectFile::open(&probe).is_ok();
    if !ok {
        eprintln!(
            "no direct I/O in {}: only the fallback is checked",
            probe.display()
        );
    }
    ok
}

#[test]
fn direct_io_writes_what_the_page_cache_would_and_only_whole_blocks_go_directly() {
    let path = tmp("direct.ndjson");
    // A file that already holds a document: its end is not on a block, so the first write brings it
    // to one through the page cache.
    let mut expected = Vec::new();
    encode_batch(&flows()[..1], &common::ctx(), &mut expected);
    std::fs::write(&path, &expected).unwrap();
    let mut sink = NdjsonSink::open_with(Target::File(path.clone()), 1 << 20, Io::Direct).unwrap();
    let batch: Vec<EnrichedFlow> = (0..1000)
        .map(|i| [common::tcp_biflow_nat(), common::icmp6_external()][i % 2].clone())
        .collect();
    let mut one = Vec::new();
    encode_batch(&batch, &common::ctx(), &mut one);
    let rounds = (12 << 20) / one.len() + 1;
    for round in 0..rounds {
        sink.write(&batch, &common::ctx()).unwrap();
        expected.extend_from_slice(&one);
        if round % 3 == 1 {
            // A timed flush: the partial block at the end goes through the page cache, and the next
            // write starts off a block boundary again.
            sink.flush().unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), expected);
        }
    }
    let direct = sink.direct_octets();
    let mode = sink.io_mode();
    sink.finish().result().unwrap();
    assert!(
        std::fs::read(&path).unwrap() == expected,
        "byte for byte what was encoded"
    );
    if has_direct_io() {
        assert_eq!(mode, "direct I/O");
        assert!(
            direct > (expected.len() / 2) as u64,
            "most of the {} octets went directly, not {direct}",
            expected.len()
        );
        assert_eq!(direct % 4096, 0, "whole blocks only");
    }
}

#[test]
fn another_writer_appending_turns_direct_io_off_without_losing_or_overwriting_anything() {
    let path = tmp("direct-shared.ndjson");
    let mut sink = NdjsonSink::open_with(Target::File(path.clone()), 1 << 20, Io::Direct).unwrap();
    let batch: Vec<EnrichedFlow> = (0..1000).map(|_| common::tcp_biflow_nat()).collect();
    let mut one = Vec::new();
    encode_batch(&batch, &common::ctx(), &mut one);
    let mut ours = 0;
    while std::fs::metadata(&path).unwrap().len() == 0 {
        sink.write(&batch, &common::ctx()).unwrap();
        ours += one.len();
    }
    // Someone else appends a line: the file no longer ends where the sink thinks.
    let theirs = b"{\"message\":\"not podflow\"}\n";
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(theirs)
        .unwrap();
    for _ in 0..((4 * FLUSH_AT) / one.len() + 1) {
        sink.write(&batch, &common::ctx()).unwrap();
        ours += one.len();
    }
    if has_direct_io() {
        assert_eq!(
            sink.io_mode(),
            "page cache",
            "the kernel refused the direct write"
        );
    }
    sink.finish().result().unwrap();
    let file = std::fs::read(&path).unwrap();
    assert_eq!(
        file.len(),
        ours + theirs.len(),
        "nothing lost, nothing written over"
    );
    assert_eq!(
        file.windows(theirs.len()).filter(|w| *w == theirs).count(),
        1,
        "their line is still there"
    );
}

#[test]
fn reports_a_file_that_cannot_be_opened() {
    let path = tmp("no-such-dir").join("flows.ndjson");
    match NdjsonSink::open(Target::File(path.clone())) {
        Err(Error::Open { path: p, source }) => {
            assert_eq!(p, path);
            assert_eq!(source.kind(), io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
}

#[cfg(target_os = "linux")]
#[test]
fn reports_a_full_disk() {
    // /dev/full fails every write with ENOSPC.
    let mut sink = NdjsonSink::open(Target::File("/dev/full".into())).unwrap();
    sink.write(&flows(), &common::ctx()).unwrap();
    let err = sink.flush().unwrap_err();
    match &err {
        Error::Write { target, source } => {
            assert_eq!(target, &Target::File("/dev/full".into()));
            assert_eq!(source.kind(), io::ErrorKind::StorageFull);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("/dev/full"), "{err}");
    assert_eq!(sink.written_documents(), 0);
    assert!(sink.pending_bytes() > 0, "kept for a retry");
}

/// A writer that takes `budget` more octets (possibly cutting a line), then fails until healed; it
/// counts the calls.
#[derive(Clone, Default)]
struct Flaky {
    out: Arc<Mutex<Vec<u8>>>,
    budget: Arc<Mutex<Option<usize>>>,
    calls: Arc<Mutex<u64>>,
}

impl Write for Flaky {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        *self.calls.lock().unwrap() += 1;
        let mut budget = self.budget.lock().unwrap();
        let n = match *budget {
            None => buf.len(),
            Some(0) => return Err(io::Error::new(io::ErrorKind::StorageFull, "full")),
            Some(left) => {
                let n = left.min(buf.len());
                *budget = Some(left - n);
                n
            }
        };
        self.out.lock().unwrap().extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_failed_write_resumes_where_it_stopped() {
    let flaky = Flaky::default();
    *flaky.budget.lock().unwrap() = Some(1000); // cuts the first document
    let mut sink = NdjsonSink::with_writer(Target::Stdout, Box::new(flaky.clone()));
    sink.write(&flows(), &common::ctx()).unwrap();
    assert!(matches!(sink.flush(), Err(Error::Write { .. })));
    assert_eq!(flaky.out.lock().unwrap().len(), 1000);
    sink.write(&flows(), &common::ctx()).unwrap();
    assert!(sink.flush().is_err(), "still failing");
    *flaky.budget.lock().unwrap() = None;
    sink.finish().result().unwrap();
    assert_eq!(documents(&flaky.out.lock().unwrap()), 6);
}

#[test]
fn a_failing_disk_is_tried_once_per_mib_not_once_per_document() {
    let full = Flaky::default();
    *full.budget.lock().unwrap() = Some(0);
    let mut sink = NdjsonSink::with_writer(Target::Stdout, Box::new(full.clone()));
    let flow = common::tcp_biflow_nat();
    let mut failures = 0u64;
    for _ in 0..20_000 {
        failures += u64::from(sink.write_one(&flow, &common::ctx()).is_err());
    }
    let calls = *full.calls.lock().unwrap();
    assert!(failures > 0, "the failures are reported");
    assert_eq!(calls, failures, "one call per reported failure");
    // Documents of this flow are under 4 KiB: at most one try per MiB of them (a try per document
    // would be some 19,000).
    let bound = 20_000 * 4096 / FLUSH_AT as u64;
    assert!(calls <= bound, "{calls} writes tried for 20,000 documents");
    assert!(
        sink.dropped_documents() > 0,
        "past the backlog limit, documents are dropped and counted"
    );
}

#[test]
fn a_backlog_past_the_limit_drops_whole_documents_and_counts_them() {
    let flaky = Flaky::default();
    *flaky.budget.lock().unwrap() = Some(700);
    let mut sink = NdjsonSink::with_writer(Target::Stdout, Box::new(flaky.clone()));
    let batch: Vec<EnrichedFlow> = (0..1000).map(|_| common::tcp_biflow_nat()).collect();
    let mut sent = 0u64;
    let mut failures = 0;
    while sink.dropped_documents() == 0 {
        if sink.write(&batch, &common::ctx()).is_err() {
            failures += 1;
        }
        sent += 1000;
        assert!(
            sink.pending_bytes() <= MAX_PENDING + FLUSH_AT + 2_000_000,
            "{}",
            sink.pending_bytes()
        );
        assert!(sent < 100_000, "never dropped");
    }
    assert!(failures > 0);
    assert!(sink.pending_bytes() < 4000, "only the cut document is kept");
    *flaky.budget.lock().unwrap() = None;
    sink.flush().unwrap();
    let n = documents(&flaky.out.lock().unwrap()) as u64;
    assert_eq!(n, sink.written_documents());
    assert_eq!(n + sink.dropped_documents(), sent);
    assert_eq!(n, 1, "the document cut by the first failure was completed");
}

#[test]
fn the_command_line_option() {
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        ndjson: NdjsonArgs,
    }
    let cli = Cli::try_parse_from(["podflow-collector", "--ndjson", "-"]).unwrap();
    assert_eq!(cli.ndjson.target(), Some(Target::Stdout));
    let cli = Cli::try_parse_from(["podflow-collector", "--ndjson", "/var/log/flows.ndjson"]).unwrap();
    assert_eq!(
        cli.ndjson.target(),
        Some(Target::File("/var/log/flows.ndjson".into()))
    );
    assert_eq!(
        cli.ndjson.cache_mib, 64,
        "the last 64 MiB stay in the page cache by default"
    );
    assert_eq!(cli.ndjson.io, Io::Direct, "direct I/O by default");
    let cli = Cli::try_parse_from(["podflow-collector", "--ndjson", "-", "--ndjson-cache-mib", "0"]).unwrap();
    assert_eq!(cli.ndjson.cache_mib, 0);
    let cli = Cli::try_parse_from(["podflow-collector", "--ndjson", "-", "--ndjson-io", "cached"]).unwrap();
    assert_eq!(cli.ndjson.io, Io::Cached);
    assert!(Cli::try_parse_from(["podflow-collector", "--ndjson-io", "mmap"]).is_err());
    let cli = Cli::try_parse_from(["podflow-collector"]).unwrap();
    assert_eq!(cli.ndjson.target(), None);
    assert_eq!(Target::Stdout.to_string(), "standard output");
}

#[test]
fn one_flow_at_a_time_writes_what_a_batch_writes() {
    // A pod with many labels: its document outgrows the sink's first encoding buffer several times.
    let labels: Vec<(String, String)> = (0..300)
        .map(|i| (format!("example.com/label-{i:03}"), "v".repeat(40)))
        .collect();
    let refs: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut big = common::tcp_biflow_nat();
    big.source = Some(common::pod(
        "shop",
        "frontend-7d9f-abcde",
        ("Deployment", "frontend"),
        "node-a",
        &refs,
    ));
    // Small documents after the large one: the reused buffer holds the large one's tail.
    let flows = [vec![big], flows(), flows()].concat();
    let mut expected = Vec::new();
    encode_batch(&flows, &common::ctx(), &mut expected);
    assert!(expected.len() > 20_000);

    let out = Flaky::default();
    let mut sink = NdjsonSink::with_writer(Target::Stdout, Box::new(out.clone()));
    for f in &flows {
        sink.write_one(f, &common::ctx()).unwrap();
    }
    sink.flush().unwrap();
    assert_eq!(sink.written_documents(), flows.len() as u64);
    let written = out.out.lock().unwrap().clone();
    assert_eq!(documents(&written), flows.len());
    assert_eq!(written, expected);
}
