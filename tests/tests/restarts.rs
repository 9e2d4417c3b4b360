//! Restarts of the collector and of the exporter while flows keep coming (needs root: live capture).
//!
//! A live podflow-exporter captures the loopback interface, filtered to UDP datagrams the test sends to
//! a port of its own, each from a fresh source port: every datagram is one flow, and the exporter's
//! one-second idle timeout exports it as one record. The test sends flows in phases and waits, between
//! phases, until the exporter has exported them all and the collector (when one listens) has counted
//! them, so each phase's records are known to have been sent while the collector was up or while it
//! was down:
//!
//! 1. the exporter starts before any collector listens: every record of that time is refused, and the
//!    exporter's `send_failed_records_total` says exactly how many;
//! 2. a collector starts: every record sent from then on arrives, none counted as lost;
//! 3. the collector stops (SIGTERM) and flows go on: refused and counted again;
//! 4. a new collector starts on the same port. It knows no template; the exporter's data sets that come
//!    before its next template refresh are held (`--template-wait`) and decoded when the refresh comes,
//!    so every record arrives and nothing expires;
//! 5. the exporter restarts (new process, new source port, sequence numbers from 0, new templates):
//!    its records arrive and none is counted as lost.
//!
//! The exporter's records_total equals what the collectors decoded plus what it counted as failed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;

use anyhow::{bail, ensure};
use podflow_e2e::binaries::podflow_exporter;
use podflow_e2e::collector::{self, Collector, Metrics};
use podflow_e2e::peer::{self, PEER_TIMEOUT, PeerProcess};

/// The exporter's template refresh in these tests, seconds: short, so a restarted collector waits
/// little, but longer than a phase's flows take to be exported, so data does come before templates.
const TEMPLATE_REFRESH: &str = "4";

/// A live podflow-exporter on `lo`, seeing only datagrams to `target`.
struct Probe {
    process: PeerProcess,
    metrics: SocketAddr,
}

impl Probe {
    fn start(name: &str, work: &Path, target: u16, collector: SocketAddr) -> anyhow::Result<Self> {
        let metrics = SocketAddr::from(([127, 0, 0, 1], free_tcp_port()?));
        let mut cmd = Command::new(podflow_exporter()?);
        cmd.args(["--interface", "lo", "--filter"])
            .arg(format!("udp and dst port {target}"))
            .args(["--idle-timeout", "1", "--active-timeout", "1"])
            .args(["--template-refresh", TEMPLATE_REFRESH])
            .arg("--collector")
            .arg(collector.to_string())
            .arg("--metrics-listen")
            .arg(metrics.to_string());
        let mut process = PeerProcess::spawn(name, &mut cmd, work)?;
        process.wait_stderr("capturing lo")?;
        let mut probe = Probe { process, metrics };
        peer::wait_until("the probe's /metrics", PEER_TIMEOUT, || {
            probe.process.check_running()?;
            Ok(collector::scrape(probe.metrics).is_ok())
        })?;
        probe.scrape()?;
        Ok(probe)
    }

    fn scrape(&self) -> anyhow::Result<Metrics> {
        collector::scrape(self.metrics)
    }

    /// Waits (bounded) until the probe has exported `records` records and counted `failed` of them as
    /// refused; fails if it counts more.
    fn wait_exported(&mut self, records: u64, failed: u64) -> anyhow::Result<()> {
        let mut last = (0, 0);
        let what = format!("the probe to export {records} records, {failed} refused");
        let (process, addr) = (&mut self.process, self.metrics);
        let waited = peer::wait_until(&what, PEER_TIMEOUT, || {
            process.check_running()?;
            let m = collector::scrape(addr)?;
            last = (
                m.sum("podflow_exporter_records_total"),
                m.sum("podflow_exporter_send_failed_records_total"),
            );
            ensure!(
                last.0 <= records && last.1 <= failed,
                "the probe exported {} records, {} refused: more than {records}, {failed}",
                last.0,
                last.1
            );
            Ok(last == (records, failed))
        });
        match waited {
            Ok(()) => Ok(()),
            Err(e) => bail!(
                "{e:#}; last: {} records, {} refused\n{}",
                last.0,
                last.1,
                self.process.stderr_so_far()?
            ),
        }
    }
}

