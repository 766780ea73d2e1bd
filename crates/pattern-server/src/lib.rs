//! Server plumbing: the parts that keep a service tidy from start to stop.
//!
//! `pattern-server` assembles the other crates of the workspace into a running
//! HTTP service and owns what happens around it: how many tasks may run, and
//! that none is left behind at the stop.
//!
//! # What is in it
//!
//! | capability | items |
//! | --- | --- |
//! | server configuration and serving | [`http::HttpServer`]: hyper-util serving an axum router as a component (with [`after`](http::HttpServer::after) dependencies), validated [`http::ServerConfig`] (HTTP/1 and HTTP/2, keep-alive, header read and idle timeouts, max header size, HTTP/2 limits and pings, max connections overall and per client, pre-stop delay, drain deadline, TLS), connection limit that waits or refuses, graceful drain that reports the connections it cut and waits for upgraded (WebSocket) connections |
//! | documentation serving | `docs::routes` (feature `openapi`): `/openapi.json` from utoipa-axum routes, an offline `/docs` page (vendored assets) and the problem types at `/problems/{code}` |
//! | response handling and flow management | pattern-api's envelopes and [`ApiStack`](pattern_api::stack::ApiStack) in front of handlers: admission control (concurrency limit, bounded wait queue, 503 with `Retry-After`), compression, streaming bodies, deadlines propagated from the `x-request-timeout-ms` header |
//! | process registry | [`registry::ProcessRegistry`]: named tasks with state, restarts, last error and start time; stop or restart by name; [`registry::admin_router`] behind a bearer token (constant-time check, 401 problem) |
//! | concurrency management | [`tasks::TaskSet`]: bounded spawning, cancelled together on stop |
//! | database integration | `postgres::Database` (feature `postgres`): a deadpool-postgres pool as a component, DSN redacted, acquire timeout → 503, readiness from a health query, pool metrics, a circuit breaker that answers fast in an outage, `transaction` retrying serialization failures and deadlocks, embedded migrations that refuse a changed one |
//! | resource cleanup | components stop in reverse dependency order (stop accepting, drain, background processes, pool, metrics), each step logged with its duration; [`ops::Prometheus`] runs the recorder's upkeep while it runs and once at stop (a pull exporter: nothing is pushed anywhere) |
//! | logs | `logging` (feature `logging`): text or one JSON object per line, filter, colour on a terminal only, a bounded non-blocking writer, the access log's level |
//! | traces | `telemetry` (feature `opentelemetry`): spans to an OTLP collector, W3C trace context in and out, HTTP conventions, sampling, a bounded queue that drops (counted), the standard `OTEL_*` variables, trace ids in logs and problems |
//! | health and metrics routes | [`ops`]: `/health/live`, `/health/ready` (503 with per-component detail), `/metrics` (Prometheus, feature `prometheus`) |
//!
//! # Measured
//!
//! `SELECT 1` through `postgres::Database` against a bare deadpool-postgres
//! pool with the same timeouts, same run (`cargo xtask bench --bench
//! postgres` with `DATABASE_URL` from `cargo xtask pg start`): 1.00× the
//! time per query from one client and 1.02× with 16 concurrent clients
//! (throughput 1.00× and 0.98×).
//!
//! Serving, over loopback, one thread pinned to a core and the load on the
//! other (`cargo xtask bench --http --rounds 5 --seconds 5 --load
//! wrk,h2load`; medians of the ratios within each round, one run):
//!
//! | what | against | HTTP/1.1 (wrk) | HTTP/2 (h2load) |
//! | --- | --- | --- | --- |
//! | `HttpServer` around the bare handler | bare axum (its `serve`; on hyper's HTTP/2) | 0.95× | 0.98× |
//! | the reference service's whole serving path (`HttpServer`, the middleware, metrics, a JSON access line per request to a file) | bare axum / bare hyper's HTTP/2 | 0.74× | 0.58× |
//! | the same | axum + tower-http with JSON logs | 1.70× | |
//! | the same with its trace export on (10 % of traces sampled, sent over OTLP) | the same with it off | 0.92× | |
//!
//! In instructions per request (callgrind, `h2load --h1 -n 20000 -c 4`):
//! bare axum 13 800, `HttpServer` around the bare handler 15 200, the
//! whole serving path 23 000 (of which the JSON access line, event and
//! writing, 2 100), with the trace export 27 100; over HTTP/2 (`-c 4 -m 10`): bare hyper 26 100, axum
//! on it 30 400, `HttpServer` 32 000, the whole path 41 300. The ratios
//! move by about 0.05 from one run to the next on these machines; the
//! instruction counts do not.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::time::Duration;
//! use pattern_error::Kind;
//! use pattern_server::tasks::TaskSet;
//!
//! let tasks = TaskSet::new(1);
//! tasks.try_spawn(|stop| async move { stop.cancelled().await }).unwrap();
//! // The set is full: a second task is refused, not queued without bound.
//! let refused = tasks.try_spawn(|_| async {}).unwrap_err();
//! assert_eq!(refused.kind(), Kind::Overloaded);
//! assert_eq!(tasks.stop(Duration::from_millis(100)).await.aborted, 0);
//! # }
//! ```
//!
//! # Features
//!
//! | feature | brings |
//! | --- | --- |
//! | `prometheus` | [`ops::Prometheus`]: the Prometheus recorder behind `/metrics`, latencies as histograms with configurable buckets |
//! | `postgres` | `postgres`: a deadpool-postgres pool as a component, bounded waits (503), readiness, pool metrics |
//! | `logging` | `logging`: log set-up (tracing-subscriber) |
//! | `opentelemetry` | `telemetry`: trace export over OTLP/HTTP (opentelemetry, tracing-opentelemetry, opentelemetry-otlp); `logging::init_with_telemetry`; `pattern-api/opentelemetry` |
//! | `tls` | HTTPS in [`http::HttpServer`] (rustls with ring): certificate and key from PEM files, reloaded when they change, ALPN for h2 and http/1.1 |
//! | `openapi` | `docs`: `/openapi.json`, an offline `/docs` page (utoipa, vendored Swagger UI) and `/problems/{code}`; `registry::admin_routes` (the admin routes with their description and bearer scheme); `pattern-api/openapi` |
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "openapi")]
#[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
pub mod docs;
pub mod http;
#[cfg(feature = "logging")]
#[cfg_attr(docsrs, doc(cfg(feature = "logging")))]
pub mod logging;
pub mod ops;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub mod postgres;
pub mod registry;
pub mod tasks;
#[cfg(feature = "opentelemetry")]
#[cfg_attr(docsrs, doc(cfg(feature = "opentelemetry")))]
pub mod telemetry;
