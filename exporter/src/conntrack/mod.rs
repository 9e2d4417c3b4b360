//! Service NAT from the kernel's connection tracking (`--conntrack`).
//!
//! A pod that calls a Service's ClusterIP has its connection translated by kube-proxy's DNAT rule to one
//! of the backends, and traffic leaving the node may be masqueraded (SNAT). The node probe learns each
//! translation from conntrack over netlink and uses it twice:
//!
//! * folding: a node probe capturing pod-side interfaces with `--direction in` sees a Service
//!   connection's requests before translation (client -> ClusterIP) and the backend's replies before
//!   their reverse translation (backend -> client). A packet whose tuple is a translated connection's
//!   *reply* tuple is rewritten to the inverse of the *original* tuple, so both directions count into
//!   one biflow keyed by the original tuple ([`ConntrackTable::fold`]);
//! * export: a flow whose tuple is a translated connection's original tuple carries the post-NAT
//!   addresses and ports, the post-NAT Community ID, the conntrack id and mark, and every translated
//!   connection is exported once as a NAT event on create and once on delete ([`NatEvent`]).
//!
//! Pieces: [`decode`] turns netlink datagrams into [`Connection`]s (pure, never panics, skips
//! untranslated connections without allocating); [`ConntrackTable`] holds the translated connections
//! (pure: time is a parameter); [`netlink`] owns the sockets; [`Conntrack`] ties them together for the
//! engine, which calls [`Conntrack::sync`] before each batch of packets. The kernel queues a connection's
//! NEW event on the socket while it handles the connection's first packet, before that packet reaches
//! the backend, so by the time a capture batch holds the backend's reply the event is already readable:
//! reading the socket dry before each batch makes folding exact, not a race.
//!
//! Only protocols with ports (TCP, UDP, SCTP, DCCP, UDP-Lite) are tracked: an ICMP connection's
//! conntrack tuple holds the ICMP identifier, which podflow's flow key does not have.

pub mod decode;
pub mod netlink;
mod table;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;

use crate::flow::{Expired, Side};
use crate::parse::{Fragment, PacketInfo};
pub use decode::{Decoded, EventKind};
pub use netlink::{NetlinkSource, OpenError};
pub use table::{ConntrackTable, TableLimits, TableStats};

/// One direction of a connection as conntrack records it: source to destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tuple {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// IP protocol number.
    pub proto: u8,
}

impl Tuple {
    /// The same connection seen from the other end.
    pub fn reversed(&self) -> Tuple {
        Tuple {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            proto: self.proto,
        }
    }

    /// The tuple of a packet as captured.
    pub fn of_packet(p: &PacketInfo) -> Tuple {
        Tuple {
            src: p.src,
            dst: p.dst,
            sport: p.sport,
            dport: p.dport,
            proto: p.proto,
        }
    }
}

/// True for the protocols whose conntrack tuples carry ports, which podflow tracks.
pub fn has_ports(proto: u8) -> bool {
    matches!(proto, 6 | 17 | 33 | 132 | 136)
}

/// conntrack status bit: the source was translated (SNAT, masquerade).
pub const IPS_SRC_NAT: u32 = 0x10;
/// conntrack status bit: the destination was translated (DNAT: a Service's ClusterIP to a backend).
pub const IPS_DST_NAT: u32 = 0x20;

/// A connection as conntrack reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connection {
    /// conntrack's id of the connection (CTA_ID), unique among live connections.
    pub id: u32,
    /// The original direction, as the initiator sent it (client -> ClusterIP).
    pub orig: Tuple,
    /// The reply direction, as the responder sends it before reverse translation (backend -> client).
    pub reply: Tuple,
    /// Status bits (IPS_*).
    pub status: u32,
    /// The connection mark (CTA_MARK).
    pub mark: u32,
}

impl Connection {
    /// True when the kernel translated the connection: its reply tuple is not the original reversed.
    pub fn is_translated(&self) -> bool {
        self.reply != self.orig.reversed()
    }

