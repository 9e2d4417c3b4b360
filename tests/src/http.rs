//! A small blocking HTTP client for tests that talk to real servers on loopback (OpenSearch, ...).
//!
//! Every status is a [`Reply`], not an error: tests assert on 4xx and 5xx answers as much as on 2xx. Only
//! a failure to connect, send or read is an error.

use std::time::Duration;

use anyhow::Context;

/// How long one request may take, connecting included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A status and body as the server sent them.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status code.
    pub status: u16,
    /// The body, as text.
    pub body: String,
}

impl Reply {
    /// The body parsed as JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_str(&self.body)
            .with_context(|| format!("status {} body is not JSON: {:.500}", self.status, self.body))
    }

    /// The body as JSON if the status is 2xx; else an error showing the status and body.
    pub fn ok_json(&self) -> anyhow::Result<serde_json::Value> {
        anyhow::ensure!(
            (200..300).contains(&self.status),
            "status {}: {:.2000}",
            self.status,
            self.body
        );
        self.json()
    }
}

/// A client for one server: paths are joined to its base URL (`http://127.0.0.1:PORT`). Cheap to clone,
/// and clones may be used from several threads at once.
#[derive(Clone)]
pub struct Client {
    base: String,
    agent: ureq::Agent,
}

impl Client {
    /// A client for `base` (a URL without a trailing slash).
    pub fn new(base: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .into();
        Self {
            base: base.trim_end_matches('/').to_owned(),
            agent,
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> anyhow::Result<Reply> {
        let url = self.url(path);
        reply(&url, self.agent.get(&url).call())
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> anyhow::Result<Reply> {
        let url = self.url(path);
        reply(&url, self.agent.delete(&url).call())
    }

    /// `PUT path` with a JSON body.
    pub fn put_json(&self, path: &str, body: &serde_json::Value) -> anyhow::Result<Reply> {
        let url = self.url(path);
        let sent = self
            .agent
            .put(&url)
            .header("Content-Type", "application/json")
            .send(body.to_string());
        reply(&url, sent)
    }

    /// `POST path` with a JSON body.
    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> anyhow::Result<Reply> {
        let url = self.url(path);
        let sent = self
            .agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(body.to_string());
        reply(&url, sent)
    }

    /// `POST path` with a newline-delimited JSON body (`_bulk`): `lines` are joined, each ending in `\n`.
    pub fn post_ndjson(&self, path: &str, lines: &[serde_json::Value]) -> anyhow::Result<Reply> {
        let url = self.url(path);
        let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let sent = self
            .agent
            .post(&url)
            .header("Content-Type", "application/x-ndjson")
            .send(body);
        reply(&url, sent)
    }
}

/// Reads the status and body of a response, or names the URL that could not be reached.
fn reply(url: &str, sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> anyhow::Result<Reply> {
    let mut response = sent.with_context(|| format!("requesting {url}"))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .read_to_string()
        .with_context(|| format!("reading the answer of {url}"))?;
    Ok(Reply { status, body })
}
