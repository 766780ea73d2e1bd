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
    /// What the span's attributes are made of, recorded at its end if it
    /// is sampled; `None` when the span is not recorded.
    #[cfg(feature = "opentelemetry")]
    otel: Option<otel::Request>,
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
        // With OpenTelemetry, also its HTTP server conventions. They are
        // recorded at the end, and only if the span is sampled: most spans
        // are not, and an attribute costs an allocation each.
        #[cfg(feature = "opentelemetry")]
        macro_rules! request_span {
            ($level:expr) => {
                tracing::span!(
                    $level,
                    "request",
                    method = req.method().as_str(),
                    path = req.uri().path(),
                    request_id = id.map_or("", RequestId::as_str),
                    otel.kind = "server",
                    otel.status_code = tracing::field::Empty,
                    http.request.method = tracing::field::Empty,
                    http.request.method_original = tracing::field::Empty,
                    http.route = tracing::field::Empty,
                    url.path = tracing::field::Empty,
                    url.query = tracing::field::Empty,
                    server.address = tracing::field::Empty,
                    server.port = tracing::field::Empty,
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
                route: route_of(req),
                id: id.cloned(),
            });
        Self {
            access,
            #[cfg(feature = "opentelemetry")]
            otel: otel::Request::of(&span, req),
            span,
        }
    }

    /// The request's span.
    pub(crate) fn span(&self) -> &tracing::Span {
        &self.span
    }
}

