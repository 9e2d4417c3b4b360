//! One connection, several observers: count it once.
//!
//! A connection between pods can be reported by a client-side sidecar (before NAT), a server-side sidecar
//! (after it) and the node probes on both ends. Each record is keyed by the connection's identity: the
//! Community ID of the tuple after NAT (known from the record's own NAT fields, from NAT events, or equal
//! to its own tuple when nothing translated it). The first observer to report an identity owns it; records
//! of the same identity from other observers within the window are marked duplicates. The owner's later
//! records (active-timeout deltas) are never duplicates.

use std::hash::{BuildHasher, Hash, Hasher};

use foldhash::fast::{FixedState, RandomState};

use crate::model::{FlowRecord, InlineStr};

/// Duplicate detection settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DedupConfig {
    /// How long an identity stays owned after its owner's last record (at most 24 days).
    pub window_ms: u64,
    /// Identities held at most (rounded up to a power of two, at least one bucket): 16 octets each.
    pub max_entries: usize,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            window_ms: 300_000,
            // 16 MiB.
            max_entries: 1 << 20,
        }
    }
}

/// Entries per bucket: 4 x 16 octets, one cache line.
const WAYS: usize = 4;

/// Who owns which connection.
pub struct Dedup {
    cfg: DedupConfig,
    /// `[hash of the identity (0: empty), owner << 32 | last record's time]`, in buckets of [`WAYS`];
    /// allocated zeroed on first use, so pages the table never touches cost nothing.
    slots: Vec<[u64; 2]>,
    /// Buckets less one (their count is a power of two).
    mask: usize,
    /// Random per process, so an exporter cannot aim two identities at one hash.
    seed: RandomState,
    /// Records marked duplicate.
    pub duplicates: u64,
    /// Identities forgotten within their window to make room for new ones.
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

impl Default for Dedup {
    fn default() -> Self {
        Dedup::new(DedupConfig::default())
    }
}

impl Dedup {
    /// An empty table.
    pub fn new(cfg: DedupConfig) -> Self {
        let buckets = cfg.max_entries.div_ceil(WAYS).max(1).next_power_of_two();
        Dedup {
            cfg,
            slots: Vec::new(),
            mask: buckets - 1,
            seed: RandomState::default(),
            duplicates: 0,
            untracked: 0,
        }
    }

    /// Identities held (live or past their window): counted over the whole table.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s[0] != 0).count()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Asks the CPU to fetch the table's bucket of `identity` into its cache, for a record that comes
    /// soon: the bucket is a random line of a table larger than the caches, and its fetch then
    /// overlaps the work on the records before.
    pub fn prefetch(&self, identity: &InlineStr) {
        let tag = self.seed.hash_one(identity.as_str()) | 1;
        let start = ((tag >> 32) as usize & self.mask) * WAYS;
        if let Some(slot) = self.slots.get(start) {
            mem_prefetch::prefetch_read_data::<_, 3>(slot);
        }
    }

    /// Notes a record of connection `identity` from `observer` at `at_ms`; true when another observer
    /// already reported it within the window.
    pub fn is_duplicate(&mut self, identity: InlineStr, observer: u64, at_ms: u64) -> bool {
        if self.slots.is_empty() {
            self.slots = vec![[0; 2]; (self.mask + 1) * WAYS];
        }
        // Never 0, which marks an empty entry.
        let tag = self.seed.hash_one(identity.as_str()) | 1;
        let owner = (observer ^ (observer >> 32)) & 0xffff_ffff;
        // Milliseconds modulo 2^32 (49 days); ages are told apart within 24 days.
        let at = at_ms & 0xffff_ffff;
        let window = i64::try_from(self.cfg.window_ms.min(i32::MAX as u64)).unwrap_or(i64::MAX);
        let age = |entry: u64| i64::from((at as u32).wrapping_sub(entry as u32) as i32);
        let start = ((tag >> 32) as usize & self.mask) * WAYS;
        let Some(bucket) = self.slots.get_mut(start..start + WAYS) else {
            return false;
        };
        let fresh = [tag, owner << 32 | at];
        if let Some(slot) = bucket.iter_mut().find(|s| s[0] == tag) {
            let age = age(slot[1]);
            if slot[1] >> 32 == owner {
                // The owner's own later record: the window runs from its last one.
                if age > 0 {
                    *slot = fresh;
                }
                return false;
            }
            if age <= window {
                self.duplicates += 1;
                return true;
            }
            // The owner went quiet long ago: this observer takes over.
            *slot = fresh;
            return false;
        }
        // A new identity: into an empty entry, else in place of the one quiet for longest.
        let mut victim = 0;
        for (i, slot) in bucket.iter().enumerate() {
            if slot[0] == 0 {
                victim = i;
                break;
            }
            if age(slot[1]) > age(bucket[victim][1]) {
                victim = i;
            }
        }
        if bucket[victim][0] != 0 && age(bucket[victim][1]) <= window {
            self.untracked += 1;
        }
        bucket[victim] = fresh;
        false
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
        assert!(!d.is_duplicate(id, 2, 3500), "the new owner's delta");
        assert!(
            d.is_duplicate(id, 1, 3600),
            "the old owner is now the second observer"
        );
        assert!(
            d.is_duplicate(id, 1, 2900),
            "a record older than the owner's last is within the window"
        );
        assert_eq!(d.duplicates, 4);
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn a_full_bucket_gives_up_its_oldest_identity_and_counts_it() {
        // One bucket of four.
        let mut d = Dedup::new(DedupConfig {
            window_ms: 10_000,
            max_entries: 1,
        });
        let ids: Vec<InlineStr> = (0..5)
            .map(|i| InlineStr::new(&format!("1:{i}")).unwrap())
            .collect();
        for (t, id) in ids.iter().enumerate() {
            assert!(!d.is_duplicate(*id, 1, t as u64 * 100));
        }
        assert_eq!(
            (d.len(), d.untracked),
            (4, 1),
            "the fifth took the first one's place"
        );
        assert!(
            !d.is_duplicate(ids[0], 2, 500),
            "forgotten: counted as an original"
        );
        assert!(d.is_duplicate(ids[4], 2, 500), "the newest is still known");
        // Entries past their window make room without counting.
        let mut d = Dedup::new(DedupConfig {
            window_ms: 100,
            max_entries: 1,
        });
        for (t, id) in ids.iter().enumerate() {
            assert!(!d.is_duplicate(*id, 1, t as u64 * 1000));
        }
        assert_eq!(d.untracked, 0);
    }

    #[test]
    fn many_identities_in_a_large_table_are_all_remembered() {
        let mut d = Dedup::new(DedupConfig {
            window_ms: 60_000,
            max_entries: 1 << 16,
        });
        let ids: Vec<InlineStr> = (0..10_000)
            .map(|i| InlineStr::new(&format!("1:{i:08}")).unwrap())
            .collect();
        for id in &ids {
            assert!(!d.is_duplicate(*id, 7, 1000));
        }
        let dups = ids.iter().filter(|id| d.is_duplicate(**id, 8, 2000)).count();
        // A table six times larger than the identities: a bucket of four rarely overflows (about ten
        // of 16,384 buckets are expected to; the seed is random, so the bound is loose).
        assert!(
            dups >= 9_900 && d.untracked < 100,
            "{dups} duplicates, {} untracked",
            d.untracked
        );
    }
}
