//! The shape every part of a service takes: the [`Component`] trait.
//!
//! A component has a name, the names of the components it needs started
//! first, a `start` that brings it up and may hand back a long-running task,
//! a `stop`, and a health report. A database pool, an HTTP server, a
//! background worker or a pipeline fit it; a plain async function becomes
//! one with [`from_fn`].
//!
//! ```
//! use pattern_component::component::{Component, Running, StartContext, BoxFuture};
//! use pattern_component::health::Health;
//! use pattern_error::Error;
//!
//! /// A cache that warms up at start and has no task of its own.
//! struct Cache;
//!
//! impl Component for Cache {
//!     fn name(&self) -> &str {
//!         "cache"
//!     }
//!     fn dependencies(&self) -> Vec<String> {
//!         vec!["db".to_owned()]
//!     }
//!     fn start(&self, _ctx: StartContext) -> BoxFuture<'_, Result<Running, Error>> {
//!         Box::pin(async { Ok(Running::idle()) })
//!     }
//!     fn health(&self) -> Health {
//!         Health::ok()
//!     }
//! }
//! ```

mod context;
mod from_fn;

use std::future::Future;
use std::pin::Pin;

pub use context::StartContext;
pub use from_fn::{FnComponent, from_fn};
use pattern_error::Error;

use crate::health::Health;
use crate::ports::PortSpec;

/// A boxed, sendable future, as [`Component`] methods return (the trait is
/// object-safe so a system can hold different components).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A part of a service with a lifecycle; see the [module docs](self).
///
/// Methods take `&self`: a component is shared between the runner, its
/// supervisor and health checks, so it keeps its mutable state inside
/// (atomics, a mutex, a channel).
pub trait Component: Send + Sync + 'static {
    /// A unique name within the system (used in errors, logs and metrics).
    fn name(&self) -> &str;

    /// Names of the components that must be running before this one starts
    /// (and that stop only after it stopped).
    fn dependencies(&self) -> Vec<String> {
        Vec::new()
    }

    /// The addresses this component listens on. The runner checks them for
    /// conflicts, binds them before any component starts, and hands each
    /// listener over through [`StartContext::take_listener`].
    fn ports(&self) -> Vec<PortSpec> {
        Vec::new()
    }

    /// Brings the component up. Return once it is ready to serve; hand any
    /// long-running work back in the [`Running`] value, where the runner
    /// watches it (an end or a panic there is a failure the supervisor
    /// acts on).
    fn start(&self, ctx: StartContext) -> BoxFuture<'_, Result<Running, Error>>;

    /// Asks the component to stop. Its stop token (from the
    /// [`StartContext`]) is cancelled just before; the runner then waits for
    /// its task, up to the stop timeout.
    fn stop(&self) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async { Ok(()) })
    }

    /// How long the component needs to stop, when it knows (an HTTP server:
    /// its pre-stop delay and drain deadline). Unless its options set a
    /// stop timeout, the runner gives it at least this (and a second more)
    /// instead of aborting it midway; still within the system's overall
    /// stop-all timeout.
    fn stop_timeout(&self) -> Option<std::time::Duration> {
        None
    }

    /// How the component is doing now. Keep it cheap: it is called by
    /// health endpoints.
    fn health(&self) -> Health {
        Health::ok()
    }
}

/// What a started component hands back: its long-running task, if it has
/// one.
#[must_use]
pub struct Running {
    pub(crate) task: Option<BoxFuture<'static, Result<(), Error>>>,
}

impl Running {
    /// A component with no task of its own (a pool, a cache): it runs until
    /// stopped.
    pub fn idle() -> Self {
        Self { task: None }
    }

    /// A component whose work is `task`; the runner spawns it. The task
    /// should end when the stop token is cancelled. Ending on its own, with
    /// an error or a panic, is reported to the supervisor.
    pub fn task(task: impl Future<Output = Result<(), Error>> + Send + 'static) -> Self {
        Self {
            task: Some(Box::pin(task)),
        }
    }
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("task", &self.task.is_some())
            .finish()
    }
}
