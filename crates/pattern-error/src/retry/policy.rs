//! What to retry, how often and how long to wait.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use tokio::time::Instant;

use super::RetryBudget;
use crate::{Error, Kind};

/// Counter of retries (attempts after the first), labelled `retry`.
pub const ATTEMPTS_TOTAL: &str = "retry_attempts_total";
/// Counter of calls that gave up, labelled `retry` and `reason`
/// (`attempts`, `elapsed`, `deadline`, `retry_after`, `budget`,
/// `permanent`, `unclonable`).
pub const GIVE_UPS_TOTAL: &str = "retry_give_ups_total";

type Predicate = Arc<dyn Fn(&Error) -> bool + Send + Sync>;
type DeadlineFn = Arc<dyn Fn() -> Option<Instant> + Send + Sync>;

/// A retry policy: which errors to retry, how many attempts, the backoff
/// between them, and the limits on the whole.
///
/// Cloning is cheap (one `Arc`); clones share the budget.
///
/// | setting | default |
/// | --- | --- |
/// | [`max_attempts`](RetryBuilder::max_attempts) | 3 (the first and two retries) |
/// | [`backoff`](RetryBuilder::backoff) | exponential from 100 ms, factor 2, at most 10 s, with jitter |
/// | [`max_elapsed`](RetryBuilder::max_elapsed) | none |
/// | [`retry_if`](RetryBuilder::retry_if) | [`Error::is_transient`] |
/// | [`honour_retry_after`](RetryBuilder::honour_retry_after) | on, up to the maximum delay |
/// | [`deadline`](RetryBuilder::deadline) | none |
/// | [`budget`](RetryBuilder::budget) | none |
#[derive(Clone)]
pub struct RetryPolicy {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    name: metrics::SharedString,
    max_attempts: u32,
    backoff: ExponentialBuilder,
    min_delay: Duration,
    max_delay: Duration,
    jitter: bool,
    max_elapsed: Option<Duration>,
    retry_if: Predicate,
    honour_retry_after: bool,
    deadline: Option<DeadlineFn>,
    pub(super) budget: Option<Arc<RetryBudget>>,
}

/// Builds a [`RetryPolicy`]; start with [`RetryPolicy::builder`].
#[must_use]
pub struct RetryBuilder {
    name: Cow<'static, str>,
    max_attempts: u32,
    min_delay: Duration,
    factor: f32,
    max_delay: Duration,
    jitter: bool,
    max_elapsed: Option<Duration>,
    retry_if: Predicate,
    honour_retry_after: bool,
    deadline: Option<DeadlineFn>,
    budget: Option<Arc<RetryBudget>>,
}

impl RetryPolicy {
    /// Starts a policy named `name` (the `retry` metrics label: keep the set
    /// of names bounded).
    pub fn builder(name: impl Into<Cow<'static, str>>) -> RetryBuilder {
        RetryBuilder {
            name: name.into(),
            max_attempts: 3,
            min_delay: Duration::from_millis(100),
            factor: 2.0,
            max_delay: Duration::from_secs(10),
            jitter: true,
            max_elapsed: None,
            retry_if: Arc::new(Error::is_transient),
            honour_retry_after: true,
            deadline: None,
            budget: None,
        }
    }

    /// Attempts in all, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.inner.max_attempts
    }

    /// The budget, if the policy has one.
    pub fn budget(&self) -> Option<&Arc<RetryBudget>> {
        self.inner.budget.as_ref()
    }

    /// Runs `op` until it succeeds or the policy gives up; see [`retry`](super::retry).
    pub async fn run<F, Fut, T, E>(&self, op: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Into<Error>,
    {
        self.run_checked(op, |_: &T| false).await
    }

    /// Like [`run`](Self::run), also retrying successful results for which
    /// `retry_result` is true (an HTTP 503 response, an empty batch). When
    /// the policy gives up on such a result, the last result is returned.
    pub async fn run_checked<F, Fut, T, E, C>(&self, mut op: F, retry_result: C) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Into<Error>,
        C: Fn(&T) -> bool,
    {
        let mut attempts = Attempts::new(self);
        loop {
            let decision = match op().await {
                Ok(value) if !retry_result(&value) => return Ok(value),
                Ok(value) => match attempts.after_result(true) {
                    Decision::Retry(delay) => delay,
                    Decision::GiveUp(_) => return Ok(value),
                },
                Err(err) => {
                    let err = err.into();
                    match attempts.after_error(&err, true) {
                        Decision::Retry(delay) => delay,
                        Decision::GiveUp(reason) => return Err(attempts.give_up(err, reason)),
                    }
                }
            };
            tokio::time::sleep(decision).await;
        }
    }
}

