//! The service-map page as a person sees it: podflow-collector attributes known flows between the
//! workloads of a static inventory, and headless Chromium (Debian's, driven by playwright-core from
//! npm: tests/browser/service_map.cjs) opens `/` on the collector's HTTP address. Asserted:
//! - the page draws a node per workload that talked (and one for the host outside the cluster) and an
//!   arrow per client -> server pair, the same ones the Node Graph API serves, and loads nothing from
//!   anywhere but the collector;
//! - a real click on a workload and on an arrow shows the numbers of the flows sent: bytes both ways,
//!   connections, the rate over the window.
//!
//! The screenshot it takes is written to the test's directory; with `PODFLOW_WRITE_DOCS=1` also to
//! docs/service-map.png (the README's picture).

use std::collections::BTreeSet;
use std::net::UdpSocket;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, ensure};
use podflow_e2e::collector::Collector;
use podflow_e2e::known::{flow, now_ms, pod, send};
use podflow_e2e::peer;
use serde_json::Value;

/// Workloads (StatefulSets in namespace `shop`) and their pod addresses.
const WORKLOADS: [(&str, &str); 7] = [
    ("frontend", "10.244.1.10"),
    ("cart", "10.244.1.11"),
    ("checkout", "10.244.2.12"),
    ("payment", "10.244.2.13"),
    ("catalog", "10.244.3.14"),
    ("postgres", "10.244.3.15"),
    ("redis", "10.244.3.16"),
];
const OUTSIDE: &str = "192.0.2.80";

fn ip(name: &str) -> &'static str {
    WORKLOADS
        .iter()
        .find(|(w, _)| *w == name)
        .map_or(OUTSIDE, |(_, ip)| ip)
}

fn node_id(name: &str) -> String {
    match name {
        "external" => "external/external/external".to_owned(),
        w => format!("shop/StatefulSet/{w}"),
    }
}

fn get_json(url: &str) -> anyhow::Result<Value> {
    let body = ureq::get(url).call()?.body_mut().read_to_string()?;
    serde_json::from_str(&body).with_context(|| format!("{url}: {body}"))
}

