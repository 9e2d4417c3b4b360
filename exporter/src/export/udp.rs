//! Sends finished messages to every collector over UDP. Send errors are counted and logged at most once
//! per collector every ten seconds; they never stop the probe.

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
    /// Sends that failed.
    pub errors: u64,
}

struct Target {
    socket: UdpSocket,
    stats: SendStats,
    /// Failures are logged once, then at most once per ten seconds.
    log: Throttle,
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
                log: Throttle::default(),
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
                    if let Some(n) = t.log.hit(1) {
                        eprintln!(
                            "podflow-exporter: sending to collector {} failed ({n} failures since the last report, {} in all): {e}",
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
