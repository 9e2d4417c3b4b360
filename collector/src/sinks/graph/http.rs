//! The graph's HTTP face, an [`axum::Router`] the collector's server merges into its own:
//!
//! * `GET /api/health`: 200 (Grafana's "Save & test").
//! * `GET /api/graph/fields`: the frames' field lists ([`api::fields`]).
//! * `GET /api/graph/data?namespace=NS&window=5m`: a window's nodes and edges ([`api::data`]).
//! * `GET /api/graph/namespaces?window=5m`: the namespaces with traffic in the window, for the page's
//!   filter.
//! * `GET /` and `GET /assets/...`: the service-map page and its scripts ([`web`]), compiled into the
//!   binary.
//!
//! The query string is outside input: [`query::parse`] refuses anything it does not know with a 400
//! that says why. The store is locked once per request, for as long as it takes to copy the window's
//! totals out; the JSON is made after the lock is let go.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::store::SharedGraph;
use super::{api, query, web};
use crate::pipeline::now_ms;

/// What the handlers share: the store, and the clock (Unix milliseconds; the wall clock in the
/// collector, a fixed time in tests).
#[derive(Clone)]
struct Graph {
    store: SharedGraph,
    clock: fn() -> u64,
}

/// The graph's routes over `store`, on the wall clock.
pub fn router(store: SharedGraph) -> Router {
    router_with_clock(store, now_ms)
}

/// The graph's routes over `store`, reading the time from `clock` (Unix milliseconds).
pub fn router_with_clock(store: SharedGraph, clock: fn() -> u64) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/assets/{name}", get(asset))
        .route("/api/health", get(health))
        .route("/api/graph/fields", get(fields))
        .route("/api/graph/data", get(data))
        .route("/api/graph/namespaces", get(namespaces))
        .with_state(Graph { store, clock })
}

async fn health() -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "OK\n").into_response()
}

async fn fields(RawQuery(raw): RawQuery) -> Response {
    // Grafana appends the panel's query string to both calls: refuse here what `data` would refuse.
    match query::parse(raw.as_deref()) {
        Ok(_) => json_response(StatusCode::OK, &api::fields()),
        Err(e) => bad_request(&e),
    }
}

async fn data(State(g): State<Graph>, RawQuery(raw): RawQuery) -> Response {
    let q = match query::parse(raw.as_deref()) {
        Ok(q) => q,
        Err(e) => return bad_request(&e),
    };
    let now = (g.clock)();
    let ns = q.namespace.as_deref();
    let edges = g.store.lock().query(now, q.window, |p| {
        ns.is_none_or(|ns| &*p.client.namespace == ns || &*p.server.namespace == ns)
    });
    json_response(StatusCode::OK, &api::data(&edges, q.window, |_| Vec::new()))
}

async fn namespaces(State(g): State<Graph>, RawQuery(raw): RawQuery) -> Response {
    let q = match query::parse(raw.as_deref()) {
        Ok(q) => q,
        Err(e) => return bad_request(&e),
    };
    let edges = g.store.lock().query((g.clock)(), q.window, |_| true);
    let mut names: Vec<&str> = edges
        .iter()
        .flat_map(|e| [&*e.pair.client.namespace, &*e.pair.server.namespace])
        .collect();
    names.sort_unstable();
    names.dedup();
    json_response(StatusCode::OK, &json!({ "namespaces": names }))
}

async fn page() -> Response {
    asset_response(web::INDEX)
}

async fn asset(Path(name): Path<String>) -> Response {
    match web::asset(&name) {
        Some(a) => asset_response(a),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}

fn asset_response(a: &'static web::Asset) -> Response {
    let mut r = (StatusCode::OK, a.body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(a.content_type));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The page loads nothing from elsewhere; the graph library sets element styles from script.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'self'",
        ),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    let mut r = (status, v.to_string()).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn bad_request(e: &query::QueryError) -> Response {
    json_response(StatusCode::BAD_REQUEST, &json!({ "error": e.to_string() }))
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
