//! Sends finished messages to every collector over UDP. Send errors are counted and logged at most once
//! per collector every ten seconds; they never stop the probe.
//!
//! A collector that is not listening answers each datagram with an ICMP port unreachable. On a plain
//! connected socket the kernel turns that into ECONNREFUSED on the *next* send, which then fails too, and
//! nobody learns which message was lost. The sockets here set `IP_RECVERR` (`IPV6_RECVERR`): each ICMP
//! error is queued with the head of the datagram it refers to, which is read back (`MSG_ERRQUEUE`) before
//! every send and matched against the messages sent recently. So the failure counters count exactly the
//! messages (and their data records) that the network refused or that could not be sent at all, each
//! once; a send that fails is retried once, at once. What they cannot count: datagrams lost without an
//! ICMP error (a collector host that is down, a firewall that drops, a full receive buffer, ICMP rate
//! limits on a remote path) and errors quoting less than the message's first 48 octets (or all of a shorter message) (counted as failed
//! messages of unknown record count).

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};

use podflow_telemetry::Throttle;

/// Per-collector send counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendStats {
    /// The collector as configured.
    pub collector: String,
    /// Messages sent.
    pub messages: u64,
    /// Octets sent.
    pub octets: u64,
    /// Sends that failed (each attempt, the retry included).
    pub errors: u64,
    /// Messages that did not reach the collector: refused by it (ICMP error) or not sent after the retry.
    pub failed_messages: u64,
    /// Data records of the failed messages.
    pub failed_records: u64,
}

/// How many recent messages are kept to match ICMP errors against.
const RECENT: usize = 4096;
/// How many leading octets of a message identify it.
const HEAD: usize = 48;

/// A message sent recently: its sequence number and leading octets.
struct Sent {
    seq: u32,
    head: [u8; HEAD],
    /// Octets of `head` that hold the message (all of it when shorter than `HEAD`).
    head_len: usize,
    /// Already counted as failed.
    failed: bool,
}

struct Target {
    socket: UdpSocket,
    stats: SendStats,
    /// Failures are logged once, then at most once per ten seconds.
    log: Throttle,
    /// Recent messages, oldest first.
    recent: VecDeque<Sent>,
    /// The newest message failed: its records are known when the next one is sent.
    newest_failed: bool,
}

/// The collectors every message goes to.
pub struct Collectors {
    targets: Vec<Target>,
}

impl Collectors {
    /// Resolves each `HOST:PORT` and opens a UDP socket to it.
    pub fn connect(specs: &[String]) -> io::Result<Self> {
        let mut targets = Vec::new();
        for spec in specs {
            let addr: SocketAddr = spec
                .to_socket_addrs()
                .map_err(|e| io::Error::new(e.kind(), format!("collector {spec}: {e}")))?
                .next()
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, format!("collector {spec}: no address"))
                })?;
            let bind: SocketAddr = if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
                .parse()
                .map_err(|e| io::Error::other(format!("{e}")))?;
            let socket = UdpSocket::bind(bind)?;
            set_recverr(&socket, addr.is_ipv6())?;
            socket.connect(addr)?;
            let stats = SendStats {
                collector: spec.clone(),
                messages: 0,
                octets: 0,
                errors: 0,
                failed_messages: 0,
                failed_records: 0,
            };
            targets.push(Target {
                socket,
                stats,
                log: Throttle::default(),
                recent: VecDeque::with_capacity(RECENT),
                newest_failed: false,
            });
        }
        Ok(Collectors { targets })
    }

    /// Sends one message to every collector.
    pub fn send(&mut self, msg: &[u8]) {
        for t in &mut self.targets {
            t.drain_errors();
            t.remember(msg);
            let mut result = t.socket.send(msg);
            if let Err(e) = &result {
                t.stats.errors += 1;
                t.report(e);
                // The error may be an earlier message's ICMP error (already queued and counted
                // above or next time): this message was not sent, so it is tried once more.
                t.drain_errors();
                result = t.socket.send(msg);
            }
            match result {
                Ok(n) => {
                    t.stats.messages += 1;
                    t.stats.octets += n as u64;
                }
                Err(e) => {
                    t.stats.errors += 1;
                    t.report(&e);
                    let newest = t.recent.len() - 1;
                    t.fail(newest);
                }
            }
        }
    }

    /// Reads the ICMP errors queued since the last send, so the failure counters are current.
    pub fn poll_errors(&mut self) {
        for t in &mut self.targets {
            t.drain_errors();
        }
    }

    /// Counters per collector.
    pub fn stats(&self) -> impl Iterator<Item = &SendStats> {
        self.targets.iter().map(|t| &t.stats)
    }
}

