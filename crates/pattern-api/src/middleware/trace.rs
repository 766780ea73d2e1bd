use std::task::{Context, Poll};

use axum::response::Response;
use http::Request;
use tokio::time::Instant;
use tower::{Layer, Service};
use tracing::Instrument;

use super::future::{Finish, ResponseFuture};
use crate::request_id::RequestId;

/// A tracing span per request (`method`, `path`, `request_id`) and one
/// event when it ends (`status`, `latency_ms`). Header values are never
/// recorded, so credentials cannot leak into logs.
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceLayer;

impl<S> Layer<S> for TraceLayer {
    type Service = TraceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceService { inner }
    }
}

/// The service of [`TraceLayer`].
#[derive(Clone, Debug)]
pub struct TraceService<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for TraceService<S>
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
        let finished = Finished::begin(&req, id.as_ref());
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
    /// When the request started; `None` when the span is disabled.
    start: Option<Instant>,
    span: tracing::Span,
}

impl Finished {
    /// The request's span, and its start when a subscriber records it.
    pub(crate) fn begin<B>(req: &Request<B>, id: Option<&RequestId>) -> Self {
        // Field values are evaluated only when a subscriber wants the span.
        let span = tracing::info_span!(
            "request",
            method = %req.method(),
            path = %req.uri().path(),
            request_id = id.map_or("", RequestId::as_str),
        );
        // No clock read for a span nobody records.
        let start = (!span.is_disabled()).then(Instant::now);
        Self { start, span }
    }

    /// The request's span.
    pub(crate) fn span(&self) -> &tracing::Span {
        &self.span
    }
}

impl Finish for Finished {
    fn finish(self, response: &mut Response) {
        let Some(start) = self.start else { return };
        self.span.in_scope(|| {
            tracing::info!(
                status = response.status().as_u16(),
                latency_ms = start.elapsed().as_secs_f64() * 1e3,
                "request finished"
            );
        });
    }
}
