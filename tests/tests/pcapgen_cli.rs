//! `podflow-gen-pcap`: its options reach the generator, and an independent dissector (tshark) finds in
//! the file exactly the packets, IP octets and connections its JSON summary announces.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::process::Command;

use podflow_e2e::pcapgen::{self, Config};
use podflow_e2e::peer;
use serde_json::Value;

fn config() -> Config {
    Config {
        tcp: 300,
        udp: 150,
        icmp: 40,
        v6_percent: 40,
        seed: 7,
        tcp_segments: (3, 6),
        echoes: (2, 2),
        fragmented: 6,
        flows_per_sec: 500.0,
        snaplen: 200,
        ..Config::default()
    }
}

/// Runs the command line with the options of [`config`]; returns the file and the printed summary.
fn generate_with_cli(dir: &std::path::Path) -> (std::path::PathBuf, Value) {
    let out = dir.join("cli.pcap");
    let stdout = peer::run(
        Command::new(env!("CARGO_BIN_EXE_podflow-gen-pcap"))
            .arg("--out")
            .arg(&out)
            .args([
                "--tcp",
                "300",
                "--udp",
                "150",
                "--icmp",
                "40",
                "--v6-share",
                "40",
                "--seed",
                "7",
            ])
            .args(["--packets-per-flow", "3-6", "--echoes", "2", "--fragmented", "6"])
            .args(["--flows-per-sec", "500", "--snaplen", "200"]),
    )
    .unwrap();
    (out, serde_json::from_str(&stdout).unwrap())
}

#[test]
fn cli_prints_what_the_library_generates() {
    let dir = tempfile::tempdir().unwrap();
    let (file, printed) = generate_with_cli(dir.path());
    let mut lib_file = Vec::new();
    let summary = pcapgen::generate(&config(), &mut lib_file, None).unwrap();
    assert_eq!(printed, summary.json());
    assert!(
        std::fs::read(&file).unwrap() == lib_file,
        "the CLI wrote another file"
    );
    assert_eq!(printed["flows"], 490);
    assert_eq!(printed["by_protocol"]["icmp"]["packets"].as_u64().unwrap() % 2, 0);
}

#[test]
fn cli_refuses_a_bad_range() {
    let out = Command::new(env!("CARGO_BIN_EXE_podflow-gen-pcap"))
        .args(["--out", "/dev/null", "--packets-per-flow", "5-2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("MIN <= MAX"));
}

/// tshark, reading the file frame by frame without reassembling fragments, counts the same packets and
/// IP octets (IPv4 total length; IPv6 payload length plus its 40-octet header) and the same number of
/// TCP and UDP conversations as the summary has TCP and UDP flows.
#[test]
fn tshark_agrees_with_the_summary() -> anyhow::Result<()> {
    let Some(tshark) = peer::require("tshark", "tshark")? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let (file, summary) = generate_with_cli(dir.path());
    let fields = peer::run(
        Command::new(tshark)
            .arg("-r")
            .arg(&file)
            .args(["-o", "ip.defragment:FALSE", "-T", "fields", "-E", "separator=,"])
            .args([
                "-e",
                "ip.len",
                "-e",
                "ipv6.plen",
                "-e",
                "tcp.stream",
                "-e",
                "udp.stream",
            ]),
    )?;
    let (mut packets, mut octets) = (0u64, 0u64);
    let (mut tcp, mut udp) = (HashSet::new(), HashSet::new());
    for line in fields.lines() {
        let f: Vec<&str> = line.split(',').collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
        packets += 1;
        octets += match (num(0), num(1)) {
            (Some(v4), None) => v4,
            (None, Some(v6)) => v6 + 40,
            other => panic!("frame {packets}: ip.len/ipv6.plen {other:?} in {line:?}"),
        };
        tcp.extend(num(2));
        udp.extend(num(3));
    }
    let want = |path: &[&str]| path.iter().fold(&summary, |v, k| &v[*k]).as_u64().unwrap();
    assert_eq!(packets, want(&["packets"]));
    assert_eq!(octets, want(&["octets"]));
    assert_eq!(tcp.len() as u64, want(&["by_protocol", "tcp", "flows"]));
    assert_eq!(udp.len() as u64, want(&["by_protocol", "udp", "flows"]));
    Ok(())
}
