//! The Prometheus recorder as a component: histograms with configured
//! buckets, periodic upkeep, and a last one at the stop.

mod config;

use std::time::Duration;

use garde::Validate as _;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use pattern_component::component::{BoxFuture, Component, Running, StartContext};
use pattern_error::{Error, Kind};

pub use self::config::{DEFAULT_BUCKETS, MAX_BUCKETS, PrometheusConfig};

/// The global Prometheus recorder, as a [`Component`] named `"metrics"`.
///
/// Histograms (with [`DEFAULT_BUCKETS`], or as a [`PrometheusConfig`]
/// sets) accumulate samples between renders; while it runs, the
/// component drains them every [`upkeep_every`](Self::upkeep_every) (5 s by
/// default) so memory stays flat when nobody scrapes, and once more when it
/// stops so the last samples are folded in before the process exits.
/// Cloning shares the recorder.
///
/// ```no_run
/// # fn main() -> Result<(), pattern_error::Error> {
/// use pattern_component::lifecycle::System;
/// use pattern_server::ops::{self, Prometheus};
///
/// let prometheus = Prometheus::install()?;
/// let health = pattern_component::lifecycle::HealthHandle::detached();
/// let render = prometheus.clone();
/// let _routes = ops::with_metrics(health.clone(), move || render.render());
/// let _system = System::builder().component(prometheus).health_handle(&health).build()?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Prometheus {
    handle: PrometheusHandle,
    upkeep: Duration,
}

impl Prometheus {
    /// Installs the recorder as the global `metrics` recorder, every
    /// histogram with [`DEFAULT_BUCKETS`].
    ///
    /// Fails with [`Kind::Conflict`] if a recorder is already installed.
    pub fn install() -> Result<Self, Error> {
        Self::install_with(&PrometheusConfig::default())
    }

    /// Installs the recorder as the global `metrics` recorder, with the
    /// buckets and upkeep `config` sets.
    ///
    /// Fails with [`Kind::InvalidInput`] naming the bad setting, or
    /// [`Kind::Conflict`] if a recorder is already installed.
    pub fn install_with(config: &PrometheusConfig) -> Result<Self, Error> {
        Ok(Self {
            handle: install(config)?,
            upkeep: config.upkeep(),
        })
    }

    /// Runs the upkeep every `period` instead of every 5 s.
    #[must_use]
    pub fn upkeep_every(mut self, period: Duration) -> Self {
        self.upkeep = period.max(Duration::from_millis(1));
        self
    }

    /// The Prometheus text of every metric (the `/metrics` body).
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// The recorder's handle.
    pub fn handle(&self) -> &PrometheusHandle {
        &self.handle
    }
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prometheus")
            .field("upkeep", &self.upkeep)
            .finish_non_exhaustive()
    }
}

impl Component for Prometheus {
    fn name(&self) -> &str {
        "metrics"
    }

    fn start(&self, ctx: StartContext) -> BoxFuture<'_, Result<Running, Error>> {
        let handle = self.handle.clone();
        let period = self.upkeep;
        let stop = ctx.stop_token().clone();
        Box::pin(async move {
            Ok(Running::task(async move {
                let mut ticks = tokio::time::interval(period);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return Ok(()),
                        _ = ticks.tick() => handle.run_upkeep(),
                    }
                }
            }))
        })
    }

    fn stop(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            self.handle.run_upkeep();
            tracing::debug!("metrics upkeep done");
            Ok(())
        })
    }
}

/// The recorder `config` describes, installed as the global one.
pub(super) fn install(config: &PrometheusConfig) -> Result<PrometheusHandle, Error> {
    config.validate().map_err(|report| {
        Error::new(
            Kind::InvalidInput,
            format!("the Prometheus settings are invalid: {report}"),
        )
    })?;
    let invalid = |err| Error::with_source(Kind::InvalidInput, "the histogram buckets", err);
    let mut builder = PrometheusBuilder::new()
        .set_buckets(&config.buckets)
        .map_err(invalid)?;
    for (name, bounds) in &config.buckets_for {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(name.clone()), bounds)
            .map_err(invalid)?;
    }
    builder
        .install_recorder()
        .map_err(|e| Error::with_source(Kind::Conflict, "installing the Prometheus recorder", e))
}
