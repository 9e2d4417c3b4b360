//! The pure half of sidecar injection: an AdmissionReview (`admission.k8s.io/v1`) for a pod in, the
//! AdmissionReview answer out, with a JSON Patch (RFC 6902) that adds the probe container when the pod
//! should have one.
//!
//! The API server sends pods of namespaces labelled `podflow.io/inject=enabled` only (the webhook
//! configuration's namespace selector says so); this module decides per pod:
//! * annotated `podflow.io/inject: "false"`: left as it is;
//! * already holding a container named [`CONTAINER_NAME`] (injected before, or by hand): left as it is;
//! * on the host network: left as it is (a probe there would capture the node's traffic, which the node
//!   probe already counts);
//! * otherwise: the probe container is appended, with the pod's name, namespace and node from the
//!   downward API, and the pod is annotated `podflow.io/injected: "true"`.
//!
//! The answer always allows the pod: podflow observes, it never blocks a workload. Input the API server
//! would never send (not JSON, no `request.uid`) is a [`ReviewError`], which the server turns into a
//! 400 with the reason. Nothing here panics on any input (fuzzed: `fuzz/fuzz_targets/admission_review.rs`).

use base64::Engine as _;
use serde_json::{Map, Value, json};

/// The injected container's name; a pod that already has one is not injected again.
pub const CONTAINER_NAME: &str = "podflow-probe";

/// The annotation that opts a pod out (`"false"`).
pub const INJECT_ANNOTATION: &str = "podflow.io/inject";

/// The annotation written on an injected pod.
pub const INJECTED_ANNOTATION: &str = "podflow.io/injected";

/// Largest AdmissionReview accepted, in octets (the API server's own request limit is 3 MiB).
pub const MAX_REVIEW_OCTETS: usize = 4 << 20;

/// What the injected probe container runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SidecarSpec {
    /// Container image of podflow-exporter.
    pub image: String,
    /// `imagePullPolicy` of the container (`IfNotPresent` when empty).
    pub pull_policy: String,
    /// Collector address (`HOST:PORT`) the probe exports IPFIX to.
    pub collector: String,
    /// Interfaces the probe captures inside the pod (`eth0` when empty).
    pub interfaces: Vec<String>,
    /// CPU request (e.g. `10m`) and memory request and limit (e.g. `32Mi`, `128Mi`).
    pub resources: SidecarResources,
    /// Extra arguments appended to the probe's command line.
    pub extra_args: Vec<String>,
}

/// Resource requests and limits of the injected container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SidecarResources {
    /// CPU request.
    pub cpu_request: String,
    /// Memory request.
    pub memory_request: String,
    /// Memory limit.
    pub memory_limit: String,
}

impl Default for SidecarResources {
    fn default() -> Self {
        SidecarResources {
            cpu_request: "10m".into(),
            memory_request: "32Mi".into(),
            memory_limit: "128Mi".into(),
        }
    }
}

/// Why a request is not an AdmissionReview this webhook can answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReviewError {
    /// The body is larger than [`MAX_REVIEW_OCTETS`].
    #[error("AdmissionReview of {0} octets is larger than {MAX_REVIEW_OCTETS}")]
    TooLarge(usize),
    /// The body is not JSON.
    #[error("not JSON: {0}")]
    NotJson(String),
    /// The JSON is not an `admission.k8s.io/v1` AdmissionReview with a request.
    #[error("not an admission.k8s.io/v1 AdmissionReview request: {0}")]
    NotReview(&'static str),
}

/// What was decided for one review, for the log and the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The probe was added.
    Injected,
    /// The pod opted out by annotation.
    OptedOut,
    /// The pod already has the probe.
    AlreadyInjected,
    /// The pod runs on the host network.
    HostNetwork,
    /// Not a pod creation (another kind or operation): allowed unchanged.
    NotAPod,
}

