//! Operations routes: `/health/live`, `/health/ready` and `/metrics`.
//!
//! Liveness and readiness come from the system's
//! [`HealthHandle`]: ready is
//! 503 with each component's status and message while any component fails
//! (or before the system has started). `/metrics` renders the Prometheus
//! recorder ([`Prometheus`], feature `prometheus`), which exports every
//! latency as a histogram: with [`DEFAULT_BUCKETS`] (0.5 ms to 10 s), or
//! the buckets a [`PrometheusConfig`] gives, for all or by metric name.
//! Histograms, unlike summaries, add up across instances:
//! `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), pattern_error::Error> {
//! use pattern_api::testing::TestClient;
//! use pattern_component::component::from_fn;
//! use pattern_component::lifecycle::System;
//!
//! let system = System::builder()
//!     .component(from_fn("worker", |ctx| async move {
//!         ctx.stop_token().cancelled().await;
//!         Ok(())
//!     }))
//!     .build()?;
//! let client = TestClient::new(pattern_server::ops::routes(system.health_handle()));
//! client.get("/health/ready").await.assert_status(503); // not started yet
//! let running = system.start().await?;
//! client.get("/health/ready").await.assert_status(200);
//! client.get("/health/live").await.assert_status(200);
//! running.stop().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Probes that are never shed
//!
//! A busy service must shed its API, never the probe that keeps it alive
//! (a shed liveness probe gets a busy pod restarted, which cascades). Two
//! ways:
//! - on the API's port, exempt the routes from admission:
//!   [`ApiStack::exempt_from_admission`](pattern_api::stack::ApiStack::exempt_from_admission)
//!   (`["/health/live", "/health/ready", "/metrics"]`);
//! - on a management listener of their own: a second
//!   [`HttpServer`](crate::http::HttpServer) (its own address, connection
//!   limit and a small `ApiStack`, no rate limit) serving these routes, and
//!   the API's server made to start after it
//!   ([`after("management")`](crate::http::HttpServer::after)), so that it
//!   stops first and the probes answer "not ready" while the API drains.
//!   The reference service does this with `management.enabled`.

use pattern_api::routes::Routes;
use pattern_component::lifecycle::HealthHandle;

/// The health routes (and, with [`with_metrics`], `/metrics`).
pub fn routes(health: HealthHandle) -> axum::Router {
    build(health, None)
}

/// The health routes and `/metrics` rendering `render()`.
pub fn with_metrics(
    health: HealthHandle,
    render: impl Fn() -> String + Clone + Send + Sync + 'static,
) -> axum::Router {
    build(health, Some(std::sync::Arc::new(render)))
}

type Render = std::sync::Arc<dyn Fn() -> String + Send + Sync>;

fn build(health: HealthHandle, render: Option<Render>) -> axum::Router {
    let live = health.clone();
    let scrape = health.clone();
    let ready = health;
    let mut routes = Routes::new().health(
        move || {
            let h = live.health();
            (h.live, serde_json::json!({}))
        },
        move || {
            let h = ready.health();
            (
                h.ready,
                serde_json::to_value(&h.components).unwrap_or_default(),
            )
        },
    );
    if let Some(render) = render {
        // The health gauges (`system_ready`, `component_health`) are set
        // when health is asked for: asked here, a scrape reads them as the
        // probes would answer now.
        routes = routes.metrics(move || {
            let _ = scrape.health();
            render()
        });
    }
    routes.build().0
}

#[cfg(feature = "prometheus")]
mod prometheus;
#[cfg(feature = "prometheus")]
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
pub use prometheus::{DEFAULT_BUCKETS, MAX_BUCKETS, Prometheus, PrometheusConfig};

/// Installs the Prometheus recorder as the global `metrics` recorder, every
/// histogram with [`DEFAULT_BUCKETS`], and returns its handle
/// (`handle.render()` is the `/metrics` body). Nothing runs the recorder's
/// upkeep: prefer the [`Prometheus`] component, which does.
///
/// Fails with [`Kind::Conflict`](pattern_error::Kind::Conflict) if a
/// recorder is already installed.
#[cfg(feature = "prometheus")]
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
pub fn install_prometheus()
-> Result<metrics_exporter_prometheus::PrometheusHandle, pattern_error::Error> {
    prometheus::install(&PrometheusConfig::default())
}
