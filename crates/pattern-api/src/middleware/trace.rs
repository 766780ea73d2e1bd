use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::response::Response;
use http::Request;
use tokio::time::Instant;
use tower::{Layer, Service};
use tracing::Level;

use super::future::{Finish, ResponseFuture};
use crate::request_id::RequestId;

/// The target of the request spans (`request`): a log's, never exported
/// (with OpenTelemetry the request has a server span of its own).
pub const REQUEST_TARGET: &str = "pattern_api::request";

/// A tracing span per request (`method`, `path`, `request_id`: every event
/// logged while serving it carries them; target [`REQUEST_TARGET`]) and an
/// access-log event when it ends (`method`, `path`, `route` (the template;
/// empty when no route matched), `request_id`, `trace_id`, `status`,
/// `latency_ms`; target [`ACCESS_TARGET`](super::ACCESS_TARGET), at INFO unless set otherwise).
/// Header values are never recorded, so credentials cannot leak into logs.
/// While the access event is dispatched, a log layer can read the same
/// values typed, with [`AccessRecord::of`](crate::middleware::AccessRecord::of),
/// instead of visiting its fields.
/// With the feature `opentelemetry` and
/// [`ServerSpans`](crate::trace_context::ServerSpans) in the subscriber,
/// also an OpenTelemetry server span ([`trace_context`](crate::trace_context)).
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
    type Future = ResponseFuture<Traced<S::Future>, Finished>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let id = req.extensions().get::<RequestId>().cloned();
        let finished = Finished::begin(&req, id.as_ref(), self.access, self.span, None);
        let future = {
            let _entered = finished.enter();
            self.inner.call(req)
        };
        let traced = Traced {
            inner: future,
            scope: finished.scope(),
        };
        ResponseFuture::inner(traced, finished)
    }
}

pin_project_lite::pin_project! {
    /// The future of the service inside [`Trace`], polled in the request's
    /// span (and, with OpenTelemetry, its server span's context).
    #[derive(Debug)]
    pub struct Traced<F> {
        #[pin]
        inner: F,
        scope: Scope,
    }
}

impl<F: Future> Future for Traced<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.scope.enter();
        this.inner.poll(cx)
    }
}

/// What serving a request runs in: its tracing span and, with
/// OpenTelemetry, its server span's context.
#[derive(Clone, Debug)]
pub(crate) struct Scope {
    span: tracing::Span,
    #[cfg(feature = "opentelemetry")]
    context: Option<opentelemetry::Context>,
}

/// A [`Scope`] entered: left when dropped (the context first).
pub(crate) struct Entered<'a> {
    #[cfg(feature = "opentelemetry")]
    _context: Option<opentelemetry::ContextGuard>,
    _span: tracing::span::Entered<'a>,
}

impl<'a> Entered<'a> {
    /// Enters `span`, then makes `context` current.
    fn new(
        span: &'a tracing::Span,
        #[cfg(feature = "opentelemetry")] context: Option<&opentelemetry::Context>,
    ) -> Self {
        let span = span.enter();
        Self {
            #[cfg(feature = "opentelemetry")]
            _context: context.map(|context| context.clone().attach()),
            _span: span,
        }
    }
}

impl Scope {
    pub(crate) fn enter(&self) -> Entered<'_> {
        Entered::new(
            &self.span,
            #[cfg(feature = "opentelemetry")]
            self.context.as_ref(),
        )
    }
}

/// Logs the end of a request in its span.
#[derive(Debug)]
pub struct Finished {
    /// What the access event says; `None` when nothing is logged at its end.
    access: Option<Access>,
    span: tracing::Span,
    /// The request's OpenTelemetry server span, when the subscriber makes
    /// them.
    #[cfg(feature = "opentelemetry")]
    server: Option<crate::trace_context::ServerSpan>,
}

/// What an access event carries besides the response's status: the
/// request's method, path and id as fields of its own (a log layer writes
/// the line from the event alone, without looking up the span).
#[derive(Debug)]
struct Access {
    level: Level,
    start: Instant,
    request: super::access::Request,
}

impl Finished {
    /// The request's span (and server span, with OpenTelemetry), and its
    /// start when the access log is on: `now` if given (a clock read
    /// shared with the other pieces), else the clock's.
    pub(crate) fn begin<B>(
        req: &Request<B>,
        id: Option<&RequestId>,
        access: Option<Level>,
        span_level: Level,
        now: Option<Instant>,
    ) -> Self {
        // A level is part of a span's static metadata: one call site each.
        // Field values are evaluated only when a subscriber wants the span.
        macro_rules! request_span {
            ($level:expr) => {
                tracing::span!(
                    target: REQUEST_TARGET,
                    $level,
                    "request",
                    method = req.method().as_str(),
                    path = req.uri().path(),
                    request_id = id.map_or("", RequestId::as_str),
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
        let server = crate::trace_context::ServerSpan::begin(req);
        // Whether a subscriber records the access event is left to the
        // event itself: asking beforehand (`tracing::enabled!`) leaves the
        // per-layer filters' state behind, and the next event a layer
        // always records would be skipped by a layer that refused the
        // access target (tokio-rs/tracing#2519).
        let access = access.map(|level| Access {
            level,
            start: now.unwrap_or_else(Instant::now),
            request: super::access::Request {
                method: req.method().clone(),
                uri: req.uri().clone(),
                route: route_of(req),
                id: id.cloned(),
            },
        });
        Self {
            access,
            span,
            #[cfg(feature = "opentelemetry")]
            server,
        }
    }

    /// Enters the request's span (and makes its server span's context
    /// current) until the guard is dropped.
    pub(crate) fn enter(&self) -> Entered<'_> {
        Entered::new(
            &self.span,
            #[cfg(feature = "opentelemetry")]
            self.server
                .as_ref()
                .map(crate::trace_context::ServerSpan::context),
        )
    }

    /// What [`enter`](Self::enter) enters, to keep apart from this.
    fn scope(&self) -> Scope {
        Scope {
            span: self.span.clone(),
            #[cfg(feature = "opentelemetry")]
            context: self.server.as_ref().map(|server| server.context().clone()),
        }
    }
}

/// The route template routing matched for `req`, if any.
fn route_of<B>(req: &Request<B>) -> Option<axum::extract::MatchedPath> {
    req.extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned()
}

impl Finish for Finished {
    fn finish(self, response: &mut Response) {
        self.finish_at(response, None);
    }
}

impl Finished {
    /// Ends the request's spans and logs its access event, its latency up
    /// to `end` if given (a clock read shared with the metrics), else up to
    /// now.
    pub(crate) fn finish_at(self, response: &mut Response, end: Option<Instant>) {
        #[cfg(feature = "opentelemetry")]
        let Self {
            access,
            span,
            server,
        } = self;
        #[cfg(not(feature = "opentelemetry"))]
        let Self { access, span } = self;
        #[cfg(feature = "opentelemetry")]
        let trace_hex = server
            .and_then(|server| server.finish(response.status()))
            .map(crate::trace_context::hex);
        let Some(access) = access else { return };
        let took = end.map_or_else(
            || access.start.elapsed(),
            |end| end.saturating_duration_since(access.start),
        );
        // In the request's span without entering it (an event names its
        // parent for less than an enter and exit cost); below the filter,
        // the span is disabled and the event stays in the current span.
        let parent = span.id().or_else(|| tracing::Span::current().id());
        super::access::log(
            access.level,
            parent,
            access.request,
            #[cfg(feature = "opentelemetry")]
            trace_hex,
            response.status().as_u16(),
            took,
        );
    }
}
