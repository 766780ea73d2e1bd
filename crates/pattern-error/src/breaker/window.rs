//! Sliding windows of call outcomes.
//!
//! Both windows are lock-free. The count window keeps its call counter in
//! per-thread shards, so a successful call in the closed state writes only
//! to a cache line its own thread uses; failures and slow calls, which are
//! what the breaker judges, record their position in small rings.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use super::config::Window;
use super::tagged::{Tagged, lap_tag};
use crate::shard::Counter;

/// What one call did, as the window sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Outcome {
    pub(super) failure: bool,
    pub(super) slow: bool,
}

/// Counts over the window at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Calls in the window.
    pub calls: u64,
    /// Failed calls in the window.
    pub failures: u64,
    /// Slow calls in the window (failed or not).
    pub slow: u64,
}

impl Snapshot {
    /// Failed calls over calls (0 when empty).
    pub fn failure_rate(&self) -> f64 {
        ratio(self.failures, self.calls)
    }

    /// Slow calls over calls (0 when empty).
    pub fn slow_call_rate(&self) -> f64 {
        ratio(self.slow, self.calls)
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

#[derive(Debug)]
pub(super) enum SlidingWindow {
    Count(CountWindow),
    Time(TimeWindow),
}

impl SlidingWindow {
    pub(super) fn new(config: Window, minimum_calls: u32) -> Self {
        match config {
            Window::Count { size } => SlidingWindow::Count(CountWindow::new(size, minimum_calls)),
            Window::Time { duration, buckets } => {
                SlidingWindow::Time(TimeWindow::new(duration, buckets))
            }
        }
    }

    /// Whether recording needs the current time.
    #[inline]
    pub(super) fn needs_clock(&self) -> bool {
        matches!(self, SlidingWindow::Time(_))
    }

    /// Records an outcome at `now` (nanoseconds since the breaker's epoch;
    /// ignored by the count window). Returns the snapshot when the outcome
    /// may have tripped the breaker: a failure, a slow call, or any call
    /// while the window may be reaching its minimum number of calls (a
    /// success then can complete a breaching window).
    /// Records a quick success if that needs no judgement (a warm count
    /// window); returns false, recording nothing, otherwise.
    #[inline]
    pub(super) fn record_quick_success(&self) -> bool {
        match self {
            SlidingWindow::Count(w) if w.warm.load(Relaxed) => {
                w.count_call();
                true
            }
            _ => false,
        }
    }

    pub(super) fn record(&self, outcome: Outcome, now: u64) -> Option<Snapshot> {
        match self {
            SlidingWindow::Count(w) => w.record(outcome),
            SlidingWindow::Time(w) => w.record(outcome, now),
        }
    }

    pub(super) fn snapshot(&self, now: u64) -> Snapshot {
        match self {
            SlidingWindow::Count(w) => w.snapshot(),
            SlidingWindow::Time(w) => w.snapshot(now),
        }
    }

    pub(super) fn reset(&self) {
        match self {
            SlidingWindow::Count(w) => w.reset(),
            SlidingWindow::Time(w) => w.reset(),
        }
    }
}

/// The last `size` calls.
#[derive(Debug)]
pub(super) struct CountWindow {
    size: u64,
    /// Calls recorded; the sum is the call sequence number.
    calls: Counter,
    /// The sequence number at the last reset: positions at or below it
    /// belong to an earlier window.
    base: AtomicU64,
    minimum_calls: u64,
    /// Whether the window has held `minimum_calls` since the last reset.
    /// Until then every call is judged; after, only failures and slow calls
    /// can raise a rate.
    warm: AtomicBool,
    failures: Ring,
    slow: Ring,
}

impl CountWindow {
    fn new(size: u32, minimum_calls: u32) -> Self {
        Self {
            size: u64::from(size),
            calls: Counter::new(),
            base: AtomicU64::new(0),
            minimum_calls: u64::from(minimum_calls),
            warm: AtomicBool::new(false),
            failures: Ring::new(size as usize),
            slow: Ring::new(size as usize),
        }
    }

    fn total(&self) -> u64 {
        self.calls.sum()
    }

    /// Counts one call.
    #[inline]
    fn count_call(&self) {
        self.calls.add_one();
    }

    fn record(&self, outcome: Outcome) -> Option<Snapshot> {
        self.count_call();
        if !outcome.failure && !outcome.slow {
            if self.warm.load(Relaxed) {
                return None;
            }
            let snapshot = self.snapshot();
            if snapshot.calls >= self.minimum_calls {
                self.warm.store(true, Relaxed);
            }
            return Some(snapshot);
        }
        let position = self.total();
        if outcome.failure {
            self.failures.push(position);
        }
        if outcome.slow {
            self.slow.push(position);
        }
        Some(self.snapshot_at(position))
    }

    fn snapshot(&self) -> Snapshot {
        self.snapshot_at(self.total())
    }

    fn snapshot_at(&self, position: u64) -> Snapshot {
        let base = self.base.load(Relaxed);
        // Positions above `oldest` are in the window.
        let oldest = position.saturating_sub(self.size).max(base);
        Snapshot {
            calls: position.saturating_sub(base).min(self.size),
            failures: self.failures.count_above(oldest),
            slow: self.slow.count_above(oldest),
        }
    }

    fn reset(&self) {
        self.base.store(self.total(), Relaxed);
        self.warm.store(false, Relaxed);
    }
}

/// Positions (call sequence numbers) of failures or slow calls; holds as
/// many as the window, so every one still in the window is here.
#[derive(Debug)]
struct Ring {
    slots: Box<[AtomicU64]>,
    head: AtomicUsize,
}

impl Ring {
    fn new(len: usize) -> Self {
        Self {
            slots: (0..len).map(|_| AtomicU64::new(0)).collect(),
            head: AtomicUsize::new(0),
        }
    }

    fn push(&self, position: u64) {
        let index = self.head.fetch_add(1, Relaxed) % self.slots.len();
        self.slots[index].store(position, Relaxed);
    }

    fn count_above(&self, oldest: u64) -> u64 {
        self.slots
            .iter()
            .filter(|slot| slot.load(Relaxed) > oldest)
            .count() as u64
    }
}

/// The calls of the last `duration`, in buckets.
///
/// A bucket's counters carry the lap of the window they count (tagged
/// words, [`Tagged`]): a call into a bucket that still counts an older lap
/// starts it afresh in the same compare-and-swap that counts it, so calls
/// recorded at once are never lost to a reset, and a reader only adds
/// counts of the lap each bucket should hold now.
#[derive(Debug)]
pub(super) struct TimeWindow {
    bucket_nanos: u64,
    buckets: Box<[Bucket]>,
}

#[derive(Debug)]
struct Bucket {
    calls: Tagged,
    failures: Tagged,
    slow: Tagged,
}

impl TimeWindow {
    fn new(duration: Duration, buckets: u32) -> Self {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        Self {
            bucket_nanos: (nanos / u64::from(buckets)).max(1),
            buckets: (0..buckets)
                .map(|_| Bucket {
                    calls: Tagged::new(),
                    failures: Tagged::new(),
                    slow: Tagged::new(),
                })
                .collect(),
        }
    }

    /// The bucket `now` falls in, and the lap's tag.
    fn slot(&self, now: u64) -> (&Bucket, u32) {
        let slice = now / self.bucket_nanos;
        let n = self.buckets.len() as u64;
        (&self.buckets[(slice % n) as usize], lap_tag(slice / n))
    }

    fn record(&self, outcome: Outcome, now: u64) -> Option<Snapshot> {
        let (bucket, tag) = self.slot(now);
        bucket.calls.add(tag);
        if outcome.failure {
            bucket.failures.add(tag);
        }
        if outcome.slow {
            bucket.slow.add(tag);
        }
        // Buckets expire, so the call count can fall below the minimum and
        // rise again with any call: judge every one.
        Some(self.snapshot(now))
    }

    fn snapshot(&self, now: u64) -> Snapshot {
        let current = now / self.bucket_nanos;
        let n = self.buckets.len() as u64;
        let mut snapshot = Snapshot::default();
        for (i, bucket) in self.buckets.iter().enumerate() {
            // The latest slice this bucket holds, at or before `current`:
            // within the last `n`, so inside the window.
            let back = (current % n + n - i as u64) % n;
            let Some(slice) = current.checked_sub(back) else {
                continue;
            };
            let tag = lap_tag(slice / n);
            snapshot.calls += bucket.calls.get(tag);
            snapshot.failures += bucket.failures.get(tag);
            snapshot.slow += bucket.slow.get(tag);
        }
        snapshot
    }

    fn reset(&self) {
        for bucket in self.buckets.iter() {
            bucket.calls.clear();
            bucket.failures.clear();
            bucket.slow.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAIL: Outcome = Outcome {
        failure: true,
        slow: false,
    };
    const OK: Outcome = Outcome {
        failure: false,
        slow: false,
    };

    #[test]
    fn count_window_forgets_calls_older_than_its_size() {
        let w = CountWindow::new(3, 2);
        assert_eq!(w.record(FAIL).unwrap().failures, 1);
        // Judged until the minimum is reached, then only failures.
        assert_eq!(w.record(OK).unwrap().calls, 2);
        assert_eq!(w.record(OK), None);
        assert_eq!(
            w.snapshot(),
            Snapshot {
                calls: 3,
                failures: 1,
                slow: 0
            }
        );
        w.record(OK);
        assert_eq!(
            w.snapshot(),
            Snapshot {
                calls: 3,
                failures: 0,
                slow: 0
            }
        );
        w.reset();
        assert_eq!(w.snapshot(), Snapshot::default());
        let s = w.record(FAIL).unwrap();
        assert_eq!((s.calls, s.failures), (1, 1));
    }

    /// Many threads recording into buckets as they roll over to a new lap:
    /// every call is counted (resetting a bucket with a store lost calls
    /// recorded at the same moment).
    #[test]
    fn concurrent_calls_are_never_lost_to_a_bucket_reset() {
        for round in 0..1_000u64 {
            let w = TimeWindow::new(Duration::from_nanos(40), 4);
            // The buckets hold an older lap, so the first calls reset them.
            w.record(FAIL, 0);
            w.record(FAIL, 10);
            // Bucket 0 of a later lap: it holds lap 0, so every round
            // turns it.
            let now = 1_000 + round % 10;
            std::thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        for _ in 0..250 {
                            w.record(FAIL, now);
                        }
                    });
                }
            });
            let snapshot = w.snapshot(now);
            assert_eq!(
                (snapshot.calls, snapshot.failures),
                (1_000, 1_000),
                "round {round}"
            );
        }
    }

    #[test]
    fn time_window_expires_bucket_by_bucket() {
        let w = TimeWindow::new(Duration::from_nanos(100), 10);
        w.record(FAIL, 0);
        w.record(OK, 55);
        assert_eq!(
            w.snapshot(99),
            Snapshot {
                calls: 2,
                failures: 1,
                slow: 0
            }
        );
        // At 100 the first bucket [0, 10) has left the window.
        assert_eq!(
            w.snapshot(100),
            Snapshot {
                calls: 1,
                failures: 0,
                slow: 0
            }
        );
        assert_eq!(w.snapshot(200), Snapshot::default());
        // A bucket reused for a newer slice starts empty.
        w.record(OK, 105);
        assert_eq!(
            w.snapshot(105),
            Snapshot {
                calls: 2,
                failures: 0,
                slow: 0
            }
        );
    }
}
