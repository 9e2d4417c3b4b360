//! What the Elasticsearch sink's tests share: the collector started with `--elasticsearch` against
//! an [`OpenSearch`] node, `_count` of the data stream, and polling the sink's own metrics.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};

use crate::collector::{Collector, Metrics};
use crate::opensearch::OpenSearch;
use crate::peer::wait_until;

/// The data stream of the default namespace.
pub const STREAM: &str = "logs-podflow.flows-default";

/// The labels of records of the stream sender and of the exporter on loopback.
pub const LOOPBACK_IPFIX: &str = "exporter=\"127.0.0.1\",protocol=\"ipfix\"";

/// Starts a collector (one socket) writing `<name>.ndjson` and into `node_url`, spooling to
/// `<work>/spool`, with `args` on top.
pub fn start_collector(name: &str, work: &Path, node_url: &str, args: &[&str]) -> anyhow::Result<Collector> {
    let spool = work.join("spool");
    let spool = spool.to_string_lossy().into_owned();
    let mut all = vec![
        "--elasticsearch",
        node_url,
        "--spool-dir",
        &spool,
        "--elasticsearch-flush-interval",
        "0.2",
    ];
    all.extend_from_slice(args);
    Collector::start_with(name, work, 1, &all)
}

/// `_count` of `target` after a refresh; 0 while the data stream does not exist.
pub fn count(node: &OpenSearch, target: &str) -> anyhow::Result<u64> {
    let os = node.client();
    let refreshed = os.post_json(&format!("/{target}/_refresh"), &json!({}))?;
    if refreshed.status == 404 {
        return Ok(0);
    }
    let counted = os.get(&format!("/{target}/_count"))?.ok_json()?;
    counted["count"]
        .as_u64()
        .with_context(|| format!("no count in {counted}"))
}

/// The sum of the samples of `name` whose labels contain `labels`.
pub fn metric(m: &Metrics, name: &str, labels: &str) -> u64 {
    m.samples
        .iter()
        .filter(|(n, l, _)| n == name && l.contains(labels))
        .map(|s| s.2)
        .sum()
}

/// Documents the sink delivered (indexed and conflicts).
pub fn delivered(m: &Metrics) -> u64 {
    metric(m, "podflow_collector_elasticsearch_documents_total", "")
}

/// Polls the collector's `/metrics` (bounded by `timeout`) until `done` holds; returns that scrape.
pub fn wait_metrics(
    c: &Collector,
    what: &str,
    timeout: Duration,
    mut done: impl FnMut(&Metrics) -> bool,
) -> anyhow::Result<Metrics> {
    let mut last = None;
    let waited = wait_until(what, timeout, || {
        let m = c.scrape()?;
        let ok = done(&m);
        last = Some(m);
        Ok(ok)
    });
    match (waited, last) {
        (Ok(()), Some(m)) => Ok(m),
        (Err(e), Some(m)) => Err(e.context(format!("last /metrics:\n{}", sink_lines(&m)))),
        (Err(e), None) => Err(e),
        (Ok(()), None) => anyhow::bail!("no scrape"),
    }
}

/// The sink's lines of a scrape (for failure messages).
pub fn sink_lines(m: &Metrics) -> String {
    m.text
        .lines()
        .filter(|l| {
            !l.starts_with('#')
                && (l.contains("elasticsearch") || l.contains("spool") || l.contains("records_total"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `_source` of every document of `target` whose `field` is `value`.
pub fn find(node: &OpenSearch, target: &str, field: &str, value: &Value) -> anyhow::Result<Vec<Value>> {
    let q = json!({ "size": 10, "query": { "term": { field: value } } });
    let found = node
        .client()
        .post_json(&format!("/{target}/_search"), &q)?
        .ok_json()?;
    Ok(found["hits"]["hits"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| h["_source"].clone())
        .collect())
}
