//! podflow-exporter capturing real traffic (needs root: network namespaces and packet capture).
//!
//! Two network namespaces, `a` and `b`, are joined by a veth pair. podflow-exporter runs in `a`,
//! capturing `a`'s end, and sends IPFIX to nfcapd and to a UDP socket of the test, both on `a`'s
//! loopback. The test makes TCP and UDP exchanges of known sizes from `a` to `b` with sockets opened
//! inside the namespaces, while tshark captures `b`'s end of the pair as an independent oracle of what
//! went over the wire. Then the exporter is stopped with SIGTERM, and its flows, as proto-ipfix decodes
//! them and as nfdump stored them, must carry exactly the packets and octets tshark saw.
//!
//! No sleep stands for synchronisation: every step waits (bounded) for a signal that what it needs has
//! happened:
//! - the exporter prints `capturing <interface>` once its capture is open, tshark `Capture started`;
//! - an exchange is over on the wire when the test's sockets have all their data and the server side's
//!   TCP connection is gone from `b` (the kernel received the last ACK);
//! - a marker, a TCP connection attempt to a closed port of `b` (SYN, RST), follows the exchanges. The
//!   exporter has counted every packet before it once it exports the marker's flow (TCP ends it after
//!   `--tcp-linger`), and tshark has captured them all once it prints the marker's RST.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail, ensure};
use podflow_e2e::binaries::podflow_exporter;
use podflow_e2e::exported::{self, ExportedFlow, Receiver};
use podflow_e2e::netns::{Netns, VethEnd, veth_pair};
use podflow_e2e::nfcapd::{self, Nfcapd};
use podflow_e2e::peer::{self, PEER_TIMEOUT, PeerProcess};
use serde_json::Value;

const A_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const B_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const A_MAC: &str = "02:00:00:00:00:0a";
const B_MAC: &str = "02:00:00:00:00:0b";
/// The closed port of `b` the marker connects to (discard: nothing listens on it).
const MARKER_PORT: u16 = 9;
const TCP: u8 = 6;
const UDP: u8 = 17;

/// Two namespaces and a scratch directory. Processes started for a test are locals declared after
/// it, so they are stopped before the namespaces are deleted.
struct Lab {
    dir: tempfile::TempDir,
    b: Netns,
    a: Netns,
}

impl Lab {
    /// Namespaces `a` and `b` (named after `tag`); the veth pair is made by [`Lab::link`].
    fn new(tag: &str) -> anyhow::Result<Self> {
        Ok(Lab {
            dir: tempfile::tempdir()?,
            a: Netns::new(&format!("{tag}-a"))?,
            b: Netns::new(&format!("{tag}-b"))?,
        })
    }

    /// Joins `a` (interface `a_if`) and `b` (interface `b0`) with a veth pair.
    fn link(&self, a_if: &str) -> anyhow::Result<()> {
        veth_pair(
            &VethEnd {
                ns: &self.a,
                name: a_if,
                mac: A_MAC,
                addr: A_IP,
            },
            &VethEnd {
                ns: &self.b,
                name: "b0",
                mac: B_MAC,
                addr: B_IP,
            },
        )
    }

    /// A UDP socket on `a`'s loopback for the exporter to send to.
    fn receiver(&self) -> anyhow::Result<Receiver> {
        Receiver::new(self.a.enter(|| Ok(UdpSocket::bind("127.0.0.1:0")?))?)
    }

    /// Starts podflow-exporter in `a` with `args` and waits until it prints `ready`.
    fn exporter(&self, args: &[&str], ready: &str) -> anyhow::Result<PeerProcess> {
        let mut cmd = self.a.command(podflow_exporter()?);
        cmd.args(args);
        let mut p = PeerProcess::spawn("podflow-exporter", &mut cmd, self.dir.path())?;
        wait_stderr(&mut p, ready)?;
        Ok(p)
    }

