//! Outlier ejection settings.

use std::time::Duration;

/// When an endpoint is taken out of rotation, and for how long.
///
/// An endpoint is ejected after `consecutive_failures` failures in a row, or
/// when its failure rate over the last `interval` reaches the configured
/// rate (with at least a minimum number of requests). Each ejection lasts
/// `base_ejection` × 2^(earlier ejections), at most `max_ejection`; then
/// the endpoint is back. Never more than `max_ejected_share` of the
/// endpoints are ejected at once, so a fleet-wide problem does not empty
/// the pool.
#[derive(Clone, Copy, Debug)]
pub struct Outlier {
    pub(crate) consecutive_failures: u32,
    pub(crate) failure_rate: Option<(f64, u32)>,
    pub(crate) interval: Duration,
    pub(crate) base_ejection: Duration,
    pub(crate) max_ejection: Duration,
    pub(crate) max_ejected_share: f64,
}

impl Default for Outlier {
    /// 5 consecutive failures; no rate rule; 10 s interval; ejections from
    /// 30 s up to 5 min; at most half the endpoints ejected.
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_rate: None,
            interval: Duration::from_secs(10),
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            max_ejected_share: 0.5,
        }
    }
}

impl Outlier {
    /// Ejects after `n` failures in a row (0 turns the rule off).
    #[must_use]
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.consecutive_failures = if n == 0 { u32::MAX } else { n };
        self
    }

    /// Ejects when failures / requests reach `rate` within an interval with
    /// at least `min_requests` requests.
    #[must_use]
    pub fn failure_rate(mut self, rate: f64, min_requests: u32) -> Self {
        self.failure_rate = Some((rate, min_requests.max(1)));
        self
    }

    /// The window of the failure-rate rule.
    #[must_use]
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// The first ejection's length and the cap on later, doubled ones.
    #[must_use]
    pub fn ejection(mut self, base: Duration, max: Duration) -> Self {
        self.base_ejection = base;
        self.max_ejection = max.max(base);
        self
    }

    /// The largest share (0 to 1) of endpoints ejected at once.
    #[must_use]
    pub fn max_ejected_share(mut self, share: f64) -> Self {
        self.max_ejected_share = share.clamp(0.0, 1.0);
        self
    }

    /// How long the `n`-th ejection (from 0) lasts.
    pub(crate) fn duration(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.min(16));
        self.base_ejection
            .saturating_mul(factor)
            .min(self.max_ejection)
    }
}

/// One ejection, as [`Balancer::on_ejection`](super::Balancer::on_ejection)
/// reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ejection<'a> {
    endpoint: &'a str,
    duration: Duration,
    count: u32,
}

impl<'a> Ejection<'a> {
    pub(crate) fn new(endpoint: &'a str, duration: Duration, count: u32) -> Self {
        Self {
            endpoint,
            duration,
            count,
        }
    }

    /// The key of the ejected endpoint.
    pub fn endpoint(&self) -> &'a str {
        self.endpoint
    }

    /// How long it is out of rotation.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// How many times it has been ejected, this one included (the periods
    /// grow with it).
    pub fn count(&self) -> u32 {
        self.count
    }
}
