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
//!
//! Traces go to an OTLP/HTTP collector when one is named:
//! `REFSVC_TELEMETRY__ENDPOINT=http://127.0.0.1:4318`, or the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`
//! and `OTEL_TRACES_SAMPLER_ARG`.

use std::process::ExitCode;

use examples::reference::{Config, Service};
use patterns::server::telemetry::TelemetryConfig;

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
    // Traces: the `telemetry` section, then the standard `OTEL_*`
    // variables over it, as every OpenTelemetry SDK reads them.
    let mut telemetry = loaded.value().telemetry.clone();
    if telemetry.service_name == TelemetryConfig::default().service_name {
        telemetry.service_name = "reference-service".to_owned();
    }
    let telemetry = match telemetry.with_env() {
        Ok(telemetry) => telemetry,
        Err(err) => {
            eprintln!("invalid configuration:\n{}", err.report());
            return ExitCode::from(2);
        }
    };
    // Text with colour on a terminal, or JSON lines (`REFSVC_LOG__FORMAT=json`),
    // written by a thread of their own; dropping the guard flushes them.
    let (logs, export) =
        match patterns::server::logging::init_with_telemetry(&loaded.value().log, &telemetry) {
            Ok(set_up) => set_up,
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
    let mut config = loaded.into_value();
    config.telemetry = telemetry;
    let service = match Service::start_with_export(config, export).await {
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
    let (addr, management) = (service.addr(), service.management_addr());
    // Listening for SIGTERM before saying so: a signal sent as soon as the
    // address is read is not lost.
    let stopped = service.until_signal();
    println!("listening on http://{addr}");
    if let Some(addr) = management {
        println!("management on http://{addr}");
    }

    let summary = stopped.await;
    // The supervisor has logged each step with its duration; sum it up.
    tracing::info!(reason = ?summary.reason, took = ?summary.took, clean = summary.is_clean(), dropped_log_lines = logs.dropped_lines(), "stopped");
    drop(logs);
    if summary.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
