//! The index template: valid JSON, for the right data streams, mapping every field of the table with the
//! table's type and nothing else.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use podflow_collector::sinks::ecs::fields::{FIELDS, Type};
use podflow_collector::sinks::ecs::index_template;
use podflow_collector::sinks::ecs::template::{COMPOSED_OF, INDEX_PATTERN, PRIORITY, data_stream_name};
use serde_json::Value;

fn template() -> Value {
    serde_json::from_str(&index_template()).expect("the template is JSON")
}

/// The mapped leaves as (dotted name, mapping).
fn mapped(properties: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
    for (name, mapping) in properties.as_object().unwrap() {
        let full = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match mapping.get("properties") {
            Some(children) => {
                assert!(mapping.get("type").is_none(), "{full}: properties and a type");
                mapped(children, &full, out);
            }
            None => {
                out.insert(full, mapping.clone());
            }
        }
    }
}

#[test]
fn applies_to_podflow_data_streams_above_the_builtin_logs_template() {
    let t = template();
    assert_eq!(t["index_patterns"], serde_json::json!([INDEX_PATTERN]));
    assert!(t["data_stream"].is_object(), "makes data streams");
    // The built-in logs-*-* template has priority 100, Fleet's integrations up to 200; Elastic asks
    // overlapping templates to go above 500.
    assert!(t["priority"].as_u64().unwrap() > 500);
    assert_eq!(t["priority"], PRIORITY);
    let composed: Vec<&str> = t["composed_of"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(composed, COMPOSED_OF);
    assert!(
        composed.contains(&"ecs@mappings")
            && composed.ends_with(&["logs@custom", "logs-podflow.flows@custom"])
    );
    assert_eq!(t["ignore_missing_component_templates"], t["composed_of"]);
    assert_eq!(t["_meta"]["ecs_version"], "9.4.0");
    let stream = data_stream_name("prod");
    assert_eq!(stream, "logs-podflow.flows-prod");
    assert!(stream.starts_with(INDEX_PATTERN.trim_end_matches('*')));
}

#[test]
fn maps_every_field_of_the_table_with_its_type() {
    let t = template();
    let mut leaves = BTreeMap::new();
    mapped(&t["template"]["mappings"]["properties"], "", &mut leaves);
    assert_eq!(
        leaves.len(),
        FIELDS.len(),
        "mapped: {:?}",
        leaves.keys().collect::<Vec<_>>()
    );
    for f in FIELDS {
        let m = leaves
            .get(f.name)
            .unwrap_or_else(|| panic!("{} is not mapped", f.name));
        assert_eq!(m["type"], f.ty.as_str(), "{}", f.name);
        if f.ty == Type::Keyword {
            assert_eq!(m["ignore_above"], 1024, "{}", f.name);
        }
    }
}

#[test]
fn label_objects_map_their_members_as_keywords() {
    let t = template();
    let dynamic = t["template"]["mappings"]["dynamic_templates"].as_array().unwrap();
    let objects: Vec<_> = FIELDS.iter().filter(|f| f.ty == Type::Object).collect();
    assert_eq!(objects.len(), 2);
    assert_eq!(dynamic.len(), objects.len());
    for f in objects {
        let rule = dynamic
            .iter()
            .filter_map(|d| d.as_object().unwrap().values().next())
            .find(|r| r["path_match"] == format!("{}.*", f.name))
            .unwrap_or_else(|| panic!("no dynamic template for {}", f.name));
        assert_eq!(rule["match_mapping_type"], "string");
        assert_eq!(rule["mapping"]["type"], "keyword");
    }
}
