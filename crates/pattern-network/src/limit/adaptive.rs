//! The adaptive limit itself: slots, permits and windows of samples.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pattern_error::{Error, Kind};
use tokio::time::Instant;

use super::{Algorithm, LIMIT_GAUGE, REJECTIONS_TOTAL, Sample};

/// A concurrency limit that adapts; cloning shares it. See the
/// [module docs](super).
#[derive(Clone, Debug)]
pub struct AdaptiveLimit {
    inner: Arc<Inner>,
}

/// Configures an [`AdaptiveLimit`]; start with [`AdaptiveLimit::builder`].
///
/// | setting | default |
/// | --- | --- |
/// | [`window`](Self::window) | at least 100 ms and 10 calls, at most 1 s |
/// | [`min_rtt`](Self::min_rtt) | 100 µs |
#[derive(Debug)]
#[must_use]
pub struct AdaptiveLimitBuilder<A> {
    name: Cow<'static, str>,
    algorithm: A,
    min_window: Duration,
    max_window: Duration,
    min_samples: u32,
    min_rtt: Duration,
}

#[derive(Debug)]
struct Inner {
    name: metrics::SharedString,
    limit: AtomicUsize,
    in_flight: AtomicUsize,
    gauge: metrics::Gauge,
    rejections: metrics::Counter,
    min_window: Duration,
    max_window: Duration,
    min_samples: u32,
    min_rtt: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    algorithm: Box<dyn Algorithm>,
    window: Window,
}

/// The calls finished since the window began.
#[derive(Debug)]
struct Window {
    start: Instant,
    calls: u32,
    rtt_sum: Duration,
    /// The calls that answered, and their latencies: what a call given up
    /// is compared with.
    answered: u32,
    answered_rtt_sum: Duration,
    max_in_flight: usize,
    dropped: bool,
}

impl Window {
    fn new(start: Instant) -> Self {
        Self {
            start,
            calls: 0,
            rtt_sum: Duration::ZERO,
            answered: 0,
            answered_rtt_sum: Duration::ZERO,
            max_in_flight: 0,
            dropped: false,
        }
    }
}

/// How a call held by a [`LimitPermit`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// It answered (well or with an error that is not overload).
    Done,
    /// It failed with overload or a timeout: the limit is too high.
    Dropped,
    /// It tells nothing about the dependency (failed before reaching it).
    Ignored,
    /// Its caller gave it up: counts with the time it had run, and as a
    /// drop if that is twice the window's mean answer or more (or nothing
    /// answered yet).
    Cancelled,
}

impl<A: Algorithm> AdaptiveLimitBuilder<A> {
    /// Judges windows of calls: the algorithm gets one sample (the mean
    /// latency, the most calls in flight, whether one was dropped) per
    /// window that lasted at least `min` and held `min_samples` calls, or
    /// lasted `max` (with at least one call). `Duration::ZERO` twice and
    /// one sample judge every call alone.
    pub fn window(mut self, min: Duration, max: Duration, min_samples: u32) -> Self {
        self.min_window = min;
        self.max_window = max.max(min);
        self.min_samples = min_samples.max(1);
        self
    }

    /// Calls quicker than this are left out of the samples (answers from a
    /// cache say nothing about the dependency's queue).
    pub fn min_rtt(mut self, rtt: Duration) -> Self {
        self.min_rtt = rtt;
        self
    }

    /// Builds the limit. Call inside a tokio runtime (it reads tokio's
    /// clock).
    pub fn build(self) -> AdaptiveLimit {
        let initial = self.algorithm.initial().max(1);
        let name = metrics::SharedString::from(self.name);
        let gauge = metrics::gauge!(LIMIT_GAUGE, "limiter" => name.clone());
        gauge.set(initial as f64);
        AdaptiveLimit {
            inner: Arc::new(Inner {
                rejections: metrics::counter!(REJECTIONS_TOTAL, "limiter" => name.clone()),
                name,
                limit: AtomicUsize::new(initial),
                in_flight: AtomicUsize::new(0),
                gauge,
                min_window: self.min_window,
                max_window: self.max_window,
                min_samples: self.min_samples,
                min_rtt: self.min_rtt,
                state: Mutex::new(State {
                    algorithm: Box::new(self.algorithm),
                    window: Window::new(Instant::now()),
                }),
            }),
        }
    }
}

impl AdaptiveLimit {
    /// A limit named `name` (the `limiter` metrics label) driven by
    /// `algorithm`, with the default window. Call inside a tokio runtime.
    pub fn new(name: impl Into<Cow<'static, str>>, algorithm: impl Algorithm) -> Self {
        Self::builder(name, algorithm).build()
    }

