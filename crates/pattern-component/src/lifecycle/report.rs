//! What a stopped system reports.

use std::fmt;
use std::time::Duration;

use crate::supervision::StopOutcome;

/// Why the system stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// The stop token was cancelled (by the caller or a signal handler).
    Requested,
    /// SIGINT or SIGTERM.
    Signal,
    /// The supervisor gave up: a component failed past the restart intensity.
    Escalated(String),
}

/// One component's line in a [`StopReport`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StopRecord {
    /// The component.
    pub name: String,
    /// How its stop went.
    pub outcome: StopOutcome,
    /// How long it took.
    pub took: Duration,
}

/// What stopped, in order, and how long each took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StopReport {
    /// Why the system stopped.
    pub reason: StopReason,
    /// Each component, in the order they were stopped (reverse start order).
    pub components: Vec<StopRecord>,
    /// The whole stop.
    pub took: Duration,
}

impl StopReport {
    /// Whether every running component stopped cleanly and nothing escalated.
    pub fn is_clean(&self) -> bool {
        !matches!(self.reason, StopReason::Escalated(_))
            && self
                .components
                .iter()
                .all(|c| matches!(c.outcome, StopOutcome::Stopped | StopOutcome::NotRunning))
    }
}

impl fmt::Display for StopReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "stopped ({:?}) in {:?}", self.reason, self.took)?;
        for c in &self.components {
            writeln!(f, "  {:<20} {:?} in {:?}", c.name, c.outcome, c.took)?;
        }
        Ok(())
    }
}
