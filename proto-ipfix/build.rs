//! Generates the IANA Information Element table (`$OUT_DIR/iana_ies.rs`) from the IANA IPFIX registry in
//! `data/ipfix.xml`.
//!
//! Only rows of the `ipfix-information-elements` registry whose `elementId` is a plain integer in 0..=32767
//! and whose name is an identifier (RFC 7012 section 2.3) become elements; ranges,
//! "Unassigned", "Reserved", "Assigned for NetFlow v9 compatibility" and unnamed rows are skipped. Odd rows
//! never fail the build: only a missing or unparseable file (or one without the registry) does.

use std::collections::{BTreeMap, BTreeSet};
use std::error::Error;
use std::fmt::Write as _;
use std::path::PathBuf;

const REGISTRY_FILE: &str = "data/ipfix.xml";
const REGISTRY_ID: &str = "ipfix-information-elements";
/// Highest IANA element id: the top bit of the 16-bit id is the enterprise bit.
const MAX_IANA_ID: u16 = 0x7FFF;

/// One usable registry row.
struct Row {
    id: u16,
    name: String,
    data_type: &'static str,
    semantics: String,
}

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed={REGISTRY_FILE}");
    println!("cargo:rerun-if-changed=build.rs");

    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR is not set")?;
    let path = PathBuf::from(manifest_dir).join(REGISTRY_FILE);
    let xml = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read the IANA IPFIX registry {}: {e}", path.display()))?;
    let doc = roxmltree::Document::parse(&xml)
        .map_err(|e| format!("cannot parse the IANA IPFIX registry {}: {e}", path.display()))?;
    let registry = doc
        .descendants()
        .find(|n| n.has_tag_name("registry") && n.attribute("id") == Some(REGISTRY_ID))
        .ok_or_else(|| format!("{}: no {REGISTRY_ID} registry", path.display()))?;

    let rows = collect_rows(registry);
    let code = generate(&rows)?;

    let out_dir = std::env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?;
    let out = PathBuf::from(out_dir).join("iana_ies.rs");
    std::fs::write(&out, code).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(())
}

/// The usable rows of the registry, sorted by id. The first row wins on a duplicate id or name.
fn collect_rows(registry: roxmltree::Node<'_, '_>) -> Vec<Row> {
    let mut by_id = BTreeMap::new();
    let mut names = BTreeSet::new();
    for record in registry.children().filter(|n| n.has_tag_name("record")) {
        let Some(id) = child_text(record, "elementId").and_then(parse_id) else {
            continue;
        };
        let Some(name) = child_text(record, "name").filter(|n| is_element_name(n)) else {
            continue;
        };
        if by_id.contains_key(&id) || names.contains(name) {
            continue;
        }
        names.insert(name.to_owned());
        let data_type = data_type(child_text(record, "dataType").unwrap_or(""));
        let semantics = child_text(record, "dataTypeSemantics").unwrap_or("").to_owned();
        by_id.insert(
            id,
            Row {
                id,
                name: name.to_owned(),
                data_type,
                semantics,
            },
        );
    }
    by_id.into_values().collect()
}

/// Trimmed text of the first child element called `tag`, if it has any.
fn child_text<'a>(node: roxmltree::Node<'a, '_>, tag: &str) -> Option<&'a str> {
    node.children()
        .find(|n| n.has_tag_name(tag))
        .and_then(|n| n.text())
        .map(str::trim)
}

/// A plain decimal integer in 0..=32767; ranges such as `534-32767` are not.
fn parse_id(text: &str) -> Option<u16> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u16>().ok().filter(|&id| id <= MAX_IANA_ID)
}

/// An ASCII identifier (a letter, then letters and digits), as element names are (RFC 7012 section 2.3; a
/// few, like `VRFname` and `IPSecSPI`, start upper-case). Rejects the placeholder rows "Reserved",
/// "Unassigned" and "Assigned for NetFlow v9 compatibility", and empty names (`<name/>`).
fn is_element_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric())
        && !name.eq_ignore_ascii_case("reserved")
        && !name.eq_ignore_ascii_case("unassigned")
}

/// The `DataType` variant for a registry dataType string.
fn data_type(s: &str) -> &'static str {
    match s {
        "octetArray" => "OctetArray",
        "unsigned8" => "Unsigned8",
        "unsigned16" => "Unsigned16",
        "unsigned32" => "Unsigned32",
        "unsigned64" => "Unsigned64",
        "signed8" => "Signed8",
        "signed16" => "Signed16",
        "signed32" => "Signed32",
        "signed64" => "Signed64",
        "float32" => "Float32",
        "float64" => "Float64",
        "boolean" => "Boolean",
        "macAddress" => "MacAddress",
        "string" => "String",
        "dateTimeSeconds" => "DateTimeSeconds",
        "dateTimeMilliseconds" => "DateTimeMilliseconds",
        "dateTimeMicroseconds" => "DateTimeMicroseconds",
        "dateTimeNanoseconds" => "DateTimeNanoseconds",
        "ipv4Address" => "Ipv4Address",
        "ipv6Address" => "Ipv6Address",
        "basicList" => "BasicList",
        "subTemplateList" => "SubTemplateList",
        "subTemplateMultiList" => "SubTemplateMultiList",
        _ => "Unknown",
    }
}

fn generate(rows: &[Row]) -> Result<String, Box<dyn Error>> {
    let n = rows.len();
    let index_len = rows.last().map_or(0, |r| usize::from(r.id) + 1);
    let mut s = String::new();
    writeln!(
        s,
        "// @generated by proto-ipfix/build.rs from {REGISTRY_FILE}. Do not edit."
    )?;
    writeln!(s)?;

    writeln!(
        s,
        "/// Every IANA Information Element of the registry, sorted by id (deprecated ones included)."
    )?;
    writeln!(s, "pub static IANA_IES: [InfoElement; {n}] = [")?;
    for r in rows {
        writeln!(
            s,
            "    InfoElement {{ id: {}, pen: 0, name: {:?}, data_type: DataType::{}, semantics: {:?} }},",
            r.id, r.name, r.data_type, r.semantics
        )?;
    }
    writeln!(s, "];")?;
    writeln!(s)?;

    writeln!(
        s,
        "/// Position in [`IANA_IES`] of each element id, `None` for ids without an element."
    )?;
    writeln!(s, "static IANA_INDEX: [Option<u16>; {index_len}] = [")?;
    let mut pos = 0usize;
    for id in 0..index_len {
        match rows.get(pos) {
            Some(r) if usize::from(r.id) == id => {
                writeln!(s, "    Some({pos}),")?;
                pos += 1;
            }
            _ => writeln!(s, "    None,")?,
        }
    }
    writeln!(s, "];")?;
    writeln!(s)?;

    let mut by_name: Vec<usize> = (0..n).collect();
    by_name.sort_by(|&a, &b| rows[a].name.as_bytes().cmp(rows[b].name.as_bytes()));
    writeln!(
        s,
        "/// Positions in [`IANA_IES`] ordered by element name (bytewise), for binary search."
    )?;
    writeln!(s, "static IANA_BY_NAME: [u16; {n}] = [")?;
    for i in by_name {
        writeln!(s, "    {i},")?;
    }
    writeln!(s, "];")?;
    Ok(s)
}
