use std::task::{Context, Poll};

use axum::response::{IntoResponse, Response};
use http::Request;
use pattern_error::bulkhead::Bulkhead;
use tower::{Layer, Service};

use super::BoxFuture;
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
    type Future = BoxFuture<Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match self.bulkhead.try_acquire() {
            Ok(permit) => {
                let future = self.inner.call(req);
                Box::pin(async move {
                    let response = future.await;
                    drop(permit);
                    response
                })
            }
            Err(overloaded) => {
                let response = ApiError::from(overloaded).into_response();
                Box::pin(async move { Ok(response) })
            }
        }
    }
}
