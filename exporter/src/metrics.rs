//! Self metrics in the Prometheus text format, and the HTTP endpoint that serves them with `/healthz`.
//!
//! Capture threads and the flow thread update one shared state once per batch or sweep, never per
//! packet; the HTTP thread renders it on request.

use std::collections::BTreeMap;

use podflow_telemetry::{Render, family};

use crate::conntrack::ConntrackStats;
use crate::export::SendStats;
use crate::flow::EndReason;
use crate::parse::Skip;

/// Why a captured packet was not counted into a flow.
pub const SKIP_REASONS: [(Skip, &str); 3] = [
    (Skip::NotIp, "not_ip"),
    (Skip::Truncated, "truncated"),
    (Skip::Malformed, "malformed"),
];

/// Kernel counters of one interface, as libpcap reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// Packets dropped because the capture buffer was full.
    pub dropped: u64,
    /// Packets dropped by the interface or its driver.
    pub if_dropped: u64,
}

/// Everything the probe reports about itself.
#[derive(Clone, Debug, Default)]
pub struct State {
    /// Packets read from interfaces or the file.
    pub packets: u64,
    /// Packets skipped, by [`SKIP_REASONS`] index.
    pub skipped: [u64; 3],
    /// Kernel drop counters per interface (cumulative since each capture started).
    pub kernel: BTreeMap<String, KernelStats>,
    /// Interfaces being captured.
    pub interfaces: u64,
    /// Flows in the table.
    pub active_flows: u64,
    /// Flows exported, by [`EndReason`] (index reason - 1).
    pub exported: [u64; 5],
    /// Later fragments whose first fragment was not seen.
    pub orphan_fragments: u64,
    /// IPFIX data records written.
    pub records: u64,
    /// IPFIX messages written.
    pub messages: u64,
    /// Flows that could not be encoded.
    pub encode_errors: u64,
    /// Per collector send counters.
    pub collectors: Vec<SendStats>,
    /// Conntrack learning, when `--conntrack` was given.
    pub conntrack: Option<ConntrackState>,
}

/// Conntrack learning as the metrics show it.
#[derive(Clone, Debug, Default)]
pub struct ConntrackState {
    /// Conntrack is being read (false: it could not start, or failed).
    pub up: bool,
    /// The learning's own counters.
    pub stats: ConntrackStats,
    /// Reply packets folded into their connection's original biflow.
    pub folded_packets: u64,
    /// Exported flows by [`NAT_RESULTS`] index: resolved (a translated connection's flow), untranslated
    /// (no translated connection has its tuple), unresolved (conntrack was not running).
    pub flows: [u64; 3],
}

/// Labels of [`ConntrackState::flows`].
pub const NAT_RESULTS: [&str; 3] = ["resolved", "untranslated", "unresolved"];

impl State {
    /// Counts one skipped packet.
    pub fn skip(&mut self, why: Skip) {
        if let Some(i) = SKIP_REASONS.iter().position(|(s, _)| *s == why) {
            self.skipped[i] += 1;
        }
    }

    /// Counts exported flows.
    pub fn exported(&mut self, reason: EndReason, n: u64) {
        self.exported[reason as usize - 1] += n;
    }
}

/// The counters, shared by the threads that update them and the thread that serves them.
pub type Metrics = podflow_telemetry::Shared<State>;

