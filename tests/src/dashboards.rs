//! podflow's Grafana dashboards (`grafana/*.json`): loading them, checking their structure, and taking
//! out every PromQL expression (panel targets and variable queries) with the template variables
//! replaced by concrete values, so a test can run each against a real Prometheus.
//!
//! No package ships Grafana's dashboard schema as JSON Schema (`@grafana/schema` 13.2.3 on npm ships
//! TypeScript types only, `@grafana/grafana-foundation-sdk` and PyPI's `grafana-foundation-sdk` builder
//! code), so [`check_structure`] checks what those types require of what the dashboards use, and what a
//! provisioned dashboard needs: no `__inputs`, a `datasource` variable every panel and target uses,
//! unique panel ids and refIds, panels on the 24-column grid without overlap, variables defined before
//! they are used.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::Value;

/// The oldest dashboard schema version the dashboards may declare (Grafana 10.4 writes 39).
pub const MIN_SCHEMA_VERSION: u64 = 39;

/// Grafana's own variables a panel query may use.
pub const BUILTIN_VARIABLES: [&str; 6] = [
    "__rate_interval",
    "__interval_ms",
    "__interval",
    "__range_s",
    "__range",
    "__auto",
];

/// A dashboard file.
#[derive(Clone, Debug)]
pub struct Dashboard {
    /// File name (`service-map.json`).
    pub file: String,
    /// The parsed JSON.
    pub json: Value,
}

/// One panel target's PromQL.
#[derive(Clone, Debug)]
pub struct Target {
    /// `file: panel title [refId]`, for messages.
    pub place: String,
    /// The panel's type (`timeseries`, `nodeGraph`, ...).
    pub panel_type: String,
    /// The target's refId.
    pub ref_id: String,
    /// The expression as written, with template variables.
    pub expr: String,
    /// Whether Grafana runs it as an instant query.
    pub instant: bool,
}

/// A template variable's query, in one of the forms Grafana's Prometheus data source knows.
#[derive(Clone, Debug, PartialEq)]
pub enum VariableQuery {
    /// `label_values(selector, label)` or `label_values(label)`.
    LabelValues {
        /// The series selector, if any.
        selector: Option<String>,
        /// The label whose values are listed.
        label: String,
    },
    /// `query_result(expr)`.
    QueryResult(String),
}

impl VariableQuery {
    /// The PromQL the query runs: the selector, or the expression.
    pub fn promql(&self) -> &str {
        match self {
            VariableQuery::LabelValues { selector, .. } => selector.as_deref().unwrap_or(""),
            VariableQuery::QueryResult(e) => e,
        }
    }
}

/// The repository's `grafana/` directory.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../grafana")
}

/// Every `*.json` in `dir`, parsed, in file-name order.
pub fn load(dir: &Path) -> anyhow::Result<Vec<Dashboard>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {dir:?}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).with_context(|| format!("reading {p:?}"))?;
            let json = serde_json::from_str(&text).with_context(|| format!("{p:?} is not JSON"))?;
            let file = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok(Dashboard { file, json })
        })
        .collect()
}

