use std::net::SocketAddr;
use std::task::{Context, Poll};

use axum::extract::ConnectInfo;
use http::Request;
use tower::{Layer, Service};

use super::{ClientAddr, TrustedProxies};

/// Resolves each request's client address once, with [`TrustedProxies`],
/// and puts it in the request's extensions as a [`ClientAddr`] for the
/// layers inside (the rate limit) and the handler. A request without a
/// peer address (made in process) is left as it is. [`ApiStack`] does this
/// itself when given trusted proxies.
///
/// [`ApiStack`]: crate::stack::ApiStack
#[derive(Clone, Debug)]
pub struct ClientAddrLayer {
    proxies: TrustedProxies,
}

impl ClientAddrLayer {
    /// Resolves with `proxies`.
    pub fn new(proxies: TrustedProxies) -> Self {
        Self { proxies }
    }
}

impl<S> Layer<S> for ClientAddrLayer {
    type Service = ClientAddrService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientAddrService {
            inner,
            proxies: self.proxies.clone(),
        }
    }
}

/// The service of [`ClientAddrLayer`].
#[derive(Clone, Debug)]
pub struct ClientAddrService<S> {
    inner: S,
    proxies: TrustedProxies,
}

impl<S, B> Service<Request<B>> for ClientAddrService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        resolve(&self.proxies, &mut req);
        self.inner.call(req)
    }
}

/// Inserts the client's address when a proxy is trusted and the peer is
/// known (without trusted proxies, readers take the peer themselves: no
/// extension, no allocation).
pub(crate) fn resolve<B>(proxies: &TrustedProxies, req: &mut Request<B>) {
    if proxies.is_none() {
        return;
    }
    if let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
        let client = proxies.client(*peer, req.headers());
        req.extensions_mut().insert(ClientAddr(client));
    }
}
