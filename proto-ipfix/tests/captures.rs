//! proto-ipfix against real captures: every IPFIX message of `testdata/captures` decodes without panic to
//! exactly the records, templates and template-less sets other decoders find in it, and malformed variants
//! of those captures are refused with the right reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use proto_ipfix::wire::{HeaderRepr, WireError};
use proto_ipfix::{
    DataRecord, DecodeErrorKind, Decoder, InsertOutcome, Limits, SessionKey, Summary, Template,
    TemplateCache, TemplateError, TemplatePolicy, Visitor,
};

/// Counts what the decoder hands out.
#[derive(Default)]
struct Tally {
    records: u32,
    per_template: BTreeMap<u16, u32>,
    templates: u32,
    missing: Vec<u16>,
}

impl Visitor for Tally {
    fn record(&mut self, r: &DataRecord<'_>) {
        self.records += 1;
        *self.per_template.entry(r.template().id()).or_default() += 1;
        // Walking every field must stay within the record.
        let n = r.fields().count();
        assert_eq!(
            n,
            r.template().fields().len(),
            "record of template {}",
            r.template().id()
        );
    }
    fn template(&mut self, _: &SessionKey, _: &Template, _: InsertOutcome) {
        self.templates += 1;
    }
    fn missing_template(&mut self, _: &SessionKey, _: &HeaderRepr, set_id: u16, _: &[u8]) {
        self.missing.push(set_id);
    }
}

/// What one capture file holds.
#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
struct Counts {
    messages: u32,
    records: u32,
    templates: u32,
    missing_sets: u32,
    errors: u32,
}

/// Expected counts per IPFIX capture, fed per vendor in the order of `common::VENDORS`.
///
/// How these were established, independently of proto-ipfix: every message was wrapped in an
/// Ethernet/IPv4/UDP frame (destination port 4739, one source address per vendor, template files first)
/// into one pcap per vendor and dissected with Wireshark 4.0 (`tshark -d udp.port==4739,cflow -V`). The
/// records are tshark's "Set n [id=N] (k flows)" counts summed per file; the templates are its
/// "Template (Id = N ...)" and "Options Template (Id = N ...)" entries (a template sent twice counts
/// twice: YAF refreshes 45873 in the same message); the one template-less set is tshark's "Data (104
/// bytes), no template found" for set 280 in the NetScaler data file. tshark reported no malformed set
/// otherwise. `ipfix.dat` holds three messages back to back (header lengths 484, 64 and 240), fed as
/// three datagrams. The netflow_parser crate agrees on every count except the 11 records it drops (see
/// tests/differential.rs).
const EXPECTED: &[(&str, Counts)] = &[
    ("ipfix.dat", c(3, 13, 3, 0)),
    ("ipfix_test_barracuda_tpl.dat", c(1, 0, 1, 0)),
    ("ipfix_test_barracuda_data256.dat", c(1, 8, 0, 0)),
    ("ipfix_test_barracuda_extended_uniflow_tpl256.dat", c(1, 0, 1, 0)),
    ("ipfix_test_barracuda_extended_uniflow_data256.dat", c(1, 2, 0, 0)),
    ("ipfix_test_ixia_tpldata256.dat", c(1, 1, 3, 0)),
    ("ipfix_test_ixia_tpldata271.dat", c(1, 2, 3, 0)),
    (
        "ipfix_test_juniper_mx240_junos151r6s3_opttpl512.dat",
        c(1, 0, 1, 0),
    ),
    ("ipfix_test_juniper_mx240_junos151r6s3_data512.dat", c(1, 1, 0, 0)),
    ("ipfix_test_mikrotik_tpl.dat", c(1, 0, 2, 0)),
    ("ipfix_test_mikrotik_data258.dat", c(1, 28, 0, 0)),
    ("ipfix_test_mikrotik_data259.dat", c(1, 18, 0, 0)),
    ("ipfix_test_netscaler_tpl.dat", c(1, 0, 7, 0)),
    ("ipfix_test_netscaler_data.dat", c(1, 3, 0, 1)),
    ("ipfix_test_nokia_bras_tpl.dat", c(1, 0, 2, 0)),
    ("ipfix_test_nokia_bras_data256.dat", c(1, 1, 0, 0)),
    ("ipfix_test_openbsd_pflow_tpl.dat", c(1, 0, 2, 0)),
    ("ipfix_test_openbsd_pflow_data.dat", c(1, 26, 0, 0)),
    ("ipfix_test_procera_tpl52935.dat", c(1, 0, 1, 0)),
    ("ipfix_test_procera_data52935.dat", c(1, 8, 0, 0)),
    ("ipfix_test_viptela_tpl257.dat", c(1, 0, 1, 0)),
    ("ipfix_test_viptela_data257.dat", c(1, 1, 0, 0)),
    ("ipfix_test_vmware_vds_tpl.dat", c(1, 0, 13, 0)),
    ("ipfix_test_vmware_vds_data264.dat", c(1, 1, 0, 0)),
    ("ipfix_test_vmware_vds_data266.dat", c(1, 2, 0, 0)),
    ("ipfix_test_vmware_vds_data266_267.dat", c(1, 2, 0, 0)),
    ("ipfix_test_yaf_tpl45841.dat", c(1, 0, 1, 0)),
    ("ipfix_test_yaf_tpls_option_tpl.dat", c(1, 0, 14, 0)),
    ("ipfix_test_yaf_data45841.dat", c(1, 1, 0, 0)),
    ("ipfix_test_yaf_data45873.dat", c(1, 1, 0, 0)),
    ("ipfix_test_yaf_data53248.dat", c(1, 1, 0, 0)),
];

