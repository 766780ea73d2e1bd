use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pattern_error::Error;
use pin_project_lite::pin_project;

use super::LimitPermit;

pin_project! {
    /// The response future of [`AdaptiveLimitService`](super::AdaptiveLimitService).
    ///
    /// Dropping it before it completes gives its slot back, counted as a
    /// call its caller gave up (see [`LimitPermit`]).
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        permit: Option<LimitPermit>,
        rejected: Option<Error>,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn admitted(inner: F, permit: LimitPermit) -> Self {
        Self {
            inner: Some(inner),
            permit: Some(permit),
            rejected: None,
        }
    }

    pub(super) fn rejected(error: Error) -> Self {
        Self {
            inner: None,
            permit: None,
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
        if let Some(permit) = this.permit.take() {
            permit.record(&result);
        }
        Poll::Ready(result)
    }
}
