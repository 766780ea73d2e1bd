use std::sync::{Arc, OnceLock, PoisonError, RwLock};
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
///
/// The metric handles of each (method, route, status) are resolved once and
/// then reused, so a request costs no label allocation and no registry
/// lookup: install the `metrics` recorder before the first request (as a
/// service does at start-up), or handles resolved earlier stay bound to the
/// no-op recorder. The cache is bounded: route templates, nine method
/// labels and the status codes are all finite.
#[derive(Clone, Debug, Default)]
pub struct MetricsLayer {
    cache: Arc<Cache>,
}

impl MetricsLayer {
    /// A layer with its own handle cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts recording `req`, which started at `start`.
    pub(crate) fn begin<B>(&self, req: &Request<B>, start: Instant) -> Record {
        Record::begin(&self.cache, req, start)
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = Metrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Metrics {
            inner,
            cache: self.cache.clone(),
        }
    }
}

/// The service of [`MetricsLayer`].
#[derive(Clone, Debug)]
pub struct Metrics<S> {
    inner: S,
    cache: Arc<Cache>,
}

/// The handles of one (method, status) under a route.
#[derive(Debug)]
struct Handles {
    method: &'static str,
    status: u16,
    requests: metrics::Counter,
    duration: metrics::Histogram,
}

/// Metric handles by route template, then (method, status).
#[derive(Debug, Default)]
struct Cache {
    in_flight: OnceLock<metrics::Gauge>,
    /// Keyed by the route templates of the app (or `unmatched`), never by
    /// client input: a fast hasher is safe here.
    routes: RwLock<hashbrown::HashMap<Arc<str>, Vec<Handles>>>,
}

impl Cache {
    fn in_flight(&self) -> &metrics::Gauge {
        self.in_flight.get_or_init(|| metrics::gauge!(IN_FLIGHT))
    }

    /// Counts a request of `method` on `route` that ended with `status`
    /// after `seconds`. The common case (handles already made) holds a
    /// read lock and clones nothing.
    fn record(&self, method: &'static str, route: &str, status: u16, seconds: f64) {
        let matches = |h: &Handles| h.status == status && h.method == method;
        {
            let routes = self.routes.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(handles) = routes
                .get(route)
                .and_then(|list| list.iter().find(|h| matches(h)))
            {
                handles.requests.increment(1);
                handles.duration.record(seconds);
                return;
            }
        }
        let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
        let list = routes.entry(Arc::from(route)).or_default();
        let handles = match list.iter().position(matches) {
            Some(i) => &list[i],
            None => {
                let labels = [
                    metrics::Label::new("method", method),
                    metrics::Label::new("route", route.to_owned()),
                    metrics::Label::new("status", status.to_string()),
                ];
                list.push(Handles {
                    method,
                    status,
                    requests: metrics::counter!(REQUESTS_TOTAL, labels.iter()),
                    duration: metrics::histogram!(REQUEST_DURATION, labels.iter()),
                });
                &list[list.len() - 1]
            }
        };
        handles.requests.increment(1);
        handles.duration.record(seconds);
    }
}

/// Decrements the in-flight gauge however the request ends.
#[derive(Debug)]
struct InFlight(Arc<Cache>);

impl InFlight {
    fn enter(cache: &Arc<Cache>) -> Self {
        cache.in_flight().increment(1.0);
        InFlight(cache.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight().decrement(1.0);
    }
}

impl<S, B> Service<Request<B>> for Metrics<S>
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
        let record = Record::begin(&self.cache, &req, Instant::now());
        ResponseFuture::inner(self.inner.call(req), record)
    }
}

/// What a finished request records.
#[derive(Debug)]
pub struct Record {
    method: &'static str,
    route: Option<MatchedPath>,
    start: Instant,
    in_flight: InFlight,
}

impl Record {
    fn begin<B>(cache: &Arc<Cache>, req: &Request<B>, start: Instant) -> Self {
        Self {
            method: method_label(req.method()),
            route: req.extensions().get::<MatchedPath>().cloned(),
            start,
            in_flight: InFlight::enter(cache),
        }
    }
}

impl Record {
    /// Records the request as ended at `end` (a clock read shared with the
    /// access log).
    pub(crate) fn finish_at(self, response: &Response, end: Instant) {
        let route = self.route.as_ref().map_or("unmatched", MatchedPath::as_str);
        let seconds = end.saturating_duration_since(self.start).as_secs_f64();
        self.in_flight
            .0
            .record(self.method, route, response.status().as_u16(), seconds);
    }
}

impl Finish for Record {
    fn finish(self, response: &mut Response) {
        self.finish_at(response, Instant::now());
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
