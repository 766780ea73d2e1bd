//! The state every clone of a breaker shares, and what a call is admitted
//! as.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::time::Instant;

use super::super::config::{Listener, Settings};
use super::super::registry::Tally;
use super::super::state::Word;
use super::super::window::SlidingWindow;

/// A breaker's state: the word (state and generation) and the window read
/// on every call, and the half-open bookkeeping under a lock no closed-state
/// call takes.
pub(super) struct Shared {
    pub(super) name: Arc<str>,
    pub(super) label: metrics::SharedString,
    /// State and generation ([`Word`]).
    pub(super) word: AtomicU64,
    pub(super) window: SlidingWindow,
    /// Time zero for the nanosecond clocks below.
    pub(super) epoch: Instant,
    /// When the open state ends, in nanoseconds since `epoch`.
    pub(super) open_until: AtomicU64,
    /// What it judges by.
    pub(super) settings: Settings,
    pub(super) listener: Option<Listener>,
    /// Whether this breaker sets the `circuit_breaker_state` gauge of its
    /// name (not when it belongs to a registry: its keys share the name,
    /// and the registry counts its breakers by state instead).
    pub(super) state_gauge: bool,
    /// Serialises transitions and half-open bookkeeping; never taken by a
    /// call in the closed state.
    pub(super) control: Mutex<Control>,
}

#[derive(Debug, Default)]
pub(super) struct Control {
    /// Consecutive trips to open without a successful trial in between.
    pub(super) trips: u32,
    pub(super) probes_admitted: u32,
    pub(super) probes_done: u32,
    pub(super) probe_failures: u32,
    pub(super) probe_slow: u32,
    /// The probes admitted and not yet reported: id and start.
    pub(super) outstanding: Vec<(u32, Instant)>,
    /// The id the next probe gets.
    pub(super) next_probe: u32,
    /// The registry's count of breakers by state, while the registry holds
    /// this breaker: moved with every transition, under this lock, so an
    /// eviction (which takes it away under the same lock) never races one.
    pub(super) tally: Option<Arc<Tally>>,
}

/// What a call was admitted as; recorded against the same generation only.
#[derive(Clone, Copy, Debug)]
pub(super) struct Ticket {
    pub(super) generation: u64,
    pub(super) probe: bool,
    /// A probe's id among the outstanding ones.
    pub(super) probe_id: u32,
    pub(super) start: Option<Instant>,
}

impl Ticket {
    /// A call admitted in the closed (or disabled) state of `word`, timed
    /// from `start` when slow calls are judged.
    #[inline]
    pub(super) fn call(word: Word, start: Option<Instant>) -> Self {
        Self {
            generation: word.generation(),
            probe: false,
            probe_id: 0,
            start,
        }
    }
}

impl Shared {
    #[inline]
    pub(super) fn word(&self) -> Word {
        Word(self.word.load(Ordering::Acquire))
    }

    pub(super) fn now_nanos(&self) -> u64 {
        let elapsed = Instant::now().saturating_duration_since(self.epoch);
        u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The start time of a call, when slow calls are judged.
    #[inline]
    pub(super) fn start_clock(&self) -> Option<Instant> {
        self.settings.slow_call_rate.map(|_| Instant::now())
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
