use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower::Layer;

use super::{Dice, Fault, NoOutcome, OutcomeFn};
use crate::{Error, Kind};

type ErrorFn = Arc<dyn Fn() -> Error + Send + Sync>;

/// Injects faults into the services it wraps; see the [module docs](super).
///
/// Every service it wraps shares one seeded sequence.
pub struct FaultLayer<O = NoOutcome> {
    pub(super) shared: Arc<Shared<O>>,
}

pub(super) struct Shared<O> {
    pub(super) dice: Dice,
    pub(super) error_rate: f64,
    pub(super) error: ErrorFn,
    pub(super) latency_rate: f64,
    pub(super) latency: Duration,
    pub(super) outcome_rate: f64,
    pub(super) outcome: O,
}

/// Builds a [`FaultLayer`].
#[must_use]
pub struct FaultBuilder<O = NoOutcome> {
    seed: u64,
    error_rate: f64,
    error: ErrorFn,
    latency_rate: f64,
    latency: Duration,
    outcome_rate: f64,
    outcome: O,
}

impl FaultLayer {
    /// Starts with no fault at all and seed 0.
    pub fn builder() -> FaultBuilder {
        FaultBuilder {
            seed: 0,
            error_rate: 0.0,
            error: Arc::new(|| Error::new(Kind::Unavailable, "injected fault")),
            latency_rate: 0.0,
            latency: Duration::ZERO,
            outcome_rate: 0.0,
            outcome: NoOutcome,
        }
    }
}

impl<O> FaultBuilder<O> {
    /// The seed of the sequence that decides which calls get faults.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Fails a share `rate` (0 to 1) of calls with the error `make` builds.
    pub fn error(mut self, rate: f64, make: impl Fn() -> Error + Send + Sync + 'static) -> Self {
        self.error_rate = rate;
        self.error = Arc::new(make);
        self
    }

    /// Delays a share `rate` (0 to 1) of calls by `delay`.
    pub fn latency(mut self, rate: f64, delay: Duration) -> Self {
        self.latency_rate = rate;
        self.latency = delay;
        self
    }

    /// Answers a share `rate` (0 to 1) of calls with the response `make`
    /// builds, without calling the service (a canned 503, an empty page).
    pub fn outcome<F>(self, rate: f64, make: F) -> FaultBuilder<OutcomeFn<F>> {
        FaultBuilder {
            seed: self.seed,
            error_rate: self.error_rate,
            error: self.error,
            latency_rate: self.latency_rate,
            latency: self.latency,
            outcome_rate: rate,
            outcome: OutcomeFn(make),
        }
    }

    /// Checks the rates and builds the layer.
    ///
    /// Fails with [`Kind::InvalidInput`] when a rate is outside 0 to 1.
    pub fn build(self) -> Result<FaultLayer<O>, Error> {
        for (what, rate) in [
            ("error", self.error_rate),
            ("latency", self.latency_rate),
            ("outcome", self.outcome_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(Error::new(
                    Kind::InvalidInput,
                    format!("fault injection: the {what} rate must be within 0..=1, not {rate}"),
                ));
            }
        }
        Ok(FaultLayer {
            shared: Arc::new(Shared {
                dice: Dice::new(self.seed),
                error_rate: self.error_rate,
                error: self.error,
                latency_rate: self.latency_rate,
                latency: self.latency,
                outcome_rate: self.outcome_rate,
                outcome: self.outcome,
            }),
        })
    }
}

impl<O> Clone for FaultLayer<O> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<S, O> Layer<S> for FaultLayer<O> {
    type Service = Fault<S, O>;

    fn layer(&self, inner: S) -> Self::Service {
        Fault::new(inner, self.shared.clone())
    }
}

impl<O> fmt::Debug for FaultLayer<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shared;
        f.debug_struct("FaultLayer")
            .field("error_rate", &s.error_rate)
            .field("latency_rate", &s.latency_rate)
            .field("latency", &s.latency)
            .field("outcome_rate", &s.outcome_rate)
            .finish_non_exhaustive()
    }
}

impl<O> fmt::Debug for FaultBuilder<O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultBuilder")
            .field("seed", &self.seed)
            .field("error_rate", &self.error_rate)
            .field("latency_rate", &self.latency_rate)
            .field("latency", &self.latency)
            .field("outcome_rate", &self.outcome_rate)
            .finish_non_exhaustive()
    }
}
