//! The reference service: a small inventory API built only from the
//! patterns crates (`cargo run --example reference-service`).
//!
//! | piece | from |
//! | --- | --- |
//! | configuration: defaults, `reference-service.toml`, `REFSVC_` variables, validated | `patterns::component::config` |
//! | components started in dependency order, stopped in reverse, health | `patterns::component::lifecycle` |
//! | HTTP server, connection limit, header timeout, graceful drain | `patterns::server::http` |
//! | request id, tracing, metrics, problem+json, panics, shedding, rate limit per client IP, timeout, body limit | `patterns::api::stack::ApiStack` |
//! | envelopes, validation (422 per field), problem+json errors | `patterns::api` |
//! | `/health/live`, `/health/ready`, `/metrics` | `patterns::server::ops` |
//! | `/openapi.json`, `/docs` (offline) | `patterns::server::docs` |
//! | `/admin/processes` behind a bearer token, the expiry sweeper | `patterns::server::registry` |
//! | PostgreSQL pool, migrations, breaker (when configured) | `patterns::server::postgres` |
//!
//! Start order: `metrics`, `database` (when configured), `processes`,
//! `management` (when on), `http`; stop order the reverse: the server
//! stops accepting and drains first (probes on the management port answer
//! "not ready" meanwhile), the pool closes after the last request, the
//! metrics flush last.

mod api;
mod config;
mod processes;
mod store;

use patterns::api::middleware::DeadlineLayer;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use patterns::api::middleware::RateLimitLayer;
use patterns::api::stack::ApiStack;
use patterns::component::lifecycle::{HealthHandle, RunningSystem, StopReport, System};
use patterns::error::{Error, Kind};
use patterns::network::flow::rate::Quota;
use patterns::server::docs;
use patterns::server::http::HttpServer;
use patterns::server::ops::{self, Prometheus, PrometheusConfig};
use patterns::server::postgres::Database;
use patterns::server::registry::{ProcessRegistry, admin_routes};
use patterns::server::telemetry::Telemetry;

pub use config::{Admin, Config, Demo, Limits, Management, Server, Store as StoreConfig};
pub use store::{Item, NewItem};

use processes::Processes;
use store::Store;

/// A running reference service.
#[derive(Debug)]
pub struct Service {
    addr: SocketAddr,
    management_addr: Option<SocketAddr>,
    storage: &'static str,
    routes: Vec<String>,
    running: RunningSystem,
}

/// The process's one Prometheus recorder, installed with the first service's
/// settings (services started later in the process share it).
fn prometheus(config: &PrometheusConfig) -> Result<Prometheus, Error> {
    static RECORDER: Mutex<Option<Prometheus>> = Mutex::new(None);
    let mut slot = RECORDER.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(prometheus) = &*slot {
        return Ok(prometheus.clone());
    }
    let prometheus = Prometheus::install_with(config)?;
    *slot = Some(prometheus.clone());
    Ok(prometheus)
}

fn non_zero(value: u32, what: &str) -> Result<NonZeroU32, Error> {
    NonZeroU32::new(value)
        .ok_or_else(|| Error::new(Kind::InvalidInput, format!("{what} must be at least 1")))
}

/// The request span's level: in JSON every event logged while serving a
/// request carries its `request_id` (and `trace_id`) without a span, so
/// the span (a cost per request) is made only at DEBUG; text logs keep it
/// at INFO, for their readers. Exported traces do not need it: a request's
/// server span is made apart.
fn request_span_level(config: &Config) -> tracing::Level {
    match config.log.format {
        patterns::server::logging::LogFormat::Json => tracing::Level::DEBUG,
        _ => tracing::Level::INFO,
    }
}

/// The management listener's chain: its own small concurrency limit and
/// timeout, no rate limit.
pub fn management_middleware(config: &Config) -> ApiStack {
    ApiStack::new()
        .access_log(config.log.access.level())
        .span_level(request_span_level(config))
        .timeout(DeadlineLayer::new(Duration::from_millis(
            config.management.request_timeout_ms,
        )))
        .concurrency_limit(config.management.concurrency_limit)
}

/// The service's middleware chain as its configuration sets it: request
/// id, tracing, metrics, problem+json, panics, shedding at the concurrency
/// limit (after a bounded wait when `server.queue_depth` is set), rate
/// limit per client IP (neither for `/health/*` and `/metrics` when they
/// share the port), request timeout, body limit.
pub fn middleware(config: &Config) -> Result<ApiStack, Error> {
    let quota = Quota::per_second(non_zero(
        config.limits.requests_per_second,
        "limits.requests_per_second",
    )?)
    .allow_burst(non_zero(config.limits.burst, "limits.burst")?);
    let mut stack = ApiStack::new()
        .access_log(config.log.access.level())
        .span_level(request_span_level(config))
        // Probes and metrics are never shed nor rate limited.
        .exempt_from_admission(["/health/live", "/health/ready", "/metrics"])
        .timeout(DeadlineLayer::new(config.request_timeout()))
        .body_limit(config.server.body_limit_bytes)
        .concurrency_limit(config.server.concurrency_limit)
        .trusted_proxies(config.limits.trusted_proxies()?)
        .rate_limit(RateLimitLayer::per_client_network(
            quota,
            config.limits.max_clients,
            config.limits.ipv6_prefix,
        ));
    if config.server.queue_depth > 0 {
        stack = stack.admission_queue(
            config.server.queue_depth,
            Duration::from_millis(config.server.queue_wait_ms),
        );
    }
    Ok(stack)
}

impl Service {
    /// Starts the service: every component up and the port bound, or an
    /// error naming what failed (and nothing left running).
    pub async fn start(config: Config) -> Result<Self, Error> {
        Self::start_with_export(config, None).await
    }

