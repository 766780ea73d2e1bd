//! Lifecycle: start in dependency order, supervise, stop in reverse.
//!
//! A [`System`] is a validated set of components (unique names, known
//! dependencies, no cycle, no port conflict). [`System::start`] binds every
//! declared port, then starts the components in dependency order, each
//! within its start timeout and all within the startup timeout. If one
//! fails, the ones already started are stopped in reverse order and the
//! error names the component and the cause.
//!
//! While it runs, a supervisor watches the components' tasks and restarts
//! them as their [`Restart`](crate::supervision::Restart) policy and the
//! system's [`RestartStrategy`](crate::supervision::RestartStrategy) say, escalating to a
//! stop past the [`Intensity`](crate::supervision::Intensity) limit.
//!
//! The stop happens once: on SIGINT or SIGTERM ([`System::run`],
//! [`RunningSystem::until_signal`]), when the stop token is cancelled,
//! or on escalation. Components stop in reverse start order, each within
//! its stop timeout and all within the stop-all timeout; one that does not
//! stop in time is abandoned (its task aborted) while the rest still stop.
//! The [`StopReport`] says what stopped and how long each took.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), pattern_error::Error> {
//! use pattern_component::component::from_fn;
//! use pattern_component::lifecycle::{StopReason, System};
//!
//! let worker = |name: &'static str| {
//!     from_fn(name, |ctx| async move {
//!         ctx.stop_token().cancelled().await;
//!         Ok(())
//!     })
//! };
//! let system = System::builder()
//!     .component(worker("api").depends_on("db"))
//!     .component(worker("db"))
//!     .build()?;
//! assert_eq!(system.start_order(), ["db", "api"]);
//!
//! let running = system.start().await?;
//! assert!(running.health().ready);
//! let summary = running.stop().await;
//! assert_eq!(summary.reason, StopReason::Requested);
//! let order: Vec<&str> = summary.components.iter().map(|c| c.name.as_str()).collect();
//! assert_eq!(order, ["api", "db"]);
//! assert!(summary.is_clean());
//! # Ok(())
//! # }
//! ```
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `component_health` | gauge ([`Status::gauge_value`](crate::health::Status::gauge_value)) | `component` |
//! | `system_ready`, `system_live` | gauge (1 or 0, as the probes answer) | |
//!
//! Each is set when health is asked for: by a probe, or by a scrape of
//! `pattern-server`'s `/metrics`, which asks first.

mod order;
mod plan;
mod report;
mod signal;
mod supervisor;
mod system;

/// How a component's stop went (the type supervision reports for children too).
pub use crate::supervision::StopOutcome;
pub use plan::{ComponentConfig, ComponentState};
pub use report::{StopReason, StopRecord, StopReport};
pub use signal::stop_signal;
pub use system::{
    HEALTH_GAUGE, HealthHandle, LIVE_GAUGE, READY_GAUGE, RunningSystem, System, SystemBuilder,
};
