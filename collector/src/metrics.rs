//! The collector's self metrics (Prometheus text format) and the HTTP endpoint serving them with
//! `/healthz`. Pipeline stages publish their counters once per batch; the HTTP thread renders them.

use podflow_telemetry::{Render, family};
use std::collections::BTreeMap;

use crate::decode::ExporterStats;
use crate::k8s::api::{KindStats, KubernetesStats};

/// Everything the collector reports about itself.
#[derive(Clone, Debug, Default)]
pub struct State {
    /// The decoders' counters per exporter address and protocol label (every source port and
    /// observation domain of the address summed).
    pub exporters: BTreeMap<(String, &'static str), ExporterStats>,
    /// Decode errors by reason.
    pub decode_errors: BTreeMap<String, u64>,
    /// Datagrams dropped because decoding fell behind (`behind`). The kernel's drops are summed from
    /// [`State::socket_drops`] when rendered.
    pub dropped_datagrams: BTreeMap<&'static str, u64>,
    /// The kernel's receive-buffer drops per socket (its address and place in the SO_REUSEPORT group),
    /// as /proc/net/udp counts them.
    pub socket_drops: BTreeMap<(String, usize), u64>,
    /// Record batches dropped because enrichment and sinks fell behind.
    pub dropped_records: u64,
    /// Records waiting for enrichment and sinks.
    pub queue_depth: u64,
    /// Endpoint lookups that found no Kubernetes object.
    pub enrichment_misses: u64,
    /// Flows marked duplicate (seen by a second observer).
    pub duplicates: u64,
    /// Connections the full duplicate table forgot within their window.
    pub duplicates_untracked: u64,
    /// NAT event records consumed.
    pub nat_events: u64,
    /// Documents written, by sink.
    pub documents: BTreeMap<&'static str, u64>,
    /// Documents a sink dropped or failed, by sink and reason.
    pub sink_failures: BTreeMap<(&'static str, &'static str), u64>,
    /// What the Kubernetes API watches did (with --kubernetes only).
    pub kubernetes: Option<KubernetesStats>,
    /// Log lines about exporters left out because all exporters together passed the log budget.
    pub log_suppressed: u64,
}

/// The counters, shared by the threads that update them and the thread that serves them.
pub type Metrics = podflow_telemetry::Shared<State>;

impl Render for State {
    fn render(&self, o: &mut String) {
        let s = self;
        let per_exporter = |pick: fn(&ExporterStats) -> u64| {
            s.exporters
                .iter()
                .map(|((e, p), c)| {
                    (
                        format!(
                            "{{exporter=\"{}\",protocol=\"{p}\"}}",
                            podflow_telemetry::escape(e)
                        ),
                        pick(c),
                    )
                })
                .collect::<Vec<_>>()
        };
        family(
            o,
            "podflow_collector_datagrams_total",
            "counter",
            "Datagrams decoded, by exporter.",
            per_exporter(|c| c.datagrams),
        );
        family(
            o,
            "podflow_collector_records_total",
            "counter",
            "Flow records decoded, by exporter.",
            per_exporter(|c| c.records),
        );
        family(
            o,
            "podflow_collector_lost_records_total",
            "counter",
            "Records missing by sequence numbers (IPFIX and NetFlow v5), by exporter.",
            per_exporter(|c| c.lost_records),
        );
        family(
            o,
            "podflow_collector_lost_datagrams_total",
            "counter",
            "Export datagrams missing by sequence numbers (NetFlow v9 numbers datagrams, not records), by exporter.",
            per_exporter(|c| c.lost_datagrams),
        );
        family(
            o,
            "podflow_collector_template_misses_total",
            "counter",
            "Data sets whose template was unknown, by exporter.",
            per_exporter(|c| c.template_misses),
        );
        family(
            o,
            "podflow_collector_held_sets_total",
            "counter",
            "Data sets that arrived before their template, by exporter and what became of them: 'held' (waiting), 'decoded' once the template came, 'expired' after --template-wait, 'refused' for the hold limits.",
            s.exporters
                .iter()
                .flat_map(|((e, p), c)| {
                    let e = podflow_telemetry::escape(e);
                    [
                        ("held", c.held_sets),
                        ("decoded", c.replayed_sets),
                        ("expired", c.expired_sets),
                        ("refused", c.dropped_sets),
                    ]
                    .map(|(outcome, v)| {
                        (
                            format!("{{exporter=\"{e}\",protocol=\"{p}\",outcome=\"{outcome}\"}}"),
                            v,
                        )
                    })
                })
                .collect::<Vec<_>>(),
        );
        family(
            o,
            "podflow_collector_decode_errors_total",
            "counter",
            "Parts of datagrams that could not be decoded, by reason.",
            s.decode_errors
                .iter()
                .map(|(r, v)| (format!("{{reason=\"{}\"}}", podflow_telemetry::escape(r)), *v))
                .collect::<Vec<_>>(),
        );
        family(
            o,
            "podflow_collector_dropped_datagrams_total",
            "counter",
            "Datagrams dropped before decoding: 'kernel' socket overruns, 'behind' decoding too slow.",
            s.dropped_datagrams
                .iter()
                .filter(|(w, _)| **w != "kernel")
                .map(|(w, v)| (format!("{{where=\"{w}\"}}"), *v))
                .chain([(
                    "{where=\"kernel\"}".to_owned(),
                    s.socket_drops.values().sum::<u64>(),
                )])
                .collect::<Vec<_>>(),
        );
        family(
            o,
            "podflow_collector_socket_drops_total",
            "counter",
            "Datagrams the kernel dropped because a socket's receive buffer was full (/proc/net/udp drops), by socket address and its index in the SO_REUSEPORT group; raise --receive-buffer (and net.core.rmem_max) or --sockets.",
            s.socket_drops
                .iter()
                .map(|((a, i), v)| {
                    (
                        format!("{{socket=\"{}\",index=\"{i}\"}}", podflow_telemetry::escape(a)),
                        *v,
                    )
                })
                .collect::<Vec<_>>(),
        );
        family(
            o,
            "podflow_collector_dropped_records_total",
            "counter",
            "Decoded records dropped because enrichment and sinks fell behind.",
            vec![(String::new(), s.dropped_records)],
        );
        family(
            o,
            "podflow_collector_queue_depth",
            "gauge",
            "Records waiting for enrichment and sinks.",
            vec![(String::new(), s.queue_depth)],
        );
        family(
            o,
            "podflow_collector_enrichment_misses_total",
            "counter",
            "Endpoint lookups that found no Kubernetes object (outside the cluster or unknown).",
            vec![(String::new(), s.enrichment_misses)],
        );
        family(
            o,
            "podflow_collector_duplicate_flows_total",
            "counter",
            "Flows already reported by another observer, counted once.",
            vec![(String::new(), s.duplicates)],
        );
        family(
            o,
            "podflow_collector_duplicates_untracked_total",
            "counter",
            "Connections the full duplicate table forgot within their window (a later report by another observer is not marked); raise --duplicate-entries.",
            vec![(String::new(), s.duplicates_untracked)],
        );
        family(
            o,
            "podflow_collector_nat_events_total",
            "counter",
            "NAT event records consumed.",
            vec![(String::new(), s.nat_events)],
        );
        family(
            o,
            "podflow_collector_documents_total",
            "counter",
            "Documents written, by sink.",
            s.documents
                .iter()
                .map(|(k, v)| (format!("{{sink=\"{k}\"}}"), *v))
                .collect::<Vec<_>>(),
        );
        family(
            o,
            "podflow_collector_sink_failures_total",
            "counter",
            "Documents a sink dropped or failed, by sink and reason.",
            s.sink_failures
                .iter()
                .map(|((k, r), v)| (format!("{{sink=\"{k}\",reason=\"{r}\"}}"), *v))
                .collect::<Vec<_>>(),
        );
        if let Some(k) = &s.kubernetes {
            render_kubernetes(o, k);
        }
        family(
            o,
            "podflow_collector_log_suppressed_total",
            "counter",
            "Log lines about exporters left out because all exporters together passed the lines a minute the log allows (the metrics still count every problem).",
            vec![(String::new(), s.log_suppressed)],
        );
    }
}

/// The `podflow_collector_kubernetes_*` families, labelled by kind (pod, service, endpointslice, node,
/// replicaset, job).
fn render_kubernetes(o: &mut String, k: &KubernetesStats) {
    let per_kind = |pick: fn(&KindStats) -> u64| {
        k.kinds
            .iter()
            .map(|(kind, c)| (format!("{{kind=\"{}\"}}", kind.name().to_lowercase()), pick(c)))
            .collect::<Vec<_>>()
    };
    family(
        o,
        "podflow_collector_kubernetes_synced",
        "gauge",
        "1 once every watched kind has been listed completely.",
        vec![(String::new(), u64::from(k.synced))],
    );
    let events = k.kinds.iter().flat_map(|(kind, c)| {
        let kind = kind.name().to_lowercase();
        [
            ("listed", c.listed),
            ("applied", c.applied),
            ("deleted", c.deleted),
        ]
        .map(|(event, v)| (format!("{{kind=\"{kind}\",event=\"{event}\"}}"), v))
    });
    family(
        o,
        "podflow_collector_kubernetes_events_total",
        "counter",
        "Objects received from the API, by kind and event: listed (in a full list), applied (added or changed, from the watch), deleted.",
        events.collect::<Vec<_>>(),
    );
    family(
        o,
        "podflow_collector_kubernetes_lists_total",
        "counter",
        "Full lists completed, by kind (the first included).",
        per_kind(|c| c.lists),
    );
    family(
        o,
        "podflow_collector_kubernetes_relists_total",
        "counter",
        "Full lists begun after the first, by kind (after 410 Gone, or a watch that could not resume).",
        per_kind(|c| c.relists),
    );
    family(
        o,
        "podflow_collector_kubernetes_watch_expired_total",
        "counter",
        "Watches the API server ended with 410 Gone (their resourceVersion was compacted away), by kind.",
        per_kind(|c| c.expired),
    );
    family(
        o,
        "podflow_collector_kubernetes_errors_total",
        "counter",
        "Other errors listing or watching, by kind (retried with backoff).",
        per_kind(|c| c.errors),
    );
    family(
        o,
        "podflow_collector_kubernetes_bad_objects_total",
        "counter",
        "Objects that could not be used, by kind.",
        per_kind(|c| c.bad),
    );
    let i = &k.index;
    family(
        o,
        "podflow_collector_kubernetes_objects",
        "gauge",
        "Objects the index holds, by kind (owner: ReplicaSets and Jobs).",
        [
            ("pod", i.pods),
            ("service", i.services),
            ("node", i.nodes),
            ("endpointslice", i.endpoint_slices),
            ("owner", i.owners),
        ]
        .iter()
        .map(|(kind, n)| (format!("{{kind=\"{kind}\"}}"), *n as u64))
        .collect::<Vec<_>>(),
    );
    family(
        o,
        "podflow_collector_kubernetes_address_spans",
        "gauge",
        "Who-held-which-address spans the index holds: live ones and those ended within --history.",
        vec![(String::new(), (i.address_spans + i.port_spans) as u64)],
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::objects::ObjectKind;

    #[test]
    fn kubernetes_watch_counters_are_rendered_per_kind_only_with_the_api_provider() {
        let m = Metrics::default();
        assert!(!m.render().contains("podflow_collector_kubernetes_"));
        let mut k = KubernetesStats {
            synced: true,
            ..KubernetesStats::default()
        };
        k.kinds.insert(
            ObjectKind::Pod,
            KindStats {
                listed: 3,
                applied: 2,
                deleted: 1,
                lists: 2,
                relists: 1,
                expired: 1,
                ..KindStats::default()
            },
        );
        k.kinds.insert(ObjectKind::EndpointSlice, KindStats::default());
        m.lock().kubernetes = Some(k);
        let text = m.render();
        for line in [
            "podflow_collector_kubernetes_synced 1\n",
            "podflow_collector_kubernetes_events_total{kind=\"pod\",event=\"listed\"} 3\n",
            "podflow_collector_kubernetes_events_total{kind=\"pod\",event=\"deleted\"} 1\n",
            "podflow_collector_kubernetes_relists_total{kind=\"pod\"} 1\n",
            "podflow_collector_kubernetes_watch_expired_total{kind=\"pod\"} 1\n",
            "podflow_collector_kubernetes_lists_total{kind=\"endpointslice\"} 0\n",
            "podflow_collector_kubernetes_objects{kind=\"pod\"} 0\n",
            "podflow_collector_kubernetes_address_spans 0\n",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn lost_records_and_datagrams_are_rendered_per_exporter() {
        let m = Metrics::default();
        m.lock().exporters.insert(
            ("192.0.2.1".into(), "netflow_v9"),
            ExporterStats {
                datagrams: 10,
                records: 200,
                lost_datagrams: 3,
                ..ExporterStats::default()
            },
        );
        let text = m.render();
        let label = "{exporter=\"192.0.2.1\",protocol=\"netflow_v9\"}";
        assert!(
            text.contains(&format!("podflow_collector_lost_datagrams_total{label} 3\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("podflow_collector_lost_records_total{label} 0\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("podflow_collector_records_total{label} 200\n")),
            "{text}"
        );
    }
}
