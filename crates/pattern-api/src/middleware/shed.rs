//! Load shedding: a bounded number of requests in flight, an optional
//! bounded queue, and a 503 with `Retry-After` for the rest.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::Request;
use pattern_error::bulkhead::{Bulkhead, BulkheadPermit};
use pattern_error::{Error, Kind};
use tokio::time::Instant;
use tower::{Layer, Service};

use pin_project_lite::pin_project;

use super::future::Finish;
use crate::ApiError;
use crate::context::Deadline;

/// Serves at most `max` requests at once and answers the excess with 503
/// and `Retry-After`: at once, or, with [`queue`](Self::queue), after
/// waiting in a bounded queue for a slot up to a timeout (a full queue
/// answers at once). A request with a [`Deadline`] (set by a
/// [`DeadlineLayer`](super::DeadlineLayer) outside) waits at most until
/// just before it.
///
/// The fast path (a free slot) allocates nothing; only a request that has
/// to wait boxes its future.
#[derive(Clone, Debug)]
pub struct LoadShedLayer {
    bulkhead: Bulkhead,
}

impl LoadShedLayer {
    /// At most `max` requests in flight.
    pub fn new(max: usize) -> Self {
        Self {
            bulkhead: Bulkhead::new("http", max),
        }
    }

    /// Lets up to `max_waiting` requests wait up to `wait` for a slot
    /// before they are shed.
    #[must_use]
    pub fn queue(self, max_waiting: usize, wait: Duration) -> Self {
        Self {
            bulkhead: self.bulkhead.wait_up_to(wait).max_waiting(max_waiting),
        }
    }

    /// The bulkhead that holds the slots.
    pub(crate) fn bulkhead(&self) -> &Bulkhead {
        &self.bulkhead
    }

    /// Requests in flight now.
    pub fn in_flight(&self) -> usize {
        self.bulkhead.in_flight()
    }

    /// Requests waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.bulkhead.waiting()
    }
}

impl<S> Layer<S> for LoadShedLayer {
    type Service = LoadShed<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LoadShed {
            inner,
            bulkhead: self.bulkhead.clone(),
        }
    }
}

/// The service of [`LoadShedLayer`].
#[derive(Clone, Debug)]
pub struct LoadShed<S> {
    inner: S,
    bulkhead: Bulkhead,
}

/// A request waiting in the admission queue, then served.
pub(crate) type Waiting<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

pin_project! {
    /// The response future of [`LoadShed`]: a request served now or
    /// shed now (no allocation), or one waiting in the queue (boxed).
    pub struct ResponseFuture<F, E> {
        #[pin]
        state: Admit<F, E>,
    }
}

pin_project! {
    #[project = AdmitProj]
    enum Admit<F, E> {
        Now { #[pin] future: super::future::ResponseFuture<F, Slot> },
        Queued { future: Waiting<E> },
    }
}

impl<F, E> std::fmt::Debug for ResponseFuture<F, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, E> Future for ResponseFuture<F, E>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            AdmitProj::Now { future } => future.poll(cx),
            AdmitProj::Queued { future } => future.as_mut().poll(cx),
        }
    }
}

impl<S, B> Service<Request<B>> for LoadShed<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let now = match self.bulkhead.try_acquire_or_queue() {
            Ok(Some(permit)) => {
                super::future::ResponseFuture::inner(self.inner.call(req), Slot(permit))
            }
            Err(overloaded) => {
                super::future::ResponseFuture::ready(ApiError::from(overloaded).into_response())
            }
            Ok(None) => {
                let deadline = Deadline::find(req.extensions()).map(|deadline| deadline.0);
                return ResponseFuture {
                    state: Admit::Queued {
                        future: wait_for_slot(&self.bulkhead, &mut self.inner, deadline, req),
                    },
                };
            }
        };
        ResponseFuture {
            state: Admit::Now { future: now },
        }
    }
}

/// Waits in the admission queue for a slot, then calls `inner` (the service
/// that was made ready is taken for the call, a clone left in its place):
/// the wait and the call in one boxed future, so only a request that waits
/// allocates. The request's deadline, which started on arrival, covers the
/// wait: a request still waiting for a slot when it comes was shed, not
/// slow, so the wait ends one timer tick (1 ms) before it and its 503 with
/// `Retry-After` comes before the timeout.
pub(crate) fn wait_for_slot<S, B>(
    bulkhead: &Bulkhead,
    inner: &mut S,
    deadline: Option<Instant>,
    req: Request<B>,
) -> Waiting<S::Error>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    let clone = inner.clone();
    let mut inner = std::mem::replace(inner, clone);
    let bulkhead = bulkhead.clone();
    Box::pin(async move {
        let acquired = match deadline {
            Some(at) => {
                let before = at.checked_sub(Duration::from_millis(1)).unwrap_or(at);
                tokio::time::timeout_at(before, bulkhead.acquire())
                    .await
                    .unwrap_or_else(|_| {
                        Err(Error::new(
                            Kind::Overloaded,
                            "no slot free before the request's deadline",
                        ))
                    })
            }
            None => bulkhead.acquire().await,
        };
        let permit = match acquired {
            Ok(permit) => permit,
            Err(overloaded) => return Ok(ApiError::from(overloaded).into_response()),
        };
        let response = inner.call(req).await;
        drop(permit);
        response
    })
}

/// The request's slot, released when the response is ready (or the call is
/// dropped).
#[derive(Debug)]
pub(crate) struct Slot(#[allow(dead_code)] BulkheadPermit); // held for its Drop

impl Finish for Slot {
    fn finish(self, _: &mut Response) {}
}
