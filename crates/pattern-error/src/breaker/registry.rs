//! A bounded set of breakers, one per key (host, tenant, route).

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::{CircuitBreaker, CircuitBreakerBuilder, State};
use crate::Error;

/// Counter of breakers evicted from registries, labelled `registry`.
pub const EVICTIONS_TOTAL: &str = "circuit_breaker_registry_evictions_total";
/// Gauge of the breakers a registry holds in each state, labelled
/// `registry` and `state` ([`State::as_str`]).
pub const BREAKERS_GAUGE: &str = "circuit_breaker_registry_breakers";

/// How many shards the keys are spread over, to cut lock contention.
const SHARDS: usize = 16;

/// Holds at most `capacity` breakers, one per key, built from one template.
///
/// A registry never holds more than `capacity` breakers, and never evicts
/// one while it holds fewer: the capacity is shared by every key, however
/// the keys hash. When full, a new key evicts an old breaker: an idle one
/// (unused for the idle timeout) or one not used recently, as the CLOCK
/// algorithm finds them over the whole registry. Breakers that are not
/// closed are kept while any closed or idle one can go, so a flood of new
/// keys does not easily erase what the registry knows about a failing
/// dependency; only when every breaker is open (or half-open, forced open,
/// disabled) and in use does the least recently used one go, and its key
/// starts again closed. Size the capacity above the keys you expect.
///
/// Every breaker of a registry shares the template's name (the `breaker`
/// label of the transition and rejection counters), so keys never become
/// metrics labels. They do not set the `circuit_breaker_state` gauge;
/// the registry reports how many breakers it holds in each state instead:
///
/// | metric | type | labels |
/// | --- | --- | --- |
/// | `circuit_breaker_registry_breakers` | gauge | `registry`, `state` |
/// | `circuit_breaker_registry_evictions_total` | counter | `registry` |
///
/// ```
/// use pattern_error::breaker::{CircuitBreaker, Registry, State};
///
/// let per_host = Registry::new(CircuitBreaker::builder("upstream"), 1024).unwrap();
/// let a = per_host.get(&"10.0.0.1:443".to_owned());
/// let again = per_host.get(&"10.0.0.1:443".to_owned());
/// a.force_open();
/// assert_eq!(again.state(), a.state()); // the same breaker
/// assert_eq!(per_host.len(), 1);
/// assert_eq!(per_host.count(State::ForcedOpen), 1);
/// ```
pub struct Registry<K> {
    template: CircuitBreakerBuilder,
    shards: Box<[Mutex<Shard<K>>]>,
    hasher: RandomState,
    idle_timeout: Duration,
    capacity: usize,
    /// Breakers held. Grows only under a shard lock, with the insertion;
    /// shrinks only under `evictor`, with the removal.
    held: AtomicUsize,
    /// Serialises evictions; holds the shard the next sweep starts at.
    evictor: Mutex<usize>,
    tally: Arc<Tally>,
    evictions: metrics::Counter,
}

struct Shard<K> {
    slots: Vec<Slot<K>>,
    index: HashMap<K, usize>,
    hand: usize,
}

struct Slot<K> {
    key: K,
    breaker: CircuitBreaker,
    referenced: bool,
    last_used: Instant,
}

/// A registry's count of breakers in each state (and its gauges).
pub(super) struct Tally {
    counts: [AtomicUsize; 5],
    gauges: [metrics::Gauge; 5],
}

const STATES: [State; 5] = [
    State::Closed,
    State::Open,
    State::HalfOpen,
    State::ForcedOpen,
    State::Disabled,
];

impl Tally {
    fn new(registry: &str) -> Self {
        let gauge = |state: State| metrics::gauge!(BREAKERS_GAUGE, "registry" => registry.to_owned(), "state" => state.as_str());
        Self {
            counts: Default::default(),
            gauges: STATES.map(gauge),
        }
    }

