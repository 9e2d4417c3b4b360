//! podflow-exporter `--conntrack` on a Kubernetes-like node (needs root, `iptables`, `conntrack`,
//! `tshark`; see `podflow_e2e::kubenode` for the topology).
//!
//! The probe runs in the node namespace and captures the pod-side veths and the uplink with
//! `--direction in`, as a node probe does. The client pod makes many connections to a Service's
//! ClusterIP, which kube-proxy-style DNAT rules split across two backend pods, a few connections to a
//! host outside the cluster (masqueraded), and one direct connection to each backend. `conntrack -L`
//! in the node (with accounting on) is the oracle: for every connection of the client it names the
//! backend and counts packets and octets per direction. Checked, connection by connection:
//! - exactly one exported biflow, with the packets and octets conntrack counted in each direction
//!   (the backend's replies folded into the client's biflow: no record of the backend tuple);
//! - for a translated connection, the post-NAT addresses and ports conntrack reports (the backend for a
//!   Service connection, the node's address for a masqueraded one), its conntrack id and mark, the
//!   post-NAT Community ID, and exactly one NAT create and one NAT delete event; untranslated
//!   connections carry no NAT field;
//! - connections per backend: the same in the exported records, in conntrack, and in the answers the
//!   client got; tshark shows the NAT elements in the exported messages.
//!
//! Flows end by TCP (FIN both ways, then `--tcp-linger`), and the test waits (bounded) for every
//! connection's record; NAT delete events come from `conntrack -D`. No sleep stands for
//! synchronisation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use podflow_e2e::binaries::podflow_exporter;
use podflow_e2e::exported::{ExportedFlow, Receiver};
use podflow_e2e::kubenode::{
    BACKEND_NAMES, BACKENDS, CLIENT_IP, CLUSTER_IP, CtEntry, EXTERNAL, KubeNode, NODE_INTERFACES,
    SERVICE_PORT, Server, TARGET_PORT, answers_per_backend, conntrack_list, exchange, per_backend,
};
use podflow_e2e::pcap::write_pcap;
use podflow_e2e::pdml::{parse_pdml, tshark_pdml};
use podflow_e2e::peer::{self, PEER_TIMEOUT, PeerProcess};
use proto_ipfix::community_id::CommunityId;

const TCP: u8 = 6;
const SERVICE: SocketAddr = SocketAddr::V4(SocketAddrV4::new(CLUSTER_IP, SERVICE_PORT));

/// The peer programs: (tshark, conntrack, setpriv); `None` to skip.
fn peers() -> anyhow::Result<Option<(PathBuf, PathBuf, PathBuf)>> {
    if !rustix::process::geteuid().is_root() {
        if std::env::var(peer::ALLOW_MISSING_ENV).is_ok_and(|v| v == "1") {
            eprintln!("\n!!!!! SKIPPED: conntrack tests need root !!!!!\n");
            return Ok(None);
        }
        bail!(
            "conntrack tests need root (network namespaces, iptables, capture); set {}=1 to skip",
            peer::ALLOW_MISSING_ENV
        );
    }
    let (Some(tshark), Some(conntrack), Some(_), Some(setpriv)) = (
        peer::require("tshark", "tshark")?,
        peer::require("conntrack", "conntrack")?,
        peer::require("iptables", "iptables")?,
        peer::require("setpriv", "util-linux")?,
    ) else {
        return Ok(None);
    };
    Ok(Some((tshark, conntrack, setpriv)))
}