impl Target {
    fn report(&mut self, e: &io::Error) {
        if let Some(n) = self.log.hit(1) {
            tracing::error!(
                "sending to collector {} failed ({n} failures since the last report, {} in all): {e}",
                self.stats.collector,
                self.stats.errors
            );
        }
    }

    /// Adds a message to the recent ones, settling the record count of a failed newest message.
    fn remember(&mut self, msg: &[u8]) {
        let seq = sequence(msg).unwrap_or(0);
        if self.newest_failed {
            if let Some(last) = self.recent.back() {
                self.stats.failed_records += u64::from(seq.wrapping_sub(last.seq));
            }
            self.newest_failed = false;
        }
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(Sent {
            seq,
            head: head(msg),
            head_len: msg.len().min(HEAD),
            failed: false,
        });
    }

    /// Counts message `i` of the recent ones as failed, once.
    fn fail(&mut self, i: usize) {
        let Some(sent) = self.recent.get_mut(i) else {
            return;
        };
        if sent.failed {
            return;
        }
        sent.failed = true;
        let seq = sent.seq;
        self.stats.failed_messages += 1;
        match self.recent.get(i + 1) {
            Some(next) => self.stats.failed_records += u64::from(next.seq.wrapping_sub(seq)),
            None => self.newest_failed = true,
        }
    }

    /// Reads every queued ICMP error and counts the message each one refers to as failed.
    fn drain_errors(&mut self) {
        let mut buf = [0u8; HEAD];
        // Bounded: the queue holds at most a socket buffer's worth of errors; stop after that many.
        for _ in 0..RECENT {
            let flags = rustix::net::RecvFlags::ERRQUEUE | rustix::net::RecvFlags::DONTWAIT;
            let n = match rustix::net::recv(&self.socket, &mut buf[..], flags) {
                Ok((n, _)) => n.min(HEAD),
                Err(_) => return,
            };
            let quoted = &buf[..n];
            // The newest match: a message is refused soon after it is sent.
            let found = (n >= 16)
                .then(|| {
                    self.recent
                        .iter()
                        .rposition(|s| s.head_len == n && s.head[..n] == *quoted)
                })
                .flatten();
            match found {
                Some(i) => self.fail(i),
                None => self.stats.failed_messages += 1,
            }
        }
    }
}

/// The sequence number of an IPFIX message.
fn sequence(msg: &[u8]) -> Option<u32> {
    let b = msg.get(8..12)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The leading octets of a message, zero-padded.
fn head(msg: &[u8]) -> [u8; HEAD] {
    let mut h = [0u8; HEAD];
    let n = msg.len().min(HEAD);
    h[..n].copy_from_slice(&msg[..n]);
    h
}

/// Asks the kernel to queue ICMP errors with the datagram they refer to.
fn set_recverr(socket: &UdpSocket, v6: bool) -> io::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    let r = if v6 {
        setsockopt(socket, sockopt::Ipv6RecvErr, &true)
    } else {
        setsockopt(socket, sockopt::Ipv4RecvErr, &true)
    };
    r.map_err(io::Error::from)
}
