use std::task::{Context, Poll};

use axum::extract::MatchedPath;
use axum::response::Response;
use http::Request;
use tokio::time::Instant;
use tower::{Layer, Service};

use super::BoxFuture;

/// Counter of requests, labelled `method`, `route` (the route template,
/// never the raw path) and `status`.
pub const REQUESTS_TOTAL: &str = "http_requests_total";
/// Histogram of request durations in seconds, same labels.
pub const REQUEST_DURATION: &str = "http_request_duration_seconds";
/// Gauge of requests in flight.
pub const IN_FLIGHT: &str = "http_requests_in_flight";

/// Records request metrics. Add it with `Router::layer`, so that it runs
/// after routing and sees the route template (`/v1/items/{id}`); requests
/// that matched no route are labelled `unmatched`.
#[derive(Clone, Copy, Debug, Default)]
pub struct MetricsLayer;

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService { inner }
    }
}

/// The service of [`MetricsLayer`].
#[derive(Clone, Debug)]
pub struct MetricsService<S> {
    inner: S,
}

/// Decrements the in-flight gauge however the request ends.
struct InFlight;

impl InFlight {
    fn enter() -> Self {
        metrics::gauge!(IN_FLIGHT).increment(1.0);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(IN_FLIGHT).decrement(1.0);
    }
}

impl<S, B> Service<Request<B>> for MetricsService<S>
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
        let method = req.method().as_str().to_owned();
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
        let in_flight = InFlight::enter();
        let start = Instant::now();
        let future = self.inner.call(req);
        Box::pin(async move {
            let response = future.await?;
            let status = response.status().as_u16().to_string();
            let labels = [("method", method), ("route", route), ("status", status)];
            metrics::counter!(REQUESTS_TOTAL, &labels).increment(1);
            metrics::histogram!(REQUEST_DURATION, &labels).record(start.elapsed().as_secs_f64());
            drop(in_flight);
            Ok(response)
        })
    }
}
