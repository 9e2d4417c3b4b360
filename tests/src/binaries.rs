//! podflow's own programs, built from the workspace for the end-to-end tests.
//!
//! Cargo gives a test the path of its own package's binaries only (`CARGO_BIN_EXE_<name>`), and does not
//! build a dependency's binaries for tests (that needs the unstable artifact dependencies). So
//! [`podflow_binary`] runs `cargo build -p <package> --bin <name>` with the profile, target directory and
//! target triple of the running test, then returns `target/<profile>/<name>`. Building every time, rather
//! than only when the file is missing, keeps a test from running a stale binary; when it is up to date
//! Cargo only checks and returns.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::peer;

/// Set to the path of a prebuilt binary to skip the build (e.g. `PODFLOW_EXPORTER_BIN` for
/// `podflow-exporter`): the name upper-cased, dashes as underscores, with `_BIN` appended.
pub fn override_var(name: &str) -> String {
    format!("{}_BIN", name.to_uppercase().replace('-', "_"))
}

/// Where the running test executable's build put things: (target directory, profile directory name,
/// target triple when cross-building).
fn layout() -> anyhow::Result<(PathBuf, String, Option<String>)> {
    let exe = std::env::current_exe().context("locating the test executable")?;
    // Test executables live in <target>/[<triple>/]<profile>/deps/.
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .with_context(|| format!("{} is not in <target>/<profile>/deps", exe.display()))?;
    let profile = profile_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .with_context(|| format!("no profile directory above {}", exe.display()))?;
    let above = profile_dir
        .parent()
        .with_context(|| format!("no target directory above {}", profile_dir.display()))?;
    // Cargo marks the root of its target directory with CACHEDIR.TAG; one level lower is a triple.
    if above.join("CACHEDIR.TAG").is_file() {
        return Ok((above.to_path_buf(), profile, None));
    }
    let triple = above.file_name().map(|n| n.to_string_lossy().into_owned());
    match above.parent() {
        Some(target) if target.join("CACHEDIR.TAG").is_file() => Ok((target.to_path_buf(), profile, triple)),
        _ => bail!("cannot find Cargo's target directory above {}", exe.display()),
    }
}

/// The path of binary `name` of workspace package `package`, built (or checked up to date) with the
/// running test's profile; or the path in the environment variable [`override_var`] names, if set.
pub fn podflow_binary(package: &str, name: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os(override_var(name)) {
        return Ok(PathBuf::from(path));
    }
    let (target, profile_dir, triple) = layout()?;
    // The directory "debug" holds the dev (and test) profile; any other is named after its profile.
    let profile = if profile_dir == "debug" {
        "dev"
    } else {
        profile_dir.as_str()
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "build",
            "--quiet",
            "-p",
            package,
            "--bin",
            name,
            "--profile",
            profile,
        ])
        .arg("--target-dir")
        .arg(&target);
    if let Some(t) = &triple {
        cmd.args(["--target", t]);
    }
    peer::run(&mut cmd).with_context(|| format!("building {name}"))?;
    let mut dir = target;
    if let Some(t) = triple {
        dir.push(t);
    }
    let path = dir
        .join(profile_dir)
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        bail!("cargo built {name} but {} is missing", path.display());
    }
    Ok(path)
}

/// `podflow-exporter`, built with the running test's profile.
pub fn podflow_exporter() -> anyhow::Result<PathBuf> {
    podflow_binary("podflow-exporter", "podflow-exporter")
}

/// `podflow-collector`, built with the running test's profile.
pub fn podflow_collector() -> anyhow::Result<PathBuf> {
    podflow_binary("podflow-collector", "podflow-collector")
}
