use std::task::{Context, Poll};

use axum::response::Response;
use http::Request;
use tokio::time::Instant;
use tower::{Layer, Service};
use tracing::{Instrument, Level};

use super::future::{Finish, ResponseFuture};
use crate::request_id::RequestId;

/// The target of the access log's events: a filter directive such as
/// `pattern_api::access=off` silences them alone.
pub const ACCESS_TARGET: &str = "pattern_api::access";

/// A tracing span per request (`method`, `path`, `request_id`: every event
/// logged while serving it carries them) and an access-log event when it
/// ends (`method`, `path`, `route` (the template; empty when no route
/// matched), `request_id`, `status`, `latency_ms`; target
/// [`ACCESS_TARGET`], at INFO unless set otherwise). Header values are never recorded, so credentials cannot
/// leak into logs.
#[derive(Clone, Copy, Debug)]
pub struct TraceLayer {
    access: Option<Level>,
    span: Level,
}

impl Default for TraceLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl TraceLayer {
    /// Spans, and the access log at INFO.
    pub fn new() -> Self {
        Self {
            access: Some(Level::INFO),
            span: Level::INFO,
        }
    }

    /// The access log's level; `None` logs no access events (the spans
    /// stay).
    #[must_use]
    pub fn access_log(mut self, level: Option<Level>) -> Self {
        self.access = level;
        self
    }

    /// The request span's level (INFO by default): below the filter, no
    /// span is made, which saves its cost per request; the access events
    /// carry the request's fields themselves either way.
    #[must_use]
    pub fn span_level(mut self, level: Level) -> Self {
        self.span = level;
        self
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Trace {
            inner,
            access: self.access,
            span: self.span,
        }
    }
}

/// The service of [`TraceLayer`].
#[derive(Clone, Debug)]
pub struct Trace<S> {
    inner: S,
    access: Option<Level>,
    span: Level,
}

impl<S, B> Service<Request<B>> for Trace<S>
where
    S: Service<Request<B>, Response = Response>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<tracing::instrument::Instrumented<S::Future>, Finished>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let id = req.extensions().get::<RequestId>().cloned();
        let finished = Finished::begin(&req, id.as_ref(), self.access, self.span, None);
        let future = {
            let _entered = finished.span.enter();
            self.inner.call(req)
        };
        ResponseFuture::inner(future.instrument(finished.span.clone()), finished)
    }
}

/// Logs the end of a request in its span.
#[derive(Debug)]
pub struct Finished {
    /// What the access event says; `None` when nothing is logged at its end.
    access: Option<Access>,
    span: tracing::Span,
}

/// What an access event carries besides the response's status: the
/// request's method, path and id as fields of its own (a log layer writes
/// the line from the event alone, without looking up the span).
#[derive(Debug)]
struct Access {
    level: Level,
    start: Instant,
    method: http::Method,
    uri: http::Uri,
    /// The route template, when routing matched one.
    route: Option<axum::extract::MatchedPath>,
    id: Option<RequestId>,
}

impl Finished {
    /// The request's span, and its start when a subscriber records it and
    /// the access log is on: `now` if given (a clock read shared with the
    /// other pieces), else the clock's.
    pub(crate) fn begin<B>(
        req: &Request<B>,
        id: Option<&RequestId>,
        access: Option<Level>,
        span_level: Level,
        now: Option<Instant>,
    ) -> Self {
        // A level is part of a span's static metadata: one call site each.
        // Field values are evaluated only when a subscriber wants the span.
        #[cfg(not(feature = "opentelemetry"))]
        macro_rules! request_span {
            ($level:expr) => {
                tracing::span!(
                    $level,
                    "request",
                    method = %req.method(),
                    path = %req.uri().path(),
                    request_id = id.map_or("", RequestId::as_str),
                )
            };
        }
        // With OpenTelemetry, also its HTTP server conventions (the
        // status is recorded at the end).
        #[cfg(feature = "opentelemetry")]
        let route = req
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .map(axum::extract::MatchedPath::as_str);
        #[cfg(feature = "opentelemetry")]
        macro_rules! request_span {
            ($level:expr) => {
                tracing::span!(
                    $level,
                    "request",
                    method = %req.method(),
                    path = %req.uri().path(),
                    request_id = id.map_or("", RequestId::as_str),
                    otel.name = %otel::SpanName(req.method(), route),
                    otel.kind = "server",
                    otel.status_code = tracing::field::Empty,
                    http.request.method = %req.method(),
                    http.route = route,
                    url.path = %req.uri().path(),
                    server.address = otel::server_address(req),
                    http.response.status_code = tracing::field::Empty,
                    error.r#type = tracing::field::Empty,
                )
            };
        }
        let span = match span_level {
            Level::ERROR => request_span!(Level::ERROR),
            Level::WARN => request_span!(Level::WARN),
            Level::INFO => request_span!(Level::INFO),
            Level::DEBUG => request_span!(Level::DEBUG),
            _ => request_span!(Level::TRACE),
        };
        #[cfg(feature = "opentelemetry")]
        crate::trace_context::continue_from(&span, req.headers());
        // No clock read without an access event anyone records.
        let access = access
            .filter(|level| access_enabled(*level))
            .map(|level| Access {
                level,
                start: now.unwrap_or_else(Instant::now),
                method: req.method().clone(),
                uri: req.uri().clone(),
                route: req
                    .extensions()
                    .get::<axum::extract::MatchedPath>()
                    .cloned(),
                id: id.cloned(),
            });
        Self { access, span }
    }

