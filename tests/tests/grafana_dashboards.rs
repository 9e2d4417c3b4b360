//! podflow's Grafana dashboards (`grafana/*.json`) against a real Prometheus.
//!
//! [`every_dashboard_query_answers_on_a_real_prometheus`] runs the whole chain on loopback:
//! - `podflow-collector` with an inventory (so flows name namespaces, workloads and Services);
//! - a probe that keeps running, `podflow-exporter --interface lo`, capturing Prometheus's scrapes of
//!   the collector (so its packet, libpcap drop, flow and send counters are live series), with one-second
//!   timeouts so its flows are exported while the test runs;
//! - `podflow-exporter --pcap` on a generated capture of known flows (`podflow_e2e::pcapgen`) between
//!   the inventory's pods, a Service's ClusterIP and addresses outside the cluster;
//! - one datagram that is not IPFIX, so the decode-error series exists;
//! - Debian's `prometheus`, scraping the collector and the live probe every second with the labels
//!   a Kubernetes service discovery would add (`cluster`, `namespace`).
//!
//! Once Prometheus holds several scrapes of everything, every variable query of every dashboard
//! (`label_values(...)` through `/api/v1/label/<label>/values`) and every panel target (template
//! variables replaced as Grafana would: the variables' own answers, `$__rate_interval` and friends as
//! fixed durations) runs as an instant query and must answer with at least one series, but for the few
//! expressions [`legitimately_empty`] names with its reason. The node graph's `nodes` query must return
//! the labels its transformations make into id, title, subtitle and secondarystat, and the `edges`
//! query id, source and target, every source and target a node. Every metric name the dashboards use
//! must be one Prometheus scraped from podflow, so a rename breaks this test.
//!
//! [`dashboards_are_well_formed`] checks the JSON's structure (`podflow_e2e::dashboards`), and
//! [`chart_copies_are_identical`] that the Helm chart ships the same files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail, ensure};
use podflow_e2e::binaries;
use podflow_e2e::collector::Collector;
use podflow_e2e::dashboards::{self, Dashboard, VariableQuery};
use podflow_e2e::pcapgen::{self, Config};
use podflow_e2e::peer::{self, PEER_TIMEOUT, PeerProcess};
use podflow_e2e::prometheus::{self, Job, Prometheus, Sample};

/// The metric name prefixes podflow exports.
const PREFIXES: [&str; 2] = ["podflow_", "netflow_"];

/// Values of Grafana's own variables: rate windows long enough to hold every sample the test makes.
const BUILTINS: [(&str, &str); 6] = [
    ("__rate_interval", "1m"),
    ("__interval", "15s"),
    ("__interval_ms", "15000"),
    ("__range", "5m"),
    ("__range_s", "300"),
    ("__auto", "15s"),
];

/// Labels Prometheus adds to both scrape jobs, as a Kubernetes service discovery would.
const CLUSTER: &str = "test-cluster";
const NAMESPACE: &str = "podflow";

/// Metric name prefixes whose series may be missing in this setup, each with its reason. An expression
/// reading only such metrics may answer empty; a dashboard metric name starting with one need not have
/// been scraped.
const ABSENT_HERE: [(&str, &str); 2] = [
    (
        "podflow_collector_elasticsearch_",
        "the Elasticsearch sink's metrics: no Elasticsearch server runs in this test, and the collector \
         registers them only with --elasticsearch",
    ),
    (
        "podflow_collector_spool_",
        "the Elasticsearch sink's spool gauges: they exist only with --elasticsearch (see above)",
    ),
];

/// Flow metrics (`podflow_connection*`): the collector must export them (the test fails otherwise).
const FLOW_METRICS_PENDING: &[&str] = &[
    "podflow_connections_total",
    "podflow_connection_bytes_total",
    "podflow_connection_packets_total",
];

