//! podflow's own programs (`podflow-exporter`, `podflow-collector`, ...) for tests that run them.
//!
//! Cargo only builds the binaries of the package under test for its integration tests, and podflow's
//! programs live in other packages of the workspace. [`podflow_bin`] finds a program next to the running
//! test (`target/<profile>/deps/<test>` -> `target/<profile>/<program>`) and has cargo build it first,
//! with the test's own profile and target directory, so a test never runs a stale or missing binary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{Context, bail};

/// Programs already built by this test process (cargo is asked once per program and process).
static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);

/// The path of the workspace binary `name` (a `[[bin]]` name such as `podflow-exporter`), after
/// `cargo build --bin name` with the running test's profile (`--release` when the test itself lives in
/// `target/release`) and target directory. Building is a no-op when the binary is up to date.
///
/// Cargo is `$CARGO` (set by `cargo test`) or `cargo` from `PATH`. Fails, with cargo's output, when the
/// build fails; when cargo cannot be run at all, an existing binary is used as it is.
pub fn podflow_bin(name: &str) -> anyhow::Result<PathBuf> {
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get_or_insert_with(HashMap::new).get(name) {
        return Ok(path.clone());
    }
    let exe = std::env::current_exe().context("locating the running test")?;
    let profile_dir = profile_dir(&exe)?;
    let path = profile_dir.join(name);
    build(name, &profile_dir, &path)?;
    built
        .get_or_insert_with(HashMap::new)
        .insert(name.to_string(), path.clone());
    Ok(path)
}

/// `target/<profile>` for a test executable at `target/<profile>/deps/<test>`.
fn profile_dir(exe: &Path) -> anyhow::Result<PathBuf> {
    let deps = exe
        .parent()
        .with_context(|| format!("{exe:?} has no parent directory"))?;
    if deps.file_name().is_none_or(|n| n != "deps") {
        bail!("{exe:?} is not in a cargo target/<profile>/deps directory");
    }
    deps.parent()
        .map(Path::to_path_buf)
        .with_context(|| format!("{deps:?} has no parent directory"))
}

/// Runs `cargo build --bin name` for the profile of `profile_dir`, into its target directory.
fn build(name: &str, profile_dir: &Path, path: &Path) -> anyhow::Result<()> {
    let profile = profile_dir
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{profile_dir:?} has no profile name"))?;
    let target_dir = profile_dir
        .parent()
        .with_context(|| format!("{profile_dir:?} has no target directory"))?;
    // Cargo calls the dev profile's directory `debug`.
    let profile = if profile == "debug" { "dev" } else { profile };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the tests crate has no parent directory")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace)
        .args(["build", "--quiet", "--bin", name, "--profile", profile])
        .arg("--target-dir")
        .arg(target_dir);
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) if path.is_file() => {
            eprintln!("podflow-e2e: cannot run {cargo:?} ({e}); using {path:?} as it is");
            return Ok(());
        }
        Err(e) => return Err(e).with_context(|| format!("running {cmd:?} to build {name}")),
    };
    if !out.status.success() {
        bail!(
            "{cmd:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    if !path.is_file() {
        bail!("{cmd:?} succeeded but {path:?} does not exist");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_dir_is_above_deps() {
        let exe = Path::new("/w/target/release/deps/exporter_live-0123abcd");
        assert_eq!(profile_dir(exe).unwrap(), Path::new("/w/target/release"));
        assert!(profile_dir(Path::new("/usr/bin/true")).is_err());
    }

    #[test]
    fn exporter_is_found_and_runs() {
        let exe = podflow_bin("podflow-exporter").unwrap();
        let out = Command::new(&exe).arg("--version").output().unwrap();
        assert!(out.status.success(), "{exe:?} --version failed");
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("podflow-exporter "));
        // A second call answers from memory with the same path.
        assert_eq!(podflow_bin("podflow-exporter").unwrap(), exe);
    }

    #[test]
    fn unknown_binary_is_an_error() {
        let err = podflow_bin("podflow-no-such-program").unwrap_err().to_string();
        assert!(err.contains("podflow-no-such-program"), "{err}");
    }
}
