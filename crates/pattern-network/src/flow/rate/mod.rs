//! Rate limiting with governor's GCRA: direct, and keyed with bounded
//! memory.
//!
//! [`Limiter`] is governor's direct limiter with errors in this workspace's
//! terms: a refused call gets a [`RateLimited`] error that converts to
//! [`Kind::RateLimited`] with a retry-after.
//!
//! [`KeyedLimiter`] limits per key (client IP, API key, tenant) with the same
//! algorithm, but tracks at most `max_keys` keys: a flood of distinct keys
//! cannot grow its memory. The keys live in shards of at least 256; a new
//! key in a full shard takes the place of the first fully replenished key
//! a clock hand finds among the next 16 it sweeps (such a key is
//! indistinguishable from a new one, so no decision changes), or, when all
//! 16 are active, of the one closest to replenished, which then starts
//! afresh if it returns.
//! governor's own keyed limiter, by contrast, keeps every key it has seen
//! until `retain_recent` is called.
//!
//! ```
//! use std::num::NonZeroU32;
//! use pattern_network::flow::rate::{KeyedLimiter, Quota};
//! use pattern_error::Kind;
//!
//! // 2 requests per second per client, bursts of 2, at most 10 000 clients tracked.
//! let quota = Quota::per_second(NonZeroU32::new(2).unwrap());
//! let limiter = KeyedLimiter::new(quota, 10_000);
//! assert!(limiter.check(&"10.0.0.1").is_ok());
//! assert!(limiter.check(&"10.0.0.1").is_ok());
//! let refused = limiter.check(&"10.0.0.1").unwrap_err();
//! assert!(refused.retry_after().as_millis() <= 500);
//! assert!(limiter.check(&"10.0.0.2").is_ok(), "other keys are not affected");
//!
//! let err: pattern_error::Error = refused.into();
//! assert_eq!(err.kind(), Kind::RateLimited);
//! ```

mod clock;
mod store;

use std::fmt;
use std::hash::Hash;
use std::time::Duration;

use std::sync::Arc;

pub use governor::Quota;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use pattern_error::{Error, Kind};

pub use clock::TokioClock;
use store::{BoundedStore, SharedStore};

/// A call the limiter refused, and how long until it would pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimited {
    retry_after: Duration,
}

impl RateLimited {
    /// How long until the same call would be allowed.
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rate limited; retry after {:?}", self.retry_after)
    }
}

impl std::error::Error for RateLimited {}

impl From<RateLimited> for Error {
    fn from(limited: RateLimited) -> Self {
        Error::new(Kind::RateLimited, "rate limit exceeded").with_retry_after(limited.retry_after)
    }
}

/// One limit for every call: governor's direct GCRA limiter.
pub struct Limiter<C: Clock = DefaultClock> {
    inner: governor::RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>,
    /// The queue of [`until_ready`](Limiter::until_ready) waiters: tokio's
    /// mutex is fair, so they take slots in arrival order, and only the
    /// one at the head waits on the clock.
    turn: tokio::sync::Mutex<()>,
}

impl Limiter {
    /// A limiter enforcing `quota` with governor's default clock.
    pub fn new(quota: Quota) -> Self {
        Self::with_clock(quota, DefaultClock::default())
    }
}

impl<C: Clock> Limiter<C> {
    /// A limiter on `clock` (tests use governor's `FakeRelativeClock`).
    pub fn with_clock(quota: Quota, clock: C) -> Self {
        Self {
            inner: governor::RateLimiter::direct_with_clock(quota, clock),
            turn: tokio::sync::Mutex::new(()),
        }
    }

    /// Lets one call through, or says how long to wait.
    pub fn check(&self) -> Result<(), RateLimited> {
        self.inner.check().map_err(|not_until| RateLimited {
            retry_after: not_until.wait_time_from(self.inner.clock().now()),
        })
    }
}

impl Limiter<TokioClock> {
    /// A limiter on tokio's clock (it follows paused time in tests) that
    /// can also wait for its next call: [`until_ready`](Self::until_ready).
    pub fn on_tokio(quota: Quota) -> Self {
        Self::with_clock(quota, TokioClock::new())
    }

    /// Waits until a call is allowed, and takes it.
    ///
    /// Waiters queue: they take slots in the order they started waiting,
    /// and only the first waits for the next slot (each is woken about
    /// once, however many wait). [`check`](Self::check) does not queue: a
    /// caller using it may take a slot before the waiters. Cancel-safe: a
    /// dropped wait has taken nothing and leaves the queue.
    pub async fn until_ready(&self) {
        let _turn = self.turn.lock().await;
        loop {
            match self.inner.check() {
                Ok(()) => return,
                Err(not_until) => {
                    let clock = self.inner.clock();
                    tokio::time::sleep_until(clock.instant(not_until.earliest_possible())).await;
                }
            }
        }
    }
}

impl<C: Clock> fmt::Debug for Limiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter").finish_non_exhaustive()
    }
}

/// A limit per key, tracking at most a fixed number of keys; see the
/// [module docs](self).
pub struct KeyedLimiter<K: Hash + Eq + Clone, C: Clock + Clone = DefaultClock> {
    inner: governor::RateLimiter<K, SharedStore<K, C>, C, NoOpMiddleware<C::Instant>>,
    store: Arc<BoundedStore<K, C>>,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// A limiter enforcing `quota` per key, tracking at most `max_keys`.
    ///
    /// # Panics
    ///
    /// If `max_keys` is 0.
    pub fn new(quota: Quota, max_keys: usize) -> Self {
        Self::with_clock(quota, max_keys, DefaultClock::default())
    }
}

impl<K: Hash + Eq + Clone, C: Clock + Clone> KeyedLimiter<K, C> {
    /// A keyed limiter on `clock` (tests use governor's `FakeRelativeClock`).
    ///
    /// # Panics
    ///
    /// If `max_keys` is 0.
    pub fn with_clock(quota: Quota, max_keys: usize, clock: C) -> Self {
        assert!(max_keys > 0, "a keyed limiter must track at least one key");
        let store = Arc::new(BoundedStore::new(max_keys, clock.clone()));
        Self {
            inner: governor::RateLimiter::new(quota, SharedStore(store.clone()), clock),
            store,
        }
    }

    /// Lets one call for `key` through, or says how long to wait.
    pub fn check(&self, key: &K) -> Result<(), RateLimited> {
        self.inner.check_key(key).map_err(|not_until| RateLimited {
            retry_after: not_until.wait_time_from(self.inner.clock().now()),
        })
    }

    /// Keys tracked now (never more than `max_keys`).
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys dropped to make room so far.
    pub fn evicted(&self) -> u64 {
        self.store.evicted()
    }
}

impl<K: Hash + Eq + Clone, C: Clock + Clone> fmt::Debug for KeyedLimiter<K, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedLimiter")
            .field("keys", &self.len())
            .finish_non_exhaustive()
    }
}
