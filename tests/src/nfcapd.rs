//! nfdump's collector `nfcapd` on a loopback port, and knowing when it has taken every datagram sent to it.
//!
//! nfcapd repeats each datagram it reads (`-R`) to a socket of ours. Receiving a datagram of ours back
//! therefore means nfcapd has read everything sent to it before that datagram. nfcapd 1.7 reads a
//! datagram, repeats it and processes it only on its next turn, after checking whether it was told to
//! stop, so the datagram read just before SIGTERM is dropped: whatever sends flows ends with a
//! [`marker`](Nfcapd::sync) datagram, and once that is repeated every earlier datagram has been
//! processed and nfcapd can be stopped without loss.

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, bail};
use proto_ipfix::IpfixHeader;

use crate::netns::Netns;
use crate::peer::{self, PEER_TIMEOUT, PeerProcess};

/// Attempts at starting nfcapd: another program may take the free port between our check and its bind.
const START_ATTEMPTS: usize = 3;

/// Socket buffer nfcapd is asked for (`-B`), so a burst from an exporter reading a file as fast as it can
/// waits in the socket instead of being dropped; the kernel caps it at `net.core.rmem_max`.
const RECEIVE_BUFFER: &str = "8388608";

/// How long to wait for one marker to come back before sending another (in case the repeat of the first
/// was lost on our side of a full socket).
const MARKER_WAIT: Duration = Duration::from_secs(5);

/// The port nfcapd listens on inside a fresh network namespace, where nothing else is bound.
const NETNS_PORT: u16 = 4739;

/// nfcapd running on a loopback port, repeating every datagram it reads to a socket of ours.
pub struct Nfcapd {
    /// The running nfcapd.
    pub process: PeerProcess,
    /// The UDP port it listens on (127.0.0.1).
    pub port: u16,
    /// Where nfcapd repeats each datagram it has read.
    pub repeats: UdpSocket,
    flow_dir: PathBuf,
    /// The socket markers are sent from, for an nfcapd in a network namespace (opened there).
    marker_socket: Option<UdpSocket>,
}

/// nfcapd's command line: listen on 127.0.0.1:`port`, repeat to `repeat_to`, write into `flow_dir`.
fn command(nfcapd: &Path, port: u16, repeat_to: &str, flow_dir: &Path, netns: Option<&Netns>) -> Command {
    let mut cmd = match netns {
        Some(ns) => ns.command(nfcapd),
        None => Command::new(nfcapd),
    };
    cmd.args(["-b", "127.0.0.1", "-p", &port.to_string(), "-R", repeat_to])
        .args(["-B", RECEIVE_BUFFER, "-w"])
        .arg(flow_dir);
    cmd
}

/// Files in `dir` whose names start with `prefix`.
pub fn files_with_prefix(dir: &Path, prefix: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            out.push(entry.path());
        }
    }
    Ok(out)
}

impl Nfcapd {
    /// Starts nfcapd writing into `flow_dir` (its logs go to `log_dir`), and waits until it listens and
    /// has opened its output file.
    pub fn start(nfcapd: &Path, flow_dir: &Path, log_dir: &Path) -> anyhow::Result<Nfcapd> {
        let repeats = UdpSocket::bind("127.0.0.1:0")?;
        repeats.set_read_timeout(Some(PEER_TIMEOUT))?;
        let repeat_to = format!("127.0.0.1/{}", repeats.local_addr()?.port());
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let port = peer::free_udp_port()?;
            let mut cmd = command(nfcapd, port, &repeat_to, flow_dir, None);
            let mut process = PeerProcess::spawn("nfcapd", &mut cmd, log_dir)?;
            match process.wait_udp_bound(port) {
                Ok(()) => {
                    let c = Nfcapd {
                        process,
                        port,
                        repeats,
                        flow_dir: flow_dir.to_path_buf(),
                        marker_socket: None,
                    };
                    return c.wait_output_file();
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("nfcapd never started")))
    }

    /// Like [`start`](Self::start), inside network namespace `ns`: nfcapd listens on the namespace's
    /// loopback, and the repeat socket and the socket [`sync`](Self::sync) sends markers from are opened
    /// in the namespace.
    pub fn start_in(ns: &Netns, nfcapd: &Path, flow_dir: &Path, log_dir: &Path) -> anyhow::Result<Nfcapd> {
        let repeats = ns.enter(|| Ok(UdpSocket::bind("127.0.0.1:0")?))?;
        let marker_socket = ns.enter(|| Ok(UdpSocket::bind("127.0.0.1:0")?))?;
        repeats.set_read_timeout(Some(PEER_TIMEOUT))?;
        let repeat_to = format!("127.0.0.1/{}", repeats.local_addr()?.port());
        let mut cmd = command(nfcapd, NETNS_PORT, &repeat_to, flow_dir, Some(ns));
        let mut process = PeerProcess::spawn("nfcapd", &mut cmd, log_dir)?;
        peer::wait_until("nfcapd to bind its UDP port", PEER_TIMEOUT, || {
            process.check_running()?;
            ns.udp_port_bound(NETNS_PORT)
        })?;
        Nfcapd {
            process,
            port: NETNS_PORT,
            repeats,
            flow_dir: flow_dir.to_path_buf(),
            marker_socket: Some(marker_socket),
        }
        .wait_output_file()
    }