    /// One breaker left `from` for `to` (`None`: entered or left the
    /// registry).
    pub(super) fn moved(&self, from: Option<State>, to: Option<State>) {
        if let Some(from) = from {
            let i = from.code() as usize;
            self.counts[i].fetch_sub(1, Ordering::Relaxed);
            self.gauges[i].decrement(1.0);
        }
        if let Some(to) = to {
            let i = to.code() as usize;
            self.counts[i].fetch_add(1, Ordering::Relaxed);
            self.gauges[i].increment(1.0);
        }
    }
}

impl fmt::Debug for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (state, count) in STATES.iter().zip(&self.counts) {
            map.entry(&state.as_str(), &count.load(Ordering::Relaxed));
        }
        map.finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<K> Registry<K>
where
    K: Hash + Eq + Clone,
{
    /// A registry of at most `capacity` breakers built from `template`,
    /// treating breakers unused for 10 minutes as idle.
    ///
    /// Fails if the template is invalid or `capacity` is 0.
    pub fn new(template: CircuitBreakerBuilder, capacity: usize) -> Result<Self, Error> {
        Self::with_idle_timeout(template, capacity, Duration::from_secs(600))
    }

    /// Like [`new`](Self::new) with the idle timeout given.
    pub fn with_idle_timeout(
        template: CircuitBreakerBuilder,
        capacity: usize,
        idle_timeout: Duration,
    ) -> Result<Self, Error> {
        if capacity == 0 {
            return Err(Error::new(
                crate::Kind::InvalidInput,
                "a breaker registry needs a capacity of at least 1",
            ));
        }
        // Validate the template once, here, rather than on every new key.
        template.validate()?;
        let name = template.name.clone();
        Ok(Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        slots: Vec::new(),
                        index: HashMap::new(),
                        hand: 0,
                    })
                })
                .collect(),
            hasher: RandomState::new(),
            idle_timeout,
            capacity,
            held: AtomicUsize::new(0),
            evictor: Mutex::new(0),
            tally: Arc::new(Tally::new(&name)),
            evictions: metrics::counter!(EVICTIONS_TOTAL, "registry" => name),
            template,
        })
    }

    /// The breaker for `key`, created from the template when missing.
    pub fn get(&self, key: &K) -> CircuitBreaker {
        let shard = &self.shards[self.hasher.hash_one(key) as usize % SHARDS];
        loop {
            let now = Instant::now();
            {
                let mut shard = lock(shard);
                if let Some(&i) = shard.index.get(key) {
                    let slot = &mut shard.slots[i];
                    slot.referenced = true;
                    slot.last_used = now;
                    return slot.breaker.clone();
                }
                // The key is copied before a place is taken: a copy that
                // panics must not leak the place.
                let owned = key.clone();
                let index_key = owned.clone();
                if self.reserve() {
                    let breaker =
                        CircuitBreaker::for_registry(self.template.clone(), self.tally.clone());
                    self.tally.moved(None, Some(State::Closed));
                    let i = shard.slots.len();
                    shard.slots.push(Slot {
                        key: owned,
                        breaker: breaker.clone(),
                        referenced: true,
                        last_used: now,
                    });
                    shard.index.insert(index_key, i);
                    return breaker;
                }
            }
            // Full: make room (unless another caller just did) and try
            // again. Each turn either finds the key, takes a place, or
            // frees one, so callers as a whole always progress.
            self.evict_one(now);
        }
    }

    /// Takes a place for a new breaker, if there is one.
    fn reserve(&self) -> bool {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < self.capacity).then_some(held + 1)
            })
            .is_ok()
    }

    /// Evicts one breaker if the registry is full. The first two sweeps
    /// over every shard take the first idle, or closed and unreferenced,
    /// breaker, clearing reference bits as they pass (CLOCK); if every
    /// breaker is open or otherwise kept, the least recently used goes.
    fn evict_one(&self, now: Instant) {
        let mut start = lock(&self.evictor);
        if self.held.load(Ordering::Acquire) < self.capacity {
            return;
        }
        for round in 0..2 * SHARDS {
            let s = (*start + round) % SHARDS;
            let mut shard = lock(&self.shards[s]);
            if let Some(i) = shard.sweep(now, self.idle_timeout) {
                *start = (s + 1) % SHARDS;
                self.remove(&mut shard, i);
                return;
            }
        }
        let oldest = (0..SHARDS)
            .filter_map(|s| {
                let shard = lock(&self.shards[s]);
                let (i, slot) = shard
                    .slots
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, slot)| slot.last_used)?;
                Some((slot.last_used, s, i))
            })
            .min();
        // Slots move only when one is removed, which happens only here.
        if let Some((_, s, i)) = oldest {
            self.remove(&mut lock(&self.shards[s]), i);
        }
    }

    fn remove(&self, shard: &mut Shard<K>, i: usize) {
        let old = shard.slots.swap_remove(i);
        shard.index.remove(&old.key);
        if let Some(moved) = shard.slots.get(i) {
            shard.index.insert(moved.key.clone(), i);
        }
        if shard.hand >= shard.slots.len() {
            shard.hand = 0;
        }
        old.breaker.leave_registry();
        self.held.fetch_sub(1, Ordering::AcqRel);
        self.evictions.increment(1);
    }

    /// How many breakers the registry holds, counted in its shards with
    /// all of them locked (one moment's count; nothing else ever holds two
    /// shards, so this cannot deadlock).
    pub fn len(&self) -> usize {
        let shards: Vec<_> = self.shards.iter().map(lock).collect();
        shards.iter().map(|shard| shard.slots.len()).sum()
    }

    /// Whether the registry holds no breaker.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most breakers the registry holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many of its breakers are in `state` now.
    pub fn count(&self, state: State) -> usize {
        self.tally.counts[state.code() as usize].load(Ordering::Relaxed)
    }
}