/// Starts podflow-exporter in the node as a node probe (`prefix`: a program it runs under, such as
/// setpriv), sending to `rx`; returns once it captures every node interface.
fn start_exporter(
    k: &KubeNode,
    dir: &Path,
    rx: &Receiver,
    prefix: &[&str],
    extra: &[&str],
) -> anyhow::Result<PeerProcess> {
    let exporter = podflow_exporter()?;
    let mut cmd = match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = k.node.command(first);
            c.args(rest).arg(exporter);
            c
        }
        None => k.node.command(exporter),
    };
    let collector = rx.local_addr()?.to_string();
    cmd.args(["-i", "cali*", "-i", "uplink0", "--direction", "in", "--conntrack"])
        .args(["--collector", &collector, "--tcp-linger", "5"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .args(extra);
    let mut p = PeerProcess::spawn("podflow-exporter", &mut cmd, dir)?;
    for i in NODE_INTERFACES {
        p.wait_stderr(&format!("capturing {i} ("))?;
    }
    Ok(p)
}

/// The exporter's Prometheus exposition, fetched inside the node.
fn metrics(k: &KubeNode, exporter: &PeerProcess) -> anyhow::Result<String> {
    let log = exporter.stderr_so_far()?;
    let addr: SocketAddr = log
        .split("metrics on http://")
        .nth(1)
        .and_then(|rest| rest.split("/metrics").next())
        .with_context(|| format!("no metrics address in:\n{log}"))?
        .parse()?;
    k.node.http_get(addr, "/metrics")
}

/// The value of sample `series` (name with labels, as printed) in an exposition.
fn sample(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The flow records (not NAT events) between `src` and `dst`, in either orientation.
fn records(rx: &Receiver, src: SocketAddr, dst: SocketAddr) -> Vec<&ExportedFlow> {
    let flows = rx.flows.iter().filter(|f| f.nat_event.is_none());
    flows
        .filter(|f| f.is(TCP, src, dst) || f.is(TCP, dst, src))
        .collect()
}

fn community_id(src: SocketAddr, dst: SocketAddr) -> Option<String> {
    let d = CommunityId::default().hash(src.ip(), dst.ip(), TCP, src.port(), dst.port())?;
    Some(d.base64().to_string())
}

/// Packets and octets both ways that the probe could not see (a connection older than the probe).
type Unseen = BTreeMap<SocketAddr, [u64; 4]>;

/// Checks every connection of the client in `oracle` against the exported records and NAT events;
/// returns the Service connections per backend as the records name them.
fn check_connections(
    rx: &Receiver,
    oracle: &[CtEntry],
    unseen: &Unseen,
) -> anyhow::Result<BTreeMap<IpAddr, usize>> {
    let mut per_backend = BTreeMap::new();
    let client = oracle.iter().filter(|e| e.orig.src.ip() == IpAddr::V4(CLIENT_IP));
    let mut checked = 0;
    for e in client {
        checked += 1;
        let (o, r) = (e.orig, e.reply);
        let found = records(rx, o.src, o.dst);
        let [f] = found.as_slice() else {
            bail!(
                "{} records of {} -> {}, want 1: {found:#?}",
                found.len(),
                o.src,
                o.dst
            );
        };
        ensure!(
            f.is(TCP, o.src, o.dst),
            "the client is not the record's source: {f:?}"
        );
        let u = unseen.get(&o.src).copied().unwrap_or_default();
        let want = [o.packets - u[0], o.bytes - u[1], r.packets - u[2], r.bytes - u[3]];
        let got = [
            f.packets,
            f.octets,
            f.reverse_packets.unwrap_or(0),
            f.reverse_octets.unwrap_or(0),
        ];
        ensure!(
            got == want,
            "{} -> {}: exported {got:?}, conntrack {want:?} ({e:?})",
            o.src,
            o.dst
        );
        ensure!(f.packets > 0 && got[2] > 0, "not both directions: {f:?}");
        let events: Vec<_> = rx
            .flows
            .iter()
            .filter(|n| n.nat_event.is_some() && n.is(TCP, o.src, o.dst))
            .collect();
        if !e.translated() {
            ensure!(
                f.post_nat_src.is_none() && f.conntrack_id.is_none(),
                "NAT fields on {f:?}"
            );
            ensure!(
                events.is_empty(),
                "NAT events of an untranslated connection: {events:#?}"
            );
            continue;
        }
        // The reply tuple (backend -> client, or server -> node) made no record of its own.
        ensure!(
            records(rx, r.src, r.dst).is_empty(),
            "a record of the reply tuple of {e:?}"
        );
        let post = (
            Some(r.dst.ip()),
            Some(r.dst.port()),
            Some(r.src.ip()),
            Some(r.src.port()),
        );
        let nat = |n: &ExportedFlow| {
            ensure!(
                (n.post_nat_src, n.post_nat_sport, n.post_nat_dst, n.post_nat_dport) == post,
                "post-NAT fields of {n:?}, conntrack {e:?}"
            );
            ensure!(
                (n.conntrack_id, n.conntrack_mark) == (Some(e.id), Some(e.mark)),
                "conntrack id and mark of {n:?}, conntrack {e:?}"
            );
            ensure!(n.post_nat_community_id == community_id(r.dst, r.src), "{n:?}");
            Ok(())
        };
        nat(f)?;
        let kinds: Vec<_> = events.iter().map(|n| n.nat_event).collect();
        ensure!(kinds == [Some(4), Some(5)], "NAT events of {e:?}: {events:#?}");
        for n in events {
            nat(n)?;
            ensure!(n.community_id == community_id(o.src, o.dst), "{n:?}");
        }
        if o.dst == SERVICE {
            *per_backend.entry(r.src.ip()).or_insert(0) += 1;
        }
    }
    let flows = rx.flows.iter().filter(|f| f.nat_event.is_none()).count();
    ensure!(
        flows == checked,
        "{flows} flow records for {checked} connections: {:#?}",
        rx.flows
    );
    Ok(per_backend)
}

/// The running lab: the node, its servers, the probe's collector socket.
struct Lab {
    dir: tempfile::TempDir,
    k: KubeNode,
    rx: Receiver,
    servers: Vec<(Server, usize)>,
}

impl Lab {
    fn new(tag: &str) -> anyhow::Result<Self> {
        let k = KubeNode::new(tag)?;
        let rx = Receiver::new(k.node.enter(|| Ok(UdpSocket::bind("127.0.0.1:0")?))?)?;
        let servers = vec![
            (
                Server::start(
                    &k.backends[0],
                    SocketAddrV4::new(BACKENDS[0], TARGET_PORT),
                    BACKEND_NAMES[0],
                )?,
                0,
            ),
            (
                Server::start(
                    &k.backends[1],
                    SocketAddrV4::new(BACKENDS[1], TARGET_PORT),
                    BACKEND_NAMES[1],
                )?,
                1,
            ),
            (Server::start(&k.ext, EXTERNAL, "ext")?, 2),
        ];
        Ok(Lab {
            dir: tempfile::tempdir()?,
            k,
            rx,
            servers,
        })
    }

    /// `n` requests to the Service from `threads` client threads at once; returns the answers.
    fn service_requests(&self, n: usize, threads: usize) -> anyhow::Result<Vec<String>> {
        let client = &self.k.client;
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    s.spawn(move || {
                        (t..n)
                            .step_by(threads)
                            .map(|_| Ok(exchange(client, SERVICE, b"hello")?.1))
                            .collect::<anyhow::Result<Vec<_>>>()
                    })
                })
                .collect();
            let mut all = Vec::new();
            for w in workers {
                all.extend(
                    w.join()
                        .map_err(|_| anyhow::anyhow!("client thread panicked"))??,
                );
            }
            Ok(all)
        })
    }

    /// Stops the servers with a last direct connection each (pod to pod, or masqueraded to `ext`).
    fn stop_servers(&mut self) -> anyhow::Result<()> {
        for (server, _) in self.servers.drain(..) {
            server.stop(&self.k.client)?;
        }
        Ok(())
    }

    /// Waits until the exporter has exported a record of every connection of the client.
    fn wait_records(&mut self, conntrack: &Path) -> anyhow::Result<Vec<CtEntry>> {
        let oracle = conntrack_list(conntrack, &self.k.node)?;
        let client: Vec<_> = oracle
            .iter()
            .filter(|e| e.orig.src.ip() == IpAddr::V4(CLIENT_IP))
            .collect();
        self.rx
            .wait_for("a record of every connection", PEER_TIMEOUT, |flows| {
                client.iter().all(|e| {
                    flows
                        .iter()
                        .any(|f| f.nat_event.is_none() && f.is(TCP, e.orig.src, e.orig.dst))
                })
            })?;
        Ok(oracle)
    }

    /// Deletes the client's connections from conntrack and waits for `n` NAT delete events.
    fn delete_connections(&mut self, conntrack: &Path, n: usize) -> anyhow::Result<()> {
        let client = CLIENT_IP.to_string();
        let out = self
            .k
            .node
            .command(conntrack)
            .args(["-D", "-s", &client])
            .output()?;
        ensure!(out.status.success(), "conntrack -D: {}", peer::describe(&out));
        self.rx.wait_for(
            "a NAT delete event per translated connection",
            PEER_TIMEOUT,
            |flows| flows.iter().filter(|f| f.nat_event == Some(5)).count() >= n,
        )
    }
}

