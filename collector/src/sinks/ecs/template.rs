//! The composable index template for the `logs-podflow.flows-*` data streams, derived from [`FIELDS`].
//!
//! Choices:
//! * Priority [`PRIORITY`] (501): above Elasticsearch's built-in `logs` template for `logs-*-*` (100) and
//!   Fleet integration templates (up to 200), as Elastic's template guide asks of templates whose
//!   pattern overlaps the built-in ones ("higher than 500"), so these mappings win.
//! * Composed of the built-in `logs@mappings` (data_stream.* as constant_keyword, `@timestamp`),
//!   `logs@settings` (the default `logs` lifecycle and ingest pipeline hooks) and `ecs@mappings`
//!   (dynamic ECS mappings, so fields an operator's own pipeline adds, such as `source.geo.*`, get ECS
//!   types), then the customary `logs@custom` and `logs-podflow.flows@custom` for the operator's own
//!   settings. Every field podflow writes is mapped explicitly here, and a template's own mappings take
//!   precedence over its components, so the documents' mapping does not depend on those components. All
//!   five are listed in `ignore_missing_component_templates`: the template installs on a cluster whose
//!   built-in templates are disabled (`stack.templates.enabled: false`) or that predates them.
//! * Kubernetes labels are objects whose members are mapped as keywords by a dynamic template, like
//!   Elastic's own `kubernetes.labels.*`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::encoder::DATASET;
use super::fields::{ECS_VERSION, FIELDS, Type};

/// The index template's name (no `@`: Elastic reserves it for its own templates).
pub const TEMPLATE_NAME: &str = "logs-podflow.flows";

/// The data streams the template applies to: `logs-podflow.flows-<namespace>`.
pub const INDEX_PATTERN: &str = "logs-podflow.flows-*";

/// The template's priority.
pub const PRIORITY: u32 = 501;

/// The component templates the template is composed of, in order (later ones win).
pub const COMPOSED_OF: [&str; 5] = [
    "logs@mappings",
    "logs@settings",
    "ecs@mappings",
    "logs@custom",
    "logs-podflow.flows@custom",
];

/// The data stream for `namespace`: `logs-podflow.flows-<namespace>`.
pub fn data_stream_name(namespace: &str) -> String {
    format!("logs-{DATASET}-{namespace}")
}

/// The body of `PUT _index_template/logs-podflow.flows`: a composable index template that makes
/// `logs-podflow.flows-*` data streams and maps every field of [`FIELDS`] with its type.
pub fn index_template() -> String {
    let list = |items: &[&str]| {
        items
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut dynamic = Vec::new();
    for f in FIELDS.iter().filter(|f| f.ty == Type::Object) {
        dynamic.push(format!(
            "{{\"{}\":{{\"path_match\":\"{}.*\",\"match_mapping_type\":\"string\",\"mapping\":{{\"type\":\"keyword\",\"ignore_above\":1024}}}}}}",
            f.name.replace('.', "_"),
            f.name
        ));
    }
    let properties = properties(Labels::Object);
    format!(
        concat!(
            "{{\"index_patterns\":[\"{pattern}\"],\"data_stream\":{{}},\"priority\":{priority},",
            "\"composed_of\":[{composed}],\"ignore_missing_component_templates\":[{composed}],",
            "\"_meta\":{{\"managed_by\":\"podflow\",\"ecs_version\":\"{ecs}\",",
            "\"description\":\"podflow flow records as ECS documents\"}},",
            "\"template\":{{\"mappings\":{{\"dynamic_templates\":[{dynamic}],\"properties\":{properties}}}}}}}"
        ),
        pattern = INDEX_PATTERN,
        priority = PRIORITY,
        composed = list(&COMPOSED_OF),
        ecs = ECS_VERSION,
        dynamic = dynamic.join(","),
        properties = properties,
    )
}

/// How the label objects (fields of type [`Type::Object`]) are mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Labels {
    /// An `object` whose members a dynamic template maps as keywords (what [`index_template`] does).
    Object,
    /// Elasticsearch's `flattened`: one field for the whole object, every leaf a keyword, no mapping
    /// per label key (no mapping explosion from many distinct keys).
    Flattened,
    /// OpenSearch's `flat_object`, its counterpart of `flattened`. OpenSearch's `constant_keyword`
    /// requires its one value in the mapping, which a template shared by every namespace cannot give,
    /// so with it the `data_stream.*` fields are mapped `keyword`.
    FlatObject,
}

/// The `properties` of a mapping of every field of [`FIELDS`], with label objects mapped as `labels`
/// says: `{"@timestamp":{"type":"date"},"client":{"properties":{...}},...}`.
pub fn properties(labels: Labels) -> String {
    let mut root = Node::default();
    for f in FIELDS {
        root.insert(f.name, f.ty);
    }
    let mut out = String::new();
    root.write_properties(&mut out, labels);
    out
}

/// The mapping of one field of type `ty`.
fn mapping(ty: Type, labels: Labels) -> String {
    match (ty, labels) {
        (Type::Object, Labels::Flattened) => return "{\"type\":\"flattened\"}".to_owned(),
        (Type::Object, Labels::FlatObject) => return "{\"type\":\"flat_object\"}".to_owned(),
        (Type::ConstantKeyword, Labels::FlatObject) => return mapping(Type::Keyword, labels),
        _ => {}
    }
    match ty {
        // ECS maps every keyword with ignore_above 1024: longer values are kept in _source, not indexed.
        Type::Keyword => "{\"type\":\"keyword\",\"ignore_above\":1024}".to_owned(),
        other => format!("{{\"type\":\"{}\"}}", other.as_str()),
    }
}

/// The tree of objects the dotted names imply.
#[derive(Default)]
struct Node {
    leaf: Option<Type>,
    children: BTreeMap<&'static str, Node>,
}

impl Node {
    fn insert(&mut self, name: &'static str, ty: Type) {
        let mut node = self;
        for seg in name.split('.') {
            node = node.children.entry(seg).or_default();
        }
        node.leaf = Some(ty);
    }

    /// Writes `{"a":{...},"b":{"properties":{...}}}` for this object's children.
    fn write_properties(&self, out: &mut String, labels: Labels) {
        out.push('{');
        for (i, (name, child)) in self.children.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "\"{name}\":");
            match child.leaf {
                Some(ty) => out.push_str(&mapping(ty, labels)),
                None => {
                    out.push_str("{\"properties\":");
                    child.write_properties(out, labels);
                    out.push('}');
                }
            }
        }
        out.push('}');
    }
}
