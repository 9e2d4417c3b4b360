//! A Kubernetes node in network namespaces, as kube-proxy (iptables mode) and Calico build it, for the
//! conntrack tests of podflow-exporter (root only; needs `iptables` and `conntrack`).
//!
//! ```text
//!   client (198.18.1.2) --calic0--+                 +--calib1-- be1 (198.18.2.2:8080)
//!                                 |      node       |
//!                                 |  routes, DNAT   +--calib2-- be2 (198.18.3.2:8080)
//!                                 |  MASQUERADE     |
//!                                 +----uplink0------+-- ext (198.18.4.2:8081)
//! ```
//!
//! Each pod namespace has one veth pair to the node (the pod's `eth0`, the node's `cali*`), a /24 per
//! pair with static neighbours (no ARP ever), and a default route through the node, which forwards. The
//! node's nat table sends the made-up ClusterIP 198.19.0.10:80 to either backend at random (the
//! `statistic` match, as kube-proxy splits a Service) and masquerades what leaves through `uplink0`
//! towards `ext`, a host outside the cluster. Connection accounting is on, so `conntrack -L` reports
//! packets and octets per direction: the oracle of which backend served a connection and how much it
//! carried.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use anyhow::{Context, bail};

use crate::netns::{Netns, VethEnd, veth_pair};
use crate::peer::{self, PEER_TIMEOUT};

/// The Service's ClusterIP (in the 198.18.0.0/15 benchmarking range, translated inside the node).
pub const CLUSTER_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 10);
/// The Service's port.
pub const SERVICE_PORT: u16 = 80;
/// The backends' port (the Service's targetPort).
pub const TARGET_PORT: u16 = 8080;
/// The client pod.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
/// The two backend pods.
pub const BACKENDS: [Ipv4Addr; 2] = [Ipv4Addr::new(198, 18, 2, 2), Ipv4Addr::new(198, 18, 3, 2)];
/// The names the backends' servers answer with, in [`BACKENDS`] order.
pub const BACKEND_NAMES: [&str; 2] = ["be1", "be2"];
/// The node's address towards `ext`: masqueraded connections leave from it.
pub const UPLINK_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 4, 1);
/// The host outside the cluster, and its server's port.
pub const EXTERNAL: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 4, 2), 8081);
/// The node's interfaces a node probe captures: the pod-side veths and the uplink.
pub const NODE_INTERFACES: [&str; 4] = ["calic0", "calib1", "calib2", "uplink0"];

/// The node and its pods. Dropping it deletes every namespace.
pub struct KubeNode {
    /// The node (host network namespace): where the probe runs.
    pub node: Netns,
    /// The client pod.
    pub client: Netns,
    /// The backend pods, in [`BACKENDS`] order.
    pub backends: [Netns; 2],
    /// The host outside the cluster.
    pub ext: Netns,
}

impl KubeNode {
    /// Builds the namespaces, links, routes and nat rules; `tag` names the namespaces.
    pub fn new(tag: &str) -> anyhow::Result<Self> {
        let k = KubeNode {
            node: Netns::new(&format!("{tag}-node"))?,
            client: Netns::new(&format!("{tag}-cl"))?,
            backends: [
                Netns::new(&format!("{tag}-be1"))?,
                Netns::new(&format!("{tag}-be2"))?,
            ],
            ext: Netns::new(&format!("{tag}-ext"))?,
        };
        let pods = [
            (&k.client, "calic0", 1u8),
            (&k.backends[0], "calib1", 2),
            (&k.backends[1], "calib2", 3),
            (&k.ext, "uplink0", 4),
        ];
        for (ns, node_if, net) in pods {
            veth_pair(
                &VethEnd {
                    ns: &k.node,
                    name: node_if,
                    mac: &format!("02:00:00:00:{net:02x}:01"),
                    addr: Ipv4Addr::new(198, 18, net, 1),
                },
                &VethEnd {
                    ns,
                    name: "eth0",
                    mac: &format!("02:00:00:00:{net:02x}:02"),
                    addr: Ipv4Addr::new(198, 18, net, 2),
                },
            )?;
            if node_if != "uplink0" {
                ns.ip(&["route", "add", "default", "via", &format!("198.18.{net}.1")])?;
            }
        }
        k.node.sysctl("net.ipv4.ip_forward", "1")?;
        k.node
            .sysctl("net.netfilter.nf_conntrack_acct", "1")
            .context("conntrack accounting (is nf_conntrack in the kernel?)")?;
        let svc = format!("{CLUSTER_IP}/32");
        let (be1, be2) = (
            format!("{}:{TARGET_PORT}", BACKENDS[0]),
            format!("{}:{TARGET_PORT}", BACKENDS[1]),
        );
        let dport = SERVICE_PORT.to_string();
        let rules: [&[&str]; 5] = [
            &["-N", "KUBE-SVC-PODFLOW"],
            &[
                "-A",
                "PREROUTING",
                "-d",
                &svc,
                "-p",
                "tcp",
                "--dport",
                &dport,
                "-j",
                "KUBE-SVC-PODFLOW",
            ],
            &[
                "-A",
                "KUBE-SVC-PODFLOW",
                "-p",
                "tcp",
                "-m",
                "statistic",
                "--mode",
                "random",
                "--probability",
                "0.5",
                "-j",
                "DNAT",
                "--to-destination",
                &be1,
            ],
            &[
                "-A",
                "KUBE-SVC-PODFLOW",
                "-p",
                "tcp",
                "-j",
                "DNAT",
                "--to-destination",
                &be2,
            ],
            &["-A", "POSTROUTING", "-o", "uplink0", "-j", "MASQUERADE"],
        ];
        for rule in rules {
            peer::run(k.node.command("iptables").args(["-w", "-t", "nat"]).args(rule))
                .context("iptables in the node namespace")?;
        }
        Ok(k)
    }
}

