//! Receive: UDP sockets for IPFIX and NetFlow (the I/O shell in front of the decoders).
//!
//! Each listen address gets a group of sockets bound with SO_REUSEPORT: the kernel hashes each
//! exporter's address and port to one socket of the group, so one exporter's templates and sequence
//! numbers stay with one decoder. Receive buffers are enlarged (with a warning when the kernel caps the
//! size), and the kernel's per-socket drop counters are read from /proc so overruns show in metrics.
//! A receive thread only reads datagrams and hands them on in batches; when the next stage is full the
//! batch is dropped and counted, so nothing downstream can stall the socket.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::{Duration, Instant};

use podflow_telemetry::Throttle;
use socket2::{Domain, Protocol, Socket, Type};

use crate::pool::Pool;

/// How long a receive thread sleeps between non-blocking reads while datagrams keep coming: the
/// latency it adds (nothing next to a flow's own active timeout of a minute or so), and the receive
/// buffer must hold this long of traffic (5 ms at a gigabit per second is 625 KB; the buffer asked for is
/// 32 MiB). Each wake-up costs a sleep, a timer and two context switches: at 1 ms, two sockets woke
/// 2,000 times a second under the benchmark's stream.
pub const COALESCE: Duration = Duration::from_millis(5);

/// Datagrams received together, with their sources and arrival time (Unix milliseconds).
#[derive(Debug, Default)]
pub struct Batch {
    /// All datagrams back to back.
    pub bytes: Vec<u8>,
    /// (exporter, start, end) of each datagram in `bytes`.
    pub datagrams: Vec<(SocketAddr, usize, usize)>,
    /// Arrival time of the batch's first datagram.
    pub received_ms: u64,
}

impl Batch {
    /// Empties the batch, keeping its buffers for the next one.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.datagrams.clear();
        self.received_ms = 0;
    }

    /// The datagrams: (exporter, payload).
    pub fn iter(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        self.datagrams
            .iter()
            .map(|&(from, a, b)| (from, &self.bytes[a..b]))
    }
}

/// Counters of one socket.
#[derive(Debug, Default)]
pub struct SocketStats {
    /// Datagrams read.
    pub datagrams: AtomicU64,
    /// Octets read.
    pub octets: AtomicU64,
    /// Datagrams dropped because decoding fell behind.
    pub dropped_behind: AtomicU64,
}

/// One bound socket.
pub struct Listener {
    /// The address it is bound to.
    pub addr: SocketAddr,
    /// Its place in its SO_REUSEPORT group (0 for the first socket of an address).
    pub index: usize,
    socket: UdpSocket,
    inode: u64,
    /// Its counters.
    pub stats: Arc<SocketStats>,
}

/// Binds `count` sockets on `addr` with SO_REUSEPORT and a receive buffer of `rcvbuf` octets.
/// Returns the sockets and, when the kernel granted less buffer than asked, a warning to log.
pub fn bind(addr: SocketAddr, count: usize, rcvbuf: usize) -> io::Result<(Vec<Listener>, Option<String>)> {
    let mut out = Vec::new();
    let mut warning = None;
    let mut bound = addr;
    for index in 0..count.max(1) {
        let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        if addr.is_ipv6() {
            // Separate IPv4 and IPv6 listeners: a v6 socket must not claim the v4 port.
            s.set_only_v6(true)?;
        }
        s.set_reuse_port(true)?;
        s.set_recv_buffer_size(rcvbuf)?;
        // Linux reports twice the usable size it granted.
        let granted = s.recv_buffer_size()? / 2;
        if granted < rcvbuf && warning.is_none() {
            warning = Some(format!(
                "{addr}: receive buffer capped at {granted} octets (asked {rcvbuf}); raise net.core.rmem_max"
            ));
        }
        // A port-0 group must share the port the first socket got.
        s.bind(&bound.into())?;
        let socket: UdpSocket = s.into();
        bound = socket.local_addr()?;
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        let inode = socket_inode(&socket).unwrap_or(0);
        out.push(Listener {
            addr: bound,
            index,
            socket,
            inode,
            stats: Arc::default(),
        });
    }
    Ok((out, warning))
}

fn socket_inode(s: &UdpSocket) -> io::Result<u64> {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", s.as_raw_fd()))?;
    // "socket:[12345]"
    let text = link.to_string_lossy();
    text.trim_start_matches("socket:[")
        .trim_end_matches(']')
        .parse()
        .map_err(|_| io::Error::other(format!("unexpected socket link {text}")))
}

impl Listener {
    /// The kernel's drop counter for this socket (receive buffer overruns), from /proc/net/udp{,6}.
    pub fn kernel_drops(&self) -> Option<u64> {
        let file = if self.addr.is_ipv6() {
            "/proc/net/udp6"
        } else {
            "/proc/net/udp"
        };
        let text = std::fs::read_to_string(file).ok()?;
        kernel_drops_in(&text, self.inode)
    }

