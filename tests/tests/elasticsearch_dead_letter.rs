//! Documents the server refuses for good go to the dead-letter file with its reason; all others are
//! indexed. Against a real OpenSearch 2.19 node: after a first collector installed podflow's
//! templates, an operator's newer component template maps `source.port` as `short` (at most 32767).
//! A second collector leaves that newer template as it is (and says so), and of a stream whose source
//! ports run 1024..61023, the records with ports above 32767 are refused by the server with a
//! `mapper_parsing_exception`: each is one line of the dead-letter file, with `_id`, status, the
//! server's reason and the document as sent, and counted by reason. Nothing else is lost.

use std::time::Duration;

use anyhow::{Context, ensure};
use podflow_e2e::elasticsearch::{
    STREAM, count, delivered, metric, sink_lines, start_collector, wait_metrics,
};
use podflow_e2e::ipfix_stream;
use podflow_e2e::opensearch::OpenSearch;
use podflow_e2e::peer::wait_until;
use serde_json::{Value, json};

/// Records of the stream; record `i` has source port `1024 + i % 60000`.
const RECORDS: u64 = 40_000;
const COMPONENT: &str = "/_component_template/logs-podflow.flows-mappings";

/// How many of the first `n` records have a source port a `short` cannot hold.
fn over_short(n: u64) -> u64 {
    (0..n).filter(|i| 1024 + i % 60_000 > i16::MAX as u64).count() as u64
}

#[test]
fn refused_documents_reach_the_dead_letter_file_with_the_reason() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let node_dir = work.path().join("node");
    std::fs::create_dir_all(&node_dir)?;
    let mut node = OpenSearch::start(&node_dir, &[])?;
    let os = node.client();

    // A first collector installs the templates; nothing is sent to it.
    let first = start_collector("installs", work.path(), &node.url(), &[])?;
    wait_until("the component template", Duration::from_secs(60), || {
        Ok(os.get(COMPONENT)?.status == 200)
    })?;
    first.stop()?;

    // The operator's newer template: the same mapping but source.port as short.
    let got = os.get(COMPONENT)?.ok_json()?;
    let mut template = got["component_templates"][0]["component_template"].clone();
    let port = template
        .pointer_mut("/template/mappings/properties/source/properties/port")
        .context("no source.port in podflow's component template")?;
    ensure!(port["type"] != "short", "source.port is already short: {port}");
    *port = json!({ "type": "short" });
    let version = template["version"].as_u64().context("no version")? + 1;
    template["version"] = json!(version);
    template["_meta"]["version"] = json!(version);
    os.put_json(COMPONENT, &template)?.ok_json()?;

    let dead = work.path().join("refused.ndjson");
    let dead_arg = dead.to_string_lossy().into_owned();
    let collector = start_collector(
        "dead-letter",
        work.path(),
        &node.url(),
        &["--elasticsearch-dead-letter", &dead_arg],
    )?;
    let sent = ipfix_stream::send_all(&collector, RECORDS)?;
    let refused = over_short(sent);
    let m = wait_metrics(
        &collector,
        "every document indexed or dead-lettered",
        Duration::from_secs(120),
        |m| delivered(m) + metric(m, "podflow_collector_elasticsearch_dead_letter_total", "") >= sent,
    )?;
    let stopped = collector.stop()?;
    ensure!(
        stopped.log.contains("newer than this collector's"),
        "the newer template was not reported:\n{}",
        stopped.log
    );
    assert_eq!(
        os.get(COMPONENT)?.ok_json()?["component_templates"][0]["component_template"]["version"],
        json!(version),
        "the newer template was overwritten"
    );

    assert_eq!(
        metric(
            &m,
            "podflow_collector_elasticsearch_dead_letter_total",
            "reason=\"mapper_parsing_exception\""
        ),
        refused,
        "{}",
        sink_lines(&m)
    );
    assert_eq!(delivered(&m), sent - refused, "{}", sink_lines(&m));
    assert_eq!(metric(&m, "podflow_collector_elasticsearch_dropped_total", ""), 0);
    assert_eq!(count(&node, STREAM)?, sent - refused);

    let text = std::fs::read_to_string(&dead).context("the dead-letter file")?;
    let lines: Vec<Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("a dead-letter line is not JSON")?;
    assert_eq!(lines.len() as u64, refused);
    for l in &lines {
        assert_eq!(l["status"], 400, "{l}");
        assert_eq!(l["_index"], STREAM, "{l}");
        assert_eq!(l["error"]["type"], "mapper_parsing_exception", "{l}");
        let reason = l["error"]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("source.port"), "{l}");
        let port = l["document"]["source"]["port"]
            .as_u64()
            .context("no source.port")?;
        assert!(port > i16::MAX as u64, "{l}");
        assert!(l["_id"].as_str().is_some_and(|id| !id.is_empty()), "{l}");
    }
    // A refused document is not in the index under its _id; an accepted one is.
    let id = lines[0]["_id"].as_str().context("no _id")?;
    let probe = os.post_json(
        &format!("/{STREAM}/_search"),
        &json!({ "query": { "ids": { "values": [id] } } }),
    )?;
    assert_eq!(probe.ok_json()?["hits"]["total"]["value"], 0);
    node.stop()?;
    Ok(())
}
