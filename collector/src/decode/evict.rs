//! Making room when the decoder's state is full, so that a flood cannot lock good exporters out for a
//! template lifetime (30 minutes by default, RFC 7011 section 8.4).
//!
//! - Templates: when the fields of all exporters' templates pass seven eighths of
//!   `max_template_fields`, the exporters whose templates have decoded no data record for a minute (or
//!   never) lose their state, the longest idle first, until three quarters are left. An exporter that
//!   only defines templates (a flood) goes first; one whose templates decode data is kept. The exporter
//!   of the datagram at hand is never chosen.
//! - Exporters: when `max_exporters` are tracked and a new one sends, the eighth of those without
//!   templates or held sets (they hold only sequence numbers) that were seen longest ago are forgotten.
//!
//! Each forgotten exporter is counted under it as `decode_errors_total{reason="evicted"}` (and as a
//! limit hit; sets it held as dropped). Its next data sets wait for its next template refresh, as
//! after a collector restart.

use std::net::SocketAddr;

use super::stats::StatsKey;
use super::{Decoder, Protocol};

/// An exporter whose templates decoded data this recently is not evicted for room, milliseconds.
const ACTIVE_MS: u64 = 60_000;

impl Decoder {
    /// Evicts idle template holders if the template state is nearly full (see the module docs).
    pub(crate) fn room_for_templates(&mut self, keep: SocketAddr, now_ms: u64) {
        let max = self.cfg.limits.max_template_fields;
        if self.budget.template_fields <= max / 8 * 7 {
            return;
        }
        let low = max / 4 * 3;
        let mut idle: Vec<(u64, SocketAddr)> = self
            .exporters
            .iter()
            .filter(|(a, s)| **a != keep && s.template_fields > 0)
            .filter_map(|(a, s)| match s.last_data_ms {
                Some(t) if now_ms.saturating_sub(t) < ACTIVE_MS => None,
                t => Some((t.unwrap_or(0), *a)),
            })
            .collect();
        idle.sort_unstable();
        for (_, addr) in idle {
            if self.budget.template_fields <= low {
                break;
            }
            self.evict(addr);
        }
    }

    /// Forgets the longest unseen eighth of the exporters that hold nothing but sequence numbers, when
    /// `exporter` is new and the exporter limit is reached.
    pub(crate) fn room_for_exporter(&mut self, exporter: SocketAddr) {
        let max = self.cfg.limits.max_exporters;
        if self.exporters.len() < max || self.exporters.contains_key(&exporter) {
            return;
        }
        let mut bare: Vec<(u64, SocketAddr)> = self
            .exporters
            .iter()
            .filter(|(_, s)| s.templates == 0 && s.hold.is_empty())
            .map(|(a, s)| (s.last_seen_ms, *a))
            .collect();
        let n = (max / 8).max(1).min(bare.len());
        if n == 0 {
            return;
        }
        if n < bare.len() {
            bare.select_nth_unstable(n - 1);
        }
        for (_, addr) in bare.into_iter().take(n) {
            self.evict(addr);
        }
    }

    /// Forgets everything about `addr`, counted under it.
    fn evict(&mut self, addr: SocketAddr) {
        let Some(st) = self.exporters.remove(&addr) else {
            return;
        };
        for d in st.domains.iter().filter(|d| d.protocol == Protocol::Ipfix) {
            self.ipfix.cache_mut().remove(&proto_ipfix::SessionKey {
                exporter: addr,
                observation_domain: d.domain,
            });
        }
        self.budget.template_fields = self.budget.template_fields.saturating_sub(st.template_fields);
        self.budget.held_bytes = self.budget.held_bytes.saturating_sub(st.hold.bytes());
        self.budget.held_sets = self.budget.held_sets.saturating_sub(st.hold.len());
        let c = self.stats.entry(StatsKey {
            exporter: addr,
            observation_domain: None,
        });
        c.errors.add("evicted", 1);
        c.limit_hits += 1;
        // Sets it held are lost with it.
        c.dropped_sets += st.hold.len() as u64;
    }
}
