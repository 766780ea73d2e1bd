use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::Service;

use super::layer::Shared;
use super::{INJECTED_TOTAL, Outcome, ResponseFuture};
use crate::Error;

/// A service with injected faults; built by [`FaultLayer`](super::FaultLayer).
pub struct Fault<S, O> {
    inner: S,
    shared: Arc<Shared<O>>,
}

impl<S, O> Fault<S, O> {
    pub(super) fn new(inner: S, shared: Arc<Shared<O>>) -> Self {
        Self { inner, shared }
    }
}

impl<S: Clone, O> Clone for Fault<S, O> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, O> fmt::Debug for Fault<S, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fault")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, O, Req> Service<Req> for Fault<S, O>
where
    S: Service<Req>,
    S::Error: Into<Error>,
    O: Outcome<S::Response>,
{
    type Response = S::Response;
    type Error = Error;
    type Future = ResponseFuture<S::Future, S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let s = &*self.shared;
        // Three draws per call, always, so the sequence stays aligned.
        let (delay_roll, error_roll, outcome_roll) = (s.dice.roll(), s.dice.roll(), s.dice.roll());
        let delay = (delay_roll < s.latency_rate).then(|| {
            metrics::counter!(INJECTED_TOTAL, "fault" => "latency").increment(1);
            s.latency
        });
        if error_roll < s.error_rate {
            metrics::counter!(INJECTED_TOTAL, "fault" => "error").increment(1);
            return ResponseFuture::answer(delay, Err((s.error)()));
        }
        if outcome_roll < s.outcome_rate
            && let Some(response) = s.outcome.produce()
        {
            metrics::counter!(INJECTED_TOTAL, "fault" => "outcome").increment(1);
            return ResponseFuture::answer(delay, Ok(response));
        }
        ResponseFuture::call(delay, self.inner.call(req))
    }
}
