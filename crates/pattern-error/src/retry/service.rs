use std::task::{Context, Poll};

use tower::Service;

use super::future::ResponseFuture;
use super::{ByClone, CheckResponse, CloneRequest, RetryPolicy};
use crate::Error;

/// A service whose failed calls are retried; built by
/// [`RetryLayer`](super::RetryLayer).
#[derive(Clone, Debug)]
pub struct Retry<S, C, R = ByClone> {
    inner: S,
    policy: RetryPolicy,
    check: C,
    cloner: R,
}

impl<S, C, R> Retry<S, C, R> {
    /// Wraps `inner`.
    pub fn new(inner: S, policy: RetryPolicy, check: C, cloner: R) -> Self {
        Self {
            inner,
            policy,
            check,
            cloner,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }
}

impl<S, C, R, Req> Service<Req> for Retry<S, C, R>
where
    S: Service<Req> + Clone,
    S::Error: Into<Error>,
    C: CheckResponse<S::Response> + Clone,
    R: CloneRequest<Req> + Clone,
{
    type Response = S::Response;
    type Error = Error;
    type Future = ResponseFuture<S, Req, C, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        // Keep the service that was made ready for this call; the clone
        // stays here for the next one.
        let clone = self.inner.clone();
        let mut service = std::mem::replace(&mut self.inner, clone);
        // A copy for a later attempt, if one may follow.
        let copy = if self.policy.max_attempts() > 1 {
            self.cloner.clone_request(&req)
        } else {
            None
        };
        let first = service.call(req);
        ResponseFuture::new(
            first,
            service,
            copy,
            &self.policy,
            self.check.clone(),
            self.cloner.clone(),
        )
    }
}
