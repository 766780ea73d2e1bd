//! `cargo xtask bench --http`: HTTP load figures over loopback. One handler
//! is served by each target of `reliability/src/bin/http_target.rs` (one
//! thread, pinned to CPU 0): bare hyper, bare axum, axum behind the
//! reference middleware, pattern-server's `HttpServer` around the bare
//! handler (`server-bare`), the reference service's whole serving path
//! (`server`: `HttpServer`, the chain, metrics, JSON access logs to a
//! file) and the peer stack a user would build instead (`peer`: axum +
//! tower-http with JSON logs), and `server` with its trace export on
//! (`server-traced`: 10 % of traces sampled, sent over OTLP/HTTP to a sink
//! collector on the load's CPU). The load runs pinned to CPU 1, from three
//! generators: ours (`reliability load`, keep-alive HTTP/1.1 in a closed
//! loop), wrk (HTTP/1.1) and h2load (HTTP/2 with prior knowledge, against
//! bare hyper's HTTP/2 with and without the axum router, `server-bare` and
//! `server`). Targets alternate over several rounds; medians are reported,
//! and ratios, each the median of the ratios within a round (the targets
//! of a round run back to back under the same conditions).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::util::{cargo, output, run, target_dir};

/// A load generator.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Load {
    /// `reliability load`: HTTP/1.1.
    Ours,
    /// wrk: HTTP/1.1.
    Wrk,
    /// h2load: HTTP/2.
    H2load,
}

impl Load {
    fn name(self) -> &'static str {
        match self {
            Self::Ours => "ours (HTTP/1.1)",
            Self::Wrk => "wrk (HTTP/1.1)",
            Self::H2load => "h2load (HTTP/2)",
        }
    }

    /// The targets each generator runs against.
    fn targets(self) -> &'static [&'static str] {
        match self {
            Self::Ours | Self::Wrk => &[
                "hyper",
                "axum",
                "stack",
                "peer",
                "server-bare",
                "server",
                "server-traced",
            ],
            Self::H2load => &["hyper-h2", "axum-h2", "server-bare", "server"],
        }
    }

    /// Ratios reported: (numerator, denominator, target).
    fn ratios(self) -> &'static [(&'static str, &'static str, &'static str)] {
        match self {
            Self::Ours | Self::Wrk => &[
                ("server", "axum", "≥ 0.85"),
                ("server", "peer", "≥ 1.2"),
                ("server-traced", "server", "≥ 0.9"),
                ("stack", "axum", ""),
                ("server-bare", "axum", ""),
                ("peer", "axum", ""),
            ],
            Self::H2load => &[
                ("server", "hyper-h2", "≥ 0.85"),
                ("server-bare", "hyper-h2", ""),
                ("server-bare", "axum-h2", ""),
                ("axum-h2", "hyper-h2", ""),
            ],
        }
    }
}

struct Options {
    connections: u32,
    warmup: u32,
    seconds: u32,
    rounds: u32,
    loads: Vec<Load>,
}

fn parse(args: &[&str]) -> Result<Options, String> {
    let mut options = Options {
        connections: 64,
        warmup: 2,
        seconds: 10,
        rounds: 3,
        loads: vec![Load::Ours, Load::Wrk, Load::H2load],
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
            "--load" => {
                let names = args.next().ok_or("--load needs ours,wrk,h2load")?;
                options.loads = names
                    .split(',')
                    .map(|name| match name {
                        "ours" => Ok(Load::Ours),
                        "wrk" => Ok(Load::Wrk),
                        "h2load" => Ok(Load::H2load),
                        other => Err(format!("unknown load generator {other}")),
                    })
                    .collect::<Result<_, _>>()?;
            }
            other => {
                return Err(format!(
                    "unknown option {other}: --connections N --warmup S --seconds S --rounds N --load ours,wrk,h2load"
                ));
            }
        }
    }
    Ok(options)
}

