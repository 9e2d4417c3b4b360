//! The OpenSearch node of `scripts/opensearch.sh` does what podflow's Elasticsearch sink tests need of
//! it: composable index templates with data streams and a `flat_object` field, `_bulk` `create` with
//! `_id` (a second create is a 409 item), data kept across a SIGKILL and a restart on the same
//! directory, and a write thread pool small enough to reject bulk requests with real 429 items (error type
//! `rejected_execution_exception` in OpenSearch, `es_rejected_execution_exception` in Elasticsearch).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::Context;
use podflow_e2e::opensearch::OpenSearch;
use serde_json::{Value, json};

/// Documents bulk-created into the data stream.
const DOCS: usize = 50;

/// The data stream the first test writes to.
const STREAM: &str = "logs-podflow.test-default";

/// The items of a `_bulk` answer, each the object under its action name (`create`, `index`).
fn items(bulk: &Value) -> anyhow::Result<Vec<&Value>> {
    let items = bulk["items"]
        .as_array()
        .with_context(|| format!("no items in {bulk}"))?;
    items
        .iter()
        .map(|item| {
            item.as_object()
                .and_then(|o| o.values().next())
                .with_context(|| format!("bulk item {item} has no action"))
        })
        .collect()
}

/// `_count` of `target`, refreshed first so that every acknowledged write is searchable.
fn count(node: &OpenSearch, target: &str) -> anyhow::Result<u64> {
    let os = node.client();
    os.post_json(&format!("/{target}/_refresh"), &json!({}))?
        .ok_json()?;
    let counted = os.get(&format!("/{target}/_count"))?.ok_json()?;
    counted["count"]
        .as_u64()
        .with_context(|| format!("no count in {counted}"))
}

/// The bulk lines creating document `i` of the data stream.
fn create_lines(i: usize) -> [Value; 2] {
    [
        json!({ "create": { "_id": format!("flow-{i}") } }),
        json!({
            "@timestamp": format!("2026-01-01T00:00:{:02}Z", i % 60),
            "network": { "transport": "tcp" },
            "labels": { "app": { "name": format!("app-{i}") }, "tier": "web" },
        }),
    ]
}

#[test]
fn data_stream_with_flat_object_survives_sigkill_and_restart() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut node = OpenSearch::start(dir.path(), &[])?;
    let os = node.client();

    let root = os.get("/")?.ok_json()?;
    assert_eq!(root["version"]["distribution"], "opensearch", "{root}");
    let version = root["version"]["number"].as_str().unwrap_or_default();
    assert!(version.starts_with("2.19."), "version {version} in {root}");

    let template = json!({
        "index_patterns": ["logs-podflow.test-*"],
        "data_stream": {},
        "priority": 500,
        "template": {
            "settings": { "number_of_shards": 1, "number_of_replicas": 0 },
            "mappings": { "properties": {
                "@timestamp": { "type": "date" },
                "network": { "properties": { "transport": { "type": "keyword" } } },
                "labels": { "type": "flat_object" },
            } },
        },
    });
    let put = os
        .put_json("/_index_template/podflow-test", &template)?
        .ok_json()?;
    assert_eq!(put["acknowledged"], true, "{put}");

    let lines: Vec<Value> = (0..DOCS).flat_map(create_lines).collect();
    let bulk = os.post_ndjson(&format!("/{STREAM}/_bulk"), &lines)?.ok_json()?;
    assert_eq!(bulk["errors"], false, "{bulk}");
    let created = items(&bulk)?;
    assert_eq!(created.len(), DOCS);
    assert!(created.iter().all(|i| i["status"] == 201), "{bulk}");
    assert_eq!(count(&node, STREAM)?, DOCS as u64);

    let streams = os.get(&format!("/_data_stream/{STREAM}"))?.ok_json()?;
    assert_eq!(
        streams["data_streams"][0]["template"], "podflow-test",
        "{streams}"
    );
    let backing = streams["data_streams"][0]["indices"][0]["index_name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mapping = os.get(&format!("/{STREAM}/_mapping"))?.ok_json()?;
    assert_eq!(
        mapping[&backing]["mappings"]["properties"]["labels"]["type"], "flat_object",
        "{mapping}"
    );
    // A flat_object field answers queries on its inner paths.
    let search = json!({ "query": { "term": { "labels.app.name": "app-7" } } });
    let found = os.post_json(&format!("/{STREAM}/_search"), &search)?.ok_json()?;
    assert_eq!(found["hits"]["total"]["value"], 1, "{found}");

    let again = os
        .post_ndjson(&format!("/{STREAM}/_bulk"), &create_lines(7))?
        .ok_json()?;
    assert_eq!(again["errors"], true, "{again}");
    let conflict = items(&again)?;
    assert_eq!(conflict[0]["status"], 409, "{again}");
    assert_eq!(
        conflict[0]["error"]["type"], "version_conflict_engine_exception",
        "{again}"
    );

    node.kill()?;
    assert!(os.get("/").is_err(), "the node still answers after SIGKILL");
    node.restart()?;

    assert_eq!(
        count(&node, STREAM)?,
        DOCS as u64,
        "documents lost across SIGKILL and restart"
    );
    let streams = os.get(&format!("/_data_stream/{STREAM}"))?.ok_json()?;
    assert_eq!(
        streams["data_streams"][0]["indices"][0]["index_name"],
        backing.as_str(),
        "{streams}"
    );
    let after = os
        .post_ndjson(&format!("/{STREAM}/_bulk"), &create_lines(7))?
        .ok_json()?;
    assert_eq!(
        items(&after)?[0]["status"],
        409,
        "the _id is forgotten after restart: {after}"
    );
    node.stop()?;
    Ok(())
}

