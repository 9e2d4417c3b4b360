//! Sidecar injection: `podflow-collector webhook`, a mutating admission webhook that adds the probe
//! container to pods of namespaces labelled `podflow.io/inject=enabled`.
//!
//! * [`review`]: the pure decision and JSON Patch, AdmissionReview in, AdmissionReview out.
//! * [`server`]: HTTPS (rustls) on axum: `POST /mutate`, `GET /healthz`, `GET /metrics`; the certificate
//!   and key are read again when their files change (cert-manager renews them in place).

pub mod review;
pub mod server;

pub use review::{Decision, ReviewError, SidecarResources, SidecarSpec, review};