/// Counts of a well-formed file (no decode errors).
const fn c(messages: u32, records: u32, templates: u32, missing_sets: u32) -> Counts {
    Counts {
        messages,
        records,
        templates,
        missing_sets,
        errors: 0,
    }
}

fn add(total: &mut Counts, s: &Summary) {
    total.messages += 1;
    total.records += s.records;
    total.templates += s.templates;
    total.missing_sets += s.missing_template_sets;
    total.errors += s.errors;
}

#[test]
fn every_ipfix_capture_decodes_to_the_expected_counts() {
    let mut seen = BTreeMap::new();
    for (i, (vendor, files)) in common::VENDORS.iter().enumerate() {
        // A fresh decoder per vendor, and its own exporter address: no template can leak across vendors.
        let mut decoder = Decoder::default();
        for file in *files {
            let bytes = common::read_dat(file);
            let mut tally = Tally::default();
            let mut got = Counts::default();
            for msg in common::messages(&bytes) {
                let s = decoder.decode(common::exporter(i), msg, 0, &mut tally);
                assert_eq!(s.first_error, None, "{vendor}/{file}");
                add(&mut got, &s);
            }
            assert_eq!(tally.records, got.records, "{file}: visitor and summary disagree");
            assert_eq!(tally.templates, got.templates, "{file}");
            assert_eq!(tally.missing.len() as u32, got.missing_sets, "{file}");
            assert!(seen.insert(*file, got).is_none(), "{file} listed twice");
        }
    }
    let expected: BTreeMap<_, _> = EXPECTED.iter().copied().collect();
    assert_eq!(seen, expected);
    let records: u32 = seen.values().map(|c| c.records).sum();
    assert_eq!(records, 120);
}

#[test]
fn every_ipfix_file_in_the_directory_is_in_the_table() {
    let mut ipfix = BTreeSet::new();
    for entry in std::fs::read_dir(common::logstash_dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".dat") && common::header_version(&common::read_dat(&name)) == 10 {
            ipfix.insert(name);
        }
    }
    let listed: BTreeSet<String> = EXPECTED.iter().map(|(f, _)| f.to_string()).collect();
    assert_eq!(ipfix, listed);
    let grouped: BTreeSet<String> = common::VENDORS
        .iter()
        .flat_map(|(_, files)| files.iter().map(|f| f.to_string()))
        .collect();
    assert_eq!(ipfix, grouped);
}

#[test]
fn netscaler_set_without_template_is_reported_not_decoded() {
    // The NetScaler data message carries sets 258, 257, 280 and 258; the template file defines 256..=262.
    let mut decoder = Decoder::default();
    let from = common::exporter(0);
    let mut tally = Tally::default();
    decoder.decode(
        from,
        &common::read_dat("ipfix_test_netscaler_tpl.dat"),
        0,
        &mut tally,
    );
    decoder.decode(
        from,
        &common::read_dat("ipfix_test_netscaler_data.dat"),
        0,
        &mut tally,
    );
    assert_eq!(tally.missing, vec![280]);
    assert_eq!(tally.per_template, BTreeMap::from([(257, 1), (258, 2)]));
}

/// The NetFlow v5 and v9 captures share the directory; IPFIX decoding refuses them by their version.
#[test]
fn netflow_v5_and_v9_captures_are_refused_by_version() {
    let mut refused = BTreeMap::<u16, u32>::new();
    let mut decoder = Decoder::default();
    for entry in std::fs::read_dir(common::logstash_dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.ends_with(".dat") {
            continue;
        }
        let bytes = common::read_dat(&name);
        let version = common::header_version(&bytes);
        if version == 10 {
            continue;
        }
        let s = decoder.decode(common::exporter(99), &bytes, 0, &mut Tally::default());
        let err = s.first_error.expect(&name);
        assert_eq!((s.records, s.templates, s.errors), (0, 0, 1), "{name}");
        assert_eq!(
            err.kind,
            DecodeErrorKind::Wire(WireError::BadVersion(version)),
            "{name}"
        );
        assert_eq!(err.reason(), "bad_version");
        *refused.entry(version).or_default() += 1;
    }
    // 5 NetFlow v5 files (2 of them invalid on purpose) and 56 NetFlow v9 files (1 invalid on purpose).
    assert_eq!(refused, BTreeMap::from([(5, 5), (9, 56)]));
    assert_eq!(decoder.cache().templates(), 0);
}

