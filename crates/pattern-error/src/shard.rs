//! Per-thread sharding, so that hot counters are not written by two threads
//! through one cache line.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

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

thread_local! {
    static SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// A number unique to this thread, handed out in the order threads first
/// ask. The first [`shard_count`] threads each own a shard outright.
#[inline]
pub(crate) fn thread_slot() -> usize {
    SLOT.with(|slot| {
        let mut n = slot.get();
        if n == usize::MAX {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            n = NEXT.fetch_add(1, Relaxed);
            slot.set(n);
        }
        n
    })
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
