//! nfdump's collector, `nfcapd`, run for a test: started on a loopback port (in a network namespace or
//! not), stopped so that it has stored every datagram it was sent, and its flows read back with `nfdump`.
//!
//! nfcapd repeats each datagram it reads (`-R`) to a socket of the test. That is how a test knows nfcapd
//! has taken its datagrams off the socket. nfcapd 1.7 reads a datagram, repeats it, and only processes it
//! on its next turn, after checking whether it was told to stop: a datagram read just before SIGTERM is
//! dropped. So [`Nfcapd::finish`] sends a header-only message last: once nfcapd has repeated it, it has
//! finished with every earlier datagram, and SIGTERM loses nothing.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use proto_ipfix::IpfixHeader;
use serde_json::Value;

use crate::netns::Netns;
use crate::peer::{self, PEER_TIMEOUT, PeerProcess};

/// Attempts at starting nfcapd outside a namespace: another program may take the free port between our
/// check and its bind.
const START_ATTEMPTS: usize = 3;

/// The port nfcapd listens on inside a fresh network namespace, where nothing else is bound.
const NETNS_PORT: u16 = 4739;

/// A running nfcapd.
pub struct Nfcapd {
    process: PeerProcess,
    port: u16,
    repeats: UdpSocket,
    flow_dir: PathBuf,
    buf: Vec<u8>,
}

impl Nfcapd {
    /// Starts `nfcapd` on 127.0.0.1 (inside `netns` when given), storing flows in `flow_dir` and logging
    /// to `log_dir`, and waits until it listens and has opened its output file.
    pub fn start(
        nfcapd: &Path,
        flow_dir: &Path,
        log_dir: &Path,
        netns: Option<&Netns>,
    ) -> anyhow::Result<Self> {
        let repeats = match netns {
            Some(ns) => ns.enter(|| Ok(UdpSocket::bind("127.0.0.1:0")?))?,
            None => UdpSocket::bind("127.0.0.1:0")?,
        };
        repeats.set_read_timeout(Some(PEER_TIMEOUT))?;
        let repeat_to = format!("127.0.0.1/{}", repeats.local_addr()?.port());
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let port = match netns {
                Some(_) => NETNS_PORT,
                None => peer::free_udp_port()?,
            };
            let mut cmd = match netns {
                Some(ns) => ns.command(nfcapd),
                None => Command::new(nfcapd),
            };
            cmd.args(["-b", "127.0.0.1", "-p", &port.to_string(), "-R", &repeat_to, "-w"])
                .arg(flow_dir);
            let mut process = PeerProcess::spawn("nfcapd", &mut cmd, log_dir)?;
            let bound = match netns {
                Some(ns) => peer::wait_until("nfcapd to bind its UDP port", PEER_TIMEOUT, || {
                    process.check_running()?;
                    ns.udp_port_bound(port)
                }),
                None => process.wait_udp_bound(port),
            };
            if let Err(e) = bound {
                last_error = Some(e);
                continue;
            }
            peer::wait_until("nfcapd to open its output file", PEER_TIMEOUT, || {
                process.check_running()?;
                Ok(!files_with_prefix(flow_dir, "nfcapd.current")?.is_empty())
            })?;
            return Ok(Nfcapd {
                process,
                port,
                repeats,
                flow_dir: flow_dir.to_path_buf(),
                buf: vec![0u8; 65_535],
            });
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("nfcapd never started")))
    }

    /// The UDP port nfcapd listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits (bounded) until nfcapd has repeated one more datagram, and returns it.
    pub fn next_repeat(&mut self) -> anyhow::Result<Vec<u8>> {
        let n = self
            .repeats
            .recv(&mut self.buf)
            .context("nfcapd did not repeat a datagram it should have read")?;
        Ok(self.buf[..n].to_vec())
    }

    /// Sends `trailer` (a message nfcapd stores nothing from, see [`header_only_message`]) from `tx`,
    /// waits until nfcapd repeats it, stops nfcapd and returns its log. Fails if nfcapd refused a
    /// datagram or left no closed flow file.
    pub fn finish(mut self, tx: &UdpSocket, trailer: &[u8]) -> anyhow::Result<String> {
        tx.send_to(trailer, ("127.0.0.1", self.port))?;
        let repeated = self.next_repeat()?;
        if repeated != trailer {
            bail!("nfcapd repeated another datagram where the trailer was expected");
        }
        let out = self.process.stop()?;
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        if !log.contains("Bad Packets: 0") {
            bail!("nfcapd refused datagrams:\n{}", peer::describe(&out));
        }
        if files_with_prefix(&self.flow_dir, "nfcapd.2")?.is_empty() {
            bail!(
                "nfcapd left no closed flow file in {:?}:\n{}",
                self.flow_dir,
                peer::describe(&out)
            );
        }
        Ok(log)
    }
}

/// An IPFIX message without sets: nfcapd stores nothing from it.
pub fn header_only_message(
    export_time: u32,
    sequence: u32,
    observation_domain: u32,
) -> anyhow::Result<Vec<u8>> {
    let mut msg = vec![0u8; 16];
    let header = IpfixHeader {
        length: 16,
        export_time,
        sequence,
        observation_domain,
    };
    header.emit(&mut msg).context("emitting an IPFIX header")?;
    Ok(msg)
}

/// Files in `dir` whose names start with `prefix`.
pub fn files_with_prefix(dir: &Path, prefix: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {dir:?}"))? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            out.push(entry.path());
        }
    }
    Ok(out)
}

/// `nfdump -R flow_dir -o format` with times in UTC, as text. `-R` reads every file in the directory,
/// in case nfcapd rotated its file while the test ran.
pub fn nfdump(nfdump: &Path, flow_dir: &Path, format: &str) -> anyhow::Result<String> {
    peer::run(
        Command::new(nfdump)
            .arg("-R")
            .arg(flow_dir)
            .args(["-o", format])
            .env("TZ", "UTC"),
    )
}

/// The flows nfdump stored in `flow_dir`, from its JSON output.
pub fn nfdump_json(nfdump_bin: &Path, flow_dir: &Path) -> anyhow::Result<Vec<Value>> {
    let text = nfdump(nfdump_bin, flow_dir, "json")?;
    serde_json::from_str(&text).with_context(|| format!("nfdump printed invalid JSON:\n{text}"))
}
