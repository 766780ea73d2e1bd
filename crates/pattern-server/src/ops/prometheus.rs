//! The Prometheus recorder as a component: periodic upkeep, and a last one
//! at the stop.

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use pattern_component::component::{BoxFuture, Component, Running, StartContext};
use pattern_error::Error;

/// The global Prometheus recorder, as a [`Component`] named `"metrics"`.
///
/// Histograms accumulate samples between renders; while it runs, the
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
    /// Installs the recorder as the global `metrics` recorder.
    ///
    /// Fails with [`Kind::Conflict`](pattern_error::Kind::Conflict) if a
    /// recorder is already installed.
    pub fn install() -> Result<Self, Error> {
        Ok(Self {
            handle: super::install_prometheus()?,
            upkeep: Duration::from_secs(5),
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