impl Decision {
    /// The decision as a metric label.
    pub fn label(self) -> &'static str {
        match self {
            Decision::Injected => "injected",
            Decision::OptedOut => "opted_out",
            Decision::AlreadyInjected => "already_injected",
            Decision::HostNetwork => "host_network",
            Decision::NotAPod => "not_a_pod",
        }
    }
}

/// An answered review: the response body and what was decided.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The AdmissionReview to send back (JSON).
    pub body: Vec<u8>,
    /// What was decided.
    pub decision: Decision,
    /// `namespace/name` of the pod (`generateName` prefix when the API server has not named it yet).
    pub pod: String,
}

/// Answers the AdmissionReview in `body`.
pub fn review(body: &[u8], spec: &SidecarSpec) -> Result<Answer, ReviewError> {
    if body.len() > MAX_REVIEW_OCTETS {
        return Err(ReviewError::TooLarge(body.len()));
    }
    let doc: Value = serde_json::from_slice(body).map_err(|e| ReviewError::NotJson(e.to_string()))?;
    if doc.get("kind").and_then(Value::as_str) != Some("AdmissionReview") {
        return Err(ReviewError::NotReview("kind is not AdmissionReview"));
    }
    let api_version = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if api_version != "admission.k8s.io/v1" {
        return Err(ReviewError::NotReview("apiVersion is not admission.k8s.io/v1"));
    }
    let request = doc
        .get("request")
        .and_then(Value::as_object)
        .ok_or(ReviewError::NotReview("no request object"))?;
    let uid = request
        .get("uid")
        .and_then(Value::as_str)
        .filter(|u| !u.is_empty())
        .ok_or(ReviewError::NotReview("request.uid missing"))?;
    let namespace = request.get("namespace").and_then(Value::as_str).unwrap_or("");
    let pod = request.get("object").and_then(Value::as_object);
    let is_pod_create = request
        .get("kind")
        .and_then(|k| k.get("kind"))
        .and_then(Value::as_str)
        == Some("Pod")
        && request.get("operation").and_then(Value::as_str) == Some("CREATE");
    let (decision, patch, name) = match pod {
        Some(pod) if is_pod_create => {
            let name = pod_name(pod);
            let (decision, patch) = decide(pod, spec);
            (decision, patch, name)
        }
        _ => (Decision::NotAPod, None, String::new()),
    };
    let mut response = Map::new();
    response.insert("uid".into(), Value::String(uid.to_owned()));
    response.insert("allowed".into(), Value::Bool(true));
    if let Some(p) = patch {
        let text = serde_json::to_vec(&p).unwrap_or_default();
        response.insert("patchType".into(), Value::String("JSONPatch".into()));
        response.insert(
            "patch".into(),
            Value::String(base64::engine::general_purpose::STANDARD.encode(text)),
        );
    }
    let answer = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": Value::Object(response),
    });
    Ok(Answer {
        body: serde_json::to_vec(&answer).unwrap_or_default(),
        decision,
        pod: format!("{namespace}/{name}"),
    })
}

fn pod_name(pod: &Map<String, Value>) -> String {
    let meta = pod.get("metadata");
    let field = |k| meta.and_then(|m| m.get(k)).and_then(Value::as_str);
    field("name")
        .or_else(|| field("generateName"))
        .unwrap_or("")
        .to_owned()
}

