//! Supervision: what happens when a running component's task ends.
//!
//! As in Erlang/OTP, each component has a [`Restart`] policy, and the system
//! one [`RestartStrategy`] that says which components restart together, within an
//! [`Intensity`] limit: more than `max_restarts` restarts within `within`
//! and the supervisor gives up and shuts the whole system down (escalation),
//! rather than restart forever. Restarts wait an exponential backoff
//! (backon), growing while failures keep coming within the intensity window.
//!
//! A panic in a component's task is caught by the runtime and handled as a
//! failure.
//!
//! The same policies supervise children that are not components: a
//! [`Supervisor`] runs named async functions of a stop token, added and
//! removed at run time (OTP's dynamic supervisor), nests inside another
//! ([`Supervisor::into_child`]), and counts its intensity for itself or per
//! child ([`Escalation`]); its rest-for-one follows the order children were
//! added in. Both count restarts with one [`RestartBudget`]. The process
//! registry of `pattern-server` is such a supervisor.
//!
//! | strategy | when component *c* fails |
//! | --- | --- |
//! | [`OneForOne`](RestartStrategy::OneForOne) | restart *c* alone |
//! | [`OneForAll`](RestartStrategy::OneForAll) | stop every other component (reverse order), restart all in order |
//! | [`RestForOne`](RestartStrategy::RestForOne) | stop the components that depend on *c*, directly or not (reverse order), restart *c* and them in order |
//!
//! What the supervisor guarantees, whatever the failures and their timing
//! (checked by a property test over random systems and schedules):
//! - a component never runs two instances at once: a restart starts it
//!   only after its previous run has ended or been stopped;
//! - a temporary component ([`Restart::Never`]) is started once: neither
//!   its own ending nor a group restart starts it again (a running one is
//!   stopped with its group and stays down);
//! - no more than `max_restarts` restarts happen within any `within`
//!   window: the next one escalates, and the whole system stops with
//!   [`StopReason::Escalated`](crate::lifecycle::StopReason::Escalated) (not
//!   live from then on);
//! - nothing outlives the system's stop: every component's task has ended
//!   or been aborted when `stop` returns.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), pattern_error::Error> {
//! use std::time::Duration;
//! use pattern_component::component::from_fn;
//! use pattern_component::lifecycle::{ComponentConfig, StopReason, System};
//! use pattern_component::supervision::{Restart, RestartStrategy};
//! use pattern_error::{Error, Kind};
//!
//! // A consumer that crashes every 100 ms, restarted with everything after
//! // it, at most 3 times a minute.
//! let system = System::builder()
//!     .component(from_fn("db", |ctx| async move {
//!         ctx.stop_token().cancelled().await;
//!         Ok(())
//!     }))
//!     .component_with(
//!         from_fn("consumer", |_ctx| async {
//!             tokio::time::sleep(Duration::from_millis(100)).await;
//!             Err(Error::new(Kind::Unavailable, "broker connection lost"))
//!         })
//!         .depends_on("db"),
//!         ComponentConfig::default().restart(Restart::Always),
//!     )
//!     .strategy(RestartStrategy::RestForOne)
//!     .intensity(3, Duration::from_secs(60))
//!     .restart_backoff(Duration::from_millis(10), Duration::from_secs(1))
//!     .build()?;
//!
//! // The fourth crash within the minute escalates: the system shuts down.
//! let summary = system.start().await?.stopped().await;
//! assert!(matches!(summary.reason, StopReason::Escalated(_)));
//! # Ok(())
//! # }
//! ```

mod budget;
mod outcome;
mod supervisor;

pub(crate) use budget::Backoff;
pub use budget::RestartBudget;
pub use outcome::StopOutcome;
pub(crate) use outcome::panic_message;
pub use supervisor::{
    Child, ChildInfo, ChildState, Escalation, Supervisor, SupervisorBuilder, WeakSupervisor,
};

use std::time::Duration;

/// When a component whose task ended is started again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Restart {
    /// Never (OTP's *temporary*): the component stays down.
    Never,
    /// When its task failed or panicked, not when it returned `Ok` (OTP's
    /// *transient*). The default.
    #[default]
    OnFailure,
    /// Whenever its task ends (OTP's *permanent*).
    Always,
}

impl Restart {
    /// Whether a run that ended, having `failed` or not, is started again.
    pub fn restarts(self, failed: bool) -> bool {
        match self {
            Restart::Never => false,
            Restart::OnFailure => failed,
            Restart::Always => true,
        }
    }
}

/// The members that restart when member `failed` of `count` does, in start
/// order: all of them (one for all), `failed` and those that depend on it
/// directly or not (rest for one: `depends(k, group)` says whether member
/// `k`, after `failed`, depends on one of `group`), or `failed` alone. The
/// one rule of both supervisors: a system's components depend on what
/// they declare, a [`Supervisor`]'s children on those added before them
/// (OTP's rest for one).
pub(crate) fn group(
    strategy: RestartStrategy,
    failed: usize,
    count: usize,
    depends: impl Fn(usize, &[usize]) -> bool,
) -> Vec<usize> {
    match strategy {
        RestartStrategy::OneForAll => (0..count).collect(),
        RestartStrategy::RestForOne => {
            let mut group = vec![failed];
            for k in failed + 1..count {
                if depends(k, &group) {
                    group.push(k);
                }
            }
            group
        }
        RestartStrategy::OneForOne => vec![failed],
    }
}

/// Which components restart together; see the [module docs](self).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RestartStrategy {
    /// Only the failed component. The default.
    #[default]
    OneForOne,
    /// Every component.
    OneForAll,
    /// The failed component and every one that depends on it, directly or
    /// not.
    RestForOne,
}

/// At most `max_restarts` restarts within `within`; one more escalates to a
/// system stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Intensity {
    /// Restarts allowed in the window.
    pub max_restarts: u32,
    /// The window.
    pub within: Duration,
}

impl Default for Intensity {
    /// 5 restarts in 60 seconds.
    fn default() -> Self {
        Self {
            max_restarts: 5,
            within: Duration::from_secs(60),
        }
    }
}
