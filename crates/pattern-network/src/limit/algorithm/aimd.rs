//! Additive increase, multiplicative decrease.

use std::time::Duration;

use super::{Algorithm, Sample, bounds};

/// Additive increase, multiplicative decrease: +1 after a window that found
/// the limit well used, ×`backoff` after a window with a dropped call or
/// slower than `timeout`.
#[derive(Clone, Debug)]
pub struct Aimd {
    initial: usize,
    min: usize,
    max: usize,
    backoff: f64,
    timeout: Duration,
}

impl Aimd {
    /// Starts at `initial`, moves within `min..=max`, multiplies by 0.9 on a
    /// drop, treats calls over 5 s as drops.
    pub fn new(initial: usize, min: usize, max: usize) -> Self {
        let (initial, min, max) = bounds(initial, min, max);
        Self {
            initial,
            min,
            max,
            backoff: 0.9,
            timeout: Duration::from_secs(5),
        }
    }

    /// The factor applied on a drop (0.5 to 1).
    #[must_use]
    pub fn backoff(mut self, factor: f64) -> Self {
        self.backoff = factor.clamp(0.5, 1.0);
        self
    }

    /// Calls slower than this count as drops.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl Algorithm for Aimd {
    fn initial(&self) -> usize {
        self.initial
    }

    fn update(&mut self, limit: usize, sample: Sample) -> usize {
        let next = if sample.dropped || sample.rtt > self.timeout {
            (limit as f64 * self.backoff).floor() as usize
        } else if sample.in_flight * 2 >= limit {
            // Only grow a limit that is being used.
            limit + 1
        } else {
            limit
        };
        next.clamp(self.min, self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::super::ok;
    use super::*;

    #[test]
    fn aimd_grows_when_used_and_backs_off_on_drops() {
        let mut aimd = Aimd::new(10, 1, 100);
        assert_eq!(aimd.update(10, ok(5, 6)), 11);
        assert_eq!(aimd.update(10, ok(5, 2)), 10, "idle limit does not grow");
        assert_eq!(aimd.update(10, ok(5, 10).with_drop()), 9);
        assert_eq!(aimd.update(10, ok(6_000, 10)), 9, "over the timeout");
        assert_eq!(aimd.update(1, ok(5, 10).with_drop()), 1, "never below min");
    }
}
