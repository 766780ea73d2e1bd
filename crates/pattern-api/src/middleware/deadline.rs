//! The request deadline: a time budget per request (its caller may ask for
//! less with [`TIMEOUT_HEADER`]), answered with a problem when it runs out:
//! 503 or 504, or 408 when the client is the one late with its body.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::{Body, Bytes, HttpBody};
use axum::response::{IntoResponse, Response};
use http::{Request, StatusCode};
use http_body::{Frame, SizeHint};
use pattern_error::{Error, Kind};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

use crate::ApiError;
use crate::context::Deadline;

/// The header a caller sets to say how long it will wait (milliseconds),
/// and that downstream calls should carry on with what is left.
pub const TIMEOUT_HEADER: &str = "x-request-timeout-ms";

/// [`TIMEOUT_HEADER`] as a parsed name: a lookup skips parsing it.
pub(crate) const TIMEOUT_HEADER_NAME: http::HeaderName =
    http::HeaderName::from_static(TIMEOUT_HEADER);

/// Answers a request that takes longer than the timeout with a problem of
/// the chosen status (503 or 504) and drops its handler. A request carrying
/// [`TIMEOUT_HEADER`] gets the smaller of that and the configured timeout.
///
/// When the handler is, at the deadline, still waiting for the request's
/// body to arrive, the client is late, not the handler: the answer is 408
/// Request Timeout, whatever extractor reads the body (`Json`, `String`,
/// `Bytes`, [`Valid`](crate::extract::Valid)).
#[derive(Clone, Copy, Debug)]
pub struct DeadlineLayer {
    timeout: Duration,
    status: StatusCode,
}

impl DeadlineLayer {
    /// The longest timeout: longer ones are cut to it (a day; an
    /// unbounded one overflowed the clock on every request).
    pub const MAX: Duration = Duration::from_secs(24 * 3600);

    /// Times out after `timeout` (at most [`DeadlineLayer::MAX`]) with 504
    /// Gateway Timeout.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout: timeout.min(Self::MAX),
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

impl DeadlineLayer {
    /// The status of a timeout's answer (504, or 503).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The time `req` gets: the configured timeout, tightened (never
    /// loosened) by a caller's [`TIMEOUT_HEADER`] propagated from upstream.
    pub(crate) fn budget<B>(&self, req: &Request<B>) -> Duration {
        self.budget_from(req.headers().get(&TIMEOUT_HEADER_NAME))
    }

    /// [`budget`](Self::budget), from the request's [`TIMEOUT_HEADER`]
    /// (`sent`), if any.
    pub(crate) fn budget_from(&self, sent: Option<&http::HeaderValue>) -> Duration {
        sent.and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(self.timeout, |ms| {
                self.timeout.min(Duration::from_millis(ms))
            })
    }

    /// The answer to a request that ran out of its `budget`: 408 when it
    /// was waiting for its own body, else the layer's status.
    pub(crate) fn expired(&self, budget: Duration, body: Option<&BodyWatch>) -> Response {
        expired(budget, self.status, body)
    }
}

fn expired(budget: Duration, status: StatusCode, body: Option<&BodyWatch>) -> Response {
    if body.is_some_and(BodyWatch::is_waiting) {
        return ApiError::from(Error::new(
            Kind::Timeout,
            format!("the request body did not arrive within {budget:?}"),
        ))
        .with_status(StatusCode::REQUEST_TIMEOUT)
        .into_response();
    }
    ApiError::from(Error::new(
        Kind::Timeout,
        format!("no answer within {budget:?}"),
    ))
    .with_status(status)
    .into_response()
}

/// Tells whether whoever reads a request's body is waiting for the client:
/// set while a read of the body is pending.
#[derive(Clone, Debug, Default)]
pub(crate) struct BodyWatch(Arc<AtomicBool>);

impl BodyWatch {
    /// Watches `req`'s body (one allocation), unless it is known to be
    /// empty.
    pub(crate) fn watch(req: &mut Request<Body>) -> Option<Self> {
        if req.body().is_end_stream() {
            return None;
        }
        let watch = Self::default();
        let inner = std::mem::take(req.body_mut());
        *req.body_mut() = Body::new(Watched {
            inner,
            watch: watch.clone(),
        });
        Some(watch)
    }

    fn is_waiting(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A request body that records whether a read of it is pending; dropped
/// (read to the end, or given up), it is waited on by nobody.
struct Watched {
    inner: Body,
    watch: BodyWatch,
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.watch.0.store(false, Ordering::Release);
    }
}

impl HttpBody for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        // `Body` is `Unpin`: no projection needed.
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        self.watch.0.store(frame.is_pending(), Ordering::Release);
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = DeadlineService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DeadlineService {
            inner,
            layer: *self,
        }
    }
}

/// The service of [`DeadlineLayer`].
#[derive(Clone, Debug)]
pub struct DeadlineService<S> {
    inner: S,
    layer: DeadlineLayer,
}

impl<S> Service<Request<Body>> for DeadlineService<S>
where
    S: Service<Request<Body>, Response = Response>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let timeout = self.layer.budget(&req);
        // One clock read: the deadline handlers see is the timer's.
        let deadline = Instant::now() + timeout;
        req.extensions_mut().insert(Deadline(deadline));
        let body = BodyWatch::watch(&mut req);
        ResponseFuture {
            inner: self.inner.call(req),
            sleep: None,
            deadline,
            timeout,
            status: self.layer.status,
            body,
        }
    }
}

pin_project! {
    /// The response future of [`DeadlineService`]: the handler's, or a
    /// timeout problem when the deadline passes first. The timer is made
    /// (and boxed, keeping this future small to move) only when the handler
    /// does not answer at its first poll: a quick answer costs no timer and
    /// no allocation.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        sleep: Option<Pin<Box<Sleep>>>,
        deadline: Instant,
        timeout: Duration,
        status: StatusCode,
        body: Option<BodyWatch>,
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(result) = this.inner.poll(cx) {
            return Poll::Ready(result);
        }
        let deadline = *this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        ready!(sleep.as_mut().poll(cx));
        Poll::Ready(Ok(expired(*this.timeout, *this.status, this.body.as_ref())))
    }
}
