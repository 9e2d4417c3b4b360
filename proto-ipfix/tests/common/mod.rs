//! What the capture and differential tests share: where the captures live and how they are fed.
//!
//! Each `.dat` of `testdata/captures/logstash-codec-netflow` is one UDP payload from one exporter. A vendor's
//! files are fed in the order below (template files before data files, as `testdata/captures/SOURCES.md`
//! says), from one simulated exporter address per vendor, so templates from one vendor never answer
//! another vendor's data sets.

#![allow(dead_code)] // each test crate uses a different part of this module

use std::net::SocketAddr;
use std::path::PathBuf;

use proto_ipfix::wire;

/// The directory of the logstash-codec-netflow `.dat` captures.
pub fn logstash_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/captures/logstash-codec-netflow")
}

/// The CESNET ipfixcol2 IPFIX file (RFC 5655: concatenated messages).
pub fn cesnet_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/captures/cesnet-ipfixcol2/example_flows.ipfix")
}

/// The IPFIX captures grouped by vendor, each group in feeding order.
///
/// `barracuda` and `barracuda_extended_uniflow` come from two different devices that both use template
/// 256 with different layouts, so they are two exporters.
pub const VENDORS: &[(&str, &[&str])] = &[
    ("generic", &["ipfix.dat"]),
    (
        "barracuda",
        &["ipfix_test_barracuda_tpl.dat", "ipfix_test_barracuda_data256.dat"],
    ),
    (
        "barracuda_extended_uniflow",
        &[
            "ipfix_test_barracuda_extended_uniflow_tpl256.dat",
            "ipfix_test_barracuda_extended_uniflow_data256.dat",
        ],
    ),
    (
        "ixia",
        &["ipfix_test_ixia_tpldata256.dat", "ipfix_test_ixia_tpldata271.dat"],
    ),
    (
        "juniper_mx240",
        &[
            "ipfix_test_juniper_mx240_junos151r6s3_opttpl512.dat",
            "ipfix_test_juniper_mx240_junos151r6s3_data512.dat",
        ],
    ),
    (
        "mikrotik",
        &[
            "ipfix_test_mikrotik_tpl.dat",
            "ipfix_test_mikrotik_data258.dat",
            "ipfix_test_mikrotik_data259.dat",
        ],
    ),
    (
        "netscaler",
        &["ipfix_test_netscaler_tpl.dat", "ipfix_test_netscaler_data.dat"],
    ),
    (
        "nokia_bras",
        &[
            "ipfix_test_nokia_bras_tpl.dat",
            "ipfix_test_nokia_bras_data256.dat",
        ],
    ),
    (
        "openbsd_pflow",
        &[
            "ipfix_test_openbsd_pflow_tpl.dat",
            "ipfix_test_openbsd_pflow_data.dat",
        ],
    ),
    (
        "procera",
        &[
            "ipfix_test_procera_tpl52935.dat",
            "ipfix_test_procera_data52935.dat",
        ],
    ),
    (
        "viptela",
        &["ipfix_test_viptela_tpl257.dat", "ipfix_test_viptela_data257.dat"],
    ),
    (
        "vmware_vds",
        &[
            "ipfix_test_vmware_vds_tpl.dat",
            "ipfix_test_vmware_vds_data264.dat",
            "ipfix_test_vmware_vds_data266.dat",
            "ipfix_test_vmware_vds_data266_267.dat",
        ],
    ),
    (
        "yaf",
        &[
            "ipfix_test_yaf_tpl45841.dat",
            "ipfix_test_yaf_tpls_option_tpl.dat",
            "ipfix_test_yaf_data45841.dat",
            "ipfix_test_yaf_data45873.dat",
            "ipfix_test_yaf_data53248.dat",
        ],
    ),
];

/// The simulated exporter of vendor number `index` in [`VENDORS`].
pub fn exporter(index: usize) -> SocketAddr {
    let host = u8::try_from(index + 1).unwrap();
    SocketAddr::from(([192, 0, 2, host], 4739))
}

/// The exporter that the CESNET file is attributed to.
pub fn cesnet_exporter() -> SocketAddr {
    SocketAddr::from(([198, 51, 100, 6], 4739))
}

/// Reads a capture file.
pub fn read(path: PathBuf) -> Vec<u8> {
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Reads a logstash capture by name.
pub fn read_dat(name: &str) -> Vec<u8> {
    read(logstash_dir().join(name))
}

/// The messages of a capture. Most `.dat` files hold one message; `ipfix.dat` holds three back to back,
/// so every file is split by the header length fields like an RFC 5655 file.
pub fn messages(bytes: &[u8]) -> Vec<&[u8]> {
    wire::split_messages(bytes).map(|m| m.unwrap()).collect()
}

/// The version field of a NetFlow/IPFIX header.
pub fn header_version(bytes: &[u8]) -> u16 {
    u16::from_be_bytes([bytes[0], bytes[1]])
}
