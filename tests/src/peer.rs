//! Peer programs: finding them, waiting (bounded) until they listen, and stopping them.
//!
//! A missing peer fails the test: CI installs every peer, and a test that silently passes without its
//! peer proves nothing. A developer without the peers can set [`ALLOW_MISSING_ENV`]`=1` to skip such
//! tests with a loud message instead.

use std::fs::File;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rustix::process::{Pid, Signal, kill_process};

/// Set to `1` to skip, rather than fail, tests whose peer program is not installed.
pub const ALLOW_MISSING_ENV: &str = "PODFLOW_ALLOW_MISSING_PEERS";

/// How long a peer may take to start listening, flush or exit.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(30);

/// Interval between two checks of a polled condition.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Whether a missing peer skips the test instead of failing it.
fn missing_allowed() -> bool {
    std::env::var(ALLOW_MISSING_ENV).is_ok_and(|v| v == "1")
}

/// Reports a missing peer: `Ok(None)` (skip, with a loud message) when allowed, else an error.
fn missing(what: &str, install: &str) -> anyhow::Result<Option<PathBuf>> {
    if missing_allowed() {
        eprintln!(
            "\n!!!!! SKIPPED: {what} is not installed ({ALLOW_MISSING_ENV}=1); install {install} to run \
             this peer test !!!!!\n"
        );
        Ok(None)
    } else {
        bail!("{what} is not installed: install {install} (or set {ALLOW_MISSING_ENV}=1 to skip)")
    }
}

/// The path of `program` (a name looked up in `PATH`, or a path), `Ok(None)` when it is missing and
/// missing peers are allowed, or an error naming the Debian package `install` that provides it.
pub fn require(program: &str, install: &str) -> anyhow::Result<Option<PathBuf>> {
    let candidate = Path::new(program);
    let found = if candidate.components().count() > 1 {
        candidate.is_file().then(|| candidate.to_path_buf())
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(program))
                .find(|p| p.is_file())
        })
    };
    match found {
        Some(p) => Ok(Some(p)),
        None => missing(program, install),
    }
}

/// `python` if it can import `module`; else like [`require`] for a missing program.
pub fn require_python_module(python: &str, module: &str, install: &str) -> anyhow::Result<Option<PathBuf>> {
    let Some(python) = require(python, "python3")? else {
        return Ok(None);
    };
    let status = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if status.status.success() {
        Ok(Some(python))
    } else {
        missing(&format!("python module {module}"), install)
    }
}

/// Polls `cond` until it returns true, at most `timeout`; the error names `what` was awaited.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut cond: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if cond()? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// A UDP port on 127.0.0.1 that was free a moment ago. A peer that loses the race for it fails to bind
/// and exits, which [`PeerProcess::wait_udp_bound`] reports.
pub fn free_udp_port() -> anyhow::Result<u16> {
    let s = UdpSocket::bind("127.0.0.1:0").context("binding an ephemeral UDP port")?;
    Ok(s.local_addr()?.port())
}

/// True when some socket is bound to UDP `port` (IPv4 or IPv6, any address), per `/proc/net/udp{,6}`.
pub fn udp_port_bound(port: u16) -> anyhow::Result<bool> {
    udp_port_bound_in(Path::new("/proc/net"), port)
}

