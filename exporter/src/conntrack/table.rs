//! The table of translated connections (pure: time is a parameter, nothing here does I/O).
//!
//! Connections are keyed by their original tuple, with a second index from the reply tuple to the
//! original one, so both a flow's key (original direction) and a reply packet (reply direction) find
//! their connection. A destroyed connection stays for a grace period: its flows are exported after it
//! ends (idle timeout, TCP linger), and they still carry its translation. The table is bounded; when it
//! is full the oldest destroyed connections make room, and a translated connection that still finds no
//! room is counted in [`TableStats::full`].

use std::collections::{HashMap, VecDeque};

use foldhash::fast::RandomState;

use super::{Connection, EventKind, NatEvent, NatEventKind, Tuple, has_ports};
use crate::flow::Expired;
use crate::parse::PacketInfo;

/// Bounds of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableLimits {
    /// Most connections held, live and destroyed.
    pub max_entries: usize,
    /// How long a destroyed connection is kept, in milliseconds: at least the flow idle timeout, so a
    /// flow that ends after its connection still finds it.
    pub grace_ms: u64,
}

impl Default for TableLimits {
    fn default() -> Self {
        TableLimits {
            max_entries: 262_144,
            grace_ms: 30_000,
        }
    }
}

/// Counters of the table's own work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Translated connections not held because the table was full.
    pub full: u64,
    /// Live connections found gone by a resynchronising dump.
    pub vanished: u64,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    conn: Connection,
    /// When the connection was destroyed, if it was.
    destroyed_ms: Option<u64>,
    /// The resync generation that last saw the connection.
    generation: u32,
    /// An event named the connection. The kernel sends no events for connections that began before
    /// any listener subscribed (`nf_conntrack_events` = 2, the default): those are only known from
    /// dumps, and only a later dump shows that they ended.
    heard: bool,
}

/// Translated connections by original tuple and by reply tuple.
pub struct ConntrackTable {
    limits: TableLimits,
    by_orig: HashMap<Tuple, Entry, RandomState>,
    /// Reply tuple -> original tuple.
    by_reply: HashMap<Tuple, Tuple, RandomState>,
    /// Destroyed connections in order of destruction: (time, original tuple, id).
    destroyed: VecDeque<(u64, Tuple, u32)>,
    generation: u32,
    stats: TableStats,
}

impl ConntrackTable {
    /// An empty table.
    pub fn new(limits: TableLimits) -> Self {
        ConntrackTable {
            limits,
            by_orig: HashMap::default(),
            by_reply: HashMap::default(),
            destroyed: VecDeque::new(),
            generation: 0,
            stats: TableStats::default(),
        }
    }

    /// Connections held, live and destroyed.
    pub fn len(&self) -> usize {
        self.by_orig.len()
    }

    /// True when no connection is held.
    pub fn is_empty(&self) -> bool {
        self.by_orig.is_empty()
    }

    /// The counters.
    pub fn stats(&self) -> TableStats {
        self.stats
    }

    /// The connection whose original tuple is `t`.
    pub fn by_original(&self, t: &Tuple) -> Option<&Connection> {
        self.by_orig.get(t).map(|e| &e.conn)
    }

    /// The connection whose reply tuple is `t`.
    pub fn by_reply(&self, t: &Tuple) -> Option<&Connection> {
        self.by_reply.get(t).and_then(|o| self.by_original(o))
    }

    /// True when the connection with original tuple `t` has been destroyed (and is in its grace period).
    pub fn is_destroyed(&self, t: &Tuple) -> bool {
        self.by_orig.get(t).is_some_and(|e| e.destroyed_ms.is_some())
    }

    /// Applies one conntrack message at time `now`; NAT events go to `out`: a create the first time a
    /// connection is seen, a delete when it is destroyed (or replaced by another with its tuple).
    /// Connections without translation are ignored, without allocating.
    pub fn apply(&mut self, kind: EventKind, conn: &Connection, now: u64, out: &mut impl FnMut(NatEvent)) {
        if !conn.is_translated() || !has_ports(conn.orig.proto) {
            return;
        }
        let generation = self.generation;
        let heard = kind != EventKind::Dump;
        match kind {
            EventKind::New | EventKind::Update | EventKind::Dump => {
                if let Some(e) = self.by_orig.get_mut(&conn.orig) {
                    if e.destroyed_ms.is_none() && (e.conn.id == conn.id || conn.id == 0) {
                        e.generation = generation;
                        e.heard |= heard;
                        let old_reply = e.conn.reply;
                        e.conn.status = conn.status;
                        e.conn.mark = conn.mark;
                        e.conn.reply = conn.reply;
                        if old_reply != conn.reply {
                            self.unlink_reply(&old_reply, &conn.orig);
                            self.by_reply.insert(conn.reply, conn.orig);
                        }
                        return;
                    }
                    if e.destroyed_ms.is_some() && e.conn.id == conn.id && conn.id != 0 {
                        // A late event of a connection already found ended (read after a resync).
                        return;
                    }
                    // Another connection on the same tuple: the old one is over.
                    let old = *e;
                    if old.destroyed_ms.is_none() {
                        out(nat_event(NatEventKind::Delete, old.conn, now));
                    }
                    self.remove(&conn.orig);
                }
                if self.make_room(now) {
                    self.insert(*conn, None, heard);
                    out(nat_event(NatEventKind::Create, *conn, now));
                } else {
                    self.stats.full += 1;
                }
            }
            EventKind::Destroy => match self.by_orig.get_mut(&conn.orig) {
                Some(e) if e.destroyed_ms.is_none() => {
                    e.destroyed_ms = Some(now);
                    let c = e.conn;
                    self.destroyed.push_back((now, c.orig, c.id));
                    out(nat_event(NatEventKind::Delete, c, now));
                }
                Some(_) => {}
                None => {
                    // Never seen alive (it was lost to a full table or buffer): keep it for its flows.
                    if self.make_room(now) {
                        self.insert(*conn, Some(now), true);
                        self.destroyed.push_back((now, conn.orig, conn.id));
                    } else {
                        self.stats.full += 1;
                    }
                    out(nat_event(NatEventKind::Delete, *conn, now));
                }
            },
        }
    }

