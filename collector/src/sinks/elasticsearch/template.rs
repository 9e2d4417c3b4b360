//! The templates the sink installs before it writes (pure: JSON in, JSON out): a component template
//! with a mapping for every field of the ECS field table, and the composable index template that makes
//! `logs-podflow.flows-*` data streams from it.
//!
//! * Which server: [`Server::from_root`] reads `GET /`. OpenSearch says `"distribution":"opensearch"`;
//!   anything else is Elasticsearch. Label objects are mapped `flattened` on Elasticsearch and
//!   `flat_object` on OpenSearch.
//! * On Elasticsearch the index template is composed of the built-in `logs@mappings`, `logs@settings`
//!   and `ecs@mappings`, then podflow's component, then the customary `logs@custom` and
//!   `logs-podflow.flows@custom` (later ones win; all but podflow's may be missing). OpenSearch has
//!   none of those: its template is podflow's component alone.
//! * Both templates carry [`VERSION`] as `version` and in `_meta`. [`decide`] reads what the server
//!   holds: a template absent or older is put, the same version is left as it is, a newer one (a newer
//!   collector was here) is never overwritten.
//! * `--elasticsearch-ilm-policy NAME` sets `index.lifecycle.name` on Elasticsearch. OpenSearch's index
//!   state management attaches policies by their own `ism_template` patterns, so there it is ignored
//!   (the caller logs it).

use std::fmt::Write as _;

use serde_json::Value;

use crate::sinks::ecs::ECS_VERSION;
use crate::sinks::ecs::template::{INDEX_PATTERN, Labels, PRIORITY, TEMPLATE_NAME, properties};

/// The version both templates carry; raise it whenever either changes.
pub const VERSION: u64 = 1;

/// The component template's name.
pub const COMPONENT_NAME: &str = "logs-podflow.flows-mappings";

/// The components of the Elasticsearch index template, in order; podflow's is the only one required.
const ES_COMPOSED_OF: [&str; 6] = [
    "logs@mappings",
    "logs@settings",
    "ecs@mappings",
    COMPONENT_NAME,
    "logs@custom",
    "logs-podflow.flows@custom",
];

/// Which kind of server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// Elasticsearch (labels `flattened`).
    Elasticsearch,
    /// OpenSearch (labels `flat_object`).
    OpenSearch,
}

/// What `GET /` said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// Elasticsearch or OpenSearch.
    pub flavor: Flavor,
    /// `version.number`.
    pub version: String,
}

/// Why a server's answer could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerError {
    /// Not JSON.
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// JSON of another shape.
    #[error("no {0} in the answer")]
    Missing(&'static str),
}

/// Characters of `version.number` kept.
const MAX_VERSION: usize = 32;

impl Server {
    /// Reads the answer to `GET /`: the flavour, and the version cut to printable ASCII of at most 32
    /// characters.
    pub fn from_root(body: &[u8]) -> Result<Server, AnswerError> {
        let root: Value = serde_json::from_slice(body)?;
        let version = root
            .pointer("/version/number")
            .and_then(Value::as_str)
            .ok_or(AnswerError::Missing("version.number"))?;
        let flavor = match root.pointer("/version/distribution").and_then(Value::as_str) {
            Some("opensearch") => Flavor::OpenSearch,
            _ => Flavor::Elasticsearch,
        };
        // The version is logged: a server (or whatever answers in its place) gets 32 printable
        // characters of it at most.
        let version: String = version
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(MAX_VERSION)
            .collect();
        Ok(Server { flavor, version })
    }

    /// How this server maps label objects.
    pub fn labels(&self) -> Labels {
        match self.flavor {
            Flavor::Elasticsearch => Labels::Flattened,
            Flavor::OpenSearch => Labels::FlatObject,
        }
    }
}

/// `_meta` of both templates.
fn meta() -> String {
    format!(
        "{{\"managed_by\":\"podflow\",\"version\":{VERSION},\"ecs_version\":\"{ECS_VERSION}\",\"description\":\"podflow flow records as ECS documents\"}}"
    )
}

/// The body of `PUT _component_template/logs-podflow.flows-mappings`.
pub fn component_template(server: &Server) -> String {
    format!(
        "{{\"version\":{VERSION},\"_meta\":{meta},\"template\":{{\"mappings\":{{\"properties\":{props}}}}}}}",
        meta = meta(),
        props = properties(server.labels()),
    )
}

/// The body of `PUT _index_template/logs-podflow.flows`.
pub fn index_template(server: &Server, ilm_policy: Option<&str>) -> String {
    let quoted = |items: &[&str]| {
        items
            .iter()
            .map(|s| Value::from(*s).to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut out = format!(
        "{{\"index_patterns\":[\"{INDEX_PATTERN}\"],\"data_stream\":{{}},\"priority\":{PRIORITY},\"version\":{VERSION},\"_meta\":{}",
        meta()
    );
    match server.flavor {
        Flavor::Elasticsearch => {
            let optional: Vec<&str> = ES_COMPOSED_OF
                .iter()
                .copied()
                .filter(|c| *c != COMPONENT_NAME)
                .collect();
            let _ = write!(
                out,
                ",\"composed_of\":[{}],\"ignore_missing_component_templates\":[{}]",
                quoted(&ES_COMPOSED_OF),
                quoted(&optional)
            );
            if let Some(p) = ilm_policy {
                let _ = write!(
                    out,
                    ",\"template\":{{\"settings\":{{\"index.lifecycle.name\":{}}}}}",
                    Value::from(p)
                );
            }
        }
        Flavor::OpenSearch => {
            let _ = write!(out, ",\"composed_of\":[{}]", quoted(&[COMPONENT_NAME]));
        }
    }
    out.push('}');
    out
}

/// The index template's name.
pub fn index_template_name() -> &'static str {
    TEMPLATE_NAME
}

/// What to do with a template, given what the server holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Absent or older (the server's version, if any): put ours.
    Put(Option<u64>),
    /// The same version: nothing to do.
    Keep,
    /// Newer than ours (its version): left as it is.
    Newer(u64),
}

/// What to do with the template `name`, from the answer to `GET _component_template/<name>` or
/// `GET _index_template/<name>` (`None` for a 404).
pub fn decide(answer: Option<&[u8]>) -> Result<Decision, AnswerError> {
    let Some(body) = answer else {
        return Ok(Decision::Put(None));
    };
    let v: Value = serde_json::from_slice(body)?;
    let list = v
        .get("component_templates")
        .or_else(|| v.get("index_templates"))
        .and_then(Value::as_array)
        .ok_or(AnswerError::Missing("component_templates or index_templates"))?;
    let Some(first) = list.first() else {
        return Ok(Decision::Put(None));
    };
    let t = first
        .get("component_template")
        .or_else(|| first.get("index_template"))
        .ok_or(AnswerError::Missing("the template"))?;
    let theirs = t
        .get("version")
        .and_then(Value::as_u64)
        .or_else(|| t.pointer("/_meta/version").and_then(Value::as_u64));
    Ok(match theirs {
        Some(n) if n > VERSION => Decision::Newer(n),
        Some(n) if n == VERSION => Decision::Keep,
        other => Decision::Put(other),
    })
}

#[cfg(test)]
mod tests;
