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
//! ready it prints `listening on http://ADDR`; SIGTERM or Ctrl-C drains it
//! and it exits 0.

use std::process::ExitCode;

use examples::reference::{Config, Service};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .init();

    let file = std::env::var("REFSVC_CONFIG").unwrap_or_else(|_| "reference-service.toml".into());
    let config = match Config::load(&file) {
        Ok(loaded) => {
            tracing::info!("configuration:\n{}", loaded.dump());
            loaded.into_value()
        }
        Err(err) => {
            eprintln!("invalid configuration:\n{err}");
            return ExitCode::from(2);
        }
    };
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

    let summary = service.until_signal().await;
    // The supervisor has logged each step with its duration; sum it up.
    tracing::info!(reason = ?summary.reason, took = ?summary.took, clean = summary.is_clean(), "stopped");
    if summary.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
