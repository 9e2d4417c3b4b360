//! A deterministic pcap generator whose flows, packets and octets are known exactly, to check that an
//! exporter (or any flow meter) reading the file counts every packet once.
//!
//! The file holds many interleaved TCP connections (handshake, request/response data both ways, FIN both
//! ways and a final ACK, or a RST), UDP request/response flows (DNS-like, some unanswered, optionally some
//! with an IPv4-fragmented response), and ICMP / ICMPv6 echo sessions, over IPv4 and IPv6, framed as
//! Ethernet. The same [`Config`] (seed included) always gives the same file.
//!
//! What makes the counts exact for a flow meter keyed by 5-tuple (see [`script`] for the timing bounds):
//! - every flow has its own key: TCP and UDP flows a unique (client address, client port), ICMP flows a
//!   unique client address, so ICMP flows keyed by address pair and type never merge;
//! - gaps inside a flow stay below [`script::MAX_GAP_US`] and no flow lasts a minute, so no idle or active
//!   timeout splits one; a TCP connection sends nothing after its final ACK or RST;
//! - octets are IP octets (IP header and everything after it), never the Ethernet header, the padding of
//!   short frames received from the wire, or the capture's snap length.

pub mod script;
pub mod wire;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::path::Path;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use script::{Close, Flow, FlowPlan, Kind};
use wire::{FrameBuilder, L4, Packet, PcapWriter};

/// What to generate.
#[derive(Clone, Debug)]
pub struct Config {
    /// TCP connections.
    pub tcp: u64,
    /// UDP request/response flows.
    pub udp: u64,
    /// ICMP / ICMPv6 echo flows.
    pub icmp: u64,
    /// Share of flows over IPv6, in percent.
    pub v6_percent: u8,
    /// Seed of every random choice.
    pub seed: u64,
    /// Data segments per TCP connection (requests and responses together), inclusive range.
    pub tcp_segments: (u32, u32),
    /// Echo requests per ICMP flow, inclusive range.
    pub echoes: (u32, u32),
    /// UDP flows (IPv4) whose response is a datagram larger than the MTU, sent as IPv4 fragments.
    pub fragmented: u64,
    /// Mean number of new flows per second of capture time (their concurrency follows from it).
    pub flows_per_sec: f64,
    /// Snap length: frames longer than this are cut in the file (their IP length still counts).
    pub snaplen: u32,
    /// Capture time of the first packet, in seconds since the epoch.
    pub start_secs: u64,
    /// Open every flow before any flow sends its second packet, so all of them are open at once (a
    /// memory benchmark's worst case): flows start one microsecond apart, `flows_per_sec` is ignored,
    /// and each flow's second packet waits until the last flow has started, a gap of up to one
    /// microsecond per flow on top of the usual ones.
    pub all_concurrent: bool,
    /// Client addresses of TCP and UDP flows per family, 1 to [`MAX_CLIENTS`]: flows take them round
    /// robin, client `c` being 10.(1 + c / 256).(c % 256).2 (or 2001:db8:c::(c + 1)). Fewer clients
    /// means more flows per client, as when a known set of pods makes all the traffic.
    pub clients: u64,
}

impl Config {
    /// The mixed file the exactness and collector peer tests share: every kind of flow the generator
    /// makes (TCP with FIN and RST, UDP with fragments and unanswered requests, ICMP, 35 % IPv6), small
    /// enough for a quick test, large enough that thousands of flows are open at once and export messages
    /// come in bursts.
    pub fn mixed() -> Config {
        Config {
            tcp: 2_400,
            udp: 1_200,
            icmp: 400,
            v6_percent: 35,
            fragmented: 40,
            seed: 0x00c0_ffee,
            flows_per_sec: 3_000.0,
            ..Config::default()
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tcp: 1_000,
            udp: 500,
            icmp: 100,
            v6_percent: 30,
            seed: 1,
            tcp_segments: (2, 12),
            echoes: (1, 4),
            fragmented: 0,
            flows_per_sec: 2_000.0,
            snaplen: 65_535,
            start_secs: 1_700_000_000,
            all_concurrent: false,
            clients: MAX_CLIENTS,
        }
    }
}

/// A small, fast deterministic random number generator (SplitMix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        let span = hi.saturating_sub(lo).saturating_add(1);
        lo + ((u128::from(self.next_u64()) * u128::from(span)) >> 64) as u64
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.range(0, 99) < percent
    }

    /// A number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A count from 1 up, mostly small with a long tail (about geometric with the given mean).
    pub fn count(&mut self, mean: u64) -> u64 {
        1 + (-(1.0 - self.unit()).ln() * mean as f64) as u64
    }
}

