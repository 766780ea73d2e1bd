use std::task::{Context, Poll};

use tower::Service;

use super::{Bulkhead, QueuePlace, ResponseFuture};
use crate::Error;

/// A service with bounded concurrent calls; built by
/// [`BulkheadLayer`](super::BulkheadLayer).
#[derive(Clone, Debug)]
pub struct BulkheadService<S> {
    inner: S,
    bulkhead: Bulkhead,
}

impl<S> BulkheadService<S> {
    /// Bounds `inner` by `bulkhead`.
    pub fn new(inner: S, bulkhead: Bulkhead) -> Self {
        Self { inner, bulkhead }
    }

    /// The bulkhead.
    pub fn bulkhead(&self) -> &Bulkhead {
        &self.bulkhead
    }
}

impl<S, Req> Service<Req> for BulkheadService<S>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Error: Into<Error>,
{
    type Response = S::Response;
    type Error = Error;
    type Future = ResponseFuture<S, Req>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        if let Ok(permit) = self.bulkhead.try_acquire_quiet() {
            return ResponseFuture::running(self.inner.call(req), permit);
        }
        match self.bulkhead.inner.wait {
            None => ResponseFuture::rejected(self.bulkhead.rejected()),
            Some(wait) => match QueuePlace::enter(&self.bulkhead) {
                // Wait for a slot in a place of the bounded queue, then call
                // a clone (the ready service stays here, unused: readiness
                // is not consumed).
                Some(place) => ResponseFuture::waiting(place, wait, self.inner.clone(), req),
                None => ResponseFuture::rejected(self.bulkhead.rejected()),
            },
        }
    }
}
