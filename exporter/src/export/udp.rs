//! Sends finished messages to every collector over UDP. Send errors are counted and logged at most once
//! per collector every ten seconds; they never stop the probe.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

const LOG_EVERY: Duration = Duration::from_secs(10);

/// Per-collector send counters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendStats {
    /// The collector as configured.
    pub collector: String,
    /// Messages sent.
    pub messages: u64,
    /// Octets sent.
    pub octets: u64,
    /// Sends that failed.
    pub errors: u64,
}

struct Target {
    socket: UdpSocket,
    stats: SendStats,
    last_log: Option<Instant>,
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
            socket.connect(addr)?;
            let stats = SendStats {
                collector: spec.clone(),
                messages: 0,
                octets: 0,
                errors: 0,
            };
            targets.push(Target {
                socket,
                stats,
                last_log: None,
            });
        }
        Ok(Collectors { targets })
    }

    /// Sends one message to every collector.
    pub fn send(&mut self, msg: &[u8]) {
        for t in &mut self.targets {
            match t.socket.send(msg) {
                Ok(n) => {
                    t.stats.messages += 1;
                    t.stats.octets += n as u64;
                }
                Err(e) => {
                    t.stats.errors += 1;
                    if t.last_log.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
                        t.last_log = Some(Instant::now());
                        eprintln!(
                            "podflow-exporter: sending to collector {} failed ({} failures so far): {e}",
                            t.stats.collector, t.stats.errors
                        );
                    }
                }
            }
        }
    }

    /// Counters per collector.
    pub fn stats(&self) -> impl Iterator<Item = &SendStats> {
        self.targets.iter().map(|t| &t.stats)
    }
}
