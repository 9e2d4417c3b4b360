//! The one HTTP server of each binary: axum on a Tokio runtime of its own thread, so neither the probe's
//! capture loop nor the collector's pipeline threads ever wait on a scrape.
//!
//! It serves `/metrics` (the binary's own families, rendered from its state, then everything registered
//! in a `prometheus::Registry`; OpenMetrics when the Accept header prefers it), `/healthz` (the process
//! answers) and `/readyz` (200 once every readiness condition holds, 503 with what is missing before).
//! Other parts of a binary add their routes as routers merged in ([`Server::merge`]); they must not claim
//! the three paths above (axum refuses overlapping routes when the router is built).

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::{Registry, TextEncoder};

use crate::openmetrics;

/// Something that appends Prometheus text families to the exposition.
pub type Families = Arc<dyn Fn(&mut String) + Send + Sync>;

type Check = (&'static str, Box<dyn Fn() -> bool + Send + Sync>);

/// What `/readyz` answers: ready once the binary said so ([`Ready::set`], after its sockets are bound)
/// and every condition it requires holds (such as the Kubernetes index having synced).
#[derive(Clone, Default)]
pub struct Ready(Arc<ReadyState>);

#[derive(Default)]
struct ReadyState {
    set: AtomicBool,
    checks: Mutex<Vec<Check>>,
}

impl Ready {
    /// The binary has bound its sockets and runs.
    pub fn set(&self) {
        self.0.set.store(true, Ordering::Release);
    }

    /// Adds a condition, named `what` in the 503 answer while it does not hold.
    pub fn require(&self, what: &'static str, check: impl Fn() -> bool + Send + Sync + 'static) {
        self.checks().push((what, Box::new(check)));
    }

    /// `Ok` when ready, else what is missing.
    pub fn status(&self) -> Result<(), String> {
        let mut missing = Vec::new();
        if !self.0.set.load(Ordering::Acquire) {
            missing.push("starting");
        }
        missing.extend(self.checks().iter().filter(|(_, c)| !c()).map(|(w, _)| *w));
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing.join(", "))
        }
    }

    fn checks(&self) -> std::sync::MutexGuard<'_, Vec<Check>> {
        // A poisoned list still holds whole entries: each push is one operation.
        self.0.checks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A binary's HTTP server, before it is started: the metrics it renders, the readiness it reports and
/// the routers merged into it.
pub struct Server {
    who: &'static str,
    registry: Registry,
    families: Vec<Families>,
    routers: Vec<Router>,
    ready: Ready,
}

struct Metrics {
    registry: Registry,
    families: Vec<Families>,
}

impl Server {
    /// A server for the binary named `who`, with an empty registry and nothing else.
    pub fn new(who: &'static str) -> Self {
        Server {
            who,
            registry: Registry::new(),
            families: Vec::new(),
            routers: Vec::new(),
            ready: Ready::default(),
        }
    }

    /// Serves everything registered in `registry` (a clone shares the registrations).
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = registry.clone();
        self
    }

    /// Adds families rendered as Prometheus text on each scrape, before the registry's.
    pub fn families(mut self, render: impl Fn(&mut String) + Send + Sync + 'static) -> Self {
        self.families.push(Arc::new(render));
        self
    }

    /// Merges `router`'s routes into the server.
    pub fn merge(mut self, router: Router) -> Self {
        self.routers.push(router);
        self
    }

    /// Merges every router of `routers`.
    pub fn merge_all(mut self, routers: impl IntoIterator<Item = Router>) -> Self {
        self.routers.extend(routers);
        self
    }

    /// The readiness `/readyz` reports: set it once the binary runs, add its conditions.
    pub fn readiness(&self) -> Ready {
        self.ready.clone()
    }

    /// The whole router (what [`Server::spawn`] serves; tests call it in process).
    pub fn router(self) -> Router {
        let metrics = Arc::new(Metrics {
            registry: self.registry,
            families: self.families,
        });
        let ready = self.ready;
        let mut app = Router::new()
            .route("/metrics", get(serve_metrics).with_state(metrics))
            .route("/healthz", get(|| async { "ok\n" }))
            .route(
                "/readyz",
                get(move || {
                    let status = ready.status();
                    async move {
                        match status {
                            Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
                            Err(m) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {m}\n")),
                        }
                    }
                }),
            );
        for r in self.routers {
            app = app.merge(r);
        }
        app
    }

    /// Binds `addr` (port 0 picks one) and serves from a background thread until the process ends;
    /// returns the bound address. Binding happens here, so a taken address is this call's error.
    pub fn spawn(self, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let bound = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let who = self.who;
        let app = self.router();
        std::thread::Builder::new().name("http".into()).spawn(move || {
            runtime.block_on(async move {
                let served = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => axum::serve(l, app).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = served {
                    tracing::error!("{who}: HTTP server on {bound} stopped: {e}");
                }
            });
        })?;
        Ok(bound)
    }
}