/// The reason an expression may answer empty here, if it reads only metrics of [`ABSENT_HERE`].
fn legitimately_empty(expr: &str) -> Option<&'static str> {
    let names = dashboards::metric_names(expr, &PREFIXES);
    let reasons: BTreeSet<&str> = names
        .iter()
        .map(|n| {
            ABSENT_HERE
                .iter()
                .find(|(p, _)| n.starts_with(p))
                .map(|(_, why)| *why)
        })
        .collect::<Option<_>>()?;
    reasons.into_iter().next()
}

fn pending_flow_metrics(expr: &str) -> bool {
    dashboards::metric_names(expr, &PREFIXES)
        .iter()
        .any(|n| FLOW_METRICS_PENDING.contains(&n.as_str()))
}

fn load() -> Vec<Dashboard> {
    let all = dashboards::load(&dashboards::dir()).unwrap();
    let files: Vec<&str> = all.iter().map(|d| d.file.as_str()).collect();
    assert_eq!(files, ["health.json", "service-map.json", "traffic.json"]);
    all
}

#[test]
fn dashboards_are_well_formed() {
    let mut problems = Vec::new();
    for d in load() {
        problems.extend(dashboards::check_structure(&d));
        assert!(!d.targets().is_empty(), "{} has no queries", d.file);
    }
    assert!(
        problems.is_empty(),
        "dashboard problems:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_structure_check_finds_what_it_looks_for() {
    // A copy of the service map with the mistakes the check exists for must be refused for each.
    let mut d = load().into_iter().find(|d| d.file == "service-map.json").unwrap();
    let j = &mut d.json;
    j["__inputs"] = serde_json::json!([]);
    j["schemaVersion"] = 36.into();
    j["panels"][1]["id"] = j["panels"][0]["id"].clone();
    j["panels"][1]["gridPos"] = j["panels"][0]["gridPos"].clone();
    j["panels"][0]["targets"][0]["refId"] = "A".into();
    j["panels"][1]["targets"][0]["expr"] = "rate(x[$nowhere])".into();
    j["templating"]["list"].as_array_mut().unwrap().swap(1, 2);
    let problems = dashboards::check_structure(&d).join("\n");
    for want in [
        "__inputs",
        "schemaVersion",
        "used twice",
        "overlaps",
        "refIds nodes and edges",
        "undefined $nowhere",
        "before it is defined",
    ] {
        assert!(problems.contains(want), "no {want:?} in:\n{problems}");
    }
}

#[test]
fn chart_copies_are_identical() {
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/podflow/dashboards");
    for d in load() {
        let ours = std::fs::read(dashboards::dir().join(&d.file)).unwrap();
        let theirs = std::fs::read(chart.join(&d.file))
            .unwrap_or_else(|e| panic!("charts/podflow/dashboards/{}: {e}", d.file));
        assert!(
            ours == theirs,
            "charts/podflow/dashboards/{} differs from grafana/{}",
            d.file,
            d.file
        );
    }
}

/// Applications of the inventory: (namespace, Deployment) of the generator's TCP and UDP clients
/// (`10.<1 + c / 256>.<c % 256>.2`, round-robin).
const CLIENT_APPS: [(&str, &str); 4] = [
    ("shop", "web"),
    ("shop", "cart"),
    ("payments", "api"),
    ("payments", "worker"),
];

/// A Kubernetes List (JSON, which the inventory reads like YAML) of the generated capture's world: the
/// clients' pods; TCP servers 192.0.2.2-64 as pods of backend/api behind the Service backend/api
/// (ClusterIP 192.0.2.1); UDP servers 198.51.100.2-64 as kube-system/coredns behind kube-dns
/// (198.51.100.1); ICMP servers (203.0.113.x) outside the cluster.
fn inventory(clients: u64) -> serde_json::Value {
    use serde_json::json;
    let created = "2023-11-13T00:00:00Z";
    let mut items = Vec::new();
    let owners = |ns: &str, app: &str, items: &mut Vec<serde_json::Value>| {
        items.push(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": format!("{app}-7d4b9c"), "namespace": ns, "uid": format!("rs-{ns}-{app}"),
                "creationTimestamp": created,
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": app,
                    "uid": format!("dep-{ns}-{app}"), "controller": true}]}
        }));
    };
    let servers = [
        ("backend", "api", [192, 0, 2]),
        ("kube-system", "coredns", [198, 51, 100]),
    ];
    for (ns, app) in CLIENT_APPS {
        owners(ns, app, &mut items);
    }
    for (ns, app, _) in servers {
        owners(ns, app, &mut items);
    }
    let pod = |ns: &str, app: &str, n: u64, ip: String| {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("{app}-7d4b9c-{n:05x}"), "namespace": ns, "uid": format!("pod-{ns}-{app}-{n}"),
                "creationTimestamp": created, "labels": {"app.kubernetes.io/name": app},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{app}-7d4b9c"),
                    "uid": format!("rs-{ns}-{app}"), "controller": true}]},
            "spec": {"nodeName": "node-a"},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "startTime": "2023-11-13T00:00:01Z"}
        })
    };
    for c in 0..clients {
        let (ns, app) = CLIENT_APPS[(c % 4) as usize];
        items.push(pod(ns, app, c, format!("10.{}.{}.2", 1 + (c >> 8), c & 255)));
    }
    for (ns, app, net) in servers {
        for host in 2..=64u64 {
            items.push(pod(
                ns,
                app,
                host,
                format!("{}.{}.{}.{host}", net[0], net[1], net[2]),
            ));
        }
        let service = if app == "coredns" { "kube-dns" } else { app };
        items.push(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": service, "namespace": ns, "uid": format!("svc-{ns}-{service}"), "creationTimestamp": created},
            "spec": {"clusterIP": format!("{}.{}.{}.1", net[0], net[1], net[2]), "type": "ClusterIP",
                "selector": {"app.kubernetes.io/name": app},
                "ports": [{"port": if app == "coredns" { 53 } else { 443 }, "protocol": if app == "coredns" { "UDP" } else { "TCP" }}]}
        }));
    }
    json!({"apiVersion": "v1", "kind": "List", "items": items})
}

