//! The API provider against a fake API server on loopback: initial lists, watch events, bookmarks,
//! and a relist after 410 Gone that deletes what vanished while no watch was looking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fake_apiserver;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fake_apiserver::{Fake, insert, remove};
use podflow_collector::k8s::api::{self, ApiProvider, ApiSettings};
use podflow_collector::k8s::{IndexSettings, MetadataProvider};
use podflow_collector::model::EndpointKind;
use serde_json::{Value, json};

const PODS: &str = "/api/v1/pods";

/// 2024-05-01T10:00:00Z: the test clock starts here and moves only when a test moves it.
const T0: u64 = 1_714_557_600_000;

fn pod(name: &str, ip: &str, owner: Option<(&str, &str, &str)>) -> Value {
    let mut p = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"),
            "creationTimestamp": "2024-05-01T09:00:00Z", "labels": {"app": name}},
        "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "startTime": "2024-05-01T09:00:01Z"}
    });
    if let Some((kind, name, uid)) = owner {
        p["metadata"]["ownerReferences"] =
            json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid, "controller": true}]);
    }
    p
}

fn seed_cluster(fake: &Fake) {
    fake.seed(
        PODS,
        pod("web-abc-1", "10.244.0.1", Some(("ReplicaSet", "web-abc", "rs-1"))),
    );
    fake.seed(
        PODS,
        pod("db-0", "10.244.0.2", Some(("StatefulSet", "db", "ss-1"))),
    );
    fake.seed("/apis/apps/v1/replicasets", json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web-abc", "namespace": "shop", "uid": "rs-1",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d-1", "controller": true}]}}));
    fake.seed(
        "/api/v1/nodes",
        json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "node-a", "uid": "n-1", "creationTimestamp": "2024-04-01T00:00:00Z"},
        "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.2"}]}}),
    );
    fake.seed("/api/v1/services", json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop", "uid": "s-1", "creationTimestamp": "2024-04-01T00:00:00Z"},
        "spec": {"clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"]}}));
    fake.seed("/apis/discovery.k8s.io/v1/endpointslices", json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-x1", "namespace": "shop", "uid": "es-1", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.0.1"], "targetRef": {"kind": "Pod", "name": "web-abc-1", "namespace": "shop"}}]}));
}

struct Harness {
    fake: Arc<Fake>,
    provider: ApiProvider,
    clock: Arc<AtomicU64>,
}

impl Harness {
    fn now(&self) -> u64 {
        self.clock.load(Ordering::SeqCst)
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1_000, Ordering::SeqCst) + 1_000
    }

    fn pod_at(&self, ip: &str, at: u64) -> Option<String> {
        let ip: IpAddr = ip.parse().unwrap();
        self.provider
            .lookup(ip, at)
            .and_then(|e| e.pod_name.as_deref().map(str::to_owned))
    }

    /// Waits (30 s at most) until `cond` holds of the provider, re-checking whenever it applied events.
    async fn until(&self, what: &str, cond: impl Fn(&Harness) -> bool) {
        let mut updates = self.provider.updates();
        let wait = updates.wait_for(|_| cond(self));
        match tokio::time::timeout(Duration::from_secs(30), wait).await {
            Ok(r) => {
                r.unwrap();
            }
            Err(_) => panic!(
                "timed out waiting for {what}; status {:?}",
                self.provider.status()
            ),
        }
    }
}

