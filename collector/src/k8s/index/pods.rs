//! The pods' part of the index: the spans of their addresses, their workloads and Services.

use std::net::IpAddr;
use std::sync::Arc;

use super::{Index, OwnerRec, PodName, PodRec, deletion_end, remove_from, share};
use crate::k8s::objects::PodInfo;
use crate::k8s::spans::{Holder, OPEN, Rank};
use crate::model::{EndpointKind, K8sEndpoint};

/// When a pod held its addresses.
fn pod_span(info: &PodInfo) -> (u64, u64) {
    let from = info.start_ms.unwrap_or(0);
    let to = if info.terminal {
        info.finished_ms.unwrap_or(from)
    } else {
        OPEN
    };
    (from, to)
}

impl Index {
    pub(super) fn delete_pod(&mut self, uid: &Arc<str>, last: Option<PodInfo>, at: u64) {
        let rec = self.pods.remove(uid);
        let Some(info) = last.or_else(|| rec.as_ref().map(|r| r.info.clone())) else {
            return;
        };
        let mut end = deletion_end(&info.meta, at);
        if info.terminal {
            end = end.min(pod_span(&info).1);
        }
        let holder = Holder::Pod(Arc::clone(uid));
        let old = rec.as_ref().map(|r| &r.info);
        let ips: Vec<IpAddr> = info
            .ips
            .iter()
            .chain(old.into_iter().flat_map(|o| &o.ips))
            .copied()
            .collect();
        for ip in &ips {
            self.addresses.close(*ip, &holder, end);
            for &(proto, port) in info
                .host_ports
                .iter()
                .chain(old.into_iter().flat_map(|o| &o.host_ports))
            {
                self.ports.close((*ip, proto, port), &holder, end);
            }
        }
        if let Some(rec) = rec {
            self.unregister_pod(uid, &rec.info);
        }
    }

    pub(super) fn register_pod(&mut self, uid: &Arc<str>, info: &PodInfo) {
        let name = (
            self.names.get(&info.meta.namespace),
            self.names.get(&info.meta.name),
        );
        self.pods_by_name.entry(name).or_default().push(Arc::clone(uid));
        if let Some(c) = &info.meta.controller {
            let owner = self.names.get(&c.uid);
            self.pods_by_owner.entry(owner).or_default().push(Arc::clone(uid));
        }
    }

    pub(super) fn unregister_pod(&mut self, uid: &Arc<str>, info: &PodInfo) {
        let name = (
            self.names.get(&info.meta.namespace),
            self.names.get(&info.meta.name),
        );
        remove_from(&mut self.pods_by_name, &name, uid);
        if let Some(c) = &info.meta.controller {
            let owner = self.names.get(&c.uid);
            remove_from(&mut self.pods_by_owner, &owner, uid);
        }
    }

    pub(super) fn upsert_pod(&mut self, uid: Arc<str>, info: PodInfo, at: u64) {
        let prev = self.pods.remove(&uid);
        if let Some(prev) = prev.as_ref().filter(|p| p.info == info) {
            // Most pod updates change nothing attribution reads (probes, restarts counts).
            let endpoint = Arc::clone(&prev.endpoint);
            self.pods.insert(uid, PodRec { info, endpoint });
            return;
        }
        let holder = Holder::Pod(Arc::clone(&uid));
        if let Some(prev) = &prev {
            for ip in &prev.info.ips {
                if !info.ips.contains(ip) {
                    self.addresses.close(*ip, &holder, at);
                }
                for &(proto, port) in &prev.info.host_ports {
                    if !info.ips.contains(ip) || !info.host_ports.contains(&(proto, port)) {
                        self.ports.close((*ip, proto, port), &holder, at);
                    }
                }
            }
            self.unregister_pod(&uid, &prev.info);
        }
        self.register_pod(&uid, &info);
        let endpoint = self.pod_endpoint(&info, prev.as_ref().map(|p| &p.endpoint));
        let span = pod_span(&info);
        if info.host_network {
            let node = info
                .node_name
                .as_deref()
                .map(|n| Arc::new(self.node_endpoint(n, &[])));
            for ip in &info.ips {
                if let Some(node) = &node {
                    self.addresses.hold(*ip, &holder, span, Rank::HostNetwork, node);
                }
                for &(proto, port) in &info.host_ports {
                    self.ports
                        .hold((*ip, proto, port), &holder, span, Rank::Exclusive, &endpoint);
                }
            }
        } else {
            for ip in &info.ips {
                self.addresses
                    .hold(*ip, &holder, span, Rank::Exclusive, &endpoint);
            }
        }
        self.pods.insert(uid, PodRec { info, endpoint });
    }