/// tshark reads the exported messages with no complaint and shows the NAT elements.
fn check_tshark(tshark: &Path, lab: &Lab) -> anyhow::Result<()> {
    let capture = lab.dir.path().join("exported.pcap");
    let (src, dst) = ("127.0.0.1:40000".parse()?, "127.0.0.1:4739".parse()?);
    std::fs::write(&capture, write_pcap(&lab.rx.messages, src, dst, 1_700_000_000)?)?;
    let d = parse_pdml(&tshark_pdml(tshark, &capture, 4739, lab.dir.path())?)?;
    ensure!(d.problems.is_empty(), "tshark flagged: {:?}", d.problems);
    let shown = |name: &str| -> Vec<String> {
        let fields = d.flows.iter().flatten().filter(|f| f.name == name);
        fields.map(|f| f.show.clone()).collect()
    };
    let dst_ips = shown("cflow.post_natdestination_ipv4_address");
    for b in BACKENDS {
        ensure!(
            dst_ips.contains(&b.to_string()),
            "tshark shows no post-NAT {b}: {dst_ips:?}"
        );
    }
    let src_ips = shown("cflow.post_natsource_ipv4_address");
    ensure!(
        src_ips.iter().any(|s| s == "198.18.4.1"),
        "no masqueraded source: {src_ips:?}"
    );
    ensure!(shown("cflow.post_naptdestination_transport_port").contains(&"8080".to_string()));
    ensure!(!shown("cflow.post_naptsource_transport_port").is_empty());
    let events = shown("cflow.nat_event");
    ensure!(
        events.contains(&"4".into()) && events.contains(&"5".into()),
        "natEvent: {events:?}"
    );
    let specs: Vec<_> = d.templates.iter().flat_map(|(_, s)| s.iter().copied()).collect();
    for spec in [
        (225, 4, 0),
        (226, 4, 0),
        (227, 2, 0),
        (228, 2, 0),
        (230, 1, 0),
        (323, 8, 0),
    ] {
        ensure!(
            specs.contains(&spec),
            "no template field {spec:?} in {:?}",
            d.templates
        );
    }
    for (id, len) in [(2, 65535), (3, 4), (4, 4)] {
        ensure!(
            specs.contains(&(id, len, 32473)),
            "no podflow element {id} in templates"
        );
    }
    Ok(())
}

