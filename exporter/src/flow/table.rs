//! The table: a slab of flows with a hash index of slab positions.
//!
//! Each flow lives in one slot of a `Vec`; the hash index stores only 4-octet slot numbers, so memory per
//! flow is the slot itself plus a few octets, and sweeps walk a dense array.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;

use foldhash::fast::RandomState;
use hashbrown::HashTable;

use super::{EndReason, Expired, Flow, FlowKey, Side};
use crate::parse::{Fragment, PacketInfo};

const TCP: u8 = 6;
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// Flow table settings. Times are milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableConfig {
    /// A flow with no packet for this long ends (idle timeout).
    pub idle_timeout_ms: u64,
    /// A flow is exported after lasting this long, and continues as a new delta record.
    pub active_timeout_ms: u64,
    /// Time after TCP FIN both ways or RST before the flow ends, so trailing ACKs are counted.
    pub tcp_linger_ms: u64,
    /// Most flows held; beyond it the least recently seen are exported early.
    pub max_flows: usize,
    /// How often timeouts are checked.
    pub sweep_interval_ms: u64,
    /// How long a first fragment's ports are remembered for its later fragments.
    pub fragment_timeout_ms: u64,
    /// Most first fragments remembered at once.
    pub max_fragments: usize,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            idle_timeout_ms: 15_000,
            active_timeout_ms: 60_000,
            tcp_linger_ms: 2_000,
            max_flows: 1 << 20,
            sweep_interval_ms: 1_000,
            fragment_timeout_ms: 30_000,
            max_fragments: 65_536,
        }
    }
}

/// Counters of the table's own work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Flows created.
    pub created: u64,
    /// Packets counted.
    pub packets: u64,
    /// Later fragments whose first fragment was not seen.
    pub orphan_fragments: u64,
    /// First fragments not remembered because the fragment map was full.
    pub fragments_dropped: u64,
    /// Most flows held at once.
    pub peak_flows: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    key: FlowKey,
    flow: Flow,
    live: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FragmentKey {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    id: u32,
}

/// Bidirectional flows, keyed in Community ID order.
pub struct FlowTable {
    cfg: TableConfig,
    slots: Vec<Slot>,
    free: Vec<u32>,
    index: HashTable<u32>,
    hasher: RandomState,
    live: usize,
    fragments: HashMap<FragmentKey, (FlowKey, Side, u64)>,
    next_sweep_ms: u64,
    stats: TableStats,
}

impl FlowTable {
    /// An empty table.
    pub fn new(cfg: TableConfig) -> Self {
        FlowTable {
            cfg,
            slots: Vec::new(),
            free: Vec::new(),
            index: HashTable::new(),
            hasher: RandomState::default(),
            live: 0,
            fragments: HashMap::new(),
            next_sweep_ms: 0,
            stats: TableStats::default(),
        }
    }

    /// Flows held.
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when no flow is held.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The table's counters.
    pub fn stats(&self) -> TableStats {
        self.stats
    }

    /// Counts a packet seen at `now`; flows that end because of it (a TCP connection reopening, an
    /// eviction) go to `out`. Timeouts are checked here too, every sweep interval of the packet clock.
    pub fn packet(&mut self, p: &PacketInfo, now: u64, out: &mut impl FnMut(Expired)) {
        self.tick(now, out);
        let Some((key, side)) = self.key_of(p, now) else {
            return;
        };
        self.stats.packets += 1;
        let hash = self.hasher.hash_one(key);
        let slots = &self.slots;
        let found = self.index.find(hash, |&i| slots[i as usize].key == key).copied();
        let i = match found {
            Some(i) => {
                let slot = &mut self.slots[i as usize];
                // A new TCP connection on the tuple of a closed one ends the old flow first.
                if p.proto == TCP && p.tcp_flags & (SYN | ACK) == SYN && slot.flow.closed() {
                    if slot.flow.packets() > 0 {
                        out(Expired {
                            key,
                            flow: slot.flow,
                            reason: EndReason::EndOfFlow,
                        });
                    }
                    slot.flow = Flow::default();
                }
                i
            }
            None => {
                if self.live >= self.cfg.max_flows {
                    self.evict(out);
                }
                self.insert(key, hash)
            }
        };
        let flow = &mut self.slots[i as usize].flow;
        count(flow, p, side, now);
    }

