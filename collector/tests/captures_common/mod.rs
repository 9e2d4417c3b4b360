//! The captures of `testdata/captures/logstash-codec-netflow` as the decoder tests feed them: grouped by
//! exporter, in feeding order, with what each file gives.

use std::net::SocketAddr;
use std::path::PathBuf;

use podflow_collector::decode::{Decoder, ExporterStats};
use podflow_collector::model::FlowRecord;

/// What one file gives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expect {
    pub flows: u64,
    pub options: u64,
    pub no_addresses: u64,
    /// Data sets whose template never came.
    pub misses: u64,
    /// The one decode error of the file, if any.
    pub error: Option<&'static str>,
}

pub const fn f(flows: u64) -> Expect {
    Expect {
        flows,
        options: 0,
        no_addresses: 0,
        misses: 0,
        error: None,
    }
}

pub const fn opts(options: u64) -> Expect {
    Expect { options, ..f(0) }
}

pub const T: Expect = f(0);

/// Every `.dat` capture, grouped by exporter, in feeding order, with what it gives.
///
/// How the counts were established. IPFIX: flows plus options records equal the data records of
/// proto-ipfix's `tests/captures.rs` table (tshark's counts; 120 in all), and which are options records
/// follows from the templates. NetFlow: every datagram was wrapped in an Ethernet/IPv4/UDP frame (one
/// source address per vendor, template files first) and dissected with Wireshark 4.0 (`tshark -d
/// udp.port==2055,cflow -V`); the counts are its "FlowSet n [id=N] (k flows)" per file, options records
/// being the data of its "Options Template" IDs, and "no template found" sets the misses. Two files differ
/// from tshark: the H3C data (tshark stops at the first record with "Trying to fetch an IPv4 address with
/// length 2" for IPV4_ROUTER_SC, field 43 of length 2; the 16 records are 16 flowsets of one 80-octet
/// record each), and `netflow9_test_invalid01` (its header count says 2 records, tshark stops after 2
/// template flowsets; its flowsets carry 2 flows and 1 options record, as netflow_parser's own v9 parser
/// also finds). Cisco WLC template 261 has no source and destination address (only the station's). The
/// H3C "varstring" template has a variable-length field (65535) that RFC 3954 does not allow. v5:
/// `netflow5.dat` is 12 v5 packets back to back (2, 4, 4, 4 and 8 times 2 flows, flow sequence numbers
/// 0..=28 without a gap), fed as 12 datagrams; the two invalid files have record counts of 55582 and 163.
pub const VENDORS: &[(&str, &[(&str, Expect)])] = &[
    ("generic", &[("ipfix.dat", Expect { options: 1, ..f(12) })]),
    (
        "barracuda",
        &[
            ("ipfix_test_barracuda_tpl.dat", T),
            ("ipfix_test_barracuda_data256.dat", f(8)),
        ],
    ),
    (
        "barracuda_extended_uniflow",
        &[
            ("ipfix_test_barracuda_extended_uniflow_tpl256.dat", T),
            ("ipfix_test_barracuda_extended_uniflow_data256.dat", f(2)),
        ],
    ),
    (
        "ixia",
        &[
            ("ipfix_test_ixia_tpldata256.dat", f(1)),
            ("ipfix_test_ixia_tpldata271.dat", f(2)),
        ],
    ),
    (
        "juniper_mx240",
        &[
            ("ipfix_test_juniper_mx240_junos151r6s3_opttpl512.dat", T),
            ("ipfix_test_juniper_mx240_junos151r6s3_data512.dat", opts(1)),
        ],
    ),
    (
        "mikrotik",
        &[
            ("ipfix_test_mikrotik_tpl.dat", T),
            ("ipfix_test_mikrotik_data258.dat", f(28)),
            ("ipfix_test_mikrotik_data259.dat", f(18)),
        ],
    ),
    (
        "netscaler",
        &[
            ("ipfix_test_netscaler_tpl.dat", T),
            ("ipfix_test_netscaler_data.dat", Expect { misses: 1, ..f(3) }),
        ],
    ),
    (
        "nokia_bras",
        &[
            ("ipfix_test_nokia_bras_tpl.dat", T),
            ("ipfix_test_nokia_bras_data256.dat", f(1)),
        ],
    ),
    (
        "openbsd_pflow",
        &[
            ("ipfix_test_openbsd_pflow_tpl.dat", T),
            ("ipfix_test_openbsd_pflow_data.dat", f(26)),
        ],
    ),
    (
        "procera",
        &[
            ("ipfix_test_procera_tpl52935.dat", T),
            ("ipfix_test_procera_data52935.dat", f(8)),
        ],
    ),
    (
        "viptela",
        &[
            ("ipfix_test_viptela_tpl257.dat", T),
            ("ipfix_test_viptela_data257.dat", f(1)),
        ],
    ),
    (
        "vmware_vds",
        &[
            ("ipfix_test_vmware_vds_tpl.dat", T),
            ("ipfix_test_vmware_vds_data264.dat", f(1)),
            ("ipfix_test_vmware_vds_data266.dat", f(2)),
            ("ipfix_test_vmware_vds_data266_267.dat", f(2)),
        ],
    ),
    (
        "yaf",
        &[
            ("ipfix_test_yaf_tpl45841.dat", T),
            ("ipfix_test_yaf_tpls_option_tpl.dat", T),
            ("ipfix_test_yaf_data45841.dat", f(1)),
            ("ipfix_test_yaf_data45873.dat", f(1)),
            ("ipfix_test_yaf_data53248.dat", opts(1)),
        ],
    ),
    ("cisco_asr1001x", &[("netflow9_cisco_asr1001x_tpl259.dat", f(25))]),
    (
        "zero_length_fields",
        &[("netflow9_test_0length_fields_tpl_data.dat", f(10))],
    ),
    ("cisco_1941", &[("netflow9_test_cisco_1941K9.dat", f(29))]),
    (
        "cisco_aci",
        &[
            ("netflow9_test_cisco_aci_tpl256-258.dat", T),
            ("netflow9_test_cisco_aci_data256.dat", f(3)),
        ],
    ),
    (
        "cisco_asa_1",
        &[
            ("netflow9_test_cisco_asa_1_tpl.dat", T),
            ("netflow9_test_cisco_asa_1_data.dat", f(14)),
        ],
    ),
    (
        "cisco_asa_2",
        &[
            ("netflow9_test_cisco_asa_2_tpl_26x.dat", T),
            ("netflow9_test_cisco_asa_2_tpl_27x.dat", T),
            ("netflow9_test_cisco_asa_2_data.dat", f(19)),
        ],
    ),
    (
        "cisco_asr9k",
        &[
            ("netflow9_test_cisco_asr9k_opttpl256.dat", T),
            ("netflow9_test_cisco_asr9k_opttpl257.dat", T),
            ("netflow9_test_cisco_asr9k_opttpl334.dat", T),
            ("netflow9_test_cisco_asr9k_tpl260.dat", T),
            ("netflow9_test_cisco_asr9k_tpl266.dat", T),
            ("netflow9_test_cisco_asr9k_data256.dat", opts(19)),
            ("netflow9_test_cisco_asr9k_data260.dat", f(21)),
        ],
    ),
    (
        "cisco_nbar",
        &[
            ("netflow9_test_cisco_nbar_opttpl260.dat", opts(15)),
            ("netflow9_test_cisco_nbar_tpl262.dat", T),
            ("netflow9_test_cisco_nbar_data262.dat", f(5)),
        ],
    ),
    (
        "cisco_wlc",
        &[
            ("netflow9_test_cisco_wlc_tpl.dat", T),
            (
                "netflow9_test_cisco_wlc_data261.dat",
                Expect {
                    no_addresses: 19,
                    ..T
                },
            ),
        ],
    ),
    (
        "cisco_wlc_8510",
        &[("netflow9_test_cisco_wlc_8510_tpl_262.dat", T)],
    ),
    (
        "layer2segmentid",
        &[
            ("netflow9_test_field_layer2segmentid_tpl.dat", T),
            ("netflow9_test_field_layer2segmentid_data.dat", f(1)),
        ],
    ),
    (
        "fortios_521",
        &[
            ("netflow9_test_fortigate_fortios_521_tpl.dat", T),
            ("netflow9_test_fortigate_fortios_521_data256.dat", opts(1)),
            ("netflow9_test_fortigate_fortios_521_data257.dat", f(1)),
        ],
    ),
    (
        "fortios_542",
        &[
            ("netflow9_test_fortigate_fortios_542_appid_tpl258-269.dat", T),
            ("netflow9_test_fortigate_fortios_542_appid_data258_262.dat", f(17)),
        ],
    ),
    (
        "h3c",
        &[
            ("netflow9_test_h3c_tpl3281.dat", T),
            ("netflow9_test_h3c_data3281.dat", f(16)),
        ],
    ),
    (
        "h3c_varstring",
        &[
            (
                "netflow9_test_h3c_netstream_varstring_tpl3281.dat",
                Expect {
                    error: Some("unsupported_template"),
                    ..T
                },
            ),
            (
                "netflow9_test_h3c_netstream_varstring_data3281.dat",
                Expect { misses: 1, ..T },
            ),
        ],
    ),
    (
        "huawei",
        &[
            ("netflow9_test_huawei_netstream_tpl.dat", T),
            ("netflow9_test_huawei_netstream_data.dat", f(1)),
        ],
    ),
    (
        "invalid_count",
        &[("netflow9_test_invalid01.dat", Expect { options: 1, ..f(2) })],
    ),
    (
        "ipt_netflow",
        &[(
            "netflow9_test_iptnetflow_reduced_size_encoding_tpldata260.dat",
            Expect { misses: 6, ..f(12) },
        )],
    ),
    (
        "juniper_srx",
        &[("netflow9_test_juniper_srx_tplopt.dat", opts(1))],
    ),
    (
        "macaddr",
        &[
            ("netflow9_test_macaddr_tpl.dat", opts(1)),
            ("netflow9_test_macaddr_data.dat", f(29)),
        ],
    ),
    (
        "nprobe",
        &[
            ("netflow9_test_nprobe_tpl.dat", opts(1)),
            ("netflow9_test_nprobe_data.dat", f(1)),
        ],
    ),
    ("nprobe_dpi", &[("netflow9_test_nprobe_dpi.dat", f(1))]),
    (
        "paloalto_81",
        &[
            ("netflow9_test_paloalto_81_tpl256-263.dat", T),
            (
                "netflow9_test_paloalto_81_data257_1flowset_in_large_zerofilled_packet.dat",
                f(1),
            ),
        ],
    ),
    (
        "paloalto_panos",
        &[
            ("netflow9_test_paloalto_panos_tpl.dat", T),
            ("netflow9_test_paloalto_panos_data.dat", f(8)),
        ],
    ),
    ("softflowd", &[("netflow9_test_softflowd_tpl_data.dat", f(7))]),
    (
        "streamcore",
        &[
            ("netflow9_test_streamcore_tpl_data256.dat", f(2)),
            ("netflow9_test_streamcore_tpl_data260.dat", f(2)),
        ],
    ),
    (
        "ubnt_edgerouter",
        &[
            ("netflow9_test_ubnt_edgerouter_tpl.dat", T),
            ("netflow9_test_ubnt_edgerouter_data1024.dat", f(8)),
            ("netflow9_test_ubnt_edgerouter_data1025.dat", f(8)),
        ],
    ),
    (
        "unknown_templates",
        &[("netflow9_test_unknown_tpl266_292_data.dat", f(2))],
    ),
    ("valid01", &[("netflow9_test_valid01.dat", f(7))]),
    ("v5", &[("netflow5.dat", f(30))]),
    ("v5_juniper_mx80", &[("netflow5_test_juniper_mx80.dat", f(29))]),
    ("v5_mikrotik", &[("netflow5_test_microtik.dat", f(30))]),
    (
        "v5_invalid01",
        &[(
            "netflow5_test_invalid01.dat",
            Expect {
                error: Some("bad_count"),
                ..T
            },
        )],
    ),
    (
        "v5_invalid02",
        &[(
            "netflow5_test_invalid02.dat",
            Expect {
                error: Some("bad_count"),
                ..T
            },
        )],
    ),
];

