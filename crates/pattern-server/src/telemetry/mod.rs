//! Trace export with OpenTelemetry (feature `opentelemetry`): a server
//! span per request through `pattern-api`'s stack, and any span a service
//! makes, sent to a collector over OTLP (HTTP/protobuf).
//!
//! - **Context in and out.** A request's server span continues the
//!   caller's trace (W3C `traceparent`/`tracestate`), and
//!   [`pattern_api::trace_context::inject`] writes the current one into an
//!   outgoing call's headers. The W3C propagator is installed as the
//!   global one.
//! - **HTTP conventions.** Server spans are named `GET /v1/items/{id}` and
//!   carry `http.request.method`, `http.route`, `url.path`,
//!   `server.address`, `http.response.status_code`, and `error.type` with
//!   an error status for a 5xx.
//! - **Sampling first.** OpenTelemetry's samplers, parent-based ratio
//!   among them ([`Sampler`]), decide before a request's span is made: an
//!   unsampled request carries its trace's ids and nothing more
//!   ([`pattern_api::trace_context::ServerSpans`]).
//! - **A bounded queue.** Finished spans wait in a queue of
//!   [`TelemetryConfig::max_queue_spans`] that a thread of its own
//!   encodes and sends in batches (a request thread never does); when the
//!   collector is slow or gone, spans are dropped and counted
//!   (`otel_spans_dropped_total{reason}`), and requests never wait.
//! - **Trace ids where people look.** JSON log lines carry `trace_id`
//!   (logging) and problem bodies too (`pattern-api`).
//! - **The standard variables.** [`TelemetryConfig::with_env`] applies
//!   `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`,
//!   `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` and the batch
//!   processor's `OTEL_BSP_*`, as every OpenTelemetry SDK does; the
//!   spans' resource has `OTEL_RESOURCE_ATTRIBUTES` and `telemetry.sdk.*`
//!   (its `service.name` is the configured one).
//!
//! Set it up with the logs, in one call; the
//! [`Telemetry`] is a component that sends what is queued when it stops:
//!
//! ```no_run
//! # async fn run() -> Result<(), pattern_error::Error> {
//! use pattern_server::logging::{self, LogConfig};
//! use pattern_server::telemetry::TelemetryConfig;
//!
//! let telemetry = TelemetryConfig {
//!     endpoint: Some("http://127.0.0.1:4318".to_owned()),
//!     service_name: "inventory".to_owned(),
//!     ..TelemetryConfig::default()
//! }
//! .with_env()?;
//! let (_logs, export) = logging::init_with_telemetry(&LogConfig::default(), &telemetry)?;
//! // Add `export` (when there is one) to the service's system, so it
//! // flushes at stop.
//! # Ok(()) }
//! ```
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `otel_spans_exported_total` | counter | |
//! | `otel_spans_dropped_total` | counter | `reason`: `queue_full`, `export_failed`, `shutdown` |
//!
//! The collector is reached over plain HTTP (a collector on the same host
//! or in the same pod forwards over TLS).

mod client;
mod config;
mod processor;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use pattern_component::component::{BoxFuture, Component, Running, StartContext};
use pattern_error::{Error, Kind};
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

pub use config::{Sampler, TelemetryConfig};
pub use processor::{DROPPED_TOTAL, EXPORTED_TOTAL};

/// The trace export, installed: its counts, and a [`Component`] named
/// `telemetry` that sends the queued spans when it stops. Cloning shares
/// it.
#[derive(Clone, Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
    /// The export's filter directives: the configured ones, the access
    /// log and the log's request span left out.
    filter: String,
    flusher: processor::Flusher,
    stats: Arc<processor::Stats>,
}

