use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::sync::{AcquireError, OwnedSemaphorePermit};
use tokio::time::Sleep;
use tower::Service;

use super::{BulkheadPermit, QueuePlace};
use crate::Error;

type Acquire = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

pin_project! {
    /// The response future of [`BulkheadService`](super::BulkheadService).
    ///
    /// Holds its slot until it completes or is dropped.
    pub struct ResponseFuture<S, Req>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S::Future, S, Req>,
        permit: Option<BulkheadPermit>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, S, Req> {
        Running { #[pin] future: F },
        Waiting {
            acquire: Acquire,
            #[pin]
            sleep: Sleep,
            // Left (dropped) once a slot is taken or the wait ends.
            place: QueuePlace,
            service: Option<S>,
            request: Option<Req>,
        },
        Readying { service: Option<S>, request: Option<Req> },
        Rejected { error: Option<Error> },
    }
}

impl<S, Req> ResponseFuture<S, Req>
where
    S: Service<Req>,
{
    pub(super) fn running(future: S::Future, permit: BulkheadPermit) -> Self {
        Self {
            state: State::Running { future },
            permit: Some(permit),
        }
    }

    pub(super) fn rejected(error: Error) -> Self {
        Self {
            state: State::Rejected { error: Some(error) },
            permit: None,
        }
    }

    pub(super) fn waiting(place: QueuePlace, wait: Duration, service: S, request: Req) -> Self {
        let acquire: Acquire = match place.bulkhead().semaphore() {
            Some(slots) => Box::pin(slots.clone().acquire_owned()),
            // No semaphore, no wait configured: the service never queues.
            None => Box::pin(std::future::pending()),
        };
        Self {
            state: State::Waiting {
                acquire,
                sleep: tokio::time::sleep(wait),
                place,
                service: Some(service),
                request: Some(request),
            },
            permit: None,
        }
    }
}

impl<S, Req> Future for ResponseFuture<S, Req>
where
    S: Service<Req>,
    S::Error: Into<Error>,
{
    type Output = Result<S::Response, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Running { future } => {
                    let result = ready!(future.poll(cx)).map_err(Into::into);
                    this.permit.take();
                    return Poll::Ready(result);
                }
                StateProj::Waiting {
                    acquire,
                    sleep,
                    place,
                    service,
                    request,
                } => {
                    match acquire.as_mut().poll(cx) {
                        Poll::Ready(Ok(slot)) => {
                            *this.permit = Some(BulkheadPermit::queued(slot));
                            let (service, request) = (service.take(), request.take());
                            this.state.set(State::Readying { service, request });
                            continue;
                        }
                        Poll::Ready(Err(_closed)) => {
                            return Poll::Ready(Err(place.bulkhead().rejected()));
                        }
                        Poll::Pending => {}
                    }
                    ready!(sleep.poll(cx));
                    return Poll::Ready(Err(place.bulkhead().rejected()));
                }
                StateProj::Readying { service, request } => {
                    let svc = service.as_mut().expect("polled after completion");
                    ready!(svc.poll_ready(cx)).map_err(Into::into)?;
                    let request = request.take().expect("polled after completion");
                    let future = svc.call(request);
                    this.state.set(State::Running { future });
                }
                StateProj::Rejected { error } => {
                    return Poll::Ready(Err(error.take().expect("polled after completion")));
                }
            }
        }
    }
}

impl<S, Req> std::fmt::Debug for ResponseFuture<S, Req>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("holds_slot", &self.permit.is_some())
            .finish_non_exhaustive()
    }
}
