//! The probe's engine: packets in, IPFIX out. One engine runs on one thread; capture sources feed it
//! parsed packets with their capture time, and it owns the flow table, the writer and the collectors.
//!
//! With conntrack ([`Engine::with_conntrack`]) the engine also owns the table of translated connections:
//! capture sources call [`Engine::sync_conntrack`] before handing over each batch of packets, a
//! translated connection's reply packets are folded into its original biflow before the flow table
//! sees them, and exported flows carry their connection's translation.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::conntrack::{self, Connection, Conntrack, NatEvent};
use crate::export::{Collectors, IpfixWriter};
use crate::flow::{EndReason, Expired, FlowTable};
use crate::metrics::{ConntrackState, Metrics, State};
use crate::parse::{self, LinkType, PacketInfo, Skip};

/// How often counters are published to the metrics, in milliseconds of the engine's clock.
const PUBLISH_EVERY_MS: u64 = 1_000;

/// Ended flows are encoded and sent once this many are waiting, so a sweep or the final flush of a
/// million flows never holds them all in a second copy.
const BATCH: usize = 4096;

/// What a run did, for the closing log line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Packets read.
    pub packets: u64,
    /// Packets skipped (not IP, truncated, malformed).
    pub skipped: u64,
    /// Flows exported.
    pub flows: u64,
    /// IPFIX records written.
    pub records: u64,
    /// IPFIX messages written.
    pub messages: u64,
    /// Most flows held at once.
    pub peak_flows: u64,
}

/// Packets to flows to messages.
pub struct Engine {
    table: FlowTable,
    out: Outbox,
    metrics: Metrics,
    /// Counters not yet published.
    local: State,
    totals: Totals,
    now: u64,
    next_publish: u64,
}

/// Where ended flows go: batched, encoded and sent.
struct Outbox {
    writer: IpfixWriter,
    collectors: Collectors,
    batch: Vec<Expired>,
    /// Conntrack learning, when it runs.
    conntrack: Option<Conntrack>,
    /// Conntrack was asked for (it may have failed to start, or stopped).
    conntrack_wanted: bool,
    /// The translation of each flow of `batch` (conntrack only).
    nat: Vec<Option<Connection>>,
    /// NAT events to write with the next batch.
    nat_events: Vec<NatEvent>,
    /// Conntrack counters of the engine's own: packets folded, flows by resolution.
    nat_state: ConntrackState,
    /// Ended flows by [`EndReason`] (as `reason as usize - 1`), not yet published.
    exported: [u64; 5],
    /// Flows sent in all.
    flows: u64,
    /// The engine's clock when the batch is sent.
    now: u64,
}

impl Outbox {
    /// Takes one ended flow; sends the batch when it is full.
    fn push(&mut self, e: Expired) {
        self.batch.push(e);
        if self.batch.len() >= BATCH {
            self.send();
        }
    }

    fn send(&mut self) {
        let events_waiting = self.conntrack.as_ref().is_some_and(Conntrack::has_events);
        if self.batch.is_empty() && !events_waiting {
            return;
        }
        for e in &self.batch {
            self.exported[e.reason as usize - 1] += 1;
        }
        self.flows += self.batch.len() as u64;
        self.resolve();
        let collectors = &mut self.collectors;
        self.writer
            .write_all(&self.batch, &self.nat, &self.nat_events, self.now, &mut |m| {
                collectors.send(m)
            });
        self.batch.clear();
        self.nat.clear();
        self.nat_events.clear();
    }

    /// Finds the translation of each flow of the batch, and takes the NAT events due.
    fn resolve(&mut self) {
        self.nat.clear();
        let flows = &mut self.nat_state.flows;
        match &mut self.conntrack {
            Some(ct) if !ct.failed() => {
                for e in &mut self.batch {
                    let t = ct.translation_of(e);
                    if let Some(c) = &t {
                        conntrack::orient(e, c);
                    }
                    flows[usize::from(t.is_none())] += 1;
                    self.nat.push(t);
                }
                ct.take_events(&mut self.nat_events);
            }
            _ if self.conntrack_wanted => flows[2] += self.batch.len() as u64,
            _ => {}
        }
    }
}

impl Engine {
    /// An engine sending to `collectors`.
    pub fn new(table: FlowTable, writer: IpfixWriter, collectors: Collectors, metrics: Metrics) -> Self {
        Engine {
            table,
            out: Outbox {
                writer,
                collectors,
                batch: Vec::with_capacity(BATCH),
                conntrack: None,
                conntrack_wanted: false,
                nat: Vec::new(),
                nat_events: Vec::new(),
                nat_state: ConntrackState::default(),
                exported: [0; 5],
                flows: 0,
                now: 0,
            },
            metrics,
            local: State::default(),
            totals: Totals::default(),
            now: 0,
            next_publish: 0,
        }
    }

    /// Learns translations from conntrack (`--conntrack`); `None` when it was asked for but could not
    /// start: flows are then exported without translation and counted as unresolved.
    pub fn with_conntrack(mut self, conntrack: Option<Conntrack>) -> Self {
        self.out.conntrack_wanted = true;
        self.out.nat_state.up = conntrack.is_some();
        self.out.conntrack = conntrack;
        self
    }

