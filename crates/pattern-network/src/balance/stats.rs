//! What the balancer knows about each endpoint: its live statistics.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::outlier::Outlier;

/// Live statistics of an endpoint. Lock-free: concurrent updates may lose
/// a sample now and then, which statistics can afford.
#[derive(Debug)]
pub(crate) struct Stats {
    /// Peak-EWMA latency in nanoseconds (f64 bits).
    ewma_ns: AtomicU64,
    /// When the EWMA was last updated (nanoseconds since `epoch`).
    ewma_at: AtomicU64,
    epoch: Instant,
    pub(crate) consecutive_failures: AtomicU32,
    /// Until when (nanoseconds since the balancer's epoch) it is ejected; 0
    /// when it is not.
    pub(crate) ejected_until: AtomicU64,
    pub(crate) ejections: AtomicU32,
    /// Failure-rate window: its start (nanoseconds since `epoch`), requests
    /// and failures.
    window_start: AtomicU64,
    window_requests: AtomicU32,
    window_failures: AtomicU32,
    /// When the endpoint joined (nanoseconds since `epoch`), for slow start.
    pub(crate) added_at: u64,
    /// Calls in flight.
    pub(crate) in_flight: AtomicUsize,
}

impl Stats {
    /// Statistics of an endpoint joining at `now` (nanoseconds since
    /// `epoch`) with a latency estimate of `initial_rtt`, dated now: an
    /// estimate dated at the epoch would have decayed to nothing, and the
    /// newcomer would win every comparison until its first answer.
    pub(crate) fn new(initial_rtt: Duration, epoch: Instant, now: u64) -> Self {
        Self {
            ewma_ns: AtomicU64::new((initial_rtt.as_nanos() as f64).to_bits()),
            ewma_at: AtomicU64::new(now),
            epoch,
            added_at: now,
            in_flight: AtomicUsize::new(0),
            consecutive_failures: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            ejections: AtomicU32::new(0),
            window_start: AtomicU64::new(0),
            window_requests: AtomicU32::new(0),
            window_failures: AtomicU32::new(0),
        }
    }

    /// Peak EWMA: a slower sample is taken at once, faster ones decay in
    /// with time constant tau (`per_ns` is 1 / tau in nanoseconds). `now`
    /// is nanoseconds since the epoch. No division: this runs once per call.
    #[inline]
    pub(crate) fn observe(&self, rtt_ns: u64, now: u64, per_ns: f64) {
        let rtt_ns = rtt_ns as f64;
        let old = f64::from_bits(self.ewma_ns.load(Ordering::Relaxed));
        let next = if rtt_ns > old {
            rtt_ns
        } else {
            let elapsed = now.saturating_sub(self.ewma_at.load(Ordering::Relaxed)) as f64;
            let keep = decay(elapsed * per_ns);
            old * keep + rtt_ns * (1.0 - keep)
        };
        self.ewma_ns.store(next.to_bits(), Ordering::Relaxed);
        self.ewma_at.store(now, Ordering::Relaxed);
    }

    /// The load P2C compares at `now` (nanoseconds since the epoch):
    /// the latency estimate, decayed for the time since its last sample
    /// (`per_ns` is 1 / tau in nanoseconds), times (calls in flight + 1).
    /// The decay lets an endpoint that answered slowly once, and so is not
    /// picked to take a new sample, look cheaper as time passes until it is
    /// tried again.
    #[inline]
    pub(crate) fn load(&self, now: u64, per_ns: f64, in_flight: usize) -> f64 {
        let ewma = f64::from_bits(self.ewma_ns.load(Ordering::Relaxed));
        let idle = now.saturating_sub(self.ewma_at.load(Ordering::Relaxed)) as f64;
        ewma * decay(idle * per_ns) * (in_flight + 1) as f64
    }

    /// The latency estimate now, undecayed, in nanoseconds.
    pub(crate) fn estimate_ns(&self) -> f64 {
        f64::from_bits(self.ewma_ns.load(Ordering::Relaxed))
    }

    /// The share of its load an endpoint takes at `now`, slow start
    /// ramping it linearly from 10 % to all over `window` nanoseconds
    /// after it joined.
    #[inline]
    pub(crate) fn ramp(&self, now: u64, window: u64) -> f64 {
        if window == 0 {
            return 1.0;
        }
        let age = now.saturating_sub(self.added_at);
        if age >= window {
            1.0
        } else {
            (age as f64 / window as f64).max(0.1)
        }
    }

    #[inline]
    pub(crate) fn is_ejected(&self, now_ns: u64) -> bool {
        self.ejected_until.load(Ordering::Acquire) > now_ns
    }

    /// Records an outcome at `now` (nanoseconds since the epoch); returns
    /// whether the endpoint should be ejected.
    #[inline]
    pub(crate) fn record(&self, failed: bool, now: u64, outlier: &Outlier) -> bool {
        let consecutive = if failed {
            self.consecutive_failures.fetch_add(1, Ordering::AcqRel) + 1
        } else {
            if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
                self.consecutive_failures.store(0, Ordering::Release);
            }
            0
        };
        let Some((rate, min)) = outlier.failure_rate else {
            return failed && consecutive >= outlier.consecutive_failures;
        };
        let interval = u64::try_from(outlier.interval.as_nanos()).unwrap_or(u64::MAX);
        if now.saturating_sub(self.window_start.load(Ordering::Relaxed)) > interval {
            self.window_start.store(now, Ordering::Relaxed);
            self.window_requests.store(0, Ordering::Relaxed);
            self.window_failures.store(0, Ordering::Relaxed);
        }
        let requests = self.window_requests.fetch_add(1, Ordering::Relaxed) + 1;
        let failures = self
            .window_failures
            .fetch_add(u32::from(failed), Ordering::Relaxed)
            + u32::from(failed);
        failed
            && (consecutive >= outlier.consecutive_failures
                || (requests >= min && f64::from(failures) / f64::from(requests) >= rate))
    }

    /// Nanoseconds since the epoch.
    #[inline]
    pub(crate) fn since_epoch(&self, at: Instant) -> u64 {
        since(self.epoch, at)
    }
}

/// Nanoseconds from `epoch` to `at`, in u64 arithmetic (a u128
/// `as_nanos` costs more; this saturates after 584 years).
#[inline]
pub(crate) fn since(epoch: Instant, at: Instant) -> u64 {
    let since = at.saturating_duration_since(epoch);
    since
        .as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(since.subsec_nanos()))
}

/// exp(-x); for the tiny steps between calls a short series is exact to
/// 1e-7 and far cheaper.
#[inline]
fn decay(x: f64) -> f64 {
    if x < 0.01 {
        1.0 - x + x * x / 2.0
    } else {
        (-x).exp()
    }
}
