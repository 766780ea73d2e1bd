//! `cargo xtask ci`: every check and test, in the order CI runs them.

use std::path::Path;
use std::time::Instant;

use crate::pg;
use crate::util::{cargo, ensure_cargo_tool, one_shot_builds, output, root, run, secs, under_ci};

/// Versions of the tools CI installs when they are missing.
const CARGO_DENY: &str = "0.20.2";
const CARGO_HACK: &str = "0.6.46";

/// The library crates: each built alone with no default features,
/// packaged, and checked for module loops.
pub(crate) const LIBRARIES: &[&str] = &[
    "pattern-error",
    "pattern-component",
    "pattern-network",
    "pattern-api",
    "pattern-server",
    "patterns",
];

struct Summary {
    lines: Vec<String>,
}

impl Summary {
    fn step(
        &mut self,
        name: &str,
        f: impl FnOnce() -> Result<String, String>,
    ) -> Result<(), String> {
        eprintln!("\n==> {name}");
        let start = Instant::now();
        let result = f();
        let disk = target_disk();
        let line = match &result {
            Ok(note) if note.is_empty() => format!("ok    {name:<10} {} {disk}", secs(start)),
            Ok(note) => format!("ok    {name:<10} {} {disk}  ({note})", secs(start)),
            Err(_) => format!("FAIL  {name:<10} {} {disk}", secs(start)),
        };
        eprintln!("{line}");
        self.lines.push(line);
        result.map(|_| ())
    }

    fn print(&self) {
        eprintln!("\nxtask ci summary:");
        for line in &self.lines {
            eprintln!("  {line}");
        }
    }
}

/// Cargo builds each packaged library from a copy it unpacks under
/// `$CARGO_HOME/registry/src/-<hash of the packaging path>/`, and reuses
/// that copy when the same path packages again: a clone at a path an
/// earlier run used would build the earlier code (seen: a rename reported
/// missing). Forgets our libraries' copies so each run unpacks its own.
fn forget_unpacked_libraries() {
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")));
    let Some(sources) = home.map(|home| home.join("registry").join("src")) else {
        return;
    };
    let Ok(registries) = std::fs::read_dir(&sources) else {
        return;
    };
    // Local registries' folders start with '-'; crates.io's is named.
    for registry in registries.flatten() {
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        let Ok(unpacked) = std::fs::read_dir(registry.path()) else {
            continue;
        };
        for krate in unpacked.flatten() {
            let name = krate.file_name().to_string_lossy().into_owned();
            let ours = LIBRARIES.iter().any(|lib| {
                name.strip_prefix(lib)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|version| version.starts_with(|c: char| c.is_ascii_digit()))
            });
            if ours {
                let _ = std::fs::remove_dir_all(krate.path());
            }
        }
    }
}

/// `[target/ 12.3G, 40.1G free]`: how much the build holds and how much
/// disk is left after a step, so a full disk shows in the summary; empty
/// when `du` or `df` cannot tell.
fn target_disk() -> String {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let used = output(std::process::Command::new("du").arg("-sk").arg(&target))
        .ok()
        .and_then(|out| out.split_whitespace().next()?.parse::<u64>().ok());
    let free = output(std::process::Command::new("df").arg("-Pk").arg(root()))
        .ok()
        .and_then(|out| {
            out.lines()
                .nth(1)?
                .split_whitespace()
                .nth(3)?
                .parse::<u64>()
                .ok()
        });
    let gib = |kib: u64| format!("{:.1}G", kib as f64 / (1024.0 * 1024.0));
    match (used, free) {
        (Some(used), Some(free)) => format!("[target/ {}, {} free]", gib(used), gib(free)),
        (None, Some(free)) => format!("[{} free]", gib(free)),
        _ => String::new(),
    }
}

pub(crate) fn run_ci() -> Result<(), String> {
    one_shot_builds();
    let mut summary = Summary { lines: Vec::new() };
    let result = steps(&mut summary);
    summary.print();
    result
}

