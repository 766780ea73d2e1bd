use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use http::{HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;
use tower::{Layer, Service};

use super::{HEADER_NAME, RequestId};
use crate::context::{self, CURRENT, RequestContext};

/// Propagates or generates the request id; see the [module docs](super).
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestIdService { inner }
    }
}

/// The service of [`RequestIdLayer`].
#[derive(Clone, Debug)]
pub struct RequestIdService<S> {
    inner: S,
}

impl<S, B, RB> Service<Request<B>> for RequestIdService<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let (id, echo) = identify(&req);
        req.extensions_mut().insert(id.clone());
        // The id is current while the inner layers' `call` runs too: a
        // rejection made there (rate limit, load shedding) carries it.
        let inner = &mut self.inner;
        let context = RequestContext {
            id: Some(id),
            // A deadline set further out stays current.
            deadline: context::with(|outer| outer.deadline),
        };
        let future = CURRENT.sync_scope(context.clone(), || inner.call(req));
        ResponseFuture {
            scoped: CURRENT.scope(context, Echo { future, echo }),
        }
    }
}

/// The request's id (the client's when sane, else a new one), and the
/// header value to echo on the response.
pub(crate) fn identify<B>(req: &Request<B>) -> (RequestId, Option<HeaderValue>) {
    identify_from(req.headers().get(&HEADER_NAME))
}

/// [`identify`], from the request's id header (`sent`), if any.
pub(crate) fn identify_from(sent: Option<&HeaderValue>) -> (RequestId, Option<HeaderValue>) {
    // A client's sane id is echoed with its own header value (no copy).
    let (id, echo) = match sent
        .and_then(|value| RequestId::from_header(value.as_bytes()).map(|id| (id, value.clone())))
    {
        Some((id, value)) => (id, Some(value)),
        None => (RequestId::generate(), None),
    };
    let echo = echo.or_else(|| header_value(id.as_str()));
    (id, echo)
}

/// How many bytes of ids a thread writes into one buffer before it takes
/// another.
const SLAB_BYTES: usize = 4096;

thread_local! {
    /// Where a thread writes the ids it echoes: each a shared slice of one
    /// buffer (an atomic count), not an allocation and a free of its own.
    /// A buffer is freed once it is full and the last answer naming one of
    /// its ids is gone.
    static SLAB: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// `text` as a header value, its bytes in this thread's slab.
fn header_value(text: &str) -> Option<HeaderValue> {
    SLAB.with_borrow_mut(|slab| {
        if slab.capacity() < text.len() {
            *slab = BytesMut::with_capacity(SLAB_BYTES.max(text.len()));
        }
        slab.extend_from_slice(text.as_bytes());
        HeaderValue::from_maybe_shared(slab.split().freeze()).ok()
    })
}

/// Puts the echoed id on a response, marked never to be indexed: an id is
/// new with each request, and HTTP/2's header compression (HPACK) would
/// otherwise add every one to the connection's table, searching it and
/// evicting the entries that do repeat (the id is sent as it is, and
/// HTTP/1 ignores the mark).
pub(crate) fn echo<RB>(response: &mut Response<RB>, mut value: HeaderValue) {
    value.set_sensitive(true);
    response.headers_mut().insert(HEADER_NAME, value);
}

pin_project! {
    /// The response future of [`RequestIdService`]: the inner future with
    /// the id in scope, the id echoed on its response (no allocation).
    pub struct ResponseFuture<F> {
        #[pin]
        scoped: TaskLocalFuture<RequestContext, Echo<F>>,
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, RB, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<RB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().scoped.poll(cx)
    }
}

pin_project! {
    /// Puts the id on the response once it is ready.
    struct Echo<F> {
        #[pin]
        future: F,
        echo: Option<HeaderValue>,
    }
}

impl<F, RB, E> Future for Echo<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<RB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.future.poll(cx))?;
        if let Some(value) = this.echo.take() {
            echo(&mut response, value);
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::{SLAB_BYTES, header_value, identify};

    /// Ids echoed over several slabs, all held at once (the first slabs
    /// full and replaced meanwhile), each read back as its id, none
    /// changed by the ids written after it; text longer than a slab still
    /// makes a value.
    #[test]
    fn echoed_ids_stay_whole_across_slabs() {
        let request = http::Request::new(());
        let echoed: Vec<_> = (0..3 * SLAB_BYTES / 16 + 7)
            .map(|_| {
                let (id, echo) = identify(&request);
                (id, echo.expect("a generated id is a header value"))
            })
            .collect();
        for (id, echo) in &echoed {
            assert_eq!(echo.to_str().unwrap(), id.as_str());
        }
        let distinct: std::collections::HashSet<_> =
            echoed.iter().map(|(id, _)| id.to_string()).collect();
        assert_eq!(distinct.len(), echoed.len());
        let long = "a".repeat(SLAB_BYTES + 1);
        assert_eq!(header_value(&long).unwrap().to_str().unwrap(), long);
        assert_eq!(header_value("x").unwrap().to_str().unwrap(), "x");
        assert!(header_value("bad\nvalue").is_none());
    }
}
