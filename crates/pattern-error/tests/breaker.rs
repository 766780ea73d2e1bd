//! Circuit breaker behaviour, with paused tokio time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pattern_error::breaker::{CircuitBreaker, CircuitBreakerLayer, Event, Rejected, State};
use pattern_error::{Error, Kind};
use tokio::time::advance;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

fn unavailable() -> Error {
    Error::new(Kind::Unavailable, "connection refused")
}

async fn fail(breaker: &CircuitBreaker) -> Result<(), Error> {
    breaker.call(async { Err::<(), _>(unavailable()) }).await
}

async fn succeed(breaker: &CircuitBreaker) -> Result<(), Error> {
    breaker.call(async { Ok::<(), Error>(()) }).await
}

fn small() -> pattern_error::breaker::CircuitBreakerBuilder {
    CircuitBreaker::builder("test")
        .count_window(4)
        .minimum_calls(4)
        .failure_rate(0.5)
        .open_duration(Duration::from_secs(10))
        .half_open_probes(2)
        .probe_timeout(Duration::from_secs(1))
}

/// Records every event the breaker reports.
fn recorder() -> (
    Arc<Mutex<Vec<Event>>>,
    impl Fn(&Event) + Send + Sync + 'static,
) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    (events, move |e: &Event| sink.lock().unwrap().push(*e))
}

fn transitions(events: &Mutex<Vec<Event>>) -> Vec<(State, State)> {
    events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Transition { from, to } => Some((*from, *to)),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn closed_open_half_open_closed() {
    let (events, listener) = recorder();
    let breaker = small().on_event(listener).build().unwrap();

    // Below the minimum number of calls nothing is judged.
    for _ in 0..3 {
        fail(&breaker).await.unwrap_err();
    }
    assert_eq!(breaker.state(), State::Closed);
    // The fourth call fills the window: 4 of 4 failed.
    fail(&breaker).await.unwrap_err();
    assert_eq!(breaker.state(), State::Open);

    // Open: rejected at once, with the time left.
    advance(Duration::from_secs(4)).await;
    let err = succeed(&breaker).await.unwrap_err();
    assert_eq!(err.kind(), Kind::Unavailable);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(6)));
    let rejected = err.downcast_ref::<Rejected>().unwrap();
    assert_eq!(rejected.state(), State::Open);
    assert_eq!(rejected.breaker(), "test");

    // After the open duration the next call is a probe.
    advance(Duration::from_secs(6)).await;
    succeed(&breaker).await.unwrap();
    assert_eq!(breaker.state(), State::HalfOpen);
    succeed(&breaker).await.unwrap();
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().calls, 0, "closing starts a fresh window");

    assert_eq!(
        transitions(&events),
        [
            (State::Closed, State::Open),
            (State::Open, State::HalfOpen),
            (State::HalfOpen, State::Closed),
        ]
    );
    assert!(
        events
            .lock()
            .unwrap()
            .contains(&Event::Rejected { state: State::Open })
    );
}

#[tokio::test(start_paused = true)]
async fn failed_probes_reopen_for_longer() {
    let breaker = small()
        .open_backoff(2.0, Duration::from_secs(25))
        .build()
        .unwrap();
    for _ in 0..4 {
        fail(&breaker).await.unwrap_err();
    }
    let mut expected = [10, 20, 25, 25].into_iter();
    let mut open_for = expected.next().unwrap();
    for _ in 0..3 {
        let err = succeed(&breaker).await.unwrap_err();
        assert_eq!(err.retry_after(), Some(Duration::from_secs(open_for)));
        advance(Duration::from_secs(open_for)).await;
        // Two probes, one fails: a 50 % failure rate reopens.
        fail(&breaker).await.unwrap_err();
        succeed(&breaker).await.unwrap();
        assert_eq!(breaker.state(), State::Open);
        open_for = expected.next().unwrap();
    }
    let err = succeed(&breaker).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(25)), "capped");

    // A successful trial resets the growth.
    advance(Duration::from_secs(25)).await;
    succeed(&breaker).await.unwrap();
    succeed(&breaker).await.unwrap();
    assert_eq!(breaker.state(), State::Closed);
    for _ in 0..4 {
        fail(&breaker).await.unwrap_err();
    }
    let err = succeed(&breaker).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(10)));
}