impl RetryBuilder {
    /// Attempts in all, the first included (1: no retry).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Exponential backoff: the first retry waits `min_delay`, each next one
    /// `factor` times longer, never more than `max_delay`.
    pub fn backoff(mut self, min_delay: Duration, factor: f32, max_delay: Duration) -> Self {
        self.min_delay = min_delay;
        self.factor = factor;
        self.max_delay = max_delay;
        self
    }

    /// Adds a random part (up to the minimum delay) to every delay, so that
    /// clients that failed together do not retry together. On by default.
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// Gives up rather than retry past `elapsed` since the first attempt
    /// started (a retry whose delay would end past it is not made).
    pub fn max_elapsed(mut self, elapsed: Duration) -> Self {
        self.max_elapsed = Some(elapsed);
        self
    }

    /// Which errors are worth another attempt.
    pub fn retry_if(mut self, f: impl Fn(&Error) -> bool + Send + Sync + 'static) -> Self {
        self.retry_if = Arc::new(f);
        self
    }

    /// Waits at least an error's [retry-after](Error::retry_after) hint
    /// before the next attempt (on by default), plus jitter when
    /// [`jitter`](Self::jitter) is on (up to the minimum delay, never past
    /// the maximum delay). A hint longer than the maximum delay, or than
    /// what [`max_elapsed`](Self::max_elapsed) or the call's
    /// [`deadline`](Self::deadline) leaves, makes the policy give up at once
    /// with the error (and its hint) as it came: a `Retry-After: 3600` is
    /// passed up to the caller, not slept on.
    pub fn honour_retry_after(mut self, honour: bool) -> Self {
        self.honour_retry_after = honour;
        self
    }

    /// Where the policy learns a call's deadline (asked once, at the
    /// call's first failure): no retry is made whose delay would end past
    /// it. A service on `pattern-api` passes the request's:
    /// `.deadline(|| Deadline::current().map(|d| d.0))`.
    pub fn deadline(mut self, f: impl Fn() -> Option<Instant> + Send + Sync + 'static) -> Self {
        self.deadline = Some(Arc::new(f));
        self
    }

    /// Draws every retry from `budget`, shared with whoever else holds it.
    pub fn budget(mut self, budget: Arc<RetryBudget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Checks the settings and builds the policy.
    ///
    /// Fails with [`Kind::InvalidInput`] naming the first bad setting.
    pub fn build(self) -> Result<RetryPolicy, Error> {
        let invalid = |what: &str| {
            Err(Error::new(
                Kind::InvalidInput,
                format!("retry policy {:?}: {what}", self.name),
            ))
        };
        if self.max_attempts == 0 {
            return invalid("max_attempts must be at least 1");
        }
        if !(self.factor.is_finite() && self.factor >= 1.0) {
            return invalid("the backoff factor must be finite and at least 1");
        }
        if self.max_delay < self.min_delay {
            return invalid("the maximum delay must not be below the minimum delay");
        }
        let mut backoff = ExponentialBuilder::new()
            .with_min_delay(self.min_delay)
            .with_factor(self.factor)
            .with_max_delay(self.max_delay)
            .without_max_times();
        if self.jitter {
            backoff = backoff.with_jitter();
        }
        Ok(RetryPolicy {
            inner: Arc::new(Inner {
                name: metrics::SharedString::from(self.name),
                max_attempts: self.max_attempts,
                backoff,
                min_delay: self.min_delay,
                max_delay: self.max_delay,
                jitter: self.jitter,
                max_elapsed: self.max_elapsed,
                retry_if: self.retry_if,
                honour_retry_after: self.honour_retry_after,
                deadline: self.deadline,
                budget: self.budget,
            }),
        })
    }
}

/// What to do after a failed attempt.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Decision {
    Retry(Duration),
    GiveUp(GiveUp),
}