    /// Starts tshark on `b`'s end of the pair, writing a capture file and printing each packet as it
    /// captures it; returns once it captures.
    fn oracle(&self, tshark: &Path) -> anyhow::Result<(PeerProcess, PathBuf)> {
        let file = self.dir.path().join("oracle.pcapng");
        let mut cmd = self.b.command(tshark);
        cmd.args(["-i", "b0", "-n", "-l", "-P", "-w"])
            .arg(&file)
            .args(FIELDS)
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path());
        let mut p = PeerProcess::spawn("tshark", &mut cmd, self.dir.path())?;
        wait_stderr(&mut p, "Capture started")?;
        Ok((p, file))
    }

    /// Sends `up` octets over TCP from `a` to `b` and `down` octets back, and returns (client, server)
    /// once the connection is closed on both sides, its last packet past both capture points.
    fn tcp_exchange(&self, up: usize, down: usize) -> anyhow::Result<(SocketAddr, SocketAddr)> {
        let listener = self.b.enter(|| Ok(TcpListener::bind((B_IP, 0))?))?;
        let server_addr = listener.local_addr()?;
        let server = std::thread::spawn(move || -> anyhow::Result<()> {
            let (mut s, _) = listener.accept()?;
            s.set_read_timeout(Some(PEER_TIMEOUT))?;
            let mut got = Vec::new();
            // Until the client's FIN.
            s.read_to_end(&mut got)?;
            ensure!(got.len() == up, "server received {} octets, want {up}", got.len());
            s.write_all(&vec![0x5a; down])?;
            Ok(())
        });
        let mut c = self.a.enter(move || Ok(TcpStream::connect(server_addr)?))?;
        c.set_read_timeout(Some(PEER_TIMEOUT))?;
        let client_addr = c.local_addr()?;
        c.write_all(&vec![0xa5; up])?;
        // The client closes first: its kernel sends the connection's last packet (the ACK of the
        // server's FIN), which the server's kernel must receive before the connection is gone from `b`.
        c.shutdown(Shutdown::Write)?;
        let mut back = Vec::new();
        c.read_to_end(&mut back)?;
        ensure!(
            back.len() == down,
            "client received {} octets, want {down}",
            back.len()
        );
        server
            .join()
            .map_err(|_| anyhow::anyhow!("TCP server thread panicked"))??;
        self.b
            .wait_tcp_closed(server_addr.port(), client_addr.port(), PEER_TIMEOUT)?;
        Ok((client_addr, server_addr))
    }

    /// Sends `count` UDP datagrams of `up` octets from `a` to `b`, each answered with `down` octets, in
    /// lock step; returns (client, server).
    fn udp_exchange(&self, count: usize, up: usize, down: usize) -> anyhow::Result<(SocketAddr, SocketAddr)> {
        let server = self.b.enter(|| Ok(UdpSocket::bind((B_IP, 0))?))?;
        let client = self.a.enter(|| Ok(UdpSocket::bind((A_IP, 0))?))?;
        for s in [&server, &client] {
            s.set_read_timeout(Some(PEER_TIMEOUT))?;
        }
        let server_addr = server.local_addr()?;
        let mut buf = vec![0u8; 65_535];
        for i in 0..count {
            client.send_to(&vec![i as u8; up], server_addr)?;
            let (n, from) = server.recv_from(&mut buf).context("server receiving")?;
            ensure!(n == up, "server received {n} octets, want {up}");
            server.send_to(&vec![!(i as u8); down], from)?;
            let n = client.recv(&mut buf).context("client receiving")?;
            ensure!(n == down, "client received {n} octets, want {down}");
        }
        Ok((client.local_addr()?, server_addr))
    }

    /// The marker: a TCP connection attempt from `a` to a closed port of `b` (SYN answered by RST).
    fn marker(&self) -> anyhow::Result<()> {
        match self.a.enter(|| Ok(TcpStream::connect((B_IP, MARKER_PORT))))? {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(()),
            other => bail!("connecting to the closed marker port: {other:?}"),
        }
    }
}

/// Waits (bounded) until `p` prints `needle` on stderr, failing at once if it exits.
fn wait_stderr(p: &mut PeerProcess, needle: &str) -> anyhow::Result<String> {
    let mut text = String::new();
    peer::wait_until(&format!("{needle:?} on stderr"), PEER_TIMEOUT, || {
        p.check_running()?;
        text = p.stderr_so_far()?;
        Ok(text.contains(needle))
    })?;
    Ok(text)
}

