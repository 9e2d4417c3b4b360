//! A real OpenSearch 2.19 node on loopback for tests, run by `scripts/opensearch.sh` from Maven Central's
//! jars (see `tests/opensearch/`): single node, no security plugin, HTTP on a free port of 127.0.0.1.
//!
//! Its indices live in the directory the test gives, so a node killed with SIGKILL and
//! [restarted](OpenSearch::restart) keeps what it had acknowledged. The first start on a machine builds
//! the node into `~/.cache/podflow/opensearch-<version>/` (Maven and network needed once), which tests
//! starting at the same time share.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! let dir = tempfile::tempdir()?;
//! let node = podflow_e2e::opensearch::OpenSearch::start(dir.path(), &[])?;
//! let root = node.client().get("/")?.ok_json()?;
//! assert_eq!(root["version"]["distribution"], "opensearch");
//! # Ok(()) }
//! ```

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use rustix::process::{Pid, Signal, kill_process};

use crate::http::Client;
use crate::peer::wait_until;

/// How long a SIGKILLed node may take to be gone.
const KILL_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts a node on a port taken by someone else between probe and bind: tried again this many times.
const START_ATTEMPTS: usize = 3;

/// A running OpenSearch node; dropping it stops it (SIGTERM, then SIGKILL). Drop it before the
/// directory it keeps its data in.
pub struct OpenSearch {
    dir: PathBuf,
    port: u16,
    settings: Vec<String>,
    running: bool,
}

impl OpenSearch {
    /// Starts a node keeping its data, `pid` and `log` in `dir`, with node `settings` on top of the
    /// launcher's (e.g. `("thread_pool.write.size", "1")`), on a free loopback port; returns once its
    /// cluster health is at least yellow.
    pub fn start(dir: &Path, settings: &[(&str, &str)]) -> anyhow::Result<Self> {
        let settings: Vec<String> = settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            let mut node = Self {
                dir: dir.to_path_buf(),
                port: free_tcp_port()?,
                settings: settings.clone(),
                running: false,
            };
            match node.launch() {
                Ok(()) => return Ok(node),
                // Another program may have taken the port in the meantime: try another one.
                Err(e) if node.log().contains("BindHttpException") => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no start attempt")))
    }

    /// The node's base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The node's HTTP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the node's data, `pid` and `log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// An HTTP client for the node.
    pub fn client(&self) -> Client {
        Client::new(&self.url())
    }

    /// The node's output so far (empty if there is none yet).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// The node's Java process id, from `DIR/pid`.
    pub fn pid(&self) -> anyhow::Result<i32> {
        let path = self.dir.join("pid");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path:?}"))?;
        text.trim()
            .parse()
            .with_context(|| format!("{path:?} holds {text:?}, not a pid"))
    }

    /// Kills the node with SIGKILL (no flush, no clean shutdown) and waits until its process is gone.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if !self.running {
            return Ok(());
        }
        let pid = self.pid()?;
        let target = Pid::from_raw(pid).with_context(|| format!("pid {pid} in {:?}", self.dir))?;
        kill_process(target, Signal::KILL).with_context(|| format!("SIGKILL to node {pid}"))?;
        wait_until(&format!("node {pid} to go after SIGKILL"), KILL_TIMEOUT, || {
            Ok(!process_alive(pid))
        })?;
        self.running = false;
        std::fs::remove_file(self.dir.join("pid")).ok();
        Ok(())
    }

    /// Starts the node again on the same directory and port (after [`kill`](Self::kill) or
    /// [`stop`](Self::stop); a running node is stopped first).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop()?;
        self.launch()
    }

    /// Stops the node (SIGTERM, then SIGKILL if it has not closed within 30 s). Stopping a stopped node
    /// does nothing.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if !self.running {
            return Ok(());
        }
        run_script(&["stop", "--data", &self.dir.to_string_lossy()])?;
        self.running = false;
        Ok(())
    }

    /// Runs `scripts/opensearch.sh start` for this node.
    fn launch(&mut self) -> anyhow::Result<()> {
        let mut args = vec![
            "start".to_owned(),
            "--port".to_owned(),
            self.port.to_string(),
            "--data".to_owned(),
            self.dir.to_string_lossy().into_owned(),
        ];
        for s in &self.settings {
            args.extend(["--setting".to_owned(), s.clone()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_script(&args)?;
        self.running = true;
        Ok(())
    }
}

impl Drop for OpenSearch {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("stopping OpenSearch on port {}: {e:#}", self.port);
        }
    }
}

/// The launcher script, `scripts/opensearch.sh` of this repository.
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/opensearch.sh")
}

/// Runs the launcher with `args`; its errors (with the node's log tail) become this error.
fn run_script(args: &[&str]) -> anyhow::Result<()> {
    let script = script();
    let output = Command::new(&script)
        .args(args)
        // The node stops by itself should this test program die without stopping it.
        .env("PODFLOW_OPENSEARCH_WATCH_PID", std::process::id().to_string())
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "{} {} failed ({}):\n{}",
            script.display(),
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_tcp_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding an ephemeral TCP port")?;
    Ok(listener.local_addr()?.port())
}

/// True while process `pid` exists and has not exited (a zombie nobody has reaped counts as gone).
fn process_alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "PID (COMM) STATE ...": COMM may hold spaces and parentheses, so the state follows the last ')'.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state != "Z" && state != "X")
}
