//! `podflow-collector webhook` over real HTTPS: a certificate made by openssl, requests sent by curl
//! trusting only that CA, as the API server would send them.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use podflow_e2e::webhook::Webhook;
use serde_json::{Value, json};

/// curl against the webhook: (HTTP status, body).
fn curl(dir: &Path, url: &str, body: Option<&[u8]>) -> (u16, Vec<u8>) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "--cacert"])
        .arg(dir.join("ca.crt"));
    cmd.args(["-o", "-", "-w", "\n%{http_code}"]);
    if body.is_some() {
        cmd.args([
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            "@-",
        ]);
    }
    cmd.arg(url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let (Some(b), Some(mut stdin)) = (body, child.stdin.take()) {
        use std::io::Write as _;
        stdin.write_all(b).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let text = out.stdout;
    let split = text.iter().rposition(|&c| c == b'\n').unwrap_or(0);
    let status = String::from_utf8_lossy(&text[split..])
        .trim()
        .parse()
        .unwrap_or(0);
    (status, text[..split].to_vec())
}

fn review(annotations: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "b3a1f2c4-0000-4000-8000-000000000001",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "operation": "CREATE",
            "object": {"metadata": {"name": "web-1", "annotations": annotations},
                       "spec": {"containers": [{"name": "web", "image": "nginx"}]}},
        }
    }))
    .unwrap()
}

#[test]
fn webhook_answers_admission_reviews_over_tls_and_refuses_garbage_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let webhook = Webhook::start(dir.path()).unwrap();
    let port = webhook.port;
    let base = format!("https://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while curl(dir.path(), &format!("{base}/healthz"), None).0 != 200 {
        assert!(Instant::now() < deadline, "webhook did not answer /healthz");
        std::thread::yield_now();
    }

    let (status, body) = curl(dir.path(), &format!("{base}/mutate"), Some(&review(json!({}))));
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["kind"], "AdmissionReview");
    assert_eq!(answer["response"]["uid"], "b3a1f2c4-0000-4000-8000-000000000001");
    assert_eq!(answer["response"]["allowed"], true);
    assert_eq!(answer["response"]["patchType"], "JSONPatch");

    let opt_out = review(json!({"podflow.io/inject": "false"}));
    let (status, body) = curl(dir.path(), &format!("{base}/mutate"), Some(&opt_out));
    assert_eq!(status, 200);
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert!(answer["response"].get("patch").is_none(), "{answer}");

    let (status, body) = curl(dir.path(), &format!("{base}/mutate"), Some(b"{\"kind\": 3"));
    assert_eq!(status, 400);
    assert!(
        String::from_utf8_lossy(&body).contains("not JSON"),
        "{}",
        String::from_utf8_lossy(&body)
    );

    let (status, body) = curl(dir.path(), &format!("{base}/metrics"), None);
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("podflow_webhook_reviews_total{decision=\"injected\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("podflow_webhook_reviews_total{decision=\"opted_out\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("podflow_webhook_refused_total{reason=\"not_json\"} 1"),
        "{text}"
    );
}
