//! Capture sources (the I/O shell around the engine): a pcap file read as fast as possible, or live
//! interfaces through libpcap, one thread per interface, picked by name or glob pattern and re-scanned
//! so interfaces that appear later (new pods' veths) are captured too.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::flow::EndReason;
use crate::metrics::{KernelStats, Metrics};
use crate::parse::{self, LinkType, PacketInfo, Skip};
use crate::probe::{Engine, Totals, ts_ms, wall_ms};

/// A packet's capture time in Unix milliseconds. (`timeval` fields are i64 here but narrower on some
/// targets, hence the conversions.)
#[allow(clippy::useless_conversion)]
fn packet_ms(h: &pcap::PacketHeader) -> u64 {
    ts_ms(i64::from(h.ts.tv_sec), i64::from(h.ts.tv_usec))
}

/// Why capture could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// libpcap refused to open or read the source.
    #[error("{what}: {source}")]
    Pcap {
        /// The file or interface.
        what: String,
        /// libpcap's error.
        source: pcap::Error,
    },
    /// The source's link type is not one podflow parses.
    #[error("{what}: link type {dlt} is not supported (Ethernet, Linux cooked SLL/SLL2 and raw IP are)")]
    LinkType {
        /// The file or interface.
        what: String,
        /// The DLT number.
        dlt: i32,
    },
    /// A named interface does not exist.
    #[error("interface {0} not found (see `ip link`); use a pattern such as 'veth*' to wait for interfaces")]
    NoSuchInterface(String),
    /// An interface pattern is not a valid glob.
    #[error("interface pattern {0:?}: {1}")]
    Pattern(String, glob::PatternError),
}

/// Reads a capture file through the engine as fast as possible; the packets' timestamps are the clock.
/// Every open flow is exported at the end of the file, or when `stop` is raised.
pub fn run_file(path: &Path, engine: &mut Engine, stop: &AtomicBool) -> Result<Totals, CaptureError> {
    let what = path.display().to_string();
    let mut cap = pcap::Capture::from_file(path).map_err(|source| CaptureError::Pcap {
        what: what.clone(),
        source,
    })?;
    let dlt = cap.get_datalink().0;
    let link = LinkType::from_dlt(dlt).ok_or(CaptureError::LinkType {
        what: what.clone(),
        dlt,
    })?;
    let mut result = Ok(());
    while !stop.load(Ordering::Relaxed) {
        match cap.next_packet() {
            Ok(p) => {
                let ts = packet_ms(p.header);
                engine.frame(link, p.data, ts);
            }
            Err(pcap::Error::NoMorePackets) => break,
            Err(source) => {
                // A cut file still yields the flows read so far.
                result = Err(CaptureError::Pcap {
                    what: what.clone(),
                    source,
                });
                break;
            }
        }
    }
    let totals = engine.finish(EndReason::ForcedEnd);
    result.map(|()| totals)
}

/// Live capture settings.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    /// Interface names or glob patterns.
    pub interfaces: Vec<String>,
    /// BPF filter applied in the kernel.
    pub filter: Option<String>,
    /// Bytes kept of each packet (headers only).
    pub snaplen: i32,
    /// Kernel capture buffer per interface, in bytes.
    pub buffer_size: i32,
    /// Promiscuous mode.
    pub promisc: bool,
    /// Which packets of an interface to see.
    pub direction: pcap::Direction,
    /// How often interfaces are listed again to pick up new ones.
    pub rescan: Duration,
}

/// Packets parsed by a capture thread, with their capture times.
struct Batch {
    packets: Vec<(PacketInfo, u64)>,
    skipped: Vec<(Skip, u64)>,
    read: u64,
}

/// Captures the configured interfaces until `stop` is raised, then exports every open flow.
pub fn run_live(
    cfg: LiveConfig,
    engine: &mut Engine,
    metrics: &Metrics,
    stop: &Arc<AtomicBool>,
) -> Result<Totals, CaptureError> {
    let patterns = cfg
        .interfaces
        .iter()
        .map(|p| glob::Pattern::new(p).map_err(|e| CaptureError::Pattern(p.clone(), e)))
        .collect::<Result<Vec<_>, _>>()?;
    let literal_only = cfg.interfaces.iter().all(|p| !p.contains(['*', '?', '[']));
    let cfg = Arc::new(cfg);
    let active: Arc<Mutex<HashSet<String>>> = Arc::default();
    let (tx, rx): (SyncSender<Batch>, Receiver<Batch>) = sync_channel(64);
    let mut next_scan = Instant::now();
    let mut first_scan = true;
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() >= next_scan {
            next_scan = Instant::now() + cfg.rescan;
            let found = scan(&patterns, &cfg, &active, &tx, metrics, stop);
            if first_scan && literal_only {
                for name in &cfg.interfaces {
                    if !found.contains(name) {
                        return Err(CaptureError::NoSuchInterface(name.clone()));
                    }
                }
            }
            first_scan = false;
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(b) => feed(engine, b),
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
        }
        engine.tick(wall_ms());
    }
    // Capture threads see `stop` within their read timeout; take what they still send.
    drop(tx);
    while let Ok(b) = rx.recv_timeout(Duration::from_millis(500)) {
        feed(engine, b);
    }
    Ok(engine.finish(EndReason::ForcedEnd))
}

