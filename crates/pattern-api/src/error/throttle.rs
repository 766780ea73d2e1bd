//! Logging of the server errors that come in floods.
//!
//! Under overload, every request shed (503), timed out (504) or refused by
//! a failing dependency is a server error; logging each one would add a
//! log line per rejected request exactly when the service is short of
//! time. The metrics count every one of them; the log gets at most one
//! event per second per kind, followed by how many were left out.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use pattern_error::{Error, Kind};
use tokio::time::Instant;

/// One window per throttled kind.
struct Window {
    /// When the next event may be logged (nanoseconds since [`epoch`]).
    next: AtomicU64,
    /// Events left out since the last one logged.
    suppressed: AtomicU64,
}

impl Window {
    const fn new() -> Self {
        Self {
            next: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether an event at `now` (nanoseconds) may be logged and, if so,
    /// how many were left out before it; else counts it as left out.
    fn admit(&self, now: u64) -> Option<u64> {
        let next = self.next.load(Ordering::Relaxed);
        let due = now >= next
            && self
                .next
                .compare_exchange(
                    next,
                    now.saturating_add(INTERVAL_NS),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok();
        if due {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

static WINDOWS: [Window; 3] = [Window::new(), Window::new(), Window::new()];

const INTERVAL_NS: u64 = 1_000_000_000;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Traces a server error: internal errors always (each is a bug), the
/// transient kinds at most once per second per kind.
pub(super) fn trace(error: &Error) {
    let window = match error.kind() {
        Kind::Overloaded => &WINDOWS[0],
        Kind::Timeout => &WINDOWS[1],
        Kind::Unavailable => &WINDOWS[2],
        _ => return pattern_error::report::trace(error),
    };
    let now = u64::try_from(epoch().elapsed().as_nanos()).unwrap_or(u64::MAX);
    let Some(suppressed) = window.admit(now) else {
        return;
    };
    pattern_error::report::trace(error);
    if suppressed > 0 {
        tracing::warn!(
            error.kind = error.kind().as_str(),
            suppressed,
            "{suppressed} more errors of this kind were answered but not logged"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_logs_once_a_second_then_says_how_many_it_left_out() {
        let window = Window::new();
        let second = INTERVAL_NS;
        assert_eq!(window.admit(5), Some(0), "the first is logged");
        for at in 6..1006 {
            assert_eq!(window.admit(at), None, "the rest of the second is not");
        }
        assert_eq!(window.admit(second + 4), None, "still within the second");
        assert_eq!(
            window.admit(second + 5),
            Some(1001),
            "then one, with the count"
        );
        assert_eq!(
            window.admit(3 * second),
            Some(0),
            "a quiet spell counts nothing"
        );
    }
}