#[test]
fn service_connections_are_one_biflow_naming_their_backend() -> anyhow::Result<()> {
    let Some((tshark, conntrack, _)) = peers()? else {
        return Ok(());
    };
    let mut lab = Lab::new("ctsvc")?;
    // A connection older than the probe: learned from the startup dump. It waits, quiet, once conntrack
    // has counted its handshake and first data both ways (SYN, ACK, data; SYN-ACK, ACK).
    let mut early = lab.k.client.enter(|| Ok(TcpStream::connect(SERVICE)?))?;
    early.set_read_timeout(Some(PEER_TIMEOUT))?;
    early.write_all(b"early")?;
    let early_addr = early.local_addr()?;
    let mut before = None;
    peer::wait_until("the early connection to be quiet", PEER_TIMEOUT, || {
        let list = conntrack_list(&conntrack, &lab.k.node)?;
        before = list.into_iter().find(|e| e.orig.src == early_addr);
        Ok(before.is_some_and(|e| (e.orig.packets, e.reply.packets) == (3, 2)))
    })?;
    let before = before.context("early connection")?;
    let unseen = Unseen::from([(
        early_addr,
        [
            before.orig.packets,
            before.orig.bytes,
            before.reply.packets,
            before.reply.bytes,
        ],
    )]);

    let mut exporter = start_exporter(
        &lab.k,
        lab.dir.path(),
        &lab.rx,
        &[],
        &["--idle-timeout", "600", "--conntrack-sweep", "1"],
    )?;
    exporter.wait_stderr("conntrack: 1 translated connections")?;
    early.write_all(b" and later")?;
    early.shutdown(std::net::Shutdown::Write)?;
    let mut answer = String::new();
    early.read_to_string(&mut answer)?;
    let mut answers = vec![answer];
    answers.extend(lab.service_requests(50, 1)?);
    for _ in 0..5 {
        exchange(&lab.k.client, SocketAddr::V4(EXTERNAL), b"outside")?;
    }
    lab.stop_servers()?;

    let oracle = lab.wait_records(&conntrack)?;
    let translated = oracle
        .iter()
        .filter(|e| e.translated() && e.orig.src.ip() == IpAddr::V4(CLIENT_IP));
    let translated = translated.count();
    // 51 Service connections, 5 masqueraded ones and the external server's last one.
    assert_eq!(translated, 57, "{oracle:#?}");
    let m = metrics(&lab.k, &exporter)?;
    assert_eq!(sample(&m, "podflow_exporter_conntrack_up"), Some(1), "{m}");
    assert_eq!(
        sample(&m, "podflow_exporter_nat_flows_total{result=\"resolved\"}"),
        Some(57),
        "{m}"
    );
    assert_eq!(
        sample(&m, "podflow_exporter_nat_flows_total{result=\"untranslated\"}"),
        Some(2),
        "{m}"
    );
    assert_eq!(
        sample(&m, "podflow_exporter_nat_flows_total{result=\"unresolved\"}"),
        Some(0),
        "{m}"
    );
    // Dumped: the startup dump, then a sweep a second while the early connection is open.
    assert!(
        sample(&m, "podflow_exporter_conntrack_dumped_total").unwrap_or(0) >= 1,
        "{m}"
    );
    assert!(
        sample(&m, "podflow_exporter_conntrack_events_total{type=\"new\"}").unwrap_or(0) >= 58,
        "{m}"
    );
    // The early connection's delete comes from a sweep: the kernel sends no event for a connection
    // that began before the probe listened.
    lab.delete_connections(&conntrack, translated)?;
    let m = metrics(&lab.k, &exporter)?;
    assert!(
        sample(&m, "podflow_exporter_conntrack_sweeps_total").unwrap_or(0) >= 1,
        "{m}"
    );
    let stderr = lab.rx.stop_exporter(exporter)?;

    let exported = check_connections(&lab.rx, &oracle, &unseen).context(stderr)?;
    assert_eq!(exported, per_backend(&oracle));
    assert_eq!(exported, answers_per_backend(&answers)?);
    assert_eq!(exported.values().sum::<usize>(), 51);
    eprintln!("connections per backend: exported {exported:?}, conntrack agrees");
    check_tshark(&tshark, &lab)
}

