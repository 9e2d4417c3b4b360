//! The few facts attribution needs from each Kubernetes object, taken out of the API's types.
//!
//! Both providers speak these types to the [`Index`](super::index::Index): the API provider converts
//! what its watches return, the inventory what it parses from files. Everything else in an object
//! (specs, managed fields, most of the status) is dropped here, so the index stays small.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

/// The kinds of object the index learns from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    /// Pods: who holds pod IPs.
    Pod,
    /// Services: who holds ClusterIPs.
    Service,
    /// EndpointSlices: which Service a pod serves.
    EndpointSlice,
    /// Nodes: who holds node IPs.
    Node,
    /// ReplicaSets: the Deployment above a pod.
    ReplicaSet,
    /// Jobs: the CronJob above a pod.
    Job,
}

impl ObjectKind {
    /// Every kind, in the order the inventory applies them (owners before the pods they own).
    pub const ALL: [ObjectKind; 6] = [
        ObjectKind::ReplicaSet,
        ObjectKind::Job,
        ObjectKind::EndpointSlice,
        ObjectKind::Node,
        ObjectKind::Service,
        ObjectKind::Pod,
    ];

    /// The kind's name as Kubernetes spells it.
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Pod => "Pod",
            ObjectKind::Service => "Service",
            ObjectKind::EndpointSlice => "EndpointSlice",
            ObjectKind::Node => "Node",
            ObjectKind::ReplicaSet => "ReplicaSet",
            ObjectKind::Job => "Job",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why an object could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid(pub &'static str);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Invalid {}

/// The controlling owner of an object (its `ownerReferences` entry with `controller: true`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerRef {
    /// Kind of the owner (ReplicaSet, Job, StatefulSet, DaemonSet, Deployment, CronJob, ...).
    pub kind: String,
    /// Its name, in the object's namespace.
    pub name: String,
    /// Its UID.
    pub uid: String,
}

/// Metadata common to every kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    /// UID; `namespace/name` when the object has none (hand-written inventories).
    pub uid: String,
    /// Namespace (empty for cluster-scoped objects).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels, sorted by key, without the per-revision labels controllers add (see [`NOISY_LABELS`]).
    pub labels: Vec<(String, String)>,
    /// creationTimestamp, Unix milliseconds.
    pub created_ms: Option<u64>,
    /// deletionTimestamp, Unix milliseconds: when a graceful deletion ends at the latest.
    pub deleted_ms: Option<u64>,
    /// The controlling owner.
    pub controller: Option<OwnerRef>,
}

/// Labels that only tell a controller's revision or repeat the object's own name or UID: kept out of
/// endpoints, because they say nothing a user groups by and make every pod's label set unique.
pub const NOISY_LABELS: [&str; 7] = [
    "pod-template-hash",
    "controller-revision-hash",
    "pod-template-generation",
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
    "statefulset.kubernetes.io/pod-name",
    "apps.kubernetes.io/pod-index",
];

/// A pod: the addresses it holds and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInfo {
    /// Metadata.
    pub meta: Meta,
    /// Node the pod is bound to.
    pub node_name: Option<String>,
    /// The pod shares its node's network namespace.
    pub host_network: bool,
    /// status.podIPs (or status.podIP).
    pub ips: Vec<IpAddr>,
    /// When the pod got its address, as near as the object tells: the PodReadyToStartContainers
    /// condition's transition (sandbox and network ready), else status.startTime, else creation.
    pub start_ms: Option<u64>,
    /// Phase Succeeded or Failed: the pod's containers are done and its address is released.
    pub terminal: bool,
    /// For terminal pods: the end of the second of the last container's finishedAt, else of the last
    /// condition transition (Kubernetes timestamps are whole seconds, cut down: a flow that started
    /// within the pod's last second is still the pod's).
    pub finished_ms: Option<u64>,
    /// The `pod-template-hash` label (names a Deployment's ReplicaSet when that is not known).
    pub template_hash: Option<String>,
    /// Declared container ports of a hostNetwork pod, as (IP protocol number, port).
    pub host_ports: Vec<(u8, u16)>,
}

