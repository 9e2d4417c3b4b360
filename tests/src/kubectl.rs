//! helm and kubectl against a test API server ([`crate::kubeapi::KubeApi`]), from
//! `scripts/k8s-tools.sh` (official builds, cached under `~/.cache/podflow/k8s-tools-<version>/`), and
//! the upstream CRDs of the chart's optional objects from `scripts/k8s-crds.sh` (cert-manager and
//! prometheus-operator, from the Go module proxy).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{Context, bail};
use serde_json::Value;

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs a script of `scripts/` that prints one directory, and returns it.
fn script_dir(script: &str) -> anyhow::Result<PathBuf> {
    let path = repo_root().join("scripts").join(script);
    let out = Command::new(&path)
        .output()
        .with_context(|| format!("running {}", path.display()))?;
    if !out.status.success() {
        bail!("{script} failed:\n{}", crate::peer::describe(&out));
    }
    let dir = String::from_utf8(out.stdout).context("a non-UTF-8 directory")?;
    Ok(PathBuf::from(dir.trim()))
}

/// The directory of the upstream CRD files (`scripts/k8s-crds.sh`).
pub fn crds_dir() -> anyhow::Result<PathBuf> {
    script_dir("k8s-crds.sh")
}

/// helm and kubectl, both pointed at one kubeconfig.
pub struct Tools {
    bin: PathBuf,
    kubeconfig: PathBuf,
    home: tempfile::TempDir,
}

impl Tools {
    /// Finds (installing on first use) helm and kubectl, for the cluster of `kubeconfig`.
    pub fn new(kubeconfig: &Path) -> anyhow::Result<Tools> {
        Ok(Tools {
            bin: script_dir("k8s-tools.sh")?,
            kubeconfig: kubeconfig.to_owned(),
            // helm and kubectl keep caches and configuration under HOME: a test's own, so runs do not mix.
            home: tempfile::tempdir()?,
        })
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin.join(program));
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env("HELM_CACHE_HOME", self.home.path().join("cache"))
            .env("HELM_CONFIG_HOME", self.home.path().join("config"))
            .env("HELM_DATA_HOME", self.home.path().join("data"))
            .env("KUBECACHEDIR", self.home.path().join("kube-cache"));
        cmd
    }

    /// Runs `program args` with `stdin`, returning its output whatever its status.
    pub fn output(&self, program: &str, args: &[&str], stdin: Option<&[u8]>) -> anyhow::Result<Output> {
        let mut cmd = self.command(program);
        cmd.args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {program} {args:?}"))?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input)
                .with_context(|| format!("writing to {program} {args:?}"))?;
        }
        child
            .wait_with_output()
            .with_context(|| format!("running {program} {args:?}"))
    }

    /// Runs `program args` with `stdin` and returns its stdout; fails with all it printed if it fails.
    pub fn run(&self, program: &str, args: &[&str], stdin: Option<&[u8]>) -> anyhow::Result<String> {
        let out = self.output(program, args, stdin)?;
        if !out.status.success() {
            bail!("{program} {args:?} failed:\n{}", crate::peer::describe(&out));
        }
        String::from_utf8(out.stdout).with_context(|| format!("{program} {args:?} printed non-UTF-8"))
    }

    /// `kubectl args`, its stdout.
    pub fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        self.run("kubectl", args, None)
    }

    /// `kubectl apply -f -` of a JSON object (or List).
    pub fn apply(&self, object: &Value) -> anyhow::Result<String> {
        self.run(
            "kubectl",
            &["apply", "-f", "-"],
            Some(object.to_string().as_bytes()),
        )
    }

    /// `kubectl args -o json`, parsed.
    pub fn kubectl_json(&self, args: &[&str]) -> anyhow::Result<Value> {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let text = self.kubectl(&all)?;
        serde_json::from_str(&text).with_context(|| format!("kubectl {args:?} printed non-JSON {text}"))
    }

    /// `helm args`, its stdout.
    pub fn helm(&self, args: &[&str]) -> anyhow::Result<String> {
        self.run("helm", args, None)
    }
}