    /// Reads the conntrack events available now (`now`: wall clock, Unix milliseconds). Capture sources
    /// call it before handing over a batch: the kernel queues a connection's events before the
    /// connection's translated packets go on, so every packet of the batch then finds its connection.
    pub fn sync_conntrack(&mut self, now: u64) {
        if let Some(ct) = &mut self.out.conntrack {
            ct.sync(now);
            self.out.nat_state.up = !ct.failed();
        }
    }

    /// Parses and counts one captured frame.
    pub fn frame(&mut self, link: LinkType, frame: &[u8], ts_ms: u64) {
        self.local.packets += 1;
        match parse::parse(link, frame) {
            Ok(p) => self.packet(&p, ts_ms),
            Err(why) => self.skipped(why, ts_ms),
        }
    }

    /// Counts a frame that a capture thread read but could not parse.
    pub fn skipped(&mut self, why: Skip, ts_ms: u64) {
        self.local.skip(why);
        self.totals.skipped += 1;
        self.advance(ts_ms);
    }

    /// Counts one parsed packet captured at `ts_ms`.
    pub fn packet(&mut self, p: &PacketInfo, ts_ms: u64) {
        self.set_clock(ts_ms);
        let folded = self.out.conntrack.as_mut().and_then(|ct| ct.fold(p, ts_ms));
        if folded.is_some() {
            self.out.nat_state.folded_packets += 1;
        }
        let p = folded.as_ref().unwrap_or(p);
        let out = &mut self.out;
        self.table.packet(p, ts_ms, &mut |e| out.push(e));
        self.advance(ts_ms);
    }

    /// Counts packets that capture threads already counted as read (live capture).
    pub fn count_read(&mut self, n: u64) {
        self.local.packets += n;
    }

    /// Lets time pass without packets (live capture): timeouts, template refresh, metrics.
    pub fn tick(&mut self, now: u64) {
        self.set_clock(now);
        self.sync_conntrack(now);
        let out = &mut self.out;
        self.table.tick(now, &mut |e| out.push(e));
        // Templates are refreshed even when no flow ends.
        if self.out.batch.is_empty() {
            let collectors = &mut self.out.collectors;
            self.out.writer.write(&[], self.now, &mut |m| collectors.send(m));
        }
        self.advance(now);
    }

    /// The engine's clock never goes back, whatever the order of the packets' timestamps.
    fn set_clock(&mut self, now: u64) {
        self.now = self.now.max(now);
        self.out.now = self.now;
    }

    /// Sends what ended and publishes counters when due.
    fn advance(&mut self, now: u64) {
        self.set_clock(now);
        self.out.send();
        if self.now >= self.next_publish {
            self.publish();
            self.next_publish = self.now.saturating_add(PUBLISH_EVERY_MS);
        }
    }

    /// Ends every flow with `reason` (end of file: forced end; shutdown likewise) and sends them.
    pub fn finish(&mut self, reason: EndReason) -> Totals {
        let out = &mut self.out;
        self.table.flush(reason, &mut |e| out.push(e));
        self.out.send();
        self.publish();
        self.totals
    }

    /// Moves local counters into the shared metrics.
    fn publish(&mut self) {
        let w = self.out.writer.stats();
        let t = self.table.stats();
        for (reason, n) in EndReason::ALL
            .into_iter()
            .zip(std::mem::take(&mut self.out.exported))
        {
            self.local.exported(reason, n);
        }
        self.totals.flows = self.out.flows;
        self.totals.packets += self.local.packets;
        self.totals.records = w.records;
        self.totals.messages = w.messages;
        self.totals.peak_flows = t.peak_flows;
        let mut m = self.metrics.lock();
        m.packets += self.local.packets;
        for (dst, src) in m.skipped.iter_mut().zip(self.local.skipped) {
            *dst += src;
        }
        for (dst, src) in m.exported.iter_mut().zip(self.local.exported) {
            *dst += src;
        }
        m.active_flows = self.table.len() as u64;
        m.orphan_fragments = t.orphan_fragments;
        m.records = w.records;
        m.messages = w.messages;
        m.encode_errors = w.encode_errors;
        self.out.collectors.poll_errors();
        m.collectors = self.out.collectors.stats().cloned().collect();
        if self.out.conntrack_wanted {
            let mut c = self.out.nat_state.clone();
            if let Some(ct) = &self.out.conntrack {
                c.stats = ct.stats();
            }
            m.conntrack = Some(c);
        }
        drop(m);
        self.local = State::default();
    }
}

/// Milliseconds since the Unix epoch on the wall clock (live capture's clock, like packet timestamps).
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A pcap timestamp in milliseconds since the Unix epoch (negative times clamp to 0).
pub fn ts_ms(sec: i64, usec: i64) -> u64 {
    u64::try_from(sec.saturating_mul(1000).saturating_add(usec / 1000)).unwrap_or(0)
}

#[cfg(test)]
mod tests;
