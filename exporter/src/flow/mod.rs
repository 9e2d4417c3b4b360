//! The flow table: packets to bidirectional flows (pure logic: time is a parameter, nothing here does I/O).
//!
//! Flows are keyed in Community ID order ([`FlowKey`]), so both directions of a connection count into
//! one flow, each direction separately. A flow ends, with the matching IPFIX flowEndReason, when:
//! - no packet arrived for the idle timeout (1, idle timeout);
//! - it has lasted the active timeout: it is exported and goes on counting from zero, so long flows
//!   appear as a series of delta records (2, active timeout);
//! - TCP closed it (FIN both ways, or RST) and a short linger passed, so the last ACK still counts
//!   (3, end of flow);
//! - the probe is stopping or the capture file ended (4, forced end);
//! - the table is full and it was among the least recently seen (5, lack of resources).
//!
//! IPv4 fragments: the first fragment carries the ports and opens (or joins) the flow; it also records
//! its (source, destination, protocol, IP ID) so later fragments, which have no ports, are counted into
//! the same flow. A later fragment whose first fragment was not seen (lost, or arrived after it) is
//! counted into a port-less flow of the same addresses and protocol, and counted in
//! [`TableStats::orphan_fragments`].

mod key;
mod table;
#[cfg(test)]
mod tests;

use std::net::IpAddr;

pub use key::{FlowKey, Side};
pub use table::{FlowTable, TableConfig, TableStats};

/// IPFIX flowEndReason (IE 136) values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// No packet for the idle timeout.
    IdleTimeout = 1,
    /// The flow lasted the active timeout and goes on.
    ActiveTimeout = 2,
    /// TCP FIN both ways or RST.
    EndOfFlow = 3,
    /// The probe stopped or the capture ended.
    ForcedEnd = 4,
    /// Evicted from a full table.
    LackOfResources = 5,
}

impl EndReason {
    /// Every reason, for metrics.
    pub const ALL: [EndReason; 5] = [
        EndReason::IdleTimeout,
        EndReason::ActiveTimeout,
        EndReason::EndOfFlow,
        EndReason::ForcedEnd,
        EndReason::LackOfResources,
    ];

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            EndReason::IdleTimeout => "idle_timeout",
            EndReason::ActiveTimeout => "active_timeout",
            EndReason::EndOfFlow => "end_of_flow",
            EndReason::ForcedEnd => "forced_end",
            EndReason::LackOfResources => "lack_of_resources",
        }
    }
}

/// What one direction of a flow carried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Direction {
    /// Octets of the IP packets (header and payload).
    pub octets: u64,
    /// Packets.
    pub packets: u64,
    /// TCP flags seen, ORed.
    pub tcp_flags: u8,
}

/// A flow's counters and times since it started or was last exported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flow {
    /// Time of the first packet counted (Unix milliseconds).
    pub start_ms: u64,
    /// Time of the last packet counted (Unix milliseconds).
    pub end_ms: u64,
    /// Per direction, indexed by [`Side::index`].
    pub dirs: [Direction; 2],
    /// The initiator's ICMP type and code (ICMP flows).
    pub icmp_type_code: u16,
    /// Which side opened the flow.
    pub initiator: Option<Side>,
    /// The initiator was seen for sure (TCP SYN, ICMP request), not guessed from the first packet.
    pub initiator_sure: bool,
    /// FIN seen per direction.
    pub fin: [bool; 2],
    /// RST seen.
    pub rst: bool,
}

impl Flow {
    /// Packets in both directions.
    pub fn packets(&self) -> u64 {
        self.dirs[0].packets + self.dirs[1].packets
    }

    /// True once TCP has closed the connection.
    pub fn closed(&self) -> bool {
        self.rst || (self.fin[0] && self.fin[1])
    }
}

/// A flow leaving the table (for good, or as a delta record at the active timeout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expired {
    /// The flow's key.
    pub key: FlowKey,
    /// Its counters.
    pub flow: Flow,
    /// Why it was exported.
    pub reason: EndReason,
}

/// One direction of an exported flow, oriented for a record: source, destination and what it carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Oriented {
    /// Sender address.
    pub src: IpAddr,
    /// Sender port (0 for ICMP).
    pub sport: u16,
    /// Receiver address.
    pub dst: IpAddr,
    /// Receiver port (0 for ICMP).
    pub dport: u16,
    /// What this direction carried.
    pub dir: Direction,
}

impl Expired {
    /// The initiator's side (the `lo` side when unknown).
    pub fn initiator(&self) -> Side {
        self.flow.initiator.unwrap_or(Side::LoHi)
    }

    /// The direction sent by `side`, with ICMP "ports" reported as 0.
    pub fn oriented(&self, side: Side) -> Oriented {
        let (src, mut sport) = self.key.sender(side);
        let (dst, mut dport) = self.key.sender(side.flip());
        if self.key.is_icmp() {
            (sport, dport) = (0, 0);
        }
        Oriented {
            src,
            sport,
            dst,
            dport,
            dir: self.flow.dirs[side.index()],
        }
    }

    /// ICMP type * 256 + code of the initiator's messages (0 for other protocols).
    pub fn icmp_type_code(&self) -> u16 {
        if self.key.is_icmp() {
            self.flow.icmp_type_code
        } else {
            0
        }
    }
}