/// A real capture bent out of shape, and how the decoder must refuse it.
struct Malformed {
    /// What was done to the capture.
    what: &'static str,
    /// Template file fed first from the same exporter, if any.
    templates: Option<&'static str>,
    capture: &'static str,
    mutate: fn(&mut Vec<u8>),
    reason: &'static str,
    kind: DecodeErrorKind,
    offset: usize,
    /// Records still delivered before the error.
    records: u32,
}

fn set_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Offsets below were read off the captures' bytes: every capture starts with its 16-octet header and its
/// first set at offset 16; the Procera record boundaries come from walking template 52935 over the data
/// set outside proto-ipfix (tshark shows the same 8 records).
const MALFORMED: &[Malformed] = &[
    Malformed {
        what: "datagram cut to 1000 of its 1448 octets",
        templates: Some("ipfix_test_mikrotik_tpl.dat"),
        capture: "ipfix_test_mikrotik_data258.dat",
        mutate: |b| b.truncate(1000),
        reason: "truncated",
        kind: DecodeErrorKind::Wire(WireError::Incomplete {
            offset: 0,
            needed: 1448,
            available: 1000,
        }),
        offset: 0,
        records: 0,
    },
    Malformed {
        what: "template 257 renumbered 255",
        templates: None,
        capture: "ipfix_test_viptela_tpl257.dat",
        mutate: |b| set_u16(b, 20, 255),
        reason: "bad_template",
        kind: DecodeErrorKind::Template(TemplateError::BadTemplateId(255)),
        offset: 20,
        records: 0,
    },
    Malformed {
        what: "data set 512 renumbered to reserved set id 5",
        templates: Some("ipfix_test_juniper_mx240_junos151r6s3_opttpl512.dat"),
        capture: "ipfix_test_juniper_mx240_junos151r6s3_data512.dat",
        mutate: |b| set_u16(b, 16, 5),
        reason: "reserved_set_id",
        kind: DecodeErrorKind::Wire(WireError::ReservedSetId {
            offset: 16,
            set_id: 5,
        }),
        offset: 16,
        records: 0,
    },
    Malformed {
        what: "data set length 1408 set to 2",
        templates: Some("ipfix_test_openbsd_pflow_tpl.dat"),
        capture: "ipfix_test_openbsd_pflow_data.dat",
        mutate: |b| set_u16(b, 18, 2),
        reason: "bad_length",
        kind: DecodeErrorKind::Wire(WireError::BadLength {
            offset: 16,
            length: 2,
        }),
        offset: 16,
        records: 0,
    },
    Malformed {
        what: "data set length 1408 set to 1500, past the message",
        templates: Some("ipfix_test_openbsd_pflow_tpl.dat"),
        capture: "ipfix_test_openbsd_pflow_data.dat",
        mutate: |b| set_u16(b, 18, 1500),
        reason: "truncated",
        kind: DecodeErrorKind::Wire(WireError::Incomplete {
            offset: 16,
            needed: 1500,
            available: 1408,
        }),
        offset: 16,
        records: 0,
    },
    Malformed {
        // Records of the variable-length template 52935 start at offsets 20, 176, 368, 524, 692, 884, 1040
        // and 1196; the last ends at 1355. Cutting 20 octets (message and set lengths too) leaves 139
        // octets for the last record: more than the 90-octet minimum, fewer than its 159.
        what: "last variable-length record cut short",
        templates: Some("ipfix_test_procera_tpl52935.dat"),
        capture: "ipfix_test_procera_data52935.dat",
        mutate: |b| {
            b.truncate(1335);
            set_u16(b, 2, 1335);
            set_u16(b, 18, 1319);
        },
        reason: "record_overrun",
        kind: DecodeErrorKind::RecordOverrun { set_id: 52935 },
        offset: 1196,
        records: 7,
    },
];