/// tshark's per-packet fields, first occurrence only (an ICMP error quotes another IP header).
const FIELDS: [&str; 24] = [
    "-T",
    "fields",
    "-E",
    "separator=,",
    "-E",
    "occurrence=f",
    "-e",
    "ip.src",
    "-e",
    "ip.dst",
    "-e",
    "ip.proto",
    "-e",
    "ip.len",
    "-e",
    "tcp.srcport",
    "-e",
    "tcp.dstport",
    "-e",
    "udp.srcport",
    "-e",
    "udp.dstport",
    "-e",
    "tcp.flags",
];

/// One packet as tshark saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct WirePacket {
    src: Option<IpAddr>,
    dst: Option<IpAddr>,
    proto: u8,
    ip_len: u64,
    sport: u16,
    dport: u16,
    tcp_flags: u16,
}

/// Parses tshark's field lines (see [`FIELDS`]).
fn parse_fields(text: &str) -> anyhow::Result<Vec<WirePacket>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let c: Vec<&str> = line.split(',').collect();
            ensure!(c.len() == 9, "unexpected tshark line: {line}");
            let num = |s: &str| -> anyhow::Result<u64> {
                Ok(match s.strip_prefix("0x") {
                    Some(hex) => u64::from_str_radix(hex, 16)?,
                    None if s.is_empty() => 0,
                    None => s.parse()?,
                })
            };
            let port = |tcp: &str, udp: &str| num(if tcp.is_empty() { udp } else { tcp });
            Ok(WirePacket {
                src: c[0].parse().ok(),
                dst: c[1].parse().ok(),
                proto: num(c[2])? as u8,
                ip_len: num(c[3])?,
                sport: port(c[4], c[6])? as u16,
                dport: port(c[5], c[7])? as u16,
                tcp_flags: num(c[8])? as u16,
            })
        })
        .collect()
}

/// (packets, octets) tshark saw from `src` to `dst` with `proto`.
fn wire_counts(packets: &[WirePacket], proto: u8, src: SocketAddr, dst: SocketAddr) -> (u64, u64) {
    packets
        .iter()
        .filter(|p| {
            p.proto == proto
                && p.src == Some(src.ip())
                && p.dst == Some(dst.ip())
                && p.sport == src.port()
                && p.dport == dst.port()
        })
        .fold((0, 0), |(n, o), p| (n + 1, o + p.ip_len))
}

/// Waits until tshark has printed the marker's RST (so it has captured everything before it) and the
/// exporter has exported the marker's flow (so it has counted everything before it).
fn wait_marker(rx: &mut Receiver, oracle: &mut PeerProcess) -> anyhow::Result<()> {
    peer::wait_until("tshark to capture the marker's RST", PEER_TIMEOUT, || {
        oracle.check_running()?;
        Ok(parse_fields(&oracle.stdout_so_far()?)?
            .iter()
            .any(|p| p.proto == TCP && p.sport == MARKER_PORT && p.tcp_flags & 0x04 != 0))
    })?;
    rx.wait_for("the exporter to export the marker flow", PEER_TIMEOUT, |flows| {
        flows.iter().any(is_marker)
    })
}

fn is_marker(f: &ExportedFlow) -> bool {
    f.proto == TCP && f.dst == Some(IpAddr::V4(B_IP)) && f.dport == MARKER_PORT
}

