//! Rebuilds the seed corpus in `fuzz/corpus/` from `testdata/captures/` and from the encoder.
//!
//! Run through `fuzz/make-corpus.sh`. Every seed is derived from files in the repository, so the corpus can
//! be rebuilt and reviewed: each IPFIX capture and each message of the CESNET file is one `decode_message`
//! seed; each vendor's template files followed by its data files are one `decode_session` seed; a few
//! encoder-built messages and sessions cover what the captures lack (reverse and podflow elements, long
//! variable-length values, padding, withdrawals, template replacement); `round_trip` gets fixed
//! pseudo-random bytes, since its input is a recipe rather than a message.

use std::collections::BTreeMap;
use std::error::Error;
use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use proto_ipfix::ie::{DEFAULT_PODFLOW_PEN, FieldSpec, podflow};
use proto_ipfix::{EncodeError, Encoder, Template, VARIABLE_LENGTH, wire};

type Res<T> = Result<T, Box<dyn Error>>;

/// Messages of the CESNET file kept for the session seed: its templates and enough data to use them.
const CESNET_SESSION_MESSAGES: usize = 6;

fn main() -> Res<()> {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let captures = fuzz.join("../testdata/captures");
    let corpus = fuzz.join("corpus");
    for target in [
        "decode_message",
        "decode_session",
        "round_trip",
        "inventory",
        "netflow_v9",
        "netflow_v5",
        "graph_query",
        "es_response",
    ] {
        let dir = corpus.join(target);
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        fs::create_dir_all(&dir)?;
    }
    let put = |target: &str, name: &str, bytes: &[u8]| fs::write(corpus.join(target).join(name), bytes);

    // IPFIX captures, one message each, grouped by vendor for the session seeds.
    let mut vendors: BTreeMap<String, Vec<(bool, String, Vec<u8>)>> = BTreeMap::new();
    let logstash = captures.join("logstash-codec-netflow");
    let mut names: Vec<String> = fs::read_dir(&logstash)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("ipfix") && n.ends_with(".dat"))
        .collect();
    names.sort();
    for name in names {
        let bytes = fs::read(logstash.join(&name))?;
        let stem = name.trim_end_matches(".dat");
        put("decode_message", stem, &bytes)?;
        let (vendor, is_template) = vendor_of(stem);
        vendors
            .entry(vendor)
            .or_default()
            .push((is_template, name, bytes));
    }
    for (vendor, mut files) in vendors {
        // Templates first, then data, each in name order (the sort is stable).
        files.sort_by_key(|(is_template, _, _)| !is_template);
        let session: Vec<u8> = files.into_iter().flat_map(|(_, _, b)| b).collect();
        put("decode_session", &format!("vendor-{vendor}"), &session)?;
    }

    // The CESNET file: every message alone, and the first few as a session.
    let file = fs::read(captures.join("cesnet-ipfixcol2/example_flows.ipfix"))?;
    let mut session = Vec::new();
    for (i, msg) in wire::split_messages(&file).enumerate() {
        let msg = msg?;
        put("decode_message", &format!("cesnet-{i:02}"), msg)?;
        if i < CESNET_SESSION_MESSAGES {
            session.extend_from_slice(msg);
        }
    }
    put("decode_session", "cesnet-first-messages", &session)?;

    // Encoder-built messages and sessions.
    let messages = encoded()?;
    for (i, msg) in messages.iter().enumerate() {
        put("decode_message", &format!("encoder-{i}"), msg)?;
    }
    put("decode_session", "encoder-session", &messages.concat())?;

    // round_trip: fixed pseudo-random recipes of a few sizes.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for len in [64, 256, 1024, 4096] {
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        put("round_trip", &format!("xorshift-{len}"), &bytes)?;
    }
    netflow(&logstash, &put)?;
    inventory(&fuzz.join("../collector/tests/data/inventory"), &put)?;
    graph_query(&put)?;
    es_response(&fuzz.join("../collector/src/sinks/elasticsearch/testdata"), &put)?;
    report(&corpus)
}

