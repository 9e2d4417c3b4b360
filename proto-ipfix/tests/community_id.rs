//! Checks `proto_ipfix::community_id` against every published Community ID vector we ship
//! (see `tests/data/community-id/SOURCES.md`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::path::PathBuf;

use proto_ipfix::community_id::CommunityId;
use serde_json::Value;

fn data_file(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/community-id")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One vector's flow tuple; ports are `null` in the data for port-less protocols.
struct Tuple {
    saddr: IpAddr,
    daddr: IpAddr,
    proto: u8,
    sport: u16,
    dport: u16,
}

fn tuple(v: &Value) -> Tuple {
    let addr = |k: &str| v[k].as_str().unwrap().parse::<IpAddr>().unwrap();
    let port = |k: &str| v[k].as_u64().map_or(0, |p| u16::try_from(p).unwrap());
    Tuple {
        saddr: addr("saddr"),
        daddr: addr("daddr"),
        proto: u8::try_from(v["proto"].as_u64().unwrap()).unwrap(),
        sport: port("sport"),
        dport: port("dport"),
    }
}

/// Which rendering an expected string is in.
#[derive(Clone, Copy)]
enum Render {
    Base64,
    Hex,
}

/// Asserts one expectation and returns 1 so callers can count what was checked.
fn check(v: &Value, seed: u16, render: Render, expected: &Value) -> usize {
    let expected = expected
        .as_str()
        .unwrap_or_else(|| panic!("no expected string in {v}"));
    let t = tuple(v);
    let digest = CommunityId::new(seed)
        .hash(t.saddr, t.daddr, t.proto, t.sport, t.dport)
        .unwrap();
    let got = match render {
        Render::Base64 => digest.base64(),
        Render::Hex => digest.hex(),
    };
    assert_eq!(&*got, expected, "seed {seed} vector {v}");
    1
}

#[test]
fn pycommunityid_vectors() {
    let data = data_file("pycommunityid-test-vectors.json");
    let mut checked = 0;
    for v in data["vectors"].as_array().unwrap() {
        let e = &v["expected"];
        checked += check(v, 0, Render::Base64, &e["default"]);
        checked += check(v, 0, Render::Hex, &e["no_base64"]);
        checked += check(v, 1, Render::Base64, &e["seed1"]);
    }
    assert_eq!(checked, 19 * 3, "pycommunityid vectors checked");
}

#[test]
fn extra_edge_vectors() {
    let data = data_file("extra-edge-vectors.computed.json");
    let mut checked = 0;
    for v in data["vectors"].as_array().unwrap() {
        checked += check(v, 0, Render::Base64, &v["default"]);
        checked += check(v, 0, Render::Hex, &v["no_base64"]);
    }
    assert_eq!(checked, 22 * 2, "edge vectors checked");
}

#[test]
fn spec_baselines() {
    let mut checked = 0;
    for (file, seed, render) in [
        ("baseline_deflt.json", 0, Render::Base64),
        ("baseline_seed1.json", 1, Render::Base64),
        ("baseline_nob64.json", 0, Render::Hex),
    ] {
        for v in data_file(file).as_array().unwrap() {
            checked += check(v, seed, render, &v["communityid"]);
        }
    }
    assert_eq!(checked, 23 * 3, "baseline vectors checked");
}

#[test]
fn vectors_hold_in_both_directions_for_two_way_flows() {
    // Every non-ICMP vector must give the same ID with the endpoints swapped; this guards the ordering
    // rule beyond the pairs the data files happen to list.
    let data = data_file("pycommunityid-test-vectors.json");
    let mut checked = 0;
    for v in data["vectors"].as_array().unwrap() {
        let t = tuple(v);
        if t.proto == 1 || t.proto == 58 {
            continue;
        }
        let c = CommunityId::default();
        let fwd = c.hash(t.saddr, t.daddr, t.proto, t.sport, t.dport);
        let rev = c.hash(t.daddr, t.saddr, t.proto, t.dport, t.sport);
        assert_eq!(fwd, rev, "{v}");
        checked += 1;
    }
    assert!(checked > 0);
}