/// Why the policy stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum GiveUp {
    /// The error is not worth retrying.
    Permanent,
    /// Every attempt is used.
    Attempts,
    /// The next attempt would start past the elapsed-time limit.
    Elapsed,
    /// The next attempt would start past the call's deadline.
    Deadline,
    /// The error's retry-after hint is longer than the maximum delay.
    RetryAfter,
    /// The retry budget is empty.
    Budget,
    /// The request could not be copied for another attempt.
    Unclonable,
}

impl GiveUp {
    fn as_str(self) -> &'static str {
        match self {
            GiveUp::Permanent => "permanent",
            GiveUp::Attempts => "attempts",
            GiveUp::Elapsed => "elapsed",
            GiveUp::Deadline => "deadline",
            GiveUp::RetryAfter => "retry_after",
            GiveUp::Budget => "budget",
            GiveUp::Unclonable => "unclonable",
        }
    }
}

/// The bookkeeping of one call's attempts. Nothing here allocates or reads
/// the clock until an attempt fails (unless an elapsed limit is set).
pub(super) struct Attempts {
    policy: Arc<Inner>,
    made: u32,
    started: Option<Instant>,
    /// The call's deadline, asked for at the first failure.
    deadline: Option<Option<Instant>>,
    /// Boxed: made at the first failure only, and large.
    backoff: Option<Box<<ExponentialBuilder as BackoffBuilder>::Backoff>>,
}

impl Attempts {
    /// Starts a call: deposits in the budget.
    #[inline]
    pub(super) fn new(policy: &RetryPolicy) -> Self {
        let inner = &policy.inner;
        if let Some(budget) = &inner.budget {
            budget.deposit();
        }
        Self {
            started: inner.max_elapsed.map(|_| Instant::now()),
            policy: inner.clone(),
            made: 1,
            deadline: None,
            backoff: None,
        }
    }

    /// After a failed attempt; `can_retry` is false when the request
    /// could not be copied for another one.
    pub(super) fn after_error(&mut self, error: &Error, can_retry: bool) -> Decision {
        if !(self.policy.retry_if)(error) {
            return Decision::GiveUp(GiveUp::Permanent);
        }
        if !can_retry && self.may_follow() {
            self.count_give_up(GiveUp::Unclonable);
            return Decision::GiveUp(GiveUp::Unclonable);
        }
        let hint = error
            .retry_after()
            .filter(|_| self.policy.honour_retry_after);
        self.next(hint, Some(error))
    }

    /// After a result the caller wants retried.
    pub(super) fn after_result(&mut self, can_retry: bool) -> Decision {
        if !can_retry && self.may_follow() {
            self.count_give_up(GiveUp::Unclonable);
            return Decision::GiveUp(GiveUp::Unclonable);
        }
        self.next(None, None)
    }

    /// Whether an attempt may follow the latest one (attempts are left).
    #[inline]
    pub(super) fn may_follow(&self) -> bool {
        self.made < self.policy.max_attempts
    }

    fn count_give_up(&self, reason: GiveUp) {
        metrics::counter!(GIVE_UPS_TOTAL, "retry" => self.policy.name.clone(), "reason" => reason.as_str())
            .increment(1);
    }

