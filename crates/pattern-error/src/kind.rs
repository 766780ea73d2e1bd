//! The shared classification of failures.

use std::fmt;

/// What went wrong, in terms a caller can act on.
///
/// Every crate of the workspace classifies its failures with a `Kind`:
/// `pattern-api` turns it into an HTTP status, recovery strategies use
/// [`Kind::is_transient`] to decide whether trying again can help, and metrics
/// use [`Kind::as_str`] as a bounded label.
///
/// The enum is `#[non_exhaustive]`: match it with a wildcard arm.
///
/// ```
/// use pattern_error::Kind;
///
/// assert!(Kind::Timeout.is_transient());
/// assert!(!Kind::InvalidInput.is_transient());
/// assert_eq!(Kind::RateLimited.as_str(), "rate_limited");
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// The input could not be parsed at all (malformed JSON, a bad header).
    Malformed,
    /// The input was understood but breaks a rule (a field out of range).
    InvalidInput,
    /// The caller did not prove who it is.
    Unauthenticated,
    /// The caller is known but may not do this.
    Forbidden,
    /// The thing asked for does not exist.
    NotFound,
    /// The request conflicts with the current state (a duplicate, a stale version).
    Conflict,
    /// A request or a value is larger than a configured limit.
    TooLarge,
    /// The caller sent too much too fast; the error may carry a retry-after hint.
    RateLimited,
    /// This process has no capacity left for the call right now (a full queue,
    /// a concurrency limit, a bulkhead).
    Overloaded,
    /// The call did not finish within its deadline.
    Timeout,
    /// A dependency cannot be reached or refuses calls (a connection refused,
    /// an open circuit breaker, a database outage).
    Unavailable,
    /// The caller gave up on the call before it finished.
    Cancelled,
    /// A bug or an unexpected condition inside the service.
    Internal,
}

impl Kind {
    /// Every kind, in declaration order.
    pub const ALL: [Kind; 13] = [
        Kind::Malformed,
        Kind::InvalidInput,
        Kind::Unauthenticated,
        Kind::Forbidden,
        Kind::NotFound,
        Kind::Conflict,
        Kind::TooLarge,
        Kind::RateLimited,
        Kind::Overloaded,
        Kind::Timeout,
        Kind::Unavailable,
        Kind::Cancelled,
        Kind::Internal,
    ];

    /// Whether trying the same call again later can succeed.
    ///
    /// Transient: [`RateLimited`](Kind::RateLimited),
    /// [`Overloaded`](Kind::Overloaded), [`Timeout`](Kind::Timeout) and
    /// [`Unavailable`](Kind::Unavailable). Every other kind is permanent: the
    /// same input gives the same answer. A single error can override this with
    /// [`Error::with_transient`](crate::Error::with_transient).
    pub const fn is_transient(self) -> bool {
        matches!(
            self,
            Kind::RateLimited | Kind::Overloaded | Kind::Timeout | Kind::Unavailable
        )
    }

    /// Whether the caller is at fault (the request itself must change), as
    /// opposed to the service or its dependencies.
    pub const fn is_caller_fault(self) -> bool {
        matches!(
            self,
            Kind::Malformed
                | Kind::InvalidInput
                | Kind::Unauthenticated
                | Kind::Forbidden
                | Kind::NotFound
                | Kind::Conflict
                | Kind::TooLarge
                | Kind::RateLimited
                | Kind::Cancelled
        )
    }

    /// This kind's bit in a set of kinds.
    pub(crate) const fn bit(self) -> u32 {
        1 << self as u32
    }

    /// A stable `snake_case` name, used as a metrics label and an error code.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Malformed => "malformed",
            Kind::InvalidInput => "invalid_input",
            Kind::Unauthenticated => "unauthenticated",
            Kind::Forbidden => "forbidden",
            Kind::NotFound => "not_found",
            Kind::Conflict => "conflict",
            Kind::TooLarge => "too_large",
            Kind::RateLimited => "rate_limited",
            Kind::Overloaded => "overloaded",
            Kind::Timeout => "timeout",
            Kind::Unavailable => "unavailable",
            Kind::Cancelled => "cancelled",
            Kind::Internal => "internal",
        }
    }

    /// A short lowercase description, used as the message of an error that
    /// has none of its own.
    pub const fn description(self) -> &'static str {
        match self {
            Kind::Malformed => "malformed input",
            Kind::InvalidInput => "invalid input",
            Kind::Unauthenticated => "unauthenticated",
            Kind::Forbidden => "forbidden",
            Kind::NotFound => "not found",
            Kind::Conflict => "conflict",
            Kind::TooLarge => "too large",
            Kind::RateLimited => "rate limited",
            Kind::Overloaded => "overloaded",
            Kind::Timeout => "timed out",
            Kind::Unavailable => "unavailable",
            Kind::Cancelled => "cancelled",
            Kind::Internal => "internal error",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case() {
        let mut names: Vec<_> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        assert!(
            names
                .iter()
                .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Kind::ALL.len());
    }

    #[test]
    fn transient_kinds_are_not_caller_faults_except_rate_limit() {
        for kind in Kind::ALL {
            if kind.is_transient() && kind.is_caller_fault() {
                assert_eq!(kind, Kind::RateLimited);
            }
        }
    }
}
