//! The field table against the Elastic Common Schema: every standard field exists in ECS with the
//! table's type and shape, no custom field collides with ECS, and the categorization values the encoder
//! writes are ones ECS allows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::path::PathBuf;

use podflow_collector::sinks::ecs::fields::{ECS_VERSION, FIELDS, Origin, Shape};
use serde_yaml::Value;

/// `ecs_flat.yml` of the ECS release the documents claim (copied into the repo, see its SOURCES.md).
fn ecs() -> HashMap<String, Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/ecs")
        .join(format!("v{ECS_VERSION}"))
        .join("ecs_flat.yml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap()
}

fn normalize(def: &Value) -> Vec<&str> {
    def["normalize"]
        .as_sequence()
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn standard_fields_exist_in_ecs_with_the_same_type_and_shape() {
    let ecs = ecs();
    assert!(
        ecs.len() > 1000,
        "ecs_flat.yml looks truncated: {} fields",
        ecs.len()
    );
    let mut checked = 0;
    for f in FIELDS.iter().filter(|f| f.origin == Origin::Std) {
        let def = ecs
            .get(f.name)
            .unwrap_or_else(|| panic!("{} is not an ECS {ECS_VERSION} field", f.name));
        assert_eq!(def["type"].as_str(), Some(f.ty.as_str()), "{}: ECS type", f.name);
        let array = normalize(def).contains(&"array");
        assert_eq!(
            array,
            f.shape == Shape::Many,
            "{}: ECS says array = {array}",
            f.name
        );
        checked += 1;
    }
    assert!(checked >= 50, "only {checked} standard fields");
}

#[test]
fn custom_fields_stay_out_of_ecs() {
    let ecs = ecs();
    let custom: Vec<_> = FIELDS.iter().filter(|f| f.origin == Origin::Custom).collect();
    assert!(!custom.is_empty());
    for f in custom {
        assert!(
            ["podflow.", "source.kubernetes.", "destination.kubernetes."]
                .iter()
                .any(|p| f.name.starts_with(p)),
            "{}: custom fields live under podflow.* or <endpoint>.kubernetes.*",
            f.name
        );
        // Neither the field nor any of its parent objects may be an ECS field.
        let mut name = f.name;
        loop {
            assert!(
                !ecs.contains_key(name),
                "{} is custom but ECS defines {name}",
                f.name
            );
            match name.rfind('.') {
                Some(i) => name = &name[..i],
                None => break,
            }
        }
        assert!(
            !ecs.keys().any(|k| k.starts_with(&format!("{}.", f.name))),
            "{}: ECS defines fields below it",
            f.name
        );
    }
    // The namespaces themselves are podflow's.
    for prefix in ["podflow.", "source.kubernetes.", "destination.kubernetes."] {
        assert!(
            !ecs.keys().any(|k| k.starts_with(prefix)),
            "ECS now defines {prefix}*"
        );
    }
}

#[test]
fn categorization_values_are_allowed_by_ecs() {
    let ecs = ecs();
    let allowed = |field: &str| -> Vec<String> {
        ecs[field]["allowed_values"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let network_types: Vec<String> = ecs["event.category"]["allowed_values"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"].as_str() == Some("network"))
        .unwrap()["expected_event_types"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    for flow in [
        common::tcp_biflow_nat(),
        common::udp_uniflow_external(),
        common::icmp6_external(),
    ] {
        let doc = common::encode_value(&flow, &common::ctx());
        let event = &doc["event"];
        assert!(allowed("event.kind").contains(&event["kind"].as_str().unwrap().to_owned()));
        for c in event["category"].as_array().unwrap() {
            assert!(
                allowed("event.category").contains(&c.as_str().unwrap().to_owned()),
                "{c}"
            );
        }
        for t in event["type"].as_array().unwrap() {
            let t = t.as_str().unwrap().to_owned();
            assert!(allowed("event.type").contains(&t), "{t}");
            assert!(
                network_types.contains(&t),
                "{t} is not expected with category network"
            );
        }
        // network.direction's values are listed in its description, not as allowed_values.
        let direction = doc["network"]["direction"].as_str().unwrap();
        assert!(
            ecs["network.direction"]["description"]
                .as_str()
                .unwrap()
                .contains(&format!("\"{direction}\""))
        );
    }
}
