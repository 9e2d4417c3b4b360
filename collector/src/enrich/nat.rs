//! NAT join: which backend served a connection to a Service.
//!
//! A node probe sees the translation in conntrack and writes it into its flow records (postNAT* fields),
//! and also exports NAT event records (natEvent 4 create, 5 delete) with the original tuple's Community
//! ID and the translated tuple. A sidecar, which cannot see the host's conntrack, reports the connection
//! before translation (client -> ClusterIP). This table remembers each NAT event by the original tuple's
//! Community ID for a window, so the sidecar's record finds its backend: matched by Community ID, within
//! the time the translation existed (plus slack, since exporters' clocks and export delays differ).
//!
//! Pure: times are parameters (Unix milliseconds, the records' own times).

use std::net::IpAddr;

use foldhash::{HashMap, HashMapExt};

use crate::model::{FlowRecord, InlineStr};

/// natEvent values (IANA "NAT Event Type" registry, RFC 8158).
const NAT44_CREATE: u8 = 4;
const NAT44_DELETE: u8 = 5;
const NAT64_CREATE: u8 = 6;
const NAT64_DELETE: u8 = 7;

/// Where a connection went after NAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The backend address and port (post-NAT destination).
    pub backend: Option<(IpAddr, u16)>,
    /// The source after SNAT/masquerade, when translated.
    pub source: Option<(IpAddr, u16)>,
    /// Community ID of the translated tuple.
    pub post_nat_community_id: Option<InlineStr>,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    translation: Translation,
    created_ms: u64,
    deleted_ms: Option<u64>,
}

/// NAT join settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatConfig {
    /// How long after a translation ended its events still resolve flows (flows are exported after
    /// the connection ends), and how far flow times may precede the create event.
    pub slack_ms: u64,
    /// Translations remembered at most; beyond it the oldest are forgotten and counted.
    pub max_entries: usize,
}

impl Default for NatConfig {
    fn default() -> Self {
        NatConfig {
            slack_ms: 120_000,
            max_entries: 1 << 20,
        }
    }
}

/// Counters of the NAT join.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatStats {
    /// NAT events stored.
    pub events: u64,
    /// Flows resolved from their own postNAT fields.
    pub from_fields: u64,
    /// Flows resolved from NAT events.
    pub from_events: u64,
    /// Translations forgotten early because the table was full.
    pub evicted: u64,
}

/// Translations learned from NAT event records, keyed by the original tuple's Community ID.
#[derive(Default)]
pub struct NatTable {
    cfg: NatConfig,
    by_cid: HashMap<InlineStr, Entry>,
    stats: NatStats,
}

/// The translation a record carries in its own postNAT fields, if any field differs from the original.
pub fn own_translation(r: &FlowRecord) -> Option<Translation> {
    let dst = r
        .post_nat_dst
        .map(|n| (n.ip.unwrap_or(r.dst), n.port.unwrap_or(r.dport)));
    let src = r
        .post_nat_src
        .map(|n| (n.ip.unwrap_or(r.src), n.port.unwrap_or(r.sport)));
    let backend = dst.filter(|&d| d != (r.dst, r.dport));
    let source = src.filter(|&s| s != (r.src, r.sport));
    if backend.is_none() && source.is_none() {
        return None;
    }
    Some(Translation {
        backend,
        source,
        post_nat_community_id: r.post_nat_community_id,
    })
}

impl NatTable {
    /// An empty table.
    pub fn new(cfg: NatConfig) -> Self {
        NatTable {
            cfg,
            by_cid: HashMap::new(),
            stats: NatStats::default(),
        }
    }

    /// The join's counters.
    pub fn stats(&self) -> NatStats {
        self.stats
    }

    /// Translations held.
    pub fn len(&self) -> usize {
        self.by_cid.len()
    }

    /// True when no translation is held.
    pub fn is_empty(&self) -> bool {
        self.by_cid.is_empty()
    }

    /// Learns from a NAT event record (natEvent create/delete with its original tuple's Community ID).
    /// Returns false for records that are not NAT events, or carry no Community ID to match by.
    pub fn observe(&mut self, r: &FlowRecord, cid: InlineStr) -> bool {
        let Some(event) = r.nat_event else { return false };
        let Some(translation) = own_translation(r) else {
            return false;
        };
        let time = if r.start_ms > 0 {
            r.start_ms
        } else {
            u64::from(r.export_time) * 1000
        };
        match event {
            NAT44_CREATE | NAT64_CREATE => {
                if self.by_cid.len() >= self.cfg.max_entries && !self.by_cid.contains_key(&cid) {
                    self.evict_oldest();
                }
                self.by_cid.insert(
                    cid,
                    Entry {
                        translation,
                        created_ms: time,
                        deleted_ms: None,
                    },
                );
            }
            NAT44_DELETE | NAT64_DELETE => {
                let end = if r.end_ms > 0 { r.end_ms } else { time };
                let e = self.by_cid.entry(cid).or_insert(Entry {
                    translation,
                    created_ms: time,
                    deleted_ms: None,
                });
                e.deleted_ms = Some(end);
            }
            _ => return false,
        }
        self.stats.events += 1;
        true
    }

