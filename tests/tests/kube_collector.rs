//! `podflow-collector --kubernetes` against a real kube-apiserver: pods, Services, EndpointSlices,
//! ReplicaSets, Jobs and nodes written with kubectl change how the IPFIX flows sent afterwards are
//! attributed, and after an etcd compaction and a broken watch the collector is answered 410 Gone,
//! lists again and attributes by what the relist told it.
//!
//! No kubelet runs, so the test plays its part: pods are created bound to a node and their status
//! (address, phase, PodReadyToStartContainers) is written through the status subresource. With no
//! controllers either, every watch event is one of the test's writes, so the collector's
//! `podflow_collector_kubernetes_events_total` says when it has seen a change: flows are sent only
//! after it did, with start times after the change (attribution asks who held an address when the
//! flow started), and one flow with an old start time checks that the previous holder still answers
//! for its own time.
//!
//! For the 410 the collector is frozen (SIGSTOP) while the API server is killed and restarted, so its
//! watches break with nothing in flight; the cluster is changed, etcd compacted past every version the collector
//! saw, and the API server restarted again (its watch cache then begins after the compaction). Thawed,
//! the collector resumes its watches from compacted versions and must list again to learn the changes,
//! a deletion among them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use podflow_e2e::collector::{Collector, Metrics};
use podflow_e2e::expect::UtcTime;
use podflow_e2e::kubeapi::KubeApi;
use podflow_e2e::kubectl::Tools;
use podflow_e2e::peer;
use podflow_e2e::sender::{Biflow, Sender};
use rustix::process::{Pid, Signal, kill_process};
use serde_json::{Value, json};

const NS: &str = "shop";
const NODE_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 50, 10);
const WEB_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 10);
/// Held by api-0, then api-1, then db-0.
const SHARED_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 20);
/// Held by gone-0, deleted while the collector's watches were broken.
const GONE_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 30);
/// Held by a CronJob's Job's pod.
const REPORT_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 40);

/// How long the collector may take to see a change.
const SEEN_TIMEOUT: Duration = Duration::from_secs(60);

fn now_ms() -> u64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    u64::try_from(d.as_millis()).unwrap()
}

/// A Kubernetes timestamp (whole seconds, RFC 3339).
fn timestamp(ms: u64) -> String {
    format!("{}Z", &UtcTime::from_millis(ms).iso_millis()[..19])
}

struct Cluster {
    api: KubeApi,
    tools: Tools,
}

impl Cluster {
    fn apply(&self, object: Value) {
        self.tools.apply(&object).unwrap();
    }

    fn uid(&self, kind: &str, name: &str) -> String {
        let o = self.tools.kubectl_json(&["get", kind, name, "-n", NS]).unwrap();
        o["metadata"]["uid"].as_str().unwrap().to_owned()
    }

    fn cluster_ip(&self, service: &str) -> Ipv4Addr {
        let o = self
            .tools
            .kubectl_json(&["get", "service", service, "-n", NS])
            .unwrap();
        o["spec"]["clusterIP"].as_str().unwrap().parse().unwrap()
    }