/// With a tiny event buffer the kernel drops events (ENOBUFS); the probe counts it, resynchronises with
/// a dump before the next packets, and every connection is still one biflow with one create and one
/// delete event.
#[test]
fn event_storms_are_survived_by_resynchronising() -> anyhow::Result<()> {
    let Some((_, conntrack, _)) = peers()? else {
        return Ok(());
    };
    let mut lab = Lab::new("ctstorm")?;
    let exporter = start_exporter(
        &lab.k,
        lab.dir.path(),
        &lab.rx,
        &[],
        &["--conntrack-buffer", "4", "--idle-timeout", "600"],
    )?;
    let answers = lab.service_requests(200, 8)?;
    lab.stop_servers()?;
    let oracle = lab.wait_records(&conntrack)?;
    lab.delete_connections(&conntrack, 201)?;
    let m = metrics(&lab.k, &exporter)?;
    let overruns = sample(&m, "podflow_exporter_conntrack_overruns_total").unwrap_or(0);
    assert!(overruns >= 1, "no event was lost with a 4 KiB buffer:\n{m}");
    assert_eq!(
        sample(&m, "podflow_exporter_conntrack_resyncs_total"),
        Some(overruns),
        "{m}"
    );
    assert_eq!(
        sample(&m, "podflow_exporter_conntrack_dump_errors_total"),
        Some(0),
        "{m}"
    );
    lab.rx.stop_exporter(exporter)?;
    let exported = check_connections(&lab.rx, &oracle, &Unseen::new())?;
    assert_eq!(exported, per_backend(&oracle));
    assert_eq!(exported, answers_per_backend(&answers)?);
    eprintln!("{overruns} overruns; connections per backend {exported:?}");
    Ok(())
}

