//! Pacing: turn a burst into an even rate.
//!
//! A [`Pacer`] hands out one slot per interval: a
//! [`Limiter`] on tokio's clock with a burst of one;
//! a caller that finds the next slot in the future
//! waits for it. A thousand requests arriving at once leave at the pace
//! instead of all together.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use std::num::NonZeroU32;
//! use std::time::Duration;
//! use pattern_network::flow::pace::Pacer;
//!
//! let pacer = Pacer::per_second(NonZeroU32::new(10).unwrap());
//! let start = tokio::time::Instant::now();
//! for _ in 0..5 {
//!     pacer.ready().await;
//! }
//! // Five calls at 10 per second: the last leaves 400 ms after the first.
//! assert_eq!(start.elapsed(), Duration::from_millis(400));
//! # }
//! ```

use std::fmt;
use std::num::NonZeroU32;

use governor::Quota;

use super::rate::{Limiter, RateLimited, TokioClock};

/// Spaces calls evenly; see the [module docs](self).
pub struct Pacer {
    limiter: Limiter<TokioClock>,
}

impl Pacer {
    /// One call per `1 / rate` seconds.
    pub fn per_second(rate: NonZeroU32) -> Self {
        Self::with_quota(Quota::per_second(rate))
    }

    /// The pace of `quota`'s replenish interval, with no burst (a quota's
    /// burst size is set to one).
    pub fn with_quota(quota: Quota) -> Self {
        Self {
            limiter: Limiter::on_tokio(quota.allow_burst(NonZeroU32::MIN)),
        }
    }

    /// Waits for the next slot. Callers waiting at once take slots in the
    /// order they came, each woken about once. Cancel-safe: a dropped wait
    /// has taken no slot and leaves the queue.
    pub async fn ready(&self) {
        self.limiter.until_ready().await;
    }

    /// Takes the next slot if it has come, or says how long until it does.
    pub fn try_ready(&self) -> Result<(), RateLimited> {
        self.limiter.check()
    }
}

impl fmt::Debug for Pacer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pacer").finish_non_exhaustive()
    }
}
