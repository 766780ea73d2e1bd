//! Metrics (through a debugging recorder) and tracing fields.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// One test at a time: tracing caches each call site's interest across
/// the dispatchers alive when it is computed, and a test on another thread
/// hitting the same call site with none of its own could leave it cached
/// as uninteresting while a test's scoped subscriber waits for its events
/// (seen once in 80 runs under load).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
use pattern_error::breaker::CircuitBreaker;
use pattern_error::bulkhead::Bulkhead;
use pattern_error::retry::RetryPolicy;
use pattern_error::{Context, Error, Kind, report};

/// One recorded metric: name, labels, value.
type Metric = (String, Vec<(String, String)>, DebugValue);

/// Everything recorded so far (reading resets the debugging recorder's
/// counters, so take one snapshot per test).
fn read(snapshotter: &Snapshotter) -> Vec<Metric> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            (key.name().to_owned(), labels, value)
        })
        .collect()
}

/// The value of the metric `name` whose labels include all of `labels`.
fn value<'a>(metrics: &'a [Metric], name: &str, labels: &[(&str, &str)]) -> Option<&'a DebugValue> {
    metrics
        .iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, value)| value)
}

fn counter(metrics: &[Metric], name: &str, labels: &[(&str, &str)]) -> u64 {
    match value(metrics, name, labels) {
        Some(DebugValue::Counter(n)) => *n,
        other => panic!("{name} {labels:?}: {other:?}"),
    }
}

#[test]
fn errors_are_counted_by_kind_and_component() {
    let _serial = serial();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let err = Error::new(Kind::Timeout, "slow");
        pattern_error::metrics::record(&err, "inventory");
        pattern_error::metrics::record(&err, "inventory");
        pattern_error::metrics::record(&Error::from_kind(Kind::NotFound), "inventory");
    });
    let metrics = read(&snapshotter);
    let labels = [("kind", "timeout"), ("component", "inventory")];
    assert_eq!(counter(&metrics, "errors_total", &labels), 2);
    let labels = [("kind", "not_found"), ("component", "inventory")];
    assert_eq!(counter(&metrics, "errors_total", &labels), 1);
}

#[test]
fn breaker_reports_state_transitions_and_rejections() {
    let _serial = serial();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let breaker = CircuitBreaker::builder("payments")
            .count_window(2)
            .minimum_calls(2)
            .build()
            .unwrap();
        for _ in 0..2 {
            breaker.try_acquire().unwrap().failure();
        }
        for _ in 0..3 {
            breaker.try_acquire().unwrap_err();
        }
    });
    let metrics = read(&snapshotter);
    let gauge = value(
        &metrics,
        "circuit_breaker_state",
        &[("breaker", "payments")],
    );
    assert_eq!(gauge, Some(&DebugValue::Gauge(1.0.into())), "open");
    let labels = [("breaker", "payments"), ("from", "closed"), ("to", "open")];
    assert_eq!(
        counter(&metrics, "circuit_breaker_transitions_total", &labels),
        1
    );
    let labels = [("breaker", "payments"), ("state", "open")];
    assert_eq!(
        counter(&metrics, "circuit_breaker_rejections_total", &labels),
        3
    );
}

#[test]
fn retries_and_give_ups_are_counted() {
    let _serial = serial();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            let policy = RetryPolicy::builder("search")
                .max_attempts(3)
                .backoff(Duration::from_millis(10), 2.0, Duration::from_secs(1))
                .build()
                .unwrap();
            let _ = policy
                .run(|| async { Err::<(), _>(Error::from_kind(Kind::Unavailable)) })
                .await;
        })
    });
    let metrics = read(&snapshotter);
    assert_eq!(
        counter(&metrics, "retry_attempts_total", &[("retry", "search")]),
        2
    );
    let labels = [("retry", "search"), ("reason", "attempts")];
    assert_eq!(counter(&metrics, "retry_give_ups_total", &labels), 1);
}