fn feed(engine: &mut Engine, b: Batch) {
    // Events queued before these packets were captured are read first, so the packets find them.
    engine.sync_conntrack(wall_ms());
    engine.count_read(b.read);
    for (why, ts) in b.skipped {
        engine.skipped(why, ts);
    }
    for (p, ts) in &b.packets {
        engine.packet(p, *ts);
    }
}

/// Starts a capture thread for every interface that matches and is not captured yet; returns the names
/// of all interfaces that exist.
fn scan(
    patterns: &[glob::Pattern],
    cfg: &Arc<LiveConfig>,
    active: &Arc<Mutex<HashSet<String>>>,
    tx: &SyncSender<Batch>,
    metrics: &Metrics,
    stop: &Arc<AtomicBool>,
) -> HashSet<String> {
    let devices = match pcap::Device::list() {
        Ok(d) => d,
        Err(e) => {
            tracing::error!("listing interfaces failed: {e}");
            return HashSet::new();
        }
    };
    let names: HashSet<String> = devices.into_iter().map(|d| d.name).collect();
    for name in &names {
        if !patterns.iter().any(|p| p.matches(name)) {
            continue;
        }
        let mut set = active.lock().unwrap_or_else(|e| e.into_inner());
        if !set.insert(name.clone()) {
            continue;
        }
        drop(set);
        let (name2, cfg2, active2, tx2, metrics2, stop2) = (
            name.clone(),
            cfg.clone(),
            active.clone(),
            tx.clone(),
            metrics.clone(),
            stop.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name(format!("capture-{name}"))
            .spawn(move || {
                capture_thread(&name2, &cfg2, &tx2, &metrics2, &stop2);
                active2.lock().unwrap_or_else(|e| e.into_inner()).remove(&name2);
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start capture of {name}: {e}");
            active.lock().unwrap_or_else(|e| e.into_inner()).remove(name);
        }
    }
    metrics.lock().interfaces = active.lock().map(|s| s.len() as u64).unwrap_or(0);
    names
}

fn open(name: &str, cfg: &LiveConfig) -> Result<(pcap::Capture<pcap::Active>, LinkType), CaptureError> {
    let err = |source| CaptureError::Pcap {
        what: name.to_string(),
        source,
    };
    // Non-blocking: on Linux a blocking read does not return before a packet arrives, whatever the
    // timeout (libpcap keeps polling until then), so on an interface gone quiet the packets already read
    // but not yet handed to the engine would stay in the thread's batch, and the thread would never see
    // `stop`. The capture thread waits for the socket itself, with a timeout (see `wait_readable`).
    let mut cap = pcap::Capture::from_device(name)
        .map_err(err)?
        .promisc(cfg.promisc)
        .snaplen(cfg.snaplen)
        .buffer_size(cfg.buffer_size)
        .timeout(READ_WAIT_MS)
        .open()
        .map_err(err)?
        .setnonblock()
        .map_err(err)?;
    cap.direction(cfg.direction).map_err(err)?;
    if let Some(f) = &cfg.filter {
        cap.filter(f, true).map_err(err)?;
    }
    let dlt = cap.get_datalink().0;
    let link = LinkType::from_dlt(dlt).ok_or(CaptureError::LinkType {
        what: name.to_string(),
        dlt,
    })?;
    Ok((cap, link))
}

/// Longest wait for packets before a capture thread checks `stop` and hands over a partial batch, in
/// milliseconds (also libpcap's buffering timeout).
const READ_WAIT_MS: i32 = 100;

/// Waits until the capture's socket has packets, at most [`READ_WAIT_MS`]. An error (a signal, say) only
/// ends the wait early: the next read reports real trouble.
fn wait_readable(cap: &pcap::Capture<pcap::Active>) {
    let timeout = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: i64::from(READ_WAIT_MS) * 1_000_000,
    };
    let mut fds = [rustix::event::PollFd::new(cap, rustix::event::PollFlags::IN)];
    let _ = rustix::event::poll(&mut fds, Some(&timeout));
}

fn capture_thread(
    name: &str,
    cfg: &LiveConfig,
    tx: &SyncSender<Batch>,
    metrics: &Metrics,
    stop: &AtomicBool,
) {
    let (mut cap, link) = match open(name, cfg) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("cannot capture {e}");
            return;
        }
    };
    tracing::info!("capturing {name} ({})", link.name());
    let new_batch = || Batch {
        packets: Vec::with_capacity(256),
        skipped: Vec::new(),
        read: 0,
    };
    let mut batch = new_batch();
    let mut last_send = Instant::now();
    let mut last_stats = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match cap.next_packet() {
            Ok(p) => {
                let ts = packet_ms(p.header);
                batch.read += 1;
                match parse::parse(link, p.data) {
                    Ok(info) => batch.packets.push((info, ts)),
                    Err(why) => batch.skipped.push((why, ts)),
                }
            }
            // Nothing to read now.
            Err(pcap::Error::TimeoutExpired) => wait_readable(&cap),
            Err(e) => {
                tracing::error!("stopped capturing {name}: {e}");
                break;
            }
        }
        if batch.read >= 256 || (batch.read > 0 && last_send.elapsed() >= Duration::from_millis(100)) {
            // Blocks when the engine falls behind: the kernel buffer then fills and drops are counted.
            if tx.send(std::mem::replace(&mut batch, new_batch())).is_err() {
                return;
            }
            last_send = Instant::now();
        }
        if last_stats.elapsed() >= Duration::from_secs(1) {
            last_stats = Instant::now();
            if let Ok(s) = cap.stats() {
                let k = KernelStats {
                    dropped: u64::from(s.dropped),
                    if_dropped: u64::from(s.if_dropped),
                };
                metrics.lock().kernel.insert(name.to_string(), k);
            }
        }
    }
    if batch.read > 0 {
        let _ = tx.send(batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    /// A capture thread on an interface that goes quiet still hands over every packet it read, and still
    /// stops when told (needs root, to capture on `lo`).
    #[test]
    fn capture_thread_flushes_and_stops_when_the_interface_is_idle() {
        if !pcap::Device::list().is_ok_and(|d| d.iter().any(|d| d.name == "lo"))
            || pcap::Capture::from_device("lo").and_then(|c| c.open()).is_err()
        {
            eprintln!("!!!!! SKIPPED: capturing on lo needs root !!!!!");
            return;
        }
        let rx_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = rx_sock.local_addr().unwrap().port();
        let cfg = LiveConfig {
            interfaces: vec!["lo".into()],
            // Only this test's datagrams, whatever else runs on lo.
            filter: Some(format!("udp and dst port {port}")),
            snaplen: 128,
            buffer_size: 1 << 20,
            promisc: false,
            direction: pcap::Direction::InOut,
            rescan: Duration::from_secs(1),
        };
        let (tx, rx) = sync_channel(64);
        let stop = Arc::new(AtomicBool::new(false));
        let (metrics, stop2) = (Metrics::default(), stop.clone());
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            capture_thread("lo", &cfg, &tx, &metrics, &stop2);
            let _ = done_tx.send(());
        });
        // The capture is open once a datagram sent now is seen; until then, send again.
        let tx_sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut read = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        while read == 0 {
            assert!(Instant::now() < deadline, "the capture never saw a datagram");
            tx_sock.send_to(b"probe", ("127.0.0.1", port)).unwrap();
            if let Ok(b) = rx.recv_timeout(Duration::from_millis(200)) {
                read += b.read;
            }
        }
        // Two datagrams back to back, then silence: the second arrives within the batching interval of
        // the first, so only a read timeout on the idle interface hands it over.
        let before = read;
        tx_sock.send_to(b"one", ("127.0.0.1", port)).unwrap();
        tx_sock.send_to(b"two", ("127.0.0.1", port)).unwrap();
        let mut after = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        while after < 2 {
            let left = deadline.saturating_duration_since(Instant::now());
            let b = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("got {after} of 2 packets from an idle interface"));
            after += b.read;
        }
        assert!(before > 0 && after == 2, "read {after} packets, sent 2");
        stop.store(true, Ordering::Relaxed);
        done_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the capture thread of an idle interface did not stop");
    }
}