/// The decision for a pod, and the patch when it is injected.
fn decide(pod: &Map<String, Value>, spec: &SidecarSpec) -> (Decision, Option<Value>) {
    let annotations = pod
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object);
    let opt_out = annotations
        .and_then(|a| a.get(INJECT_ANNOTATION))
        .and_then(Value::as_str)
        .is_some_and(|v| v.eq_ignore_ascii_case("false"));
    if opt_out {
        return (Decision::OptedOut, None);
    }
    let pod_spec = pod.get("spec").and_then(Value::as_object);
    if pod_spec
        .and_then(|s| s.get("hostNetwork"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        return (Decision::HostNetwork, None);
    }
    let containers = pod_spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array);
    let has_probe = containers.is_some_and(|cs| {
        cs.iter()
            .any(|c| c.get("name").and_then(Value::as_str) == Some(CONTAINER_NAME))
    });
    if has_probe {
        return (Decision::AlreadyInjected, None);
    }
    let mut ops = Vec::new();
    match (pod_spec.is_some(), containers.is_some()) {
        (_, true) => ops.push(json!({"op": "add", "path": "/spec/containers/-", "value": container(spec)})),
        (true, false) => {
            ops.push(json!({"op": "add", "path": "/spec/containers", "value": [container(spec)]}))
        }
        (false, false) => {
            ops.push(json!({"op": "add", "path": "/spec", "value": {"containers": [container(spec)]}}))
        }
    }
    let has_metadata = pod.get("metadata").is_some_and(Value::is_object);
    match (has_metadata, annotations.is_some()) {
        (_, true) => ops.push(json!({
            "op": "add",
            // RFC 6901: '/' in a member name is written '~1'.
            "path": format!("/metadata/annotations/{}", INJECTED_ANNOTATION.replace('/', "~1")),
            "value": "true",
        })),
        (true, false) => ops.push(json!({
            "op": "add",
            "path": "/metadata/annotations",
            "value": {INJECTED_ANNOTATION: "true"},
        })),
        (false, false) => ops.push(json!({
            "op": "add",
            "path": "/metadata",
            "value": {"annotations": {INJECTED_ANNOTATION: "true"}},
        })),
    }
    (Decision::Injected, Some(Value::Array(ops)))
}

/// The probe container: captures the pod's own interfaces, both directions (inside the pod's network
/// namespace every packet is the pod's), with NET_RAW only.
fn container(spec: &SidecarSpec) -> Value {
    let mut args = Vec::new();
    let default_interface = ["eth0".to_owned()];
    let interfaces = if spec.interfaces.is_empty() {
        &default_interface[..]
    } else {
        &spec.interfaces[..]
    };
    for i in interfaces {
        args.push(json!("--interface"));
        args.push(json!(i));
    }
    args.extend([
        json!("--direction"),
        json!("both"),
        json!("--collector"),
        json!(spec.collector),
    ]);
    // The probe's own exports are not the pod's traffic.
    args.extend([
        json!("--filter"),
        json!(format!("not (udp and dst port {})", port_of(&spec.collector))),
    ]);
    args.extend(spec.extra_args.iter().map(|a| json!(a)));
    let field = |path: &str| json!({"valueFrom": {"fieldRef": {"fieldPath": path}}});
    let env = |name: &str, path: &str| {
        let mut e = field(path);
        if let Some(o) = e.as_object_mut() {
            o.insert("name".into(), json!(name));
        }
        e
    };
    let pull = if spec.pull_policy.is_empty() {
        "IfNotPresent"
    } else {
        &spec.pull_policy
    };
    json!({
        "name": CONTAINER_NAME,
        "image": spec.image,
        "imagePullPolicy": pull,
        "command": ["podflow-exporter"],
        "args": args,
        "env": [
            env("PODFLOW_POD_NAME", "metadata.name"),
            env("PODFLOW_POD_NAMESPACE", "metadata.namespace"),
            env("PODFLOW_NODE_NAME", "spec.nodeName"),
        ],
        "resources": {
            "requests": {"cpu": spec.resources.cpu_request, "memory": spec.resources.memory_request},
            "limits": {"memory": spec.resources.memory_limit},
        },
        // Capture opens a packet socket: CAP_NET_RAW, as root in the pod's own network namespace,
        // every other capability dropped.
        "securityContext": {
            "runAsUser": 0,
            "runAsNonRoot": false,
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"], "add": ["NET_RAW"]},
        },
    })
}

/// The port of `HOST:PORT` (4739 when it has none that parses).
fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(4739)
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
