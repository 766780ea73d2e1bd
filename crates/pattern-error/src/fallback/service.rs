use std::sync::Arc;
use std::task::{Context, Poll};

use tower::Service;

use super::{Handler, Predicate, ResponseFuture};
use crate::Error;

/// A service whose chosen errors get a fallback answer; built by
/// [`FallbackLayer`](super::FallbackLayer).
#[derive(Debug)]
pub struct Fallback<S, P, H> {
    inner: S,
    shared: Arc<(P, H)>,
}

impl<S, P, H> Fallback<S, P, H> {
    pub(super) fn new(inner: S, shared: Arc<(P, H)>) -> Self {
        Self { inner, shared }
    }
}

impl<S: Clone, P, H> Clone for Fallback<S, P, H> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S, P, H, Req> Service<Req> for Fallback<S, P, H>
where
    S: Service<Req>,
    S::Error: Into<Error>,
    P: Predicate,
    H: Handler<S::Response>,
{
    type Response = S::Response;
    type Error = Error;
    type Future = ResponseFuture<S::Future, P, H>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // A service that cannot get ready is not a call that failed: no
        // fallback here.
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        ResponseFuture::new(self.inner.call(req), self.shared.clone())
    }
}