/// Like [`udp_port_bound`], reading the `udp` and `udp6` tables of `proc_net` (a `/proc/.../net`
/// directory: another process's or thread's, to look into its network namespace).
pub fn udp_port_bound_in(proc_net: &Path, port: u16) -> anyhow::Result<bool> {
    for table in ["udp", "udp6"].map(|t| proc_net.join(t)) {
        let table = table.as_path();
        let text = match std::fs::read_to_string(table) {
            Ok(t) => t,
            // A kernel without IPv6 has no udp6 table.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {table:?}")),
        };
        // Lines look like "  12: 0100007F:1F90 00000000:0000 07 ...": the local port is hex after ':'.
        let bound = text.lines().skip(1).any(|line| {
            line.split_whitespace()
                .nth(1)
                .and_then(|local| local.rsplit(':').next())
                .and_then(|hex| u16::from_str_radix(hex, 16).ok())
                == Some(port)
        });
        if bound {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A child process that is stopped (SIGKILL) when dropped, so a failing test leaves nothing running.
pub struct PeerProcess {
    name: String,
    child: Child,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

impl PeerProcess {
    /// Starts `cmd` with its stdout and stderr going to `<name>.stdout` / `<name>.stderr` in `log_dir`
    /// (files rather than pipes, so a chatty peer never blocks on a full pipe).
    pub fn spawn(name: &str, cmd: &mut Command, log_dir: &Path) -> anyhow::Result<Self> {
        let stdout_path = log_dir.join(format!("{name}.stdout"));
        let stderr_path = log_dir.join(format!("{name}.stderr"));
        let stdout = File::create(&stdout_path).with_context(|| format!("creating {stdout_path:?}"))?;
        let stderr = File::create(&stderr_path).with_context(|| format!("creating {stderr_path:?}"))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        Ok(PeerProcess {
            name: name.to_string(),
            child,
            stdout_path,
            stderr_path,
        })
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// What the peer printed on stdout so far (for programs that report progress there).
    pub fn stdout_so_far(&self) -> anyhow::Result<String> {
        let bytes =
            std::fs::read(&self.stdout_path).with_context(|| format!("reading {:?}", self.stdout_path))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// What the peer printed on stderr so far (for readiness messages).
    pub fn stderr_so_far(&self) -> anyhow::Result<String> {
        let bytes =
            std::fs::read(&self.stderr_path).with_context(|| format!("reading {:?}", self.stderr_path))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Waits (bounded) until the peer prints `needle` on stderr, failing at once if it exits; returns
    /// what it printed so far.
    pub fn wait_stderr(&mut self, needle: &str) -> anyhow::Result<String> {
        let mut text = String::new();
        wait_until(&format!("{needle:?} on stderr"), PEER_TIMEOUT, || {
            self.check_running()?;
            text = self.stderr_so_far()?;
            Ok(text.contains(needle))
        })?;
        Ok(text)
    }

    /// Errors (with the peer's output) if the process has already exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let out = self.collect(status)?;
            bail!("{} exited early with {status}:\n{}", self.name, describe(&out));
        }
        Ok(())
    }

    /// Waits (bounded) until UDP `port` is bound, failing at once if the process exits first.
    pub fn wait_udp_bound(&mut self, port: u16) -> anyhow::Result<()> {
        let what = format!("{} to bind UDP port {port}", self.name);
        wait_until(&what, PEER_TIMEOUT, || {
            self.check_running()?;
            udp_port_bound(port)
        })
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit; returns its status and output.
    pub fn stop(mut self) -> anyhow::Result<Output> {
        if self.child.try_wait()?.is_none() {
            let pid = Pid::from_child(&self.child);
            kill_process(pid, Signal::TERM).with_context(|| format!("signalling {}", self.name))?;
        }
        self.wait_exit()
    }

    /// Waits (bounded) for the process to exit by itself; returns its status and output.
    pub fn wait_exit(mut self) -> anyhow::Result<Output> {
        let mut status = None;
        let what = format!("{} to exit", self.name);
        wait_until(&what, PEER_TIMEOUT, || {
            status = self.child.try_wait()?;
            Ok(status.is_some())
        })?;
        match status {
            Some(s) => self.collect(s),
            None => bail!("{} did not exit", self.name),
        }
    }

    /// What the exited process printed.
    fn collect(&self, status: ExitStatus) -> anyhow::Result<Output> {
        let read = |p: &PathBuf| std::fs::read(p).with_context(|| format!("reading {p:?}"));
        Ok(Output {
            status,
            stdout: read(&self.stdout_path)?,
            stderr: read(&self.stderr_path)?,
        })
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A process's status and output, for error messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd` to completion and returns its stdout, or an error with everything it printed.
pub fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed:\n{}", describe(&out));
    }
    String::from_utf8(out.stdout).with_context(|| format!("{cmd:?} printed non-UTF-8"))
}