    /// The flow key of a packet, following later fragments to their first fragment's flow.
    #[inline(always)]
    fn key_of(&mut self, p: &PacketInfo, now: u64) -> Option<(FlowKey, Side)> {
        match p.fragment {
            Fragment::Whole => FlowKey::of(p),
            Fragment::First { id } => {
                let ks = FlowKey::of(p)?;
                let fk = FragmentKey {
                    src: p.src,
                    dst: p.dst,
                    proto: p.proto,
                    id,
                };
                if self.fragments.len() < self.cfg.max_fragments || self.fragments.contains_key(&fk) {
                    self.fragments.insert(fk, (ks.0, ks.1, now));
                } else {
                    self.stats.fragments_dropped += 1;
                }
                Some(ks)
            }
            Fragment::Later { id, .. } => {
                let fk = FragmentKey {
                    src: p.src,
                    dst: p.dst,
                    proto: p.proto,
                    id,
                };
                match self.fragments.get(&fk) {
                    Some(&(key, side, _)) => Some((key, side)),
                    None => {
                        self.stats.orphan_fragments += 1;
                        FlowKey::of(p)
                    }
                }
            }
        }
    }

    fn insert(&mut self, key: FlowKey, hash: u64) -> u32 {
        let slot = Slot {
            key,
            flow: Flow::default(),
            live: true,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                // The table never holds more than max_flows + 1 slots, far below u32::MAX.
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index
            .insert_unique(hash, i, |&j| hasher.hash_one(slots[j as usize].key));
        self.live += 1;
        self.stats.created += 1;
        self.stats.peak_flows = self.stats.peak_flows.max(self.live as u64);
        i
    }

    fn remove(&mut self, i: u32) {
        let slot = &mut self.slots[i as usize];
        if !slot.live {
            return;
        }
        slot.live = false;
        let hash = self.hasher.hash_one(slot.key);
        if let Ok(e) = self.index.find_entry(hash, |&j| j == i) {
            e.remove();
        }
        self.free.push(i);
        self.live -= 1;
    }

    /// Runs [`FlowTable::expire`] if a sweep is due at `now`: for live capture, where time passes without
    /// packets.
    pub fn tick(&mut self, now: u64, out: &mut impl FnMut(Expired)) {
        if now >= self.next_sweep_ms {
            self.expire(now, out);
        }
    }

    /// Exports flows whose time is up (idle, active, TCP end) and forgets stale fragments.
    pub fn expire(&mut self, now: u64, out: &mut impl FnMut(Expired)) {
        self.next_sweep_ms = now.saturating_add(self.cfg.sweep_interval_ms);
        let cfg = self.cfg;
        for i in 0..self.slots.len() {
            let slot = &mut self.slots[i];
            if !slot.live {
                continue;
            }
            let f = &mut slot.flow;
            let idle = now.saturating_sub(f.end_ms);
            let reason = if f.closed() && idle >= cfg.tcp_linger_ms {
                Some(EndReason::EndOfFlow)
            } else if idle >= cfg.idle_timeout_ms {
                Some(EndReason::IdleTimeout)
            } else {
                None
            };
            match reason {
                Some(reason) => {
                    if f.packets() > 0 {
                        out(Expired {
                            key: slot.key,
                            flow: *f,
                            reason,
                        });
                    }
                    self.remove(i as u32);
                }
                None if f.packets() > 0 && now.saturating_sub(f.start_ms) >= cfg.active_timeout_ms => {
                    out(Expired {
                        key: slot.key,
                        flow: *f,
                        reason: EndReason::ActiveTimeout,
                    });
                    // Keep who opened the flow and how TCP stands; count afresh.
                    f.dirs = Default::default();
                }
                None => {}
            }
        }
        let stale = cfg.fragment_timeout_ms;
        self.fragments
            .retain(|_, (_, _, seen)| now.saturating_sub(*seen) < stale);
    }

    /// Exports every flow with `reason` (end of capture, shutdown) and empties the table.
    pub fn flush(&mut self, reason: EndReason, out: &mut impl FnMut(Expired)) {
        for slot in self.slots.iter().filter(|s| s.live && s.flow.packets() > 0) {
            out(Expired {
                key: slot.key,
                flow: slot.flow,
                reason,
            });
        }
        self.slots.clear();
        self.free.clear();
        self.index.clear();
        self.fragments.clear();
        self.live = 0;
    }

    /// Makes room: exports the least recently seen 1/64 of the flows (at least one).
    fn evict(&mut self, out: &mut impl FnMut(Expired)) {
        let mut by_age: Vec<(u64, u32)> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.live)
            .map(|(i, s)| (s.flow.end_ms, i as u32))
            .collect();
        let n = (by_age.len() / 64).max(1).min(by_age.len());
        if n == 0 {
            return;
        }
        by_age.select_nth_unstable(n - 1);
        for &(_, i) in &by_age[..n] {
            let slot = self.slots[i as usize];
            if slot.flow.packets() > 0 {
                out(Expired {
                    key: slot.key,
                    flow: slot.flow,
                    reason: EndReason::LackOfResources,
                });
            }
            self.remove(i);
        }
    }
}