    fn next(&mut self, hint: Option<Duration>, cause: Option<&Error>) -> Decision {
        let decision = self.decide(hint);
        let p = &self.policy;
        match decision {
            Decision::Retry(delay) => {
                self.made += 1;
                metrics::counter!(ATTEMPTS_TOTAL, "retry" => p.name.clone()).increment(1);
                tracing::debug!(
                    retry = %p.name,
                    attempt = self.made,
                    delay_ms = delay.as_millis() as u64,
                    cause = cause.map(|e| tracing::field::display(e.report())),
                    "retrying"
                );
            }
            Decision::GiveUp(reason) => self.count_give_up(reason),
        }
        decision
    }

    fn decide(&mut self, hint: Option<Duration>) -> Decision {
        let p = &self.policy;
        if self.made >= p.max_attempts {
            return Decision::GiveUp(GiveUp::Attempts);
        }
        let backoff = self
            .backoff
            .get_or_insert_with(|| Box::new(p.backoff.build()));
        // Without a maximum number of times the backoff never runs out.
        let mut delay = backoff.next().unwrap_or(p.max_delay);
        if let Some(hint) = hint {
            if hint > p.max_delay {
                return Decision::GiveUp(GiveUp::RetryAfter);
            }
            if hint > delay {
                // Callers told the same hint would come back together:
                // spread them, within the maximum delay.
                let room = (p.max_delay - hint).min(p.min_delay);
                let jitter = if p.jitter && !room.is_zero() {
                    Duration::from_nanos(fastrand::u64(
                        0..=u64::try_from(room.as_nanos()).unwrap_or(u64::MAX),
                    ))
                } else {
                    Duration::ZERO
                };
                delay = hint + jitter;
            }
        }
        if let (Some(limit), Some(started)) = (p.max_elapsed, self.started)
            && started.elapsed().saturating_add(delay) > limit
        {
            return Decision::GiveUp(GiveUp::Elapsed);
        }
        let deadline = *self
            .deadline
            .get_or_insert_with(|| p.deadline.as_ref().and_then(|f| f()));
        if let Some(deadline) = deadline
            && Instant::now()
                .checked_add(delay)
                .is_none_or(|at| at > deadline)
        {
            return Decision::GiveUp(GiveUp::Deadline);
        }
        if let Some(budget) = &p.budget
            && !budget.withdraw()
        {
            return Decision::GiveUp(GiveUp::Budget);
        }
        Decision::Retry(delay)
    }

    /// The error to return when giving up: unchanged when no retry was made,
    /// otherwise with context saying how many attempts were made and why
    /// the policy stopped (kind and hints are kept).
    pub(super) fn give_up(&self, error: Error, reason: GiveUp) -> Error {
        match (self.made, reason) {
            (1, GiveUp::Permanent | GiveUp::Attempts | GiveUp::Unclonable) => error,
            (made, GiveUp::RetryAfter) => error.context(format!(
                "not retried: its retry-after is beyond the policy's maximum delay of {:?} ({made} attempts made)",
                self.policy.max_delay
            )),
            (made, GiveUp::Deadline) => error.context(format!(
                "not retried: the next attempt would start past the call's deadline ({made} attempts made)"
            )),
            (made, GiveUp::Budget) => {
                error.context(format!("retry budget exhausted after {made} attempts"))
            }
            (made, GiveUp::Elapsed) => {
                error.context(format!("retry time limit reached after {made} attempts"))
            }
            (made, _) => error.context(format!("gave up after {made} attempts")),
        }
    }
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = &self.inner;
        f.debug_struct("RetryPolicy")
            .field("name", &p.name)
            .field("max_attempts", &p.max_attempts)
            .field("backoff", &p.backoff)
            .field("max_elapsed", &p.max_elapsed)
            .field("honour_retry_after", &p.honour_retry_after)
            .field("budget", &p.budget)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for RetryBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBuilder")
            .field("name", &self.name)
            .field("max_attempts", &self.max_attempts)
            .field("min_delay", &self.min_delay)
            .field("factor", &self.factor)
            .field("max_delay", &self.max_delay)
            .field("jitter", &self.jitter)
            .field("max_elapsed", &self.max_elapsed)
            .finish_non_exhaustive()
    }
}