    /// The original direction after translation (client -> backend for a Service connection).
    pub fn post_nat(&self) -> Tuple {
        self.reply.reversed()
    }

    /// The translated address and port of an endpoint of the original tuple: the original source
    /// becomes the post-NAT source, the original destination the post-NAT destination. `None` for an
    /// endpoint that is neither.
    pub fn translate(&self, addr: IpAddr, port: u16) -> Option<(IpAddr, u16)> {
        let post = self.post_nat();
        if (addr, port) == (self.orig.src, self.orig.sport) {
            Some((post.src, post.sport))
        } else if (addr, port) == (self.orig.dst, self.orig.dport) {
            Some((post.dst, post.dport))
        } else {
            None
        }
    }
}

/// natEvent (IE 230) values of the NAT event records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatEventKind {
    /// NAT44 session create (4); also used for IPv6 connections, which have no code of their own.
    Create = 4,
    /// NAT44 session delete (5).
    Delete = 5,
}

/// A translated connection appearing or ending, to export as a NAT event record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatEvent {
    /// Create or delete.
    pub kind: NatEventKind,
    /// The connection.
    pub conn: Connection,
    /// When the probe learned it (Unix milliseconds).
    pub time_ms: u64,
}

/// What happened when a source was read without waiting.
#[derive(Debug)]
pub enum Poll {
    /// Everything available was read.
    Drained,
    /// The kernel dropped events because the receive buffer was full (ENOBUFS): a resync is due.
    Overrun,
    /// The socket failed for good.
    Failed(io::Error),
}

/// Where conntrack datagrams come from: the netlink sockets, or a test's canned messages.
pub trait Source: Send {
    /// Hands every event datagram readable now to `datagram`, without waiting.
    fn poll(&mut self, datagram: &mut dyn FnMut(&[u8])) -> Poll;

    /// Dumps the whole conntrack table: hands each datagram of the answer to `datagram`, which returns
    /// `true` once it has seen the end of the dump.
    fn dump(&mut self, datagram: &mut dyn FnMut(&[u8]) -> io::Result<bool>) -> io::Result<()>;
}

/// Counters of conntrack learning, for the self metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConntrackStats {
    /// Events received, by [`EventKind`] (new, update, destroy), translated or not.
    pub events: [u64; 3],
    /// Connections listed by dumps (at start and when resynchronising).
    pub dumped: u64,
    /// Connections in events and dumps skipped because nothing was translated (or no ports).
    pub ignored: u64,
    /// Netlink messages that could not be decoded.
    pub malformed: u64,
    /// Times the kernel reported lost events (ENOBUFS).
    pub overruns: u64,
    /// Full dumps taken to resynchronise after lost events.
    pub resyncs: u64,
    /// Full dumps taken to find which connections older than the probe ended (no event says so).
    pub sweeps: u64,
    /// Dumps that failed.
    pub dump_errors: u64,
    /// NAT events produced, create and delete.
    pub nat_events: [u64; 2],
    /// Translated connections held (live and recently destroyed).
    pub entries: u64,
    /// Translated connections not held because the table was full.
    pub table_full: u64,
}

/// Default interval of sweeps for connections older than the probe, in milliseconds.
pub const DEFAULT_SWEEP_MS: u64 = 60_000;

/// Most later fragments' address rewrites remembered at once.
const MAX_FRAGMENTS: usize = 4096;
/// How long a first fragment's rewrite applies to its later fragments, in milliseconds.
const FRAGMENT_MS: u64 = 30_000;

/// A fragmented datagram as captured: (source, destination, protocol, IP identification).
type FragmentKey = (IpAddr, IpAddr, u8, u32);

