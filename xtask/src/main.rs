//! Project automation, run as `cargo xtask <command>`.
//!
//! | command | what it does |
//! | --- | --- |
//! | `ci` | every check and test CI runs, with a summary line per step |
//! | `pg start\|stop\|url` | a throwaway PostgreSQL cluster under `target/pg/` |
//! | `bench [ARGS]` | the criterion benches, then each `ours / peer` ratio |
//! | `reliability [ARGS]` | the reliability suite against the reference service, with a table of figures |
//! | `modules` | no module loop in any library crate |
//! | `contract` | the reference service's OpenAPI document against the wire (schemathesis, openapi-spec-validator) |
//! | `rules` | the shipped Prometheus rules checked and their alerts' unit tests run (promtool) |

mod bench;
mod ci;
mod contract;
mod http_bench;
mod modules;
mod pg;
mod reliability;
mod rules;
mod util;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci                 fmt, clippy, feature builds, packaging, the Prometheus rules' tests, tests
                     (with PostgreSQL), loom models, the reliability suite (short, with
                     Prometheus), the OpenAPI contract, docs, cargo-deny
  pg start           start a throwaway PostgreSQL cluster; print PATTERNS_PG_CTL (a stop/start script) and DATABASE_URL
  pg stop            stop it and delete its files
  pg url             print the DATABASE_URL of the running cluster
  reliability [--short] [--only NAME,...]
                     the reliability suite against the reference service (release
                     build, throwaway PostgreSQL); prints a table of figures
  modules            no module of a library crate uses one that uses it back
  rules              observability/prometheus/rules.yml checked and its alerts' unit tests
                     run (promtool, from Debian's prometheus package, installed if missing)
  contract           the reference service's /openapi.json against the wire: a pinned
                     schemathesis (every check and phase, fixed seed) in memory and
                     with PostgreSQL, and openapi-spec-validator (venv under target/)
  bench [--bench NAME] [ARGS]
                     run the criterion benches (one file with --bench; ARGS go to
                     criterion) and print ours/peer ratios
  bench --http [--connections N] [--seconds S] [--warmup S] [--rounds N] [--load ours,wrk,h2load]
                     HTTP load over loopback: bare hyper and axum, the reference
                     middleware, the whole server with JSON logs, a tower-http peer
                     stack; pinned server and load; req/s, p99, ratios
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // Every command answers `--help` (anywhere on the line) with the usage.
    if args.first() == Some(&"help") || args.iter().any(|arg| matches!(*arg, "--help" | "-h")) {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let result = match args.as_slice() {
        ["ci"] => ci::run_ci(),
        ["pg", "start"] => pg::start_command(),
        ["pg", "stop"] => pg::stop_command(),
        ["pg", "url"] => pg::url_command(),
        ["bench", "--http", rest @ ..] => http_bench::run_http(rest),
        ["bench", rest @ ..] => bench::run_benches(rest),
        ["reliability", rest @ ..] => reliability::command(rest),
        ["modules"] => modules::check().map(|note| eprintln!("xtask: modules ok ({note})")),
        ["rules"] => rules::check().map(|note| eprintln!("xtask: rules ok ({note})")),
        ["contract"] => {
            contract::run_contract().map(|note| eprintln!("xtask: contract ok ({note})"))
        }
        [] => {
            print!("{USAGE}");
            Ok(())
        }
        _ => Err(format!("unknown command: {}\n\n{USAGE}", args.join(" "))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}