/// NetFlow seeds, framed as the targets read them (2-octet length, clock step, datagram): each v5 capture
/// alone; per v9 vendor its template captures then its data captures, one second apart.
fn netflow(logstash: &Path, put: &impl Fn(&str, &str, &[u8]) -> std::io::Result<()>) -> Res<()> {
    let mut names: Vec<String> = fs::read_dir(logstash)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("netflow") && n.ends_with(".dat"))
        .collect();
    names.sort();
    let mut vendors: BTreeMap<String, Vec<(bool, Vec<u8>)>> = BTreeMap::new();
    for name in names {
        let bytes = fs::read(logstash.join(&name))?;
        let stem = name.trim_end_matches(".dat");
        let framed = frame(&bytes)?;
        if let Some(rest) = stem.strip_prefix("netflow5") {
            put("netflow_v5", &format!("v5{rest}"), &framed)?;
        } else if let Some(rest) = stem.strip_prefix("netflow9_") {
            let (vendor, is_template) = vendor_of(rest.trim_start_matches("test_"));
            vendors.entry(vendor).or_default().push((is_template, framed));
        }
    }
    for (vendor, mut files) in vendors {
        files.sort_by_key(|(is_template, _)| !is_template);
        let session: Vec<u8> = files.into_iter().flat_map(|(_, b)| b).collect();
        put("netflow_v9", &format!("vendor-{vendor}"), &session)?;
    }
    Ok(())
}

/// One datagram as the NetFlow targets read it.
fn frame(datagram: &[u8]) -> Res<Vec<u8>> {
    let len = u16::try_from(datagram.len())?;
    let mut out = len.to_be_bytes().to_vec();
    out.push(1);
    out.extend_from_slice(datagram);
    Ok(out)
}

/// Inventory seeds: the collector's test inventories, each as YAML (first octet 0) or JSON (1).
fn inventory(dir: &Path, put: &impl Fn(&str, &str, &[u8]) -> std::io::Result<()>) -> Res<()> {
    let mut names: Vec<String> = fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    for name in names {
        let bytes = fs::read(dir.join(&name))?;
        let pick = u8::from(name.ends_with(".json"));
        let mut seed = vec![pick];
        seed.extend_from_slice(&bytes);
        put("inventory", &name.replace('.', "-"), &seed)?;
    }
    Ok(())
}

/// Query strings of the node graph API: what Grafana's Node Graph API and Infinity data sources and the
/// service-map page send, and the refusals the parser's tests name.
fn graph_query(put: &impl Fn(&str, &str, &[u8]) -> std::io::Result<()>) -> Res<()> {
    let seeds = [
        ("empty", ""),
        ("window", "window=5m"),
        ("namespace-window", "namespace=shop&window=1h"),
        ("window-namespace-empty", "window=15m&namespace=&"),
        ("percent", "namespace=kube%2Dsystem&window=1m"),
        ("plus", "namespace=a+b"),
        ("repeated", "window=1m&window=5m"),
        ("unknown", "query=text1&service=processors"),
        ("bad-escape", "namespace=%zz"),
        ("not-utf8", "namespace=%ff%fe"),
        ("no-value", "namespace&window"),
    ];
    for (name, q) in seeds {
        put("graph_query", name, q.as_bytes())?;
    }
    Ok(())
}

/// Answers of Elasticsearch and OpenSearch: the sink's recorded `_bulk` and `GET /` answers (see the
/// `SOURCES.md` beside them), an OpenSearch bulk answer as the sink's `filter_path` trims it, and the
/// `GET` of a template the sink reads before it puts its own.
fn es_response(dir: &Path, put: &impl Fn(&str, &str, &[u8]) -> std::io::Result<()>) -> Res<()> {
    let mut names: Vec<String> = fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    for name in names {
        put(
            "es_response",
            name.trim_end_matches(".json"),
            &fs::read(dir.join(&name))?,
        )?;
    }
    let seeds = [
        (
            "bulk-filtered-mixed",
            concat!(
                r#"{"errors":true,"items":[{"create":{"status":201}},"#,
                r#"{"create":{"status":409,"error":{"type":"version_conflict_engine_exception","reason":"[x]: version conflict"}}},"#,
                r#"{"create":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [source.port]"}}},"#,
                r#"{"create":{"status":429,"error":{"type":"rejected_execution_exception","reason":"rejected"}}}]}"#
            ),
        ),
        (
            "component-template",
            r#"{"component_templates":[{"name":"logs-podflow.flows-mappings","component_template":{"version":1,"_meta":{"managed_by":"podflow","version":1},"template":{}}}]}"#,
        ),
        (
            "index-template-newer",
            r#"{"index_templates":[{"name":"logs-podflow.flows","index_template":{"index_patterns":["logs-podflow.flows-*"],"_meta":{"version":7}}}]}"#,
        ),
    ];
    for (name, body) in seeds {
        put("es_response", name, body.as_bytes())?;
    }
    Ok(())
}

