//! Counters tagged with the lap of the window they count, for the time
//! window's buckets.

#[cfg(loom)]
use loom::sync::atomic::{AtomicU64, Ordering::Relaxed};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The tag of a lap: its number's low 32 bits, plus one so that a counter
/// never written (0) matches no lap until 2^32 laps on. A counter left
/// untouched for a multiple of 2^32 laps of its window, give or take two
/// (49 days for the shortest, 1 ms window; longer for any other), would be
/// taken for current or late: the price of one word per counter.
pub(super) fn lap_tag(lap: u64) -> u32 {
    (lap as u32).wrapping_add(1)
}

/// A counter tagged with the lap it counts: the tag in the high 32 bits,
/// the count (saturating) in the low 32.
#[derive(Debug)]
pub(super) struct Tagged(AtomicU64);

impl Tagged {
    pub(super) fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Counts one for the lap `tag`, starting afresh, in the same
    /// compare-and-swap, if the counter holds another lap. A call of the
    /// lap or two just before the counter's (a caller that read the clock
    /// just before the lap turned, and recorded after) is not counted: its
    /// lap has left the window. Any other lap is older than that (tags
    /// wrap), and is started afresh.
    pub(super) fn add(&self, tag: u32) {
        let fresh = (u64::from(tag) << 32) | 1;
        let mut current = self.0.load(Relaxed);
        loop {
            let held = (current >> 32) as u32;
            let next = if held == tag {
                if current as u32 == u32::MAX {
                    return;
                }
                current + 1
            } else if current != 0 && matches!(held.wrapping_sub(tag), 1..=2) {
                return;
            } else {
                fresh
            };
            match self
                .0
                .compare_exchange_weak(current, next, Relaxed, Relaxed)
            {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// The count for the lap `tag` (0 if the counter holds another lap).
    pub(super) fn get(&self, tag: u32) -> u64 {
        let word = self.0.load(Relaxed);
        if (word >> 32) as u32 == tag {
            u64::from(word as u32)
        } else {
            0
        }
    }

    pub(super) fn clear(&self) {
        self.0.store(0, Relaxed);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn tagged_counters_count_one_lap() {
        let c = Tagged::new();
        assert_eq!(c.get(lap_tag(0)), 0);
        c.add(lap_tag(0));
        c.add(lap_tag(0));
        assert_eq!(c.get(lap_tag(0)), 2);
        assert_eq!(c.get(lap_tag(1)), 0);
        c.add(lap_tag(1));
        assert_eq!((c.get(lap_tag(0)), c.get(lap_tag(1))), (0, 1));
        // A late call of the older lap does not undo the newer one.
        c.add(lap_tag(0));
        assert_eq!((c.get(lap_tag(0)), c.get(lap_tag(1))), (0, 1));
        // Laps keep their order across the tag's wrap.
        let c = Tagged::new();
        c.add(lap_tag(u64::from(u32::MAX)));
        c.add(lap_tag(u64::from(u32::MAX) + 1));
        assert_eq!(c.get(lap_tag(u64::from(u32::MAX) + 1)), 1);
        // A counter idle for any number of laps starts afresh (it was
        // taken for newer, and refused every call, between 2^31 and 2^32
        // laps on).
        for idle in [3u64, 1 << 20, (1 << 31) + 5, (1 << 32) - 7] {
            let c = Tagged::new();
            c.add(lap_tag(10));
            c.add(lap_tag(10 + idle));
            assert_eq!(c.get(lap_tag(10 + idle)), 1, "idle {idle} laps");
        }
    }
}

/// Every interleaving of calls counted at once, some into a counter that
/// still holds an older lap (run with `RUSTFLAGS="--cfg loom"`; `cargo
/// xtask ci` does).
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;

    #[test]
    fn loom_no_call_is_lost_when_a_lap_turns() {
        loom::model(|| {
            let counter = Arc::new(Tagged::new());
            counter.add(lap_tag(6));
            counter.add(lap_tag(6));
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let counter = counter.clone();
                    loom::thread::spawn(move || counter.add(lap_tag(7)))
                })
                .collect();
            counter.add(lap_tag(7));
            for thread in threads {
                thread.join().unwrap();
            }
            assert_eq!(counter.get(lap_tag(7)), 3);
            assert_eq!(counter.get(lap_tag(6)), 0);
        });
    }

    #[test]
    fn loom_a_late_call_of_the_old_lap_does_not_undo_the_new_one() {
        loom::model(|| {
            let counter = Arc::new(Tagged::new());
            counter.add(lap_tag(1));
            let old = {
                let counter = counter.clone();
                loom::thread::spawn(move || counter.add(lap_tag(1)))
            };
            counter.add(lap_tag(2));
            old.join().unwrap();
            // The late call counted in lap 1 before the turn, or not at
            // all after it: lap 2's count survives either way.
            assert_eq!(counter.get(lap_tag(2)), 1);
            assert_eq!(counter.get(lap_tag(1)), 0);
        });
    }
}
