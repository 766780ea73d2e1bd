use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use super::{Handler, Predicate};
use crate::Error;

pin_project! {
    /// The response future of [`Fallback`](super::Fallback).
    #[derive(Debug)]
    pub struct ResponseFuture<F, P, H> {
        #[pin]
        inner: F,
        shared: Arc<(P, H)>,
    }
}

impl<F, P, H> ResponseFuture<F, P, H> {
    pub(super) fn new(inner: F, shared: Arc<(P, H)>) -> Self {
        Self { inner, shared }
    }
}

impl<F, T, E, P, H> Future for ResponseFuture<F, P, H>
where
    F: Future<Output = Result<T, E>>,
    E: Into<Error>,
    P: Predicate,
    H: Handler<T>,
{
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let (predicate, handler) = &**this.shared;
        Poll::Ready(match ready!(this.inner.poll(cx)).map_err(Into::into) {
            Err(err) if predicate.matches(&err) => handler.handle(err),
            other => other,
        })
    }
}
