//! A supervised child: its specification and what the supervisor reports
//! of it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use pattern_error::Error;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::supervision::Restart;

pub(super) type Run = Arc<
    dyn Fn(CancellationToken) -> Pin<Box<dyn Future<Output = Result<(), Error>> + Send>>
        + Send
        + Sync,
>;

/// A child to supervise: a name, an async function of a stop token, and
/// how it is restarted.
///
/// The function is called for every run; the run ends when its future
/// does. `Ok` is a normal end, an error or a panic a failure. A run is
/// asked to end by cancelling its token, and aborted when it has not ended
/// within its stop timeout.
#[must_use]
pub struct Child {
    pub(super) name: Arc<str>,
    pub(super) restart: Restart,
    pub(super) stop_timeout: Option<Duration>,
    pub(super) run: Run,
}

impl Child {
    /// A child named `name` running `run`, restarted after a failure
    /// ([`Restart::OnFailure`]) with the supervisor's stop timeout.
    pub fn new<F, Fut>(name: impl Into<String>, run: F) -> Self
    where
        F: Fn(CancellationToken) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Error>> + Send + 'static,
    {
        Self {
            name: name.into().into(),
            restart: Restart::default(),
            stop_timeout: None,
            run: Arc::new(move |stop| Box::pin(run(stop))),
        }
    }

    /// When this child is started again after its run ended.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// How long a run may take to end once asked, before it is aborted
    /// (default: the supervisor's). A nested supervisor's child needs the
    /// time its own children take to stop.
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = Some(timeout);
        self
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Debug for Child {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Child")
            .field("name", &self.name)
            .field("restart", &self.restart)
            .field("stop_timeout", &self.stop_timeout)
            .finish_non_exhaustive()
    }
}

/// Where a child is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChildState {
    /// Running.
    Running,
    /// Asked to stop; waiting for its run to end (or to be aborted at its
    /// stop timeout).
    Stopping,
    /// Failed, or stopped with its group, and waiting out the backoff
    /// before it runs again.
    Restarting,
    /// Stopped by request, stopped with its group or the supervisor, or
    /// ended without a restart due.
    Stopped,
    /// Failed and not restarted: its policy says so, or the restart
    /// intensity is exhausted.
    Failed,
}

/// A child as its supervisor sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChildInfo {
    /// Its name.
    pub name: String,
    /// Its state.
    pub state: ChildState,
    /// Times it was started again by its supervisor (after its own failure
    /// or with its group).
    pub restarts: u32,
    /// Its last failure, if any.
    pub last_error: Option<String>,
    /// When its current or last run started, in seconds since the Unix
    /// epoch.
    pub started_at: Option<u64>,
}
