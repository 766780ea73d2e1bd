//! Who the client is: the peer's address, or, behind proxies you trust, the
//! address they forwarded.
//!
//! A proxy puts the address of the client it serves in `X-Forwarded-For`
//! (or `Forwarded`, RFC 7239) and connects with its own address. Anyone
//! can send those headers, so they are read only from proxies that are
//! configured as trusted ([`TrustedProxies`]): by their networks, or by how
//! many proxies stand in front of the service. The rate limit keys clients
//! by this address, and handlers read it with the [`ClientAddr`] extractor.
//!
//! ```
//! use pattern_api::client_addr::TrustedProxies;
//! use pattern_api::stack::ApiStack;
//!
//! // The load balancers live in 10.0.0.0/8: what they forward is believed,
//! // a header from anyone else is ignored.
//! let proxies = TrustedProxies::networks(["10.0.0.0/8", "fd00::/8"]).unwrap();
//! let stack = ApiStack::new().trusted_proxies(proxies);
//! # let _ = stack;
//! ```

mod cidr;
mod layer;
mod proxies;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, OptionalFromRequestParts};
use http::Extensions;
use http::request::Parts;

pub use cidr::Cidr;
pub(crate) use layer::resolve;
pub use layer::{ClientAddrLayer, ClientAddrService};
pub use proxies::{ForwardedHeader, TrustedProxies};

/// The client's address: the one trusted proxies forwarded, else the
/// connection's peer (from axum's `ConnectInfo`; serve with
/// `into_make_service_with_connect_info::<SocketAddr>()`, as
/// `pattern-server` does). Extract `Option<ClientAddr>`: it is `None`
/// when neither is known (a request made in process).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// The address found in `extensions`: a resolved [`ClientAddr`], else
    /// the connection's peer.
    pub fn of(extensions: &Extensions) -> Option<IpAddr> {
        extensions.get::<Self>().map(|Self(ip)| *ip).or_else(|| {
            extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip())
        })
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(Self::of(&parts.extensions).map(Self))
    }
}
