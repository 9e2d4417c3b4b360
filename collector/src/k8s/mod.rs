//! Kubernetes attribution: which pod, Service or node held an address when a flow started.
//!
//! * [`provider`]: the one trait, [`MetadataProvider`], with its [`Query`] and [`Answer`].
//! * [`index`]: the pure, time-aware index both providers feed.
//! * [`objects`]: the few facts of each object the index reads.
//! * [`api`]: the provider that watches the Kubernetes API (in cluster or from a kubeconfig).
//! * [`inventory`]: the provider that reads a static inventory of Kubernetes Lists (JSON or YAML).

pub mod api;
pub mod index;
pub mod inventory;
pub mod objects;
pub mod provider;
mod spans;

pub use index::{Event, Index, IndexSettings, IndexStats};
pub use provider::{Answer, MetadataProvider, ProviderStatus, Query, SharedIndex};