    /// Waits (bounded) until nfcapd has opened its output file.
    fn wait_output_file(mut self) -> anyhow::Result<Nfcapd> {
        peer::wait_until("nfcapd to open its output file", PEER_TIMEOUT, || {
            self.process.check_running()?;
            Ok(!files_with_prefix(&self.flow_dir, "nfcapd.current")?.is_empty())
        })?;
        Ok(self)
    }

    /// Starts draining the repeat socket in the background, so a producer that sends many datagrams
    /// (which we do not see) cannot fill it; [`sync`](Self::sync) then waits for the marker.
    pub fn drain(&self) -> anyhow::Result<Drain> {
        let socket = self.repeats.try_clone()?;
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        let (tx, rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let handle = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_535];
            let mut count = 0u64;
            loop {
                if stop_rx.try_recv().is_ok() {
                    return count;
                }
                match socket.recv(&mut buf) {
                    Ok(n) => {
                        count += 1;
                        if tx.send(buf[..n].to_vec()).is_err() {
                            return count;
                        }
                    }
                    // The timeout only lets the loop look at the stop channel.
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(_) => return count,
                }
            }
        });
        Ok(Drain {
            received: rx,
            stop: stop_tx,
            handle: Some(handle),
        })
    }

    /// After a producer has sent everything and exited: sends marker datagrams (header-only IPFIX messages
    /// of observation domain `marker_domain`, which the producer must not use) until one comes back, so
    /// nfcapd has read every earlier datagram. Returns how many datagrams were repeated in all, markers
    /// included.
    pub fn sync(&self, drain: Drain, marker_domain: u32) -> anyhow::Result<u64> {
        let tx = match &self.marker_socket {
            Some(s) => s.try_clone()?,
            None => UdpSocket::bind("127.0.0.1:0")?,
        };
        let attempts = (PEER_TIMEOUT.as_secs() / MARKER_WAIT.as_secs()).max(1) as u32;
        for seq in 0..attempts {
            let mut msg = vec![0u8; 16];
            IpfixHeader {
                length: 16,
                export_time: 0,
                sequence: seq,
                observation_domain: marker_domain,
            }
            .emit(&mut msg)
            .context("a 16-octet buffer holds an IPFIX header")?;
            tx.send_to(&msg, ("127.0.0.1", self.port))?;
            let deadline = std::time::Instant::now() + MARKER_WAIT;
            while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
                match drain.received.recv_timeout(left) {
                    Ok(d) if d == msg => return drain.finish(),
                    Ok(_) => {}
                    Err(mpsc::RecvTimeoutError::Timeout) => break,
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        bail!("the repeat socket failed before nfcapd repeated the marker")
                    }
                }
            }
        }
        bail!("nfcapd never repeated a marker datagram within {PEER_TIMEOUT:?}")
    }

    /// Stops nfcapd (SIGTERM: it closes its file) and checks from its closing statistics that it refused
    /// nothing and, for exporters numbering their messages, saw no gap (a lost datagram). Returns its output
    /// and the directory of closed flow files.
    pub fn stop(self) -> anyhow::Result<(Output, PathBuf)> {
        let out = self.process.stop()?;
        let log = String::from_utf8_lossy(&out.stderr);
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
        Ok((out, self.flow_dir))
    }
}

/// The background reader of nfcapd's repeats.
pub struct Drain {
    received: mpsc::Receiver<Vec<u8>>,
    stop: mpsc::Sender<()>,
    handle: Option<JoinHandle<u64>>,
}

impl Drain {
    /// Stops the reader; returns how many datagrams it received.
    fn finish(mut self) -> anyhow::Result<u64> {
        let _ = self.stop.send(());
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(n)) => Ok(n),
            _ => bail!("the repeat reader panicked"),
        }
    }
}

impl Drop for Drain {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Closing statistics nfcapd prints for each source ("Flows: N, Packets: N, ... Sequence Errors: N").
pub fn sequence_errors(log: &str) -> Option<u64> {
    let at = log.rfind("Sequence Errors: ")?;
    log[at + "Sequence Errors: ".len()..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Runs `nfdump -R dir -o json` (times in UTC) and returns its records.
pub fn dump_json(nfdump: &Path, flow_dir: &Path) -> anyhow::Result<Vec<serde_json::Value>> {
    let text = peer::run(
        Command::new(nfdump)
            .arg("-R")
            .arg(flow_dir)
            .args(["-o", "json"])
            .env("TZ", "UTC"),
    )?;
    serde_json::from_str(&text).with_context(|| format!("nfdump printed invalid JSON:\n{text}"))
}
