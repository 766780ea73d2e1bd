//! The HTTP/1 header read timer: one tokio sleep per connection, moved
//! to a later head's deadline only when it fires, instead of one made,
//! registered and cancelled per request.
//!
//! hyper starts its header read timer when it begins reading a head, drops
//! it when the head is read, and asks for a new one for the next head.
//! With [`TokioTimer`](hyper_util::rt::TokioTimer) each of those is a new
//! tokio sleep: a runtime handle taken, an entry put into the timer wheel
//! (under the driver's lock) and taken out again, for every request. Here
//! each of hyper's sleeps is a deadline over the connection's one tokio
//! sleep. A sleep whose deadline is no earlier than the armed one, while
//! that one has not fired and wakes the same task (it is always polled
//! outside the task's budget, so that it registers), costs a lock and
//! three comparisons: the armed sleep fires first, wakes the connection,
//! and the sleep waiting then moves it to its own deadline. A sleep hyper
//! drops leaves it armed: the connection is woken once, for nothing.
//!
//! hyper decides when the timer starts, stops and fires, as with
//! `TokioTimer`; what changes is its cost, and a spare wakeup at most once
//! per header read timeout. The shared sleep serves one of hyper's sleeps
//! at a time, which is how hyper's HTTP/1 server uses its timer (the
//! header read timer is its only one); a sleep made while another is
//! alive gets a tokio sleep of its own. HTTP/2 keeps `TokioTimer`, whose
//! keep-alive pings hold sleeps of their own.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use pattern_component::time::deadline;

/// A connection's HTTP/1 header read timer (give each connection its own).
#[derive(Default)]
pub(super) struct HeadTimer {
    sleep: Shared,
}

/// The connection's one tokio sleep, made at the first wait.
type Shared = Arc<Mutex<Option<Armed>>>;

/// The connection's tokio sleep, and the waker it was last polled with.
struct Armed {
    sleep: Pin<Box<tokio::time::Sleep>>,
    waker: Waker,
}

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
        self.until(deadline(tokio::time::Instant::now(), duration))
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

impl Future for HeadSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let (shared, deadline) = match self.get_mut() {
            Self::Own(own) => return own.as_mut().poll(cx),
            Self::Shared { sleep, deadline } => (sleep, *deadline),
        };
        let mut slot = shared.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(armed) = &mut *slot else {
            let mut sleep = Box::pin(tokio::time::sleep_until(deadline));
            let poll = registering(&mut sleep, cx);
            *slot = Some(Armed {
                sleep,
                waker: cx.waker().clone(),
            });
            return poll;
        };
        // Armed for this deadline or an earlier one, not fired yet, and
        // waking this task when it fires (every poll of it registers,
        // below): nothing to do now (the usual case, a head after a head).
        // Should it fire first, this sleep is polled again then and moves
        // it to this deadline.
        if armed.sleep.deadline() <= deadline
            && !armed.sleep.is_elapsed()
            && armed.waker.will_wake(cx.waker())
        {
            return Poll::Pending;
        }
        if armed.sleep.deadline() != deadline {
            // Later than the armed deadline: moved in place if still
            // registered; earlier, or fired: registered again.
            armed.sleep.as_mut().reset(deadline);
        }
        if !armed.waker.will_wake(cx.waker()) {
            armed.waker.clone_from(cx.waker());
        }
        registering(&mut armed.sleep, cx)
    }
}

/// Polls `sleep` outside the task's budget: a sleep polled once the
/// budget is spent returns at once, unregistered, and the shortcut above
/// would then never poll it again (hyper polls the header timer exactly
/// when a read found the budget spent).
fn registering(sleep: &mut Pin<Box<tokio::time::Sleep>>, cx: &mut Context<'_>) -> Poll<()> {
    Pin::new(&mut tokio::task::coop::unconstrained(sleep.as_mut())).poll(cx)
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

    /// On a multi-thread runtime (the timer fired from another thread),
    /// sleeps dropped early, left armed, and later ones each end at their
    /// own deadline, not before, and without a lost wakeup.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sleeps_end_on_a_multi_thread_runtime() {
        let timer = std::sync::Arc::new(HeadTimer::default());
        let task = tokio::spawn(async move {
            for round in 0..20u64 {
                // Dropped before its deadline: the shared sleep stays armed.
                let early = timer.sleep(Duration::from_millis(5 + round % 3));
                let _ = tokio::time::timeout(Duration::from_millis(2), early).await;
                let wait = Duration::from_millis(10 + round % 7);
                let start = tokio::time::Instant::now();
                tokio::time::timeout(Duration::from_secs(5), timer.sleep(wait))
                    .await
                    .expect("no lost wakeup");
                assert!(
                    start.elapsed() >= wait,
                    "round {round}: {:?}",
                    start.elapsed()
                );
            }
        });
        task.await.unwrap();
    }

    /// A sleep first polled when the task's budget is spent (as hyper polls
    /// the header timer when a read found it spent) still registers: the
    /// later sleeps that rely on it end at their deadlines.
    #[tokio::test(start_paused = true)]
    async fn a_sleep_polled_without_budget_still_registers() {
        use std::future::Future as _;

        let timer = HeadTimer::default();
        let mut first = timer.sleep(Duration::from_secs(1));
        std::future::poll_fn(|cx| {
            // Spend the budget, then poll the sleep in the same poll.
            for _ in 0..10_000 {
                let spend = std::pin::pin!(tokio::task::coop::consume_budget());
                if spend.poll(cx).is_pending() {
                    break;
                }
            }
            assert!(first.as_mut().poll(cx).is_pending());
            std::task::Poll::Ready(())
        })
        .await;
        drop(first);
        let start = tokio::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(5), timer.sleep(Duration::from_secs(2)))
            .await
            .expect("ended at its deadline");
        assert_eq!(start.elapsed(), Duration::from_secs(2));
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
