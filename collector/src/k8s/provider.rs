//! The one trait behind which Kubernetes metadata sources sit, with its query and answer types.

use std::net::IpAddr;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::index::{Event, Index, IndexStats};
use crate::model::K8sEndpoint;

/// A question to a metadata source: who held this address at this time?
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Query {
    /// The address.
    pub ip: IpAddr,
    /// The time, Unix milliseconds (a flow's start time).
    pub at_ms: u64,
    /// IP protocol number and port, when the address is a flow's server side: a hostNetwork pod that
    /// declares that port answers instead of its node.
    pub port: Option<(u8, u16)>,
}

impl Query {
    /// Who held `ip` at `at_ms`.
    pub fn new(ip: IpAddr, at_ms: u64) -> Self {
        Query {
            ip,
            at_ms,
            port: None,
        }
    }

    /// The same question, narrowed to a protocol and port.
    pub fn with_port(self, proto: u8, port: u16) -> Self {
        Query {
            port: Some((proto, port)),
            ..self
        }
    }
}

/// The answer: the object's identity, shared by every answer about the same object version.
pub type Answer = Option<Arc<K8sEndpoint>>;

/// How a metadata source is doing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProviderStatus {
    /// Every kind has been listed completely once (a static inventory: loaded).
    pub synced: bool,
    /// Sizes of the index.
    pub index: IndexStats,
    /// Objects that could not be used (malformed documents or objects).
    pub bad_objects: u64,
    /// Full relists after the first list (a watch expired, 410 Gone).
    pub relists: u64,
    /// Errors talking to the source (the API provider retries with backoff).
    pub errors: u64,
}

/// A source of Kubernetes metadata: the API's watches ([`super::api::ApiProvider`]) or a static
/// inventory ([`super::inventory::Inventory`]). Both feed the same [`Index`]; enrichment only asks.
pub trait MetadataProvider: Send + Sync {
    /// Answers a query.
    fn resolve(&self, query: &Query) -> Answer;

    /// How the source is doing.
    fn status(&self) -> ProviderStatus;

    /// Who held `ip` at `at_ms`.
    fn lookup(&self, ip: IpAddr, at_ms: u64) -> Answer {
        self.resolve(&Query::new(ip, at_ms))
    }
}

/// An index one writer (a provider's task) updates while lookups read it.
#[derive(Clone, Default)]
pub struct SharedIndex {
    inner: Arc<RwLock<Index>>,
}

impl SharedIndex {
    /// Shares `index`.
    pub fn new(index: Index) -> Self {
        SharedIndex {
            inner: Arc::new(RwLock::new(index)),
        }
    }

    /// Read access. A lock poisoned by a panicking writer is still read: at worst one object's answer
    /// is stale, which beats attributing nothing.
    pub fn read(&self) -> RwLockReadGuard<'_, Index> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Write access (see [`SharedIndex::read`] about poisoning).
    pub fn write(&self) -> RwLockWriteGuard<'_, Index> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a batch of events under one lock.
    pub fn apply_all(&self, events: impl IntoIterator<Item = (Event, u64)>) {
        let mut index = self.write();
        for (event, at) in events {
            index.apply(event, at);
        }
    }
}

/// Every metadata provider attributes flow endpoints for the enricher.
impl<P: MetadataProvider + ?Sized> crate::enrich::Attributor for P {
    fn attribute(&self, query: &Query) -> Answer {
        self.resolve(query)
    }
}
