//! The backend as it served a Service: the backend pod's identity with the Service it was reached
//! through as its `service_name`, so a document's `destination.kubernetes.*` names both (the Service,
//! and the pod, workload, node and labels of the backend) and metrics count the backend's workload
//! with `dst_service` set.
//!
//! One `Arc` per (backend, Service) pair, made on the first flow and shared by every later one: the
//! sinks cache an endpoint's encoded text in it ([`K8sEndpoint::encoded`]), so a Service flow costs one
//! lookup by the two pointers here and no formatting. The entries hold both originals, so neither
//! address can be reused for another object while its entry exists; [`Served::expire`] (once a second)
//! lets go of the entries whose backend or Service only the entry still holds, so the cache follows
//! the live pods rather than every pod that ever served.

use std::sync::Arc;

use foldhash::HashMap;

use crate::model::{EndpointKind, K8sEndpoint};

/// Pairs held at most; past it the cache starts again (index updates make new `Arc`s, old pairs go
/// unused).
const MAX_PAIRS: usize = 1 << 16;

/// (backend, Service) -> the backend as it served the Service.
#[derive(Default)]
pub struct Served {
    pairs: HashMap<(usize, usize), Entry>,
}

struct Entry {
    backend: Arc<K8sEndpoint>,
    service: Arc<K8sEndpoint>,
    served: Arc<K8sEndpoint>,
}

impl Served {
    /// `backend` as it served `service` (the destination of the record): the backend itself when the
    /// destination is not a Service, or already names it.
    pub fn get(&mut self, backend: Arc<K8sEndpoint>, service: Option<&Arc<K8sEndpoint>>) -> Arc<K8sEndpoint> {
        let Some(service) = service.filter(|s| s.kind == EndpointKind::Service) else {
            return backend;
        };
        if backend.service_name == service.service_name {
            return backend;
        }
        let key = (Arc::as_ptr(&backend) as usize, Arc::as_ptr(service) as usize);
        if let Some(e) = self.pairs.get(&key) {
            return Arc::clone(&e.served);
        }
        if self.pairs.len() >= MAX_PAIRS {
            self.pairs.clear();
        }
        let served = Arc::new(K8sEndpoint {
            encoded: Default::default(),
            edge: Default::default(),
            service_name: service.service_name.clone(),
            ..(*backend).clone()
        });
        self.pairs.insert(
            key,
            Entry {
                backend,
                service: Arc::clone(service),
                served: Arc::clone(&served),
            },
        );
        served
    }

    /// Drops the entries whose backend or Service nothing but the entry holds any more (the index
    /// replaced or deleted it, and no flow in flight has it).
    pub fn expire(&mut self) {
        self.pairs
            .retain(|_, e| Arc::strong_count(&e.backend) > 1 && Arc::strong_count(&e.service) > 1);
    }
}