/// The vendor a capture belongs to, and whether it carries templates.
fn vendor_of(stem: &str) -> (String, bool) {
    let rest = stem.trim_start_matches("ipfix_test_");
    let cut = ["_tpl", "_opttpl", "_data"]
        .iter()
        .filter_map(|m| rest.find(m))
        .min();
    let vendor = cut.map_or(rest, |at| &rest[..at]).to_string();
    (vendor, stem.contains("tpl") || cut.is_none())
}

/// A podflow-style session: templates with reverse, enterprise and variable-length fields, an options
/// template, data in padded sets, a withdrawal, then a replacement template and data for it.
fn encoded() -> Res<Vec<Vec<u8>>> {
    let flow = Template::new(
        256,
        vec![
            FieldSpec::iana(8, 4),
            FieldSpec::iana(12, 4),
            FieldSpec::iana(27, 16),
            FieldSpec::iana(4, 1),
            FieldSpec::iana(1, 4),
            FieldSpec::reverse(1, 8),
            FieldSpec::enterprise(podflow::COMMUNITY_ID, VARIABLE_LENGTH, DEFAULT_PODFLOW_PEN),
            FieldSpec::enterprise(podflow::OBSERVER_POD_NAME, VARIABLE_LENGTH, DEFAULT_PODFLOW_PEN),
        ],
    )?;
    let options = Template::new_options(257, 1, vec![FieldSpec::iana(149, 4), FieldSpec::iana(41, 8)])?;
    let replacement = Template::new(256, vec![FieldSpec::iana(7, 2), FieldSpec::iana(11, 2)])?;

    let mut enc = Encoder::new(7, 512)?.with_set_alignment(4);
    enc.add_template(flow);
    enc.add_template(options);
    let mut out = Vec::new();
    let mut buf = Vec::new();

    let mut msg = enc.message(1_700_000_000, &mut buf);
    msg.add_templates()?;
    let mut r = msg.record(257)?;
    r.uint(7).uint(123_456);
    r.commit()?;
    msg.finish();
    out.push(buf.clone());

    // Enough flows for two messages; the long pod name takes the 3-octet length form.
    let long_name = "p".repeat(300);
    let mut n = 0u32;
    while n < 4 {
        let mut msg = enc.message(1_700_000_030 + n, &mut buf);
        loop {
            let mut r = msg.record(256)?;
            r.ipv4(Ipv4Addr::new(10, 0, 0, 1))
                .ipv4(Ipv4Addr::new(10, 0, 0, n as u8))
                .ipv6(Ipv6Addr::LOCALHOST)
                .uint(6)
                .uint(1500)
                .uint(u64::from(n) << 40)
                .str("1:LQU9qZlK+B5F3KDmev6m5PMibrg=")
                .str(if n == 1 { &long_name } else { "web-0" });
            match r.commit() {
                Ok(()) => n += 1,
                Err(EncodeError::MessageFull) => break,
                Err(e) => return Err(e.into()),
            }
        }
        msg.finish();
        out.push(buf.clone());
    }

    // Withdraw template 256 (honoured by stream decoders), then redefine it with other fields.
    let mut withdraw = out[0][..wire::HEADER_LEN].to_vec();
    withdraw.extend_from_slice(&[0, 2, 0, 8, 1, 0, 0, 0]);
    let len = u16::try_from(withdraw.len())?;
    withdraw[2..4].copy_from_slice(&len.to_be_bytes());
    out.push(withdraw);
    enc.add_template(replacement);
    let mut msg = enc.message(1_700_000_100, &mut buf);
    msg.add_template(256)?;
    for port in [53u64, 443] {
        let mut r = msg.record(256)?;
        r.uint(port).uint(40_000);
        r.commit()?;
    }
    msg.finish();
    out.push(buf.clone());
    Ok(out)
}

fn report(corpus: &Path) -> Res<()> {
    for entry in fs::read_dir(corpus)? {
        let dir = entry?.path();
        let (mut files, mut bytes) = (0, 0);
        for f in fs::read_dir(&dir)? {
            files += 1;
            bytes += f?.metadata()?.len();
        }
        println!("{}: {files} seeds, {bytes} octets", dir.display());
    }
    Ok(())
}