async fn serve_metrics(State(m): State<Arc<Metrics>>, headers: HeaderMap) -> Response {
    let mut text = String::with_capacity(16 * 1024);
    for f in &m.families {
        f(&mut text);
    }
    if let Err(e) = TextEncoder::new().encode_utf8(&m.registry.gather(), &mut text) {
        return (StatusCode::INTERNAL_SERVER_ERROR, format!("metrics: {e}\n")).into_response();
    }
    let open = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(openmetrics::wanted);
    if open {
        (
            [(header::CONTENT_TYPE, openmetrics::CONTENT_TYPE)],
            openmetrics::from_text(&text),
        )
            .into_response()
    } else {
        ([(header::CONTENT_TYPE, openmetrics::TEXT_CONTENT_TYPE)], text).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::IntCounter;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    fn fetch(addr: SocketAddr, path: &str, accept: &str) -> String {
        let mut c = TcpStream::connect(addr).unwrap();
        write!(
            c,
            "GET {path} HTTP/1.1\r\nHost: x\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).unwrap();
        s
    }

    #[test]
    fn serves_both_metric_sources_readiness_and_merged_routes() {
        let registry = Registry::new();
        let c = IntCounter::new("podflow_test_registered_total", "Registered.").unwrap();
        registry.register(Box::new(c.clone())).unwrap();
        c.inc_by(7);
        let server = Server::new("podflow-test")
            .registry(&registry)
            .families(|o| {
                crate::family(
                    o,
                    "podflow_test_total",
                    "counter",
                    "A test.",
                    &[(crate::label("k", "a\"b"), 3)],
                )
            })
            .merge(Router::new().route("/extra", get_route()));
        let ready = server.readiness();
        let synced = Arc::new(AtomicBool::new(false));
        let s2 = synced.clone();
        ready.require("index not synced", move || s2.load(Ordering::Relaxed));
        let addr = server.spawn("127.0.0.1:0".parse().unwrap()).unwrap();

        let m = fetch(addr, "/metrics", "*/*");
        assert!(m.starts_with("HTTP/1.1 200 OK"), "{m}");
        assert!(m.contains("text/plain; version=0.0.4"), "{m}");
        assert!(
            m.contains("# TYPE podflow_test_total counter\npodflow_test_total{k=\"a\\\"b\"} 3\n"),
            "{m}"
        );
        assert!(m.contains("\npodflow_test_registered_total 7\n"), "{m}");
        let om = fetch(addr, "/metrics", "application/openmetrics-text;version=1.0.0");
        assert!(om.contains("application/openmetrics-text"), "{om}");
        assert!(om.contains("# TYPE podflow_test_registered counter\n"), "{om}");
        assert!(om.ends_with("# EOF\n"), "{om}");

        assert!(fetch(addr, "/healthz", "*/*").ends_with("\r\n\r\nok\n"));
        let r = fetch(addr, "/readyz", "*/*");
        assert!(r.starts_with("HTTP/1.1 503"), "{r}");
        assert!(r.ends_with("not ready: starting, index not synced\n"), "{r}");
        ready.set();
        assert!(fetch(addr, "/readyz", "*/*").ends_with("not ready: index not synced\n"));
        synced.store(true, Ordering::Relaxed);
        assert!(fetch(addr, "/readyz", "*/*").starts_with("HTTP/1.1 200"));
        assert!(fetch(addr, "/extra", "*/*").ends_with("extra\n"));
        assert!(fetch(addr, "/nope", "*/*").starts_with("HTTP/1.1 404"));
    }

    fn get_route() -> axum::routing::MethodRouter {
        axum::routing::get(|| async { "extra\n" })
    }
}
