//! Known flows between pods of a static inventory, for the tests that check what the collector makes
//! of them (flow metrics through Prometheus, the node graph and its page).

use std::net::{IpAddr, UdpSocket};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::expect::UtcTime;
use crate::flows::{SampleFlow, encode_messages, sample_flows};

/// The wall clock in Unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `ms` as an RFC 3339 UTC time, to the second.
pub fn rfc3339(ms: u64) -> String {
    let t = UtcTime::from_millis(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

/// A StatefulSet's pod on `ip`, there since `start_ms`; failed at `ended_ms` if given (its container
/// terminated then, and its address was released).
pub fn pod(name: &str, set: &str, ip: &str, start_ms: u64, ended_ms: Option<u64>) -> String {
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
pub fn flow(n: u32, src: &str, dst: &str, octets: u64, reverse_octets: u64, start_ms: u64) -> SampleFlow {
    let mut f = sample_flows().swap_remove(0);
    let (src, dst): (IpAddr, IpAddr) = (src.parse().unwrap_or(f.src), dst.parse().unwrap_or(f.dst));
    (f.src, f.dst, f.src_port, f.dst_port) = (src, dst, 40_000 + n as u16, 8080);
    (f.post_nat_src, f.post_nat_dst) = (src, dst);
    (f.post_nat_src_port, f.post_nat_dst_port) = (f.src_port, f.dst_port);
    (f.octets, f.reverse_octets) = (octets, reverse_octets);
    (f.packets, f.reverse_packets) = (octets.div_ceil(1000), reverse_octets.div_ceil(1000));
    (f.start_ms, f.end_ms) = (start_ms, start_ms + 500);
    let id: &'static str = Box::leak(format!("1:known-flow-{n}").into_boxed_str());
    (f.community_id, f.post_nat_community_id) = (id, id);
    (f.pod_name, f.pod_namespace) = ("web-0", "shop");
    f
}

/// Sends `flows` to the socket's peer, five to a message.
pub fn send(socket: &UdpSocket, flows: &[SampleFlow]) -> anyhow::Result<()> {
    for chunk in flows.chunks(5) {
        for m in encode_messages(chunk)? {
            socket.send(&m)?;
        }
    }
    Ok(())
}
