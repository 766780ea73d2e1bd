use std::task::{Context, Poll};

use axum::response::{IntoResponse, Response};
use http::Request;
use pattern_error::bulkhead::{Bulkhead, BulkheadPermit};
use tower::{Layer, Service};

use super::future::{Finish, ResponseFuture};
use crate::ApiError;

/// Serves at most `max` requests at once and answers the excess at once
/// with 503 and `Retry-After` instead of queueing it.
#[derive(Clone, Debug)]
pub struct LoadShedLayer {
    bulkhead: Bulkhead,
}

impl LoadShedLayer {
    /// At most `max` requests in flight.
    pub fn new(max: usize) -> Self {
        Self {
            bulkhead: Bulkhead::new("http", max),
        }
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.bulkhead.in_flight()
    }
}

impl<S> Layer<S> for LoadShedLayer {
    type Service = LoadShedService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LoadShedService {
            inner,
            bulkhead: self.bulkhead.clone(),
        }
    }
}

/// The service of [`LoadShedLayer`].
#[derive(Clone, Debug)]
pub struct LoadShedService<S> {
    inner: S,
    bulkhead: Bulkhead,
}

impl<S, B> Service<Request<B>> for LoadShedService<S>
where
    S: Service<Request<B>, Response = Response>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, Slot>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match self.bulkhead.try_acquire() {
            Ok(permit) => ResponseFuture::inner(self.inner.call(req), Slot(permit)),
            Err(overloaded) => ResponseFuture::ready(ApiError::from(overloaded).into_response()),
        }
    }
}

/// The request's slot, released when the response is ready (or the call is
/// dropped).
#[derive(Debug)]
pub struct Slot(#[allow(dead_code)] BulkheadPermit); // held for its Drop

impl Finish for Slot {
    fn finish(self, _: &mut Response) {}
}
