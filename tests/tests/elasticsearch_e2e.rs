//! podflow-exporter -> podflow-collector -> OpenSearch 2.19: every record of a generated pcap becomes
//! one document of `logs-podflow.flows-default`, equal to its NDJSON twin (both sinks run at once) but
//! for the `data_stream.*` fields; the data stream is made by podflow's index template, with label
//! objects mapped `flat_object` and every other field with the ECS field table's type; a second
//! collector on the same templates leaves them as they are.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, ensure};
use podflow_e2e::binaries;
use podflow_e2e::elasticsearch::{
    LOOPBACK_IPFIX, STREAM, count, delivered, find, sink_lines, start_collector, wait_metrics,
};
use podflow_e2e::opensearch::OpenSearch;
use podflow_e2e::pcapgen::{self, Config};
use podflow_e2e::peer::PeerProcess;

#[test]
fn exporter_to_collector_to_opensearch() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let pcap = work.path().join("flows.pcap");
    let summary = pcapgen::generate_file(&Config::mixed(), &pcap, None)?;
    let records = summary.total.flows;
    let node_dir = work.path().join("node");
    std::fs::create_dir_all(&node_dir)?;
    let node = OpenSearch::start(&node_dir, &[])?;

    let mut collector = start_collector("e2e", work.path(), &node.url(), &[])?;
    let exporter = binaries::podflow_exporter()?;
    let export = |port: u16| {
        let mut cmd = Command::new(&exporter);
        cmd.arg("--pcap")
            .arg(&pcap)
            .args(["--collector", &format!("127.0.0.1:{port}")]);
        cmd
    };
    let out = PeerProcess::spawn("exporter", &mut export(collector.port()), work.path())?.wait_exit()?;
    ensure!(out.status.success(), "exporter failed");
    collector.wait_records(LOOPBACK_IPFIX, records)?;
    let m = wait_metrics(
        &collector,
        "every document delivered",
        Duration::from_secs(60),
        |m| delivered(m) >= records,
    )?;
    let stopped = collector.stop()?;
    ensure!(
        stopped
            .log
            .contains("installed /_index_template/logs-podflow.flows"),
        "{}",
        stopped.log
    );

    assert_eq!(count(&node, STREAM)?, records, "{}", sink_lines(&m));
    assert_eq!(stopped.docs.len() as u64, records);
    assert_eq!(
        m.get(
            "podflow_collector_elasticsearch_documents_total",
            "outcome=\"indexed\""
        ),
        Some(records)
    );

    // A document equals its NDJSON twin, but for the data stream fields.
    let mut compared = 0;
    for doc in stopped.docs.iter().step_by(97) {
        let cid = &doc["network"]["community_id"];
        let twins = find(&node, STREAM, "network.community_id", cid)?;
        let twin = twins
            .iter()
            .find(|t| t["event"]["end"] == doc["event"]["end"] && t["source"] == doc["source"])
            .with_context(|| format!("no twin of {doc} among {twins:?}"))?;
        let mut twin = twin.clone();
        let ds = twin.as_object_mut().and_then(|o| o.remove("data_stream"));
        assert_eq!(
            ds,
            Some(serde_json::json!({"type": "logs", "dataset": "podflow.flows", "namespace": "default"}))
        );
        assert_eq!(&twin, doc);
        compared += 1;
    }
    assert!(compared > 20, "{compared} documents compared");

    // The data stream is podflow's, mapped by its templates.
    let os = node.client();
    let streams = os.get(&format!("/_data_stream/{STREAM}"))?.ok_json()?;
    assert_eq!(
        streams["data_streams"][0]["template"], "logs-podflow.flows",
        "{streams}"
    );
    let backing = streams["data_streams"][0]["indices"][0]["index_name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mapping = os.get(&format!("/{STREAM}/_mapping"))?.ok_json()?;
    let props = &mapping[&backing]["mappings"]["properties"];
    let leaf = |path: &[&str]| {
        let mut at = props;
        for (i, p) in path.iter().enumerate() {
            at = &at[p];
            if i + 1 < path.len() {
                at = &at["properties"];
            }
        }
        at["type"].clone()
    };
    assert_eq!(
        leaf(&["source", "kubernetes", "labels"]),
        "flat_object",
        "{mapping}"
    );
    assert_eq!(leaf(&["source", "port"]), "long");
    assert_eq!(leaf(&["source", "ip"]), "ip");
    assert_eq!(leaf(&["network", "community_id"]), "keyword");
    assert_eq!(leaf(&["@timestamp"]), "date");
    let component = os
        .get("/_component_template/logs-podflow.flows-mappings")?
        .ok_json()?;
    assert_eq!(
        component["component_templates"][0]["component_template"]["version"],
        1
    );

    // A second collector finds the same templates and leaves them.
    let mut again = start_collector("again", work.path(), &node.url(), &[])?;
    let out = PeerProcess::spawn("exporter-2", &mut export(again.port()), work.path())?.wait_exit()?;
    ensure!(out.status.success(), "exporter failed");
    again.wait_records(LOOPBACK_IPFIX, records)?;
    let m2 = wait_metrics(
        &again,
        "every document delivered again",
        Duration::from_secs(60),
        |m| delivered(m) >= records,
    )?;
    let log = again.stop()?.log;
    ensure!(!log.contains("installed /_"), "templates put again:\n{log}");
    let outcomes: HashMap<&str, u64> = [("indexed", 0), ("conflict", 0)]
        .into_iter()
        .map(|(o, _)| {
            let labels = format!("outcome=\"{o}\"");
            (
                o,
                m2.get("podflow_collector_elasticsearch_documents_total", &labels)
                    .unwrap_or(0),
            )
        })
        .collect();
    // A new exporter process has a new source port: its records are new documents.
    assert_eq!(
        outcomes["conflict"] + outcomes["indexed"],
        records,
        "{outcomes:?}"
    );
    assert_eq!(count(&node, STREAM)?, records + outcomes["indexed"]);
    Ok(())
}
