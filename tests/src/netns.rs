//! Network namespaces joined by veth pairs, for tests that capture real traffic (root only).
//!
//! Each [`Netns`] is a fresh namespace named after the test and the process id, deleted when dropped,
//! also when the test panics. Programs run inside with [`Netns::command`] (`ip netns exec`); the test
//! itself opens sockets inside with [`Netns::enter`], which runs a closure on a thread that has joined the
//! namespace: a socket stays in the namespace it was created in, whichever thread uses it later.
//!
//! A fresh namespace has nothing bound, so fixed ports inside one cannot clash with other tests.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};

use crate::peer;

/// A network namespace deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates namespace `podflow-<tag>-<pid>` with its loopback up and IPv6 off (so the kernel sends no
    /// router or neighbour solicitations of its own on the test's interfaces). `tag` keeps the tests of
    /// one process apart.
    pub fn new(tag: &str) -> anyhow::Result<Self> {
        let name = format!("podflow-{tag}-{}", std::process::id());
        if Path::new("/run/netns").join(&name).exists() {
            // Left by an earlier process with the same pid that was killed before its cleanup.
            let _ = ip(&["netns", "del", &name]);
        }
        ip(&["netns", "add", &name])?;
        let ns = Netns { name };
        ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1")?;
        ns.sysctl("net.ipv6.conf.default.disable_ipv6", "1")?;
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n <ns> <args>`, returning its stdout.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Sets a sysctl inside the namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> anyhow::Result<()> {
        peer::run(
            self.command("sysctl")
                .args(["-q", "-w", &format!("{key}={value}")]),
        )?;
        Ok(())
    }

    /// A command that runs `program` inside the namespace (`ip netns exec`, which then execs `program`,
    /// so the child's pid is the program's).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs `f` on a thread that has joined the namespace, and returns its result. Sockets `f` creates
    /// belong to the namespace for their whole life.
    pub fn enter<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let path = Path::new("/run/netns").join(&self.name);
        let file = File::open(&path).with_context(|| format!("opening {path:?}"))?;
        let name = self.name.clone();
        std::thread::spawn(move || {
            move_into_link_name_space(std::os::fd::AsFd::as_fd(&file), Some(LinkNameSpaceType::Network))
                .with_context(|| format!("joining network namespace {name}"))?;
            f()
        })
        .join()
        .map_err(|_| anyhow::anyhow!("a thread in namespace {} panicked", self.name))?
    }

    /// An HTTP/1.1 GET of `path` from inside the namespace; returns the whole response, head and body.
    pub fn http_get(&self, addr: std::net::SocketAddr, path: &str) -> anyhow::Result<String> {
        use std::io::{Read, Write};
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        self.enter(move || {
            let mut s = std::net::TcpStream::connect(addr)?;
            s.set_read_timeout(Some(peer::PEER_TIMEOUT))?;
            s.write_all(request.as_bytes())?;
            let mut text = String::new();
            s.read_to_string(&mut text)?;
            Ok(text)
        })
    }

    /// True when some socket of this namespace is bound to UDP `port`.
    pub fn udp_port_bound(&self, port: u16) -> anyhow::Result<bool> {
        // /proc/net follows the process's first thread; thread-self shows the entering thread's namespace.
        self.enter(move || peer::udp_port_bound_in(Path::new("/proc/thread-self/net"), port))
    }

    /// The TCP connections of this namespace as (local port, remote port, state) from
    /// `/proc/thread-self/net/tcp` (IPv4), states as the kernel numbers them (1 established, 9 last ACK,
    /// 10 listen, ...).
    pub fn tcp_sockets(&self) -> anyhow::Result<Vec<(u16, u16, u8)>> {
        self.enter(|| {
            let text = std::fs::read_to_string("/proc/thread-self/net/tcp")
                .context("reading /proc/thread-self/net/tcp")?;
            let port = |endpoint: &str| {
                endpoint
                    .rsplit(':')
                    .next()
                    .and_then(|h| u16::from_str_radix(h, 16).ok())
            };
            let mut out = Vec::new();
            for line in text.lines().skip(1) {
                let cols: Vec<&str> = line.split_whitespace().collect();
                let (Some(local), Some(remote), Some(state)) = (cols.get(1), cols.get(2), cols.get(3)) else {
                    bail!("unexpected line in /proc/net/tcp: {line}");
                };
                match (port(local), port(remote), u8::from_str_radix(state, 16).ok()) {
                    (Some(l), Some(r), Some(s)) => out.push((l, r, s)),
                    _ => bail!("unexpected line in /proc/net/tcp: {line}"),
                }
            }
            Ok(out)
        })
    }

    /// Waits (bounded) until no TCP connection from local `port` to remote `peer_port` is left in the
    /// namespace: the kernel has received the last ACK of its close.
    pub fn wait_tcp_closed(&self, port: u16, peer_port: u16, timeout: Duration) -> anyhow::Result<()> {
        let what = format!("TCP connection {port} <-> {peer_port} in {} to close", self.name);
        peer::wait_until(&what, timeout, || {
            Ok(!self
                .tcp_sockets()?
                .iter()
                .any(|&(l, r, _)| l == port && r == peer_port))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace also destroys the veth ends inside it, and so their peers.
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!(
                "podflow-e2e: could not delete network namespace {}: {e:#}",
                self.name
            );
        }
    }
}

/// One end of a veth pair: its namespace's interface name, MAC and IPv4 address (/24).
#[derive(Clone, Debug)]
pub struct VethEnd<'a> {
    /// Namespace holding this end.
    pub ns: &'a Netns,
    /// Interface name inside the namespace.
    pub name: &'a str,
    /// Locally administered MAC address.
    pub mac: &'a str,
    /// IPv4 address, in a /24 shared with the other end.
    pub addr: Ipv4Addr,
}

/// Creates a veth pair between two namespaces, addresses both ends, adds static neighbour entries (so no
/// ARP packet is ever sent) and brings both ends up.
pub fn veth_pair(a: &VethEnd<'_>, b: &VethEnd<'_>) -> anyhow::Result<()> {
    ip(&[
        "link", "add", a.name, "address", a.mac, "netns", &a.ns.name, "type", "veth", "peer", "name", b.name,
        "address", b.mac, "netns", &b.ns.name,
    ])?;
    for (end, other) in [(a, b), (b, a)] {
        end.ns
            .ip(&["addr", "add", &format!("{}/24", end.addr), "dev", end.name])?;
        end.ns.ip(&[
            "neigh",
            "replace",
            &other.addr.to_string(),
            "lladdr",
            other.mac,
            "dev",
            end.name,
            "nud",
            "permanent",
        ])?;
        end.ns.ip(&["link", "set", end.name, "up"])?;
    }
    Ok(())
}

/// Runs `ip <args>` and returns its stdout.
fn ip(args: &[&str]) -> anyhow::Result<String> {
    peer::run(Command::new("ip").args(args))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    fn root() -> bool {
        rustix::process::geteuid().is_root()
    }

    #[test]
    fn namespaces_are_joined_and_deleted() {
        if !root() {
            eprintln!("!!!!! SKIPPED: network namespaces need root !!!!!");
            return;
        }
        let a = Netns::new("unit-a").unwrap();
        let b = Netns::new("unit-b").unwrap();
        veth_pair(
            &VethEnd {
                ns: &a,
                name: "ua0",
                mac: "02:00:00:00:01:0a",
                addr: Ipv4Addr::new(198, 18, 7, 1),
            },
            &VethEnd {
                ns: &b,
                name: "ub0",
                mac: "02:00:00:00:01:0b",
                addr: Ipv4Addr::new(198, 18, 7, 2),
            },
        )
        .unwrap();
        // A listener in b is reachable from a over the veth, and its socket shows in b only.
        let listener = b.enter(|| Ok(TcpListener::bind("198.18.7.2:0")?)).unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(
            b.tcp_sockets()
                .unwrap()
                .iter()
                .any(|&(l, _, s)| l == port && s == 10)
        );
        assert!(!a.tcp_sockets().unwrap().iter().any(|&(l, _, _)| l == port));
        let stream = a
            .enter(move || Ok(TcpStream::connect(("198.18.7.2", port))?))
            .unwrap();
        assert_eq!(stream.peer_addr().unwrap().port(), port);
        let path = Path::new("/run/netns").join(a.name());
        drop(stream);
        drop(a);
        assert!(!path.exists(), "{path:?} survived its Netns");
    }
}
