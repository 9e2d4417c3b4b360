use super::*;
use crate::sinks::edges::{EdgeCounts, EdgeKey};
use crate::sinks::graph::store::GraphStore;

fn ep(ns: &str, kind: &str, w: &str) -> Endpoint {
    Endpoint {
        namespace: ns.into(),
        workload: w.into(),
        kind: kind.into(),
    }
}

/// web -> api (through Service api), api -> db, api -> the outside, over 5 minutes.
fn store() -> GraphStore {
    let web = ep("shop", "Deployment", "web");
    let api = ep("shop", "Deployment", "api");
    let db = ep("data", "StatefulSet", "db");
    let ext = ep("external", "external", "external");
    let k = |c: &Endpoint, s: &Endpoint, svc: &str, p: &str| EdgeKey {
        client: c.clone(),
        server: s.clone(),
        dst_service: svc.into(),
        protocol: p.into(),
    };
    let c = |conn, rq, rs| EdgeCounts {
        connections: conn,
        request_bytes: rq,
        response_bytes: rs,
        request_packets: conn * 2,
        response_packets: conn * 3,
    };
    let mut s = GraphStore::new(100);
    s.add(
        1_700_000_000_000,
        [
            (&k(&web, &api, "api", "tcp"), &c(30, 30_000, 120_000)),
            (&k(&api, &db, "db", "tcp"), &c(60, 6_000, 54_000)),
            (&k(&api, &ext, "", "tcp"), &c(3, 3_000, 297_000)),
            (&k(&api, &ext, "", "udp"), &c(0, 0, 0)),
        ],
    );
    s
}

fn golden(name: &str, got: &Value) {
    let path = format!("{}/src/sinks/graph/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = serde_json::to_string_pretty(got).unwrap() + "\n";
    if std::env::var_os("PODFLOW_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(text, want, "{path} differs (PODFLOW_BLESS=1 rewrites it)");
}

#[test]
fn fields_match_their_golden_file_and_declare_every_data_key() {
    let f = fields();
    golden("fields.json", &f);
    let names = |list: &str| -> Vec<String> {
        f[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["field_name"].as_str().unwrap().to_string())
            .collect()
    };
    let d = data(
        &store().query(1_700_000_000_000, Window::M5, |_| true),
        Window::M5,
        |_| Vec::new(),
    );
    for (list, rows) in [("nodes_fields", "nodes"), ("edges_fields", "edges")] {
        let declared = names(list);
        for row in d[rows].as_array().unwrap() {
            let keys: Vec<&String> = row.as_object().unwrap().keys().collect();
            assert_eq!(keys.len(), declared.len(), "{row}");
            assert!(keys.iter().all(|k| declared.contains(k)), "{row}");
        }
    }
    // Grafana takes the frame with a lower-case `source` field for the edges.
    assert!(names("edges_fields").contains(&"source".to_string()));
}

#[test]
fn data_matches_its_golden_file() {
    let s = store();
    let d = data(
        &s.query(1_700_000_000_000, Window::M5, |_| true),
        Window::M5,
        |e| {
            if &*e.workload == "db" {
                vec!["node-b".into(), "node-c".into()]
            } else {
                Vec::new()
            }
        },
    );
    golden("data-5m.json", &d);
    // Shares add up to one.
    for n in d["nodes"].as_array().unwrap() {
        let sum = n["arc__sent"].as_f64().unwrap() + n["arc__received"].as_f64().unwrap();
        assert!((sum - 1.0).abs() < 1e-12, "{n}");
    }
    let api = &d["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["title"] == "api")
        .unwrap();
    // api: 510,000 octets in 300 s; 93 connections.
    assert_eq!(
        (api["mainStat"].as_f64(), api["secondaryStat"].as_f64()),
        (Some(1700.0), Some(0.31))
    );
}

#[test]
fn the_namespace_filter_keeps_edges_with_an_end_in_it() {
    let s = store();
    let in_data = |p: &crate::sinks::graph::store::Pair| {
        &*p.client.namespace == "data" || &*p.server.namespace == "data"
    };
    let d = data(
        &s.query(1_700_000_000_000, Window::M1, in_data),
        Window::M1,
        |_| Vec::new(),
    );
    golden("data-namespace-data-1m.json", &d);
    assert_eq!(d["edges"].as_array().unwrap().len(), 1);
    assert_eq!(d["nodes"].as_array().unwrap().len(), 2);
}
