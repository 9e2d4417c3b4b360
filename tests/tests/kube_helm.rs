//! `helm install` of charts/podflow into a real kube-apiserver, once per values file of
//! `charts/podflow/ci/`, each in its own release and namespace: the API server validates and admits
//! every object the chart renders (no kubelet runs, so nothing starts), and `kubectl get` finds them all.
//!
//! The chart's optional custom resources are checked both ways: without their CRDs the ServiceMonitor is
//! skipped (the chart asks `.Capabilities`) and a cert-manager Certificate is refused by name (the user
//! asked for cert-manager, which is not there); with the upstream CRDs installed (cert-manager and
//! prometheus-operator, `scripts/k8s-crds.sh`) both are created and stored.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use podflow_e2e::kubeapi::KubeApi;
use podflow_e2e::kubectl::{self, Tools};
use serde_json::Value;

fn chart() -> PathBuf {
    kubectl::repo_root().join("charts/podflow")
}

/// Every values file of the chart's ci/ directory, by name.
fn ci_values() -> Vec<(String, PathBuf)> {
    let mut files: Vec<(String, PathBuf)> = std::fs::read_dir(chart().join("ci"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            (stem.trim_end_matches("-values").to_owned(), p)
        })
        .collect();
    files.sort();
    files
}

fn install(tools: &Tools, release: &str, values: &Path) -> std::process::Output {
    tools
        .output(
            "helm",
            &[
                "install",
                release,
                chart().to_str().unwrap(),
                "--namespace",
                release,
                "--create-namespace",
                "--values",
                values.to_str().unwrap(),
                "--timeout",
                "60s",
            ],
            None,
        )
        .unwrap()
}

/// What helm applied for a release, read back from the API server: every object of its manifest.
fn stored_objects(tools: &Tools, release: &str) -> (usize, Vec<Value>) {
    let manifest = tools
        .helm(&["get", "manifest", release, "--namespace", release])
        .unwrap();
    let rendered = manifest.lines().filter(|l| l.starts_with("kind:")).count();
    let list: Value = serde_json::from_str(
        &tools
            .run(
                "kubectl",
                &["get", "-f", "-", "-o", "json"],
                Some(manifest.as_bytes()),
            )
            .unwrap(),
    )
    .unwrap();
    (rendered, list["items"].as_array().cloned().unwrap_or_default())
}

fn kinds(objects: &[Value]) -> BTreeSet<String> {
    objects
        .iter()
        .filter_map(|o| o["kind"].as_str().map(str::to_owned))
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name_suffix: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| {
            o["kind"] == kind
                && o["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with(name_suffix))
        })
        .unwrap_or_else(|| panic!("no {kind} *{name_suffix} among {:?}", kinds(objects)))
}

