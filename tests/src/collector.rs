//! `podflow-collector` as the receiving end of a test: started on a free loopback port with an NDJSON file
//! and a `/metrics` endpoint, polled (bounded) until it has counted the records an exporter sent, then
//! stopped with SIGTERM, which makes it drain its queues and flush the file.
//!
//! Completion is read from the collector's own counters, never waited for: a test knows how many records
//! its exporter sent (the exporter says so, or the input says what it must send) and polls
//! `podflow_collector_records_total` until it gets there.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use serde_json::Value;

use crate::binaries;
use crate::peer::{self, PEER_TIMEOUT, PeerProcess};

/// A running `podflow-collector`.
pub struct Collector {
    process: PeerProcess,
    /// The UDP address it receives on.
    pub listen: SocketAddr,
    /// The address of its `/metrics` endpoint.
    pub metrics: SocketAddr,
    /// Its NDJSON output file.
    pub ndjson: PathBuf,
}

/// What a stopped collector left: its last words and its documents.
#[derive(Debug)]
pub struct Stopped {
    /// Records decoded, from its closing line.
    pub records: u64,
    /// Documents written, from its closing line.
    pub documents: u64,
    /// Every line of the NDJSON file, parsed.
    pub docs: Vec<Value>,
    /// Everything it printed on stderr.
    pub log: String,
}

/// Lines a minute the collector's log admits about exporters, over all of them together
/// (podflow_telemetry::log::LINES_PER_MINUTE).
pub const EXPORTER_LINES_PER_MINUTE: u64 = 100;

impl Stopped {
    /// The log's report lines about exporters, and the most its budget admits in `elapsed`: each
    /// minute window admits its lines, and one more window may have begun while the test ran.
    pub fn exporter_reports(&self, elapsed: Duration) -> (u64, u64) {
        let lines = self
            .log
            .lines()
            .filter(|l| l.starts_with("podflow-collector: warning: exporter"))
            .count() as u64;
        (lines, (elapsed.as_secs() / 60 + 2) * EXPORTER_LINES_PER_MINUTE)
    }
}

impl Collector {
    /// Starts the collector on an ephemeral UDP port of 127.0.0.1 with `sockets` sockets, writing
    /// `<name>.ndjson` in `work`, and waits (bounded) until it says it listens.
    pub fn start(name: &str, work: &Path, sockets: usize) -> anyhow::Result<Self> {
        Self::start_with(name, work, sockets, &[] as &[&str])
    }

    /// [`Collector::start`] with more arguments for the collector.
    pub fn start_with<S: AsRef<OsStr>>(
        name: &str,
        work: &Path,
        sockets: usize,
        args: &[S],
    ) -> anyhow::Result<Self> {
        Self::start_on(name, work, "127.0.0.1:0".parse()?, sockets, args)
    }

    /// [`Collector::start_with`] receiving on `listen` (to start a collector again on the port its
    /// exporters send to).
    pub fn start_on<S: AsRef<OsStr>>(
        name: &str,
        work: &Path,
        listen: SocketAddr,
        sockets: usize,
        args: &[S],
    ) -> anyhow::Result<Self> {
        let bin = binaries::podflow_collector()?;
        let ndjson = work.join(format!("{name}.ndjson"));
        let mut cmd = Command::new(bin);
        cmd.arg("--listen")
            .arg(listen.to_string())
            .args(["--metrics-listen", "127.0.0.1:0"])
            .args(["--sockets", &sockets.to_string()])
            .arg("--ndjson")
            .arg(&ndjson)
            .args(args);
        let mut process = PeerProcess::spawn(&format!("{name}-collector"), &mut cmd, work)?;
        let mut ready = None;
        peer::wait_until("podflow-collector to listen", PEER_TIMEOUT, || {
            process.check_running()?;
            ready = ready_addresses(&process.stderr_so_far()?);
            Ok(ready.is_some())
        })?;
        let (listen, metrics) = ready.context("podflow-collector printed no addresses")?;
        Ok(Collector {
            process,
            listen,
            metrics,
            ndjson,
        })
    }

