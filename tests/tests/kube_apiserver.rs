//! The real Kubernetes API server of `scripts/kube-apiserver.sh`, driven through its REST API over HTTPS
//! with the kubeconfig's token and CA: objects are stored and read back, a watch replays what changed
//! after a resourceVersion, and after an etcd compaction and an API server restart a watch from that old
//! resourceVersion is answered 410 Gone, as a collector must expect.

use std::io::{BufRead, BufReader};

use podflow_e2e::kubeapi::KubeApi;
use serde_json::{Value, json};

const NAMESPACE: &str = "podflow-kube-test";

fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "labels": { "app": "web" } },
        "spec": { "containers": [{ "name": "web", "image": "registry.example/web:1" }] }
    })
}

/// Opens a watch on `path` and returns the response status and its first event (or, if the status is
/// not 200, the Status body).
fn first_watch_event(api: &KubeApi, path: &str) -> anyhow::Result<(u16, Value)> {
    let response = api
        .agent()
        .get(format!("{}{path}", api.server()))
        .header("Authorization", format!("Bearer {}", api.token()))
        .call()?;
    let status = response.status().as_u16();
    let mut line = String::new();
    BufReader::new(response.into_body().into_reader()).read_line(&mut line)?;
    Ok((status, serde_json::from_str(&line)?))
}

#[test]
fn objects_watches_and_410_gone_after_compaction() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let api = KubeApi::start(dir.path())?;
    assert!(
        api.server().starts_with("https://127.0.0.1:"),
        "server {}",
        api.server()
    );

    let (status, body) = api.get("/version")?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["major"], "1", "{body}");

    let (status, body) = api.post(
        "/api/v1/namespaces",
        &json!({ "metadata": { "name": NAMESPACE } }),
    )?;
    assert_eq!(status, 201, "{body}");
    let pods = format!("/api/v1/namespaces/{NAMESPACE}/pods");
    let (status, created) = api.post(&pods, &pod("web-1"))?;
    assert_eq!(status, 201, "{created}");

    let (status, ns) = api.get(&format!("/api/v1/namespaces/{NAMESPACE}"))?;
    assert_eq!(status, 200, "{ns}");
    assert_eq!(ns["status"]["phase"], "Active", "{ns}");
    let (status, read) = api.get(&format!("{pods}/web-1"))?;
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["metadata"]["uid"], created["metadata"]["uid"], "{read}");
    assert_eq!(
        read["spec"]["containers"][0]["image"], "registry.example/web:1",
        "{read}"
    );
    // No scheduler or kubelet: the pod is stored and stays Pending.
    assert_eq!(read["status"]["phase"], "Pending", "{read}");

    // A Service and an EndpointSlice for it, found again by the label the collector selects on.
    let service = json!({
        "metadata": { "name": "web" },
        "spec": { "selector": { "app": "web" }, "ports": [{ "port": 80, "targetPort": 8080 }] }
    });
    let (status, body) = api.post(&format!("/api/v1/namespaces/{NAMESPACE}/services"), &service)?;
    assert_eq!(status, 201, "{body}");
    assert!(
        body["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.")),
        "{body}"
    );
    let slices = format!("/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices");
    let slice = json!({
        "metadata": { "name": "web-1", "labels": { "kubernetes.io/service-name": "web" } },
        "addressType": "IPv4",
        "ports": [{ "port": 8080, "protocol": "TCP" }],
        "endpoints": [{ "addresses": ["10.244.0.5"], "targetRef": { "kind": "Pod", "name": "web-1" } }]
    });
    let (status, body) = api.post(&slices, &slice)?;
    assert_eq!(status, 201, "{body}");
    let (status, list) = api.get(&format!(
        "{slices}?labelSelector=kubernetes.io%2Fservice-name%3Dweb"
    ))?;
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        list["items"][0]["endpoints"][0]["addresses"][0], "10.244.0.5",
        "{list}"
    );

    // A watch from the first pod's resourceVersion replays what came after it.
    let old = created["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (status, body) = api.post(&pods, &pod("web-2"))?;
    assert_eq!(status, 201, "{body}");
    let watch = format!("{pods}?watch=1&resourceVersion={old}&timeoutSeconds=20");
    let (status, event) = first_watch_event(&api, &watch)?;
    assert_eq!(status, 200, "{event}");
    assert_eq!(event["type"], "ADDED", "{event}");
    assert_eq!(event["object"]["metadata"]["name"], "web-2", "{event}");

    // Compacted away in etcd and gone from the restarted server's watch cache: 410.
    let revision = api.compact_etcd()?;
    assert!(
        old.parse::<u64>().is_ok_and(|old| revision > old),
        "compacted at {revision}, old {old}"
    );
    api.restart_apiserver()?;
    let (status, event) = first_watch_event(&api, &watch)?;
    let gone = status == 410 || (event["type"] == "ERROR" && event["object"]["code"] == 410);
    assert!(
        gone,
        "watch from {old} after compaction at {revision}: {status} {event}"
    );
    // Reads at the current state still work after the restart.
    let (status, read) = api.get(&format!("{pods}/web-2"))?;
    assert_eq!(status, 200, "{read}");
    Ok(())
}
