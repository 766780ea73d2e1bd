//! A retry budget: retries may add only a share of the calls' load.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use tokio::time::Instant;

use crate::shard::Counter;

/// Limits retries to a share of first attempts, plus a small reserve per
/// second, so that retries cannot multiply the load on a struggling
/// dependency.
///
/// Every first attempt deposits `ratio` of a token (0.2: one retry per five
/// calls); every retry withdraws a whole one. The balance is capped at
/// `max_balance` tokens, so a long quiet spell cannot save up a storm. When
/// the balance is empty, up to `min_per_second` retries per second still
/// pass, so a low-traffic client keeps some retries.
///
/// It implements tower's [`Budget`](tower::retry::budget::Budget) trait, so
/// tower's own retry middleware can use it too. A deposit, made on every
/// call, only counts the call in a per-thread counter (no lock, no locked
/// instruction for the first threads, no clock); a withdrawal reads the
/// counters and applies the cap.
///
/// ```
/// use pattern_error::retry::RetryBudget;
///
/// let budget = RetryBudget::new(0.5, 0, 10);
/// budget.deposit();
/// budget.deposit();
/// assert!(budget.withdraw()); // two calls earned one retry
/// assert!(!budget.withdraw());
/// ```
#[derive(Debug)]
pub struct RetryBudget {
    /// First attempts made.
    calls: Counter,
    /// Thousandths of a retry earned per first attempt.
    per_call: i64,
    /// Thousandths withdrawn, plus what the cap took away.
    spent: AtomicI64,
    max_balance: i64,
    min_per_second: u64,
    /// Reserve use: the second it counts for (since `epoch`) in the high 32
    /// bits, retries taken in it in the low 32.
    reserve: AtomicU64,
    epoch: Instant,
}

const WHOLE: i64 = 1000;

impl RetryBudget {
    /// A budget allowing `ratio` retries per first attempt (0 to 1000),
    /// `min_per_second` retries per second regardless, and at most
    /// `max_balance` retries saved up.
    ///
    /// # Panics
    ///
    /// If `ratio` is negative, not finite, or above 1000.
    pub fn new(ratio: f64, min_per_second: u32, max_balance: u32) -> Self {
        assert!(
            ratio.is_finite() && (0.0..=1000.0).contains(&ratio),
            "retry ratio must be within 0..=1000"
        );
        Self {
            calls: Counter::new(),
            per_call: (ratio * WHOLE as f64).round() as i64,
            spent: AtomicI64::new(0),
            max_balance: i64::from(max_balance) * WHOLE,
            min_per_second: u64::from(min_per_second),
            reserve: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Records a first attempt.
    #[inline]
    pub fn deposit(&self) {
        self.calls.add_one();
    }

    /// Takes one retry from the budget, if there is one.
    pub fn withdraw(&self) -> bool {
        let earned = self.earned();
        let taken = self.spent.fetch_update(Relaxed, Relaxed, |spent| {
            // Apply the cap now: whatever was earned above it is forfeit.
            let spent = spent.max(earned - self.max_balance);
            (earned - spent >= WHOLE).then_some(spent + WHOLE)
        });
        taken.is_ok() || self.take_reserve()
    }

    /// Retries that could be taken now from the balance (not counting the
    /// per-second reserve).
    pub fn available(&self) -> u64 {
        let earned = self.earned();
        let spent = self.spent.load(Relaxed).max(earned - self.max_balance);
        ((earned - spent).max(0) / WHOLE) as u64
    }

    fn earned(&self) -> i64 {
        i64::try_from(self.calls.sum())
            .unwrap_or(i64::MAX)
            .saturating_mul(self.per_call)
    }

    fn take_reserve(&self) -> bool {
        if self.min_per_second == 0 {
            return false;
        }
        let second = Instant::now()
            .saturating_duration_since(self.epoch)
            .as_secs()
            .min(u64::from(u32::MAX));
        self.reserve
            .fetch_update(Relaxed, Relaxed, |word| {
                let (at, used) = (word >> 32, word & u64::from(u32::MAX));
                let used = if at == second { used } else { 0 };
                (used < self.min_per_second).then_some(second << 32 | (used + 1))
            })
            .is_ok()
    }
}

impl Default for RetryBudget {
    /// 20 % extra load, 10 retries per second in reserve, 100 saved at most.
    fn default() -> Self {
        Self::new(0.2, 10, 100)
    }
}

impl tower::retry::budget::Budget for RetryBudget {
    fn deposit(&self) {
        RetryBudget::deposit(self);
    }

    fn withdraw(&self) -> bool {
        RetryBudget::withdraw(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn balance_is_capped() {
        let budget = RetryBudget::new(1.0, 0, 3);
        for _ in 0..100 {
            budget.deposit();
        }
        assert_eq!(budget.available(), 3);
        assert!(budget.withdraw() && budget.withdraw() && budget.withdraw());
        assert!(!budget.withdraw());
    }

    #[tokio::test(start_paused = true)]
    async fn reserve_refills_every_second() {
        let budget = RetryBudget::new(0.0, 2, 10);
        assert!(budget.withdraw() && budget.withdraw());
        assert!(!budget.withdraw());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(budget.withdraw());
    }
}