/// Counts one packet into its flow.
#[inline(always)]
fn count(f: &mut Flow, p: &PacketInfo, side: Side, now: u64) {
    if f.packets() == 0 {
        // First packet of the flow, or of a delta record after an active-timeout export.
        f.start_ms = now;
        f.end_ms = now;
    }
    f.start_ms = f.start_ms.min(now);
    f.end_ms = f.end_ms.max(now);
    let d = &mut f.dirs[side.index()];
    d.octets += u64::from(p.ip_len);
    d.packets += 1;
    d.tcp_flags |= p.tcp_flags;
    if p.proto == TCP {
        if p.tcp_flags & FIN != 0 {
            f.fin[side.index()] = true;
        }
        if p.tcp_flags & RST != 0 {
            f.rst = true;
        }
    }
    if f.initiator_sure {
        return;
    }
    // Who opened the flow: a TCP SYN says so for sure, SYN-ACK names the other side; an ICMP request
    // names its sender and a reply its receiver; otherwise the first packet's sender is the best guess.
    let icmp = p.proto == 1 || p.proto == 58;
    let (who, sure) = if p.proto == TCP && p.tcp_flags & SYN != 0 {
        (if p.tcp_flags & ACK == 0 { side } else { side.flip() }, true)
    } else if icmp && is_icmp_request(p.proto, p.sport as u8) {
        (side, true)
    } else if icmp && is_icmp_reply(p.proto, p.sport as u8) && !p.dst.is_multicast() {
        // (An unsolicited advertisement to a group answers nobody: its sender initiates.)
        (side.flip(), true)
    } else {
        (side, false)
    };
    if f.initiator.is_none() || sure {
        f.initiator = Some(who);
        f.initiator_sure = sure;
        if icmp {
            // The initiator's type and code name the flow; a reply's sender is the other side, whose
            // request type is the counterpart of this reply.
            f.icmp_type_code = if who == side {
                (p.sport << 8) | (p.dport & 0xff)
            } else {
                u16::from(icmp_counterpart_request(p.proto, p.sport as u8)) << 8
            };
        }
    }
}

fn is_icmp_request(proto: u8, t: u8) -> bool {
    match proto {
        1 => matches!(t, 8 | 13 | 15 | 10 | 17),
        _ => matches!(t, 128 | 130 | 133 | 135 | 139 | 144),
    }
}

fn is_icmp_reply(proto: u8, t: u8) -> bool {
    match proto {
        1 => matches!(t, 0 | 14 | 16 | 9 | 18),
        _ => matches!(t, 129 | 131 | 134 | 136 | 140 | 145),
    }
}

/// The request type a reply answers.
fn icmp_counterpart_request(proto: u8, reply: u8) -> u8 {
    match (proto, reply) {
        (1, 0) => 8,
        (1, 14) => 13,
        (1, 16) => 15,
        (1, 9) => 10,
        (1, 18) => 17,
        (_, r) => r.wrapping_sub(1),
    }
}
