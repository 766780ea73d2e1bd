//! `cargo xtask bench --http`: HTTP load figures over loopback. The same
//! handler is served by bare hyper, bare axum and axum behind the reference
//! service's middleware chain (`reliability/src/bin/http_target.rs`, one
//! thread), pinned to CPU 0; the load generator (`reliability load`, one
//! thread, keep-alive connections in a closed loop) runs pinned to CPU 1.
//! Targets alternate over several rounds; the medians are reported, and
//! the ratios against bare axum and bare hyper, each the median of the
//! ratios within a round (the targets of a round run back to back).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::util::{cargo, output, run, target_dir};

const TARGETS: &[&str] = &["hyper", "axum", "stack"];

struct Options {
    connections: u32,
    warmup: u32,
    seconds: u32,
    rounds: u32,
}

fn parse(args: &[&str]) -> Result<Options, String> {
    let mut options = Options {
        connections: 64,
        warmup: 2,
        seconds: 10,
        rounds: 3,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = || -> Result<u32, String> { Err(format!("{arg} needs a number")) };
        let mut number = |slot: &mut u32| -> Result<(), String> {
            *slot = args
                .next()
                .and_then(|v| v.parse().ok())
                .map_or_else(value, Ok)?;
            Ok(())
        };
        match *arg {
            "--connections" => number(&mut options.connections)?,
            "--warmup" => number(&mut options.warmup)?,
            "--seconds" => number(&mut options.seconds)?,
            "--rounds" => number(&mut options.rounds)?,
            other => {
                return Err(format!(
                    "unknown option {other}: --connections N --warmup S --seconds S --rounds N"
                ));
            }
        }
    }
    Ok(options)
}

/// `taskset -c CPU` when taskset exists and there are two CPUs to split.
fn pinned(cpu: u32, program: &std::path::Path) -> (Command, bool) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let taskset = output(Command::new("taskset").arg("--version")).is_ok();
    if taskset && cpus >= 2 {
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", &cpu.to_string()]).arg(program);
        (cmd, true)
    } else {
        (Command::new(program), false)
    }
}

struct Figure {
    rps: f64,
    p99_us: f64,
}

fn one(release: &std::path::Path, target: &str, o: &Options) -> Result<(Figure, bool), String> {
    let (mut server, pinned_server) = pinned(0, &release.join("http-target"));
    let mut server = server
        .args([target, "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting http-target: {e}"))?;
    let stdout = server.stdout.take().expect("piped");
    // Inside the closure: the server is killed below whatever fails.
    let result = (|| {
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| format!("reading http-target's address: {e}"))?;
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .ok_or_else(|| format!("http-target printed {line:?}"))?;
        let (mut load, _) = pinned(1, &release.join("reliability"));
        let out = output(load.args([
            "load",
            addr,
            &o.connections.to_string(),
            &o.warmup.to_string(),
            &o.seconds.to_string(),
        ]))?;
        let field = |name: &str| -> Result<f64, String> {
            out.split_whitespace()
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
                .ok_or_else(|| format!("no {name} in {out:?}"))
        };
        if field("errors")? > 0.0 {
            return Err(format!("{target}: the load saw errors: {out}"));
        }
        Ok(Figure {
            rps: field("rps")?,
            p99_us: field("p99_us")?,
        })
    })();
    let _ = server.kill();
    let _ = server.wait();
    result.map(|f| (f, pinned_server))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

pub(crate) fn run_http(args: &[&str]) -> Result<(), String> {
    let options = parse(args)?;
    run(cargo().args([
        "build",
        "--quiet",
        "--release",
        "--package",
        "reliability",
        "--bin",
        "reliability",
        "--bin",
        "http-target",
    ]))?;
    let release = target_dir().join("release");
    let mut rps: Vec<Vec<f64>> = vec![Vec::new(); TARGETS.len()];
    let mut p99: Vec<Vec<f64>> = vec![Vec::new(); TARGETS.len()];
    let mut was_pinned = false;
    for round in 0..options.rounds {
        for (i, target) in TARGETS.iter().enumerate() {
            let (figure, pinned) = one(&release, target, &options)?;
            was_pinned = pinned;
            eprintln!(
                "round {}: {target:<6} {:>9.0} req/s  p99 {:>7.0} µs",
                round + 1,
                figure.rps,
                figure.p99_us
            );
            rps[i].push(figure.rps);
            p99[i].push(figure.p99_us);
        }
    }
    // Ratios are taken within a round, where the targets ran back to back
    // under the same conditions, and their median reported: the machine's
    // drift between rounds cancels out.
    let ratio = |figures: &[Vec<f64>], i: usize, base: usize| {
        let mut per_round: Vec<f64> = (0..figures[i].len())
            .map(|r| figures[i][r] / figures[base][r])
            .collect();
        median(&mut per_round)
    };
    let ratios: Vec<[f64; 3]> = (0..TARGETS.len())
        .map(|i| [ratio(&rps, i, 1), ratio(&rps, i, 0), ratio(&p99, i, 1)])
        .collect();
    let rps: Vec<f64> = rps.iter_mut().map(|v| median(v)).collect();
    let p99: Vec<f64> = p99.iter_mut().map(|v| median(v)).collect();
    println!(
        "\nHTTP load over loopback: {} keep-alive connections, {} s measured after {} s warm-up, medians of {} rounds (ratios within each round); {}",
        options.connections,
        options.seconds,
        options.warmup,
        options.rounds,
        if was_pinned {
            "server on CPU 0, load on CPU 1"
        } else {
            "NOT pinned (no taskset or one CPU)"
        }
    );
    println!(
        "{:<36} {:>10} {:>10} {:>12} {:>12} {:>12}",
        "target", "req/s", "p99 µs", "rps/axum", "rps/hyper", "p99/axum"
    );
    let names = ["bare hyper", "bare axum", "axum + reference middleware"];
    for i in 0..TARGETS.len() {
        println!(
            "{:<36} {:>10.0} {:>10.0} {:>11.2}x {:>11.2}x {:>11.2}x",
            names[i], rps[i], p99[i], ratios[i][0], ratios[i][1], ratios[i][2]
        );
    }
    Ok(())
}