    /// The translation of a flow: its own postNAT fields first, else a NAT event with the same Community
    /// ID whose lifetime (with slack) covers the flow's start.
    pub fn resolve(&mut self, r: &FlowRecord, cid: &InlineStr) -> Option<Translation> {
        if let Some(t) = own_translation(r) {
            self.stats.from_fields += 1;
            return Some(t);
        }
        let e = self.by_cid.get(cid)?;
        let slack = self.cfg.slack_ms;
        let from = e.created_ms.saturating_sub(slack);
        let to = e.deleted_ms.map_or(u64::MAX, |d| d.saturating_add(slack));
        if !(from..=to).contains(&r.start_ms) {
            return None;
        }
        self.stats.from_events += 1;
        Some(e.translation)
    }

    /// Forgets translations that ended more than the slack before `now`.
    pub fn expire(&mut self, now: u64) {
        let slack = self.cfg.slack_ms;
        self.by_cid
            .retain(|_, e| e.deleted_ms.is_none_or(|d| now.saturating_sub(d) <= slack));
    }

    fn evict_oldest(&mut self) {
        // Rare (a full table): a linear scan keeps the common path free of ordering structures.
        if let Some(oldest) = self
            .by_cid
            .iter()
            .min_by_key(|(_, e)| e.created_ms)
            .map(|(k, _)| *k)
        {
            self.by_cid.remove(&oldest);
            self.stats.evicted += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrich::tests::record;
    use crate::model::NatEndpoint;

    fn cid(s: &str) -> InlineStr {
        InlineStr::new(s).unwrap()
    }

    #[test]
    fn own_fields_resolve_and_untranslated_fields_do_not() {
        let mut t = NatTable::new(NatConfig::default());
        let mut r = record("10.0.1.5", 40000, "10.96.0.10", 80);
        r.post_nat_dst = Some(NatEndpoint {
            ip: Some("10.0.2.7".parse().unwrap()),
            port: Some(8080),
        });
        let got = t.resolve(&r, &cid("1:a")).unwrap();
        assert_eq!(got.backend, Some(("10.0.2.7".parse().unwrap(), 8080)));
        assert_eq!(got.source, None);
        // postNAT equal to the original: no translation
        r.post_nat_dst = Some(NatEndpoint {
            ip: Some(r.dst),
            port: Some(r.dport),
        });
        assert_eq!(t.resolve(&r, &cid("1:a")), None);
    }

    #[test]
    fn nat_events_resolve_a_sidecar_flow_within_the_window() {
        let mut t = NatTable::new(NatConfig {
            slack_ms: 1000,
            max_entries: 16,
        });
        let mut create = record("10.0.1.5", 40000, "10.96.0.10", 80);
        create.nat_event = Some(4);
        create.start_ms = 10_000;
        create.post_nat_dst = Some(NatEndpoint {
            ip: Some("10.0.2.7".parse().unwrap()),
            port: Some(8080),
        });
        assert!(t.observe(&create, cid("1:conn")));
        let mut delete = create.clone();
        delete.nat_event = Some(5);
        delete.start_ms = 10_000;
        delete.end_ms = 20_000;
        assert!(t.observe(&delete, cid("1:conn")));
        let mut sidecar = record("10.0.1.5", 40000, "10.96.0.10", 80);
        sidecar.start_ms = 10_050;
        let got = t.resolve(&sidecar, &cid("1:conn")).unwrap();
        assert_eq!(got.backend.unwrap().1, 8080);
        assert_eq!(t.resolve(&sidecar, &cid("1:other")), None);
        sidecar.start_ms = 21_001;
        assert_eq!(
            t.resolve(&sidecar, &cid("1:conn")),
            None,
            "after the translation ended"
        );
        t.expire(21_001);
        assert!(t.is_empty());
        assert_eq!(t.stats().from_events, 1);
    }

    #[test]
    fn full_table_forgets_the_oldest() {
        let mut t = NatTable::new(NatConfig {
            slack_ms: 1000,
            max_entries: 2,
        });
        for (i, c) in ["1:a", "1:b", "1:c"].iter().enumerate() {
            let mut e = record("10.0.1.5", 40000 + i as u16, "10.96.0.10", 80);
            e.nat_event = Some(4);
            e.start_ms = i as u64;
            e.post_nat_dst = Some(NatEndpoint {
                ip: Some("10.0.2.7".parse().unwrap()),
                port: Some(80),
            });
            t.observe(&e, cid(c));
        }
        assert_eq!((t.len(), t.stats().evicted), (2, 1));
        let mut f = record("10.0.1.5", 40000, "10.96.0.10", 80);
        f.start_ms = 0;
        assert_eq!(t.resolve(&f, &cid("1:a")), None);
    }
}