    /// Starts the service as [`start`](Self::start) does, with the trace
    /// export `export` (set up with the logs) among its components: it
    /// starts first and stops last, sending the spans still queued.
    pub async fn start_with_export(
        config: Config,
        export: Option<Telemetry>,
    ) -> Result<Self, Error> {
        let prometheus = prometheus(&config.metrics)?;
        let (store, database) = match &config.database {
            Some(pg) => {
                let db = Database::new(pg)?.with_migrations(store::MIGRATIONS);
                (Store::Postgres(db.clone()), Some(db))
            }
            None => (Store::memory(config.store.max_items), None),
        };
        let registry = ProcessRegistry::new().stop_timeout(Duration::from_secs(5));
        let health = HealthHandle::detached();

        let (v1, mut openapi) = api::routes(store.clone(), config.demo.enabled).split_for_parts();
        let routes = route_lines(&openapi);
        let render = prometheus.clone();
        let mut ops =
            Router::new().merge(ops::with_metrics(health.clone(), move || render.render()));
        if let Some(token) = &config.admin.token {
            let (admin, documented) = admin_routes(registry.clone(), token.clone());
            ops = ops.merge(admin);
            // Documented where it is served: on the API's listener.
            if !config.management.enabled {
                openapi.merge(documented);
            }
        }
        // Every answer the middleware gives, on every operation.
        middleware(&config)?.document(&mut openapi);
        if config.management.enabled && config.server.http.addr.port() != 0 {
            // Served from the management listener, the document names the
            // API's own.
            let scheme = if config.server.http.tls.is_some() {
                "https"
            } else {
                "http"
            };
            openapi.servers = Some(vec![utoipa::openapi::Server::new(format!(
                "{scheme}://{}",
                config.server.http.addr
            ))]);
        }
        ops = ops.merge(docs::routes(openapi));
        let management = config.management.enabled.then(|| {
            HttpServer::new(
                "management",
                config.management.http.clone(),
                management_middleware(&config).apply(ops.clone()),
            )
            .after("metrics")
            .after("processes")
        });
        let app = if management.is_some() {
            // The problem types live where the problems are answered.
            v1.merge(docs::problem_routes())
        } else {
            Router::new().merge(v1).merge(ops)
        };
        let app = middleware(&config)?.apply(app);

        let mut server = HttpServer::new("http", config.server.http.clone(), app)
            .after("metrics")
            .after("processes");
        let mut shutdown = config.server.http.stop_timeout();
        if management.is_some() {
            // The API stops first: probes keep answering (not ready) while
            // it waits out its pre-stop delay and drains.
            server = server.after("management");
            shutdown += config.management.http.stop_timeout();
        }
        let mut after_store = Vec::new();
        let mut builder = System::builder()
            .health_handle(&health)
            .stop_all_timeout(shutdown + Duration::from_secs(30));
        if let Some(export) = export {
            builder = builder.component(export);
        }
        builder = builder.component(prometheus);
        if let Some(db) = database {
            builder = builder.component(db);
            server = server.after("database");
            after_store.push("database".to_owned());
        }
        builder = builder.component(Processes {
            registry,
            store,
            ttl: Duration::from_secs(config.store.item_ttl_secs),
            every: Duration::from_millis(config.store.sweep_interval_ms),
            dependencies: after_store,
        });
        if let Some(management) = management {
            builder = builder.component(management);
        }
        // The server's stop timeout follows its pre-stop delay and drain
        // (`Component::stop_timeout`).
        let running = builder.component(server).build()?.start().await?;
        let addr = running
            .addr("http", "http")
            .ok_or_else(|| Error::new(Kind::Internal, "the server's port was not bound"))?;
        let management_addr = running.addr("management", "http");
        Ok(Self {
            addr,
            management_addr,
            storage: if config.database.is_some() {
                "postgres"
            } else {
                "memory"
            },
            routes,
            running,
        })
    }

    /// The address it listens on (the real port when configured with 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The management listener's address, when it has its own.
    pub fn management_addr(&self) -> Option<SocketAddr> {
        self.management_addr
    }

    /// Where items are kept: `"memory"` or `"postgres"`.
    pub fn storage(&self) -> &'static str {
        self.storage
    }

    /// The `/v1` routes, one `METHOD PATH` line each, from the OpenAPI
    /// document.
    pub fn routes(&self) -> &[String] {
        &self.routes
    }

    /// Stops it: the server drains first, components stop in reverse.
    pub async fn stop(self) -> StopReport {
        self.running.stop().await
    }

    /// Runs until SIGINT or SIGTERM, then stops as [`stop`](Self::stop).
    /// The signal handlers are installed by this call, before the future is
    /// polled.
    pub fn until_signal(self) -> impl std::future::Future<Output = StopReport> + Send {
        self.running.until_signal()
    }

    /// The components and their states.
    pub fn running(&self) -> &RunningSystem {
        &self.running
    }
}

/// `METHOD  PATH` for every operation of the document.
fn route_lines(openapi: &utoipa::openapi::OpenApi) -> Vec<String> {
    let mut lines = Vec::new();
    for (path, item) in &openapi.paths.paths {
        let methods = [
            ("GET", item.get.is_some()),
            ("POST", item.post.is_some()),
            ("PUT", item.put.is_some()),
            ("PATCH", item.patch.is_some()),
            ("DELETE", item.delete.is_some()),
        ];
        let methods: Vec<&str> = methods
            .iter()
            .filter(|(_, on)| *on)
            .map(|(m, _)| *m)
            .collect();
        lines.push(format!("{:<12} {path}", methods.join(", ")));
    }
    lines
}