    /// The request's span.
    pub(crate) fn span(&self) -> &tracing::Span {
        &self.span
    }
}

/// Whether a subscriber records access events at `level`.
fn access_enabled(level: Level) -> bool {
    match level {
        Level::ERROR => tracing::enabled!(target: ACCESS_TARGET, Level::ERROR),
        Level::WARN => tracing::enabled!(target: ACCESS_TARGET, Level::WARN),
        Level::INFO => tracing::enabled!(target: ACCESS_TARGET, Level::INFO),
        Level::DEBUG => tracing::enabled!(target: ACCESS_TARGET, Level::DEBUG),
        _ => tracing::enabled!(target: ACCESS_TARGET, Level::TRACE),
    }
}

impl Finish for Finished {
    fn finish(self, response: &mut Response) {
        let Self { access, span } = self;
        #[cfg(feature = "opentelemetry")]
        otel::record_status(&span, response.status());
        let Some(access) = access else { return };
        let status = response.status().as_u16();
        // To the microsecond: a log writer writes it without float
        // formatting.
        #[allow(clippy::cast_precision_loss)] // exact below 2⁵³ µs
        let latency_ms = access.start.elapsed().as_micros() as f64 / 1e3;
        let method = access.method.as_str();
        let path = access.uri.path();
        let request_id = access.id.as_ref().map_or("", RequestId::as_str);
        let route = access
            .route
            .as_ref()
            .map_or("", axum::extract::MatchedPath::as_str);
        // In the request's span without entering it (an event names its
        // parent for less than an enter and exit cost); below the filter,
        // the span is disabled and the event stays in the current span.
        let parent = span.id().or_else(|| tracing::Span::current().id());
        // A level is part of an event's static metadata: one call site each.
        macro_rules! access {
            ($level:expr) => {
                tracing::event!(
                    target: ACCESS_TARGET,
                    parent: parent,
                    $level,
                    method,
                    path,
                    route,
                    request_id,
                    status,
                    latency_ms,
                    "request finished"
                )
            };
        }
        match access.level {
            Level::ERROR => access!(Level::ERROR),
            Level::WARN => access!(Level::WARN),
            Level::INFO => access!(Level::INFO),
            Level::DEBUG => access!(Level::DEBUG),
            _ => access!(Level::TRACE),
        }
    }
}

/// OpenTelemetry's HTTP server conventions on the request span.
#[cfg(feature = "opentelemetry")]
mod otel {
    use std::fmt;

    /// `GET /v1/items/{id}`: the method and the route template (the method
    /// alone for a request no route matched).
    pub(super) struct SpanName<'a>(pub(super) &'a http::Method, pub(super) Option<&'a str>);

    impl fmt::Display for SpanName<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self.1 {
                Some(route) => write!(f, "{} {route}", self.0),
                None => f.write_str(self.0.as_str()),
            }
        }
    }

    /// The host the client addressed (`Host`, or the URI's authority),
    /// without its port.
    pub(super) fn server_address<B>(req: &http::Request<B>) -> &str {
        let host = req
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().host())
            .unwrap_or("");
        match host.rsplit_once(':') {
            // An IPv6 literal keeps its brackets' inside whole.
            Some((name, port))
                if port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(':') =>
            {
                name
            }
            _ => host,
        }
    }

    /// The response's status; a 5xx marks the span an error, with its
    /// status as `error.type`.
    pub(super) fn record_status(span: &tracing::Span, status: http::StatusCode) {
        if span.is_disabled() {
            return;
        }
        // As i64: the OpenTelemetry layer records unsigned numbers as text.
        span.record("http.response.status_code", i64::from(status.as_u16()));
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", status.as_str());
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn names_and_addresses() {
            let get = http::Method::GET;
            assert_eq!(
                SpanName(&get, Some("/v1/items/{id}")).to_string(),
                "GET /v1/items/{id}"
            );
            assert_eq!(SpanName(&get, None).to_string(), "GET");
            let req = |host: &str| {
                http::Request::builder()
                    .uri("/x")
                    .header("host", host)
                    .body(())
                    .unwrap()
            };
            assert_eq!(server_address(&req("api.example:8080")), "api.example");
            assert_eq!(server_address(&req("api.example")), "api.example");
            assert_eq!(server_address(&req("[::1]:8080")), "[::1]");
            assert_eq!(server_address(&req("[::1]")), "[::1]");
            let bare = http::Request::builder()
                .uri("http://h.example:81/x")
                .body(())
                .unwrap();
            assert_eq!(server_address(&bare), "h.example");
        }
    }
}
