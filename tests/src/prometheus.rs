//! Debian's `prometheus` on a loopback port, scraping podflow's `/metrics` endpoints every second into a
//! temporary directory, and its HTTP API (instant queries, label values, series) for the tests that read
//! what it stored.
//!
//! Nothing is waited for by time: [`Prometheus::start`] polls `/-/ready` (bounded), and a test polls
//! [`Prometheus::query`] until what it needs has been scraped.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde_json::Value;

use crate::peer::{self, PEER_TIMEOUT, PeerProcess};

/// One scrape job: its name, the `host:port` of its `/metrics`, and labels added to its series.
#[derive(Clone, Debug)]
pub struct Job {
    /// `job` label.
    pub name: String,
    /// Targets, `host:port`.
    pub targets: Vec<SocketAddr>,
    /// Static labels of the targets (as a Kubernetes service discovery would add `namespace`, ...).
    pub labels: BTreeMap<String, String>,
}

/// A running Prometheus server.
pub struct Prometheus {
    process: PeerProcess,
    /// Its HTTP address.
    pub addr: SocketAddr,
    /// Its data directory (under the test's work directory).
    pub data: PathBuf,
}

/// One series of an instant vector: its labels and value.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Every label, `__name__` included when the expression kept it.
    pub labels: BTreeMap<String, String>,
    /// The value (Prometheus sends it as a string: `NaN` and `+Inf` parse too).
    pub value: f64,
}

/// `/usr/bin/prometheus` or `prometheus` from `PATH`; `Ok(None)` when missing peers are allowed.
pub fn require() -> anyhow::Result<Option<PathBuf>> {
    peer::require("prometheus", "prometheus")
}

/// A TCP port on 127.0.0.1 that was free a moment ago (a server that loses the race fails to start,
/// which its caller's readiness poll reports).
pub fn free_tcp_port() -> anyhow::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding an ephemeral TCP port")?;
    Ok(l.local_addr()?.port())
}

/// The configuration file: a 1 s scrape and evaluation interval and one static job per [`Job`].
pub fn config(jobs: &[Job]) -> String {
    let mut c =
        String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n");
    c.push_str("scrape_configs:\n");
    for j in jobs {
        c.push_str(&format!(
            "  - job_name: {}\n    static_configs:\n      - targets: [",
            yaml_str(&j.name)
        ));
        let targets: Vec<String> = j.targets.iter().map(|t| yaml_str(&t.to_string())).collect();
        c.push_str(&targets.join(", "));
        c.push_str("]\n");
        if !j.labels.is_empty() {
            c.push_str("        labels:\n");
            for (k, v) in &j.labels {
                c.push_str(&format!("          {k}: {}\n", yaml_str(v)));
            }
        }
    }
    c
}

