use std::task::{Context, Poll};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{Request, StatusCode};
use pattern_error::{Error, Kind};
use tokio::time::Instant;
use tower::{Layer, Service};

use super::BoxFuture;
use crate::ApiError;

/// When the request must be answered by; handlers read it from the
/// request's extensions (`Extension<Deadline>`) to bound their own calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline(pub Instant);

impl Deadline {
    /// Time left (zero when past).
    pub fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }
}

/// Answers a request that takes longer than the timeout with a problem of
/// the chosen status (503 or 504) and drops its handler.
#[derive(Clone, Copy, Debug)]
pub struct TimeoutLayer {
    timeout: Duration,
    status: StatusCode,
}

impl TimeoutLayer {
    /// Times out after `timeout` with 504 Gateway Timeout.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            status: StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// Answers timeouts with 503 Service Unavailable instead.
    #[must_use]
    pub fn with_503(mut self) -> Self {
        self.status = StatusCode::SERVICE_UNAVAILABLE;
        self
    }
}

impl<S> Layer<S> for TimeoutLayer {
    type Service = TimeoutService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TimeoutService {
            inner,
            layer: *self,
        }
    }
}

/// The service of [`TimeoutLayer`].
#[derive(Clone, Debug)]
pub struct TimeoutService<S> {
    inner: S,
    layer: TimeoutLayer,
}

impl<S, B> Service<Request<B>> for TimeoutService<S>
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

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let TimeoutLayer { timeout, status } = self.layer;
        req.extensions_mut()
            .insert(Deadline(Instant::now() + timeout));
        let future = self.inner.call(req);
        Box::pin(async move {
            match tokio::time::timeout(timeout, future).await {
                Ok(result) => result,
                Err(_) => Ok(ApiError::from(Error::new(
                    Kind::Timeout,
                    format!("no answer within {timeout:?}"),
                ))
                .with_status(status)
                .into_response()),
            }
        })
    }
}