/// A Service: the ClusterIPs it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInfo {
    /// Metadata.
    pub meta: Meta,
    /// spec.clusterIPs (or spec.clusterIP), without `None` (headless).
    pub cluster_ips: Vec<IpAddr>,
}

/// An EndpointSlice: which pods a Service selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceInfo {
    /// Metadata.
    pub meta: Meta,
    /// The `kubernetes.io/service-name` label.
    pub service: Option<String>,
    /// Names of the pods its endpoints point at (targetRef of kind Pod), in the slice's namespace.
    pub pods: Vec<String>,
}

/// A node: the addresses it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// Metadata.
    pub meta: Meta,
    /// status.addresses of type InternalIP and ExternalIP.
    pub ips: Vec<IpAddr>,
}

/// A ReplicaSet or Job, known only for its own owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerInfo {
    /// [`ObjectKind::ReplicaSet`] or [`ObjectKind::Job`].
    pub kind: ObjectKind,
    /// Metadata; `controller` is the Deployment or CronJob above.
    pub meta: Meta,
}

/// One object of any kind the index learns from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Object {
    /// A pod.
    Pod(PodInfo),
    /// A Service.
    Service(ServiceInfo),
    /// An EndpointSlice.
    EndpointSlice(SliceInfo),
    /// A node.
    Node(NodeInfo),
    /// A ReplicaSet or Job.
    Owner(OwnerInfo),
}

impl Object {
    /// The object's kind.
    pub fn kind(&self) -> ObjectKind {
        match self {
            Object::Pod(_) => ObjectKind::Pod,
            Object::Service(_) => ObjectKind::Service,
            Object::EndpointSlice(_) => ObjectKind::EndpointSlice,
            Object::Node(_) => ObjectKind::Node,
            Object::Owner(o) => o.kind,
        }
    }

    /// The object's metadata.
    pub fn meta(&self) -> &Meta {
        match self {
            Object::Pod(p) => &p.meta,
            Object::Service(s) => &s.meta,
            Object::EndpointSlice(s) => &s.meta,
            Object::Node(n) => &n.meta,
            Object::Owner(o) => &o.meta,
        }
    }
}

/// Unix milliseconds of a Kubernetes timestamp (none before 1970).
pub fn millis(t: &Time) -> Option<u64> {
    u64::try_from(t.0.timestamp_millis()).ok()
}

/// The metadata attribution needs; an object without a name cannot be used.
pub fn meta(m: &ObjectMeta) -> Result<Meta, Invalid> {
    let name = m
        .name
        .clone()
        .filter(|n| !n.is_empty())
        .ok_or(Invalid("metadata.name is missing"))?;
    let namespace = m.namespace.clone().unwrap_or_default();
    let uid = match &m.uid {
        Some(u) if !u.is_empty() => u.clone(),
        _ => format!("{namespace}/{name}"),
    };
    let refs = m.owner_references.as_deref().unwrap_or_default();
    let controller = refs
        .iter()
        .find(|r| r.controller == Some(true))
        .or_else(|| refs.first())
        .map(|r| OwnerRef {
            kind: r.kind.clone(),
            name: r.name.clone(),
            uid: r.uid.clone(),
        });
    Ok(Meta {
        uid,
        namespace,
        name,
        labels: labels(m.labels.as_ref()),
        created_ms: m.creation_timestamp.as_ref().and_then(millis),
        deleted_ms: m.deletion_timestamp.as_ref().and_then(millis),
        controller,
    })
}

