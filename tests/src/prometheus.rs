//! A real Prometheus server (Debian's `/usr/bin/prometheus`) for tests: a temporary directory with a
//! configuration that scrapes the given targets at a short interval, its TSDB, and the query API over
//! HTTP on a free loopback port.
//!
//! Tests wait on what Prometheus answers (the target is up, a query returns what it should), polled with
//! bounded deadlines.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::http::Client;
use crate::peer::{self, PEER_TIMEOUT, PeerProcess};

/// A running Prometheus.
pub struct Prometheus {
    process: PeerProcess,
    client: Client,
    _dir: tempfile::TempDir,
}

/// One sample of a query's instant vector: its labels and value.
pub type Sample = (BTreeMap<String, String>, f64);

impl Prometheus {
    /// Starts Prometheus scraping `/metrics` of every target every `interval` (e.g. `1s`), with its logs
    /// in `work`; `Ok(None)` when it is not installed and missing peers are allowed. Waits (bounded)
    /// until it answers.
    pub fn start(work: &Path, targets: &[SocketAddr], interval: &str) -> anyhow::Result<Option<Self>> {
        let Some(bin) = peer::require("prometheus", "the Debian package prometheus")? else {
            return Ok(None);
        };
        let dir = tempfile::tempdir_in(work)?;
        let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\n\
             scrape_configs:\n- job_name: podflow\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\n\
             \x20 static_configs:\n  - targets: [{}]\n",
            list.join(", ")
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config)?;
        // A free port a moment ago; if Prometheus loses the race it exits, which the wait reports.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn");
        let mut process = PeerProcess::spawn("prometheus", &mut cmd, work)?;
        let client = Client::new(&format!("http://127.0.0.1:{port}"));
        peer::wait_until("prometheus to be ready", PEER_TIMEOUT, || {
            process.check_running()?;
            Ok(client.get("/-/ready").is_ok_and(|r| r.status == 200))
        })?;
        Ok(Some(Prometheus {
            process,
            client,
            _dir: dir,
        }))
    }

    /// Evaluates `query` now; its instant vector.
    pub fn query(&self, query: &str) -> anyhow::Result<Vec<Sample>> {
        let path = format!("/api/v1/query?query={}", encode(query));
        let reply = self.client.get(&path)?.ok_json()?;
        if reply["status"] != "success" {
            bail!("query {query}: {reply}");
        }
        let result = reply["data"]["result"]
            .as_array()
            .with_context(|| format!("query {query}: no vector in {reply}"))?;
        result
            .iter()
            .map(|s| {
                let labels = s["metric"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                            .collect()
                    })
                    .unwrap_or_default();
                let value = s["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .with_context(|| format!("query {query}: sample without a value: {s}"))?;
                Ok((labels, value))
            })
            .collect()
    }

    /// Polls (bounded) until every target is up: scraped successfully at least once.
    pub fn wait_up(&mut self, targets: usize) -> anyhow::Result<()> {
        let (process, me) = (&mut self.process, &self.client);
        peer::wait_until("prometheus to scrape its targets", PEER_TIMEOUT, || {
            process.check_running()?;
            let reply: Value = me.get("/api/v1/query?query=up")?.ok_json()?;
            let up = reply["data"]["result"]
                .as_array()
                .map_or(0, |r| r.iter().filter(|s| s["value"][1] == "1").count());
            Ok(up >= targets)
        })
    }

    /// Checks that Prometheus still runs.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        self.process.check_running()
    }
}

/// Percent-encodes a query for a URL.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