/// What holds for every release: the probe, the collector, its Service and its RBAC as stored.
fn check_common(release: &str, objects: &[Value]) {
    let probe = find(objects, "DaemonSet", "-probe");
    let pod = &probe["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true, "{release}: {pod}");
    let security = &pod["containers"][0]["securityContext"];
    assert_eq!(security["privileged"], false, "{release}: {security}");
    assert_eq!(security["readOnlyRootFilesystem"], true, "{release}: {security}");
    assert_eq!(
        security["capabilities"]["add"],
        serde_json::json!(["NET_RAW", "NET_ADMIN"]),
        "{release}: {security}"
    );
    assert!(
        pod["tolerations"].as_array().is_some_and(|t| t
            .iter()
            .any(|t| t["operator"] == "Exists" && t.get("key").is_none())),
        "{release}: the probe tolerates every taint: {}",
        pod["tolerations"]
    );

    let service = objects
        .iter()
        .find(|o| {
            o["kind"] == "Service"
                && o["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with("-collector"))
        })
        .unwrap_or_else(|| panic!("{release}: no collector Service"));
    let ports: BTreeSet<(i64, String)> = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["port"].as_i64().unwrap(),
                p["protocol"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for port in [(4739, "UDP"), (2055, "UDP"), (9478, "TCP")] {
        assert!(
            ports.contains(&(port.0, port.1.to_owned())),
            "{release}: {ports:?}"
        );
    }
    assert!(
        service["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.")),
        "{release}: the API server allocated no ClusterIP: {service}"
    );

    let role = find(objects, "ClusterRole", "-collector");
    let mut granted = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        let verbs: BTreeSet<&str> = rule["verbs"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if ["get", "list", "watch"].iter().all(|v| verbs.contains(v)) {
            for r in rule["resources"].as_array().unwrap() {
                granted.insert(r.as_str().unwrap().to_owned());
            }
        }
    }
    for resource in [
        "pods",
        "services",
        "endpointslices",
        "nodes",
        "replicasets",
        "jobs",
    ] {
        assert!(granted.contains(resource), "{release}: {granted:?}");
    }
}

#[test]
fn every_ci_values_file_installs_into_a_real_api_server() {
    let dir = tempfile::tempdir().unwrap();
    let api = KubeApi::start(dir.path()).unwrap();
    let tools = Tools::new(&api.kubeconfig()).unwrap();
    // Grafana's namespace, where one values file puts the dashboards, exists before podflow comes.
    tools.kubectl(&["create", "namespace", "monitoring"]).unwrap();
    let values = ci_values();
    assert!(values.len() >= 9, "{values:?}");
    let path_of = |name: &str| values.iter().find(|(n, _)| n == name).unwrap().1.clone();

    // Without the CRDs: no ServiceMonitor is rendered, and cert-manager objects are refused by kind.
    let out = install(&tools, "no-crds-servicemonitor", &path_of("servicemonitor"));
    assert!(out.status.success(), "{}", podflow_e2e::peer::describe(&out));
    let (rendered, objects) = stored_objects(&tools, "no-crds-servicemonitor");
    assert_eq!(rendered, objects.len());
    assert!(
        !kinds(&objects).contains("ServiceMonitor"),
        "{:?}",
        kinds(&objects)
    );
    let out = install(&tools, "no-crds-cert-manager", &path_of("webhook-cert-manager"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("no matches for kind \"Certificate\""),
        "{}",
        podflow_e2e::peer::describe(&out)
    );

    let crds = kubectl::crds_dir().unwrap();
    tools
        .kubectl(&["apply", "--server-side", "-f", crds.to_str().unwrap()])
        .unwrap();
    tools
        .kubectl(&[
            "wait",
            "--for",
            "condition=established",
            "--timeout",
            "60s",
            "crd",
            "--all",
        ])
        .unwrap();

    let mut summary = Vec::new();
    for (name, file) in &values {
        let out = install(&tools, name, file);
        assert!(
            out.status.success(),
            "helm install -f {}:\n{}",
            file.display(),
            podflow_e2e::peer::describe(&out)
        );
        let status: Value = serde_json::from_str(
            &tools
                .helm(&["status", name, "--namespace", name, "-o", "json"])
                .unwrap(),
        )
        .unwrap();
        assert_eq!(status["info"]["status"], "deployed", "{name}: {status}");

        let (rendered, objects) = stored_objects(&tools, name);
        assert_eq!(
            rendered,
            objects.len(),
            "{name}: kubectl get found {:?}",
            kinds(&objects)
        );
        assert!(
            objects.iter().all(|o| o["metadata"]["uid"].is_string()),
            "{name}: an object without a uid"
        );
        check_common(name, &objects);
        let kinds = kinds(&objects);
        match name.as_str() {
            "servicemonitor" => {
                let sm = find(&objects, "ServiceMonitor", "-collector");
                assert_eq!(sm["spec"]["endpoints"][0]["interval"], "15s", "{sm}");
                let dashboards: Vec<&Value> = objects.iter().filter(|o| o["kind"] == "ConfigMap").collect();
                assert!(!dashboards.is_empty(), "{kinds:?}");
                for d in dashboards {
                    assert_eq!(d["metadata"]["namespace"], "monitoring", "{d}");
                    assert_eq!(d["metadata"]["labels"]["grafana_dashboard"], "1", "{d}");
                }
            }
            "webhook-cert-manager" | "webhook-cert-manager-issuer" => {
                let cert = find(&objects, "Certificate", "-webhook");
                assert!(cert["spec"]["secretName"].is_string(), "{cert}");
                assert_eq!(
                    kinds.contains("Issuer"),
                    name == "webhook-cert-manager",
                    "{name}: the chart makes its own Issuer only without issuerRef: {kinds:?}"
                );
                let hook = find(&objects, "MutatingWebhookConfiguration", "-webhook");
                assert!(
                    hook["metadata"]["annotations"]["cert-manager.io/inject-ca-from"].is_string(),
                    "{hook}"
                );
            }
            "webhook-selfsigned" => {
                let hook = find(&objects, "MutatingWebhookConfiguration", "-webhook");
                let ca = hook["webhooks"][0]["clientConfig"]["caBundle"]
                    .as_str()
                    .unwrap_or("");
                assert!(ca.len() > 100, "{hook}");
                assert_eq!(
                    hook["webhooks"][0]["namespaceSelector"]["matchLabels"]["podflow.io/inject"],
                    "enabled"
                );
                find(&objects, "Secret", "-tls");
            }
            "elasticsearch-with-secret" => {
                find(&objects, "PersistentVolumeClaim", "-spool");
            }
            _ => {}
        }
        summary.push(format!("{name}: {} objects", objects.len()));
    }
    eprintln!("installed: {}", summary.join(", "));
}