fn start(fake: Arc<Fake>, client: kube::Client) -> Harness {
    let clock = Arc::new(AtomicU64::new(T0));
    let read = Arc::clone(&clock);
    let settings = ApiSettings {
        index: IndexSettings {
            retention_ms: None,
            max_labels: 16,
        },
        clock: Arc::new(move || read.load(Ordering::SeqCst)),
        observer: None,
    };
    let provider = ApiProvider::spawn(client, settings).unwrap();
    Harness {
        fake,
        provider,
        clock,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_then_follows_watches_and_relists_after_410_gone() {
    let (fake, url) = Fake::start().await;
    seed_cluster(&fake);
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let h = start(fake, client);

    h.until("the first lists", |h| h.provider.synced()).await;
    let web = h.provider.lookup("10.244.0.1".parse().unwrap(), h.now()).unwrap();
    assert_eq!(web.pod_name.as_deref(), Some("web-abc-1"));
    assert_eq!(
        (web.workload_kind.as_deref(), web.workload_name.as_deref()),
        (Some("Deployment"), Some("web"))
    );
    assert_eq!(web.service_name.as_deref(), Some("web"));
    let db = h.provider.lookup("10.244.0.2".parse().unwrap(), h.now()).unwrap();
    assert_eq!(db.workload_kind.as_deref(), Some("StatefulSet"));
    let node = h.provider.lookup("172.18.0.2".parse().unwrap(), h.now()).unwrap();
    assert_eq!(
        (node.kind, node.node_name.as_deref()),
        (EndpointKind::Node, Some("node-a"))
    );
    let svc = h.provider.lookup("10.96.0.5".parse().unwrap(), h.now()).unwrap();
    assert_eq!(
        (svc.kind, svc.service_name.as_deref()),
        (EndpointKind::Service, Some("web"))
    );

    // Watch events: an added pod, then a deleted one, each at the time the provider saw it.
    let added_at = h.tick();
    h.fake.apply(
        PODS,
        pod("cache-0", "10.244.0.3", Some(("StatefulSet", "cache", "ss-2"))),
    );
    h.until("the added pod", |h| h.pod_at("10.244.0.3", h.now()).is_some())
        .await;
    let deleted_at = h.tick();
    h.fake.delete(PODS, "db-0");
    h.until("the deleted pod to end", |h| {
        h.pod_at("10.244.0.2", h.now()).is_none()
    })
    .await;
    assert_eq!(h.pod_at("10.244.0.2", deleted_at - 1).as_deref(), Some("db-0"));
    assert!(added_at < deleted_at);

    // History compacted behind the watch's back: web-abc-1 went away and worker-0 came. The watch
    // resumes from a version that expired, gets 410 Gone, and the provider lists again.
    let relisted_at = h.tick();
    h.fake.expire(PODS, |s, path| {
        remove(s, path, "web-abc-1");
        insert(s, path, pod("worker-0", "10.244.0.4", None));
    });
    h.until("the relist", |h| {
        h.pod_at("10.244.0.4", h.now()).is_some() && h.pod_at("10.244.0.1", h.now()).is_none()
    })
    .await;
    let status = h.provider.status();
    assert_eq!(status.relists, 1, "{status:?}");
    assert!(status.errors >= 1, "the 410 is counted: {status:?}");
    assert_eq!(status.index.pods, 2, "cache-0 and worker-0");
    assert_eq!(
        h.pod_at("10.244.0.1", relisted_at - 1).as_deref(),
        Some("web-abc-1"),
        "history is kept"
    );
    let worker = h.provider.lookup("10.244.0.4".parse().unwrap(), h.now()).unwrap();
    assert_eq!(
        (worker.workload_kind.as_deref(), worker.workload_name.as_deref()),
        (Some("Pod"), Some("worker-0"))
    );
    h.fake.read(|s| {
        assert_eq!(s.gone.get(PODS), Some(&1));
        assert_eq!(s.lists.get(PODS), Some(&2), "listed again after 410");
        assert_eq!(
            s.lists.get("/api/v1/nodes"),
            Some(&1),
            "other kinds were not relisted"
        );
    });

    // The relisted watch goes on.
    h.tick();
    h.fake.apply(PODS, pod("late-0", "10.244.0.5", None));
    h.until("a pod after the relist", |h| {
        h.pod_at("10.244.0.5", h.now()).is_some()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookmarks_move_the_resume_point_so_an_ended_watch_needs_no_relist() {
    let (fake, url) = Fake::start().await;
    seed_cluster(&fake);
    // This time through a kubeconfig file, as `--kubeconfig` would.
    let dir =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("k8s-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: nobody\ncurrent-context: fake\nusers:\n- name: nobody\n  user: {{}}\n"
    );
    std::fs::write(&kubeconfig, yaml).unwrap();
    let client = api::client(Some(&kubeconfig)).await.unwrap();
    let h = start(fake, client);
    h.until("the first lists", |h| h.provider.synced()).await;

    // The cluster moves on without pod events; the pod watch is told so with a BOOKMARK...
    h.fake.advance();
    h.fake
        .until("a bookmark on the pod watch", |s| {
            s.bookmarks.get(PODS).is_some_and(|n| *n >= 1)
        })
        .await;
    // ...so when history is compacted up to now and the watch ends, it resumes without a relist.
    h.fake.expire(PODS, |_, _| {});
    h.fake
        .until("the pod watch to resume", |s| {
            s.watches.get(PODS).is_some_and(|n| *n >= 2)
        })
        .await;
    h.tick();
    h.fake.apply(PODS, pod("api-0", "10.244.0.9", None));
    h.until("the pod added after the resume", |h| {
        h.pod_at("10.244.0.9", h.now()).is_some()
    })
    .await;

    assert_eq!(h.provider.status().relists, 0);
    h.fake.read(|s| {
        assert_eq!(
            s.gone.get(PODS),
            None,
            "no 410: the bookmark's version was not compacted"
        );
        assert_eq!(s.lists.get(PODS), Some(&1));
    });
    assert_eq!(
        h.pod_at("10.244.0.1", h.now()).as_deref(),
        Some("web-abc-1"),
        "nothing was lost"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn spawn_outside_a_runtime_is_an_error_not_a_panic() {
    let (_fake, url) = Fake::start().await;
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let outside = std::thread::spawn(move || ApiProvider::spawn(client, ApiSettings::default()).is_err());
    assert!(outside.join().unwrap());
}