#[test]
fn bulkhead_rejections_are_counted() {
    let _serial = serial();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let bulkhead = Bulkhead::new("reports", 1);
        let _held = bulkhead.try_acquire().unwrap();
        bulkhead.try_acquire().unwrap_err();
    });
    let metrics = read(&snapshotter);
    assert_eq!(
        counter(
            &metrics,
            "bulkhead_rejections_total",
            &[("bulkhead", "reports")]
        ),
        1
    );
}

/// An event's level and its fields.
type Recorded = (tracing::Level, Vec<(String, String)>);

/// Collects every event's level and fields.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<Recorded>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Events {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Fields(Vec<(String, String)>);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push((field.name().to_owned(), format!("{value:?}")));
            }
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                self.0.push((field.name().to_owned(), value.to_owned()));
            }
            fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
                self.0.push((field.name().to_owned(), value.to_string()));
            }
        }
        let mut fields = Fields(Vec::new());
        event.record(&mut fields);
        self.0
            .lock()
            .unwrap()
            .push((*event.metadata().level(), fields.0));
    }
}

#[test]
fn trace_records_kind_and_chain_as_fields() {
    let _serial = serial();
    use tracing_subscriber::layer::SubscriberExt;
    let events = Events::default();
    let subscriber = tracing_subscriber::registry().with(events.clone());
    tracing::subscriber::with_default(subscriber, || {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = Err::<(), _>(io).context("loading order 42").unwrap_err();
        report::trace(&err);
        report::trace(&Error::new(Kind::Internal, "invariant broken"));
        report::trace(&Error::new(Kind::NotFound, "no such order"));
    });
    let events = events.0.lock().unwrap();
    let field = |i: usize, name: &str| {
        events[i]
            .1
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no field {name} in {:?}", events[i]))
    };
    assert_eq!(events.len(), 3);
    assert_eq!(events[0].0, tracing::Level::WARN, "transient: warn");
    assert_eq!(field(0, "error.kind"), "unavailable");
    assert_eq!(field(0, "error.transient"), "true");
    assert_eq!(field(0, "error.chain"), "loading order 42: refused");
    assert_eq!(field(0, "error.message"), "loading order 42");
    assert_eq!(events[1].0, tracing::Level::ERROR, "internal: error");
    assert_eq!(events[2].0, tracing::Level::DEBUG, "caller fault: debug");
}

#[test]
fn each_retry_is_a_tracing_event_with_attempt_delay_and_cause() {
    let _serial = serial();
    use tracing_subscriber::layer::SubscriberExt;
    let events = Events::default();
    let subscriber = tracing_subscriber::registry().with(events.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        rt.block_on(async {
            let policy = RetryPolicy::builder("search")
                .max_attempts(3)
                .backoff(Duration::from_millis(10), 2.0, Duration::from_secs(1))
                .jitter(false)
                .build()
                .unwrap();
            let _ = policy
                .run(|| async { Err::<(), _>(Error::new(Kind::Unavailable, "connection refused")) })
                .await;
        })
    });
    let events = events.0.lock().unwrap();
    let retries: Vec<_> = events
        .iter()
        .filter(|(_, fields)| {
            fields
                .iter()
                .any(|(k, v)| k == "message" && v == "retrying")
        })
        .collect();
    assert_eq!(retries.len(), 2);
    let field = |i: usize, name: &str| {
        retries[i]
            .1
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no field {name} in {:?}", retries[i]))
    };
    assert_eq!(retries[0].0, tracing::Level::DEBUG);
    assert_eq!(
        (field(0, "attempt"), field(0, "delay_ms")),
        ("2".into(), "10".into())
    );
    assert_eq!(
        (field(1, "attempt"), field(1, "delay_ms")),
        ("3".into(), "20".into())
    );
    assert_eq!(field(0, "retry"), "search");
    assert_eq!(field(0, "cause"), "connection refused");
}
