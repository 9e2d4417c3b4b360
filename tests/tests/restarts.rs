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
//!
//! [`softflowd_across_a_collector_restart`] does the same with softflowd 1.1 (NetFlow v9) capturing a
//! veth pair live: the collector restarts while softflowd runs, then softflowd restarts; every flow
//! sent while a collector listened is a document, and nothing is counted as lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail, ensure};
use podflow_e2e::binaries::podflow_exporter;
use podflow_e2e::collector::{self, Collector, Metrics};
use podflow_e2e::netns::Netns;
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

/// A veth pair from the host to a fresh namespace, the host end addressed 198.19.250.1/30 and the
/// other end .2 (with static neighbour entries, so no ARP): traffic the test sends from the host to .2
/// crosses the host end, where softflowd captures it. Deleting the namespace deletes the pair.
struct HostVeth {
    host: String,
    _ns: Netns,
}

const VETH_HOST_IP: &str = "198.19.250.1";
const VETH_PEER_IP: &str = "198.19.250.2";

impl HostVeth {
    fn new() -> anyhow::Result<Self> {
        let ns = Netns::new("restart-sfd")?;
        let host = format!("pfr{}", std::process::id() % 100_000);
        let ip = |args: &[&str]| peer::run(Command::new("ip").args(args));
        let _ = ip(&["link", "del", &host]);
        ip(&[
            "link",
            "add",
            &host,
            "address",
            "02:00:00:00:fa:01",
            "type",
            "veth",
            "peer",
            "name",
            "pfr0",
            "address",
            "02:00:00:00:fa:02",
            "netns",
            ns.name(),
        ])?;
        ip(&["addr", "add", &format!("{VETH_HOST_IP}/30"), "dev", &host])?;
        ip(&[
            "neigh",
            "replace",
            VETH_PEER_IP,
            "lladdr",
            "02:00:00:00:fa:02",
            "dev",
            &host,
            "nud",
            "permanent",
        ])?;
        ip(&["link", "set", &host, "up"])?;
        ns.ip(&["addr", "add", &format!("{VETH_PEER_IP}/30"), "dev", "pfr0"])?;
        ns.ip(&[
            "neigh",
            "replace",
            VETH_HOST_IP,
            "lladdr",
            "02:00:00:00:fa:01",
            "dev",
            "pfr0",
            "nud",
            "permanent",
        ])?;
        ns.ip(&["link", "set", "pfr0", "up"])?;
        Ok(HostVeth { host, _ns: ns })
    }
}

/// softflowd 1.1 capturing live, with its control socket.
///
/// On this libpcap (TPACKET_V3) softflowd reads captured packets only when a ring block is full, so
/// each round of flows is followed by filler: one flow of enough packets to fill blocks, to a port of
/// its own, after which softflowd has read the round's flows (`Packets processed` says so) and
/// `softflowctl expire-all` exports them.
struct Softflowd {
    process: PeerProcess,
    control: std::path::PathBuf,
    /// Packets matching the capture filter sent so far.
    sent: u64,
}

/// Destination ports of the test's flows and of the filler.
const FLOW_PORT: u16 = 7001;
const FILLER_PORT: u16 = 7002;

impl Softflowd {
    fn start(bin: &Path, work: &Path, interface: &str, collector: SocketAddr) -> anyhow::Result<Self> {
        let control = work.join("softflowd.ctl");
        let mut cmd = Command::new(bin);
        cmd.args(["-i", interface, "-v", "9", "-d", "-B", "65536"])
            .arg("-n")
            .arg(collector.to_string())
            .arg("-c")
            .arg(&control)
            .arg("-p")
            .arg(work.join("softflowd.pid"))
            .arg(format!(
                "udp and (dst port {FLOW_PORT} or dst port {FILLER_PORT})"
            ));
        // A socket file left by an earlier softflowd would pass for this one's.
        let _ = std::fs::remove_file(&control);
        let process = PeerProcess::spawn("softflowd", &mut cmd, work)?;
        let mut sfd = Softflowd {
            process,
            control,
            sent: 0,
        };
        peer::wait_until("softflowd's control socket", PEER_TIMEOUT, || {
            sfd.process.check_running()?;
            Ok(sfd.control.exists() && sfd.processed().is_ok())
        })?;
        Ok(sfd)
    }

    fn ctl(&self, command: &str) -> anyhow::Result<String> {
        let ctl = peer::require("softflowctl", "softflowd")?.context("no softflowctl")?;
        peer::run(Command::new(ctl).arg("-c").arg(&self.control).arg(command))
    }

    /// Sends `ports.len()` one-datagram flows (from the given sockets' ports) and filler, waits until
    /// softflowd has read the flows, and has it export every flow it holds.
    fn round(&mut self, flows: &[UdpSocket]) -> anyhow::Result<()> {
        let flow_dst: SocketAddr = format!("{VETH_PEER_IP}:{FLOW_PORT}").parse()?;
        for s in flows {
            s.send_to(b"one flow", flow_dst)?;
        }
        let need = self.sent + flows.len() as u64;
        let filler = UdpSocket::bind(format!("{VETH_HOST_IP}:0"))?;
        let filler_dst: SocketAddr = format!("{VETH_PEER_IP}:{FILLER_PORT}").parse()?;
        self.sent = need;
        let mut processed = 0;
        // Filler until softflowd has read past the flows (bounded: a few MiB at most).
        for _ in 0..64 {
            for _ in 0..128 {
                filler.send_to(&[0u8; 1000], filler_dst)?;
            }
            self.sent += 128;
            processed = self.processed()?;
            if processed >= need {
                break;
            }
        }
        ensure!(
            processed >= need,
            "softflowd read {processed} packets, not the {need} sent before the filler"
        );
        self.process.check_running()?;
        self.ctl("expire-all")?;
        Ok(())
    }

