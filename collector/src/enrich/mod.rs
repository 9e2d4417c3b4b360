//! Join and enrich: a [`FlowRecord`] becomes an [`EnrichedFlow`].
//!
//! 1. Community ID: the exporter's, else computed here over the record's tuple.
//! 2. NAT join ([`nat`]): the backend of a Service connection, from the record's own postNAT fields or
//!    from NAT event records of node probes. NAT event records are consumed here; they are not flows.
//! 3. Attribution: each endpoint (and the backend) is looked up at the flow's start time, because an IP
//!    belongs to different pods over time. The backend of a Service connection carries the Service's
//!    name ([`served`]): sinks name the backend as the destination's workload, reached through it.
//! 4. Duplicates ([`dedup`]): the same connection from a second observer is marked, so counters count it
//!    once.
//!
//! Pure: the records' own times drive everything; `expire` takes the caller's now.

pub mod dedup;
pub mod nat;
mod served;

use std::net::IpAddr;
use std::sync::Arc;

use proto_ipfix::community_id::CommunityId;

use crate::k8s::Query;
use crate::model::{EnrichedFlow, FlowRecord, InlineStr, K8sEndpoint};
use dedup::{Dedup, DedupConfig, observer_of};
use nat::{NatConfig, NatTable, Translation};

/// Who held an address at a time: the Kubernetes index, or nothing.
pub trait Attributor {
    /// The endpoint that held the query's address at its time (Unix milliseconds); when the query
    /// names a port, a hostNetwork pod that declares that port rather than its node.
    fn attribute(&self, query: &Query) -> Option<Arc<K8sEndpoint>>;
}

/// No metadata: every endpoint stays unattributed.
pub struct NoMetadata;

impl Attributor for NoMetadata {
    fn attribute(&self, _: &Query) -> Option<Arc<K8sEndpoint>> {
        None
    }
}

/// Counters of enrichment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EnrichStats {
    /// Flows enriched.
    pub flows: u64,
    /// NAT event records consumed.
    pub nat_events: u64,
    /// Community IDs the collector computed (the exporter sent none).
    pub computed_community_ids: u64,
    /// Endpoints looked up and not found (outside the cluster, or unknown).
    pub misses: u64,
    /// Flows marked duplicate.
    pub duplicates: u64,
    /// Connections the full duplicate table forgot within their window.
    pub untracked: u64,
}

/// Enrichment state: NAT translations and connection owners.
pub struct Enricher {
    nat: NatTable,
    dedup: Dedup,
    cid: CommunityId,
    stats: EnrichStats,
    served: served::Served,
}

impl Default for Enricher {
    fn default() -> Self {
        Enricher::new(NatConfig::default(), DedupConfig::default())
    }
}

impl Enricher {
    /// An enricher with the given NAT and duplicate settings.
    pub fn new(nat: NatConfig, dedup: DedupConfig) -> Self {
        Enricher {
            nat: NatTable::new(nat),
            dedup: Dedup::new(dedup),
            cid: CommunityId::default(),
            stats: EnrichStats::default(),
            served: served::Served::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> EnrichStats {
        EnrichStats {
            untracked: self.dedup.untracked,
            ..self.stats
        }
    }

    /// NAT join counters.
    pub fn nat_stats(&self) -> nat::NatStats {
        self.nat.stats()
    }

    /// Enriches one record; `None` for a NAT event record, which only teaches the NAT table.
    pub fn enrich<A: Attributor + ?Sized>(&mut self, record: FlowRecord, k8s: &A) -> Option<EnrichedFlow> {
        let community_id = match record.community_id {
            Some(c) => c,
            None => {
                self.stats.computed_community_ids += 1;
                self.community_id(
                    record.src,
                    record.dst,
                    record.proto,
                    record.sport,
                    record.dport,
                    record.icmp_type_code,
                )
            }
        };
        if record.is_nat_event() {
            self.nat.observe(&record, community_id);
            self.stats.nat_events += 1;
            return None;
        }
        let at = if record.start_ms > 0 {
            record.start_ms
        } else {
            u64::from(record.export_time) * 1000
        };
        let translation = self.nat.resolve(&record, &community_id);
        let identity = self.identity(&record, community_id, translation.as_ref());
        let duplicate = self.dedup.is_duplicate(identity, observer_of(&record), at);
        let mut lookup = |ip: IpAddr, port: Option<u16>| {
            let query = Query::new(ip, at);
            let query = match port {
                Some(p) => query.with_port(record.proto, p),
                None => query,
            };
            let found = k8s.attribute(&query);
            self.stats.misses += u64::from(found.is_none());
            found
        };
        let (sport, dport) = server_ports(&record);
        let source = lookup(record.src, sport);
        let destination = lookup(record.dst, dport);
        let backend_addr = translation.and_then(|t| t.backend);
        // The backend stands in for the destination: its port narrows it when the destination's does.
        let backend = backend_addr
            .and_then(|(ip, port)| lookup(ip, dport.map(|_| port)))
            .map(|b| self.served.get(b, destination.as_ref()));
        self.stats.flows += 1;
        self.stats.duplicates += u64::from(duplicate);
        Some(EnrichedFlow {
            record,
            community_id,
            source,
            destination,
            backend,
            backend_addr,
            duplicate,
        })
    }

    /// Starts fetching what [`Enricher::enrich`] will look at for `record`, which comes a little later:
    /// its duplicate-table bucket, when the record carries its Community ID (that of most records).
    pub fn prefetch(&self, record: &FlowRecord) {
        if let Some(c) = &record.community_id {
            self.dedup.prefetch(c);
        }
    }

    /// Forgets NAT translations past their window and served backends whose pod or Service the index
    /// has dropped (the duplicate table overwrites its stale entries in place and needs no sweep).
    pub fn expire(&mut self, now: u64) {
        self.nat.expire(now);
        self.served.expire();
    }

    /// The connection's identity: the Community ID of its tuple after NAT.
    fn identity(&self, r: &FlowRecord, own: InlineStr, t: Option<&Translation>) -> InlineStr {
        let Some(t) = t else { return own };
        if let Some(c) = t.post_nat_community_id {
            return c;
        }
        let (src, sport) = t.source.unwrap_or((r.src, r.sport));
        let (dst, dport) = t.backend.unwrap_or((r.dst, r.dport));
        self.community_id(src, dst, r.proto, sport, dport, r.icmp_type_code)
    }

    fn community_id(
        &self,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        sport: u16,
        dport: u16,
        icmp: Option<u16>,
    ) -> InlineStr {
        let (sport, dport) = match icmp {
            Some(tc) if proto == 1 || proto == 58 => (tc >> 8, tc & 0xff),
            _ => (sport, dport),
        };
        self.cid
            .hash(src, dst, proto, sport, dport)
            .and_then(|d| InlineStr::new(&d.base64()))
            // Mixed address families cannot come from a decoder; an empty ID keeps the record.
            .unwrap_or(InlineStr::EMPTY)
    }
}

/// The ports that may name a hostNetwork pod on a node's address: the server side's, for protocols with
/// ports. A record that says who initiated (`biflowDirection`) names its server; otherwise both ports
/// are asked about, and only a port a hostNetwork pod declares (rarely an ephemeral one) answers.
fn server_ports(r: &FlowRecord) -> (Option<u16>, Option<u16>) {
    if !matches!(r.proto, 6 | 17 | 132) {
        return (None, None);
    }
    match r.biflow_direction {
        Some(1) => (None, Some(r.dport)),
        Some(2) => (Some(r.sport), None),
        _ => (Some(r.sport), Some(r.dport)),
    }
}

#[cfg(test)]
pub(crate) mod tests;
