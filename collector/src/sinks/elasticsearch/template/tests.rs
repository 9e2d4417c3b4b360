//! The templates against recorded `GET /` answers of Elasticsearch 8.x and 9.x and OpenSearch 2.19.

use super::*;
use crate::sinks::ecs::fields::{FIELDS, Type};

const ES8: &str = include_str!("../testdata/root-elasticsearch-8.17.json");
const ES9: &str = include_str!("../testdata/root-elasticsearch-9.1.json");
const OS2: &str = include_str!("../testdata/root-opensearch-2.19.json");

fn server(root: &str) -> Server {
    match Server::from_root(root.as_bytes()) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The mapping of the dotted field `name` in `properties`.
fn leaf<'a>(properties: &'a Value, name: &str) -> &'a Value {
    let mut at = properties;
    let mut parts = name.split('.').peekable();
    while let Some(p) = parts.next() {
        at = &at[p];
        if parts.peek().is_some() {
            at = &at["properties"];
        }
    }
    at
}

#[test]
fn elasticsearch_8_and_9_map_labels_flattened_and_opensearch_flat_object() {
    for (root, flavor, version, labels) in [
        (ES8, Flavor::Elasticsearch, "8.17.0", "flattened"),
        (ES9, Flavor::Elasticsearch, "9.1.0", "flattened"),
        (OS2, Flavor::OpenSearch, "2.19.6", "flat_object"),
    ] {
        let s = server(root);
        assert_eq!((s.flavor, s.version.as_str()), (flavor, version));
        let c = json(&component_template(&s));
        assert_eq!(c["version"], VERSION);
        assert_eq!(c["_meta"]["version"], VERSION);
        let props = &c["template"]["mappings"]["properties"];
        let mut objects = 0;
        for f in FIELDS {
            let m = leaf(props, f.name);
            match f.ty {
                Type::Object => {
                    objects += 1;
                    assert_eq!(m["type"], labels, "{} on {version}", f.name);
                }
                // OpenSearch's constant_keyword needs its value in the mapping.
                Type::ConstantKeyword if flavor == Flavor::OpenSearch => assert_eq!(m["type"], "keyword"),
                ty => assert_eq!(m["type"], ty.as_str(), "{} on {version}", f.name),
            }
        }
        assert!(objects >= 2, "source and destination labels");
    }
}

#[test]
fn the_index_template_makes_data_streams_above_the_builtin_logs_template() {
    let es = json(&index_template(&server(ES9), Some("podflow-30d")));
    assert_eq!(es["index_patterns"], serde_json::json!(["logs-podflow.flows-*"]));
    assert!(es["data_stream"].is_object());
    assert!(es["priority"].as_u64().unwrap_or(0) > 100);
    assert_eq!(
        (&es["version"], &es["_meta"]["version"]),
        (&Value::from(VERSION), &Value::from(VERSION))
    );
    let composed: Vec<&str> = es["composed_of"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(composed, ES_COMPOSED_OF);
    let optional = es["ignore_missing_component_templates"].as_array().map(Vec::len);
    assert_eq!(optional, Some(5), "every component but podflow's may be missing");
    assert_eq!(es["template"]["settings"]["index.lifecycle.name"], "podflow-30d");
    assert!(
        json(&index_template(&server(ES8), None))
            .get("template")
            .is_none()
    );

    let os = json(&index_template(&server(OS2), Some("ignored")));
    assert_eq!(os["composed_of"], serde_json::json!([COMPONENT_NAME]));
    assert!(
        os.get("ignore_missing_component_templates").is_none(),
        "OpenSearch refuses the field"
    );
    assert!(os.get("template").is_none());
}

#[test]
fn a_newer_template_on_the_server_is_kept_and_an_older_one_replaced() {
    let component =
        |v: &str| format!(r#"{{"component_templates":[{{"name":"x","component_template":{v}}}]}}"#);
    let index = |v: &str| format!(r#"{{"index_templates":[{{"name":"x","index_template":{v}}}]}}"#);
    let cases = [
        (None, Decision::Put(None)),
        (
            Some(component(&format!(r#"{{"version":{}}}"#, VERSION + 1))),
            Decision::Newer(VERSION + 1),
        ),
        (
            Some(index(&format!(r#"{{"_meta":{{"version":{}}}}}"#, VERSION + 5))),
            Decision::Newer(VERSION + 5),
        ),
        (
            Some(index(&format!(r#"{{"version":{VERSION}}}"#))),
            Decision::Keep,
        ),
        (Some(component(r#"{"version":0}"#)), Decision::Put(Some(0))),
        (Some(component("{}")), Decision::Put(None)),
        (
            Some(r#"{"component_templates":[]}"#.to_owned()),
            Decision::Put(None),
        ),
    ];
    for (answer, want) in cases {
        let got = decide(answer.as_deref().map(str::as_bytes)).ok();
        assert_eq!(got, Some(want), "{answer:?}");
    }
    assert!(decide(Some(b"{\"x\":1}")).is_err());
    assert!(decide(Some(b"<html>")).is_err());
    assert!(Server::from_root(b"{\"version\":{}}").is_err());
}

#[test]
fn a_root_answer_s_version_is_kept_short_and_printable() {
    let long = format!(r#"{{"version":{{"number":"8.17.0\n{}"}}}}"#, "x".repeat(10_000));
    let s = server(&long);
    assert_eq!(s.version.len(), 32);
    assert!(s.version.starts_with("8.17.0x"), "{}", s.version);
}