impl Dashboard {
    /// Every panel, those inside rows included, in order.
    pub fn panels(&self) -> Vec<&Value> {
        fn walk<'a>(panels: &'a [Value], out: &mut Vec<&'a Value>) {
            for p in panels {
                out.push(p);
                if let Some(inner) = p.get("panels").and_then(Value::as_array) {
                    walk(inner, out);
                }
            }
        }
        let mut out = Vec::new();
        if let Some(top) = self.json.get("panels").and_then(Value::as_array) {
            walk(top, &mut out);
        }
        out
    }

    /// The template variables, in order.
    pub fn variables(&self) -> Vec<&Value> {
        self.json
            .pointer("/templating/list")
            .and_then(Value::as_array)
            .map(|l| l.iter().collect())
            .unwrap_or_default()
    }

    /// Every panel target's expression.
    pub fn targets(&self) -> Vec<Target> {
        let mut out = Vec::new();
        for p in self.panels() {
            let title = p.get("title").and_then(Value::as_str).unwrap_or("?");
            let panel_type = p.get("type").and_then(Value::as_str).unwrap_or("").to_string();
            for t in p.get("targets").and_then(Value::as_array).into_iter().flatten() {
                let ref_id = t.get("refId").and_then(Value::as_str).unwrap_or("?").to_string();
                out.push(Target {
                    place: format!("{}: {title} [{ref_id}]", self.file),
                    panel_type: panel_type.clone(),
                    ref_id,
                    expr: t.get("expr").and_then(Value::as_str).unwrap_or("").to_string(),
                    instant: t.get("instant").and_then(Value::as_bool).unwrap_or(false),
                });
            }
        }
        out
    }

    /// (name, query) of every variable of type `query`.
    pub fn variable_queries(&self) -> anyhow::Result<Vec<(String, VariableQuery)>> {
        let mut out = Vec::new();
        for v in self.variables() {
            if v.get("type").and_then(Value::as_str) != Some("query") {
                continue;
            }
            let name = v.get("name").and_then(Value::as_str).unwrap_or("?").to_string();
            let q =
                variable_text(v).with_context(|| format!("{}: variable {name} has no query", self.file))?;
            let parsed =
                parse_variable_query(&q).with_context(|| format!("{}: variable {name}", self.file))?;
            out.push((name, parsed));
        }
        Ok(out)
    }
}

/// A query variable's query text: `query` as a string, or `query.query` (Grafana 10's form).
fn variable_text(v: &Value) -> Option<String> {
    match v.get("query")? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("query").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

/// Parses `label_values(...)` or `query_result(...)`.
pub fn parse_variable_query(q: &str) -> anyhow::Result<VariableQuery> {
    let q = q.trim();
    let inner = |prefix: &str| {
        q.strip_prefix(prefix)
            .and_then(|r| r.trim_start().strip_prefix('('))
            .and_then(|r| r.strip_suffix(')'))
            .map(str::trim)
    };
    if let Some(args) = inner("label_values") {
        return Ok(match args.rsplit_once(',') {
            Some((selector, label)) => VariableQuery::LabelValues {
                selector: Some(selector.trim().to_string()),
                label: label.trim().to_string(),
            },
            None => VariableQuery::LabelValues {
                selector: None,
                label: args.to_string(),
            },
        });
    }
    if let Some(expr) = inner("query_result") {
        return Ok(VariableQuery::QueryResult(expr.to_string()));
    }
    bail!("unsupported variable query {q:?} (want label_values(...) or query_result(...))")
}

/// `$name` and `${name}` (also `${name:format}`) references in `text`.
pub fn references(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            let rest = &text[i + 1..];
            if let Some((braced, end)) = rest
                .strip_prefix('{')
                .and_then(|b| b.find('}').map(|end| (b, end)))
            {
                let name = braced[..end].split(':').next().unwrap_or("");
                out.insert(name.to_string());
                i += end + 2;
                continue;
            }
            let n = rest
                .bytes()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
                .count();
            // `$1` in label_replace is a regex group, not a variable.
            if n > 0 && !rest.as_bytes()[0].is_ascii_digit() {
                out.insert(rest[..n].to_string());
            }
            i += n + 1;
            continue;
        }
        i += 1;
    }
    out
}

/// `text` with every `${name}` and `$name` of `values` replaced (longest names first, so
/// `$__rate_interval` is not taken for `$__range`... followed by text).
pub fn substitute(text: &str, values: &BTreeMap<String, String>) -> String {
    let mut names: Vec<&String> = values.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let mut out = text.to_string();
    for n in names {
        out = out.replace(&format!("${{{n}}}"), &values[n]);
        out = out.replace(&format!("${n}"), &values[n]);
    }
    out
}

