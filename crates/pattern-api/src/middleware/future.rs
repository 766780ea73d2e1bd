//! The response futures of this crate's middleware: no allocation per
//! request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::response::Response;
use pin_project_lite::pin_project;

/// Work done on a response once the inner service produced it (recording
/// metrics, adding a header, releasing a permit).
pub trait Finish {
    /// Runs once, with the response.
    fn finish(self, response: &mut Response);
}

impl Finish for () {
    fn finish(self, _: &mut Response) {}
}

pin_project! {
    /// A middleware's response: one ready at once (a rejection), or the
    /// inner service's, then finished.
    #[derive(Debug)]
    pub struct ResponseFuture<F, A> {
        #[pin]
        state: State<F, A>,
    }
}

pin_project! {
    #[project = Proj]
    #[derive(Debug)]
    enum State<F, A> {
        Ready { response: Option<Response> },
        Inner { #[pin] inner: F, finish: Option<A> },
    }
}

impl<F, A> ResponseFuture<F, A> {
    pub(crate) fn ready(response: Response) -> Self {
        Self {
            state: State::Ready {
                response: Some(response),
            },
        }
    }

    pub(crate) fn inner(inner: F, finish: A) -> Self {
        Self {
            state: State::Inner {
                inner,
                finish: Some(finish),
            },
        }
    }
}

impl<F, A, E> Future for ResponseFuture<F, A>
where
    F: Future<Output = Result<Response, E>>,
    A: Finish,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            Proj::Ready { response } => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
            Proj::Inner { inner, finish } => {
                let mut response = ready!(inner.poll(cx))?;
                if let Some(finish) = finish.take() {
                    finish.finish(&mut response);
                }
                Poll::Ready(Ok(response))
            }
        }
    }
}
