//! Runs `podflow-exporter community-id` on the Community ID spec's pcaps and compares the output byte for
//! byte with pycommunityid's (see `tests/data/community-id/SOURCES.md`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_podflow-exporter");

/// Output-file suffix and the flags that produce it.
const MODES: [(&str, &[&str]); 3] = [
    ("deflt", &[]),
    ("seed1", &["--seed", "1"]),
    ("nob64", &["--no-base64"]),
];

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/community-id")
}

fn run(args: &[&str], file: &Path) -> Output {
    Command::new(BIN)
        .arg("community-id")
        .args(args)
        .arg(file)
        .output()
        .unwrap()
}

fn pcaps() -> Vec<PathBuf> {
    let mut pcaps: Vec<PathBuf> = std::fs::read_dir(data_dir().join("pcaps"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .collect();
    pcaps.sort();
    pcaps
}

#[test]
fn output_matches_reference_byte_for_byte() {
    let mut compared = 0;
    let mut missing = Vec::new();
    for pcap in pcaps() {
        let name = pcap.file_name().unwrap().to_str().unwrap();
        for (suffix, args) in MODES {
            let expected_path = data_dir().join("expected").join(format!("{name}.{suffix}.txt"));
            let Ok(expected) = std::fs::read_to_string(&expected_path) else {
                missing.push(expected_path);
                continue;
            };
            let out = run(args, &pcap);
            assert!(
                out.status.success(),
                "{name} {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let got = String::from_utf8(out.stdout).unwrap();
            if got != expected {
                panic!(
                    "{name} {args:?} differs from {}:\n--- got\n{got}--- expected\n{expected}",
                    expected_path.display()
                );
            }
            compared += 1;
        }
    }
    assert!(missing.is_empty(), "pcaps without expected output: {missing:?}");
    // 8 pcaps x 3 modes; fails loudly if the data directory went missing.
    assert_eq!(compared, 24, "files compared");
}

#[test]
fn missing_file_is_a_clear_error() {
    let out = run(&[], Path::new("/nonexistent/podflow-test.pcap"));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot open /nonexistent/podflow-test.pcap"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn non_pcap_file_is_a_clear_error() {
    let out = run(&[], &data_dir().join("SOURCES.md"));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("as a capture file"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn truncated_capture_prints_what_it_read_then_fails() {
    // Cut the last packet record in half: libpcap reports a truncated file after the complete packets.
    let pcap = std::fs::read(data_dir().join("pcaps/udp.pcap")).unwrap();
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("community-id-truncated.pcap");
    std::fs::write(&path, &pcap[..pcap.len() - 20]).unwrap();
    let out = run(&[], &path);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("podflow-exporter: "));
}

#[test]
fn seed_out_of_range_is_rejected() {
    let out = run(&["--seed", "65536"], &data_dir().join("pcaps/udp.pcap"));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn no_source_is_a_usage_error() {
    let out = Command::new(BIN).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--interface NAME (live capture) or --pcap FILE"));
    let out = Command::new(BIN).args(["--pcap", "x.pcap"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no collector"));
}

#[test]
fn help_explains_community_id_and_flags() {
    let out = Command::new(BIN)
        .args(["community-id", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "Community ID",
        "--seed <N>",
        "[default: 0]",
        "--no-base64",
        "FILE.pcap",
    ] {
        assert!(help.contains(needle), "missing {needle:?} in:\n{help}");
    }
}

/// A one-packet pcap with the given link type around an IPv4/UDP packet 192.168.1.52:54585 -> 8.8.8.8:53.
fn one_packet_pcap(dlt: u32, link_header: &[u8]) -> Vec<u8> {
    let mut ip = vec![
        0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 192, 168, 1, 52, 8, 8, 8, 8,
    ];
    ip.extend_from_slice(&[0xd5, 0x39, 0, 53, 0, 8, 0, 0]);
    let frame = [link_header, &ip].concat();
    let len = u32::try_from(frame.len()).unwrap();
    let mut pcap = Vec::new();
    for word in [0xa1b2_c3d4_u32, 0x0004_0002, 0, 0, 65535, dlt] {
        pcap.extend_from_slice(&word.to_le_bytes());
    }
    for word in [1_500_000_130_u32, 10_640, len, len] {
        pcap.extend_from_slice(&word.to_le_bytes());
    }
    pcap.extend_from_slice(&frame);
    pcap
}

#[test]
fn cooked_and_raw_link_types() {
    let sll = [0, 0, 0x03, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00];
    let sll2 = [
        0x08, 0x00, 0, 0, 0, 0, 0, 1, 0x03, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let cases: [(u32, &[u8]); 4] = [(101, &[]), (228, &[]), (113, &sll), (276, &sll2)];
    for (dlt, link_header) in cases {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("community-id-dlt{dlt}.pcap"));
        std::fs::write(&path, one_packet_pcap(dlt, link_header)).unwrap();
        let out = run(&[], &path);
        assert!(
            out.status.success(),
            "dlt {dlt}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "1500000130.010640 | 1:d/FP5EW3wiY1vCndhwleRRKHowQ= | 192.168.1.52 8.8.8.8 17 54585 53\n",
            "dlt {dlt}"
        );
    }
}

#[test]
fn unsupported_link_type_is_a_clear_error() {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("community-id-dlt105.pcap");
    std::fs::write(&path, one_packet_pcap(105, &[])).unwrap();
    let out = run(&[], &path);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported link type 105"));
}