    /// The collector's process id.
    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Its resident set, KiB (`VmRSS` of /proc/PID/status).
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .context("no VmRSS")?
            .parse()
            .context("VmRSS")
    }

    /// The UDP port exporters send to.
    pub fn port(&self) -> u16 {
        self.listen.port()
    }

    /// Reads `/metrics` once.
    pub fn scrape(&self) -> anyhow::Result<Metrics> {
        scrape(self.metrics)
    }

    /// Polls `/metrics` (bounded) until `podflow_collector_records_total{labels}` reaches `records`, and
    /// returns that scrape. Fails, showing the last scrape, if the collector exits or the count stays
    /// short.
    pub fn wait_records(&mut self, labels: &str, records: u64) -> anyhow::Result<Metrics> {
        let mut last = None;
        let waited = {
            let what = format!("podflow-collector to count {records} records {{{labels}}}");
            let (process, addr) = (&mut self.process, self.metrics);
            peer::wait_until(&what, PEER_TIMEOUT, || {
                process.check_running()?;
                let m = scrape(addr)?;
                let n = m.get("podflow_collector_records_total", labels).unwrap_or(0);
                last = Some(m);
                Ok(n >= records)
            })
        };
        match (waited, last) {
            (Ok(()), Some(m)) => Ok(m),
            (Err(e), Some(m)) => bail!("{e:#}; last /metrics:\n{}", m.text),
            (Err(e), None) => Err(e),
            (Ok(()), None) => bail!("no /metrics scrape"),
        }
    }

    /// Stops the collector with SIGTERM (it drains, flushes and exits 0) and reads its NDJSON file, every
    /// line of which must be a JSON object.
    pub fn stop(self) -> anyhow::Result<Stopped> {
        let out = self.process.stop()?;
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        ensure!(
            out.status.success(),
            "podflow-collector failed:\n{}",
            peer::describe(&out)
        );
        let (records, documents) = closing_totals(&log)
            .with_context(|| format!("podflow-collector printed no closing totals:\n{log}"))?;
        let text = std::fs::read_to_string(&self.ndjson)
            .with_context(|| format!("reading {}", self.ndjson.display()))?;
        let mut docs = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let doc: Value = serde_json::from_str(line)
                .with_context(|| format!("{} line {}: not JSON: {line}", self.ndjson.display(), i + 1))?;
            ensure!(
                doc.is_object(),
                "{} line {}: not an object",
                self.ndjson.display(),
                i + 1
            );
            docs.push(doc);
        }
        Ok(Stopped {
            records,
            documents,
            docs,
            log,
        })
    }
}

/// The UDP and metrics addresses from the collector's `listening on udp ADDR (N sockets)` and
/// `metrics on http://ADDR/metrics` lines, once both are there.
fn ready_addresses(stderr: &str) -> Option<(SocketAddr, SocketAddr)> {
    let after = |marker: &str, end: &str| -> Option<SocketAddr> {
        let rest = &stderr[stderr.find(marker)? + marker.len()..];
        rest[..rest.find(end)?].parse().ok()
    };
    Some((
        after("listening on udp ", " (")?,
        after("metrics on http://", "/metrics")?,
    ))
}

/// R and D of the closing line `podflow-collector: R records decoded, D documents written`.
fn closing_totals(log: &str) -> Option<(u64, u64)> {
    let line = log.lines().rev().find(|l| l.ends_with(" documents written"))?;
    let rest = line.strip_prefix("podflow-collector: ")?;
    let (records, rest) = rest.split_once(" records decoded, ")?;
    let documents = rest.strip_suffix(" documents written")?;
    Some((records.parse().ok()?, documents.parse().ok()?))
}