impl<K> Shard<K> {
    /// One turn of the clock hand over this shard: the first slot that is
    /// idle, or unreferenced and closed; the reference bits of the others
    /// are cleared as the hand passes.
    fn sweep(&mut self, now: Instant, idle_timeout: Duration) -> Option<usize> {
        let len = self.slots.len();
        for _ in 0..len {
            let i = self.hand;
            self.hand = (self.hand + 1) % len;
            let slot = &mut self.slots[i];
            let idle = now.saturating_duration_since(slot.last_used) >= idle_timeout;
            if idle || (!slot.referenced && slot.breaker.state() == State::Closed) {
                return Some(i);
            }
            slot.referenced = false;
        }
        None
    }
}

impl<K> fmt::Debug for Registry<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("name", &self.template.name)
            .field("capacity", &self.capacity)
            .field("held", &self.held.load(Ordering::Relaxed))
            .field("states", &self.tally)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::CircuitBreaker;

    fn slot(key: u32, referenced: bool, open: bool, last_used: Instant) -> Slot<u32> {
        let breaker = CircuitBreaker::builder("t").build().unwrap();
        if open {
            breaker.force_open();
        }
        Slot {
            key,
            breaker,
            referenced,
            last_used,
        }
    }

    fn shard(slots: Vec<Slot<u32>>) -> Shard<u32> {
        let index = slots.iter().enumerate().map(|(i, s)| (s.key, i)).collect();
        Shard {
            slots,
            index,
            hand: 0,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_victim_is_unreferenced_and_closed_first() {
        let now = Instant::now();
        let mut s = shard(vec![
            slot(0, false, true, now), // open: kept
            slot(1, true, false, now), // recently used: a second chance
            slot(2, false, false, now),
        ]);
        assert_eq!(s.sweep(now, Duration::from_secs(60)), Some(2));
        // The hand cleared slot 1's reference on the way: it goes next.
        assert_eq!(s.sweep(now, Duration::from_secs(60)), Some(1));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_breaker_goes_even_when_open() {
        let old = Instant::now();
        tokio::time::advance(Duration::from_secs(120)).await;
        let now = Instant::now();
        let mut s = shard(vec![slot(0, true, false, now), slot(1, true, true, old)]);
        assert_eq!(s.sweep(now, Duration::from_secs(60)), Some(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_sweep_keeps_open_breakers() {
        let now = Instant::now();
        let mut s = shard(vec![slot(0, true, true, now), slot(1, false, true, now)]);
        assert_eq!(s.sweep(now, Duration::from_secs(60)), None);
        assert_eq!(s.sweep(now, Duration::from_secs(60)), None);
    }
}