/// The metric names an expression reads: identifiers outside string literals that start with one of
/// `prefixes` (a histogram's `_bucket`, `_sum` and `_count` series as written).
pub fn metric_names(expr: &str, prefixes: &[&str]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut chars = expr.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '"' || c == '\'' || c == '`' {
            // Skip the string literal, escapes included.
            let mut escaped = false;
            for (_, d) in chars.by_ref() {
                if escaped {
                    escaped = false;
                } else if d == '\\' {
                    escaped = true;
                } else if d == c {
                    break;
                }
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if d.is_ascii_alphanumeric() || d == '_' || d == ':' {
                    end = j + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            let word = &expr[i..end];
            if prefixes.iter().any(|p| word.starts_with(p)) {
                out.insert(word.to_string());
            }
        }
    }
    out
}

/// Checks the structure of `d` (see the module documentation); returns every problem found.
pub fn check_structure(d: &Dashboard) -> Vec<String> {
    let mut problems = Vec::new();
    let mut fail = |m: String| problems.push(format!("{}: {m}", d.file));
    let j = &d.json;
    if j.get("__inputs").is_some() || j.get("__requires").is_some() {
        fail("has __inputs/__requires (export for sharing); provisioning wants plain JSON".into());
    }
    match j.get("schemaVersion").and_then(Value::as_u64) {
        Some(v) if v >= MIN_SCHEMA_VERSION => {}
        other => fail(format!("schemaVersion {other:?}, want >= {MIN_SCHEMA_VERSION}")),
    }
    for key in ["uid", "title"] {
        if j.get(key).and_then(Value::as_str).is_none_or(str::is_empty) {
            fail(format!("no {key}"));
        }
    }
    if j.get("id").is_some_and(|id| !id.is_null()) {
        fail("has a fixed id; provisioned dashboards leave it null".into());
    }

    // Variables: unique names, each using only variables defined before it.
    let mut defined: Vec<String> = Vec::new();
    for v in d.variables() {
        let name = v.get("name").and_then(Value::as_str).unwrap_or("");
        let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() || kind.is_empty() {
            fail(format!("variable without name or type: {v}"));
            continue;
        }
        if defined.iter().any(|n| n == name) {
            fail(format!("variable {name} defined twice"));
        }
        let text = variable_text(v).unwrap_or_default();
        let datasource = v.get("datasource").map(Value::to_string).unwrap_or_default();
        for r in references(&text).into_iter().chain(references(&datasource)) {
            if !defined.contains(&r) {
                fail(format!("variable {name} uses ${r} before it is defined"));
            }
        }
        let lists_prometheus = v.get("query").and_then(Value::as_str) == Some("prometheus");
        let queries_datasource =
            v.pointer("/datasource/uid").and_then(Value::as_str) == Some("${datasource}");
        match (name, kind) {
            ("datasource", "datasource") if !lists_prometheus => {
                fail("variable datasource does not list Prometheus data sources".into())
            }
            ("datasource", "datasource") => {}
            ("datasource", _) => fail("variable datasource is not of type datasource".into()),
            (_, "query") if !queries_datasource => {
                fail(format!("variable {name} does not query ${{datasource}}"))
            }
            _ => {}
        }
        defined.push(name.to_string());
    }
    for want in ["datasource", "cluster", "namespace"] {
        if !defined.iter().any(|n| n == want) {
            fail(format!("no {want} variable"));
        }
    }

    // Panels.
    let mut ids = BTreeSet::new();
    let mut boxes: Vec<(String, [i64; 4])> = Vec::new();
    for p in d.panels() {
        let title = p.get("title").and_then(Value::as_str).unwrap_or("?").to_string();
        let kind = p.get("type").and_then(Value::as_str).unwrap_or("");
        if kind.is_empty() {
            fail(format!("panel {title:?} has no type"));
        }
        match p.get("id").and_then(Value::as_u64) {
            Some(id) if !ids.insert(id) => fail(format!("panel id {id} used twice")),
            Some(_) => {}
            None => fail(format!("panel {title:?} has no integer id")),
        }
        let pos = ["x", "y", "w", "h"].map(|k| p.pointer(&format!("/gridPos/{k}")).and_then(Value::as_i64));
        match pos {
            [Some(x), Some(y), Some(w), Some(h)] if x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= 24 => {
                for (other, b) in &boxes {
                    if x < b[0] + b[2] && b[0] < x + w && y < b[1] + b[3] && b[1] < y + h {
                        fail(format!("panel {title:?} overlaps {other:?}"));
                    }
                }
                boxes.push((title.clone(), [x, y, w, h]));
            }
            _ => fail(format!(
                "panel {title:?} has no gridPos on the 24-column grid: {pos:?}"
            )),
        }
        if kind == "row" {
            continue;
        }
        if p.pointer("/datasource/uid").and_then(Value::as_str) != Some("${datasource}")
            || p.pointer("/datasource/type").and_then(Value::as_str) != Some("prometheus")
        {
            fail(format!(
                "panel {title:?} does not use the ${{datasource}} Prometheus data source"
            ));
        }
        let targets = p
            .get("targets")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if targets.is_empty() {
            fail(format!("panel {title:?} has no targets"));
        }
        let mut refs = BTreeSet::new();
        for t in &targets {
            let r = t.get("refId").and_then(Value::as_str).unwrap_or("");
            if r.is_empty() || !refs.insert(r.to_string()) {
                fail(format!("panel {title:?}: missing or repeated refId {r:?}"));
            }
            let expr = t.get("expr").and_then(Value::as_str).unwrap_or("");
            if expr.trim().is_empty() {
                fail(format!("panel {title:?} [{r}] has no expr"));
            }
            if t.pointer("/datasource/uid").and_then(Value::as_str) != Some("${datasource}") {
                fail(format!("panel {title:?} [{r}] does not use ${{datasource}}"));
            }
            for name in references(expr) {
                if !defined.contains(&name) && !BUILTIN_VARIABLES.contains(&name.as_str()) {
                    fail(format!("panel {title:?} [{r}] uses undefined ${name}"));
                }
            }
        }
        if kind == "nodeGraph" {
            let table_instant = |t: &Value| {
                t.get("instant").and_then(Value::as_bool) == Some(true)
                    && t.get("format").and_then(Value::as_str) == Some("table")
            };
            if refs != BTreeSet::from(["edges".to_string(), "nodes".to_string()])
                || !targets.iter().all(table_instant)
            {
                fail(format!(
                    "node graph {title:?} wants two instant table queries, refIds nodes and edges; has {refs:?}"
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_queries_are_parsed() {
        assert_eq!(
            parse_variable_query("label_values(x{a=~\"$b\", c=\"d\"}, src_namespace)").unwrap(),
            VariableQuery::LabelValues {
                selector: Some("x{a=~\"$b\", c=\"d\"}".into()),
                label: "src_namespace".into()
            }
        );
        assert_eq!(
            parse_variable_query("label_values(cluster)").unwrap(),
            VariableQuery::LabelValues {
                selector: None,
                label: "cluster".into()
            }
        );
        assert_eq!(
            parse_variable_query("query_result(up)").unwrap(),
            VariableQuery::QueryResult("up".into())
        );
        assert!(parse_variable_query("metrics(.*)").is_err());
    }

    #[test]
    fn references_skip_regex_groups_and_substitution_prefers_longer_names() {
        let e = r#"label_replace(rate(x{a=~"$namespace"}[$__rate_interval]), "t", "$1", "s", "(.*)") and ${cluster:regex} [$__range]"#;
        assert_eq!(
            references(e),
            BTreeSet::from(["__range", "__rate_interval", "cluster", "namespace"].map(String::from))
        );
        let values = BTreeMap::from(
            [
                ("__range", "9m"),
                ("__rate_interval", "1m"),
                ("namespace", ".*"),
                ("cluster", "c"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        assert_eq!(
            substitute("[$__rate_interval] [$__range] ${namespace} $cluster $1", &values),
            "[1m] [9m] .* c $1"
        );
    }

    #[test]
    fn metric_names_ignore_labels_strings_and_functions() {
        let e = r#"sum by (le) (rate(podflow_a_bucket{x="podflow_not_a_metric"}[1m])) / podflow_b_total"#;
        assert_eq!(
            metric_names(e, &["podflow_"]),
            BTreeSet::from(["podflow_a_bucket".to_string(), "podflow_b_total".to_string()])
        );
    }
}
