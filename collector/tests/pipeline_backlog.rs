//! The running pipeline when its sink stalls or fails. A stalled enrich stage (as behind a disk that
//! stops): decoded records wait up to the backlog, batches past it are dropped and counted, and every
//! record is either written once the stall ends or counted as dropped, none lost without a count. A
//! sink that fails (a full disk): the run's totals count what reached the output, not what was made.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{self, Write};
use std::net::UdpSocket;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use podflow_collector::enrich::Attributor;
use podflow_collector::k8s::Query;
use podflow_collector::metrics::Metrics;
use podflow_collector::model::K8sEndpoint;
use podflow_collector::pipeline::{self, PipelineConfig};
use podflow_collector::receive;
use podflow_collector::sinks::ndjson::{NdjsonSink, Target};

/// An attributor whose first lookup waits until the test lets it go: the enrich thread stalls with
/// its first batch in hand.
struct Stalled(Mutex<Option<Receiver<()>>>);

impl Attributor for Stalled {
    fn attribute(&self, _: &Query) -> Option<Arc<K8sEndpoint>> {
        let wait = self.0.lock().ok().and_then(|mut g| g.take());
        if let Some(rx) = wait {
            let _ = rx.recv();
        }
        None
    }
}

/// A NetFlow v5 export packet of 30 TCP records, numbered from `sequence`, source ports from `port`.
fn v5(sequence: u32, port: u16) -> Vec<u8> {
    let mut d = Vec::with_capacity(24 + 30 * 48);
    d.extend_from_slice(&5u16.to_be_bytes());
    d.extend_from_slice(&30u16.to_be_bytes());
    d.extend_from_slice(&100_000u32.to_be_bytes()); // sysUptime
    d.extend_from_slice(&1_800_000_000u32.to_be_bytes());
    d.extend_from_slice(&0u32.to_be_bytes());
    d.extend_from_slice(&sequence.to_be_bytes());
    d.extend_from_slice(&[0, 0, 0, 0]); // engine type and id, sampling
    for i in 0..30u16 {
        d.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2, 0, 0, 0, 0]); // src, dst, next hop
        d.extend_from_slice(&[0, 1, 0, 2]); // interfaces
        d.extend_from_slice(&3u32.to_be_bytes()); // packets
        d.extend_from_slice(&180u32.to_be_bytes()); // octets
        d.extend_from_slice(&90_000u32.to_be_bytes()); // first
        d.extend_from_slice(&99_000u32.to_be_bytes()); // last
        d.extend_from_slice(&(port + i).to_be_bytes());
        d.extend_from_slice(&443u16.to_be_bytes());
        d.extend_from_slice(&[0, 0x1b, 6, 0, 0, 0, 0, 0, 24, 24, 0, 0]);
    }
    d
}

/// Sends `datagrams` v5 packets of 30 records each to `to`; returns the records sent.
fn send(to: std::net::SocketAddr, datagrams: u32) -> u64 {
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..datagrams {
        sender.send_to(&v5(i * 30, (i as u16) * 30 + 1024), to).unwrap();
    }
    u64::from(datagrams) * 30
}

/// Waits (bounded) until the decode threads have published `records` decoded records.
fn wait_decoded(metrics: &Metrics, records: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let decoded = || metrics.lock().exporters.values().map(|c| c.records).sum::<u64>();
    while decoded() < records {
        assert!(
            Instant::now() < deadline,
            "decoded {} of {records} records",
            decoded()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_stalled_enrich_stage_queues_up_to_the_backlog_and_counts_what_it_dropped() {
    let (listeners, _) = receive::bind("127.0.0.1:0".parse().unwrap(), 1, 4 << 20).unwrap();
    let to = listeners[0].addr;
    let (release, stalled) = channel();
    let metrics = Metrics::default();
    let stop = Arc::new(AtomicBool::new(false));
    let cfg = PipelineConfig {
        backlog_records: 1024,
        ..PipelineConfig::default()
    };
    let attributor = Arc::new(Stalled(Mutex::new(Some(stalled))));
    let (m, s) = (metrics.clone(), stop.clone());
    let running = std::thread::spawn(move || pipeline::run(listeners, cfg, attributor, None, m, s));

    let sent = send(to, 200);
    // Every record decoded (the decode thread publishes once a second), while enrichment still stalls.
    wait_decoded(&metrics, sent);
    let dropped = metrics.lock().dropped_records;
    assert!(dropped > 0, "the backlog of 1024 records held all {sent}");
    release.send(()).unwrap();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let totals = running.join().unwrap().unwrap();
    assert_eq!(
        totals.documents + dropped,
        sent,
        "written and dropped add up to what came"
    );
    // The stalled batch in hand (at most one receive batch, 64 datagrams) and the backlog behind it.
    assert!(
        totals.documents <= 64 * 30 + 1024,
        "{} documents got past a backlog of 1024",
        totals.documents
    );
    assert_eq!(
        metrics.lock().dropped_records,
        dropped,
        "nothing dropped after the stall"
    );
}

/// A disk that is full.
struct Full;

impl Write for Full {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(io::ErrorKind::StorageFull, "no space left"))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_full_disk_leaves_the_totals_at_what_was_written() {
    let (listeners, _) = receive::bind("127.0.0.1:0".parse().unwrap(), 1, 4 << 20).unwrap();
    let to = listeners[0].addr;
    let metrics = Metrics::default();
    let stop = Arc::new(AtomicBool::new(false));
    let sink = NdjsonSink::with_writer(Target::Stdout, Box::new(Full));
    let (m, s) = (metrics.clone(), stop.clone());
    let running = std::thread::spawn(move || {
        let none = Arc::new(podflow_collector::enrich::NoMetadata);
        pipeline::run(listeners, PipelineConfig::default(), none, Some(sink), m, s)
    });
    let sent = send(to, 100);
    wait_decoded(&metrics, sent);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let totals = running.join().unwrap().unwrap();
    assert_eq!(totals.records, sent, "every record reached the enrich stage");
    assert_eq!(totals.documents, 0, "none reached the output");
    assert_eq!(metrics.lock().documents.get("ndjson"), Some(&0));
}