/// Without CAP_NET_ADMIN the probe says so once, runs on without conntrack, and counts its flows as
/// unresolved: a Service connection is then two records, the client's and the backend's.
#[test]
fn without_cap_net_admin_the_probe_warns_once_and_runs_on() -> anyhow::Result<()> {
    let Some((_, conntrack, setpriv)) = peers()? else {
        return Ok(());
    };
    let mut lab = Lab::new("ctcap")?;
    let setpriv = setpriv.to_string_lossy().into_owned();
    let prefix = [
        setpriv.as_str(),
        "--bounding-set=-net_admin",
        "--inh-caps=-net_admin",
    ];
    // Without conntrack each half of a connection sees one FIN only: the idle timeout ends them.
    let exporter = start_exporter(&lab.k, lab.dir.path(), &lab.rx, &prefix, &["--idle-timeout", "3"])?;
    let log = exporter.stderr_so_far()?;
    let warnings: Vec<_> = log.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0].contains("--conntrack") && warnings[0].contains("CAP_NET_ADMIN"),
        "{log}"
    );
    lab.service_requests(3, 1)?;
    let oracle = conntrack_list(&conntrack, &lab.k.node)?;
    let svc: Vec<_> = oracle.iter().filter(|e| e.orig.dst == SERVICE).collect();
    assert_eq!(svc.len(), 3);
    lab.rx
        .wait_for("both halves of every Service connection", PEER_TIMEOUT, |flows| {
            svc.iter().all(|e| {
                let has = |s, d| {
                    flows
                        .iter()
                        .any(|f: &ExportedFlow| f.is(TCP, s, d) || f.is(TCP, d, s))
                };
                has(e.orig.src, e.orig.dst) && has(e.reply.src, e.reply.dst)
            })
        })?;
    let m = metrics(&lab.k, &exporter)?;
    assert_eq!(sample(&m, "podflow_exporter_conntrack_up"), Some(0), "{m}");
    let unresolved = sample(&m, "podflow_exporter_nat_flows_total{result=\"unresolved\"}");
    assert_eq!(unresolved, Some(lab.rx.flows.len() as u64), "{m}");
    assert!(
        lab.rx
            .flows
            .iter()
            .all(|f| f.post_nat_src.is_none() && f.nat_event.is_none())
    );
    lab.stop_servers()?;
    lab.rx.stop_exporter(exporter)?;
    Ok(())
}
