use std::task::{Context, Poll};

use tower::Service;

use super::{CircuitBreaker, ResponseFuture};
use crate::Error;

/// A service guarded by a [`CircuitBreaker`]; built by
/// [`CircuitBreakerLayer`](super::CircuitBreakerLayer).
///
/// Readiness is the inner service's. An open breaker answers from `call`
/// with a ready error, without calling the inner service.
#[derive(Clone, Debug)]
pub struct CircuitBreakerService<S> {
    inner: S,
    breaker: CircuitBreaker,
}

impl<S> CircuitBreakerService<S> {
    /// Guards `inner` with `breaker`.
    pub fn new(inner: S, breaker: CircuitBreaker) -> Self {
        Self { inner, breaker }
    }

    /// The breaker.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Req> Service<Req> for CircuitBreakerService<S>
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
        match self.breaker.try_acquire_owned() {
            Ok((permit, probe_timeout)) => {
                ResponseFuture::admitted(self.inner.call(req), permit, probe_timeout)
            }
            Err(rejected) => ResponseFuture::rejected(rejected.into()),
        }
    }
}