/// `taskset -c CPU` when taskset exists and there are two CPUs to split.
fn pinned(cpu: u32, program: &Path) -> (Command, bool) {
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

#[derive(Clone, Copy)]
struct Figure {
    rps: f64,
    /// `None` where the generator gives no percentile (h2load).
    p99_us: Option<f64>,
}

/// A running `http-target`, killed when dropped.
struct Target {
    child: std::process::Child,
    addr: String,
    pinned: bool,
}

impl Target {
    /// Starts `http-target KIND` on `cpu` with `env`, and reads its address.
    fn start(
        release: &Path,
        cpu: u32,
        kind: &str,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Result<Self, String> {
        let (mut command, pinned) = pinned(cpu, &release.join("http-target"));
        command
            .args([kind, "127.0.0.1:0"])
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("starting http-target {kind}: {e}"))?;
        let stdout = child.stdout.take().expect("piped");
        let mut target = Self {
            child,
            addr: String::new(),
            pinned,
        };
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| format!("reading http-target's address: {e}"))?;
        target.addr = line
            .trim()
            .strip_prefix("listening on http://")
            .ok_or_else(|| format!("http-target printed {line:?}"))?
            .to_owned();
        Ok(target)
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `target`, loads it with `load`, stops it. `server-traced`
/// exports to an `otlp-sink` on the load's CPU.
fn one(release: &Path, target: &str, load: Load, o: &Options) -> Result<(Figure, bool), String> {
    let log = std::env::temp_dir().join(format!("http-target-{}-{target}.log", std::process::id()));
    let sink = match target {
        "server-traced" => Some(Target::start(release, 1, "otlp-sink", &[])?),
        _ => None,
    };
    let otlp = sink
        .as_ref()
        .map(|sink| format!("http://{}", sink.addr))
        .unwrap_or_default();
    let server = Target::start(
        release,
        0,
        target,
        &[("HT_LOG", log.as_os_str()), ("HT_OTLP", otlp.as_ref())],
    )?;
    let result = match load {
        Load::Ours => ours(release, &server.addr, o),
        Load::Wrk => wrk(&server.addr, o),
        Load::H2load => h2load(&server.addr, o),
    }
    .map_err(|e| format!("{target}: {e}"));
    let pinned_server = server.pinned;
    drop((server, sink));
    let _ = std::fs::remove_file(&log);
    result.map(|f| (f, pinned_server))
}

fn ours(release: &Path, addr: &str, o: &Options) -> Result<Figure, String> {
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
        return Err(format!("the load saw errors: {out}"));
    }
    Ok(Figure {
        rps: field("rps")?,
        p99_us: Some(field("p99_us")?),
    })
}

fn wrk(addr: &str, o: &Options) -> Result<Figure, String> {
    let url = format!("http://{addr}/");
    let connections = o.connections.to_string();
    // wrk has no warm-up of its own: a short run first, discarded.
    if o.warmup > 0 {
        let (mut warm, _) = pinned(1, Path::new("wrk"));
        output(warm.args([
            "-t1",
            "-c",
            &connections,
            "-d",
            &format!("{}s", o.warmup),
            &url,
        ]))?;
    }
    let (mut load, _) = pinned(1, Path::new("wrk"));
    let out = output(load.args([
        "-t1",
        "-c",
        &connections,
        "-d",
        &format!("{}s", o.seconds),
        "--latency",
        &url,
    ]))?;
    if out.contains("Non-2xx") || out.contains("Socket errors") {
        return Err(format!("wrk saw errors:\n{out}"));
    }
    let rps = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:")?.trim().parse().ok())
        .ok_or_else(|| format!("no Requests/sec in wrk's output:\n{out}"))?;
    let p99 = out
        .lines()
        .find_map(|l| duration_us(l.trim().strip_prefix("99%")?.trim()))
        .ok_or_else(|| format!("no 99% latency in wrk's output:\n{out}"))?;
    Ok(Figure {
        rps,
        p99_us: Some(p99),
    })
}

/// wrk's `1.23ms`, `456.00us`, `1.02s` in microseconds.
fn duration_us(text: &str) -> Option<f64> {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * scale)
}

