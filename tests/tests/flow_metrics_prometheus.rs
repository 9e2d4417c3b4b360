//! The flow metrics as a real Prometheus sees them: podflow-collector attributes known flows with a
//! static inventory and Debian's Prometheus scrapes its `/metrics` every second (in OpenMetrics, which
//! Prometheus asks for). Through Prometheus's query API:
//! - `sum by (src_workload, dst_workload)` of `podflow_connection_bytes_total` equals the octets of the
//!   flows sent, pair by pair (and `netflow_connection_bytes` likewise);
//! - a workload whose pod the inventory says has ended (failed, its address released) stops being
//!   counted (its address is `unknown` for later flows), and its series go stale once
//!   `--metrics-series-ttl` has passed.

use std::collections::BTreeMap;
use std::net::{IpAddr, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, ensure};
use podflow_e2e::collector::Collector;
use podflow_e2e::expect::UtcTime;
use podflow_e2e::flows::{SampleFlow, encode_messages, sample_flows};
use podflow_e2e::peer;
use podflow_e2e::prometheus::Prometheus;

const WEB: &str = "10.244.1.5";
const DB: &str = "10.244.2.7";
const CACHE: &str = "10.244.3.3";

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn rfc3339(ms: u64) -> String {
    let t = UtcTime::from_millis(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// A StatefulSet's pod on `ip`, there since `start_ms`; failed at `ended_ms` if given (its container
/// terminated then, and its address was released).
fn pod(name: &str, set: &str, ip: &str, start_ms: u64, ended_ms: Option<u64>) -> String {
    let (phase, containers) = match ended_ms {
        None => ("Running", String::new()),
        Some(end) => (
            "Failed",
            format!(
                "    containerStatuses:\n    - name: main\n      image: example/{set}:1\n      imageID: \"\"\n\
                 \x20     ready: false\n      restartCount: 0\n      state:\n        terminated:\n\
                 \x20         exitCode: 137\n          finishedAt: \"{}\"\n",
                rfc3339(end)
            ),
        ),
    };
    format!(
        "- apiVersion: v1\n  kind: Pod\n  metadata:\n    name: {name}\n    namespace: shop\n    uid: uid-{name}\n\
         \x20   creationTimestamp: \"{start}\"\n    labels:\n      app: {set}\n    ownerReferences:\n\
         \x20   - apiVersion: apps/v1\n      kind: StatefulSet\n      name: {set}\n      uid: uid-{set}\n      controller: true\n\
         \x20 spec:\n    nodeName: node-a\n    containers:\n    - name: main\n      image: example/{set}:1\n\
         \x20 status:\n    phase: {phase}\n    podIP: {ip}\n    podIPs:\n    - ip: {ip}\n    startTime: \"{start}\"\n\
         \x20   conditions:\n    - type: PodReadyToStartContainers\n      status: \"True\"\n      lastTransitionTime: \"{start}\"\n\
         {containers}",
        start = rfc3339(start_ms),
    )
}

/// A TCP biflow src -> dst:8080 starting at `start_ms`, untranslated, with a Community ID of its own.
fn flow(n: u32, src: &str, dst: &str, octets: u64, reverse_octets: u64, start_ms: u64) -> SampleFlow {
    let mut f = sample_flows().swap_remove(0);
    let (src, dst): (IpAddr, IpAddr) = (src.parse().unwrap_or(f.src), dst.parse().unwrap_or(f.dst));
    (f.src, f.dst, f.src_port, f.dst_port) = (src, dst, 40_000 + n as u16, 8080);
    (f.post_nat_src, f.post_nat_dst) = (src, dst);
    (f.post_nat_src_port, f.post_nat_dst_port) = (f.src_port, f.dst_port);
    (f.octets, f.reverse_octets) = (octets, reverse_octets);
    (f.packets, f.reverse_packets) = (octets.div_ceil(1000), reverse_octets.div_ceil(1000));
    (f.start_ms, f.end_ms) = (start_ms, start_ms + 500);
    let id: &'static str = Box::leak(format!("1:flow-metrics-test-{n}").into_boxed_str());
    (f.community_id, f.post_nat_community_id) = (id, id);
    (f.pod_name, f.pod_namespace) = ("web-0", "shop");
    f
}

fn send(socket: &UdpSocket, flows: &[SampleFlow]) -> anyhow::Result<()> {
    for chunk in flows.chunks(5) {
        for m in encode_messages(chunk)? {
            socket.send(&m)?;
        }
    }
    Ok(())
}

/// (src, dst) -> value of a `sum by` query.
fn pairs(
    samples: &[podflow_e2e::prometheus::Sample],
    src: &str,
    dst: &str,
) -> BTreeMap<(String, String), u64> {
    samples
        .iter()
        .map(|s| {
            let get = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
            ((get(src), get(dst)), s.value as u64)
        })
        .collect()
}

#[test]
fn prometheus_sums_the_bytes_sent_per_workload_pair_and_sees_an_ended_workload_go_stale() -> anyhow::Result<()>
{
    let work = tempfile::tempdir()?;
    let t0 = now_ms();
    let ended_at = t0 - 60_000;
    let inventory = format!(
        "apiVersion: v1\nkind: List\nitems:\n{}{}{}",
        pod("web-0", "web", WEB, t0 - 3_600_000, None),
        pod("db-0", "db", DB, t0 - 3_600_000, Some(ended_at)),
        pod("cache-0", "cache", CACHE, t0 - 3_600_000, None),
    );
    let inventory_path = work.path().join("cluster.yaml");
    std::fs::write(&inventory_path, inventory)?;
    let inventory_arg = inventory_path.display().to_string();
    let mut collector = Collector::start_with(
        "flow-metrics",
        work.path(),
        1,
        &[
            "--inventory",
            &inventory_arg,
            "--metrics-series-ttl",
            "3s",
            "--compat-netflow-metrics",
        ],
    )?;
    let Some(bin) = podflow_e2e::prometheus::require()? else {
        return Ok(());
    };
    let job = podflow_e2e::prometheus::Job {
        name: "podflow".into(),
        targets: vec![collector.metrics],
        labels: BTreeMap::new(),
    };
    let mut prometheus = Prometheus::start(&bin, work.path(), &[job])?;
    prometheus.wait_up(1)?;

    // Before db's pod ended: web talks to db, cache and a host outside the cluster.
    let before = t0 - 300_000;
    let sent = [
        flow(1, WEB, DB, 1_000, 20_000, before),
        flow(2, WEB, DB, 3_000, 7_000, before + 10),
        flow(3, WEB, DB, 500, 0, before + 20),
        flow(4, WEB, CACHE, 300, 1_200, before + 30),
        flow(5, WEB, CACHE, 700, 800, before + 40),
        flow(6, WEB, "192.0.2.80", 64, 128, before + 50),
    ];
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.connect(collector.listen)?;
    send(&socket, &sent)?;
    let mut expected = BTreeMap::new();
    let workload = |ip: IpAddr| match ip.to_string().as_str() {
        WEB => "web",
        DB => "db",
        CACHE => "cache",
        _ => "external",
    };
    for f in &sent {
        *expected
            .entry((workload(f.src).to_owned(), workload(f.dst).to_owned()))
            .or_insert(0) += f.octets + f.reverse_octets;
    }
    // Over a window, so the check holds whether or not the TTL has removed the series since.
    let bytes_query =
        "sum by (src_workload, dst_workload) (max_over_time(podflow_connection_bytes_total[10m]))";
    let compat_query = "sum by (srchost, dsthost) (max_over_time(netflow_connection_bytes[10m]))";
    let mut last = (BTreeMap::new(), BTreeMap::new());
    peer::wait_until(
        "prometheus to hold the bytes sent per workload pair",
        Duration::from_secs(60),
        || {
            prometheus.check_running()?;
            collector_alive(&mut collector)?;
            last = (
                pairs(&prometheus.query(bytes_query)?, "src_workload", "dst_workload"),
                pairs(&prometheus.query(compat_query)?, "srchost", "dsthost"),
            );
            Ok(last.0 == expected && last.1 == expected)
        },
    )
    .with_context(|| format!("expected {expected:?}, prometheus says {last:?}"))?;

    // After db's pod ended: its address has no owner, so web -> unknown; db's series go stale once the
    // TTL has passed without them being counted.
    let after = flow(7, WEB, DB, 900, 100, ended_at + 30_000);
    send(&socket, std::slice::from_ref(&after))?;
    let mut seen = (BTreeMap::new(), Vec::new());
    peer::wait_until(
        "web -> unknown counted and db's series stale",
        Duration::from_secs(60),
        || {
            prometheus.check_running()?;
            collector_alive(&mut collector)?;
            seen = (
                pairs(&prometheus.query(bytes_query)?, "src_workload", "dst_workload"),
                prometheus.query("podflow_connection_bytes_total{dst_workload=\"db\"}")?,
            );
            let unknown = seen.0.get(&("web".to_owned(), "unknown".to_owned())).copied();
            Ok(unknown == Some(1_000) && seen.1.is_empty())
        },
    )
    .with_context(|| format!("prometheus says {seen:?}"))?;
    // The pairs counted before db's pod ended are still what was sent, over the window.
    for (pair, bytes) in &expected {
        ensure!(
            seen.0.get(pair) == Some(bytes),
            "{pair:?}: {:?} != {bytes}",
            seen.0.get(pair)
        );
    }
    collector.stop()?;
    Ok(())
}

fn collector_alive(c: &mut Collector) -> anyhow::Result<()> {
    c.scrape().map(|_| ())
}