/// Stops the exporter with SIGTERM, checks it exits 0, and receives every message it says it sent.
fn stop_exporter(exporter: PeerProcess, rx: &mut Receiver) -> anyhow::Result<String> {
    let out = exporter.stop()?;
    ensure!(
        out.status.success(),
        "podflow-exporter did not exit 0 on SIGTERM:\n{}",
        peer::describe(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    rx.wait_messages(exported::summary_messages(&stderr)?, PEER_TIMEOUT)?;
    // Anything beyond the count would be a message the summary did not count.
    rx.drain()?;
    ensure!(
        rx.messages.len() == exported::summary_messages(&stderr)?,
        "received {} messages, the exporter reports {}:\n{stderr}",
        rx.messages.len(),
        exported::summary_messages(&stderr)?
    );
    Ok(stderr)
}

/// The one record of the flow from `client` to `server`.
fn one_flow(
    rx: &Receiver,
    proto: u8,
    client: SocketAddr,
    server: SocketAddr,
) -> anyhow::Result<ExportedFlow> {
    let found: Vec<_> = rx.flows.iter().filter(|f| f.is(proto, client, server)).collect();
    match found.as_slice() {
        [f] => Ok((*f).clone()),
        other => bail!(
            "{} records of {client} -> {server} (proto {proto}); all flows: {:#?}",
            other.len(),
            rx.flows
        ),
    }
}

/// Checks an exported biflow against the wire: exact packets and octets both ways, and the Community ID.
fn check_against_wire(
    f: &ExportedFlow,
    wire: &[WirePacket],
    proto: u8,
    client: SocketAddr,
    server: SocketAddr,
) -> anyhow::Result<()> {
    let fwd = wire_counts(wire, proto, client, server);
    let rev = wire_counts(wire, proto, server, client);
    ensure!(
        fwd.0 > 0 && rev.0 > 0,
        "tshark saw no packets of {client} <-> {server}"
    );
    let got = (
        (f.packets, f.octets),
        (f.reverse_packets.unwrap_or(0), f.reverse_octets.unwrap_or(0)),
    );
    ensure!(
        got == (fwd, rev),
        "{client} <-> {server}: exporter (packets, octets) forward/reverse {got:?}, tshark {:?}",
        (fwd, rev)
    );
    ensure!(
        f.community_id.is_some() && f.community_id == f.expected_community_id(),
        "community id {:?}, want {:?}",
        f.community_id,
        f.expected_community_id()
    );
    Ok(())
}

/// The nfdump records of the flow from `client` to `server`.
fn nfdump_records(json: &[Value], client: SocketAddr, server: SocketAddr) -> Vec<&Value> {
    json.iter()
        .filter(|r| {
            r["src4_addr"] == client.ip().to_string()
                && r["dst4_addr"] == server.ip().to_string()
                && r["src_port"] == client.port()
                && r["dst_port"] == server.port()
        })
        .collect()
}

/// Requires root and the peers of the live tests; `None` to skip.
fn peers() -> anyhow::Result<Option<(PathBuf, PathBuf, PathBuf, PathBuf)>> {
    if !rustix::process::geteuid().is_root() {
        if std::env::var(peer::ALLOW_MISSING_ENV).is_ok_and(|v| v == "1") {
            eprintln!("\n!!!!! SKIPPED: live capture tests need root !!!!!\n");
            return Ok(None);
        }
        bail!(
            "live capture tests need root (network namespaces, packet capture); set {}=1 to skip",
            peer::ALLOW_MISSING_ENV
        );
    }
    let (Some(tshark), Some(nfcapd), Some(nfdump), Some(promtool)) = (
        peer::require("tshark", "tshark")?,
        peer::require("nfcapd", "nfdump")?,
        peer::require("nfdump", "nfdump")?,
        peer::require("promtool", "prometheus")?,
    ) else {
        return Ok(None);
    };
    Ok(Some((tshark, nfcapd, nfdump, promtool)))
}

/// An HTTP GET from inside `ns`; returns (status line, body).
fn http_get(ns: &Netns, addr: SocketAddr, path: &str) -> anyhow::Result<(String, String)> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let text = ns.enter(move || {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(PEER_TIMEOUT))?;
        s.write_all(request.as_bytes())?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text)
    })?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("no HTTP header end in {text:?}"))?;
    Ok((
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    ))
}

