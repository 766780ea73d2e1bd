use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::time::Sleep;

use crate::Error;

pin_project! {
    /// The response future of [`Fault`](super::Fault).
    #[derive(Debug)]
    pub struct ResponseFuture<F, Res> {
        #[pin]
        delay: Option<Sleep>,
        #[pin]
        inner: Option<F>,
        answer: Option<Result<Res, Error>>,
    }
}

impl<F, Res> ResponseFuture<F, Res> {
    pub(super) fn call(delay: Option<Duration>, inner: F) -> Self {
        Self {
            delay: delay.map(tokio::time::sleep),
            inner: Some(inner),
            answer: None,
        }
    }

    pub(super) fn answer(delay: Option<Duration>, answer: Result<Res, Error>) -> Self {
        Self {
            delay: delay.map(tokio::time::sleep),
            inner: None,
            answer: Some(answer),
        }
    }
}

impl<F, Res, E> Future for ResponseFuture<F, Res>
where
    F: Future<Output = Result<Res, E>>,
    E: Into<Error>,
{
    type Output = Result<Res, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(delay) = this.delay.as_mut().as_pin_mut() {
            ready!(delay.poll(cx));
            this.delay.set(None);
        }
        if let Some(answer) = this.answer.take() {
            return Poll::Ready(answer);
        }
        let inner = this.inner.as_pin_mut().expect("polled after completion");
        inner.poll(cx).map_err(Into::into)
    }
}
