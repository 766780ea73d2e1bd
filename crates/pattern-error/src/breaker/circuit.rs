//! The breaker itself: admission, recording and transitions.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::config::{CircuitBreakerBuilder, Classifier, Listener};
use super::event::{REJECTIONS_TOTAL, STATE_GAUGE, TRANSITIONS_TOTAL};
use super::registry::Tally;
use super::state::Word;
use super::window::{Outcome, SlidingWindow, Snapshot};
use super::{Event, Rejected, State};
use crate::shard::{Padded, shard_count, thread_slot};
use crate::{Error, Kind};

/// A circuit breaker; see the [module docs](super) for the state machine.
///
/// Cloning is cheap and shares the state: every clone is the same breaker.
#[derive(Clone, Debug)]
pub struct CircuitBreaker {
    pub(super) shared: Arc<Shared>,
    /// Per-thread handles on `shared` for futures that must own one: a
    /// future clones its thread's anchor, so threads do not fight over one
    /// reference count.
    anchors: Arc<[Arc<Padded<Anchor>>]>,
}

#[derive(Debug)]
pub(super) struct Anchor {
    shared: Arc<Shared>,
}

pub(super) struct Shared {
    name: Arc<str>,
    label: metrics::SharedString,
    /// State and generation ([`Word`]).
    word: AtomicU64,
    window: SlidingWindow,
    /// Time zero for the nanosecond clocks below.
    epoch: Instant,
    /// When the open state ends, in nanoseconds since `epoch`.
    open_until: AtomicU64,
    minimum_calls: u64,
    failure_rate: f64,
    slow_call_rate: Option<f64>,
    slow_call_duration: Duration,
    open_duration: Duration,
    open_multiplier: f64,
    max_open_duration: Duration,
    half_open_probes: u32,
    pub(super) probe_timeout: Duration,
    is_failure: Classifier,
    listener: Option<Listener>,
    /// Whether this breaker sets the `circuit_breaker_state` gauge of its
    /// name (not when it belongs to a registry: its keys share the name,
    /// and the registry counts its breakers by state instead).
    state_gauge: bool,
    /// Serialises transitions and half-open bookkeeping; never taken by a
    /// call in the closed state.
    control: Mutex<Control>,
}

#[derive(Debug, Default)]
struct Control {
    /// Consecutive trips to open without a successful trial in between.
    trips: u32,
    probes_admitted: u32,
    probes_done: u32,
    probe_failures: u32,
    probe_slow: u32,
    /// The probes admitted and not yet reported: id and start.
    outstanding: Vec<(u32, Instant)>,
    /// The id the next probe gets.
    next_probe: u32,
    /// The registry's count of breakers by state, while the registry holds
    /// this breaker: moved with every transition, under this lock, so an
    /// eviction (which takes it away under the same lock) never races one.
    tally: Option<Arc<Tally>>,
}

/// What a call was admitted as; recorded against the same generation only.
#[derive(Clone, Copy, Debug)]
pub(super) struct Ticket {
    generation: u64,
    probe: bool,
    /// A probe's id among the outstanding ones.
    probe_id: u32,
    start: Option<Instant>,
}

impl Ticket {
    #[inline]
    pub(super) fn is_probe(&self) -> bool {
        self.probe
    }
}

impl CircuitBreaker {
    /// Starts configuring a breaker named `name` (used in errors, events and
    /// as the `breaker` metrics label: keep the set of names bounded).
    pub fn builder(name: impl Into<std::borrow::Cow<'static, str>>) -> CircuitBreakerBuilder {
        CircuitBreakerBuilder::new(name.into())
    }

    pub(super) fn from_builder(b: CircuitBreakerBuilder) -> Self {
        Self::from_parts(b, None)
    }

    /// A breaker counted in a registry's `tally` (which has counted it
    /// closed already) instead of setting a state gauge of its own.
    pub(super) fn for_registry(b: CircuitBreakerBuilder, tally: Arc<Tally>) -> Self {
        Self::from_parts(b, Some(tally))
    }

    /// Stops counting this breaker in its registry's tally (it was evicted;
    /// callers may still hold it).
    pub(super) fn leave_registry(&self) {
        let mut control = self.shared.lock();
        if let Some(tally) = control.tally.take() {
            tally.moved(Some(self.shared.word().state()), None);
        }
    }

