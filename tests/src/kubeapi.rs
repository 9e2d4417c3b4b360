//! A real Kubernetes API server (kube-apiserver on etcd) on 127.0.0.1, started by
//! `scripts/kube-apiserver.sh`, with a small HTTPS client for its REST API and etcd's JSON gateway.
//!
//! The script builds both programs from the Go module proxy on first use (minutes when cold, cached under
//! `~/.cache/podflow/kube-<version>/`). The server authorises with RBAC; the kubeconfig's token belongs to
//! `system:masters`. Nothing runs beside it (no controller manager, scheduler or kubelet): objects are
//! stored and watched, pods stay Pending.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use serde_json::Value;
use ureq::Agent;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

/// The launcher this module drives.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/kube-apiserver.sh");

/// The longest a request to the API server or etcd may take, body included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A running API server and its etcd. Dropping it stops both.
pub struct KubeApi {
    dir: PathBuf,
    server: String,
    token: String,
    etcd: String,
    agent: Agent,
    stopped: bool,
}

impl KubeApi {
    /// Starts etcd and kube-apiserver with their certificates, logs and data in `dir` (building them
    /// first if needed) and returns once `/readyz` answers ok.
    pub fn start(dir: &Path) -> anyhow::Result<KubeApi> {
        run_script("start", dir)?;
        let kubeconfig = std::fs::read_to_string(dir.join("kubeconfig"))
            .with_context(|| format!("reading {}/kubeconfig", dir.display()))?;
        let server = kubeconfig_value(&kubeconfig, "server")?.to_owned();
        let token = kubeconfig_value(&kubeconfig, "token")?.to_owned();
        let ca_pem = base64::engine::general_purpose::STANDARD
            .decode(kubeconfig_value(&kubeconfig, "certificate-authority-data")?)
            .context("the kubeconfig's certificate-authority-data is not base64")?;
        let ca = Certificate::from_pem(&ca_pem).context("the kubeconfig's CA is not a PEM certificate")?;
        let etcd = std::fs::read_to_string(dir.join("etcd-endpoint"))
            .with_context(|| format!("reading {}/etcd-endpoint", dir.display()))?
            .trim()
            .to_owned();
        let tls = TlsConfig::builder()
            .root_certs(RootCerts::Specific(Arc::new(vec![ca])))
            .build();
        let agent = Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .into();
        Ok(KubeApi {
            dir: dir.to_owned(),
            server,
            token,
            etcd,
            agent,
            stopped: false,
        })
    }

    /// The kubeconfig (server, CA data and admin token) for clients such as kubectl.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// The API server's base URL, `https://127.0.0.1:PORT`.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The admin bearer token (group `system:masters`).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The PEM file of the CA that signed the API server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// etcd's client URL, `http://127.0.0.1:PORT` (its JSON gateway answers under `/v3/`).
    pub fn etcd_endpoint(&self) -> &str {
        &self.etcd
    }

    /// An HTTPS client that trusts the API server's CA and returns every status as a response.
    pub fn agent(&self) -> &Agent {
        &self.agent
    }

