use std::task::{Context, Poll};

use axum::extract::MatchedPath;
use axum::response::Response;
use http::Request;
use tokio::time::Instant;
use tower::{Layer, Service};

use super::future::{Finish, ResponseFuture};

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
#[derive(Debug)]
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
    type Future = ResponseFuture<S::Future, Record>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let method = method_label(req.method());
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
        let record = Record {
            method,
            route,
            start: Instant::now(),
            _in_flight: InFlight::enter(),
        };
        ResponseFuture::inner(self.inner.call(req), record)
    }
}

/// What a finished request records.
#[derive(Debug)]
pub struct Record {
    method: &'static str,
    route: String,
    start: Instant,
    _in_flight: InFlight,
}

impl Finish for Record {
    fn finish(self, response: &mut Response) {
        let labels = [
            metrics::Label::new("method", self.method),
            metrics::Label::new("route", self.route),
            metrics::Label::new("status", status_label(response.status())),
        ];
        metrics::counter!(REQUESTS_TOTAL, labels.iter()).increment(1);
        metrics::histogram!(REQUEST_DURATION, labels.iter())
            .record(self.start.elapsed().as_secs_f64());
    }
}

/// The method label: the standard methods by name, anything else `other`
/// (labels stay bounded whatever clients send).
fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::PATCH => "PATCH",
        http::Method::DELETE => "DELETE",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The status label, without allocating for the common codes.
fn status_label(status: http::StatusCode) -> metrics::SharedString {
    const COMMON: &[(u16, &str)] = &[
        (200, "200"),
        (201, "201"),
        (202, "202"),
        (204, "204"),
        (301, "301"),
        (302, "302"),
        (304, "304"),
        (400, "400"),
        (401, "401"),
        (403, "403"),
        (404, "404"),
        (405, "405"),
        (408, "408"),
        (409, "409"),
        (413, "413"),
        (415, "415"),
        (422, "422"),
        (429, "429"),
        (500, "500"),
        (502, "502"),
        (503, "503"),
        (504, "504"),
    ];
    let code = status.as_u16();
    match COMMON.iter().find(|(c, _)| *c == code) {
        Some((_, text)) => metrics::SharedString::const_str(text),
        None => metrics::SharedString::from(code.to_string()),
    }
}