    fn from_parts(b: CircuitBreakerBuilder, tally: Option<Arc<Tally>>) -> Self {
        let name: Arc<str> = Arc::from(b.name.as_ref());
        let label = metrics::SharedString::from(name.clone());
        let minimum_calls = u64::from(b.minimum_calls);
        let shared = Shared {
            name,
            label,
            word: AtomicU64::new(Word::new(State::Closed, 0).0),
            window: SlidingWindow::new(b.window, b.minimum_calls),
            epoch: Instant::now(),
            open_until: AtomicU64::new(0),
            minimum_calls,
            failure_rate: b.failure_rate,
            slow_call_rate: b.slow_call_rate,
            slow_call_duration: b.slow_call_duration,
            open_duration: b.open_duration,
            open_multiplier: b.open_multiplier,
            max_open_duration: b.max_open_duration,
            half_open_probes: b.half_open_probes,
            probe_timeout: b.probe_timeout,
            is_failure: b.is_failure,
            listener: b.listener,
            state_gauge: tally.is_none(),
            control: Mutex::new(Control {
                tally,
                ..Control::default()
            }),
        };
        if shared.state_gauge {
            metrics::gauge!(STATE_GAUGE, "breaker" => shared.label.clone())
                .set(State::Closed.gauge_value());
        }
        let shared = Arc::new(shared);
        let anchors = (0..shard_count())
            .map(|_| {
                Arc::new(Padded(Anchor {
                    shared: shared.clone(),
                }))
            })
            .collect();
        Self { shared, anchors }
    }

    /// An owned handle on the shared state, from this thread's anchor.
    #[inline]
    pub(super) fn anchor(&self) -> Arc<Padded<Anchor>> {
        self.anchors[thread_slot() & (self.anchors.len() - 1)].clone()
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.shared.word().state()
    }

    /// The counts in the sliding window now (the closed state's window; it
    /// is cleared whenever the breaker closes).
    pub fn snapshot(&self) -> Snapshot {
        self.shared.window.snapshot(self.shared.now_nanos())
    }

    /// Asks to make a call. On success, report its outcome through the
    /// [`Permit`]; dropping the permit unreported gives back its slot (a
    /// half-open probe slot, for instance) without counting anything.
    ///
    /// ```
    /// use pattern_error::breaker::CircuitBreaker;
    ///
    /// let breaker = CircuitBreaker::builder("ledger").build().unwrap();
    /// let permit = breaker.try_acquire().expect("closed breakers admit calls");
    /// let result: Result<u32, pattern_error::Error> = Ok(7);
    /// permit.record(&result);
    /// ```
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_>, Rejected> {
        let ticket = self.shared.admit()?;
        Ok(Permit {
            shared: &self.shared,
            ticket: Some(ticket),
        })
    }

    /// Runs `future` through the breaker.
    ///
    /// Rejected calls fail at once with an [`Error`] of kind
    /// [`Kind::Unavailable`] wrapping a [`Rejected`] (with a retry-after
    /// while open). A half-open probe that runs past the probe timeout fails
    /// with [`Kind::Timeout`] and counts as a failed probe. Dropping the
    /// returned future gives back any slot it held.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use pattern_error::{Error, Kind, breaker::CircuitBreaker};
    ///
    /// let breaker = CircuitBreaker::builder("pricing").build().unwrap();
    /// let price = breaker.call(async { Ok::<_, Error>(42) }).await.unwrap();
    /// assert_eq!(price, 42);
    /// # }
    /// ```
    pub async fn call<F, T, E>(&self, future: F) -> Result<T, Error>
    where
        F: Future<Output = Result<T, E>>,
        E: Into<Error>,
    {
        let permit = self.try_acquire()?;
        if permit.is_probe() {
            match tokio::time::timeout(self.shared.probe_timeout, future).await {
                Ok(result) => {
                    let result = result.map_err(Into::into);
                    permit.record(&result);
                    result
                }
                Err(_) => {
                    permit.record_probe_timeout();
                    Err(probe_timeout())
                }
            }
        } else {
            let result = future.await.map_err(Into::into);
            permit.record(&result);
            result
        }
    }

    /// Holds the breaker open: every call is rejected until [`reset`](Self::reset).
    pub fn force_open(&self) {
        self.shared.manual(State::ForcedOpen);
    }

    /// Switches the breaker off: every call passes and nothing is recorded
    /// until [`reset`](Self::reset).
    pub fn disable(&self) {
        self.shared.manual(State::Disabled);
    }

    /// Closes the breaker with an empty window, whatever its state, and
    /// forgets earlier trips (the open duration starts again from its base).
    pub fn reset(&self) {
        self.shared.manual(State::Closed);
    }
}

