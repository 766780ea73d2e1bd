//! TCP Vegas for requests.

use std::time::Duration;

use super::{Algorithm, Sample, bounds};

/// TCP Vegas for requests: estimates the queue as
/// `limit × (1 − rtt_noload / rtt)` and keeps it between `alpha` and `beta`
/// (both scaled by log10 of the limit), where `rtt_noload` is the smallest
/// latency seen since the last probe. Grows while latency stays near the
/// no-load latency, shrinks as soon as it rises, and halves on a drop.
///
/// The no-load latency is probed again every `30 × limit` windows (with
/// jitter, between half that and all of it): it restarts from the latest
/// sample. Without the probe one unusually fast window (cached answers)
/// would set a no-load latency the service never sees again, and hold the
/// limit at its minimum for good.
#[derive(Clone, Debug)]
pub struct Vegas {
    initial: usize,
    min: usize,
    max: usize,
    rtt_noload: Option<Duration>,
    alpha: f64,
    beta: f64,
    /// Windows since the last probe of the no-load latency.
    since_probe: u64,
    /// This period's share (0.5 to 1) of the probe interval.
    probe_jitter: f64,
}

/// Windows between probes of the no-load latency, per unit of limit.
const PROBE_MULTIPLIER: f64 = 30.0;

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
            since_probe: 0,
            probe_jitter: jitter(),
        }
    }

    /// The no-load latency it judges by now.
    pub fn rtt_noload(&self) -> Option<Duration> {
        self.rtt_noload
    }
}

fn jitter() -> f64 {
    0.5 + fastrand::f64() / 2.0
}

impl Algorithm for Vegas {
    fn initial(&self) -> usize {
        self.initial
    }

    fn update(&mut self, limit: usize, sample: Sample) -> usize {
        if sample.rtt.is_zero() {
            return limit;
        }
        self.since_probe += 1;
        if self.since_probe as f64 > limit as f64 * PROBE_MULTIPLIER * self.probe_jitter {
            self.since_probe = 0;
            self.probe_jitter = jitter();
            self.rtt_noload = Some(sample.rtt);
            return limit;
        }
        let noload = match self.rtt_noload {
            Some(noload) if noload <= sample.rtt => noload,
            _ => {
                self.rtt_noload = Some(sample.rtt);
                return limit;
            }
        };
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
    use super::super::ok;
    use super::*;

    #[test]
    fn vegas_grows_at_no_load_latency_and_shrinks_when_it_rises() {
        let mut vegas = Vegas::new(20, 1, 1000);
        assert_eq!(
            vegas.update(20, ok(10, 20)),
            20,
            "the first sample sets the no-load latency"
        );
        assert_eq!(vegas.update(20, ok(10, 20)), 21, "no queue: grow by log10");
        // Latency doubled: queue ≈ 21 × 0.5 ≈ 11 ≥ beta × log10(21).
        assert!(vegas.update(21, ok(20, 21)) < 21);
        assert_eq!(vegas.update(20, ok(10, 20).with_drop()), 10);
    }

    /// One window far faster than the service ever is again (cached
    /// answers) pinned the limit at its minimum for good; the probe brings
    /// it back.
    #[test]
    fn one_very_fast_window_does_not_pin_the_limit() {
        let mut vegas = Vegas::new(50, 1, 1000);
        let mut limit = vegas.update(50, ok(10, 50));
        limit = vegas.update(limit, Sample::new(Duration::from_micros(10), 50));
        let mut lowest = limit;
        for _ in 0..2_000 {
            limit = vegas.update(limit, ok(10, limit));
            lowest = lowest.min(limit);
        }
        assert!(lowest <= 5, "the fast window pulls it down first: {lowest}");
        assert!(limit >= 40, "re-probed, it grows back: {limit}");
        assert_eq!(vegas.rtt_noload(), Some(Duration::from_millis(10)));
    }
}