    fn insert(&mut self, conn: Connection, destroyed_ms: Option<u64>, heard: bool) {
        self.by_reply.insert(conn.reply, conn.orig);
        self.by_orig.insert(
            conn.orig,
            Entry {
                conn,
                destroyed_ms,
                generation: self.generation,
                heard,
            },
        );
    }

    /// True when some live connection is known from dumps only: no event will say when it ends.
    pub fn has_silent(&self) -> bool {
        self.by_orig
            .values()
            .any(|e| !e.heard && e.destroyed_ms.is_none())
    }

    fn remove(&mut self, orig: &Tuple) {
        if let Some(e) = self.by_orig.remove(orig) {
            self.unlink_reply(&e.conn.reply, orig);
        }
    }

    /// Removes the reply index entry `reply` if it still points at `orig`.
    fn unlink_reply(&mut self, reply: &Tuple, orig: &Tuple) {
        if self.by_reply.get(reply) == Some(orig) {
            self.by_reply.remove(reply);
        }
    }

    /// Makes room for one more connection: forgets destroyed connections past their grace period, then
    /// the oldest destroyed ones. False when the table is full of live connections.
    fn make_room(&mut self, now: u64) -> bool {
        if self.by_orig.len() < self.limits.max_entries {
            return true;
        }
        self.expire(now);
        while self.by_orig.len() >= self.limits.max_entries {
            let Some((_, orig, id)) = self.destroyed.pop_front() else {
                return false;
            };
            self.forget_destroyed(&orig, id);
        }
        true
    }

    fn forget_destroyed(&mut self, orig: &Tuple, id: u32) {
        // The tuple may have been reused by a newer connection since: leave that one alone.
        if self
            .by_orig
            .get(orig)
            .is_some_and(|e| e.destroyed_ms.is_some() && e.conn.id == id)
        {
            self.remove(orig);
        }
    }

    /// Forgets destroyed connections whose grace period is over at `now`.
    pub fn expire(&mut self, now: u64) {
        while let Some(&(t, orig, id)) = self.destroyed.front() {
            if now.saturating_sub(t) < self.limits.grace_ms {
                break;
            }
            self.destroyed.pop_front();
            self.forget_destroyed(&orig, id);
        }
    }

    /// Starts a resynchronising dump: connections the dump lists are marked as seen.
    pub fn begin_resync(&mut self) {
        self.generation = self.generation.wrapping_add(1);
    }

    /// Ends a dump. After a `complete` one, live connections it did not list ended while events were
    /// lost: they are destroyed now, with their delete NAT events.
    pub fn end_resync(&mut self, complete: bool, now: u64, out: &mut impl FnMut(NatEvent)) {
        if !complete {
            return;
        }
        let generation = self.generation;
        for e in self.by_orig.values_mut() {
            if e.destroyed_ms.is_none() && e.generation != generation {
                e.destroyed_ms = Some(now);
                self.destroyed.push_back((now, e.conn.orig, e.conn.id));
                self.stats.vanished += 1;
                out(nat_event(NatEventKind::Delete, e.conn, now));
            }
        }
    }

    /// The packet rewritten into its connection's original biflow when its tuple is a translated
    /// connection's reply tuple (backend -> client after DNAT, server -> masquerade address after
    /// SNAT): it then travels from the original destination to the original source. `None` for any
    /// other packet, which counts as captured.
    pub fn fold(&self, p: &PacketInfo) -> Option<PacketInfo> {
        if self.by_reply.is_empty() || !has_ports(p.proto) {
            return None;
        }
        let orig = self.by_reply.get(&Tuple::of_packet(p))?;
        Some(PacketInfo {
            src: orig.dst,
            dst: orig.src,
            sport: orig.dport,
            dport: orig.sport,
            ..*p
        })
    }

    /// The translated connection of an exported flow: the one whose original tuple is the flow's tuple,
    /// in either orientation (the flow's initiator may be a guess).
    pub fn translation_of(&self, e: &Expired) -> Option<Connection> {
        if self.by_orig.is_empty() || !has_ports(e.key.proto) {
            return None;
        }
        let o = e.oriented(e.initiator());
        let t = Tuple {
            src: o.src,
            dst: o.dst,
            sport: o.sport,
            dport: o.dport,
            proto: e.key.proto,
        };
        self.by_original(&t)
            .or_else(|| self.by_original(&t.reversed()))
            .copied()
    }
}

fn nat_event(kind: NatEventKind, conn: Connection, time_ms: u64) -> NatEvent {
    NatEvent { kind, conn, time_ms }
}