impl Render for State {
    fn render(&self, o: &mut String) {
        let s = self;
        let one = |v: u64| vec![(String::new(), v)];
        let by = |key: &str, items: Vec<(String, u64)>| {
            items
                .into_iter()
                .map(|(l, v)| (format!("{{{key}=\"{}\"}}", podflow_telemetry::escape(&l)), v))
                .collect::<Vec<_>>()
        };
        let skipped = SKIP_REASONS
            .iter()
            .zip(s.skipped)
            .map(|((_, l), v)| (l.to_string(), v))
            .collect();
        let exported = EndReason::ALL
            .iter()
            .map(|r| (r.label().to_string(), s.exported[*r as usize - 1]))
            .collect();
        let kernel =
            |pick: fn(&KernelStats) -> u64| s.kernel.iter().map(|(n, k)| (n.clone(), pick(k))).collect();
        let sent = |pick: fn(&SendStats) -> u64| {
            s.collectors
                .iter()
                .map(|c| (c.collector.clone(), pick(c)))
                .collect()
        };
        family(
            o,
            "podflow_exporter_packets_total",
            "counter",
            "Packets read from interfaces or the capture file.",
            one(s.packets),
        );
        family(
            o,
            "podflow_exporter_packets_skipped_total",
            "counter",
            "Packets not counted into a flow, by reason.",
            by("reason", skipped),
        );
        family(
            o,
            "podflow_exporter_kernel_dropped_packets_total",
            "counter",
            "Packets the kernel dropped because the capture buffer was full, by interface.",
            by("interface", kernel(|k| k.dropped)),
        );
        family(
            o,
            "podflow_exporter_interface_dropped_packets_total",
            "counter",
            "Packets the interface or its driver dropped, by interface.",
            by("interface", kernel(|k| k.if_dropped)),
        );
        family(
            o,
            "podflow_exporter_capture_interfaces",
            "gauge",
            "Interfaces being captured.",
            one(s.interfaces),
        );
        family(
            o,
            "podflow_exporter_active_flows",
            "gauge",
            "Flows in the flow table.",
            one(s.active_flows),
        );
        family(
            o,
            "podflow_exporter_flows_exported_total",
            "counter",
            "Flows exported, by IPFIX flowEndReason.",
            by("reason", exported),
        );
        family(
            o,
            "podflow_exporter_orphan_fragments_total",
            "counter",
            "Later IP fragments whose first fragment was not seen.",
            one(s.orphan_fragments),
        );
        family(
            o,
            "podflow_exporter_records_total",
            "counter",
            "IPFIX data records written.",
            one(s.records),
        );
        family(
            o,
            "podflow_exporter_messages_total",
            "counter",
            "IPFIX messages written.",
            one(s.messages),
        );
        family(
            o,
            "podflow_exporter_encode_errors_total",
            "counter",
            "Flows that could not be encoded.",
            one(s.encode_errors),
        );
        family(
            o,
            "podflow_exporter_sent_messages_total",
            "counter",
            "IPFIX messages sent, by collector.",
            by("collector", sent(|c| c.messages)),
        );
        family(
            o,
            "podflow_exporter_sent_bytes_total",
            "counter",
            "Octets of IPFIX messages sent, by collector.",
            by("collector", sent(|c| c.octets)),
        );
        family(
            o,
            "podflow_exporter_send_errors_total",
            "counter",
            "Failed sends, by collector.",
            by("collector", sent(|c| c.errors)),
        );
        family(
            o,
            "podflow_exporter_send_failed_messages_total",
            "counter",
            "Messages that did not reach the collector: refused by it (ICMP error) or not sent after one retry, by collector.",
            by("collector", sent(|c| c.failed_messages)),
        );
        family(
            o,
            "podflow_exporter_send_failed_records_total",
            "counter",
            "Data records of the messages that did not reach the collector, by collector.",
            by("collector", sent(|c| c.failed_records)),
        );
        if let Some(c) = &s.conntrack {
            let st = &c.stats;
            let labelled = |key: &str, labels: &[&str], values: &[u64]| {
                by(
                    key,
                    labels
                        .iter()
                        .zip(values)
                        .map(|(l, v)| (l.to_string(), *v))
                        .collect(),
                )
            };
            type Family<'a> = (&'a str, &'a str, &'a str, Vec<(String, u64)>);
            let families: [Family<'_>; 14] = [
                (
                    "podflow_exporter_conntrack_up",
                    "gauge",
                    "1 while conntrack events are read (--conntrack), 0 when conntrack could not start or failed.",
                    one(u64::from(c.up)),
                ),
                (
                    "podflow_exporter_conntrack_events_total",
                    "counter",
                    "Conntrack events received, by type, translated connections or not.",
                    labelled("type", &["new", "update", "destroy"], &st.events),
                ),
                (
                    "podflow_exporter_conntrack_dumped_total",
                    "counter",
                    "Connections listed by conntrack dumps (at start and to resynchronise).",
                    one(st.dumped),
                ),
                (
                    "podflow_exporter_conntrack_ignored_total",
                    "counter",
                    "Connections in conntrack messages skipped: not translated, or a protocol without ports.",
                    one(st.ignored),
                ),
                (
                    "podflow_exporter_conntrack_malformed_total",
                    "counter",
                    "Conntrack netlink messages that could not be decoded.",
                    one(st.malformed),
                ),
                (
                    "podflow_exporter_conntrack_overruns_total",
                    "counter",
                    "Times the kernel dropped conntrack events for a full receive buffer (ENOBUFS).",
                    one(st.overruns),
                ),
                (
                    "podflow_exporter_conntrack_resyncs_total",
                    "counter",
                    "Full conntrack dumps taken to resynchronise after dropped events.",
                    one(st.resyncs),
                ),
                (
                    "podflow_exporter_conntrack_sweeps_total",
                    "counter",
                    "Conntrack dumps taken to find connections older than the probe that ended (the kernel sends no events for them).",
                    one(st.sweeps),
                ),
                (
                    "podflow_exporter_conntrack_dump_errors_total",
                    "counter",
                    "Conntrack dumps that failed.",
                    one(st.dump_errors),
                ),
                (
                    "podflow_exporter_conntrack_entries",
                    "gauge",
                    "Translated connections held, live and recently destroyed.",
                    one(st.entries),
                ),
                (
                    "podflow_exporter_conntrack_table_full_total",
                    "counter",
                    "Translated connections not held because the table was full.",
                    one(st.table_full),
                ),
                (
                    "podflow_exporter_conntrack_folded_packets_total",
                    "counter",
                    "Reply packets of translated connections counted into the original biflow.",
                    one(c.folded_packets),
                ),
                (
                    "podflow_exporter_nat_flows_total",
                    "counter",
                    "Exported flows by NAT resolution: resolved (translated connection), untranslated, unresolved (conntrack not running).",
                    labelled("result", &NAT_RESULTS, &c.flows),
                ),
                (
                    "podflow_exporter_nat_events_total",
                    "counter",
                    "NAT event records exported, by natEvent.",
                    labelled("event", &["create", "delete"], &st.nat_events),
                ),
            ];
            for (name, kind, help, samples) in &families {
                family(o, name, kind, help, samples);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_group_their_samples() {
        let m = Metrics::default();
        {
            let mut s = m.lock();
            s.packets = 7;
            s.skip(Skip::Truncated);
            s.exported(EndReason::EndOfFlow, 3);
            s.kernel.insert(
                "veth1".into(),
                KernelStats {
                    dropped: 2,
                    if_dropped: 0,
                },
            );
        }
        let text = m.render();
        assert!(text.contains("podflow_exporter_packets_total 7\n"));
        assert!(text.contains("podflow_exporter_packets_skipped_total{reason=\"truncated\"} 1\n"));
        assert!(text.contains("podflow_exporter_flows_exported_total{reason=\"end_of_flow\"} 3\n"));
        assert!(text.contains("podflow_exporter_kernel_dropped_packets_total{interface=\"veth1\"} 2\n"));
        // every sample line follows its own family's TYPE line
        let mut current = "";
        for l in text.lines() {
            if let Some(rest) = l.strip_prefix("# TYPE ") {
                current = rest.split(' ').next().unwrap();
            } else if !l.starts_with('#') {
                assert!(l.starts_with(current), "{l} outside {current}");
            }
        }
    }
}