impl Telemetry {
    /// The export `config` describes, or `None` when it names no address.
    /// Sets the global propagator to W3C trace context. The spans are
    /// encoded and sent by a thread of its own (`trace-export`); an error
    /// for invalid settings, or when that thread cannot start.
    pub fn new(config: &TelemetryConfig) -> Result<Option<Self>, Error> {
        let config = config.clone().checked()?;
        let Some(endpoint) = config.traces_url() else {
            return Ok(None);
        };
        // The access event repeats the server span's attributes: it is a
        // log line, not a span event; the log's request span is not the
        // server span. (`checked` parsed the configured part.)
        let filter = format!(
            "{},{}=off,{}=off",
            config.filter,
            pattern_api::middleware::ACCESS_TARGET,
            pattern_api::middleware::REQUEST_TARGET,
        );
        let timeout = Duration::from_millis(config.export_timeout_ms);
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client::OtlpClient)
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(endpoint)
            .with_timeout(timeout)
            // No retries: a batch that fails is dropped and counted (the
            // exporter's own would wait with a thread sleep, its tokio
            // timer being a feature left off, and hold up the next batch).
            .with_retry_policy(opentelemetry_otlp::RetryPolicy::disabled())
            .build()
            .map_err(|err| Error::with_source(Kind::InvalidInput, "the OTLP exporter", err))?;
        // The SDK's detectors (`telemetry.sdk.*`, `OTEL_RESOURCE_ATTRIBUTES`),
        // then the configured service name over theirs.
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(config.service_name.clone())
            .build();
        opentelemetry_sdk::trace::SpanExporter::set_resource(&mut exporter, &resource);
        let (queue, stats) = processor::Queue::start(
            exporter,
            processor::Batching {
                max_queue: config.max_queue_spans,
                max_batch: config.max_batch_spans,
                interval: Duration::from_millis(config.export_interval_ms),
                timeout,
            },
            processor::Runner::Thread,
        )
        .map_err(|err| Error::with_source(Kind::Internal, "starting the trace export", err))?;
        let flusher = queue.flusher();
        let provider = SdkTracerProvider::builder()
            .with_sampler(sampler(&config))
            .with_resource(resource)
            .with_span_processor(queue)
            .build();
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        Ok(Some(Self {
            provider,
            filter,
            flusher,
            stats,
        }))
    }

    /// The export's layer, for a subscriber
    /// ([`init_with_telemetry`](crate::logging::init_with_telemetry) adds
    /// it): each request's server span
    /// ([`ServerSpans`](pattern_api::trace_context::ServerSpans)), and
    /// the tracing spans [`TelemetryConfig::filter`] lets through as
    /// OpenTelemetry spans (`tracing-opentelemetry`).
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: Subscriber + for<'span> LookupSpan<'span> + Send + Sync + 'static,
    {
        let tracer = self.provider.tracer("pattern-server");
        // What a span costs is kept to its attributes: no code location
        // or thread attributes, no busy/idle timing. The context is
        // activated on enter (the default): that starts the span, so its
        // events go to a started span, within its limits, instead of
        // piling up in its builder; and OpenTelemetry's own
        // instrumentation sees the current context.
        let spans = tracing_opentelemetry::layer()
            .with_tracer(tracer.clone())
            .with_error_records_to_exceptions(false)
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false);
        // Valid: the configured part was checked, the rest is ours.
        let filter = tracing_subscriber::EnvFilter::builder().parse_lossy(&self.filter);
        pattern_api::trace_context::ServerSpans::new(tracer)
            .and_then(spans)
            .with_filter(filter)
    }

    /// Spans sent to the collector so far.
    pub fn exported(&self) -> u64 {
        self.stats.exported.load(Ordering::Relaxed)
    }

    /// Spans dropped so far: the queue was full, their export failed, or
    /// they ended after the export stopped.
    pub fn dropped(&self) -> u64 {
        self.stats.queue_full.load(Ordering::Relaxed)
            + self.stats.export_failed.load(Ordering::Relaxed)
            + self.stats.after_stop.load(Ordering::Relaxed)
    }

    /// Sends every span queued now, waiting at most twice the export
    /// timeout.
    pub async fn flush(&self) -> Result<(), Error> {
        self.flusher
            .flush(false)
            .await
            .map_err(|err| Error::with_source(Kind::Unavailable, "flushing the spans", err))
    }
}

/// The SDK's sampler for `config`.
fn sampler(config: &TelemetryConfig) -> opentelemetry_sdk::trace::Sampler {
    use opentelemetry_sdk::trace::Sampler as Sdk;
    let ratio = config.sampler_ratio;
    match config.sampler {
        Sampler::AlwaysOn => Sdk::AlwaysOn,
        Sampler::AlwaysOff => Sdk::AlwaysOff,
        Sampler::TraceIdRatio => Sdk::TraceIdRatioBased(ratio),
        Sampler::ParentBasedAlwaysOn => Sdk::ParentBased(Box::new(Sdk::AlwaysOn)),
        Sampler::ParentBasedAlwaysOff => Sdk::ParentBased(Box::new(Sdk::AlwaysOff)),
        Sampler::ParentBasedTraceIdRatio => {
            Sdk::ParentBased(Box::new(Sdk::TraceIdRatioBased(ratio)))
        }
    }
}

impl Component for Telemetry {
    fn name(&self) -> &str {
        "telemetry"
    }

    /// Registers the export's counters at zero (the metrics recorder is
    /// installed by now).
    fn start(&self, _ctx: StartContext) -> BoxFuture<'_, Result<Running, Error>> {
        Box::pin(async {
            processor::register_counters();
            Ok(Running::idle())
        })
    }

    /// Sends what is queued and ends the export task: spans ended later
    /// are not sent.
    fn stop(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let result = self.flusher.flush(true).await;
            tracing::debug!(
                exported = self.exported(),
                dropped = self.dropped(),
                "trace export stopped"
            );
            result.map_err(|err| Error::with_source(Kind::Unavailable, "flushing the spans", err))
        })
    }
}
