//! `podflow-collector webhook` for tests: a CA and a serving certificate for 127.0.0.1 made by openssl,
//! and the webhook running with them on a free loopback port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};

use crate::binaries::podflow_binary;

/// Makes `ca.crt`/`ca.key` and a certificate for 127.0.0.1 and localhost signed by it
/// (`tls.crt`/`tls.key`) in `dir`.
pub fn certificates(dir: &Path) -> anyhow::Result<()> {
    let run = |args: &[&str]| -> anyhow::Result<()> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .context("running openssl")?;
        if !out.status.success() {
            bail!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    };
    #[rustfmt::skip]
    run(&["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=podflow-test-ca"])?;
    #[rustfmt::skip]
    run(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "tls.key", "-out", "tls.csr",
        "-subj", "/CN=podflow-webhook"])?;
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n")?;
    #[rustfmt::skip]
    run(&["x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "tls.crt", "-days", "2", "-extfile", "ext.cnf"])?;
    Ok(())
}

/// A running webhook; dropping it stops it.
pub struct Webhook {
    child: Option<Child>,
    /// The port it serves HTTPS on (127.0.0.1).
    pub port: u16,
    /// Where its certificates are (`ca.crt`, `tls.crt`, `tls.key`).
    pub dir: PathBuf,
}

impl Webhook {
    /// Makes certificates in `dir` and starts the webhook on a free port, injecting
    /// `podflow/podflow:test` exporting to `collector.podflow:4739`.
    pub fn start(dir: &Path) -> anyhow::Result<Webhook> {
        certificates(dir)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())?;
        let bin = podflow_binary("podflow-collector", "podflow-collector")?;
        let child = Command::new(bin)
            .args(["webhook", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--tls-cert")
            .arg(dir.join("tls.crt"))
            .arg("--tls-key")
            .arg(dir.join("tls.key"))
            .args(["--sidecar-image", "podflow/podflow:test"])
            .args(["--collector", "collector.podflow:4739"])
            .stderr(Stdio::null())
            .spawn()
            .context("starting podflow-collector webhook")?;
        Ok(Webhook {
            child: Some(child),
            port,
            dir: dir.to_path_buf(),
        })
    }

    /// The CA certificate (PEM) that signed the serving certificate.
    pub fn ca_pem(&self) -> anyhow::Result<Vec<u8>> {
        std::fs::read(self.dir.join("ca.crt")).context("reading ca.crt")
    }

    /// Stops the webhook (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.kill();
    }
}