pub fn captures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/captures")
}

pub fn read(name: &str) -> Vec<u8> {
    let path = captures().join("logstash-codec-netflow").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The simulated exporter of vendor number `i`.
pub fn exporter(i: usize) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, u8::try_from(i + 1).unwrap()], 2055))
}

/// The datagrams of a capture: IPFIX files and v5 files may hold several messages back to back, each
/// delimited by its header (IPFIX: its length; v5: 24 octets and 48 per record of its count).
pub fn datagrams(bytes: &[u8]) -> Vec<&[u8]> {
    match u16::from_be_bytes([bytes[0], bytes[1]]) {
        10 => proto_ipfix::wire::split_messages(bytes)
            .map(|m| m.unwrap())
            .collect(),
        5 => {
            let mut out = Vec::new();
            let mut rest = bytes;
            while rest.len() >= 24 {
                let count = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
                let len = (24 + 48 * count).min(rest.len());
                out.push(&rest[..len]);
                rest = &rest[len..];
            }
            out
        }
        _ => vec![bytes],
    }
}

/// Feeds vendor `i` to `d` file by file; returns each file's flows and counters.
pub fn feed_vendor(d: &mut Decoder, i: usize) -> Vec<(&'static str, Vec<FlowRecord>, ExporterStats)> {
    let (_, files) = VENDORS[i];
    let mut out = Vec::new();
    for (name, _) in files.iter() {
        let bytes = read(name);
        let mut flows = Vec::new();
        for dg in datagrams(&bytes) {
            d.decode(exporter(i), dg, 0, &mut |f| flows.push(f));
        }
        out.push((*name, flows, d.take_stats().total()));
    }
    out
}

pub fn vendor(name: &str) -> Vec<(&'static str, Vec<FlowRecord>, ExporterStats)> {
    let i = VENDORS.iter().position(|(v, _)| *v == name).unwrap();
    feed_vendor(&mut Decoder::default(), i)
}

pub fn flows_of(name: &str, file: &str) -> Vec<FlowRecord> {
    vendor(name).into_iter().find(|(f, ..)| *f == file).unwrap().1
}