/// The collector's `/metrics`, parsed.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// (name, labels without braces, value) of every sample.
    pub samples: Vec<(String, String, u64)>,
    /// The exposition as served.
    pub text: String,
}

impl Metrics {
    /// Parses the Prometheus text format the collector serves (fractions cut to their whole part).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut samples = Vec::new();
        for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let (series, value) = line
                .rsplit_once(' ')
                .with_context(|| format!("metrics line without value: {line}"))?;
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.strip_suffix('}').unwrap_or(l)),
                None => (series, ""),
            };
            // Histogram sums are fractions: kept as their whole part.
            let value = match value.parse() {
                Ok(v) => v,
                Err(_) => value
                    .parse::<f64>()
                    .map(|f| f as u64)
                    .with_context(|| format!("metrics value not a number: {line}"))?,
            };
            samples.push((name.to_string(), labels.to_string(), value));
        }
        Ok(Metrics {
            samples,
            text: text.to_string(),
        })
    }

    /// The sample of `name` whose labels are exactly `labels` (as rendered, without braces).
    pub fn get(&self, name: &str, labels: &str) -> Option<u64> {
        self.samples
            .iter()
            .find(|(n, l, _)| n == name && l == labels)
            .map(|s| s.2)
    }

    /// The sum of every sample of `name`.
    pub fn sum(&self, name: &str) -> u64 {
        self.samples.iter().filter(|s| s.0 == name).map(|s| s.2).sum()
    }

    /// The samples of `name` that are not zero, as `name{labels} value` lines.
    pub fn nonzero(&self, name: &str) -> Vec<String> {
        self.samples
            .iter()
            .filter(|s| s.0 == name && s.2 != 0)
            .map(|(n, l, v)| format!("{n}{{{l}}} {v}"))
            .collect()
    }
}

/// `GET /metrics` from `addr`.
pub fn scrape(addr: SocketAddr) -> anyhow::Result<Metrics> {
    let timeout = Duration::from_secs(5);
    let mut s =
        TcpStream::connect_timeout(&addr, timeout).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: podflow\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)
        .with_context(|| format!("reading /metrics from {addr}"))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("no HTTP header in {text:?}"))?;
    ensure!(head.starts_with("HTTP/1.1 200"), "/metrics answered {head}");
    Metrics::parse(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_and_closing_lines_are_parsed() {
        let log = "podflow-collector: warning: capped\npodflow-collector: listening on udp 127.0.0.1:4739 \
                   (2 sockets)\npodflow-collector: metrics on http://127.0.0.1:9478/metrics\n";
        let (udp, http) = ready_addresses(log).unwrap();
        assert_eq!((udp.port(), http.port()), (4739, 9478));
        assert_eq!(
            ready_addresses("podflow-collector: listening on udp 127.0.0.1:1 (1 sockets)\n"),
            None
        );
        let end = format!("{log}podflow-collector: 7987 records decoded, 7986 documents written\n");
        assert_eq!(closing_totals(&end), Some((7987, 7986)));
    }

    #[test]
    fn metrics_are_parsed_by_name_and_labels() {
        let m = Metrics::parse(
            "# HELP a_total A.\n# TYPE a_total counter\na_total{exporter=\"127.0.0.1\",protocol=\"ipfix\"} 5\n\
             a_total{exporter=\"127.0.0.2\",protocol=\"ipfix\"} 0\nb 7\n",
        )
        .unwrap();
        assert_eq!(
            m.get("a_total", "exporter=\"127.0.0.1\",protocol=\"ipfix\""),
            Some(5)
        );
        assert_eq!((m.sum("a_total"), m.get("b", "")), (5, Some(7)));
        assert_eq!(m.nonzero("a_total").len(), 1);
        // Fractions (histogram sums) keep their whole part; a value that is no number is refused.
        assert_eq!(Metrics::parse("a 1.5\n").unwrap().get("a", ""), Some(1));
        assert!(Metrics::parse("a x\n").is_err());
    }
}
