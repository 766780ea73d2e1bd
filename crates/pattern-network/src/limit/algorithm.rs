//! Limit algorithms: how the limit moves with each observed call.

use std::fmt;
use std::time::Duration;

/// One finished call, as a limit algorithm sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// How long the call took.
    pub rtt: Duration,
    /// Calls in flight when it started (itself included).
    pub in_flight: usize,
    /// Whether the call was dropped: it failed with overload or a timeout,
    /// the signs that the limit is too high.
    pub dropped: bool,
}

/// Decides the concurrency limit from samples.
pub trait Algorithm: Send + fmt::Debug + 'static {
    /// The limit to start from.
    fn initial(&self) -> usize;

    /// Takes a sample and returns the new limit (the current one is `limit`).
    fn update(&mut self, limit: usize, sample: Sample) -> usize;
}

/// Additive increase, multiplicative decrease: +1 after a call that found
/// the limit well used, ×`backoff` after a dropped call or one slower than
/// `timeout`.
#[derive(Clone, Debug)]
pub struct Aimd {
    initial: usize,
    min: usize,
    max: usize,
    backoff: f64,
    timeout: Duration,
}

/// `(initial, min, max)` made consistent: `1 <= min <= initial <= max`.
fn bounds(initial: usize, min: usize, max: usize) -> (usize, usize, usize) {
    let min = min.max(1);
    let max = max.max(min);
    (initial.clamp(min, max), min, max)
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

/// TCP Vegas for requests: estimates the queue as
/// `limit × (1 − rtt_noload / rtt)` and keeps it between `alpha` and `beta`
/// (both scaled by log10 of the limit), where `rtt_noload` is the smallest
/// latency seen. Grows while latency stays near the no-load latency, shrinks
/// as soon as it rises, and halves on a drop.
#[derive(Clone, Debug)]
pub struct Vegas {
    initial: usize,
    min: usize,
    max: usize,
    rtt_noload: Option<Duration>,
    alpha: f64,
    beta: f64,
}

impl Vegas {
    /// Starts at `initial` and moves within `min..=max`; alpha 3, beta 6.
    pub fn new(initial: usize, min: usize, max: usize) -> Self {
        let (initial, min, max) = bounds(initial, min, max);
        Self {
            initial,
            min,
            max,
            rtt_noload: None,
            alpha: 3.0,
            beta: 6.0,
        }
    }
}

impl Algorithm for Vegas {
    fn initial(&self) -> usize {
        self.initial
    }

    fn update(&mut self, limit: usize, sample: Sample) -> usize {
        if sample.rtt.is_zero() {
            return limit;
        }
        let noload = self.rtt_noload.map_or(sample.rtt, |n| n.min(sample.rtt));
        self.rtt_noload = Some(noload);
        if sample.dropped {
            return (limit / 2).clamp(self.min, self.max);
        }
        // Only judge a limit that is being used.
        if sample.in_flight * 2 < limit {
            return limit;
        }
        let limit_f = limit as f64;
        let queue = (limit_f * (1.0 - noload.as_secs_f64() / sample.rtt.as_secs_f64())).ceil();
        let log = limit_f.log10().max(1.0);
        let next = if queue <= self.alpha * log {
            limit_f + log
        } else if queue >= self.beta * log {
            limit_f - log
        } else {
            limit_f
        };
        (next.round() as usize).clamp(self.min, self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(ms: u64, in_flight: usize) -> Sample {
        Sample {
            rtt: Duration::from_millis(ms),
            in_flight,
            dropped: false,
        }
    }

    #[test]
    fn aimd_grows_when_used_and_backs_off_on_drops() {
        let mut aimd = Aimd::new(10, 1, 100);
        assert_eq!(aimd.update(10, ok(5, 6)), 11);
        assert_eq!(aimd.update(10, ok(5, 2)), 10, "idle limit does not grow");
        let dropped = Sample {
            dropped: true,
            ..ok(5, 10)
        };
        assert_eq!(aimd.update(10, dropped), 9);
        assert_eq!(aimd.update(10, ok(6_000, 10)), 9, "over the timeout");
        assert_eq!(aimd.update(1, dropped), 1, "never below min");
    }

    #[test]
    fn vegas_grows_at_no_load_latency_and_shrinks_when_it_rises() {
        let mut vegas = Vegas::new(20, 1, 1000);
        assert_eq!(vegas.update(20, ok(10, 20)), 21, "no queue: grow by log10");
        // Latency doubled: queue ≈ 21 × 0.5 ≈ 11 ≥ beta × log10(21).
        assert!(vegas.update(21, ok(20, 21)) < 21);
        let dropped = Sample {
            dropped: true,
            ..ok(10, 20)
        };
        assert_eq!(vegas.update(20, dropped), 10);
    }
}