/// The error a probe gets when it runs past the probe timeout.
pub(super) fn probe_timeout() -> Error {
    Error::new(Kind::Timeout, "circuit breaker probe timed out")
}

/// Leave to make one call; see [`CircuitBreaker::try_acquire`].
#[derive(Debug)]
#[must_use = "a permit records nothing unless its outcome is reported"]
pub struct Permit<'a> {
    shared: &'a Shared,
    ticket: Option<Ticket>,
}

impl Permit<'_> {
    /// Whether this call is a half-open probe.
    #[inline]
    pub fn is_probe(&self) -> bool {
        self.ticket.is_some_and(|t| t.probe)
    }

    /// Reports the call's result; errors count as failures when the breaker's
    /// classifier says so.
    #[inline]
    pub fn record<T>(mut self, result: &Result<T, Error>) {
        if let Some(ticket) = self.ticket.take() {
            self.shared.record_result(ticket, result.as_ref().err());
        }
    }

    /// Reports a success.
    #[inline]
    pub fn success(mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.shared.record_result(ticket, None);
        }
    }

    /// Reports a failure, whatever the classifier would say.
    pub fn failure(mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.shared.record_failure(ticket);
        }
    }

    fn record_probe_timeout(self) {
        self.failure();
    }
}

impl Drop for Permit<'_> {
    #[inline]
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.shared.cancel(ticket);
        }
    }
}

/// A permit that owns a handle on its breaker, for futures that must be
/// `'static`.
#[derive(Debug)]
pub(super) struct OwnedPermit {
    anchor: Arc<Padded<Anchor>>,
    ticket: Option<Ticket>,
}

impl OwnedPermit {
    pub(super) fn new(anchor: Arc<Padded<Anchor>>, ticket: Ticket) -> Self {
        Self {
            anchor,
            ticket: Some(ticket),
        }
    }

    #[inline]
    fn shared(&self) -> &Shared {
        &self.anchor.0.shared
    }

    #[inline]
    pub(super) fn record(&mut self, error: Option<&Error>) {
        if let Some(ticket) = self.ticket.take() {
            self.shared().record_result(ticket, error);
        }
    }

    pub(super) fn failure(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.shared().record_failure(ticket);
        }
    }
}

impl Drop for OwnedPermit {
    #[inline]
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.shared().cancel(ticket);
        }
    }
}

impl Shared {
    #[inline]
    fn word(&self) -> Word {
        Word(self.word.load(Ordering::Acquire))
    }

