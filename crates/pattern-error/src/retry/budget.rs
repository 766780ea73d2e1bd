//! A retry budget: retries may add only a share of the calls' load.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use tokio::time::Instant;

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
/// tower's own retry middleware can use it too. A deposit is one relaxed
/// atomic add and reads no clock; only a withdrawal that finds the balance
/// empty looks at the time.
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
    /// Balance in thousandths of a retry.
    balance: AtomicI64,
    deposit: i64,
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
            balance: AtomicI64::new(0),
            deposit: (ratio * WHOLE as f64).round() as i64,
            max_balance: i64::from(max_balance) * WHOLE,
            min_per_second: u64::from(min_per_second),
            reserve: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// Records a first attempt.
    pub fn deposit(&self) {
        if self.balance.load(Relaxed) < self.max_balance {
            self.balance.fetch_add(self.deposit, Relaxed);
        }
    }

    /// Takes one retry from the budget, if there is one.
    pub fn withdraw(&self) -> bool {
        let taken = self
            .balance
            .fetch_update(Relaxed, Relaxed, |b| (b >= WHOLE).then_some(b - WHOLE));
        taken.is_ok() || self.take_reserve()
    }

    /// Retries that could be taken now from the balance (not counting the
    /// per-second reserve).
    pub fn available(&self) -> u64 {
        (self.balance.load(Relaxed).max(0) / WHOLE) as u64
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