#[test]
fn malformed_captures_are_refused_with_their_reason() {
    for (i, m) in MALFORMED.iter().enumerate() {
        let from: SocketAddr = common::exporter(50 + i);
        let mut decoder = Decoder::default();
        if let Some(t) = m.templates {
            let s = decoder.decode(from, &common::read_dat(t), 0, &mut Tally::default());
            assert_eq!((s.errors, s.templates > 0), (0, true), "{}", m.what);
        }
        let mut bytes = common::read_dat(m.capture);
        (m.mutate)(&mut bytes);
        let mut tally = Tally::default();
        let s = decoder.decode(from, &bytes, 0, &mut tally);
        let err = s.first_error.unwrap_or_else(|| panic!("{}: accepted", m.what));
        assert_eq!(err.reason(), m.reason, "{}", m.what);
        assert_eq!(err.kind, m.kind, "{}", m.what);
        assert_eq!(err.offset, m.offset, "{}", m.what);
        assert_eq!(s.errors, 1, "{}", m.what);
        assert_eq!((s.records, tally.records), (m.records, m.records), "{}", m.what);
    }
}

#[test]
fn a_refused_template_leaves_its_data_without_template() {
    let from = common::exporter(60);
    let mut decoder = Decoder::default();
    let mut tpl = common::read_dat("ipfix_test_viptela_tpl257.dat");
    set_u16(&mut tpl, 20, 255);
    decoder.decode(from, &tpl, 0, &mut Tally::default());
    let mut tally = Tally::default();
    let s = decoder.decode(
        from,
        &common::read_dat("ipfix_test_viptela_data257.dat"),
        0,
        &mut tally,
    );
    assert_eq!((s.records, s.missing_template_sets, s.errors), (0, 1, 0));
    assert_eq!(tally.missing, vec![257]);
}

/// The CESNET file, per tshark: 68 messages of observation domain 6, one template set with templates
/// 256..=263, and data records per template 256: 1848, 257: 2051, 258: 16, 259: 57, 260: 3, 261: 4 (3979 in
/// all). Sequence numbers count records (message 1 has sequence 0 and 59 records, message 2 sequence 59 and
/// none), except that message 3 starts again at 0: the exporter restarted, which is not loss.
#[test]
fn cesnet_file_decodes_as_a_stream() {
    let bytes = common::read(common::cesnet_file());
    let messages: Vec<&[u8]> = proto_ipfix::wire::split_messages(&bytes)
        .map(|m| m.unwrap())
        .collect();
    assert_eq!(messages.len(), 68);
    let mut decoder = Decoder::new(TemplateCache::new(TemplatePolicy::Stream, Limits::default()));
    let from = common::cesnet_exporter();
    let mut tally = Tally::default();
    let mut total = Counts::default();
    let mut expected_sequence = None;
    for (i, msg) in messages.iter().enumerate() {
        let s = decoder.decode(from, msg, 0, &mut tally);
        assert_eq!(s.first_error, None, "message {}", i + 1);
        assert_eq!(s.header.observation_domain, 6);
        assert_eq!(s.lost_records, 0, "message {}", i + 1);
        if i == 2 {
            assert_eq!(s.header.sequence, 0, "the exporter restarts at message 3");
        } else if let Some(seq) = expected_sequence {
            assert_eq!(s.header.sequence, seq, "message {}", i + 1);
        }
        expected_sequence = Some(s.header.sequence.wrapping_add(s.records));
        add(&mut total, &s);
    }
    assert_eq!(
        total,
        Counts {
            messages: 68,
            records: 3979,
            templates: 8,
            missing_sets: 0,
            errors: 0
        }
    );
    assert_eq!(
        tally.per_template,
        BTreeMap::from([(256, 1848), (257, 2051), (258, 16), (259, 57), (260, 3), (261, 4)])
    );
    let key = SessionKey {
        exporter: from,
        observation_domain: 6,
    };
    let ids: Vec<u16> = (0..=u16::MAX)
        .filter(|&id| decoder.cache().get(&key, id, 0).is_some())
        .collect();
    assert_eq!(ids, (256..=263).collect::<Vec<_>>());
}

#[test]
fn cesnet_file_cut_short_keeps_the_whole_messages() {
    let bytes = common::read(common::cesnet_file());
    let starts: Vec<usize> = common::messages(&bytes)
        .iter()
        .scan(0, |at, m| {
            let start = *at;
            *at += m.len();
            Some(start)
        })
        .collect();
    // Message 2 is a bare 16-octet header; cut inside it, inside message 3's header and inside message 3's
    // sets. The splitter yields the whole messages before the cut, then one error at the cut message.
    for (cut, whole) in [(starts[1] + 10, 1), (starts[2] + 3, 2), (starts[2] + 100, 2)] {
        let items: Vec<_> = proto_ipfix::wire::split_messages(&bytes[..cut]).collect();
        assert_eq!(items.len(), whole + 1, "cut at {cut}");
        assert!(items[..whole].iter().all(|m| m.is_ok()));
        let err = items[whole].unwrap_err();
        assert!(err.is_incomplete(), "cut at {cut}: {err:?}");
        assert_eq!(err.offset(), starts[whole], "cut at {cut}");
    }
}
