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
//! hyper decides when the timer starts, stops and fires, as with
//! `TokioTimer`; what changes is its cost, and the one spare wakeup a
//! dropped sleep may leave. The shared sleep serves one of hyper's sleeps
//! at a time, which is how hyper's HTTP/1 server uses its timer (the
//! header read timer is its only one); a sleep made while another is
//! alive gets a tokio sleep of its own. HTTP/2 keeps `TokioTimer`, whose
//! keep-alive pings hold sleeps of their own.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// A connection's HTTP/1 header read timer (give each connection its own).
#[derive(Default)]
pub(super) struct HeadTimer {
    sleep: Shared,
}

/// The connection's one tokio sleep, made at the first wait.
type Shared = Arc<Mutex<Option<Pin<Box<tokio::time::Sleep>>>>>;

/// One of hyper's sleeps.
enum HeadSleep {
    /// A deadline over the connection's tokio sleep.
    Shared {
        sleep: Shared,
        deadline: tokio::time::Instant,
    },
    /// A tokio sleep of its own: another of the timer's sleeps was alive
    /// when it was made (hyper's HTTP/1 server holds one at a time; this
    /// keeps each deadline its own should that change).
    Own(Pin<Box<tokio::time::Sleep>>),
}

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.until(deadline_after(tokio::time::Instant::now(), duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.until(deadline.into())
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<HeadSleep>() {
            Some(mut head) => match &mut *head {
                HeadSleep::Shared { deadline, .. } => *deadline = new_deadline.into(),
                HeadSleep::Own(own) => own.as_mut().reset(new_deadline.into()),
            },
            None => *sleep = self.sleep_until(new_deadline),
        }
    }

    fn now(&self) -> Instant {
        // The runtime's clock, as `TokioTimer` has it (paused in tests).
        tokio::time::Instant::now().into_std()
    }
}

impl HeadTimer {
    fn until(&self, deadline: tokio::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        // Held by the timer alone: no other sleep is alive.
        if Arc::strong_count(&self.sleep) > 1 {
            return Box::pin(HeadSleep::Own(Box::pin(tokio::time::sleep_until(deadline))));
        }
        Box::pin(HeadSleep::Shared {
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
        let (shared, deadline) = match self.get_mut() {
            Self::Own(own) => return own.as_mut().poll(cx),
            Self::Shared { sleep, deadline } => (sleep, *deadline),
        };
        let mut slot = shared.lock().unwrap_or_else(PoisonError::into_inner);
        let sleep = match &mut *slot {
            Some(sleep) => {
                if sleep.deadline() != deadline {
                    // Later than the armed deadline (the usual case: the
                    // next head's): moved in place. Earlier, or already
                    // fired: registered again.
                    sleep.as_mut().reset(deadline);
                }
                sleep
            }
            None => slot.insert(Box::pin(tokio::time::sleep_until(deadline))),
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

    /// Two sleeps alive at once each end at their own deadline, and a
    /// sleep reset through the timer ends at its new one.
    #[tokio::test(start_paused = true)]
    async fn sleeps_alive_together_and_reset_keep_their_deadlines() {
        let timer = HeadTimer::default();
        let start = tokio::time::Instant::now();
        let mut long = timer.sleep(Duration::from_secs(10));
        let short = timer.sleep(Duration::from_secs(2));
        // Polled in turn by one task, the short one first.
        tokio::select! {
            biased;
            () = short => {}
            () = long.as_mut() => panic!("the 10 s sleep ended first"),
        }
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        long.await;
        assert_eq!(start.elapsed(), Duration::from_secs(10));

        for first in [Duration::from_secs(1), Duration::from_secs(100)] {
            let start = tokio::time::Instant::now();
            let mut sleep = timer.sleep(first);
            let _ = tokio::time::timeout(Duration::from_millis(500), sleep.as_mut()).await;
            timer.reset(&mut sleep, timer.now() + Duration::from_secs(5));
            sleep.await;
            assert_eq!(start.elapsed(), Duration::from_millis(5_500), "{first:?}");
        }
        // An own sleep (another alive) reset: its new deadline too.
        let held = timer.sleep(Duration::from_secs(100));
        let start = tokio::time::Instant::now();
        let mut own = timer.sleep(Duration::from_secs(1));
        timer.reset(&mut own, timer.now() + Duration::from_secs(3));
        own.await;
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        drop(held);
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