/// The route template routing matched for `req`, if any.
fn route_of<B>(req: &Request<B>) -> Option<axum::extract::MatchedPath> {
    req.extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned()
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
        #[cfg(feature = "opentelemetry")]
        let Self { access, span, otel } = self;
        #[cfg(not(feature = "opentelemetry"))]
        let Self { access, span } = self;
        #[cfg(feature = "opentelemetry")]
        let trace_hex = otel
            .and_then(|request| request.finish(response.status()))
            .map(otel::hex);
        #[cfg(feature = "opentelemetry")]
        let trace_id = trace_hex.as_ref().map(otel::as_str);
        #[cfg(not(feature = "opentelemetry"))]
        let trace_id: Option<&str> = None;
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
                    trace_id,
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

    use super::route_of;

    /// The method as the conventions name it: one of the nine known
    /// ones, or `_OTHER` (a client's own method names are unbounded).
    pub(super) fn method_name(method: &http::Method) -> &'static str {
        match *method {
            http::Method::GET => "GET",
            http::Method::POST => "POST",
            http::Method::PUT => "PUT",
            http::Method::DELETE => "DELETE",
            http::Method::PATCH => "PATCH",
            http::Method::HEAD => "HEAD",
            http::Method::OPTIONS => "OPTIONS",
            http::Method::CONNECT => "CONNECT",
            http::Method::TRACE => "TRACE",
            _ => "_OTHER",
        }
    }

    /// `GET /v1/items/{id}`: the method and the route template (the method
    /// alone for a request no route matched; `HTTP` for a method the
    /// conventions do not know).
    pub(super) struct SpanName<'a>(pub(super) &'a http::Method, pub(super) Option<&'a str>);

    impl fmt::Display for SpanName<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let method = match method_name(self.0) {
                "_OTHER" => "HTTP",
                known => known,
            };
            match self.1 {
                Some(route) => write!(f, "{method} {route}"),
                None => f.write_str(method),
            }
        }
    }

    /// The host the client addressed (`host`, the `Host` header, or the
    /// URI's authority) and its port, if it names one.
    pub(super) fn server_address<'a>(
        host: Option<&'a str>,
        uri: &'a http::Uri,
    ) -> (Option<&'a str>, Option<u16>) {
        let host = host.or_else(|| uri.host()).unwrap_or("");
        let (name, port) = match host.rsplit_once(':') {
            // An IPv6 literal keeps its brackets' inside whole.
            Some((name, port))
                if port.bytes().all(|b| b.is_ascii_digit()) && !name.ends_with(':') =>
            {
                (name, port.parse().ok())
            }
            _ => (host, None),
        };
        ((!name.is_empty()).then_some(name), port)
    }

    /// A trace id's 32 lowercase hex digits, without `core::fmt`.
    pub(super) fn hex(id: opentelemetry::trace::TraceId) -> [u8; 32] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 32];
        for (i, byte) in id.to_bytes().iter().enumerate() {
            out[2 * i] = DIGITS[usize::from(byte >> 4)];
            out[2 * i + 1] = DIGITS[usize::from(byte & 0xf)];
        }
        out
    }

    /// The digits [`hex`] wrote, as text.
    pub(super) fn as_str(hex: &[u8; 32]) -> &str {
        // Only ASCII digits and letters were written.
        std::str::from_utf8(hex).unwrap_or("")
    }

    /// What a request span's attributes are made of. Dropped without an
    /// answer (the client left, or the service failed), it records the
    /// span as an error of type `cancelled`.
    #[derive(Debug)]
    pub(super) struct Request {
        span: tracing::Span,
        method: http::Method,
        uri: http::Uri,
        route: Option<axum::extract::MatchedPath>,
        host: Option<http::HeaderValue>,
        done: bool,
    }

    impl Request {
        /// What `req` gives `span`, if the span is recorded.
        pub(super) fn of<B>(span: &tracing::Span, req: &http::Request<B>) -> Option<Self> {
            if span.is_disabled() {
                return None;
            }
            Some(Self {
                span: span.clone(),
                method: req.method().clone(),
                uri: req.uri().clone(),
                route: route_of(req),
                host: req.headers().get(http::header::HOST).cloned(),
                done: false,
            })
        }

        /// Ends the span's record with `status`: its name and attributes if
        /// it is sampled, and a 5xx marked an error, with its status as
        /// `error.type`. The trace id, when it has one.
        pub(super) fn finish(
            mut self,
            status: http::StatusCode,
        ) -> Option<opentelemetry::trace::TraceId> {
            self.done = true;
            self.record(Some(status))
        }

        fn record(
            &self,
            status: Option<http::StatusCode>,
        ) -> Option<opentelemetry::trace::TraceId> {
            use opentelemetry::trace::TraceContextExt as _;
            use tracing_opentelemetry::OpenTelemetrySpanExt as _;

            let span = &self.span;
            let context = span.context();
            let otel_span = context.span();
            let span_context = otel_span.span_context();
            if !span_context.is_valid() {
                return None;
            }
            if span_context.is_sampled() {
                let route = self.route.as_ref().map(axum::extract::MatchedPath::as_str);
                // Started already: renamed on the span itself (a recorded
                // `otel.name` names only a span not yet started).
                otel_span.update_name(SpanName(&self.method, route).to_string());
                let method = method_name(&self.method);
                span.record("http.request.method", method);
                if method == "_OTHER" {
                    span.record("http.request.method_original", self.method.as_str());
                }
                if let Some(route) = route {
                    span.record("http.route", route);
                }
                span.record("url.path", self.uri.path());
                if let Some(query) = self.uri.query() {
                    span.record("url.query", query);
                }
                let host = self.host.as_ref().and_then(|h| h.to_str().ok());
                let (address, port) = server_address(host, &self.uri);
                if let Some(address) = address {
                    span.record("server.address", address);
                }
                if let Some(port) = port {
                    span.record("server.port", i64::from(port));
                }
                match status {
                    Some(status) => {
                        // As i64: the OpenTelemetry layer records unsigned
                        // numbers as text.
                        span.record("http.response.status_code", i64::from(status.as_u16()));
                        if status.is_server_error() {
                            span.record("otel.status_code", "ERROR");
                            span.record("error.type", status.as_str());
                        }
                    }
                    None => {
                        span.record("otel.status_code", "ERROR");
                        span.record("error.type", "cancelled");
                    }
                }
            }
            Some(span_context.trace_id())
        }
    }

    impl Drop for Request {
        fn drop(&mut self) {
            if !self.done {
                let _ = self.record(None);
            }
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
            let path: http::Uri = "/x".parse().unwrap();
            assert_eq!(
                server_address(Some("api.example:8080"), &path),
                (Some("api.example"), Some(8080))
            );
            assert_eq!(
                server_address(Some("api.example"), &path),
                (Some("api.example"), None)
            );
            assert_eq!(
                server_address(Some("[::1]:8080"), &path),
                (Some("[::1]"), Some(8080))
            );
            assert_eq!(server_address(Some("[::1]"), &path), (Some("[::1]"), None));
            let full: http::Uri = "http://h.example:81/x".parse().unwrap();
            assert_eq!(server_address(None, &full), (Some("h.example"), None));
            assert_eq!(server_address(None, &path), (None, None));
            // A method of a client's own: one name for all of them.
            let own = http::Method::from_bytes(b"FROB").unwrap();
            assert_eq!(method_name(&own), "_OTHER");
            assert_eq!(SpanName(&own, Some("/x")).to_string(), "HTTP /x");
            assert_eq!(method_name(&http::Method::PATCH), "PATCH");
            for text in [
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "00000000000000000000000000000001",
            ] {
                let id = opentelemetry::trace::TraceId::from_hex(text).unwrap();
                assert_eq!(as_str(&hex(id)), text);
                assert_eq!(as_str(&hex(id)), id.to_string());
            }
        }
    }
}
