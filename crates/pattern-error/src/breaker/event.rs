//! What a breaker reports to its listener and to metrics.

use super::State;

/// Something a breaker did; see [`CircuitBreakerBuilder::on_event`](super::CircuitBreakerBuilder::on_event).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The breaker moved from one state to another.
    Transition {
        /// The state before.
        from: State,
        /// The state after.
        to: State,
    },
    /// A call was rejected in `state`.
    Rejected {
        /// The state that rejected it.
        state: State,
    },
}

/// Gauge of each breaker's state ([`State::gauge_value`]), labelled `breaker`.
pub const STATE_GAUGE: &str = "circuit_breaker_state";
/// Counter of transitions, labelled `breaker`, `from`, `to`.
pub const TRANSITIONS_TOTAL: &str = "circuit_breaker_transitions_total";
/// Counter of rejected calls, labelled `breaker`, `state`.
pub const REJECTIONS_TOTAL: &str = "circuit_breaker_rejections_total";
