//! The nodes and the HTTP transport: the `elasticsearch` crate's [`Transport`] (reqwest with rustls),
//! one per node, so the sink knows which node failed.
//!
//! The crate's own multi-node pool cycles through its nodes without ever leaving one out, and its
//! sniffing pool unwraps the server's answers; the sink keeps one single-node transport per URL
//! instead and does the round robin itself: a node that fails (no connection, a timeout) is marked down
//! and skipped for a while that doubles with each failure (1 s up to 30 s), then tried again.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::headers::{CONTENT_TYPE, HeaderMap, HeaderValue};
use elasticsearch::http::transport::{SingleNodeConnectionPool, Transport, TransportBuilder};
use elasticsearch::http::{Method, Url};

use super::config::{Auth, Config};
use super::metrics::SinkMetrics;

/// The first pause of a failed node; it doubles with each failure in a row.
const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// The longest pause.
const LONGEST_PAUSE: Duration = Duration::from_secs(30);

/// An answer: status and body.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Bytes,
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// Connection refused or reset, timeout, TLS failure, ...
    #[error("{0}")]
    Transport(#[from] elasticsearch::Error),
}

/// Why the transports could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The CA file is not PEM.
    #[error("--elasticsearch-ca-file: {0}")]
    Ca(elasticsearch::Error),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(#[from] elasticsearch::http::transport::BuildError),
}

#[derive(Debug, Default)]
struct Health {
    down_until: Option<Instant>,
    failures: u32,
}

/// One node.
#[derive(Debug)]
pub struct Node {
    /// Its URL.
    pub url: Url,
    /// Its URL as the `node` label says it (no credentials, no trailing slash).
    pub label: String,
    transport: Transport,
    health: Mutex<Health>,
}

impl Node {
    /// Sends a request; `ndjson` for `_bulk` bodies.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<Bytes>,
        ndjson: bool,
        timeout: Duration,
    ) -> Result<Reply, SendError> {
        let mut headers = HeaderMap::new();
        if ndjson {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
        }
        let query = (!query.is_empty()).then_some(query);
        let r = self
            .transport
            .send(method, path, headers, query, body, Some(timeout))
            .await?;
        let status = r.status_code().as_u16();
        let body = r.bytes().await?;
        Ok(Reply { status, body })
    }
}

/// The nodes, round robin.
#[derive(Debug)]
pub struct Nodes {
    nodes: Vec<Node>,
    next: AtomicUsize,
    metrics: SinkMetrics,
}

impl Nodes {
    /// A transport per node of `cfg`.
    pub fn new(cfg: &Config, metrics: SinkMetrics) -> Result<Nodes, BuildError> {
        let mut nodes = Vec::new();
        for url in &cfg.nodes {
            let mut b = TransportBuilder::new(SingleNodeConnectionPool::new(url.clone()))
                .disable_proxy()
                .enable_meta_header(false)
                .request_body_compression(cfg.gzip)
                .timeout(cfg.request_timeout);
            b = match &cfg.auth {
                Auth::None => b,
                Auth::EncodedApiKey(k) => b.auth(Credentials::EncodedApiKey(k.clone())),
                Auth::ApiKey(id, k) => b.auth(Credentials::ApiKey(id.clone(), k.clone())),
                Auth::Basic(u, p) => b.auth(Credentials::Basic(u.clone(), p.clone())),
            };
            if let Some(pem) = &cfg.ca_pem {
                let ca = Certificate::from_pem(pem).map_err(BuildError::Ca)?;
                b = b.cert_validation(CertificateValidation::Full(ca));
            }
            let mut shown = url.clone();
            let _ = shown.set_username("");
            let _ = shown.set_password(None);
            let label = shown.as_str().trim_end_matches('/').to_owned();
            metrics.node_up.with_label_values(&[&label]).set(0);
            nodes.push(Node {
                url: url.clone(),
                label,
                transport: b.build()?,
                health: Mutex::new(Health::default()),
            });
        }
        Ok(Nodes {
            nodes,
            next: AtomicUsize::new(0),
            metrics,
        })
    }

    /// Every node.
    pub fn all(&self) -> &[Node] {
        &self.nodes
    }

    /// The next node to send to: round robin over the nodes that are up or whose pause is over.
    pub fn pick(&self) -> Option<&Node> {
        let now = Instant::now();
        let n = self.nodes.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &self.nodes[(start + i) % n])
            .find(|node| self.usable(node, now))
    }

    fn usable(&self, node: &Node, now: Instant) -> bool {
        let h = node.health.lock().unwrap_or_else(|e| e.into_inner());
        h.down_until.is_none_or(|t| now >= t)
    }

    /// True when some node is up or due to be tried again.
    pub fn any_usable(&self) -> bool {
        let now = Instant::now();
        self.nodes.iter().any(|n| self.usable(n, now))
    }

    /// Records that `node` answered.
    pub fn up(&self, node: &Node) {
        let mut h = node.health.lock().unwrap_or_else(|e| e.into_inner());
        *h = Health::default();
        self.metrics.node_up.with_label_values(&[&node.label]).set(1);
    }

    /// Records that `node` failed; returns true when it was up before (worth a log line).
    pub fn down(&self, node: &Node) -> bool {
        let mut h = node.health.lock().unwrap_or_else(|e| e.into_inner());
        let was_up = h.failures == 0;
        let pause = FIRST_PAUSE
            .saturating_mul(1 << h.failures.min(5))
            .min(LONGEST_PAUSE);
        h.failures = h.failures.saturating_add(1);
        h.down_until = Some(Instant::now() + pause);
        self.metrics.node_up.with_label_values(&[&node.label]).set(0);
        was_up
    }
}