    /// Reads datagrams until `stop` is raised, handing batches to `next`. A batch goes out when it holds
    /// 64 datagrams, 20 ms after its first one, or when the socket has nothing more to read.
    ///
    /// While datagrams keep coming the socket is read without blocking, everything it holds at once, and
    /// the thread then sleeps [`COALESCE`] before reading again: one wake-up per [`COALESCE`] rather than
    /// one per datagram, which at tens of thousands of datagrams a second was most of the receive
    /// thread's CPU time. When a read after the sleep finds nothing, the socket goes back to blocking
    /// reads, so an idle collector sleeps until data comes.
    ///
    /// Batches come from `spare` (emptied ones the decoder handed back) when it has any.
    pub fn run(
        &self,
        next: &SyncSender<Batch>,
        spare: &Pool<Batch>,
        stop: &AtomicBool,
        now_ms: impl Fn() -> u64,
    ) {
        let mut buf = vec![0u8; 65536];
        let mut batch = spare.take();
        let mut first_at = Instant::now();
        let mut nonblocking = false;
        // Datagrams read since the last sleep, in non-blocking mode.
        let mut got = false;
        // A failing socket fails on every read: logged once, then once per ten seconds.
        let mut failures = Throttle::default();
        while !stop.load(Ordering::Relaxed) {
            let mut idle = false;
            match self.socket.recv_from(&mut buf) {
                Ok((n, from)) => {
                    if batch.datagrams.is_empty() {
                        first_at = Instant::now();
                        batch.received_ms = now_ms();
                    }
                    let start = batch.bytes.len();
                    batch.bytes.extend_from_slice(&buf[..n]);
                    batch.datagrams.push((from, start, start + n));
                    self.stats.datagrams.fetch_add(1, Ordering::Relaxed);
                    self.stats.octets.fetch_add(n as u64, Ordering::Relaxed);
                    got = true;
                    if !nonblocking {
                        nonblocking = self.socket.set_nonblocking(true).is_ok();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && nonblocking => {
                    if got {
                        got = false;
                        std::thread::sleep(COALESCE);
                    } else {
                        // Nothing came during a sleep: block on the socket again.
                        nonblocking = self.socket.set_nonblocking(false).is_err();
                        idle = true;
                    }
                }
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if let Some(n) = failures.hit(1) {
                        tracing::error!(
                            "receive on {} failed: {e} ({n} failed reads since the last report)",
                            self.addr
                        );
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            let full = batch.datagrams.len() >= 64;
            let due =
                !batch.datagrams.is_empty() && (idle || first_at.elapsed() >= Duration::from_millis(20));
            if full || due {
                let n = batch.datagrams.len() as u64;
                match next.try_send(std::mem::replace(&mut batch, spare.take())) {
                    Ok(()) => {}
                    Err(TrySendError::Full(mut dropped)) => {
                        self.stats.dropped_behind.fetch_add(n, Ordering::Relaxed);
                        dropped.clear();
                        spare.put(dropped);
                    }
                    Err(TrySendError::Disconnected(_)) => return,
                }
            }
        }
        if !batch.datagrams.is_empty() {
            let _ = next.try_send(batch);
        }
    }
}

/// The drops column of the /proc/net/udp line of socket `inode`.
fn kernel_drops_in(text: &str, inode: u64) -> Option<u64> {
    text.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
        let ino: u64 = cols.get(9)?.parse().ok()?;
        if ino != inode {
            return None;
        }
        cols.get(12)?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::sync_channel;

    #[test]
    fn reuseport_group_receives_and_batches() {
        let (ls, _warning) = bind("127.0.0.1:0".parse().unwrap(), 2, 1 << 20).unwrap();
        assert_eq!(ls.len(), 2);
        assert_eq!(ls[0].addr, ls[1].addr, "one port for the group");
        let port = ls[0].addr.port();
        let (tx, rx) = sync_channel(4);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let l = ls.into_iter().next().unwrap();
        // Only the first socket is read; the exporter socket below may hash to either, so send until
        // the first socket has seen datagrams from some source port.
        let handle = std::thread::spawn(move || {
            l.run(&tx, &Pool::new(1), &stop2, || 42);
            l.stats.datagrams.load(Ordering::Relaxed)
        });
        let mut got = None;
        for _ in 0..64 {
            let exporter = UdpSocket::bind("127.0.0.1:0").unwrap();
            exporter.send_to(b"\x00\x0ahello", ("127.0.0.1", port)).unwrap();
            if let Ok(b) = rx.recv_timeout(Duration::from_millis(300)) {
                got = Some(b);
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        let b = got.expect("a batch from the first socket");
        assert_eq!(b.received_ms, 42);
        assert_eq!(b.iter().next().unwrap().1, b"\x00\x0ahello");
        assert!(handle.join().unwrap() >= 1);
    }

    #[test]
    fn drops_are_read_from_proc_format() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
                    1: 0100007F:1283 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 777 2 0000000000000000 31\n";
        assert_eq!(kernel_drops_in(text, 777), Some(31));
        assert_eq!(kernel_drops_in(text, 778), None);
    }
}
