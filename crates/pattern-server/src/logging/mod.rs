//! A service's logs, set up in one place: format (text or one JSON object
//! per line), filter, colour, destination, and a non-blocking writer with a
//! bounded queue (feature `logging`).
//!
//! Request handling never waits for the terminal or the disk: lines go to
//! a buffer of at most [`LogConfig::buffer_bytes`] that a thread of its own
//! writes out in large writes (within 20 ms of a line); when it is full,
//! lines are dropped and counted ([`LogGuard::dropped_lines`]) rather than
//! slowing requests. Colour is
//! used only on a terminal. With `pattern-api`'s stack every event logged
//! while serving a request carries the request's span (`method`, `path`,
//! `request_id`), and the access log is one event per request at the level
//! [`LogConfig::access`] names (give it to
//! [`ApiStack::access_log`](pattern_api::stack::ApiStack::access_log)).
//!
//! ```no_run
//! use pattern_server::logging::{LogConfig, LogFormat};
//!
//! let config = LogConfig { format: LogFormat::Json, ..LogConfig::default() };
//! // Keep the guard until the end of `main`: dropping it flushes the queue.
//! let _logs = pattern_server::logging::init(&config).expect("logging set up once");
//! tracing::info!(port = 8080, "listening");
//! ```

mod config;
mod json;
mod writer;

use std::io::IsTerminal;

use pattern_error::{Error, Kind};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub use config::{AccessLog, Colour, LogConfig, LogFormat};

/// Keeps the log writer's thread; dropping it writes out what is
/// buffered.
#[must_use = "dropping the guard stops the log writer"]
#[derive(Debug)]
pub struct LogGuard {
    _worker: writer::Worker,
    sink: writer::Sink,
}

impl LogGuard {
    /// Lines dropped because the buffer was full.
    pub fn dropped_lines(&self) -> u64 {
        self.sink.dropped()
    }
}

impl std::fmt::Debug for writer::Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("dropped", &self.dropped())
            .finish()
    }
}

/// Installs the process's log subscriber as `config` says. `RUST_LOG`,
/// when set, takes the place of [`LogConfig::filter`]. An error when the
/// filter or the file is unusable, or when a subscriber is already
/// installed.
pub fn init(config: &LogConfig) -> Result<LogGuard, Error> {
    install(config, None::<tracing_subscriber::layer::Identity>)
}

/// Installs the log subscriber as [`init`] does, with the trace export
/// `telemetry` describes beside it (its own filter,
/// [`TelemetryConfig::filter`](crate::telemetry::TelemetryConfig::filter));
/// the export is `None` when `telemetry` has no endpoint.
#[cfg(feature = "opentelemetry")]
#[cfg_attr(docsrs, doc(cfg(feature = "opentelemetry")))]
pub fn init_with_telemetry(
    config: &LogConfig,
    telemetry: &crate::telemetry::TelemetryConfig,
) -> Result<(LogGuard, Option<crate::telemetry::Telemetry>), Error> {
    let export = crate::telemetry::Telemetry::new(telemetry)?;
    let layer = export.as_ref().map(crate::telemetry::Telemetry::layer);
    let guard = install(config, layer)?;
    Ok((guard, export))
}

/// Installs the log layer, and `extra` beside it.
fn install<L>(config: &LogConfig, extra: Option<L>) -> Result<LogGuard, Error>
where
    L: Layer<tracing_subscriber::Registry> + Send + Sync + 'static,
{
    let filter = match std::env::var("RUST_LOG") {
        Ok(text) if !text.is_empty() => parse_filter(&text, "RUST_LOG")?,
        _ => parse_filter(&config.filter, "the log filter")?,
    };
    let (writer, to_terminal) = match &config.file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|err| {
                    Error::new(
                        Kind::InvalidInput,
                        format!("cannot open the log file {}: {err}", path.display()),
                    )
                })?;
            (Box::new(file) as Box<dyn std::io::Write + Send>, false)
        }
        None => (
            Box::new(std::io::stdout()) as Box<dyn std::io::Write + Send>,
            std::io::stdout().is_terminal(),
        ),
    };
    let (writer, worker) = writer::spawn(writer, config.buffer_bytes).map_err(|err| {
        Error::new(
            Kind::Internal,
            format!("cannot start the log writer thread: {err}"),
        )
    })?;
    let sink = writer.clone();
    let ansi = match config.colour {
        Colour::Auto => to_terminal,
        Colour::Always => true,
        Colour::Never => false,
    };
    let layer = match config.format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_ansi(ansi)
            .boxed(),
        LogFormat::Json => json::JsonLayer::new(writer).boxed(),
    };
    tracing_subscriber::registry()
        .with(extra)
        .with(layer.with_filter(filter))
        .try_init()
        .map_err(|err| {
            Error::new(
                Kind::Conflict,
                format!("a log subscriber is already installed: {err}"),
            )
        })?;
    Ok(LogGuard {
        _worker: worker,
        sink,
    })
}

/// A filter from directives (`info`, `info,my_crate=debug`).
pub(crate) fn parse_filter(text: &str, what: &str) -> Result<EnvFilter, Error> {
    EnvFilter::builder().parse(text).map_err(|err| {
        Error::new(
            Kind::InvalidInput,
            format!("{what} `{text}` is not a filter: {err}"),
        )
    })
}
