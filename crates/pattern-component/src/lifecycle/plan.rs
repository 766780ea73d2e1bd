//! What a system is made of, and the state its supervisor and its handles
//! share: the plan (components in start order, with their settings), each
//! component's state, and the error of a failed start.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pattern_error::{Error, Kind};

use super::report::StopReason;
use crate::component::Component;
use crate::health::Status;
use crate::supervision::{Intensity, Restart, RestartStrategy};

/// Per-component settings; see [`SystemBuilder::component_with`](super::SystemBuilder::component_with).
#[derive(Clone, Copy, Debug, Default)]
#[must_use]
pub struct ComponentConfig {
    pub(crate) restart: Restart,
    pub(crate) start_timeout: Option<Duration>,
    pub(crate) stop_timeout: Option<Duration>,
}

impl ComponentConfig {
    /// The restart policy (default: [`Restart::OnFailure`]).
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// How long this component may take to start (default: the system's).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = Some(timeout);
        self
    }

    /// How long this component may take to stop (default: the system's).
    pub fn stop_timeout(mut self, timeout: Duration) -> Self {
        self.stop_timeout = Some(timeout);
        self
    }
}

pub(crate) struct Entry {
    pub(crate) component: Arc<dyn Component>,
    pub(crate) name: Arc<str>,
    pub(crate) options: ComponentConfig,
    pub(crate) ports: Vec<crate::ports::PortSpec>,
}

/// The validated plan of a system: components in start order and settings.
pub(crate) struct Plan {
    pub(crate) entries: Vec<Entry>,
    pub(crate) start_timeout: Duration,
    pub(crate) stop_timeout: Duration,
    pub(crate) start_all_timeout: Duration,
    pub(crate) stop_all_timeout: Duration,
    pub(crate) strategy: RestartStrategy,
    pub(crate) intensity: Intensity,
    pub(crate) backoff: (Duration, Duration),
}

impl Plan {
    pub(crate) fn start_timeout(&self, i: usize) -> Duration {
        self.entries[i]
            .options
            .start_timeout
            .unwrap_or(self.start_timeout)
    }

    /// Component `i`'s stop timeout: its own option, else the system's,
    /// raised to what the component says it needs to stop.
    pub(crate) fn stop_timeout(&self, i: usize) -> Duration {
        let entry = &self.entries[i];
        entry.options.stop_timeout.unwrap_or_else(|| {
            entry
                .component
                .stop_timeout()
                .map_or(self.stop_timeout, |needs| {
                    needs
                        .saturating_add(Duration::from_secs(1))
                        .max(self.stop_timeout)
                })
        })
    }
}

/// Where each component is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ComponentState {
    /// Not started yet.
    Pending,
    /// Starting.
    Starting,
    /// Started and (if it has a task) its task running.
    Running,
    /// Down, waiting for its supervisor to start it again.
    Restarting,
    /// Its task ended without error and it will not be restarted.
    Exited,
    /// It failed and will not be restarted.
    Failed(String),
    /// Stopped by the system.
    Stopped,
}

/// State shared between the supervisor and the handle.
pub(crate) struct Shared {
    pub(crate) states: Mutex<Vec<ComponentState>>,
    pub(crate) last_health: Mutex<Vec<Option<Status>>>,
    pub(crate) live: AtomicBool,
    /// Set when the stop begins: not ready from then on.
    pub(crate) stopping: AtomicBool,
    pub(crate) reason: Mutex<Option<StopReason>>,
}

impl Shared {
    pub(crate) fn new(plan: &Plan) -> Self {
        let n = plan.entries.len();
        Self {
            states: Mutex::new(vec![ComponentState::Pending; n]),
            last_health: Mutex::new(vec![None; n]),
            live: AtomicBool::new(true),
            stopping: AtomicBool::new(false),
            reason: Mutex::new(None),
        }
    }

    pub(crate) fn set_state(&self, i: usize, state: ComponentState) {
        self.states.lock().unwrap_or_else(PoisonError::into_inner)[i] = state;
    }

    pub(crate) fn state(&self, i: usize) -> ComponentState {
        self.states.lock().unwrap_or_else(PoisonError::into_inner)[i].clone()
    }
}

/// The error of a start that failed or timed out.
pub(crate) fn start_error(name: &str, cause: Result<Error, Duration>) -> Error {
    match cause {
        Ok(err) => err.context(format!("starting component {name:?}")),
        Err(timeout) => Error::new(
            Kind::Timeout,
            format!("starting component {name:?}: did not start within {timeout:?}"),
        ),
    }
}
