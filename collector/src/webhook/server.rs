//! The webhook's HTTPS server: the only I/O of sidecar injection.
//!
//! `POST /mutate` takes an AdmissionReview and answers it ([`super::review`]); a body that is not one
//! gets a 400 with the reason in plain text (the API server logs it; with `failurePolicy: Ignore` the
//! pod is created without the probe). `GET /healthz` answers `ok`; `GET /metrics` counts reviews by
//! decision and refusals by reason. The certificate files are checked every [`RELOAD_EVERY`] and read
//! again when they changed, so a renewed certificate is served without a restart.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum_server::tls_rustls::RustlsConfig;
use prometheus::{Encoder as _, IntCounterVec, Opts, Registry, TextEncoder};

use super::review::{MAX_REVIEW_OCTETS, SidecarSpec, review};

/// How often the certificate files are checked for a renewal.
pub const RELOAD_EVERY: Duration = Duration::from_secs(30);

/// What the server needs.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// Address to listen on (HTTPS).
    pub listen: SocketAddr,
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// The container to inject.
    pub sidecar: SidecarSpec,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The certificate or key could not be read or is not usable.
    #[error("TLS certificate {cert} / key {key}: {source}")]
    Tls {
        /// Certificate path.
        cert: String,
        /// Key path.
        key: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The address could not be bound, or the server failed.
    #[error("serving on {addr}: {source}")]
    Io {
        /// The listen address.
        addr: SocketAddr,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

struct Shared {
    sidecar: SidecarSpec,
    reviews: IntCounterVec,
    refused: IntCounterVec,
    registry: Registry,
}

/// The router, without TLS (tests and the server share it).
pub fn router(sidecar: SidecarSpec) -> Result<Router, prometheus::Error> {
    let registry = Registry::new();
    let reviews = IntCounterVec::new(
        Opts::new(
            "podflow_webhook_reviews_total",
            "AdmissionReviews answered, by decision (injected, opted_out, already_injected, host_network, not_a_pod).",
        ),
        &["decision"],
    )?;
    let refused = IntCounterVec::new(
        Opts::new(
            "podflow_webhook_refused_total",
            "Requests that were not an AdmissionReview this webhook answers (HTTP 400), by reason.",
        ),
        &["reason"],
    )?;
    registry.register(Box::new(reviews.clone()))?;
    registry.register(Box::new(refused.clone()))?;
    let shared = Arc::new(Shared {
        sidecar,
        reviews,
        refused,
        registry,
    });
    Ok(Router::new()
        .route("/mutate", post(mutate))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        // Larger bodies are refused by axum with 413 before they are read whole.
        .layer(DefaultBodyLimit::max(MAX_REVIEW_OCTETS))
        .with_state(shared))
}

async fn mutate(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    match review(&body, &s.sidecar) {
        Ok(a) => {
            s.reviews.with_label_values(&[a.decision.label()]).inc();
            // Pod creations are rare events, worth a line each.
            tracing::info!("webhook: {}: {}", a.pod, a.decision.label());
            ([(header::CONTENT_TYPE, "application/json")], a.body).into_response()
        }
        Err(e) => {
            let reason = match e {
                super::ReviewError::TooLarge(_) => "too_large",
                super::ReviewError::NotJson(_) => "not_json",
                _ => "not_review",
            };
            s.refused.with_label_values(&[reason]).inc();
            (StatusCode::BAD_REQUEST, format!("podflow webhook: {e}\n")).into_response()
        }
    }
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    let mut out = Vec::new();
    let enc = TextEncoder::new();
    match enc.encode(&s.registry.gather(), &mut out) {
        Ok(()) => ([(header::CONTENT_TYPE, enc.format_type().to_owned())], out).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Serves the webhook until the process ends.
pub async fn serve(cfg: WebhookConfig) -> Result<(), ServeError> {
    // One crypto provider for the process, whichever others the dependencies enable: ring, which the
    // Kubernetes client uses too (aws-lc-rs, with post-quantum key exchange, needs cmake and a C build;
    // an admission webhook's peer is the API server on the cluster network).
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tls_err = |source| ServeError::Tls {
        cert: cfg.cert.display().to_string(),
        key: cfg.key.display().to_string(),
        source,
    };
    let tls = RustlsConfig::from_pem_file(&cfg.cert, &cfg.key)
        .await
        .map_err(tls_err)?;
    let app = router(cfg.sidecar.clone())?;
    tracing::info!(
        "webhook: serving https://{}/mutate (image {}, collector {})",
        cfg.listen,
        cfg.sidecar.image,
        cfg.sidecar.collector
    );
    tokio::spawn(reload(tls.clone(), cfg.cert.clone(), cfg.key.clone()));
    axum_server::bind_rustls(cfg.listen, tls)
        .serve(app.into_make_service())
        .await
        .map_err(|source| ServeError::Io {
            addr: cfg.listen,
            source,
        })
}

/// Reads the certificate again whenever either file's modification time changes.
async fn reload(tls: RustlsConfig, cert: PathBuf, key: PathBuf) {
    let stamp = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut seen: (Option<SystemTime>, Option<SystemTime>) = (stamp(&cert), stamp(&key));
    let mut tick = tokio::time::interval(RELOAD_EVERY);
    loop {
        tick.tick().await;
        let now = (stamp(&cert), stamp(&key));
        if now == seen {
            continue;
        }
        match tls.reload_from_pem_file(&cert, &key).await {
            Ok(()) => {
                tracing::info!("webhook: certificate reloaded from {}", cert.display());
                seen = now;
            }
            // A renewal caught between writing the two files: tried again at the next tick.
            Err(e) => tracing::error!("webhook: certificate not reloaded: {e}"),
        }
    }
}