#[test]
fn the_page_draws_the_known_flows_and_shows_their_numbers_on_click() -> anyhow::Result<()> {
    let Some(chromium) = peer::require("chromium", "chromium")? else {
        return Ok(());
    };
    let Some(node) = peer::require("node", "nodejs")? else {
        return Ok(());
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let playwright = Command::new(root.join("scripts/playwright.sh"))
        .output()
        .context("running scripts/playwright.sh")?;
    ensure!(
        playwright.status.success(),
        "scripts/playwright.sh: {}",
        String::from_utf8_lossy(&playwright.stderr)
    );
    let playwright = String::from_utf8(playwright.stdout)?.trim().to_owned();

    let work = tempfile::tempdir()?;
    let t0 = now_ms();
    let inventory: String = WORKLOADS
        .iter()
        .map(|(w, ip)| pod(&format!("{w}-0"), w, ip, t0 - 3_600_000, None))
        .collect();
    let inventory_path = work.path().join("cluster.yaml");
    std::fs::write(
        &inventory_path,
        format!("apiVersion: v1\nkind: List\nitems:\n{inventory}"),
    )?;
    let inventory_arg = inventory_path.display().to_string();
    let collector = Collector::start_with("service-map", work.path(), 1, &["--inventory", &inventory_arg])?;

    // (client, server, request octets, response octets) per connection.
    let calls: [(&str, &str, u64, u64); 11] = [
        ("frontend", "cart", 2_000, 8_000),
        ("frontend", "cart", 1_000, 4_000),
        ("frontend", "catalog", 3_000, 60_000),
        ("frontend", "checkout", 1_500, 2_500),
        ("checkout", "cart", 700, 1_300),
        ("checkout", "payment", 1_200, 800),
        ("checkout", "postgres", 4_000, 16_000),
        ("catalog", "postgres", 2_500, 90_000),
        ("cart", "redis", 600, 2_400),
        ("cart", "redis", 400, 1_600),
        ("payment", "external", 900, 4_100),
    ];
    let flows: Vec<_> = calls
        .iter()
        .enumerate()
        .map(|(n, (c, s, req, resp))| flow(n as u32 + 1, ip(c), ip(s), *req, *resp, t0 - 2_000 + n as u64))
        .collect();
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.connect(collector.listen)?;
    send(&socket, &flows)?;

    let pairs: BTreeSet<(String, String)> = calls.iter().map(|(c, s, ..)| (node_id(c), node_id(s))).collect();
    let base = format!("http://{}", collector.metrics);
    let mut api = Value::Null;
    peer::wait_until(
        "the node graph to hold every pair",
        Duration::from_secs(30),
        || {
            api = get_json(&format!("{base}/api/graph/data?window=5m"))?;
            let edges = api["edges"].as_array().map_or(0, Vec::len);
            Ok(edges == pairs.len())
        },
    )
    .with_context(|| format!("the Node Graph API says {api}"))?;

    // The page, in the browser: the cart -> redis arrow and checkout's node are clicked.
    let shot = work.path().join("service-map.png");
    let edge = format!("{}->{}", node_id("cart"), node_id("redis"));
    let out = Command::new(&node)
        .arg(root.join("tests/browser/service_map.cjs"))
        .arg(format!("{base}/?window=5m"))
        .arg(&shot)
        .arg(node_id("checkout"))
        .arg(&edge)
        .env("PODFLOW_PLAYWRIGHT", &playwright)
        .env("CHROMIUM", &chromium)
        .output()
        .context("running tests/browser/service_map.cjs")?;
    ensure!(
        out.status.success(),
        "service_map.cjs failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("service_map.cjs printed {}", String::from_utf8_lossy(&out.stdout)))?;

    let strings = |v: &Value, keys: &[&str]| -> BTreeSet<Vec<String>> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                keys.iter()
                    .map(|k| e[*k].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .collect()
    };
    let drawn_edges = strings(&page["edges"], &["source", "target"]);
    let sent_edges: BTreeSet<Vec<String>> = pairs.iter().map(|(c, s)| vec![c.clone(), s.clone()]).collect();
    assert_eq!(drawn_edges, sent_edges, "arrows drawn");
    assert_eq!(
        drawn_edges,
        strings(&api["edges"], &["source", "target"]),
        "the page draws what the API serves"
    );
    let drawn_nodes = strings(&page["nodes"], &["id"]);
    let mut expected_nodes: BTreeSet<Vec<String>> = WORKLOADS.iter().map(|(w, _)| vec![node_id(w)]).collect();
    expected_nodes.insert(vec![node_id("external")]);
    assert_eq!(drawn_nodes, expected_nodes, "nodes drawn");
    assert_eq!(
        page["foreign"],
        serde_json::json!([]),
        "requests to anything but the collector"
    );
    assert_eq!(
        page["console_errors"],
        serde_json::json!([]),
        "errors in the page"
    );
    assert_eq!(page["error"], Value::Null);

    // checkout, a client of three and the server of one: the octets it sent (its requests, and its
    // answers to frontend) and received.
    // (sent, received) by workload `w`: a client sends its requests, a server its responses.
    let octets = |w: &str| -> (u64, u64) {
        calls.iter().fold((0, 0), |(sent, received), (c, s, req, resp)| {
            match (*c == w, *s == w) {
                (true, _) => (sent + req, received + resp),
                (_, true) => (sent + resp, received + req),
                _ => (sent, received),
            }
        })
    };
    let thousands = |v: u64| -> String {
        let s = v.to_string();
        let mut out = String::new();
        for (i, ch) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(ch);
        }
        out
    };
    let n = &page["node"];
    assert_eq!(n["title"], "checkout", "{n}");
    let (sent, received) = octets("checkout");
    assert_eq!(n["detail__bytes_sent"], thousands(sent).as_str(), "{n}");
    assert_eq!(n["detail__bytes_received"], thousands(received).as_str(), "{n}");
    assert_eq!(n["calls"], "3", "{n}");
    assert_eq!(n["called_by"], "1", "{n}");
    assert_eq!(n["detail__kind"], "StatefulSet", "{n}");
    assert_eq!(n["detail__namespace"], "shop", "{n}");

    // cart -> redis: two connections, 1,000 octets asked, 4,000 answered, over the 5-minute window.
    let e = &page["edge"];
    assert_eq!(e["title"], "cart \u{2192} redis", "{e}");
    assert_eq!(e["detail__request_bytes"], "1,000", "{e}");
    assert_eq!(e["detail__response_bytes"], "4,000", "{e}");
    assert_eq!(e["detail__connections"], "2", "{e}");
    assert_eq!(e["mainStat"], "16.7 B/s", "5,000 octets over 300 s: {e}");
    assert_eq!(e["secondaryStat"], "0.0067/s", "2 connections over 300 s: {e}");

    let png = std::fs::read(&shot)?;
    ensure!(
        png.starts_with(b"\x89PNG"),
        "no PNG screenshot at {}",
        shot.display()
    );
    if std::env::var_os("PODFLOW_WRITE_DOCS").is_some() {
        std::fs::write(root.join("docs/service-map.png"), &png)?;
    }
    collector.stop()?;
    Ok(())
}
