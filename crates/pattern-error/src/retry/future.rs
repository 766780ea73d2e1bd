use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::Service;

use super::policy::{Attempts, Decision};
use super::{CheckResponse, RetryPolicy};
use crate::Error;

pin_project! {
    /// The response future of [`RetryService`](super::RetryService).
    pub struct ResponseFuture<S, Req, C>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S::Future>,
        service: S,
        request: Req,
        attempts: Attempts,
        check: C,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Calling { #[pin] future: F },
        // Boxed: retries are the cold path, and an inline `Sleep` would make
        // every call's future several times larger to move around.
        Waiting { sleep: Pin<Box<Sleep>> },
        Readying,
    }
}

impl<S, Req, C> ResponseFuture<S, Req, C>
where
    S: Service<Req>,
{
    pub(super) fn new(
        first: S::Future,
        service: S,
        request: Req,
        policy: &RetryPolicy,
        check: C,
    ) -> Self {
        Self {
            state: State::Calling { future: first },
            service,
            request,
            attempts: Attempts::new(policy),
            check,
        }
    }
}

impl<S, Req, C> Future for ResponseFuture<S, Req, C>
where
    S: Service<Req>,
    S::Error: Into<Error>,
    Req: Clone,
    C: CheckResponse<S::Response>,
{
    type Output = Result<S::Response, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { future } => {
                    let delay = match ready!(future.poll(cx)) {
                        Ok(response) if !this.check.retry(&response) => {
                            return Poll::Ready(Ok(response));
                        }
                        Ok(response) => match this.attempts.after_result() {
                            Decision::Retry(delay) => delay,
                            Decision::GiveUp(_) => return Poll::Ready(Ok(response)),
                        },
                        Err(err) => {
                            let err = err.into();
                            match this.attempts.after_error(&err) {
                                Decision::Retry(delay) => delay,
                                Decision::GiveUp(reason) => {
                                    return Poll::Ready(Err(this.attempts.give_up(err, reason)));
                                }
                            }
                        }
                    };
                    this.state.set(State::Waiting {
                        sleep: Box::pin(tokio::time::sleep(delay)),
                    });
                }
                StateProj::Waiting { sleep } => {
                    ready!(sleep.as_mut().poll(cx));
                    this.state.set(State::Readying);
                }
                StateProj::Readying => {
                    ready!(this.service.poll_ready(cx)).map_err(Into::into)?;
                    let future = this.service.call(this.request.clone());
                    this.state.set(State::Calling { future });
                }
            }
        }
    }
}

impl<S, Req, C> std::fmt::Debug for ResponseFuture<S, Req, C>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
