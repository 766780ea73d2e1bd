//! `cargo xtask reliability [--short] [--only NAME,...]`: builds the
//! reference service and the suite in release mode, starts a throwaway
//! PostgreSQL for the outage and Prometheus scenarios (and installs
//! Debian's `prometheus` when it is missing), and runs the suite (see
//! `reliability/src/main.rs`), which writes its HTML report with plots to
//! `target/reliability/report.html`.

use std::process::Command;

use crate::pg;
use crate::util::{cargo, run, target_dir};

/// Builds and runs the suite with `args` (`--short`, `--only ...`).
pub(crate) fn run_suite(args: &[&str]) -> Result<String, String> {
    run(cargo().args([
        "build",
        "--quiet",
        "--release",
        "--package",
        "reliability",
        "--bin",
        "reliability",
        "--package",
        "examples",
        "--example",
        "reference-service",
    ]))?;
    let release = target_dir().join("release");
    if let Err(err) = crate::rules::ensure_prometheus() {
        // The scenario says it is skipped (or, under CI, broken).
        eprintln!("xtask: {err}");
    }
    let cluster = pg::start()?;
    let report = target_dir().join("reliability").join("report.html");
    let mut suite = Command::new(release.join("reliability"));
    suite
        .arg("--service")
        .arg(release.join("examples").join("reference-service"))
        .arg("--report")
        .arg(&report)
        .args(args);
    let note = match &cluster {
        Some(cluster) => {
            suite.env("DATABASE_URL", cluster.url());
            suite.env(pg::CTL_VAR, cluster.ctl());
            cluster.ca_env(&mut suite);
            "with PostgreSQL"
        }
        None => {
            suite.env_remove("DATABASE_URL").env_remove(pg::CTL_VAR);
            "outage SKIPPED: no PostgreSQL server binaries"
        }
    };
    let result = run(&mut suite);
    // Dropping the cluster stops it, whatever the suite did.
    drop(cluster);
    result.map(|()| format!("{note}; report with plots: {}", report.display()))
}

pub(crate) fn command(args: &[&str]) -> Result<(), String> {
    run_suite(args).map(|note| eprintln!("xtask: reliability ok ({note})"))
}
