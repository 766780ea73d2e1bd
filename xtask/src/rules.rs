//! `cargo xtask rules`: the shipped Prometheus rules are valid
//! (`promtool check rules`) and every alert passes its unit tests
//! (`promtool test rules`), with Debian's `prometheus` package installed
//! when `promtool` is missing.

use std::process::Command;

use crate::util::{ensure_debian_package, output, root, run};

/// `promtool`, from Debian's `prometheus` package.
pub(crate) fn ensure_prometheus() -> Result<(), String> {
    ensure_debian_package("promtool", "prometheus")?;
    ensure_debian_package("prometheus", "prometheus")
}

pub(crate) fn check() -> Result<String, String> {
    ensure_prometheus()?;
    let dir = root().join("observability").join("prometheus");
    run(Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(dir.join("rules.yml")))?;
    run(Command::new("promtool")
        .current_dir(&dir)
        .args(["test", "rules", "rules.test.yml"]))?;
    let version = output(Command::new("promtool").arg("--version"))?;
    let version = version
        .split_whitespace()
        .nth(2)
        .unwrap_or("(unknown version)")
        .to_owned();
    Ok(format!(
        "promtool {version}: rules checked, every alert's tests pass"
    ))
}