    /// Rebuilds a pod's endpoint after what it depends on (its owner, its EndpointSlices) changed.
    pub(super) fn refresh_pod(&mut self, uid: &Arc<str>) {
        let Some(mut rec) = self.pods.remove(uid) else {
            return;
        };
        let endpoint = self.pod_endpoint(&rec.info, Some(&rec.endpoint));
        if !Arc::ptr_eq(&endpoint, &rec.endpoint) {
            let holder = Holder::Pod(Arc::clone(uid));
            for ip in &rec.info.ips {
                if rec.info.host_network {
                    for &(proto, port) in &rec.info.host_ports {
                        self.ports
                            .relabel((*ip, proto, port), &holder, Rank::Exclusive, &endpoint);
                    }
                } else {
                    self.addresses.relabel(*ip, &holder, Rank::Exclusive, &endpoint);
                }
            }
            rec.endpoint = endpoint;
        }
        self.pods.insert(Arc::clone(uid), rec);
    }

    pub(super) fn refresh_pods_named(&mut self, names: Vec<PodName>) {
        for name in names {
            let uids = self.pods_by_name.get(&name).cloned().unwrap_or_default();
            for uid in &uids {
                self.refresh_pod(uid);
            }
        }
    }

    /// The workload above a pod, as (kind, name).
    pub(super) fn workload(&mut self, info: &PodInfo) -> (Arc<str>, Arc<str>) {
        let Some(c) = &info.meta.controller else {
            return (self.names.get("Pod"), self.names.get(&info.meta.name));
        };
        let known = self.owners.get(c.uid.as_str());
        match (c.kind.as_str(), known) {
            (
                "ReplicaSet" | "Job",
                Some(OwnerRec {
                    controller: Some((kind, name)),
                    ..
                }),
            ) => (Arc::clone(kind), Arc::clone(name)),
            ("ReplicaSet", None) => {
                // A Deployment names its ReplicaSets `<deployment>-<pod-template-hash>`; until the
                // ReplicaSet is known (or when it is not listed at all) that names the Deployment.
                let deployment = info
                    .template_hash
                    .as_deref()
                    .and_then(|h| c.name.strip_suffix(h)?.strip_suffix('-'))
                    .filter(|d| !d.is_empty());
                match deployment {
                    Some(d) => (self.names.get("Deployment"), self.names.get(d)),
                    None => (self.names.get("ReplicaSet"), self.names.get(&c.name)),
                }
            }
            // A static pod's mirror is owned by its Node: no controller manages it.
            ("Node", _) => (self.names.get("Pod"), self.names.get(&info.meta.name)),
            (kind, _) => (self.names.get(kind), self.names.get(&c.name)),
        }
    }

    /// A pod's endpoint; `prev` is returned again when nothing changed, so answers stay shared.
    pub(super) fn pod_endpoint(
        &mut self,
        info: &PodInfo,
        prev: Option<&Arc<K8sEndpoint>>,
    ) -> Arc<K8sEndpoint> {
        let (workload_kind, workload_name) = self.workload(info);
        let namespace = self.names.get(&info.meta.namespace);
        let name = self.names.get(&info.meta.name);
        let service_name = self
            .pod_services
            .get(&(Arc::clone(&namespace), Arc::clone(&name)))
            .and_then(|s| s.iter().min())
            .cloned();
        let endpoint = K8sEndpoint {
            kind: if info.host_network {
                EndpointKind::HostNetworkPod
            } else {
                EndpointKind::Pod
            },
            namespace,
            pod_name: Some(name),
            pod_uid: Some(self.names.get(&info.meta.uid)),
            workload_kind: Some(workload_kind),
            workload_name: Some(workload_name),
            service_name,
            node_name: info.node_name.as_deref().map(|n| self.names.get(n)),
            labels: self.names.labels(&info.meta.labels, self.settings.max_labels),
            encoded: Default::default(),
            edge: Default::default(),
        };
        share(endpoint, prev)
    }
}
