use std::task::{Context, Poll};

use tower::Service;

use super::future::ResponseFuture;
use super::{CheckResponse, RetryPolicy};
use crate::Error;

/// A service whose failed calls are retried; built by
/// [`RetryLayer`](super::RetryLayer).
#[derive(Clone, Debug)]
pub struct RetryService<S, C> {
    inner: S,
    policy: RetryPolicy,
    check: C,
}

impl<S, C> RetryService<S, C> {
    /// Wraps `inner`.
    pub fn new(inner: S, policy: RetryPolicy, check: C) -> Self {
        Self {
            inner,
            policy,
            check,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }
}

impl<S, C, Req> Service<Req> for RetryService<S, C>
where
    S: Service<Req> + Clone,
    S::Error: Into<Error>,
    Req: Clone,
    C: CheckResponse<S::Response> + Clone,
{
    type Response = S::Response;
    type Error = Error;
    type Future = ResponseFuture<S, Req, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        // Keep the service that was made ready for this call; the clone
        // stays here for the next one.
        let clone = self.inner.clone();
        let mut service = std::mem::replace(&mut self.inner, clone);
        let first = service.call(req.clone());
        ResponseFuture::new(first, service, req, &self.policy, self.check.clone())
    }
}