/// Counters of one class of flows (or of all of them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Flows.
    pub flows: u64,
    /// Directions with at least one packet: the records of an exporter that exports one per direction.
    pub directions: u64,
    /// Packets (an IPv4 fragment is a packet).
    pub packets: u64,
    /// IP octets.
    pub octets: u64,
}

impl Counts {
    fn add(&mut self, f: &Flow) {
        self.flows += 1;
        self.directions += f.packets.iter().filter(|&&n| n > 0).count() as u64;
        self.packets += f.packets.iter().sum::<u64>();
        self.octets += f.octets.iter().sum::<u64>();
    }

    fn json(&self) -> Value {
        json!({
            "flows": self.flows,
            "directions": self.directions,
            "packets": self.packets,
            "octets": self.octets,
        })
    }
}

/// One generated flow, as a flow meter should report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowTruth {
    /// IP protocol number (6, 17, 1 or 58).
    pub proto: u8,
    /// The initiator.
    pub client: IpAddr,
    /// The initiator's port (ICMP: 0).
    pub client_port: u16,
    /// The responder.
    pub server: IpAddr,
    /// The responder's port (ICMP: 0).
    pub server_port: u16,
    /// Packets from the client and from the server.
    pub packets: [u64; 2],
    /// IP octets from the client and from the server.
    pub octets: [u64; 2],
    /// Time of the first and last packets, in microseconds since the epoch.
    pub first_us: u64,
    /// Time of the last packet.
    pub last_us: u64,
    /// IPv4 fragments after the first one (they carry no ports).
    pub later_fragments: u64,
}

/// What was generated.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Everything.
    pub total: Counts,
    /// By protocol: TCP, UDP, ICMP (ICMP and ICMPv6).
    pub by_kind: [Counts; 3],
    /// By family: IPv4, IPv6.
    pub by_family: [Counts; 2],
    /// TCP connections that ended with a RST (refused or aborted).
    pub tcp_rst: u64,
    /// UDP and ICMP flows whose requests got no answer.
    pub unanswered: u64,
    /// UDP flows with a fragmented response.
    pub fragmented_flows: u64,
    /// IPv4 fragments after a first fragment (they have no ports).
    pub later_fragments: u64,
    /// Ethernet padding: zeros after the IP packet in frames from the server side shorter than 60
    /// octets. Not IP octets, but a meter counting frame length minus the Ethernet header counts them.
    pub padding_octets: u64,
    /// Most flows open at the same time.
    pub max_concurrent: u64,
    /// Longest flow, first to last packet, in microseconds.
    pub max_flow_us: u64,
    /// Time of the first and last packet, in microseconds since the epoch.
    pub first_us: u64,
    /// Time of the last packet.
    pub last_us: u64,
    /// Octets of the pcap file.
    pub file_bytes: u64,
}

impl Summary {
    /// The summary as JSON (what `podflow-gen-pcap` prints).
    pub fn json(&self) -> Value {
        json!({
            "flows": self.total.flows,
            "directions": self.total.directions,
            "packets": self.total.packets,
            "octets": self.total.octets,
            "by_protocol": {
                "tcp": self.by_kind[0].json(),
                "udp": self.by_kind[1].json(),
                "icmp": self.by_kind[2].json(),
            },
            "by_family": {
                "ipv4": self.by_family[0].json(),
                "ipv6": self.by_family[1].json(),
            },
            "tcp_rst_closed": self.tcp_rst,
            "unanswered": self.unanswered,
            "fragmented_flows": self.fragmented_flows,
            "later_fragments": self.later_fragments,
            "ethernet_padding_octets": self.padding_octets,
            "max_concurrent_flows": self.max_concurrent,
            "max_flow_duration_us": self.max_flow_us,
            "first_packet_us": self.first_us,
            "last_packet_us": self.last_us,
            "file_bytes": self.file_bytes,
        })
    }
}

/// Most clients per family for TCP and UDP flows: each flow takes a client round-robin and the client's
/// next port, so a (client address, client port) pair never repeats.
pub const MAX_CLIENTS: u64 = 4096;
/// Ephemeral ports a client uses (Linux's default range 32768..=60999).
const PORT_BASE: u64 = 32_768;
const PORTS: u64 = 28_232;
/// Stride through the port range: prime to `PORTS`, so `k * STRIDE mod PORTS` visits each port once.
const PORT_STRIDE: u64 = 10_007;
/// Servers of each kind and family.
const SERVERS: u64 = 64;

