use std::task::{Context, Poll};

use pattern_error::Error;
use tower::Service;

use super::{AdaptiveLimit, ResponseFuture};

/// A service whose concurrency is held under an adaptive limit; built by
/// [`AdaptiveLimitLayer`](super::AdaptiveLimitLayer).
#[derive(Clone, Debug)]
pub struct AdaptiveLimitService<S> {
    inner: S,
    limit: AdaptiveLimit,
}

impl<S> AdaptiveLimitService<S> {
    /// Limits `inner` by `limit`.
    pub fn new(inner: S, limit: AdaptiveLimit) -> Self {
        Self { inner, limit }
    }
}

impl<S, Req> Service<Req> for AdaptiveLimitService<S>
where
    S: Service<Req>,
    S::Error: Into<Error>,
{
    type Response = S::Response;
    type Error = Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        match self.limit.try_acquire() {
            Ok(permit) => ResponseFuture::admitted(self.inner.call(req), permit),
            Err(rejected) => ResponseFuture::rejected(rejected),
        }
    }
}
