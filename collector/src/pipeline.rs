//! The running collector: threads and queues around the pure stages.
//!
//! ```text
//! socket -> receive thread -> [datagram batches] -> decode thread (one per socket: an exporter's
//!        templates stay with one decoder) -> [record batches] -> enrich + sinks thread
//! ```
//! Every queue is bounded. A receive thread never waits: when decoding falls behind it drops the batch
//! and counts it; a decode thread likewise drops record batches when enrichment and sinks fall behind.
//! On stop, receive threads end, queues drain, sinks flush, and `run` returns.
//!
//! Emptied batches go back to the stage that fills them ([`Pool`]): at a steady rate the pipeline
//! allocates no batches.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::decode::{DecodeStats, Decoder, DecoderConfig, Reports};
use crate::enrich::dedup::DedupConfig;
use crate::enrich::nat::NatConfig;
use crate::enrich::{Attributor, Enricher};
use crate::metrics::{Metrics, State};
use crate::model::{FlowRecord, Protocol};
use crate::pool::Pool;
use crate::receive::{Batch, Listener};
use crate::sinks::ecs::Context;
use crate::sinks::edges::peers::Peers;
use crate::sinks::edges::{EdgeBatch, EdgeConsumer};
use crate::sinks::elasticsearch::ElasticsearchSink;
use crate::sinks::ndjson::NdjsonSink;
use podflow_telemetry::{LogBudget, Throttle};

/// Milliseconds since the Unix epoch, the clock of the I/O shell.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Pipeline settings.
pub struct PipelineConfig {
    /// Decoder settings (one decoder per socket).
    pub decoder: DecoderConfig,
    /// `orchestrator.cluster.name` in documents.
    pub cluster_name: Option<String>,
    /// True when endpoints are attributed against a Kubernetes view.
    pub kubernetes: bool,
    /// Datagram batches queued per socket.
    pub datagram_queue: usize,
    /// Record batches queued for enrichment and sinks at most.
    pub record_queue: usize,
    /// Records queued for enrichment and sinks at most (some 400 octets each): what absorbs a stall of
    /// the sinks (a disk that stops for a second or two). Past it, decode threads drop whole batches
    /// and count them.
    pub backlog_records: u64,
    /// The duplicate table's window and size.
    pub dedup: DedupConfig,
    /// Where addresses without an owner belong, for the edges.
    pub peers: Peers,
    /// What takes each batch's edges (flow metrics, the node graph). With none, no edges are made.
    pub edge_consumers: Vec<Box<dyn EdgeConsumer>>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            decoder: DecoderConfig::default(),
            cluster_name: None,
            kubernetes: false,
            datagram_queue: 256,
            record_queue: 4096,
            backlog_records: DEFAULT_BACKLOG_RECORDS,
            dedup: DedupConfig::default(),
            peers: Peers::default(),
            edge_consumers: Vec::new(),
        }
    }
}

/// Records queued for enrichment at most, by default: at 150,000 records a second, over three seconds of
/// a stalled sink, in about 200 MiB at worst.
pub const DEFAULT_BACKLOG_RECORDS: u64 = 1 << 19;

/// Spare record batches kept for reuse: what a steady stream has in flight, not what a stall queued
/// (that memory goes back once the queue drains).
const SPARE_RECORD_BATCHES: usize = 64;

/// What a run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunTotals {
    /// Records decoded.
    pub records: u64,
    /// Documents written by the sink, when there is one (what the output holds); otherwise the flows
    /// enriched.
    pub documents: u64,
}

/// The sinks documents go to: any of them, all at once.
#[derive(Default)]
pub struct Sinks {
    /// `--ndjson`.
    pub ndjson: Option<NdjsonSink>,
    /// `--elasticsearch`.
    pub elasticsearch: Option<ElasticsearchSink>,
}

impl From<Option<NdjsonSink>> for Sinks {
    fn from(ndjson: Option<NdjsonSink>) -> Self {
        Sinks {
            ndjson,
            elasticsearch: None,
        }
    }
}