/// The value of the unlabelled sample `name` in a Prometheus exposition.
fn sample(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn live_tcp_and_udp_flows_match_the_wire() -> anyhow::Result<()> {
    let Some((tshark, nfcapd_bin, nfdump_bin, promtool)) = peers()? else {
        return Ok(());
    };
    let lab = Lab::new("live")?;
    lab.link("a0")?;
    let flow_dir = lab.dir.path().join("flows");
    std::fs::create_dir(&flow_dir)?;
    let nfcapd = Nfcapd::start_in(&lab.a, &nfcapd_bin, &flow_dir, lab.dir.path())?;
    let drain = nfcapd.drain()?;
    let mut rx = lab.receiver()?;
    let collectors = [format!("127.0.0.1:{}", nfcapd.port), rx.local_addr()?.to_string()];
    let args = [
        "-i",
        "a0",
        "--collector",
        &collectors[0],
        "--collector",
        &collectors[1],
        "--tcp-linger",
        "1",
        "--idle-timeout",
        "300",
        "--metrics-listen",
        "127.0.0.1:0",
    ];
    let exporter = lab.exporter(&args, "capturing a0 (")?;
    let (mut oracle, capture) = lab.oracle(&tshark)?;

    // Metrics and health answer while the exporter runs.
    let log = exporter.stderr_so_far()?;
    let metrics_addr: SocketAddr = log
        .split("metrics on http://")
        .nth(1)
        .and_then(|rest| rest.split("/metrics").next())
        .with_context(|| format!("no metrics address in:\n{log}"))?
        .parse()?;
    let (status, body) = http_get(&lab.a, metrics_addr, "/healthz")?;
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "ok\n"));

    let (tcp_client, tcp_server) = lab.tcp_exchange(10_000, 5_000)?;
    let (udp_client, udp_server) = lab.udp_exchange(20, 300, 700)?;
    lab.marker()?;
    wait_marker(&mut rx, &mut oracle)?;

    // Every packet on the wire was read: the exporter publishes its counters every second.
    let wire_now = parse_fields(&oracle.stdout_so_far()?)?.len() as u64;
    let mut exposition = String::new();
    peer::wait_until(
        "podflow_exporter_packets_total to count every packet",
        PEER_TIMEOUT,
        || {
            let (status, body) = http_get(&lab.a, metrics_addr, "/metrics")?;
            ensure!(status == "HTTP/1.1 200 OK", "/metrics answered {status}");
            exposition = body;
            Ok(sample(&exposition, "podflow_exporter_packets_total").unwrap_or(0) >= wire_now)
        },
    )?;
    assert_eq!(
        sample(&exposition, "podflow_exporter_packets_total"),
        Some(wire_now)
    );
    assert_eq!(
        sample(&exposition, "podflow_exporter_capture_interfaces"),
        Some(1)
    );
    assert!(exposition.contains("podflow_exporter_kernel_dropped_packets_total{interface=\"a0\"} 0\n"));
    let metrics_file = lab.dir.path().join("metrics.txt");
    std::fs::write(&metrics_file, &exposition)?;
    let check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&metrics_file)?)
        .output()?;
    assert!(
        check.status.success(),
        "promtool rejects the exposition:\n{}\n{exposition}",
        peer::describe(&check)
    );

    let stderr = stop_exporter(exporter, &mut rx)?;
    let out = oracle.stop()?;
    let wire = parse_fields(&peer::run(
        Command::new(&tshark)
            .arg("-r")
            .arg(&capture)
            .args(FIELDS)
            .env("HOME", lab.dir.path()),
    )?)?;
    assert_eq!(
        wire.len() as u64,
        wire_now,
        "the capture file holds other packets than tshark printed:\n{}",
        peer::describe(&out)
    );

    // TCP: octets are the IP packets, so at least payload plus 40 header octets per packet.
    let tcp = one_flow(&rx, TCP, tcp_client, tcp_server)?;
    check_against_wire(&tcp, &wire, TCP, tcp_client, tcp_server)?;
    assert!(tcp.octets >= 10_000 + 40 * tcp.packets, "{tcp:?}");
    let (rev_packets, rev_octets) = (tcp.reverse_packets.unwrap(), tcp.reverse_octets.unwrap());
    assert!(rev_octets >= 5_000 + 40 * rev_packets, "{tcp:?}");
    // SYN, ACK and FIN both ways; closed with FIN both ways, so exported as end of flow (3).
    assert_eq!(tcp.tcp_flags & 0x13, 0x13, "{tcp:?}");
    assert_eq!(tcp.reverse_tcp_flags.unwrap() & 0x13, 0x13, "{tcp:?}");
    assert_eq!(tcp.end_reason, 3, "{tcp:?}");

    // UDP: exactly 20 datagrams each way, each 28 header octets (IPv4 and UDP) over its payload.
    let udp = one_flow(&rx, UDP, udp_client, udp_server)?;
    check_against_wire(&udp, &wire, UDP, udp_client, udp_server)?;
    assert_eq!((udp.packets, udp.octets), (20, 20 * (300 + 28)), "{udp:?}");
    assert_eq!(
        (udp.reverse_packets, udp.reverse_octets),
        (Some(20), Some(20 * (700 + 28))),
        "{udp:?}"
    );
    // Still open at SIGTERM (idle timeout 300 s): flushed as forced end (4).
    assert_eq!(udp.end_reason, 4, "{udp:?}");

    eprintln!(
        "exported TCP {tcp:?}\nexported UDP {udp:?}\n{} packets on the wire",
        wire.len()
    );

    // nfcapd got the same messages: once it repeats a marker sent after them, it has stored them all.
    // (The marker's observation domain is not the exporter's, so the exporter's sequence has no gap.)
    let repeated = nfcapd.sync(drain, 0xffff)?;
    assert!(
        repeated > rx.messages.len() as u64,
        "nfcapd repeated {repeated} datagrams"
    );
    let (out, flow_dir) = nfcapd.stop()?;
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(nfcapd::sequence_errors(&log), Some(0), "{log}");
    let json = nfcapd::dump_json(&nfdump_bin, &flow_dir)?;
    assert_eq!(
        json.len(),
        rx.flows.len(),
        "nfdump stored other flows than were sent:\n{log}"
    );
    for (f, client, server) in [(&tcp, tcp_client, tcp_server), (&udp, udp_client, udp_server)] {
        let records = nfdump_records(&json, client, server);
        assert_eq!(records.len(), 1, "{client} -> {server} in nfdump: {json:#?}");
        let r = records[0];
        // nfdump 1.7 reads RFC 5103 reverse counters as its out_ counters.
        let got = [
            &r["in_packets"],
            &r["in_bytes"],
            &r["out_packets"],
            &r["out_bytes"],
        ];
        let want = [
            f.packets,
            f.octets,
            f.reverse_packets.unwrap(),
            f.reverse_octets.unwrap(),
        ]
        .map(Value::from);
        assert_eq!(got, want.each_ref(), "{client} -> {server} in nfdump: {r:#}");
    }
    assert!(
        stderr.contains("podflow-exporter: capturing a0 (EN10MB)"),
        "{stderr}"
    );
    Ok(())
}

