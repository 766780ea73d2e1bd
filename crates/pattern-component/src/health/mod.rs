//! Health: what each component says about itself, and the system's sum.
//!
//! A component reports [`Health`]: ok, degraded (working, with a problem
//! worth knowing) or failing, with an optional message. The system
//! aggregates them into liveness (the process should keep running) and
//! readiness (it should get traffic): see [`SystemHealth`].
//!
//! ```
//! use pattern_component::health::{Health, Status, SystemHealth};
//!
//! let report = SystemHealth::from_components(true, [
//!     ("db".to_owned(), Health::ok()),
//!     ("cache".to_owned(), Health::degraded("hit rate 12 %")),
//! ]);
//! assert!(report.live && report.ready, "degraded still serves");
//! assert_eq!(report.status(), Status::Degraded);
//!
//! let report = SystemHealth::from_components(true, [("db".to_owned(), Health::failing("pool exhausted"))]);
//! assert!(!report.ready);
//! ```

use std::fmt;

use serde::Serialize;

/// How a component is doing, worst last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Status {
    /// Working as intended.
    Ok,
    /// Working, with a problem worth knowing (slow, running on a fallback).
    Degraded,
    /// Not able to do its job.
    Failing,
}

impl Status {
    /// A stable `snake_case` name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Degraded => "degraded",
            Status::Failing => "failing",
        }
    }

    /// The value of the `component_health` gauge: 0 ok, 1 degraded, 2 failing.
    pub const fn gauge_value(self) -> f64 {
        match self {
            Status::Ok => 0.0,
            Status::Degraded => 1.0,
            Status::Failing => 2.0,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One component's health.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Health {
    /// The status.
    pub status: Status,
    /// What is wrong, or a note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Health {
    /// Working as intended.
    pub fn ok() -> Self {
        Self {
            status: Status::Ok,
            message: None,
        }
    }

    /// Working, with a problem worth knowing.
    pub fn degraded(message: impl Into<String>) -> Self {
        Self {
            status: Status::Degraded,
            message: Some(message.into()),
        }
    }

    /// Not able to do its job.
    pub fn failing(message: impl Into<String>) -> Self {
        Self {
            status: Status::Failing,
            message: Some(message.into()),
        }
    }
}

/// The health of a whole system, as `/health/live` and `/health/ready`
/// expose it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SystemHealth {
    /// The process is working and should not be restarted (also while it
    /// stops in order: a restart would cut its drain).
    pub live: bool,
    /// The process should get traffic: live, not stopping, and no
    /// component failing.
    pub ready: bool,
    /// Each component's health, in start order.
    pub components: Vec<ComponentHealth>,
}

/// A component's entry in [`SystemHealth`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ComponentHealth {
    /// The component's name.
    pub name: String,
    /// Its health.
    #[serde(flatten)]
    pub health: Health,
}

impl SystemHealth {
    /// Aggregates component reports; `live` says whether the system itself
    /// works (false once its supervisor gave up, or its start failed; an
    /// orderly stop stays live and is not ready).
    pub fn from_components(
        live: bool,
        components: impl IntoIterator<Item = (String, Health)>,
    ) -> Self {
        let components: Vec<ComponentHealth> = components
            .into_iter()
            .map(|(name, health)| ComponentHealth { name, health })
            .collect();
        let ready = live
            && components
                .iter()
                .all(|c| c.health.status != Status::Failing);
        Self {
            live,
            ready,
            components,
        }
    }

    /// The worst status of any component (ok when there is none).
    pub fn status(&self) -> Status {
        self.components
            .iter()
            .map(|c| c.health.status)
            .max()
            .unwrap_or(Status::Ok)
    }
}
