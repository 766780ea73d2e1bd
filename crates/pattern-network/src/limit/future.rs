use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pattern_error::{Error, Kind};
use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::{AdaptiveLimit, Sample};

pin_project! {
    /// The response future of [`AdaptiveLimitService`](super::AdaptiveLimitService).
    ///
    /// Dropping it before it completes gives its slot back (without a sample).
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        slot: Option<Slot>,
        rejected: Option<Error>,
    }
}

#[derive(Debug)]
struct Slot {
    /// Taken when the call completes; still here if the future is dropped.
    limit: Option<AdaptiveLimit>,
    in_flight: usize,
    start: Instant,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(limit) = self.limit.take() {
            limit.release();
        }
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn admitted(inner: F, limit: AdaptiveLimit, in_flight: usize) -> Self {
        Self {
            inner: Some(inner),
            slot: Some(Slot {
                limit: Some(limit),
                in_flight,
                start: Instant::now(),
            }),
            rejected: None,
        }
    }

    pub(super) fn rejected(error: Error) -> Self {
        Self {
            inner: None,
            slot: None,
            rejected: Some(error),
        }
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<Error>,
{
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(error) = this.rejected.take() {
            return Poll::Ready(Err(error));
        }
        let inner = this
            .inner
            .as_mut()
            .as_pin_mut()
            .expect("polled after completion");
        let result = ready!(inner.poll(cx)).map_err(Into::into);
        this.inner.set(None);
        if let Some(mut slot) = this.slot.take()
            && let Some(limit) = slot.limit.take()
        {
            let dropped = result
                .as_ref()
                .err()
                .is_some_and(|e| matches!(e.kind(), Kind::Overloaded | Kind::Timeout));
            let sample = Sample {
                rtt: slot.start.elapsed(),
                in_flight: slot.in_flight,
                dropped,
            };
            limit.complete(sample);
        }
        Poll::Ready(result)
    }
}
