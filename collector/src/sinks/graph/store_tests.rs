use super::*;

fn ep(ns: &str, w: &str) -> Endpoint {
    Endpoint {
        namespace: ns.into(),
        workload: w.into(),
        kind: "Deployment".into(),
    }
}

fn key(c: &str, s: &str) -> EdgeKey {
    EdgeKey {
        client: ep("shop", c),
        server: ep("shop", s),
        dst_service: "".into(),
        protocol: "tcp".into(),
    }
}

fn counts(bytes: u64) -> EdgeCounts {
    EdgeCounts {
        connections: 1,
        request_bytes: bytes,
        response_bytes: 2 * bytes,
        request_packets: 1,
        response_packets: 2,
    }
}

/// Minute 1000 of the fake clock, at a bucket boundary.
const T0: u64 = 1000 * COARSE_MS;

fn bytes(s: &GraphStore, now: u64, w: Window) -> u64 {
    s.query(now, w, |_| true).iter().map(|e| e.traffic.bytes()).sum()
}

#[test]
fn windows_add_up_their_buckets_only() {
    let mut s = GraphStore::new(10);
    let k = key("web", "api");
    // 100 request octets at T0, then 10 every 10 s for 59 minutes more.
    s.add(T0, [(&k, &counts(100))]);
    for i in 1..=354 {
        s.add(T0 + i * FINE_MS, [(&k, &counts(10))]);
    }
    let now = T0 + 354 * FINE_MS;
    // 1m: the bucket now falls in and the five before it: six deltas of 30 octets.
    assert_eq!(bytes(&s, now, Window::M1), 180);
    assert_eq!(bytes(&s, now, Window::M5), 30 * 30);
    // 15m: minutes 45..=59 after T0 (the current minute holds 5 deltas: 354 % 6 = 0).
    let minute = |n: u64| 6 * 30 * n;
    assert_eq!(bytes(&s, now, Window::M15), minute(14) + 30);
    // 1h: minutes 0..=59: the first delta (300) is still in; minute 0 holds it and five of 30.
    assert_eq!(bytes(&s, now, Window::H1), 300 + 5 * 30 + minute(58) + 30);
    let t = &s.query(now, Window::M5, |_| true)[0];
    assert_eq!((t.traffic.connections, t.traffic.packets), (30, 90));
}

#[test]
fn silent_edges_leave_the_windows_then_the_store() {
    let mut s = GraphStore::new(10);
    s.add(T0, [(&key("web", "api"), &counts(100))]);
    assert_eq!(bytes(&s, T0 + 59 * FINE_MS, Window::M1), 0);
    assert_eq!(bytes(&s, T0 + 59 * FINE_MS, Window::M15), 300);
    assert_eq!(bytes(&s, T0 + 59 * COARSE_MS, Window::H1), 300);
    assert_eq!(bytes(&s, T0 + 60 * COARSE_MS, Window::H1), 0);
    // Another edge's traffic in the 60th minute sweeps the silent one.
    s.add(T0 + 59 * COARSE_MS, [(&key("a", "b"), &counts(1))]);
    assert_eq!(s.len(), 2);
    s.add(T0 + 60 * COARSE_MS, [(&key("a", "b"), &counts(1))]);
    assert_eq!(s.len(), 1);
}

#[test]
fn a_full_store_drops_new_edges_and_counts_them() {
    let mut s = GraphStore::new(2);
    let (a, b, c) = (key("a", "x"), key("b", "x"), key("c", "x"));
    s.add(
        T0,
        [
            (&a, &counts(1)),
            (&b, &counts(1)),
            (&c, &counts(1)),
            (&a, &counts(1)),
        ],
    );
    assert_eq!((s.len(), s.dropped_edges()), (2, 1));
    assert_eq!(bytes(&s, T0, Window::M1), 6 + 3);
    // Once the old edges are an hour quiet, the new one gets in.
    s.add(T0 + 60 * COARSE_MS, [(&c, &counts(1))]);
    assert_eq!((s.len(), s.dropped_edges()), (1, 1));
}

#[test]
fn a_clock_that_steps_back_adds_to_older_buckets_or_not_at_all() {
    let mut s = GraphStore::new(10);
    let k = key("web", "api");
    s.add(T0 + 10 * FINE_MS, [(&k, &counts(1))]);
    s.add(T0, [(&k, &counts(10))]);
    assert_eq!(bytes(&s, T0 + 10 * FINE_MS, Window::M5), 33);
    s.add(T0 - 2 * 3600 * 1000, [(&k, &counts(1000))]);
    assert_eq!(bytes(&s, T0 + 10 * FINE_MS, Window::H1), 33);
}

#[test]
fn services_and_protocols_are_named_sorted_and_capped() {
    let mut s = GraphStore::new(10);
    let mut keys = Vec::new();
    for (svc, proto) in [
        ("db", "tcp"),
        ("", "udp"),
        ("cache", "tcp"),
        ("a", "b"),
        ("c", "d"),
        ("e", "f"),
    ] {
        let mut k = key("web", "api");
        k.dst_service = svc.into();
        k.protocol = proto.into();
        keys.push(k);
    }
    let zero = EdgeCounts::default();
    s.add(T0, keys.iter().map(|k| (k, &zero)));
    let t = s.query(T0, Window::M1, |_| true);
    // No traffic at all: nothing to show.
    assert!(t.is_empty());
    s.add(T0, [(&keys[0], &counts(1))]);
    let t = &s.query(T0, Window::M1, |_| true)[0];
    let names = |v: &[Arc<str>]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(names(&t.services), ["a", "cache", "db"]);
    assert_eq!(names(&t.protocols), ["b", "d", "tcp", "udp"]);
}