    /// `GET path` (e.g. `/api/v1/namespaces`) as the admin: the status and the JSON body.
    pub fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let response = self
            .agent
            .get(format!("{}{path}", self.server))
            .header("Authorization", format!("Bearer {}", self.token))
            .call()
            .with_context(|| format!("GET {path}"))?;
        read_json_response(response, path)
    }

    /// `POST path` with a JSON object as the admin: the status and the JSON body.
    pub fn post(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let response = self
            .agent
            .post(format!("{}{path}", self.server))
            .header("Authorization", format!("Bearer {}", self.token))
            .send_json(body)
            .with_context(|| format!("POST {path}"))?;
        read_json_response(response, path)
    }

    /// `PATCH path` with a JSON merge patch as the admin: the status and the JSON body.
    pub fn merge_patch(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        let response = self
            .agent
            .patch(format!("{}{path}", self.server))
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Content-Type", "application/merge-patch+json")
            .send(body.to_string())
            .with_context(|| format!("PATCH {path}"))?;
        read_json_response(response, path)
    }

    /// `DELETE path` as the admin, at once (`gracePeriodSeconds=0`): the status and the JSON body.
    pub fn delete_now(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let response = self
            .agent
            .delete(format!("{}{path}?gracePeriodSeconds=0", self.server))
            .header("Authorization", format!("Bearer {}", self.token))
            .call()
            .with_context(|| format!("DELETE {path}"))?;
        read_json_response(response, path)
    }

    /// Stops the API server and starts it again on the same port: every open watch ends.
    pub fn restart_apiserver(&self) -> anyhow::Result<()> {
        run_script("restart-apiserver", &self.dir)
    }

    /// Kills the API server (SIGKILL), as a crash would: open watches break at once, with no graceful
    /// end (a graceful stop waits for every watch connection to close, which a stopped client never
    /// does). [`KubeApi::restart_apiserver`] starts it again on the same port.
    pub fn kill_apiserver(&self) -> anyhow::Result<()> {
        let pidfile = self.dir.join("kube-apiserver.pid");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .with_context(|| format!("reading {}", pidfile.display()))?
            .trim()
            .parse()
            .with_context(|| format!("{} holds no pid", pidfile.display()))?;
        // Only the process the launcher started for this directory.
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let ours = String::from_utf8_lossy(&cmdline).contains(&*self.dir.to_string_lossy());
        if !ours {
            bail!("process {pid} of {} is not this API server", pidfile.display());
        }
        let target = rustix::process::Pid::from_raw(pid).context("pid 0")?;
        rustix::process::kill_process(target, rustix::process::Signal::KILL)
            .with_context(|| format!("SIGKILL to kube-apiserver {pid}"))?;
        // Gone, or a zombie its reaper has not collected yet.
        crate::peer::wait_until("kube-apiserver to die", Duration::from_secs(10), || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
            Ok(state.is_none_or(|s| s.starts_with('Z')))
        })
    }

    /// Compacts etcd, physically, at its current revision, so that the API server answers a watch from
    /// an older resourceVersion with 410 Gone once its watch cache no longer holds it (after
    /// [`KubeApi::restart_apiserver`]). Returns the revision.
    pub fn compact_etcd(&self) -> anyhow::Result<u64> {
        // A range over one key of no interest: the response header carries the store's revision.
        let range: Value = self
            .agent
            .post(format!("{}/v3/kv/range", self.etcd))
            .send_json(serde_json::json!({ "key": "AA==" }))
            .context("reading etcd's revision")?
            .body_mut()
            .read_json()
            .context("etcd's range response is not JSON")?;
        // The gateway writes 64-bit integers as strings.
        let revision = range["header"]["revision"]
            .as_str()
            .and_then(|r| r.parse::<u64>().ok())
            .with_context(|| format!("no revision in etcd's range response {range}"))?;
        let mut response = self
            .agent
            .post(format!("{}/v3/kv/compaction", self.etcd))
            .send_json(serde_json::json!({ "revision": revision.to_string(), "physical": true }))
            .context("compacting etcd")?;
        if response.status() != 200 {
            let body = response.body_mut().read_to_string().unwrap_or_default();
            bail!(
                "etcd compaction at revision {revision}: {} {body}",
                response.status()
            );
        }
        Ok(revision)
    }

    /// Stops the API server and etcd (done by drop as well).
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.stopped = true;
        run_script("stop", &self.dir)
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        if !self.stopped
            && let Err(e) = self.stop()
        {
            eprintln!("stopping the API server in {}: {e:#}", self.dir.display());
        }
    }
}

/// Runs `kube-apiserver.sh COMMAND --dir DIR`, failing with its output if it fails.
fn run_script(command: &str, dir: &Path) -> anyhow::Result<()> {
    let output = Command::new(SCRIPT)
        .arg(command)
        .arg("--dir")
        .arg(dir)
        .output()
        .with_context(|| format!("running {SCRIPT}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        // A failed build prints every module it downloaded: the end says what went wrong.
        let tail: Vec<&str> = stderr.lines().rev().take(60).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "kube-apiserver.sh {command} --dir {} failed ({}):\n{}",
            dir.display(),
            output.status,
            tail.join("\n")
        );
    }
    Ok(())
}

/// The value of the first `key: value` line of a kubeconfig (as the script writes it: one per line).
fn kubeconfig_value<'a>(kubeconfig: &'a str, key: &str) -> anyhow::Result<&'a str> {
    kubeconfig
        .lines()
        .find_map(|line| line.trim_start().strip_prefix(key)?.strip_prefix(':'))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .with_context(|| format!("no {key} in the kubeconfig"))
}

fn read_json_response(
    mut response: ureq::http::Response<ureq::Body>,
    path: &str,
) -> anyhow::Result<(u16, Value)> {
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .read_to_string()
        .with_context(|| format!("reading the answer to {path}"))?;
    let json = serde_json::from_str(&body)
        .with_context(|| format!("{path} answered {status} with non-JSON {body:?}"))?;
    Ok((status, json))
}
