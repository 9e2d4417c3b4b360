use super::*;

fn spec() -> SidecarSpec {
    SidecarSpec {
        image: "podflow/podflow:0.1.0".into(),
        pull_policy: String::new(),
        collector: "podflow-collector.podflow:4739".into(),
        interfaces: vec![],
        resources: SidecarResources::default(),
        extra_args: vec![],
    }
}

fn review_of(pod: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "operation": "CREATE",
            "object": pod,
        }
    }))
    .unwrap_or_default()
}

fn pod(annotations: Option<Value>) -> Value {
    let mut meta = json!({"name": "web-1", "namespace": "shop"});
    if let Some(a) = annotations {
        meta["annotations"] = a;
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
           "spec": {"containers": [{"name": "web", "image": "nginx"}]}})
}

/// The response object and the decoded patch (if any).
fn answer(body: &[u8]) -> (Value, Option<Value>) {
    let a: Value = serde_json::from_slice(body).unwrap_or_default();
    let resp = a["response"].clone();
    let patch = resp["patch"].as_str().map(|p| {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(p)
            .unwrap_or_default();
        serde_json::from_slice(&raw).unwrap_or_default()
    });
    (resp, patch)
}

/// Applies the add operations of a JSON Patch the way the API server does (enough for what we emit).
fn apply(mut doc: Value, patch: &Value) -> Value {
    for op in patch.as_array().into_iter().flatten() {
        assert_eq!(op["op"], "add");
        let path = op["path"].as_str().unwrap_or_default();
        let parts: Vec<String> = path
            .split('/')
            .skip(1)
            .map(|p| p.replace("~1", "/").replace("~0", "~"))
            .collect();
        let (last, parents) = parts.split_last().unwrap_or((&parts[0], &[]));
        let mut at = &mut doc;
        for p in parents {
            at = &mut at[p.as_str()];
        }
        if last == "-" {
            if let Some(a) = at.as_array_mut() {
                a.push(op["value"].clone());
            }
        } else {
            at[last.as_str()] = op["value"].clone();
        }
    }
    doc
}

