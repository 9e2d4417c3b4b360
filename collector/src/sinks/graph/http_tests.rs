use axum::body::{Body, to_bytes};
use axum::http::Request;
use tower::ServiceExt as _;

use super::*;
use crate::sinks::edges::{EdgeConsumer, EdgeCounts, EdgeKey, Endpoint};

/// The tests' clock: a fixed time, a minute after the edges below arrived.
const NOW: u64 = 1_700_000_060_000;

fn clock() -> u64 {
    NOW
}

fn ep(ns: &str, kind: &str, w: &str) -> Endpoint {
    Endpoint {
        namespace: ns.into(),
        workload: w.into(),
        kind: kind.into(),
    }
}

/// web -> api in shop, api -> db in data, fed as the enrich thread feeds it: through the consumer.
fn graph() -> SharedGraph {
    let g = SharedGraph::new(100);
    let mut consumer: Box<dyn EdgeConsumer> = Box::new(g.clone());
    let key = |c: Endpoint, s: Endpoint| EdgeKey {
        client: c,
        server: s,
        dst_service: "".into(),
        protocol: "tcp".into(),
    };
    let counts = |bytes| EdgeCounts {
        connections: 6,
        request_bytes: bytes,
        response_bytes: bytes,
        request_packets: 1,
        response_packets: 1,
    };
    let web = ep("shop", "Deployment", "web");
    let api = ep("shop", "Deployment", "api");
    let db = ep("data", "StatefulSet", "db");
    consumer.consume(
        NOW - 60_000,
        &[
            (key(web, api.clone()), counts(3_000)),
            (key(api, db), counts(600)),
        ],
    );
    g
}

async fn get(path: &str) -> (u16, String, String) {
    let r = router_with_clock(graph(), clock)
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = to_bytes(r.into_body(), 1 << 24).await.unwrap();
    (status, ct, String::from_utf8_lossy(&body).into_owned())
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap()
}

#[tokio::test]
async fn health_fields_and_data_answer_as_the_contract_says() {
    let (status, _, body) = get("/api/health").await;
    assert_eq!((status, body.as_str()), (200, "OK\n"));

    let (status, ct, body) = get("/api/graph/fields").await;
    assert_eq!((status, ct.as_str()), (200, "application/json"));
    assert_eq!(json(&body), api::fields());
    // Grafana appends the panel's query string to the fields call too.
    assert_eq!(get("/api/graph/fields?window=1h").await.0, 200);

    let (status, _, body) = get("/api/graph/data?window=5m").await;
    assert_eq!(status, 200);
    let d = json(&body);
    let titles: Vec<&str> = d["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["db", "api", "web"]);
    let e = &d["edges"][1];
    assert_eq!(e["id"], "shop/Deployment/web->shop/Deployment/api");
    // 6,000 octets and 6 connections over 300 s.
    assert_eq!(
        (e["mainStat"].as_f64(), e["secondaryStat"].as_f64()),
        (Some(20.0), Some(0.02))
    );
    // One minute after: still in the 5-minute window, no longer in the last minute's.
    let (_, _, body) = get("/api/graph/data?window=1m").await;
    assert_eq!(json(&body), json(r#"{"nodes":[],"edges":[]}"#));
}

#[tokio::test]
async fn the_namespace_filter_keeps_the_edges_with_an_end_in_it() {
    let (_, _, body) = get("/api/graph/data?namespace=data&window=15m").await;
    let d = json(&body);
    assert_eq!(d["edges"].as_array().unwrap().len(), 1);
    assert_eq!(d["edges"][0]["id"], "shop/Deployment/api->data/StatefulSet/db");
    assert_eq!(d["nodes"].as_array().unwrap().len(), 2);
    let (_, _, body) = get("/api/graph/data?namespace=nowhere").await;
    assert_eq!(json(&body)["nodes"], json("[]"));
    let (_, _, body) = get("/api/graph/namespaces?window=1h").await;
    assert_eq!(json(&body), json(r#"{"namespaces":["data","shop"]}"#));
}

#[tokio::test]
async fn bad_queries_get_a_400_that_says_why() {
    for (path, why) in [
        (
            "/api/graph/data?window=2m",
            "window \"2m\" is not one of 1m, 5m, 15m, 1h",
        ),
        (
            "/api/graph/data?query=x",
            "unknown parameter \"query\" (known: namespace, window)",
        ),
        (
            "/api/graph/fields?window=1m&window=1m",
            "parameter \"window\" given more than once",
        ),
        (
            "/api/graph/namespaces?namespace=%zz",
            "bad percent-encoding or UTF-8 in \"namespace=%zz\"",
        ),
    ] {
        let (status, ct, body) = get(path).await;
        assert_eq!((status, ct.as_str()), (400, "application/json"), "{path}");
        assert_eq!(json(&body)["error"], why, "{path}");
    }
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_from_the_binary() {
    let (status, ct, body) = get("/").await;
    assert_eq!((status, ct.as_str()), (200, "text/html; charset=utf-8"));
    assert!(body.contains("<title>podflow service map</title>"));
    for a in web::ASSETS {
        let (status, ct, body) = get(&format!("/assets/{}", a.name)).await;
        assert_eq!((status, ct.as_str()), (200, a.content_type), "{}", a.name);
        assert_eq!(body.len(), a.body.len(), "{}", a.name);
    }
    assert!(
        get("/assets/LICENSE.txt")
            .await
            .2
            .contains("The Cytoscape Consortium")
    );
    assert_eq!(get("/assets/nothing.js").await.0, 404);
    assert_eq!(get("/assets/..%2Fmod.rs").await.0, 404);
}
