//! The static inventory provider: Kubernetes objects read from files, for clusters the collector cannot
//! reach and for attributing recorded flows after the fact.
//!
//! It reads what `kubectl get pods,services,endpointslices,nodes,replicasets,jobs -A -o yaml` (or
//! `-o json`) prints: `kind: List` documents with `items`, several YAML documents in one file, or single
//! objects. A path may be a file or a directory, whose `.yaml`, `.yml` and `.json` files are read in
//! name order (not its subdirectories). Other kinds are skipped. A document or object that cannot be
//! used is counted and reported, never fatal; only a path that cannot be read is.
//!
//! Times come from the objects themselves (creation, start, container finish and deletion timestamps),
//! so a snapshot taken after a Job's pod completed and another pod got its address attributes flows
//! of either time correctly.

use std::fmt;
use std::fs;
use std::io;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::index::{Event, Index, IndexSettings};
use super::objects::{self, Invalid, Object, ObjectKind};
use super::provider::{Answer, MetadataProvider, ProviderStatus, Query};

/// Problems kept word for word in a report; the rest are only counted.
const MAX_PROBLEMS: usize = 20;

/// What loading an inventory found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InventoryReport {
    /// Files read.
    pub files: usize,
    /// Objects indexed.
    pub objects: usize,
    /// Objects of other kinds, skipped.
    pub ignored: usize,
    /// Documents and objects that could not be used.
    pub bad: usize,
    /// The first problems, as `origin: reason`.
    pub problems: Vec<String>,
}

impl InventoryReport {
    fn problem(&mut self, origin: &str, reason: impl fmt::Display) {
        self.bad += 1;
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(format!("{origin}: {reason}"));
        }
    }
}

/// A path of the inventory could not be read.
#[derive(Debug)]
pub struct InventoryError {
    /// The path.
    pub path: PathBuf,
    /// Why.
    pub source: io::Error,
}

impl fmt::Display for InventoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot read inventory {}: {}",
            self.path.display(),
            self.source
        )
    }
}

impl std::error::Error for InventoryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// A static inventory: an index built once from files.
pub struct Inventory {
    index: Index,
    report: InventoryReport,
}

impl Inventory {
    /// Reads every path (files, or directories of files) and indexes what they hold; `now_ms` is the
    /// time the objects are taken to have been seen.
    pub fn load(
        paths: &[PathBuf],
        settings: IndexSettings,
        now_ms: u64,
    ) -> Result<Inventory, InventoryError> {
        let mut files = Vec::new();
        for path in paths {
            let err = |source| InventoryError {
                path: path.clone(),
                source,
            };
            if fs::metadata(path).map_err(err)?.is_dir() {
                let mut listed = Vec::new();
                for entry in fs::read_dir(path).map_err(err)? {
                    let p = entry.map_err(err)?.path();
                    let ext = p.extension().and_then(|e| e.to_str()).unwrap_or_default();
                    if p.is_file() && matches!(ext, "yaml" | "yml" | "json") {
                        listed.push(p);
                    }
                }
                listed.sort();
                files.extend(listed);
            } else {
                files.push(path.clone());
            }
        }
        let mut report = InventoryReport::default();
        let mut found = Vec::new();
        for file in &files {
            let bytes = fs::read(file).map_err(|source| InventoryError {
                path: file.clone(),
                source,
            })?;
            report.files += 1;
            let origin = file.display().to_string();
            let json = match file.extension().and_then(|e| e.to_str()) {
                Some("json") => Some(true),
                Some("yaml" | "yml") => Some(false),
                _ => None,
            };
            found.extend(parse_bytes(&bytes, json, &origin, &mut report));
        }
        Ok(Inventory::from_objects(found, settings, now_ms, report))
    }

    /// Indexes parsed objects: owners and EndpointSlices first, so pods are built once.
    pub fn from_objects(
        mut objects: Vec<Object>,
        settings: IndexSettings,
        now_ms: u64,
        mut report: InventoryReport,
    ) -> Inventory {
        objects.sort_by_key(|o| ObjectKind::ALL.iter().position(|k| *k == o.kind()));
        let mut index = Index::new(settings);
        report.objects = objects.len();
        for object in objects {
            index.apply(Event::Upsert(object), now_ms);
        }
        Inventory { index, report }
    }

    /// What loading found.
    pub fn report(&self) -> &InventoryReport {
        &self.report
    }

