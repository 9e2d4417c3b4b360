//! What the decoder saw, per exporter and observation domain, for metrics.
//!
//! The caller reads the counters after a batch of datagrams and resets them ([`DecodeStats::clear`] or
//! `Decoder::take_stats`), so each publication covers one batch. Entries exist only for exporters and
//! domains the decoder admitted, plus [`StatsKey::OVERFLOW`] for datagrams that admitted none, so the
//! counters are bounded like the state they describe.

use std::collections::hash_map::Entry;
use std::net::{Ipv4Addr, SocketAddr};

use foldhash::HashMap;

use crate::model::Protocol;

/// Whose counters: an exporter and one of its observation domains.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatsKey {
    /// Exporter address and source port.
    pub exporter: SocketAddr,
    /// IPFIX Observation Domain ID, v9 Source ID or v5 engine type * 256 + engine ID; `None` for
    /// datagrams refused before a domain was known or admitted.
    pub observation_domain: Option<u32>,
}

impl StatsKey {
    /// Datagrams that created no exporter state, all together: from exporters beyond the exporter limit
    /// (counted as limit hits), and datagrams of no known version from exporters not seen before.
    pub const OVERFLOW: StatsKey = StatsKey {
        exporter: SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        observation_domain: None,
    };
}

/// Decode errors by reason.
///
/// Reasons are short stable names for metric labels: proto-ipfix's [`proto_ipfix::DecodeError::reason`]
/// names for IPFIX (`bad_version`, `truncated`, `reserved_set_id`, `bad_length`, `bad_template`,
/// `record_overrun`, `state_limit`), the same names where they apply to NetFlow, and `bad_count` (a v5
/// record count outside 1..=30), `unsupported_template` (a v9 template with a variable-length field,
/// which RFC 3954 does not have), `unsupported_version` (a version other than 5, 9 and 10).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ErrorCounts(Vec<(&'static str, u64)>);

impl ErrorCounts {
    /// Adds `n` errors of `reason`.
    pub fn add(&mut self, reason: &'static str, n: u64) {
        match self.0.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, c)) => *c += n,
            None => self.0.push((reason, n)),
        }
    }

    /// Errors of `reason`.
    pub fn get(&self, reason: &str) -> u64 {
        self.0.iter().find(|(r, _)| *r == reason).map_or(0, |(_, c)| *c)
    }

    /// All errors.
    pub fn total(&self) -> u64 {
        self.0.iter().map(|(_, c)| c).sum()
    }

    /// Reasons and counts, in the order first seen.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.0.iter().copied()
    }
}

/// The counters of one exporter and domain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExporterStats {
    /// The protocol it spoke last.
    pub protocol: Option<Protocol>,
    /// Datagrams received.
    pub datagrams: u64,
    /// Flow records produced.
    pub records: u64,
    /// Options records (exporter statistics and metadata, not flows): counted, not produced.
    pub options_records: u64,
    /// Data records without a source and destination address: counted, not produced.
    pub no_addresses: u64,
    /// Template records accepted (new, refreshed or replaced).
    pub templates: u64,
    /// Data sets whose template was unknown when they arrived.
    pub template_misses: u64,
    /// Records lost before the datagrams that arrived, from sequence numbers (IPFIX and v5 count records).
    pub lost_records: u64,
    /// Datagrams lost, from sequence numbers (NetFlow v9 counts export packets).
    pub lost_datagrams: u64,
    /// Data sets held for want of their template.
    pub held_sets: u64,
    /// Held sets decoded once their template came.
    pub replayed_sets: u64,
    /// Held sets dropped after waiting too long.
    pub expired_sets: u64,
    /// Data sets not held because the exporter's hold limits were reached.
    pub dropped_sets: u64,
    /// Times a state limit refused something (an exporter, a domain, a template, a held set).
    pub limit_hits: u64,
    /// Decode errors by reason.
    pub errors: ErrorCounts,
}

impl ExporterStats {
    /// Adds `other`'s counters to these (the protocol stays as it is).
    pub fn add(&mut self, other: &ExporterStats) {
        self.datagrams += other.datagrams;
        self.records += other.records;
        self.options_records += other.options_records;
        self.no_addresses += other.no_addresses;
        self.templates += other.templates;
        self.template_misses += other.template_misses;
        self.lost_records += other.lost_records;
        self.lost_datagrams += other.lost_datagrams;
        self.held_sets += other.held_sets;
        self.replayed_sets += other.replayed_sets;
        self.expired_sets += other.expired_sets;
        self.dropped_sets += other.dropped_sets;
        self.limit_hits += other.limit_hits;
        for (r, n) in other.errors.iter() {
            self.errors.add(r, n);
        }
    }

    /// How many things were lost or refused: decode errors, records and datagrams missing by sequence
    /// numbers, held data sets dropped, state limits hit.
    pub fn troubles(&self) -> u64 {
        self.errors.total()
            + self.lost_records
            + self.lost_datagrams
            + self.expired_sets
            + self.dropped_sets
            + self.limit_hits
    }
}

/// Counters of every exporter and domain since the last reset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodeStats {
    by_key: HashMap<StatsKey, ExporterStats>,
}

impl DecodeStats {
    /// The counters of `key`, if anything was counted for it.
    pub fn get(&self, key: &StatsKey) -> Option<&ExporterStats> {
        self.by_key.get(key)
    }

    /// Every key and its counters, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&StatsKey, &ExporterStats)> {
        self.by_key.iter()
    }

    /// The sum over all keys (the protocol is left unset).
    pub fn total(&self) -> ExporterStats {
        let mut t = ExporterStats::default();
        for c in self.by_key.values() {
            t.add(c);
        }
        t
    }

    /// Forgets every counter.
    pub fn clear(&mut self) {
        self.by_key.clear();
    }

    /// The counters of `key`, created empty.
    pub(crate) fn entry(&mut self, key: StatsKey) -> &mut ExporterStats {
        match self.by_key.entry(key) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(ExporterStats::default()),
        }
    }
}
