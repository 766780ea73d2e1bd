//! The reference service: an inventory API built from the patterns crates.
//!
//! ```text
//! cargo run --example reference-service
//! curl -s localhost:8080/v1/items -H 'content-type: application/json' -d '{"name":"bolt","quantity":3}'
//! ```
//!
//! Configuration: defaults, then `reference-service.toml` in the working
//! directory (or the file named by `REFSVC_CONFIG`), then environment
//! variables `REFSVC_…` with `__` for nesting (`REFSVC_SERVER__ADDR=127.0.0.1:0`,
//! `REFSVC_DATABASE__URL=postgres://…` to keep items in PostgreSQL). Once
//! ready it prints `listening on http://ADDR` (then `management on
//! http://ADDR` when the management listener is on); SIGTERM or Ctrl-C
//! drains it and it exits 0.

use std::process::ExitCode;

use examples::reference::{Config, Service};

#[tokio::main]
async fn main() -> ExitCode {
    let file = std::env::var("REFSVC_CONFIG").unwrap_or_else(|_| "reference-service.toml".into());
    let loaded = match Config::load(&file) {
        Ok(loaded) => loaded,
        Err(err) => {
            eprintln!("invalid configuration:\n{err}");
            return ExitCode::from(2);
        }
    };
    // Text with colour on a terminal, or JSON lines (`REFSVC_LOG__FORMAT=json`),
    // written by a thread of their own; dropping the guard flushes them.
    let logs = match patterns::server::logging::init(&loaded.value().log) {
        Ok(guard) => guard,
        Err(err) => {
            eprintln!("cannot set up logging: {}", err.report());
            return ExitCode::from(2);
        }
    };
    tracing::info!("configuration:\n{}", loaded.dump());
    for unknown in loaded.warnings() {
        let origin = unknown
            .origin
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        tracing::warn!(key = %unknown.path, %origin, "{}", unknown.message);
    }
    let config = loaded.into_value();
    let service = match Service::start(config).await {
        Ok(service) => service,
        Err(err) => {
            eprintln!("failed to start: {}", err.report());
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(
        storage = service.storage(),
        "routes:\n{}",
        service.routes().join("\n")
    );
    println!("listening on http://{}", service.addr());
    if let Some(addr) = service.management_addr() {
        println!("management on http://{addr}");
    }

    let summary = service.until_signal().await;
    // The supervisor has logged each step with its duration; sum it up.
    tracing::info!(reason = ?summary.reason, took = ?summary.took, clean = summary.is_clean(), dropped_log_lines = logs.dropped_lines(), "stopped");
    drop(logs);
    if summary.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
