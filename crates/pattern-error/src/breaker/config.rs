//! Configuration of a circuit breaker.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::{CircuitBreaker, Event};
use crate::{Error, Kind};

/// Which calls the breaker judges over.
///
/// Sizes are bounded, because every breaker holds its window in memory
/// (16 bytes per call of a count window, 24 per bucket of a time window)
/// and a registry holds many breakers: a count window holds at most
/// [`Window::MAX_CALLS`] calls (a breaker that needs more history to judge
/// judges too slowly to protect anything: use a time window), a time
/// window at most [`Window::MAX_BUCKETS`] buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Window {
    /// The last `size` calls.
    Count {
        /// How many calls the window holds (1 to [`Window::MAX_CALLS`]).
        size: u32,
    },
    /// The calls of the last `duration`, counted in `buckets` slices that
    /// expire one at a time.
    Time {
        /// How far back the window reaches.
        duration: Duration,
        /// How many slices the window is cut into (more: smoother expiry;
        /// 1 to [`Window::MAX_BUCKETS`], each at least 1 ms long).
        buckets: u32,
    },
}

impl Window {
    /// The most calls a count window holds (160 KiB per breaker).
    pub const MAX_CALLS: u32 = 10_000;
    /// The most buckets a time window has.
    pub const MAX_BUCKETS: u32 = 1_000;
}

/// The most half-open probes a breaker admits (each outstanding probe is
/// tracked, so that one never reported can expire).
pub(super) const MAX_PROBES: u32 = 1_000;

pub(super) type Classifier = Arc<dyn Fn(&Error) -> bool + Send + Sync>;
pub(super) type Listener = Arc<dyn Fn(&Event) + Send + Sync>;

/// Builds a [`CircuitBreaker`]; start with [`CircuitBreaker::builder`].
///
/// | setting | default |
/// | --- | --- |
/// | [`window`](CircuitBreakerBuilder::window) | the last 100 calls |
/// | [`minimum_calls`](CircuitBreakerBuilder::minimum_calls) | 20 |
/// | [`failure_rate`](CircuitBreakerBuilder::failure_rate) | 0.5 |
/// | [`slow_calls`](CircuitBreakerBuilder::slow_calls) | off |
/// | [`open_duration`](CircuitBreakerBuilder::open_duration) | 30 s, fixed |
/// | [`half_open_probes`](CircuitBreakerBuilder::half_open_probes) | 5 |
/// | [`probe_timeout`](CircuitBreakerBuilder::probe_timeout) | 10 s |
/// | [`failure_if`](CircuitBreakerBuilder::failure_if) | errors that are not the caller's fault ([`Kind::is_caller_fault`]) |
#[must_use]
#[derive(Clone)]
pub struct CircuitBreakerBuilder {
    pub(super) name: Cow<'static, str>,
    pub(super) settings: Settings,
    pub(super) listener: Option<Listener>,
}

/// What a breaker judges by: set through the builder, kept whole by the
/// breaker.
#[derive(Clone)]
pub(super) struct Settings {
    pub(super) window: Window,
    pub(super) minimum_calls: u32,
    pub(super) failure_rate: f64,
    pub(super) slow_call_rate: Option<f64>,
    pub(super) slow_call_duration: Duration,
    pub(super) open_duration: Duration,
    pub(super) open_multiplier: f64,
    pub(super) max_open_duration: Duration,
    pub(super) half_open_probes: u32,
    pub(super) probe_timeout: Duration,
    pub(super) is_failure: Classifier,
}

impl CircuitBreakerBuilder {
    pub(super) fn new(name: Cow<'static, str>) -> Self {
        Self {
            name,
            settings: Settings {
                window: Window::Count { size: 100 },
                minimum_calls: 20,
                failure_rate: 0.5,
                slow_call_rate: None,
                slow_call_duration: Duration::from_secs(5),
                open_duration: Duration::from_secs(30),
                open_multiplier: 1.0,
                max_open_duration: Duration::from_secs(30),
                half_open_probes: 5,
                probe_timeout: Duration::from_secs(10),
                is_failure: Arc::new(|err: &Error| !err.kind().is_caller_fault()),
            },
            listener: None,
        }
    }

    /// The sliding window the failure and slow-call rates are computed over.
    pub fn window(mut self, window: Window) -> Self {
        self.settings.window = window;
        self
    }

    /// Shorthand for a [`Window::Count`] of the last `size` calls.
    pub fn count_window(self, size: u32) -> Self {
        self.window(Window::Count { size })
    }

    /// Shorthand for a [`Window::Time`] over `duration` in 10 buckets.
    pub fn time_window(self, duration: Duration) -> Self {
        self.window(Window::Time {
            duration,
            buckets: 10,
        })
    }

    /// How many calls the window must hold before the breaker judges.
    pub fn minimum_calls(mut self, calls: u32) -> Self {
        self.settings.minimum_calls = calls;
        self
    }

    /// The share of failed calls (0 to 1) at or above which the breaker opens.
    pub fn failure_rate(mut self, rate: f64) -> Self {
        self.settings.failure_rate = rate;
        self
    }

    /// Calls that take `duration` or longer are slow; the breaker opens when
    /// the share of slow calls reaches `rate` (0 to 1), even if they succeed.
    pub fn slow_calls(mut self, duration: Duration, rate: f64) -> Self {
        self.settings.slow_call_duration = duration;
        self.settings.slow_call_rate = Some(rate);
        self
    }