/// Runs the collector on `listeners` until `stop` is raised, writing documents to `sinks`.
pub fn run(
    listeners: Vec<Listener>,
    mut cfg: PipelineConfig,
    attributor: Arc<dyn Attributor + Send + Sync>,
    sinks: impl Into<Sinks>,
    metrics: Metrics,
    stop: Arc<AtomicBool>,
) -> std::io::Result<RunTotals> {
    let Sinks {
        ndjson: sink,
        elasticsearch,
    } = sinks.into();
    let (records_tx, records_rx) = sync_channel::<Vec<FlowRecord>>(cfg.record_queue);
    let record_pool = Arc::new(Pool::<Vec<FlowRecord>>::new(
        cfg.record_queue.min(SPARE_RECORD_BATCHES),
    ));
    // Records queued for enrichment: decode threads add, the enrich thread takes away.
    let depth = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    let receive_stop = Arc::new(AtomicBool::new(false));
    // Lines about exporters, a fixed number a minute over every decode thread.
    let budget = Arc::new(LogBudget::default());
    for l in listeners {
        let l = Arc::new(l);
        let (dg_tx, dg_rx) = sync_channel::<Batch>(cfg.datagram_queue);
        let batch_pool = Arc::new(Pool::<Batch>::new(cfg.datagram_queue));
        let (l2, rs, bp) = (l.clone(), receive_stop.clone(), batch_pool.clone());
        threads.push(
            std::thread::Builder::new()
                .name(format!("receive-{}", l.addr))
                .spawn(move || {
                    l2.run(&dg_tx, &bp, &rs, now_ms);
                })?,
        );
        let (decoder_cfg, tx, m, d) = (cfg.decoder, records_tx.clone(), metrics.clone(), depth.clone());
        let budget = Arc::clone(&budget);
        let pools = (batch_pool, record_pool.clone());
        threads.push(
            std::thread::Builder::new()
                .name(format!("decode-{}", l.addr))
                .spawn(move || {
                    let queues = Queues {
                        rx: dg_rx,
                        tx: &tx,
                        batches: &pools.0,
                        records: &pools.1,
                        backlog: cfg.backlog_records,
                    };
                    decode_loop(&l, queues, Decoder::new(decoder_cfg), &d, (&m, &budget))
                })?,
        );
    }
    drop(records_tx);
    let ctx_cfg = (cfg.cluster_name.clone(), cfg.kubernetes);
    let edges = (
        EdgeBatch::new(std::mem::take(&mut cfg.peers)),
        std::mem::take(&mut cfg.edge_consumers),
    );
    let m = metrics.clone();
    let sink_thread = std::thread::Builder::new().name("enrich".into()).spawn(move || {
        enrich_loop(
            (records_rx, &record_pool),
            Enricher::new(NatConfig::default(), cfg.dedup),
            &*attributor,
            (sink, elasticsearch),
            ctx_cfg,
            edges,
            &depth,
            &m,
        )
    })?;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    receive_stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    Ok(sink_thread.join().unwrap_or_default())
}

/// A decode thread's queues and the pools of what goes through them.
struct Queues<'a> {
    rx: Receiver<Batch>,
    tx: &'a SyncSender<Vec<FlowRecord>>,
    /// Emptied datagram batches, back to the receive thread.
    batches: &'a Pool<Batch>,
    /// Emptied record batches, from the enrich thread.
    records: &'a Pool<Vec<FlowRecord>>,
    /// Records queued for the enrich thread at most.
    backlog: u64,
}

