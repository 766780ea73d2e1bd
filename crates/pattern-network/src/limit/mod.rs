//! Back pressure: limits on concurrent calls that reject the excess, and an
//! adaptive limit that finds its own value from latency.
//!
//! A fixed limit that rejects at once is `pattern-error`'s
//! [`Bulkhead`](pattern_error::bulkhead::Bulkhead) (re-exported here as
//! [`ConcurrencyLimit`]): the caller gets [`Kind::Overloaded`] instead of
//! joining an unbounded queue.
//!
//! [`AdaptiveLimitLayer`] moves the limit as Netflix's concurrency-limits
//! does: every finished call is a [`Sample`] (latency, concurrency, whether
//! it was dropped) fed to an [`Algorithm`] — [`Aimd`] or [`Vegas`] — and
//! calls beyond the current limit are rejected at once with
//! [`Kind::Overloaded`]. Under rising latency the limit falls before a queue
//! builds; when latency returns to normal it climbs back.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use std::time::Duration;
//! use pattern_error::{Error, Kind};
//! use pattern_network::limit::{AdaptiveLimit, AdaptiveLimitLayer, Aimd};
//! use tower::{Layer, Service, ServiceExt, service_fn};
//!
//! let limit = AdaptiveLimit::new("search", Aimd::new(2, 1, 100));
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

mod algorithm;
mod future;
mod layer;
mod service;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

pub use algorithm::{Aimd, Algorithm, Sample, Vegas};
pub use future::ResponseFuture;
pub use layer::AdaptiveLimitLayer;
pub use pattern_error::bulkhead::{
    Bulkhead as ConcurrencyLimit, BulkheadLayer as ConcurrencyLimitLayer,
};
use pattern_error::{Error, Kind};
pub use service::AdaptiveLimitService;

/// Gauge of the current limit, labelled `limiter`.
pub const LIMIT_GAUGE: &str = "concurrency_limit";
/// Counter of calls turned away, labelled `limiter`.
pub const REJECTIONS_TOTAL: &str = "concurrency_limit_rejections_total";

/// A concurrency limit that adapts; cloning shares it.
#[derive(Clone, Debug)]
pub struct AdaptiveLimit {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: metrics::SharedString,
    limit: AtomicUsize,
    in_flight: AtomicUsize,
    algorithm: Mutex<Box<dyn Algorithm>>,
}

impl AdaptiveLimit {
    /// A limit named `name` (the `limiter` metrics label) driven by `algorithm`.
    pub fn new(name: impl Into<std::borrow::Cow<'static, str>>, algorithm: impl Algorithm) -> Self {
        let initial = algorithm.initial();
        let name = metrics::SharedString::from(name.into());
        metrics::gauge!(LIMIT_GAUGE, "limiter" => name.clone()).set(initial as f64);
        Self {
            inner: Arc::new(Inner {
                name,
                limit: AtomicUsize::new(initial),
                in_flight: AtomicUsize::new(0),
                algorithm: Mutex::new(Box::new(algorithm)),
            }),
        }
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.inner.limit.load(Ordering::Acquire)
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Acquire)
    }

    /// Takes a slot if the limit allows, returning the concurrency it saw.
    pub(crate) fn try_acquire(&self) -> Result<usize, Error> {
        let limit = self.limit();
        let taken = self
            .inner
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            });
        match taken {
            Ok(before) => Ok(before + 1),
            Err(in_flight) => {
                metrics::counter!(REJECTIONS_TOTAL, "limiter" => self.inner.name.clone())
                    .increment(1);
                Err(Error::new(
                    Kind::Overloaded,
                    format!("concurrency limit {limit} reached ({in_flight} in flight)"),
                ))
            }
        }
    }

    /// Gives a slot back without a sample (a cancelled call).
    pub(crate) fn release(&self) {
        self.inner.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// Gives a slot back and feeds the sample to the algorithm.
    pub(crate) fn complete(&self, sample: Sample) {
        self.release();
        let mut algorithm = self
            .inner
            .algorithm
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let old = self.limit();
        let new = algorithm.update(old, sample).max(1);
        if new != old {
            self.inner.limit.store(new, Ordering::Release);
            metrics::gauge!(LIMIT_GAUGE, "limiter" => self.inner.name.clone()).set(new as f64);
        }
    }
}