fn h2load(addr: &str, o: &Options) -> Result<Figure, String> {
    let (mut load, _) = pinned(1, Path::new("h2load"));
    // One client thread, the same connection count, 10 streams each.
    let out = output(load.args([
        "-t1",
        "-c",
        &o.connections.to_string(),
        "-m10",
        "--warm-up-time",
        &format!("{}s", o.warmup),
        "-D",
        &format!("{}s", o.seconds),
        &format!("http://{addr}/"),
    ]))?;
    let failed = out
        .lines()
        .find_map(|l| {
            let rest = l.trim().strip_prefix("requests:")?;
            rest.split(',').find_map(|part| {
                part.trim()
                    .strip_suffix("failed")?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
        })
        .ok_or_else(|| format!("no request counts in h2load's output:\n{out}"))?;
    if failed > 0 {
        return Err(format!("h2load saw {failed} failed requests:\n{out}"));
    }
    let rps = out
        .lines()
        .find_map(|l| {
            let rest = l.trim().strip_prefix("finished in")?;
            rest.split(',')
                .nth(1)?
                .trim()
                .strip_suffix("req/s")?
                .trim()
                .parse()
                .ok()
        })
        .ok_or_else(|| format!("no req/s in h2load's output:\n{out}"))?;
    Ok(Figure { rps, p99_us: None })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

pub(crate) fn run_http(args: &[&str]) -> Result<(), String> {
    let options = parse(args)?;
    for (load, program) in [(Load::Wrk, "wrk"), (Load::H2load, "h2load")] {
        // wrk's `--version` exits 1: only whether it starts counts.
        let installed = Command::new(program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if options.loads.contains(&load) && !installed {
            return Err(format!(
                "{program} is not installed (apt-get install {}); or leave it out with --load",
                if program == "wrk" {
                    "wrk"
                } else {
                    "nghttp2-client"
                }
            ));
        }
    }
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
    let mut was_pinned = false;
    // figures[load][target][round]
    let mut figures: Vec<Vec<Vec<Figure>>> = options
        .loads
        .iter()
        .map(|load| vec![Vec::new(); load.targets().len()])
        .collect();
    for round in 0..options.rounds {
        for (l, load) in options.loads.iter().enumerate() {
            for (t, target) in load.targets().iter().enumerate() {
                let (figure, pinned) = one(&release, target, *load, &options)?;
                was_pinned = pinned;
                eprintln!(
                    "round {}: {:<16} {target:<9} {:>9.0} req/s  p99 {}",
                    round + 1,
                    load.name(),
                    figure.rps,
                    figure
                        .p99_us
                        .map_or_else(|| "-".to_owned(), |p| format!("{p:.0} µs"))
                );
                figures[l][t].push(figure);
            }
        }
    }
    println!(
        "\nHTTP load over loopback: {} connections, {} s measured after {} s warm-up, medians of {} rounds (ratios within each round); {}",
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
    for (l, load) in options.loads.iter().enumerate() {
        println!(
            "\n{}\n{:<10} {:>10} {:>10}",
            load.name(),
            "target",
            "req/s",
            "p99 µs"
        );
        for (t, target) in load.targets().iter().enumerate() {
            let mut rps: Vec<f64> = figures[l][t].iter().map(|f| f.rps).collect();
            let mut p99: Vec<f64> = figures[l][t].iter().filter_map(|f| f.p99_us).collect();
            let p99 = if p99.is_empty() {
                "-".to_owned()
            } else {
                format!("{:.0}", median(&mut p99))
            };
            println!("{target:<10} {:>10.0} {p99:>10}", median(&mut rps));
        }
        let index = |name: &str| load.targets().iter().position(|t| *t == name);
        for (num, den, goal) in load.ratios() {
            let (Some(n), Some(d)) = (index(num), index(den)) else {
                continue;
            };
            let mut per_round: Vec<f64> = (0..options.rounds as usize)
                .map(|r| figures[l][n][r].rps / figures[l][d][r].rps)
                .collect();
            let all: Vec<String> = per_round.iter().map(|r| format!("{r:.2}")).collect();
            println!(
                "req/s {num}/{den}: {:.2}× (rounds: {}){}",
                median(&mut per_round),
                all.join(", "),
                if goal.is_empty() {
                    String::new()
                } else {
                    format!("  target {goal}")
                }
            );
        }
    }
    Ok(())
}
