//! `cargo xtask bench`: run the criterion benches and print ours/peer ratios.
//!
//! Bench groups name their functions `ours` and after each peer; criterion
//! writes `target/criterion/<group>/<function>/new/estimates.json`. Only
//! estimates written by this run are compared, so every ratio comes from
//! figures measured side by side.

use std::path::Path;
use std::time::SystemTime;

use crate::util::{cargo, run, target_dir};

pub(crate) fn run_benches(args: &[&str]) -> Result<(), String> {
    let started = SystemTime::now();
    let mut cmd = cargo();
    cmd.args(["bench", "--package", "benches"]);
    // `--bench NAME` picks one bench file; the rest goes to criterion.
    let args = match args {
        ["--bench", name, rest @ ..] => {
            cmd.args(["--bench", name]);
            rest
        }
        _ => {
            // Only the bench targets: the library's test harness would
            // reject criterion's options.
            cmd.arg("--benches");
            args
        }
    };
    cmd.arg("--").args(args);
    // Backtrace capture would make error-handling peers pay for a feature
    // nobody asked for in the bench.
    cmd.env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    run(&mut cmd)?;
    let rows = ratios(&target_dir().join("criterion"), started)?;
    if rows.is_empty() {
        return Err("the benches wrote no estimates".to_owned());
    }
    println!(
        "\n{:<44} {:>12} {:>12} {:>8} {:>12}",
        "group: ours vs peer", "ours", "peer", "ratio", "delta"
    );
    for row in rows {
        println!(
            "{:<44} {:>12} {:>12} {:>7.2}x {:>12}",
            format!("{}: {}", row.group, row.peer),
            format_ns(row.ours_ns),
            format_ns(row.peer_ns),
            row.ours_ns / row.peer_ns,
            format!("{:+.1} ns", row.ours_ns - row.peer_ns),
        );
    }
    println!(
        "\nratio = ours / peer, delta = ours - peer (mean time per iteration; a ratio below 1 is faster)"
    );
    Ok(())
}

struct Row {
    group: String,
    peer: String,
    ours_ns: f64,
    peer_ns: f64,
}

/// Collects `ours / peer` rows from estimates newer than `since`. Groups may
/// nest (`group/param/ours`): every directory holding an `ours` function is
/// a comparison.
fn ratios(criterion: &Path, since: SystemTime) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    let mut stack = vec![criterion.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut children: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        children.sort();
        let fresh = |name: &str| mean_ns(&dir.join(name).join("new/estimates.json"), since);
        if let Some(ours_ns) = fresh("ours") {
            let group = dir
                .strip_prefix(criterion)
                .unwrap_or(&dir)
                .display()
                .to_string();
            for child in &children {
                let name = child
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                if name == "ours" || name == "report" {
                    continue;
                }
                if let Some(peer_ns) = fresh(name) {
                    rows.push(Row {
                        group: group.clone(),
                        peer: name.to_owned(),
                        ours_ns,
                        peer_ns,
                    });
                }
            }
        }
        stack.extend(children.into_iter().filter(|c| c.is_dir()));
    }
    rows.sort_by(|a, b| (&a.group, &a.peer).cmp(&(&b.group, &b.peer)));
    Ok(rows)
}

/// The mean point estimate in nanoseconds, if the file was written after `since`.
fn mean_ns(path: &Path, since: SystemTime) -> Option<f64> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    if modified < since {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    // {"mean":{"confidence_interval":{...},"point_estimate":123.4,...},...}
    let mean = &text[text.find("\"mean\"")?..];
    let value = &mean[mean.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = value.find([',', '}'])?;
    value[..end].trim().parse().ok()
}

fn format_ns(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.1} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} µs", ns / 1_000.0)
    } else {
        format!("{:.2} ms", ns / 1_000_000.0)
    }
}