    /// softflowd's `Packets processed`.
    fn processed(&self) -> anyhow::Result<u64> {
        let stats = self.ctl("statistics")?;
        stats
            .lines()
            .find_map(|l| l.strip_prefix("Packets processed: "))
            .and_then(|n| n.trim().parse().ok())
            .with_context(|| format!("no packet count in:\n{stats}"))
    }
}

/// `n` sockets on the host end, each one flow's source port.
fn flow_sockets(n: usize) -> anyhow::Result<Vec<UdpSocket>> {
    (0..n)
        .map(|_| Ok(UdpSocket::bind(format!("{VETH_HOST_IP}:0"))?))
        .collect()
}

/// Source ports of the documents of flows to [`FLOW_PORT`].
fn flow_ports(docs: &[serde_json::Value]) -> BTreeSet<u64> {
    docs.iter()
        .filter(|d| d["destination"]["port"].as_u64() == Some(u64::from(FLOW_PORT)))
        .filter_map(|d| d["source"]["port"].as_u64())
        .collect()
}

fn ports_of(sockets: &[UdpSocket]) -> anyhow::Result<BTreeSet<u64>> {
    sockets
        .iter()
        .map(|s| Ok(u64::from(s.local_addr()?.port())))
        .collect()
}

#[test]
fn softflowd_across_a_collector_restart() -> anyhow::Result<()> {
    if !rustix::process::geteuid().is_root() {
        if std::env::var(peer::ALLOW_MISSING_ENV).is_ok_and(|v| v == "1") {
            eprintln!("\n!!!!! SKIPPED: the restart tests capture live and need root !!!!!\n");
            return Ok(());
        }
        bail!(
            "the restart tests capture live and need root; set {}=1 to skip",
            peer::ALLOW_MISSING_ENV
        );
    }
    let Some(bin) = peer::require("softflowd", "softflowd")? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let work = dir.path();
    let veth = HostVeth::new()?;
    let listen = SocketAddr::from(([127, 0, 0, 1], peer::free_udp_port()?));
    let args: [&str; 0] = [];
    let v9 = "exporter=\"127.0.0.1\",protocol=\"netflow_v9\"";

    let mut first = Collector::start_on("sfd-first", work, listen, 1, &args)?;
    let mut sfd = Softflowd::start(&bin, work, &veth.host, listen)?;
    let before = flow_sockets(50)?;
    sfd.round(&before)?;
    peer::wait_until("the first collector to have the flows", PEER_TIMEOUT, || {
        Ok(flow_ports(&read_ndjson(&first.ndjson)?) == ports_of(&before)?)
    })?;
    let first_records = first
        .scrape()?
        .get("podflow_collector_records_total", v9)
        .unwrap_or(0);
    let _ = first.wait_records(v9, first_records)?;
    first.stop()?;

    // The collector restarts and softflowd goes on: what it sends from then on arrives, data that
    // comes before a template is held and decoded, nothing is counted as lost.
    let second = Collector::start_on("sfd-second", work, listen, 1, &args)?;
    let mut after = Vec::new();
    for _ in 0..20 {
        let round = flow_sockets(3)?;
        sfd.round(&round)?;
        after.extend(round);
    }
    let want = ports_of(&after)?;
    peer::wait_until("the second collector to have the flows", PEER_TIMEOUT, || {
        Ok(flow_ports(&read_ndjson(&second.ndjson)?).is_superset(&want))
    })?;
    let m = second.scrape()?;
    let held = m
        .get(
            "podflow_collector_held_sets_total",
            &format!("{v9},outcome=\"held\""),
        )
        .unwrap_or(0);
    let decoded = m
        .get(
            "podflow_collector_held_sets_total",
            &format!("{v9},outcome=\"decoded\""),
        )
        .unwrap_or(0);
    let lost = m.get("podflow_collector_lost_datagrams_total", v9).unwrap_or(0);
    // softflowd 1.1 sends its templates often enough here that little or nothing waits; whatever did
    // was decoded.
    ensure!(
        held == decoded,
        "{held} sets held, {decoded} decoded:\n{}",
        m.text
    );
    ensure!(lost == 0, "{lost} datagrams counted as lost");
    eprintln!("softflowd: {held} data sets held for the template, all decoded");

    // softflowd restarts: a new session, sequence numbers from 0, not loss.
    drop(sfd);
    let mut sfd = Softflowd::start(&bin, work, &veth.host, listen)?;
    let again = flow_sockets(30)?;
    sfd.round(&again)?;
    let mut want = want;
    want.extend(ports_of(&again)?);
    peer::wait_until(
        "the second collector to have the new softflowd's flows",
        PEER_TIMEOUT,
        || Ok(flow_ports(&read_ndjson(&second.ndjson)?).is_superset(&want)),
    )?;
    let m = second.scrape()?;
    let lost = m.get("podflow_collector_lost_datagrams_total", v9).unwrap_or(0);
    ensure!(
        lost == 0,
        "{lost} datagrams counted as lost after softflowd restarted"
    );
    drop(sfd);
    second.stop()?;
    Ok(())
}

/// The NDJSON documents written so far (a last line still being written is left out).
fn read_ndjson(path: &Path) -> anyhow::Result<Vec<serde_json::Value>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}
