use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Sleep;

use super::circuit::{OwnedPermit, probe_timeout};
use crate::Error;

pin_project! {
    /// The response future of [`CircuitBreakerService`](super::CircuitBreakerService).
    ///
    /// Dropping it before it completes gives back the slot it held.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Option<F>,
        // Boxed: only probes have one, and an inline `Sleep` would make every
        // call's future several times larger.
        probe_timer: Option<Pin<Box<Sleep>>>,
        permit: Option<OwnedPermit>,
        rejected: Option<Error>,
    }
}

impl<F> ResponseFuture<F> {
    #[inline]
    pub(super) fn admitted(inner: F, permit: OwnedPermit, probe_timeout: Option<Duration>) -> Self {
        Self {
            inner: Some(inner),
            probe_timer: probe_timeout.map(|t| Box::pin(tokio::time::sleep(t))),
            permit: Some(permit),
            rejected: None,
        }
    }

    pub(super) fn rejected(error: Error) -> Self {
        Self {
            inner: None,
            probe_timer: None,
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
        if let Some(timer) = this.probe_timer.as_mut()
            && timer.as_mut().poll(cx).is_ready()
        {
            if let Some(mut permit) = this.permit.take() {
                permit.failure();
            }
            this.inner.set(None);
            return Poll::Ready(Err(probe_timeout()));
        }
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            panic!("ResponseFuture polled after completion");
        };
        let result = ready!(inner.poll(cx)).map_err(Into::into);
        if let Some(mut permit) = this.permit.take() {
            permit.record(result.as_ref().err());
        }
        this.inner.set(None);
        Poll::Ready(result)
    }
}
