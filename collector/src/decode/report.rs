//! Log lines about exporters whose datagrams lost something: decode errors, records and datagrams missing
//! by sequence numbers, data sets dropped without their template, state limits refusing something.
//!
//! The metrics count all of it; the log says which exporter it was and what happened, once, then at most
//! once per ten seconds per exporter and domain with the counts in between, so a hostile or broken
//! exporter sending thousands of bad datagrams a second costs a line in ten seconds. What a gate held back
//! is logged when its interval has passed, and at the end ([`Reports::flush`]). Over all exporters
//! together the decode threads share a [`podflow_telemetry::LogBudget`] of lines a minute (see
//! `pipeline`): past it, lines are left out and counted, so a flood of exporters does not flood the log.

use std::fmt::Write as _;
use std::time::Duration;

use foldhash::HashMap;
use podflow_telemetry::Throttle;

use super::stats::{DecodeStats, ExporterStats, StatsKey};
use crate::model::Protocol;

/// Exporters and domains with a report pending at most; past it, those with nothing pending are
/// forgotten (the decoder's own limits keep the keys far fewer).
const MAX_KEYS: usize = 4096;

/// Adds a period's counters `c` to those held since the last line, keeping the protocol last spoken.
fn absorb(held: &mut ExporterStats, c: &ExporterStats) {
    if c.protocol.is_some() {
        held.protocol = c.protocol;
    }
    held.add(c);
}

/// The log line of `key`, with the troubles among the counters `held` since its last one (which are
/// then forgotten).
fn line(key: &StatsKey, held: &mut ExporterStats) -> String {
    let t = std::mem::take(held);
    let mut o = String::new();
    if *key == StatsKey::OVERFLOW {
        o.push_str("exporters beyond the exporter limit, or speaking no known version:");
    } else {
        let _ = write!(o, "exporter {} ({}", key.exporter, Protocol::label(t.protocol));
        if let Some(d) = key.observation_domain {
            let _ = write!(o, ", domain {d}");
        }
        o.push_str("):");
    }
    let mut parts = Vec::new();
    if t.errors.total() > 0 {
        let reasons: Vec<String> = t.errors.iter().map(|(r, n)| format!("{r} {n}")).collect();
        parts.push(format!(
            "{} decode errors ({})",
            t.errors.total(),
            reasons.join(", ")
        ));
    }
    let counts = [
        (t.lost_records, "records lost by sequence numbers"),
        (t.lost_datagrams, "datagrams lost by sequence numbers"),
        (
            t.expired_sets + t.dropped_sets,
            "data sets dropped waiting for their template",
        ),
        (t.limit_hits, "refusals by state limits"),
    ];
    parts.extend(
        counts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}")),
    );
    let _ = write!(
        o,
        " {}; logged at most every {} s per exporter, podflow_collector_* metrics count all",
        parts.join(", "),
        podflow_telemetry::LOG_EVERY.as_secs()
    );
    o
}

/// The pending reports of one decode thread.
#[derive(Debug)]
pub struct Reports {
    every: Duration,
    pending: HashMap<StatsKey, (Throttle, ExporterStats)>,
}

impl Default for Reports {
    fn default() -> Self {
        Reports::new(podflow_telemetry::LOG_EVERY)
    }
}

impl Reports {
    /// Reports that log each exporter and domain at most once per `every`.
    pub fn new(every: Duration) -> Self {
        Reports {
            every,
            pending: HashMap::default(),
        }
    }

    /// Takes in the counters of a period and returns the lines now due: for exporters with new
    /// problems whose gate is open, and for those whose held-back problems have waited long enough.
    pub fn add(&mut self, stats: &DecodeStats) -> Vec<String> {
        let mut lines = Vec::new();
        for (key, c) in stats.iter() {
            if c.troubles() == 0 {
                continue;
            }
            if self.pending.len() >= MAX_KEYS && !self.pending.contains_key(key) {
                self.pending.retain(|_, (gate, _)| gate.pending() > 0);
            }
            let every = self.every;
            let (gate, held) = self
                .pending
                .entry(*key)
                .or_insert_with(|| (Throttle::new(every), ExporterStats::default()));
            absorb(held, c);
            if gate.hit(c.troubles()).is_some() {
                lines.push(line(key, held));
            }
        }
        // Problems held back earlier, now that their gate is open.
        for (key, (gate, held)) in &mut self.pending {
            if gate.hit(0).is_some() {
                lines.push(line(key, held));
            }
        }
        lines.sort();
        lines
    }

    /// Lines for everything held back, whatever the gates say (at the end of a run).
    pub fn flush(&mut self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .pending
            .iter_mut()
            .filter(|(_, (gate, _))| gate.pending() > 0)
            .map(|(key, (_, held))| line(key, held))
            .collect();
        self.pending.clear();
        lines.sort();
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16, domain: Option<u32>) -> StatsKey {
        StatsKey {
            exporter: std::net::SocketAddr::from(([192, 0, 2, 9], port)),
            observation_domain: domain,
        }
    }

    fn stats(f: impl Fn(&mut ExporterStats), keys: &[StatsKey]) -> DecodeStats {
        let mut s = DecodeStats::default();
        for k in keys {
            let e = s.entry(*k);
            e.protocol = Some(Protocol::Ipfix);
            f(e);
        }
        s
    }

    #[test]
    fn the_first_trouble_is_logged_then_held_back_until_the_end() {
        let mut r = Reports::new(Duration::from_secs(3600));
        let a = key(4739, Some(7));
        let clean = stats(|e| e.records = 10, &[a]);
        assert!(r.add(&clean).is_empty(), "records alone are no trouble");
        let bad = stats(
            |e| {
                e.errors.add("truncated", 2);
                e.lost_records = 5;
            },
            &[a],
        );
        assert_eq!(
            r.add(&bad),
            [
                "exporter 192.0.2.9:4739 (ipfix, domain 7): 2 decode errors (truncated 2), \
              5 records lost by sequence numbers; logged at most every 10 s per exporter, \
              podflow_collector_* metrics count all"
            ]
        );
        let more = stats(|e| e.errors.add("bad_length", 1), &[a]);
        assert!(r.add(&more).is_empty(), "held back within the interval");
        assert!(r.add(&more).is_empty());
        let end = r.flush();
        assert_eq!(end.len(), 1, "{end:?}");
        assert!(end[0].contains(": 2 decode errors (bad_length 2);"), "{end:?}");
        assert!(r.flush().is_empty(), "nothing pending twice");
    }

    #[test]
    fn each_exporter_and_domain_has_its_own_gate() {
        let mut r = Reports::new(Duration::from_secs(3600));
        let keys = [key(1, Some(1)), key(1, Some(2)), key(2, None), StatsKey::OVERFLOW];
        let lines = r.add(&stats(|e| e.dropped_sets = 3, &keys));
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(
            lines
                .iter()
                .all(|l| l.contains(" 3 data sets dropped waiting for their template;"))
        );
        assert!(lines.iter().any(|l| l.contains("exporter 192.0.2.9:2 (ipfix):")));
        assert!(lines.iter().any(|l| l.contains("beyond the exporter limit")));
    }

    #[test]
    fn an_open_gate_logs_what_it_held_back() {
        // An interval of zero: every period's trouble is its own line, nothing waits for the end.
        let mut r = Reports::new(Duration::ZERO);
        let a = key(9, None);
        for _ in 0..3 {
            assert_eq!(r.add(&stats(|e| e.limit_hits = 1, &[a])).len(), 1);
        }
        assert!(r.flush().is_empty());
    }
}