/// The value of a `/metrics` endpoint answering: `GET /metrics` returns 200.
fn metrics_up(addr: SocketAddr) -> bool {
    matches!(prometheus::http(addr, "GET", "/metrics", None), Ok((200, _)))
}

/// The one sample of an instant query, if it answered exactly one.
fn scalar(p: &Prometheus, expr: &str) -> anyhow::Result<Option<f64>> {
    let r = p.query(expr)?;
    Ok(match r.as_slice() {
        [one] => Some(one.value),
        _ => None,
    })
}

/// Grafana's rendering of a multi-value variable inside a PromQL regex: `(a|b|c)` (values escaped).
fn regex_of(values: &[String]) -> String {
    let escaped: Vec<String> = values
        .iter()
        .map(|v| {
            v.chars()
                .flat_map(|c| {
                    let special = "\\.+*?()|[]{}^$".contains(c);
                    // Inside a PromQL string a backslash itself needs escaping.
                    if special { vec!['\\', '\\', c] } else { vec![c] }
                })
                .collect()
        })
        .collect();
    format!("({})", escaped.join("|"))
}

#[test]
fn every_dashboard_query_answers_on_a_real_prometheus() -> anyhow::Result<()> {
    let Some(prom_bin) = prometheus::require()? else {
        return Ok(());
    };
    if !rustix::process::geteuid().is_root() {
        if std::env::var(peer::ALLOW_MISSING_ENV).is_ok_and(|v| v == "1") {
            eprintln!(
                "\n!!!!! SKIPPED: the live probe of the dashboard test captures on lo and needs root !!!!!\n"
            );
            return Ok(());
        }
        bail!(
            "the live probe captures on lo and needs root; set {}=1 to skip",
            peer::ALLOW_MISSING_ENV
        );
    }
    let dashboards = load();
    let exporter = binaries::podflow_exporter()?;
    let dir = tempfile::tempdir()?;
    let work = dir.path();

    // The capture and the world it happens in.
    let cfg = Config {
        tcp: 300,
        udp: 150,
        icmp: 30,
        v6_percent: 0,
        ..Config::default()
    };
    let pcap = work.join("flows.pcap");
    let summary = pcapgen::generate_file(&cfg, &pcap, None)?;
    let inventory_path = work.join("inventory.json");
    std::fs::write(&inventory_path, inventory(cfg.tcp + cfg.udp).to_string())?;

    let extra: Vec<OsString> = vec![
        "--inventory".into(),
        inventory_path.clone().into(),
        "--cluster-name".into(),
        CLUSTER.into(),
    ];
    let mut collector = Collector::start_with("dashboards", work, 1, &extra)?;

    // The live probe: Prometheus's scrapes of the collector are its traffic.
    let probe_metrics = SocketAddr::from(([127, 0, 0, 1], prometheus::free_tcp_port()?));
    let mut probe_cmd = Command::new(&exporter);
    probe_cmd
        .args(["--interface", "lo", "--filter"])
        .arg(format!("tcp port {}", collector.metrics.port()))
        .args([
            "--idle-timeout",
            "1",
            "--active-timeout",
            "1",
            "--tcp-linger",
            "1",
        ])
        .arg("--collector")
        .arg(collector.listen.to_string())
        .arg("--metrics-listen")
        .arg(probe_metrics.to_string());
    let mut probe = PeerProcess::spawn("probe", &mut probe_cmd, work)?;
    probe.wait_stderr("capturing lo")?;
    peer::wait_until("the probe's /metrics", PEER_TIMEOUT, || {
        probe.check_running()?;
        Ok(metrics_up(probe_metrics))
    })?;

    let labels = BTreeMap::from([
        ("cluster".to_string(), CLUSTER.to_string()),
        ("namespace".to_string(), NAMESPACE.to_string()),
    ]);
    let jobs = [
        Job {
            name: "podflow-collector".into(),
            targets: vec![collector.metrics],
            labels: labels.clone(),
        },
        Job {
            name: "podflow-exporter".into(),
            targets: vec![probe_metrics],
            labels,
        },
    ];
    let mut prom = Prometheus::start(&prom_bin, work, &jobs)?;

    // The known flows, then one datagram that is not IPFIX.
    let out = PeerProcess::spawn(
        "pcap-exporter",
        Command::new(&exporter)
            .arg("--pcap")
            .arg(&pcap)
            .arg("--collector")
            .arg(collector.listen.to_string()),
        work,
    )?
    .wait_exit()?;
    ensure!(
        out.status.success(),
        "podflow-exporter --pcap failed:\n{}",
        peer::describe(&out)
    );
    let log = String::from_utf8_lossy(&out.stderr);
    let records: u64 = log
        .split(" as ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("no record count in:\n{log}"))?;
    ensure!(
        records == summary.total.flows,
        "{records} records for {} flows",
        summary.total.flows
    );
    UdpSocket::bind("127.0.0.1:0")?.send_to(b"\x00\x63 is no flow export version", collector.listen)?;
    collector.wait_records("exporter=\"127.0.0.1\",protocol=\"ipfix\"", records)?;
    peer::wait_until("the collector to count the junk datagram", PEER_TIMEOUT, || {
        Ok(collector.scrape()?.sum("podflow_collector_decode_errors_total") > 0)
    })?;

    // Wait until Prometheus holds at least three scrapes of the complete counts (so every rate has
    // samples to work on) and the probe has exported flows of the scrapes it saw.
    let ready = [
        format!("sum(podflow_collector_records_total) >= {records}"),
        "min(count_over_time(podflow_collector_records_total[5m])) >= 3".to_string(),
        "min(count_over_time(up[5m])) >= 3 and min(up) == 1".to_string(),
        "sum(podflow_collector_decode_errors_total) > 0".to_string(),
        "sum(podflow_exporter_records_total) > 0".to_string(),
        "count(podflow_exporter_kernel_dropped_packets_total{interface=\"lo\"})".to_string(),
    ];
    let mut last = String::new();
    let waited = peer::wait_until("Prometheus to hold the scrapes", PEER_TIMEOUT, || {
        prom.check_running()?;
        probe.check_running()?;
        for q in &ready {
            if scalar(&prom, q)?.is_none() {
                last = q.clone();
                return Ok(false);
            }
        }
        Ok(true)
    });
    if let Err(e) = waited {
        bail!("{e:#}; still empty: {last}\nprometheus log:\n{}", prom.log());
    }
    let flows_landed = prom
        .metric_names()?
        .iter()
        .any(|n| FLOW_METRICS_PENDING.contains(&n.as_str()));
    ensure!(
        flows_landed,
        "the collector exported no flow metrics (podflow_connection*)"
    );
    if flows_landed {
        peer::wait_until("flow metrics with three scrapes", PEER_TIMEOUT, || {
            Ok(scalar(
                &prom,
                "min(count_over_time(podflow_connection_bytes_total[5m])) >= 3",
            )?
            .is_some())
        })?;
    }

    let mut failures = Vec::new();
    let mut report = String::new();
    let mut answered = 0;
    let mut allowed = 0;
    let mut pending = 0;
    let mut node_graph = BTreeMap::new();
    for d in &dashboards {
        // The variables first: their answers are the values the panels are queried with.
        let mut values: BTreeMap<String, String> = BUILTINS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        values.insert("datasource".into(), "prometheus".into());
        for (name, q) in d.variable_queries()? {
            let found: Vec<String> = match &q {
                VariableQuery::LabelValues { selector, label } => {
                    let s = selector.as_deref().map(|s| dashboards::substitute(s, &values));
                    prom.label_values(label, s.as_deref())?
                }
                VariableQuery::QueryResult(e) => prom
                    .query(&dashboards::substitute(e, &values))?
                    .iter()
                    .map(|s| format!("{:?}", s.labels))
                    .collect(),
            };
            let _ = writeln!(report, "{}: variable {name} = {found:?}", d.file);
            if found.is_empty() {
                if !flows_landed && pending_flow_metrics(q.promql()) {
                    pending += 1;
                    values.insert(name, ".*".into());
                    continue;
                }
                failures.push(format!("{}: variable {name} ({q:?}) found no values", d.file));
                values.insert(name, ".*".into());
                continue;
            }
            if name == "cluster" && found != [CLUSTER] {
                failures.push(format!(
                    "{}: variable cluster = {found:?}, want [{CLUSTER:?}]",
                    d.file
                ));
            }
            values.insert(name, regex_of(&found));
        }
        for t in d.targets() {
            let expr = dashboards::substitute(&t.expr, &values);
            let rest = dashboards::references(&expr);
            if !rest.is_empty() {
                failures.push(format!(
                    "{}: variables left after substitution: {rest:?}",
                    t.place
                ));
                continue;
            }
            let result = match prom.query(&expr) {
                Ok(r) => r,
                Err(e) => {
                    failures.push(format!("{}: {e:#}\n  {expr}", t.place));
                    continue;
                }
            };
            if result.is_empty() {
                if let Some(why) = legitimately_empty(&expr) {
                    allowed += 1;
                    let _ = writeln!(report, "{}: empty, allowed: {why}", t.place);
                } else if !flows_landed && pending_flow_metrics(&expr) {
                    pending += 1;
                    let _ = writeln!(report, "{}: empty, flow metrics not exported yet", t.place);
                } else {
                    failures.push(format!("{}: no series\n  {expr}", t.place));
                }
                continue;
            }
            answered += 1;
            if t.panel_type == "nodeGraph" {
                node_graph.insert(t.ref_id.clone(), result);
            }
        }
    }

    // The node graph's frames: what the transformations turn into the panel's fields.
    if flows_landed || !node_graph.is_empty() {
        failures.extend(check_node_graph(&node_graph));
    }

    // Every metric name the dashboards use is one podflow exports (as Prometheus scraped them).
    let scraped: BTreeSet<String> = prom.metric_names()?.into_iter().collect();
    for d in &dashboards {
        let mut used = BTreeSet::new();
        for t in d.targets() {
            used.extend(dashboards::metric_names(&t.expr, &PREFIXES));
        }
        for (_, q) in d.variable_queries()? {
            used.extend(dashboards::metric_names(q.promql(), &PREFIXES));
        }
        for name in used {
            let absent_ok = ABSENT_HERE.iter().any(|(p, _)| name.starts_with(p));
            let pending_ok = !flows_landed && FLOW_METRICS_PENDING.contains(&name.as_str());
            if !scraped.contains(&name) && !absent_ok && !pending_ok {
                failures.push(format!("{}: metric {name} is not exported by podflow", d.file));
            }
        }
    }

    eprintln!("{report}");
    eprintln!(
        "dashboard queries: {answered} answered, {allowed} allowed empty, {pending} waiting for flow metrics, {} failed",
        failures.len()
    );
    if !flows_landed {
        eprintln!(
            "\n!!!!! the collector exports no flow metrics yet: their dashboard queries were not required !!!!!\n"
        );
    }
    drop(probe);
    let _ = collector.stop();
    prom.stop()?;
    ensure!(
        failures.is_empty(),
        "{} dashboard problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}

/// The node graph's `nodes` answer has id, title, subtitle and secondarystat, one row per id, id =
/// subtitle/secondarystat/title; its `edges` answer id, source and target, one row per id, each end a node.
fn check_node_graph(frames: &BTreeMap<String, Vec<Sample>>) -> Vec<String> {
    let mut problems = Vec::new();
    let label = |s: &Sample, k: &str| s.labels.get(k).cloned().unwrap_or_default();
    let (Some(nodes), Some(edges)) = (frames.get("nodes"), frames.get("edges")) else {
        return vec![format!(
            "node graph: nodes or edges answered nothing: {:?}",
            frames.keys()
        )];
    };
    let mut ids = BTreeSet::new();
    for n in nodes {
        let keys: BTreeSet<&str> = n.labels.keys().map(String::as_str).collect();
        if keys != BTreeSet::from(["id", "secondarystat", "subtitle", "title"]) {
            problems.push(format!("node graph: a node with labels {keys:?}"));
        }
        let id = label(n, "id");
        // namespace/kind/workload: a Service and the Deployment behind it often share a name.
        let want = format!(
            "{}/{}/{}",
            label(n, "subtitle"),
            label(n, "secondarystat"),
            label(n, "title")
        );
        if id != want || !ids.insert(id.clone()) {
            problems.push(format!(
                "node graph: node id {id:?} not subtitle/secondarystat/title or repeated"
            ));
        }
        if !(n.value.is_finite() && n.value >= 0.0) {
            problems.push(format!("node graph: node {id} has mainstat {}", n.value));
        }
    }
    let mut edge_ids = BTreeSet::new();
    for e in edges {
        let keys: BTreeSet<&str> = e.labels.keys().map(String::as_str).collect();
        if keys != BTreeSet::from(["id", "source", "target"]) {
            problems.push(format!("node graph: an edge with labels {keys:?}"));
        }
        let (id, source, target) = (label(e, "id"), label(e, "source"), label(e, "target"));
        if id != format!("{source} -> {target}") || !edge_ids.insert(id.clone()) {
            problems.push(format!(
                "node graph: edge id {id:?} not source -> target or repeated"
            ));
        }
        for end in [&source, &target] {
            if !ids.contains(end) {
                problems.push(format!(
                    "node graph: edge {id:?} ends at {end:?}, which is no node"
                ));
            }
        }
    }
    problems
}
