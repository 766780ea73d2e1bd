//! Requests over time, for the report's plots: when each ended, how long
//! it took, how it ended; and the scenario's events (a SIGTERM, the
//! database stopped) on the same clock.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The most requests a timeline keeps; later ones are counted, not kept.
const MAX_POINTS: usize = 1_000_000;

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Answered 2xx.
    Ok,
    /// Turned away as documented: a 503 or 429 problem, or a connection
    /// closed or refused where the scenario allows it (a drain).
    Refused,
    /// Anything else.
    Error,
}

/// One request: when it ended (since the timeline's start) and its
/// latency.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Point {
    pub(crate) ended: Duration,
    pub(crate) latency: Duration,
    pub(crate) outcome: Outcome,
}

/// What a timeline recorded.
#[derive(Clone, Debug, Default)]
pub(crate) struct Recorded {
    pub(crate) points: Vec<Point>,
    /// `(when, what)`, in the order they happened.
    pub(crate) events: Vec<(Duration, String)>,
    /// Requests beyond [`MAX_POINTS`], not kept.
    pub(crate) dropped: u64,
}

/// A shared recorder; cloning shares it.
#[derive(Clone, Debug)]
pub(crate) struct Timeline {
    start: Instant,
    recorded: Arc<Mutex<Recorded>>,
}

impl Timeline {
    /// A timeline starting now.
    pub(crate) fn start() -> Self {
        Self {
            start: Instant::now(),
            recorded: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        self.recorded.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A request sent at `sent` that took `latency` and ended as `outcome`.
    pub(crate) fn request(&self, sent: Instant, latency: Duration, outcome: Outcome) {
        let ended = (sent + latency).saturating_duration_since(self.start);
        let mut recorded = self.lock();
        if recorded.points.len() < MAX_POINTS {
            recorded.points.push(Point {
                ended,
                latency,
                outcome,
            });
        } else {
            recorded.dropped += 1;
        }
    }

    /// Something that happened now.
    pub(crate) fn event(&self, what: impl Into<String>) {
        let at = self.start.elapsed();
        self.lock().events.push((at, what.into()));
    }

    /// What it holds now.
    pub(crate) fn recorded(&self) -> Recorded {
        self.lock().clone()
    }
}

/// One bin of a timeline: requests per second by outcome, and latency
/// percentiles of those answered (ok or refused).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Bin {
    /// The bin's start, in seconds.
    pub(crate) at: f64,
    pub(crate) ok_per_sec: f64,
    pub(crate) refused_per_sec: f64,
    pub(crate) errors_per_sec: f64,
    /// p50, p99 and max latency in seconds; `None` for a bin with no
    /// answer.
    pub(crate) p50: Option<f64>,
    pub(crate) p99: Option<f64>,
    pub(crate) max: Option<f64>,
}

impl Recorded {
    /// The time its last request ended or its last event happened.
    pub(crate) fn end(&self) -> Duration {
        let last_point = self.points.iter().map(|p| p.ended).max();
        let last_event = self.events.iter().map(|(at, _)| *at).max();
        last_point.max(last_event).unwrap_or_default()
    }

    /// Its requests in bins of `width`, from 0 to the end.
    pub(crate) fn bins(&self, width: Duration) -> Vec<Bin> {
        let width_s = width.as_secs_f64().max(1e-3);
        let count = (self.end().as_secs_f64() / width_s).floor() as usize + 1;
        let mut latencies: Vec<Vec<f64>> = vec![Vec::new(); count];
        let mut bins: Vec<Bin> = (0..count)
            .map(|i| Bin {
                at: i as f64 * width_s,
                ..Bin::default()
            })
            .collect();
        for point in &self.points {
            let i = ((point.ended.as_secs_f64() / width_s).floor() as usize).min(count - 1);
            let bin = &mut bins[i];
            match point.outcome {
                Outcome::Ok => bin.ok_per_sec += 1.0 / width_s,
                Outcome::Refused => bin.refused_per_sec += 1.0 / width_s,
                Outcome::Error => bin.errors_per_sec += 1.0 / width_s,
            }
            if point.outcome != Outcome::Error {
                latencies[i].push(point.latency.as_secs_f64());
            }
        }
        for (bin, mut seen) in bins.iter_mut().zip(latencies) {
            if seen.is_empty() {
                continue;
            }
            seen.sort_by(f64::total_cmp);
            let rank =
                |p: f64| seen[((p * seen.len() as f64).ceil() as usize).clamp(1, seen.len()) - 1];
            bin.p50 = Some(rank(0.50));
            bin.p99 = Some(rank(0.99));
            bin.max = seen.last().copied();
        }
        bins
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(ended_ms: u64, latency_ms: u64, outcome: Outcome) -> Point {
        Point {
            ended: Duration::from_millis(ended_ms),
            latency: Duration::from_millis(latency_ms),
            outcome,
        }
    }

    #[test]
    fn bins_count_rates_and_percentiles() {
        let mut recorded = Recorded::default();
        // Bin 0: 100 answers of 1..=100 ms; bin 2: one refusal, one error.
        for i in 1..=100 {
            recorded.points.push(point(50, i, Outcome::Ok));
        }
        recorded.points.push(point(250, 3, Outcome::Refused));
        recorded.points.push(point(260, 900, Outcome::Error));
        let bins = recorded.bins(Duration::from_millis(100));
        assert_eq!(bins.len(), 3);
        assert!((bins[0].ok_per_sec - 1000.0).abs() < 1e-9);
        assert_eq!(bins[0].p50, Some(0.050));
        assert_eq!(bins[0].p99, Some(0.099));
        assert_eq!(bins[0].max, Some(0.100));
        assert_eq!(
            bins[1],
            Bin {
                at: 0.1,
                ..Bin::default()
            }
        );
        assert!((bins[2].refused_per_sec - 10.0).abs() < 1e-9);
        assert!((bins[2].errors_per_sec - 10.0).abs() < 1e-9);
        // An error's latency is no answer's.
        assert_eq!(bins[2].max, Some(0.003));
    }

    #[test]
    fn events_extend_the_end_and_the_store_is_bounded() {
        let timeline = Timeline::start();
        let sent = Instant::now();
        timeline.request(sent, Duration::from_millis(5), Outcome::Ok);
        timeline.event("SIGTERM");
        let recorded = timeline.recorded();
        assert_eq!(recorded.points.len(), 1);
        assert_eq!(recorded.events.len(), 1);
        assert!(recorded.end() >= recorded.events[0].0);
        assert!(!recorded.bins(Duration::from_millis(100)).is_empty());

        let mut full = Recorded {
            points: vec![point(0, 0, Outcome::Ok); MAX_POINTS],
            ..Recorded::default()
        };
        let shared = Timeline {
            start: Instant::now(),
            recorded: Arc::new(Mutex::new(std::mem::take(&mut full))),
        };
        shared.request(Instant::now(), Duration::ZERO, Outcome::Ok);
        let recorded = shared.recorded();
        assert_eq!(recorded.points.len(), MAX_POINTS);
        assert_eq!(recorded.dropped, 1);
    }

    #[test]
    fn an_empty_timeline_has_one_empty_bin() {
        let bins = Recorded::default().bins(Duration::from_millis(100));
        assert_eq!(bins, [Bin::default()]);
    }
}
