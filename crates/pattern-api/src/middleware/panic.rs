//! A panic in a handler answered with a 500 problem (its message logged,
//! never sent) instead of a dropped connection.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::response::{IntoResponse, Response};
use http::Request;
use pattern_error::{Error, Kind};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::ApiError;

/// Turns a panic in a handler into a 500 problem. The body says nothing of
/// the panic; its message is logged at error level with the request id.
#[derive(Clone, Copy, Debug, Default)]
pub struct CatchPanicLayer;

impl CatchPanicLayer {
    /// The layer.
    pub fn new() -> Self {
        Self
    }
}

impl<S> Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CatchPanic { inner }
    }
}

/// The service of [`CatchPanicLayer`].
#[derive(Clone, Debug)]
pub struct CatchPanic<S> {
    inner: S,
}

/// The 500 for a caught panic (its text logged, not answered).
pub(crate) fn answer(payload: Box<dyn std::any::Any + Send>) -> Response {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-string payload".to_owned());
    let request_id = crate::request_id::RequestId::current();
    tracing::error!(request_id = request_id.as_ref().map(|id| id.as_str()), panic = %text, "handler panicked");
    ApiError::from(Error::new(
        Kind::Internal,
        format!("handler panicked: {text}"),
    ))
    .into_response()
}

impl<S, B> Service<Request<B>> for CatchPanic<S>
where
    S: Service<Request<B>, Response = Response>,
    S::Future: Future + Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // A panic in `call` itself (before any await) is caught too.
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
            Ok(future) => ResponseFuture {
                state: Caught::Running { future },
            },
            Err(payload) => ResponseFuture {
                state: Caught::Panicked {
                    response: Some(answer(payload)),
                },
            },
        }
    }
}

pin_project! {
    /// The response future of [`CatchPanic`]: the handler's, each
    /// poll guarded, or the 500 for a panic in `call` (no allocation).
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        state: Caught<F>,
    }
}

pin_project! {
    #[project = CaughtProj]
    #[derive(Debug)]
    enum Caught<F> {
        Running { #[pin] future: F },
        Panicked { response: Option<Response> },
    }
}

impl<F, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            CaughtProj::Running { future } => {
                match std::panic::catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
                    Ok(poll) => poll,
                    Err(payload) => Poll::Ready(Ok(answer(payload))),
                }
            }
            CaughtProj::Panicked { response } => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
        }
    }
}