fn labels(l: Option<&BTreeMap<String, String>>) -> Vec<(String, String)> {
    l.into_iter()
        .flatten()
        .filter(|(k, _)| !NOISY_LABELS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Parses addresses, skipping what is not one (a pod's status cannot be trusted to be well formed).
fn addresses<'a>(list: impl IntoIterator<Item = &'a str>) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for ip in list.into_iter().filter_map(|s| s.trim().parse::<IpAddr>().ok()) {
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

/// IP protocol number of a Kubernetes protocol name (TCP when unset).
fn protocol_number(p: Option<&str>) -> Option<u8> {
    match p.unwrap_or("TCP") {
        "TCP" => Some(6),
        "UDP" => Some(17),
        "SCTP" => Some(132),
        _ => None,
    }
}

/// The facts of a pod.
pub fn pod(p: &Pod) -> Result<PodInfo, Invalid> {
    let meta = meta(&p.metadata)?;
    let spec = p.spec.as_ref();
    let status = p.status.as_ref();
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let mut ips = addresses(
        status
            .and_then(|s| s.pod_ips.as_ref())
            .into_iter()
            .flatten()
            .map(|i| i.ip.as_str()),
    );
    if ips.is_empty() {
        ips = addresses(status.and_then(|s| s.pod_ip.as_deref()));
    }
    let conditions = status.and_then(|s| s.conditions.as_deref()).unwrap_or_default();
    let network_ready = conditions
        .iter()
        .find(|c| c.type_ == "PodReadyToStartContainers" && c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .and_then(millis);
    let start_ms = network_ready
        .or_else(|| status.and_then(|s| s.start_time.as_ref()).and_then(millis))
        .or(meta.created_ms);
    let terminal = matches!(
        status.and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    );
    let finished_ms = if terminal {
        let containers = status
            .and_then(|s| s.container_statuses.as_deref())
            .unwrap_or_default();
        let last_exit = containers
            .iter()
            .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
            .filter_map(millis)
            .max();
        last_exit
            .or_else(|| {
                conditions
                    .iter()
                    .filter_map(|c| c.last_transition_time.as_ref())
                    .filter_map(millis)
                    .max()
            })
            .map(|t| t.saturating_add(1000))
    } else {
        None
    };
    let template_hash = p
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("pod-template-hash"))
        .cloned();
    let mut host_ports = Vec::new();
    if host_network {
        for port in spec
            .into_iter()
            .flat_map(|s| &s.containers)
            .flat_map(|c| c.ports.iter().flatten())
        {
            let number = port.host_port.unwrap_or(port.container_port);
            if let (Some(proto), Ok(number)) =
                (protocol_number(port.protocol.as_deref()), u16::try_from(number))
                && !host_ports.contains(&(proto, number))
            {
                host_ports.push((proto, number));
            }
        }
    }
    Ok(PodInfo {
        meta,
        node_name: spec.and_then(|s| s.node_name.clone()),
        host_network,
        ips,
        start_ms,
        terminal,
        finished_ms,
        template_hash,
        host_ports,
    })
}

/// The facts of a Service.
pub fn service(s: &Service) -> Result<ServiceInfo, Invalid> {
    let meta = meta(&s.metadata)?;
    let spec = s.spec.as_ref();
    let mut cluster_ips = addresses(
        spec.and_then(|s| s.cluster_ips.as_ref())
            .into_iter()
            .flatten()
            .map(String::as_str),
    );
    if cluster_ips.is_empty() {
        // Older objects carry only the singular field; "None" (headless) does not parse and is skipped.
        cluster_ips = addresses(spec.and_then(|s| s.cluster_ip.as_deref()));
    }
    Ok(ServiceInfo { meta, cluster_ips })
}

/// The facts of an EndpointSlice.
pub fn endpoint_slice(s: &EndpointSlice) -> Result<SliceInfo, Invalid> {
    let meta = meta(&s.metadata)?;
    let service = s
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("kubernetes.io/service-name"))
        .cloned();
    let mut pods: Vec<String> = Vec::new();
    for target in s.endpoints.iter().filter_map(|e| e.target_ref.as_ref()) {
        let in_namespace = target.namespace.as_deref().is_none_or(|ns| ns == meta.namespace);
        if target.kind.as_deref() == Some("Pod")
            && in_namespace
            && let Some(name) = target.name.as_ref().filter(|n| !pods.contains(n))
        {
            pods.push(name.clone());
        }
    }
    Ok(SliceInfo { meta, service, pods })
}

/// The facts of a node.
pub fn node(n: &Node) -> Result<NodeInfo, Invalid> {
    let meta = meta(&n.metadata)?;
    let listed = n
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_deref())
        .unwrap_or_default();
    let ips = addresses(
        listed
            .iter()
            .filter(|a| a.type_ == "InternalIP" || a.type_ == "ExternalIP")
            .map(|a| a.address.as_str()),
    );
    Ok(NodeInfo { meta, ips })
}

/// The facts of a ReplicaSet or Job, from its metadata alone.
pub fn owner(kind: ObjectKind, m: &ObjectMeta) -> Result<OwnerInfo, Invalid> {
    Ok(OwnerInfo { kind, meta: meta(m)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_json(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_failed_pod_without_container_exits_ends_at_its_last_condition() {
        let p = pod_json(serde_json::json!({
            "metadata": {"name": "evicted", "namespace": "shop", "creationTimestamp": "2024-05-01T10:00:00Z"},
            "status": {"phase": "Failed", "reason": "Evicted", "podIP": "10.0.0.1",
                "startTime": "2024-05-01T10:00:01Z",
                "conditions": [
                    {"type": "Ready", "status": "False", "lastTransitionTime": "2024-05-01T10:05:00Z"},
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2024-05-01T10:00:00Z"}]}
        }));
        let info = pod(&p).unwrap();
        assert!(info.terminal);
        assert_eq!(info.start_ms, Some(1_714_557_601_000));
        assert_eq!(
            info.finished_ms,
            Some(1_714_557_901_000),
            "the end of the 10:05:00 second"
        );
        assert_eq!(info.meta.uid, "shop/evicted", "no UID: namespace/name stands in");
    }

    #[test]
    fn addresses_that_do_not_parse_are_skipped_and_duplicates_dropped() {
        let p = pod_json(serde_json::json!({
            "metadata": {"name": "p", "uid": "u"},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.1"}, {"ip": "bogus"}, {"ip": "10.0.0.1"},
                {"ip": "fd00::1"}]}
        }));
        assert_eq!(
            pod(&p).unwrap().ips,
            ["10.0.0.1".parse::<IpAddr>().unwrap(), "fd00::1".parse().unwrap()]
        );
        let headless: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "db"}, "spec": {"clusterIP": "None", "clusterIPs": ["None"]}
        }))
        .unwrap();
        assert!(service(&headless).unwrap().cluster_ips.is_empty());
    }

    #[test]
    fn the_controller_reference_wins_and_a_nameless_object_is_invalid() {
        let m: ObjectMeta = serde_json::from_value(serde_json::json!({
            "name": "p", "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "cm", "uid": "1"},
                {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "ds", "uid": "2", "controller": true}]
        }))
        .unwrap();
        assert_eq!(
            meta(&m).unwrap().controller.map(|c| c.kind),
            Some("DaemonSet".to_owned())
        );
        assert_eq!(
            meta(&ObjectMeta::default()),
            Err(Invalid("metadata.name is missing"))
        );
    }

    #[test]
    fn host_network_pods_declare_their_ports() {
        let p = pod_json(serde_json::json!({
            "metadata": {"name": "agent", "uid": "u"},
            "spec": {"hostNetwork": true, "containers": [{"name": "a", "ports": [
                {"containerPort": 9100}, {"containerPort": 8472, "protocol": "UDP"},
                {"containerPort": 53, "hostPort": 5353, "protocol": "UDP"}, {"containerPort": 70000}]}]},
            "status": {"phase": "Running", "podIP": "172.18.0.2"}
        }));
        assert_eq!(pod(&p).unwrap().host_ports, [(6, 9100), (17, 8472), (17, 5353)]);
    }
}