#[tokio::test(start_paused = true)]
async fn half_open_rejects_beyond_its_probes() {
    let breaker = small().build().unwrap();
    for _ in 0..4 {
        fail(&breaker).await.unwrap_err();
    }
    advance(Duration::from_secs(10)).await;
    let first = breaker.try_acquire().unwrap();
    let second = breaker.try_acquire().unwrap();
    assert!(first.is_probe() && second.is_probe());
    let third = breaker.try_acquire().unwrap_err();
    assert_eq!(third.state(), State::HalfOpen);
    assert_eq!(third.retry_after(), None);
    first.success();
    second.success();
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn hanging_probe_times_out_as_a_failure() {
    let breaker = small().build().unwrap();
    for _ in 0..4 {
        fail(&breaker).await.unwrap_err();
    }
    advance(Duration::from_secs(10)).await;
    let hang = breaker.call(std::future::pending::<Result<(), Error>>());
    let err = hang.await.unwrap_err();
    assert_eq!(err.kind(), Kind::Timeout);
    // One failed probe of two: the second probe decides. It also hangs.
    let err = breaker
        .call(std::future::pending::<Result<(), Error>>())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Kind::Timeout);
    assert_eq!(breaker.state(), State::Open, "never stuck half-open");
}

#[tokio::test(start_paused = true)]
async fn hanging_probe_times_out_through_the_layer() {
    let breaker = small().build().unwrap();
    for _ in 0..4 {
        fail(&breaker).await.unwrap_err();
    }
    advance(Duration::from_secs(10)).await;
    let svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(breaker.clone()))
        .service(service_fn(|()| std::future::pending::<Result<(), Error>>()));
    let err = svc.clone().oneshot(()).await.unwrap_err();
    assert_eq!(err.kind(), Kind::Timeout);
    let err = svc.oneshot(()).await.unwrap_err();
    assert_eq!(err.kind(), Kind::Timeout);
    assert_eq!(breaker.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn dropped_probe_gives_its_slot_back() {
    let breaker = small().half_open_probes(1).build().unwrap();
    for _ in 0..4 {
        fail(&breaker).await.unwrap_err();
    }
    advance(Duration::from_secs(10)).await;

    // A probe call future that is dropped half-way (a cancelled request).
    let mut probe = Box::pin(breaker.call(std::future::pending::<Result<(), Error>>()));
    assert!(futures_poll_once(probe.as_mut()).await.is_none());
    assert_eq!(
        breaker.try_acquire().unwrap_err().state(),
        State::HalfOpen,
        "the one slot is taken"
    );
    drop(probe);
    // The slot is free again, and the trial completes.
    succeed(&breaker).await.unwrap();
    assert_eq!(breaker.state(), State::Closed);

    // The same through the tower layer.
    for _ in 0..4 {
        fail(&breaker).await.unwrap_err();
    }
    advance(Duration::from_secs(10)).await;
    let mut svc = CircuitBreakerLayer::new(breaker.clone())
        .layer(service_fn(|()| std::future::pending::<Result<(), Error>>()));
    let mut fut = Box::pin(svc.ready().await.unwrap().call(()));
    assert!(futures_poll_once(fut.as_mut()).await.is_none());
    assert!(breaker.try_acquire().is_err());
    drop(fut);
    breaker.try_acquire().unwrap().success();
    assert_eq!(breaker.state(), State::Closed);
}

/// Polls a future once; `None` if it is pending.
async fn futures_poll_once<F: std::future::Future + Unpin>(mut f: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut f).poll(cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn slow_calls_open_the_breaker_even_when_they_succeed() {
    let breaker = small()
        .slow_calls(Duration::from_millis(500), 0.75)
        .build()
        .unwrap();
    let slow = || {
        breaker.call(async {
            tokio::time::sleep(Duration::from_millis(600)).await;
            Ok::<(), Error>(())
        })
    };
    slow().await.unwrap();
    slow().await.unwrap();
    succeed(&breaker).await.unwrap();
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().slow, 2);
    slow().await.unwrap();
    assert_eq!(breaker.state(), State::Open, "3 of 4 calls were slow");
}

#[tokio::test(start_paused = true)]
async fn time_window_forgets_old_failures() {
    let breaker = CircuitBreaker::builder("timed")
        .time_window(Duration::from_secs(10))
        .minimum_calls(3)
        .failure_rate(0.6)
        .build()
        .unwrap();
    fail(&breaker).await.unwrap_err();
    fail(&breaker).await.unwrap_err();
    advance(Duration::from_secs(11)).await;
    // The two failures left the window: 1 failure of 3 calls.
    succeed(&breaker).await.unwrap();
    succeed(&breaker).await.unwrap();
    fail(&breaker).await.unwrap_err();
    assert_eq!(breaker.snapshot().calls, 3);
    assert_eq!(breaker.state(), State::Closed);
    fail(&breaker).await.unwrap_err();
    fail(&breaker).await.unwrap_err();
    assert_eq!(breaker.state(), State::Open, "3 failures of 5 in 10 s");
}

#[tokio::test(start_paused = true)]
async fn caller_faults_do_not_count_unless_configured() {
    let breaker = small().build().unwrap();
    for _ in 0..8 {
        let err = breaker
            .call(async { Err::<(), _>(Error::new(Kind::InvalidInput, "bad id")) })
            .await
            .unwrap_err();
        assert_eq!(err.kind(), Kind::InvalidInput);
    }
    assert_eq!(breaker.state(), State::Closed);

    let strict = small()
        .failure_if(|e| matches!(e.kind(), Kind::InvalidInput | Kind::Timeout))
        .build()
        .unwrap();
    for _ in 0..4 {
        strict
            .call(async { Err::<(), _>(Error::from_kind(Kind::InvalidInput)) })
            .await
            .unwrap_err();
    }
    assert_eq!(strict.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn manual_states() {
    let breaker = small().build().unwrap();
    breaker.force_open();
    let rejected = breaker.try_acquire().unwrap_err();
    assert_eq!(rejected.state(), State::ForcedOpen);
    advance(Duration::from_secs(3600)).await;
    assert!(breaker.try_acquire().is_err(), "forced open stays open");

    breaker.disable();
    for _ in 0..10 {
        fail(&breaker).await.unwrap_err();
    }
    assert_eq!(breaker.state(), State::Disabled, "nothing recorded");

    breaker.reset();
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.snapshot().calls, 0);
}

#[tokio::test(start_paused = true)]
async fn outcomes_from_an_earlier_state_are_ignored() {
    let breaker = small().build().unwrap();
    let late = breaker.try_acquire().unwrap();
    for _ in 0..4 {
        fail(&breaker).await.unwrap_err();
    }
    advance(Duration::from_secs(10)).await;
    succeed(&breaker).await.unwrap();
    assert_eq!(breaker.state(), State::HalfOpen);
    // A call admitted while closed ends now: it is not a probe.
    late.failure();
    succeed(&breaker).await.unwrap();
    assert_eq!(breaker.state(), State::Closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_never_exceed_the_probe_limit() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let probes = 3;
    let breaker = CircuitBreaker::builder("busy")
        .count_window(10)
        .minimum_calls(10)
        .open_duration(Duration::from_millis(1))
        .half_open_probes(probes)
        .build()
        .unwrap();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    for round in 0..20 {
        for _ in 0..10 {
            fail(&breaker).await.ok();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let breaker = breaker.clone();
                let in_flight = in_flight.clone();
                let peak = peak.clone();
                tokio::spawn(async move {
                    breaker
                        .call(async {
                            if breaker.state() == State::HalfOpen {
                                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                                peak.fetch_max(now, Ordering::SeqCst);
                                tokio::task::yield_now().await;
                                in_flight.fetch_sub(1, Ordering::SeqCst);
                            }
                            if (i + round) % 3 == 0 {
                                Err(unavailable())
                            } else {
                                Ok(())
                            }
                        })
                        .await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().ok();
        }
        breaker.reset();
    }
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak >= 1, "some probes ran");
    assert!(peak <= probes as usize, "peak {peak} > {probes}");
}

#[test]
fn invalid_settings_are_refused_with_the_reason() {
    let err = CircuitBreaker::builder("x")
        .failure_rate(1.5)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), Kind::InvalidInput);
    assert!(err.to_string().contains("failure_rate"), "{err}");
    let err = CircuitBreaker::builder("x")
        .count_window(5)
        .minimum_calls(10)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("minimum_calls"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn registry_stays_bounded_under_a_flood_of_keys() {
    use pattern_error::breaker::Registry;
    let registry = Registry::new(small(), 32).unwrap();
    let hot = registry.get(&0u32);
    hot.force_open();
    for key in 1..10_000u32 {
        registry.get(&key);
        assert!(registry.len() <= 32);
    }
    assert_eq!(registry.len(), registry.capacity());
    // Which breaker goes is decided by the clock hand; registry.rs's unit
    // tests pin that down.
}

#[tokio::test(start_paused = true)]
async fn registry_evicts_idle_breakers_first() {
    use pattern_error::breaker::Registry;
    let registry = Registry::with_idle_timeout(small(), 2, Duration::from_secs(60)).unwrap();
    // One shard per key at capacity 2: fill it.
    let a = registry.get(&"a");
    registry.get(&"b");
    a.force_open();
    advance(Duration::from_secs(61)).await;
    for key in ["c", "d", "e"] {
        registry.get(&key);
    }
    assert!(registry.len() <= 2);
}

/// A probe permit taken by hand and never reported (leaked) cannot hold the
/// breaker half-open: past the probe timeout it counts as a failed probe
/// once a call finds every slot taken, and a late report is ignored.
#[tokio::test(start_paused = true)]
async fn a_leaked_probe_permit_expires_after_the_probe_timeout() {
    let breaker = small().build().unwrap();
    for _ in 0..4 {
        fail(&breaker).await.unwrap_err();
    }
    advance(Duration::from_secs(10)).await;
    // Two probe slots: one leaked, one held by a caller that reports late.
    let leaked = breaker.try_acquire().unwrap();
    assert!(leaked.is_probe());
    std::mem::forget(leaked);
    let late = breaker.try_acquire().unwrap();
    assert!(breaker.try_acquire().is_err(), "every probe slot is taken");
    assert_eq!(breaker.state(), State::HalfOpen);

    advance(Duration::from_millis(999)).await;
    assert!(
        breaker.try_acquire().is_err(),
        "not yet past the probe timeout"
    );
    advance(Duration::from_millis(1)).await;
    // Both probes are past their 1 s timeout: failed, the trial opens the
    // breaker again, and this call is told how long it stays open.
    let rejected = breaker.try_acquire().unwrap_err();
    assert_eq!(breaker.state(), State::Open);
    assert!(
        rejected
            .retry_after()
            .is_some_and(|after| after > Duration::from_secs(9))
    );
    late.success(); // too late: ignored
    assert_eq!(breaker.state(), State::Open);

    // After the open duration, probes are admitted again.
    advance(Duration::from_secs(20)).await;
    succeed(&breaker).await.unwrap();
    succeed(&breaker).await.unwrap();
    assert_eq!(breaker.state(), State::Closed);
}

/// Every size setting is bounded: a window or a probe count that would
/// take unbounded memory is refused with the reason.
#[test]
fn size_settings_are_bounded() {
    use pattern_error::breaker::Window;
    let err = CircuitBreaker::builder("x")
        .count_window(u32::MAX)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), Kind::InvalidInput);
    assert!(err.to_string().contains("10 000"), "{err}");
    CircuitBreaker::builder("x")
        .count_window(Window::MAX_CALLS)
        .build()
        .unwrap();
    let err = CircuitBreaker::builder("x")
        .window(Window::Time {
            duration: Duration::from_secs(3_600),
            buckets: Window::MAX_BUCKETS + 1,
        })
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("buckets"), "{err}");
    let err = CircuitBreaker::builder("x")
        .half_open_probes(u32::MAX)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("half_open_probes"), "{err}");
    // Durations at their extremes are accepted and do not overflow.
    let breaker = CircuitBreaker::builder("x")
        .count_window(1)
        .minimum_calls(1)
        .open_duration(Duration::MAX)
        .probe_timeout(Duration::MAX)
        .build()
        .unwrap();
    breaker.try_acquire().unwrap().failure();
    let rejected = breaker.try_acquire().unwrap_err();
    assert_eq!(rejected.state(), State::Open);
}