fn free_tcp_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Sends `n` one-datagram flows to `target`, each from a port of its own (the sockets stay open until
/// all are sent, so no port serves twice).
fn send_flows(target: SocketAddr, n: usize) -> anyhow::Result<()> {
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n {
        let s = UdpSocket::bind("127.0.0.1:0")?;
        s.send_to(b"one flow", target)?;
        sockets.push(s);
    }
    Ok(())
}

/// The collector's counter `name` for exporter 127.0.0.1 (IPFIX), with more labels if any.
fn ipfix(m: &Metrics, name: &str, more: &str) -> u64 {
    let labels = format!("exporter=\"127.0.0.1\",protocol=\"ipfix\"{more}");
    m.get(name, &labels).unwrap_or(0)
}

/// Waits until the collector has decoded exactly `records` and returns its metrics; nothing may be
/// lost by sequence numbers, expire while held, or be refused by the hold limits.
fn wait_decoded(c: &mut Collector, records: u64) -> anyhow::Result<Metrics> {
    let m = c.wait_records("exporter=\"127.0.0.1\",protocol=\"ipfix\"", records)?;
    let decoded = ipfix(&m, "podflow_collector_records_total", "");
    ensure!(decoded == records, "decoded {decoded} records, want {records}");
    for (name, more) in [
        ("podflow_collector_lost_records_total", ""),
        ("podflow_collector_held_sets_total", ",outcome=\"expired\""),
        ("podflow_collector_held_sets_total", ",outcome=\"refused\""),
    ] {
        let n = ipfix(&m, name, more);
        ensure!(n == 0, "{name}{{{more}}} = {n}:\n{}", m.text);
    }
    Ok(m)
}

#[test]
fn a_collector_that_restarts_loses_only_what_came_while_it_was_down() -> anyhow::Result<()> {
    if !rustix::process::geteuid().is_root() {
        if std::env::var(peer::ALLOW_MISSING_ENV).is_ok_and(|v| v == "1") {
            eprintln!("\n!!!!! SKIPPED: the restart tests capture on lo and need root !!!!!\n");
            return Ok(());
        }
        bail!(
            "the restart tests capture on lo and need root; set {}=1 to skip",
            peer::ALLOW_MISSING_ENV
        );
    }
    let dir = tempfile::tempdir()?;
    let work = dir.path();
    // Where the flows go: a bound socket, so no ICMP error answers them.
    let sink = UdpSocket::bind("127.0.0.1:0")?;
    let target = sink.local_addr()?;
    let listen = SocketAddr::from(([127, 0, 0, 1], peer::free_udp_port()?));
    let args: [&str; 0] = [];

    // 1. No collector yet.
    let mut probe = Probe::start("probe", work, target.port(), listen)?;
    send_flows(target, 300)?;
    probe.wait_exported(300, 300)?;

    // 2. A collector starts: everything sent from now on arrives.
    let mut first = Collector::start_on("first", work, listen, 1, &args)?;
    send_flows(target, 400)?;
    probe.wait_exported(700, 300)?;
    wait_decoded(&mut first, 400)?;
    let first = first.stop()?;
    ensure!(first.documents == 400, "{} documents", first.documents);

    // 3. Down again: refused and counted.
    send_flows(target, 200)?;
    probe.wait_exported(900, 500)?;

    // 4. A new collector on the same port, with no templates: data is held until the refresh.
    let mut second = Collector::start_on("second", work, listen, 1, &args)?;
    send_flows(target, 500)?;
    probe.wait_exported(1400, 500)?;
    let m = wait_decoded(&mut second, 500)?;
    let held = ipfix(&m, "podflow_collector_held_sets_total", ",outcome=\"held\"");
    let replayed = ipfix(&m, "podflow_collector_held_sets_total", ",outcome=\"decoded\"");
    ensure!(held == replayed, "{held} sets held, {replayed} decoded");
    eprintln!("second collector: {held} data sets held for their template, all decoded");

    // 5. The exporter restarts: a new session from 0, not loss.
    drop(probe);
    let mut probe = Probe::start("probe-again", work, target.port(), listen)?;
    send_flows(target, 300)?;
    probe.wait_exported(300, 0)?;
    wait_decoded(&mut second, 800)?;
    let second = second.stop()?;
    ensure!(second.documents == 800, "{} documents", second.documents);
    drop(sink);
    Ok(())
}