fn addr4(a: u8, b: u8, c: u8, d: u8) -> [u8; 16] {
    let mut o = [0u8; 16];
    o[..4].copy_from_slice(&[a, b, c, d]);
    o
}

/// An IPv6 address in 2001:db8::/32 (documentation prefix) with `net` as its third group and `host` as
/// its last 32 bits.
fn addr6(net: u16, host: u32) -> [u8; 16] {
    let mut o = [0u8; 16];
    o[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    o[4..6].copy_from_slice(&net.to_be_bytes());
    o[12..16].copy_from_slice(&host.to_be_bytes());
    o
}

fn ip(addr: &[u8; 16], is_v6: bool) -> IpAddr {
    if is_v6 {
        IpAddr::from(*addr)
    } else {
        IpAddr::from([addr[0], addr[1], addr[2], addr[3]])
    }
}

/// Draws the plans of all flows, in start order.
struct Planner<'a> {
    cfg: &'a Config,
    rng: Rng,
    left: [u64; 3],
    /// TCP/UDP flows planned so far (they share the client pool), ICMP flows, UDP flows.
    ported: u64,
    icmp: u64,
    udp: u64,
}

impl Planner<'_> {
    fn next(&mut self) -> Option<FlowPlan> {
        let total: u64 = self.left.iter().sum();
        if total == 0 {
            return None;
        }
        // Kinds in random order, with exactly the requested number of each.
        let mut pick = self.rng.range(0, total - 1);
        let mut kind_index = 0;
        while pick >= self.left[kind_index] {
            pick -= self.left[kind_index];
            kind_index += 1;
        }
        self.left[kind_index] -= 1;
        let kind = [Kind::Tcp, Kind::Udp, Kind::Icmp][kind_index];
        let rng = &mut self.rng;
        let mut v6 = rng.chance(u64::from(self.cfg.v6_percent));
        let mut plan = FlowPlan {
            kind,
            v6,
            client: [0; 16],
            server: [0; 16],
            client_port: 0,
            server_port: 0,
            units: 1,
            close: Close::ClientFin,
            answered: true,
            fragmented: false,
        };
        let server = rng.range(1, SERVERS) as u8;
        match kind {
            Kind::Tcp => {
                let (lo, hi) = self.cfg.tcp_segments;
                plan.units = rng.range(u64::from(lo), u64::from(hi)) as u32;
                plan.close = match rng.range(0, 99) {
                    0..=2 => Close::Refused,
                    3..=6 => Close::ClientRst,
                    7..=9 => Close::ServerRst,
                    10..=39 => Close::ServerFin,
                    _ => Close::ClientFin,
                };
                plan.server_port = match rng.range(0, 9) {
                    0..=6 => 443,
                    7 => 80,
                    8 => 8080,
                    _ => 5432,
                };
                plan.server = if v6 {
                    addr6(0x5e, server.into())
                } else {
                    addr4(192, 0, 2, server)
                };
            }
            Kind::Udp => {
                // Fragmented responses spread evenly over the UDP flows: flow j is one when
                // floor(j * n / udp) steps up.
                let (j, n, udp) = (self.udp, self.cfg.fragmented, self.cfg.udp);
                plan.fragmented = (j + 1) * n / udp != j * n / udp;
                self.udp += 1;
                if plan.fragmented {
                    // Only IPv4 fragments: the flow is IPv4 and answered once.
                    v6 = false;
                    plan.v6 = false;
                } else {
                    plan.answered = !rng.chance(3);
                    plan.units = if plan.answered {
                        // Mostly one query; sometimes a few over the same socket.
                        if rng.chance(85) { 1 } else { rng.range(2, 3) as u32 }
                    } else {
                        // A query and its retry.
                        2
                    };
                }
                plan.server_port = if !plan.fragmented && rng.chance(15) {
                    123
                } else {
                    53
                };
                plan.server = if v6 {
                    addr6(0x53, server.into())
                } else {
                    addr4(198, 51, 100, server)
                };
            }
            Kind::Icmp => {
                let (lo, hi) = self.cfg.echoes;
                plan.units = rng.range(u64::from(lo), u64::from(hi)) as u32;
                plan.answered = !rng.chance(3);
                plan.client_port = rng.range(1, 65_535) as u16;
                // A client of its own, so no two ICMP flows share an address pair.
                let k = self.icmp;
                self.icmp += 1;
                plan.client = if v6 {
                    addr6(0xec, k as u32)
                } else {
                    let b = (k + 1).to_be_bytes();
                    addr4(10, 128 | b[5], b[6], b[7])
                };
                plan.server = if v6 {
                    addr6(0x1c, server.into())
                } else {
                    addr4(203, 0, 113, server)
                };
            }
        }
        if kind != Kind::Icmp {
            let (c, k) = (self.ported % self.cfg.clients, self.ported / self.cfg.clients);
            self.ported += 1;
            plan.client_port = (PORT_BASE + (k * PORT_STRIDE + c * 7) % PORTS) as u16;
            plan.client = if v6 {
                addr6(0xc, c as u32 + 1)
            } else {
                addr4(10, 1 + (c >> 8) as u8, c as u8, 2)
            };
        }
        Some(plan)
    }
}

