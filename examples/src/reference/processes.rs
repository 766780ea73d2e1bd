//! The background processes: an expiry sweeper, registered in the process
//! registry, stopped with the system.

use std::time::Duration;

use patterns::component::component::{BoxFuture, Component, Running, StartContext};
use patterns::component::health::Health;
use patterns::error::Error;
use patterns::server::registry::{ChildState, ProcessRegistry};

use super::store::Store;

/// Name of the sweeper in the registry (and at `/admin/processes`).
pub(crate) const SWEEPER: &str = "expiry-sweeper";

/// The component owning the registered processes.
#[derive(Debug)]
pub(crate) struct Processes {
    pub(crate) registry: ProcessRegistry,
    pub(crate) store: Store,
    pub(crate) ttl: Duration,
    pub(crate) every: Duration,
    pub(crate) dependencies: Vec<String>,
}

impl Component for Processes {
    fn name(&self) -> &str {
        "processes"
    }

    fn dependencies(&self) -> Vec<String> {
        self.dependencies.clone()
    }

    fn start(&self, _ctx: StartContext) -> BoxFuture<'_, Result<Running, Error>> {
        let (store, ttl, every) = (self.store.clone(), self.ttl, self.every);
        let sweeper = move |stop: tokio_util::sync::CancellationToken| {
            let store = store.clone();
            async move {
                let mut ticks = tokio::time::interval(every);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return Ok(()),
                        _ = ticks.tick() => {}
                    }
                    match store.sweep(ttl).await {
                        Ok(0) => {}
                        Ok(removed) => {
                            metrics::counter!("items_expired_total").increment(removed);
                            tracing::info!(removed, "expired items removed");
                        }
                        // The store is down for now: try again next round.
                        Err(err) if err.is_transient() => {
                            tracing::warn!(error = %err.report(), "sweep skipped");
                        }
                        // Anything else: fail, and the registry restarts us.
                        Err(err) => return Err(err),
                    }
                }
            }
        };
        Box::pin(async move {
            self.registry.register(SWEEPER, sweeper).await?;
            Ok(Running::idle())
        })
    }

    fn stop(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            self.registry.stop_all().await;
            Ok(())
        })
    }

    fn health(&self) -> Health {
        match self.registry.get(SWEEPER).map(|p| p.state) {
            Some(ChildState::Failed) => Health::failing("the expiry sweeper failed"),
            Some(ChildState::Restarting) => Health::degraded("the expiry sweeper is restarting"),
            _ => Health::ok(),
        }
    }
}
