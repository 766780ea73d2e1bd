//! A governor state store holding at most N keys.

use std::hash::{BuildHasher, Hash};
use std::sync::{Arc, Mutex, PoisonError};

use governor::clock::{Clock, Reference};
use governor::nanos::Nanos;
use governor::state::StateStore;
use hashbrown::{DefaultHashBuilder, HashTable};

/// Keys per shard examined when looking for one to evict.
const SWEEP: usize = 16;

/// GCRA state ("theoretical arrival time", in nanoseconds since the
/// limiter's start) per key, in shards of bounded size.
///
/// A key whose arrival time has passed is *idle*: its state is the same as a
/// key never seen, so dropping it changes no decision. A new key in a full
/// shard replaces an idle key if the clock hand finds one within a short
/// sweep, else the swept key closest to idle (the one that loses least).
///
/// A key is hashed once: the hash picks the shard (from bits the table does
/// not use) and finds the slot.
#[derive(Debug)]
pub(super) struct BoundedStore<K, C: Clock> {
    shards: Box<[Mutex<Shard<K>>]>,
    hasher: DefaultHashBuilder,
    clock: C,
    start: C::Instant,
}

#[derive(Debug)]
struct Shard<K> {
    capacity: usize,
    slots: Vec<Slot<K>>,
    /// Indexes into `slots`, by the key's hash.
    table: HashTable<usize>,
    hand: usize,
    evicted: u64,
}

#[derive(Debug)]
struct Slot<K> {
    key: K,
    hash: u64,
    tat: u64,
}

/// The store as governor holds it, shared with the limiter's handle (which
/// reads its size).
#[derive(Debug)]
pub(super) struct SharedStore<K, C: Clock>(pub(super) Arc<BoundedStore<K, C>>);

impl<K: Hash + Eq + Clone, C: Clock> StateStore for SharedStore<K, C> {
    type Key = K;

    #[inline]
    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        self.0.measure_and_replace(key, f)
    }
}

impl<K: Hash + Eq + Clone, C: Clock> BoundedStore<K, C> {
    pub(super) fn new(max_keys: usize, clock: C) -> Self {
        // Shards of at least 256 keys: eviction only looks inside the new
        // key's shard, which must hold enough keys to find an idle one.
        let shards = (max_keys / 256).clamp(1, 64);
        let (per_shard, extra) = (max_keys / shards, max_keys % shards);
        let start = clock.now();
        Self {
            shards: (0..shards)
                .map(|i| {
                    Mutex::new(Shard {
                        // The first `extra` shards take one more: `max_keys` in all.
                        capacity: per_shard + usize::from(i < extra),
                        slots: Vec::new(),
                        table: HashTable::new(),
                        hand: 0,
                        evicted: 0,
                    })
                })
                .collect(),
            hasher: DefaultHashBuilder::default(),
            clock,
            start,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).slots.len())
            .sum()
    }

    pub(super) fn evicted(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).evicted)
            .sum()
    }

    fn now(&self) -> u64 {
        self.clock.now().duration_since(self.start).into()
    }

    #[inline]
    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let hash = self.hasher.hash_one(key);
        // Bits 32 and up: the table uses the lowest bits for buckets and
        // the top 7 for its tags.
        let shard = &self.shards[(hash >> 32) as usize % self.shards.len()];
        let mut guard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        let shard = &mut *guard;
        if let Some(&i) = shard.table.find(hash, |&i| shard.slots[i].key == *key) {
            let slot = &mut shard.slots[i];
            let (outcome, tat) = f(Some(Nanos::from(slot.tat)))?;
            slot.tat = tat.into();
            return Ok(outcome);
        }
        let (outcome, tat) = f(None)?;
        let slot = Slot {
            key: key.clone(),
            hash,
            tat: tat.into(),
        };
        if shard.slots.len() < shard.capacity {
            let i = shard.slots.len();
            shard.slots.push(slot);
            let slots = &shard.slots;
            shard.table.insert_unique(hash, i, |&j| slots[j].hash);
        } else {
            let i = shard.victim(self.now());
            let old = std::mem::replace(&mut shard.slots[i], slot);
            if let Ok(entry) = shard.table.find_entry(old.hash, |&j| j == i) {
                entry.remove();
            }
            let slots = &shard.slots;
            shard.table.insert_unique(hash, i, |&j| slots[j].hash);
            shard.evicted += 1;
        }
        Ok(outcome)
    }
}

impl<K> Shard<K> {
    /// The slot to reuse: the first idle one the hand finds, or among the
    /// swept ones the closest to idle.
    fn victim(&mut self, now: u64) -> usize {
        let len = self.slots.len();
        let mut best = self.hand;
        for _ in 0..SWEEP.min(len) {
            let i = self.hand;
            self.hand = (self.hand + 1) % len;
            if self.slots[i].tat <= now {
                return i;
            }
            if self.slots[i].tat < self.slots[best].tat {
                best = i;
            }
        }
        best
    }
}