/// Conntrack learning for the engine: a source, the table of translated connections, and the NAT
/// events waiting to be exported.
pub struct Conntrack {
    source: Box<dyn Source>,
    table: ConntrackTable,
    stats: ConntrackStats,
    pending: Vec<NatEvent>,
    failed: Option<String>,
    /// How often connections known only from dumps are looked for in a new dump, in milliseconds.
    sweep_ms: u64,
    /// When the last dump was taken.
    last_dump_ms: u64,
    /// Later fragments of folded first fragments: (src, dst, proto, id) as captured -> rewritten
    /// (src, dst) and when it was seen.
    fragments: HashMap<FragmentKey, (IpAddr, IpAddr, u64)>,
}

impl Conntrack {
    /// Starts learning from `source`: takes a first full dump so connections older than the probe are
    /// known. Fails when the dump fails (no permission, no conntrack in the kernel).
    pub fn start(source: Box<dyn Source>, limits: TableLimits, now: u64) -> Result<Self, OpenError> {
        let mut ct = Conntrack {
            source,
            table: ConntrackTable::new(limits),
            stats: ConntrackStats::default(),
            pending: Vec::new(),
            failed: None,
            sweep_ms: DEFAULT_SWEEP_MS,
            last_dump_ms: now,
            fragments: HashMap::new(),
        };
        ct.dump(now)
            .map_err(OpenError::classify("dumping the conntrack table"))?;
        ct.refresh_stats();
        Ok(ct)
    }

    /// Sets how often, while connections older than the probe are held, a dump looks for those that
    /// ended: the kernel sends no event for connections that began before anyone listened.
    pub fn with_sweep_interval(mut self, ms: u64) -> Self {
        self.sweep_ms = ms.max(1);
        self
    }

    /// Reads every event available now into the table; after lost events, resynchronises with a full
    /// dump. Also forgets destroyed connections whose grace period is over, and sweeps (see
    /// [`with_sweep_interval`](Self::with_sweep_interval)).
    pub fn sync(&mut self, now: u64) {
        if self.failed.is_some() {
            return;
        }
        let (table, stats, pending) = (&mut self.table, &mut self.stats, &mut self.pending);
        let outcome = self.source.poll(&mut |datagram| {
            decode::decode_datagram(datagram, &mut |d| apply(table, stats, pending, d, now));
        });
        match outcome {
            Poll::Drained => {}
            Poll::Overrun => {
                self.stats.overruns += 1;
                self.stats.resyncs += 1;
                if let Err(e) = self.dump(now) {
                    self.stats.dump_errors += 1;
                    tracing::error!("conntrack resync failed: {e}");
                }
            }
            Poll::Failed(e) => {
                tracing::warn!(
                    "conntrack events stopped ({e}); flows are no longer \
                     resolved"
                );
                self.failed = Some(e.to_string());
            }
        }
        if now.saturating_sub(self.last_dump_ms) >= self.sweep_ms {
            self.last_dump_ms = now;
            if self.table.has_silent() {
                self.stats.sweeps += 1;
                if let Err(e) = self.dump(now) {
                    self.stats.dump_errors += 1;
                    tracing::error!("conntrack sweep failed: {e}");
                }
            }
        }
        self.table.expire(now);
        self.fragments
            .retain(|_, (_, _, seen)| now.saturating_sub(*seen) < FRAGMENT_MS);
        self.refresh_stats();
    }

    fn refresh_stats(&mut self) {
        self.stats.entries = self.table.len() as u64;
        self.stats.table_full = self.table.stats().full;
    }

    /// A full dump: connections not in it have ended while events were lost.
    fn dump(&mut self, now: u64) -> io::Result<()> {
        self.last_dump_ms = now;
        self.table.begin_resync();
        let (table, stats, pending) = (&mut self.table, &mut self.stats, &mut self.pending);
        let result = self.source.dump(&mut |datagram| {
            let mut end = Ok(false);
            decode::decode_datagram(datagram, &mut |d| match d {
                Decoded::Done => end = Ok(true),
                Decoded::Error(errno) => end = Err(io::Error::from_raw_os_error(errno)),
                d => apply(table, stats, pending, d, now),
            });
            end
        });
        // Only a complete dump proves the absence of a connection.
        let complete = result.is_ok();
        let mut out = |e: NatEvent| push_event(&mut self.stats, &mut self.pending, e);
        self.table.end_resync(complete, now, &mut out);
        result
    }