    /// Configures a limit named `name` driven by `algorithm`.
    pub fn builder<A: Algorithm>(
        name: impl Into<Cow<'static, str>>,
        algorithm: A,
    ) -> AdaptiveLimitBuilder<A> {
        AdaptiveLimitBuilder {
            name: name.into(),
            algorithm,
            min_window: Duration::from_millis(100),
            max_window: Duration::from_secs(1),
            min_samples: 10,
            min_rtt: Duration::from_micros(100),
        }
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.inner.limit.load(Ordering::Acquire)
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Acquire)
    }

    /// Takes a slot if the limit allows; fails at once with
    /// [`Kind::Overloaded`] if not (an adaptive limit does not queue).
    ///
    /// Report how the call went on the permit; a permit dropped without a
    /// report counts as a call its caller gave up.
    pub fn try_acquire(&self) -> Result<LimitPermit, Error> {
        let limit = self.limit();
        let taken = self
            .inner
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            });
        match taken {
            Ok(before) => Ok(LimitPermit {
                limit: Some(self.clone()),
                in_flight: before + 1,
                start: Instant::now(),
            }),
            Err(in_flight) => {
                self.inner.rejections.increment(1);
                Err(Error::new(
                    Kind::Overloaded,
                    format!("concurrency limit {limit} reached ({in_flight} in flight)"),
                ))
            }
        }
    }

    /// Runs `call` under the limit: refused at once with
    /// [`Kind::Overloaded`] when the limit is reached; its outcome (an
    /// overload or timeout error is a drop) is a sample.
    pub async fn run<T, E, F>(&self, call: F) -> Result<T, Error>
    where
        F: Future<Output = Result<T, E>>,
        E: Into<Error>,
    {
        let permit = self.try_acquire()?;
        let result = call.await.map_err(Into::into);
        permit.record(&result);
        result
    }

    fn finish(&self, in_flight: usize, rtt: Duration, outcome: Outcome) {
        self.inner.in_flight.fetch_sub(1, Ordering::AcqRel);
        if outcome == Outcome::Ignored || (rtt < self.inner.min_rtt && outcome != Outcome::Dropped)
        {
            return;
        }
        let inner = &self.inner;
        let mut state = inner.state.lock().unwrap_or_else(PoisonError::into_inner);
        let window = &mut state.window;
        let dropped = match outcome {
            Outcome::Dropped => true,
            // A call given up long after the others answered is a drop as
            // the caller saw it (a deadline under overload); one given up
            // early (a hedge's loser, a straggler past its quorum) is only
            // a latency.
            Outcome::Cancelled => {
                window.answered == 0 || rtt >= 2 * (window.answered_rtt_sum / window.answered)
            }
            _ => {
                window.answered += 1;
                window.answered_rtt_sum += rtt;
                false
            }
        };
        window.calls += 1;
        window.rtt_sum += rtt;
        window.max_in_flight = window.max_in_flight.max(in_flight);
        window.dropped |= dropped;
        let now = Instant::now();
        let age = now.saturating_duration_since(window.start);
        let full = age >= inner.min_window && window.calls >= inner.min_samples;
        if !full && age < inner.max_window {
            return;
        }
        let sample = Sample {
            rtt: window.rtt_sum / window.calls,
            in_flight: window.max_in_flight,
            dropped: window.dropped,
        };
        state.window = Window::new(now);
        let old = self.limit();
        let new = state.algorithm.update(old, sample).max(1);
        if new != old {
            inner.limit.store(new, Ordering::Release);
            inner.gauge.set(new as f64);
            tracing::debug!(limiter = %inner.name, from = old, to = new, rtt_ms = sample.rtt.as_secs_f64() * 1e3, "concurrency limit moved");
        }
    }
}

/// A slot under an [`AdaptiveLimit`]; report how the call went with one of
/// its methods. Dropped without a report, it counts as a call its caller
/// gave up, with the time it had run as its latency, and as a drop when
/// that is at least twice the mean latency of the calls that answered in
/// its window, or none did (under overload callers give up at their
/// deadlines: those calls must pull the limit down, not vanish; a call
/// given up early, a hedge's loser, is only a latency).
#[derive(Debug)]
#[must_use = "a permit holds a slot until it is reported or dropped"]
pub struct LimitPermit {
    /// Taken when reported; still here if the permit is dropped.
    limit: Option<AdaptiveLimit>,
    in_flight: usize,
    start: Instant,
}

impl LimitPermit {
    /// The call answered (successfully, or with an error that says nothing
    /// about load).
    pub fn success(mut self) {
        self.finish(Outcome::Done);
    }

    /// The call was dropped: it failed with overload or timed out.
    pub fn dropped(mut self) {
        self.finish(Outcome::Dropped);
    }

    /// The call tells nothing about the dependency (it failed before
    /// reaching it): no sample.
    pub fn ignore(mut self) {
        self.finish(Outcome::Ignored);
    }

    /// Reports by the result: an overload or timeout error is a drop,
    /// anything else an answer.
    pub fn record<T>(self, result: &Result<T, Error>) {
        let dropped = result
            .as_ref()
            .err()
            .is_some_and(|e| matches!(e.kind(), Kind::Overloaded | Kind::Timeout));
        if dropped {
            self.dropped()
        } else {
            self.success()
        }
    }

    /// Calls in flight when this one started, itself included.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    fn finish(&mut self, outcome: Outcome) {
        if let Some(limit) = self.limit.take() {
            limit.finish(self.in_flight, self.start.elapsed(), outcome);
        }
    }
}

impl Drop for LimitPermit {
    fn drop(&mut self) {
        self.finish(Outcome::Cancelled);
    }
}