    /// How long the breaker stays open before letting probes through.
    pub fn open_duration(mut self, duration: Duration) -> Self {
        self.settings.open_duration = duration;
        self.settings.max_open_duration = self.settings.max_open_duration.max(duration);
        self
    }

    /// Grows the open duration over consecutive trips: each trip that follows
    /// a failed half-open trial multiplies it by `multiplier`, up to `max`.
    /// A successful trial resets it.
    pub fn open_backoff(mut self, multiplier: f64, max: Duration) -> Self {
        self.settings.open_multiplier = multiplier;
        self.settings.max_open_duration = max;
        self
    }

    /// How many probe calls the half-open state admits (1 to 1 000); once
    /// they have all finished, their failure rate decides between closing
    /// and opening.
    pub fn half_open_probes(mut self, probes: u32) -> Self {
        self.settings.half_open_probes = probes;
        self
    }

    /// A probe still running after `timeout` counts as a failed probe (its
    /// caller gets a timeout), so a hanging call cannot hold the breaker
    /// half-open. That holds for permits taken by hand too
    /// ([`try_acquire`](CircuitBreaker::try_acquire)): a probe permit
    /// neither reported nor dropped within the timeout (leaked, or held by
    /// a task that hangs) counts as failed once a call finds every probe
    /// slot taken, and its late report is ignored.
    pub fn probe_timeout(mut self, timeout: Duration) -> Self {
        self.settings.probe_timeout = timeout;
        self
    }

    /// Decides which errors count as failures; the others count as successes
    /// (the dependency answered, the request was wrong).
    ///
    /// ```
    /// use pattern_error::{Kind, breaker::CircuitBreaker};
    ///
    /// // Count only timeouts and unavailable dependencies.
    /// let breaker = CircuitBreaker::builder("search")
    ///     .failure_if(|err| matches!(err.kind(), Kind::Timeout | Kind::Unavailable))
    ///     .build()
    ///     .unwrap();
    /// ```
    pub fn failure_if(mut self, f: impl Fn(&Error) -> bool + Send + Sync + 'static) -> Self {
        self.settings.is_failure = Arc::new(f);
        self
    }

    /// Calls `f` on every transition and rejection (after the metrics are
    /// recorded). Keep it quick: it runs on the caller's task.
    pub fn on_event(mut self, f: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.listener = Some(Arc::new(f));
        self
    }

    /// Checks the settings and builds the breaker.
    ///
    /// Fails with [`Kind::InvalidInput`] naming the first bad setting.
    pub fn build(self) -> Result<CircuitBreaker, Error> {
        self.validate()?;
        Ok(CircuitBreaker::from_builder(self))
    }

    /// Checks the settings: the first bad one as [`Kind::InvalidInput`].
    pub(super) fn validate(&self) -> Result<(), Error> {
        let invalid = |what: &str| {
            Err(Error::new(
                Kind::InvalidInput,
                format!("circuit breaker {:?}: {what}", self.name),
            ))
        };
        match self.settings.window {
            Window::Count { size: 0 } => {
                return invalid("the count window must hold at least 1 call");
            }
            Window::Count { size } if size > Window::MAX_CALLS => {
                return invalid("the count window holds at most 10 000 calls (Window::MAX_CALLS)");
            }
            Window::Time { buckets: 0, .. } => {
                return invalid("a time window needs at least 1 bucket");
            }
            Window::Time { buckets, .. } if buckets > Window::MAX_BUCKETS => {
                return invalid("a time window has at most 1 000 buckets (Window::MAX_BUCKETS)");
            }
            Window::Time { duration, buckets }
                if duration < Duration::from_millis(u64::from(buckets)) =>
            {
                return invalid("a time window's buckets must be at least 1 ms long");
            }
            _ => {}
        }
        if self.settings.minimum_calls == 0 {
            return invalid("minimum_calls must be at least 1");
        }
        if let Window::Count { size } = self.settings.window
            && self.settings.minimum_calls > size
        {
            return invalid("minimum_calls cannot exceed the count window's size");
        }
        if !(self.settings.failure_rate > 0.0 && self.settings.failure_rate <= 1.0) {
            return invalid("failure_rate must be in (0, 1]");
        }
        if self
            .settings
            .slow_call_rate
            .is_some_and(|r| !(r > 0.0 && r <= 1.0))
        {
            return invalid("the slow-call rate must be in (0, 1]");
        }
        if self.settings.half_open_probes == 0 {
            return invalid("half_open_probes must be at least 1");
        }
        if self.settings.half_open_probes > MAX_PROBES {
            return invalid("half_open_probes must be at most 1 000");
        }
        if !(self.settings.open_multiplier >= 1.0 && self.settings.open_multiplier.is_finite()) {
            return invalid("the open backoff multiplier must be finite and at least 1");
        }
        if self.settings.probe_timeout.is_zero() {
            return invalid("probe_timeout must be positive");
        }
        Ok(())
    }
}

impl fmt::Debug for CircuitBreakerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.settings;
        f.debug_struct("CircuitBreakerBuilder")
            .field("name", &self.name)
            .field("window", &s.window)
            .field("minimum_calls", &s.minimum_calls)
            .field("failure_rate", &s.failure_rate)
            .field("slow_call_rate", &s.slow_call_rate)
            .field("slow_call_duration", &s.slow_call_duration)
            .field("open_duration", &s.open_duration)
            .field("open_multiplier", &s.open_multiplier)
            .field("max_open_duration", &s.max_open_duration)
            .field("half_open_probes", &s.half_open_probes)
            .field("probe_timeout", &s.probe_timeout)
            .finish_non_exhaustive()
    }
}
