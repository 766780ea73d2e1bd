//! The reliability and load suite. It starts the reference service as a
//! separate process on loopback, drives it through each scenario, prints
//! the figures as a table, and fails when a promise breaks. With
//! `--report`, it also writes an HTML page with the figures and, for the
//! shutdown, outage and overload, throughput and latency over time with
//! the signal, the outage or the overload marked (`cargo xtask
//! reliability` writes `target/reliability/report.html`).
//!
//! ```text
//! cargo xtask reliability            # the full suite (release build)
//! reliability --service PATH [--short] [--report FILE.html] [--only NAME,...]
//! reliability load ADDR CONNECTIONS WARMUP_SECS MEASURE_SECS   # the HTTP figures' load
//! ```
//!
//! | scenario | promise |
//! | --- | --- |
//! | `shutdown` | under load, SIGTERM: no request sent before it fails, new connections are refused, exit within the drain deadline plus 1 s |
//! | `pre-stop` | SIGTERM with a pre-stop delay: readiness false at once, liveness true, new connections served during the delay and refused after it, the request in flight answered, exit 0 within delay + drain + 1 s |
//! | `stalled-preface` | 3× the connection limit in clients that stall mid-preface: each closed by the header read timeout, a normal client behind them served |
//! | `stalled-reader` | 3× the connection limit in clients that ask for megabytes of answers and read none: each closed by the write timeout, a normal client behind them served |
//! | `probes` | the concurrency limit held and the excess shed: every probe (`/health/*`, `/metrics`) answers 200 within 500 ms, on one port and on a management port |
//! | `overload` | 10× the concurrency limit: rejections (503/429) fast, admitted requests' p99 within 2× unloaded, RSS bounded, no other errors |
//! | `bad-input` | malformed, hostile and slow requests get their 4xx problem or a closed connection; no panic; other clients served |
//! | `outage` | PostgreSQL stopped for 5 s under writes: fast 503s, readiness false, recovery within 5 s, every 201 kept |
//! | `key-flood` | distinct client addresses against the per-IP rate limiter: memory stays under the bound |
//! | `prometheus` | a real Prometheus scraping through load, a database outage and an overload: its rate within 10 % of the load's, its p99 in the bucket of the load's, the burn-rate alert fired by the outage, the shed requests counted, every dashboard query answered, the breaker panel showing the outage |
//!
//! The `outage` and `prometheus` scenarios need `DATABASE_URL` and
//! `PATTERNS_PG_CTL` (as `cargo xtask pg start` prints them), and
//! `prometheus` a Prometheus binary (`PATTERNS_PROMETHEUS`, else
//! `prometheus` on `PATH`); without them they are skipped, except under
//! `CI=true`.

mod child;
mod client;
mod cluster;
mod html;
mod load;
mod prometheus;
mod scenarios;
mod service;
mod stats;
mod timeline;

use std::path::PathBuf;
use std::process::ExitCode;

/// What every scenario gets.
pub(crate) struct Ctx {
    /// The reference service's binary.
    pub(crate) binary: PathBuf,
    /// The short form (CI): fewer rounds, fewer clients, shorter phases.
    pub(crate) short: bool,
}

/// What a scenario found.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) figures: Vec<(String, String)>,
    pub(crate) broken: Vec<String>,
    pub(crate) skipped: Option<String>,
    /// Requests over time, plotted in the HTML report: `(title, what was
    /// recorded)`.
    pub(crate) timelines: Vec<(String, timeline::Recorded)>,
}

impl Report {
    pub(crate) fn figure(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.figures.push((name.into(), value.into()));
    }

    /// Keeps what `timeline` recorded, for the report's plots.
    pub(crate) fn timeline(&mut self, title: impl Into<String>, timeline: &timeline::Timeline) {
        self.timelines.push((title.into(), timeline.recorded()));
    }

    /// Records a broken promise unless `ok`.
    pub(crate) fn check(&mut self, ok: bool, promise: impl FnOnce() -> String) {
        if !ok {
            self.broken.push(promise());
        }
    }
}

const USAGE: &str = "usage: reliability --service PATH [--short] [--report FILE.html] [--only shutdown,pre-stop,stalled-preface,stalled-reader,probes,overload,bad-input,outage,key-flood,prometheus]";

fn main() -> ExitCode {
    let all: Vec<String> = std::env::args().skip(1).collect();
    if all.first().map(String::as_str) == Some("load") {
        return load_command(&all[1..]);
    }
    let mut args = all.into_iter();
    let mut binary = None;
    let mut short = false;
    let mut html_report: Option<PathBuf> = None;
    let mut only: Option<Vec<String>> = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--help" | "-h" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            "--service" => binary = args.next().map(PathBuf::from),
            "--short" => short = true,
            "--report" => html_report = args.next().map(PathBuf::from),
            "--only" => {
                only = args
                    .next()
                    .map(|s| s.split(',').map(str::to_owned).collect())
            }
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(binary) = binary else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let ctx = Ctx { binary, short };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");

    let mut failed = false;
    let mut table = Vec::new();
    for (name, scenario) in scenarios::ALL {
        if only.as_ref().is_some_and(|o| !o.iter().any(|n| n == name)) {
            continue;
        }
        eprintln!("reliability: {name} ...");
        let started = std::time::Instant::now();
        let report = runtime.block_on(scenario(&ctx));
        let verdict = match (&report.skipped, report.broken.is_empty()) {
            (Some(why), _) => format!("SKIPPED ({why})"),
            (None, true) => "ok".to_owned(),
            (None, false) => {
                failed = true;
                "FAILED".to_owned()
            }
        };
        eprintln!(
            "reliability: {name} {verdict} in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        table.push((*name, verdict, report));
    }

    println!("\n| scenario | figure | value |\n| --- | --- | --- |");
    for (name, verdict, report) in &table {
        println!("| {name} | result | {verdict} |");
        for (figure, value) in &report.figures {
            println!("| {name} | {figure} | {value} |");
        }
    }
    for (name, _, report) in &table {
        for broken in &report.broken {
            println!("BROKEN {name}: {broken}");
        }
    }
    if let Some(path) = html_report {
        let sections: Vec<html::Section<'_>> = table
            .iter()
            .map(|(name, verdict, report)| html::Section {
                name,
                verdict,
                report,
            })
            .collect();
        match html::write(&path, &sections, short) {
            Ok(()) => println!("\nreport with plots: {}", path.display()),
            Err(err) => {
                eprintln!("reliability: writing the report: {err}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `load ADDR CONNECTIONS WARMUP_SECS MEASURE_SECS`, on a one-thread runtime.
fn load_command(args: &[String]) -> ExitCode {
    let parsed = (|| {
        let addr = args.first()?.parse().ok()?;
        let connections = args.get(1)?.parse().ok()?;
        let warmup = args.get(2)?.parse().ok()?;
        let measure = args.get(3)?.parse().ok()?;
        Some((addr, connections, warmup, measure))
    })();
    let Some((addr, connections, warmup, measure)) = parsed else {
        eprintln!("usage: reliability load ADDR CONNECTIONS WARMUP_SECS MEASURE_SECS");
        return ExitCode::from(2);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(load::run(
        addr,
        connections,
        std::time::Duration::from_secs_f64(warmup),
        std::time::Duration::from_secs_f64(measure),
    ));
    ExitCode::SUCCESS
}