#[test]
fn a_pod_gets_the_probe_with_downward_api_fields_and_net_raw_only() {
    let a = review(&review_of(pod(None)), &spec()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.decision, Decision::Injected);
    assert_eq!(a.pod, "shop/web-1");
    let (resp, patch) = answer(&a.body);
    assert_eq!(resp["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
    assert_eq!(resp["allowed"], true);
    assert_eq!(resp["patchType"], "JSONPatch");
    let patched = apply(pod(None), &patch.unwrap_or_default());
    let containers = patched["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(containers.len(), 2);
    assert_eq!(
        containers[0]["name"], "web",
        "the pod's own container stays first"
    );
    let probe = &containers[1];
    assert_eq!(probe["name"], CONTAINER_NAME);
    assert_eq!(probe["image"], "podflow/podflow:0.1.0");
    assert_eq!(
        probe["securityContext"]["capabilities"]["add"],
        json!(["NET_RAW"])
    );
    assert_eq!(probe["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    let env: Vec<(String, String)> = probe["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or_default().to_owned(),
                e["valueFrom"]["fieldRef"]["fieldPath"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(
        env,
        [
            ("PODFLOW_POD_NAME".to_owned(), "metadata.name".to_owned()),
            (
                "PODFLOW_POD_NAMESPACE".to_owned(),
                "metadata.namespace".to_owned()
            ),
            ("PODFLOW_NODE_NAME".to_owned(), "spec.nodeName".to_owned()),
        ]
    );
    let args: Vec<&str> = probe["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        args,
        [
            "--interface",
            "eth0",
            "--direction",
            "both",
            "--collector",
            "podflow-collector.podflow:4739",
            "--filter",
            "not (udp and dst port 4739)"
        ]
    );
    assert_eq!(patched["metadata"]["annotations"][INJECTED_ANNOTATION], "true");
}

#[test]
fn existing_annotations_are_kept_and_the_slash_is_escaped() {
    let p = pod(Some(json!({"team": "shop"})));
    let a = review(&review_of(p.clone()), &spec()).unwrap_or_else(|e| panic!("{e}"));
    let (_, patch) = answer(&a.body);
    let patch = patch.unwrap_or_default();
    assert!(patch.to_string().contains("podflow.io~1injected"), "{patch}");
    let patched = apply(p, &patch);
    assert_eq!(patched["metadata"]["annotations"]["team"], "shop");
    assert_eq!(patched["metadata"]["annotations"][INJECTED_ANNOTATION], "true");
}

#[test]
fn opted_out_injected_and_host_network_pods_are_left_alone() {
    let cases = [
        (pod(Some(json!({INJECT_ANNOTATION: "false"}))), Decision::OptedOut),
        (
            json!({"metadata": {"name": "a"}, "spec": {"containers": [{"name": CONTAINER_NAME}]}}),
            Decision::AlreadyInjected,
        ),
        (
            json!({"metadata": {"name": "a"}, "spec": {"hostNetwork": true, "containers": []}}),
            Decision::HostNetwork,
        ),
    ];
    for (p, want) in cases {
        let a = review(&review_of(p), &spec()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.decision, want);
        let (resp, patch) = answer(&a.body);
        assert_eq!(resp["allowed"], true);
        assert!(patch.is_none(), "{want:?}: no patch");
        assert!(resp.get("patchType").is_none());
    }
}

#[test]
fn an_injected_pod_reviewed_again_is_unchanged() {
    let a = review(&review_of(pod(None)), &spec()).unwrap_or_else(|e| panic!("{e}"));
    let (_, patch) = answer(&a.body);
    let once = apply(pod(None), &patch.unwrap_or_default());
    let again = review(&review_of(once), &spec()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.decision, Decision::AlreadyInjected);
}

#[test]
fn other_operations_and_kinds_are_allowed_unchanged() {
    let mut r: Value = serde_json::from_slice(&review_of(pod(None))).unwrap_or_default();
    r["request"]["operation"] = json!("UPDATE");
    let a = review(&serde_json::to_vec(&r).unwrap_or_default(), &spec()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.decision, Decision::NotAPod);
    r["request"]["operation"] = json!("CREATE");
    r["request"]["kind"]["kind"] = json!("Service");
    let a = review(&serde_json::to_vec(&r).unwrap_or_default(), &spec()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.decision, Decision::NotAPod);
    assert!(answer(&a.body).1.is_none());
}

#[test]
fn a_pod_without_annotations_or_containers_still_gets_a_valid_patch() {
    let p = json!({"metadata": {"generateName": "web-"}, "spec": {}});
    let a = review(&review_of(p.clone()), &spec()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.pod, "shop/web-");
    let patched = apply(p, &answer(&a.body).1.unwrap_or_default());
    assert_eq!(patched["spec"]["containers"][0]["name"], CONTAINER_NAME);
    assert_eq!(patched["metadata"]["annotations"][INJECTED_ANNOTATION], "true");
}

#[test]
fn malformed_reviews_are_errors_with_a_reason() {
    let cases: [(&[u8], &str); 6] = [
        (b"", "not JSON"),
        (b"{", "not JSON"),
        (b"[]", "kind is not AdmissionReview"),
        (
            br#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1beta1","request":{"uid":"x"}}"#,
            "apiVersion",
        ),
        (
            br#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"}"#,
            "no request",
        ),
        (
            br#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":""}}"#,
            "uid",
        ),
    ];
    for (body, want) in cases {
        let e = review(body, &spec()).map(|a| a.decision).unwrap_err();
        assert!(e.to_string().contains(want), "{e} lacks {want}");
    }
    let big = vec![b' '; MAX_REVIEW_OCTETS + 1];
    assert!(matches!(review(&big, &spec()), Err(ReviewError::TooLarge(_))));
}

#[test]
fn odd_but_valid_json_never_panics() {
    for body in [
        r#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"u","kind":{"kind":"Pod"},"operation":"CREATE","object":{"metadata":7,"spec":{"containers":{}}}}}"#,
        r#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"u","kind":{"kind":"Pod"},"operation":"CREATE","object":{"metadata":{"annotations":[]},"spec":[]}}}"#,
        r#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"u","kind":"Pod","operation":"CREATE","object":null}}"#,
    ] {
        let a = review(body.as_bytes(), &spec()).unwrap_or_else(|e| panic!("{e}"));
        let (resp, _) = answer(&a.body);
        assert_eq!(resp["allowed"], true);
    }
}
