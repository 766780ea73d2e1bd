//! Load balancing over a changing set of endpoints, as a tower service.
//!
//! A [`Balancer`] holds endpoints (each a `Clone` service with a key and a
//! weight) that can be added and removed while it runs, and sends each
//! request to one of them by a [`Strategy`]:
//!
//! | strategy | picks |
//! | --- | --- |
//! | [`RoundRobin`](Strategy::RoundRobin) | each endpoint in turn |
//! | [`WeightedRoundRobin`](Strategy::WeightedRoundRobin) | in proportion to weights, smoothly interleaved (nginx's algorithm) |
//! | [`LeastPending`](Strategy::LeastPending) | the endpoint with the fewest calls in flight |
//! | [`PeakEwma`](Strategy::PeakEwma) | the less loaded of two random endpoints, load = peak-EWMA latency × (in flight + 1) |
//! | [`ConsistentHash`](Strategy::ConsistentHash) | the owner of the request's key on a hash ring (sticky keys) |
//!
//! Peak EWMA counts a failed call as taking at least the failure penalty, so
//! an endpoint that answers a quick 503 does not look like the fastest. An
//! estimate decays with the time since its last sample (measured by the
//! balancer's other calls, so a pick reads no clock): an endpoint that
//! answered slowly once is tried again after a few time constants instead
//! of being starved by a peak it never gets the chance to lower.
//!
//! [`Outlier`] ejection takes failing endpoints out of rotation for a
//! growing period, never more than a configured share of them;
//! [`Balancer::on_ejection`] reports each one as it happens. An ejected
//! consistent-hash owner's keys go to the ring's next node (the one that
//! would own them without it, so every process agrees), not round-robin.
//!
//! What else the balancer guarantees:
//!
//! - **Readiness**: `poll_ready` picks an endpoint and readies it; one
//!   that is not ready (its own limit reached) is passed over for another,
//!   and when none is, the balancer waits for the first that is, so the
//!   endpoints' back pressure reaches the caller. (Consistent hashing picks
//!   by the request, so in `call`, and readies that endpoint in the
//!   response future.)
//! - **Newcomers**: a new endpoint starts with the mean latency estimate
//!   of the others, dated when it joined, so peak EWMA does not hand it a
//!   burst before its first answer; [`Balancer::slow_start`] also ramps
//!   its share of load up over a window.
//! - **Refreshes**: adding an endpoint already there keeps its statistics,
//!   ejection and slow start, so a discovery refresh erases nothing.
//!   [`Balancer::follow`] takes the endpoints from tower's `Discover`
//!   stream.
//! - **Cancellation**: a dropped response future stops counting its call
//!   in flight.
//!
//! tower's own `balance::p2c` cannot eject outliers or penalise failures;
//! this balancer keeps the same two-choices pick (compared with tower's in
//! `cargo xtask bench`).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use pattern_error::Error;
//! use pattern_network::balance::{Balancer, Strategy};
//! use tower::{ServiceExt, service_fn};
//!
//! let balancer = Balancer::new(Strategy::RoundRobin);
//! for name in ["a", "b"] {
//!     balancer.add(name, service_fn(move |()| async move { Ok::<_, Error>(name) }), 1);
//! }
//! assert_eq!(balancer.clone().oneshot(()).await.unwrap(), "a");
//! assert_eq!(balancer.clone().oneshot(()).await.unwrap(), "b");
//! balancer.remove("a");
//! assert_eq!(balancer.clone().oneshot(()).await.unwrap(), "b");
//! # }
//! ```

mod outlier;
mod service;
mod stats;

pub use outlier::{Ejection, Outlier};
pub use service::{Balancer, KeyFn, NoKey, ResponseFuture};

/// How a [`Balancer`] picks an endpoint; see the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Strategy {
    /// Each endpoint in turn.
    RoundRobin,
    /// In proportion to the weights, smoothly interleaved.
    WeightedRoundRobin,
    /// The fewest calls in flight.
    LeastPending,
    /// Power of two choices on peak-EWMA load.
    PeakEwma,
    /// The owner of the request's key on a consistent-hash ring; set the key
    /// with [`Balancer::with_key`].
    ConsistentHash,
}

/// Counter of ejections (no labels: endpoints come and go; the log names
/// each ejected endpoint).
pub const EJECTIONS_TOTAL: &str = "balancer_ejections_total";