/// Checks that `cfg` can be generated with every flow key unique.
fn validate(cfg: &Config) -> anyhow::Result<()> {
    if !(1..=MAX_CLIENTS).contains(&cfg.clients) {
        bail!("clients must be 1 to {MAX_CLIENTS}, not {}", cfg.clients);
    }
    if cfg.tcp + cfg.udp > cfg.clients * PORTS {
        bail!(
            "at most {} TCP and UDP flows over {} clients",
            cfg.clients * PORTS,
            cfg.clients
        );
    }
    if cfg.icmp >= 1 << 23 {
        bail!("at most {} ICMP flows", (1u64 << 23) - 1);
    }
    if cfg.fragmented > cfg.udp {
        bail!(
            "{} fragmented flows but only {} UDP flows",
            cfg.fragmented,
            cfg.udp
        );
    }
    let (lo, hi) = cfg.tcp_segments;
    if lo == 0 || lo > hi {
        bail!("TCP segments per connection must be a range MIN-MAX with 1 <= MIN <= MAX");
    }
    let (lo, hi) = cfg.echoes;
    if lo == 0 || lo > hi {
        bail!("echoes per ICMP flow must be a range MIN-MAX with 1 <= MIN <= MAX");
    }
    if cfg.v6_percent > 100 {
        bail!("the IPv6 share is a percentage (0-100)");
    }
    if !(cfg.flows_per_sec > 0.0 && cfg.flows_per_sec.is_finite()) {
        bail!("flows per second must be positive");
    }
    if cfg.snaplen < 64 {
        bail!("snap length below 64 octets would cut into the headers");
    }
    Ok(())
}