fn decode_loop(
    listener: &Listener,
    q: Queues<'_>,
    mut decoder: Decoder,
    depth: &AtomicU64,
    (metrics, budget): (&Metrics, &LogBudget),
) {
    let mut next_publish = Instant::now();
    // Exporters that lost something are logged, at most once per ten seconds each.
    let mut reports = Reports::default();
    loop {
        let batch = match q.rx.recv_timeout(Duration::from_millis(500)) {
            Ok(b) => Some(b),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if let Some(mut b) = batch {
            let mut records = q.records.take();
            for (from, payload) in b.iter() {
                decoder.decode(from, payload, b.received_ms, &mut |r| records.push(r));
            }
            b.clear();
            q.batches.put(b);
            if records.is_empty() {
                q.records.put(records);
            } else {
                let n = records.len() as u64;
                // Counted before sending, so the enrich thread never takes away more than was added.
                let queued = depth.fetch_add(n, Ordering::Relaxed);
                let sent = if queued + n > q.backlog {
                    Err(TrySendError::Full(records))
                } else {
                    q.tx.try_send(records)
                };
                match sent {
                    Ok(()) => {}
                    Err(TrySendError::Full(mut dropped)) => {
                        depth.fetch_sub(n, Ordering::Relaxed);
                        metrics.lock().dropped_records += n;
                        dropped.clear();
                        q.records.put(dropped);
                    }
                    Err(TrySendError::Disconnected(_)) => break,
                }
            }
        } else {
            decoder.expire(now_ms());
        }
        if next_publish.elapsed() >= Duration::from_secs(1) {
            next_publish = Instant::now();
            publish_decode(listener, &mut decoder, (metrics, budget), &mut reports);
        }
    }
    publish_decode(listener, &mut decoder, (metrics, budget), &mut reports);
    let left_out = log_reports(&reports.flush(), budget) + budget.take_refused();
    if left_out > 0 {
        tracing::warn!(
            "{left_out} lines about exporters left out of the log at the end; podflow_collector_log_suppressed_total counts them"
        );
    }
    metrics.lock().log_suppressed += left_out;
}

/// Logs the lines `budget` admits and says how many it refused before; returns how many of `lines`
/// it refused.
fn log_reports(lines: &[String], budget: &LogBudget) -> u64 {
    let admitted = budget.admit(lines.len());
    if admitted.refused_before > 0 {
        tracing::warn!(
            "{} lines about exporters left out of the log in the last minute (at most {} a minute over all exporters); podflow_collector_log_suppressed_total counts them",
            admitted.refused_before,
            podflow_telemetry::log::LINES_PER_MINUTE
        );
    }
    for line in &lines[..admitted.lines] {
        tracing::warn!("{line}");
    }
    (lines.len() - admitted.lines) as u64
}

fn publish_decode(
    listener: &Listener,
    decoder: &mut Decoder,
    (metrics, budget): (&Metrics, &LogBudget),
    reports: &mut Reports,
) {
    let stats = decoder.take_stats();
    let left_out = log_reports(&reports.add(&stats), budget);
    let behind = listener.stats.dropped_behind.swap(0, Ordering::Relaxed);
    let kernel = listener.kernel_drops();
    let mut m = metrics.lock();
    m.log_suppressed += left_out;
    add_decode_stats(&mut m, &stats);
    *m.dropped_datagrams.entry("behind").or_default() += behind;
    if let Some(k) = kernel {
        // The kernel's counter is cumulative per socket: each socket's latest value stands.
        m.socket_drops
            .insert((listener.addr.to_string(), listener.index), k);
    }
}

/// Adds a decoder's counters to the metrics, per exporter address and protocol.
fn add_decode_stats(m: &mut State, stats: &DecodeStats) {
    for (key, c) in stats.iter() {
        let e = m
            .exporters
            .entry((key.exporter.ip().to_string(), Protocol::label(c.protocol)))
            .or_default();
        e.add(c);
        for (reason, n) in c.errors.iter() {
            *m.decode_errors.entry(reason.to_string()).or_default() += n;
        }
    }
}

/// The first argument: the queue of record batches, and where emptied ones go back; `edges`: the
/// batch of edges and who takes them, once per batch.
#[allow(clippy::too_many_arguments)]
fn enrich_loop(
    (rx, spare): (Receiver<Vec<FlowRecord>>, &Pool<Vec<FlowRecord>>),
    mut enricher: Enricher,
    attributor: &(dyn Attributor + Send + Sync),
    (mut sink, mut es): (Option<NdjsonSink>, Option<ElasticsearchSink>),
    (cluster_name, kubernetes): (Option<String>, bool),
    (mut edges, mut consumers): (EdgeBatch, Vec<Box<dyn EdgeConsumer>>),
    depth: &AtomicU64,
    metrics: &Metrics,
) -> RunTotals {
    let mut totals = RunTotals::default();
    let mut next_tick = Instant::now();
    // Write failures (a full disk, a closed pipe) are logged once, then at most once per ten seconds.
    let mut failures = Throttle::default();
    let mut published = enricher.stats();
    let counting = !consumers.is_empty();
    loop {
        let batch = match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(b) => Some(b),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if let Some(mut records) = batch {
            totals.records += records.len() as u64;
            depth.fetch_sub(records.len() as u64, Ordering::Relaxed);
            let ctx = Context {
                created_ms: now_ms(),
                cluster_name: cluster_name.as_deref(),
                data_stream_namespace: None,
                kubernetes,
                exporter_names: None,
            };
            // Each flow is encoded as soon as it is enriched: collecting them first moved every flow
            // (some 400 octets) once more, out of cache by the time it was encoded. Looking up a whole
            // batch's endpoints first, for their misses to overlap, showed no gain beyond this
            // machine's noise (bench/COLLECTOR.md); a prefetch of the duplicate-table bucket of the
            // record after next, which does not hold the CPU up as a load does, did gain.
            let mut rest = records.drain(..);
            while let Some(r) = rest.next() {
                if let Some(ahead) = rest.as_slice().get(1) {
                    enricher.prefetch(ahead);
                }
                let Some(flow) = enricher.enrich(r, attributor) else {
                    continue;
                };
                totals.documents += 1;
                if counting {
                    edges.add_flow(&flow);
                }
                if let Some(Err(e)) = sink.as_mut().map(|s| s.write_one(&flow, &ctx))
                    && let Some(n) = failures.hit(1)
                {
                    tracing::error!(
                        "ndjson: {e} ({n} failed writes since the last report; documents stay buffered up to {} MiB)",
                        crate::sinks::ndjson::MAX_PENDING >> 20
                    );
                }
                if let Some(es) = es.as_mut() {
                    es.write_one(&flow, &ctx);
                }
            }
            drop(rest);
            spare.put(records);
            if counting {
                edges.flush(now_ms(), &mut consumers);
            }
        }
        if next_tick.elapsed() >= Duration::from_secs(1) {
            next_tick = Instant::now();
            if counting {
                // Nothing to add, but the consumers' clocks move on (series expire).
                edges.flush(now_ms(), &mut consumers);
            }
            enricher.expire(now_ms());
            if let Some(s) = sink.as_mut() {
                let _ = s.flush();
            }
            if let Some(es) = es.as_mut() {
                es.flush();
            }
            publish_enrich(
                &enricher,
                &mut published,
                sink.as_ref(),
                depth.load(Ordering::Relaxed),
                metrics,
            );
        }
    }
    if let Some(es) = es {
        // Requests in flight finish within the shutdown timeout; the rest goes to the spool.
        es.finish();
    }
    if let Some(s) = sink {
        let end = s.finish();
        if let Some(e) = &end.error {
            tracing::info!("ndjson: {e}");
        }
        if end.dropped + end.unwritten > 0 {
            tracing::error!(
                "ndjson: {} documents not written: {} dropped while writes failed, {} refused at exit",
                end.dropped + end.unwritten,
                end.dropped,
                end.unwritten
            );
        }
        publish_sink(&mut metrics.lock(), end.written, end.dropped);
        // What reached the output, not what was made: the closing line must not claim documents a
        // failing disk refused.
        totals.documents = end.written;
    }
    totals
}

fn publish_enrich(
    enricher: &Enricher,
    published: &mut crate::enrich::EnrichStats,
    sink: Option<&NdjsonSink>,
    depth: u64,
    metrics: &Metrics,
) {
    let now = enricher.stats();
    let mut m = metrics.lock();
    m.enrichment_misses += now.misses - published.misses;
    m.duplicates += now.duplicates - published.duplicates;
    m.duplicates_untracked += now.untracked - published.untracked;
    m.nat_events += now.nat_events - published.nat_events;
    m.queue_depth = depth;
    if let Some(s) = sink {
        publish_sink(&mut m, s.written_documents(), s.dropped_documents());
    }
    *published = now;
}

/// The NDJSON sink's totals so far: documents written, and dropped for want of a working target.
fn publish_sink(m: &mut State, written: u64, dropped: u64) {
    m.documents.insert("ndjson", written);
    m.sink_failures.insert(("ndjson", "backlog_full"), dropped);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::StatsKey;

    #[test]
    fn decode_counters_reach_the_metrics_lost_datagrams_included() {
        let mut stats = DecodeStats::default();
        let key = |port, domain| StatsKey {
            exporter: std::net::SocketAddr::from(([192, 0, 2, 1], port)),
            observation_domain: Some(domain),
        };
        // Two Source IDs of one v9 exporter, and a second source port of the same address.
        for (k, lost) in [(key(2055, 1), 3), (key(2055, 2), 1), (key(2056, 1), 2)] {
            let c = stats.entry(k);
            c.protocol = Some(Protocol::NetflowV9);
            c.datagrams = 10;
            c.records = 100;
            c.lost_datagrams = lost;
            c.errors.add("truncated", 1);
        }
        let mut m = State::default();
        add_decode_stats(&mut m, &stats);
        add_decode_stats(&mut m, &stats);
        let e = &m.exporters[&("192.0.2.1".to_string(), "netflow_v9")];
        assert_eq!((e.datagrams, e.records), (60, 600));
        assert_eq!((e.lost_datagrams, e.lost_records), (12, 0));
        assert_eq!(m.decode_errors["truncated"], 6);
    }
}