    /// The index.
    pub fn index(&self) -> &Index {
        &self.index
    }
}

impl MetadataProvider for Inventory {
    fn resolve(&self, query: &Query) -> Answer {
        self.index.resolve(query)
    }

    fn status(&self) -> ProviderStatus {
        ProviderStatus {
            synced: true,
            index: self.index.stats(),
            bad_objects: u64::try_from(self.report.bad).unwrap_or(u64::MAX),
            ..ProviderStatus::default()
        }
    }
}

/// The objects of one file's bytes: JSON or YAML as `json` says, or, when it says nothing, JSON if the
/// text starts with `{`. Text that is not UTF-8 is one problem in `report` and no objects.
pub fn parse_bytes(
    bytes: &[u8],
    json: Option<bool>,
    origin: &str,
    report: &mut InventoryReport,
) -> Vec<Object> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        report.problem(origin, "not UTF-8 text");
        return Vec::new();
    };
    let json = json.unwrap_or_else(|| text.trim_start().starts_with('{'));
    parse(text, json, origin, report)
}

/// The objects of one file's text (JSON: one or more values back to back; YAML: one or more
/// documents); problems go to `report`, named after `origin`.
pub fn parse(text: &str, json: bool, origin: &str, report: &mut InventoryReport) -> Vec<Object> {
    let mut documents = Vec::new();
    if json {
        for doc in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
            match doc {
                Ok(v) => documents.push(v),
                Err(e) => {
                    // A syntax error leaves the rest of the stream unreadable.
                    report.problem(origin, format_args!("JSON: {e}"));
                    break;
                }
            }
        }
    } else {
        for doc in serde_yaml_ng::Deserializer::from_str(text) {
            match Value::deserialize(doc) {
                Ok(v) => documents.push(v),
                Err(e) => {
                    report.problem(origin, format_args!("YAML: {e}"));
                    break;
                }
            }
        }
    }
    let mut objects = Vec::new();
    for (d, doc) in documents.into_iter().enumerate() {
        for (i, item) in items(doc).into_iter().enumerate() {
            let name = item
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned();
            match object(item) {
                Ok(Some(o)) => objects.push(o),
                Ok(None) => report.ignored += 1,
                Err(e) => report.problem(
                    &format!("{origin}: document {} item {} ({name})", d + 1, i + 1),
                    e,
                ),
            }
        }
    }
    objects
}

/// The objects of a document: a List's items, or the document itself.
fn items(doc: Value) -> Vec<Value> {
    match doc {
        Value::Null => Vec::new(),
        Value::Object(mut map) => {
            let is_list = map
                .get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| k.ends_with("List"));
            match map.remove("items") {
                Some(Value::Array(items)) if is_list => items,
                Some(other) => {
                    map.insert("items".into(), other);
                    vec![Value::Object(map)]
                }
                None => vec![Value::Object(map)],
            }
        }
        other => vec![other],
    }
}

fn typed<T: DeserializeOwned>(item: Value) -> Result<T, String> {
    serde_json::from_value(item).map_err(|e| e.to_string())
}

/// One object; `None` for kinds attribution does not read.
fn object(mut item: Value) -> Result<Option<Object>, String> {
    let Some(kind) = item.get("kind").and_then(Value::as_str) else {
        return Err("no kind".into());
    };
    let invalid = |e: Invalid| e.to_string();
    let object = match kind {
        "Pod" => Object::Pod(objects::pod(&typed::<Pod>(item)?).map_err(invalid)?),
        "Service" => Object::Service(objects::service(&typed::<Service>(item)?).map_err(invalid)?),
        "EndpointSlice" => {
            Object::EndpointSlice(objects::endpoint_slice(&typed::<EndpointSlice>(item)?).map_err(invalid)?)
        }
        "Node" => Object::Node(objects::node(&typed::<Node>(item)?).map_err(invalid)?),
        "ReplicaSet" | "Job" => {
            let kind = if kind == "Job" {
                ObjectKind::Job
            } else {
                ObjectKind::ReplicaSet
            };
            // Only the owner chain is read, so a ReplicaSet's or Job's spec is never parsed.
            let meta = typed::<ObjectMeta>(item.get_mut("metadata").map(Value::take).unwrap_or_default())?;
            Object::Owner(objects::owner(kind, &meta).map_err(invalid)?)
        }
        _ => return Ok(None),
    };
    Ok(Some(object))
}
