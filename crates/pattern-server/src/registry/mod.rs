//! Process registry: named long-running tasks with their state, restarts
//! and last error; stop or restart them by name; an admin route.
//!
//! A process is an async function of a stop token. The registry is a
//! [`Supervisor`] of them: it runs each as a task of its own, restarts it
//! after a failure or a panic within a windowed intensity (at most so many
//! restarts within a window, after a backoff that starts over after a
//! stable run), and records what happened. A process that returns `Ok` is
//! done and stays stopped (unless registered with
//! [`Restart::Always`](pattern_component::supervision::Restart::Always)).
//!
//! The intensity is counted per process ([`Escalation::Child`]): a process
//! failing past it stays [`Failed`](ChildState::Failed) while the others
//! run on. Processes that must restart together take a group
//! [strategy](ProcessRegistry::strategy), and a registry can itself be a
//! child of a supervisor ([`Supervisor::into_child`] on
//! [`ProcessRegistry::supervisor`]).
//!
//! A name runs at most one instance, whatever the interleaving of
//! `register`, `restart` and `stop` calls: a new instance starts only once
//! the one before it has ended. Stopping waits for the process to notice
//! its token for at most the [stop timeout](ProcessRegistry::stop_timeout),
//! then aborts it ([`StopOutcome::Abandoned`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), pattern_error::Error> {
//! use pattern_server::registry::{ChildState, ProcessRegistry};
//!
//! let registry = ProcessRegistry::new();
//! registry
//!     .register("expiry-sweeper", |stop| async move {
//!         stop.cancelled().await;
//!         Ok(())
//!     })
//!     .await?;
//! assert_eq!(registry.get("expiry-sweeper").unwrap().state, ChildState::Running);
//! registry.stop("expiry-sweeper").await?;
//! assert_eq!(registry.get("expiry-sweeper").unwrap().state, ChildState::Stopped);
//! # Ok(())
//! # }
//! ```

mod admin;

use std::future::Future;
use std::time::Duration;

pub use pattern_component::lifecycle::StopOutcome;
use pattern_component::supervision::{
    Child, Escalation, RestartStrategy, Supervisor, SupervisorBuilder,
};
pub use pattern_component::supervision::{ChildInfo, ChildState};
use pattern_error::Error;
use tokio_util::sync::CancellationToken;

pub use admin::admin_router;
#[cfg(feature = "openapi")]
pub use admin::admin_routes;

/// The registry; cloning shares it.
#[derive(Clone, Debug)]
pub struct ProcessRegistry {
    settings: SupervisorBuilder,
    supervisor: Supervisor,
}

impl ProcessRegistry {
    /// An empty registry restarting a failed process at most 10 times
    /// within a minute (after a backoff from 100 ms doubling to 5 s, so a
    /// process failing at once reaches the limit in about half a minute;
    /// starting over after a stable minute), each process on its own (one
    /// for one, intensity counted per process), and giving a stopping
    /// process 10 s before it is aborted.
    pub fn new() -> Self {
        Self::from_settings(
            Supervisor::builder()
                .name("processes")
                .escalation(Escalation::Child)
                .intensity(10, Duration::from_secs(60))
                .restart_backoff(Duration::from_millis(100), Duration::from_secs(5))
                .stop_timeout(Duration::from_secs(10)),
        )
    }

    /// A registry supervising its processes as `settings` say.
    pub fn from_settings(settings: SupervisorBuilder) -> Self {
        Self {
            supervisor: settings.clone().build(),
            settings,
        }
    }

    fn with(self, f: impl FnOnce(SupervisorBuilder) -> SupervisorBuilder) -> Self {
        Self::from_settings(f(self.settings))
    }
}

impl Default for ProcessRegistry {
    /// [`ProcessRegistry::new`]: 10 restarts a minute, 10 s to stop.
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessRegistry {
    /// A new registry restarting a failed process at most `max` times
    /// within any `within` (one more and the process is `Failed`); a
    /// process that fails now and then, less often than that, is
    /// restarted for ever. Settings make a new, empty registry: set them
    /// before registering.
    #[must_use]
    pub fn intensity(self, max: u32, within: Duration) -> Self {
        self.with(|s| s.intensity(max, within))
    }

    /// A new registry waiting from `min` (doubling to `max`) before a
    /// restart; the backoff starts over after a run with no restart within
    /// the intensity window.
    #[must_use]
    pub fn restart_backoff(self, min: Duration, max: Duration) -> Self {
        self.with(|s| s.restart_backoff(min, max))
    }

    /// A new registry giving a stopping process `timeout` to end before it
    /// is aborted.
    #[must_use]
    pub fn stop_timeout(self, timeout: Duration) -> Self {
        self.with(|s| s.stop_timeout(timeout))
    }

    /// A new registry restarting its processes together as `strategy`
    /// says (one for all; rest for one, in registration order).
    #[must_use]
    pub fn strategy(self, strategy: RestartStrategy) -> Self {
        self.with(|s| s.strategy(strategy))
    }

    /// The supervisor the processes run under (to nest it in another, say).
    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    /// Registers and starts a process, restarted after a failure (replacing
    /// and first stopping one of the same name). Call inside a tokio
    /// runtime; an error only if its runtime has ended.
    pub async fn register<F, Fut>(&self, name: impl Into<String>, run: F) -> Result<(), Error>
    where
        F: Fn(CancellationToken) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Error>> + Send + 'static,
    {
        self.register_child(Child::new(name, run)).await
    }

    /// Registers and starts `child`, with its own restart policy and stop
    /// timeout (replacing and first stopping one of the same name).
    pub async fn register_child(&self, child: Child) -> Result<(), Error> {
        self.supervisor.replace(child).await
    }

    /// Every process, by name.
    pub fn list(&self) -> Vec<ChildInfo> {
        let mut processes = self.supervisor.children();
        processes.sort_by(|a, b| a.name.cmp(&b.name));
        processes
    }

    /// One process.
    pub fn get(&self, name: &str) -> Option<ChildInfo> {
        self.supervisor.child(name)
    }

    /// Stops `name` and waits for it to end, for at most the stop timeout,
    /// then aborts it; [`Kind::NotFound`](pattern_error::Kind::NotFound) if
    /// unknown.
    pub async fn stop(&self, name: &str) -> Result<StopOutcome, Error> {
        self.supervisor.stop(name).await
    }

    /// Stops `name` (as [`stop`](Self::stop) does) and starts a new
    /// instance once it has ended, with its restart budget starting over;
    /// [`Kind::NotFound`](pattern_error::Kind::NotFound) if unknown,
    /// [`Kind::Conflict`](pattern_error::Kind::Conflict) if a stop or a
    /// removal came while the old instance was ending (it stays stopped).
    pub async fn restart(&self, name: &str) -> Result<(), Error> {
        self.supervisor.restart(name).await
    }

    /// Stops `name` and forgets it;
    /// [`Kind::NotFound`](pattern_error::Kind::NotFound) if unknown.
    pub async fn remove(&self, name: &str) -> Result<StopOutcome, Error> {
        self.supervisor.remove(name).await
    }

    /// Stops every process, each within the stop timeout (for the stop):
    /// all at once, or one by one, last registered first, under a group
    /// strategy; how each went, by name.
    pub async fn stop_all(&self) -> Vec<(String, StopOutcome)> {
        let mut outcomes = self.supervisor.stop_all().await;
        outcomes.sort_by(|a, b| a.0.cmp(&b.0));
        outcomes
    }
}