    /// Creates a pod bound to node-a, then writes its status as a kubelet would once its sandbox got
    /// `ip` at `ready_ms`: two watch events.
    fn pod(&self, name: &str, ip: Ipv4Addr, labels: Value, owner: Option<Value>, ready_ms: u64) {
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": NS, "labels": labels},
            "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "registry.example/app:1"}]},
        });
        if let Some(owner) = owner {
            pod["metadata"]["ownerReferences"] = json!([owner]);
        }
        self.apply(pod);
        let at = timestamp(ready_ms);
        let status = json!({"status": {
            "phase": "Running", "hostIP": NODE_IP.to_string(), "hostIPs": [{"ip": NODE_IP.to_string()}],
            "podIP": ip.to_string(), "podIPs": [{"ip": ip.to_string()}], "startTime": at,
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": at},
                {"type": "Ready", "status": "True", "lastTransitionTime": at},
            ],
        }});
        self.tools
            .kubectl(&[
                "patch",
                "pod",
                name,
                "-n",
                NS,
                "--subresource=status",
                "--type=merge",
                "-p",
                &status.to_string(),
            ])
            .unwrap();
    }

    /// Deletes a pod at once (no kubelet would confirm a graceful deletion): one watch event.
    fn delete_pod(&self, name: &str) {
        self.tools
            .kubectl(&["delete", "pod", name, "-n", NS, "--grace-period=0", "--force"])
            .unwrap();
    }

    fn service(&self, name: &str) {
        self.apply(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]},
        }));
    }

    /// The EndpointSlice of `service`, listing `pods` (name, address): what the EndpointSlice
    /// controller would write.
    fn slice(&self, service: &str, pods: &[(&str, Ipv4Addr)]) {
        let endpoints: Vec<Value> = pods
            .iter()
            .map(|(name, ip)| {
                json!({"addresses": [ip.to_string()], "conditions": {"ready": true}, "nodeName": "node-a",
                    "targetRef": {"kind": "Pod", "name": name, "namespace": NS}})
            })
            .collect();
        self.apply(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("{service}-1"), "namespace": NS,
                "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4",
            "ports": [{"port": 8080, "protocol": "TCP"}],
            "endpoints": endpoints,
        }));
    }
}

/// Which events of which kind the collector has seen: `podflow_collector_kubernetes_events_total`.
fn events(m: &Metrics) -> BTreeMap<(String, String), u64> {
    m.samples
        .iter()
        .filter(|(n, _, _)| n == "podflow_collector_kubernetes_events_total")
        .filter_map(|(_, labels, v)| {
            let kind = labels.split("kind=\"").nth(1)?.split('"').next()?;
            let event = labels.split("event=\"").nth(1)?.split('"').next()?;
            Some(((kind.to_owned(), event.to_owned()), *v))
        })
        .collect()
}

fn value(m: &Metrics, name: &str, kind: &str) -> u64 {
    m.get(name, &format!("kind=\"{kind}\"")).unwrap_or(0)
}

/// Polls the collector's metrics (bounded) until `done` holds of them.
fn wait_metrics(collector: &Collector, what: &str, mut done: impl FnMut(&Metrics) -> bool) -> Metrics {
    let mut last = None;
    let waited = peer::wait_until(what, SEEN_TIMEOUT, || {
        let m = collector.scrape()?;
        let ok = done(&m);
        last = Some(m);
        Ok(ok)
    });
    if let Err(e) = waited {
        let text = last.map(|m| m.text).unwrap_or_default();
        let kube: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("podflow_collector_kubernetes_"))
            .collect();
        panic!("{e:#}; last metrics:\n{}", kube.join("\n"));
    }
    last.unwrap()
}

/// Waits until the collector has seen `more` events beyond `before`, each as (kind, event, count).
fn wait_seen(collector: &Collector, before: &Metrics, more: &[(&str, &str, u64)]) -> Metrics {
    let base = events(before);
    let want: Vec<((String, String), u64)> = more
        .iter()
        .map(|(k, e, n)| {
            let key = ((*k).to_owned(), (*e).to_owned());
            let target = base.get(&key).copied().unwrap_or(0) + n;
            (key, target)
        })
        .collect();
    wait_metrics(collector, &format!("the collector to see {more:?}"), |m| {
        let seen = events(m);
        want.iter()
            .all(|(key, n)| seen.get(key).copied().unwrap_or(0) >= *n)
    })
}

/// Sends `flows` and waits until the collector has written a document for each.
fn send(collector: &Collector, sender: &mut Sender, flows: &[Biflow]) {
    sender.send(flows).unwrap();
    let want = sender.sent();
    wait_metrics(collector, &format!("{want} documents"), |m| {
        m.get("podflow_collector_documents_total", "sink=\"ndjson\"")
            .unwrap_or(0)
            >= want
    });
}

/// Every flow's source port is its own: the document of each, by that port.
fn by_port(docs: &[Value]) -> BTreeMap<u64, &Value> {
    docs.iter()
        .filter_map(|d| Some((d["source"]["port"].as_u64()?, d)))
        .collect()
}

fn at<'a>(doc: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(doc, |v, k| &v[k])
}

