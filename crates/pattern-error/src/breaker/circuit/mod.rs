//! The breaker itself: its handle ([`CircuitBreaker`]), the state its
//! clones share, and how that state admits calls, records their outcomes
//! and moves between states (a file each).

mod admit;
mod permit;
mod record;
mod shared;
mod transition;

use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

pub(super) use self::permit::OwnedPermit;
pub use self::permit::Permit;
use self::shared::{Control, Shared};
use super::config::CircuitBreakerBuilder;
use super::event::STATE_GAUGE;
use super::registry::Tally;
use super::state::Word;
use super::window::{SlidingWindow, Snapshot};
use super::{Rejected, State};
use crate::shard::{Padded, shard_count, thread_slot};
use crate::{Error, Kind};

/// A circuit breaker; see the [module docs](super) for the state machine.
///
/// Cloning is cheap and shares the state: every clone is the same breaker.
#[derive(Clone, Debug)]
pub struct CircuitBreaker {
    shared: Arc<Shared>,
    /// Per-thread handles on `shared` for futures that must own one: a
    /// future clones its thread's anchor, so threads do not fight over one
    /// reference count.
    anchors: Arc<[Arc<Padded<Anchor>>]>,
}

#[derive(Debug)]
struct Anchor {
    shared: Arc<Shared>,
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
        let shared = Shared {
            name,
            label,
            word: AtomicU64::new(Word::new(State::Closed, 0).0),
            window: SlidingWindow::new(b.settings.window, b.settings.minimum_calls),
            epoch: Instant::now(),
            open_until: AtomicU64::new(0),
            settings: b.settings,
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
    fn anchor(&self) -> Arc<Padded<Anchor>> {
        self.anchors[thread_slot() & (self.anchors.len() - 1)].clone()
    }

    /// Asks to make a call from a future that must own its permit: the
    /// permit, and the probe timeout when the call is a half-open probe.
    #[inline]
    pub(super) fn try_acquire_owned(&self) -> Result<(OwnedPermit, Option<Duration>), Rejected> {
        let ticket = self.shared.admit()?;
        let probe_timeout = ticket.probe.then_some(self.shared.settings.probe_timeout);
        Ok((OwnedPermit::new(self.anchor(), ticket), probe_timeout))
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
            match tokio::time::timeout(self.shared.settings.probe_timeout, future).await {
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
