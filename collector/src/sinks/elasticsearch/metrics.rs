//! The sink's metrics, registered into the collector's [`Registry`]. Updated once per bulk request or
//! spool operation, never per document.

use prometheus::{
    Histogram, HistogramOpts, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, exponential_buckets,
};

/// The Elasticsearch sink's metrics.
#[derive(Clone, Debug)]
pub struct SinkMetrics {
    /// `podflow_collector_elasticsearch_documents_total{outcome="indexed|conflict"}`.
    pub documents: IntCounterVec,
    /// `podflow_collector_elasticsearch_retries_total{reason}`: documents sent again, by why.
    pub retries: IntCounterVec,
    /// `podflow_collector_elasticsearch_dead_letter_total{reason}`: documents refused for good.
    pub dead_letter: IntCounterVec,
    /// `podflow_collector_elasticsearch_dropped_total{reason}`: documents lost.
    pub dropped: IntCounterVec,
    /// `podflow_collector_elasticsearch_bulk_duration_seconds`.
    pub bulk_duration: Histogram,
    /// `podflow_collector_elasticsearch_requests_in_flight`.
    pub in_flight: IntGauge,
    /// `podflow_collector_elasticsearch_node_up{node}`.
    pub node_up: IntGaugeVec,
    /// `podflow_collector_spool_octets`.
    pub spool_octets: IntGauge,
    /// `podflow_collector_spool_segments`.
    pub spool_segments: IntGauge,
}

const PREFIX: &str = "podflow_collector_elasticsearch_";

impl SinkMetrics {
    /// Makes the metrics and registers them into `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str, label: &str| {
            IntCounterVec::new(Opts::new(format!("{PREFIX}{name}"), help), &[label])
        };
        let m = SinkMetrics {
            documents: counter(
                "documents_total",
                "Documents delivered to Elasticsearch: indexed, or already there (409 conflict).",
                "outcome",
            )?,
            retries: counter(
                "retries_total",
                "Documents sent again, by reason (the item's or the request's HTTP status, or transport).",
                "reason",
            )?,
            dead_letter: counter(
                "dead_letter_total",
                "Documents refused for good and written to the dead-letter file, by the server's error type.",
                "reason",
            )?,
            dropped: counter(
                "dropped_total",
                "Documents lost, by reason (spool_full, no_spool, spool_error, spool_corrupt, dead_letter_error).",
                "reason",
            )?,
            bulk_duration: Histogram::with_opts(
                HistogramOpts::new(
                    format!("{PREFIX}bulk_duration_seconds"),
                    "Time from sending a bulk request to reading its answer.",
                )
                .buckets(exponential_buckets(0.005, 2.0, 12)?),
            )?,
            in_flight: IntGauge::new(
                format!("{PREFIX}requests_in_flight"),
                "Bulk requests awaiting their answer.",
            )?,
            node_up: IntGaugeVec::new(
                Opts::new(
                    format!("{PREFIX}node_up"),
                    "1 while the node answers, 0 while it is skipped.",
                ),
                &["node"],
            )?,
            spool_octets: IntGauge::new(
                "podflow_collector_spool_octets",
                "Octets of documents in the disk spool.",
            )?,
            spool_segments: IntGauge::new(
                "podflow_collector_spool_segments",
                "Segment files in the disk spool.",
            )?,
        };
        registry.register(Box::new(m.documents.clone()))?;
        registry.register(Box::new(m.retries.clone()))?;
        registry.register(Box::new(m.dead_letter.clone()))?;
        registry.register(Box::new(m.dropped.clone()))?;
        registry.register(Box::new(m.bulk_duration.clone()))?;
        registry.register(Box::new(m.in_flight.clone()))?;
        registry.register(Box::new(m.node_up.clone()))?;
        registry.register(Box::new(m.spool_octets.clone()))?;
        registry.register(Box::new(m.spool_segments.clone()))?;
        for outcome in ["indexed", "conflict"] {
            m.documents.with_label_values(&[outcome]);
        }
        m.dropped.with_label_values(&["spool_full"]);
        Ok(m)
    }

    /// Counts `n` documents dropped for `reason`.
    pub fn drop_docs(&self, reason: &str, n: u64) {
        if n > 0 {
            self.dropped.with_label_values(&[reason]).inc_by(n);
        }
    }
}
