//! HTTP middleware that answers in problem+json: keyed rate limiting (429
//! with `Retry-After`), load shedding (503 with `Retry-After`) and panic
//! catching (500 without the panic's text).
//!
//! Each is a tower layer over `Request -> Response` services, usable on any
//! axum `Router` (`Router::layer`).
//!
//! ```
//! use std::num::NonZeroU32;
//! use axum::{Router, routing::get};
//! use pattern_api::middleware::{CatchPanicLayer, LoadShedLayer, RateLimitLayer};
//! use pattern_network::flow::rate::Quota;
//!
//! let app: Router = Router::new()
//!     .route("/", get(|| async { "ok" }))
//!     .layer(RateLimitLayer::per_client_ip(Quota::per_second(NonZeroU32::new(100).unwrap()), 100_000))
//!     .layer(LoadShedLayer::new(512))
//!     .layer(CatchPanicLayer::new());
//! ```

mod panic;
mod rate;
mod shed;

pub use panic::{CatchPanicLayer, CatchPanicService};
pub use rate::{RateLimitLayer, RateLimitService, client_ip};
pub use shed::{LoadShedLayer, LoadShedService};

use std::future::Future;
use std::pin::Pin;

/// The future every middleware here returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
