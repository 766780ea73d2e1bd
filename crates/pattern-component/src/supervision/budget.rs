//! The restart budget: the intensity window and the backoff, for any
//! restart loop (the system's supervisor, the process registry).

use std::collections::VecDeque;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio::time::Instant;

use super::Intensity;

/// Restarts within a sliding window and the backoff before each: at most
/// `max_restarts` restarts within `within` (one more and the caller gives
/// up), each after an exponential backoff that grows while failures keep
/// coming and starts again from its minimum after a stable run (no restart
/// within the window).
///
/// ```
/// use std::time::Duration;
/// use pattern_component::supervision::{Intensity, RestartBudget};
/// use tokio::time::Instant;
///
/// let intensity = Intensity { max_restarts: 2, within: Duration::from_secs(60) };
/// let mut budget = RestartBudget::new(intensity, Duration::from_millis(100), Duration::from_secs(5));
/// let now = Instant::now();
/// let ms = |delay: Option<Duration>| delay.map(|d| d.as_millis());
/// assert_eq!(ms(budget.restart(now)), Some(100));
/// assert_eq!(ms(budget.restart(now)), Some(200));
/// assert_eq!(budget.restart(now), None, "a third within the minute: give up");
/// ```
#[derive(Debug)]
pub struct RestartBudget {
    intensity: Intensity,
    restarts: VecDeque<Instant>,
    backoff: Backoff,
}

impl RestartBudget {
    /// `intensity`, and a backoff from `min` doubling to `max`.
    pub fn new(intensity: Intensity, min: Duration, max: Duration) -> Self {
        Self {
            intensity,
            restarts: VecDeque::new(),
            backoff: Backoff::new(intensity.within, min, max),
        }
    }

    /// Records a restart wanted at `now`: the delay to wait before it, or
    /// `None` when the intensity is exhausted (escalate, give up).
    pub fn restart(&mut self, now: Instant) -> Option<Duration> {
        self.allow(now).then(|| self.backoff.next(now))
    }

    /// Records a restart wanted at `now` against the intensity alone:
    /// whether it is allowed. (A supervisor counting all its members'
    /// restarts together asks this, and takes each member's delay from
    /// that member's own [`backoff`](Self::backoff).)
    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        self.forget_before(now);
        if self.restarts.len() >= self.intensity.max_restarts as usize {
            return false;
        }
        self.restarts.push_back(now);
        true
    }

    /// The delay before a restart at `now`, from this budget's backoff
    /// alone (the intensity counted elsewhere: the supervisor's own).
    pub(crate) fn backoff(&mut self, now: Instant) -> Duration {
        self.backoff.next(now)
    }

    /// Restarts within the window ending at `now`.
    pub fn restarts_within(&mut self, now: Instant) -> usize {
        self.forget_before(now);
        self.restarts.len()
    }

    fn forget_before(&mut self, now: Instant) {
        let within = self.intensity.within;
        while self
            .restarts
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) > within)
        {
            self.restarts.pop_front();
        }
    }
}

/// An exponential backoff (backon) from `min` doubling to `max` that
/// starts over after a stable run: no delay asked within `within`.
#[derive(Debug)]
pub(crate) struct Backoff {
    within: Duration,
    min: Duration,
    max: Duration,
    last: Option<Instant>,
    delays: Option<ExponentialBackoff>,
}

impl Backoff {
    /// From `min` doubling to `max`, starting over after `within` without
    /// a delay asked.
    pub(crate) fn new(within: Duration, min: Duration, max: Duration) -> Self {
        Self {
            within,
            min,
            max: max.max(min),
            last: None,
            delays: None,
        }
    }

    /// The delay before a restart at `now`.
    pub(crate) fn next(&mut self, now: Instant) -> Duration {
        if self
            .last
            .is_some_and(|at| now.saturating_duration_since(at) > self.within)
        {
            self.delays = None; // a stable run
        }
        self.last = Some(now);
        self.delays
            .get_or_insert_with(|| {
                ExponentialBuilder::new()
                    .with_min_delay(self.min)
                    .with_max_delay(self.max)
                    .without_max_times()
                    .build()
            })
            .next()
            .unwrap_or(self.max)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::{Intensity, RestartBudget};

    fn budget(max: u32, within_secs: u64) -> RestartBudget {
        RestartBudget::new(
            Intensity {
                max_restarts: max,
                within: Duration::from_secs(within_secs),
            },
            Duration::from_millis(100),
            Duration::from_millis(800),
        )
    }

    #[test]
    fn the_window_slides_and_the_backoff_starts_over_after_a_stable_run() {
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let mut budget = budget(3, 10);
        let ms = |delay: Option<Duration>| delay.map(|d| d.as_millis());
        let delays: Vec<_> = [0, 1, 2]
            .iter()
            .map(|s| ms(budget.restart(at(*s))))
            .collect();
        assert_eq!(delays, [Some(100), Some(200), Some(400)]);
        assert_eq!(budget.restart(at(3)), None, "a fourth within 10 s");
        // 0 s has left the window at 10.x s: one more is allowed, and the
        // backoff goes on growing (failures kept coming).
        assert_eq!(ms(budget.restart(at(11))), Some(800));
        assert_eq!(budget.restarts_within(at(11)), 3);
        // Nothing for a whole window: the backoff starts over.
        assert_eq!(ms(budget.restart(at(30))), Some(100));
    }

    #[test]
    fn windows_and_delays_at_their_extremes() {
        let now = Instant::now();
        // A zero window forgets each restart at once: never gives up.
        let mut zero = RestartBudget::new(
            Intensity {
                max_restarts: 1,
                within: Duration::ZERO,
            },
            Duration::ZERO,
            Duration::ZERO,
        );
        for step in 0..5 {
            assert_eq!(
                zero.restart(now + Duration::from_nanos(step + 1)),
                Some(Duration::ZERO)
            );
        }
        // A window of Duration::MAX never forgets.
        let mut never = RestartBudget::new(
            Intensity {
                max_restarts: 1,
                within: Duration::MAX,
            },
            Duration::from_millis(1),
            Duration::MAX,
        );
        assert!(never.restart(now).is_some());
        assert_eq!(never.restart(now + Duration::from_secs(1_000_000)), None);
    }

    #[test]
    fn zero_restarts_gives_up_at_once_and_the_maximum_caps_the_delay() {
        assert_eq!(budget(0, 10).restart(Instant::now()), None);
        let mut many = budget(u32::MAX, 1);
        let now = Instant::now();
        let last = (0..20).map(|_| many.restart(now).unwrap()).last().unwrap();
        assert_eq!(last.as_millis(), 800);
    }
}