/// One expectation: `field` of the document of the flow from source port `port`.
type Want = (u16, &'static str, Value);

#[test]
fn watched_changes_and_a_relist_after_410_gone_decide_attribution() {
    let dir = tempfile::tempdir().unwrap();
    let api = KubeApi::start(&dir.path().join("kube")).unwrap();
    let tools = Tools::new(&api.kubeconfig()).unwrap();
    let k = Cluster { api, tools };
    let started = now_ms();
    // The previous holders got their addresses two minutes ago, so a flow of that time is theirs.
    let early = started - 120_000;

    k.tools.kubectl(&["create", "namespace", NS]).unwrap();
    k.apply(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-a"}}));
    let node_status =
        json!({"status": {"addresses": [{"type": "InternalIP", "address": NODE_IP.to_string()}]}});
    k.tools
        .kubectl(&[
            "patch",
            "node",
            "node-a",
            "--subresource=status",
            "--type=merge",
            "-p",
            &node_status.to_string(),
        ])
        .unwrap();
    k.apply(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web-5d8f", "namespace": NS, "ownerReferences": [{"apiVersion": "apps/v1",
            "kind": "Deployment", "name": "web", "uid": "5f0c6e0e-0000-4000-8000-000000000001", "controller": true}]},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]}}},
    }));
    let rs_owner = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f",
        "uid": k.uid("replicaset", "web-5d8f"), "controller": true});
    k.pod(
        "web-5d8f-x7k2p",
        WEB_IP,
        json!({"app": "web", "pod-template-hash": "5d8f"}),
        Some(rs_owner),
        early,
    );
    k.pod("api-0", SHARED_IP, json!({"app": "api"}), None, early);
    k.pod("gone-0", GONE_IP, json!({"app": "gone"}), None, early);
    k.apply(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "report-29001", "namespace": NS, "ownerReferences": [{"apiVersion": "batch/v1",
            "kind": "CronJob", "name": "report", "uid": "5f0c6e0e-0000-4000-8000-000000000002", "controller": true}]},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "app", "image": "registry.example/report:1"}]}}},
    }));
    let job_owner = json!({"apiVersion": "batch/v1", "kind": "Job", "name": "report-29001",
        "uid": k.uid("job", "report-29001"), "controller": true});
    k.pod(
        "report-29001-q8z4m",
        REPORT_IP,
        json!({"app": "report"}),
        Some(job_owner),
        early,
    );
    k.service("api");
    let api_ip = k.cluster_ip("api");
    k.slice("api", &[("api-0", SHARED_IP)]);

    let kubeconfig = k.api.kubeconfig();
    let collector = Collector::start_with(
        "kube",
        dir.path(),
        1,
        &[
            "--kubernetes",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--cluster-name",
            "test",
        ],
    )
    .unwrap();
    let mut sender = Sender::new(collector.listen).unwrap();
    let synced = wait_metrics(&collector, "the first lists", |m| {
        m.get("podflow_collector_kubernetes_synced", "") == Some(1)
    });
    let listed = events(&synced);
    assert_eq!(
        listed[&("pod".to_owned(), "listed".to_owned())],
        4,
        "{}",
        synced.text
    );
    assert_eq!(listed[&("job".to_owned(), "listed".to_owned())], 1);
    assert_eq!(listed[&("replicaset".to_owned(), "listed".to_owned())], 1);

    let web = |port: u16| SocketAddrV4::new(WEB_IP, port);
    let to = |ip: Ipv4Addr, port: u16| SocketAddrV4::new(ip, port);
    let mut want: Vec<Want> = Vec::new();

    // 1. What the first list told.
    let t = now_ms();
    send(
        &collector,
        &mut sender,
        &[
            Biflow::tcp(web(40001), to(api_ip, 80), t),
            Biflow::tcp(web(40002), to(SHARED_IP, 8080), t),
            Biflow::tcp(to(NODE_IP, 40003), to(SHARED_IP, 8080), t),
            Biflow::tcp(to(REPORT_IP, 40004), to(api_ip, 80), t),
        ],
    );
    want.extend([
        (40001, "orchestrator.cluster.name", json!("test")),
        (40001, "source.kubernetes.pod.name", json!("web-5d8f-x7k2p")),
        (40001, "source.kubernetes.workload.kind", json!("Deployment")),
        (40001, "source.kubernetes.workload.name", json!("web")),
        (40001, "source.kubernetes.node.name", json!("node-a")),
        (40001, "source.kubernetes.labels.app", json!("web")),
        (40001, "source.kubernetes.service.name", Value::Null),
        (40001, "destination.kubernetes.service.name", json!("api")),
        (40001, "destination.kubernetes.namespace", json!(NS)),
        (40001, "destination.kubernetes.pod.name", Value::Null),
        (40002, "destination.kubernetes.pod.name", json!("api-0")),
        (40002, "destination.kubernetes.workload.kind", json!("Pod")),
        (40002, "destination.kubernetes.service.name", json!("api")),
        (40003, "source.kubernetes.node.name", json!("node-a")),
        (40003, "source.kubernetes.pod.name", Value::Null),
        (40004, "source.kubernetes.workload.kind", json!("CronJob")),
        (40004, "source.kubernetes.workload.name", json!("report")),
    ]);

    // 2. Watched changes: a label, an address handed from a deleted pod to a new one, a Service's
    //    backends, a new Service with its backends.
    let before = collector.scrape().unwrap();
    k.tools
        .kubectl(&["label", "pod", "web-5d8f-x7k2p", "-n", NS, "version=v2"])
        .unwrap();
    k.delete_pod("api-0");
    k.pod("api-1", SHARED_IP, json!({"app": "api"}), None, now_ms());
    k.slice("api", &[("api-1", SHARED_IP)]);
    k.service("web");
    let web_ip = k.cluster_ip("web");
    k.slice("web", &[("web-5d8f-x7k2p", WEB_IP)]);
    wait_seen(
        &collector,
        &before,
        &[
            ("pod", "applied", 3),
            ("pod", "deleted", 1),
            ("endpointslice", "applied", 2),
            ("service", "applied", 1),
        ],
    );
    let t = now_ms();
    send(
        &collector,
        &mut sender,
        &[
            Biflow::tcp(web(40011), to(SHARED_IP, 8080), t),
            // Started while api-0 still held the address: api-0's.
            Biflow::tcp(web(40012), to(SHARED_IP, 8080), early + 100),
            Biflow::tcp(to(SHARED_IP, 40013), to(web_ip, 80), t),
            Biflow::tcp(to(SHARED_IP, 40014), web(8080), t),
        ],
    );
    want.extend([
        (40011, "source.kubernetes.labels.version", json!("v2")),
        (40011, "destination.kubernetes.pod.name", json!("api-1")),
        (40011, "destination.kubernetes.service.name", json!("api")),
        (40012, "destination.kubernetes.pod.name", json!("api-0")),
        (40013, "source.kubernetes.pod.name", json!("api-1")),
        (40013, "destination.kubernetes.service.name", json!("web")),
        (40014, "destination.kubernetes.pod.name", json!("web-5d8f-x7k2p")),
        (40014, "destination.kubernetes.service.name", json!("web")),
    ]);

    // 3. Deletions: a Service goes, another loses its backends.
    let before = collector.scrape().unwrap();
    k.tools.kubectl(&["delete", "service", "api", "-n", NS]).unwrap();
    k.slice("web", &[]);
    wait_seen(
        &collector,
        &before,
        &[("service", "deleted", 1), ("endpointslice", "applied", 1)],
    );
    let t = now_ms();
    send(
        &collector,
        &mut sender,
        &[
            Biflow::tcp(web(40021), to(api_ip, 80), t),
            Biflow::tcp(to(SHARED_IP, 40022), web(8080), t),
        ],
    );
    want.extend([
        (40021, "source.kubernetes.pod.name", json!("web-5d8f-x7k2p")),
        (40021, "destination.kubernetes", Value::Null),
        (40022, "destination.kubernetes.pod.name", json!("web-5d8f-x7k2p")),
        (40022, "destination.kubernetes.service.name", Value::Null),
    ]);

    // 4. The collector frozen while the API server is killed and restarted: its watches break with
    //    nothing in flight.
    let before = collector.scrape().unwrap();
    let pid = Pid::from_raw(i32::try_from(collector.pid()).unwrap()).unwrap();
    kill_process(pid, Signal::STOP).unwrap();
    let thaw = Thaw(pid);
    k.api.kill_apiserver().unwrap();
    k.api.restart_apiserver().unwrap();
    // What changes while no watch looks, learned only from the relist.
    k.delete_pod("api-1");
    k.delete_pod("gone-0");
    k.pod("db-0", SHARED_IP, json!({"app": "db"}), None, now_ms());
    k.tools
        .kubectl(&[
            "label",
            "pod",
            "web-5d8f-x7k2p",
            "-n",
            NS,
            "version=v3",
            "--overwrite",
        ])
        .unwrap();
    k.service("db");
    let db_ip = k.cluster_ip("db");
    k.slice("db", &[("db-0", SHARED_IP)]);
    // One more write, so that etcd's revision is past every version the collector saw.
    k.apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bump", "namespace": NS}}));
    let revision = k.api.compact_etcd().unwrap();
    k.api.restart_apiserver().unwrap();
    drop(thaw);

    let relisted = wait_metrics(
        &collector,
        "410 Gone and a relist of pods, services and slices",
        |m| {
            ["pod", "service", "endpointslice"].iter().all(|kind| {
                value(m, "podflow_collector_kubernetes_watch_expired_total", kind) >= 1
                    && value(m, "podflow_collector_kubernetes_lists_total", kind) >= 2
            })
        },
    );
    assert!(
        value(&relisted, "podflow_collector_kubernetes_relists_total", "pod")
            > value(&before, "podflow_collector_kubernetes_relists_total", "pod"),
        "{}",
        relisted.text
    );
    let t = now_ms();
    send(
        &collector,
        &mut sender,
        &[
            Biflow::tcp(web(40031), to(SHARED_IP, 8080), t),
            Biflow::tcp(web(40032), to(db_ip, 80), t),
            Biflow::tcp(web(40033), to(GONE_IP, 8080), t),
            Biflow::tcp(web(40034), to(GONE_IP, 8080), early + 100),
        ],
    );
    want.extend([
        (40031, "source.kubernetes.labels.version", json!("v3")),
        (40031, "destination.kubernetes.pod.name", json!("db-0")),
        (40031, "destination.kubernetes.labels.app", json!("db")),
        (40031, "destination.kubernetes.service.name", json!("db")),
        (40032, "destination.kubernetes.service.name", json!("db")),
        (40033, "destination.kubernetes", Value::Null),
        (40034, "destination.kubernetes.pod.name", json!("gone-0")),
    ]);

    let stopped = collector.stop().unwrap();
    let docs = by_port(&stopped.docs);
    assert_eq!(docs.len() as u64, sender.sent(), "{:?}", docs.keys());
    let mut wrong = Vec::new();
    for (port, field, value) in &want {
        let doc = docs[&u64::from(*port)];
        let got = at(doc, field);
        if got != value {
            wrong.push(format!("flow from port {port}: {field} is {got}, want {value}"));
        }
    }
    assert!(wrong.is_empty(), "{}\n\nlog:\n{}", wrong.join("\n"), stopped.log);

    // The log tells the same story: 410 Gone, then the pods listed again.
    let expired = stopped
        .log
        .find("the watch of Pods expired (410 Gone)")
        .unwrap_or_else(|| panic!("no 410 in the log:\n{}", stopped.log));
    let relist = stopped
        .log
        .find("listed Pods again")
        .unwrap_or_else(|| panic!("no relist in the log:\n{}", stopped.log));
    assert!(expired < relist, "{}", stopped.log);
    for line in stopped
        .log
        .lines()
        .filter(|l| l.contains("watch") || l.contains("listed"))
    {
        eprintln!("collector: {line}");
    }
    eprintln!(
        "{} flows attributed as expected ({} checks); etcd compacted at revision {revision}",
        docs.len(),
        want.len()
    );
}

/// Sends SIGCONT to the frozen collector when dropped, so that a failing step does not leave it stopped.
struct Thaw(Pid);

impl Drop for Thaw {
    fn drop(&mut self) {
        let _ = kill_process(self.0, Signal::CONT);
    }
}
