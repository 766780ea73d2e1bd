use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::response::{IntoResponse, Response};
use http::Request;
use pattern_error::Error;
use pattern_network::flow::rate::{KeyedLimiter, Quota};
use tower::{Layer, Service};

use super::future::ResponseFuture;
use crate::ApiError;
use crate::client_addr::ClientAddr;

type KeyFn<B> = Box<dyn Fn(&Request<B>) -> Key + Send + Sync>;

/// Counter of requests a rate limit refused, labelled `limiter` (`http`
/// unless [`RateLimitLayer::named`]).
pub const RATE_LIMIT_REJECTIONS_TOTAL: &str = "rate_limit_rejections_total";

/// The network a client address stands for: an IPv4 address itself (an
/// IPv4-mapped IPv6 address as IPv4), an IPv6 address by its first
/// `v6_prefix` bits (at most 128): one host usually holds a whole /64, so
/// keying by the full address lets it take a fresh key per address.
pub fn client_network(ip: IpAddr, v6_prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u32::from(v6_prefix.min(128));
                let mask = if bits == 0 {
                    0
                } else {
                    u128::MAX << (128 - bits)
                };
                IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & mask))
            }
        },
        v4 => v4,
    }
}

/// A rate-limit key: a client address, or a hash of a key function's
/// text (a fixed size whatever a client sends: the limiter bounds how many
/// keys it holds, this bounds each one).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    Ip(IpAddr),
    Unknown,
    Hashed(u64),
}

/// The client's network as a key (see [`ClientAddr::of`]).
fn ip_key<B>(req: &Request<B>, v6_prefix: u8) -> Key {
    ClientAddr::of(req.extensions())
        .map_or(Key::Unknown, |ip| Key::Ip(client_network(ip, v6_prefix)))
}

/// The client's IP address (the one trusted proxies forwarded, else the
/// peer's from axum's `ConnectInfo`; see [`ClientAddr`]), or `"unknown"`.
pub fn client_ip<B>(req: &Request<B>) -> String {
    ClientAddr::of(req.extensions()).map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

/// Limits requests per key (client IP, API key, or any function of the
/// request) with a bounded keyed limiter; refused requests get 429 with
/// `Retry-After`.
pub struct RateLimitLayer<B> {
    /// One shared pointer: cloning the service per request (as axum does)
    /// costs one reference count.
    shared: Arc<Shared<B>>,
}

struct Shared<B> {
    limiter: KeyedLimiter<Key>,
    key: KeyFn<B>,
    name: metrics::SharedString,
}

impl<B: 'static> RateLimitLayer<B> {
    /// `quota` per client IP, tracking at most `max_keys` clients; IPv6
    /// clients by their /64 (see [`client_network`]). Behind proxies, give
    /// the stack [`TrustedProxies`](crate::client_addr::TrustedProxies) (or
    /// put a [`ClientAddrLayer`](crate::client_addr::ClientAddrLayer) outside
    /// this layer), or every client behind a proxy shares one key.
    pub fn per_client_ip(quota: Quota, max_keys: usize) -> Self {
        Self::per_client_network(quota, max_keys, 64)
    }

    /// `quota` per client network: IPv4 addresses one by one, IPv6 by
    /// their first `v6_prefix` bits (see [`client_network`]).
    pub fn per_client_network(quota: Quota, max_keys: usize, v6_prefix: u8) -> Self {
        Self::with_key(quota, max_keys, Box::new(move |req| ip_key(req, v6_prefix)))
    }

    /// `quota` per key of `key(request)` (an API-key header, a tenant).
    pub fn per_key(
        quota: Quota,
        max_keys: usize,
        key: impl Fn(&Request<B>) -> String + Send + Sync + 'static,
    ) -> Self {
        Self::with_key(quota, max_keys, {
            // Seeded per limiter: clients cannot aim at collisions.
            let seed = std::hash::RandomState::new();
            Box::new(move |req| Key::Hashed(seed.hash_one(key(req))))
        })
    }

    fn with_key(quota: Quota, max_keys: usize, key: KeyFn<B>) -> Self {
        Self {
            shared: Arc::new(Shared {
                limiter: KeyedLimiter::new(quota, max_keys),
                key,
                name: metrics::SharedString::const_str("http"),
            }),
        }
    }
}

impl<B> RateLimitLayer<B> {
    /// Names the limit in the `limiter` label of
    /// [`rate_limit_rejections_total`](RATE_LIMIT_REJECTIONS_TOTAL) (`http` unless
    /// named), to tell two limits of one service apart.
    ///
    /// # Panics
    ///
    /// If the layer was cloned already: name it when building it.
    #[must_use]
    pub fn named(mut self, name: &'static str) -> Self {
        Arc::get_mut(&mut self.shared)
            .expect("a rate limit is named before it is cloned")
            .name = metrics::SharedString::const_str(name);
        self
    }

    /// Registers its rejection counter at zero (a rate over it is then 0,
    /// not absent), once it is put to use and its name is final.
    pub(crate) fn register(&self) {
        metrics::counter!(RATE_LIMIT_REJECTIONS_TOTAL, "limiter" => self.shared.name.clone())
            .increment(0);
    }

    /// The rate-limited error for `req` if it is over its limit (counted);
    /// `None` lets it through.
    pub(crate) fn limited(&self, req: &Request<B>) -> Option<Error> {
        let shared = &self.shared;
        let refused = shared.limiter.check(&(shared.key)(req)).err()?;
        metrics::counter!(RATE_LIMIT_REJECTIONS_TOTAL, "limiter" => shared.name.clone())
            .increment(1);
        Some(Error::from(refused))
    }
}

impl<B> Clone for RateLimitLayer<B> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<B> std::fmt::Debug for RateLimitLayer<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("limiter", &self.shared.limiter)
            .finish_non_exhaustive()
    }
}

impl<S, B> Layer<S> for RateLimitLayer<B> {
    type Service = RateLimit<S, B>;

    fn layer(&self, inner: S) -> Self::Service {
        self.register();
        RateLimit {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service of [`RateLimitLayer`].
pub struct RateLimit<S, B> {
    inner: S,
    layer: RateLimitLayer<B>,
}

impl<S: Clone, B> Clone for RateLimit<S, B> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: std::fmt::Debug, B> std::fmt::Debug for RateLimit<S, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B> Service<Request<B>> for RateLimit<S, B>
where
    S: Service<Request<B>, Response = Response>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ()>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match self.layer.limited(&req) {
            None => ResponseFuture::inner(self.inner.call(req), ()),
            Some(limited) => ResponseFuture::ready(ApiError::from(limited).into_response()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::client_network;

    #[test]
    fn ipv6_clients_count_by_their_prefix() {
        let a: std::net::IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: std::net::IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let other: std::net::IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_network(a, 64), client_network(b, 64));
        assert_ne!(client_network(a, 64), client_network(other, 64));
        assert_ne!(client_network(a, 128), client_network(b, 128));
        assert_eq!(client_network(a, 0), client_network(other, 0));
        let v4: std::net::IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(client_network(v4, 64), v4);
        let mapped: std::net::IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(
            client_network(mapped, 64),
            v4,
            "an IPv4-mapped address is IPv4"
        );
    }
}
