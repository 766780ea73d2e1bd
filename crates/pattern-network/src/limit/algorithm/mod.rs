//! Limit algorithms: how the limit moves with each window of calls.

mod aimd;
mod gradient;
mod vegas;

use std::fmt;
use std::time::Duration;

pub use aimd::Aimd;
pub use gradient::Gradient2;
pub use vegas::Vegas;

/// What a window of finished calls looked like, as a limit algorithm sees
/// it (one call's sample when the window holds one call).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sample {
    /// How long the calls took, on average. A call given up by its caller
    /// counts with the time it had run (see [`LimitPermit`](super::LimitPermit)).
    pub rtt: Duration,
    /// The most calls in flight when one of them started (itself included).
    pub in_flight: usize,
    /// Whether a call was dropped: it failed with overload or a timeout,
    /// the signs that the limit is too high.
    pub dropped: bool,
}

impl Sample {
    /// A sample of calls that took `rtt` with up to `in_flight` in flight,
    /// none dropped.
    pub fn new(rtt: Duration, in_flight: usize) -> Self {
        Self {
            rtt,
            in_flight,
            dropped: false,
        }
    }

    /// The same sample, with a dropped call among its calls.
    #[must_use]
    pub fn with_drop(mut self) -> Self {
        self.dropped = true;
        self
    }
}

/// Decides the concurrency limit from samples.
pub trait Algorithm: Send + fmt::Debug + 'static {
    /// The limit to start from.
    fn initial(&self) -> usize;

    /// Takes a sample and returns the new limit (the current one is `limit`).
    fn update(&mut self, limit: usize, sample: Sample) -> usize;
}

/// `(initial, min, max)` made consistent: `1 <= min <= initial <= max`.
fn bounds(initial: usize, min: usize, max: usize) -> (usize, usize, usize) {
    let min = min.max(1);
    let max = max.max(min);
    (initial.clamp(min, max), min, max)
}

#[cfg(test)]
fn ok(ms: u64, in_flight: usize) -> Sample {
    Sample::new(Duration::from_millis(ms), in_flight)
}
