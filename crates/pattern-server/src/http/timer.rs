//! The HTTP/1 header read timer: one tokio sleep per connection, moved
//! forward for each head, instead of one made, registered and cancelled
//! per request.
//!
//! hyper starts its header read timer when it begins reading a head, drops
//! it when the head is read, and asks for a new one for the next head.
//! With [`TokioTimer`](hyper_util::rt::TokioTimer) each of those is a new
//! tokio sleep: a runtime handle taken, an entry put into the timer wheel
//! (under the driver's lock) and taken out again, for every request. Here
//! each of hyper's sleeps is a deadline over the connection's one tokio
//! sleep. A later deadline moves that sleep forward without touching the
//! wheel (tokio extends a registered sleep in place); a sleep hyper drops
//! leaves it armed, and it wakes the connection once at most, after the
//! header read timeout, if nothing moved it since.
//!
//! hyper decides when the timer starts, stops and fires, exactly as with
//! `TokioTimer`; only its cost changes. It serves one sleep at a time,
//! which is how hyper's HTTP/1 server uses its timer (the header read
//! timer is its only one); HTTP/2 keeps `TokioTimer`, whose keep-alive
//! pings hold sleeps of their own.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A connection's HTTP/1 header read timer (give each connection its own).
#[derive(Clone, Default)]
pub(super) struct HeadTimer {
    sleep: Arc<Mutex<Option<Pin<Box<tokio::time::Sleep>>>>>,
}

/// One of hyper's sleeps: a deadline over the connection's tokio sleep.
struct HeadSleep {
    sleep: Arc<Mutex<Option<Pin<Box<tokio::time::Sleep>>>>>,
    deadline: tokio::time::Instant,
}

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.until(deadline_after(tokio::time::Instant::now(), duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.until(deadline.into())
    }

    fn now(&self) -> Instant {
        // The runtime's clock, as `TokioTimer` has it (paused in tests).
        tokio::time::Instant::now().into_std()
    }
}

impl HeadTimer {
    fn until(&self, deadline: tokio::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(HeadSleep {
            sleep: self.sleep.clone(),
            deadline,
        })
    }
}

/// `duration` after `now`; past the clock's end, about 30 years after
/// `now` (what tokio itself takes for "never").
pub(super) fn deadline_after(
    now: tokio::time::Instant,
    duration: Duration,
) -> tokio::time::Instant {
    now.checked_add(duration)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30))
}

impl Future for HeadSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut slot = self.sleep.lock().unwrap_or_else(PoisonError::into_inner);
        let sleep = match &mut *slot {
            Some(sleep) => {
                if sleep.deadline() != self.deadline {
                    // Later than the armed deadline (the usual case: the
                    // next head's): moved in place. Earlier, or already
                    // fired: registered again.
                    sleep.as_mut().reset(self.deadline);
                }
                sleep
            }
            None => slot.insert(Box::pin(tokio::time::sleep_until(self.deadline))),
        };
        sleep.as_mut().poll(cx)
    }
}

impl hyper::rt::Sleep for HeadSleep {}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hyper::rt::Timer as _;

    use super::HeadTimer;

    /// Each sleep ends at its own deadline, not before, whether it is the
    /// first, one after a dropped one (the timer still armed for the
    /// earlier deadline), or one with an earlier deadline than the armed one.
    #[tokio::test(start_paused = true)]
    async fn sleeps_end_at_their_deadlines() {
        let timer = HeadTimer::default();
        let start = tokio::time::Instant::now();
        timer.sleep(Duration::from_secs(10)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(10));

        // Polled once, then dropped: the timer stays armed at +10 s.
        let start = tokio::time::Instant::now();
        let first = timer.sleep(Duration::from_secs(10));
        assert!(
            tokio::time::timeout(Duration::from_secs(1), first)
                .await
                .is_err()
        );
        // A later deadline: moved forward, and it waits the whole 10 s.
        timer.sleep(Duration::from_secs(10)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(11));

        // Armed far ahead, then a sleep with an earlier deadline.
        let start = tokio::time::Instant::now();
        let far = timer.sleep(Duration::from_secs(100));
        assert!(
            tokio::time::timeout(Duration::from_secs(1), far)
                .await
                .is_err()
        );
        timer.sleep(Duration::from_secs(2)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(3));

        // Zero: at once; MAX: not within a day.
        let start = tokio::time::Instant::now();
        timer.sleep(Duration::ZERO).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert!(
            tokio::time::timeout(Duration::from_secs(86_400), timer.sleep(Duration::MAX))
                .await
                .is_err()
        );
    }

    /// A deadline that passed while no sleep was polled ends the next
    /// poll at once; `sleep_until` and `now` use the runtime's clock.
    #[tokio::test(start_paused = true)]
    async fn deadlines_in_the_past_end_at_once() {
        let timer = HeadTimer::default();
        let deadline = timer.now() + Duration::from_secs(5);
        tokio::time::advance(Duration::from_secs(6)).await;
        let start = tokio::time::Instant::now();
        timer.sleep_until(deadline).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
