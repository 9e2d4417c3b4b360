//! One connection, several observers: count it once.
//!
//! A connection between pods can be reported by a client-side sidecar (before NAT), a server-side sidecar
//! (after it) and the node probes on both ends. Each record is keyed by the connection's identity: the
//! Community ID of the tuple after NAT (known from the record's own NAT fields, from NAT events, or equal
//! to its own tuple when nothing translated it). The first observer to report an identity owns it; records
//! of the same identity from other observers within the window are marked duplicates. The owner's later
//! records (active-timeout deltas) are never duplicates.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};

use foldhash::fast::{FixedState, RandomState};

use crate::model::{FlowRecord, InlineStr};

#[derive(Clone, Copy, Debug)]
struct Owner {
    observer: u64,
    last_ms: u64,
}

/// Duplicate detection settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DedupConfig {
    /// How long an identity stays owned after its owner's last record.
    pub window_ms: u64,
    /// Identities remembered at most (beyond it, nothing new is tracked until expiry and records count
    /// as originals: overcounting beats losing data).
    pub max_entries: usize,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            window_ms: 300_000,
            max_entries: 1 << 21,
        }
    }
}

/// Who owns which connection.
#[derive(Default)]
pub struct Dedup {
    cfg: DedupConfig,
    /// Owners by a 64-bit hash of the identity: an entry is 24 octets rather than 64 with the Community
    /// ID itself, so more of a table of millions stays in cache. Two identities of one hash (about one
    /// chance in 2^40 with a million held) would share an owner; the seed is random per process, so
    /// an exporter cannot aim for that.
    owners: HashMap<u64, Owner, BuildHasherDefault<Prehashed>>,
    seed: RandomState,
    /// Records marked duplicate.
    pub duplicates: u64,
    /// Identities not tracked because the table was full.
    pub untracked: u64,
}

/// A stable number for the observer of a record: the exporter's address and domain, and the pod a
/// sidecar reports from.
pub fn observer_of(r: &FlowRecord) -> u64 {
    // A fixed seed: the number must not change while the collector runs. foldhash, not SipHash: this
    // runs for every record.
    let mut h = FixedState::with_seed(0x706f_6466_6c6f_7721).build_hasher();
    r.exporter.ip().hash(&mut h);
    r.observation_domain.hash(&mut h);
    r.observer.pod_namespace.hash(&mut h);
    r.observer.pod_name.hash(&mut h);
    h.finish()
}

/// The hasher of keys that are hashes already: passes them through.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed here; fold anything else in rather than panic.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl Dedup {
    /// An empty table.
    pub fn new(cfg: DedupConfig) -> Self {
        Dedup {
            cfg,
            ..Dedup::default()
        }
    }

    /// Identities held.
    pub fn len(&self) -> usize {
        self.owners.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.owners.is_empty()
    }

    /// Notes a record of connection `identity` from `observer` at `at_ms`; true when another observer
    /// already reported it within the window.
    pub fn is_duplicate(&mut self, identity: InlineStr, observer: u64, at_ms: u64) -> bool {
        let window = self.cfg.window_ms;
        let full = self.owners.len() >= self.cfg.max_entries;
        // One lookup for both the known and the new identity: the table is large and each probe is
        // likely a cache miss.
        let key = self.seed.hash_one(identity.as_str());
        match self.owners.entry(key) {
            Entry::Occupied(mut e) => {
                let o = e.get_mut();
                if o.observer == observer {
                    o.last_ms = o.last_ms.max(at_ms);
                    return false;
                }
                if at_ms.saturating_sub(o.last_ms) <= window {
                    self.duplicates += 1;
                    return true;
                }
                // The owner went quiet long ago: this observer takes over.
                *o = Owner {
                    observer,
                    last_ms: at_ms,
                };
                false
            }
            Entry::Vacant(_) if full => {
                self.untracked += 1;
                false
            }
            Entry::Vacant(e) => {
                e.insert(Owner {
                    observer,
                    last_ms: at_ms,
                });
                false
            }
        }
    }

    /// Forgets identities whose owner has been quiet for the window.
    pub fn expire(&mut self, now: u64) {
        let window = self.cfg.window_ms;
        self.owners.retain(|_, o| now.saturating_sub(o.last_ms) <= window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_observer_is_a_duplicate_owner_deltas_are_not() {
        let mut d = Dedup::new(DedupConfig {
            window_ms: 1000,
            max_entries: 8,
        });
        let id = InlineStr::new("1:x").unwrap();
        assert!(!d.is_duplicate(id, 1, 0));
        assert!(d.is_duplicate(id, 2, 10));
        assert!(!d.is_duplicate(id, 1, 500), "the owner's delta record");
        assert!(
            d.is_duplicate(id, 2, 1400),
            "within the window of the owner's last record"
        );
        assert!(
            !d.is_duplicate(id, 2, 3000),
            "owner quiet past the window: takes over"
        );
        d.expire(10_000);
        assert!(d.is_empty());
        assert_eq!(d.duplicates, 2);
    }

    #[test]
    fn full_table_counts_as_original() {
        let mut d = Dedup::new(DedupConfig {
            window_ms: 1000,
            max_entries: 1,
        });
        assert!(!d.is_duplicate(InlineStr::new("1:a").unwrap(), 1, 0));
        assert!(!d.is_duplicate(InlineStr::new("1:b").unwrap(), 1, 0));
        assert!(!d.is_duplicate(InlineStr::new("1:b").unwrap(), 2, 0));
        assert_eq!(d.untracked, 2);
    }
}
