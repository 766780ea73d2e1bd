//! The chain's one response future.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::response::Response;
use http::HeaderValue;
use pattern_error::bulkhead::BulkheadPermit;
use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;
use tokio::time::{Instant, Sleep};

use super::chain::Chain;
use crate::context::{CURRENT, RequestContext};
use crate::middleware::shed::Waiting;
use crate::middleware::{BodyWatch, Finished, Record};
use crate::request_id;

pin_project! {
    /// The response future of [`Stack`](super::Stack): the
    /// inner service's, or a rejection, finished by every piece of the
    /// chain (id echoed, metrics recorded, errors as problem+json).
    pub struct ResponseFuture<F, E> {
        #[pin]
        scoped: Scoped<F, E>,
        echo: Option<HeaderValue>,
    }
}

pin_project! {
    /// With a request id or a deadline, they are the task-local of every
    /// poll.
    #[project = ScopedProj]
    enum Scoped<F, E> {
        WithContext { #[pin] future: TaskLocalFuture<RequestContext, Core<F, E>> },
        Plain { #[pin] future: Core<F, E> },
    }
}

impl<F, E> ResponseFuture<F, E>
where
    F: Future<Output = Result<Response, E>>,
{
    pub(crate) fn new(
        context: Option<RequestContext>,
        core: Core<F, E>,
        echo: Option<HeaderValue>,
    ) -> Self {
        let scoped = match context {
            Some(context) => Scoped::WithContext {
                future: CURRENT.scope(context, core),
            },
            None => Scoped::Plain { future: core },
        };
        Self { scoped, echo }
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
        let this = self.project();
        let mut response = match this.scoped.project() {
            ScopedProj::WithContext { future } => ready!(future.poll(cx)),
            ScopedProj::Plain { future } => ready!(future.poll(cx)),
        }?;
        if let Some(value) = this.echo.take() {
            request_id::echo(&mut response, value);
        }
        Poll::Ready(Ok(response))
    }
}

pin_project! {
    /// Where a request is: served (or waiting to be), answered already
    /// (refused while admitted), or done.
    #[project = StageProj]
    pub(crate) enum Stage<F, E> {
        Running { #[pin] future: F },
        Queued { future: Waiting<E> },
        Ready { response: Option<Response> },
        Done,
    }
}

impl<F, E> Stage<F, E> {
    pub(crate) fn running(future: F) -> Self {
        Self::Running { future }
    }

    pub(crate) fn queued(future: Waiting<E>) -> Self {
        Self::Queued { future }
    }

    pub(crate) fn ready(response: Response) -> Self {
        Self::Ready {
            response: Some(response),
        }
    }
}

impl<F, E> Future for Stage<F, E>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            StageProj::Running { future } => future.poll(cx),
            StageProj::Queued { future } => future.as_mut().poll(cx),
            StageProj::Ready { response } => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
            StageProj::Done => panic!("polled after completion"),
        }
    }
}

/// The request's deadline, and what answering at it takes.
pub(crate) struct Timer {
    pub(crate) deadline: Instant,
    pub(crate) budget: Duration,
    pub(crate) body: Option<BodyWatch>,
    /// Made (and boxed, keeping the future small to move) only when the
    /// answer is not ready at the first poll.
    pub(crate) sleep: Option<Pin<Box<Sleep>>>,
}

pin_project! {
    /// Everything but the context: the stage under panic catching and the
    /// deadline, then the response finished.
    pub(crate) struct Core<F, E> {
        #[pin]
        pub(crate) stage: Stage<F, E>,
        pub(crate) chain: Arc<Chain>,
        pub(crate) timer: Option<Timer>,
        pub(crate) trace: Option<Finished>,
        pub(crate) record: Option<Record>,
        pub(crate) permit: Option<BulkheadPermit>,
    }
}

impl<F, E> Future for Core<F, E>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let chain = &**this.chain;
        let result = {
            let _entered = this.trace.as_ref().map(Finished::enter);
            let polled = if chain.catch_panic {
                let stage = this.stage.as_mut();
                std::panic::catch_unwind(AssertUnwindSafe(|| stage.poll(cx))).unwrap_or_else(
                    |payload| Poll::Ready(Ok(crate::middleware::panic_answer(payload))),
                )
            } else {
                this.stage.as_mut().poll(cx)
            };
            match (polled, this.timer.as_mut(), &chain.timeout) {
                (Poll::Ready(result), _, _) => result,
                (Poll::Pending, Some(timer), Some(timeout)) => {
                    let deadline = timer.deadline;
                    let sleep = timer
                        .sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                    ready!(sleep.as_mut().poll(cx));
                    Ok(timeout.expired(timer.budget, timer.body.as_ref()))
                }
                (Poll::Pending, _, _) => return Poll::Pending,
            }
        };
        // Done: the handler (if it timed out), its slot and its timer go now.
        this.stage.set(Stage::Done);
        this.permit.take();
        this.timer.take();
        let mut response = result?;
        if chain.problem_json && response.status().as_u16() >= 400 {
            // In the request's span: a problem made here names its trace.
            let _entered = this.trace.as_ref().map(Finished::enter);
            crate::middleware::rewrite(&mut response);
        }
        // One clock read ends the request for the metrics and the log.
        let end = this.record.take().map(|record| {
            let end = Instant::now();
            record.finish_at(&response, end);
            end
        });
        if let Some(trace) = this.trace.take() {
            trace.finish_at(&mut response, end);
        }
        Poll::Ready(Ok(response))
    }
}