/// The error type of a bulk item the write pool rejected: OpenSearch's name for what Elasticsearch calls
/// `es_rejected_execution_exception`.
const REJECTED: &str = "rejected_execution_exception";

/// Threads sending bulk requests at once to the one-thread, one-slot write pool.
const LOADERS: usize = 6;
/// Bulk requests each loader sends at most.
const ROUNDS: usize = 40;
/// Documents in each bulk request.
const BATCH: usize = 300;

#[test]
fn a_one_slot_write_pool_rejects_concurrent_bulks_with_429_items() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let settings = [
        ("thread_pool.write.size", "1"),
        ("thread_pool.write.queue_size", "1"),
    ];
    let node = OpenSearch::start(dir.path(), &settings)?;
    let os = node.client();

    let pools = os.get("/_nodes/thread_pool")?.ok_json()?;
    let write = pools["nodes"]
        .as_object()
        .and_then(|nodes| nodes.values().next())
        .map(|n| &n["thread_pool"]["write"])
        .with_context(|| format!("no node in {pools}"))?;
    assert_eq!(
        (&write["size"], &write["queue_size"]),
        (&json!(1), &json!(1)),
        "{write}"
    );

    let index = json!({ "settings": { "number_of_shards": 2, "number_of_replicas": 0 } });
    os.put_json("/load", &index)?.ok_json()?;

    let lines: Vec<Value> = (0..BATCH)
        .flat_map(|i| {
            [
                json!({ "index": {} }),
                json!({ "n": i, "text": "podflow write load" }),
            ]
        })
        .collect();
    let rejected_items = AtomicUsize::new(0);
    let seen = AtomicBool::new(false);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let loaders: Vec<_> = (0..LOADERS)
            .map(|_| {
                let os = os.clone();
                let (lines, rejected_items, seen) = (&lines, &rejected_items, &seen);
                scope.spawn(move || -> anyhow::Result<()> {
                    for _ in 0..ROUNDS {
                        if seen.load(Ordering::Relaxed) {
                            break;
                        }
                        let reply = os.post_ndjson("/load/_bulk", lines)?;
                        // A whole request may be refused too; the items are what the sink handles.
                        if reply.status == 429 {
                            continue;
                        }
                        let bulk = reply.ok_json()?;
                        let rejected = items(&bulk)?
                            .iter()
                            .filter(|i| i["status"] == 429 && i["error"]["type"] == REJECTED)
                            .count();
                        if rejected > 0 {
                            rejected_items.fetch_add(rejected, Ordering::Relaxed);
                            seen.store(true, Ordering::Relaxed);
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for loader in loaders {
            loader
                .join()
                .map_err(|_| anyhow::anyhow!("a loader thread panicked"))??;
        }
        Ok(())
    })?;
    let rejected = rejected_items.load(Ordering::Relaxed);
    assert!(
        rejected > 0,
        "no 429 item in {} bulk requests of {BATCH} documents",
        LOADERS * ROUNDS
    );
    eprintln!("{rejected} items rejected with 429 {REJECTED}");
    Ok(())
}