    fn now_nanos(&self) -> u64 {
        let elapsed = Instant::now().saturating_duration_since(self.epoch);
        u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The start time of a call, when slow calls are judged.
    #[inline]
    fn start_clock(&self) -> Option<Instant> {
        self.slow_call_rate.map(|_| Instant::now())
    }

    #[inline]
    pub(super) fn admit(&self) -> Result<Ticket, Rejected> {
        let word = self.word();
        // The hot path, small enough to inline: closed, calls not timed.
        if word.state() == State::Closed && self.slow_call_rate.is_none() {
            return Ok(Ticket {
                generation: word.generation(),
                probe: false,
                probe_id: 0,
                start: None,
            });
        }
        self.admit_any(word)
    }

    #[inline(never)]
    fn admit_any(&self, word: Word) -> Result<Ticket, Rejected> {
        match word.state() {
            State::Closed | State::Disabled => Ok(Ticket {
                generation: word.generation(),
                probe: false,
                probe_id: 0,
                start: self.start_clock(),
            }),
            State::Open => {
                let now = self.now_nanos();
                let until = self.open_until.load(Ordering::Acquire);
                if now < until {
                    Err(self.reject(State::Open, Some(Duration::from_nanos(until - now))))
                } else {
                    self.admit_probe()
                }
            }
            State::HalfOpen => self.admit_probe(),
            State::ForcedOpen => Err(self.reject(State::ForcedOpen, None)),
        }
    }

    /// Admission outside the closed state: may move open to half-open, and
    /// hands out at most `half_open_probes` probe slots.
    fn admit_probe(&self) -> Result<Ticket, Rejected> {
        let mut control = self.lock();
        let mut word = self.word();
        let mut event = None;
        if word.state() == State::Open {
            let now = self.now_nanos();
            let until = self.open_until.load(Ordering::Acquire);
            if now < until {
                drop(control);
                return Err(self.reject(State::Open, Some(Duration::from_nanos(until - now))));
            }
            let (next, e) = self.transition(&mut control, word, State::HalfOpen);
            word = next;
            event = Some(e);
        } else if word.state() == State::HalfOpen
            && control.probes_admitted >= self.half_open_probes
            && let Some((next, e)) = self.expire_probes(&mut control, word)
        {
            // Every slot was taken, some by probes past their timeout
            // (permits leaked or hanging): they failed, and decided.
            word = next;
            event = Some(e);
        }
        let result = match word.state() {
            State::HalfOpen if control.probes_admitted < self.half_open_probes => {
                control.probes_admitted += 1;
                let id = control.next_probe;
                control.next_probe = id.wrapping_add(1);
                let start = Instant::now();
                control.outstanding.push((id, start));
                Ok(Ticket {
                    generation: word.generation(),
                    probe: true,
                    probe_id: id,
                    start: Some(start),
                })
            }
            State::Closed | State::Disabled => Ok(Ticket {
                generation: word.generation(),
                probe: false,
                probe_id: 0,
                start: self.start_clock(),
            }),
            State::Open => {
                let until = self.open_until.load(Ordering::Acquire);
                let left = until.saturating_sub(self.now_nanos());
                Err((State::Open, Some(Duration::from_nanos(left))))
            }
            state => Err((state, None)),
        };
        drop(control);
        if let Some(event) = event {
            self.emit(event);
        }
        result.map_err(|(state, retry_after)| self.reject(state, retry_after))
    }

    /// Counts the outstanding probes past the probe timeout as failed;
    /// if that completes the trial, decides it. Call with the lock held.
    fn expire_probes(&self, control: &mut Control, seen: Word) -> Option<(Word, Event)> {
        let now = Instant::now();
        let before = control.outstanding.len();
        control
            .outstanding
            .retain(|&(_, start)| now.saturating_duration_since(start) < self.probe_timeout);
        let expired = (before - control.outstanding.len()) as u32;
        if expired == 0 {
            return None;
        }
        tracing::debug!(breaker = %self.name, expired, "half-open probes past their timeout count as failed");
        control.probes_done += expired;
        control.probe_failures += expired;
        self.decide_trial(control, seen)
    }

    fn reject(&self, state: State, retry_after: Option<Duration>) -> Rejected {
        metrics::counter!(REJECTIONS_TOTAL, "breaker" => self.label.clone(), "state" => state.as_str())
            .increment(1);
        if let Some(listener) = &self.listener {
            listener(&Event::Rejected { state });
        }
        Rejected::new(self.name.clone(), state, retry_after)
    }

    #[inline]
    fn outcome(&self, ticket: &Ticket, failure: bool) -> Outcome {
        let slow = match (ticket.start, self.slow_call_rate) {
            (Some(start), Some(_)) => start.elapsed() >= self.slow_call_duration,
            _ => false,
        };
        Outcome { failure, slow }
    }

    #[inline]
    fn record_result(&self, ticket: Ticket, error: Option<&Error>) {
        // The hot path, kept small enough to inline: an untimed success in
        // the closed state it was admitted in, once the window is warm.
        if error.is_none()
            && ticket.start.is_none()
            && !ticket.probe
            && self.word() == Word::new(State::Closed, ticket.generation)
            && self.window.record_quick_success()
        {
            return;
        }
        self.record_any(ticket, error);
    }

    #[inline(never)]
    fn record_any(&self, ticket: Ticket, error: Option<&Error>) {
        let failure = error.is_some_and(|e| (self.is_failure)(e));
        self.record(ticket, self.outcome(&ticket, failure));
    }

    fn record_failure(&self, ticket: Ticket) {
        self.record(ticket, self.outcome(&ticket, true));
    }

    fn record(&self, ticket: Ticket, outcome: Outcome) {
        let word = self.word();
        if word.generation() != ticket.generation {
            return; // admitted under an earlier state: its outcome is stale
        }
        match word.state() {
            State::Closed => {
                let now = if self.window.needs_clock() {
                    self.now_nanos()
                } else {
                    0
                };
                if let Some(snapshot) = self.window.record(outcome, now)
                    && self.breaches(&snapshot)
                {
                    self.trip(word);
                }
            }
            State::HalfOpen if ticket.probe => self.record_probe(word, ticket.probe_id, outcome),
            _ => {}
        }
    }

    fn breaches(&self, s: &Snapshot) -> bool {
        s.calls >= self.minimum_calls
            && (s.failure_rate() >= self.failure_rate
                || self.slow_call_rate.is_some_and(|r| s.slow_call_rate() >= r))
    }

    fn trip(&self, seen: Word) {
        let mut control = self.lock();
        if self.word() != seen {
            return; // another call already moved the breaker
        }
        let (_, event) = self.transition(&mut control, seen, State::Open);
        drop(control);
        self.emit(event);
    }

    fn record_probe(&self, seen: Word, probe_id: u32, outcome: Outcome) {
        let mut control = self.lock();
        if self.word() != seen {
            return;
        }
        let Some(at) = control
            .outstanding
            .iter()
            .position(|&(id, _)| id == probe_id)
        else {
            return; // past its timeout, already counted as failed
        };
        control.outstanding.swap_remove(at);
        control.probes_done += 1;
        control.probe_failures += u32::from(outcome.failure);
        control.probe_slow += u32::from(outcome.slow);
        let event = self.decide_trial(&mut control, seen);
        drop(control);
        if let Some((_, event)) = event {
            self.emit(event);
        }
    }

    /// Once every probe has finished, closes or opens the breaker by their
    /// outcomes. Call with the lock held.
    fn decide_trial(&self, control: &mut Control, seen: Word) -> Option<(Word, Event)> {
        if control.probes_done < self.half_open_probes {
            return None;
        }
        let trial = Snapshot {
            calls: u64::from(control.probes_done),
            failures: u64::from(control.probe_failures),
            slow: u64::from(control.probe_slow),
        };
        let failed = trial.failure_rate() >= self.failure_rate
            || self
                .slow_call_rate
                .is_some_and(|r| trial.slow_call_rate() >= r);
        let to = if failed { State::Open } else { State::Closed };
        Some(self.transition(control, seen, to))
    }

    fn cancel(&self, ticket: Ticket) {
        if !ticket.probe {
            return; // nothing was reserved for a closed-state call
        }
        let mut control = self.lock();
        let word = self.word();
        if word.generation() == ticket.generation
            && word.state() == State::HalfOpen
            && let Some(at) = control
                .outstanding
                .iter()
                .position(|&(id, _)| id == ticket.probe_id)
        {
            control.outstanding.swap_remove(at);
            control.probes_admitted -= 1;
        }
    }

    fn manual(&self, to: State) {
        let mut control = self.lock();
        let word = self.word();
        let (_, event) = self.transition(&mut control, word, to);
        drop(control);
        self.emit(event);
    }

    /// Moves to `to` in a new generation. Call with the control lock held.
    fn transition(&self, control: &mut Control, from: Word, to: State) -> (Word, Event) {
        match to {
            State::Open => {
                let duration = self.open_duration_after(control.trips);
                control.trips = control.trips.saturating_add(1);
                let until = self
                    .now_nanos()
                    .saturating_add(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
                self.open_until.store(until, Ordering::Release);
            }
            State::HalfOpen => {
                control.probes_admitted = 0;
                control.probes_done = 0;
                control.probe_failures = 0;
                control.probe_slow = 0;
                control.outstanding.clear();
            }
            State::Closed => {
                self.window.reset();
                control.trips = 0;
            }
            _ => {}
        }
        let next = from.next(to);
        self.word.store(next.0, Ordering::Release);
        if let Some(tally) = &control.tally {
            tally.moved(Some(from.state()), Some(to));
        }
        (
            next,
            Event::Transition {
                from: from.state(),
                to,
            },
        )
    }

    fn open_duration_after(&self, trips: u32) -> Duration {
        let factor = self
            .open_multiplier
            .powi(i32::try_from(trips).unwrap_or(i32::MAX));
        let secs = self.open_duration.as_secs_f64() * factor;
        if secs.is_finite() && secs < self.max_open_duration.as_secs_f64() {
            Duration::from_secs_f64(secs)
        } else {
            self.max_open_duration
        }
    }

    fn emit(&self, event: Event) {
        if let Event::Transition { from, to } = event {
            tracing::info!(breaker = %self.name, %from, %to, "circuit breaker transition");
            if self.state_gauge {
                metrics::gauge!(STATE_GAUGE, "breaker" => self.label.clone()).set(to.gauge_value());
            }
            metrics::counter!(
                TRANSITIONS_TOTAL,
                "breaker" => self.label.clone(),
                "from" => from.as_str(),
                "to" => to.as_str(),
            )
            .increment(1);
        }
        if let Some(listener) = &self.listener {
            listener(&event);
        }
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &self.name)
            .field("state", &self.word().state())
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}
