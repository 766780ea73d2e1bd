//! Back pressure: limits on concurrent calls that reject the excess, and an
//! adaptive limit that finds its own value from latency.
//!
//! A fixed limit that rejects at once is `pattern-error`'s
//! [`Bulkhead`] (re-exported here): the caller gets
//! [`Kind::Overloaded`](pattern_error::Kind::Overloaded) instead of
//! joining an unbounded queue.
//!
//! [`AdaptiveLimit`] moves the limit as Netflix's concurrency-limits
//! does: finished calls are gathered in windows (at least 100 ms and ten
//! calls, at most a second, by default), each window is a [`Sample`] (mean
//! latency, most calls in flight, whether one was dropped) fed to an
//! [`Algorithm`], and calls beyond the current limit are rejected at once
//! with [`Kind::Overloaded`](pattern_error::Kind::Overloaded). Under rising
//! latency the limit falls before a queue builds; when latency returns to
//! normal it climbs back.
//!
//! [`Gradient2`] is the recommended algorithm: it follows latency relative
//! to its own long-term average, which keeps moving, so it recovers after
//! a latency step either way. [`Vegas`] judges against the lowest latency
//! seen (probed again now and then); [`Aimd`] only against drops and a
//! fixed timeout.
//!
//! Use it as a tower layer ([`AdaptiveLimitLayer`]), around any future
//! ([`AdaptiveLimit::run`]), or by hand ([`AdaptiveLimit::try_acquire`]
//! and a [`LimitPermit`]). A call given up by its caller (its future or
//! permit dropped) is a sample with the time it had run, and a drop when
//! that is twice the mean answer of its window or more: under overload
//! callers give up at their deadlines, and those calls must pull the limit
//! down.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use std::time::Duration;
//! use pattern_error::{Error, Kind};
//! use pattern_network::limit::{AdaptiveLimit, AdaptiveLimitLayer, Aimd};
//! use tower::{Layer, Service, ServiceExt, service_fn};
//!
//! // Every call judged alone, for the example (the default window gathers
//! // at least 100 ms and ten calls).
//! let limit = AdaptiveLimit::builder("search", Aimd::new(2, 1, 100))
//!     .window(Duration::ZERO, Duration::ZERO, 1)
//!     .build();
//! let mut svc = AdaptiveLimitLayer::new(limit.clone()).layer(service_fn(|()| async {
//!     tokio::time::sleep(Duration::from_millis(10)).await;
//!     Ok::<_, Error>(())
//! }));
//! let a = svc.ready().await.unwrap().call(());
//! let b = svc.ready().await.unwrap().call(());
//! // Two calls in flight at a limit of 2: a third is turned away at once.
//! let err = svc.ready().await.unwrap().call(()).await.unwrap_err();
//! assert_eq!(err.kind(), Kind::Overloaded);
//! a.await.unwrap();
//! b.await.unwrap();
//! assert_eq!(limit.limit(), 4, "both calls found the limit used: +1 each");
//! # }
//! ```
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `concurrency_limit` | gauge | `limiter` |
//! | `concurrency_limit_rejections_total` | counter | `limiter` |

mod adaptive;
mod algorithm;
mod future;
mod layer;
mod service;

pub use adaptive::{AdaptiveLimit, AdaptiveLimitBuilder, LimitPermit};
pub use algorithm::{Aimd, Algorithm, Gradient2, Sample, Vegas};
pub use future::ResponseFuture;
pub use layer::AdaptiveLimitLayer;
pub use pattern_error::bulkhead::{Bulkhead, BulkheadLayer};
pub use service::AdaptiveLimitService;

/// Gauge of the current limit, labelled `limiter`.
pub const LIMIT_GAUGE: &str = "concurrency_limit";
/// Counter of calls turned away, labelled `limiter`.
pub const REJECTIONS_TOTAL: &str = "concurrency_limit_rejections_total";
