//! Small helpers shared by the commands.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// The workspace root (the parent of this crate).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

/// The cargo target directory.
pub(crate) fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => root().join("target"),
    }
}

/// Set by `cargo xtask ci`: builds from a clean clone gain nothing from
/// incremental compilation, whose caches are as large as everything else
/// in `target/debug` together, so CI turns it off to stay within a small
/// disk.
static ONE_SHOT_BUILDS: AtomicBool = AtomicBool::new(false);

/// Turns incremental compilation off for every cargo this process runs.
pub(crate) fn one_shot_builds() {
    ONE_SHOT_BUILDS.store(true, Ordering::Relaxed);
}

/// `cargo`, as the one that runs us.
pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    if ONE_SHOT_BUILDS.load(Ordering::Relaxed) {
        cmd.env("CARGO_INCREMENTAL", "0");
    }
    cmd
}

/// Runs `cmd`, inheriting stdio; an error names the command and its status.
pub(crate) fn run(cmd: &mut Command) -> Result<(), String> {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {}: {e}", describe(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{} failed ({status})", describe(cmd)))
    }
}

/// Runs `cmd` and returns its standard output.
pub(crate) fn output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", describe(cmd)))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{} failed ({}): {}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

pub(crate) fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// Installs a cargo subcommand with `cargo install --locked` unless
/// `cargo <sub> --version` already works.
pub(crate) fn ensure_cargo_tool(sub: &str, krate: &str, version: &str) -> Result<(), String> {
    let present = cargo()
        .args([sub, "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return Ok(());
    }
    eprintln!("xtask: installing {krate} {version} (cargo install --locked)");
    run(cargo().args(["install", "--locked", krate, "--version", version]))
}

/// Whether we run under CI (`CI=true`).
pub(crate) fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Seconds since `start`, formatted for summaries.
pub(crate) fn secs(start: Instant) -> String {
    format!("{:.1}s", start.elapsed().as_secs_f64())
}

/// Whether `program` runs (`program --version` exits 0).
pub(crate) fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Installs the Debian `package` that brings `program` (with `apt-get`,
/// through `sudo` unless we are root) unless `program --version` already
/// works; an error says what to install by hand.
pub(crate) fn ensure_debian_package(program: &str, package: &str) -> Result<(), String> {
    if runs(program) {
        return Ok(());
    }
    let by_hand =
        format!("{program} is missing: install Debian's {package} (apt-get install {package})");
    if !runs("apt-get") {
        return Err(by_hand);
    }
    let root = output(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0");
    let apt = |args: &[&str]| {
        let mut cmd = if root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.args(["-n", "apt-get"]);
            sudo
        };
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    eprintln!("xtask: installing Debian's {package} for {program}");
    let install = ["install", "-y", "-q", "--no-install-recommends", package];
    if run(&mut apt(&install)).is_err() {
        // A machine whose package lists are stale or absent.
        run(&mut apt(&["update", "-q"])).map_err(|e| format!("{by_hand} ({e})"))?;
        run(&mut apt(&install)).map_err(|e| format!("{by_hand} ({e})"))?;
    }
    if runs(program) { Ok(()) } else { Err(by_hand) }
}
