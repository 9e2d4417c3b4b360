//! Who held a key (an address, or an address and port) over time: per key a short list of spans
//! `[from, to)`, each with its holder and the endpoint to answer with.

use std::hash::Hash;

use foldhash::HashMap;
use smallvec::SmallVec;
use std::sync::Arc;

use crate::model::K8sEndpoint;

/// A span that has not ended.
pub(crate) const OPEN: u64 = u64::MAX;

/// How strongly a holder claims an address; the strongest span containing the time answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Rank {
    /// A node inferred from a hostNetwork pod (its node object is not known).
    HostNetwork,
    /// A node's own address.
    Node,
    /// A pod IP or a ClusterIP: one holder at a time, by construction of the cluster.
    Exclusive,
}

/// The object behind a span.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Holder {
    /// A pod, by UID.
    Pod(Arc<str>),
    /// A Service, by UID.
    Service(Arc<str>),
    /// A node, by name.
    Node(Arc<str>),
}

#[derive(Clone, Debug)]
struct Span {
    from: u64,
    to: u64,
    rank: Rank,
    holder: Holder,
    endpoint: Arc<K8sEndpoint>,
}

/// The spans of one key. Almost every address has had one holder within the retention window, so the
/// first span lives in the hash table's own entry: a lookup then reads the entry and no other
/// allocation (with a span list of its own, that second read missed the cache on most lookups).
type Spans = SmallVec<[Span; 1]>;

/// Spans by key. foldhash, not SipHash: every flow endpoint is looked up here.
#[derive(Debug)]
pub(crate) struct Timeline<K> {
    map: HashMap<K, Spans>,
}

impl<K: Hash + Eq + Copy> Timeline<K> {
    pub(crate) fn new() -> Self {
        Timeline {
            map: HashMap::default(),
        }
    }

    /// Records that `holder` holds `key` over `[from, to)`: the holder's span for the key is replaced,
    /// since the latest state of an object says best when it held the key.
    pub(crate) fn hold(
        &mut self,
        key: K,
        holder: &Holder,
        (from, to): (u64, u64),
        rank: Rank,
        endpoint: &Arc<K8sEndpoint>,
    ) {
        let spans = self.map.entry(key).or_default();
        spans.retain(|s| s.holder != *holder || s.rank != rank);
        if from < to {
            spans.push(Span {
                from,
                to,
                rank,
                holder: holder.clone(),
                endpoint: Arc::clone(endpoint),
            });
        }
        if spans.is_empty() {
            self.map.remove(&key);
        }
    }

    /// Ends the holder's spans for `key` at `at` at the latest; a span that would end before it began
    /// never held the key and is dropped.
    pub(crate) fn close(&mut self, key: K, holder: &Holder, at: u64) {
        let Some(spans) = self.map.get_mut(&key) else {
            return;
        };
        for s in spans.iter_mut().filter(|s| s.holder == *holder) {
            s.to = s.to.min(at);
        }
        spans.retain(|s| s.from < s.to);
        if spans.is_empty() {
            self.map.remove(&key);
        }
    }

    /// Points the holder's spans for `key` at a new version of its endpoint.
    pub(crate) fn relabel(&mut self, key: K, holder: &Holder, rank: Rank, endpoint: &Arc<K8sEndpoint>) {
        let Some(spans) = self.map.get_mut(&key) else {
            return;
        };
        for s in spans.iter_mut().filter(|s| s.holder == *holder && s.rank == rank) {
            s.endpoint = Arc::clone(endpoint);
        }
    }

    /// The endpoint of the strongest span holding `key` at `at`; among equals, the one that began last,
    /// because an address is handed to a new holder only after the previous one released it.
    pub(crate) fn get(&self, key: &K, at: u64) -> Option<&Arc<K8sEndpoint>> {
        self.map
            .get(key)?
            .iter()
            .filter(|s| s.from <= at && at < s.to)
            .max_by_key(|s| (s.rank, s.from))
            .map(|s| &s.endpoint)
    }

    /// Drops spans that ended before `before`.
    pub(crate) fn prune(&mut self, before: u64) {
        self.map.retain(|_, spans| {
            spans.retain(|s| s.to > before);
            !spans.is_empty()
        });
    }

    /// Number of spans held.
    pub(crate) fn len(&self) -> usize {
        self.map.values().map(SmallVec::len).sum()
    }
}
