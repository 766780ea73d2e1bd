//! The recorder's settings: histogram buckets and upkeep.

use std::collections::BTreeMap;
use std::time::Duration;

use garde::Validate;
use serde::{Deserialize, Serialize};

/// The bucket bounds, in seconds, of every histogram unless
/// [`PrometheusConfig`] says otherwise: from half a millisecond to ten
/// seconds, about three per decade (fourteen series per label set, plus
/// `+Inf`, `_sum` and `_count`). Every histogram of the crates is a latency
/// in seconds.
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The most bounds a histogram has (each is a series per label set).
pub const MAX_BUCKETS: usize = 64;

/// How the Prometheus recorder exports histograms, and how often it folds
/// their samples in.
///
/// Histograms, not summaries: a histogram's buckets add up across
/// instances (`sum by (le) (rate(…_bucket[5m]))`, then
/// `histogram_quantile`), a summary's quantiles do not.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Validate)]
#[serde(default)]
pub struct PrometheusConfig {
    /// Bucket bounds of every histogram, in increasing order (seconds for
    /// the crates' latencies). Default [`DEFAULT_BUCKETS`].
    #[garde(custom(are_buckets))]
    pub buckets: Vec<f64>,
    /// Bounds for the histograms named here instead (full metric names:
    /// `http_request_duration_seconds = [0.01, 0.1, 1]`).
    #[garde(length(max = 256), custom(are_buckets_by_name))]
    pub buckets_for: BTreeMap<String, Vec<f64>>,
    /// How often samples are folded into the histograms (they are also
    /// folded at every scrape), in milliseconds.
    #[garde(range(min = 1, max = 3_600_000))]
    pub upkeep_ms: u64,
}

impl Default for PrometheusConfig {
    /// [`DEFAULT_BUCKETS`] for every histogram, upkeep every 5 s.
    fn default() -> Self {
        Self {
            buckets: DEFAULT_BUCKETS.to_vec(),
            buckets_for: BTreeMap::new(),
            upkeep_ms: 5_000,
        }
    }
}

impl PrometheusConfig {
    /// The upkeep period.
    pub fn upkeep(&self) -> Duration {
        Duration::from_millis(self.upkeep_ms)
    }
}

/// At least one bound and at most [`MAX_BUCKETS`], each finite and larger
/// than the one before.
fn are_buckets(bounds: &[f64], (): &()) -> garde::Result {
    if bounds.is_empty() || bounds.len() > MAX_BUCKETS {
        return Err(garde::Error::new(format!(
            "from 1 to {MAX_BUCKETS} bucket bounds (found {})",
            bounds.len()
        )));
    }
    if bounds.iter().any(|bound| !bound.is_finite()) {
        return Err(garde::Error::new("bucket bounds must be finite numbers"));
    }
    if bounds.windows(2).any(|pair| pair[0] >= pair[1]) {
        return Err(garde::Error::new("bucket bounds must increase"));
    }
    Ok(())
}

fn are_buckets_by_name(by_name: &BTreeMap<String, Vec<f64>>, (): &()) -> garde::Result {
    for (name, bounds) in by_name {
        if name.is_empty() {
            return Err(garde::Error::new("a metric name is empty"));
        }
        are_buckets(bounds, &()).map_err(|err| garde::Error::new(format!("{name}: {err}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use garde::Validate;

    use super::{DEFAULT_BUCKETS, MAX_BUCKETS, PrometheusConfig};

    #[test]
    fn bounds_are_validated() {
        assert!(PrometheusConfig::default().validate().is_ok());
        let with = |buckets: Vec<f64>| PrometheusConfig {
            buckets,
            ..PrometheusConfig::default()
        };
        for bad in [
            vec![],
            vec![0.1, 0.1],
            vec![1.0, 0.5],
            vec![0.1, f64::NAN],
            vec![f64::INFINITY],
            (0..=MAX_BUCKETS).map(|i| i as f64).collect(),
        ] {
            assert!(with(bad.clone()).validate().is_err(), "{bad:?}");
        }
        for good in [
            vec![0.0],
            vec![-1.0, 0.0, 1.0],
            (0..MAX_BUCKETS).map(|i| i as f64).collect(),
        ] {
            assert!(with(good.clone()).validate().is_ok(), "{good:?}");
        }
        let mut per_metric = PrometheusConfig::default();
        per_metric
            .buckets_for
            .insert("http_request_duration_seconds".to_owned(), vec![1.0, 0.5]);
        let err = per_metric.validate().unwrap_err().to_string();
        assert!(err.contains("http_request_duration_seconds"), "{err}");
        per_metric.buckets_for.clear();
        per_metric
            .buckets_for
            .insert(String::new(), DEFAULT_BUCKETS.to_vec());
        assert!(per_metric.validate().is_err());
        let slow = PrometheusConfig {
            upkeep_ms: 0,
            ..PrometheusConfig::default()
        };
        assert!(slow.validate().is_err());
    }
}
