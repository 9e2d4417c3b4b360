//! `collector-stream stages`: podflow-collector's steps on a recorded stream in one thread, without
//! sockets, threads or a disk: what the code costs, apart from where the pipeline runs it.
//!
//! Decodes the recording's datagrams (each as from its exporter's address) a thousand at a time, then
//! enriches each of their records against the inventory and encodes its ECS document into a sink that
//! discards it. Prints the CPU time
//! of this thread per record for each step as JSON. The first `--warm` datagrams are processed first
//! and not counted (templates, document shapes, endpoint texts made once), and the counted part runs in
//! [`measured`], never inlined, so `valgrind --tool=callgrind --toggle-collect='*stages*measured*'`
//! counts the instructions of exactly that part.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context as _;
use podflow_collector::decode::{Decoder, DecoderConfig};
use podflow_collector::enrich::Enricher;
use podflow_collector::k8s::index::IndexSettings;
use podflow_collector::k8s::inventory::Inventory;
use podflow_collector::model::FlowRecord;
use podflow_collector::pipeline::now_ms;
use podflow_collector::sinks::ecs::Context;
use podflow_collector::sinks::edges::{EdgeBatch, EdgeConsumer, FLUSH_EVERY_MS};
use podflow_collector::sinks::graph::store::{DEFAULT_MAX_EDGES, SharedGraph};
use podflow_collector::sinks::ndjson::{NdjsonSink, Target};
use podflow_collector::sinks::prometheus::{FlowMetrics, FlowMetricsConfig};
use serde_json::json;

use crate::replay::exporter_ip;
use crate::stream::Datagram;

/// What one pass over datagrams did: records decoded and documents written, CPU seconds of each step.
#[derive(Default)]
struct Pass {
    records: u64,
    documents: u64,
    decode_s: f64,
    enrich_encode_s: f64,
}

/// The state the steps keep between datagrams.
struct Steps<'a> {
    inventory: &'a Inventory,
    now_ms: u64,
    decoder: Decoder,
    enricher: Enricher,
    sink: NdjsonSink,
    /// With `--edges`: the batch of edges and its consumers, flushed as the pipeline does.
    edges: Option<(EdgeBatch, Vec<Box<dyn EdgeConsumer>>)>,
}

/// Runs the steps over `stream` (the first `warm` datagrams not counted) and returns the JSON report.
pub fn stages(
    stream: &[Datagram],
    inventory: &Path,
    warm: usize,
    edges: bool,
) -> anyhow::Result<serde_json::Value> {
    let now_ms = now_ms();
    let inventory = Inventory::load(&[inventory.to_path_buf()], IndexSettings::default(), now_ms)
        .with_context(|| format!("loading the inventory {}", inventory.display()))?;
    let mut steps = Steps {
        inventory: &inventory,
        now_ms,
        decoder: Decoder::new(DecoderConfig::default()),
        enricher: Enricher::default(),
        sink: NdjsonSink::with_writer(Target::Stdout, Box::new(std::io::sink())),
        edges: if edges { Some(edge_consumers()?) } else { None },
    };
    let warm = warm.min(stream.len());
    run(&mut steps, &stream[..warm]);
    let pass = measured(&mut steps, &stream[warm..]);
    let per = |s: f64| s * 1e9 / pass.records.max(1) as f64;
    Ok(json!({
        "edges": edges,
        "records": pass.records,
        "documents": pass.documents,
        "decode_ns_per_record": per(pass.decode_s).round(),
        "enrich_encode_ns_per_record": per(pass.enrich_encode_s).round(),
        "total_ns_per_record": per(pass.decode_s + pass.enrich_encode_s).round(),
    }))
}

/// The counted pass (see the module's docs about callgrind).
#[inline(never)]
fn measured(steps: &mut Steps<'_>, datagrams: &[Datagram]) -> Pass {
    run(steps, datagrams)
}

/// Datagrams decoded before their records are enriched and encoded: enough that reading the clock
/// costs nothing next to the steps, few enough that the records stay in memory already touched.
const CHUNK: usize = 1_000;

/// Records between two flushes of the edge batch: what the collector sums between two flushes
/// ([`FLUSH_EVERY_MS`]) at 160,000 records a second (flow_metrics.sh's rate), counted rather than timed
/// so that a run under callgrind flushes as often per record.
const FLUSH_RECORDS: u64 = FLUSH_EVERY_MS * 160;

/// Decodes a chunk of `datagrams`, then enriches and encodes its records, and so on, timing each step.
fn run(steps: &mut Steps<'_>, datagrams: &[Datagram]) -> Pass {
    let mut pass = Pass::default();
    let mut records: Vec<FlowRecord> = Vec::new();
    let mut flushed = 0;
    let ctx = Context {
        created_ms: steps.now_ms,
        cluster_name: None,
        data_stream_namespace: None,
        kubernetes: true,
        exporter_names: None,
    };
    for chunk in datagrams.chunks(CHUNK) {
        let start = thread_cpu_s();
        for d in chunk {
            let from = SocketAddr::from((exporter_ip(d.exporter), 4739));
            steps
                .decoder
                .decode(from, &d.bytes, steps.now_ms, &mut |r| records.push(r));
        }
        let decoded = thread_cpu_s();
        for record in records.drain(..) {
            pass.records += 1;
            let Some(flow) = steps.enricher.enrich(record, steps.inventory) else {
                continue;
            };
            if let Some((batch, _)) = steps.edges.as_mut() {
                batch.add_flow(&flow);
            }
            if steps.sink.write_one(&flow, &ctx).is_ok() {
                pass.documents += 1;
            }
        }
        if let Some((batch, consumers)) = steps.edges.as_mut()
            && pass.records - flushed >= FLUSH_RECORDS
        {
            flushed = pass.records;
            batch.flush(now_ms(), consumers);
        }
        let done = thread_cpu_s();
        pass.decode_s += decoded - start;
        pass.enrich_encode_s += done - decoded;
    }
    pass
}

/// The edge batch and the consumers the collector has with --metrics-listen, at their defaults.
fn edge_consumers() -> anyhow::Result<(EdgeBatch, Vec<Box<dyn EdgeConsumer>>)> {
    let registry = prometheus::Registry::new();
    let metrics = FlowMetrics::register(FlowMetricsConfig::default(), &registry)?;
    let graph = SharedGraph::new(DEFAULT_MAX_EDGES);
    Ok((EdgeBatch::default(), vec![Box::new(metrics), Box::new(graph)]))
}

/// CPU time of the calling thread (user and system), seconds, to the nanosecond.
fn thread_cpu_s() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}