/// A flow still open when the exporter is stopped (long idle timeout) is exported on SIGTERM with
/// flowEndReason 4 (forced end), with every packet, and the exporter exits 0.
#[test]
fn sigterm_flushes_open_flows() -> anyhow::Result<()> {
    let Some((tshark, ..)) = peers()? else {
        return Ok(());
    };
    let lab = Lab::new("term")?;
    lab.link("a0")?;
    let mut rx = lab.receiver()?;
    let collector = rx.local_addr()?.to_string();
    let args = [
        "-i",
        "a0",
        "--collector",
        &collector,
        "--tcp-linger",
        "1",
        "--idle-timeout",
        "3600",
    ];
    let exporter = lab.exporter(&args, "capturing a0 (")?;
    let (mut oracle, _) = lab.oracle(&tshark)?;
    let (client, server) = lab.udp_exchange(5, 100, 200)?;
    lab.marker()?;
    wait_marker(&mut rx, &mut oracle)?;
    // The marker's flow has ended and been exported; the UDP flow is still open.
    assert!(
        !rx.flows.iter().any(|f| f.is(UDP, client, server)),
        "the UDP flow was exported before SIGTERM: {:#?}",
        rx.flows
    );

    let stderr = stop_exporter(exporter, &mut rx)?;
    let udp = one_flow(&rx, UDP, client, server)?;
    assert_eq!(udp.end_reason, 4, "{udp:?}");
    assert_eq!((udp.packets, udp.octets), (5, 5 * (100 + 28)), "{udp:?}");
    assert_eq!(
        (udp.reverse_packets, udp.reverse_octets),
        (Some(5), Some(5 * (200 + 28))),
        "{udp:?}"
    );
    // The marker and the UDP flow, nothing else.
    assert_eq!(rx.flows.len(), 2, "{:#?}", rx.flows);
    assert!(stderr.contains(" 2 flows exported as 2 records "), "{stderr}");
    oracle.stop()?;
    Ok(())
}

