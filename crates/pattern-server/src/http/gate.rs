//! A future polled only when it asked to be.
//!
//! A connection's task waits on its connection and, beside it, on the
//! drain, the idle timer and the cut. Polled together, every wakeup of the
//! connection (each request) would poll the three others too: a timer and
//! two cancellation tokens looked at for nothing. [`Gated`] gives its
//! future a waker of its own and polls it only once that waker has fired.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

pin_project_lite::pin_project! {
    /// `inner`, polled at its first poll and then only after its own waker
    /// fired.
    pub(super) struct Gated<F> {
        #[pin]
        inner: F,
        signal: Arc<Signal>,
        waker: Waker,
    }
}

/// Whether the inner future was woken since it was last polled, and the
/// task to wake.
struct Signal {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl<F: Future> Gated<F> {
    pub(super) fn new(inner: F) -> Self {
        let signal = Arc::new(Signal {
            // Polled at the first poll: the future has not registered yet.
            woken: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        Self {
            inner,
            waker: Waker::from(signal.clone()),
            signal,
        }
    }
}

impl<F: Future> Future for Gated<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        // The task first, then the flag: a wakeup after the flag is read
        // sets it again and wakes this task.
        this.signal.task.register(cx.waker());
        if !this.signal.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        this.inner.poll(&mut Context::from_waker(this.waker))
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Waker};
    use std::time::Duration;

    use super::Gated;

    /// The inner future is polled at the first poll and after its own
    /// wakeups only; its waker wakes the task that polled the gate; it
    /// ends when the inner future does.
    #[tokio::test(start_paused = true)]
    async fn the_inner_future_is_polled_only_when_woken() {
        let polls = Arc::new(AtomicUsize::new(0));
        let counted = polls.clone();
        let mut sleep = Box::pin(tokio::time::sleep(Duration::from_secs(1)));
        let inner = std::future::poll_fn(move |cx| {
            counted.fetch_add(1, Ordering::Relaxed);
            sleep.as_mut().poll(cx)
        });
        let mut gated = pin!(Gated::new(inner));
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..5 {
            assert!(gated.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(
            polls.load(Ordering::Relaxed),
            1,
            "polled once, not woken since"
        );
        // The sleep's wakeup reaches the task awaiting the gate.
        let start = tokio::time::Instant::now();
        gated.await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        assert_eq!(polls.load(Ordering::Relaxed), 2);
    }

    /// A wakeup that comes while the task is between its polls is not
    /// lost: the next poll polls the inner future.
    #[tokio::test]
    async fn a_wakeup_between_polls_is_kept() {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        let mut gated = pin!(Gated::new(async move { rx.recv().await }));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(gated.as_mut().poll(&mut cx).is_pending());
        tx.send(()).await.unwrap();
        assert_eq!(gated.as_mut().poll(&mut cx), Poll::Ready(Some(())));
    }
}