fn steps(summary: &mut Summary) -> Result<(), String> {
    summary.step("tools", || {
        ensure_cargo_tool("deny", "cargo-deny", CARGO_DENY)?;
        ensure_cargo_tool("hack", "cargo-hack", CARGO_HACK)?;
        Ok(String::new())
    })?;
    summary.step("fmt", || {
        run(cargo().args(["fmt", "--all", "--", "--check"]))?;
        Ok(String::new())
    })?;
    summary.step("modules", crate::modules::check)?;
    summary.step("rules", crate::rules::check)?;
    summary.step("clippy", || {
        run(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ]))?;
        Ok(String::new())
    })?;
    summary.step("features", || {
        // Each library alone with no default features, then the umbrella
        // with no feature and with each feature alone.
        for lib in LIBRARIES {
            run(cargo().args([
                "check",
                "--quiet",
                "--package",
                lib,
                "--no-default-features",
            ]))?;
        }
        run(cargo().args([
            "hack",
            "check",
            "--quiet",
            "--package",
            "patterns",
            "--each-feature",
            "--no-dev-deps",
        ]))?;
        Ok(format!(
            "{} crates alone, each umbrella feature alone",
            LIBRARIES.len()
        ))
    })?;
    summary.step("package", || {
        // Every library as it would be published: packaged together (their
        // versions resolved among themselves), then built from the packages.
        forget_unpacked_libraries();
        let mut cmd = cargo();
        cmd.args(["package", "--quiet"]);
        for lib in LIBRARIES {
            cmd.args(["--package", lib]);
        }
        if !under_ci() {
            // A working tree being edited; CI's clone is clean.
            cmd.arg("--allow-dirty");
        }
        run(&mut cmd)?;
        Ok(format!(
            "{} crates packaged and built from their packages",
            LIBRARIES.len()
        ))
    })?;
    summary.step("test", || {
        let cluster = pg::start()?;
        let mut cmd = cargo();
        cmd.args(["test", "--workspace", "--all-features", "--no-fail-fast"]);
        let note = match &cluster {
            Some(cluster) => {
                cmd.env("DATABASE_URL", cluster.url());
                cmd.env(pg::CTL_VAR, cluster.ctl());
                cluster.ca_env(&mut cmd);
                "with PostgreSQL".to_owned()
            }
            None => {
                cmd.env_remove("DATABASE_URL");
                cmd.env_remove(pg::CTL_VAR).env_remove(pg::CA_VAR);
                "DB tests SKIPPED: no PostgreSQL server binaries".to_owned()
            }
        };
        let result = run(&mut cmd);
        // Dropping the cluster stops it, whatever the tests did.
        drop(cluster);
        result.map(|()| note)
    })?;
    summary.step("loom", || {
        // Model tests of the lock-free pieces, in every interleaving; the
        // cfg changes every crate's build, so they get a target dir of
        // their own.
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| root().join("target"))
            .join("loom");
        run(cargo()
            .args(["test", "--package", "pattern-error", "--lib", "loom_"])
            .env("RUSTFLAGS", "--cfg loom")
            .env("CARGO_TARGET_DIR", target))?;
        Ok("pattern-error's lock-free counters".to_owned())
    })?;
    summary.step("reliability", || {
        crate::reliability::run_suite(&["--short"]).map(|note| format!("short form, {note}"))
    })?;
    summary.step("contract", crate::contract::run_contract)?;
    summary.step("doc", || {
        run(cargo()
            .args([
                "doc",
                "--workspace",
                "--all-features",
                "--no-deps",
                "--quiet",
            ])
            .env("RUSTDOCFLAGS", "-D warnings"))?;
        Ok(String::new())
    })?;
    summary.step("deny", || {
        let seed = root().join("../shared/tools/seed-advisory-db");
        if Path::new(&seed).is_file() {
            // `--offline` makes cargo-deny's `cargo metadata` refuse to
            // download, so fetch every platform's crates first.
            run(cargo().args(["fetch", "--quiet"]))?;
            run(std::process::Command::new("bash").arg(&seed))?;
            run(cargo().args(["deny", "--offline", "check"]))?;
            Ok("offline, seeded advisory database".to_owned())
        } else {
            run(cargo().args(["deny", "check"]))?;
            Ok(String::new())
        }
    })?;
    Ok(())
}