/// An interface pattern picks up an interface created after the exporter started, at the next rescan.
#[test]
fn interface_pattern_picks_up_new_interfaces() -> anyhow::Result<()> {
    let Some((tshark, ..)) = peers()? else {
        return Ok(());
    };
    let lab = Lab::new("glob")?;
    // An interface that matches from the start (a veth pair inside `a`): once the exporter captures it,
    // its first scan is done.
    lab.a
        .ip(&["link", "add", "pfl0", "type", "veth", "peer", "name", "x0"])?;
    lab.a.ip(&["link", "set", "pfl0", "up"])?;
    let mut rx = lab.receiver()?;
    let collector = rx.local_addr()?.to_string();
    let args = [
        "-i",
        "pfl*",
        "--rescan-interval",
        "1",
        "--collector",
        &collector,
        "--tcp-linger",
        "1",
        "--idle-timeout",
        "3600",
    ];
    let mut exporter = lab.exporter(&args, "capturing pfl0 (")?;
    ensure!(
        !exporter.stderr_so_far()?.contains("capturing pfl1"),
        "pfl1 captured before it existed"
    );

    lab.link("pfl1")?;
    wait_stderr(&mut exporter, "capturing pfl1 (")?;
    let (mut oracle, _) = lab.oracle(&tshark)?;
    let (client, server) = lab.udp_exchange(3, 64, 32)?;
    lab.marker()?;
    wait_marker(&mut rx, &mut oracle)?;
    stop_exporter(exporter, &mut rx)?;
    let udp = one_flow(&rx, UDP, client, server)?;
    assert_eq!(
        (udp.packets, udp.octets, udp.reverse_packets, udp.reverse_octets),
        (3, 3 * (64 + 28), Some(3), Some(3 * (32 + 28))),
        "{udp:?}"
    );
    oracle.stop()?;
    Ok(())
}

/// `--direction in` counts only the packets an interface receives: on `a`'s end, the answers from `b`.
/// With the requests unseen, the flow's first packet is an answer, so the record's source is `b`.
#[test]
fn direction_in_counts_received_packets_only() -> anyhow::Result<()> {
    let Some((tshark, ..)) = peers()? else {
        return Ok(());
    };
    let lab = Lab::new("dirin")?;
    lab.link("a0")?;
    let mut rx = lab.receiver()?;
    let collector = rx.local_addr()?.to_string();
    let args = [
        "-i",
        "a0",
        "--direction",
        "in",
        "--collector",
        &collector,
        "--tcp-linger",
        "1",
        "--idle-timeout",
        "3600",
    ];
    let exporter = lab.exporter(&args, "capturing a0 (")?;
    let (mut oracle, _) = lab.oracle(&tshark)?;
    let (client, server) = lab.udp_exchange(4, 50, 150)?;
    lab.marker()?;
    // The marker's SYN leaves `a` unseen; its RST, received, makes a flow that TCP ends.
    peer::wait_until("tshark to capture the marker's RST", PEER_TIMEOUT, || {
        oracle.check_running()?;
        Ok(parse_fields(&oracle.stdout_so_far()?)?
            .iter()
            .any(|p| p.proto == TCP && p.sport == MARKER_PORT && p.tcp_flags & 0x04 != 0))
    })?;
    rx.wait_for("the exporter to export the marker's RST", PEER_TIMEOUT, |flows| {
        flows.iter().any(|f| f.proto == TCP && f.sport == MARKER_PORT)
    })?;
    stop_exporter(exporter, &mut rx)?;
    let udp = one_flow(&rx, UDP, server, client)?;
    assert_eq!(
        (udp.packets, udp.octets, udp.reverse_packets, udp.reverse_octets),
        (4, 4 * (150 + 28), Some(0), Some(0)),
        "{udp:?}"
    );
    oracle.stop()?;
    Ok(())
}
