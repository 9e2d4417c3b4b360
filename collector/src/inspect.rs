//! `podflow-collector decode`: IPFIX messages and files to JSON lines, for people and scripts.

use std::fmt::Write as _;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use proto_ipfix::cache::Limits;
use proto_ipfix::ie::{Element, Registry};
use proto_ipfix::{
    DataRecord, DataType, Decoder, Field, FieldSpec, InsertOutcome, SessionKey, Template, TemplateCache,
    TemplatePolicy, Visitor, wire,
};

/// What a decode run saw.
#[derive(Debug, Default)]
pub struct Report {
    /// Data records printed.
    pub records: u64,
    /// Parts of the input that could not be decoded.
    pub errors: u64,
}

/// Decodes `files` as one stream and writes one JSON object per record (and per template if asked).
pub fn run(
    files: &[PathBuf],
    podflow_pen: u32,
    templates: bool,
    out: &mut impl Write,
) -> anyhow::Result<Report> {
    // Files hold a recorded stream: templates live until withdrawn, as over a reliable transport.
    let mut decoder = Decoder::new(TemplateCache::new(TemplatePolicy::Stream, Limits::default()));
    let exporter = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let mut printer = Printer {
        registry: Registry::new(podflow_pen),
        templates,
        line: String::new(),
        out,
        file: String::new(),
        io: Ok(()),
    };
    let mut report = Report::default();
    for path in files {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        printer.file = json_escape(path.file_name().and_then(|n| n.to_str()).unwrap_or("?"));
        for (i, msg) in wire::split_messages(&bytes).enumerate() {
            let msg = match msg {
                Ok(m) => m,
                Err(e) => {
                    report.errors += 1;
                    eprintln!("{}: message {i}: {e}", path.display());
                    break;
                }
            };
            let sum = decoder.decode(exporter, msg, 0, &mut printer);
            report.records += u64::from(sum.records);
            report.errors += u64::from(sum.errors);
            if sum.missing_template_sets > 0 {
                eprintln!(
                    "{}: message {i}: {} data set(s) without a template",
                    path.display(),
                    sum.missing_template_sets
                );
            }
            if let Some(e) = sum.first_error {
                eprintln!("{}: message {i}: {e}", path.display());
            }
        }
        match &printer.io {
            // A reader that stopped reading (`| head`) is not an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
            Err(e) => anyhow::bail!("writing output: {e}"),
            Ok(()) => {}
        }
    }
    Ok(report)
}

struct Printer<'f, W: Write> {
    registry: Registry,
    templates: bool,
    line: String,
    out: &'f mut W,
    /// The current file's name, JSON-escaped.
    file: String,
    io: std::io::Result<()>,
}

impl<W: Write> Printer<'_, W> {
    fn name(&mut self, spec: &FieldSpec) {
        match self.registry.lookup_spec(spec) {
            Some(e) => {
                let _ = write!(self.line, "\"{e}\"");
            }
            None => {
                let _ = write!(self.line, "\"{}/{}\"", spec.pen, spec.id);
            }
        }
    }

    fn flush(&mut self) {
        self.line.push('\n');
        if self.io.is_ok() {
            self.io = self.out.write_all(self.line.as_bytes());
        }
        self.line.clear();
    }
}

impl<W: Write> Visitor for Printer<'_, W> {
    fn record(&mut self, r: &DataRecord<'_>) {
        let _ = write!(
            self.line,
            "{{\"file\":\"{}\",\"template\":{},\"fields\":{{",
            self.file,
            r.template().id()
        );
        for (i, f) in r.fields().enumerate() {
            if i > 0 {
                self.line.push(',');
            }
            self.name(&f.spec);
            self.line.push(':');
            let ty = self
                .registry
                .lookup_spec(&f.spec)
                .map(|e: Element| e.data_type())
                .unwrap_or(DataType::Unknown);
            value(&mut self.line, &f, ty);
        }
        self.line.push_str("}}");
        self.flush();
    }

    fn template(&mut self, key: &SessionKey, t: &Template, outcome: InsertOutcome) {
        if !self.templates || outcome == InsertOutcome::Refreshed {
            return;
        }
        let _ = write!(
            self.line,
            "{{\"file\":\"{}\",\"domain\":{},\"template_definition\":{},\"scope_fields\":{},\"fields\":[",
            self.file,
            key.observation_domain,
            t.id(),
            t.scope_count()
        );
        for (i, spec) in t.fields().iter().enumerate() {
            if i > 0 {
                self.line.push(',');
            }
            self.line.push('[');
            self.name(spec);
            let _ = write!(self.line, ",{}]", spec.length);
        }
        self.line.push_str("]}");
        self.flush();
    }
}

/// Writes a field's value as JSON according to its element's type.
fn value(out: &mut String, f: &Field<'_>, ty: DataType) {
    let written = match ty {
        DataType::Unsigned8
        | DataType::Unsigned16
        | DataType::Unsigned32
        | DataType::Unsigned64
        | DataType::DateTimeSeconds
        | DataType::DateTimeMilliseconds => f.u64().map(|v| write!(out, "{v}")),
        DataType::Signed8 | DataType::Signed16 | DataType::Signed32 | DataType::Signed64 => {
            f.i64().map(|v| write!(out, "{v}"))
        }
        DataType::Float32 | DataType::Float64 => {
            f.f64().filter(|v| v.is_finite()).map(|v| write!(out, "{v}"))
        }
        DataType::Boolean => f.bool().map(|v| write!(out, "{v}")),
        DataType::Ipv4Address => f.ipv4().map(|a| write!(out, "\"{}\"", IpAddr::V4(a))),
        DataType::Ipv6Address => f.ipv6().map(|a| write!(out, "\"{}\"", IpAddr::V6(a))),
        DataType::MacAddress => f.mac().map(|m| {
            write!(
                out,
                "\"{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}\"",
                m[0], m[1], m[2], m[3], m[4], m[5]
            )
        }),
        DataType::String => f.str().map(|s| write!(out, "\"{}\"", json_escape(s))),
        _ => None,
    };
    if written.is_none() {
        // Octets, lists, unknown elements and values whose size does not fit their type: hex.
        out.push('"');
        for b in f.value {
            let _ = write!(out, "{b:02x}");
        }
        out.push('"');
    }
}

fn json_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn decodes_bundled_mikrotik_stream() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/captures/logstash-codec-netflow");
        let files = vec![
            dir.join("ipfix_test_mikrotik_tpl.dat"),
            dir.join("ipfix_test_mikrotik_data258.dat"),
        ];
        let mut out = Vec::new();
        let report = run(&files, 32473, true, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(report.errors, 0);
        assert!(report.records > 0);
        assert_eq!(
            text.lines().filter(|l| l.contains("\"fields\":{")).count() as u64,
            report.records
        );
        for line in text.lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
        assert!(text.contains("\"postNATSourceIPv4Address\""), "{text}");
    }

    #[test]
    fn values_follow_their_types() {
        let spec = FieldSpec::iana(1, 4);
        let mut s = String::new();
        value(
            &mut s,
            &Field {
                spec,
                value: &[0, 0, 1, 0],
            },
            DataType::Unsigned64,
        );
        value(
            &mut s,
            &Field {
                spec,
                value: &[10, 0, 0, 1],
            },
            DataType::Ipv4Address,
        );
        value(&mut s, &Field { spec, value: &[1, 2] }, DataType::Ipv4Address);
        value(&mut s, &Field { spec, value: b"a\"b" }, DataType::String);
        assert_eq!(s, "256\"10.0.0.1\"\"0102\"\"a\\\"b\"");
    }
}
