//! The flow metrics as a scrape shows them: sums, the series cap, expiry, the compatibility names.

use prometheus::{Registry, TextEncoder};

use super::*;
use crate::sinks::edges::Endpoint;

fn key(src: &str, dst: &str) -> EdgeKey {
    let ep = |w: &str| Endpoint {
        namespace: "shop".into(),
        workload: w.into(),
        kind: "Deployment".into(),
    };
    EdgeKey {
        client: ep(src),
        server: ep(dst),
        dst_service: "".into(),
        protocol: "tcp".into(),
    }
}

fn counts(n: u64) -> EdgeCounts {
    EdgeCounts {
        connections: n,
        request_bytes: 100 * n,
        response_bytes: 1000 * n,
        request_packets: n,
        response_packets: 2 * n,
    }
}

fn scrape(r: &Registry) -> String {
    let mut s = String::new();
    TextEncoder::new().encode_utf8(&r.gather(), &mut s).unwrap();
    s
}

// The registry writes labels sorted by name.
const WEB_DB: &str = "dst_kind=\"Deployment\",dst_namespace=\"shop\",dst_service=\"\",dst_workload=\"db\",protocol=\"tcp\",src_kind=\"Deployment\",src_namespace=\"shop\",src_workload=\"web\"";

#[test]
fn batches_add_up_and_quiet_edges_expire_after_the_ttl() {
    let r = Registry::new();
    let cfg = FlowMetricsConfig {
        ttl_ms: 1000,
        max_series: 10,
        compat_netflow: true,
    };
    let mut m = FlowMetrics::register(cfg, &r).unwrap();
    m.consume(10_000, &[(key("web", "db"), counts(1))]);
    m.consume(
        10_100,
        &[(key("web", "db"), counts(2)), (key("web", "cache"), counts(1))],
    );
    let text = scrape(&r);
    assert!(
        text.contains(&format!("podflow_connections_total{{{WEB_DB}}} 3\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "podflow_connection_bytes_total{{direction=\"response\",{WEB_DB}}} 3000\n"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "podflow_connection_packets_total{{direction=\"request\",{WEB_DB}}} 3\n"
        )),
        "{text}"
    );
    assert!(
        text.contains("netflow_connection_bytes{dsthost=\"db\",dstnamespace=\"shop\",srchost=\"web\",srcnamespace=\"shop\"} 3300\n"),
        "{text}"
    );
    // web -> cache goes quiet; web -> db keeps talking.
    m.consume(11_050, &[(key("web", "db"), counts(1))]);
    m.consume(11_200, &[]);
    let text = scrape(&r);
    assert!(!text.contains("dst_workload=\"cache\""), "{text}");
    assert!(!text.contains("dsthost=\"cache\""), "{text}");
    assert!(
        text.contains(&format!("podflow_connections_total{{{WEB_DB}}} 4\n")),
        "{text}"
    );
    assert!(
        text.contains("podflow_collector_flow_series_expired_total 1\n"),
        "{text}"
    );
    assert!(text.contains("podflow_collector_flow_series 1\n"), "{text}");
}

#[test]
fn edges_past_the_cap_are_counted_not_exported() {
    let r = Registry::new();
    let cfg = FlowMetricsConfig {
        max_series: 2,
        ..FlowMetricsConfig::default()
    };
    let mut m = FlowMetrics::register(cfg, &r).unwrap();
    let edges: Vec<_> = ["a", "b", "c", "d"]
        .iter()
        .map(|w| (key("web", w), counts(1)))
        .collect();
    m.consume(1, &edges);
    m.consume(2, &edges);
    let text = scrape(&r);
    assert_eq!(text.matches("podflow_connections_total{").count(), 2, "{text}");
    assert!(
        text.contains("podflow_collector_flow_series_refused_total 4\n"),
        "{text}"
    );
    assert!(
        !text.contains("netflow_connection_count"),
        "off unless asked: {text}"
    );
}
