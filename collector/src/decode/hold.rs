//! Data sets held for want of their template.
//!
//! Over UDP a data set can overtake its template (an exporter sends both at start-up, or a template
//! refresh is reordered), and a collector that restarts knows no template until each exporter sends its
//! templates again (RFC 7011 section 8.4: periodically; podflow-exporter every 10 s by default). Such sets
//! are held, bounded per exporter in count and octets, and decoded when the template arrives; older ones
//! expire and are counted. The default wait, 15 s, outlasts podflow-exporter's refresh, so a restarted
//! collector decodes what arrived in between rather than dropping it.

use std::collections::VecDeque;

use crate::model::Protocol;

/// How long a data set waits for its template by default, milliseconds: longer than podflow-exporter's
/// template refresh (10 s), with room for a refresh that is late.
pub const DEFAULT_HOLD_MS: u64 = 15_000;

/// Bounds on what one exporter may have held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HoldLimits {
    /// How long a set is held, milliseconds.
    pub hold_ms: u64,
    /// Sets held per exporter.
    pub max_sets: usize,
    /// Octets held per exporter.
    pub max_bytes: usize,
}

impl Default for HoldLimits {
    fn default() -> Self {
        HoldLimits {
            hold_ms: DEFAULT_HOLD_MS,
            // A probe's 15 s at a few thousand records a second.
            max_sets: 4096,
            max_bytes: 4 << 20,
        }
    }
}

/// One held data set, with the header facts its records need.
#[derive(Clone, Debug)]
pub(crate) struct HeldSet {
    pub protocol: Protocol,
    pub domain: u32,
    pub set_id: u16,
    /// When it arrived (caller's clock).
    pub at_ms: u64,
    /// Export time from its header.
    pub export_time: u32,
    /// v9: sysUpTime from its header.
    pub sys_uptime: u32,
    pub body: Box<[u8]>,
}

/// The sets one exporter has held, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Hold {
    sets: VecDeque<HeldSet>,
    bytes: usize,
}

impl Hold {
    /// Whether a set of `len` octets may be held.
    pub fn fits(&self, len: usize, limits: &HoldLimits) -> bool {
        self.sets.len() < limits.max_sets && self.bytes + len <= limits.max_bytes
    }

    /// Holds a set (after [`Hold::fits`]).
    pub fn push(&mut self, set: HeldSet) {
        self.bytes += set.body.len();
        self.sets.push_back(set);
    }

    /// Drops sets held longer than `hold_ms`; calls `dropped` with each one's domain and length.
    pub fn expire(&mut self, now_ms: u64, hold_ms: u64, mut dropped: impl FnMut(u32, usize)) {
        // Sets are pushed as they arrive, so the oldest are in front; a clock that stepped back only delays
        // expiry.
        while let Some(front) = self.sets.front() {
            if now_ms.saturating_sub(front.at_ms) <= hold_ms {
                break;
            }
            if let Some(s) = self.sets.pop_front() {
                self.bytes -= s.body.len();
                dropped(s.domain, s.body.len());
            }
        }
    }

    /// Takes out the sets waiting for template `set_id` of a domain, in arrival order.
    pub fn take(&mut self, protocol: Protocol, domain: u32, set_id: u16, out: &mut Vec<HeldSet>) {
        let mut i = 0;
        while i < self.sets.len() {
            let hit = self
                .sets
                .get(i)
                .is_some_and(|s| s.set_id == set_id && s.domain == domain && s.protocol == protocol);
            if !hit {
                i += 1;
                continue;
            }
            if let Some(s) = self.sets.remove(i) {
                self.bytes -= s.body.len();
                out.push(s);
            }
        }
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// Sets held.
    pub fn len(&self) -> usize {
        self.sets.len()
    }

    /// Octets held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(domain: u32, id: u16, at_ms: u64, len: usize) -> HeldSet {
        HeldSet {
            protocol: Protocol::Ipfix,
            domain,
            set_id: id,
            at_ms,
            export_time: 0,
            sys_uptime: 0,
            body: vec![0; len].into_boxed_slice(),
        }
    }

    #[test]
    fn bounded_by_count_and_octets() {
        let limits = HoldLimits {
            hold_ms: 1000,
            max_sets: 2,
            max_bytes: 100,
        };
        let mut h = Hold::default();
        assert!(h.fits(60, &limits));
        h.push(set(1, 256, 0, 60));
        assert!(!h.fits(60, &limits), "octets");
        assert!(h.fits(40, &limits));
        h.push(set(1, 257, 0, 40));
        assert!(!h.fits(0, &limits), "count");
        assert_eq!((h.len(), h.bytes()), (2, 100));
    }

    #[test]
    fn takes_matching_sets_in_order_and_expires_old_ones() {
        let mut h = Hold::default();
        h.push(set(1, 256, 0, 1));
        h.push(set(2, 256, 10, 2));
        h.push(set(1, 256, 20, 3));
        h.push(set(1, 300, 30, 4));
        let mut out = Vec::new();
        h.take(Protocol::Ipfix, 1, 256, &mut out);
        assert_eq!(out.iter().map(|s| s.body.len()).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!((h.len(), h.bytes()), (2, 6));
        let mut expired = Vec::new();
        h.expire(1015, 1000, |d, len| expired.push((d, len)));
        assert_eq!(expired, vec![(2, 2)]);
        assert_eq!((h.len(), h.bytes()), (1, 4));
    }
}
