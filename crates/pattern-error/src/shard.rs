//! Per-thread sharding, so that hot counters are not written by two threads
//! through one cache line.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

/// A value alone on its cache line(s), so that shards do not false-share.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

/// How many shards per-thread state is split into: a power of two, twice
/// the cores, from 4 to 16 (memory per sharded value stays small).
pub(crate) fn shard_count() -> usize {
    std::thread::available_parallelism()
        .map_or(4, |n| n.get() * 2)
        .next_power_of_two()
        .clamp(4, 16)
}

/// This thread's slot, given back to [`FREE_SLOTS`] when the thread exits.
struct Slot(usize);

impl Drop for Slot {
    fn drop(&mut self) {
        FREE_SLOTS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(self.0);
    }
}

/// Slots of threads that have exited, lowest first.
static FREE_SLOTS: Mutex<BTreeSet<usize>> = Mutex::new(BTreeSet::new());
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SLOT: Slot = Slot(
        FREE_SLOTS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_first()
            .unwrap_or_else(|| NEXT_SLOT.fetch_add(1, Relaxed)),
    );
}

/// A number no other live thread holds, the lowest free one when the
/// thread first asks. Slots of exited threads are reused, so the first
/// [`shard_count`] slots stay with live threads, each owning a shard
/// outright. (The mutex hand-over orders an exited owner's last writes
/// before the next owner's.)
#[inline]
pub(crate) fn thread_slot() -> usize {
    // During thread teardown the slot may already be gone: use a number
    // that owns no shard.
    SLOT.try_with(|slot| slot.0).unwrap_or(usize::MAX >> 1)
}

/// A monotonic counter split in per-thread shards.
///
/// The thread that owns a shard (one of the first [`shard_count`] threads)
/// adds with a plain load and store, no locked instruction; other threads
/// mapped to the shard add to its `shared` half atomically. Reading sums
/// every shard: cheap to write, dearer to read, for counters written on
/// every call and read rarely.
#[derive(Debug)]
pub(crate) struct Counter {
    shards: Box<[Padded<Shard>]>,
}

#[derive(Debug, Default)]
struct Shard {
    owned: AtomicU64,
    shared: AtomicU64,
}

impl Counter {
    pub(crate) fn new() -> Self {
        Self {
            shards: (0..shard_count()).map(|_| Padded::default()).collect(),
        }
    }

    #[inline]
    pub(crate) fn add_one(&self) {
        let slot = thread_slot();
        let shard = &self.shards[slot & (self.shards.len() - 1)].0;
        if slot < self.shards.len() {
            // Only this thread ever writes `owned`: no read-modify-write needed.
            shard.owned.store(shard.owned.load(Relaxed) + 1, Relaxed);
        } else {
            shard.shared.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn sum(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.0.owned.load(Relaxed) + s.0.shared.load(Relaxed))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_of_exited_threads_are_reused() {
        // A hundred threads one after the other: without reuse they would
        // hold a hundred different slots. Tests running in parallel may take
        // a few, never most.
        let mut slots: Vec<usize> = (0..100)
            .map(|_| std::thread::spawn(thread_slot).join().unwrap())
            .collect();
        slots.sort_unstable();
        slots.dedup();
        assert!(
            slots.len() < 50,
            "{} distinct slots: {slots:?}",
            slots.len()
        );
    }

    #[test]
    fn counts_from_many_threads_add_up() {
        let counter = Counter::new();
        std::thread::scope(|s| {
            for _ in 0..(shard_count() * 3) {
                s.spawn(|| {
                    for _ in 0..1000 {
                        counter.add_one();
                    }
                });
            }
        });
        assert_eq!(counter.sum(), (shard_count() * 3 * 1000) as u64);
    }
}