/// Writes the pcap file described by `cfg` to `out`; when `truth` is given, every flow is appended to it
/// as it ends.
pub fn generate<W: Write>(
    cfg: &Config,
    out: W,
    mut truth: Option<&mut Vec<FlowTruth>>,
) -> anyhow::Result<Summary> {
    validate(cfg)?;
    let mut planner = Planner {
        cfg,
        rng: Rng::new(cfg.seed),
        left: [cfg.tcp, cfg.udp, cfg.icmp],
        ported: 0,
        icmp: 0,
        udp: 0,
    };
    let mut pcap = PcapWriter::new(out, cfg.snaplen)?;
    let mut fb = FrameBuilder::default();
    let mut packet = Packet {
        v6: false,
        src: [0; 16],
        dst: [0; 16],
        from_client: true,
        ip_id: 0,
        flow_label: 0,
        frag: None,
        ttl: 64,
        l4: L4::Fragment,
        payload: 0,
    };
    let mut summary = Summary::default();
    // Open flows live in a slab; the heap orders (time of next packet, slot). Slots are reused, so
    // memory follows the number of concurrent flows, not the file's size.
    let mut slots: Vec<Option<Flow>> = Vec::new();
    let mut free: Vec<u32> = Vec::new();
    let mut heap: std::collections::BinaryHeap<std::cmp::Reverse<(u64, u32)>> = Default::default();
    let mut arrivals = Rng::new(cfg.seed ^ 0x5eed_a221_7a15);
    let mean_gap_us = 1e6 / cfg.flows_per_sec;
    let start_us = cfg.start_secs * 1_000_000;
    let mut next_start = start_us;
    let mut pending = planner.next();
    let mut ip_id: u16 = 0;
    let mut open: u64 = 0;
    let mut flow_seed = Rng::new(cfg.seed ^ 0xf10e_5eed);
    // With all flows concurrent, the last one starts at this time (one start per microsecond).
    let last_start = start_us + (cfg.tcp + cfg.udp + cfg.icmp).saturating_sub(1);
    summary.first_us = start_us;
    loop {
        let next_packet = heap.peek().map(|r| r.0.0);
        // Start the next flow when it begins no later than the next packet of an open flow (ties go to
        // the open flow's packet only if strictly earlier).
        if let Some(plan) = pending.filter(|_| next_packet.is_none_or(|t| next_start < t)) {
            let flow = Flow::new(plan, Rng::new(flow_seed.next_u64()), next_start);
            let slot = match free.pop() {
                Some(s) => {
                    slots[s as usize] = Some(flow);
                    s
                }
                None => {
                    slots.push(Some(flow));
                    (slots.len() - 1) as u32
                }
            };
            heap.push(std::cmp::Reverse((next_start, slot)));
            open += 1;
            summary.max_concurrent = summary.max_concurrent.max(open);
            // Poisson arrivals: exponential gaps, at least a microsecond so start times are distinct.
            let gap = -(1.0 - arrivals.unit()).ln() * mean_gap_us;
            next_start += if cfg.all_concurrent {
                1
            } else {
                (gap as u64).max(1)
            };
            pending = planner.next();
            continue;
        }
        let Some(std::cmp::Reverse((now, slot))) = heap.pop() else {
            break;
        };
        let Some(flow) = slots.get_mut(slot as usize).and_then(Option::as_mut) else {
            bail!("internal error: no flow in slot {slot}");
        };
        ip_id = ip_id.wrapping_add(1);
        let first_packet = flow.packets == [0, 0];
        let mut delay = flow.next(now, ip_id, &mut packet);
        if cfg.all_concurrent && first_packet {
            // Hold the rest of the flow until every flow has sent its first packet.
            delay = delay.map(|d| d + (last_start - now));
        }
        let headers = fb.build(&packet);
        let padding = wire::padding(&packet, headers + packet.payload);
        summary.padding_octets += padding as u64;
        let zeros = packet.payload + padding;
        pcap.frame(now, fb.headers(headers), zeros)?;
        summary.last_us = now;
        match delay {
            Some(d) => heap.push(std::cmp::Reverse((now + d, slot))),
            None => {
                let Some(done) = slots[slot as usize].take() else {
                    bail!("internal error: slot {slot} emptied twice");
                };
                free.push(slot);
                open -= 1;
                record(&mut summary, &done);
                if let Some(t) = truth.as_deref_mut() {
                    let p = &done.plan;
                    let ported = p.kind != Kind::Icmp;
                    t.push(FlowTruth {
                        proto: match p.kind {
                            Kind::Tcp => 6,
                            Kind::Udp => 17,
                            Kind::Icmp if p.v6 => 58,
                            Kind::Icmp => 1,
                        },
                        client: ip(&p.client, p.v6),
                        client_port: if ported { p.client_port } else { 0 },
                        server: ip(&p.server, p.v6),
                        server_port: if ported { p.server_port } else { 0 },
                        packets: done.packets,
                        octets: done.octets,
                        first_us: done.first_us,
                        last_us: done.last_us,
                        later_fragments: done.later_fragments,
                    });
                }
            }
        }
    }
    summary.file_bytes = pcap.bytes;
    pcap.finish()?;
    Ok(summary)
}

/// Adds a finished flow to the summary.
fn record(s: &mut Summary, f: &Flow) {
    s.total.add(f);
    let kind = match f.plan.kind {
        Kind::Tcp => 0,
        Kind::Udp => 1,
        Kind::Icmp => 2,
    };
    s.by_kind[kind].add(f);
    s.by_family[usize::from(f.plan.v6)].add(f);
    if f.plan.kind == Kind::Tcp
        && matches!(f.plan.close, Close::ClientRst | Close::ServerRst | Close::Refused)
    {
        s.tcp_rst += 1;
    }
    if !f.plan.answered {
        s.unanswered += 1;
    }
    s.fragmented_flows += u64::from(f.plan.fragmented);
    s.later_fragments += f.later_fragments;
    s.max_flow_us = s.max_flow_us.max(f.last_us - f.first_us);
}

/// Writes the pcap file described by `cfg` to `path` through a large buffer.
pub fn generate_file(
    cfg: &Config,
    path: &Path,
    truth: Option<&mut Vec<FlowTruth>>,
) -> anyhow::Result<Summary> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let out = BufWriter::with_capacity(1 << 20, file);
    generate(cfg, out, truth).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests;