    /// True when the source failed and learning stopped.
    pub fn failed(&self) -> bool {
        self.failed.is_some()
    }

    /// The packet as it counts in the flow table: a translated connection's reply rewritten to the
    /// inverse of its original tuple (see [`ConntrackTable::fold`]), and the later fragments of a
    /// rewritten first fragment likewise. `None` when the packet stays as captured.
    pub fn fold(&mut self, p: &PacketInfo, now: u64) -> Option<PacketInfo> {
        match p.fragment {
            Fragment::Whole => self.table.fold(p),
            Fragment::First { id } => {
                let folded = self.table.fold(p)?;
                if self.fragments.len() < MAX_FRAGMENTS {
                    self.fragments
                        .insert((p.src, p.dst, p.proto, id), (folded.src, folded.dst, now));
                }
                Some(folded)
            }
            Fragment::Later { id, .. } => {
                if self.fragments.is_empty() {
                    return None;
                }
                let &(src, dst, _) = self.fragments.get(&(p.src, p.dst, p.proto, id))?;
                Some(PacketInfo { src, dst, ..*p })
            }
        }
    }

    /// The translated connection an exported flow belongs to, if any.
    pub fn translation_of(&self, e: &Expired) -> Option<Connection> {
        self.table.translation_of(e)
    }

    /// True when NAT events wait to be exported.
    pub fn has_events(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Moves the NAT events not yet exported into `out`.
    pub fn take_events(&mut self, out: &mut Vec<NatEvent>) {
        out.append(&mut self.pending);
    }

    /// The counters.
    pub fn stats(&self) -> ConntrackStats {
        self.stats
    }
}

/// Makes a flow's initiator the connection's original source when the flow table could only guess it
/// (a flow seen from the middle, without its SYN): conntrack saw the connection open.
pub fn orient(e: &mut Expired, c: &Connection) {
    if e.flow.initiator_sure {
        return;
    }
    let side = if e.key.sender(Side::LoHi) == (c.orig.src, c.orig.sport) {
        Side::LoHi
    } else if e.key.sender(Side::HiLo) == (c.orig.src, c.orig.sport) {
        Side::HiLo
    } else {
        return;
    };
    e.flow.initiator = Some(side);
    e.flow.initiator_sure = true;
}

fn push_event(stats: &mut ConntrackStats, pending: &mut Vec<NatEvent>, e: NatEvent) {
    let i = match e.kind {
        NatEventKind::Create => 0,
        NatEventKind::Delete => 1,
    };
    stats.nat_events[i] += 1;
    pending.push(e);
}

/// Applies one decoded message to the table and the counters.
fn apply(
    table: &mut ConntrackTable,
    stats: &mut ConntrackStats,
    pending: &mut Vec<NatEvent>,
    d: Decoded,
    now: u64,
) {
    let mut count = |kind: EventKind| match kind {
        EventKind::Dump => stats.dumped += 1,
        k => stats.events[k as usize] += 1,
    };
    match d {
        Decoded::Conn(kind, conn) => {
            count(kind);
            if !conn.is_translated() || !has_ports(conn.orig.proto) {
                stats.ignored += 1;
                return;
            }
            table.apply(kind, &conn, now, &mut |e| push_event(stats, pending, e));
        }
        Decoded::Untranslated(kind) => {
            count(kind);
            stats.ignored += 1;
        }
        Decoded::Malformed => stats.malformed += 1,
        Decoded::Done | Decoded::Error(_) | Decoded::Other => {}
    }
}
