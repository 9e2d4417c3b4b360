//! A made-up cluster: nodes, Deployments with their ReplicaSets, pods and Services, with the addresses
//! the recorded flows use, written as the `kind: List` YAML that `kubectl get ... -A -o yaml` prints, so
//! the collector's inventory attributes every pod address in the stream.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use podflow_e2e::pcapgen::Rng;

/// A node: its name and InternalIP.
pub struct Node {
    /// `node-017`.
    pub name: String,
    /// InternalIP.
    pub ip: Ipv4Addr,
}

/// A Deployment, its ReplicaSet and its Service.
pub struct Workload {
    /// Namespace.
    pub namespace: String,
    /// Deployment (and Service) name.
    pub name: String,
    /// The ReplicaSet's pod-template-hash.
    pub hash: String,
    /// Port the pods serve and the Service exposes.
    pub port: u16,
    /// IP protocol of that port (6 TCP, 17 UDP).
    pub proto: u8,
    /// The Service's ClusterIP.
    pub cluster_ip: Ipv4Addr,
    /// Indices of its pods in [`Cluster::pods`].
    pub pods: Vec<usize>,
}

/// A pod: dual-stack addresses on its node's pod ranges.
pub struct Pod {
    /// Name (`<deployment>-<hash>-<suffix>`).
    pub name: String,
    /// Index of its workload.
    pub workload: usize,
    /// Index of its node.
    pub node: usize,
    /// IPv4 address (10.244.<node>.<n>).
    pub ip4: Ipv4Addr,
    /// IPv6 address (fd00:10:244:<node>::<n>).
    pub ip6: Ipv6Addr,
}

/// The whole cluster.
pub struct Cluster {
    /// Nodes.
    pub nodes: Vec<Node>,
    /// Workloads; the first is the cluster DNS.
    pub workloads: Vec<Workload>,
    /// Pods.
    pub pods: Vec<Pod>,
    /// Pod indices per node.
    pub pods_on: Vec<Vec<usize>>,
}

/// Ports and protocols workloads serve, as common services do.
const SERVICES: [(u16, u8); 8] = [
    (8080, 6),
    (443, 6),
    (5432, 6),
    (6379, 6),
    (9090, 6),
    (3306, 6),
    (50051, 6),
    (8125, 17),
];

const NAMES: [&str; 16] = [
    "web",
    "api",
    "cart",
    "checkout",
    "search",
    "auth",
    "billing",
    "catalog",
    "orders",
    "users",
    "payments",
    "inventory",
    "shipping",
    "reviews",
    "metrics",
    "cache",
];

impl Cluster {
    /// A cluster of `nodes` nodes (at most 250) and about `pods` pods in Deployments of 1 to 10 replicas.
    pub fn new(nodes: usize, pods: usize, seed: u64) -> Cluster {
        let nodes = nodes.clamp(1, 250);
        let mut rng = Rng::new(seed ^ 0x00c1_u64);
        let node_list: Vec<Node> = (0..nodes)
            .map(|i| Node {
                name: format!("node-{i:03}"),
                ip: Ipv4Addr::new(172, 18, (i / 250) as u8, (i % 250 + 2) as u8),
            })
            .collect();
        let mut c = Cluster {
            nodes: node_list,
            workloads: Vec::new(),
            pods: Vec::new(),
            pods_on: vec![Vec::new(); nodes],
        };
        // The cluster DNS first: two replicas every pod's lookups go to.
        c.add_workload(
            "kube-system",
            "coredns",
            (53, 17),
            Ipv4Addr::new(10, 96, 0, 10),
            2,
            &mut rng,
        );
        let mut k = 0usize;
        while c.pods.len() < pods {
            let ns = format!("team-{:02}", k % 24);
            let name = format!("{}-{}", NAMES[k % NAMES.len()], k / NAMES.len());
            let svc = SERVICES[rng.range(0, SERVICES.len() as u64 - 1) as usize];
            let ip = Ipv4Addr::new(10, 96, (1 + k / 250) as u8, (k % 250 + 1) as u8);
            let replicas = rng.range(1, 10) as usize;
            let replicas = replicas.min(pods - c.pods.len()).max(1);
            c.add_workload(&ns, &name, svc, ip, replicas, &mut rng);
            k += 1;
        }
        c
    }

    fn add_workload(
        &mut self,
        ns: &str,
        name: &str,
        svc: (u16, u8),
        ip: Ipv4Addr,
        replicas: usize,
        rng: &mut Rng,
    ) {
        let w = self.workloads.len();
        let hash = format!("{:010x}", rng.next_u64() & 0xff_ffff_ffff);
        let mut pods = Vec::new();
        for _ in 0..replicas {
            let mut node = rng.range(0, self.nodes.len() as u64 - 1) as usize;
            // A /24 per node: a full node's pods go to the least loaded one.
            if self.pods_on[node].len() >= 250 {
                node = (0..self.nodes.len())
                    .min_by_key(|&i| self.pods_on[i].len())
                    .unwrap_or(node);
            }
            let n = self.pods_on[node].len() + 2;
            let i = self.pods.len();
            self.pods.push(Pod {
                name: format!("{name}-{hash}-{:05x}", rng.next_u64() & 0xf_ffff),
                workload: w,
                node,
                ip4: Ipv4Addr::new(10, 244, node as u8, n as u8),
                ip6: Ipv6Addr::new(0xfd00, 0x10, 0x244, node as u16, 0, 0, 0, n as u16),
            });
            self.pods_on[node].push(i);
            pods.push(i);
        }
        self.workloads.push(Workload {
            namespace: ns.to_owned(),
            name: name.to_owned(),
            hash,
            port: svc.0,
            proto: svc.1,
            cluster_ip: ip,
            pods,
        });
    }

