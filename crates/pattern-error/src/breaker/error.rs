//! The error an open breaker answers with.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::State;
use crate::{Error, Kind};

/// A call the breaker did not let through.
///
/// It converts into an [`Error`] of [`Kind::Unavailable`] that carries the
/// same retry-after hint, so HTTP edges answer 503 with `Retry-After` and
/// retry waits at least that long; the `Rejected` itself stays reachable with
/// [`Error::downcast_ref`].
///
/// ```
/// use std::time::Duration;
/// use pattern_error::{Kind, breaker::{CircuitBreaker, Rejected, State}};
///
/// let breaker = CircuitBreaker::builder("inventory").build().unwrap();
/// breaker.force_open();
/// let rejected = breaker.try_acquire().unwrap_err();
/// assert_eq!(rejected.state(), State::ForcedOpen);
///
/// let err = pattern_error::Error::from(rejected);
/// assert_eq!(err.kind(), Kind::Unavailable);
/// assert!(err.downcast_ref::<Rejected>().is_some());
/// ```
#[derive(Clone, Debug)]
pub struct Rejected {
    name: Arc<str>,
    state: State,
    retry_after: Option<Duration>,
}

impl Rejected {
    pub(super) fn new(name: Arc<str>, state: State, retry_after: Option<Duration>) -> Self {
        Self {
            name,
            state,
            retry_after,
        }
    }

    /// The name of the breaker that rejected the call.
    pub fn breaker(&self) -> &str {
        &self.name
    }

    /// The breaker's state when it rejected the call.
    pub fn state(&self) -> State {
        self.state
    }

    /// How long until the breaker lets a probe through (open state only;
    /// `None` when forced open or when the half-open probes are all taken).
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "circuit breaker {:?} is {}", self.name, self.state)?;
        match (self.state, self.retry_after) {
            (_, Some(after)) => write!(f, "; next try in {after:?}"),
            (State::HalfOpen, None) => f.write_str("; every probe slot is taken"),
            _ => Ok(()),
        }
    }
}

impl std::error::Error for Rejected {}

impl From<Rejected> for Error {
    fn from(rejected: Rejected) -> Self {
        let retry_after = rejected.retry_after;
        let err = Error::with_source(
            Kind::Unavailable,
            "circuit breaker rejected the call",
            rejected,
        );
        match retry_after {
            Some(after) => err.with_retry_after(after),
            None => err,
        }
    }
}
