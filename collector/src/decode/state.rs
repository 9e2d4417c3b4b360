//! What the decoder remembers about each exporter: its observation domains (with their templates and
//! sequence numbers), the data sets it holds for want of a template, and its interned observer names.

use std::sync::Arc;

use foldhash::HashMap;

use super::flow::Plan;
use super::hold::Hold;
use super::v9::V9Template;
use crate::model::Protocol;

/// Observer names kept per exporter. A probe reports one pod, namespace and node, so a handful suffices.
const INTERNED_PER_EXPORTER: usize = 16;

/// Shares repeated strings as one `Arc<str>`, so a record's observer names cost no allocation once seen.
///
/// Bounded: when full, the oldest entry makes room.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    entries: Vec<Arc<str>>,
    next: usize,
}

impl Interner {
    /// The shared copy of the string in `v`; `None` if `v` is not UTF-8.
    pub fn intern(&mut self, v: &[u8]) -> Option<Arc<str>> {
        // Compared as octets: a name seen before was valid UTF-8 then, so it is not checked again.
        if let Some(e) = self.entries.iter().find(|e| e.as_bytes() == v) {
            return Some(Arc::clone(e));
        }
        let e: Arc<str> = Arc::from(std::str::from_utf8(v).ok()?);
        if self.entries.len() < INTERNED_PER_EXPORTER {
            self.entries.push(Arc::clone(&e));
        } else if let Some(slot) = self.entries.get_mut(self.next) {
            *slot = Arc::clone(&e);
            self.next = (self.next + 1) % INTERNED_PER_EXPORTER;
        }
        Some(e)
    }
}

/// What a sequence number said about the datagrams before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sequence {
    /// First datagram seen, or in order.
    InOrder,
    /// This many units (v9: datagrams, v5: flows) went missing before this datagram.
    Lost(u32),
    /// Late, or the first of an exporter that restarted its count: not loss.
    Behind,
}

/// Sequence tracking for NetFlow v9 (counting datagrams, RFC 3954 section 5.1) and v5 (counting flows);
/// IPFIX's is proto-ipfix's. Same rules: a datagram behind the expected number does not move the
/// expectation, unless the next one follows on from it (the exporter restarted).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SeqTracker {
    next: Option<u32>,
    restart: Option<u32>,
}

impl SeqTracker {
    /// Checks `sequence`, then expects `sequence + units` next.
    pub fn check(&mut self, sequence: u32, units: u32) -> Sequence {
        let seen = match self.next {
            None => Sequence::InOrder,
            Some(expected) => match sequence.wrapping_sub(expected) {
                0 => Sequence::InOrder,
                _ if self.restart == Some(sequence) => Sequence::InOrder,
                gap if gap < 1 << 31 => Sequence::Lost(gap),
                _ => Sequence::Behind,
            },
        };
        let next = Some(sequence.wrapping_add(units));
        if seen == Sequence::Behind {
            self.restart = next;
        } else {
            self.next = next;
            self.restart = None;
        }
        seen
    }
}

/// One observation domain of an exporter: an IPFIX Observation Domain, a v9 Source ID or a v5 engine.
#[derive(Debug)]
pub(crate) struct DomainState {
    /// The protocol: v9 source IDs and IPFIX domains of one address are separate namespaces.
    pub protocol: Protocol,
    /// The domain number.
    pub domain: u32,
    /// IPFIX: the exporter's boot time from an options record, to date sysUpTime timestamps.
    pub system_init_ms: Option<u64>,
    /// v9 and v5 sequence tracking.
    pub sequence: SeqTracker,
    /// IPFIX: extraction plans by template ID, mirroring proto-ipfix's template cache.
    pub plans: HashMap<u16, Arc<Plan>>,
    /// v9: templates by ID.
    pub v9: HashMap<u16, V9Template>,
}

impl DomainState {
    fn new(protocol: Protocol, domain: u32) -> Self {
        DomainState {
            protocol,
            domain,
            system_init_ms: None,
            sequence: SeqTracker::default(),
            plans: HashMap::default(),
            v9: HashMap::default(),
        }
    }
}

/// Everything known about one exporter address and port.
#[derive(Debug, Default)]
pub(crate) struct ExporterState {
    /// Its domains, at most `max_domains_per_exporter`.
    pub domains: Vec<DomainState>,
    /// Its observer names.
    pub interner: Interner,
    /// Data sets held until their template arrives.
    pub hold: Hold,
    /// Templates held for it, across domains and protocols.
    pub templates: usize,
    /// Fields of those templates: the size of its template state.
    pub template_fields: usize,
    /// When it last sent a datagram (caller's clock).
    pub last_seen_ms: u64,
    /// When its templates last decoded a data record, if ever.
    pub last_data_ms: Option<u64>,
}

impl ExporterState {
    /// The index of domain `domain` of `protocol`, created if there is room for it.
    pub fn domain(&mut self, protocol: Protocol, domain: u32, max: usize) -> Option<usize> {
        if let Some(i) = self
            .domains
            .iter()
            .position(|d| d.domain == domain && d.protocol == protocol)
        {
            return Some(i);
        }
        if self.domains.len() >= max {
            return None;
        }
        self.domains.push(DomainState::new(protocol, domain));
        Some(self.domains.len() - 1)
    }

    /// Accounts for a template defined (`old` is the field count of the one it replaced, if any).
    pub fn add_template(&mut self, fields: usize, old: Option<usize>) {
        match old {
            Some(old) => self.template_fields = self.template_fields.saturating_sub(old),
            None => self.templates += 1,
        }
        self.template_fields += fields;
    }

    /// Accounts for a template forgotten.
    pub fn remove_template(&mut self, fields: usize) {
        self.templates = self.templates.saturating_sub(1);
        self.template_fields = self.template_fields.saturating_sub(fields);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interner_shares_and_stays_bounded() {
        let mut i = Interner::default();
        let a = i.intern(b"pod-a").unwrap();
        let b = i.intern(b"pod-a").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        for n in 0..100 {
            i.intern(format!("pod-{n}").as_bytes());
        }
        assert_eq!(i.entries.len(), INTERNED_PER_EXPORTER);
        assert_eq!(i.intern(b"pod-99").as_deref(), Some("pod-99"));
        assert_eq!(i.intern(&[0xff]), None);
    }

    #[test]
    fn sequence_counts_gaps_late_datagrams_and_restarts() {
        let mut s = SeqTracker::default();
        assert_eq!(s.check(10, 1), Sequence::InOrder);
        assert_eq!(s.check(11, 1), Sequence::InOrder);
        assert_eq!(s.check(15, 1), Sequence::Lost(3));
        assert_eq!(s.check(12, 1), Sequence::Behind, "late");
        assert_eq!(s.check(16, 1), Sequence::InOrder);
        // restart at 0, then on from there
        assert_eq!(s.check(0, 30), Sequence::Behind);
        assert_eq!(s.check(30, 30), Sequence::InOrder);
        assert_eq!(s.check(61, 1), Sequence::Lost(1));
        // wrap
        let mut w = SeqTracker::default();
        w.check(u32::MAX, 2);
        assert_eq!(w.check(1, 1), Sequence::InOrder);
    }
}