/// A YAML double-quoted string (JSON string syntax is valid YAML).
fn yaml_str(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

impl Prometheus {
    /// Writes the configuration for `jobs` into `work`, starts `bin` on a free loopback port with its
    /// data in `work/prometheus-data`, and waits (bounded) until it says it is ready.
    pub fn start(bin: &Path, work: &Path, jobs: &[Job]) -> anyhow::Result<Self> {
        let config_path = work.join("prometheus.yml");
        std::fs::write(&config_path, config(jobs)).with_context(|| format!("writing {config_path:?}"))?;
        let data = work.join("prometheus-data");
        let port = free_tcp_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn");
        let mut process = PeerProcess::spawn("prometheus", &mut cmd, work)?;
        peer::wait_until("prometheus to be ready", PEER_TIMEOUT, || {
            process.check_running()?;
            Ok(matches!(http(addr, "GET", "/-/ready", None), Ok((200, _))))
        })?;
        Ok(Prometheus { process, addr, data })
    }

    /// An API call, `form` as a POST body or (with `get`) as the query string: returns the `data`
    /// member of a `status: success` answer. (Queries are POSTed, so long expressions fit; label values
    /// are GET only in Prometheus 2.42.)
    fn api(&self, get: bool, path: &str, form: &[(&str, &str)]) -> anyhow::Result<Value> {
        let body = form
            .iter()
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let (status, text) = if get {
            let url = if body.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{body}")
            };
            http(self.addr, "GET", &url, None)?
        } else {
            http(self.addr, "POST", path, Some(&body))?
        };
        let v: Value = serde_json::from_str(&text)
            .with_context(|| format!("{path} answered {status} with non-JSON: {text}"))?;
        ensure!(
            status == 200 && v.get("status").and_then(Value::as_str) == Some("success"),
            "{path} {form:?} answered {status}: {text}"
        );
        v.get("data").cloned().context("no data in the answer")
    }

    /// An instant query evaluated now; every series of the vector (a scalar becomes one series
    /// without labels).
    pub fn query(&self, expr: &str) -> anyhow::Result<Vec<Sample>> {
        let data = self.api(false, "/api/v1/query", &[("query", expr)])?;
        let kind = data.get("resultType").and_then(Value::as_str).unwrap_or("");
        let result = data.get("result").context("no result")?;
        match kind {
            "vector" => result
                .as_array()
                .context("vector result is not an array")?
                .iter()
                .map(sample)
                .collect(),
            "scalar" => Ok(vec![Sample {
                labels: BTreeMap::new(),
                value: value_of(result)?,
            }]),
            other => bail!("{expr}: result type {other:?}, not an instant vector"),
        }
    }

    /// `/api/v1/label/<label>/values` restricted to the series `matcher` selects (Grafana's
    /// `label_values(matcher, label)`).
    pub fn label_values(&self, label: &str, matcher: Option<&str>) -> anyhow::Result<Vec<String>> {
        let path = format!("/api/v1/label/{}/values", percent_encode(label));
        let form: Vec<(&str, &str)> = matcher.map(|m| ("match[]", m)).into_iter().collect();
        let data = self.api(true, &path, &form)?;
        data.as_array()
            .context("label values are not an array")?
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .context("label value is not a string")
            })
            .collect()
    }

    /// Every metric name Prometheus holds (`/api/v1/label/__name__/values`).
    pub fn metric_names(&self) -> anyhow::Result<Vec<String>> {
        self.label_values("__name__", None)
    }

    /// Polls (bounded) until `targets` targets are up: scraped successfully at least once.
    pub fn wait_up(&mut self, targets: usize) -> anyhow::Result<()> {
        peer::wait_until("prometheus to scrape its targets", PEER_TIMEOUT, || {
            self.process.check_running()?;
            let up = self.query("up == 1")?.len();
            Ok(up >= targets)
        })
    }

    /// Errors (with its output) if Prometheus has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        self.process.check_running()
    }

    /// What Prometheus logged so far.
    pub fn log(&self) -> String {
        self.process.stderr_so_far().unwrap_or_default()
    }

    /// Stops Prometheus (SIGTERM, bounded wait).
    pub fn stop(self) -> anyhow::Result<()> {
        let out = self.process.stop()?;
        ensure!(
            out.status.success(),
            "prometheus failed:\n{}",
            peer::describe(&out)
        );
        Ok(())
    }
}

fn sample(v: &Value) -> anyhow::Result<Sample> {
    let labels = v
        .get("metric")
        .and_then(Value::as_object)
        .context("series without metric")?
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    let value = value_of(v.get("value").context("series without value")?)?;
    Ok(Sample { labels, value })
}

/// The number of a `[time, "value"]` pair.
fn value_of(pair: &Value) -> anyhow::Result<f64> {
    let s = pair
        .get(1)
        .and_then(Value::as_str)
        .with_context(|| format!("not a [time, value] pair: {pair}"))?;
    s.parse().with_context(|| format!("not a number: {s}"))
}

/// application/x-www-form-urlencoded escaping of everything but unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut o = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            o.push(char::from(b));
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// One HTTP/1.0 request (the server closes the connection after the answer, so the body is everything
/// after the header, never chunked); returns the status code and body.
pub fn http(addr: SocketAddr, method: &str, path: &str, form: Option<&str>) -> anyhow::Result<(u16, String)> {
    let timeout = Duration::from_secs(10);
    let mut s =
        TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut req = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    if let Some(body) = form {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        req.push_str("\r\n");
    }
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .with_context(|| format!("reading {path} from {addr}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("no HTTP header in {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("no status in {head:?}"))?;
    Ok((status, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_lists_each_job_with_its_labels() {
        let jobs = [Job {
            name: "podflow-collector".into(),
            targets: vec!["127.0.0.1:9478".parse().unwrap()],
            labels: BTreeMap::from([("cluster".to_string(), "test".to_string())]),
        }];
        let c = config(&jobs);
        assert!(c.contains("scrape_interval: 1s"));
        assert!(c.contains("- job_name: \"podflow-collector\"\n"));
        assert!(
            c.contains("- targets: [\"127.0.0.1:9478\"]\n        labels:\n          cluster: \"test\"\n")
        );
    }

    #[test]
    fn form_values_are_percent_encoded() {
        assert_eq!(
            percent_encode("sum by (a) (x{b=\"c\"})"),
            "sum%20by%20%28a%29%20%28x%7Bb%3D%22c%22%7D%29"
        );
        assert_eq!(percent_encode("a-b_c.d~"), "a-b_c.d~");
    }
}