/// A TCP server in a namespace: every connection gets the server's name once the client has closed
/// its side, each on a thread of its own (a connection may stay open while others come and go).
pub struct Server {
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
    ns_name: String,
    accept: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Server {
    /// Listens on `addr` inside `ns`, answering with `name`.
    pub fn start(ns: &Netns, addr: SocketAddrV4, name: &'static str) -> anyhow::Result<Self> {
        let listener = ns.enter(move || Ok(TcpListener::bind(addr)?))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let accept = std::thread::spawn(move || -> anyhow::Result<()> {
            let mut handlers = Vec::new();
            loop {
                let (s, _) = listener.accept()?;
                let last = stop2.load(Ordering::SeqCst);
                handlers.push(std::thread::spawn(move || serve(s, name)));
                if last {
                    break;
                }
            }
            drop(listener);
            for h in handlers {
                h.join().map_err(|_| anyhow::anyhow!("a handler panicked"))??;
            }
            Ok(())
        });
        Ok(Server {
            stop,
            addr: SocketAddr::V4(addr),
            ns_name: ns.name().to_string(),
            accept: Some(accept),
        })
    }

    /// Stops accepting: the next connection, made from `from` (a direct one, pod to pod), is the last
    /// one served. Returns that connection's client address once every connection was served.
    pub fn stop(mut self, from: &Netns) -> anyhow::Result<SocketAddr> {
        self.stop.store(true, Ordering::SeqCst);
        let (client, _) = exchange(from, self.addr, b"last")?;
        match self.accept.take().map(JoinHandle::join) {
            Some(Ok(r)) => r.with_context(|| format!("server in {}", self.ns_name))?,
            _ => bail!("the server in {} panicked", self.ns_name),
        }
        Ok(client)
    }
}

fn serve(mut s: TcpStream, name: &str) -> anyhow::Result<()> {
    s.set_read_timeout(Some(PEER_TIMEOUT))?;
    let mut request = Vec::new();
    s.read_to_end(&mut request)?;
    s.write_all(name.as_bytes())?;
    Ok(())
}

/// One request from `from` to `to`: sends `request`, closes its side, reads the answer to the end.
/// Returns the client's address and the answer.
pub fn exchange(
    from: &Netns,
    to: SocketAddr,
    request: &'static [u8],
) -> anyhow::Result<(SocketAddr, String)> {
    let mut c = from.enter(move || Ok(TcpStream::connect(to)?))?;
    c.set_read_timeout(Some(PEER_TIMEOUT))?;
    let local = c.local_addr()?;
    c.write_all(request)?;
    c.shutdown(std::net::Shutdown::Write)?;
    let mut answer = String::new();
    c.read_to_string(&mut answer)?;
    Ok((local, answer))
}

/// One direction of a conntrack entry: its tuple and accounting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtDirection {
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// Packets counted.
    pub packets: u64,
    /// IP octets counted.
    pub bytes: u64,
}

/// A TCP or UDP connection as `conntrack -L` lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtEntry {
    /// The original direction.
    pub orig: CtDirection,
    /// The reply direction (before reverse translation).
    pub reply: CtDirection,
    /// conntrack's id.
    pub id: u32,
    /// The connection mark.
    pub mark: u32,
}

impl CtEntry {
    /// True when the kernel translated the connection.
    pub fn translated(&self) -> bool {
        self.reply.src != self.orig.dst || self.reply.dst != self.orig.src
    }
}

/// Service connections per backend, as conntrack translated them.
pub fn per_backend(oracle: &[CtEntry]) -> BTreeMap<IpAddr, usize> {
    let service = SocketAddr::V4(SocketAddrV4::new(CLUSTER_IP, SERVICE_PORT));
    let mut m = BTreeMap::new();
    for e in oracle.iter().filter(|e| e.orig.dst == service) {
        *m.entry(e.reply.src.ip()).or_insert(0) += 1;
    }
    m
}

