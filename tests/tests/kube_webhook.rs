//! Sidecar injection through a real kube-apiserver: the webhook registered by URL with its CA, as the
//! chart registers it by Service. A pod created in a namespace labelled `podflow.io/inject=enabled` is
//! stored with the probe container; a pod elsewhere, and a pod that opts out, are stored as they were
//! sent; with the webhook down and `failurePolicy: Ignore`, pods are still created.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use base64::Engine as _;
use podflow_e2e::kubeapi::KubeApi;
use podflow_e2e::webhook::Webhook;
use serde_json::{Value, json};

fn namespace(api: &KubeApi, name: &str, inject: bool) {
    let mut ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    if inject {
        ns["metadata"]["labels"] = json!({"podflow.io/inject": "enabled"});
    }
    let (status, body) = api.post("/api/v1/namespaces", &ns).unwrap();
    assert_eq!(status, 201, "{body}");
}

/// Creates a pod and returns the names of the containers the API server stored.
fn create_pod(api: &KubeApi, ns: &str, name: &str, annotations: Value) -> Vec<String> {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
    });
    let (status, body) = api.post(&format!("/api/v1/namespaces/{ns}/pods"), &pod).unwrap();
    assert_eq!(status, 201, "creating {ns}/{name}: {body}");
    body["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn pods_of_labelled_namespaces_get_the_probe_and_ignore_keeps_pods_coming_when_it_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let api = KubeApi::start(&dir.path().join("kube")).unwrap();
    std::fs::create_dir_all(dir.path().join("tls")).unwrap();
    let mut webhook = Webhook::start(&dir.path().join("tls")).unwrap();

    let config = json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "podflow-sidecar-injector"},
        "webhooks": [{
            "name": "inject.podflow.io",
            "clientConfig": {
                "url": format!("https://127.0.0.1:{}/mutate", webhook.port),
                "caBundle": base64::engine::general_purpose::STANDARD.encode(webhook.ca_pem().unwrap()),
            },
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
            "namespaceSelector": {"matchLabels": {"podflow.io/inject": "enabled"}},
            "failurePolicy": "Ignore",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 5,
        }],
    });
    let (status, body) = api
        .post(
            "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
            &config,
        )
        .unwrap();
    assert_eq!(status, 201, "{body}");
    namespace(&api, "shop", true);
    namespace(&api, "plain", false);

    // The API server picks the configuration up from its informer shortly after it is stored: until
    // then pods are admitted without it. Warm-up pods are created until one comes back injected.
    let deadline = Instant::now() + Duration::from_secs(60);
    for n in 0.. {
        let containers = create_pod(&api, "shop", &format!("warm-up-{n}"), json!({}));
        if containers.iter().any(|c| c == "podflow-probe") {
            break;
        }
        assert!(Instant::now() < deadline, "no pod was injected within 60 s");
        std::thread::yield_now();
    }

    assert_eq!(
        create_pod(&api, "shop", "web-1", json!({})),
        ["web", "podflow-probe"]
    );
    let (status, stored) = api.get("/api/v1/namespaces/shop/pods/web-1").unwrap();
    assert_eq!(status, 200);
    let probe = &stored["spec"]["containers"][1];
    assert_eq!(probe["image"], "podflow/podflow:test");
    assert_eq!(
        probe["securityContext"]["capabilities"]["add"],
        json!(["NET_RAW"])
    );
    assert_eq!(stored["metadata"]["annotations"]["podflow.io/injected"], "true");
    assert!(
        probe["env"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["name"] == "PODFLOW_NODE_NAME"
                && e["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"),
        "{probe}"
    );

    assert_eq!(create_pod(&api, "plain", "web-1", json!({})), ["web"]);
    assert_eq!(
        create_pod(&api, "shop", "opted-out", json!({"podflow.io/inject": "false"})),
        ["web"]
    );

    webhook.kill();
    assert_eq!(
        create_pod(&api, "shop", "while-down", json!({})),
        ["web"],
        "with the webhook down and failurePolicy Ignore the pod is created as sent"
    );
}
