//! tshark's PDML output of IPFIX captures: data records as their dissected fields, template records,
//! and every expert info or malformed mark, for comparison with what was sent.

use std::path::Path;
use std::process::Command;

use anyhow::Context;

use crate::peer;

/// One PDML `<field>`: its filter name, display line, display value and raw value (hex).
#[derive(Clone, Debug)]
pub struct PdmlField {
    /// Filter name (`cflow.octets`); empty for text-only lines.
    pub name: String,
    /// The whole display line.
    pub showname: String,
    /// The displayed value.
    pub show: String,
    /// The raw value in hex.
    pub value: String,
}

/// A template record as tshark decoded it: its id and each field specifier as (element id, length, PEN).
pub type TemplateRecord = (u16, Vec<(u16, u16, u32)>);

/// What tshark decoded from a capture.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Per data record: all its fields, nested ones included, in dissection order.
    pub flows: Vec<Vec<PdmlField>>,
    /// Every template record.
    pub templates: Vec<TemplateRecord>,
    /// Expert infos and malformed marks, by their display line.
    pub problems: Vec<String>,
    /// Packets tshark dissected as IPFIX.
    pub ipfix_packets: usize,
}

fn pdml_field(node: roxmltree::Node<'_, '_>) -> PdmlField {
    let attr = |a: &str| node.attribute(a).unwrap_or_default().to_string();
    PdmlField {
        name: attr("name"),
        showname: attr("showname"),
        show: attr("show"),
        value: attr("value"),
    }
}

/// Parses tshark's PDML output of a capture holding IPFIX.
pub fn parse_pdml(xml: &str) -> anyhow::Result<Decoded> {
    let doc = roxmltree::Document::parse(xml).context("tshark printed invalid PDML")?;
    let mut out = Decoded::default();
    for node in doc.descendants().filter(|n| n.is_element()) {
        let name = node.attribute("name").unwrap_or_default();
        let show = node.attribute("show").unwrap_or_default();
        if name == "_ws.expert" || name == "_ws.malformed" {
            out.problems.push(pdml_field(node).showname);
        } else if node.has_tag_name("proto") && name == "cflow" {
            out.ipfix_packets += 1;
        } else if name.is_empty() && show.starts_with("Flow ") {
            let fields = node.descendants().skip(1).filter(|n| n.has_tag_name("field"));
            out.flows.push(fields.map(pdml_field).collect());
        } else if name.is_empty() && show.starts_with("Template (Id = ") {
            out.templates.push(template_record(node)?);
        }
    }
    Ok(out)
}

/// A template record's id and field specifiers, from the PDML tree under "Template (Id = ...)".
fn template_record(node: roxmltree::Node<'_, '_>) -> anyhow::Result<TemplateRecord> {
    let child = |n: roxmltree::Node<'_, '_>, name: &str| {
        n.children()
            .find(|c| c.attribute("name") == Some(name))
            .and_then(|c| c.attribute("show"))
            .map(str::to_string)
    };
    let id = child(node, "cflow.template_id")
        .context("template without id")?
        .parse()?;
    let mut specs = Vec::new();
    for f in node
        .children()
        .filter(|c| c.attribute("show").is_some_and(|s| s.starts_with("Field (")))
    {
        let ty = child(f, "cflow.template_ipfix_field_type")
            .or_else(|| child(f, "cflow.template_ipfix_field_type_enterprise"))
            .context("template field without type")?;
        let len = child(f, "cflow.template_field_length").context("template field without length")?;
        let pen = child(f, "cflow.template_ipfix_field_pen").unwrap_or_else(|| "0".into());
        specs.push((ty.parse()?, len.parse()?, pen.parse()?));
    }
    Ok((id, specs))
}

/// Runs tshark on `capture`, dissecting UDP `port` as IPFIX, and returns its PDML. tshark's home is
/// `home` so a developer's own Wireshark preferences cannot change what it prints.
pub fn tshark_pdml(tshark: &Path, capture: &Path, port: u16, home: &Path) -> anyhow::Result<String> {
    peer::run(
        Command::new(tshark)
            .arg("-r")
            .arg(capture)
            .args(["-d", &format!("udp.port=={port},cflow"), "-T", "pdml"])
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home),
    )
}
