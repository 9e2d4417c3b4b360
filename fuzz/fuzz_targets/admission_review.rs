//! Arbitrary bytes as the body of `POST /mutate`: the sidecar-injection webhook's AdmissionReview
//! handler. It answers or refuses with a reason; it never panics, and whatever it answers is an
//! AdmissionReview that allows the pod, with a patch that is a JSON array when there is one.
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use podflow_collector::webhook::{SidecarResources, SidecarSpec, review};

fuzz_target!(|data: &[u8]| {
    let spec = SidecarSpec {
        image: "podflow/podflow:fuzz".into(),
        pull_policy: String::new(),
        collector: "collector:4739".into(),
        interfaces: vec![],
        resources: SidecarResources::default(),
        extra_args: vec![],
    };
    let Ok(answer) = review(data, &spec) else {
        return;
    };
    let v: serde_json::Value = serde_json::from_slice(&answer.body).expect("the answer is JSON");
    assert_eq!(v["response"]["allowed"], true);
    if let Some(p) = v["response"]["patch"].as_str() {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(p)
            .expect("the patch is base64");
        let patch: serde_json::Value = serde_json::from_slice(&raw).expect("the patch is JSON");
        assert!(patch.is_array());
    }
});
