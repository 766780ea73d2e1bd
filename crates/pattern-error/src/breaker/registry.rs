//! A bounded set of breakers, one per key (host, tenant, route).

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::{Builder, CircuitBreaker, State};
use crate::Error;

/// Counter of breakers evicted from registries, labelled `registry`.
pub const EVICTIONS_TOTAL: &str = "circuit_breaker_registry_evictions_total";

/// Holds at most `capacity` breakers, one per key, built from one template.
///
/// When full, a new key evicts an old breaker: an idle one (unused for the
/// idle timeout) or one not used recently, as the CLOCK algorithm finds them. Breakers that are not closed get a second
/// chance before eviction, so a flood of new keys does not easily erase what
/// the registry knows about a failing dependency. Memory stays bounded by
/// `capacity` whatever keys arrive.
///
/// Every breaker of a registry shares the template's name (the `breaker`
/// metrics label), so keys never become metrics labels.
///
/// ```
/// use pattern_error::breaker::{CircuitBreaker, Registry};
///
/// let per_host = Registry::new(CircuitBreaker::builder("upstream"), 1024).unwrap();
/// let a = per_host.get(&"10.0.0.1:443".to_owned());
/// let again = per_host.get(&"10.0.0.1:443".to_owned());
/// a.force_open();
/// assert_eq!(again.state(), a.state()); // the same breaker
/// assert_eq!(per_host.len(), 1);
/// ```
pub struct Registry<K> {
    template: Builder,
    shards: Box<[Mutex<Shard<K>>]>,
    hasher: RandomState,
    idle_timeout: Duration,
}

struct Shard<K> {
    capacity: usize,
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

impl<K> Registry<K>
where
    K: Hash + Eq + Clone,
{
    /// A registry of at most `capacity` breakers built from `template`,
    /// treating breakers unused for 10 minutes as idle.
    ///
    /// Fails if the template is invalid or `capacity` is 0.
    pub fn new(template: Builder, capacity: usize) -> Result<Self, Error> {
        Self::with_idle_timeout(template, capacity, Duration::from_secs(600))
    }

    /// Like [`new`](Self::new) with the idle timeout given.
    pub fn with_idle_timeout(
        template: Builder,
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
        template.clone().build()?;
        // Shards cut lock contention; each holds an equal share so the total
        // never exceeds `capacity`.
        let shards = capacity.clamp(1, 16);
        let per_shard = capacity / shards;
        Ok(Self {
            template,
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(Shard {
                        capacity: per_shard,
                        slots: Vec::new(),
                        index: HashMap::new(),
                        hand: 0,
                    })
                })
                .collect(),
            hasher: RandomState::new(),
            idle_timeout,
        })
    }

    /// The breaker for `key`, created from the template when missing.
    pub fn get(&self, key: &K) -> CircuitBreaker {
        let shard = &self.shards[self.hasher.hash_one(key) as usize % self.shards.len()];
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if let Some(&i) = shard.index.get(key) {
            let slot = &mut shard.slots[i];
            slot.referenced = true;
            slot.last_used = now;
            return slot.breaker.clone();
        }
        let breaker = CircuitBreaker::from_builder(self.template.clone());
        let slot = Slot {
            key: key.clone(),
            breaker: breaker.clone(),
            referenced: true,
            last_used: now,
        };
        if shard.slots.len() < shard.capacity {
            let i = shard.slots.len();
            shard.slots.push(slot);
            shard.index.insert(key.clone(), i);
        } else {
            let i = shard.victim(now, self.idle_timeout);
            let old = std::mem::replace(&mut shard.slots[i], slot);
            shard.index.remove(&old.key);
            shard.index.insert(key.clone(), i);
            metrics::counter!(EVICTIONS_TOTAL, "registry" => self.template.name.clone())
                .increment(1);
        }
        breaker
    }

    /// How many breakers the registry holds.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).slots.len())
            .sum()
    }

    /// Whether the registry holds no breaker.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most breakers the registry holds.
    pub fn capacity(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).capacity)
            .sum()
    }
}

impl<K> Shard<K> {
    /// The slot to evict: the first the clock hand finds idle, or
    /// unreferenced and closed. Reference bits are cleared as the hand
    /// passes, so two sweeps at most find one unless every breaker is open
    /// or half-open, and then the hand's slot goes.
    fn victim(&mut self, now: Instant, idle_timeout: Duration) -> usize {
        let len = self.slots.len();
        for _ in 0..2 * len {
            let i = self.hand;
            self.hand = (self.hand + 1) % len;
            let slot = &mut self.slots[i];
            let idle = now.saturating_duration_since(slot.last_used) >= idle_timeout;
            if idle || (!slot.referenced && slot.breaker.state() == State::Closed) {
                return i;
            }
            slot.referenced = false;
        }
        let i = self.hand;
        self.hand = (self.hand + 1) % len;
        i
    }
}

impl<K> fmt::Debug for Registry<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("name", &self.template.name)
            .field("shards", &self.shards.len())
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
            capacity: slots.len(),
            slots,
            index,
            hand: 0,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_victim_is_unreferenced_and_closed_first() {
        let now = Instant::now();
        let mut s = shard(vec![
            slot(0, false, true, now), // open: a second chance
            slot(1, true, false, now), // recently used: a second chance
            slot(2, false, false, now),
        ]);
        assert_eq!(s.victim(now, Duration::from_secs(60)), 2);
        // The hand cleared slot 1's reference on the way: it goes next.
        assert_eq!(s.victim(now, Duration::from_secs(60)), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_breaker_goes_even_when_open() {
        let old = Instant::now();
        tokio::time::advance(Duration::from_secs(120)).await;
        let now = Instant::now();
        let mut s = shard(vec![slot(0, true, false, now), slot(1, true, true, old)]);
        assert_eq!(s.victim(now, Duration::from_secs(60)), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn when_every_breaker_is_open_the_hand_decides() {
        let now = Instant::now();
        let mut s = shard(vec![slot(0, true, true, now), slot(1, true, true, now)]);
        // Two sweeps find nothing to spare; the hand's slot goes.
        assert_eq!(s.victim(now, Duration::from_secs(60)), 0);
    }
}
