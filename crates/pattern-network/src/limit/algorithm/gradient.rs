//! Netflix's Gradient2: the recommended algorithm.

use super::{Algorithm, Sample, bounds};

/// Netflix's Gradient2, the recommended algorithm: compares each window's
/// latency (short RTT) with a long-term average that follows slowly (long
/// RTT), and scales the limit by their ratio.
///
/// Per window: `gradient = clamp(tolerance × long / short, 0.5, 1)`, then
/// `new = limit × gradient + queue` smoothed as
/// `limit × (1 − smoothing) + new × smoothing`. While latency matches its
/// long-term average the gradient is 1 and the limit grows by the queue
/// allowance; as latency rises past `tolerance` times the average, the
/// limit falls (at most by half per window). The long RTT is an
/// exponential average over `long_window` windows; when it is more than
/// twice the short RTT (latency just came back down after a long spell of
/// load) it also decays by 5 % a window, so the limit recovers in seconds
/// rather than waiting for the average to forget. A window with a dropped
/// call counts as the worst gradient, 0.5. A limit used less than half is
/// left as it is (neither raised nor, short of a drop, lowered), as in
/// Netflix's.
///
/// | setting | default |
/// | --- | --- |
/// | initial, min, max | 20, 20, 200 |
/// | [`tolerance`](Self::tolerance) | 1.5 |
/// | [`smoothing`](Self::smoothing) | 0.2 |
/// | [`queue`](Self::queue) | 4 |
/// | [`long_window`](Self::long_window) | 600 windows |
#[derive(Clone, Debug)]
pub struct Gradient2 {
    initial: usize,
    min: usize,
    max: usize,
    tolerance: f64,
    smoothing: f64,
    queue: f64,
    long_window: u32,
    /// The limit as a real number (the `usize` one is its floor).
    estimate: f64,
    /// The long RTT, in seconds, and how many windows it has seen (its
    /// first windows are a plain average, so it starts where latency is).
    long_rtt: f64,
    long_count: u32,
}

impl Default for Gradient2 {
    fn default() -> Self {
        Self::new(20, 20, 200)
    }
}

impl Gradient2 {
    /// Starts at `initial` and moves within `min..=max`.
    pub fn new(initial: usize, min: usize, max: usize) -> Self {
        let (initial, min, max) = bounds(initial, min, max);
        Self {
            initial,
            min,
            max,
            tolerance: 1.5,
            smoothing: 0.2,
            queue: 4.0,
            long_window: 600,
            estimate: initial as f64,
            long_rtt: 0.0,
            long_count: 0,
        }
    }

    /// How much slower than the long-term average a window may be before
    /// the limit falls (at least 1).
    #[must_use]
    pub fn tolerance(mut self, tolerance: f64) -> Self {
        self.tolerance = if tolerance.is_finite() {
            tolerance.max(1.0)
        } else {
            1.5
        };
        self
    }

    /// How far each window moves the limit toward its new value (0 to 1).
    #[must_use]
    pub fn smoothing(mut self, smoothing: f64) -> Self {
        self.smoothing = if smoothing.is_finite() {
            smoothing.clamp(0.01, 1.0)
        } else {
            0.2
        };
        self
    }

    /// How many calls may queue above the limit the gradient gives: the
    /// growth per window at steady latency.
    #[must_use]
    pub fn queue(mut self, calls: usize) -> Self {
        self.queue = calls as f64;
        self
    }

    /// How many windows the long-term average spans (at least 1).
    #[must_use]
    pub fn long_window(mut self, windows: u32) -> Self {
        self.long_window = windows.max(1);
        self
    }

    fn update_long(&mut self, short: f64) -> f64 {
        // A plain average over the first windows, then exponential.
        const WARMUP: u32 = 10;
        if self.long_count < WARMUP {
            self.long_count += 1;
            self.long_rtt += (short - self.long_rtt) / f64::from(self.long_count);
        } else {
            self.long_rtt += (short - self.long_rtt) / f64::from(self.long_window);
        }
        self.long_rtt
    }
}

impl Algorithm for Gradient2 {
    fn initial(&self) -> usize {
        self.initial
    }

    fn update(&mut self, limit: usize, sample: Sample) -> usize {
        let short = sample.rtt.as_secs_f64();
        if short <= 0.0 {
            return limit;
        }
        // Follow a limit set from outside (the first call, a restart).
        if self.estimate.floor() as usize != limit {
            self.estimate = limit as f64;
        }
        let long = self.update_long(short);
        if long / short > 2.0 {
            self.long_rtt *= 0.95;
        }
        // Do not grow a limit that is not being used.
        if !sample.dropped && (sample.in_flight as f64) < self.estimate / 2.0 {
            return limit;
        }
        let gradient = if sample.dropped {
            0.5
        } else {
            (self.tolerance * long / short).clamp(0.5, 1.0)
        };
        let target = self.estimate * gradient + self.queue;
        let next = self.estimate * (1.0 - self.smoothing) + target * self.smoothing;
        self.estimate = next.clamp(self.min as f64, self.max as f64);
        self.estimate.floor() as usize
    }
}

#[cfg(test)]
mod tests {
    use super::super::ok;
    use super::*;

    #[test]
    fn steady_latency_grows_the_limit_and_a_latency_rise_cuts_it() {
        let mut g = Gradient2::new(20, 1, 1000);
        let mut limit = 20;
        for _ in 0..50 {
            limit = g.update(limit, ok(10, limit));
        }
        assert!(
            limit > 40,
            "steady latency: grows by the queue allowance: {limit}"
        );
        let before = limit;
        for _ in 0..10 {
            limit = g.update(limit, ok(40, limit));
        }
        assert!(
            limit < before / 2,
            "latency ×4: the limit falls fast: {before} → {limit}"
        );
    }

    #[test]
    fn an_unused_limit_does_not_grow_and_a_drop_halves_the_gradient() {
        let mut g = Gradient2::new(100, 1, 1000);
        assert_eq!(g.update(100, ok(10, 10)), 100, "used at 10 of 100");
        let after = g.update(100, ok(10, 10).with_drop());
        assert!(after < 100, "{after}");
    }
}