    /// The inventory: one `kind: List` of nodes, Services, ReplicaSets and pods, created `created_secs`
    /// (Unix seconds) and running since.
    pub fn inventory_yaml(&self, created_secs: u64) -> String {
        let ts = rfc3339(created_secs);
        let mut y = String::with_capacity(self.pods.len() * 1400);
        y.push_str("# Generated by bench/collector-stream for the collector benchmark.\napiVersion: v1\nkind: List\nitems:\n");
        for n in &self.nodes {
            let _ = write!(
                y,
                "- apiVersion: v1\n  kind: Node\n  metadata:\n    name: {name}\n    uid: {uid}\n    creationTimestamp: \"{ts}\"\n    labels:\n      kubernetes.io/hostname: {name}\n  status:\n    addresses:\n    - address: {ip}\n      type: InternalIP\n    - address: {name}\n      type: Hostname\n",
                name = n.name,
                uid = uid(1, &n.name),
                ip = n.ip,
            );
        }
        for w in &self.workloads {
            let _ = write!(
                y,
                "- apiVersion: v1\n  kind: Service\n  metadata:\n    name: {name}\n    namespace: {ns}\n    uid: {uid}\n    creationTimestamp: \"{ts}\"\n  spec:\n    clusterIP: {ip}\n    clusterIPs:\n    - {ip}\n    ports:\n    - port: {port}\n      protocol: {proto}\n      targetPort: {port}\n    selector:\n      app.kubernetes.io/name: {name}\n    type: ClusterIP\n",
                name = w.name,
                ns = w.namespace,
                uid = uid(2, &w.name),
                ip = w.cluster_ip,
                port = w.port,
                proto = if w.proto == 17 { "UDP" } else { "TCP" },
            );
            let _ = write!(
                y,
                "- apiVersion: apps/v1\n  kind: ReplicaSet\n  metadata:\n    name: {name}-{hash}\n    namespace: {ns}\n    uid: {rs_uid}\n    creationTimestamp: \"{ts}\"\n    labels:\n      app.kubernetes.io/name: {name}\n      pod-template-hash: \"{hash}\"\n    ownerReferences:\n    - apiVersion: apps/v1\n      controller: true\n      kind: Deployment\n      name: {name}\n      uid: {dep_uid}\n",
                name = w.name,
                hash = w.hash,
                ns = w.namespace,
                rs_uid = uid(3, &w.name),
                dep_uid = uid(4, &w.name),
            );
        }
        for p in &self.pods {
            let w = &self.workloads[p.workload];
            let node = &self.nodes[p.node];
            let _ = write!(
                y,
                "- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: {name}\n    namespace: {ns}\n    uid: {uid}\n    creationTimestamp: \"{ts}\"\n    labels:\n      app.kubernetes.io/name: {app}\n      pod-template-hash: \"{hash}\"\n    ownerReferences:\n    - apiVersion: apps/v1\n      controller: true\n      kind: ReplicaSet\n      name: {app}-{hash}\n      uid: {rs_uid}\n  spec:\n    nodeName: {node}\n    containers:\n    - name: {app}\n      image: registry.example/{app}:1.0\n      ports:\n      - containerPort: {port}\n        protocol: {proto}\n  status:\n    phase: Running\n    hostIP: {host_ip}\n    podIP: {ip4}\n    podIPs:\n    - ip: {ip4}\n    - ip: {ip6}\n    startTime: \"{ts}\"\n    conditions:\n    - type: Ready\n      status: \"True\"\n      lastTransitionTime: \"{ts}\"\n    containerStatuses:\n    - name: {app}\n      ready: true\n      restartCount: 0\n      started: true\n      state:\n        running:\n          startedAt: \"{ts}\"\n",
                name = p.name,
                ns = w.namespace,
                uid = uid(5, &p.name),
                app = w.name,
                hash = w.hash,
                rs_uid = uid(3, &w.name),
                node = node.name,
                port = w.port,
                proto = if w.proto == 17 { "UDP" } else { "TCP" },
                host_ip = node.ip,
                ip4 = p.ip4,
                ip6 = p.ip6,
            );
        }
        y
    }
}

/// A stable UID for an object of `kind` named `name`.
fn uid(kind: u8, name: &str) -> String {
    let h = name
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64 ^ u64::from(kind), |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xfff,
        u64::from(kind),
        h & 0xffff_ffff_ffff
    )
}

/// Unix seconds as `2024-05-01T12:00:00Z`.
pub fn rfc3339(secs: u64) -> String {
    let days = secs / 86_400;
    let sod = secs % 86_400;
    // H. Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}
