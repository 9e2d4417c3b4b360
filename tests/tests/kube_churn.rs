//! Inventory churn against a real kube-apiserver: 2,000 pods created, given an address (the
//! status subresource, as a kubelet would) and deleted, in rounds of 200 that reuse the same 200
//! addresses, while `podflow-collector --kubernetes --history 10` watches. The index keeps the live
//! objects and the spans that ended within the history (`podflow_collector_kubernetes_address_spans`
//! falls back to the live ones once the history has passed), RSS grows by at most 64 MiB, the log
//! says nothing per pod (at most 100 lines a minute in all), and a flow from a pod that came after the
//! churn, on an address every round used, is attributed to that pod and no other.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use podflow_e2e::collector::{Collector, Metrics};
use podflow_e2e::expect::UtcTime;
use podflow_e2e::kubeapi::KubeApi;
use podflow_e2e::peer::wait_until;
use podflow_e2e::sender::{Biflow, Sender};
use serde_json::{Value, json};

const NS: &str = "churn";
const ROUNDS: u32 = 10;
const PODS: u32 = 200;
const NODE_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 60, 10);

fn now_ms() -> u64 {
    u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

fn ip(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 244, 7, u8::try_from(i + 1).unwrap())
}

fn ok(what: &str, (status, body): (u16, Value)) {
    assert!((200..300).contains(&status), "{what}: HTTP {status}: {body}");
}

/// Creates pod `name` bound to node-a and gives it `addr` now: two watch events.
fn pod(api: &KubeApi, name: &str, addr: Ipv4Addr) {
    let pods = format!("/api/v1/namespaces/{NS}/pods");
    let body = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name.rsplit_once('-').map_or(name, |p| p.0)}},
        "spec": {"nodeName": "node-a", "containers": [{"name": "app", "image": "registry.example/app:1"}]},
    });
    ok(name, api.post(&pods, &body).unwrap());
    let at = format!("{}Z", &UtcTime::from_millis(now_ms()).iso_millis()[..19]);
    let status = json!({"status": {
        "phase": "Running", "hostIP": NODE_IP.to_string(), "podIP": addr.to_string(),
        "podIPs": [{"ip": addr.to_string()}], "startTime": at,
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": at}],
    }});
    ok(
        name,
        api.merge_patch(&format!("{pods}/{name}/status"), &status)
            .unwrap(),
    );
}

fn events(m: &Metrics, event: &str) -> u64 {
    m.get(
        "podflow_collector_kubernetes_events_total",
        &format!("kind=\"pod\",event=\"{event}\""),
    )
    .unwrap_or(0)
}

#[test]
fn pods_coming_and_going_cost_bounded_memory_and_log() {
    let dir = tempfile::tempdir().unwrap();
    let api = KubeApi::start(&dir.path().join("kube")).unwrap();
    let started = Instant::now();
    ok(
        "namespace",
        api.post("/api/v1/namespaces", &json!({"metadata": {"name": NS}}))
            .unwrap(),
    );
    ok(
        "node",
        api.post("/api/v1/nodes", &json!({"metadata": {"name": "node-a"}}))
            .unwrap(),
    );
    let kubeconfig = api.kubeconfig();
    let mut collector = Collector::start_with(
        "churn",
        dir.path(),
        1,
        &[
            "--kubernetes",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--history",
            "10",
        ],
    )
    .unwrap();
    let poll = |what: &str, done: &mut dyn FnMut(&Metrics) -> bool| {
        let mut last = String::new();
        let r = wait_until(what, Duration::from_secs(120), || {
            let m = collector.scrape()?;
            let d = done(&m);
            last = m.text;
            Ok(d)
        });
        if let Err(e) = r {
            let kube: Vec<&str> = last
                .lines()
                .filter(|l| l.starts_with("podflow_collector_kubernetes_"))
                .collect();
            panic!("{e:#}; last metrics:\n{}", kube.join("\n"));
        }
    };
    poll("the first lists", &mut |m| {
        m.get("podflow_collector_kubernetes_synced", "") == Some(1)
    });
    let before = collector.rss_kib().unwrap();

    let mut peak_spans = 0;
    for round in 0..ROUNDS {
        for i in 0..PODS {
            pod(&api, &format!("job{round}-{i}"), ip(i));
        }
        for i in 0..PODS {
            let path = format!("/api/v1/namespaces/{NS}/pods/job{round}-{i}");
            ok("delete", api.delete_now(&path).unwrap());
        }
        let deleted = u64::from((round + 1) * PODS);
        poll("the round's deletions seen", &mut |m| {
            events(m, "deleted") >= deleted
        });
        let m = collector.scrape().unwrap();
        peak_spans = peak_spans.max(
            m.get("podflow_collector_kubernetes_address_spans", "")
                .unwrap_or(0),
        );
    }
    let after = collector.rss_kib().unwrap();
    println!(
        "{} pods created and deleted: RSS {before} -> {after} KiB, at most {peak_spans} address spans held",
        ROUNDS * PODS
    );
    assert!(
        after.saturating_sub(before) <= 64 * 1024,
        "RSS {before} -> {after} KiB"
    );
    assert!(peak_spans > 0);

    // A pod after the churn, on an address every round used.
    pod(&api, "steady-0", ip(0));
    let steady = format!("/api/v1/namespaces/{NS}/pods/steady-0");
    // Once the history has passed, the index holds only the live spans (the steady pod's, the
    // node's); it prunes as events arrive, so each poll changes a label of the steady pod.
    let mut tick = 0u32;
    poll("the ended spans pruned", &mut |m| {
        tick += 1;
        let label = json!({"metadata": {"labels": {"tick": tick.to_string()}}});
        let _ = api.merge_patch(&steady, &label);
        m.get("podflow_collector_kubernetes_address_spans", "")
            .unwrap_or(u64::MAX)
            <= 4
            && m.get("podflow_collector_kubernetes_objects", "kind=\"pod\"") == Some(1)
    });

    let mut sender = Sender::new(collector.listen).unwrap();
    let flow = Biflow::tcp(
        SocketAddrV4::new(ip(0), 40_000),
        SocketAddrV4::new(Ipv4Addr::new(1, 1, 1, 1), 443),
        now_ms(),
    );
    sender.send(&[flow]).unwrap();
    collector
        .wait_records("exporter=\"127.0.0.1\",protocol=\"ipfix\"", 1)
        .unwrap();
    let stopped = collector.stop().unwrap();
    assert_eq!(stopped.docs.len(), 1);
    let doc = &stopped.docs[0];
    assert_eq!(doc["source"]["kubernetes"]["pod"]["name"], "steady-0", "{doc}");
    let minutes = started.elapsed().as_secs() / 60;
    let lines = stopped.log.lines().count() as u64;
    assert!(
        lines <= (minutes + 1) * 100,
        "{lines} log lines in {minutes} minutes:\n{}",
        stopped.log.lines().take(30).collect::<Vec<_>>().join("\n")
    );
}
