use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::Sleep;
use tower::Service;

use super::policy::{Attempts, Decision};
use super::{CheckResponse, CloneRequest, RetryPolicy};
use crate::Error;

pin_project! {
    /// The response future of [`Retry`](super::Retry).
    pub struct ResponseFuture<S, Req, C, R>
    where
        S: Service<Req>,
    {
        #[pin]
        state: State<S::Future>,
        service: S,
        // A copy for the next attempt; `None` when none could be made.
        request: Option<Req>,
        attempts: Attempts,
        check: C,
        cloner: R,
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

impl<S, Req, C, R> ResponseFuture<S, Req, C, R>
where
    S: Service<Req>,
{
    pub(super) fn new(
        first: S::Future,
        service: S,
        request: Option<Req>,
        policy: &RetryPolicy,
        check: C,
        cloner: R,
    ) -> Self {
        Self {
            state: State::Calling { future: first },
            service,
            request,
            attempts: Attempts::new(policy),
            check,
            cloner,
        }
    }
}

impl<S, Req, C, R> Future for ResponseFuture<S, Req, C, R>
where
    S: Service<Req>,
    S::Error: Into<Error>,
    C: CheckResponse<S::Response>,
    R: CloneRequest<Req>,
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
                        Ok(response) => match this.attempts.after_result(this.request.is_some()) {
                            Decision::Retry(delay) => delay,
                            Decision::GiveUp(_) => return Poll::Ready(Ok(response)),
                        },
                        Err(err) => {
                            let err = err.into();
                            match this.attempts.after_error(&err, this.request.is_some()) {
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
                    // A retry is only decided with a copy in hand.
                    let request = this
                        .request
                        .take()
                        .expect("a retry is decided only with a copy of the request");
                    // A copy for the attempt after this one, if one may follow.
                    *this.request = if this.attempts.may_follow() {
                        this.cloner.clone_request(&request)
                    } else {
                        None
                    };
                    let future = this.service.call(request);
                    this.state.set(State::Calling { future });
                }
            }
        }
    }
}

impl<S, Req, C, R> std::fmt::Debug for ResponseFuture<S, Req, C, R>
where
    S: Service<Req>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
