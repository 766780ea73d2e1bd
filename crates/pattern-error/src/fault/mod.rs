//! Fault injection for testing error conditions: errors, latency or a
//! chosen outcome, injected into a fraction of calls, deterministically
//! under a seed.
//!
//! Each call draws three numbers from one seeded sequence: one decides
//! whether it is delayed, one whether it fails with the injected error, one
//! whether it is answered with the injected outcome (error first, then
//! outcome). The same seed and the same order of calls give the same
//! faults, so a failing test replays.
//!
//! A delayed call waits before its inner future is first polled (futures
//! are lazy, so the inner work starts after the delay). A call answered by a
//! fault never reaches the inner service.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! use std::time::Duration;
//! use pattern_error::{Error, Kind, fault::FaultLayer};
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! let faults = FaultLayer::builder()
//!     .seed(42)
//!     .error(0.25, || Error::new(Kind::Unavailable, "injected outage"))
//!     .latency(0.5, Duration::from_millis(200))
//!     .build()
//!     .unwrap();
//! let mut svc = ServiceBuilder::new()
//!     .layer(faults)
//!     .service(service_fn(|x: u32| async move { Ok::<_, Error>(x) }));
//!
//! let mut failures = 0;
//! for i in 0..1000 {
//!     if svc.ready().await.unwrap().call(i).await.is_err() {
//!         failures += 1;
//!     }
//! }
//! assert!((200..300).contains(&failures), "{failures}");
//! # }
//! ```
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `faults_injected_total` | counter | `fault` (`error`, `latency`, `outcome`) |

mod future;
mod layer;
mod service;

use std::sync::atomic::{AtomicU64, Ordering};

pub use future::ResponseFuture;
pub use layer::{FaultBuilder, FaultLayer};
pub use service::Fault;

/// Counter of injected faults, labelled `fault`.
pub const INJECTED_TOTAL: &str = "faults_injected_total";

/// Produces the injected outcome for a call, if one is configured; see
/// [`FaultBuilder::outcome`].
pub trait Outcome<Res> {
    /// A fresh outcome.
    fn produce(&self) -> Option<Res>;
}

/// No injected outcome (the default).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoOutcome;

impl<Res> Outcome<Res> for NoOutcome {
    fn produce(&self) -> Option<Res> {
        None
    }
}

/// An injected outcome built by a function.
#[derive(Clone, Copy, Debug)]
pub struct OutcomeFn<F>(F);

impl<Res, F: Fn() -> Res> Outcome<Res> for OutcomeFn<F> {
    fn produce(&self) -> Option<Res> {
        Some((self.0)())
    }
}

/// A seeded sequence of numbers in [0, 1), safe to share between threads:
/// SplitMix64 over an atomic counter, so each draw is one atomic add.
#[derive(Debug)]
pub(crate) struct Dice {
    state: AtomicU64,
}

impl Dice {
    const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

    pub(crate) fn new(seed: u64) -> Self {
        Self {
            state: AtomicU64::new(seed),
        }
    }

    pub(crate) fn roll(&self) -> f64 {
        let mut z = self
            .state
            .fetch_add(Self::GOLDEN, Ordering::Relaxed)
            .wrapping_add(Self::GOLDEN);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::Dice;

    #[test]
    fn dice_are_uniform_and_replayable() {
        let a = Dice::new(7);
        let b = Dice::new(7);
        let rolls: Vec<f64> = (0..10_000).map(|_| a.roll()).collect();
        assert!(
            rolls
                .iter()
                .zip((0..).map(|_| b.roll()))
                .all(|(x, y)| *x == y)
        );
        assert!(rolls.iter().all(|r| (0.0..1.0).contains(r)));
        let below_half = rolls.iter().filter(|r| **r < 0.5).count();
        assert!((4_800..5_200).contains(&below_half), "{below_half}");
    }
}
