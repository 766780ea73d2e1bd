//! Supervision: what happens when a running component's task ends.
//!
//! As in Erlang/OTP, each component has a [`Restart`] policy, and the system
//! one [`Strategy`] that says which components restart together, within an
//! [`Intensity`] limit: more than `max_restarts` restarts within `within`
//! and the supervisor gives up and shuts the whole system down (escalation),
//! rather than restart forever. Restarts wait an exponential backoff
//! (backon), growing while failures keep coming within the intensity window.
//!
//! A panic in a component's task is caught by the runtime and handled as a
//! failure.
//!
//! | strategy | when component *c* fails |
//! | --- | --- |
//! | [`OneForOne`](Strategy::OneForOne) | restart *c* alone |
//! | [`OneForAll`](Strategy::OneForAll) | stop every other component (reverse order), restart all in order |
//! | [`RestForOne`](Strategy::RestForOne) | stop the components started after *c* (reverse order), restart *c* and them in order |
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), pattern_error::Error> {
//! use std::time::Duration;
//! use pattern_component::component::from_fn;
//! use pattern_component::lifecycle::{ComponentOptions, StopReason, System};
//! use pattern_component::supervision::{Restart, Strategy};
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
//!         ComponentOptions::default().restart(Restart::Always),
//!     )
//!     .strategy(Strategy::RestForOne)
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

/// Which components restart together; see the [module docs](self).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Strategy {
    /// Only the failed component. The default.
    #[default]
    OneForOne,
    /// Every component.
    OneForAll,
    /// The failed component and every one started after it.
    RestForOne,
}

/// At most `max_restarts` restarts within `within`; one more escalates to a
/// system shutdown.
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