/// Service connections per backend, as the client learned from the answers ([`BACKEND_NAMES`]).
pub fn answers_per_backend(answers: &[String]) -> anyhow::Result<BTreeMap<IpAddr, usize>> {
    let mut m = BTreeMap::new();
    for a in answers {
        let i = BACKEND_NAMES
            .iter()
            .position(|n| n == a)
            .with_context(|| format!("answer {a:?} names no backend"))?;
        *m.entry(IpAddr::V4(BACKENDS[i])).or_insert(0) += 1;
    }
    Ok(m)
}

/// `conntrack -L -o xml,id` inside `ns`: its TCP and UDP connections.
pub fn conntrack_list(conntrack: &Path, ns: &Netns) -> anyhow::Result<Vec<CtEntry>> {
    let xml = peer::run(ns.command(conntrack).args(["-L", "-o", "xml,id"]))?;
    parse_conntrack_xml(&xml)
}

/// Parses `conntrack -o xml,id` output (TCP and UDP flows; others are skipped).
pub fn parse_conntrack_xml(xml: &str) -> anyhow::Result<Vec<CtEntry>> {
    let doc = roxmltree::Document::parse(xml).context("conntrack printed invalid XML")?;
    let text = |n: roxmltree::Node<'_, '_>, path: &[&str]| -> Option<String> {
        let mut cur = n;
        for p in path {
            cur = cur.children().find(|c| c.has_tag_name(*p))?;
        }
        cur.text().map(str::to_string)
    };
    let mut out = Vec::new();
    for flow in doc.descendants().filter(|n| n.has_tag_name("flow")) {
        let meta = |dir: &str| {
            flow.children()
                .find(|c| c.has_tag_name("meta") && c.attribute("direction") == Some(dir))
        };
        let (Some(o), Some(r), Some(ind)) = (meta("original"), meta("reply"), meta("independent")) else {
            continue;
        };
        let proto = o
            .descendants()
            .find(|c| c.has_tag_name("layer4"))
            .and_then(|l| l.attribute("protoname"));
        if !matches!(proto, Some("tcp" | "udp")) {
            continue;
        }
        let direction = |m: roxmltree::Node<'_, '_>| -> anyhow::Result<CtDirection> {
            let get = |path: &[&str]| {
                text(m, path).with_context(|| format!("conntrack entry without {path:?}: {xml}"))
            };
            let addr = |ip: &[&str], port: &[&str]| -> anyhow::Result<SocketAddr> {
                Ok(SocketAddr::new(get(ip)?.parse()?, get(port)?.parse()?))
            };
            Ok(CtDirection {
                src: addr(&["layer3", "src"], &["layer4", "sport"])?,
                dst: addr(&["layer3", "dst"], &["layer4", "dport"])?,
                packets: get(&["counters", "packets"])?.parse()?,
                bytes: get(&["counters", "bytes"])?.parse()?,
            })
        };
        out.push(CtEntry {
            orig: direction(o)?,
            reply: direction(r)?,
            id: text(ind, &["id"])
                .context("conntrack entry without id")?
                .parse()?,
            mark: text(ind, &["mark"]).unwrap_or_default().parse().unwrap_or(0),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conntrack_xml_is_parsed() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?>
<conntrack>
<flow><meta direction="original"><layer3 protonum="2" protoname="ipv4"><src>198.18.1.2</src><dst>198.19.0.10</dst></layer3><layer4 protonum="6" protoname="tcp"><sport>37422</sport><dport>80</dport></layer4><counters><packets>6</packets><bytes>322</bytes></counters></meta><meta direction="reply"><layer3 protonum="2" protoname="ipv4"><src>198.18.2.2</src><dst>198.18.1.2</dst></layer3><layer4 protonum="6" protoname="tcp"><sport>8080</sport><dport>37422</dport></layer4><counters><packets>4</packets><bytes>219</bytes></counters></meta><meta direction="independent"><state>TIME_WAIT</state><timeout>119</timeout><mark>0</mark><use>1</use><id>560526641</id><assured/></meta></flow>
<flow><meta direction="original"><layer3 protonum="2" protoname="ipv4"><src>10.0.0.1</src><dst>10.0.0.2</dst></layer3><layer4 protonum="1" protoname="icmp"></layer4></meta><meta direction="reply"></meta><meta direction="independent"><id>1</id></meta></flow>
</conntrack>"#;
        let e = parse_conntrack_xml(xml).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].orig.dst, "198.19.0.10:80".parse().unwrap());
        assert_eq!(e[0].reply.src, "198.18.2.2:8080".parse().unwrap());
        assert_eq!(
            (e[0].orig.packets, e[0].reply.bytes, e[0].id),
            (6, 219, 560526641)
        );
        assert!(e[0].translated());
    }
}
